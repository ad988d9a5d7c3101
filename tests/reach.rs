//! Reachability detection and client mode on real loopback sockets (issue
//! 15): a node behind a simulated reply-only NAT (the driver drops datagrams
//! from addresses it has not sent to lately) says `nat`, is promoted once
//! probes get through and demoted when they stop; a client's requests are
//! answered by stock Python `kademlia` peers exactly as before.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use kadmesh::engine::Config;
use kadmesh::id::NodeId;
use kadmesh::node::{Node, NodeHandle};
use kadmesh::reach::{ReachMode, Reachability, Verdict};
use kadmesh::wire::Value;

/// The NAT mapping lifetime of the test, and the node's own view of it.
const WINDOW: Duration = Duration::from_millis(500);

async fn node(mode: ReachMode) -> NodeHandle {
    let mut config = Config { rng_seed: rand::random(), ..Config::default() };
    config.reach.mode = mode;
    config.reach.nat_window = WINDOW;
    config.reach.interval = Duration::from_secs(1);
    config.reach.retry = Duration::from_millis(500);
    config.reach.grace = Duration::from_millis(300);
    Node::bind(SocketAddr::from(([127, 0, 0, 1], 0)), config).await.expect("bind 127.0.0.1:0")
}

/// `n` public nodes that all joined through the first.
async fn public_network(n: usize) -> Vec<NodeHandle> {
    let mut nodes = vec![node(ReachMode::Public).await];
    for _ in 1..n {
        let joiner = node(ReachMode::Public).await;
        let b = joiner.bootstrap(vec![nodes[0].local_addr()]).await.expect("bootstrap");
        assert_eq!(b.seeds_reached, 1);
        nodes.push(joiner);
    }
    nodes
}

/// Polls `a`'s verdict (every 100 ms, at most 20 s) until `ok` holds.
async fn wait_for(a: &NodeHandle, what: &str, ok: impl Fn(&Verdict) -> bool) -> Verdict {
    let mut last = None;
    for _ in 0..200 {
        let v = a.reachability().await.expect("node running");
        if ok(&v) {
            return v;
        }
        last = Some(v);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} never came; last verdict {last:?}");
}

async fn holders(nodes: &[NodeHandle], id: NodeId) -> usize {
    let mut n = 0;
    for x in nodes {
        n += usize::from(x.contacts().await.expect("running").iter().any(|c| c.id == id));
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nat_is_detected_then_promotion_and_demotion_follow_the_probes() {
    let nodes = public_network(12).await;
    let a = node(ReachMode::Auto).await;
    a.set_reply_only(Some(WINDOW)).await.expect("running");
    a.bootstrap(vec![nodes[0].local_addr()]).await.expect("bootstrap");
    let v = wait_for(&a, "nat", |v| v.state == Reachability::Nat).await;
    assert!(v.reason.contains("none arrived"), "{v:?}");
    assert_eq!(v.observed, Some(a.local_addr()), "the helpers' view of our address");
    // A client still reads and writes, and is in nobody's table.
    let key = NodeId::for_key("worker:behind-nat");
    assert!(a.put(key, Value::Str("w".into())).await.expect("put").stored > 0);
    assert_eq!(nodes[5].get(key).await.expect("get").value, Some(Value::Str("w".into())));
    assert_eq!(holders(&nodes, a.id()).await, 0, "a client is never inserted");

    a.set_reply_only(None).await.expect("running");
    let v = wait_for(&a, "promotion", |v| v.state == Reachability::Public && !v.assumed).await;
    assert!(v.reason.contains("arrived"), "{v:?}");
    wait_for_holders(&nodes, a.id()).await;

    a.set_reply_only(Some(WINDOW)).await.expect("running");
    wait_for(&a, "demotion", |v| v.state == Reachability::Nat).await;
}

/// Waits (at most 10 s) until some node holds `id` in its table.
async fn wait_for_holders(nodes: &[NodeHandle], id: NodeId) {
    for _ in 0..100 {
        if holders(nodes, id).await > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("a promoted node was never inserted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reachable_node_proves_it_is_public() {
    let nodes = public_network(12).await;
    let a = node(ReachMode::Auto).await;
    a.bootstrap(vec![nodes[0].local_addr()]).await.expect("bootstrap");
    let v = wait_for(&a, "a proof", |v| v.state == Reachability::Public && !v.assumed).await;
    assert!(v.reason.contains("arrived"), "{v:?}");
    wait_for_holders(&nodes, a.id()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_python_peers_answer_a_clients_requests() {
    if common::python::skip_without_python("stock_python_peers_answer_a_clients_requests") {
        return;
    }
    let seed = node(ReachMode::Public).await;
    let py = common::python::PyNode::spawn_many(3, &[seed.local_addr()]).await;
    let client = node(ReachMode::Client).await;
    let b = client.bootstrap(vec![py.addr(0)]).await.expect("bootstrap");
    assert_eq!(b.seeds_reached, 1, "a Python seed answered the client's marked ping: {b:?}");
    let put = client.put(NodeId::for_key("client-key"), Value::Str("from a client".into())).await.expect("put");
    assert!(put.stored >= 1, "Python peers stored the client's value: {put:?}");
    assert_eq!(py.get(1, "client-key").await, Some(Value::Str("from a client".into())));
    assert!(py.set(2, "py-key", &Value::Str("from python".into())).await);
    let got = client.get(NodeId::for_key("py-key")).await.expect("get");
    assert_eq!(got.value, Some(Value::Str("from python".into())));
    // The kadmesh seed saw the client's requests but never inserted it.
    assert!(!seed.contacts().await.expect("running").iter().any(|c| c.id == client.id()));
}
