//! `dhtd`: a Kademlia node daemon, wire-compatible with Python `kademlia`,
//! serving the platform coordinator's HTTP routes from the DHT.
//!
//! `dhtd` runs one node (UDP, default port 8468) with its HTTP surface
//! (default 0.0.0.0:8080); `dhtd demo` starts a small local network with
//! sample workers and prints curl lines to try. Both stop on Ctrl-C or
//! SIGTERM.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use kadmesh::discovery::testnet::Testnet;
use kadmesh::discovery::{demo, Discovery, DiscoveryConfig};
use kadmesh::engine::Config;
use kadmesh::id::NodeId;
use kadmesh::node::{bootstrap_with_retry, Backoff, Node, NodeHandle};
use kadmesh::persist;
use kadmesh::seeds::{fetch_bootstrap_url, Seed};
use tokio::net::TcpListener;

/// Run a DHT node on UDP (default port 8468) and join the network through
/// seeds given as host:port (hostnames allowed) or a bootstrap URL; serve the
/// coordinator's HTTP routes (register, heartbeat, discover, ...) from it.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start a local network of nodes in this process, register sample
    /// workers, serve HTTP on 127.0.0.1:8080 and print curl lines to try.
    Demo(DemoArgs),
}

#[derive(Args, Debug)]
struct DemoArgs {
    /// Nodes to start.
    #[arg(long, default_value_t = 8)]
    nodes: usize,
    /// HTTP port on 127.0.0.1 (another is chosen when it is busy).
    #[arg(long, default_value_t = 8080)]
    http_port: u16,
    /// UDP port of the first node (another is chosen when it is busy).
    #[arg(long, default_value_t = 8468)]
    udp_port: u16,
}

#[derive(Args, Debug)]
struct RunArgs {
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
    /// Node id as 40 hex digits (default: the saved one with --data-dir, else random).
    #[arg(long)]
    node_id: Option<String>,
    /// Directory for this node's state (id, contacts, records): restored at start,
    /// saved every --save-every seconds and on shutdown.
    #[arg(long, env = "DHT_DATA_DIR")]
    data_dir: Option<std::path::PathBuf>,
    /// Seconds between state saves (with --data-dir).
    #[arg(long, default_value_t = 300)]
    save_every: u64,
    /// RPC timeout in seconds.
    #[arg(long, default_value_t = 5.0)]
    rpc_timeout: f64,
    /// Address of the HTTP API (the coordinator's routes).
    #[arg(long, default_value = "0.0.0.0:8080", env = "DHT_HTTP_BIND")]
    http_bind: SocketAddr,
    /// Do not serve HTTP (a pure DHT node).
    #[arg(long)]
    no_http: bool,
    /// Coordinator to answer discover requests the DHT cannot (e.g. https://coord.example.net).
    #[arg(long, env = "COORDINATOR_URL")]
    coordinator_url: Option<String>,
    /// Seconds a worker stays healthy after its last heartbeat.
    #[arg(long, default_value_t = 300, env = "WORKER_TTL")]
    worker_ttl: u64,
    /// Seconds between re-writes of registered workers' records.
    #[arg(long, default_value_t = 120)]
    refresh_interval: u64,
    /// Seconds of silence after which a registered worker is dropped.
    #[arg(long, default_value_t = 600)]
    stale_after: u64,
    /// Seconds discover answers are cached (0 disables).
    #[arg(long, default_value_t = 1)]
    cache_ttl: u64,
    /// Host name or IP other nodes reach this node's UDP port at (for /api/dht/bootstrap).
    #[arg(long, env = "DHT_PUBLIC_HOST")]
    public_host: Option<String>,
    /// This node's public HTTP URL (shown as its tunnel_url).
    #[arg(long, env = "DHT_PUBLIC_URL")]
    public_url: Option<String>,
    /// Log as JSON lines instead of human-readable text.
    #[arg(long)]
    log_json: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.run.log_json);
    let result = match cli.command {
        Some(Command::Demo(args)) => run_demo(args).await,
        None => run(cli.run).await,
    };
    match result {
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

/// Waits for Ctrl-C or (on Unix) SIGTERM; returns which.
async fn stop_signal() -> Result<&'static str, String> {
    let ctrl_c = async { tokio::signal::ctrl_c().await.map(|_| "Ctrl-C") };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).map_err(|e| format!("cannot wait for SIGTERM: {e}"))?;
        tokio::select! {
            r = ctrl_c => r.map_err(|e| format!("cannot wait for Ctrl-C: {e}")),
            _ = term.recv() => Ok("SIGTERM"),
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await.map_err(|e| format!("cannot wait for Ctrl-C: {e}"))
}

