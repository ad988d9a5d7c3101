//! `POST /api/services/route/{service_type}` over real TCP: local HTTP
//! servers on 127.0.0.1 stand for workers, registered through a running
//! multi-node network, and requests are routed through another node.
//! The stand-in workers are in `common::worker`.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;
use common::worker::{Answer, Worker};
use kadmesh::discovery::testnet::Testnet;
use kadmesh::discovery::{service_key, worker_key, DiscoveryConfig};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A network with an HTTP server on every node.
struct Cluster {
    net: Testnet,
    urls: Vec<String>,
    _stops: Vec<oneshot::Sender<()>>,
    http: reqwest::Client,
}

async fn cluster(n: usize) -> Cluster {
    let cfg =
        DiscoveryConfig { cache_ttl: Duration::ZERO, min_republish: Duration::ZERO, ..DiscoveryConfig::default() };
    let (net, urls, stops) = common::surface::start(n, cfg).await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    Cluster { net, urls, _stops: stops, http }
}

/// What a routed request came back with.
#[derive(Debug)]
struct Routed {
    status: u16,
    worker: Option<String>,
    worker_url: Option<String>,
    tried: Option<usize>,
    content_type: String,
    body: Value,
}

impl Cluster {
    /// Registers `id` at `url` for `services` through `node`, with `load`.
    async fn register(&self, node: usize, id: &str, url: &str, services: &[&str], load: f64) {
        let base = &self.urls[node];
        let body = json!({"worker_id": id, "tunnel_url": url, "services": services, "capabilities": {}});
        let r = self.http.post(format!("{base}/api/worker/register")).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        let hb = json!({"worker_id": id, "status": "healthy", "current_load": load});
        let r = self.http.post(format!("{base}/api/worker/heartbeat")).json(&hb).send().await.unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }

