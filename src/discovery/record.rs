//! Worker records: the JSON document stored under `worker:{worker_id}`, and
//! what makes a worker healthy.
//!
//! A record is a JSON *string* value, as the platform's Python workers write
//! it (Python's `get` cannot handle map or array values). Ours carry the
//! platform's fields plus `last_seen` and `expires_at` (Unix seconds), `load`
//! and `status`. Liveness travels inside the value and is checked when it is
//! read ([`WorkerRecord::health`]): in a network with stock Python peers every
//! replica re-stores what it holds each hour and resets its age, so a value
//! never expires there by itself.
//!
//! Reading is lenient ([`WorkerRecord::from_json`]): a legacy record with a
//! missing or oddly typed field still yields a record, and only a record
//! without a usable `worker_id` is rejected. Writing always produces the full
//! shape ([`WorkerRecord::to_json`]).

use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Map, Value as Json};

use crate::wire::Value;

/// Largest record JSON we publish: a Python peer refuses to send a `store`
/// whose body exceeds 8192 bytes, so the value must leave room for the rest.
pub const MAX_RECORD_BYTES: usize = 6 * 1024;

/// The status a worker reports when it can take work.
pub const STATUS_HEALTHY: &str = "healthy";
/// The status of an unregistered worker's tombstone record.
pub const STATUS_OFFLINE: &str = "offline";

/// How a reader sees a worker at a given moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// Heard from within its liveness window and reporting `healthy`.
    Healthy,
    /// Alive but reporting another status, or past its window but within
    /// twice the window (the platform's "stale after 10 minutes").
    Degraded,
    /// Unregistered, or silent for longer than twice its window.
    Offline,
}

impl Health {
    /// The platform's status string.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Degraded => "degraded",
            Health::Offline => "offline",
        }
    }
}

/// The document under `worker:{worker_id}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WorkerRecord {
    /// Unique worker id.
    pub worker_id: String,
    /// The worker's public HTTP(S) address.
    pub tunnel_url: String,
    /// Service names it runs.
    pub services: Vec<String>,
    /// What the worker detected about itself (`has_gpu`, `gpu_type`, ...).
    pub capabilities: Map<String, Json>,
    /// Optional VPN address.
    pub vpn_ip: Option<String>,
    /// Last heartbeat, Unix seconds.
    pub last_seen: Option<f64>,
    /// Healthy until then, Unix seconds (absent in legacy records: then
    /// `last_seen` plus the reader's window applies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<f64>,
    /// The worker's own status (`healthy`, `degraded`, ...); `offline` marks
    /// an unregistered worker.
    pub status: String,
    /// Current load, 0 = idle; discovery sorts by it.
    pub load: f64,
    /// Free memory as the worker reports it (same unit as its heartbeat).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_memory: Option<f64>,
    /// GPU utilisation as reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_utilization: Option<f64>,
    /// Requests in progress as reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_requests: Option<u64>,
    /// Models loaded, as reported.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub loaded_models: Vec<Json>,
    /// The containers list given at registration, kept as-is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub containers: Option<Json>,
    /// Publisher's version of this record (Unix milliseconds of the change).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// Hex id of the DHT node the worker registered with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
}

/// Whether capabilities report a GPU (`has_gpu`, a `gpu_count` above zero,
/// or a non-empty `gpu_type`).
pub fn reports_gpu(c: &Map<String, Json>) -> bool {
    c.get("has_gpu").and_then(Json::as_bool).unwrap_or(false)
        || c.get("gpu_count").and_then(number).is_some_and(|n| n > 0.0)
        || c.get("gpu_type").and_then(Json::as_str).is_some_and(|s| !s.trim().is_empty())
}

