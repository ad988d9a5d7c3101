//! Where a key's provider set was last read, and how large it was.
//!
//! A router discovers the same few services again and again (the
//! platform's routers read the DHT first, and our discover route's answer
//! cache lives 5 s). A cold read costs a node lookup and then two round
//! trips of its replicas: the first page tells the set's size, and only
//! then can the rest be cut into shards asked at once. A read within
//! [`REUSE_FOR`] of a lookup goes straight to the replicas that lookup
//! found, nearest measured round trip first, and asks all their shards at
//! once from the size the last read saw: one round trip, no lookup. The
//! size alone is kept for [`SIZE_FOR`]: a read after the replicas' time
//! runs the lookup but still asks every replica's shards at once.
//!
//! Newcomers nearer the key are the risk, as for put targets: writers count
//! them among the key's closest and may leave out replicas we remember. So
//! a read from memory also asks its nearest replica for its closest to the
//! key (one request, answered before the slowest page); nodes closer than
//! every remembered replica are read in the same round, and the next read
//! runs the lookup (see `recall`). A remembered replica that misses writes
//! reports a smaller set and gets a stand-in (the read's usual rule); a
//! read that runs out of remembered replicas, finds nothing, or meets an
//! entry in its last second runs the whole lookup (the early read's
//! fallback), and what it finds replaces the memory. Only a read that ran a
//! lookup refreshes the replicas and their age, so they are never older
//! than [`REUSE_FOR`].

use foldhash::HashMap;
use std::time::Duration;

pub(in crate::engine) use super::replica::Hint;
use crate::contact::Contact;
use crate::id::Key;
use crate::time::Time;

/// How long after a lookup its replicas are read from without another.
/// Writers refresh their entries every couple of minutes, each time at the
/// key's closest they know then; two minutes keeps the remembered replicas
/// among them under the simulator's churn.
pub(in crate::engine) const REUSE_FOR: Duration = Duration::from_secs(120);
/// How long a set's size is used to plan a read's shards. Sets change by
/// a few entries a minute; a size that is off costs a few empty pages or
/// one more page after a shard, never an entry.
pub(in crate::engine) const SIZE_FOR: Duration = Duration::from_secs(1800);
/// Keys remembered at once (a router reads a few services; the oldest
/// memory goes first).
const MAX_KEYS: usize = 64;

/// What a read of one key found.
#[derive(Clone, Debug)]
pub(in crate::engine) struct Remembered {
    /// Replicas that read complete, then the others in line that were not
    /// asked: the key's closest extension peers when the lookup ran.
    pub(in crate::engine) replicas: Vec<Contact>,
    /// The set's size and page size (none: it fit one page).
    pub(in crate::engine) hint: Option<Hint>,
    /// When the lookup that found the replicas ended.
    pub(in crate::engine) found_at: Time,
    /// When a read last saw the set's size.
    pub(in crate::engine) sized_at: Time,
}

/// The last read of every key read lately.
#[derive(Debug, Default)]
pub(in crate::engine) struct ReadMemory {
    by_key: HashMap<Key, Remembered>,
}

impl ReadMemory {
    /// What is known of `key` at `now`: the replicas to read it from
    /// without a lookup, if a lookup found them within [`REUSE_FOR`] (else
    /// none), and its size, if seen within [`SIZE_FOR`].
    pub(in crate::engine) fn recall(&self, key: &Key, now: Time) -> Option<Remembered> {
        let mut r = self.by_key.get(key)?.clone();
        if now.saturating_since(r.found_at) >= REUSE_FOR {
            r.replicas.clear();
        }
        if now.saturating_since(r.sized_at) >= SIZE_FOR {
            r.hint = None;
        }
        (!r.replicas.is_empty() || r.hint.is_some()).then_some(r)
    }

