//! The daemon: lock and load the data directory, bind, join the network in
//! the background (every seed source in order, the edge router last, all
//! retried with backoff, never fatal), serve HTTP, and save state on the way
//! out.

use std::net::SocketAddr;
use std::time::Duration;

use kadmesh::discovery::{Discovery, DiscoveryConfig};
use kadmesh::engine::Config;
use kadmesh::http::{HttpOptions, TopologyConfig};
use kadmesh::id::NodeId;
use kadmesh::node::{join_in_order, Backoff, JoinEvent, Node, NodeHandle, NodeOptions, SeedSources};
use kadmesh::persist;
use kadmesh::seed_order::SeedSource;
use kadmesh::seeds::Seed;
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

/// The seed sources the options name, with the seeds kept in --data-dir.
fn seed_sources(args: &RunArgs, dir: Option<&persist::StateDir>) -> Result<SeedSources, String> {
    let parse = |list: &[String], what: &str| -> Result<Vec<Seed>, String> {
        list.iter().map(|s| Seed::parse(s).map_err(|e| format!("{what}: {e}"))).collect()
    };
    let learned = match dir {
        Some(d) => d.load_learned().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "learned seeds not read; starting without them");
            Default::default()
        }),
        None => Default::default(),
    };
    Ok(SeedSources {
        configured: parse(&args.seeds, "--seed / DHT_SEEDS")?,
        bootstrap_url: args.bootstrap_url.clone(),
        learned,
        dns: parse(&args.seed_dns, "--seed-dns / DHT_SEED_DNS")?,
        seed_lists: args.seed_lists.clone(),
        edge_url: args.edge_url.clone(),
    })
}

/// Rejoins through saved contacts when there are any; else every other seed
/// source in order (the edge router last), in the background.
async fn join(
    node: &NodeHandle,
    saved: Option<persist::SavedState>,
    args: &RunArgs,
    discovery: &Discovery,
    dir: Option<persist::StateDir>,
) -> Result<(), String> {
    let mut sources = seed_sources(args, dir.as_ref())?;
    if let Some(state) = saved {
        if persist::restore(node, state).await.map_err(|e| e.to_string())?.seeds_reached > 0 {
            discovery.metrics().joins.joined(SeedSource::Saved);
            tracing::info!(source = "saved", "rejoined through saved contacts; seeds not needed");
            return Ok(());
        }
    }
    let mut tunnel_seeds = args.tunnel_seeds.clone();
    if args.no_udp {
        // The relays are kadmesh nodes serving /api/dht/rpc: the first contacts.
        tunnel_seeds.extend(args.relays.iter().cloned());
    }
    join_tunnel_seeds(node, &tunnel_seeds).await?;
    if sources.is_empty() {
        if tunnel_seeds.is_empty() {
            tracing::warn!("no seeds given: this node starts a new network (pass --seed host:port to join one)");
        }
        return Ok(());
    }
    let (n, d) = (node.clone(), discovery.clone());
    tokio::spawn(async move {
        let counts = |e| {
            if let JoinEvent::Fetched { source: SeedSource::Configured, ok } = e {
                d.metrics().bootstrap_url_fetch(ok);
            }
            d.metrics().joins.record(e);
        };
        let joined = match join_in_order(&n, &mut sources, Backoff::default(), counts).await {
            Ok(Some(j)) => j,
            Ok(None) => return,
            Err(e) => return tracing::error!(error = %e, "bootstrap stopped"),
        };
        if let Some(dir) = &dir {
            if let Err(e) = dir.save_learned(&sources.learned) {
                tracing::warn!(error = %e, "learned seeds not saved");
            }
        }
        d.metrics().joins.joined(joined.source);
        kadmesh::node::keep_seeds_in_touch(&n, &joined.seeds, kadmesh::node::SEED_RECHECK).await;
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

async fn bind(args: &RunArgs) -> Result<(Option<tokio::net::UdpSocket>, Option<TcpListener>), String> {
    let addr = SocketAddr::new(args.bind, args.port);
    let socket = match args.no_udp {
        true => None,
        false => Some(tokio::net::UdpSocket::bind(addr).await.map_err(|e| format!("cannot bind UDP {addr}: {e}"))?),
    };
    let http = match args.no_http {
        true => None,
        false => Some(
            TcpListener::bind(args.http_bind).await.map_err(|e| format!("cannot bind HTTP {}: {e}", args.http_bind))?,
        ),
    };
    Ok((socket, http))
}

/// A node without UDP needs usable relay URLs (it could reach URL
/// contacts alone, but none would tell it of UDP ones it can use).
fn check_relays(relays: &[String]) -> Result<(), String> {
    if relays.is_empty() {
        return Err("--no-udp needs at least one --relay URL (a kadmesh node with HTTP)".into());
    }
    match relays.iter().find(|u| kadmesh::tunnel::normalize_url(u).is_none()) {
        Some(bad) => Err(format!("--relay {bad:?} is not a usable http(s) URL")),
        None => Ok(()),
    }
}

/// Starts the node on its UDP socket, or with none (`--no-udp`).
fn spawn_node(
    args: &RunArgs,
    socket: Option<tokio::net::UdpSocket>,
    id: NodeId,
    config: Config,
) -> Result<NodeHandle, String> {
    let options = NodeOptions {
        buffers: args.limits.buffers(),
        refuse_udp_requests: args.dht_over_http,
        relays: args.relays.clone(),
        ..NodeOptions::default()
    };
    let node = match socket {
        Some(socket) => Node::spawn_with_options(socket, id, config, options),
        None => {
            check_relays(&args.relays)?;
            Node::spawn_without_udp(id, config, options)
        }
    };
    node.map_err(|e| e.to_string())
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
    let node = spawn_node(&args, socket, id, config)?;
    let discovery = Discovery::new(node.clone(), discovery_config(&args)).map_err(|e| e.to_string())?;
    tracing::info!(id = %node.id(), addr = %node.local_addr(), "node listening");
    join(&node, saved, &args, &discovery, state_dir.clone()).await?;
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
