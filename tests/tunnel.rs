//! The DHT over HTTP (issue 15 part 3): `POST /api/dht/rpc`, URL contacts
//! and the driver's HTTP transport, on loopback.
//!
//! A "UDP-blocked" node here runs with `refuse_udp_requests` (its driver
//! drops every request that arrives over UDP, as a stateful firewall drops
//! unsolicited datagrams; replies to its own requests pass) and announces
//! its HTTP URL as its tunnel. `tests/netns.rs` does the same with a real
//! firewall rule.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::eventually;
use kadmesh::discovery::testnet::Testnet;
use kadmesh::discovery::{Discovery, DiscoveryConfig};
use kadmesh::engine::Config;
use kadmesh::id::NodeId;
use kadmesh::limits::rate::Rate;
use kadmesh::node::{Node, NodeHandle, NodeOptions};
use kadmesh::tunnel;
use kadmesh::wire::{self, Call, Datagram, MessageId, Value, MAX_DATAGRAM};
use serde_json::Value as Json;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::oneshot;

/// A node serving HTTP on loopback: its handle, discovery, base URL and
/// the sender that stops the HTTP server.
struct HttpNode {
    node: NodeHandle,
    url: String,
    _stop: oneshot::Sender<()>,
}

/// Starts a node with `config`; with `blocked`, it refuses UDP requests and
/// announces its HTTP URL as its tunnel.
async fn http_node(config: Config, blocked: bool) -> HttpNode {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let config = Config { rng_seed: rand::random(), tunnel_url: blocked.then(|| url.clone()), ..config };
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let options = NodeOptions { refuse_udp_requests: blocked, ..NodeOptions::default() };
    let node = Node::spawn_with_options(socket, NodeId::random(&mut rand::thread_rng()), config, options).unwrap();
    let d = Discovery::new(node.clone(), DiscoveryConfig::default()).unwrap();
    let (stop, rx) = oneshot::channel::<()>();
    tokio::spawn(kadmesh::http::serve(listener, d, async {
        let _ = rx.await;
    }));
    HttpNode { node, url, _stop: stop }
}

fn request(call: Call) -> Vec<u8> {
    Datagram::Request { id: MessageId([7; 20]), call }.encode().unwrap()
}

async fn post(url: &str, body: Vec<u8>) -> reqwest::Response {
    reqwest::Client::new().post(format!("{url}/api/dht/rpc")).body(body).send().await.unwrap()
}

