//! A map with a hard size bound and least-recently-used eviction, for
//! state keyed by something a stranger chooses (a source address, a node
//! id): however many distinct keys arrive, the map never holds more than
//! its capacity, and what it forgets first is what was touched least
//! recently.
//!
//! Deterministic (no hashing order leaks into behaviour): recency is a
//! counter, ties are impossible.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

/// A map of at most `capacity` entries; inserting into a full map evicts
/// the least recently used one.
#[derive(Clone, Debug)]
pub struct LruMap<K, V> {
    capacity: usize,
    tick: u64,
    entries: HashMap<K, (V, u64)>,
    order: BTreeMap<u64, K>,
    evicted: u64,
}

impl<K: Hash + Eq + Clone, V> LruMap<K, V> {
    /// An empty map holding at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        LruMap { capacity: capacity.max(1), tick: 0, entries: HashMap::new(), order: BTreeMap::new(), evicted: 0 }
    }

    fn touch(&mut self, key: &K) {
        self.tick += 1;
        if let Some((_, t)) = self.entries.get_mut(key) {
            self.order.remove(t);
            *t = self.tick;
            self.order.insert(self.tick, key.clone());
        }
    }

    /// The value under `key`, marked as just used.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.touch(key);
        self.entries.get_mut(key).map(|(v, _)| v)
    }

    /// The value under `key` without changing its recency.
    pub fn peek(&self, key: &K) -> Option<&V> {
        self.entries.get(key).map(|(v, _)| v)
    }

    /// The value under `key`, inserting `make()` first (evicting the least
    /// recently used entry when full).
    pub fn get_or_insert_with(&mut self, key: &K, make: impl FnOnce() -> V) -> &mut V {
        if !self.entries.contains_key(key) {
            self.insert(key.clone(), make());
        } else {
            self.touch(key);
        }
        &mut self.entries.get_mut(key).expect("present: inserted or touched above").0
    }

    /// Inserts or replaces; returns the entry evicted to make room, if any.
    pub fn insert(&mut self, key: K, value: V) -> Option<(K, V)> {
        if let Some(slot) = self.entries.get_mut(&key) {
            slot.0 = value;
            self.touch(&key);
            return None;
        }
        let evicted = if self.entries.len() >= self.capacity { self.pop_oldest() } else { None };
        self.tick += 1;
        self.order.insert(self.tick, key.clone());
        self.entries.insert(key, (value, self.tick));
        evicted
    }

    fn pop_oldest(&mut self) -> Option<(K, V)> {
        let (_, key) = self.order.pop_first()?;
        let (v, _) = self.entries.remove(&key)?;
        self.evicted += 1;
        Some((key, v))
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let (v, t) = self.entries.remove(key)?;
        self.order.remove(&t);
        Some(v)
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The bound.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Entries evicted so far to respect the bound.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Keeps only the entries `keep` approves.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) {
        let order = &mut self.order;
        self.entries.retain(|k, (v, t)| {
            let kept = keep(k, v);
            if !kept {
                order.remove(t);
            }
            kept
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_exceeds_capacity_and_evicts_least_recently_used() {
        let mut m = LruMap::new(3);
        for k in 0..3 {
            m.insert(k, k * 10);
        }
        assert_eq!(m.get_mut(&0), Some(&mut 0)); // 1 is now the oldest
        assert_eq!(m.insert(3, 30), Some((1, 10)));
        assert_eq!((m.peek(&1), m.peek(&0), m.len()), (None, Some(&0), 3));
        for k in 100..100_000 {
            m.insert(k, 0);
            assert!(m.len() <= 3);
        }
        assert_eq!(m.order.len(), m.entries.len());
        assert_eq!(m.evicted(), 100_000 - 100 + 1);
    }

    #[test]
    fn remove_retain_and_get_or_insert_keep_the_order_consistent() {
        let mut m = LruMap::new(4);
        *m.get_or_insert_with(&"a", || 1) += 1;
        *m.get_or_insert_with(&"a", || 100) += 1;
        m.insert("b", 5);
        m.insert("c", 6);
        assert_eq!(m.remove(&"b"), Some(5));
        m.retain(|_, v| *v != 6);
        assert_eq!((m.peek(&"a"), m.len(), m.order.len()), (Some(&3), 1, 1));
    }
}
