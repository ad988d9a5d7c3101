//! Real nodes on real loopback sockets in one process.

use std::net::SocketAddr;
use std::time::Duration;

use kadmesh::engine::Config;
use kadmesh::id::NodeId;
use kadmesh::node::{bootstrap_with_retry, Backoff, Node, NodeHandle};
use kadmesh::seeds::Seed;
use kadmesh::wire::Value;

async fn start(n: usize) -> Vec<NodeHandle> {
    let mut nodes = Vec::new();
    for i in 0..n {
        let config = Config { rng_seed: i as u64, ..Config::default() };
        let node = Node::bind(SocketAddr::from(([127, 0, 0, 1], 0)), config).await.unwrap();
        nodes.push(node);
    }
    let seed = nodes[0].local_addr();
    for node in &nodes[1..] {
        let b = node.bootstrap(vec![seed]).await.unwrap();
        assert_eq!(b.seeds_reached, 1);
    }
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_nodes_every_node_gets_what_any_node_sets() {
    let nodes = start(50).await;
    for (i, node) in nodes.iter().enumerate().step_by(5) {
        let key = NodeId::for_key(&format!("worker:w{i}"));
        let put = node.put(key, Value::Str(format!("{{\"worker_id\": \"w{i}\"}}"))).await.unwrap();
        assert!(put.stored >= 10, "node {i} stored at only {} peers", put.stored);
    }
    for (i, _) in nodes.iter().enumerate().step_by(5) {
        let key = NodeId::for_key(&format!("worker:w{i}"));
        for reader in &nodes {
            let got = reader.get(key).await.unwrap();
            assert_eq!(got.value, Some(Value::Str(format!("{{\"worker_id\": \"w{i}\"}}"))), "reader {:?}", reader.id());
        }
    }
    let missing = nodes[7].get(NodeId::for_key("nobody")).await.unwrap();
    assert_eq!(missing.value, None);
    for n in &nodes {
        n.shutdown().await;
    }
}

#[tokio::test]
async fn malformed_datagrams_do_not_stop_a_node() {
    let nodes = start(2).await;
    let junk = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let target = nodes[0].local_addr();
    let mut oversize = vec![0u8; 70_000];
    oversize[0] = 0;
    for d in [&b""[..], b"\x00short", &[0x02; 40], &[0x00; 40], &[0x01; 30], &oversize[..9000]] {
        junk.send_to(d, target).await.unwrap();
    }
    // wrong arity: ["ping", []]
    let mut wrong = vec![0u8; 21];
    wrong.extend_from_slice(&[0x92, 0xa4, b'p', b'i', b'n', b'g', 0x90]);
    junk.send_to(&wrong, target).await.unwrap();
    let reply = nodes[1].ping(target).await.unwrap();
    assert_eq!(reply.map(|r| r.id), Some(nodes[0].id()));
    let malformed = nodes[0].with_engine(|e, _| e.stats().malformed).await.unwrap();
    assert!(malformed >= 6, "malformed = {malformed}");
}

#[tokio::test]
async fn bootstrap_by_hostname_and_bounded_retry_when_nobody_answers() {
    let nodes = start(1).await;
    let lonely = Node::bind(SocketAddr::from(([127, 0, 0, 1], 0)), Config::default()).await.unwrap();
    let seed = Seed::parse(&format!("localhost:{}", nodes[0].local_addr().port())).unwrap();
    let ok = bootstrap_with_retry(&lonely, &[seed], Backoff::default()).await.unwrap();
    assert_eq!(ok.seeds_reached, 1);

    let dead = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let dead_seed = Seed::parse(&dead.local_addr().unwrap().to_string()).unwrap();
    let alone = Node::bind(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        Config { rpc_timeout: Duration::from_millis(200), ..Config::default() },
    )
    .await
    .unwrap();
    let backoff = Backoff { initial: Duration::from_millis(10), max: Duration::from_millis(20), attempts: Some(2) };
    let out = bootstrap_with_retry(&alone, &[dead_seed], backoff).await.unwrap();
    assert_eq!((out.seeds_reached, out.seeds_tried, out.table_size), (0, 1, 0));
}

#[tokio::test]
async fn a_node_with_unusable_settings_is_refused_naming_the_field() {
    let config = Config { k: 0, ..Config::default() };
    let err = Node::bind(SocketAddr::from(([127, 0, 0, 1], 0)), config).await.unwrap_err();
    assert!(matches!(err, kadmesh::node::NodeError::Config(kadmesh::engine::ConfigError::Zero("k"))), "{err}");
    assert!(err.to_string().contains('k'), "{err}");
}
