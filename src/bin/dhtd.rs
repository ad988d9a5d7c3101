//! `dhtd`: a Kademlia node daemon, wire-compatible with Python `kademlia`.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use kadmesh::engine::Config;
use kadmesh::id::NodeId;
use kadmesh::node::{bootstrap_with_retry, Backoff, Node};
use kadmesh::seeds::{fetch_bootstrap_url, Seed};

/// Run a DHT node on UDP (default port 8468) and join the network through
/// seeds given as host:port (hostnames allowed) or a bootstrap URL.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Args {
    /// UDP port to listen on.
    #[arg(long, default_value_t = 8468, env = "DHT_PORT")]
    port: u16,
    /// Address to bind (0.0.0.0 for all IPv4, :: for all IPv6).
    #[arg(long, default_value = "0.0.0.0", env = "DHT_BIND")]
    bind: IpAddr,
    /// A seed node, host:port; repeat for more. Also read from DHT_SEEDS (comma-separated).
    #[arg(long = "seed", value_name = "HOST:PORT")]
    seeds: Vec<String>,
    /// URL serving {"seeds": [{"host", "dht_port"}]} (the platform's /api/dht/bootstrap).
    #[arg(long, env = "DHT_BOOTSTRAP_URL")]
    bootstrap_url: Option<String>,
    /// Node id as 40 hex digits (default: random).
    #[arg(long)]
    node_id: Option<String>,
    /// RPC timeout in seconds.
    #[arg(long, default_value_t = 5.0)]
    rpc_timeout: f64,
    /// Log as JSON lines instead of human-readable text.
    #[arg(long)]
    log_json: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(args.log_json);
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("dhtd: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn seeds_from(args: &Args) -> Result<Vec<Seed>, String> {
    let mut seeds = Vec::new();
    for s in &args.seeds {
        seeds.push(Seed::parse(s).map_err(|e| e.to_string())?);
    }
    if let Ok(env) = std::env::var("DHT_SEEDS") {
        seeds.extend(Seed::parse_list(&env).map_err(|e| format!("DHT_SEEDS: {e}"))?);
    }
    if let Some(url) = &args.bootstrap_url {
        match fetch_bootstrap_url(url, Duration::from_secs(10)).await {
            Ok(more) => seeds.extend(more),
            Err(e) if !seeds.is_empty() => tracing::warn!(error = %e, "bootstrap URL failed; using the other seeds"),
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(seeds)
}

async fn run(args: Args) -> Result<(), String> {
    let id = match &args.node_id {
        Some(hex) => NodeId::from_hex(hex).map_err(|e| format!("--node-id: {e}"))?,
        None => NodeId::random(&mut rand::thread_rng()),
    };
    if !(args.rpc_timeout > 0.0 && args.rpc_timeout < 3600.0) {
        return Err("--rpc-timeout must be between 0 and 3600 seconds".into());
    }
    let config = Config {
        rpc_timeout: Duration::from_secs_f64(args.rpc_timeout),
        rng_seed: rand::random(),
        ..Config::default()
    };
    let seeds = seeds_from(&args).await?;
    let addr = SocketAddr::new(args.bind, args.port);
    let socket = tokio::net::UdpSocket::bind(addr).await.map_err(|e| format!("cannot bind UDP {addr}: {e}"))?;
    let node = Node::spawn(socket, id, config).map_err(|e| e.to_string())?;
    tracing::info!(id = %node.id(), addr = %node.local_addr(), "node listening");
    if seeds.is_empty() {
        tracing::warn!("no seeds given: this node starts a new network (pass --seed host:port to join one)");
    } else {
        let n = node.clone();
        tokio::spawn(async move {
            if let Err(e) = bootstrap_with_retry(&n, &seeds, Backoff::default()).await {
                tracing::error!(error = %e, "bootstrap stopped");
            }
        });
    }
    tokio::signal::ctrl_c().await.map_err(|e| format!("cannot wait for Ctrl-C: {e}"))?;
    tracing::info!("shutting down");
    node.shutdown().await;
    Ok(())
}
