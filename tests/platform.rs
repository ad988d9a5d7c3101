//! kadmesh beside the platform's own Python code (issue 11), with real stock
//! `kademlia` nodes playing the platform's part: `platform_client.py`
//! (`common::platform`) does what their `DHTClient` and worker do (the
//! `service:` list read-modify-write, a monotonic `last_seen`, heartbeats,
//! bootstrap from our `/api/dht/bootstrap` by `tunnel_url` host). Short-lived
//! stock clients and the mixed network are in `tests/churn_clients.rs`. Each
//! test starts its own loopback network with an HTTP server on every kadmesh
//! node (`common::surface`), with short windows so it runs in seconds.
//!
//! Needs a Python with `kademlia` (`KADMESH_PYTHON`, which `scripts/test`
//! and CI set, or `.venv`); without one every test says it is skipping.

mod common;

use common::cluster::{cluster, Cluster};

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use common::platform::PlatformClient;
use common::python::skip_without_python;
use kadmesh::discovery::DiscoveryConfig;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::time::{sleep, Instant};

/// The liveness window of these tests (300 s in production).
const TTL: Duration = Duration::from_secs(5);
/// Python heartbeats every this many seconds (30 in production).
const BEAT: f64 = 1.0;
/// The refresh interval of these tests (120 s in production).
const REFRESH: Duration = Duration::from_secs(2);

fn short_windows() -> DiscoveryConfig {
    DiscoveryConfig {
        worker_ttl: TTL,
        stale_after: 2 * TTL,
        refresh_interval: REFRESH,
        min_republish: Duration::ZERO,
        ..DiscoveryConfig::default()
    }
}

impl Cluster {
    fn bootstrap_url(&self, node: usize) -> String {
        format!("{}/api/dht/bootstrap", self.urls[node])
    }

