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
    // A node without UDP (port 0) is nobody's seed.
    if let Some(host) = self_host(&d, &headers).filter(|_| d.node().local_addr().port() != 0) {
        seeds.push(json!({
            "node_id": d.node().id().to_hex(),
            "host": host,
            "dht_port": d.node().local_addr().port(),
            "tunnel_url": self_url(&d, &host, &headers),
        }));
    }
    // A URL contact has no UDP address to give; kadmesh peers learn it over the DHT.
    let more: Vec<Json_> = peers
        .into_iter()
        .filter(|p| !crate::tunnel::is_tunnel(p.addr))
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