    /// Routes `body` to `service` through `node`, with extra `headers`.
    async fn route(&self, node: usize, service: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> Routed {
        route_with(&self.http, &self.urls[node], service, body, headers).await
    }
}

async fn route_with(
    http: &reqwest::Client,
    base: &str,
    service: &str,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> Routed {
    let mut req = http.post(format!("{base}/api/services/route/{service}")).body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let h = |k: &str| r.headers().get(k).map(|v| v.to_str().unwrap().to_owned());
    let (status, worker, worker_url) = (r.status().as_u16(), h("x-kadmesh-worker"), h("x-kadmesh-worker-url"));
    let tried = h("x-kadmesh-tried").map(|t| t.parse().unwrap());
    let content_type = h("content-type").unwrap_or_default();
    let body = r.json().await.unwrap_or(Value::Null);
    Routed { status, worker, worker_url, tried, content_type, body }
}

fn json_ct() -> (&'static str, &'static str) {
    ("content-type", "application/json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_run_is_passed_over_and_headers_name_who_answered() {
    let c = cluster(3).await;
    let mut a = Worker::start("w-a", Answer::Echo);
    let b = Worker::start("w-b", Answer::Echo);
    c.register(0, "w-a", &a.url, &["ocr"], 0.1).await;
    c.register(1, "w-b", &b.url, &["ocr"], 0.5).await;

    let first = c.route(2, "ocr", br#"{"doc": 1}"#.to_vec(), &[json_ct()]).await;
    assert_eq!((first.status, first.worker.as_deref(), first.tried), (200, Some("w-a"), Some(1)), "{first:?}");
    assert_eq!(first.worker_url, Some(format!("{}/service/ocr", a.url)));
    assert_eq!((first.body["worker"].as_str(), first.body["service"].as_str()), (Some("w-a"), Some("ocr")));
    assert_eq!(
        (first.body["body"].as_str(), first.body["content_type"].as_str()),
        (Some(r#"{"doc": 1}"#), Some("application/json"))
    );
    assert!(first.content_type.starts_with("application/json"), "{first:?}");

    // Four streams of requests; w-a dies once ten requests have been answered.
    let done = Arc::new(AtomicUsize::new(0));
    let killed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut streams = tokio::task::JoinSet::new();
    for s in 0..4 {
        let (http, base, done, killed) = (c.http.clone(), c.urls[2].clone(), done.clone(), killed.clone());
        streams.spawn(async move {
            let mut out = Vec::new();
            for i in 0..10 {
                let after_kill = killed.load(Ordering::SeqCst);
                let body = format!("stream {s} request {i}").into_bytes();
                let r = route_with(&http, &base, "ocr", body, &[("content-type", "text/plain")]).await;
                done.fetch_add(1, Ordering::SeqCst);
                out.push((after_kill, s, i, r));
            }
            out
        });
    }
    while done.load(Ordering::SeqCst) < 10 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let hits_before_kill = a.hits();
    a.kill();
    killed.store(true, Ordering::SeqCst);

    let mut results = Vec::new();
    while let Some(r) = streams.join_next().await {
        results.extend(r.unwrap());
    }
    assert_eq!(results.len(), 40);
    let (mut after, mut first_after) = (0, [true; 4]);
    for (after_kill, s, i, r) in &results {
        assert_eq!(r.status, 200, "every request is answered: {r:?}");
        assert_eq!(r.body["body"].as_str(), Some(format!("stream {s} request {i}").as_str()), "{r:?}");
        assert_eq!(r.body["worker"].as_str(), r.worker.as_deref(), "the header names the worker that answered");
        assert!(r.tried.is_some_and(|t| (1..=2).contains(&t)), "{r:?}");
        if *after_kill {
            after += 1;
            assert_eq!(r.worker.as_deref(), Some("w-b"), "{r:?}");
            // Once w-a has failed a request it is tried after w-b.
            if !std::mem::replace(&mut first_after[*s], false) {
                assert_eq!(r.tried, Some(1), "w-a failed before, w-b is tried first: {r:?}");
            }
        }
    }
    assert!(after >= 4, "each stream sends at least one request after the kill: {after}");
    assert!(hits_before_kill >= 10 && b.hits() >= after, "w-a {hits_before_kill}, w-b {}", b.hits());
    c.net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_worker_is_skipped_and_a_4xx_is_the_workers_answer() {
    let c = cluster(3).await;
    let broken = Worker::start("w-broken", Answer::Status(500));
    let good = Worker::start("w-good", Answer::Echo);
    let picky = Worker::start("w-picky", Answer::Status(422));
    let spare = Worker::start("w-spare", Answer::Echo);
    c.register(0, "w-broken", &broken.url, &["ocr"], 0.0).await;
    c.register(1, "w-good", &good.url, &["ocr"], 0.5).await;
    c.register(0, "w-picky", &picky.url, &["parse"], 0.0).await;
    c.register(1, "w-spare", &spare.url, &["parse"], 0.5).await;

    let r = c.route(2, "ocr", b"x".to_vec(), &[]).await;
    assert_eq!((r.status, r.worker.as_deref(), r.tried), (200, Some("w-good"), Some(2)), "{r:?}");
    assert_eq!((broken.hits(), good.hits()), (1, 1));

    let r = c.route(2, "parse", b"y".to_vec(), &[]).await;
    assert_eq!((r.status, r.worker.as_deref(), r.tried), (422, Some("w-picky"), Some(1)), "{r:?}");
    assert_eq!(r.body, json!({"worker": "w-picky", "detail": "refused by the worker"}));
    assert_eq!((picky.hits(), spare.hits()), (1, 0), "a 4xx is not re-sent elsewhere");
    c.net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_size_limited_and_only_safe_headers_cross() {
    let c = cluster(2).await;
    let w = Worker::start("w-1", Answer::Echo);
    c.register(0, "w-1", &w.url, &["ocr"], 0.1).await;

    let big = vec![b'a'; 100 * 1024];
    let headers = [
        ("content-type", "application/octet-stream"),
        ("x-request-id", "req-7"),
        ("cookie", "session=node"),
        ("authorization", "Bearer node-secret"),
    ];
    let r = c.route(1, "ocr", big, &headers).await;
    assert_eq!((r.status, r.body["len"].as_u64()), (200, Some(100 * 1024)), "over the 64 KiB of other routes: {r:?}");
    assert_eq!(
        (r.body["content_type"].as_str(), r.body["request_id"].as_str()),
        (Some("application/octet-stream"), Some("req-7"))
    );
    assert_eq!((&r.body["cookie"], &r.body["authorization"]), (&Value::Null, &Value::Null), "{r:?}");

    let limit = kadmesh::http::forward::RouteConfig::default().max_request_body;
    let r = c.route(1, "ocr", vec![b'a'; limit + 1], &[]).await;
    assert_eq!((r.status, r.body["error"].as_str()), (413, Some("payload_too_large")), "{r:?}");
    assert!(r.content_type.starts_with("application/json"));
    assert_eq!(w.hits(), 1, "an oversized body is not forwarded");

    let r = c.route(1, "a%2Fb", vec![], &[]).await;
    assert_eq!((r.status, r.body["error"].as_str()), (400, Some("invalid_input")), "{r:?}");
    let r = c.route(1, "ocr?gpu=maybe", vec![], &[]).await;
    assert_eq!((r.status, r.body["error"].as_str()), (400, Some("invalid_input")), "{r:?}");
    let r = c.http.get(format!("{}/api/services/route/ocr", c.urls[1])).send().await.unwrap();
    assert_eq!(r.status(), 405);
    c.net.shutdown().await;
}

/// A URL of a local port nobody listens on.
fn closed_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_no_worker_answers_the_answer_is_503_json() {
    let c = cluster(2).await;
    for (i, load) in [0.1, 0.2, 0.3, 0.4].into_iter().enumerate() {
        c.register(0, &format!("w-dead-{i}"), &closed_url(), &["ocr"], load).await;
    }
    let r = c.route(1, "ocr", b"x".to_vec(), &[]).await;
    assert_eq!((r.status, r.body["error"].as_str(), r.tried), (503, Some("no_healthy_workers"), Some(3)), "{r:?}");
    let detail = r.body["detail"].as_str().unwrap();
    for i in 0..3 {
        assert!(detail.contains(&format!("w-dead-{i}: could not connect")), "{detail}");
    }
    assert!(!detail.contains("w-dead-3"), "at most three are tried: {detail}");
    assert!(r.content_type.starts_with("application/json"));

    let r = c.route(1, "nobody-runs-this", b"x".to_vec(), &[]).await;
    assert_eq!((r.status, r.body["error"].as_str()), (503, Some("no_healthy_workers")), "{r:?}");
    c.net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_url_is_never_contacted() {
    let c = cluster(3).await;
    let trap = Worker::start("w-trap", Answer::Echo);
    let honest = Worker::start("w-honest", Answer::Echo);
    // Written straight into the DHT as a stock peer could: no registration
    // rule stands between this URL and the network.
    let trap_url = trap.url.replace("http://", "http://admin:pw@");
    let now = kadmesh::node::Clock::new().unix_secs();
    let record = json!({"worker_id": "w-trap", "tunnel_url": trap_url, "services": ["ocr", "lone"], "last_seen": now, "load": 0.0});
    let node = c.net.nodes[0].node();
    node.put(worker_key("w-trap"), kadmesh::wire::Value::Str(record.to_string())).await.unwrap();
    node.put(service_key("ocr"), kadmesh::wire::Value::from(r#"["w-trap"]"#)).await.unwrap();
    node.put(service_key("lone"), kadmesh::wire::Value::from(r#"["w-trap"]"#)).await.unwrap();
    c.register(1, "w-honest", &honest.url, &["ocr"], 0.5).await;

    let r = c.route(2, "ocr", b"x".to_vec(), &[]).await;
    assert_eq!((r.status, r.worker.as_deref(), r.tried), (200, Some("w-honest"), Some(1)), "{r:?}");
    let r = c.route(2, "lone", b"x".to_vec(), &[]).await;
    assert_eq!((r.status, r.tried), (503, Some(0)), "{r:?}");
    assert!(r.body["detail"].as_str().unwrap().contains("w-trap: not contacted"), "{r:?}");
    assert_eq!(trap.hits(), 0);
    c.net.shutdown().await;
}

/// A server that accepts connections and never answers.
async fn silent_url() -> (String, tokio::task::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    (url, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_worker_times_out_and_the_whole_call_is_bounded() {
    use kadmesh::http::forward::{ForwardError, Forwarder, RouteConfig, Target};
    let t = |id: &str, url: &str| Target { worker_id: id.into(), tunnel_url: url.into() };
    let (silent, task) = silent_url().await;
    let echo = Worker::start("w-echo", Answer::Echo);
    let localhost = echo.url.replace("127.0.0.1", "localhost");
    let cfg = RouteConfig {
        attempt_timeout: Duration::from_millis(300),
        total_timeout: Duration::from_millis(800),
        ..RouteConfig::default()
    };
    let f = Forwarder::new(cfg.clone()).unwrap();
    let (h, body) = (HeaderMap::new(), Bytes::from_static(b"x"));

    let a = f.forward("ocr", &[t("w-silent", &silent), t("w-echo", &localhost)], &h, body.clone()).await.unwrap();
    assert_eq!((a.worker_id.as_str(), a.tried, a.status.as_u16()), ("w-echo", 2, 200));

    // Attempts of up to 1 s within 400 ms in all: the first attempt is cut
    // to what is left, and nobody else is contacted.
    let short = Forwarder::new(RouteConfig {
        attempt_timeout: Duration::from_secs(1),
        total_timeout: Duration::from_millis(400),
        ..cfg.clone()
    })
    .unwrap();
    let three = [t("s1", &silent), t("s2", &silent), t("s3", &silent)];
    match short.forward("ocr", &three, &h, body.clone()).await {
        Err(ForwardError::NoneAnswered { tried, detail }) => {
            assert_eq!(tried, 1, "{detail}");
            assert!(detail.contains("s1: no answer within "), "{detail}");
            assert!(detail.contains("s2: not contacted, the routing time ran out"), "{detail}");
        }
        other => panic!("{other:?}"),
    }

    let small = Forwarder::new(RouteConfig { max_response_body: 10, ..cfg }).unwrap();
    match small.forward("ocr", &[t("w-echo", &echo.url), t("w-other", &echo.url)], &h, body).await {
        Err(ForwardError::ResponseTooLarge { worker_id, tried: 1, limit: 10 }) => assert_eq!(worker_id, "w-echo"),
        other => panic!("{other:?}"),
    }
    assert_eq!(echo.hits(), 2, "an oversized answer is not re-run elsewhere");
    task.abort();
}
