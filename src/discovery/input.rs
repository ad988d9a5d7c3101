//! Checking what clients send: register and heartbeat bodies, worker ids,
//! service names, URLs and discover filters.
//!
//! Contract: every function takes any input and returns either the checked
//! value or an [`InvalidInput`] whose message names the field and what is
//! wrong with it; nothing here panics. Service names are checked for form
//! only: a name nobody runs yet is valid (it simply has no providers).

use serde_json::{Map, Value as Json};

use super::record::WorkerRecord;
use crate::engine::providers::{valid_id, MAX_ID_LEN};

/// Longest service name, in bytes.
pub const MAX_SERVICE_LEN: usize = 64;
/// Most services one worker may announce.
pub const MAX_SERVICES: usize = 64;
/// Longest tunnel URL, in bytes.
pub use super::url::MAX_URL_LEN;
/// Most workers a discover answer may be asked for.
pub const MAX_LIMIT: usize = 10_000;

/// Input that cannot be accepted; the message says which field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidInput(pub String);

fn invalid(msg: impl Into<String>) -> InvalidInput {
    InvalidInput(msg.into())
}

/// A service name: 1 to [`MAX_SERVICE_LEN`] ASCII letters, digits, `.`, `_`
/// or `-`.
pub fn valid_service(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_SERVICE_LEN
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Checks a service name taken from a URL path or body.
pub fn check_service(s: &str) -> Result<(), InvalidInput> {
    if valid_service(s) {
        Ok(())
    } else {
        Err(invalid(format!("invalid service name {s:?}: use 1-{MAX_SERVICE_LEN} letters, digits, '.', '_' or '-'")))
    }
}

/// Checks a worker id.
pub fn check_worker_id(s: &str) -> Result<(), InvalidInput> {
    if valid_id(s) {
        Ok(())
    } else {
        Err(invalid(format!("invalid worker_id {s:?}: use 1-{MAX_ID_LEN} letters, digits, '.', '_', ':', '@' or '-'")))
    }
}

/// Checks a tunnel URL with the forwarding rule ([`super::url`]: only
/// absolute `http`/`https` with a host; no control characters or white
/// space, user info, query or fragment; no link-local, metadata or other
/// never-a-worker address) and returns it normalised: scheme and host
/// lowercased, IP forms canonical (`http://2852039166/` is 169.254.169.254
/// and refused), no trailing `/`.
pub fn check_url(s: &str) -> Result<String, InvalidInput> {
    let url = super::url::check_target_url(s).map_err(|e| invalid(format!("invalid tunnel_url {s:?}: {e}")))?;
    let mut out = url.to_string();
    while out.ends_with('/') {
        out.pop();
    }
    Ok(out)
}

/// Refuses a (checked) tunnel URL whose host is loopback, private,
/// unspecified or `localhost`: for networks where workers must be reachable
/// from anywhere (`DiscoveryConfig::refuse_private_urls`).
pub fn refuse_private(s: &str) -> Result<(), InvalidInput> {
    let url = reqwest::Url::parse(s).map_err(|e| invalid(format!("invalid tunnel_url {s:?}: {e}")))?;
    let private = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost" || d.ends_with(".localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback() || ip.is_private() || ip.is_unspecified(),
        Some(url::Host::Ipv6(ip)) => {
            ip.is_loopback()
                || ip.is_unspecified()
                || (ip.segments()[0] & 0xfe00) == 0xfc00
                || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback() || v4.is_private())
        }
        None => true,
    };
    if private {
        return Err(invalid(format!("invalid tunnel_url {s:?}: this node refuses loopback and private hosts")));
    }
    Ok(())
}

fn object(body: &Json) -> Result<&Map<String, Json>, InvalidInput> {
    body.as_object().ok_or_else(|| invalid("the request body must be a JSON object"))
}

fn required_str<'a>(o: &'a Map<String, Json>, field: &str) -> Result<&'a str, InvalidInput> {
    match o.get(field) {
        None | Some(Json::Null) => Err(invalid(format!("missing field {field:?}"))),
        Some(v) => v.as_str().ok_or_else(|| invalid(format!("field {field:?} must be a string"))),
    }
}

