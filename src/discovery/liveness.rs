//! Liveness of workers whose `last_seen` is not a Unix time.
//!
//! The platform's Python workers write `last_seen` from their event loop's
//! monotonic clock: seconds since their process or machine started (e.g.
//! `815.2`), not Unix time, and rewrite the record every 30 s. Compared with
//! the wall clock, every such worker would look dead. So a `last_seen` below
//! [`UNIX_TIME_MIN`] is judged by *when the value last changed*, as seen by
//! this node: each heartbeat changes it, so a live worker's value changes
//! every 30 s and a dead one's stays put. [`Liveness::observe`] remembers,
//! per worker, the value and when this node first saw it, and hands the
//! record on with that moment as its `last_seen` (in this node's view only;
//! the stored value is never touched), so the usual window rule applies.
//!
//! The first time this node sees a worker's value it cannot know how old it
//! is and takes it as new: a worker that died just before that first read
//! counts as alive for one more window. Unix-time records keep the plain rule.

use std::collections::HashMap;
use std::sync::Mutex;

use super::record::WorkerRecord;

/// A `last_seen` below this (2001-09-09 in Unix time) is a monotonic clock.
pub const UNIX_TIME_MIN: f64 = 1e9;
/// Most workers remembered; past it the longest unchanged are forgotten.
pub const MAX_TRACKED: usize = 100_000;

/// Per worker: the monotonic value last seen, and when (Unix seconds) it
/// was first seen with that value.
#[derive(Debug, Default)]
pub struct Liveness {
    seen: Mutex<HashMap<String, (f64, f64)>>,
}

impl Liveness {
    /// `record` as this node judges it at `now` (Unix seconds): unchanged when
    /// its `last_seen` is a Unix time or it carries `expires_at`; otherwise
    /// with `last_seen` replaced by when its current value was first seen.
    pub fn observe(&self, mut record: WorkerRecord, now: f64) -> WorkerRecord {
        let Some(value) = record.last_seen.filter(|v| *v < UNIX_TIME_MIN) else { return record };
        if record.expires_at.is_some() {
            return record;
        }
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let since = match seen.get(&record.worker_id) {
            Some(&(v, since)) if v == value => since,
            _ => {
                if seen.len() >= MAX_TRACKED {
                    forget_oldest(&mut seen);
                }
                seen.insert(record.worker_id.clone(), (value, now));
                now
            }
        };
        record.last_seen = Some(since);
        record
    }
}

/// Drops the tenth of entries unchanged for longest (amortises the scan).
fn forget_oldest(seen: &mut HashMap<String, (f64, f64)>) {
    let mut ages: Vec<f64> = seen.values().map(|&(_, since)| since).collect();
    let cut = ages.len() / 10;
    ages.select_nth_unstable_by(cut, f64::total_cmp);
    let limit = ages[cut];
    seen.retain(|_, &mut (_, since)| since > limit);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::Health;
    use std::time::Duration;

    fn python_worker(last_seen: f64) -> WorkerRecord {
        let json = format!(r#"{{"worker_id": "w-py", "tunnel_url": "https://w", "last_seen": {last_seen}}}"#);
        WorkerRecord::from_json(&json).unwrap()
    }

    const WINDOW: Duration = Duration::from_secs(300);
    const NOW: f64 = 1.8e9;

    #[test]
    fn a_heartbeating_monotonic_worker_stays_healthy() {
        let l = Liveness::default();
        for beat in 0..40 {
            let now = NOW + f64::from(beat) * 30.0;
            let r = l.observe(python_worker(815.2 + f64::from(beat) * 30.0), now);
            assert_eq!(r.health(now, WINDOW), Health::Healthy, "beat {beat}");
        }
    }

    #[test]
    fn a_monotonic_worker_whose_value_stops_changing_goes_offline() {
        let l = Liveness::default();
        assert_eq!(l.observe(python_worker(815.2), NOW).health(NOW, WINDOW), Health::Healthy);
        let later = NOW + 299.0;
        assert_eq!(l.observe(python_worker(815.2), later).health(later, WINDOW), Health::Healthy);
        let dead = NOW + 2.0 * 300.0 + 1.0;
        assert_eq!(l.observe(python_worker(815.2), dead).health(dead, WINDOW), Health::Offline);
    }

    #[test]
    fn unix_time_and_expiring_records_keep_the_plain_rule() {
        let l = Liveness::default();
        let old = python_worker(NOW - 3600.0);
        assert_eq!(l.observe(old.clone(), NOW), old);
        let mut ours = python_worker(5.0);
        ours.expires_at = Some(NOW + 10.0);
        assert_eq!(l.observe(ours.clone(), NOW), ours);
    }

    #[test]
    fn the_map_stays_bounded() {
        let l = Liveness::default();
        for i in 0..(MAX_TRACKED + 10) {
            let mut r = python_worker(1.0);
            r.worker_id = format!("w{i}");
            let _ = l.observe(r, NOW + i as f64);
        }
        assert!(l.seen.lock().unwrap().len() <= MAX_TRACKED);
    }
}
