//! Sample workers for `dhtd demo`: a handful of workers with varied
//! services, GPUs, storage and loads, registered and kept alive through the
//! same checks and calls as `POST /api/worker/register` and
//! `POST /api/worker/heartbeat`; visiting workers that come and go
//! ([`churn`]) and a trickle of discover lookups ([`lookups`]), so the
//! network page has something to show.

use std::time::Duration;

use serde_json::{json, Value as Json};

use super::input::{parse_heartbeat, parse_registration};
use super::{Discovery, DiscoveryError};

/// One sample worker: registration body, load and free memory (GB).
#[derive(Clone, Debug)]
pub struct SampleWorker {
    /// The register body, as a worker would send it.
    pub register: Json,
    /// Load reported in heartbeats.
    pub load: f64,
    /// Free memory reported in heartbeats.
    pub memory: f64,
}

fn sample(id: &str, services: &[&str], caps: Json, load: f64, memory: f64) -> SampleWorker {
    let register = json!({
        "worker_id": id,
        "tunnel_url": format!("https://{id}.example-tunnel.net"),
        "capabilities": caps,
        "services": services,
    });
    SampleWorker { register, load, memory }
}

/// The demo's workers.
pub fn sample_workers() -> Vec<SampleWorker> {
    let gpu = |name: &str, cores: u32| json!({"has_gpu": true, "gpu_type": name, "cpu_cores": cores});
    let cpu = |cores: u32| json!({"has_gpu": false, "cpu_cores": cores});
    vec![
        sample("worker-gpu-001", &["ocr", "llm-inference"], gpu("NVIDIA RTX 3090", 16), 0.2, 24.0),
        sample("worker-gpu-002", &["llm-inference", "embedding"], gpu("NVIDIA RTX 4090", 24), 0.6, 20.0),
        sample("worker-7", &["ocr"], cpu(16), 0.1, 8.0),
        sample(
            "worker-pi-01",
            &["ocr"],
            json!({"has_gpu": false, "cpu_cores": 4, "device": "Raspberry Pi 4"}),
            0.7,
            2.0,
        ),
        sample("worker-cpu-05", &["translate", "ocr"], cpu(8), 0.4, 16.0),
        sample("worker-gpu-003", &["image-generation"], gpu("NVIDIA A4000", 12), 0.3, 14.0),
        sample(
            "worker-store-01",
            &["document-store"],
            json!({"has_gpu": false, "cpu_cores": 4, "storage_gb": 2000, "worker_type": "storage"}),
            0.15,
            6.0,
        ),
    ]
}

/// Workers that [`churn`] registers and unregisters in turn.
pub fn visiting_workers() -> Vec<SampleWorker> {
    let cpu = |cores: u32| json!({"has_gpu": false, "cpu_cores": cores});
    vec![
        sample("visitor-laptop-01", &["ocr", "translate"], cpu(8), 0.3, 6.0),
        sample(
            "visitor-gpu-02",
            &["embedding"],
            json!({"has_gpu": true, "gpu_type": "NVIDIA T4", "cpu_cores": 8}),
            0.5,
            12.0,
        ),
        sample(
            "visitor-nas-03",
            &["document-store"],
            json!({"has_gpu": false, "storage_gb": 500, "worker_type": "storage"}),
            0.1,
            2.0,
        ),
    ]
}

/// Every `every`, the next visiting worker joins (through a node chosen in
/// turn) and the one that joined before it leaves, so the page sees joins and
/// departures; runs until a call fails (the nodes stopped).
pub async fn churn(nodes: Vec<Discovery>, every: Duration) {
    let visitors = visiting_workers();
    if nodes.is_empty() || visitors.is_empty() {
        return;
    }
    let mut present: Option<(usize, usize, Option<String>)> = None;
    for round in 0usize.. {
        tokio::time::sleep(every).await;
        let (v, n) = (round % visitors.len(), round % nodes.len());
        let credential = match visit(&nodes[n], &visitors[v]).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "demo visitor could not join");
                if matches!(e, DiscoveryError::Node(_)) {
                    return;
                }
                continue;
            }
        };
        if let Some((pv, pn, cred)) = present.replace((v, n, credential)) {
            let id = visitors[pv].register["worker_id"].as_str().unwrap_or_default();
            // The visitor leaves with the credential its registration returned.
            let key = cred.as_deref().and_then(|c| super::keys::parse_credential(c).ok());
            if let Err(e) = nodes[pn].unregister(id, key).await {
                tracing::warn!(error = %e, "demo visitor could not leave");
            }
        }
    }
}

/// Registers `w` through `d` and heartbeats it; returns its credential.
async fn visit(d: &Discovery, w: &SampleWorker) -> Result<Option<String>, DiscoveryError> {
    let out = d.register(parse_registration(&w.register)?, None).await?;
    heartbeat(d, w, w.load).await?;
    Ok(out.credential)
}

/// Discover requests for the sample services through `d`, one every `every`,
/// until the node stops: the lookups/s counter's traffic.
pub async fn lookups(d: Discovery, every: Duration) {
    let services = ["ocr", "llm-inference", "embedding", "translate", "image-generation", "document-store"];
    for i in 0usize.. {
        tokio::time::sleep(every).await;
        let filter = super::input::DiscoverFilter::default();
        if let Err(DiscoveryError::Node(_)) = d.discover(services[i % services.len()], &filter).await {
            return;
        }
    }
}

/// Sends one heartbeat for `w` through `d`, with `load`.
pub async fn heartbeat(d: &Discovery, w: &SampleWorker, load: f64) -> Result<(), DiscoveryError> {
    let body = json!({"worker_id": w.register["worker_id"], "status": "healthy", "current_load": load,
                      "available_memory": w.memory, "loaded_models": [], "active_requests": 0,
                      "gpu_utilization": 0.0, "services_status": {}});
    d.heartbeat(parse_heartbeat(&body)?, None).await?;
    Ok(())
}

/// Registers sample worker `i` through `nodes[i % len]` (so they spread over
/// the network) and sends its first heartbeat.
pub async fn register_samples(nodes: &[Discovery], workers: &[SampleWorker]) -> Result<(), DiscoveryError> {
    if nodes.is_empty() {
        return Ok(());
    }
    for (i, w) in workers.iter().enumerate() {
        let d = &nodes[i % nodes.len()];
        d.register(parse_registration(&w.register)?, None).await?;
        heartbeat(d, w, w.load).await?;
    }
    Ok(())
}

/// Heartbeats every sample worker every `every`, with loads drifting a
/// little, until the nodes stop.
pub async fn keep_alive(nodes: Vec<Discovery>, workers: Vec<SampleWorker>, every: Duration) {
    if nodes.is_empty() {
        return;
    }
    for round in 1u64.. {
        tokio::time::sleep(every).await;
        for (i, w) in workers.iter().enumerate() {
            let drift = ((round + i as u64) % 5) as f64 * 0.05 - 0.1;
            let load = (w.load + drift).clamp(0.0, 1.0);
            if let Err(e) = heartbeat(&nodes[i % nodes.len()], w, load).await {
                tracing::debug!(error = %e, "demo heartbeat failed; stopping");
                return;
            }
        }
    }
}