fn optional_number(o: &Map<String, Json>, field: &str) -> Result<Option<f64>, InvalidInput> {
    match o.get(field) {
        None | Some(Json::Null) => Ok(None),
        Some(v) => match v.as_f64() {
            Some(f) if f.is_finite() && f >= 0.0 => Ok(Some(f)),
            _ => Err(invalid(format!("field {field:?} must be a non-negative number"))),
        },
    }
}

/// A checked registration.
#[derive(Clone, Debug, PartialEq)]
pub struct Registration {
    /// Worker id.
    pub worker_id: String,
    /// Public URL.
    pub tunnel_url: String,
    /// Services, deduplicated, in the order given.
    pub services: Vec<String>,
    /// Capabilities object (empty when not given).
    pub capabilities: Map<String, Json>,
    /// VPN address, when given.
    pub vpn_ip: Option<String>,
    /// Containers list, kept as-is.
    pub containers: Option<Json>,
    /// A coordinator's certificate (`{"expires_at", "sig"}`), checked for
    /// form only here; nodes with an endorsement key check it when reading.
    pub endorsement: Option<Json>,
}

/// Checks a `POST /api/worker/register` body.
pub fn parse_registration(body: &Json) -> Result<Registration, InvalidInput> {
    let o = object(body)?;
    let worker_id = required_str(o, "worker_id")?;
    check_worker_id(worker_id)?;
    let tunnel_url = check_url(required_str(o, "tunnel_url")?)?;
    let capabilities = match o.get("capabilities") {
        None | Some(Json::Null) => Map::new(),
        Some(Json::Object(m)) => m.clone(),
        Some(_) => return Err(invalid("field \"capabilities\" must be an object")),
    };
    let mut services: Vec<String> = Vec::new();
    match o.get("services") {
        None | Some(Json::Null) => {}
        Some(Json::Array(list)) if list.len() <= MAX_SERVICES => {
            for s in list {
                let s = s.as_str().ok_or_else(|| invalid("field \"services\" must be a list of strings"))?;
                check_service(s)?;
                if !services.iter().any(|have| have == s) {
                    services.push(s.to_owned());
                }
            }
        }
        Some(_) => return Err(invalid(format!("field \"services\" must be a list of at most {MAX_SERVICES} names"))),
    }
    let vpn_ip = match o.get("vpn_ip") {
        None | Some(Json::Null) => None,
        Some(Json::String(s)) if s.parse::<std::net::IpAddr>().is_ok() => Some(s.clone()),
        Some(_) => return Err(invalid("field \"vpn_ip\" must be an IP address")),
    };
    let containers = o.get("containers").filter(|c| !c.is_null()).cloned();
    if containers.as_ref().is_some_and(|c| !c.is_array()) {
        return Err(invalid("field \"containers\" must be a list"));
    }
    let endorsement = o.get("endorsement").filter(|e| !e.is_null()).cloned();
    if endorsement.as_ref().is_some_and(|e| crate::endorsement::Certificate::from_json(e).is_none()) {
        return Err(invalid("field \"endorsement\" must be {\"expires_at\": <Unix seconds>, \"sig\": <128 hex>}"));
    }
    Ok(Registration {
        worker_id: worker_id.to_owned(),
        tunnel_url,
        services,
        capabilities,
        vpn_ip,
        containers,
        endorsement,
    })
}

/// A checked heartbeat: what changed since the last one.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Heartbeat {
    /// Worker id.
    pub worker_id: String,
    /// Reported status (`healthy`, `degraded`, ...).
    pub status: Option<String>,
    /// `current_load`.
    pub load: Option<f64>,
    /// `available_memory`.
    pub available_memory: Option<f64>,
    /// `gpu_utilization`.
    pub gpu_utilization: Option<f64>,
    /// `active_requests`.
    pub active_requests: Option<u64>,
    /// `loaded_models`.
    pub loaded_models: Option<Vec<Json>>,
}

