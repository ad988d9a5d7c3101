//! The relay (issue 15, `proto-spec/EXTENSIONS.md` §8): `POST
//! /api/dht/relay` sends one request datagram over UDP for an HTTP client
//! and returns the reply; a node with no UDP socket at all
//! ([`Node::spawn_without_udp`]) is a full client of the DHT through it.
//! All on loopback.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::eventually;
use kadmesh::discovery::input::{DiscoverFilter, Registration};
use kadmesh::discovery::testnet::Testnet;
use kadmesh::discovery::{Discovery, DiscoveryConfig};
use kadmesh::engine::Config;
use kadmesh::id::NodeId;
use kadmesh::limits::rate::Rate;
use kadmesh::node::{Node, NodeHandle, NodeOptions, RelayResult, RelaySettings};
use kadmesh::reach::Reachability;
use kadmesh::tunnel;
use kadmesh::wire::{self, Call, Datagram, MessageId, Value, MAX_DATAGRAM};
use serde_json::Value as Json;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::oneshot;

/// A node serving HTTP on loopback (a relay).
struct HttpNode {
    node: NodeHandle,
    url: String,
    _stop: oneshot::Sender<()>,
}

async fn serve(node: NodeHandle, listener: TcpListener) -> (String, oneshot::Sender<()>) {
    let url = format!("http://{}", listener.local_addr().unwrap());
    let d = Discovery::new(node, DiscoveryConfig::default()).unwrap();
    let (stop, rx) = oneshot::channel::<()>();
    tokio::spawn(kadmesh::http::serve(listener, d, async {
        let _ = rx.await;
    }));
    (url, stop)
}

async fn relay_node(config: Config, relay: RelaySettings) -> HttpNode {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let options = NodeOptions { relay, ..NodeOptions::default() };
    let config = Config { rng_seed: rand::random(), ..config };
    let node = Node::spawn_with_options(socket, NodeId::random(&mut rand::thread_rng()), config, options).unwrap();
    let (url, _stop) = serve(node.clone(), listener).await;
    HttpNode { node, url, _stop }
}

fn ping(sender: NodeId) -> Vec<u8> {
    Datagram::Request { id: MessageId([7; 20]), call: Call::Ping { sender } }.encode().unwrap()
}

async fn relay(url: &str, to: &str, body: Vec<u8>) -> reqwest::Response {
    let c = reqwest::Client::new();
    c.post(format!("{url}/api/dht/relay")).header("X-Kadmesh-Relay-To", to).body(body).send().await.unwrap()
}

async fn error_code(r: reqwest::Response) -> String {
    let body: Json = r.json().await.expect("a JSON error body");
    body["error"].as_str().expect("an error code").to_owned()
}

async fn status_and_code(r: reqwest::Response) -> (u16, String) {
    (r.status().as_u16(), error_code(r).await)
}

