//! Churn on loopback: 100 real nodes in one process, 200 records.
//!
//! 1. 30% of the nodes are killed abruptly (their tasks stop, nothing is
//!    sent): every record must still be found from every survivor
//!    (70 x 200 gets), at least 99.9% at the first try and every get that
//!    missed when asked again 2 s later. A full suite run beside two
//!    simulations and a build once saw one node miss 3 records there, each
//!    held by all of its 20 closest nodes: lookups that timed out on a
//!    machine loaded three times over.
//! 2. Then, every 450 ms, a random original node is killed and a fresh one
//!    started (70 nodes throughout) until no original is left, with
//!    republishing, replication and bucket refresh every 10 s. That replaces
//!    about 30% of the network per replication interval and the whole of it
//!    in ~32 s. After one more interval, every record must be found from
//!    every node (70 x 200 gets; the fraction found is printed): at least
//!    99.9% at the first try, and every get that missed when asked again
//!    2 s later. CI once saw 3 misses of 14,000 there: one record, thinned
//!    to 12 live holders (local runs end with at least 21 for every
//!    record). Replicas then dropped copies on their table's word, which
//!    they no longer do (`engine::op::leave`); the check stays tolerant of
//!    a read that races replication.
//!
//! Why the wait before the last check: right after a burst of joins the k
//! nodes closest to a key can all be newcomers that have not received it
//! yet (handover comes only from holders that have heard of them), and a
//! lookup stops at the k closest. The records are not lost (the report
//! counts live holders of any missed record), and one replication round
//! puts them where lookups end.
//!
//! Run with `-- --nocapture` to see timings and network-wide counters; set
//! `CHURN_SEED` to replay a run (the seed in use is printed).

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
const PARALLEL: usize = 48;
/// Wait after the last replacement before the final check: one replication
/// interval (see the module doc).
const SETTLE: Duration = Duration::from_secs(10);
/// The least fraction of a phase's gets found at the first try: a few may
/// lose a race with replication or with a loaded machine's timeouts (see
/// the module doc), and are asked again after [`RETRY_AFTER`], when all
/// must be found.
const MIN_FIRST_PASS: f64 = 0.999;
const RETRY_AFTER: Duration = Duration::from_secs(2);
/// Pause between two replacements.
const REPLACE_EVERY: Duration = Duration::from_millis(450);

