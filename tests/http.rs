//! The HTTP surface over real TCP, against running multi-node networks on
//! loopback: register on one node and discover on another, ranking by load,
//! expiry, unregister, filters, the coordinator fallback, every error case,
//! the route shapes, and a Python worker that registered the old way.

mod common;

use common::cluster::{cluster, Cluster};
use common::surface::serve;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use kadmesh::discovery::{Discovery, DiscoveryConfig};
use kadmesh::engine::Config;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

fn fast() -> DiscoveryConfig {
    DiscoveryConfig { cache_ttl: Duration::ZERO, min_republish: Duration::ZERO, ..DiscoveryConfig::default() }
}

async fn answer(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    assert!(ct.starts_with("application/json"), "status {status}: content-type {ct:?}");
    (status, r.json().await.unwrap())
}

impl Cluster {
    async fn get(&self, node: usize, path: &str) -> (u16, Value) {
        answer(self.http.get(format!("{}{path}", self.urls[node])).send().await.unwrap()).await
    }

    async fn post(&self, node: usize, path: &str, body: Value) -> (u16, Value) {
        answer(self.http.post(format!("{}{path}", self.urls[node])).json(&body).send().await.unwrap()).await
    }

    /// DELETE `path`, with a worker credential when given.
    async fn delete(&self, node: usize, path: &str, credential: Option<&str>) -> (u16, Value) {
        let mut req = self.http.delete(format!("{}{path}", self.urls[node]));
        if let Some(c) = credential {
            req = req.header("X-Kadmesh-Credential", c);
        }
        answer(req.send().await.unwrap()).await
    }

    /// Registers a worker; returns its credential.
    async fn register(&self, node: usize, id: &str, services: &[&str], caps: Value) -> String {
        let body = json!({"worker_id": id, "tunnel_url": format!("https://{id}.example-tunnel.net"),
                          "capabilities": caps, "services": services});
        let (status, v) = self.post(node, "/api/worker/register", body).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["status"], "registered");
        v["credential"].as_str().expect("a fresh registration answers its credential").to_owned()
    }

    async fn heartbeat(&self, node: usize, id: &str, load: f64, memory: Option<f64>) {
        let body = json!({"worker_id": id, "status": "healthy", "current_load": load, "available_memory": memory,
                          "loaded_models": [], "active_requests": 0, "gpu_utilization": 0.0, "services_status": {}});
        let (status, v) = self.post(node, "/api/worker/heartbeat", body).await;
        assert_eq!(status, 200, "{v}");
    }

    /// Worker ids a discover answers, in order, and the whole answer.
    async fn discover(&self, node: usize, query: &str) -> (u16, Vec<String>, Value) {
        let (status, v) = self.get(node, &format!("/api/services/discover/{query}")).await;
        let ids = v["workers"].as_array().map(|w| w.iter().map(|w| w["worker_id"].as_str().unwrap().into()).collect());
        (status, ids.unwrap_or_default(), v)
    }
}

