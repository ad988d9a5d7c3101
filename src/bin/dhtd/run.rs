//! The daemon: lock and load the data directory, bind, join the network in
//! the background (seeds and the bootstrap URL retried with backoff, never
//! fatal), serve HTTP, and save state on the way out.

use std::net::SocketAddr;
use std::time::Duration;

use kadmesh::discovery::{Discovery, DiscoveryConfig};
use kadmesh::engine::Config;
use kadmesh::http::{HttpOptions, TopologyConfig};
use kadmesh::id::NodeId;
use kadmesh::node::{bootstrap_with_retry, Backoff, Node, NodeHandle, NodeOptions};
use kadmesh::persist;
use kadmesh::seeds::{fetch_bootstrap_url, Seed};
use tokio::net::TcpListener;

use crate::options::RunArgs;
use crate::server::{stop_signal, HttpServer};

fn discovery_config(args: &RunArgs) -> DiscoveryConfig {
    DiscoveryConfig {
        worker_ttl: Duration::from_secs(args.worker_ttl),
        refresh_interval: Duration::from_secs(args.refresh_interval),
        stale_after: Duration::from_secs(args.stale_after),
        cache_ttl: Duration::from_secs(args.cache_ttl),
        coordinator_url: args.coordinator_url.clone(),
        public_host: args.public_host.clone(),
        public_url: args.public_url.clone(),
        key_dir: args.data_dir.clone(),
        api_token: args.api_token.clone(),
        refuse_private_urls: args.refuse_private_urls,
        endorsement_key: args.endorsement_key.as_deref().and_then(|k| super::options::public_key(k).ok()),
        default_services: args.default_services.clone(),
        gpu_services: args.gpu_services.clone(),
        max_candidates: args.limits.max_candidates,
        max_listed_services: args.limits.max_listed_services,
        negative_cache_ttl: Duration::from_secs(args.limits.negative_cache_ttl),
        ..DiscoveryConfig::default()
    }
}

/// The HTTP surface's settings.
pub fn http_options(args: &RunArgs) -> HttpOptions {
    HttpOptions {
        cors_origins: args.cors_origins.clone(),
        topology: TopologyConfig {
            crawl_every: Duration::from_secs(args.crawl_every.max(1)),
            max_nodes: args.crawl_max_nodes.max(1),
            max_workers: args.topology_max_workers,
            ..TopologyConfig::default()
        },
        limits: args.limits.http(),
    }
}

type State = (Option<persist::StateDir>, Option<persist::DirLock>, Option<persist::SavedState>, NodeId);

/// Locks and opens --data-dir, loads what it holds (a damaged file is moved
/// aside) and picks the node id: --node-id, else the saved one, else random.
fn load_state(args: &RunArgs) -> Result<State, String> {
    // Taken first: a second daemon must not even tidy or read the directory.
    let lock = args.data_dir.as_deref().map(persist::DirLock::acquire).transpose().map_err(|e| e.to_string())?;
    let dir = args.data_dir.as_ref().map(persist::StateDir::open).transpose().map_err(|e| e.to_string())?;
    let saved = match &dir {
        Some(d) => d.load_or_quarantine().map_err(|e| e.to_string())?,
        None => None,
    };
    let id = match (&args.node_id, &saved) {
        (Some(hex), saved) => {
            let id = NodeId::from_hex(hex).map_err(|e| format!("--node-id: {e}"))?;
            if let Some(s) = saved.as_ref().filter(|s| s.id != id) {
                return Err(format!(
                    "--node-id {id} differs from the id {} saved in --data-dir; drop --node-id or move the state file away",
                    s.id
                ));
            }
            id
        }
        (None, Some(s)) => s.id,
        (None, None) => NodeId::random(&mut rand::thread_rng()),
    };
    Ok((dir, lock, saved, id))
}

/// Fetches the bootstrap URL until it answers, backing off like seeds do;
/// gives up at once when other seeds exist (they are enough to join).
async fn fetch_until_ok(url: &str, have_seeds: bool, discovery: &Discovery) -> Vec<Seed> {
    let backoff = Backoff::default();
    let mut wait = backoff.initial;
    loop {
        let fetched = fetch_bootstrap_url(url, Duration::from_secs(10)).await;
        discovery.metrics().bootstrap_url_fetch(fetched.is_ok());
        match fetched {
            Ok(seeds) => return seeds,
            Err(e) if have_seeds => {
                tracing::warn!(error = %e, "bootstrap URL failed; using the other seeds");
                return Vec::new();
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_s = wait.as_secs_f64(), "bootstrap URL failed; this node is alone until it answers");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(backoff.max);
            }
        }
    }
}