/// Checks a `POST /api/worker/heartbeat` body.
pub fn parse_heartbeat(body: &Json) -> Result<Heartbeat, InvalidInput> {
    let o = object(body)?;
    let worker_id = required_str(o, "worker_id")?;
    check_worker_id(worker_id)?;
    let status = match o.get("status") {
        None | Some(Json::Null) => None,
        Some(Json::String(s)) if !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_graphic()) => {
            Some(s.to_ascii_lowercase())
        }
        Some(_) => return Err(invalid("field \"status\" must be a short word such as \"healthy\"")),
    };
    let loaded_models = match o.get("loaded_models") {
        None | Some(Json::Null) => None,
        Some(Json::Array(a)) if a.len() <= 64 => Some(a.clone()),
        Some(_) => return Err(invalid("field \"loaded_models\" must be a list of at most 64 entries")),
    };
    Ok(Heartbeat {
        worker_id: worker_id.to_owned(),
        status,
        load: optional_number(o, "current_load")?,
        available_memory: optional_number(o, "available_memory")?,
        gpu_utilization: optional_number(o, "gpu_utilization")?,
        active_requests: optional_number(o, "active_requests")?.map(|n| n as u64),
        loaded_models,
    })
}

/// What a discover request asks for beyond the service name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DiscoverFilter {
    /// Only workers with a GPU.
    pub gpu: bool,
    /// Only workers reporting at least this much free memory.
    pub min_memory: Option<f64>,
    /// At most this many workers (the least loaded).
    pub limit: Option<usize>,
}

fn flag(name: &str, v: &str) -> Result<bool, InvalidInput> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err(invalid(format!("query parameter {name:?} must be true or false, not {v:?}"))),
    }
}

impl DiscoverFilter {
    /// Reads `gpu` (also `gpu_required`, `require_gpu`), `min_memory` and
    /// `limit` from query pairs; other parameters are ignored.
    pub fn from_query<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self, InvalidInput> {
        let mut f = DiscoverFilter::default();
        for (k, v) in pairs {
            match k {
                "gpu" | "gpu_required" | "require_gpu" => f.gpu |= flag(k, v)?,
                "min_memory" => match v.parse::<f64>() {
                    Ok(m) if m.is_finite() && m >= 0.0 => f.min_memory = Some(m),
                    _ => return Err(invalid(format!("query parameter \"min_memory\" must be a number, not {v:?}"))),
                },
                "limit" => match v.parse::<usize>() {
                    Ok(n) if (1..=MAX_LIMIT).contains(&n) => f.limit = Some(n),
                    _ => return Err(invalid(format!("query parameter \"limit\" must be 1-{MAX_LIMIT}, not {v:?}"))),
                },
                _ => {}
            }
        }
        Ok(f)
    }

    /// Whether `r` passes the GPU and memory conditions.
    pub fn matches(&self, r: &WorkerRecord) -> bool {
        (!self.gpu || r.has_gpu()) && self.min_memory.is_none_or(|m| r.memory().is_some_and(|have| have >= m))
    }

    /// The same filter as query pairs (to forward to a coordinator).
    pub fn to_query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if self.gpu {
            q.push(("gpu", "true".to_owned()));
        }
        if let Some(m) = self.min_memory {
            q.push(("min_memory", m.to_string()));
        }
        if let Some(n) = self.limit {
            q.push(("limit", n.to_string()));
        }
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn registration_needs_id_and_a_real_url() {
        let ok = json!({"worker_id": "w-1", "tunnel_url": "https://w.example.net", "services": ["ocr", "ocr", "x.y"]});
        let r = parse_registration(&ok).unwrap();
        assert_eq!(r.services, ["ocr", "x.y"]);
        let cases = [
            (json!([]), "JSON object"),
            (json!({"tunnel_url": "https://a"}), "missing field \"worker_id\""),
            (json!({"worker_id": "w"}), "missing field \"tunnel_url\""),
            (json!({"worker_id": 3, "tunnel_url": "https://a"}), "must be a string"),
            (json!({"worker_id": "a b", "tunnel_url": "https://a"}), "invalid worker_id"),
            (json!({"worker_id": "w", "tunnel_url": "ftp://a"}), "http or https"),
            (json!({"worker_id": "w", "tunnel_url": "not a url"}), "invalid tunnel_url"),
            (json!({"worker_id": "w", "tunnel_url": "https://a", "services": "ocr"}), "list of at most"),
            (json!({"worker_id": "w", "tunnel_url": "https://a", "services": ["a/b"]}), "invalid service"),
            (json!({"worker_id": "w", "tunnel_url": "https://a", "capabilities": 1}), "capabilities"),
            (json!({"worker_id": "w", "tunnel_url": "https://a", "vpn_ip": "x"}), "vpn_ip"),
        ];
        for (body, want) in cases {
            let err = parse_registration(&body).unwrap_err().0;
            assert!(err.contains(want), "{body}: {err}");
        }
    }