/// Lookups move past a silent contact after `lookup_stall`, so dead nodes
/// cost little; the RPC timeout stays long enough that 100 nodes sharing two
/// cores in a debug build are not mistaken for dead ones.
fn config(seed: u64) -> Config {
    Config {
        rpc_timeout: Duration::from_secs(2),
        extension_timeout: Duration::from_secs(1),
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

/// Starts a node and joins it through `seeds` (if any).
async fn start(seed_no: u64, seeds: Vec<SocketAddr>) -> NodeHandle {
    let node = Node::bind(SocketAddr::from(([127, 0, 0, 1], 0)), config(seed_no)).await.unwrap();
    if !seeds.is_empty() {
        let b = node.bootstrap(seeds.clone()).await.unwrap();
        assert!(b.seeds_reached >= 1, "no seed of {seeds:?} answered");
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

/// Network-wide counters, to see what the maintenance traffic cost.
async fn traffic(label: &str, nodes: &[NodeHandle]) {
    let (mut sent, mut timeouts, mut republished, mut handovers, mut dropped) = ([0u64; 6], 0, 0, 0, 0);
    let mut tables = Vec::new();
    for n in nodes {
        let Ok((s, table)) = n.with_engine(|e, _| (e.stats().clone(), e.routing().len())).await else { continue };
        sent.iter_mut().zip(s.sent).for_each(|(a, b)| *a += b);
        (timeouts, republished, handovers, dropped) =
            (timeouts + s.timeouts, republished + s.republished, handovers + s.handovers, dropped + s.records_dropped);
        tables.push(table);
    }
    tables.sort();
    eprintln!(
        "churn {label}: sent ping/store/find_node/find_value/stun/ext {sent:?}, timeouts {timeouts}, \
         republished {republished}, handovers {handovers}, dropped {dropped}, table sizes min {} median {}",
        tables.first().unwrap_or(&0),
        tables.get(tables.len() / 2).unwrap_or(&0)
    );
    holders(label, nodes).await;
}

/// The indices of `nodes`, closest to record `r`'s key first.
fn by_distance(nodes: &[NodeHandle], r: usize) -> Vec<usize> {
    let mut ranked: Vec<usize> = (0..nodes.len()).collect();
    ranked.sort_by_key(|&n| nodes[n].id().distance(&key(r)));
    ranked
}

/// How many live nodes hold each record, and how many of its k closest
/// live nodes do: a lookup ends at the k closest, so a record those lack is
/// found only by lookups that pass a holder on the way.
async fn holders(label: &str, nodes: &[NodeHandle]) {
    let mut has = Vec::new();
    for n in nodes {
        let h = n.with_engine(|e, now| (0..RECORDS).map(|r| e.store().get(&key(r), now).is_some()).collect());
        has.push(h.await.unwrap_or_else(|_| vec![false; RECORDS]));
    }
    let (mut held, mut near): (Vec<usize>, Vec<usize>) = (0..RECORDS)
        .map(|r| {
            let by_distance = by_distance(nodes, r);
            let holding = |n: &&usize| has[**n][r];
            (by_distance.iter().filter(holding).count(), by_distance.iter().take(20).filter(holding).count())
        })
        .unzip();
    held.sort();
    near.sort();
    eprintln!(
        "churn {label}: live holders per record min {} p10 {} median {}; of its 20 closest min {} p10 {} median {}",
        held[0],
        held[RECORDS / 10],
        held[RECORDS / 2],
        near[0],
        near[RECORDS / 10],
        near[RECORDS / 2]
    );
}

async fn report(phase: &str, nodes: &[NodeHandle], misses: &[(usize, usize)], took: Duration) -> f64 {
    let total = nodes.len() * RECORDS;
    let fraction = (total - misses.len()) as f64 / total as f64;
    let mut lost: Vec<usize> = misses.iter().map(|m| m.1).collect();
    lost.sort();
    lost.dedup();
    eprintln!(
        "churn {phase}: {} of {total} gets found (fraction {fraction:.4}); {} of {RECORDS} records found by every \
         node; {:.1} s",
        total - misses.len(),
        RECORDS - lost.len(),
        took.as_secs_f64()
    );
    let mut missing_nodes: Vec<usize> = misses.iter().map(|m| m.0).collect();
    missing_nodes.dedup();
    for &n in missing_nodes.iter().take(10) {
        let table = nodes[n].with_engine(|e, _| e.routing().len()).await.unwrap_or(0);
        let count = misses.iter().filter(|m| m.0 == n).count();
        eprintln!("churn {phase}: node {n} missed {count} records; its routing table holds {table} contacts");
    }
    for &r in lost.iter().take(10) {
        // Ranks among live nodes by distance to the key (0 = closest): a
        // lookup ends at the k closest, so holders ranked past k, or missers
        // ranked among the closest, say where the record failed to move.
        let (mut holders, mut missers) = (Vec::new(), Vec::new());
        for (rank, &n) in by_distance(nodes, r).iter().enumerate() {
            if nodes[n].with_engine(move |e, now| e.store().get(&key(r), now).is_some()).await.unwrap_or(false) {
                holders.push(rank);
            }
            if misses.contains(&(n, r)) {
                missers.push(rank);
            }
        }
        eprintln!(
            "churn {phase}: record {r} missed by {} nodes (ranks by distance {missers:?}); {} live nodes hold it \
             (ranks {holders:?})",
            missers.len(),
            holders.len()
        );
    }
    traffic(phase, nodes).await;
    fraction
}

async fn populate(rng: &mut StdRng) -> Vec<NodeHandle> {
    let mut nodes = vec![start(0, vec![]).await];
    for i in 1..NODES {
        let seed = nodes[rng.gen_range(0..nodes.len())].local_addr();
        nodes.push(start(i as u64, vec![seed]).await);
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

/// Every `REPLACE_EVERY`, kills a random original and starts a fresh node
/// (joining in the background through two live nodes), until no original
/// is left.
async fn replace_all(rng: &mut StdRng, mut originals: Vec<NodeHandle>) -> Vec<NodeHandle> {
    let mut joining: Vec<tokio::task::JoinHandle<NodeHandle>> = Vec::new();
    let mut fresh: Vec<NodeHandle> = Vec::new();
    while !originals.is_empty() {
        let victim = rng.gen_range(0..originals.len());
        originals.swap_remove(victim).shutdown().await;
        for j in std::mem::take(&mut joining) {
            if j.is_finished() {
                fresh.push(j.await.unwrap());
            } else {
                joining.push(j);
            }
        }
        let mut via: Vec<SocketAddr> = originals.choose(rng).map(|n| n.local_addr()).into_iter().collect();
        via.extend(fresh.choose(rng).map(|n| n.local_addr()));
        let seed_no = (NODES + fresh.len() + joining.len()) as u64;
        joining.push(tokio::spawn(start(seed_no, via)));
        tokio::time::sleep(REPLACE_EVERY).await;
    }
    for j in joining {
        fresh.push(j.await.unwrap());
    }
    fresh
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_survive_abrupt_kills_and_complete_replacement() {
    let seed = std::env::var("CHURN_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20_240_601u64);
    eprintln!("churn: CHURN_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let t = Instant::now();
    let mut nodes = populate(&mut rng).await;
    eprintln!("churn setup: {NODES} nodes joined, {RECORDS} records put; {:.1} s", t.elapsed().as_secs_f64());

    nodes.shuffle(&mut rng);
    for dead in nodes.drain(..KILLED) {
        dead.shutdown().await;
    }
    let t = Instant::now();
    let misses = get_all(&nodes).await;
    let fraction = report("after killing 30%", &nodes, &misses, t.elapsed()).await;
    found_again("after killing 30%", &nodes, fraction, &misses, seed).await;

    let t = Instant::now();
    let nodes = replace_all(&mut rng, nodes).await;
    eprintln!(
        "churn replacement: {} originals replaced by fresh nodes; {:.1} s",
        nodes.len(),
        t.elapsed().as_secs_f64()
    );
    traffic("right after the replacement", &nodes).await;
    tokio::time::sleep(SETTLE).await;
    holders("before the last gets", &nodes).await;
    let t = Instant::now();
    let misses = get_all(&nodes).await;
    let fraction = report("after replacing every original", &nodes, &misses, t.elapsed()).await;
    found_again("after replacing every original", &nodes, fraction, &misses, seed).await;
    for n in &nodes {
        n.shutdown().await;
    }
}

/// At least [`MIN_FIRST_PASS`] of the gets found at the first try, and
/// every one that missed found when asked again [`RETRY_AFTER`] later, as a
/// client would ask: a read that lost a race (with replication, or with a
/// loaded machine's timeouts) passes, a record that is gone or out of reach
/// of some node misses again.
async fn found_again(phase: &str, nodes: &[NodeHandle], fraction: f64, misses: &[(usize, usize)], seed: u64) {
    assert!(fraction >= MIN_FIRST_PASS, "records lost {phase} (seed {seed})");
    tokio::time::sleep(RETRY_AFTER).await;
    let mut again = Vec::new();
    for &(n, r) in misses {
        if nodes[n].get(key(r)).await.unwrap().value != Some(value(r)) {
            again.push((n, r));
        }
    }
    eprintln!("churn {phase}: {} of {} missed gets missed again", again.len(), misses.len());
    assert!(again.is_empty(), "gets {again:?} (node, record) missed twice {phase} (seed {seed})");
}
