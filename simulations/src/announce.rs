//! The worker announcement the simulator stores, in the shape the platform's
//! Python workers write under `worker:{worker_id}`: a JSON object in a msgpack
//! string, with `last_seen` in seconds. Liveness is judged from `last_seen`
//! inside the value (the record itself lives 24 h in the DHT), the way the
//! platform judges heartbeats: healthy if seen within 5 minutes.

use kadmesh::time::Time;
use kadmesh::wire::Value;

/// Unix time of simulated time zero, so `last_seen` looks like a real timestamp.
pub const EPOCH_SECS: u64 = 1_700_000_000;

const SERVICES: [&str; 4] = ["ocr", "embeddings", "llm", "layout"];

/// The announcement of worker `name` on machine `slot`, seen at `now`.
pub fn worker_value(name: &str, slot: u32, now: Time) -> Value {
    let gpu = slot.rem_euclid(5) == 0;
    let service = SERVICES[slot as usize % SERVICES.len()];
    let cores = 4 << (slot % 3);
    let last_seen = EPOCH_SECS + now.as_secs();
    Value::Str(format!(
        r#"{{"worker_id":"{name}","tunnel_url":"https://{name}.tunnel.example.net","services":["{service}"],"capabilities":{{"has_gpu":{gpu},"cpu_cores":{cores}}},"last_seen":{last_seen}}}"#
    ))
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
        let v = worker_value("w7-1", 7, Time::from_secs(600));
        assert_eq!(last_seen(&v), Some(Time::from_secs(600)));
        let five = Duration::from_secs(300);
        assert!(is_fresh(&v, Time::from_secs(900), five));
        assert!(!is_fresh(&v, Time::from_millis(900_001), five));
        assert!(!is_fresh(&Value::Str("{}".into()), Time::ZERO, five));
        assert!(v.as_str().unwrap().len() < 250);
    }
}
