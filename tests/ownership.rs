//! Records nobody can forge (issue 14), over real loopback networks: owned
//! registrations over HTTP (hijack by re-register on the same and another
//! node, foreign unregister and status change), forged and replayed UDP
//! `store`s of `worker:{id}`, forged and replayed provider entries,
//! tunnel_url hygiene, the operator's API token,
//! and a worker key surviving a node restart through its data directory.

mod common;

use common::cluster::{cluster, Cluster};

use std::net::SocketAddr;
use std::time::Duration;

use kadmesh::discovery::testnet::Testnet;
use kadmesh::discovery::wire::{write_calls, Announce};
use kadmesh::discovery::{worker_key, Discovery, DiscoveryConfig};
use kadmesh::engine::Config;
use kadmesh::id::NodeId;
use kadmesh::wire::{Call, Datagram, MessageId, Value};
use serde_json::{json, Value as Json};

fn config() -> DiscoveryConfig {
    DiscoveryConfig { cache_ttl: Duration::ZERO, min_republish: Duration::ZERO, ..DiscoveryConfig::default() }
}

fn url_of(id: &str, tag: &str) -> String {
    format!("https://{id}-{tag}.example-tunnel.net")
}

impl Cluster {
    async fn send(&self, req: reqwest::RequestBuilder, credential: Option<&str>) -> (u16, Json) {
        let req = match credential {
            Some(c) => req.header("X-Kadmesh-Credential", c),
            None => req,
        };
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    async fn register(&self, node: usize, id: &str, url: &str, credential: Option<&str>) -> (u16, Json) {
        let body = json!({"worker_id": id, "tunnel_url": url, "capabilities": {}, "services": ["ocr"]});
        self.send(self.http.post(format!("{}/api/worker/register", self.urls[node])).json(&body), credential).await
    }

    async fn heartbeat(&self, node: usize, body: Json, credential: Option<&str>) -> (u16, Json) {
        self.send(self.http.post(format!("{}/api/worker/heartbeat", self.urls[node])).json(&body), credential).await
    }

    async fn unregister(&self, node: usize, id: &str, credential: Option<&str>) -> (u16, Json) {
        let url = format!("{}/api/worker/unregister/{id}", self.urls[node]);
        self.send(self.http.delete(url), credential).await
    }

    /// (worker id, tunnel_url, verified) of each worker node `node`
    /// discovers for `ocr`, read from the DHT (no cache).
    async fn discover(&self, node: usize) -> Vec<(String, String, bool)> {
        let req = self.http.get(format!("{}/api/services/discover/ocr", self.urls[node]));
        let (_, v) = self.send(req.header("Cache-Control", "no-cache"), None).await;
        let workers = v["workers"].as_array().cloned().unwrap_or_default();
        let s = |w: &Json, k: &str| w[k].as_str().unwrap_or_default().to_owned();
        workers.iter().map(|w| (s(w, "worker_id"), s(w, "tunnel_url"), w["verified"] == true)).collect()
    }

    /// Asserts every node discovers exactly `id` at `url`, signed.
    async fn all_see(&self, id: &str, url: &str) {
        for node in 0..self.urls.len() {
            assert_eq!(self.discover(node).await, [(id.to_owned(), url.to_owned(), true)], "node {node}");
        }
    }
}

fn assert_refused(got: (u16, Json), status: u16, code: &str) {
    assert_eq!((got.0, got.1["error"].as_str()), (status, Some(code)), "{}", got.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reregistration_with_a_new_url_needs_the_credential_on_every_node() {
    let c = cluster(4, config()).await;
    let (status, v) = c.register(0, "w1", &url_of("w1", "a"), None).await;
    assert_eq!(status, 200, "{v}");
    let cred = v["credential"].as_str().unwrap().to_owned();
    assert_eq!(cred.len(), 64);
    let stranger = "11".repeat(32);
    for node in [0, 2] {
        assert_refused(c.register(node, "w1", &url_of("w1", "evil"), None).await, 403, "forbidden");
        assert_refused(c.register(node, "w1", &url_of("w1", "evil"), Some(&stranger)).await, 403, "forbidden");
    }
    c.all_see("w1", &url_of("w1", "a")).await;
    // The owner moves through node 2 with its credential; node 0 lets go.
    let (status, v) = c.register(2, "w1", &url_of("w1", "b"), Some(&cred)).await;
    assert_eq!((status, v["credential"].as_str()), (200, Some(cred.as_str())), "{v}");
    c.all_see("w1", &url_of("w1", "b")).await;
    for _ in 0..50 {
        c.net.nodes[0].discover_with("ocr", &Default::default(), false).await.unwrap();
        if c.net.nodes[0].local_worker_count() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(c.net.nodes[0].local_worker_count(), 0, "node 0 let go of the worker that moved");
    c.net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_cannot_unregister_or_change_status_but_the_platform_agent_keeps_working() {
    let c = cluster(3, config()).await;
    let url = url_of("w2", "a");
    let (_, v) = c.register(0, "w2", &url, None).await;
    let cred = v["credential"].as_str().unwrap().to_owned();
    assert_refused(c.unregister(0, "w2", None).await, 403, "forbidden");
    assert_refused(c.unregister(0, "w2", Some(&"22".repeat(32))).await, 403, "forbidden");
    assert_refused(c.heartbeat(0, json!({"worker_id": "w2", "status": "busy"}), None).await, 403, "forbidden");
    c.all_see("w2", &url).await;
    // What the platform's agent sends, without any credential, still works.
    let beat = json!({"worker_id": "w2", "status": "healthy", "current_load": 0.4, "loaded_models": [],
                      "active_requests": 0, "gpu_utilization": 0.0, "services_status": {}});
    assert_eq!(c.heartbeat(0, beat, None).await.0, 200);
    let (status, v) = c.register(0, "w2", &url, None).await;
    assert_eq!((status, &v["credential"]), (200, &Json::Null), "same URL, no credential: accepted, not revealed");
    c.all_see("w2", &url).await;
    // The owner can do all of it.
    let busy = json!({"worker_id": "w2", "status": "busy"});
    assert_eq!(c.heartbeat(0, busy, Some(&cred)).await.0, 200);
    assert_eq!(c.unregister(0, "w2", Some(&cred)).await.0, 200);
    assert!(c.discover(1).await.is_empty());
    // An unregistered id is free again.
    let (status, v) = c.register(1, "w2", &url_of("w2", "new-owner"), None).await;
    assert_eq!(status, 200, "{v}");
    assert_ne!(v["credential"].as_str(), Some(cred.as_str()));
    c.net.shutdown().await;
}

/// Sends `value` as a raw `store` of `worker:{id}` to `to`; the reply.
async fn raw_store(sock: &tokio::net::UdpSocket, to: SocketAddr, id: &str, value: &str) -> Option<bool> {
    let call = Call::Store { sender: NodeId([0x42; 20]), key: worker_key(id), value: Value::from(value) };
    let msg = MessageId([0x5a; 20]);
    sock.send_to(&Datagram::Request { id: msg, call }.encode().unwrap(), to).await.unwrap();
    let mut buf = vec![0u8; 65_536];
    for _ in 0..50 {
        let n = tokio::time::timeout(Duration::from_secs(2), sock.recv(&mut buf)).await.ok()?.unwrap();
        if let Ok(Datagram::Response { id, body }) = kadmesh::wire::decode(&buf[..n]) {
            if id == msg {
                return body.as_bool();
            }
        }
    }
    None
}

/// The `worker:{id}` text node `node` holds in its own store.
async fn held(d: &Discovery, id: &str) -> Option<String> {
    let key = worker_key(id);
    let v = d.node().with_engine(move |e, now| e.store().get(&key, now).map(|r| r.value.clone())).await.unwrap();
    v.and_then(|v| v.as_str().map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_replayed_udp_stores_are_refused_and_never_discovered() {
    let c = cluster(4, config()).await;
    let (_, v) = c.register(0, "w3", &url_of("w3", "a"), None).await;
    let cred = v["credential"].as_str().unwrap().to_owned();
    let old = held(&c.net.nodes[0], "w3").await.expect("the registering node keeps a copy");
    assert!(kadmesh::signed::verify(&old).is_ok(), "{old}");
    let (_, _) = c.register(0, "w3", &url_of("w3", "b"), Some(&cred)).await;
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let unsigned = json!({"worker_id": "w3", "tunnel_url": url_of("w3", "evil"), "services": ["ocr"],
                          "last_seen": 4e9, "version": u64::MAX / 2})
    .to_string();
    // A record signed by another key, with a far higher seq.
    let thief = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let pk = hex::encode(thief.verifying_key().to_bytes());
    let t = format!(
        r#"{{"worker_id":"w3","tunnel_url":"{}","services":["ocr"],"expires_at":4e9,"public_key":"{pk}","seq":1}}"#,
        url_of("w3", "evil")
    );
    let foreign = kadmesh::signed::sign(&t, &thief).unwrap();
    let mut tampered = held(&c.net.nodes[0], "w3").await.unwrap();
    tampered = tampered.replace(&url_of("w3", "b"), &url_of("w3", "evil"));
    for i in 0..4 {
        let to = c.net.addr(i).unwrap();
        for (what, value) in
            [("unsigned", &unsigned), ("foreign key", &foreign), ("tampered", &tampered), ("replay", &old)]
        {
            assert_eq!(raw_store(&sock, to, "w3", value).await, Some(false), "node {i} took the {what} record");
        }
    }
    c.all_see("w3", &url_of("w3", "b")).await;
    c.net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dangerous_tunnel_urls_are_refused_with_400_and_urls_are_normalised() {
    let c = cluster(2, DiscoveryConfig { refuse_private_urls: true, ..config() }).await;
    for bad in [
        "https://user:pw@w.example.net",
        "https://w.example.net/\r\nX: y",
        "http://169.254.169.254/",
        "http://[fe80::1]:80/",
        "http://127.0.0.1:8000",
        "http://localhost:8000",
    ] {
        assert_refused(c.register(0, "w4", bad, None).await, 400, "invalid_input");
    }
    let (status, v) = c.register(0, "w4", "HTTPS://W4.Example-Tunnel.NET/", None).await;
    assert_eq!((status, v["tunnel_url"].as_str()), (200, Some("https://w4.example-tunnel.net")), "{v}");
    c.net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_api_token_state_changing_routes_need_it() {
    let c = cluster(2, DiscoveryConfig { api_token: Some("s3cret".into()), ..config() }).await;
    assert_refused(c.register(0, "w5", &url_of("w5", "a"), None).await, 401, "unauthorized");
    let body = json!({"worker_id": "w5", "tunnel_url": url_of("w5", "a"), "services": ["ocr"]});
    let post = c.http.post(format!("{}/api/worker/register", c.urls[0])).json(&body);
    let (status, v) = c.send(post.bearer_auth("s3cret"), None).await;
    assert_eq!(status, 200, "{v}");
    assert_refused(c.heartbeat(0, json!({"worker_id": "w5"}), None).await, 401, "unauthorized");
    assert_refused(c.unregister(0, "w5", v["credential"].as_str()).await, 401, "unauthorized");
    assert_eq!(c.discover(1).await.len(), 1, "reads need no token");
    c.net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_key_survives_a_node_restart_through_the_data_dir() {
    let net = Testnet::start(3, 0, Config::default(), config()).await.unwrap();
    let seed = net.addr(0).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let keyed = DiscoveryConfig { key_dir: Some(dir.path().to_owned()), ..config() };
    let start = |cfg: DiscoveryConfig| async move {
        let node = kadmesh::node::Node::bind("127.0.0.1:0".parse().unwrap(), Config::default()).await.unwrap();
        node.bootstrap(vec![seed]).await.unwrap();
        Discovery::new(node, cfg).unwrap()
    };
    let reg = |url: &str| kadmesh::discovery::input::parse_registration(&json!({"worker_id": "w6", "tunnel_url": url}));
    let first = start(keyed.clone()).await;
    let out = first.register(reg(&url_of("w6", "a")).unwrap(), None).await.unwrap();
    let public_key = out.record.public_key.clone();
    first.node().shutdown().await;
    // A node without the key file cannot speak for the worker...
    let stranger = start(config()).await;
    let refused = stranger.register(reg(&url_of("w6", "a")).unwrap(), None).await;
    assert!(matches!(refused, Err(kadmesh::discovery::DiscoveryError::Forbidden(_))), "{refused:?}");
    // ...the restarted one, with it, re-registers the worker without a credential.
    let again = start(keyed).await;
    let out = again.register(reg(&url_of("w6", "a")).unwrap(), None).await.unwrap();
    assert_eq!((out.record.public_key, out.credential), (public_key, None));
    again.node().shutdown().await;
    stranger.node().shutdown().await;
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_python_peers_keep_our_signed_records_and_their_forgeries_lose() {
    let c = cluster(3, config()).await;
    let py = common::python::PyNode::spawn(&[c.net.addr(0).unwrap()]).await;
    let (status, v) = c.register(1, "w7", &url_of("w7", "a"), None).await;
    assert_eq!(status, 200, "{v}");
    let ours = py.get(0, "worker:w7").await.expect("the Python peer finds our record");
    let text = ours.as_str().expect("a JSON string, as Python peers store it").to_owned();
    let info = kadmesh::signed::verify(&text).expect("byte for byte what we signed");
    assert_eq!(info.worker_id, "w7");
    // A stock peer writes a forgery under the same key: the kadmesh replicas
    // refuse it, the Python peer keeps it, and no node discovers it.
    let forged = json!({"worker_id": "w7", "tunnel_url": url_of("w7", "evil"), "services": ["ocr"],
                        "last_seen": 4e9})
    .to_string();
    py.set(0, "worker:w7", &Value::from(forged.as_str())).await;
    c.all_see("w7", &url_of("w7", "a")).await;
    // The platform-style record a stock peer writes for its own worker is
    // still read, and marked unverified.
    let legacy = json!({"worker_id": "py-1", "tunnel_url": url_of("py-1", "a"), "services": ["ocr"],
                        "capabilities": {}, "last_seen": kadmesh::node::Clock::new().unix_secs()})
    .to_string();
    assert!(py.set(0, "worker:py-1", &Value::from(legacy.as_str())).await);
    assert!(py.set(0, "service:ocr", &Value::from(r#"["py-1"]"#)).await);
    let mut found = c.discover(2).await;
    found.sort();
    assert_eq!(found, [("py-1".into(), url_of("py-1", "a"), false), ("w7".into(), url_of("w7", "a"), true)]);
    c.net.shutdown().await;
}

/// Sends each of `calls` as a raw request to node `to`; the replies (the
/// accepted counts of provider writes), in order.
async fn raw_calls(sock: &tokio::net::UdpSocket, to: SocketAddr, calls: Vec<Call>) -> Vec<Option<u64>> {
    let mut replies = Vec::new();
    for (n, call) in calls.into_iter().enumerate() {
        let msg = MessageId([0x60 + n as u8; 20]);
        sock.send_to(&Datagram::Request { id: msg, call }.encode().unwrap(), to).await.unwrap();
        let mut buf = vec![0u8; 65_536];
        let mut reply = None;
        for _ in 0..50 {
            let Ok(Ok(len)) = tokio::time::timeout(Duration::from_secs(2), sock.recv(&mut buf)).await else { break };
            if let Ok(Datagram::Response { id, body }) = kadmesh::wire::decode(&buf[..len]) {
                if id == msg {
                    reply = kadmesh::discovery::wire::parse_write_reply(&body);
                    break;
                }
            }
        }
        replies.push(reply);
    }
    replies
}

/// The `ocr` provider entry of `id` node `d` holds: (version, gone, signed).
async fn held_entry(d: &Discovery, id: &str) -> Option<(u64, bool, bool)> {
    let (key, id) = (kadmesh::discovery::service_key("ocr"), id.to_owned());
    d.node()
        .with_engine(move |e, now| {
            let p = e.providers().range(&key, None, now).find(|p| p.id == id)?;
            Some((p.version, p.gone, p.signature.is_some()))
        })
        .await
        .unwrap()
}

/// Waits (bounded) until every node holds a live signed `ocr` entry of `id`.
async fn every_node_holds_signed(c: &Cluster, id: &str) {
    for _ in 0..100 {
        let mut all = true;
        for d in &c.net.nodes {
            all &= held_entry(d, id).await.is_some_and(|(_, gone, signed)| signed && !gone);
        }
        if all {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not every node holds the signed entry of {id}");
}

fn forged(id: &str, version: u64, load: Option<f64>) -> Announce {
    Announce { id: id.into(), version, ttl: Duration::from_secs(86_400), load, signature: None }
}

fn ocr_calls(items: &[Announce], remove: bool) -> Vec<Call> {
    write_calls(NodeId([0x42; 20]), kadmesh::discovery::service_key("ocr"), items, remove)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_provider_remove_is_refused_and_never_hides_a_worker() {
    let c = cluster(4, config()).await;
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // Before w9 ever registers, every replica takes an unsigned tombstone
    // with the largest version (nothing binds the id yet).
    for i in 0..4 {
        let replies =
            raw_calls(&sock, c.net.addr(i).unwrap(), ocr_calls(&[forged("w9", i64::MAX as u64, None)], true)).await;
        assert_eq!(replies, [Some(1)], "node {i}");
    }
    let (_, v) = c.register(0, "w8", &url_of("w8", "a"), None).await;
    let cred = v["credential"].as_str().unwrap().to_owned();
    c.register(1, "w9", &url_of("w9", "a"), None).await;
    every_node_holds_signed(&c, "w8").await;
    every_node_holds_signed(&c, "w9").await;
    // Now w8's signed entry binds its id: an unsigned tombstone with the
    // largest version and one signed by another key are refused everywhere.
    let thief = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let now_ms = kadmesh::node::Clock::new().unix_secs() as u64 * 1000;
    let set = kadmesh::discovery::service_key("ocr");
    let stolen = forged("w8", now_ms + 60_000, None).signed(&set, true, now_ms / 1000 + 600, &thief);
    for i in 0..4 {
        let to = c.net.addr(i).unwrap();
        let replies = raw_calls(&sock, to, ocr_calls(&[forged("w8", i64::MAX as u64, None)], true)).await;
        assert_eq!(replies, [Some(0)], "node {i} took the unsigned tombstone");
        assert_eq!(raw_calls(&sock, to, ocr_calls(std::slice::from_ref(&stolen), true)).await, [Some(0)], "node {i}");
    }
    let seen = c.net.nodes[2].find_providers("ocr").await.unwrap();
    assert_eq!((seen.live, seen.removed), (vec!["w8".to_owned(), "w9".to_owned()], vec![]));
    // A re-registration with a new URL is found everywhere too.
    c.register(2, "w8", &url_of("w8", "b"), Some(&cred)).await;
    for node in 0..4 {
        let mut found = c.discover(node).await;
        found.sort();
        let want = [("w8".into(), url_of("w8", "b"), true), ("w9".into(), url_of("w9", "a"), true)];
        assert_eq!(found, want, "node {node}");
    }
    c.net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_provider_add_makes_no_fake_worker_recommended() {
    let c = cluster(4, config()).await;
    c.register(0, "w10", &url_of("w10", "a"), None).await;
    let (status, v) = c.heartbeat(0, json!({"worker_id": "w10", "load": 0.7}), None).await;
    assert_eq!(status, 200, "{v}");
    every_node_holds_signed(&c, "w10").await;
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // A fake worker: an unsigned provider entry and an unsigned record,
    // idle, so it would lead any ranking by load.
    let now = kadmesh::node::Clock::new().unix_secs();
    let fake = json!({"worker_id": "fake-1", "tunnel_url": url_of("fake-1", "evil"), "services": ["ocr"],
                      "last_seen": now, "expires_at": now + 600.0, "status": "healthy", "load": 0.0})
    .to_string();
    for i in 0..4 {
        let to = c.net.addr(i).unwrap();
        raw_calls(&sock, to, ocr_calls(&[forged("fake-1", 1, Some(0.0))], false)).await;
        assert_eq!(raw_store(&sock, to, "fake-1", &fake).await, Some(true), "stock peers' records stay storable");
        // An unsigned add over the real worker's signed entry is refused.
        let replies = raw_calls(&sock, to, ocr_calls(&[forged("w10", i64::MAX as u64, Some(0.0))], false)).await;
        assert_eq!(replies, [Some(0)], "node {i}");
    }
    for node in 0..4 {
        let req = c.http.get(format!("{}/api/services/discover/ocr", c.urls[node]));
        let (_, v) = c.send(req.header("Cache-Control", "no-cache"), None).await;
        assert_eq!(v["recommended"], "w10", "node {node}: {v}");
        let found = c.discover(node).await;
        assert!(found.contains(&("fake-1".into(), url_of("fake-1", "evil"), false)), "node {node}: {found:?}");
    }
    c.net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_older_signed_provider_entry_changes_nothing() {
    let c = cluster(3, config()).await;
    let (_, v) = c.register(0, "w11", &url_of("w11", "a"), None).await;
    let cred = v["credential"].as_str().unwrap().to_owned();
    every_node_holds_signed(&c, "w11").await;
    let set = kadmesh::discovery::service_key("ocr");
    let old = c.net.nodes[1]
        .node()
        .with_engine(move |e, now| e.providers().range(&set, None, now).find(|p| p.id == "w11").cloned())
        .await
        .unwrap()
        .unwrap();
    // Unregister (a signed tombstone), then replay the old signed add.
    assert_eq!(c.unregister(0, "w11", Some(&cred)).await.0, 200);
    let removed = held_entry(&c.net.nodes[1], "w11").await;
    assert!(removed.is_some_and(|(v, gone, signed)| gone && signed && v > old.version), "{removed:?}");
    let replay = Announce {
        id: old.id.clone(),
        version: old.version,
        ttl: Duration::from_secs(600),
        load: old.load,
        signature: old.signature.clone(),
    };
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for i in 0..3 {
        raw_calls(&sock, c.net.addr(i).unwrap(), ocr_calls(std::slice::from_ref(&replay), false)).await;
        assert_eq!(held_entry(&c.net.nodes[i], "w11").await, removed, "node {i}: the replay changed the entry");
    }
    let seen = c.net.nodes[2].find_providers("ocr").await.unwrap();
    assert_eq!((seen.live, seen.removed), (vec![], vec!["w11".to_owned()]));
    c.net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endorsement_mode_serves_only_workers_the_coordinator_certified() {
    use ed25519_dalek::SigningKey;
    let coordinator = SigningKey::from_bytes(&[0xc0; 32]);
    let cfg = DiscoveryConfig { endorsement_key: Some(coordinator.verifying_key()), ..config() };
    let c = cluster(3, cfg).await;
    let until = kadmesh::node::Clock::new().unix_secs() as u64 + 3600;
    let register = |id: &'static str, key: SigningKey, cert: Option<Json>| {
        let body = json!({"worker_id": id, "tunnel_url": url_of(id, "a"), "services": ["ocr"], "endorsement": cert,
                          "credential": hex::encode(key.to_bytes())});
        c.send(c.http.post(format!("{}/api/worker/register", c.urls[0])).json(&body), None)
    };
    let (a, b, thief) =
        (SigningKey::from_bytes(&[1; 32]), SigningKey::from_bytes(&[2; 32]), SigningKey::from_bytes(&[3; 32]));
    let cert_a = kadmesh::endorsement::endorse(&coordinator, "wa", &a.verifying_key().to_bytes(), until);
    assert_eq!(register("wa", a.clone(), Some(cert_a.to_json())).await.0, 200);
    assert_eq!(register("wb", b, None).await.0, 200);
    // A certificate copied from another worker's record does not fit this key.
    let cert_for_a = kadmesh::endorsement::endorse(&coordinator, "wc", &a.verifying_key().to_bytes(), until);
    assert_eq!(register("wc", thief, Some(cert_for_a.to_json())).await.0, 200);
    let expired = kadmesh::endorsement::endorse(&coordinator, "wd", &a.verifying_key().to_bytes(), 1);
    assert_eq!(register("wd", a, Some(expired.to_json())).await.0, 200);
    for node in 0..3 {
        let ids: Vec<String> = c.discover(node).await.into_iter().map(|(id, _, _)| id).collect();
        assert_eq!(ids, ["wa"], "node {node}");
    }
    c.net.shutdown().await;
}

/// The body of a request of worker `id` that keeps its own `key`: its
/// record signed as in EXTENSIONS.md §5.1 and its `ocr` entry signed as in
/// §3.5 (a tombstone of both when `status` is "offline").
fn own_record(key: &ed25519_dalek::SigningKey, id: &str, url: &str, seq: u64, status: &str, load: f64) -> Json {
    use kadmesh::engine::providers::signature::{sign, Signed};
    let now = kadmesh::node::Clock::new().unix_secs().floor();
    let gone = status == "offline";
    let expires = if gone { now } else { now + 300.0 };
    let pk = hex::encode(key.verifying_key().to_bytes());
    let t = json!({"worker_id": id, "tunnel_url": url, "services": ["ocr"], "status": status, "last_seen": now,
                   "expires_at": expires, "load": load, "public_key": pk, "seq": seq})
    .to_string();
    let set = kadmesh::discovery::service_key("ocr");
    let until = expires as u64 + 600;
    let entry = Signed { key: &set, id, version: seq, gone, load: (!gone).then_some(load), expires_at: until };
    let sig = hex::encode(sign(&entry, key).sig);
    json!({"signed_record": kadmesh::signed::sign(&t, key).unwrap(),
           "entry_signatures": {"ocr": {"expires_at": until, "sig": sig}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_its_own_key_registers_heartbeats_and_re_registers() {
    let c = cluster(3, config()).await;
    let post = |node: usize, path: &str, body: Json| {
        c.send(c.http.post(format!("{}/api/worker/{path}", c.urls[node])).json(&body), None)
    };
    let me = ed25519_dalek::SigningKey::from_bytes(&[0x31; 32]);
    let seq = kadmesh::node::Clock::new().unix_secs() as u64 * 1000;
    let (a, b) = (url_of("w12", "a"), url_of("w12", "b"));
    let (status, v) = post(0, "register", own_record(&me, "w12", &a, seq, "healthy", 0.2)).await;
    assert_eq!(status, 200, "{v}");
    assert!(v["credential"].is_null(), "the node never knew the secret: {v}");
    assert_eq!(v["public_key"], hex::encode(me.verifying_key().to_bytes()));
    every_node_holds_signed(&c, "w12").await;
    c.all_see("w12", &a).await;
    let (status, v) = post(0, "heartbeat", own_record(&me, "w12", &a, seq + 1, "healthy", 0.9)).await;
    assert_eq!((status, v["published"].as_bool()), (200, Some(true)), "{v}");
    let plain = post(0, "heartbeat", json!({"worker_id": "w12", "current_load": 0.1})).await;
    assert_refused(plain, 403, "forbidden");
    // Another key, on this node or another, and a replay are refused.
    let thief = ed25519_dalek::SigningKey::from_bytes(&[0x32; 32]);
    for node in [0, 1] {
        let stolen = own_record(&thief, "w12", &url_of("w12", "evil"), seq + 100, "healthy", 0.0);
        assert_refused(post(node, "register", stolen).await, 403, "forbidden");
    }
    assert_refused(post(0, "register", own_record(&me, "w12", &a, seq, "healthy", 0.2)).await, 403, "forbidden");
    // Re-registered with a new URL through another node: found everywhere.
    let (status, v) = post(1, "register", own_record(&me, "w12", &b, seq + 2, "healthy", 0.2)).await;
    assert_eq!(status, 200, "{v}");
    c.all_see("w12", &b).await;
    // Unregistered with its signed tombstone.
    let url = format!("{}/api/worker/unregister/w12", c.urls[1]);
    let tomb = own_record(&me, "w12", &b, seq + 3, "offline", 0.0);
    let (status, v) = c.send(c.http.delete(url).json(&tomb), None).await;
    assert_eq!(status, 200, "{v}");
    for node in 0..3 {
        assert_eq!(c.discover(node).await, [], "node {node}");
    }
    c.net.shutdown().await;
}
