//! `dhtd demo`: a local network in this process for a first look. Node 0
//! serves the HTTP surface and the page; the sample workers register through
//! the other nodes (so answers cross the DHT), heartbeat every few seconds,
//! visiting workers come and go, and a trickle of discover lookups runs.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use clap::Args;
use kadmesh::discovery::testnet::Testnet;
use kadmesh::discovery::{demo, DiscoveryConfig};
use kadmesh::engine::Config;
use kadmesh::http::{HttpOptions, TopologyConfig};
use tokio::net::TcpListener;

use crate::server::{stop_signal, HttpServer};

/// Options of `dhtd demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Nodes to start.
    #[arg(long, default_value_t = 8)]
    pub nodes: usize,
    /// HTTP port on 127.0.0.1 (another is chosen when it is busy; 0: any).
    #[arg(long, default_value_t = 8080)]
    pub http_port: u16,
    /// UDP port of the first node (another is chosen when it is busy; 0: any).
    #[arg(long, default_value_t = 8468)]
    pub udp_port: u16,
    /// Seconds between a visiting worker joining and the previous one
    /// leaving (0: no visitors).
    #[arg(long, default_value_t = 15)]
    pub churn_every: u64,
    /// Seconds between sample workers' heartbeats.
    #[arg(long, default_value_t = 10)]
    pub heartbeat_every: u64,
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

/// Runs the demo until Ctrl-C or SIGTERM.
pub async fn run(args: DemoArgs) -> Result<(), String> {
    if !(1..=1000).contains(&args.nodes) {
        return Err("--nodes must be 1 to 1000".into());
    }
    let config = Config { rng_seed: rand::random(), ..Config::default() };
    let cfg = DiscoveryConfig { cache_ttl: Duration::from_secs(2), ..DiscoveryConfig::default() };
    let listener = bind_http(args.http_port).await?;
    let http = listener.local_addr().map_err(|e| e.to_string())?;
    // The page's address first: it is what a newcomer opens.
    println!("kadmesh demo: open http://{http}/ to watch the network (starting {} nodes...)", args.nodes);
    let net = Testnet::start(args.nodes, args.udp_port, config, cfg).await.map_err(|e| e.to_string())?;
    let workers = demo::sample_workers();
    let others = if net.nodes.len() > 1 { net.nodes[1..].to_vec() } else { net.nodes.clone() };
    demo::register_samples(&others, &workers).await.map_err(|e| e.to_string())?;
    let beat = Duration::from_secs(args.heartbeat_every.max(1));
    let mut tasks = vec![
        tokio::spawn(demo::keep_alive(others.clone(), workers.clone(), beat)),
        tokio::spawn(demo::lookups(net.nodes[0].clone(), Duration::from_millis(500))),
    ];
    if args.churn_every > 0 {
        tasks.push(tokio::spawn(demo::churn(others, Duration::from_secs(args.churn_every))));
    }
    let topology = TopologyConfig { crawl_every: Duration::from_secs(3), ..TopologyConfig::default() };
    let server = HttpServer::start(listener, net.nodes[0].clone(), HttpOptions { topology, ..HttpOptions::default() });
    let udp = net.addr(0).map_or(0, |a| a.port());
    print_banner(http, udp, args.nodes, workers.len());
    let why = stop_signal().await?;
    eprintln!("dhtd demo: {why}, stopping");
    server.stop().await;
    for t in tasks {
        t.abort();
    }
    net.shutdown().await;
    Ok(())
}

fn print_banner(http: SocketAddr, udp: u16, nodes: usize, workers: usize) {
    let base = format!("http://{http}");
    println!(
        "{nodes} DHT nodes on 127.0.0.1 (first on UDP {udp}), {workers} sample workers, visitors coming and going"
    );
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
        format!("curl -s -X DELETE {base}/api/worker/unregister/my-worker"),
        format!("curl -s {base}/api/dht/topology"),
        format!("curl -s {base}/metrics"),
        format!("target/release/dhtctl --seed 127.0.0.1:{udp} lookup ocr"),
        format!("target/release/dhtctl --seed 127.0.0.1:{udp} crawl"),
    ] {
        println!("  {line}");
    }
    println!("\nJoin with another node: target/release/dhtd --port 0 --seed 127.0.0.1:{udp} --http-bind 127.0.0.1:0");
    println!("Ctrl-C to stop.");
}
