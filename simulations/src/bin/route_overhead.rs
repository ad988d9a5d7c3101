//! `route_overhead`: what `POST /api/services/route/{service_type}` costs
//! over calling the worker directly, on loopback.
//!
//! One stand-in worker (an axum echo of `POST /service/{svc}`) and two small
//! kadmesh networks in this process, each with the HTTP surface on every
//! node; the worker is registered through the last node of each and requests
//! are routed through the first. One network has a 10 s discover cache,
//! so a routed request is a cache hit plus the forwarding; the
//! other has no cache, so every routed request also reads the provider sets
//! and the worker record over the DHT (UDP on loopback). Requests go one at a
//! time, the three kinds in rotating order, over one keep-alive client; the
//! table gives nearest-rank percentiles in microseconds and the overhead
//! (routed minus direct) at p50 and p99. The run stops at `--requests` or
//! `--max-wall-secs`, whichever comes first.
//!
//! `cargo run --release -p simulations --bin route_overhead -- --requests 2000`

use std::process::ExitCode;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::Path;
use axum::routing::post;
use axum::Router;
use clap::Parser;
use kadmesh::discovery::testnet::Testnet;
use kadmesh::discovery::DiscoveryConfig;
use kadmesh::engine::Config;
use simulations::metrics::Samples;
use tokio::net::TcpListener;
use tokio::time::Instant;

/// Routed versus direct request latency on loopback.
#[derive(Parser, Debug)]
#[command(
    version,
    about = "Latency of routing a request through a kadmesh node versus calling the worker directly, on loopback"
)]
struct Args {
    /// Measured requests of each kind.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Unmeasured requests of each kind first (connections, caches).
    #[arg(long, default_value_t = 200)]
    warmup: usize,
    /// Request body size, bytes.
    #[arg(long, default_value_t = 256)]
    body_bytes: usize,
    /// Nodes in each network.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Longest the measured part may run, seconds.
    #[arg(long, default_value_t = 120)]
    max_wall_secs: u64,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

async fn echo(Path(svc): Path<String>, body: Bytes) -> String {
    format!("{svc}:{}", body.len())
}

/// Serves `app` on a fresh loopback port; returns its base URL.
async fn serve(app: Router) -> Result<String, std::io::Error> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

/// A network whose last node has the worker registered; returns the URL to
/// route through (its first node's route for service `ocr`).
async fn network(
    nodes: usize,
    cache: Duration,
    worker: &str,
    http: &reqwest::Client,
) -> Result<(Testnet, String), String> {
    let cfg = DiscoveryConfig { cache_ttl: cache, ..DiscoveryConfig::default() };
    let net = Testnet::start(nodes, 0, Config::default(), cfg).await.map_err(|e| e.to_string())?;
    let mut urls = Vec::new();
    for d in &net.nodes {
        urls.push(serve(kadmesh::http::router(d.clone())).await.map_err(|e| e.to_string())?);
    }
    let last = urls.last().ok_or("no nodes")?;
    let reg = serde_json::json!({"worker_id": "w-bench", "tunnel_url": worker, "services": ["ocr"]});
    let r = http.post(format!("{last}/api/worker/register")).json(&reg).send().await.map_err(|e| e.to_string())?;
    if !r.status().is_success() {
        return Err(format!("registration answered {}", r.status()));
    }
    Ok((net, format!("{}/api/services/route/ocr", urls[0])))
}

/// One POST; its latency in microseconds, or why it failed.
async fn timed(http: &reqwest::Client, url: &str, body: &Bytes) -> Result<f64, String> {
    let started = Instant::now();
    let r = http.post(url).body(body.clone()).send().await.map_err(|e| e.to_string())?;
    let status = r.status();
    r.bytes().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{url} answered {status}"));
    }
    Ok(started.elapsed().as_secs_f64() * 1e6)
}

fn row(name: &str, s: &mut Samples, direct: Option<(f64, f64)>) -> String {
    let (p50, p99) = (s.percentile(50.0), s.percentile(99.0));
    let over = direct.map_or("-".to_owned(), |(d50, d99)| format!("{:+.0} / {:+.0}", p50 - d50, p99 - d99));
    format!(
        "| {name} | {} | {p50:.0} | {:.0} | {p99:.0} | {:.0} | {:.0} | {over} |",
        s.len(),
        s.percentile(90.0),
        s.max(),
        s.mean()
    )
}

async fn run(args: Args) -> Result<(), String> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().map_err(|e| e.to_string())?;
    let worker = serve(Router::new().route("/service/:svc", post(echo))).await.map_err(|e| e.to_string())?;
    let (cached_net, cached) = network(args.nodes, Duration::from_secs(10), &worker, &http).await?;
    let (uncached_net, uncached) = network(args.nodes, Duration::ZERO, &worker, &http).await?;
    let urls = [format!("{worker}/service/ocr"), cached, uncached];
    let body = Bytes::from(vec![b'x'; args.body_bytes]);
    let mut samples = [Samples::default(), Samples::default(), Samples::default()];
    for _ in 0..args.warmup {
        for url in &urls {
            timed(&http, url, &body).await?;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(args.max_wall_secs);
    for i in 0..args.requests {
        if Instant::now() > deadline {
            eprintln!("stopped at {i} requests of each kind: --max-wall-secs reached");
            break;
        }
        for k in 0..3 {
            let kind = (i + k) % 3;
            samples[kind].push(timed(&http, &urls[kind], &body).await?);
        }
    }
    let [mut direct, mut hit, mut miss] = samples;
    let d = (direct.percentile(50.0), direct.percentile(99.0));
    println!("body {} bytes, {} nodes per network, one request at a time, microseconds", args.body_bytes, args.nodes);
    println!();
    println!("| path | requests | p50 | p90 | p99 | max | mean | overhead p50 / p99 |");
    println!("|---|---|---|---|---|---|---|---|");
    println!("{}", row("direct POST {tunnel_url}/service/ocr", &mut direct, None));
    println!("{}", row("routed, discover cache hit", &mut hit, Some(d)));
    println!("{}", row("routed, no cache (DHT read each time)", &mut miss, Some(d)));
    cached_net.shutdown().await;
    uncached_net.shutdown().await;
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads.max(1)).enable_all().build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("route_overhead: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("route_overhead: {e}");
            ExitCode::FAILURE
        }
    }
}
