//! Interop with the real Python `kademlia` 2.2.3 package (issue #2).
//!
//! Every test runs stock Python `Server`s (through `tests/interop/pynode.py`,
//! see `common::python`) next to kadmesh nodes on 127.0.0.1 and checks one
//! promise of wire compatibility: bootstrap both ways, values crossing both
//! ways byte-identical, ping/stun both ways, a mixed 10 + 10 network where
//! every key is found from every node, dead peers of either kind costing time
//! but not answers, malformed input not disturbing Python peers, and replies
//! leaving from the socket the request arrived on, and values too big for a
//! `store` request refused up front instead of breaking Python's `get`.
//! All Python servers of a test share one process (`PyNode::spawn_many`).
//! Needs `KADMESH_PYTHON` (or `.venv`): run through `scripts/test`.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use common::python::PyNode;
use kadmesh::engine::Config;
use kadmesh::id::NodeId;
use kadmesh::node::{Node, NodeHandle};
use kadmesh::wire::{self, Call, Datagram, MessageId, Value};
use tokio::net::UdpSocket;
use tokio::task::JoinSet;

const LOCALHOST: [u8; 4] = [127, 0, 0, 1];

async fn rust_node() -> NodeHandle {
    rust_node_with(Config::default()).await
}

async fn rust_node_with(config: Config) -> NodeHandle {
    // A random rng seed: nodes seeded alike would draw the same message ids.
    let config = Config { rng_seed: rand::random(), ..config };
    Node::bind(SocketAddr::from((LOCALHOST, 0)), config).await.expect("bind 127.0.0.1:0")
}

fn has_contact(contacts: &[(NodeId, SocketAddr)], id: NodeId, addr: SocketAddr) -> bool {
    contacts.iter().any(|&(i, a)| i == id && a == addr)
}

