//! Discovery over real loopback nodes, below the HTTP layer: concurrent
//! announcements, large provider sets read in MTU-sized pages, merging across
//! replicas, and lookups in a network that contains stock Python peers.

mod common;

use std::sync::Arc;
use std::time::Duration;

use kadmesh::discovery::input::{DiscoverFilter, Registration};
use kadmesh::discovery::testnet::Testnet;
use kadmesh::discovery::wire::{list_call, parse_page, write_calls, Announce};
use kadmesh::discovery::{service_key, DiscoveryConfig};
use kadmesh::engine::providers::MAX_PAGE_DATAGRAM;
use kadmesh::engine::Config;
use kadmesh::id::NodeId;
use kadmesh::wire::{Datagram, MessageId, Value};
use serde_json::{json, Map};
use tokio::time::Instant;

fn quiet() -> DiscoveryConfig {
    DiscoveryConfig {
        cache_ttl: Duration::ZERO,
        // 500 registrations at once through 20 nodes take about 3.5 s in a
        // debug build on the 2-core machine (20-23 s while each rebuilt the
        // legacy list); what these tests assert is that none is lost, so
        // the bound leaves room for a loaded machine.
        publish_wait: Duration::from_secs(60),
        min_republish: Duration::ZERO,
        // These tests discover every one of up to 500 workers.
        max_candidates: 1000,
        ..DiscoveryConfig::default()
    }
}

