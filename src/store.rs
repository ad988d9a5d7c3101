//! The record store: what this node holds for the network, with expiry and
//! bounded memory.
//!
//! Every record carries when it was stored, when it expires and who published
//! it (when known). Expired records are invisible to [`RecordStore::get`] at
//! once and are dropped by [`RecordStore::expire`], which the engine calls
//! when [`RecordStore::next_expiry`] passes.
//!
//! When full (record count or bytes), the record that would expire soonest is
//! evicted to make room, but only if it expires before the newcomer would;
//! otherwise the newcomer is refused with [`StoreError::Full`]. That keeps
//! fresh, long-lived records over stale ones, and a flood of short-lived
//! records cannot push out long-lived ones.
//!
//! A write from the network ([`RecordStore::put_from`]) is charged to its
//! source address ([`crate::limits::quota`]): over the source's share it is
//! refused with [`StoreError::Quota`], and it never evicts a live record,
//! so a flood from one place cannot push out what others stored.

use std::collections::BTreeSet;

use foldhash::HashMap;
use std::time::Duration;

use crate::id::{Key, NodeId};
use crate::limits::{Quota, SourceQuota};
use crate::time::Time;
use crate::wire::{encoded_len, Value};

/// Largest encoded value a plain `store` request can carry: rpcudp refuses
/// request bodies over 8192 bytes and `["store", [sender, key, value]]`
/// spends 52 of them around the value.
pub const MAX_VALUE_BYTES: usize = 8192 - 52;

/// Limits of a [`RecordStore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreLimits {
    /// Most records held at once.
    pub max_records: usize,
    /// Most encoded value bytes held at once.
    pub max_bytes: usize,
    /// Largest single encoded value accepted.
    pub max_value_bytes: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits { max_records: 100_000, max_bytes: 256 * 1024 * 1024, max_value_bytes: MAX_VALUE_BYTES }
    }
}

/// A stored value and its metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// The key (a SHA-1 digest).
    pub key: Key,
    /// The value as it travels on the wire.
    pub value: Value,
    /// The node that first published it, when known.
    pub publisher: Option<NodeId>,
    /// When this node last received it.
    pub stored_at: Time,
    /// When it stops being served.
    pub expires_at: Time,
    /// Encoded size of the value.
    pub size: usize,
}

/// Why a record was not stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The value is bigger than `max_value_bytes`; split it or store a reference.
    #[error("value of {size} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Encoded size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The store is full of records that outlive this one; raise the limits.
    #[error("record store is full")]
    Full,
    /// The sender's address (or its /24, /64) holds its whole share of this
    /// store; its older records must expire first.
    #[error("the sender's storage quota is used up")]
    Quota,
}

/// The records this node holds.
#[derive(Debug, Default)]
pub struct RecordStore {
    limits: StoreLimits,
    records: HashMap<Key, Record>,
    by_expiry: BTreeSet<(Time, Key)>,
    /// `by_expiry`'s first time, kept beside it: the engine asks after every
    /// datagram, and walking down the tree cost cache misses each time.
    earliest: Option<Time>,
    bytes: usize,
    /// Which source each network-written record is charged to.
    quota: SourceQuota<Key>,
}

impl RecordStore {
    /// An empty store with these limits and no source quota.
    pub fn new(limits: StoreLimits) -> Self {
        RecordStore { limits, ..Default::default() }
    }

    /// An empty store with these limits, charging network writes to their
    /// source under `quota`.
    pub fn with_quota(limits: StoreLimits, quota: Quota) -> Self {
        RecordStore { limits, quota: SourceQuota::new(quota), ..Default::default() }
    }

    /// Stores a record that came from the network from `source`: refused
    /// with [`StoreError::Quota`] when the source holds its share, and with
    /// [`StoreError::Full`] rather than evicting a live record.
    pub fn put_from(
        &mut self,
        source: std::net::IpAddr,
        key: Key,
        value: Value,
        publisher: Option<NodeId>,
        now: Time,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let size = encoded_len(&value);
        if !self.quota.admits(source, &key, size) {
            return Err(StoreError::Quota);
        }
        self.put_evicting(key, value, publisher, now, ttl, |t| t <= now)?;
        self.quota.charge(source, key, size);
        Ok(())
    }

    /// Network writes refused for their source's quota so far.
    pub fn quota_refusals(&self) -> u64 {
        self.quota.refused()
    }

    /// Stores or replaces `key` at `now`, expiring after `ttl` (this
    /// node's own writes: republishing, replication, restore).
    pub fn put(
        &mut self,
        key: Key,
        value: Value,
        publisher: Option<NodeId>,
        now: Time,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let expires_at = now + ttl;
        self.put_evicting(key, value, publisher, now, ttl, |t| t < expires_at)
    }

