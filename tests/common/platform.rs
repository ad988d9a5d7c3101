//! The platform's own Python DHT client and worker, emulated on stock
//! `kademlia` by `tests/interop/platform_client.py` (see its docs for what it
//! does and why): [`PlatformClient::connect`] starts `count` of them, each
//! bootstrapped from a kadmesh node's `/api/dht/bootstrap` document the way
//! theirs is (seeds by `tunnel_url` host).
//!
//! ```ignore
//! let py = PlatformClient::connect(&format!("{url}/api/dht/bootstrap"), 1, 2.0).await.unwrap();
//! py.register(0, "py-worker-1", &["ocr"]).await;
//! let found = py.find(0, "ocr").await;   // service:ocr, then worker:{id} per id
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;

use serde_json::Value as Json;

use super::python::{Script, PY_TIMEOUT};

/// Path of the emulation script.
pub fn platform_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/platform_client.py")
}

/// What [`PlatformClient::find`] read: the list, and the records it named.
#[derive(Debug, Clone)]
pub struct Found {
    /// The `service:{svc}` list as read.
    pub ids: Vec<String>,
    /// The `worker:{id}` records that were found, in list order.
    pub workers: Vec<Json>,
}

impl Found {
    /// The `worker_id`s of the records found, sorted.
    pub fn worker_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> =
            self.workers.iter().filter_map(|w| w["worker_id"].as_str().map(str::to_owned)).collect();
        ids.sort();
        ids
    }
}

/// One Python process hosting `count` platform clients.
pub struct PlatformClient {
    script: Script,
    /// The UDP address of each client's stock `Server`.
    pub addrs: Vec<SocketAddr>,
    /// The seeds each client bootstrapped from, as it read them from the document.
    pub seeds: Vec<(String, u16)>,
}

impl PlatformClient {
    /// Starts `count` clients that bootstrap from `bootstrap_url` and
    /// heartbeat every `heartbeat` seconds; `Err` with the Python error when
    /// connecting failed (as theirs would).
    pub async fn connect(bootstrap_url: &str, count: usize, heartbeat: f64) -> Result<PlatformClient, String> {
        let args = [
            "--bootstrap-url".to_owned(),
            bootstrap_url.to_owned(),
            "--count".to_owned(),
            count.to_string(),
            "--heartbeat".to_owned(),
            heartbeat.to_string(),
            "--timeout".to_owned(),
            PY_TIMEOUT.as_secs_f64().to_string(),
        ];
        let (script, hello) = Script::spawn(&platform_script(), &args).await?;
        if let Some(e) = hello["error"].as_str() {
            return Err(e.to_owned());
        }
        let ports = hello["ports"].as_array().ok_or("startup line has no ports")?;
        let addrs = ports.iter().map(|p| SocketAddr::from(([127, 0, 0, 1], p.as_u64().unwrap_or(0) as u16)));
        let seeds = hello["seeds"].as_array().ok_or("startup line has no seeds")?;
        let seeds = seeds.iter().map(|s| (s[0].as_str().unwrap_or("").to_owned(), s[1].as_u64().unwrap_or(0) as u16));
        Ok(PlatformClient { script, addrs: addrs.collect(), seeds: seeds.collect() })
    }

    /// Client `i` registers `worker` for `services` (record, list RMW,
    /// heartbeat loop); returns the record it wrote.
    pub async fn register(&self, i: usize, worker: &str, services: &[&str]) -> Json {
        self.script.cmd(&format!("@{i} register {worker} {}", services.join(","))).await
    }

    /// Like [`register`](Self::register) with an explicit tunnel URL.
    pub async fn register_at(&self, i: usize, worker: &str, services: &[&str], url: &str) -> Json {
        self.script.cmd(&format!("@{i} register {worker} {} {url}", services.join(","))).await
    }

    /// Client `i` registers `workers[i]`, all at the same moment.
    pub async fn register_all(&self, workers: &[String], services: &[&str]) -> Json {
        self.script.cmd(&format!("registerall {} {}", services.join(","), workers.join(" "))).await
    }

    /// The worker dies: its heartbeats stop, nothing is removed.
    pub async fn stop(&self, i: usize, worker: &str) {
        self.script.cmd(&format!("@{i} stop {worker}")).await;
    }

    /// Their disconnect: the id leaves every list by read-modify-write.
    pub async fn unpublish(&self, i: usize, worker: &str) -> Json {
        self.script.cmd(&format!("@{i} unpublish {worker}")).await
    }

    /// Heartbeats client `i` has written for `worker`.
    pub async fn beats(&self, i: usize, worker: &str) -> u64 {
        self.script.cmd(&format!("@{i} beats {worker}")).await.as_u64().expect("a count")
    }

    /// Their `find_service_workers` through client `i`.
    pub async fn find(&self, i: usize, service: &str) -> Found {
        let v = self.script.cmd(&format!("@{i} find {service}")).await;
        let ids = v["ids"].as_array().expect("ids").iter().map(|s| s.as_str().expect("id").to_owned()).collect();
        Found { ids, workers: v["workers"].as_array().expect("workers").clone() }
    }

    /// The raw string value under `key` as client `i` reads it.
    pub async fn get(&self, i: usize, key: &str) -> Option<String> {
        self.script.cmd(&format!("@{i} get {key}")).await.as_str().map(str::to_owned)
    }
}
