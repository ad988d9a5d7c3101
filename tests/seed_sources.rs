//! A node without saved contacts joins through its seed sources in order,
//! and asks the edge router only when every other source failed
//! (`kadmesh::node::join_in_order`, issue 17 part 5). Real nodes and real
//! HTTP servers on loopback; a silent seed is a bound UDP socket that never
//! answers.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use kadmesh::engine::Config;
use kadmesh::node::{join_in_order, Backoff, JoinEvent, Node, NodeHandle, SeedSources};
use kadmesh::seed_order::SeedSource;
use kadmesh::seeds::Seed;

/// A node with short timeouts, so a silent seed costs little.
async fn node(seed: u64) -> NodeHandle {
    let config = Config { rng_seed: seed, rpc_timeout: Duration::from_millis(300), ..Config::default() };
    Node::bind(SocketAddr::from(([127, 0, 0, 1], 0)), config).await.unwrap()
}

/// An HTTP server answering `GET /` with `status` and `body`, counting hits.
async fn serve(status: StatusCode, body: String) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = Router::new().route(
        "/",
        get(move || {
            h.fetch_add(1, Ordering::SeqCst);
            let body = body.clone();
            async move { (status, body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, hits)
}

fn doc(addrs: &[SocketAddr]) -> String {
    let seeds: Vec<String> =
        addrs.iter().map(|a| format!(r#"{{"host": "{}", "dht_port": {}}}"#, a.ip(), a.port())).collect();
    format!(r#"{{"seeds": [{}]}}"#, seeds.join(","))
}

fn seed(a: SocketAddr) -> Seed {
    Seed::parse(&a.to_string()).unwrap()
}

const ONE_PASS: Backoff =
    Backoff { initial: Duration::from_millis(10), max: Duration::from_millis(10), attempts: Some(1) };

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_are_tried_in_order_and_the_edge_router_only_when_all_else_failed() {
    let live = node(1).await;
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dead = silent.local_addr().unwrap();
    let (coordinator, coordinator_hits) = serve(StatusCode::SERVICE_UNAVAILABLE, String::new()).await;
    let (list, list_hits) = serve(StatusCode::OK, format!("# stale list\n{dead}\n")).await;
    let (edge, edge_hits) = serve(StatusCode::OK, doc(&[live.local_addr()])).await;
    let all = |dns: Vec<Seed>| SeedSources {
        configured: vec![seed(dead)],
        bootstrap_url: Some(coordinator.clone()),
        dns,
        seed_lists: vec![list.clone()],
        edge_url: Some(edge.clone()),
        ..SeedSources::default()
    };

    // A DNS name that resolves to a live node: the edge router is never asked.
    let a = node(2).await;
    let mut events = Vec::new();
    let dns = vec![Seed::parse(&format!("localhost:{}", live.local_addr().port())).unwrap()];
    let mut sources = all(dns);
    let joined = join_in_order(&a, &mut sources, ONE_PASS, |e| events.push(e)).await.unwrap().unwrap();
    assert_eq!(joined.source, SeedSource::Dns);
    assert_eq!(edge_hits.load(Ordering::SeqCst), 0, "the edge router was asked although DNS seeds answered");
    assert_eq!(list_hits.load(Ordering::SeqCst), 0, "a later source was fetched before DNS");
    assert_eq!(coordinator_hits.load(Ordering::SeqCst), 1);
    let want =
        [JoinEvent::Fetched { source: SeedSource::Configured, ok: false }, JoinEvent::Silent(SeedSource::Configured)];
    assert_eq!(events, want, "configured first (its seed silent, its URL failing), then DNS");

    // Every other source fails: the edge router serves, once, and its
    // seeds are kept as learned seeds.
    let b = node(3).await;
    let mut sources = all(Vec::new());
    let joined = join_in_order(&b, &mut sources, ONE_PASS, |_| {}).await.unwrap().unwrap();
    assert_eq!(joined.source, SeedSource::Edge);
    assert_eq!((list_hits.load(Ordering::SeqCst), edge_hits.load(Ordering::SeqCst)), (1, 1));
    assert!(sources.learned.seeds().contains(&live.local_addr()), "edge seeds not learned: {:?}", sources.learned);

    // A restart that kept those learned seeds joins through them, before
    // the seed list and without the edge router.
    let c = node(4).await;
    let mut again = SeedSources { learned: sources.learned.clone(), ..all(Vec::new()) };
    let joined = join_in_order(&c, &mut again, ONE_PASS, |_| {}).await.unwrap().unwrap();
    assert_eq!(joined.source, SeedSource::Learned);
    assert_eq!((list_hits.load(Ordering::SeqCst), edge_hits.load(Ordering::SeqCst)), (1, 1));
    for n in [live, a, b, c] {
        n.shutdown().await;
    }
    drop(silent);
}

#[tokio::test]
async fn a_node_whose_every_source_fails_says_so_and_gives_up_only_when_told() {
    let a = node(5).await;
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let (edge, edge_hits) = serve(StatusCode::INTERNAL_SERVER_ERROR, String::new()).await;
    let mut sources = SeedSources {
        configured: vec![seed(silent.local_addr().unwrap())],
        edge_url: Some(edge),
        ..SeedSources::default()
    };
    let backoff = Backoff { initial: Duration::from_millis(10), max: Duration::from_millis(20), attempts: Some(2) };
    let mut silent_sources = 0;
    let joined = join_in_order(&a, &mut sources, backoff, |e| {
        silent_sources += usize::from(e == JoinEvent::Silent(SeedSource::Configured))
    })
    .await
    .unwrap();
    assert!(joined.is_none());
    assert_eq!(edge_hits.load(Ordering::SeqCst), 2, "one edge fetch per pass");
    assert_eq!(silent_sources, 2);
    a.shutdown().await;
}