/// A relay `r` and a UDP node `t` that answered `r` (a verified contact).
async fn relay_and_target(config: Config, settings: RelaySettings) -> (HttpNode, NodeHandle) {
    let r = relay_node(config, settings).await;
    let t = Node::bind("127.0.0.1:0".parse().unwrap(), Config::default()).await.unwrap();
    assert!(r.node.ping(t.local_addr()).await.unwrap().is_some(), "the target did not answer the relay");
    (r, t)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_forwards_to_a_known_contact_and_returns_its_reply_under_the_clients_id() {
    let (r, t) = relay_and_target(Config::default(), RelaySettings::default()).await;
    // The target sees the relay's address and a marked id, never the client's id 7777...
    let client = NodeId([5; 20]);
    let resp = relay(&r.url, &t.local_addr().to_string(), ping(client)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/octet-stream");
    let reply = wire::decode(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(reply, Datagram::Response { id: MessageId([7; 20]), body: Value::Bin(t.id().0.to_vec()) });
    // The id was marked on the way: the target did not insert the client at the relay's address.
    let held = t.contacts().await.unwrap();
    assert!(held.iter().all(|c| c.id != client), "the target learned the relayed client: {held:?}");
    let seen = t.with_engine(|e, _| e.stats().client_requests).await.unwrap();
    assert!(seen >= 1, "the relayed request did not carry the client mark");
    assert_eq!(r.node.relay_stats().get(RelayResult::Answered), 1);
    let metrics = reqwest::get(format!("{}/metrics", r.url)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("kadmesh_relay_requests_total{result=\"answered\"} 1\n"), "{metrics}");
    // The relay itself as target: answered as /api/dht/rpc would.
    let resp = relay(&r.url, &r.node.local_addr().to_string(), ping(client)).await;
    assert_eq!(resp.status(), 200);
    let reply = wire::decode(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(reply, Datagram::Response { id: MessageId([7; 20]), body: Value::Bin(r.node.id().0.to_vec()) });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_refuses_unknown_targets_responses_garbage_bad_headers_and_oversized_bodies() {
    let (r, t) = relay_and_target(Config::default(), RelaySettings::default()).await;
    let known = t.local_addr().to_string();
    // Not a UDP reflector: an address that never answered the relay is refused, nothing is sent.
    let victim = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let resp = relay(&r.url, &victim.local_addr().unwrap().to_string(), ping(NodeId([1; 20]))).await;
    assert_eq!(status_and_code(resp).await, (403, "unknown_target".into()));
    let mut buf = [0u8; 64];
    let got = tokio::time::timeout(Duration::from_millis(300), victim.recv_from(&mut buf)).await;
    assert!(got.is_err(), "the relay sent to an unknown address");
    let tunnel_addr = tunnel::addr_of("http://127.0.0.1:9").to_string();
    assert_eq!(status_and_code(relay(&r.url, &tunnel_addr, ping(NodeId([1; 20]))).await).await.0, 403);
    // Only request datagrams.
    let response = Datagram::Response { id: MessageId([7; 20]), body: Value::Nil }.encode().unwrap();
    assert_eq!(status_and_code(relay(&r.url, &known, response).await).await, (400, "invalid_input".into()));
    assert_eq!(status_and_code(relay(&r.url, &known, b"\x00garbage".to_vec()).await).await.0, 400);
    assert_eq!(status_and_code(relay(&r.url, &known, Vec::new()).await).await.0, 400);
    // The target header.
    for bad in ["", "localhost:80", "127.0.0.1", "127.0.0.1:0", "not an address"] {
        assert_eq!(status_and_code(relay(&r.url, bad, ping(NodeId([1; 20]))).await).await.0, 400, "{bad:?}");
    }
    let none = reqwest::Client::new().post(format!("{}/api/dht/relay", r.url)).body(ping(NodeId([1; 20])));
    assert_eq!(status_and_code(none.send().await.unwrap()).await.0, 400);
    let resp = relay(&r.url, &known, vec![0; MAX_DATAGRAM + 1]).await;
    assert_eq!(status_and_code(resp).await, (413, "payload_too_large".into()));
    let s = r.node.relay_stats();
    assert_eq!(s.get(RelayResult::UnknownTarget), 2, "{s:?}");
    assert_eq!(s.get(RelayResult::Invalid), 9, "{s:?}");
    assert_eq!(s.get(RelayResult::TooLarge), 1, "{s:?}");
    assert_eq!(s.get(RelayResult::Answered), 0, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_shares_the_per_ip_rate_limit_with_the_rpc_route() {
    let mut config = Config::default();
    config.limits.exempt_loopback = false;
    config.limits.rate.per_ip = Rate { per_sec: 1, burst: 5 };
    let (r, t) = relay_and_target(config, RelaySettings::default()).await;
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(relay(&r.url, &t.local_addr().to_string(), ping(NodeId([2; 20]))).await.status().as_u16());
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    // The target's own UDP requests to the relay come from 127.0.0.1 too and share the bucket.
    assert!((1..=7).contains(&ok), "at most the burst (plus a refill) passes: {statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 429), "{statuses:?}");
    // The same bucket as /api/dht/rpc: it is empty there too.
    let rpc = reqwest::Client::new().post(format!("{}/api/dht/rpc", r.url)).body(ping(NodeId([2; 20])));
    assert_eq!(rpc.send().await.unwrap().status(), 429);
    assert!(r.node.relay_stats().get(RelayResult::Limited) >= 13);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_target_is_504_and_requests_beyond_the_in_flight_bound_are_503() {
    let settings = RelaySettings { timeout: Duration::from_millis(800), max_in_flight: 1 };
    let (r, t) = relay_and_target(Config::default(), settings).await;
    let target = t.local_addr().to_string();
    t.shutdown().await;
    let (first, second) = tokio::join!(relay(&r.url, &target, ping(NodeId([3; 20]))), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        relay(&r.url, &target, ping(NodeId([3; 20]))).await
    });
    assert_eq!(status_and_code(first).await, (504, "timeout".into()));
    assert_eq!(status_and_code(second).await, (503, "unavailable".into()));
    // The timed-out one no longer holds the slot.
    assert_eq!(relay(&r.url, &target, ping(NodeId([3; 20]))).await.status(), 504);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_named_in_a_relayed_reply_becomes_a_relay_target() {
    // The relay knows A only; A knows B. A client's lookup goes A, then B.
    let (r, a) = relay_and_target(Config::default(), RelaySettings::default()).await;
    let b = Node::bind("127.0.0.1:0".parse().unwrap(), Config::default()).await.unwrap();
    assert!(a.ping(b.local_addr()).await.unwrap().is_some());
    let b_addr = b.local_addr().to_string();
    let client = NodeId([6; 20]);
    assert_eq!(relay(&r.url, &b_addr, ping(client)).await.status(), 403, "B is nobody the relay knows yet");
    let find = Datagram::Request { id: MessageId([8; 20]), call: Call::FindNode { sender: client, key: b.id() } };
    let resp = relay(&r.url, &a.local_addr().to_string(), find.encode().unwrap()).await;
    assert_eq!(resp.status(), 200);
    let Ok(Datagram::Response { body, .. }) = wire::decode(&resp.bytes().await.unwrap()) else { panic!("no reply") };
    let named = wire::parse_find_node_reply(&body).unwrap();
    assert!(named.iter().any(|c| c.addr == b.local_addr()), "A did not name B: {named:?}");
    let resp = relay(&r.url, &b_addr, ping(client)).await;
    assert_eq!(resp.status(), 200, "the relay refused a contact a relayed reply named");
    assert!(!r.node.contacts().await.unwrap().iter().any(|c| c.id == b.id()), "the relay learned B otherwise");
}

fn registration(id: &str) -> Registration {
    Registration {
        worker_id: id.to_owned(),
        tunnel_url: format!("https://{id}.example-tunnel.net"),
        services: vec!["ocr".into()],
        capabilities: serde_json::Map::new(),
        vpn_ip: None,
        containers: None,
        endorsement: None,
    }
}

fn worker_ids(answer: &kadmesh::discovery::DiscoverAnswer) -> Vec<String> {
    let json = answer.to_json(0.0, Duration::from_secs(300));
    json["workers"].as_array().unwrap().iter().map(|w| w["worker_id"].as_str().unwrap().to_owned()).collect()
}

/// Four UDP nodes and a relay with HTTP: a five-node loopback network.
async fn network_with_relay() -> (Testnet, HttpNode) {
    let quiet = DiscoveryConfig { cache_ttl: Duration::ZERO, ..DiscoveryConfig::default() };
    let net = Testnet::start(4, 0, Config::default(), quiet).await.unwrap();
    let r = relay_node(Config::default(), RelaySettings::default()).await;
    let boot = r.node.bootstrap(vec![net.addr(0).unwrap()]).await.unwrap();
    assert_eq!(boot.seeds_reached, 1, "{boot:?}");
    (net, r)
}

/// A node without UDP that joined through the relay at `url`.
async fn no_udp_node(url: &str) -> Discovery {
    let options = NodeOptions { relays: vec![url.to_owned()], ..NodeOptions::default() };
    let config = Config { rng_seed: rand::random(), ..Config::default() };
    let c = Node::spawn_without_udp(NodeId::random(&mut rand::thread_rng()), config, options).unwrap();
    let seed = c.tunnel_addr(url.to_owned()).await.unwrap().unwrap();
    let boot = c.bootstrap(vec![seed]).await.unwrap();
    assert_eq!(boot.seeds_reached, 1, "{boot:?}");
    let quiet = DiscoveryConfig { cache_ttl: Duration::ZERO, ..DiscoveryConfig::default() };
    Discovery::new(c, quiet).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_udp_puts_gets_registers_and_discovers_through_a_relay() {
    let (net, r) = network_with_relay().await;
    let d = no_udp_node(&r.url).await;
    let c = d.node().clone();
    let verdict = c.reachability().await.unwrap();
    assert_eq!((verdict.state, verdict.reason.starts_with("--no-udp")), (Reachability::NoUdp, true), "{verdict:?}");
    assert!(c.with_engine(|e, _| e.is_client()).await.unwrap());
    let udp_contacts = c.contacts().await.unwrap().into_iter().filter(|k| !tunnel::is_tunnel(k.addr)).count();
    assert!(udp_contacts >= 3, "the lookup through the relay found only {udp_contacts} UDP contacts");

    let key = NodeId::for_key("relayed-key");
    let put = c.put(key, Value::Str("via-relay".into())).await.unwrap();
    assert!(put.stored >= 3, "{put:?}");
    let got = net.nodes[2].node().get(key).await.unwrap();
    assert_eq!(got.value, Some(Value::Str("via-relay".into())), "{got:?}");
    let other = NodeId::for_key("udp-key");
    net.nodes[3].node().put(other, Value::Str("from-udp".into())).await.unwrap();
    let got = c.get(other).await.unwrap();
    assert_eq!(got.value, Some(Value::Str("from-udp".into())), "{got:?}");

    d.register(registration("relayed-worker"), None).await.unwrap();
    net.nodes[1].register(registration("udp-worker"), None).await.unwrap();
    let (seen_there, seen_here) = (net.nodes[0].clone(), d.clone());
    eventually("a UDP node discovers the worker registered without UDP", || async {
        let a = seen_there.discover("ocr", &DiscoverFilter::default()).await;
        a.is_ok_and(|a| worker_ids(&a).contains(&"relayed-worker".to_owned()))
    })
    .await;
    eventually("the node without UDP discovers the UDP worker", || async {
        let a = seen_here.discover("ocr", &DiscoverFilter::default()).await;
        a.is_ok_and(|a| worker_ids(&a).contains(&"udp-worker".to_owned()))
    })
    .await;

    // Never in anyone's routing table, under any address.
    for n in net.nodes.iter().map(|d| d.node().clone()).chain([r.node.clone()]) {
        let held = n.contacts().await.unwrap();
        assert!(held.iter().all(|k| k.id != c.id()), "{} holds the client: {held:?}", n.id());
    }
    let relayed = r.node.relay_stats().get(RelayResult::Answered);
    assert!(relayed >= 5, "only {relayed} requests went through the relay");
    assert_eq!(c.tunnel_stats().posts_dropped, 0);
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_udp_moves_to_the_next_relay_when_one_is_down() {
    let (net, r) = network_with_relay().await;
    // A URL nobody serves, first in the list.
    let dead = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let options = NodeOptions { relays: vec![dead_url, r.url.clone()], ..NodeOptions::default() };
    let c = Node::spawn_without_udp(NodeId::random(&mut rand::thread_rng()), Config::default(), options).unwrap();
    let seed: SocketAddr = net.addr(0).unwrap();
    // The first ping goes to the dead relay and is lost; the bootstrap retries on the next one.
    let mut reached = 0;
    for _ in 0..3 {
        reached = c.bootstrap(vec![seed]).await.unwrap().seeds_reached;
        if reached > 0 {
            break;
        }
    }
    assert_eq!(reached, 1, "no bootstrap through the second relay");
    assert!(c.tunnel_stats().posts_failed >= 1);
    net.shutdown().await;
}

/// A stock Python `kademlia` peer as the relay's target: it answers the
/// relayed ping like any, and the client gets the reply under its own id.
/// The Python peer ignores the client mark (EXTENSIONS §8.2), so what this
/// checks is the wire: the relayed request is a plain rpcudp datagram a
/// stock peer answers, and the answer finds its way back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stock_python_peer_answers_through_the_relay() {
    let r = relay_node(Config::default(), RelaySettings::default()).await;
    let py = common::python::PyNode::spawn(&[]).await;
    assert!(r.node.ping(py.addr(0)).await.unwrap().is_some(), "the Python peer did not answer the relay");
    let resp = relay(&r.url, &py.addr(0).to_string(), ping(NodeId([6; 20]))).await;
    assert_eq!(resp.status(), 200);
    let reply = wire::decode(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(reply, Datagram::Response { id: MessageId([7; 20]), body: Value::Bin(py.id(0).0.to_vec()) });
    assert_eq!(r.node.relay_stats().get(RelayResult::Answered), 1);
}
