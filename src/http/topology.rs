//! `GET /api/dht/topology` and its live feed `GET /api/dht/topology/stream`
//! (server-sent events, one `topology` event every [`PUSH_EVERY`]).
//!
//! Nodes come from the cached network crawl ([`network`]), workers from the
//! service index and each service's providers, so the graph shows the
//! network, not what this node happened to look up. The answer carries the
//! platform's current shape (`nodes`/`connections`/`stats`) and the older
//! one (`edges`/`dht_enabled`/`node_count`) together.
//!
//! Health, per node: `health` is the page's level (`healthy`; `warning`
//! more than 60 s since the last heartbeat or answer; `critical` more than
//! 90 s, or a DHT node that did not answer the latest crawl; `offline`) and
//! `status` the platform's (`healthy`/`degraded`/`offline`). A DHT node is
//! `healthy` only if it answered the latest crawl.

pub mod network;

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use futures_util::Stream;
use std::collections::HashSet;
use std::sync::Mutex;

use serde_json::{json, Value};
use tokio::time::Instant;

use super::error::ApiError;
use super::AppState;
use crate::discovery::liveness::UNIX_TIME_MIN;
use crate::discovery::metrics::LookupResult;
use crate::discovery::{Discovery, Health, WorkerRecord};
use network::{NodeSeen, Snapshot};

/// How often the stream pushes a new view.
pub const PUSH_EVERY: Duration = Duration::from_secs(5);
/// More seconds than this since the last heartbeat is a warning...
pub const WARNING_AFTER: f64 = 60.0;
/// ...and more than this is critical.
pub const CRITICAL_AFTER: f64 = 90.0;
/// Routing links drawn per node (the first it lists, its closest).
pub const LINKS_PER_NODE: usize = 8;

/// The page's health level of a worker.
pub fn worker_level(w: &WorkerRecord, now: f64, window: Duration) -> &'static str {
    let health = w.health(now, window);
    // Records read through discovery carry this node's view of a monotonic
    // `last_seen` (liveness), so only a record that skipped it has none.
    let age = w.last_seen.filter(|t| *t >= UNIX_TIME_MIN).map(|t| now - t);
    match (health, age) {
        (Health::Offline, _) => "offline",
        (_, Some(a)) if a > CRITICAL_AFTER => "critical",
        (_, Some(a)) if a > WARNING_AFTER => "warning",
        (Health::Degraded, _) => "warning",
        (Health::Healthy, _) => "healthy",
    }
}

/// GPU, storage or CPU, from what the worker said about itself.
pub fn worker_type(w: &WorkerRecord) -> &'static str {
    let c = &w.capabilities;
    let declared = c.get("worker_type").and_then(Value::as_str);
    if w.has_gpu() {
        "gpu"
    } else if declared == Some("storage") || c.contains_key("storage_gb") {
        "storage"
    } else {
        "cpu"
    }
}

fn node_json(n: &NodeSeen, now: f64) -> Value {
    let id = n.id.to_hex();
    let (health, status) = match (n.rtt.is_some(), n.last_answer) {
        (true, _) => ("healthy", "healthy"),
        (false, Some(t)) if now - t <= CRITICAL_AFTER => ("critical", "degraded"),
        _ => ("offline", "offline"),
    };
    json!({
        "id": id, "node_id": id, "node_type": "coordinator", "tunnel_url": null,
        "dht_port": n.addr.port(), "host": n.addr.ip().to_string(), "address": n.addr.to_string(),
        "services": [], "load": null, "status": status, "health": health, "capabilities": {},
        "peer": n.peer, "software": n.software, "rtt_ms": n.rtt.map(|r| r.as_secs_f64() * 1000.0),
        "last_seen": n.last_answer,
    })
}

fn worker_json(w: &WorkerRecord, now: f64, window: Duration) -> Value {
    json!({
        "id": w.worker_id, "node_id": w.worker_id, "node_type": "worker", "worker_type": worker_type(w),
        "tunnel_url": w.tunnel_url, "dht_port": null, "services": w.services, "load": w.load,
        "status": w.health(now, window).as_str(), "health": worker_level(w, now, window),
        "capabilities": w.capabilities, "last_seen": w.last_seen, "registered_via": w.node_id,
        "available_memory": w.memory(), "version": w.capabilities.get("version"),
    })
}

async fn self_json(app: &AppState, snap: &Snapshot) -> Result<(Value, usize, Vec<String>), ApiError> {
    let d = &app.discovery;
    let (contacts, records) = d
        .node()
        .with_engine(|e, _| (e.routing().contacts().map(|c| c.id.to_hex()).collect::<Vec<_>>(), e.store().len()))
        .await?;
    let me = d.node().id().to_hex();
    let alone = contacts.is_empty();
    let node = json!({
        "id": me, "node_id": me, "node_type": "coordinator", "tunnel_url": d.config().public_url,
        "dht_port": d.node().local_addr().port(), "host": d.node().local_addr().ip().to_string(),
        "address": d.node().local_addr().to_string(), "services": snap.services.clone(), "load": null,
        "status": if alone { "degraded" } else { "healthy" }, "health": if alone { "warning" } else { "healthy" },
        "capabilities": {"dht": "kadmesh", "version": env!("CARGO_PKG_VERSION")}, "peer": "self",
        "software": format!("kadmesh {}", env!("CARGO_PKG_VERSION")), "last_seen": d.now(), "rtt_ms": 0.0,
    });
    Ok((node, records, contacts))
}