async fn seeds_from(args: &RunArgs, discovery: &Discovery) -> Result<Vec<Seed>, String> {
    let mut seeds = Vec::new();
    for s in &args.seeds {
        seeds.push(Seed::parse(s).map_err(|e| e.to_string())?);
    }
    if let Ok(env) = std::env::var("DHT_SEEDS") {
        seeds.extend(Seed::parse_list(&env).map_err(|e| format!("DHT_SEEDS: {e}"))?);
    }
    if let Some(url) = &args.bootstrap_url {
        let fetched = fetch_bootstrap_url(url, Duration::from_secs(10)).await;
        discovery.metrics().bootstrap_url_fetch(fetched.is_ok());
        match fetched {
            Ok(more) => seeds.extend(more),
            Err(e) if !seeds.is_empty() => tracing::warn!(error = %e, "bootstrap URL failed; using the other seeds"),
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(seeds)
}

fn discovery_config(args: &RunArgs) -> DiscoveryConfig {
    DiscoveryConfig {
        worker_ttl: Duration::from_secs(args.worker_ttl),
        refresh_interval: Duration::from_secs(args.refresh_interval),
        stale_after: Duration::from_secs(args.stale_after),
        cache_ttl: Duration::from_secs(args.cache_ttl),
        coordinator_url: args.coordinator_url.clone(),
        public_host: args.public_host.clone(),
        public_url: args.public_url.clone(),
        ..DiscoveryConfig::default()
    }
}

/// Opens --data-dir, loads what it holds (a damaged file is moved aside) and
/// picks the node id: --node-id, else the saved one, else a random one.
fn load_state(args: &RunArgs) -> Result<(Option<persist::StateDir>, Option<persist::SavedState>, NodeId), String> {
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
    Ok((dir, saved, id))
}

/// Rejoins through saved contacts when there are any; the seeds (and the
/// bootstrap URL, a request to the edge router) only when those reach nobody.
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
    let seeds = seeds_from(args, discovery).await?;
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
    Ok(())
}

async fn run(args: RunArgs) -> Result<(), String> {
    let (state_dir, saved, id) = load_state(&args)?;
    if !(args.rpc_timeout > 0.0 && args.rpc_timeout < 3600.0) {
        return Err("--rpc-timeout must be between 0 and 3600 seconds".into());
    }
    let config = Config {
        rpc_timeout: Duration::from_secs_f64(args.rpc_timeout),
        rng_seed: rand::random(),
        ..Config::default()
    };
    let addr = SocketAddr::new(args.bind, args.port);
    let socket = tokio::net::UdpSocket::bind(addr).await.map_err(|e| format!("cannot bind UDP {addr}: {e}"))?;
    let http = match args.no_http {
        true => None,
        false => Some(
            TcpListener::bind(args.http_bind).await.map_err(|e| format!("cannot bind HTTP {}: {e}", args.http_bind))?,
        ),
    };
    let node = Node::spawn(socket, id, config).map_err(|e| e.to_string())?;
    let discovery = Discovery::new(node.clone(), discovery_config(&args)).map_err(|e| e.to_string())?;
    tracing::info!(id = %node.id(), addr = %node.local_addr(), "node listening");
    join(&node, saved, &args, &discovery).await?;
    let autosave = state_dir
        .clone()
        .map(|d| persist::spawn_autosave(node.clone(), d, Duration::from_secs(args.save_every.max(1))));
    let refresher = tokio::spawn(discovery.clone().run_refresher());
    let server = http.map(|listener| {
        let addr = listener.local_addr().map_or_else(|_| args.http_bind.to_string(), |a| a.to_string());
        tracing::info!(%addr, "HTTP API listening");
        HttpServer::start(listener, discovery.clone())
    });
    let why = stop_signal().await?;
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

/// The HTTP API running in its own task until [`HttpServer::stop`].
struct HttpServer {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl HttpServer {
    fn start(listener: TcpListener, discovery: Discovery) -> HttpServer {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(kadmesh::http::serve(listener, discovery, async {
            let _ = stopped.await;
        }));
        HttpServer { stop, task }
    }

    /// Stops accepting, lets requests in progress finish, and waits.
    async fn stop(self) {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(Err(e)) => tracing::warn!(error = %e, "HTTP server failed"),
            Err(e) => tracing::warn!(error = %e, "HTTP server task failed"),
            Ok(Ok(())) => {}
        }
    }
}

async fn bind_http(port: u16) -> Result<TcpListener, String> {
    let at = |p: u16| SocketAddr::from((Ipv4Addr::LOCALHOST, p));
    match TcpListener::bind(at(port)).await {
        Ok(l) => Ok(l),
        Err(e) => {
            tracing::warn!(port, error = %e, "HTTP port busy; using another");
            TcpListener::bind(at(0)).await.map_err(|e| format!("cannot bind HTTP on 127.0.0.1: {e}"))
        }
    }
}

async fn run_demo(args: DemoArgs) -> Result<(), String> {
    if !(1..=64).contains(&args.nodes) {
        return Err("--nodes must be 1 to 64".into());
    }
    let config = Config { rng_seed: rand::random(), ..Config::default() };
    let cfg = DiscoveryConfig { cache_ttl: Duration::from_secs(2), ..DiscoveryConfig::default() };
    let net = Testnet::start(args.nodes, args.udp_port, config, cfg).await.map_err(|e| e.to_string())?;
    let workers = demo::sample_workers();
    // Registered through the other nodes, so answers on node 0 cross the DHT.
    let others = if net.nodes.len() > 1 { &net.nodes[1..] } else { &net.nodes[..] };
    demo::register_samples(others, &workers).await.map_err(|e| e.to_string())?;
    let keep = tokio::spawn(demo::keep_alive(others.to_vec(), workers.clone(), Duration::from_secs(30)));
    let listener = bind_http(args.http_port).await?;
    let http = listener.local_addr().map_err(|e| e.to_string())?;
    let server = HttpServer::start(listener, net.nodes[0].clone());
    let udp = net.addr(0).map_or(0, |a| a.port());
    print_banner(http, udp, args.nodes, workers.len());
    let why = stop_signal().await?;
    eprintln!("dhtd demo: {why}, stopping");
    server.stop().await;
    keep.abort();
    net.shutdown().await;
    Ok(())
}

fn print_banner(http: SocketAddr, udp: u16, nodes: usize, workers: usize) {
    let base = format!("http://{http}");
    println!("kadmesh demo: {nodes} DHT nodes on 127.0.0.1 (first on UDP {udp}), {workers} sample workers");
    println!("HTTP API on {base} (node 0; the workers registered through the other nodes)\n");
    println!("Try:");
    for line in [
        format!("curl -s {base}/health"),
        format!("curl -s {base}/api/services/list"),
        format!("curl -s {base}/api/services/discover/ocr"),
        format!("curl -s '{base}/api/services/discover/llm-inference?gpu=true&min_memory=16'"),
        format!(
            "curl -s -X POST {base}/api/worker/register -H 'Content-Type: application/json' -d \
             '{{\"worker_id\": \"my-worker\", \"tunnel_url\": \"https://my-worker.example-tunnel.net\", \
             \"capabilities\": {{\"has_gpu\": false}}, \"services\": [\"ocr\"]}}'"
        ),
        format!(
            "curl -s -X POST {base}/api/worker/heartbeat -H 'Content-Type: application/json' -d \
             '{{\"worker_id\": \"my-worker\", \"status\": \"healthy\", \"current_load\": 0.05}}'"
        ),
        format!("curl -s -X DELETE {base}/api/worker/unregister/my-worker"),
        format!("curl -s {base}/api/dht/bootstrap"),
        format!("curl -s {base}/api/dht/topology"),
        format!("curl -s {base}/metrics"),
    ] {
        println!("  {line}");
    }
    println!("\nJoin with another node: cargo run --release --bin dhtd -- --port 0 --seed 127.0.0.1:{udp} --http-bind 127.0.0.1:0");
    println!("Ctrl-C to stop.");
}
