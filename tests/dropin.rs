//! The HTTP surface as the platform's own code uses it (issue 11), on
//! multi-node loopback networks: assigned services, the `find` route, the
//! legacy `service:` list kept for their client, and unregistrations and new
//! URLs seen by every node within a second, cache or not. The same rules
//! against real stock Python peers are in `tests/platform.rs`.

use std::time::Duration;

use kadmesh::discovery::{service_key, DiscoveryConfig};
use serde_json::{json, Value};

mod common;

use common::cluster::{cluster, Cluster};

impl Cluster {
    async fn send(&self, r: reqwest::RequestBuilder) -> (u16, Value) {
        let r = r.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    async fn register(&self, node: usize, body: Value) -> Value {
        let (status, v) =
            self.send(self.http.post(format!("{}/api/worker/register", self.urls[node])).json(&body)).await;
        assert_eq!(status, 200, "{v}");
        v
    }

    /// The worker ids and URLs node `node` discovers for `service`.
    async fn discover(&self, node: usize, service: &str, no_cache: bool) -> Vec<(String, String)> {
        let mut req = self.http.get(format!("{}/api/services/discover/{service}", self.urls[node]));
        if no_cache {
            req = req.header("Cache-Control", "no-cache");
        }
        let (_, v) = self.send(req).await;
        let workers = v["workers"].as_array().cloned().unwrap_or_default();
        workers
            .iter()
            .map(|w| (w["worker_id"].as_str().unwrap().into(), w["tunnel_url"].as_str().unwrap().into()))
            .collect()
    }

    /// The legacy `service:{service}` list as read through node `node`.
    async fn legacy_list(&self, node: usize, service: &str) -> Vec<String> {
        let got = self.net.nodes[node].node().get(service_key(service)).await.unwrap();
        let text = match got.value {
            Some(kadmesh::wire::Value::Str(s)) => s,
            other => panic!("no legacy list under service:{service}: {other:?}"),
        };
        serde_json::from_str(&text).unwrap()
    }
}

fn worker(id: &str, services: &[&str], caps: Value) -> Value {
    json!({"worker_id": id, "tunnel_url": format!("https://{id}.example-tunnel.net"), "capabilities": caps, "services": services})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_naming_no_services_is_assigned_the_defaults_and_found_through_find() {
    let c = cluster(4, DiscoveryConfig::default()).await;
    let v = c.register(0, worker("cpu-1", &[], json!({"cpu_cores": 4}))).await;
    assert_eq!(v["assigned_services"], json!(["ocr"]));
    let v = c.register(1, worker("gpu-1", &[], json!({"has_gpu": true}))).await;
    assert_eq!(v["assigned_services"], json!(["ocr", "llm-inference"]));
    let v = c.register(1, worker("own-1", &["translate"], json!({}))).await;
    assert_eq!(v["assigned_services"], json!(["translate"]), "declared services are kept");
    let (status, found) = c.send(c.http.get(format!("{}/api/worker/find/llm-inference", c.urls[3]))).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["recommended"], "gpu-1");
    assert_eq!(found["service"], "llm-inference");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_legacy_list_names_our_workers_and_drops_them_when_they_leave() {
    let c = cluster(5, DiscoveryConfig { cache_ttl: Duration::ZERO, ..DiscoveryConfig::default() }).await;
    let cred = c.register(0, worker("w-a", &["ocr"], json!({}))).await["credential"].clone();
    c.register(2, worker("w-b", &["ocr"], json!({}))).await;
    let mut list = Vec::new();
    for _ in 0..50 {
        list = c.legacy_list(4, "ocr").await;
        if list.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    list.sort();
    assert_eq!(list, ["w-a", "w-b"], "both registrations, through two nodes, are in the list");
    let delete = c.http.delete(format!("{}/api/worker/unregister/w-a", c.urls[0]));
    let (status, _) = c.send(delete.header("X-Kadmesh-Credential", cred.as_str().unwrap())).await;
    assert_eq!(status, 200);
    for _ in 0..50 {
        list = c.legacy_list(3, "ocr").await;
        if list == ["w-b"] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(list, ["w-b"], "the unregistered worker left the list");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unregister_and_a_new_url_are_seen_by_every_node_within_a_second_cache_or_not() {
    let c = cluster(5, DiscoveryConfig::default()).await;
    let cred1 = c.register(0, worker("w-1", &["ocr"], json!({}))).await["credential"].clone();
    let cred2 = c.register(0, worker("w-2", &["ocr"], json!({}))).await["credential"].clone();
    let ids = |v: Vec<(String, String)>| v.into_iter().map(|(id, _)| id).collect::<Vec<_>>();
    // Every node has the answer cached now.
    for node in 0..5 {
        assert_eq!(ids(c.discover(node, "ocr", false).await).len(), 2);
    }
    let delete = c.http.delete(format!("{}/api/worker/unregister/w-1", c.urls[0]));
    let (status, _) = c.send(delete.header("X-Kadmesh-Credential", cred1.as_str().unwrap())).await;
    assert_eq!(status, 200);
    assert_eq!(ids(c.discover(3, "ocr", true).await), ["w-2"], "no-cache reads the DHT at once");
    tokio::time::sleep(Duration::from_millis(1050)).await;
    for node in 0..5 {
        assert_eq!(ids(c.discover(node, "ocr", false).await), ["w-2"], "node {node} still names w-1 after 1 s");
    }
    // w-2 registers again through node 4 with a new URL: node 0, where it
    // registered first, must serve the new URL too, and stop republishing the old.
    let mut moved = worker("w-2", &["ocr"], json!({}));
    moved["tunnel_url"] = json!("https://w-2-moved.example-tunnel.net");
    moved["credential"] = cred2;
    c.register(4, moved).await;
    tokio::time::sleep(Duration::from_millis(1050)).await;
    for node in 0..5 {
        let found = c.discover(node, "ocr", false).await;
        assert_eq!(found, [("w-2".to_owned(), "https://w-2-moved.example-tunnel.net".to_owned())], "node {node}");
    }
    assert_eq!(c.net.nodes[0].local_worker_count(), 0, "node 0 let go of the worker that moved");
}

/// A worker of theirs that wrote only its `worker:{id}` record (its entry in
/// the `service:` list lost to a racing read-modify-write) is announced into
/// the provider set at the first refresher tick after its record arrives,
/// not at the next full bridging pass a refresh interval later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_wrote_only_its_record_is_found_within_ticks_not_a_refresh_interval() {
    // The refresher ticks every interval / 8: every 2 s here.
    let interval = Duration::from_secs(16);
    let cfg = DiscoveryConfig { refresh_interval: interval, cache_ttl: Duration::ZERO, ..DiscoveryConfig::default() };
    let c = cluster(4, cfg).await;
    // The first (full) pass runs at every node's first tick.
    tokio::time::sleep(Duration::from_secs(3)).await;
    // `last_seen` from their event loop's monotonic clock, as their workers write it.
    let theirs = json!({"worker_id": "py-late", "tunnel_url": "https://py-late.example-tunnel.net",
        "services": ["ocr"], "status": "healthy", "last_seen": 815.2});
    let value = kadmesh::wire::Value::Str(theirs.to_string());
    c.net.nodes[0].node().put(kadmesh::discovery::worker_key("py-late"), value).await.unwrap();
    let start = tokio::time::Instant::now();
    let mut found = Vec::new();
    while start.elapsed() < interval + Duration::from_secs(4) {
        found = c.discover(3, "ocr", true).await;
        if !found.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let took = start.elapsed();
    assert_eq!(found.len(), 1, "never found after {took:?}: {found:?}");
    assert_eq!(found[0].0, "py-late");
    assert!(took < interval / 2, "found only {took:?} after its record was written (refresh interval {interval:?})");
}
