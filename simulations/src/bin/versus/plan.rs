//! The benchmark scenario both implementations run, and the result shape
//! both report, so the two sides are compared on identical work.
//!
//! The plan is drawn once from a seed and handed to both sides: the same
//! nodes set the same keys and the same nodes get the same keys in the same
//! order. The Python side receives it as JSON on stdin and answers a
//! [`SideResult`] as JSON on stdout (see `simulations/versus/pybench.py`).

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// What to run.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    /// Nodes to start; node 0 is the seed every other node joins through.
    pub nodes: usize,
    /// The loopback address every node binds (port 0).
    pub host: String,
    /// Operations in flight at once during sets and during gets.
    pub concurrency: usize,
    /// Most seconds one operation may take.
    pub op_timeout_s: f64,
    /// The keys, as strings (hashed with SHA-1 by both sides).
    pub keys: Vec<String>,
    /// The value stored under each key.
    pub values: Vec<String>,
    /// `[node, key index]`: that node sets that key.
    pub sets: Vec<[usize; 2]>,
    /// `[node, key index]`: that node gets that key.
    pub gets: Vec<[usize; 2]>,
}

impl Plan {
    /// `sets` keys, each set once by a random node, and `gets` gets of
    /// random keys from random nodes.
    pub fn draw(nodes: usize, sets: usize, gets: usize, concurrency: usize, op_timeout_s: f64, seed: u64) -> Plan {
        let mut rng = SmallRng::seed_from_u64(seed);
        let keys: Vec<String> = (0..sets).map(|i| format!("worker:vs-{i:05}")).collect();
        let values = (0..sets).map(|i| value(i, None)).collect();
        let set_plan = (0..sets).map(|k| [rng.gen_range(0..nodes), k]).collect();
        let get_plan = (0..gets).map(|_| [rng.gen_range(0..nodes), rng.gen_range(0..sets)]).collect();
        let host = crate::isolate::run_address(seed).to_string();
        Plan { nodes, host, concurrency, op_timeout_s, keys, values, sets: set_plan, gets: get_plan }
    }
}

impl Plan {
    /// The same plan with every value carrying `last_seen` (Unix seconds),
    /// as the worker records kadmesh publishes do.
    pub fn with_last_seen(mut self, last_seen: f64) -> Plan {
        self.values = (0..self.values.len()).map(|i| value(i, Some(last_seen))).collect();
        self
    }
}

/// Key `i`'s value: a worker record in the platform's shape, with
/// `last_seen` when given.
fn value(i: usize, last_seen: Option<f64>) -> String {
    let mut v = serde_json::json!({
        "worker_id": format!("vs-{i:05}"),
        "tunnel_url": format!("https://vs-{i:05}.tunnel.example"),
        "services": ["ocr"],
        "capabilities": {"has_gpu": i.is_multiple_of(4), "cpu_cores": 2 + i % 14},
    });
    if let (Some(t), Some(doc)) = (last_seen, v.as_object_mut()) {
        doc.insert("last_seen".into(), t.into());
    }
    v.to_string()
}

/// What one side measured; times in seconds, memory in KiB.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SideResult {
    /// Wall time until every node had joined, one after another.
    pub bootstrap_s: f64,
    /// Each join.
    pub join_s: Vec<f64>,
    /// Each set, in completion order.
    pub set_s: Vec<f64>,
    /// Sets the implementation reported as stored.
    pub set_ok: usize,
    /// Each get, in completion order.
    pub get_s: Vec<f64>,
    /// Gets that returned exactly the value set.
    pub get_ok: usize,
    /// Wall time of the whole get phase.
    pub get_wall_s: f64,
    /// Process CPU time during the get phase.
    pub get_cpu_s: f64,
    /// Lookup requests (`find_node`, `find_value`) all nodes sent during
    /// the get phase (Rust side only).
    #[serde(default)]
    pub get_rpcs: u64,
    /// Requests of every kind all nodes sent during the get phase (lookups
    /// plus checks, hellos, stores; Rust side only).
    #[serde(default)]
    pub get_requests: u64,
    /// Resident memory before any node started.
    pub rss_base_kib: u64,
    /// Resident memory after the gets, all nodes still up.
    pub rss_end_kib: u64,
    /// Which implementation and version.
    pub label: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_is_reproducible_and_in_range() {
        let a = Plan::draw(10, 20, 50, 4, 1.0, 7);
        let b = Plan::draw(10, 20, 50, 4, 1.0, 7);
        assert_eq!(serde_json::to_string(&a).ok(), serde_json::to_string(&b).ok());
        assert_eq!((a.keys.len(), a.values.len(), a.sets.len(), a.gets.len()), (20, 20, 20, 50));
        assert!(a.sets.iter().chain(&a.gets).all(|[n, k]| *n < 10 && *k < 20));
        assert!(a.sets.iter().enumerate().all(|(i, [_, k])| i == *k), "each key is set exactly once");
    }
}
