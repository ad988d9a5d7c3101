//! What a stranger (an address that never answered one of the node's
//! queries) can get out of a node, on loopback with the loopback exemption
//! off: one ping to a node holding 1,000 records brings back a handful of
//! small datagrams; every procedure's reply is at most 10 times its
//! request; a ping carrying a live contact's id from another address does
//! not move that contact; one socket claiming 1,000 fresh ids gets only a
//! few into the routing table; and 100,000 fresh ids leave every map bounded.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::raw::{limited, Raw};
use kadmesh::engine::providers::{ProviderEntry, ADD, LIST};
use kadmesh::engine::{Engine, HELLO, STORE_TTL};
use kadmesh::id::NodeId;
use kadmesh::limits::{Limits, RateLimits};
use kadmesh::node::{Node, NodeHandle};
use kadmesh::store::Record;
use kadmesh::time::Time;
use kadmesh::wire::{Call, Value};

async fn node() -> NodeHandle {
    Node::bind(SocketAddr::from(([127, 0, 0, 1], 0)), limited(Limits::default())).await.unwrap()
}

/// Holds `n` records of `bytes` each; returns the first key.
async fn hold(n: &NodeHandle, count: u32, bytes: usize) -> NodeId {
    n.with_engine(move |e, now| {
        for i in 0..count {
            let key = NodeId::for_key(&format!("record-{i}"));
            let value = Value::Bin(vec![1; bytes]);
            let size = value.to_msgpack().len();
            let expires_at = now + Duration::from_secs(3600);
            e.restore_record(now, Record { key, value, publisher: None, stored_at: now, expires_at, size });
        }
    })
    .await
    .unwrap();
    NodeId::for_key("record-0")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_ping_from_a_fresh_source_brings_back_a_handful_of_small_datagrams() {
    let n = node().await;
    hold(&n, 1_000, 2_000).await;
    let stranger = Raw::bind([127, 0, 30, 1]).await;
    let ping = Raw::request(1, Call::Ping { sender: stranger.id });
    stranger.sock.send_to(&ping, n.local_addr()).await.unwrap();
    // Everything that comes back: the reply, the node's check ping (which
    // the stranger never answers, so no record is handed over), a probe.
    let got = stranger.drain(Duration::from_millis(2500)).await;
    let bytes: usize = got.iter().map(Vec::len).sum();
    eprintln!("one {}-byte ping: {} datagrams, {bytes} bytes back", ping.len(), got.len());
    assert!(!got.is_empty() && got.len() <= 4, "{} datagrams to a stranger", got.len());
    assert!(bytes <= 10 * ping.len(), "{bytes} bytes for a {}-byte ping", ping.len());
}

/// Every procedure a stranger can call, with arguments that make the
/// largest reply the node can give.
fn calls(me: NodeId, big: NodeId, service: NodeId) -> Vec<(&'static str, Call)> {
    let id = |x: NodeId| Value::Bin(x.0.to_vec());
    let entry = Value::Array(vec![Value::from("w-x"), Value::Int(1), Value::Int(60), Value::Nil]);
    let other = |name: &str, args| Call::Other { name: name.into(), args };
    vec![
        ("ping", Call::Ping { sender: me }),
        ("store", Call::Store { sender: me, key: NodeId([9; 20]), value: Value::Int(1) }),
        ("find_node", Call::FindNode { sender: me, key: NodeId([0x55; 20]) }),
        ("find_value (held, 6 KB)", Call::FindValue { sender: me, key: big }),
        ("find_value (missing)", Call::FindValue { sender: me, key: NodeId([0x66; 20]) }),
        ("stun", Call::Stun),
        ("kadmesh_hello", other(HELLO, vec![id(me)])),
        ("kadmesh_store_ttl", other(STORE_TTL, vec![id(me), id(NodeId([8; 20])), Value::Int(1), Value::Int(60)])),
        ("kadmesh_provider_add", other(ADD, vec![id(me), id(service), Value::Array(vec![entry])])),
        ("kadmesh_providers", other(LIST, vec![id(me), id(service), Value::Nil, Value::Int(256)])),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reply_to_an_unverified_source_is_at_most_ten_times_its_request() {
    let n = node().await;
    // Twenty good contacts (they answer the node's check pings), so a
    // find_node reply could carry k of them.
    let mut peers = Vec::new();
    for _ in 0..20 {
        let p = Node::bind(SocketAddr::from(([127, 0, 0, 1], 0)), Default::default()).await.unwrap();
        p.bootstrap(vec![n.local_addr()]).await.unwrap();
        peers.push(p);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let big = hold(&n, 1, 6_000).await;
    let service = NodeId::for_key("service:ocr");
    n.with_engine(move |e, now| {
        for i in 0..500 {
            let expires_at = now + Duration::from_secs(600);
            let entry = ProviderEntry {
                id: format!("worker-{i:04}"),
                version: 1,
                expires_at,
                load: Some(0.5),
                gone: false,
                signature: None,
            };
            e.provider_upsert(now, service, entry);
        }
    })
    .await
    .unwrap();
    let stranger = Raw::bind([127, 0, 31, 1]).await;
    for (i, (name, call)) in calls(stranger.id, big, service).into_iter().enumerate() {
        let (request, reply) = stranger.call(n.local_addr(), i as u32, call, Duration::from_secs(2)).await;
        let got = reply.map_or(0, |r| r.len());
        eprintln!("{name:28} request {request:4} B, reply {got:5} B, ratio {:.1}", got as f64 / request as f64);
        assert!(got <= 10 * request, "{name}: {got} bytes for a {request}-byte request");
        assert!(got > 0 || name == "kadmesh_providers", "{name} unanswered");
    }
    let trimmed = n.with_engine(|e, _| e.limit_stats().replies_trimmed).await.unwrap();
    assert!(trimmed >= 1, "the held 6 KB value should have been withheld ({trimmed})");
    // A newcomer that answers the node's check ping is verified, and gets
    // the value itself.
    let newcomer = Raw::bind([127, 0, 33, 1]).await;
    let ping = Raw::request(200, Call::Ping { sender: newcomer.id });
    newcomer.sock.send_to(&ping, n.local_addr()).await.unwrap();
    let checks = newcomer.answer_pings(Duration::from_millis(500)).await;
    let fv = Call::FindValue { sender: newcomer.id, key: big };
    let (_, reply) = newcomer.call(n.local_addr(), 201, fv, Duration::from_secs(2)).await;
    let got = reply.map_or(0, |r| r.len());
    assert!(checks >= 1 && got > 6_000, "after answering {checks} check ping(s) the value came back as {got} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_takeover_ping_does_not_move_a_live_contact() {
    let n = node().await;
    let victim = Node::bind(SocketAddr::from(([127, 0, 0, 1], 0)), Default::default()).await.unwrap();
    victim.bootstrap(vec![n.local_addr()]).await.unwrap();
    let (vid, vaddr) = (victim.id(), victim.local_addr());
    let known = n.with_engine(move |e, _| e.routing().get(&vid)).await.unwrap();
    assert_eq!(known.map(|c| c.addr), Some(vaddr));
    let attacker = Raw::bind([127, 0, 32, 1]).await;
    for i in 0..5 {
        attacker.call(n.local_addr(), i, Call::Ping { sender: vid }, Duration::from_millis(300)).await;
    }
    let now_known = n.with_engine(move |e, _| e.routing().get(&vid)).await.unwrap();
    assert_eq!(now_known.map(|c| c.addr), Some(vaddr), "a ping from elsewhere moved a live contact");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_socket_claiming_a_thousand_fresh_ids_gets_only_a_few_into_the_table() {
    // The rate limiter off, so every ping reaches the engine and only the
    // churn bound decides.
    let rate = RateLimits { enabled: false, ..RateLimits::default() };
    let n =
        Node::bind(SocketAddr::from(([127, 0, 0, 1], 0)), limited(Limits { rate, ..Limits::default() })).await.unwrap();
    let flooder = Raw::bind([127, 0, 33, 1]).await;
    let mut answered = 0;
    for i in 0..1_000u32 {
        let id = NodeId::digest(&i.to_be_bytes());
        let (_, reply) = flooder.call(n.local_addr(), i, Call::Ping { sender: id }, Duration::from_secs(1)).await;
        answered += usize::from(reply.is_some());
    }
    let (table, stats) = n.with_engine(|e, _| (e.routing().contacts().count(), e.limit_stats())).await.unwrap();
    let bound = kadmesh::limits::ChurnLimits::default().ids_per_ip;
    eprintln!("1,000 fresh ids from one socket: {table} in the table, {} refused", stats.churn_refusals);
    assert_eq!(answered, 1_000, "the pings themselves are answered");
    assert_eq!(table, bound, "at most {bound} ids of one address enter the table");
    assert_eq!(stats.churn_refusals, 1_000 - bound as u64);
    assert!(stats.peer_state.0 <= bound && stats.peer_state.1 <= bound, "{:?}", stats.peer_state);
}

#[test]
fn a_hundred_thousand_fresh_ids_leave_every_map_bounded() {
    let rate = RateLimits { max_sources: 1_000, ..RateLimits::default() };
    let limits = Limits { rate, max_peer_state: 500, exempt_loopback: false, ..Limits::default() };
    let mut e = Engine::new(NodeId([1; 20]), kadmesh::engine::Config { limits, ..Default::default() }, Time::ZERO);
    for i in 0..100_000u32 {
        let id = NodeId::random(&mut rand::thread_rng());
        let from = SocketAddr::from((i.to_be_bytes(), 4000));
        let hello = Call::Other { name: HELLO.into(), args: vec![Value::Bin(id.0.to_vec())] };
        // One request per source per 10 ms of virtual time: the global bucket
        // lets most through, so the maps behind it see every fresh id.
        let now = Time::from_millis(u64::from(i) * 10);
        e.handle_datagram(now, from, &Raw::request(i, hello));
        e.handle_datagram(now, from, &Raw::request(i, Call::Ping { sender: id }));
        while e.poll_transmit().is_some() {}
    }
    let s = e.limit_stats();
    eprintln!("after 100k fresh ids: {s:?}, routing table {}", e.routing().len());
    assert!(s.rate.passed > 100_000, "the ids reached the engine: {s:?}");
    assert!(s.peer_state.0 <= 500 && s.peer_state.1 <= 500, "{s:?}");
    assert!(s.rate_sources.0 <= 1_000 && s.rate_sources.1 <= 1_000, "{s:?}");
    assert!(e.routing().len() <= 160 * 20);
}

#[test]
fn limits_match_the_store_defaults() {
    use kadmesh::engine::providers::ProviderLimits;
    use kadmesh::limits::Quota;
    use kadmesh::store::StoreLimits;
    let (store, providers) = (StoreLimits::default(), ProviderLimits::default());
    let l = Limits::default();
    assert_eq!(l.records, Quota::records(store.max_records, store.max_bytes));
    assert_eq!(l.providers, Quota::providers(providers.max_entries));
}