    async fn send(&self, r: reqwest::RequestBuilder) -> (u16, Value) {
        let r = r.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    async fn register(&self, node: usize, id: &str, services: &[&str], url: &str) -> Value {
        let services = services.iter().map(|s| s.to_string()).collect();
        register(self.http.clone(), self.urls[node].clone(), id.to_owned(), services, url.to_owned()).await
    }

    /// Unregisters `id` with the credential its registration answered.
    async fn unregister(&self, node: usize, id: &str, credential: &Value) {
        let req = self.http.delete(format!("{}/api/worker/unregister/{id}", self.urls[node]));
        let (status, v) = self.send(req.header("X-Kadmesh-Credential", credential.as_str().unwrap())).await;
        assert_eq!(status, 200, "{v}");
    }

    /// Registers `id` again at `url`, proving ownership with `credential`.
    async fn reregister(&self, node: usize, id: &str, url: &str, credential: &Value) {
        let body = json!({"worker_id": id, "tunnel_url": url, "services": ["ocr"], "credential": credential});
        let (status, v) =
            self.send(self.http.post(format!("{}/api/worker/register", self.urls[node])).json(&body)).await;
        assert_eq!(status, 200, "{v}");
    }

    /// Node `node`'s discover answer for `service`: worker id -> tunnel URL.
    async fn discover(&self, node: usize, service: &str, no_cache: bool) -> Vec<(String, String)> {
        self.workers(&format!("{}/api/services/discover/{service}", self.urls[node]), no_cache).await
    }

    async fn workers(&self, url: &str, no_cache: bool) -> Vec<(String, String)> {
        let mut req = self.http.get(url);
        if no_cache {
            req = req.header("Cache-Control", "no-cache");
        }
        let (_, v) = self.send(req).await;
        let mut out: Vec<(String, String)> = v["workers"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|w| (w["worker_id"].as_str().unwrap().to_owned(), w["tunnel_url"].as_str().unwrap().to_owned()))
            .collect();
        out.sort();
        out
    }

    async fn discovered_ids(&self, node: usize, service: &str) -> BTreeSet<String> {
        self.discover(node, service, true).await.into_iter().map(|(id, _)| id).collect()
    }
}

/// `POST /api/worker/register` at `node_url` (owned arguments: it is spawned).
async fn register(http: reqwest::Client, node_url: String, id: String, services: Vec<String>, url: String) -> Value {
    let body = json!({"worker_id": id, "tunnel_url": url, "capabilities": {"cpu_cores": 4}, "services": services});
    let r = http.post(format!("{node_url}/api/worker/register")).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{v}");
    v
}

/// Heartbeats `worker` through `node_url` every [`BEAT`] seconds until dropped
/// (our workers registered over HTTP are dead one window after their last).
struct Heartbeats(tokio::task::JoinHandle<()>);

impl Drop for Heartbeats {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Cluster {
    fn heartbeats(&self, node: usize, worker: &str) -> Heartbeats {
        let (http, url) = (self.http.clone(), format!("{}/api/worker/heartbeat", self.urls[node]));
        let body = json!({"worker_id": worker, "status": "healthy", "current_load": 0.0});
        Heartbeats(tokio::spawn(async move {
            loop {
                sleep(Duration::from_secs_f64(BEAT)).await;
                let _ = http.post(&url).json(&body).send().await;
            }
        }))
    }
}

fn tunnel(id: &str) -> String {
    format!("https://{id}.example-tunnel.net")
}

fn ids(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Polls `probe` every 200 ms until it holds or `within` passes; returns
/// how long it took, `None` if it never held.
async fn wait_until<F, Fut>(within: Duration, mut probe: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if probe().await {
            return Some(start.elapsed());
        }
        if start.elapsed() > within {
            return None;
        }
        sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_workers_are_found_by_their_client_and_theirs_by_our_discover() {
    if skip_without_python("our_workers_are_found_by_their_client_and_theirs_by_our_discover") {
        return;
    }
    let c = cluster(4, short_windows()).await;
    c.register(0, "ours-a", &["ocr"], &tunnel("ours-a")).await;
    c.register(1, "ours-b", &["ocr"], &tunnel("ours-b")).await;
    let _beats = [c.heartbeats(0, "ours-a"), c.heartbeats(1, "ours-b")];
    let py = PlatformClient::connect(&c.bootstrap_url(2), 1, BEAT).await.unwrap();
    let start = Instant::now();
    let mut found = py.find(0, "ocr").await;
    while found.worker_ids() != ["ours-a", "ours-b"] && start.elapsed() < Duration::from_secs(5) {
        sleep(Duration::from_millis(200)).await;
        found = py.find(0, "ocr").await;
    }
    assert_eq!(
        found.worker_ids(),
        ["ours-a", "ours-b"],
        "their client reads service:ocr then worker:{{id}}: {found:?}"
    );
    for w in &found.workers {
        let id = w["worker_id"].as_str().unwrap();
        assert_eq!(w["tunnel_url"], tunnel(id), "their client reads our record's tunnel_url: {w}");
    }
    eprintln!("their client found our two workers {:?} after it connected", start.elapsed());

    // Theirs, heartbeating on a monotonic clock, found by ours.
    let record = py.register(0, "py-w1", &["ocr"]).await;
    assert!(record["last_seen"].as_f64().unwrap() < 1e9, "a monotonic last_seen: {record}");
    let all = ids(&["ours-a", "ours-b", "py-w1"]);
    let seen = wait_until(Duration::from_secs(5), || async { c.discovered_ids(3, "ocr").await == all }).await;
    assert!(seen.is_some(), "our discover finds the Python worker: {:?}", c.discovered_ids(3, "ocr").await);
    // It stays healthy for more than two liveness windows while it heartbeats.
    let until = Instant::now() + 2 * TTL + Duration::from_secs(1);
    while Instant::now() < until {
        for node in [1, 3] {
            assert_eq!(c.discovered_ids(node, "ocr").await, all, "node {node}: a live Python worker dropped out");
        }
        sleep(Duration::from_millis(700)).await;
    }
    assert!(py.beats(0, "py-w1").await >= 8, "the heartbeat loop ran");

    py.stop(0, "py-w1").await;
    assert_dies_after_one_window(&c, "py-w1", ids(&["ours-a", "ours-b"])).await;
}

/// A worker whose heartbeats just stopped leaves the discover of nodes 1
/// and 3 one window after its last beat, not before; `rest` stays.
async fn assert_dies_after_one_window(c: &Cluster, worker: &str, rest: BTreeSet<String>) {
    // It dies: gone from the discover of both reading nodes after the window,
    // not before. (Each node times the value from when it first saw it, so
    // both keep reading: a node that first reads the last value late keeps
    // the worker one window from then, as `liveness` documents.)
    let stopped = Instant::now();
    let mut gone = [None, None];
    while gone.iter().any(Option::is_none) && stopped.elapsed() < TTL + Duration::from_secs(4) {
        for (slot, node) in gone.iter_mut().zip([1, 3]) {
            let found = c.discovered_ids(node, "ocr").await;
            if slot.is_none() && !found.contains(worker) {
                assert_eq!(found, rest, "node {node}");
                *slot = Some(stopped.elapsed());
            }
        }
        sleep(Duration::from_millis(300)).await;
    }
    for (left, node) in gone.into_iter().zip([1, 3]) {
        let left = left.unwrap_or_else(|| panic!("node {node} still discovers the dead Python worker"));
        let earliest = TTL.saturating_sub(Duration::from_secs_f64(BEAT) + Duration::from_millis(500));
        assert!(left >= earliest, "node {node} dropped it {left:?} after its last beat, inside the window");
        eprintln!(
            "node {node}: a stopped Python worker left discover {left:?} after its heartbeats stopped (window {TTL:?})"
        );
    }
}

/// `theirs` platform workers register by read-modify-write of service:ocr
/// at the same moment as four of ours register through our four nodes;
/// one refresh later every one of them must be in the list their client
/// reads, readable by it, and in every node's discover.
async fn race(theirs: usize) {
    let c = cluster(4, short_windows()).await;
    let py = PlatformClient::connect(&c.bootstrap_url(0), theirs.max(2), BEAT).await.unwrap();
    let their_ids: Vec<String> = (0..theirs).map(|i| format!("py-{i}")).collect();
    let ours: Vec<String> = (0..4).map(|i| format!("ours-{i}")).collect();
    let mut registrations = tokio::task::JoinSet::new();
    for (i, id) in ours.iter().enumerate() {
        registrations.spawn(register(c.http.clone(), c.urls[i].clone(), id.clone(), vec!["ocr".into()], tunnel(id)));
    }
    py.register_all(&their_ids, &["ocr"]).await;
    while let Some(r) = registrations.join_next().await {
        r.unwrap();
    }
    let _beats: Vec<Heartbeats> = ours.iter().enumerate().map(|(i, id)| c.heartbeats(i, id)).collect();
    let raced = Instant::now();
    let everyone: BTreeSet<String> = their_ids.iter().chain(&ours).cloned().collect();
    let first = py.find(1, "ocr").await;
    // Poll past the deadline too, so a failure says how long it really took.
    let mut found = first.clone();
    let listed = |f: &common::platform::Found| f.ids.iter().cloned().collect::<BTreeSet<String>>();
    while listed(&found) != everyone && raced.elapsed() < 3 * REFRESH + Duration::from_secs(2) {
        sleep(Duration::from_millis(250)).await;
        found = py.find(1, "ocr").await;
    }
    let took = raced.elapsed();
    let lost: Vec<String> = everyone.difference(&listed(&found)).cloned().collect();
    assert!(lost.is_empty(), "{took:?} after the race {lost:?} are still missing from service:ocr");
    assert!(
        took <= REFRESH + Duration::from_millis(1500),
        "all listed only {took:?} after the race (refresh interval {REFRESH:?}); right after it the list held {:?}",
        first.ids
    );
    assert_eq!(found.worker_ids().into_iter().collect::<BTreeSet<_>>(), everyone, "their client reads every record");
    for node in 0..4 {
        assert_eq!(c.discovered_ids(node, "ocr").await, everyone, "node {node}'s discover");
    }
    eprintln!("{theirs} + 4 writers: right after the race service:ocr held {:?}; all {took:?} later", first.ids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn their_read_modify_write_racing_ours_loses_nobody_after_one_refresh() {
    if skip_without_python("their_read_modify_write_racing_ours_loses_nobody_after_one_refresh") {
        return;
    }
    race(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_of_their_writers_racing_each_other_and_ours_lose_nobody_after_one_refresh() {
    if skip_without_python("several_of_their_writers_racing_each_other_and_ours_lose_nobody_after_one_refresh") {
        return;
    }
    race(4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn their_client_bootstraps_from_our_document_by_tunnel_url_host() {
    if skip_without_python("their_client_bootstraps_from_our_document_by_tunnel_url_host") {
        return;
    }
    let c = cluster(3, short_windows()).await;
    let (status, doc) = c.send(c.http.get(c.bootstrap_url(1))).await;
    assert_eq!(status, 200, "{doc}");
    let udp: Vec<SocketAddr> = (0..3).map(|i| c.net.addr(i).unwrap()).collect();
    let seeds = doc["seeds"].as_array().expect("seeds");
    assert!(!seeds.is_empty(), "{doc}");
    for seed in seeds {
        let url = seed["tunnel_url"].as_str().unwrap_or_else(|| panic!("a seed without tunnel_url: {seed}"));
        let host = reqwest::Url::parse(url).unwrap().host_str().unwrap().to_owned();
        assert_eq!(json!(host), seed["host"], "the tunnel_url host is the seed's UDP host: {seed}");
        let port = seed["dht_port"].as_u64().unwrap() as u16;
        assert!(udp.contains(&SocketAddr::new(host.parse().unwrap(), port)), "{seed} is none of {udp:?}");
    }
    let py = PlatformClient::connect(&c.bootstrap_url(1), 1, BEAT).await.unwrap();
    assert_eq!(py.seeds, [("127.0.0.1".to_owned(), udp[1].port())], "their client's seeds, read as theirs reads them");
    // It joined the network: its writes reach our nodes and ours reach it.
    py.register(0, "py-boot", &["ocr"]).await;
    let got = c.net.nodes[2].node().get(kadmesh::discovery::worker_key("py-boot")).await.unwrap();
    assert!(got.value.is_some(), "our node reads the record their client wrote");
    let known = c.net.nodes[1].node().contacts().await.unwrap();
    assert!(known.iter().any(|k| k.addr == py.addrs[0]), "the seed learned their client");

    // A document like the old one (seeds without a URL) fails their client,
    // which is why ours must carry tunnel_url: the emulation raises as theirs does.
    let old = json!({"seeds": [{"node_id": "00", "host": "127.0.0.1", "dht_port": udp[0].port(), "tunnel_url": null}], "seed_count": 1, "ttl": 300});
    let (url, _stop) = serve_json(old).await;
    let err = PlatformClient::connect(&url, 1, BEAT).await.err().expect("a null tunnel_url must fail their client");
    assert!(err.contains("null tunnel_url"), "{err}");
}

/// Serves `doc` at `/api/dht/bootstrap` on an OS-chosen port; returns its URL.
async fn serve_json(doc: Value) -> (String, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/dht/bootstrap", listener.local_addr().unwrap());
    let app =
        axum::Router::new().route("/api/dht/bootstrap", axum::routing::get(move || async move { axum::Json(doc) }));
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
    });
    (url, tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_naming_no_services_is_assigned_some_and_found_by_both_sides() {
    if skip_without_python("a_worker_naming_no_services_is_assigned_some_and_found_by_both_sides") {
        return;
    }
    let c = cluster(3, short_windows()).await;
    let answer = c.register(0, "agent-1", &[], &tunnel("agent-1")).await;
    assert_eq!(answer["assigned_services"], json!(["ocr"]), "their agent launches what this names: {answer}");
    let _beats = c.heartbeats(0, "agent-1");
    let py = PlatformClient::connect(&c.bootstrap_url(2), 1, BEAT).await.unwrap();
    let listed = wait_until(Duration::from_secs(5), || async { py.find(0, "ocr").await.worker_ids() == ["agent-1"] });
    assert!(listed.await.is_some(), "their client finds the assigned worker: {:?}", py.find(0, "ocr").await);
    let find = c.workers(&format!("{}/api/worker/find/ocr", c.urls[2]), true).await;
    assert_eq!(find, [("agent-1".to_owned(), tunnel("agent-1"))], "their dht_router's route");
    assert_eq!(find, c.discover(2, "ocr", true).await, "find answers as discover does");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unregister_and_a_new_url_reach_every_node_within_a_second_and_their_client() {
    if skip_without_python("unregister_and_a_new_url_reach_every_node_within_a_second_and_their_client") {
        return;
    }
    // The default 1 s discover cache is on.
    let c = cluster(4, short_windows()).await;
    let w1_credential = c.register(0, "w-1", &["ocr"], &tunnel("w-1")).await["credential"].clone();
    let w2_credential = c.register(0, "w-2", &["ocr"], &tunnel("w-2")).await["credential"].clone();
    let w1_beats = c.heartbeats(0, "w-1");
    let mut w2_beats = c.heartbeats(0, "w-2");
    let py = PlatformClient::connect(&c.bootstrap_url(3), 1, BEAT).await.unwrap();
    let both = wait_until(Duration::from_secs(5), || async { py.find(0, "ocr").await.worker_ids() == ["w-1", "w-2"] });
    assert!(both.await.is_some(), "their client lists both: {:?}", py.find(0, "ocr").await);
    for node in 0..4 {
        assert_eq!(c.discover(node, "ocr", false).await.len(), 2, "node {node} caches both");
    }

    drop(w1_beats);
    c.unregister(0, "w-1", &w1_credential).await;
    let unregistered = Instant::now();
    let w2 = vec![("w-2".to_owned(), tunnel("w-2"))];
    assert_eq!(c.discover(2, "ocr", true).await, w2, "no-cache reads the DHT at once");
    sleep(Duration::from_millis(1000).saturating_sub(unregistered.elapsed()) + Duration::from_millis(50)).await;
    for node in 0..4 {
        assert_eq!(c.discover(node, "ocr", false).await, w2, "node {node} still names w-1 after 1 s");
    }
    let left = wait_until(REFRESH, || async { py.find(0, "ocr").await.ids == ["w-2"] }).await;
    assert!(left.is_some(), "w-1 is still in their list one refresh later: {:?}", py.find(0, "ocr").await);

    // w-2 registers again through node 3 with a new URL.
    let moved = "https://w-2-moved.example-tunnel.net";
    drop(std::mem::replace(&mut w2_beats, c.heartbeats(3, "w-2")));
    c.reregister(3, "w-2", moved, &w2_credential).await;
    let registered = Instant::now();
    sleep(Duration::from_millis(1000).saturating_sub(registered.elapsed()) + Duration::from_millis(50)).await;
    for node in 0..4 {
        assert_eq!(c.discover(node, "ocr", false).await, [("w-2".to_owned(), moved.to_owned())], "node {node}");
    }
    let theirs = wait_until(Duration::from_secs(1), || async {
        py.find(0, "ocr").await.workers.iter().any(|w| w["tunnel_url"] == moved)
    });
    assert!(theirs.await.is_some(), "their client reads the new URL: {:?}", py.find(0, "ocr").await);
    eprintln!("left their list {:?} after unregister", left.unwrap());
}
