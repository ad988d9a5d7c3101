//! The built binaries without UDP (issue 15): `dhtd --no-udp --relay URL`
//! joins, registers a worker and reports `no-udp`; `dhtctl --via URL` puts
//! and gets; `dhtd --no-udp` alone refuses to start. A loopback network of
//! four UDP nodes and an in-process relay with HTTP.

#[path = "support/process.rs"]
mod support;

use std::time::Duration;

use kadmesh::discovery::input::DiscoverFilter;
use kadmesh::discovery::testnet::Testnet;
use kadmesh::discovery::{Discovery, DiscoveryConfig};
use kadmesh::engine::Config;
use kadmesh::id::NodeId;
use kadmesh::node::{Node, NodeHandle};
use kadmesh::wire::Value;
use serde_json::{json, Value as Json};
use support::Dhtd;
use tokio::net::TcpListener;

/// Four UDP nodes and a relay serving HTTP (five in all); the relay's URL.
async fn network() -> (Testnet, NodeHandle, String, tokio::sync::oneshot::Sender<()>) {
    let quiet = DiscoveryConfig { cache_ttl: Duration::ZERO, ..DiscoveryConfig::default() };
    let net = Testnet::start(4, 0, Config::default(), quiet).await.unwrap();
    let relay = Node::bind("127.0.0.1:0".parse().unwrap(), Config::default()).await.unwrap();
    assert_eq!(relay.bootstrap(vec![net.addr(0).unwrap()]).await.unwrap().seeds_reached, 1);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let d = Discovery::new(relay.clone(), DiscoveryConfig::default()).unwrap();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(kadmesh::http::serve(listener, d, async {
        let _ = rx.await;
    }));
    (net, relay, url, stop)
}

async fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port()
}

/// GETs `url` until `check` holds on its JSON (every 200 ms, at most 20 s).
async fn poll_json(url: &str, what: &str, check: impl Fn(&Json) -> bool) -> Json {
    for _ in 0..100 {
        if let Ok(r) = reqwest::get(url).await {
            if let Ok(j) = r.json::<Json>().await {
                if check(&j) {
                    return j;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out waiting until {what} at {url}");
}

async fn dhtctl(args: Vec<String>) -> (i32, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_dhtctl"));
    for var in ["DHT_SEEDS", "DHT_BOOTSTRAP_URL", "DHT_HTTP_URL", "DHT_VIA", "DHTCTL_LOG"] {
        cmd.env_remove(var);
    }
    cmd.args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dhtd_without_udp_joins_and_registers_through_a_relay_and_dhtctl_via_puts_and_gets() {
    let (net, relay, relay_url, _stop) = network().await;
    let port = free_port().await;
    let http = format!("127.0.0.1:{port}");
    let _dhtd = Dhtd::start(&["--no-udp", "--relay", &relay_url, "--http-bind", &http], &[]);
    let base = format!("http://{http}");
    let health = poll_json(&format!("{base}/health"), "the node without UDP has peers", |j| {
        j["peers"].as_u64().unwrap_or(0) >= 3
    })
    .await;
    assert_eq!(health["reachability"]["state"], "no-udp", "{health}");
    assert_eq!(health["reachability"]["client"], true, "{health}");
    assert_eq!(health["dht_port"], 0, "{health}");

    let worker = json!({"worker_id": "bin-worker", "tunnel_url": "https://bin-worker.example-tunnel.net",
                        "services": ["ocr"], "capabilities": {}});
    let r = reqwest::Client::new().post(format!("{base}/api/worker/register")).json(&worker).send().await.unwrap();
    assert!(r.status().is_success(), "{:?}", r.text().await);
    let seen = net.nodes[2].clone();
    let mut found = false;
    for _ in 0..50 {
        let a = seen.discover("ocr", &DiscoverFilter::default()).await;
        if a.is_ok_and(|a| a.to_json(0.0, Duration::from_secs(300)).to_string().contains("bin-worker")) {
            found = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(found, "a UDP node never discovered the worker registered without UDP");

    let via = |cmd: &[&str]| {
        let mut a = vec!["--via".to_owned(), relay_url.clone(), "--timeout".into(), "20".into()];
        a.extend(cmd.iter().map(|s| s.to_string()));
        a
    };
    let (code, out, err) = dhtctl(via(&["put", "via-key", "via-value", "--json"])).await;
    assert_eq!(code, 0, "{out}{err}");
    // The relay alone is a URL contact; the other copies went through it over UDP.
    let stored = serde_json::from_str::<Json>(&out).unwrap()["stored"].as_u64().unwrap_or(0);
    assert!(stored >= 3, "stored at only {stored} nodes: {out}");
    let got = net.nodes[1].node().get(NodeId::for_key("via-key")).await.unwrap();
    assert_eq!(got.value, Some(Value::Str("via-value".into())), "{got:?}");
    let (code, out, err) = dhtctl(via(&["get", "via-key"])).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("via-value"), "{out}{err}");
    assert!(relay.relay_stats().get(kadmesh::node::RelayResult::Answered) >= 3);
    net.shutdown().await;
}

#[test]
fn dhtd_without_udp_and_without_a_relay_refuses_to_start() {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_dhtd"));
    cmd.args(["--no-udp", "--no-http"]).env_remove("DHT_RELAYS").env_remove("DHT_CONFIG");
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("--no-udp needs at least one --relay"), "{err}");
}
