//! `GET /api/dht/bootstrap`: seeds for new nodes, built from the routing
//! table and what each contact speaks. The topology lives in
//! [`super::topology`], health in [`super::health`].

use std::net::SocketAddr;

use axum::extract::State;
use axum::http::{header::HOST, HeaderMap};
use axum::Json;
use serde_json::{json, Value as Json_};

use super::error::ApiError;
use crate::discovery::Discovery;
use crate::engine::PeerKind;
use crate::id::NodeId;

/// Most seeds one bootstrap answer lists.
pub const MAX_SEEDS: usize = 20;
/// How long clients may reuse a bootstrap answer, seconds.
pub const SEEDS_TTL: u64 = 300;

/// A routing-table contact and what it speaks.
#[derive(Clone, Copy, Debug)]
pub struct Peer {
    /// Its id.
    pub id: NodeId,
    /// Its address.
    pub addr: SocketAddr,
    /// What it speaks.
    pub kind: PeerKind,
}

/// The routing table's contacts.
pub async fn peers(d: &Discovery) -> Result<Vec<Peer>, ApiError> {
    let peers = d
        .node()
        .with_engine(|e, _| {
            e.routing().contacts().map(|c| Peer { id: c.id, addr: c.addr, kind: e.peer_kind(&c.id) }).collect()
        })
        .await?;
    Ok(peers)
}

/// The host other nodes reach this one at: the configured public host, the
/// bound IP unless it is a wildcard, else the host the HTTP client used.
fn self_host(d: &Discovery, headers: &HeaderMap) -> Option<String> {
    if let Some(h) = &d.config().public_host {
        return Some(h.clone());
    }
    let ip = d.node().local_addr().ip();
    if !ip.is_unspecified() {
        return Some(ip.to_string());
    }
    let host = headers.get(HOST)?.to_str().ok()?;
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next()?,
        None if host.matches(':').count() <= 1 => host.split(':').next()?,
        None => host,
    };
    (!name.is_empty()).then(|| name.to_owned())
}

/// `GET /api/dht/bootstrap`
pub async fn bootstrap(State(d): State<Discovery>, headers: HeaderMap) -> Result<Json<Json_>, ApiError> {
    let mut peers = peers(&d).await?;
    let rank = |k: PeerKind| match k {
        PeerKind::Extended => 0,
        PeerKind::Unknown => 1,
        PeerKind::Base => 2,
    };
    peers.sort_by_key(|p| rank(p.kind));
    let mut seeds = Vec::new();
    if let Some(host) = self_host(&d, &headers) {
        seeds.push(json!({
            "node_id": d.node().id().to_hex(),
            "host": host,
            "dht_port": d.node().local_addr().port(),
            "tunnel_url": d.config().public_url,
        }));
    }
    for p in peers.into_iter().take(MAX_SEEDS - seeds.len()) {
        seeds.push(json!({"node_id": p.id.to_hex(), "host": p.addr.ip().to_string(), "dht_port": p.addr.port()}));
    }
    Ok(Json(json!({"seed_count": seeds.len(), "seeds": seeds, "ttl": SEEDS_TTL})))
}
