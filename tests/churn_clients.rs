//! Stock peers beside kadmesh nodes while short-lived clients come and go
//! (issue 11, item 5): a stopped client must stop being handed out in our
//! `find_node` replies, since each stock peer that tries it waits 5 s, and in
//! a mixed network of 10 kadmesh and 10 stock nodes stock peers' gets must
//! stay under a second. The platform's workers themselves are in
//! `tests/platform.rs`.
//!
//! Needs a Python with `kademlia` (`KADMESH_PYTHON`, which `scripts/test`
//! and CI set, or `.venv`); without one every test says it is skipping.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::python::{skip_without_python, Nowhere, PyNode};
use kadmesh::discovery::testnet::Testnet;
use kadmesh::discovery::DiscoveryConfig;
use kadmesh::engine::Config;
use kadmesh::id::NodeId;
use kadmesh::node::{Node, NodeHandle};
use kadmesh::routing::freshness::SETTLE;
use kadmesh::wire::{parse_find_node_reply, Call};
use tokio::time::{sleep, Instant};

/// A kadmesh node of our own that asks `node` for the contacts closest to
/// `target` with a raw `find_node` and answers the ping that verifies it.
async fn handed_out(asker: &NodeHandle, node: SocketAddr, target: NodeId) -> Vec<NodeId> {
    let reply = asker.call(node, Call::FindNode { sender: asker.id(), key: target }).await.unwrap();
    let body = reply.expect("our node answers find_node");
    parse_find_node_reply(&body).unwrap().into_iter().map(|c| c.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_short_lived_client_is_left_out_within_one_ping_timeout_of_its_next_hand_out() {
    if skip_without_python("a_stopped_short_lived_client_is_left_out_within_one_ping_timeout_of_its_next_hand_out") {
        return;
    }
    let net = Testnet::start(3, 0, Config::default(), DiscoveryConfig::default()).await.unwrap();
    let node = net.addr(0).unwrap();
    let asker = Node::bind("127.0.0.1:0".parse().unwrap(), Config { rng_seed: rand::random(), ..Config::default() })
        .await
        .unwrap();
    asker.bootstrap(vec![node]).await.unwrap();
    // A stock Server bootstraps off our node, does a get, and stops.
    let client = PyNode::spawn(&[node]).await;
    let id = client.id(0);
    assert_eq!(client.get(0, "worker:nobody").await, None);
    let start = Instant::now();
    while !handed_out(&asker, node, id).await.contains(&id) {
        assert!(start.elapsed() < Duration::from_secs(3), "our node never handed out the client while it answered");
        sleep(Duration::from_millis(200)).await;
    }
    drop(client);
    let stopped = Instant::now();
    // Past the shortest re-check gap since its last answer, every hand-out checks it.
    sleep(Duration::from_millis(1200)).await;
    let ping_timeout = Config::default().rpc_timeout;
    let mut first = None;
    let mut last_seen = None;
    while stopped.elapsed() < Duration::from_millis(1200) + ping_timeout + Duration::from_secs(3) {
        if handed_out(&asker, node, id).await.contains(&id) {
            first.get_or_insert(Instant::now());
            last_seen = Some(Instant::now());
        }
        sleep(Duration::from_millis(250)).await;
    }
    if let (Some(first), Some(last)) = (first, last_seen) {
        let span = last - first;
        assert!(span <= ping_timeout + Duration::from_millis(500), "handed out for {span:?} after its first hand-out");
        eprintln!(
            "the stopped client was handed out for {span:?} after its first hand-out (ping timeout {ping_timeout:?})"
        );
    } else {
        eprintln!("the stopped client was not handed out at all after it stopped");
    }
    assert!(
        !handed_out(&asker, node, id).await.contains(&id),
        "still handed out {:?} after it stopped",
        stopped.elapsed()
    );
}

/// k of the mixed network: far below its 20 nodes, so gets walk routing
/// tables across both implementations instead of reading their own store.
const MIXED_K: usize = 4;
/// Sets made through the stock peers (each key is then read back).
const MIXED_OPS: usize = 60;
/// Gets made through the stock peers, each key read from several: enough
/// that their p99 (nearest rank) is not their maximum. Over 60 gets it was,
/// so a single get that met a client in the moment it left failed the test
/// (1 of 60 in one full-suite run; one get in a few thousand over the
/// loops in README), where the issue asks for p99 under 1 s.
const MIXED_GETS: usize = 200;
/// How long a short-lived client waits between two visits.
const VISIT_GAP: Duration = Duration::from_millis(700);

/// The `q` quantile (nearest rank) of `samples`.
fn quantile(samples: &[Duration], q: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn figures(d: &[Duration]) -> String {
    let slow = d.iter().filter(|t| **t >= Duration::from_secs(1)).count();
    format!(
        "p50 {:?}, p99 {:?}, max {:?}, {slow} of {} took 1 s or more",
        quantile(d, 0.5),
        quantile(d, 0.99),
        quantile(d, 1.0),
        d.len()
    )
}

/// The 20 nodes of the mixed network closest to `key` first, each marked
/// with whether it holds the key: which of them a get had to reach.
async fn holders_by_rank(net: &Testnet, stock: &PyNode, key: &str) -> String {
    let id = NodeId::for_key(key);
    let stock_held = stock.holders(key).await;
    let mut nodes: Vec<(NodeId, String)> = Vec::new();
    for (i, held) in stock_held.iter().enumerate() {
        nodes.push((stock.id(i), format!("stock {i}{}", if *held { " holds" } else { "" })));
    }
    for (i, d) in net.nodes.iter().enumerate() {
        let held = d.node().with_engine(move |e, now| e.store().get(&id, now).is_some()).await.unwrap_or(false);
        nodes.push((d.node().id(), format!("ours {i}{}", if held { " holds" } else { "" })));
    }
    nodes.sort_by_key(|(n, _)| n.distance(&id));
    let ranked: Vec<String> = nodes.into_iter().map(|(_, s)| s).collect();
    format!("closest first: {}", ranked.join(", "))
}

/// A short-lived stock client coming and going until `stop`: each visit is
/// a fresh `Server` on a new port that asks one of `seeds` (in turn) alone,
/// answers the ping that verifies it, and stops. Counts visits in `visits`.
async fn come_and_go(seeds: Vec<SocketAddr>, stop: tokio::sync::watch::Receiver<bool>, visits: Arc<AtomicUsize>) {
    let visitor = PyNode::spawn_with_k(0, MIXED_K, &[]).await;
    let mut made = 0;
    while !*stop.borrow() {
        visitor.visit(seeds[made % seeds.len()], "mixed-0", true).await;
        made += 1;
        visits.fetch_add(1, Ordering::SeqCst);
        sleep(VISIT_GAP).await;
    }
}

/// Lets the mixed network settle before any client comes: stock peers look
/// around (so our nodes, asked by stock peers, settle their contacts on
/// time: `engine::settle`), until each of our nodes knows k settled
/// contacts; from then on their replies to stock peers hold only settled
/// ones. Before that every contact is young and those replies are filled
/// with young ones (see `routing::freshness`), where a client that has just
/// come is as good as a node that has just joined. The case is
/// clients coming and going around a running network.
async fn settle(net: &Testnet, stock: &PyNode) {
    let started = Instant::now();
    let around: Vec<String> = (0..8).map(|i| format!("settle-{i}")).collect();
    stock.get_many(&around).await;
    tokio::time::sleep_until(started + SETTLE).await;
    for d in &net.nodes {
        while d.node().with_engine(|e, _| e.routing().settled_count()).await.unwrap() < MIXED_K {
            assert!(started.elapsed() < Duration::from_secs(10), "our node never settled k contacts");
            sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Issue 11: a mixed network of 10 kadmesh and 10 stock nodes where 3
/// short-lived clients come and go. They talk to our nodes only, so a stock
/// peer can only meet one after it left through a `find_node` reply of ours:
/// every 5 s a stock peer waits on one is a dead contact we handed out.
/// The assertion is the issue's: stock gets' p99 under 1 s. A stock get
/// mostly finds its value in its first round (its own table); the sets, which
/// walk every hand-out, show more and are printed: a stopped client is still
/// handed out until its check times out, so some wait 5 s or more.
/// A stock set or get can also end without sending anything: its own
/// table traversal finds no neighbour past empty buckets (a defect of the
/// package, see `why_nowhere` in `tests/interop/pynode.py`). Those keys are
/// counted and left out of the gets' check; a set that stores nowhere for
/// any other reason, or a get that asked and missed, fails the test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_peers_gets_stay_under_a_second_while_short_lived_clients_come_and_go() {
    if skip_without_python("stock_peers_gets_stay_under_a_second_while_short_lived_clients_come_and_go") {
        return;
    }
    let node = Config { k: MIXED_K, ..Config::default() };
    let net = Testnet::start(10, 0, node, DiscoveryConfig::default()).await.unwrap();
    let stock = PyNode::spawn_with_k(10, MIXED_K, &[net.addr(0).unwrap()]).await;
    for (i, d) in net.nodes.iter().enumerate() {
        d.node().bootstrap(vec![stock.addr(i)]).await.unwrap();
    }
    let ours: Vec<SocketAddr> = (0..10).map(|i| net.addr(i).unwrap()).collect();
    settle(&net, &stock).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let visits = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..3)
        .map(|v| tokio::spawn(come_and_go(ours[v * 3..v * 3 + 3].to_vec(), stopped.clone(), visits.clone())))
        .collect();
    while visits.load(Ordering::SeqCst) < 3 {
        sleep(Duration::from_millis(50)).await;
    }
    let keys: Vec<String> = (0..MIXED_OPS).map(|i| format!("mixed-{i}")).collect();
    let started = Instant::now();
    // Paced, so the clients come and go all along: sets in three batches a
    // second apart, gets 50 ms apart.
    let (mut stored, mut sets, mut unsent, mut lost) = (0, Vec::new(), Vec::new(), Vec::new());
    for batch in keys.chunks(MIXED_OPS / 3) {
        for (key, (ok, took, why)) in batch.iter().zip(stock.set_many(batch).await) {
            stored += usize::from(ok);
            sets.push(took);
            match why {
                // Sent nothing: the stock package's own defect, whatever we hand out.
                Some(Nowhere::PackageTraversal) => unsent.push(key.clone()),
                Some(Nowhere::Other(why)) => lost.push(format!("{key}: {why}")),
                None => {}
            }
        }
        sleep(Duration::from_secs(1)).await;
    }
    let (mut gets, mut missed, mut unasked) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..MIXED_GETS {
        let key = &keys[i % MIXED_OPS];
        let t = Instant::now();
        // Each pass over the keys asks them from other stock nodes.
        let (got, why) = stock.get_why((i + 5 + i / MIXED_OPS) % 10, key).await;
        gets.push(t.elapsed());
        if why == Some(Nowhere::PackageTraversal) {
            unasked.push(key.clone());
        } else if got != Some(kadmesh::wire::Value::from(key.as_str())) && !unsent.contains(key) {
            missed.push(format!("{key} (got {got:?}; {})", holders_by_rank(&net, &stock, key).await));
        }
        sleep(Duration::from_millis(50)).await;
    }
    stop.send(true).unwrap();
    for c in clients {
        c.await.unwrap();
    }
    let visits = visits.load(Ordering::SeqCst);
    eprintln!(
        "10 kadmesh + 10 stock nodes (k = {MIXED_K}), 3 short-lived clients visiting {visits} times in {:?}:\n  \
         {MIXED_OPS} stock sets, 20 at once ({stored} stored, {} never sent by the stock node's own \
         table traversal): {}\n  {MIXED_GETS} stock gets one by one ({} never sent, likewise): {}",
        started.elapsed(),
        unsent.len(),
        figures(&sets),
        unasked.len(),
        figures(&gets)
    );
    assert!(lost.is_empty(), "stock sets stored nowhere for another reason: {lost:?}");
    // The package's defect may excuse a few keys, never most of the test.
    let never = unsent.len() + unasked.len();
    assert!(never < (MIXED_OPS + MIXED_GETS) / 8, "{} sets, {} gets never sent", unsent.len(), unasked.len());
    assert!(missed.is_empty(), "stock gets that missed: {missed:?}");
    assert!(visits >= 6, "the short-lived clients came and went only {visits} times");
    assert!(quantile(&gets, 0.99) < Duration::from_secs(1), "stock peers' get p99: {}", figures(&gets));
    net.shutdown().await;
}
