//! Churn on loopback: 100 real nodes in one process, 200 records.
//!
//! 1. 30% of the nodes are killed abruptly (their tasks stop, nothing is
//!    sent): every record must still be found from every survivor
//!    (70 x 200 gets).
//! 2. Then one original node at a time is killed and a fresh one started
//!    (70 nodes throughout) until no original is left, with republishing, replication and bucket
//!    refresh on intervals of a few seconds. Every record must still be found
//!    from every node (70 x 200 gets); the fraction found is printed.
//!
//! Set `CHURN_SEED` to replay a run; the seed in use is printed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kadmesh::engine::Config;
use kadmesh::id::NodeId;
use kadmesh::node::{Node, NodeHandle};
use kadmesh::wire::Value;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

const NODES: usize = 100;
const RECORDS: usize = 200;
const KILLED: usize = 30;
/// Gets (or puts) in flight at once across the whole test.
const PARALLEL: usize = 16;
/// Pause between two replacements.
const REPLACE_EVERY: Duration = Duration::from_millis(150);

fn config(seed: u64) -> Config {
    Config {
        rpc_timeout: Duration::from_millis(3000),
        extension_timeout: Duration::from_millis(1000),
        lookup_stall: Duration::from_millis(250),
        republish_interval: Duration::from_secs(10),
        replicate_interval: Duration::from_secs(10),
        refresh_interval: Duration::from_secs(10),
        rng_seed: seed,
        ..Config::default()
    }
}

fn key(i: usize) -> NodeId {
    NodeId::for_key(&format!("churn:record{i}"))
}

fn value(i: usize) -> Value {
    Value::Str(format!("{{\"worker_id\": \"w{i}\"}}"))
}

/// Starts a node and joins it through `seed` (if any).
async fn start(seed_no: u64, seed: Option<SocketAddr>) -> NodeHandle {
    let node = Node::bind(SocketAddr::from(([127, 0, 0, 1], 0)), config(seed_no)).await.unwrap();
    if let Some(s) = seed {
        let b = node.bootstrap(vec![s]).await.unwrap();
        if b.seeds_reached != 1 { eprintln!("SEED {s} did not answer"); }
    }
    node
}

/// Every record from every node, `PARALLEL` at a time; returns the misses as
/// (node index, record index).
async fn get_all(nodes: &[NodeHandle]) -> Vec<(usize, usize)> {
    let gate = Arc::new(Semaphore::new(PARALLEL));
    let mut tasks = JoinSet::new();
    for (n, node) in nodes.iter().enumerate() {
        for r in 0..RECORDS {
            let (node, gate) = (node.clone(), gate.clone());
            tasks.spawn(async move {
                let _permit = gate.acquire_owned().await.unwrap();
                let got = node.get(key(r)).await.unwrap();
                (n, r, got.value == Some(value(r)))
            });
        }
    }
    let mut misses = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (n, r, found) = done.unwrap();
        if !found {
            misses.push((n, r));
        }
    }
    misses.sort();
    misses
}

async fn diag(label: &str, nodes: &[NodeHandle]) {
    let mut sent = [0u64; 6];
    let (mut rep, mut to, mut ho) = (0, 0, 0);
    let mut sizes = Vec::new();
    for n in nodes {
        let Ok((s, len, ops)) = n.with_engine(|e, _| (e.stats().clone(), e.routing().len(), e.ops_in_progress())).await else { continue };
        for i in 0..6 { sent[i] += s.sent[i]; }
        rep += s.republished; to += s.timeouts; ho += s.handovers;
        sizes.push((len, ops));
    }
    eprintln!("DIAG {label}: sent {sent:?} republished {rep} timeouts {to} handovers {ho}");
    eprintln!("DIAG {label}: table sizes/ops {sizes:?}");
}