    /// Keeps what a read that ran a lookup found; the key seen longest ago
    /// goes when full.
    pub(in crate::engine) fn remember(&mut self, key: Key, found: Remembered) {
        if self.by_key.len() >= MAX_KEYS && !self.by_key.contains_key(&key) {
            let oldest = self.by_key.iter().min_by_key(|(_, r)| r.sized_at).map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.by_key.remove(&k);
            }
        }
        self.by_key.insert(key, found);
    }

    /// The set's size a read without a lookup saw at `now` (the replicas
    /// and their age stay).
    pub(in crate::engine) fn resize(&mut self, key: &Key, hint: Option<Hint>, now: Time) {
        if let Some(r) = self.by_key.get_mut(key) {
            r.hint = hint;
            r.sized_at = now;
        }
    }

    /// Drops the replicas remembered of every key (sizes stay): a contact
    /// lost to silence answered again, so a cut between us and part of the
    /// network may have healed, and replicas found while it was open are
    /// all on our side of it.
    pub(in crate::engine) fn forget_all(&mut self) {
        for r in self.by_key.values_mut() {
            r.replicas.clear();
        }
    }

    /// Drops the replicas remembered of `key` (a read from them fell back
    /// to a lookup); its size stays.
    pub(in crate::engine) fn forget(&mut self, key: &Key) {
        if let Some(r) = self.by_key.get_mut(key) {
            r.replicas.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::NodeId;

    fn contact(i: u8) -> Contact {
        Contact::new(NodeId([i; 20]), format!("127.0.0.1:{}", 1000 + u16::from(i)).parse().unwrap())
    }

    fn found(at: Time) -> Remembered {
        let hint = Some(Hint { live: 500, per_page: 30 });
        Remembered { replicas: vec![contact(1), contact(2)], hint, found_at: at, sized_at: at }
    }

    #[test]
    fn a_read_is_recalled_only_within_the_reuse_time_of_its_lookup() {
        let mut m = ReadMemory::default();
        let key = NodeId([7; 20]);
        let t0 = Time::ZERO + Duration::from_secs(10);
        m.remember(key, found(t0));
        let r = m.recall(&key, t0 + REUSE_FOR - Duration::from_millis(1)).expect("fresh");
        assert_eq!(r.replicas.len(), 2);
        assert_eq!(r.hint.map(|h| h.live), Some(500));
        let later = m.recall(&key, t0 + REUSE_FOR).expect("the size outlives the replicas");
        assert!(later.replicas.is_empty() && later.hint.is_some());
        assert!(m.recall(&key, t0 + SIZE_FOR).is_none());
        assert!(m.recall(&NodeId([8; 20]), t0).is_none());
    }

    #[test]
    fn resize_keeps_the_replicas_age_and_forget_drops_the_replicas_not_the_size() {
        let mut m = ReadMemory::default();
        let key = NodeId([7; 20]);
        let t0 = Time::ZERO;
        m.remember(key, found(t0));
        let t1 = t0 + Duration::from_secs(1);
        m.resize(&key, Some(Hint { live: 600, per_page: 30 }), t1);
        let r = m.recall(&key, t1).unwrap();
        assert_eq!((r.hint.map(|h| h.live), r.found_at, r.sized_at), (Some(600), t0, t1));
        m.forget(&key);
        let r = m.recall(&key, t1).expect("the size stays");
        assert!(r.replicas.is_empty());
        m.remember(key, found(t1));
        m.forget_all();
        assert!(m.recall(&key, t1).is_some_and(|r| r.replicas.is_empty() && r.hint.is_some()));
        m.resize(&key, None, t1);
        assert!(m.recall(&key, t1).is_none(), "nothing left to use");
    }

    #[test]
    fn a_full_memory_drops_the_key_seen_longest_ago() {
        let mut m = ReadMemory::default();
        let t0 = Time::ZERO;
        for i in 0..MAX_KEYS {
            m.remember(NodeId([i as u8; 20]), found(t0 + Duration::from_secs(i as u64)));
        }
        let newest = NodeId([200; 20]);
        m.remember(newest, found(t0 + Duration::from_secs(100)));
        assert_eq!(m.by_key.len(), MAX_KEYS);
        assert!(m.recall(&NodeId([0; 20]), t0 + Duration::from_secs(100)).is_none());
        assert!(m.recall(&NodeId([1; 20]), t0 + Duration::from_secs(100)).is_some());
    }
}
