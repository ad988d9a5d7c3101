//! `dhtd health`: the container's HEALTHCHECK without curl. It reads the
//! same settings as the daemon (so `DHT_HTTP_BIND` in the image is enough),
//! asks `/health/live` (the process answers) or, with `--ready`, `/health`
//! (it has DHT peers), and exits 0 or 1 with one line.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use clap::Args;

use crate::options::RunArgs;

/// Options of `dhtd health`.
#[derive(Args, Debug)]
pub struct HealthArgs {
    /// Check readiness (joined a network) instead of liveness.
    #[arg(long)]
    pub ready: bool,
    /// Base URL to ask instead of the one --http-bind implies.
    #[arg(long)]
    pub url: Option<String>,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 3.0)]
    pub timeout: f64,
    #[command(flatten)]
    pub run: RunArgs,
}

/// Where a client on this machine reaches a server bound to `bind`.
fn local_url(bind: SocketAddr) -> String {
    let ip = match bind.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, bind.port()))
}

/// Probes the daemon; `Ok` when it answered 200.
pub async fn run(args: HealthArgs) -> Result<(), String> {
    let base = args.url.clone().unwrap_or_else(|| local_url(args.run.http_bind));
    let path = if args.ready { "/health" } else { "/health/live" };
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let timeout = Duration::try_from_secs_f64(args.timeout).map_err(|_| "--timeout must be positive".to_owned())?;
    let client = reqwest::Client::builder().timeout(timeout).build().map_err(|e| e.to_string())?;
    let resp = client.get(&url).send().await.map_err(|e| format!("{url}: {e}"))?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    if status.is_success() {
        println!("{url}: {}", body["status"].as_str().unwrap_or("ok"));
        return Ok(());
    }
    let reason = body["reason"].as_str().unwrap_or("no reason given");
    Err(format!("{url}: HTTP {status}: {reason}"))
}
