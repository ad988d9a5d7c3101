//! The topology that tells the truth, health that says ready or not, CORS,
//! the live stream and the page's assets, over real loopback sockets.

use std::time::Duration;

use kadmesh::discovery::testnet::Testnet;
use kadmesh::discovery::{Discovery, DiscoveryConfig};
use kadmesh::engine::Config;
use kadmesh::http::{HttpOptions, TopologyConfig};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

async fn serve(d: Discovery, options: HttpOptions) -> (String, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(kadmesh::http::serve_with(listener, d, options, async {
        let _ = rx.await;
    }));
    (url, tx)
}

fn quick_crawls() -> HttpOptions {
    let topology = TopologyConfig { crawl_every: Duration::from_millis(300), ..TopologyConfig::default() };
    HttpOptions { topology, ..HttpOptions::default() }
}

async fn get(url: &str) -> (u16, Value) {
    let r = reqwest::get(url).await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn node<'a>(v: &'a Value, id: &str) -> Option<&'a Value> {
    v["nodes"].as_array().unwrap().iter().find(|n| n["id"] == id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_stopped_answering_is_never_reported_healthy() {
    let net = Testnet::start(4, 0, Config::default(), DiscoveryConfig::default()).await.unwrap();
    let (url, _stop) = serve(net.nodes[0].clone(), quick_crawls()).await;
    let gone = net.nodes[3].node().id().to_hex();
    let (_, v) = get(&format!("{url}/api/dht/topology")).await;
    assert_eq!(node(&v, &gone).map(|n| n["status"].clone()), Some("healthy".into()), "{v}");
    net.nodes[3].shutdown();
    net.nodes[3].node().shutdown().await;
    // Past the crawl interval, the next answer comes from a crawl that found it silent.
    let mut last = Value::Null;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (_, v) = get(&format!("{url}/api/dht/topology")).await;
        last = node(&v, &gone).cloned().unwrap_or(Value::Null);
        if last["status"] != "healthy" {
            break;
        }
    }
    // Still listed (it may come back), but as silent, never healthy.
    assert_eq!((last["status"].as_str(), last["health"].as_str()), (Some("degraded"), Some("critical")), "{last}");
    assert_eq!(last["rtt_ms"], Value::Null);
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_503_with_a_reason_while_alone_and_live_stays_200() {
    let net = Testnet::start(1, 0, Config::default(), DiscoveryConfig::default()).await.unwrap();
    let (url, _stop) = serve(net.nodes[0].clone(), HttpOptions::default()).await;
    let (status, v) = get(&format!("{url}/health")).await;
    assert_eq!((status, v["status"].as_str(), v["ready"].as_bool()), (503, Some("degraded"), Some(false)), "{v}");
    assert!(v["reason"].as_str().unwrap().contains("alone"), "{v}");
    let (status, v) = get(&format!("{url}/health/live")).await;
    assert_eq!((status, v["status"].as_str()), (200, Some("alive")));
    net.shutdown().await;

    let net = Testnet::start(2, 0, Config::default(), DiscoveryConfig::default()).await.unwrap();
    let (url, _stop) = serve(net.nodes[1].clone(), HttpOptions::default()).await;
    let (status, v) = get(&format!("{url}/health")).await;
    assert_eq!((status, v["ready"].as_bool(), v["reason"].clone()), (200, Some(true), Value::Null), "{v}");
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_headers_only_for_the_configured_origins() {
    let net = Testnet::start(1, 0, Config::default(), DiscoveryConfig::default()).await.unwrap();
    let options = HttpOptions { cors_origins: vec!["https://app.example.org".into()], ..HttpOptions::default() };
    let (url, _a) = serve(net.nodes[0].clone(), options).await;
    let (plain, _b) = serve(net.nodes[0].clone(), HttpOptions::default()).await;
    let http = reqwest::Client::new();
    let allow =
        |r: &reqwest::Response| r.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap().to_owned());
    let ask = |base: &str, origin: &str| http.get(format!("{base}/api/dht/topology")).header("Origin", origin).send();
    let r = ask(&url, "https://app.example.org").await.unwrap();
    assert_eq!(allow(&r).as_deref(), Some("https://app.example.org"));
    let r = ask(&url, "https://evil.example.net").await.unwrap();
    assert_eq!(allow(&r), None);
    let r = ask(&plain, "https://app.example.org").await.unwrap();
    assert_eq!(allow(&r), None, "no CORS unless configured");
    let bad = HttpOptions { cors_origins: vec!["bad\norigin".into()], ..HttpOptions::default() };
    assert!(bad.cors().is_err());
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_pushes_topology_events_and_ends_when_the_server_stops() {
    let net = Testnet::start(2, 0, Config::default(), DiscoveryConfig::default()).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(kadmesh::http::serve_with(listener, net.nodes[0].clone(), quick_crawls(), async {
        let _ = stopped.await;
    }));
    let mut r = reqwest::get(format!("{url}/api/dht/topology/stream")).await.unwrap();
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let mut text = String::new();
    while !text.contains("\n\n") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), r.chunk()).await.unwrap().unwrap().unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.starts_with("event: topology\ndata: {"), "{text}");
    let data = text.lines().nth(1).unwrap().strip_prefix("data: ").unwrap();
    let v: Value = serde_json::from_str(data).unwrap();
    assert_eq!(v["stats"]["coordinator_count"], 2, "{v}");
    // An open stream must not keep the server from stopping.
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server).await.expect("server stopped").unwrap().unwrap();
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_assets_are_served_from_the_binary() {
    let net = Testnet::start(1, 0, Config::default(), DiscoveryConfig::default()).await.unwrap();
    let (url, _stop) = serve(net.nodes[0].clone(), HttpOptions::default()).await;
    for (path, kind, needle) in [
        ("/", "text/html", "/page/app.js"),
        ("/page/app.js", "text/javascript", "EventSource"),
        ("/page/style.css", "text/css", "@media"),
    ] {
        let r = reqwest::get(format!("{url}{path}")).await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with(kind), "{path}");
        let body = r.text().await.unwrap();
        assert!(body.contains(needle), "{path} lacks {needle}");
        assert!(!body.contains("http://") && !body.contains("https://"), "{path} loads something from elsewhere");
    }
    net.shutdown().await;
}
