//! Which key owns which worker id, as this node has seen it: the reader's
//! half of "names stay with their owner".
//!
//! Every verified record a reader accepts binds its worker id to its public
//! key until the record's `expires_at`. While a binding lives, the reader
//! refuses records for that id signed by another key, and unsigned ones, so
//! a forged value held by a stock peer can never replace an owner's record
//! in this node's answers once the owner's record has been seen. A
//! tombstone (`expires_at` = when it was written) ends the binding, and an
//! expired record frees its id for anyone.
//!
//! Bounded: at most [`MAX_BOUND`] ids; expired bindings go first, then the
//! ones expiring soonest.

use std::collections::HashMap;
use std::sync::Mutex;

use super::record::WorkerRecord;

/// Most ids remembered.
pub const MAX_BOUND: usize = 100_000;

#[derive(Clone, Debug, PartialEq)]
struct Binding {
    public_key: String,
    seq: u64,
    expires_at: f64,
}

/// Worker id -> the key that owns it, while its record lives.
#[derive(Debug, Default)]
pub struct Bindings {
    map: Mutex<HashMap<String, Binding>>,
}

impl Bindings {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Binding>> {
        // Every update is one insert or retain; a panic cannot tear one.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a reader at `now` (Unix seconds) may use `r`; a verified
    /// record it may use renews (or starts) its id's binding.
    pub fn admit(&self, r: &WorkerRecord, now: f64) -> bool {
        let mut map = self.lock();
        let live = map.get(&r.worker_id).filter(|b| b.expires_at > now);
        let (Some(pk), Some(seq), true) = (&r.public_key, r.seq, r.verified) else {
            return live.is_none();
        };
        if live.is_some_and(|b| &b.public_key != pk) {
            return false;
        }
        if live.is_some_and(|b| b.seq > seq) {
            // An older copy of the owner's record: usable, but it says
            // nothing new about the binding.
            return true;
        }
        if map.len() >= MAX_BOUND && !map.contains_key(&r.worker_id) {
            make_room(&mut map, now);
        }
        let expires_at = r.expires_at.unwrap_or(f64::INFINITY);
        map.insert(r.worker_id.clone(), Binding { public_key: pk.clone(), seq, expires_at });
        true
    }
}

/// Drops expired bindings, or else the tenth expiring soonest.
fn make_room(map: &mut HashMap<String, Binding>, now: f64) {
    let before = map.len();
    map.retain(|_, b| b.expires_at > now);
    if map.len() < before {
        return;
    }
    let mut ends: Vec<f64> = map.values().map(|b| b.expires_at).collect();
    let cut = ends.len() / 10;
    ends.select_nth_unstable_by(cut, f64::total_cmp);
    let limit = ends[cut];
    map.retain(|_, b| b.expires_at > limit);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(pk: Option<&str>, seq: u64, expires_at: f64) -> WorkerRecord {
        let mut r = WorkerRecord::from_json(r#"{"worker_id": "w1", "tunnel_url": "https://w"}"#).unwrap();
        r.public_key = pk.map(str::to_owned);
        r.verified = pk.is_some();
        r.seq = Some(seq);
        r.expires_at = Some(expires_at);
        r
    }

    #[test]
    fn a_bound_id_refuses_other_keys_and_unsigned_records_until_it_expires() {
        let b = Bindings::default();
        assert!(b.admit(&rec(None, 0, 0.0), 100.0), "nothing bound yet");
        assert!(b.admit(&rec(Some("aa"), 5, 400.0), 100.0));
        assert!(!b.admit(&rec(Some("bb"), 9, 900.0), 200.0), "other key");
        assert!(!b.admit(&rec(None, 0, 0.0), 200.0), "unsigned");
        assert!(b.admit(&rec(Some("aa"), 4, 300.0), 200.0), "older copy by the owner");
        assert!(b.admit(&rec(Some("bb"), 1, 900.0), 400.0), "expired: the id is free");
        assert!(!b.admit(&rec(Some("aa"), 9, 900.0), 401.0), "now bound to the new key");
    }

    #[test]
    fn the_map_stays_bounded() {
        let b = Bindings::default();
        for i in 0..(MAX_BOUND + 5) {
            let mut r = rec(Some("aa"), 1, 1e9 + i as f64);
            r.worker_id = format!("w{i}");
            assert!(b.admit(&r, 0.0));
        }
        assert!(b.lock().len() <= MAX_BOUND);
    }
}
