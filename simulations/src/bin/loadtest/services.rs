//! The `--discovery` workload: workers register through the service
//! discovery layer (`kadmesh::discovery`) and lookups ask for every healthy
//! worker of a service, as `GET /api/services/discover/{service}` does.
//!
//! Each worker offers one of [`SERVICES`] and registers through a random
//! node, whose `Discovery` keeps it fresh (its refresher runs, and a
//! heartbeat goes every [`HEARTBEAT_EVERY`] as platform workers send them).
//! A lookup builds a `Discovery` with its answer cache off on a random live
//! node, so every lookup reaches the DHT; it is found when the answer comes
//! from the DHT and names every worker registered for that service, partial
//! when it names some.

use std::sync::Arc;
use std::time::Duration;

use kadmesh::discovery::input::{parse_heartbeat, parse_registration, DiscoverFilter};
use kadmesh::discovery::{Discovery, DiscoveryConfig, DiscoveryError, Source};
use serde_json::json;
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::workload::{Outcome, Registration};

/// Service names the workers offer, one each, round-robin.
pub const SERVICES: [&str; 6] = ["ocr", "embedding", "llm-inference", "translate", "image-generation", "table-extract"];

/// How often each worker heartbeats (the platform's interval).
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(30);

/// Workers registered through the discovery layer.
pub struct Services {
    /// Per service in [`SERVICES`], how many workers offer it.
    expected: Vec<usize>,
    /// Each worker's id and the discovery service it registered through.
    registered: Vec<(String, Discovery)>,
}

fn lookup_config() -> DiscoveryConfig {
    DiscoveryConfig { cache_ttl: Duration::ZERO, ..DiscoveryConfig::default() }
}

impl Services {
    /// Registers `n` workers, each through a random live node.
    pub async fn register(cluster: &Cluster, n: usize) -> Result<(Services, Registration), String> {
        let began = Instant::now();
        let (mut expected, mut registered) = (vec![0; SERVICES.len()], Vec::with_capacity(n));
        let (mut unstored, mut min_replicas) = (0, usize::MAX);
        for i in 0..n {
            let Some(node) = cluster.random_live() else { break };
            let d = Discovery::new(node, DiscoveryConfig::default()).map_err(|e| e.to_string())?;
            let id = format!("lt-{i:04}");
            let body = json!({
                "worker_id": id,
                "tunnel_url": format!("https://{id}.tunnel.example"),
                "services": [SERVICES[i % SERVICES.len()]],
                "capabilities": {"has_gpu": i % 4 == 0, "cpu_cores": 2 + i % 14},
            });
            let reg = parse_registration(&body).map_err(|e| e.to_string())?;
            match d.register(reg, None).await.map(|o| o.report) {
                Ok(Some(r)) => min_replicas = min_replicas.min(r.record_replicas.min(r.provider_replicas)),
                Ok(None) | Err(_) => unstored += 1,
            }
            tokio::spawn(d.clone().run_refresher());
            expected[i % SERVICES.len()] += 1;
            registered.push((id, d));
        }
        let report = Registration { took: began.elapsed(), unstored, min_replicas: min_replicas.min(n) };
        Ok((Services { expected, registered }, report))
    }

    /// Heartbeats every worker every [`HEARTBEAT_EVERY`] until `end`; a
    /// worker whose node was killed just fails its heartbeats.
    pub async fn heartbeat_until(self: Arc<Self>, end: Instant) {
        let mut ticks = tokio::time::interval(HEARTBEAT_EVERY);
        ticks.tick().await;
        while ticks.tick().await < end {
            for (id, d) in &self.registered {
                let body = json!({"worker_id": id, "status": "healthy", "current_load": 0.1});
                if let Ok(hb) = parse_heartbeat(&body) {
                    let _ = d.heartbeat(hb, None).await;
                }
            }
        }
    }

    /// Stops every refresher.
    pub fn shutdown(&self) {
        for (_, d) in &self.registered {
            d.shutdown();
        }
    }

    /// One discover lookup of a random service from a random live node.
    pub async fn lookup(&self, cluster: &Cluster, timeout: Duration) -> Outcome {
        let Some(node) = cluster.random_live() else { return Outcome::Failed };
        let s = cluster.pick(SERVICES.len());
        let Ok(d) = Discovery::new(node, lookup_config()) else { return Outcome::Failed };
        match tokio::time::timeout(timeout, d.discover(SERVICES[s], &DiscoverFilter::default())).await {
            Err(_) => Outcome::TimedOut,
            Ok(Ok(answer)) => match answer.source {
                Source::Dht { workers, .. } if workers.len() >= self.expected[s] => Outcome::Found,
                Source::Dht { .. } => Outcome::Wrong,
                Source::Coordinator { .. } => Outcome::Failed,
            },
            Ok(Err(DiscoveryError::NoHealthyWorkers { .. })) => Outcome::NotFound,
            Ok(Err(_)) => Outcome::Failed,
        }
    }
}