    #[test]
    fn tunnel_urls_are_normalised_and_dangerous_ones_refused() {
        let ok = |u: &str| check_url(u).unwrap();
        assert_eq!(ok("HTTPS://W.Example.NET/"), "https://w.example.net");
        assert_eq!(ok("http://10.0.0.5:8000/api/"), "http://10.0.0.5:8000/api");
        assert_eq!(ok("http://127.0.0.1:9000"), "http://127.0.0.1:9000", "loopback allowed by default");
        let cases = [
            ("https://user:pass@w.example.net", "user info"),
            ("https://user@w.example.net", "user info"),
            ("https://w.example.net/\r\nX-Evil: 1", "control character"),
            ("https://w.exam\tple.net", "control character"),
            ("https://x.example/?a=1", "query"),
            ("http://169.254.169.254/latest/meta-data", "link-local"),
            ("http://2852039166/", "link-local"),
            ("http://[fe80::1]/", "link-local"),
            ("http://[::ffff:169.254.1.1]/", "link-local"),
            ("http://metadata.google.internal/", "metadata"),
        ];
        for (url, want) in cases {
            let err = check_url(url).unwrap_err().0;
            assert!(err.contains(want), "{url}: {err}");
        }
        for private in
            ["http://127.0.0.1:1", "http://localhost:8000", "http://192.168.1.2", "http://[::1]/", "http://[fd00::1]"]
        {
            assert!(refuse_private(&ok(private)).is_err(), "{private}");
        }
        assert!(refuse_private("https://w.example.net").is_ok());
        assert!(refuse_private("http://8.8.8.8").is_ok());
    }

    #[test]
    fn heartbeat_fields_are_typed() {
        let h = parse_heartbeat(&json!({"worker_id": "w", "status": "Healthy", "current_load": 0.5})).unwrap();
        assert_eq!((h.status.as_deref(), h.load), (Some("healthy"), Some(0.5)));
        assert!(parse_heartbeat(&json!({"worker_id": "w", "current_load": -1})).is_err());
        assert!(parse_heartbeat(&json!({"worker_id": "w", "current_load": "x"})).is_err());
        assert!(parse_heartbeat(&json!({"current_load": 1})).is_err());
    }

    #[test]
    fn discover_filter_parses_and_matches() {
        let f = DiscoverFilter::from_query([("gpu_required", "true"), ("min_memory", "8"), ("x", "y")]).unwrap();
        assert_eq!(f, DiscoverFilter { gpu: true, min_memory: Some(8.0), limit: None });
        assert!(DiscoverFilter::from_query([("limit", "0")]).is_err());
        assert!(DiscoverFilter::from_query([("gpu", "maybe")]).is_err());
        let rec =
            |caps: &str| WorkerRecord::from_json(&format!(r#"{{"worker_id":"w","capabilities":{caps}}}"#)).unwrap();
        assert!(f.matches(&rec(r#"{"has_gpu": true, "available_memory": 16}"#)));
        assert!(!f.matches(&rec(r#"{"has_gpu": true}"#)));
        assert!(!f.matches(&rec(r#"{"available_memory": 16}"#)));
        assert_eq!(f.to_query().len(), 2);
    }
}