fn assert_error(status: u16, v: &Value, want: u16, code: &str) {
    assert_eq!(status, want, "{v}");
    assert_eq!(v["error"], code, "{v}");
    assert!(v["detail"].as_str().is_some_and(|d| d.len() > 10), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_on_one_node_discover_on_another_and_heartbeats_rerank_by_load() {
    let c = cluster(6, fast()).await;
    c.register(0, "w-a", &["ocr", "llm-inference"], json!({"has_gpu": true, "gpu_type": "NVIDIA RTX 3090"})).await;
    c.register(1, "w-b", &["ocr"], json!({"cpu_cores": 16})).await;
    c.heartbeat(0, "w-a", 0.9, None).await;
    c.heartbeat(1, "w-b", 0.1, None).await;
    let (status, ids, v) = c.discover(4, "ocr").await;
    assert_eq!((status, ids.as_slice()), (200, &["w-b".to_owned(), "w-a".to_owned()][..]), "{v}");
    assert_eq!(
        (v["recommended"].as_str(), v["count"].as_u64(), v["source"].as_str()),
        (Some("w-b"), Some(2), Some("dht"))
    );
    let w = &v["workers"][1];
    assert_eq!(w["tunnel_url"], "https://w-a.example-tunnel.net");
    assert_eq!(w["capabilities"]["gpu_type"], "NVIDIA RTX 3090");
    assert!(w["last_heartbeat"].as_f64().is_some() && w["load"].as_f64() == Some(0.9), "{w}");
    c.heartbeat(0, "w-a", 0.05, None).await;
    c.heartbeat(1, "w-b", 0.8, None).await;
    let (_, ids, _) = c.discover(3, "ocr").await;
    assert_eq!(ids, ["w-a", "w-b"]);
    let (_, ids, _) = c.discover(2, "llm-inference").await;
    assert_eq!(ids, ["w-a"]);
    c.net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_stops_heartbeating_disappears_after_its_expiry() {
    let cfg = DiscoveryConfig {
        worker_ttl: Duration::from_secs(2),
        refresh_interval: Duration::from_millis(500),
        stale_after: Duration::from_secs(4),
        ..fast()
    };
    let c = cluster(4, cfg).await;
    c.register(0, "w-silent", &["ocr"], json!({})).await;
    c.register(0, "w-alive", &["ocr"], json!({})).await;
    let (_, ids, _) = c.discover(2, "ocr").await;
    assert_eq!(ids.len(), 2);
    for _ in 0..7 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        c.heartbeat(0, "w-alive", 0.2, None).await;
    }
    let (status, ids, v) = c.discover(2, "ocr").await;
    assert_eq!((status, ids.as_slice()), (200, &["w-alive".to_owned()][..]), "{v}");
    c.net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unregister_removes_a_worker_at_once() {
    let c = cluster(5, fast()).await;
    let gone = c.register(0, "w-gone", &["ocr"], json!({})).await;
    let stay = c.register(1, "w-stay", &["ocr"], json!({})).await;
    assert_eq!(c.discover(3, "ocr").await.1.len(), 2);
    let (status, v) = c.delete(0, "/api/worker/unregister/w-gone", Some(&gone)).await;
    assert_eq!((status, v["status"].as_str()), (200, Some("unregistered")));
    assert_eq!(c.discover(3, "ocr").await.1, ["w-stay"]);
    let (status, v) = c.delete(0, "/api/worker/unregister/w-gone", Some(&gone)).await;
    assert_error(status, &v, 404, "not_found");
    c.delete(1, "/api/worker/unregister/w-stay", Some(&stay)).await;
    let (status, _, v) = c.discover(4, "ocr").await;
    assert_error(status, &v, 503, "no_healthy_workers");
    c.net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpu_and_memory_filters_select_workers() {
    let c = cluster(4, fast()).await;
    c.register(0, "gpu-1", &["ocr"], json!({"has_gpu": true, "gpu_type": "NVIDIA RTX 3090"})).await;
    c.register(1, "cpu-1", &["ocr"], json!({"has_gpu": false, "cpu_cores": 4})).await;
    c.heartbeat(0, "gpu-1", 0.7, Some(24.0)).await;
    c.heartbeat(1, "cpu-1", 0.1, Some(8.0)).await;
    assert_eq!(c.discover(2, "ocr?gpu=true").await.1, ["gpu-1"]);
    assert_eq!(c.discover(3, "ocr?min_memory=16").await.1, ["gpu-1"]);
    assert_eq!(c.discover(3, "ocr?min_memory=4").await.1, ["cpu-1", "gpu-1"]);
    assert_eq!(c.discover(2, "ocr?limit=1").await.1, ["cpu-1"]);
    let (status, _, v) = c.discover(2, "ocr?gpu_required=true&min_memory=32").await;
    assert_error(status, &v, 503, "no_healthy_workers");
    c.net.shutdown().await;
}

/// A coordinator that knows one `translate` worker; returns its URL and a
/// request counter.
async fn fake_coordinator() -> (String, Arc<AtomicUsize>, oneshot::Sender<()>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = Router::new().route(
        "/api/services/discover/:service",
        get(move |Path(s): Path<String>| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                if s == "translate" {
                    let w = json!({"worker_id": "coord-w1", "tunnel_url": "https://coord-w1.example", "load": 0.3});
                    let body = json!({"service": s, "workers": [w], "count": 1, "recommended": "coord-w1"});
                    (StatusCode::OK, Json(body))
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"detail": format!("No healthy workers for {s}")})))
                }
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await
    });
    (url, hits, tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_fallback_answers_when_the_dht_cannot() {
    let (coord, hits, _stop) = fake_coordinator().await;
    let mut c = cluster(3, fast()).await;
    let with = |url: &str, cache: u64| DiscoveryConfig {
        coordinator_url: Some(url.to_owned()),
        cache_ttl: Duration::from_secs(cache),
        ..fast()
    };
    let d = Discovery::new(c.net.nodes[1].node().clone(), with(&coord, 0)).unwrap();
    let (url, _s1) = serve(d).await;
    c.urls.push(url);
    let (status, ids, v) = c.discover(3, "translate").await;
    assert_eq!(
        (status, ids.as_slice(), v["source"].as_str()),
        (200, &["coord-w1".to_owned()][..], Some("coordinator"))
    );
    assert!(v["fallback_reason"].as_str().unwrap().contains("provider"), "{v}");
    c.register(0, "w-ocr", &["ocr"], json!({})).await;
    let (_, ids, v) = c.discover(3, "ocr").await;
    assert_eq!((ids.as_slice(), v["source"].as_str()), (&["w-ocr".to_owned()][..], Some("dht")));
    let (status, _, v) = c.discover(3, "nothing").await;
    assert_error(status, &v, 503, "no_healthy_workers");
    assert!(v["detail"].as_str().unwrap().contains("No healthy workers for nothing"), "{v}");

    let lone = kadmesh::node::Node::bind("127.0.0.1:0".parse().unwrap(), Config::default()).await.unwrap();
    let (url, _s2) = serve(Discovery::new(lone, with(&coord, 60)).unwrap()).await;
    c.urls.push(url);
    let before = hits.load(Ordering::SeqCst);
    let (_, _, v) = c.discover(4, "translate").await;
    assert_eq!((v["source"].as_str(), v["cached"].as_bool()), (Some("coordinator"), Some(false)));
    assert!(v["fallback_reason"].as_str().unwrap().contains("no DHT peers"), "{v}");
    let (_, _, v) = c.discover(4, "translate").await;
    assert_eq!(v["cached"].as_bool(), Some(true));
    assert_eq!(hits.load(Ordering::SeqCst), before + 1, "the second answer came from the cache");

    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let d = Discovery::new(c.net.nodes[2].node().clone(), with(&format!("http://{closed}"), 0)).unwrap();
    let (url, _s3) = serve(d).await;
    c.urls.push(url);
    let (status, _, v) = c.discover(5, "translate").await;
    assert_error(status, &v, 503, "no_healthy_workers");
    assert!(v["detail"].as_str().unwrap().contains("unreachable"), "{v}");
    c.net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_case_returns_its_status_and_a_json_message() {
    let c = cluster(2, fast()).await;
    let reg = "/api/worker/register";
    let url = "https://w.example.net";
    for body in [
        json!({"tunnel_url": url}),
        json!({"worker_id": "w1"}),
        json!({"worker_id": "w1", "tunnel_url": "not a url"}),
        json!({"worker_id": "w1", "tunnel_url": "ftp://w.example.net"}),
        json!({"worker_id": "bad id!", "tunnel_url": url}),
        json!({"worker_id": "w1", "tunnel_url": url, "services": ["a/b"]}),
        json!({"worker_id": "w1", "tunnel_url": url, "capabilities": "gpu"}),
        json!({"worker_id": "w1", "tunnel_url": url, "capabilities": {"blob": "x".repeat(7000)}}),
        json!(["not", "an", "object"]),
    ] {
        let (status, v) = c.post(0, reg, body.clone()).await;
        assert_error(status, &v, 400, "invalid_input");
    }
    let raw = |body: Vec<u8>| c.http.post(format!("{}{reg}", c.urls[0])).body(body).send();
    let (status, v) = answer(raw(b"{not json".to_vec()).await.unwrap()).await;
    assert_error(status, &v, 400, "invalid_input");
    let (status, v) = answer(raw(vec![b' '; 100 * 1024]).await.unwrap()).await;
    assert_error(status, &v, 413, "payload_too_large");
    let (status, v) = answer(raw(Vec::new()).await.unwrap()).await;
    assert_error(status, &v, 400, "invalid_input");
    let hb = "/api/worker/heartbeat";
    let (status, v) = c.post(0, hb, json!({"worker_id": "nobody", "current_load": 0.1})).await;
    assert_error(status, &v, 404, "not_found");
    let (status, v) = c.post(0, hb, json!({"worker_id": "w1", "current_load": "high"})).await;
    assert_error(status, &v, 400, "invalid_input");
    let (status, v) = c.delete(0, "/api/worker/unregister/nobody", None).await;
    assert_error(status, &v, 404, "not_found");
    let (status, _, v) = c.discover(1, "bad%20name").await;
    assert_error(status, &v, 400, "invalid_input");
    let (status, _, v) = c.discover(1, "ocr?limit=0").await;
    assert_error(status, &v, 400, "invalid_input");
    let (status, _, v) = c.discover(1, "some-new-service").await;
    assert_error(status, &v, 503, "no_healthy_workers");
    let (status, v) = c.get(0, "/api/nope").await;
    assert_error(status, &v, 404, "not_found");
    let (status, v) = c.delete(0, "/api/services/list", None).await;
    assert_error(status, &v, 405, "method_not_allowed");
    c.net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_bootstrap_topology_health_and_metrics_have_the_platform_shapes() {
    let c = cluster(4, fast()).await;
    c.register(0, "w1", &["ocr"], json!({"has_gpu": true})).await;
    c.register(1, "w2", &["llm-inference"], json!({})).await;
    let (status, v) = c.get(2, "/api/services/list").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["services"]["ocr"], json!({"name": "ocr", "healthy_workers": 1}));
    assert_eq!(v["services"]["llm-inference"]["healthy_workers"], 1);
    assert_eq!(v["total_available"], 2);
    assert!(v["timestamp"].as_f64().is_some());

    let (_, v) = c.get(2, "/api/dht/bootstrap").await;
    let seeds = v["seeds"].as_array().unwrap();
    assert_eq!((v["seed_count"].as_u64(), v["ttl"].as_u64()), (Some(seeds.len() as u64), Some(300)));
    // Only itself in `seeds`: the platform's client needs every seed's tunnel_url,
    // whose host it takes as the UDP host; peers, whose URLs we do not know, go to `more_seeds`.
    assert_eq!(seeds.len(), 1, "{v}");
    assert_eq!(v["more_seeds"].as_array().unwrap().len(), 3, "its three peers: {v}");
    assert_eq!(seeds[0]["host"], "127.0.0.1");
    assert_eq!(seeds[0]["dht_port"], c.net.addr(2).unwrap().port());
    assert_eq!(seeds[0]["node_id"], c.net.nodes[2].node().id().to_hex());
    let url = reqwest::Url::parse(seeds[0]["tunnel_url"].as_str().unwrap()).unwrap();
    assert_eq!(url.host_str(), Some("127.0.0.1"));
    assert_eq!(url.port(), Some(c.urls[2].rsplit(':').next().unwrap().parse().unwrap()));

    // Node 0 lists the network, not only what it registered or looked up:
    // w2 registered through node 1 and node 0 never discovered it.
    let (_, v) = c.get(0, "/api/dht/topology").await;
    let nodes = v["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 6, "itself, three peers, both workers: {v}");
    let w1 = nodes.iter().find(|n| n["id"] == "w1").unwrap();
    assert_eq!((w1["node_type"].as_str(), w1["status"].as_str()), (Some("worker"), Some("healthy")));
    assert_eq!(w1["worker_type"], "gpu");
    assert!(nodes.iter().any(|n| n["id"] == "w2"), "{v}");
    let links = v["connections"].as_array().unwrap();
    let kind = |k: &str| links.iter().filter(|l| l["type"] == k).count();
    assert_eq!(kind("worker_registration"), 2, "{v}");
    // Itself to its three peers, and the peers' own routing links (each pair once).
    assert_eq!(kind("dht_connection"), 6, "{v}");
    assert_eq!(v["edges"].as_array().unwrap().len(), links.len());
    assert!(v["edges"][0]["from"].is_string() && v["edges"][0]["to"].is_string());
    let stats = &v["stats"];
    assert_eq!((stats["total_nodes"].as_u64(), stats["worker_count"].as_u64()), (Some(6), Some(2)));
    assert_eq!((stats["coordinator_count"].as_u64(), stats["healthy_count"].as_u64()), (Some(4), Some(6)));
    assert_eq!((v["node_count"].as_u64(), v["dht_enabled"].as_bool()), (Some(6), Some(true)));

    let (_, v) = c.get(3, "/health").await;
    assert_eq!((v["status"].as_str(), v["peers"].as_u64()), (Some("healthy"), Some(3)));
    // Library nodes default to `public` mode: no check, never a client.
    assert_eq!(
        (v["reachability"]["state"].as_str(), v["reachability"]["client"].as_bool()),
        (Some("unknown"), Some(false))
    );
    c.discover(3, "ocr").await;
    let r = c.http.get(format!("{}/metrics", c.urls[3])).send().await.unwrap();
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = r.text().await.unwrap();
    let metric = |name: &str| -> f64 {
        let line = text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} missing"));
        line.rsplit_once(' ').unwrap().1.parse().unwrap()
    };
    assert_eq!(metric("kadmesh_lookups_total{result=\"dht\"}"), 1.0);
    assert_eq!(metric("kadmesh_lookup_duration_seconds_count"), 1.0);
    assert!(metric("kadmesh_rpcs_sent_total{kind=\"find_node\"}") > 0.0);
    assert!(metric("kadmesh_rpcs_received_total{kind=\"extension\"}") > 0.0);
    assert_eq!(metric("kadmesh_routing_table_size"), 3.0);
    // A first discover reads the set after a lookup, not from memory.
    assert!(metric("kadmesh_provider_sets_read_total") >= 1.0);
    assert_eq!(metric("kadmesh_provider_sets_from_memory_total"), 0.0);
    for name in ["kadmesh_rpc_timeouts_total", "kadmesh_records_held", "kadmesh_bootstrap_url_fetches_total"] {
        metric(name);
    }
    c.net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_worker_registered_the_old_way_is_discovered_over_http() {
    let c = cluster(3, fast()).await;
    let py = common::python::PyNode::spawn(&[c.net.addr(0).unwrap()]).await;
    let now = kadmesh::node::Clock::new().unix_secs();
    let record = json!({"worker_id": "py-ocr-1", "tunnel_url": "https://py-ocr-1.example-tunnel.net",
        "services": ["ocr"], "capabilities": {"has_gpu": true, "gpu_type": "NVIDIA RTX 4090", "cpu_cores": 16},
        "vpn_ip": null, "last_seen": now});
    let record = kadmesh::wire::Value::Str(record.to_string());
    assert!(py.set(0, "worker:py-ocr-1", &record).await);
    assert!(py.set(0, "service:ocr", &kadmesh::wire::Value::from(r#"["py-ocr-1"]"#)).await);
    c.register(1, "rust-ocr-1", &["ocr"], json!({})).await;
    c.heartbeat(1, "rust-ocr-1", 0.5, None).await;
    let (status, ids, v) = c.discover(2, "ocr?gpu=true").await;
    assert_eq!((status, ids.as_slice()), (200, &["py-ocr-1".to_owned()][..]), "{v}");
    assert_eq!(v["workers"][0]["tunnel_url"], "https://py-ocr-1.example-tunnel.net");
    // Verified (signed) workers are listed before unsigned ones, whatever the load.
    assert_eq!(c.discover(0, "ocr").await.1, ["rust-ocr-1", "py-ocr-1"]);
    c.net.shutdown().await;
}

/// A `dhtd` child process, killed if a test fails before it exits, with
/// one of its output streams delivered line by line.
struct Daemon {
    child: std::process::Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl Daemon {
    fn spawn(args: &[&str], stdout: bool) -> Daemon {
        use std::io::{BufRead, BufReader};
        use std::process::Stdio;
        let (out, err) = if stdout { (Stdio::piped(), Stdio::null()) } else { (Stdio::null(), Stdio::piped()) };
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("dhtd"))
            .args(args)
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        let stream: Box<dyn std::io::Read + Send> = match stdout {
            true => Box::new(child.stdout.take().unwrap()),
            false => Box::new(child.stderr.take().unwrap()),
        };
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Daemon { child, lines }
    }

    /// The next line, within 30 s.
    async fn line(&mut self) -> Option<String> {
        tokio::time::timeout(Duration::from_secs(30), self.lines.recv()).await.ok().flatten()
    }

    /// Sends SIGTERM; true when the process then exits successfully within 10 s.
    async fn terminate(&mut self) -> bool {
        let pid = self.child.id().to_string();
        assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        for _ in 0..100 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dhtd_demo_serves_its_sample_workers_and_stops_on_sigterm() {
    let mut demo = Daemon::spawn(&["demo", "--nodes", "4", "--http-port", "0", "--udp-port", "0"], true);
    let (mut base, mut curl_lines) = (None, 0);
    for _ in 0..100 {
        let Some(line) = demo.line().await else { break };
        curl_lines += usize::from(line.trim_start().starts_with("curl "));
        if let Some(rest) = line.strip_prefix("HTTP API on ") {
            base = rest.split_whitespace().next().map(str::to_owned);
        }
        if line.starts_with("Ctrl-C") {
            break;
        }
    }
    let base = base.expect("the demo prints its HTTP address");
    assert!(curl_lines >= 8, "only {curl_lines} curl lines");
    let http = reqwest::Client::new();
    let (status, v) = answer(http.get(format!("{base}/api/services/discover/ocr")).send().await.unwrap()).await;
    assert_eq!((status, v["count"].as_u64(), v["source"].as_str()), (200, Some(4), Some("dht")), "{v}");
    assert_eq!(v["recommended"], "worker-7");
    assert!(demo.terminate().await, "the demo did not exit cleanly on SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dhtd_joins_through_a_bootstrap_url_and_counts_the_fetch() {
    let c = cluster(2, fast()).await;
    let url = format!("{}/api/dht/bootstrap", c.urls[0]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let args = ["--port", "0", "--bind", "127.0.0.1", "--http-bind", "127.0.0.1:0", "--bootstrap-url", &url];
    let mut d = Daemon::spawn(&[&args[..], &["--log-json", "--data-dir", data]].concat(), false);
    let mut base = None;
    for _ in 0..100 {
        let Some(line) = d.line().await else { break };
        let Ok(log) = serde_json::from_str::<Value>(&line) else { continue };
        if log["fields"]["message"] == "HTTP API listening" {
            base = log["fields"]["addr"].as_str().map(|a| format!("http://{a}"));
            break;
        }
    }
    let base = base.expect("dhtd logs its HTTP address");
    let mut peers = 0;
    for _ in 0..50 {
        let (_, v) = answer(c.http.get(format!("{base}/health")).send().await.unwrap()).await;
        peers = v["peers"].as_u64().unwrap();
        if peers >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(peers, 2, "joined both nodes the bootstrap URL named");
    // The join is counted when bootstrap returns, a moment after the peers show.
    let mut text = String::new();
    for _ in 0..50 {
        text = c.http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
        if text.contains("kadmesh_joins_total{source=\"configured\"} 1\n") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(text.contains("kadmesh_bootstrap_url_fetches_total{result=\"ok\"} 1\n"), "{text}");
    assert!(text.contains("kadmesh_joins_total{source=\"configured\"} 1\n"), "{text}");
    assert!(text.contains("kadmesh_seed_fetches_total{source=\"edge\",result=\"ok\"} 0\n"), "{text}");
    // The bootstrap document's seeds are kept for the next start.
    let learned = std::fs::read_to_string(dir.path().join(kadmesh::persist::LEARNED_FILE)).unwrap();
    assert!(learned.contains(&c.net.addr(0).unwrap().to_string()), "{learned}");
    assert!(d.terminate().await, "dhtd did not exit cleanly on SIGTERM");
    c.net.shutdown().await;
}
