//! Crawls of real nodes on loopback sockets.

use std::net::SocketAddr;
use std::time::Duration;

use super::*;
use crate::engine::Config;
use crate::node::Node;
use crate::wire::Value;

async fn network(n: usize) -> Vec<NodeHandle> {
    let mut nodes: Vec<NodeHandle> = Vec::new();
    for i in 0..n {
        let config = Config { rng_seed: i as u64, ..Config::default() };
        let node = Node::bind(SocketAddr::from(([127, 0, 0, 1], 0)), config).await.unwrap();
        if let Some(first) = nodes.first() {
            node.bootstrap(vec![first.local_addr()]).await.unwrap();
        }
        nodes.push(node);
    }
    nodes
}

async fn client(seed: SocketAddr) -> NodeHandle {
    let config = Config { extension_timeout: Duration::from_millis(300), ..Config::default() };
    let node = Node::bind(SocketAddr::from(([127, 0, 0, 1], 0)), config).await.unwrap();
    assert_eq!(node.bootstrap(vec![seed]).await.unwrap().seeds_reached, 1);
    node
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_crawl_finds_every_node_and_its_version() {
    let nodes = network(30).await;
    let me = client(nodes[7].local_addr()).await;
    let mut calls = 0;
    let config = CrawlConfig { max_duration: Duration::from_secs(20), ..CrawlConfig::default() };
    let report = crawl(&me, &[nodes[7].local_addr()], &config, |_| calls += 1).await.unwrap();
    assert!(report.complete);
    assert_eq!(report.responding().count(), 30, "{:?}", report.nodes);
    assert!(report.nodes.iter().all(|n| n.id != Some(me.id())), "the crawler never lists itself");
    for n in &nodes {
        let found = report.nodes.iter().find(|c| c.id == Some(n.id())).expect("every node found");
        assert_eq!(found.addr, n.local_addr());
        assert_eq!(found.software, Software::Extended { implementation: "kadmesh".into(), version: "0.1.0".into() });
    }
    assert_eq!((report.estimate.best(), report.estimate.method()), (30.0, "exhaustive"));
    let density = report.estimate.density.expect("the probes answered");
    assert!((10.0..90.0).contains(&density), "density estimate {density}");
    assert!(calls >= 30, "progress after every visit: {calls}");
    for n in nodes.iter().chain([&me]) {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_nodes_makes_a_partial_crawl_and_dead_seeds_are_reported() {
    let nodes = network(12).await;
    let me = client(nodes[0].local_addr()).await;
    let config = CrawlConfig { max_nodes: 5, estimate_probes: 0, ..CrawlConfig::default() };
    let report = crawl(&me, &[nodes[0].local_addr()], &config, |_| {}).await.unwrap();
    assert!(!report.complete);
    assert_eq!(report.nodes.len(), 5);
    assert_eq!(report.estimate.method(), "lower bound");

    let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let dead = silent.local_addr().unwrap();
    let config =
        CrawlConfig { query_timeout: Duration::from_millis(200), estimate_probes: 0, ..CrawlConfig::default() };
    let report = crawl(&me, &[dead], &config, |_| {}).await.unwrap();
    assert!(report.complete, "nothing more to visit");
    assert_eq!(report.nodes.len(), 1);
    let node = &report.nodes[0];
    assert_eq!((node.addr, node.responded(), &node.software), (dead, false, &Software::Unknown));
    assert_eq!((report.queries, report.failed_queries), (1, 1));
    for n in nodes.iter().chain([&me]) {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_bounds_a_crawl_of_silent_peers() {
    let me = Node::bind(SocketAddr::from(([127, 0, 0, 1], 0)), Config::default()).await.unwrap();
    let mut sockets = Vec::new();
    for _ in 0..3 {
        sockets.push(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
    }
    let seeds: Vec<SocketAddr> = sockets.iter().map(|s| s.local_addr().unwrap()).collect();
    let config = CrawlConfig { max_duration: Duration::from_millis(300), ..CrawlConfig::default() };
    let started = tokio::time::Instant::now();
    let report = crawl(&me, &seeds, &config, |_| {}).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    assert!(!report.complete, "stopped by the deadline, not by running out of work");
    assert_eq!(report.responding().count(), 0);
    assert_eq!(report.nodes.len(), 3);
    me.shutdown().await;
}

#[test]
fn hello_answers_name_the_software() {
    let body =
        Value::Map(vec![(Value::from("impl"), Value::from("kadmesh")), (Value::from("version"), Value::from("9"))]);
    assert_eq!(parse_hello(&body).to_string(), "kadmesh 9");
    assert_eq!(parse_hello(&Value::Nil).to_string(), "unknown unknown");
    assert_eq!(Software::NoExtensions.to_string(), "python-kademlia (no extensions)");
}