fn report(phase: &str, nodes: usize, misses: &[(usize, usize)], took: Duration) -> f64 {
    let total = nodes * RECORDS;
    let fraction = (total - misses.len()) as f64 / total as f64;
    let mut lost: Vec<usize> = misses.iter().map(|m| m.1).collect();
    lost.sort();
    lost.dedup();
    eprintln!(
        "churn {phase}: {} of {total} gets found ({fraction:.4}); records missed somewhere: {}; {:.1} s",
        total - misses.len(),
        lost.len(),
        took.as_secs_f64()
    );
    if !misses.is_empty() {
        eprintln!("churn {phase}: first misses (node, record): {:?}", &misses[..misses.len().min(20)]);
    }
    fraction
}

async fn populate(rng: &mut StdRng) -> Vec<NodeHandle> {
    let mut nodes = vec![start(0, None).await];
    for i in 1..NODES {
        let seed = nodes[rng.gen_range(0..nodes.len())].local_addr();
        nodes.push(start(i as u64, Some(seed)).await);
    }
    let gate = Arc::new(Semaphore::new(PARALLEL));
    let mut puts = JoinSet::new();
    for r in 0..RECORDS {
        let (node, gate) = (nodes[rng.gen_range(0..NODES)].clone(), gate.clone());
        puts.spawn(async move {
            let _permit = gate.acquire_owned().await.unwrap();
            node.put(key(r), value(r)).await.unwrap().stored
        });
    }
    while let Some(stored) = puts.join_next().await {
        let stored = stored.unwrap();
        assert!(stored >= 15, "a put reached only {stored} nodes");
    }
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_survive_abrupt_kills_and_complete_replacement() {
    let seed = std::env::var("CHURN_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20_240_601u64);
    eprintln!("churn: CHURN_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let t = Instant::now();
    let mut nodes = populate(&mut rng).await;
    eprintln!("churn setup: {NODES} nodes joined, {RECORDS} records put; {:.1} s", t.elapsed().as_secs_f64());

    // Phase 1: 30% die at once, without a word.
    nodes.shuffle(&mut rng);
    for dead in nodes.drain(..KILLED) {
        dead.shutdown().await;
    }
    diag("before kill", &nodes).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    diag("3s later", &nodes).await;
    let t = Instant::now();
    let mon_nodes = nodes.clone();
    let mon = tokio::spawn(async move { for i in 0.. { tokio::time::sleep(Duration::from_secs(4)).await; diag(&format!("t+{}", 4*i+4), &mon_nodes).await; } });
    let misses = get_all(&nodes).await;
    mon.abort();
    diag("after gets", &nodes).await;
    let fraction = report("after killing 30%", nodes.len(), &misses, t.elapsed());
    assert_eq!(fraction, 1.0, "records lost after killing {KILLED} of {NODES} nodes (seed {seed})");

    // Phase 2: kill an original, start a fresh node; until no original is left.
    let t = Instant::now();
    let mut originals = nodes;
    let mut fresh: Vec<NodeHandle> = Vec::new();
    while !originals.is_empty() {
        let victim = rng.gen_range(0..originals.len());
        originals.swap_remove(victim).shutdown().await;
        let live = originals.len() + fresh.len();
        let pick = rng.gen_range(0..live);
        let via = if pick < originals.len() { &originals[pick] } else { &fresh[pick - originals.len()] };
        let newcomer = start((NODES + fresh.len()) as u64, Some(via.local_addr())).await;
        fresh.push(newcomer);
        if fresh.len() % 10 == 0 { let all: Vec<NodeHandle> = originals.iter().chain(fresh.iter()).cloned().collect(); diag(&format!("p2 {} replaced, {:.1}s", fresh.len(), t.elapsed().as_secs_f64()), &all).await; }
        tokio::time::sleep(REPLACE_EVERY).await;
    }
    eprintln!("churn replacement: {} originals replaced; {:.1} s", fresh.len(), t.elapsed().as_secs_f64());
    let nodes = fresh;
    let t = Instant::now();
    let misses = get_all(&nodes).await;
    let fraction = report("after replacing every original", nodes.len(), &misses, t.elapsed());
    assert_eq!(fraction, 1.0, "records lost after replacing every node (seed {seed})");
    for n in &nodes {
        n.shutdown().await;
    }
}