/// A JSON number, or a string holding one (some Python writers stringify).
fn number(v: &Json) -> Option<f64> {
    let f = match v {
        Json::Number(n) => n.as_f64()?,
        Json::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    f.is_finite().then_some(f)
}

impl WorkerRecord {
    /// Reads a record as any writer left it; `None` when it is not a JSON
    /// object with a valid `worker_id`.
    pub fn from_json(text: &str) -> Option<WorkerRecord> {
        let doc: Json = serde_json::from_str(text).ok()?;
        let o = doc.as_object()?;
        let text = |k: &str| o.get(k).and_then(Json::as_str).map(str::to_owned);
        let num = |k: &str| o.get(k).and_then(number);
        let worker_id = text("worker_id").filter(|id| crate::engine::providers::valid_id(id))?;
        let services = o.get("services").and_then(Json::as_array).map(|a| {
            a.iter().filter_map(Json::as_str).filter(|s| super::input::valid_service(s)).map(str::to_owned).collect()
        });
        Some(WorkerRecord {
            worker_id,
            tunnel_url: text("tunnel_url").unwrap_or_default(),
            services: services.unwrap_or_default(),
            capabilities: o.get("capabilities").and_then(Json::as_object).cloned().unwrap_or_default(),
            vpn_ip: text("vpn_ip"),
            last_seen: num("last_seen").or_else(|| num("last_heartbeat")),
            expires_at: num("expires_at"),
            status: text("status").unwrap_or_else(|| STATUS_HEALTHY.to_owned()),
            load: num("load").or_else(|| num("current_load")).unwrap_or(0.0),
            available_memory: num("available_memory"),
            gpu_utilization: num("gpu_utilization"),
            active_requests: num("active_requests").map(|n| n.max(0.0) as u64),
            loaded_models: o.get("loaded_models").and_then(Json::as_array).cloned().unwrap_or_default(),
            containers: o.get("containers").cloned(),
            version: num("version").map(|n| n.max(0.0) as u64),
            node_id: text("node_id"),
        })
    }

    /// Reads a record from a DHT value (a str, or UTF-8 bytes).
    pub fn from_value(v: &Value) -> Option<WorkerRecord> {
        match v {
            Value::Str(s) => Self::from_json(s),
            Value::Bin(b) => Self::from_json(std::str::from_utf8(b).ok()?),
            _ => None,
        }
    }

    /// The JSON text stored in the DHT.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// How a reader at `now` (Unix seconds) sees this worker; `window` is the
    /// reader's liveness window, used when the record has no `expires_at`.
    /// A record with neither timestamp is offline: nothing says it is alive.
    pub fn health(&self, now: f64, window: Duration) -> Health {
        if self.status == STATUS_OFFLINE {
            return Health::Offline;
        }
        let window = window.as_secs_f64();
        let deadline = match (self.expires_at, self.last_seen) {
            (Some(e), _) => e,
            (None, Some(seen)) => seen + window,
            (None, None) => return Health::Offline,
        };
        match (now < deadline, now < deadline + window) {
            (true, _) if self.status == STATUS_HEALTHY => Health::Healthy,
            (true, _) | (false, true) => Health::Degraded,
            (false, false) => Health::Offline,
        }
    }

    /// Whether the worker reported a GPU (`has_gpu`, a `gpu_count` above
    /// zero, or a non-empty `gpu_type`).
    pub fn has_gpu(&self) -> bool {
        reports_gpu(&self.capabilities)
    }

    /// Free memory: the heartbeat's `available_memory`, else the one in
    /// `capabilities`.
    pub fn memory(&self) -> Option<f64> {
        self.available_memory.or_else(|| self.capabilities.get("available_memory").and_then(number))
    }

    /// The entry of a discover answer, in the coordinator's shape.
    pub fn view(&self, now: f64, window: Duration) -> Json {
        json!({
            "worker_id": self.worker_id,
            "tunnel_url": self.tunnel_url,
            "vpn_ip": self.vpn_ip,
            "capabilities": self.capabilities,
            "load": self.load,
            "last_heartbeat": self.last_seen,
            "status": self.health(now, window).as_str(),
            "services": self.services,
            "available_memory": self.memory(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(300);

    fn legacy() -> String {
        r#"{"worker_id": "worker-gpu-001", "tunnel_url": "https://w.example.net", "services": ["ocr", "bad name"],
            "capabilities": {"has_gpu": true, "gpu_type": "NVIDIA RTX 3090", "cpu_cores": 16}, "last_seen": 1000.5}"#
            .to_owned()
    }

    #[test]
    fn reads_a_legacy_python_record() {
        let r = WorkerRecord::from_json(&legacy()).unwrap();
        assert_eq!(r.worker_id, "worker-gpu-001");
        assert_eq!(r.services, ["ocr"]);
        assert!(r.has_gpu());
        assert_eq!((r.load, r.status.as_str(), r.expires_at), (0.0, "healthy", None));
        assert_eq!(r.health(1000.0 + 299.0, WINDOW), Health::Healthy);
        assert_eq!(r.health(1000.5 + 300.0, WINDOW), Health::Degraded);
        assert_eq!(r.health(1000.5 + 600.0, WINDOW), Health::Offline);
    }

    #[test]
    fn rejects_what_is_not_a_record() {
        for bad in
            ["[]", "\"x\"", "{}", r#"{"worker_id": ""}"#, r#"{"worker_id": 5}"#, "not json", r#"{"worker_id":"a b"}"#]
        {
            assert_eq!(WorkerRecord::from_json(bad), None, "{bad}");
        }
        assert_eq!(WorkerRecord::from_value(&Value::Int(3)), None);
    }

    #[test]
    fn roundtrips_through_json_and_bytes() {
        let mut r = WorkerRecord::from_json(&legacy()).unwrap();
        r.expires_at = Some(2000.0);
        r.load = 0.25;
        r.version = Some(7);
        let again = WorkerRecord::from_value(&Value::Bin(r.to_json().into_bytes())).unwrap();
        assert_eq!(again, r);
        assert_eq!(again.health(1999.0, Duration::from_secs(1)), Health::Healthy, "expires_at wins over the window");
    }

    #[test]
    fn offline_and_timestampless_records_are_not_healthy() {
        let mut r = WorkerRecord::from_json(r#"{"worker_id": "w", "tunnel_url": "http://x"}"#).unwrap();
        assert_eq!(r.health(0.0, WINDOW), Health::Offline);
        r.last_seen = Some(0.0);
        r.status = "busy".into();
        assert_eq!(r.health(1.0, WINDOW), Health::Degraded);
        r.status = STATUS_OFFLINE.into();
        assert_eq!(r.health(1.0, WINDOW), Health::Offline);
    }

    #[test]
    fn gpu_and_memory_come_from_several_spellings() {
        let r = |caps: &str| WorkerRecord::from_json(&format!(r#"{{"worker_id":"w","capabilities":{caps}}}"#)).unwrap();
        assert!(r(r#"{"gpu_count": "2"}"#).has_gpu());
        assert!(!r(r#"{"gpu_type": " ", "has_gpu": false}"#).has_gpu());
        assert_eq!(r(r#"{"available_memory": 8}"#).memory(), Some(8.0));
    }
}
