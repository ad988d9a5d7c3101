//! The worker announcement the simulator stores, in the shape the platform's
//! Python workers write under `worker:{worker_id}`: a JSON object in a msgpack
//! string, with `last_seen` in seconds. Liveness is judged from `last_seen`
//! inside the value (the record itself lives 24 h in the DHT), the way the
//! platform judges heartbeats: healthy if seen within 5 minutes.
//!
//! With `signed`, the worker signs it as a kadmesh node signs a worker record
//! (`proto-spec/EXTENSIONS.md` §5.1) with a key derived from its name (a
//! restarted worker keeps its name and so its key), `seq` = the put's
//! simulated time in ms and `expires_at` 5 minutes later in simulated
//! seconds (the engines' clock): the engines' store rule then keeps an older
//! copy from replacing a newer one, and the cost of signing and checking is
//! in the run's wall time and bytes.

use kadmesh::time::Time;
use kadmesh::wire::Value;

/// Unix time of simulated time zero, so `last_seen` looks like a real timestamp.
pub const EPOCH_SECS: u64 = 1_700_000_000;

const SERVICES: [&str; 4] = ["ocr", "embeddings", "llm", "layout"];

/// The service worker machine `slot` offers.
pub fn service_of(slot: u32) -> usize {
    slot as usize % SERVICES.len()
}

/// Services there are.
pub const SERVICE_COUNT: usize = SERVICES.len();

/// The key of service `s`'s provider set.
pub fn provider_key(s: usize) -> kadmesh::id::Key {
    kadmesh::id::Key::for_key(&format!("service:{}", SERVICES[s % SERVICES.len()]))
}

/// Where worker `name` on machine `slot` writes its provider entry at
/// `now`, and the entry: it lives three heartbeats (one lost write is
/// covered by the next).
pub fn provider_write(
    name: &str,
    slot: u32,
    now: Time,
    heartbeat: std::time::Duration,
) -> (kadmesh::id::Key, kadmesh::discovery::wire::Announce) {
    (provider_key(service_of(slot)), provider_entry(name, now, heartbeat * 3))
}

/// Worker `name`'s provider entry at `now`, living `ttl` (unsigned: the
/// simulated readers only count names).
pub fn provider_entry(name: &str, now: Time, ttl: std::time::Duration) -> kadmesh::discovery::wire::Announce {
    kadmesh::discovery::wire::Announce {
        id: name.to_owned(),
        version: now.as_millis(),
        ttl,
        load: None,
        signature: None,
    }
}

/// The announcement of worker `name` on machine `slot`, seen at `now`,
/// signed when `signed`.
pub fn worker_value(name: &str, slot: u32, now: Time, signed: bool) -> Value {
    let gpu = slot.rem_euclid(5) == 0;
    let service = SERVICES[service_of(slot)];
    let cores = 4 << (slot % 3);
    let last_seen = EPOCH_SECS + now.as_secs();
    let text = format!(
        r#"{{"worker_id":"{name}","tunnel_url":"https://{name}.tunnel.example.net","services":["{service}"],"capabilities":{{"has_gpu":{gpu},"cpu_cores":{cores}}},"last_seen":{last_seen}}}"#
    );
    if !signed {
        return Value::Str(text);
    }
    let key = ed25519_dalek::SigningKey::from_bytes(&worker_seed(name));
    let pk = hex_of(&key.verifying_key().to_bytes());
    let (seq, expires_at) = (now.as_millis(), now.as_secs() + 300);
    let body = text.strip_suffix('}').unwrap_or(&text);
    let t = format!(r#"{body},"expires_at":{expires_at},"public_key":"{pk}","seq":{seq}}}"#);
    Value::Str(kadmesh::signed::sign(&t, &key).unwrap_or(t))
}

/// A worker's key seed, from its name.
fn worker_seed(name: &str) -> [u8; 32] {
    let mut seed = [0u8; 32];
    let a = kadmesh::id::Key::for_key(name).0;
    let b = kadmesh::id::Key::for_key(&format!("{name}/seed")).0;
    seed[..20].copy_from_slice(&a);
    seed[20..].copy_from_slice(&b[..12]);
    seed
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `last_seen` of an announcement, as simulated time; `None` if the value is
/// not one.
pub fn last_seen(v: &Value) -> Option<Time> {
    let s = v.as_str()?;
    let rest = &s[s.find("\"last_seen\":")? + "\"last_seen\":".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let secs: u64 = digits.parse().ok()?;
    Some(Time::from_secs(secs.checked_sub(EPOCH_SECS)?))
}

/// Whether an announcement counts as alive at `now`.
pub fn is_fresh(v: &Value, now: Time, stale_after: std::time::Duration) -> bool {
    last_seen(v).is_some_and(|seen| now <= seen + stale_after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn last_seen_round_trips_and_judges_liveness() {
        let v = worker_value("w7-1", 7, Time::from_secs(600), false);
        assert_eq!(last_seen(&v), Some(Time::from_secs(600)));
        let five = Duration::from_secs(300);
        assert!(is_fresh(&v, Time::from_secs(900), five));
        assert!(!is_fresh(&v, Time::from_millis(900_001), five));
        assert!(!is_fresh(&Value::Str("{}".into()), Time::ZERO, five));
        assert!(v.as_str().unwrap().len() < 250);
    }

    #[test]
    fn signed_announcements_verify_and_keep_liveness_readable() {
        let v = worker_value("w7-1", 7, Time::from_secs(600), true);
        let info = kadmesh::signed::verify(v.as_str().unwrap()).unwrap();
        assert_eq!((info.worker_id.as_str(), info.seq), ("w7-1", 600_000));
        assert_eq!(last_seen(&v), Some(Time::from_secs(600)));
        let key = kadmesh::id::Key::for_key("worker:w7-1");
        let newer = worker_value("w7-1", 7, Time::from_secs(720), true);
        assert!(kadmesh::signed::admits(&key, Some(&v), &newer, 720_000));
        assert!(!kadmesh::signed::admits(&key, Some(&newer), &v, 720_000), "an older copy never replaces a newer");
    }
}
