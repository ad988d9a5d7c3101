//! Workers that failed a routed request lately, tried after the others for
//! a while.
//!
//! A worker stays healthy in discover answers until its heartbeats have been
//! missing for the whole liveness window (5 minutes by default), so a worker
//! that died a moment ago would still be tried first by every routed request
//! and cost each of them a connection error, or a whole connect timeout when
//! its host silently drops packets. After a failure (connection error,
//! timeout, 5xx) it is moved behind the others for [`Penalties::hold`];
//! it is still tried when nobody else answers, and one success clears it.
//! Time is passed in, so the rule is tested without a clock.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Most workers remembered; past this, new failures are not remembered
/// until old ones expire (the memory stays bounded whatever callers do).
pub const MAX_REMEMBERED: usize = 4096;

/// Recent failures by worker id.
#[derive(Debug)]
pub struct Penalties {
    hold: Duration,
    until: Mutex<HashMap<String, Instant>>,
}

impl Penalties {
    /// Failures are held against a worker for `hold` (zero: never).
    pub fn new(hold: Duration) -> Penalties {
        Penalties { hold, until: Mutex::new(HashMap::new()) }
    }

    /// How long a failure is held.
    pub fn hold(&self) -> Duration {
        self.hold
    }

    /// `worker_id` failed at `now`.
    pub fn failed(&self, worker_id: &str, now: Instant) {
        if self.hold.is_zero() {
            return;
        }
        let Ok(mut until) = self.until.lock() else { return };
        if until.len() >= MAX_REMEMBERED {
            until.retain(|_, t| *t > now);
        }
        if until.len() < MAX_REMEMBERED || until.contains_key(worker_id) {
            until.insert(worker_id.to_owned(), now + self.hold);
        }
    }

    /// `worker_id` answered.
    pub fn answered(&self, worker_id: &str) {
        if let Ok(mut until) = self.until.lock() {
            until.remove(worker_id);
        }
    }

    /// Indexes of `ids` in the order to try them at `now`: those without a
    /// current penalty first, each group in its given order.
    pub fn order<'a>(&self, ids: impl IntoIterator<Item = &'a str>, now: Instant) -> Vec<usize> {
        let Ok(until) = self.until.lock() else { return ids.into_iter().enumerate().map(|(i, _)| i).collect() };
        let (mut fresh, mut held) = (Vec::new(), Vec::new());
        for (i, id) in ids.into_iter().enumerate() {
            match until.get(id) {
                Some(t) if *t > now => held.push(i),
                _ => fresh.push(i),
            }
        }
        fresh.extend(held);
        fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_worker_goes_last_until_its_hold_ends_or_it_answers() {
        let p = Penalties::new(Duration::from_secs(30));
        let t0 = Instant::now();
        let ids = ["a", "b", "c"];
        assert_eq!(p.order(ids, t0), [0, 1, 2]);
        p.failed("a", t0);
        p.failed("b", t0);
        assert_eq!(p.order(ids, t0 + Duration::from_secs(1)), [2, 0, 1], "held ones keep their order");
        p.answered("b");
        assert_eq!(p.order(ids, t0 + Duration::from_secs(1)), [1, 2, 0]);
        assert_eq!(p.order(ids, t0 + Duration::from_secs(30)), [0, 1, 2], "the hold has ended");
    }

    #[test]
    fn zero_hold_never_reorders_and_memory_is_bounded() {
        let off = Penalties::new(Duration::ZERO);
        let t0 = Instant::now();
        off.failed("a", t0);
        assert_eq!(off.order(["a", "b"], t0), [0, 1]);
        let p = Penalties::new(Duration::from_secs(1));
        for i in 0..MAX_REMEMBERED + 10 {
            p.failed(&format!("w{i}"), t0);
        }
        assert_eq!(p.until.lock().unwrap().len(), MAX_REMEMBERED);
        p.failed("late", t0 + Duration::from_secs(2));
        assert_eq!(p.until.lock().unwrap().len(), 1, "expired entries are dropped to make room");
    }
}