/// Rejoins through saved contacts when there are any; else the seeds and
/// the bootstrap URL (a request to the edge router), in the background.
async fn join(
    node: &NodeHandle,
    saved: Option<persist::SavedState>,
    args: &RunArgs,
    discovery: &Discovery,
) -> Result<(), String> {
    if let Some(state) = saved {
        if persist::restore(node, state).await.map_err(|e| e.to_string())?.seeds_reached > 0 {
            tracing::info!("rejoined through saved contacts; seeds not needed");
            return Ok(());
        }
    }
    let mut seeds = Vec::new();
    for s in &args.seeds {
        seeds.push(Seed::parse(s).map_err(|e| format!("--seed / DHT_SEEDS: {e}"))?);
    }
    join_tunnel_seeds(node, &args.tunnel_seeds).await?;
    if seeds.is_empty() && args.bootstrap_url.is_none() {
        if !args.tunnel_seeds.is_empty() {
            return Ok(());
        }
        tracing::warn!("no seeds given: this node starts a new network (pass --seed host:port to join one)");
        return Ok(());
    }
    let (n, d, url) = (node.clone(), discovery.clone(), args.bootstrap_url.clone());
    tokio::spawn(async move {
        if let Some(url) = url {
            let more = fetch_until_ok(&url, !seeds.is_empty(), &d).await;
            seeds.extend(more);
        }
        if let Err(e) = bootstrap_with_retry(&n, &seeds, Backoff::default()).await {
            tracing::error!(error = %e, "bootstrap stopped");
            return;
        }
        kadmesh::node::keep_seeds_in_touch(&n, &seeds, kadmesh::node::SEED_RECHECK).await;
    });
    Ok(())
}

/// Bootstraps through the seeds given by tunnel URL, if any (once: a
/// failure is logged, and the UDP seeds, if any, are tried next).
async fn join_tunnel_seeds(node: &NodeHandle, urls: &[String]) -> Result<(), String> {
    let mut addrs = Vec::new();
    for url in urls {
        let addr = node.tunnel_addr(url.clone()).await.map_err(|e| e.to_string())?;
        addrs.push(addr.ok_or_else(|| format!("--tunnel-seed {url:?} is not a usable http(s) URL"))?);
    }
    if addrs.is_empty() {
        return Ok(());
    }
    match node.bootstrap(addrs).await {
        Ok(b) if b.seeds_reached > 0 => tracing::info!(table_size = b.table_size, "bootstrap through tunnel seeds"),
        Ok(_) => tracing::warn!("no tunnel seed answered"),
        Err(e) => tracing::warn!(error = %e, "bootstrap through tunnel seeds failed"),
    }
    Ok(())
}

async fn bind(args: &RunArgs) -> Result<(tokio::net::UdpSocket, Option<TcpListener>), String> {
    let addr = SocketAddr::new(args.bind, args.port);
    let socket = tokio::net::UdpSocket::bind(addr).await.map_err(|e| format!("cannot bind UDP {addr}: {e}"))?;
    let http = match args.no_http {
        true => None,
        false => Some(
            TcpListener::bind(args.http_bind).await.map_err(|e| format!("cannot bind HTTP {}: {e}", args.http_bind))?,
        ),
    };
    Ok((socket, http))
}

/// Runs the daemon until Ctrl-C or SIGTERM.
pub async fn run(args: RunArgs) -> Result<(), String> {
    if !(args.rpc_timeout > 0.0 && args.rpc_timeout < 3600.0) {
        return Err("--rpc-timeout must be between 0 and 3600 seconds".into());
    }
    let (state_dir, _lock, saved, id) = load_state(&args)?;
    let mut config = Config {
        rpc_timeout: Duration::from_secs_f64(args.rpc_timeout),
        rng_seed: rand::random(),
        store_limits: args.limits.store(),
        provider_limits: args.limits.providers(),
        limits: args.limits.limits()?,
        tunnel_url: args.public_url.clone().filter(|_| args.dht_over_http),
        get_copies: usize::from(args.get_copies),
        get_fresh_for: Duration::from_secs(args.get_fresh_for),
        lost_recheck_every: Duration::from_secs(args.lost_recheck_every),
        ..Config::default()
    };
    config.reach.mode = args.reachability.parse()?;
    let (socket, http) = bind(&args).await?;
    let options = NodeOptions {
        buffers: args.limits.buffers(),
        refuse_udp_requests: args.dht_over_http,
        ..NodeOptions::default()
    };
    let node = Node::spawn_with_options(socket, id, config, options).map_err(|e| e.to_string())?;
    let discovery = Discovery::new(node.clone(), discovery_config(&args)).map_err(|e| e.to_string())?;
    tracing::info!(id = %node.id(), addr = %node.local_addr(), "node listening");
    join(&node, saved, &args, &discovery).await?;
    let autosave = state_dir
        .clone()
        .map(|d| persist::spawn_autosave(node.clone(), d, Duration::from_secs(args.save_every.max(1))));
    let refresher = tokio::spawn(discovery.clone().run_refresher());
    let server = http.map(|listener| {
        let addr = listener.local_addr().map_or_else(|_| args.http_bind.to_string(), |a| a.to_string());
        tracing::info!(%addr, page = %format!("http://{addr}/"), "HTTP API listening");
        HttpServer::start(listener, discovery.clone(), http_options(&args))
    });
    let trim = tokio::spawn(async {
        tokio::time::sleep(crate::codepages::AFTER).await;
        // Not inside the macro: it skips its arguments when debug is off.
        let mappings = crate::codepages::drop_startup_code();
        tracing::debug!(mappings, "start-up code pages dropped");
    });
    let why = stop_signal().await?;
    trim.abort();
    tracing::info!(signal = why, "shutting down");
    if let Some(server) = server {
        server.stop().await;
    }
    discovery.shutdown();
    let _ = refresher.await;
    if let Some(a) = autosave {
        a.abort();
    }
    match &state_dir {
        Some(d) => persist::shutdown_saving(&node, d).await.map_err(|e| format!("state not saved: {e}"))?,
        None => node.shutdown().await,
    }
    Ok(())
}