    /// `put`, evicting records whose expiry `evictable` approves to make room.
    fn put_evicting(
        &mut self,
        key: Key,
        value: Value,
        publisher: Option<NodeId>,
        now: Time,
        ttl: Duration,
        evictable: impl Fn(Time) -> bool,
    ) -> Result<(), StoreError> {
        let size = encoded_len(&value);
        if size > self.limits.max_value_bytes {
            return Err(StoreError::TooLarge { size, max: self.limits.max_value_bytes });
        }
        let expires_at = now + ttl;
        let old = self.records.remove(&key);
        if let Some(o) = &old {
            self.unindex(o);
        }
        if let Err(e) = self.make_room(size, evictable) {
            if let Some(old) = old {
                self.insert(old);
            }
            return Err(e);
        }
        // The record is replaced: whoever it was charged to gets the share back.
        self.quota.release(&key);
        let publisher = publisher.or(old.and_then(|o| o.publisher));
        self.insert(Record { key, value, publisher, stored_at: now, expires_at, size });
        Ok(())
    }

    fn make_room(&mut self, size: usize, evictable: impl Fn(Time) -> bool) -> Result<(), StoreError> {
        while self.records.len() + 1 > self.limits.max_records || self.bytes + size > self.limits.max_bytes {
            match self.by_expiry.first() {
                Some(&(t, k)) if evictable(t) => {
                    self.remove(&k);
                }
                _ => return Err(StoreError::Full),
            }
        }
        Ok(())
    }

    fn insert(&mut self, r: Record) {
        self.bytes += r.size;
        self.by_expiry.insert((r.expires_at, r.key));
        self.earliest = Some(self.earliest.map_or(r.expires_at, |t| t.min(r.expires_at)));
        self.records.insert(r.key, r);
    }

    /// The live record under `key` at `now`.
    pub fn get(&self, key: &Key, now: Time) -> Option<&Record> {
        self.records.get(key).filter(|r| r.expires_at > now)
    }

    /// Sets the time `key` was last received to `stored_at`, for a record
    /// restored from disk.
    pub fn backdate(&mut self, key: &Key, stored_at: Time) {
        if let Some(r) = self.records.get_mut(key) {
            r.stored_at = stored_at;
        }
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &Key) -> Option<Record> {
        let r = self.records.remove(key)?;
        self.unindex(&r);
        self.quota.release(key);
        Some(r)
    }

    /// Takes a record just removed from `records` out of the byte count and
    /// the expiry index.
    fn unindex(&mut self, r: &Record) {
        self.bytes -= r.size;
        self.by_expiry.remove(&(r.expires_at, r.key));
        if self.earliest == Some(r.expires_at) {
            self.earliest = self.by_expiry.first().map(|(t, _)| *t);
        }
    }

    /// Drops every record expired at `now`; returns how many.
    pub fn expire(&mut self, now: Time) -> usize {
        let mut n = 0;
        while let Some(&(t, k)) = self.by_expiry.first() {
            if t > now {
                break;
            }
            self.remove(&k);
            n += 1;
        }
        n
    }

    /// When the next record expires.
    pub fn next_expiry(&self) -> Option<Time> {
        debug_assert_eq!(self.earliest, self.by_expiry.first().map(|(t, _)| *t));
        self.earliest
    }

    /// All records, live or not yet culled.
    pub fn iter(&self) -> impl Iterator<Item = &Record> {
        self.records.values()
    }