async fn rust_contacts(node: &NodeHandle) -> Vec<(NodeId, SocketAddr)> {
    node.contacts().await.expect("node running").into_iter().map(|c| (c.id, c.addr)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_bootstraps_from_rust_and_rust_from_python() {
    let seed = rust_node().await;
    let py = PyNode::spawn(&[seed.local_addr()]).await;
    assert!(
        has_contact(&py.neighbors(0).await, seed.id(), seed.local_addr()),
        "the Python node bootstrapped from Rust but does not know it"
    );
    assert!(has_contact(&rust_contacts(&seed).await, py.id(0), py.addr(0)), "Rust seed did not learn the Python node");

    let joiner = rust_node().await;
    let b = joiner.bootstrap(vec![py.addr(0)]).await.expect("bootstrap");
    assert_eq!((b.seeds_reached, b.seeds_tried), (1, 1), "{b:?}");
    let table = rust_contacts(&joiner).await;
    assert!(has_contact(&table, py.id(0), py.addr(0)), "joiner lacks its Python seed: {table:?}");
    assert!(
        has_contact(&table, seed.id(), seed.local_addr()),
        "joiner did not find the Rust node via Python: {table:?}"
    );
    assert!(
        has_contact(&py.neighbors(0).await, joiner.id(), joiner.local_addr()),
        "the Python seed did not record the Rust joiner at its real address"
    );
}

/// Values as the platform's Python workers write them, plus every other type
/// `Server.set` accepts, with edge cases.
fn platform_values() -> Vec<(String, Value)> {
    let worker = r#"{"worker_id": "worker-gpu-001", "tunnel_url": "https://w1.example.trycloudflare.com", "services": ["ocr", "llm-inference"], "capabilities": {"has_gpu": true, "gpu_type": "NVIDIA RTX 3090", "cpu_cores": 16}, "vpn_ip": "10.8.0.3", "last_seen": 1732417200.125}"#;
    let services = r#"["worker-gpu-001", "worker-7"]"#;
    let mut values = vec![
        ("worker:worker-gpu-001".to_owned(), Value::from(worker)),
        ("service:ocr".to_owned(), Value::from(services)),
        ("coordinators:eu-west".to_owned(), Value::from(r#"["c1"]"#)),
        ("unicode".to_owned(), Value::from("caf\u{e9} \u{1F600} \"q\" \\ \n\t{\"x\": \"\\u00e9\"}")),
        ("empty-str".to_owned(), Value::from("")),
        ("long-str".to_owned(), Value::Str("x".repeat(4000))),
        // The largest str a `store` request can carry (8192-byte body limit).
        ("max-str".to_owned(), Value::Str("m".repeat(8137))),
    ];
    let ints = [0, 1, -1, 127, 128, -32, -33, 255, 65_536, i64::from(i32::MIN) - 1, i64::MAX, i64::MIN];
    values.extend(ints.iter().map(|&i| (format!("int:{i}"), Value::Int(i))));
    values.push(("uint:max".to_owned(), Value::UInt(u64::MAX)));
    let floats = [0.0, -0.0, 1.5, -2.25e-300, f64::MAX, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 0.1];
    values.extend(floats.iter().enumerate().map(|(n, &f)| (format!("float:{n}"), Value::F64(f))));
    values.push(("bool:true".to_owned(), Value::Bool(true)));
    values.push(("bool:false".to_owned(), Value::Bool(false)));
    values.push(("bytes:empty".to_owned(), Value::Bin(vec![])));
    values.push(("bytes:all".to_owned(), Value::Bin((0..=255).collect())));
    values
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_cross_both_ways_byte_identical() {
    let rust = [rust_node().await, rust_node().await];
    let py = PyNode::spawn_many(2, &[rust[0].local_addr()]).await;
    rust[1].bootstrap(vec![py.addr(1)]).await.expect("bootstrap");
    let mut bad = Vec::new();
    for (key, value) in platform_values() {
        let (from_py, from_rust) = (format!("py/{key}"), format!("rs/{key}"));
        assert!(py.set(0, &from_py, &value).await, "python could not set {from_py}");
        let put = rust[0].put(NodeId::for_key(&from_rust), value.clone()).await.expect("put");
        assert!(put.stored >= 1, "rust stored {from_rust} nowhere: {put:?}");

        let got = rust[1].get(NodeId::for_key(&from_py)).await.expect("get").value;
        if got.as_ref() != Some(&value) {
            bad.push(format!("python set, rust got {from_py}: {got:?} != {value:?}"));
        }
        let got = py.get(1, &from_rust).await;
        if got.as_ref() != Some(&value) {
            bad.push(format!("rust put, python got {from_rust}: {got:?} != {value:?}"));
        }
    }
    assert!(bad.is_empty(), "values changed in transit:\n{}", bad.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_and_stun_both_ways() {
    let rust = rust_node().await;
    let py = PyNode::spawn(&[]).await;
    let pong = rust.ping(py.addr(0)).await.expect("ping").expect("python answered ping");
    assert_eq!(pong.id, py.id(0));
    assert_eq!(rust.stun(py.addr(0)).await.expect("stun"), Some(rust.local_addr()), "python saw another address");
    assert_eq!(py.ping(0, rust.local_addr()).await, Some(rust.id()), "rust's ping reply");
    assert_eq!(py.stun(0, rust.local_addr()).await, Some(py.addr(0)), "rust's stun reply");
}

/// k for the mixed network: far below its 20 nodes, so most lookups must
/// walk routing tables across both implementations instead of finding every
/// value in their own store.
const MIXED_K: usize = 4;

/// Starts 10 Rust nodes and 10 Python servers (one process), interleaved:
/// Python bootstraps from the first Rust node, the other Rust nodes from
/// Python servers.
async fn mixed_network(k: usize) -> (Vec<NodeHandle>, PyNode) {
    let mut rust = Vec::new();
    for _ in 0..10 {
        rust.push(rust_node_with(Config { k, ..Config::default() }).await);
    }
    let py = PyNode::spawn_with_k(10, k, &[rust[0].local_addr()]).await;
    let mut joins = JoinSet::new();
    for (i, node) in rust.iter().enumerate().skip(1) {
        let (node, seed) = (node.clone(), py.addr(i));
        joins.spawn(async move { node.bootstrap(vec![seed]).await });
    }
    while let Some(b) = joins.join_next().await {
        let b = b.expect("task").expect("bootstrap");
        assert_eq!(b.seeds_reached, 1, "{b:?}");
    }
    (rust, py)
}

/// One key per node, set from that node; returns the keys with their values.
/// Each Rust put must reach `min_stored` peers.
async fn set_one_key_per_node(rust: &[NodeHandle], py: &PyNode, min_stored: usize) -> Vec<(String, Value)> {
    let mut keys = Vec::new();
    for i in 0..py.count() {
        let (key, value) = (format!("worker:py-{i}"), Value::Str(format!(r#"{{"worker_id": "py-{i}"}}"#)));
        assert!(py.set(i, &key, &value).await, "python {i} could not set {key}");
        keys.push((key, value));
    }
    let mut puts = JoinSet::new();
    for (i, node) in rust.iter().enumerate() {
        let (key, value) = (format!("worker:rs-{i}"), Value::Str(format!(r#"{{"worker_id": "rs-{i}"}}"#)));
        keys.push((key.clone(), value.clone()));
        let node = node.clone();
        puts.spawn(async move { (node.put(NodeId::for_key(&key), value).await, key) });
    }
    while let Some(r) = puts.join_next().await {
        let (put, key) = r.expect("task");
        let put = put.expect("put");
        assert!(put.stored >= min_stored, "{key} stored at only {} of {} nodes", put.stored, put.attempted);
    }
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_network_of_ten_and_ten_finds_every_key_from_every_node() {
    let (rust, py) = mixed_network(MIXED_K).await;
    let keys = set_one_key_per_node(&rust, &py, MIXED_K / 2).await;
    let (misses, remote) = read_everywhere(&keys, &rust, &py).await;
    assert!(misses.is_empty(), "{} of 400 lookups failed:\n{}", misses.len(), misses.join("\n"));
    eprintln!("mixed network: {remote} of 400 lookups found the value on another node");
    // Replication to k nodes (plus handover) must leave most readers without a copy.
    assert!(remote >= 200, "only {remote} of 400 lookups left the reader's own store");
}

/// Datagrams a Rust node must drop without harm: short, unknown type, bad
/// msgpack, wrong shapes, decoder bombs, oversize, forged replies.
fn malformed_datagrams() -> Vec<Vec<u8>> {
    let header = |kind: u8| -> Vec<u8> { std::iter::once(kind).chain([7u8; 20]).collect() };
    let with = |kind: u8, body: &[u8]| -> Vec<u8> { [header(kind), body.to_vec()].concat() };
    let call = |name: &str, args: Vec<Value>| -> Vec<u8> {
        with(0, &Value::Array(vec![Value::from(name), Value::Array(args)]).to_msgpack())
    };
    let id = Value::Bin(vec![1; 20]);
    vec![
        vec![],
        vec![0],
        header(0),
        with(2, &[0xc0]),
        with(0, &[0xc1]),
        with(0, &[0x92, 0xa4, b'p', b'i']),
        with(0, &[0x92, 0xa4, b'p', 0xff, b'n', b'g', 0x90]),
        with(0, &[0xdd, 0xff, 0xff, 0xff, 0xff]),
        with(0, &[0xdf, 0xff, 0xff, 0xff, 0xff]),
        with(0, &[0x91; 5000]),
        with(0, &[0xa0; 9000]),
        with(1, &[0xc3]),
        call("ping", vec![]),
        call("ping", vec![Value::Int(5)]),
        call("find_node", vec![id.clone(), Value::Bin(vec![2; 19])]),
        call("find_value", vec![id.clone()]),
        call("store", vec![id.clone(), Value::Bin(vec![3; 21]), Value::from("v")]),
        call("stun", vec![Value::Nil, Value::Nil, Value::Nil]),
        with(0, &Value::Map(vec![(Value::from("ping"), id)]).to_msgpack()),
    ]
}

/// Sends every malformed datagram to `target` in rounds until `stop`, at most 2000 rounds.
async fn flood(target: SocketAddr, stop: tokio::sync::watch::Receiver<bool>) -> usize {
    let junk = UdpSocket::bind(SocketAddr::from((LOCALHOST, 0))).await.expect("bind");
    let datagrams = malformed_datagrams();
    let mut sent = 0;
    for _ in 0..2000 {
        if *stop.borrow() {
            break;
        }
        for d in &datagrams {
            sent += usize::from(junk.send_to(d, target).await.is_ok());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_datagrams_do_not_disturb_python_peers() {
    let rust = rust_node().await;
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let flooder = tokio::spawn(flood(rust.local_addr(), stop));
    let py = PyNode::spawn_many(3, &[rust.local_addr()]).await;
    for round in 0..5 {
        let (key, value) = (format!("flood:{round}"), Value::Str(format!("[\"w{round}\"]")));
        assert!(py.set(round % 3, &key, &value).await, "python set {key} during the flood");
        assert_eq!(py.get((round + 1) % 3, &key).await, Some(value.clone()), "python get {key}");
        assert_eq!(py.ping(round % 3, rust.local_addr()).await, Some(rust.id()), "rust stopped answering pings");
        let got = rust.get(NodeId::for_key(&key)).await.expect("get").value;
        assert_eq!(got, Some(value), "rust get {key} during the flood");
    }
    stop_tx.send(true).expect("flooder listening");
    let sent = flooder.await.expect("flooder");
    let stats = rust.with_engine(|e, _| e.stats().clone()).await.expect("node still running");
    eprintln!("flood: {sent} junk datagrams sent, {} counted malformed", stats.malformed);
    assert!(sent > 0 && stats.malformed > 0, "no malformed input reached the node: sent {sent}, {stats:?}");
    assert!(has_contact(&rust_contacts(&rust).await, py.id(0), py.addr(0)), "python peer fell out of the table");
    assert_eq!(py.stun(2, rust.local_addr()).await, Some(py.addr(2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_leave_from_the_socket_the_request_arrived_on() {
    let rust = rust_node().await;
    // Python records the source address of requests it receives: after Rust
    // contacts it (ping, then a lookup), it must hold the node's real address
    // and no other address for its id.
    let py = PyNode::spawn(&[]).await;
    rust.ping(py.addr(0)).await.expect("ping").expect("python answered");
    rust.find_node(NodeId([0xaa; 20])).await.expect("find_node");
    let seen: HashSet<SocketAddr> =
        py.neighbors(0).await.into_iter().filter(|(i, _)| *i == rust.id()).map(|(_, a)| a).collect();
    assert_eq!(seen, HashSet::from([rust.local_addr()]), "python's routing table entry for the Rust node");

    let probe = UdpSocket::bind(SocketAddr::from((LOCALHOST, 0))).await.expect("bind");
    let id = MessageId([9; 20]);
    let ping = Datagram::request(id, Call::Ping { sender: NodeId([5; 20]) }).encode().expect("encode");
    probe.send_to(&ping, rust.local_addr()).await.expect("send");
    // The node may also greet the probe as a new contact (kadmesh_hello):
    // every datagram must come from its socket, and one must be our reply.
    let mut buf = [0u8; 1500];
    let mut replies = Vec::new();
    for _ in 0..4 {
        let (n, from) = match tokio::time::timeout(Duration::from_secs(3), probe.recv_from(&mut buf)).await {
            Ok(r) => r.expect("recv"),
            Err(_) => break,
        };
        assert_eq!(from, rust.local_addr(), "a datagram came from another address than the request went to");
        let d = wire::decode(&buf[..n]).expect("decodes");
        if matches!(d, Datagram::Response { .. }) {
            replies.push(d);
            break;
        }
    }
    assert_eq!(replies, vec![Datagram::response(id, Value::Bin(rust.id().0.to_vec()))]);
}

/// Reads every key from every Rust node in `rust` and every server of `py`,
/// all at once; returns the misses and how many reads were not served from
/// the reader's own store.
async fn read_everywhere(keys: &[(String, Value)], rust: &[NodeHandle], py: &PyNode) -> (Vec<String>, usize) {
    let mut gets = JoinSet::new();
    for (key, value) in keys {
        for (i, node) in rust.iter().enumerate() {
            let (node, key, value) = (node.clone(), key.clone(), value.clone());
            gets.spawn(async move {
                let got = node.get(NodeId::for_key(&key)).await.expect("get");
                ((got.value != Some(value)).then(|| format!("rust {i} got {key} = {:?}", got.value)), !got.local)
            });
        }
    }
    let (mut misses, mut remote) = (Vec::new(), 0);
    let names: Vec<String> = keys.iter().map(|(k, _)| k.clone()).collect();
    for ((key, value), found) in keys.iter().zip(py.get_many(&names).await) {
        remote += py.holders(key).await.iter().filter(|held| !**held).count();
        let wrong = found.iter().enumerate().filter(|(_, got)| got.as_ref() != Some(value));
        misses.extend(wrong.map(|(i, got)| format!("python {i} got {key} = {got:?}")));
    }
    while let Some(r) = gets.join_next().await {
        let (miss, was_remote) = r.expect("task");
        misses.extend(miss);
        remote += usize::from(was_remote);
    }
    (misses, remote)
}

/// Eight of 25 nodes die (5 Python servers, 3 Rust nodes) after the keys are
/// set; every other node must still read every key, waiting out the dead
/// peers left in its routing table. Stock k = 20 keeps each key on most
/// nodes, so its holders survive; with a tiny k both implementations can lose
/// a key whose k closest contacts in the reader's table all died.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_peers_on_either_side_cost_time_not_answers() {
    let (rust, py) = mixed_network(20).await;
    let doomed = PyNode::spawn_with_k(5, 20, &[rust[0].local_addr()]).await;
    let mut keys = set_one_key_per_node(&rust, &py, 10).await;
    for i in 0..doomed.count() {
        keys.push((format!("doomed:{i}"), Value::Int(i as i64)));
        assert!(doomed.set(i, &keys[keys.len() - 1].0, &keys[keys.len() - 1].1).await, "doomed {i} set");
    }
    drop(doomed);
    for node in &rust[7..] {
        node.shutdown().await;
    }
    let clock = tokio::time::Instant::now();
    let (misses, remote) = read_everywhere(&keys, &rust[..7], &py).await;
    eprintln!("dead peers: {} reads, {remote} remote, in {:?}", keys.len() * 17, clock.elapsed());
    assert!(misses.is_empty(), "lookups failed with dead peers around:\n{}", misses.join("\n"));
    assert!(remote >= 10, "only {remote} reads left the reader's own store: the test proves little");
}

/// A `store` request carrying more than 8140 value bytes exceeds rpcudp's
/// 8192-byte body limit. Such a value is refused by `put` up front; were it
/// kept locally, a Python peer finding it would try to cache it at the nearest
/// node without it and `Server.get` would raise `MalformedMessage` instead of
/// returning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_rust_cannot_replicate_does_not_break_python_get() {
    let rust = [rust_node().await, rust_node().await];
    let py = PyNode::spawn_many(2, &[rust[0].local_addr()]).await;
    rust[1].bootstrap(vec![py.addr(1)]).await.expect("bootstrap");
    // 8189 chars encode to exactly 8192 bytes (0xda, 2 length bytes, text).
    let value = Value::Str("y".repeat(8189));
    let put = rust[0].put(NodeId::for_key("too-big"), value).await;
    assert!(matches!(put, Err(kadmesh::node::NodeError::Rejected(_))), "{put:?}");
    let found = py.try_cmd("@1 get too-big").await;
    assert!(found.is_ok(), "python get raised {found:?} after rust put {put:?}");
}