fn registration(id: &str, services: &[&str], gpu: bool) -> Registration {
    let mut capabilities = Map::new();
    capabilities.insert("has_gpu".into(), json!(gpu));
    Registration {
        worker_id: id.to_owned(),
        tunnel_url: format!("https://{id}.example-tunnel.net"),
        services: services.iter().map(|s| s.to_string()).collect(),
        capabilities,
        vpn_ip: None,
        containers: None,
        endorsement: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_simultaneous_announcements_through_twenty_nodes_lose_none() {
    let net = Testnet::start(20, 0, Config::default(), quiet()).await.unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(500));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..500 {
        let (d, b) = (net.nodes[i % 20].clone(), barrier.clone());
        tasks.spawn(async move {
            b.wait().await;
            d.register(registration(&format!("w{i:03}"), &["ocr"], false), None).await
        });
    }
    while let Some(r) = tasks.join_next().await {
        let out = r.unwrap().unwrap();
        let report = out.report.expect("published within publish_wait");
        assert!(report.provider_replicas >= 1 && report.record_replicas >= 1, "{report:?}");
    }
    let registered = started.elapsed();
    let (pages, sets) = provider_reads(&net);
    // A registration updates the legacy list from the list itself; only the
    // refresher's rebuild (at most one per node here) reads the provider set.
    assert!(sets <= 20, "{sets} provider sets read ({pages} page requests) for 500 registrations");
    for reader in [3, 17] {
        let p = net.nodes[reader].find_providers("ocr").await.unwrap();
        assert_eq!(p.live.len(), 500, "reader {reader} found {} of 500", p.live.len());
        assert!(p.replicas >= 2, "read {} replicas", p.replicas);
    }
    let t = Instant::now();
    let all = net.nodes[11].discover("ocr", &DiscoverFilter::default()).await.unwrap();
    assert_eq!(all.count(), 500);
    let extension: u64 =
        futures_util::future::join_all(net.nodes.iter().map(|d| d.node().with_engine(|e, _| e.stats().sent[5])))
            .await
            .into_iter()
            .map(|n| n.unwrap())
            .sum();
    eprintln!(
        "500 registrations: {registered:?} ({sets} provider sets read, {pages} page requests); discover of all 500 \
         with records: {:?}; extension requests sent in all: {extension}",
        t.elapsed()
    );
    net.shutdown().await;
}

/// Provider page requests sent and provider sets read, over all nodes.
fn provider_reads(net: &Testnet) -> (u64, u64) {
    use std::sync::atomic::Ordering::Relaxed;
    let m = net.nodes.iter().map(|d| d.metrics());
    m.fold((0, 0), |(p, s), m| (p + m.provider_reads.load(Relaxed), s + m.provider_sets_read.load(Relaxed)))
}

/// Sends one request from a raw socket and returns the reply datagram.
async fn raw_call(sock: &tokio::net::UdpSocket, to: std::net::SocketAddr, call: kadmesh::wire::Call) -> Vec<u8> {
    let id = MessageId([0x5a; 20]);
    sock.send_to(&Datagram::Request { id, call }.encode().unwrap(), to).await.unwrap();
    let mut buf = vec![0u8; 65_536];
    for _ in 0..50 {
        let n = tokio::time::timeout(Duration::from_secs(2), sock.recv(&mut buf)).await.unwrap().unwrap();
        // The node may also send us requests (hello, handover); skip them.
        if let Ok(Datagram::Response { id: got, .. }) = kadmesh::wire::decode(&buf[..n]) {
            if got == id {
                return buf[..n].to_vec();
            }
        }
    }
    panic!("no reply from {to}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_thousand_providers_are_read_in_mtu_sized_pages() {
    let net = Testnet::start(5, 0, Config::default(), quiet()).await.unwrap();
    let key = service_key("bulk");
    let items: Vec<Announce> = (0..3000)
        .map(|i| Announce {
            id: format!("bulk-worker-{i:05}"),
            version: 1,
            ttl: Duration::from_secs(600),
            load: None,
            signature: None,
        })
        .collect();
    let writer = net.nodes[0].node();
    let calls = write_calls(writer.id(), key, &items, false);
    for target in 1..5 {
        let addr = net.addr(target).unwrap();
        for call in &calls {
            let reply = writer.call(addr, call.clone()).await.unwrap().expect("extension peers answer");
            assert!(reply.as_int().unwrap() > 0);
        }
    }
    let t = Instant::now();
    let p = net.nodes[3].find_providers("bulk").await.unwrap();
    assert_eq!(p.live.len(), 3000);
    let merged = t.elapsed();
    // A raw socket checks the datagrams themselves (after the lookup: the
    // nodes learn it as a contact that never answers).
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (mut seen, mut after, mut pages, mut largest) = (0, None::<String>, 0, 0);
    let raw = Instant::now();
    for _ in 0..1000 {
        let bytes = raw_call(&sock, net.addr(2).unwrap(), list_call(NodeId([7; 20]), key, after.as_deref(), 256)).await;
        largest = largest.max(bytes.len());
        let Ok(Datagram::Response { body, .. }) = kadmesh::wire::decode(&bytes) else { panic!("not a response") };
        let page = parse_page(&body, &key).unwrap();
        assert_eq!(page.live, 3000);
        seen += page.entries.len();
        pages += 1;
        after = page.next;
        if after.is_none() {
            break;
        }
    }
    assert_eq!(seen, 3000);
    let raw = raw.elapsed();
    assert!(largest <= MAX_PAGE_DATAGRAM, "largest page {largest} bytes");
    eprintln!(
        "3000 providers: {pages} pages ({raw:?} from a raw socket), largest {largest} bytes; \
         merged read of 3 replicas {merged:?}"
    );
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_each_held_by_a_different_replica_are_all_found() {
    let net = Testnet::start(8, 0, Config::default(), quiet()).await.unwrap();
    let key = service_key("split");
    let reader = &net.nodes[5];
    let closest = reader.node().find_node(key).await.unwrap();
    let writer = net.nodes[0].node();
    for (i, c) in closest.iter().take(3).enumerate() {
        let item = Announce {
            id: format!("only-at-{i}"),
            version: 1,
            ttl: Duration::from_secs(60),
            load: None,
            signature: None,
        };
        for call in write_calls(writer.id(), key, &[item], false) {
            assert_eq!(writer.call(c.addr, call).await.unwrap(), Some(Value::Int(1)));
        }
    }
    let p = reader.find_providers("split").await.unwrap();
    assert_eq!(p.live, ["only-at-0", "only-at-1", "only-at-2"]);
    assert!(p.replicas >= 3, "{} replicas read", p.replicas);
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_returns_the_least_loaded_and_reregistration_drops_old_services() {
    let net = Testnet::start(6, 0, Config::default(), quiet()).await.unwrap();
    for i in 0..8 {
        let d = &net.nodes[i % 6];
        d.register(registration(&format!("lw{i}"), &["ocr", "llm"], false), None).await.unwrap();
        let hb = kadmesh::discovery::input::Heartbeat {
            worker_id: format!("lw{i}"),
            load: Some(0.95 - 0.1 * i as f64),
            ..Default::default()
        };
        assert!(d.heartbeat(hb, None).await.unwrap().published);
    }
    let two = net.nodes[4].discover("ocr", &DiscoverFilter { limit: Some(2), ..Default::default() }).await.unwrap();
    let json = two.to_json(0.0, Duration::from_secs(300));
    let ids: Vec<&str> = json["workers"].as_array().unwrap().iter().map(|w| w["worker_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["lw7", "lw6"]);
    net.nodes[1].register(registration("lw1", &["ocr"], false), None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let llm = net.nodes[2].find_providers("llm").await.unwrap();
    assert!(!llm.live.contains(&"lw1".to_owned()) && llm.removed.contains(&"lw1".to_owned()), "{llm:?}");
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_python_peers_do_not_slow_or_break_lookups() {
    let net = Testnet::start(4, 0, Config::default(), quiet()).await.unwrap();
    let py = common::python::PyNode::spawn_many(8, &[net.addr(0).unwrap()]).await;
    for d in &net.nodes {
        d.node().bootstrap(py.addrs().to_vec()).await.unwrap();
    }
    let t = Instant::now();
    net.nodes[1].register(registration("mixed-1", &["ocr"], true), None).await.unwrap();
    let registered = t.elapsed();
    let t = Instant::now();
    let found = net.nodes[3].discover("ocr", &DiscoverFilter { gpu: true, ..Default::default() }).await.unwrap();
    let looked_up = t.elapsed();
    assert_eq!(found.count(), 1);
    // Python peers never answer extensions: nothing may wait on them.
    assert!(looked_up < Duration::from_secs(1), "discover took {looked_up:?}");
    assert!(registered < Duration::from_secs(2), "register took {registered:?}");
    let p = net.nodes[2].find_providers("ocr").await.unwrap();
    assert_eq!(p.live, ["mixed-1"]);
    eprintln!("with 8 Python peers: register {registered:?}, discover {looked_up:?}");
    net.shutdown().await;
}