/// Links: this node to its routing table, each crawled node to the first
/// [`LINKS_PER_NODE`] contacts it listed (both ends drawn, each pair once),
/// each worker to the node it registered through (else this one).
fn links(me: &str, contacts: &[String], snap: &Snapshot, ids: &HashSet<String>) -> Vec<(String, String, &'static str)> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    let mut add = |a: String, b: String, kind: &'static str, out: &mut Vec<_>| {
        let key = if a < b { (a.clone(), b.clone()) } else { (b.clone(), a.clone()) };
        if a != b && ids.contains(&b) && seen.insert(key) {
            out.push((a, b, kind));
        }
    };
    for c in contacts {
        add(me.to_owned(), c.clone(), "dht_connection", &mut out);
    }
    for n in &snap.nodes {
        for l in n.links.iter().take(LINKS_PER_NODE) {
            add(n.id.to_hex(), l.to_hex(), "dht_connection", &mut out);
        }
    }
    for w in &snap.workers {
        let via = w.node_id.clone().filter(|n| ids.contains(n)).unwrap_or_else(|| me.to_owned());
        add(w.worker_id.clone(), via, "worker_registration", &mut out);
    }
    out
}

/// Discover lookups per second, measured over at least two seconds between
/// readings (every reader shares the same sample).
#[derive(Debug, Default)]
pub struct LookupRate {
    sample: Mutex<Option<(Instant, u64, f64)>>,
}

impl LookupRate {
    /// Discover lookups since start, however answered.
    pub fn total(&self, d: &Discovery) -> u64 {
        LookupResult::ALL.iter().map(|r| d.metrics().lookups(*r)).sum()
    }

    /// The latest rate.
    pub fn per_second(&self, d: &Discovery) -> f64 {
        let (total, now) = (self.total(d), Instant::now());
        let mut sample = self.sample.lock().unwrap_or_else(|p| p.into_inner());
        match *sample {
            Some((at, _, rate)) if now.duration_since(at) < Duration::from_secs(2) => rate,
            Some((at, n, _)) => {
                let rate = total.saturating_sub(n) as f64 / now.duration_since(at).as_secs_f64();
                *sample = Some((now, total, rate));
                rate
            }
            None => {
                // No earlier reading: the average since start.
                let rate = total as f64 / d.uptime().as_secs_f64().max(1.0);
                *sample = Some((now, total, rate));
                rate
            }
        }
    }
}

/// The whole answer.
pub async fn build(app: &AppState) -> Result<Value, ApiError> {
    let d = &app.discovery;
    let snap = app.network.current(d).await?;
    let now = d.now();
    let window = d.config().worker_ttl;
    let (me_json, records, contacts) = self_json(app, &snap).await?;
    let me = d.node().id().to_hex();
    let mut nodes = vec![me_json];
    nodes.extend(snap.nodes.iter().map(|n| node_json(n, now)));
    let coordinators = nodes.len();
    nodes.extend(snap.workers.iter().map(|w| worker_json(w, now, window)));
    let ids: HashSet<String> = nodes.iter().filter_map(|n| Some(n["id"].as_str()?.to_owned())).collect();
    let links = links(&me, &contacts, &snap, &ids);
    let count = |h: &str| nodes.iter().filter(|n| n["health"] == h).count();
    let m = d.metrics();
    let (ok, failed) = m.joins.fetches(crate::seed_order::SeedSource::Edge);
    let edge = ok + failed;
    Ok(json!({
        "nodes": nodes,
        "connections": links.iter().map(|(s, t, k)| json!({"source_id": s, "target_id": t, "type": k})).collect::<Vec<_>>(),
        "edges": links.iter().map(|(s, t, k)| json!({"from": s, "to": t, "type": k})).collect::<Vec<_>>(),
        "stats": {
            "total_nodes": nodes.len(),
            "coordinator_count": coordinators,
            "worker_count": snap.workers.len(),
            "healthy_count": count("healthy"),
            "warning_count": count("warning"),
            "critical_count": count("critical"),
            "offline_count": count("offline"),
            "service_count": snap.services.len(),
            "records_held": records,
            "lookups_total": app.rate.total(d),
            "lookups_per_s": app.rate.per_second(d),
            "edge_router_requests": edge,
        },
        "services": snap.services,
        "crawl": {"taken_at": snap.taken, "complete": snap.complete, "elapsed_ms": snap.elapsed.as_millis() as u64},
        "self_id": me,
        "dht_enabled": true,
        "node_count": nodes.len(),
        "timestamp": now,
    }))
}

/// `GET /api/dht/topology`
pub async fn topology(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(build(&app).await?))
}

/// `GET /api/dht/topology/stream`: a `topology` event at once, then every
/// [`PUSH_EVERY`], until the client goes or the server stops.
pub async fn stream(State(app): State<AppState>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let events = futures_util::stream::unfold((app, true), |(app, first)| async move {
        if !first {
            let mut stop = app.stop.clone();
            // A stop channel whose sender is gone never stops the stream.
            let stopped = async move {
                if stop.wait_for(|s| *s).await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(PUSH_EVERY) => {}
                _ = stopped => return None,
            }
        }
        if *app.stop.borrow() {
            return None;
        }
        let event = match build(&app).await {
            Ok(v) => Event::default().event("topology").data(v.to_string()),
            Err(e) => Event::default().event("failure").data(e.detail),
        };
        Some((Ok(event), (app, false)))
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}
