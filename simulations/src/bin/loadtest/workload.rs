//! What the load test does to the cluster: registers workers, then looks
//! them up at a steady rate from random live nodes.
//!
//! A worker is a `worker:{id}` record shaped as the platform's Python workers
//! write it (a JSON object in a string), stored once through a random node.
//! A lookup is a `get` of a random worker's key from a random live node,
//! bounded by a timeout; it succeeds only when it returns exactly the
//! registered value. Lookups start on a fixed period (60 s / rate), not
//! after the previous one finishes, so a slow lookup never lowers the load.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kadmesh::id::{Key, NodeId};
use kadmesh::node::Clock;
use kadmesh::wire::Value;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

use crate::cluster::Cluster;
use crate::services::Services;

/// One registered worker.
pub struct Worker {
    /// `worker:{id}` hashed as the Python package does.
    pub key: Key,
    /// The JSON record, as a string value.
    pub value: Value,
}

/// `n` worker records with ids `lt-0000`, `lt-0001`, ...
pub fn workers(n: usize) -> Vec<Worker> {
    let now = Clock::new().unix_secs().floor();
    (0..n)
        .map(|i| {
            let id = format!("lt-{i:04}");
            let services = if i % 3 == 0 { vec!["ocr", "embed"] } else { vec!["ocr"] };
            let record = serde_json::json!({
                "worker_id": id,
                "tunnel_url": format!("https://{id}.tunnel.example"),
                "services": services,
                "capabilities": {"has_gpu": i % 4 == 0, "cpu_cores": 2 + i % 14},
                "last_seen": now,
            });
            Worker { key: NodeId::for_key(&format!("worker:{id}")), value: Value::Str(record.to_string()) }
        })
        .collect()
}

/// How registration went.
pub struct Registration {
    /// Wall time for all puts.
    pub took: Duration,
    /// Puts that no node acknowledged (not even the publisher itself).
    pub unstored: usize,
    /// Fewest remote replicas any record got.
    pub min_replicas: usize,
}

/// Puts every worker's record through a random live node, one at a time.
pub async fn register(cluster: &Cluster, workers: &[Worker]) -> Registration {
    let began = Instant::now();
    let (mut unstored, mut min_replicas) = (0, usize::MAX);
    for w in workers {
        let Some(node) = cluster.random_live() else { break };
        match node.put(w.key, w.value.clone()).await {
            Ok(p) => {
                min_replicas = min_replicas.min(p.stored);
                unstored += usize::from(p.stored == 0 && !p.stored_locally);
            }
            Err(_) => unstored += 1,
        }
    }
    Registration { took: began.elapsed(), unstored, min_replicas: min_replicas.min(workers.len()) }
}

/// What lookups look for.
pub enum Target {
    /// Plain records: a lookup is a `get` of one worker's key.
    Records(Vec<Worker>),
    /// The discovery layer: a lookup discovers one service's workers.
    Services(Arc<Services>),
}

/// How one lookup ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The registered value came back.
    Found,
    /// The lookup finished without finding the key.
    NotFound,
    /// A different value came back (discovery: only some of the workers).
    Wrong,
    /// The timeout passed first.
    TimedOut,
    /// The node asked stopped under it (killed mid-lookup) or none was live.
    Failed,
}

/// One lookup's result, attributed to the phase it started in.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Index of the phase it started in.
    pub phase: usize,
    /// From the call to its answer (or the timeout).
    pub latency: Duration,
    /// How it ended.
    pub outcome: Outcome,
    /// Whether the asked node had the record itself (no network lookup).
    pub local: bool,
}

/// When lookups run and how long each may take.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    /// Start of the first phase.
    pub start: Instant,
    /// Length of each phase.
    pub phase_len: Duration,
    /// How many phases.
    pub phases: usize,
    /// Lookups per minute.
    pub rate_per_min: f64,
    /// Most time one lookup may take.
    pub timeout: Duration,
}

impl Schedule {
    /// The end of the last phase.
    pub fn end(&self) -> Instant {
        self.start + self.phase_len * self.phases as u32
    }
}

/// Starts lookups on schedule until the last phase ends, then waits (at most
/// one timeout more) for those in flight. Results go to `samples`.
pub async fn drive(cluster: Arc<Cluster>, target: Arc<Target>, s: Schedule, samples: Arc<Mutex<Vec<Sample>>>) {
    let period = Duration::from_secs_f64(60.0 / s.rate_per_min);
    let mut ticks = tokio::time::interval_at(s.start, period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut running = JoinSet::new();
    loop {
        let at = ticks.tick().await;
        if at >= s.end() {
            break;
        }
        let phase = ((at - s.start).as_secs_f64() / s.phase_len.as_secs_f64()) as usize;
        let (c, t, out) = (cluster.clone(), target.clone(), samples.clone());
        running.spawn(async move {
            let began = Instant::now();
            let (outcome, local) = match &*t {
                Target::Records(workers) => get(&c, workers, s.timeout).await,
                Target::Services(services) => (services.lookup(&c, s.timeout).await, false),
            };
            let sample = Sample { phase, latency: began.elapsed(), outcome, local };
            out.lock().unwrap_or_else(|p| p.into_inner()).push(sample);
        });
        while running.try_join_next().is_some() {}
    }
    let _ = tokio::time::timeout(s.timeout + Duration::from_secs(2), async {
        while running.join_next().await.is_some() {}
    })
    .await;
    running.abort_all();
}

/// A `get` of a random worker's record from a random live node: how it
/// ended and whether the node had the record itself.
async fn get(cluster: &Cluster, workers: &[Worker], timeout: Duration) -> (Outcome, bool) {
    let Some(node) = cluster.random_live() else { return (Outcome::Failed, false) };
    let w = &workers[cluster.pick(workers.len())];
    match tokio::time::timeout(timeout, node.get(w.key)).await {
        Err(_) => (Outcome::TimedOut, false),
        Ok(Err(_)) => (Outcome::Failed, false),
        Ok(Ok(g)) => match g.value {
            Some(v) if v == w.value => (Outcome::Found, g.local),
            Some(_) => (Outcome::Wrong, g.local),
            None => (Outcome::NotFound, false),
        },
    }
}