async fn error_code(r: reqwest::Response) -> String {
    let body: Json = r.json().await.expect("a JSON error body");
    body["error"].as_str().expect("an error code").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_route_answers_requests_and_refuses_malformed_and_oversized_bodies() {
    let n = http_node(Config::default(), false).await;
    let stranger = NodeId([1; 20]);

    let r = post(&n.url, request(Call::Ping { sender: stranger })).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/octet-stream");
    let reply = wire::decode(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(reply, Datagram::Response { id: MessageId([7; 20]), body: Value::Bin(n.node.id().0.to_vec()) });

    let r = post(&n.url, b"\x00not msgpack".to_vec()).await;
    assert_eq!((r.status().as_u16(), error_code(r).await.as_str()), (400, "invalid_input"));
    // A response datagram is not a request.
    let response = Datagram::Response { id: MessageId([7; 20]), body: Value::Nil }.encode().unwrap();
    let r = post(&n.url, response).await;
    assert_eq!((r.status().as_u16(), error_code(r).await.as_str()), (400, "invalid_input"));
    let r = post(&n.url, vec![0; MAX_DATAGRAM + 1]).await;
    assert_eq!((r.status().as_u16(), error_code(r).await.as_str()), (413, "payload_too_large"));
    // Silence over UDP is 204 over HTTP.
    let r = post(&n.url, request(Call::Other { name: "no_such_rpc".into(), args: vec![] })).await;
    assert_eq!(r.status(), 204);

    // An HTTP requester that announced no URL has no address: never learned.
    let contacts = n.node.contacts().await.unwrap();
    assert!(contacts.iter().all(|c| c.id != stranger), "{contacts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_route_is_rate_limited_per_ip_like_udp() {
    let mut config = Config::default();
    config.limits.exempt_loopback = false;
    config.limits.rate.per_ip = Rate { per_sec: 1, burst: 5 };
    let n = http_node(config, false).await;
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let r = post(&n.url, request(Call::Ping { sender: NodeId([2; 20]) })).await;
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            assert_eq!(error_code(r).await, "rate_limited");
        }
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert!((5..=7).contains(&ok), "the burst of 5 (plus at most a refill) passes: {statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 429), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&429));
}

/// Whether `node` holds `id` in its routing table at exactly `addr`.
async fn knows_at(node: &NodeHandle, id: NodeId, addr: SocketAddr) -> bool {
    node.contacts().await.unwrap().iter().any(|c| c.id == id && c.addr == addr)
}

/// Four UDP nodes and a UDP-blocked node `b` that joined them.
async fn network_with_blocked_node() -> (Testnet, HttpNode) {
    let net = Testnet::start(4, 0, Config::default(), DiscoveryConfig::default()).await.unwrap();
    let b = http_node(Config::default(), true).await;
    let boot = b.node.bootstrap(vec![net.addr(0).unwrap()]).await.unwrap();
    assert_eq!(boot.seeds_reached, 1, "{boot:?}");
    (net, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_blocked_node_is_a_full_node_for_kadmesh_peers() {
    let (net, b) = network_with_blocked_node().await;
    let at = tunnel::addr_of(&b.url);
    for d in &net.nodes {
        let peer = d.node().clone();
        // Every peer learns it through lookups: under its URL, never its UDP address.
        let _ = peer.find_node(b.node.id()).await.unwrap();
        eventually("every peer knows the blocked node at its URL", || knows_at(&peer, b.node.id(), at)).await;
        let found = peer.find_node(b.node.id()).await.unwrap();
        assert!(found.iter().any(|c| c.id == b.node.id() && c.addr == at), "not found: {found:?}");
        let contacts = peer.contacts().await.unwrap();
        assert!(contacts.iter().filter(|c| c.id == b.node.id()).all(|c| c.addr == at), "{contacts:?}");
    }

    // It stores: a key equal to its id has it among the closest.
    let key = b.node.id();
    let put = net.nodes[1].node().put(key, Value::Str("over-http".into())).await.unwrap();
    assert!(put.stored >= 1, "{put:?}");
    let held = b.node.with_engine(move |e, now| e.store().get(&key, now).map(|r| r.value.clone())).await.unwrap();
    assert_eq!(held, Some(Value::Str("over-http".into())), "the blocked node did not store the value");

    // It answers lookups (over HTTP only: it drops UDP requests) and looks up itself.
    let got = net.nodes[3].node().get(key).await.unwrap();
    assert_eq!(got.value, Some(Value::Str("over-http".into())), "{got:?}");
    let asked = b.node.with_engine(|e, _| e.stats().received[2] + e.stats().received[3]).await.unwrap();
    assert!(asked > 0, "nobody sent the blocked node a lookup request");
    let own = b.node.get(key).await.unwrap();
    assert_eq!(own.value, Some(Value::Str("over-http".into())), "{own:?}");
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_bootstraps_from_a_seed_given_by_url() {
    let (net, b) = network_with_blocked_node().await;
    let c = Node::bind("127.0.0.1:0".parse().unwrap(), Config::default()).await.unwrap();
    let seed = c.tunnel_addr(b.url.clone()).await.unwrap().expect("a usable URL");
    assert_eq!(c.tunnel_addr("ftp://nope".into()).await.unwrap(), None);
    let boot = c.bootstrap(vec![seed]).await.unwrap();
    assert_eq!(boot.seeds_reached, 1, "{boot:?}");
    assert!(knows_at(&c, b.node.id(), seed).await, "the URL seed is not in the table under its URL");
    let others = c.contacts().await.unwrap().len();
    assert!(others >= 3, "bootstrap through the URL seed found only {others} contacts");
    // Both ends count the exchanges, and the seed's /metrics shows them.
    let sent = c.tunnel_stats();
    assert!(sent.posts_answered >= 1 && sent.posts_failed == 0, "{sent:?}");
    let got = b.node.tunnel_stats().requests_received;
    assert!(got >= sent.posts_answered, "the seed saw {got} of {sent:?}");
    let metrics = reqwest::get(format!("{}/metrics", b.url)).await.unwrap().text().await.unwrap();
    let line = metrics.lines().find(|l| l.starts_with("kadmesh_tunnel_requests_received_total ")).unwrap_or("");
    let shown: u64 = line.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(shown >= got, "/metrics: {line:?}");
    net.shutdown().await;
}

/// The contacts `node` answers a raw `find_node` with, from a fresh socket.
async fn raw_find_node(sock: &UdpSocket, node: SocketAddr, sender: NodeId, target: NodeId) -> Vec<Value> {
    let find = Datagram::Request { id: MessageId([9; 20]), call: Call::FindNode { sender, key: target } };
    sock.send_to(&find.encode().unwrap(), node).await.unwrap();
    match response(sock, MessageId([9; 20])).await {
        Value::Array(entries) => entries,
        other => panic!("not a contact list: {other:?}"),
    }
}

/// The body of the response `id` on `sock`, skipping the node's own
/// requests to us (its check ping and hello).
async fn response(sock: &UdpSocket, id: MessageId) -> Value {
    let mut buf = vec![0; MAX_DATAGRAM];
    for _ in 0..20 {
        let n = tokio::time::timeout(Duration::from_secs(5), sock.recv(&mut buf)).await.unwrap().unwrap();
        if let Ok(Datagram::Response { id: got, body }) = wire::decode(&buf[..n]) {
            if got == id {
                return body;
            }
        }
    }
    panic!("no response {id:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_contacts_go_only_to_kadmesh_peers() {
    let (net, b) = network_with_blocked_node().await;
    let seed = net.nodes[0].node().clone();
    eventually("the seed knows the blocked node at its URL", || knows_at(&seed, b.node.id(), tunnel::addr_of(&b.url)))
        .await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = NodeId([3; 20]);
    let has_url = |entries: &[Value]| entries.iter().any(|e| format!("{e:?}").contains(&b.url));
    // A requester of unknown kind (a stock peer, as far as the seed knows).
    let entries = raw_find_node(&sock, seed.local_addr(), me, b.node.id()).await;
    assert!(!entries.is_empty() && !has_url(&entries), "{entries:?}");
    // After a kadmesh_hello it is one of ours and gets the URL contact.
    let hello = Call::Other { name: kadmesh::engine::HELLO.into(), args: vec![Value::Bin(me.0.to_vec())] };
    sock.send_to(&request(hello), seed.local_addr()).await.unwrap();
    let _ = response(&sock, MessageId([7; 20])).await;
    let entries = raw_find_node(&sock, seed.local_addr(), me, b.node.id()).await;
    assert!(has_url(&entries), "{entries:?}");
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_python_peers_never_see_url_contacts() {
    if common::python::skip_without_python("stock_python_peers_never_see_url_contacts") {
        return;
    }
    let (net, b) = network_with_blocked_node().await;
    let py = common::python::PyNode::spawn(&[net.addr(0).unwrap()]).await;
    // Python looks up the blocked node's id through kadmesh nodes that know it at its URL.
    let found = py.bootstrap(0, net.addr(1).unwrap()).await;
    let key_near_b = b.node.id().to_hex();
    let _ = py.cmd(&format!("@0 get {key_near_b}")).await;
    for (id, addr) in found.iter().chain(py.neighbors(0).await.iter()) {
        assert!(!tunnel::is_reserved(addr.ip()), "Python holds a tunnel address {addr}");
        assert_ne!(*id, b.node.id(), "Python learned the UDP-blocked node");
    }
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announced_url_that_answers_with_another_id_changes_nothing() {
    let net = Testnet::start(2, 0, Config::default(), DiscoveryConfig::default()).await.unwrap();
    let (seed, victim) = (net.nodes[0].node().clone(), net.nodes[1].node().clone());
    let udp = victim.local_addr();
    assert!(knows_at(&seed, victim.id(), udp).await);
    // A stranger claims the victim's id and points at a URL served by someone else.
    let other = http_node(Config::default(), false).await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let args = vec![Value::Bin(victim.id().0.to_vec()), Value::Str(other.url.clone())];
    sock.send_to(&request(Call::Other { name: kadmesh::engine::HELLO.into(), args }), seed.local_addr()).await.unwrap();
    let _ = response(&sock, MessageId([7; 20])).await;
    // The seed pinged the URL (the other node answered with its own id) and kept the victim as it was.
    let asked = other.node.clone();
    eventually("the seed pinged the announced URL", || async {
        asked.with_engine(|e, _| e.stats().received[0]).await.unwrap() > 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(knows_at(&seed, victim.id(), udp).await, "{:?}", seed.contacts().await.unwrap());
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_forwarded_by_a_local_tunnel_agent_are_limited_by_the_forwarded_ip() {
    // Loopback is exempt by default: a local agent's own requests are never limited...
    let mut config = Config::default();
    config.limits.rate.per_ip = Rate { per_sec: 1, burst: 3 };
    let n = http_node(config, false).await;
    let client = reqwest::Client::new();
    let ping = || request(Call::Ping { sender: NodeId([4; 20]) });
    for _ in 0..10 {
        assert_eq!(post(&n.url, ping()).await.status(), 200);
    }
    // ...but what it forwards for a remote client is charged to that client.
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let r = client
            .post(format!("{}/api/dht/rpc", n.url))
            .header("x-forwarded-for", "203.0.113.5")
            .body(ping())
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert!(statuses.contains(&429) && statuses.contains(&200), "{statuses:?}");
}
