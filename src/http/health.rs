//! Liveness and readiness.
//!
//! - `GET /health/live`: 200 whenever the process answers HTTP and its DHT
//!   node runs (503 only when the node task has stopped). For restart
//!   decisions (the container HEALTHCHECK).
//! - `GET /health`: readiness, 200 `healthy` once the node has DHT peers;
//!   503 `degraded` with a `reason` while it is alone (no seed answered yet,
//!   or none was given and nobody has joined it). For load balancers and
//!   for "is this node part of the network?". A lone first seed is 503 until
//!   a second node joins, which is the truth: it cannot yet answer lookups
//!   from anyone's data but its own. It also says whether other nodes can
//!   reach this one over UDP (`reachability`: `public`, `nat`, `no-udp` or
//!   `unknown`, with the reason; see [`crate::reach`]).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use crate::discovery::Discovery;

/// `GET /health`
pub async fn ready(State(d): State<Discovery>) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (peers, records, reach, client) = d
        .node()
        .with_engine(|e, _| (e.routing().len(), e.store().len(), e.reachability().clone(), e.is_client()))
        .await?;
    let ready = peers > 0;
    let reason = (!ready).then_some(
        "alone: no DHT peer in the routing table yet (bootstrap has not reached a seed, or no seeds were given and no node has joined)",
    );
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    Ok((
        status,
        Json(json!({
            "status": if ready { "healthy" } else { "degraded" },
            "ready": ready,
            "reason": reason,
            "node_id": d.node().id().to_hex(),
            "dht_port": d.node().local_addr().port(),
            "peers": peers,
            "bootstrapped": ready,
            "workers_registered": d.local_worker_count(),
            "records_held": records,
            "reachability": {
                "state": reach.state.as_str(),
                "reason": reach.reason,
                "observed_address": reach.observed.map(|a| a.to_string()),
                "assumed": reach.assumed,
                "client": client,
            },
            "coordinator_url": d.coordinator_url(),
            "uptime_seconds": d.uptime().as_secs(),
            "version": env!("CARGO_PKG_VERSION"),
        })),
    ))
}

/// `GET /health/live`
pub async fn live(State(d): State<Discovery>) -> Result<Json<Value>, ApiError> {
    // A round trip to the node's task: a wedged or stopped node is not alive.
    d.node().with_engine(|_, _| ()).await?;
    Ok(Json(json!({"status": "alive", "uptime_seconds": d.uptime().as_secs()})))
}
