//! Turning the global options into a client node: where the seeds come
//! from, how long requests wait, and how user-typed keys and addresses are
//! read (with a bad-input failure that names the culprit).

use std::net::SocketAddr;
use std::time::Duration;

use kadmesh::client::{self, ClientOptions, Joined};
use kadmesh::id::{Key, NodeId};
use kadmesh::node::{Node, NodeHandle, NodeOptions};
use kadmesh::seeds::{fetch_bootstrap_url, Seed};

use crate::args::{Global, KeyArgs};
use crate::output::Failure;

/// Requests wait at most half the command's bound (and never more than the
/// 5 s the Python package uses), leaving time for what follows a timeout.
pub fn rpc_timeout(g: &Global) -> Duration {
    (g.timeout / 2).min(Duration::from_secs(5))
}

/// Seeds from `--seed`, `DHT_SEEDS` and `--bootstrap-url`, in that order.
pub async fn seeds(g: &Global) -> Result<Vec<Seed>, Failure> {
    let mut seeds = Vec::new();
    for s in &g.seeds {
        seeds.push(Seed::parse(s).map_err(|e| Failure::BadInput(e.to_string()))?);
    }
    if let Ok(env) = std::env::var("DHT_SEEDS") {
        seeds.extend(Seed::parse_list(&env).map_err(|e| Failure::BadInput(format!("DHT_SEEDS: {e}")))?);
    }
    if let Some(url) = &g.bootstrap_url {
        check_url(url)?;
        match fetch_bootstrap_url(url, rpc_timeout(g)).await {
            Ok(more) => seeds.extend(more),
            Err(e) if seeds.is_empty() => return Err(Failure::Unreachable(e.to_string())),
            Err(e) => tracing::warn!(error = %e, "bootstrap URL failed; using the other seeds"),
        }
    }
    Ok(seeds)
}

/// How the client node starts: `--bind`, `--node-id` and the RPC timeout.
pub fn options(g: &Global) -> Result<ClientOptions, Failure> {
    let id = g.node_id.as_deref().map(node_id).transpose()?;
    Ok(ClientOptions { bind: g.bind, rpc_timeout: rpc_timeout(g), id })
}

/// Starts a client node and joins the network through the seeds.
pub async fn join(g: &Global) -> Result<Joined, Failure> {
    if let Some(url) = &g.via {
        return join_via(g, url).await;
    }
    let opts = options(g)?;
    let seeds = seeds(g).await?;
    Ok(client::connect(&seeds, &opts).await?)
}

/// A client node that talks to `addr` alone (no bootstrap).
pub async fn solo(g: &Global, addr: SocketAddr) -> Result<NodeHandle, Failure> {
    match &g.via {
        Some(url) => start_via(g, url),
        None => Ok(client::start(&options(g)?, &[addr]).await?),
    }
}

/// A client node with no UDP socket that reaches UDP contacts through the
/// relay at `url` (`--via`).
fn start_via(g: &Global, url: &str) -> Result<NodeHandle, Failure> {
    check_url(url)?;
    let opts = options(g)?;
    let id = opts.id.unwrap_or_else(client::machine_id);
    let relays = NodeOptions { relays: vec![url.to_owned()], ..NodeOptions::default() };
    Ok(Node::spawn_without_udp(id, client::client_config(opts.rpc_timeout), relays)?)
}

/// [`join`] through `--via`: the relay (as a URL seed) and the `--seed`
/// ones, reached through it.
async fn join_via(g: &Global, url: &str) -> Result<Joined, Failure> {
    let node = start_via(g, url)?;
    let relay = node.tunnel_addr(url.to_owned()).await?;
    let relay = relay.ok_or_else(|| Failure::BadInput(format!("--via {url:?} is not a usable http(s) URL")))?;
    let mut addrs = vec![relay];
    for seed in seeds(g).await.unwrap_or_default() {
        addrs.extend(seed.resolve().await.unwrap_or_default());
    }
    let outcome = node.bootstrap(addrs.clone()).await?;
    if outcome.seeds_reached == 0 {
        node.shutdown().await;
        return Err(Failure::Unreachable(format!("neither the relay {url} nor a seed through it answered")));
    }
    Ok(Joined { node, outcome, seeds: addrs })
}

/// Reads `host:port` and resolves it to one address.
pub async fn target(text: &str) -> Result<SocketAddr, Failure> {
    let seed = Seed::parse(text).map_err(|e| Failure::BadInput(e.to_string()))?;
    let addrs = seed.resolve().await.map_err(|e| Failure::Unreachable(e.to_string()))?;
    addrs.first().copied().ok_or_else(|| Failure::Unreachable(format!("{seed} resolved to no address")))
}

/// The key to use and how to name it in output: the text as typed, or the hex.
pub fn key(k: &KeyArgs) -> Result<(String, Key), Failure> {
    match (&k.key, &k.raw_key) {
        (_, Some(hex)) => raw_key(hex).map(|key| (key.to_hex(), key)),
        (Some(text), None) => Ok((text.clone(), NodeId::for_key(text))),
        (None, None) => Err(Failure::BadInput("give a KEY or --raw-key HEX".into())),
    }
}

/// Parses a 40-hex-digit digest.
pub fn raw_key(hex: &str) -> Result<Key, Failure> {
    NodeId::from_hex(hex).map_err(|e| Failure::BadInput(format!("--raw-key {hex:?}: {e}")))
}

/// Parses a 40-hex-digit node id.
pub fn node_id(hex: &str) -> Result<NodeId, Failure> {
    NodeId::from_hex(hex).map_err(|e| Failure::BadInput(format!("node id {hex:?}: {e}")))
}

/// Rejects text that is not an http(s) URL before any request is made.
pub fn check_url(url: &str) -> Result<reqwest::Url, Failure> {
    let parsed = reqwest::Url::parse(url).map_err(|e| Failure::BadInput(format!("URL {url:?}: {e}")))?;
    match parsed.scheme() {
        "http" | "https" => Ok(parsed),
        other => Err(Failure::BadInput(format!("URL {url:?}: scheme {other:?} is not http or https"))),
    }
}
