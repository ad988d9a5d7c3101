//! DHT routes: bootstrap seeds, topology and health, built from the routing
//! table (and what each contact speaks), the workers registered here and the
//! workers seen in recent answers.
//!
//! In the topology, DHT nodes are `node_type: "coordinator"` (they are the
//! backbone the frontend draws coordinators as), with `peer` telling
//! `kadmesh`, `python` (answers only the base protocol) or `unknown`.

use std::net::SocketAddr;

use axum::extract::State;
use axum::http::{header::HOST, HeaderMap};
use axum::Json;
use serde_json::{json, Value as Json_};

use super::error::ApiError;
use crate::discovery::{Discovery, Health, WorkerRecord};
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

fn peer_label(kind: PeerKind) -> &'static str {
    match kind {
        PeerKind::Extended => "kadmesh",
        PeerKind::Base => "python",
        PeerKind::Unknown => "unknown",
    }
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

/// `GET /api/dht/bootstrap`: `seeds` for every client, `more_seeds` for ours.
///
/// The platform's own client reads `tunnel_url` of every entry in `seeds`
/// (a missing or null one raises) and takes its host name as the seed's UDP
/// host. So `seeds` lists only nodes whose HTTP URL we know and whose host is
/// their UDP host: this node, under its public URL when that URL names the
/// same host, else `http://{host}:{port the client reached us on}`. Peers,
/// whose HTTP address we do not know, go to `more_seeds` (host and port
/// only), which kadmesh nodes read too and the platform's client ignores.
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
            "tunnel_url": self_url(&d, &host, &headers),
        }));
    }
    let more: Vec<Json_> = peers
        .into_iter()
        .take(MAX_SEEDS)
        .map(|p| json!({"node_id": p.id.to_hex(), "host": p.addr.ip().to_string(), "dht_port": p.addr.port()}))
        .collect();
    Ok(Json(json!({"seed_count": seeds.len(), "seeds": seeds, "more_seeds": more, "ttl": SEEDS_TTL})))
}

/// This node's HTTP URL with `host` as its host: the public URL when it
/// names that host, else plain HTTP on the port the client used.
fn self_url(d: &Discovery, host: &str, headers: &HeaderMap) -> String {
    if let Some(url) = &d.config().public_url {
        if reqwest::Url::parse(url).ok().and_then(|u| u.host_str().map(|h| h.trim_matches(['[', ']']) == host))
            == Some(true)
        {
            return url.clone();
        }
    }
    let port = headers.get(HOST).and_then(|h| h.to_str().ok()).and_then(host_port);
    let host = if host.contains(':') { format!("[{host}]") } else { host.to_owned() };
    match port {
        Some(p) => format!("http://{host}:{p}"),
        None => format!("http://{host}"),
    }
}

/// The port in a `Host` header (`name:port`, `[v6]:port`), if any.
fn host_port(value: &str) -> Option<u16> {
    let after = match value.rfind(']') {
        Some(i) => &value[i + 1..],
        None if value.matches(':').count() == 1 => &value[value.find(':')?..],
        None => return None,
    };
    after.strip_prefix(':')?.parse().ok()
}

fn worker_node(w: &WorkerRecord, now: f64, d: &Discovery) -> Json_ {
    json!({
        "id": w.worker_id,
        "node_id": w.worker_id,
        "node_type": "worker",
        "tunnel_url": w.tunnel_url,
        "dht_port": null,
        "services": w.services,
        "load": w.load,
        "status": w.health(now, d.config().worker_ttl).as_str(),
        "capabilities": w.capabilities,
    })
}

/// `GET /api/dht/topology`: the graph in both the current
/// (`connections`/`stats`) and the older (`edges`/`node_count`) shapes.
pub async fn topology(State(d): State<Discovery>) -> Result<Json<Json_>, ApiError> {
    let me = d.node().id().to_hex();
    let now = d.now();
    let local = d.local_workers();
    let mut services: Vec<String> = local.iter().flat_map(|w| w.services.clone()).collect();
    services.sort();
    services.dedup();
    let mut nodes = vec![json!({
        "id": me, "node_id": me, "node_type": "coordinator", "tunnel_url": d.config().public_url,
        "dht_port": d.node().local_addr().port(), "services": services, "load": null, "status": "healthy",
        "capabilities": {"dht": "kadmesh", "version": env!("CARGO_PKG_VERSION")}, "peer": "self",
    })];
    let mut links: Vec<(String, String, &str)> = Vec::new();
    for p in peers(&d).await? {
        let id = p.id.to_hex();
        nodes.push(json!({
            "id": id, "node_id": id, "node_type": "coordinator", "tunnel_url": null, "dht_port": p.addr.port(),
            "host": p.addr.ip().to_string(), "services": [], "load": null, "status": "healthy",
            "capabilities": {}, "peer": peer_label(p.kind),
        }));
        links.push((me.clone(), id, "dht_connection"));
    }
    let mut workers: Vec<WorkerRecord> = local.clone();
    workers.extend(d.recent_workers().into_iter().filter(|r| !local.iter().any(|l| l.worker_id == r.worker_id)));
    // Every DHT node listed answered recently enough to be in the table.
    let mut healthy = nodes.len();
    for w in &workers {
        healthy += usize::from(w.health(now, d.config().worker_ttl) == Health::Healthy);
        nodes.push(worker_node(w, now, &d));
        let via = w.node_id.clone().filter(|n| nodes.iter().any(|x| x["id"] == n.as_str())).unwrap_or(me.clone());
        links.push((w.worker_id.clone(), via, "worker_registration"));
    }
    let peers_total = nodes.len() - workers.len();
    Ok(Json(json!({
        "nodes": nodes,
        "connections": links.iter().map(|(s, t, k)| json!({"source_id": s, "target_id": t, "type": k})).collect::<Vec<_>>(),
        "edges": links.iter().map(|(s, t, k)| json!({"from": s, "to": t, "type": k})).collect::<Vec<_>>(),
        "stats": {
            "total_nodes": nodes.len(),
            "coordinator_count": peers_total,
            "worker_count": workers.len(),
            "healthy_count": healthy,
        },
        "dht_enabled": true,
        "node_count": nodes.len(),
        "timestamp": now,
    })))
}

/// `GET /health`: `healthy` when this node has DHT peers, `degraded` when it
/// is alone (still HTTP 200: a lone first seed is legitimate).
pub async fn health(State(d): State<Discovery>) -> Result<Json<Json_>, ApiError> {
    let (peers, records) = d.node().with_engine(|e, _| (e.routing().len(), e.store().len())).await?;
    Ok(Json(json!({
        "status": if peers > 0 { "healthy" } else { "degraded" },
        "node_id": d.node().id().to_hex(),
        "dht_port": d.node().local_addr().port(),
        "peers": peers,
        "bootstrapped": peers > 0,
        "workers_registered": d.local_worker_count(),
        "records_held": records,
        "coordinator_url": d.coordinator_url(),
        "uptime_seconds": d.uptime().as_secs(),
        "version": env!("CARGO_PKG_VERSION"),
    })))
}

#[cfg(test)]
mod tests {
    #[test]
    fn host_header_ports() {
        assert_eq!(super::host_port("127.0.0.1:8080"), Some(8080));
        assert_eq!(super::host_port("[::1]:9000"), Some(9000));
        assert_eq!(super::host_port("example.org"), None);
        assert_eq!(super::host_port("[::1]"), None);
    }
}