    /// Keys of all records.
    pub fn keys(&self) -> impl Iterator<Item = Key> + '_ {
        self.records.keys().copied()
    }

    /// Number of records held.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Encoded bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn key(n: u8) -> Key {
        NodeId([n; 20])
    }

    #[test]
    fn record_expires_on_schedule() {
        let mut s = RecordStore::new(StoreLimits::default());
        s.put(key(1), Value::Int(5), None, Time::ZERO, HOUR).unwrap();
        assert!(s.get(&key(1), Time::from_secs(3599)).is_some());
        assert!(s.get(&key(1), Time::from_secs(3600)).is_none());
        assert_eq!(s.next_expiry(), Some(Time::from_secs(3600)));
        assert_eq!(s.expire(Time::from_secs(3600)), 1);
        assert!(s.is_empty());
        assert_eq!(s.bytes(), 0);
    }

    #[test]
    fn replacing_refreshes_expiry_and_keeps_publisher() {
        let mut s = RecordStore::new(StoreLimits::default());
        s.put(key(1), Value::Int(1), Some(key(9)), Time::ZERO, HOUR).unwrap();
        s.put(key(1), Value::Int(2), None, Time::from_secs(1800), HOUR).unwrap();
        let r = s.get(&key(1), Time::from_secs(4000)).unwrap();
        assert_eq!((r.value.clone(), r.publisher), (Value::Int(2), Some(key(9))));
        assert_eq!(s.len(), 1);
        assert_eq!(s.expire(Time::from_secs(3600)), 0);
    }

    #[test]
    fn full_store_evicts_soonest_expiring_only_if_newcomer_outlives_it() {
        let limits = StoreLimits { max_records: 2, ..Default::default() };
        let mut s = RecordStore::new(limits);
        s.put(key(1), Value::Int(1), None, Time::ZERO, HOUR).unwrap();
        s.put(key(2), Value::Int(2), None, Time::ZERO, 2 * HOUR).unwrap();
        assert_eq!(s.put(key(3), Value::Int(3), None, Time::ZERO, HOUR / 2), Err(StoreError::Full));
        s.put(key(3), Value::Int(3), None, Time::ZERO, 3 * HOUR).unwrap();
        assert!(s.get(&key(1), Time::ZERO).is_none());
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn a_flood_from_one_source_fills_its_share_and_never_evicts_others() {
        use crate::limits::Share;
        let limits = StoreLimits { max_records: 10, ..Default::default() };
        let share = |items| Share { items, bytes: 1 << 20 };
        let quota = Quota { enabled: true, per_ip: share(3), per_prefix: share(6) };
        let mut s = RecordStore::with_quota(limits, quota);
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        for i in 0..6u8 {
            s.put_from(ip(&format!("192.168.{i}.1")), key(i), Value::Int(1), None, Time::ZERO, HOUR).unwrap();
        }
        let flood: Vec<_> = (100..200u8)
            .map(|i| s.put_from(ip("10.0.0.1"), key(i), Value::Int(1), None, Time::ZERO, 9 * HOUR))
            .collect();
        assert_eq!(flood.iter().filter(|r| r.is_ok()).count(), 3);
        assert_eq!(flood[3], Err(StoreError::Quota));
        assert_eq!(s.quota_refusals(), 97);
        let rotating = s.put_from(ip("10.0.0.2"), key(210), Value::Int(1), None, Time::ZERO, 9 * HOUR);
        assert_eq!(rotating, Ok(()), "the /24 still has room");
        let full = s.put_from(ip("10.0.9.1"), key(211), Value::Int(1), None, Time::ZERO, 9 * HOUR);
        assert_eq!(full, Err(StoreError::Full), "a full store refuses instead of evicting");
        assert!((0..6).all(|i| s.get(&key(i), Time::ZERO).is_some()), "every other record kept");
        s.remove(&key(100));
        assert_eq!(s.put_from(ip("10.0.0.1"), key(220), Value::Int(1), None, Time::ZERO, HOUR), Ok(()));
    }

    #[test]
    fn byte_limit_and_value_limit_are_enforced() {
        let limits = StoreLimits { max_records: 10, max_bytes: 20, max_value_bytes: 12 };
        let mut s = RecordStore::new(limits);
        let big = Value::Bin(vec![0; 20]);
        assert!(matches!(s.put(key(1), big, None, Time::ZERO, HOUR), Err(StoreError::TooLarge { .. })));
        s.put(key(1), Value::Bin(vec![0; 10]), None, Time::ZERO, HOUR).unwrap();
        assert_eq!(s.bytes(), 12);
        s.put(key(2), Value::Bin(vec![0; 10]), None, Time::ZERO, 2 * HOUR).unwrap();
        assert_eq!((s.len(), s.bytes()), (1, 12));
    }

    #[test]
    fn backdate_moves_only_stored_at_and_ignores_unknown_keys() {
        let mut s = RecordStore::new(StoreLimits::default());
        s.put(key(1), Value::Int(1), None, Time::from_secs(500), HOUR).unwrap();
        s.backdate(&key(1), Time::from_secs(100));
        let r = s.get(&key(1), Time::from_secs(500)).unwrap();
        // The age changes, the lifetime does not: expiry stays where put set it.
        assert_eq!((r.stored_at, r.expires_at), (Time::from_secs(100), Time::from_secs(4100)));
        assert_eq!(s.next_expiry(), Some(Time::from_secs(4100)));
        s.backdate(&key(2), Time::from_secs(100));
        assert_eq!((s.len(), s.get(&key(2), Time::ZERO)), (1, None));
    }

    #[test]
    fn failed_replacement_keeps_the_old_record() {
        let limits = StoreLimits { max_records: 10, max_bytes: 12, max_value_bytes: 100 };
        let mut s = RecordStore::new(limits);
        s.put(key(1), Value::Bin(vec![0; 10]), None, Time::ZERO, HOUR).unwrap();
        assert_eq!(s.put(key(1), Value::Bin(vec![0; 11]), None, Time::ZERO, HOUR), Err(StoreError::Full));
        assert_eq!(s.get(&key(1), Time::ZERO).map(|r| r.size), Some(12));
    }
}
