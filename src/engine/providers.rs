//! Provider sets: which workers offer a service, held by the nodes closest to
//! the service's key and grown by many writers at once without losing any.
//!
//! The platform's first DHT kept one JSON list per service and updated it by
//! read-modify-write, so two workers registering at once lost one. Here a
//! replica *merges*: [`ADD`] adds or refreshes entries by worker id and never
//! replaces the set, so concurrent writers through any number of nodes all
//! land. Each entry carries its publisher's version and its own lifetime; a
//! removal ([`REMOVE`]) is a tombstone with a newer version, so a late add
//! cannot bring a removed worker back. [`LIST`] reads a set in pages that
//! fit one typical-MTU datagram ([`MAX_PAGE_DATAGRAM`]). Sets and the whole
//! store are bounded ([`ProviderLimits`]). The wire format is specified in
//! `proto-spec/EXTENSIONS.md`.
//!
//! Provider sets live beside the record store, not in it: the legacy
//! `service:{type}` JSON list that Python peers keep under the same key is
//! left alone, and stock peers never receive these procedures (unknown names
//! get no reply, so callers only send them to peers known to speak them).
//! Expired entries are invisible at once and swept every [`SWEEP_EVERY`].

use std::cmp::Ordering;
use std::collections::BTreeMap;

use foldhash::HashMap;
use std::net::SocketAddr;
use std::ops::Bound;
use std::time::Duration;

use super::Engine;
use crate::contact::Contact;
use crate::id::{Key, NodeId};
use crate::time::Time;
use crate::wire::{Value, HEADER_LEN};

/// `kadmesh_provider_add(sender, key, entries)`: add or refresh providers.
pub const ADD: &str = "kadmesh_provider_add";
/// `kadmesh_provider_remove(sender, key, entries)`: tombstone providers.
pub const REMOVE: &str = "kadmesh_provider_remove";
/// `kadmesh_providers(sender, key, after, max)`: read one page of a set.
pub const LIST: &str = "kadmesh_providers";
/// Every provider procedure name starts with this.
pub(crate) const PREFIX: &str = "kadmesh_provider";
/// Largest `LIST` reply datagram: fits the IPv6 minimum MTU (1280) minus
/// IP and UDP headers, so pages never fragment.
pub const MAX_PAGE_DATAGRAM: usize = 1232;
/// Longest worker id, in bytes; keeps the largest entry well inside a page.
pub const MAX_ID_LEN: usize = 128;
/// Most entries one write or one page carries.
pub const MAX_ENTRIES_PER_CALL: usize = 256;
/// How often expired entries are dropped from memory.
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// Bytes of a `LIST` reply outside its entries: header, map keys, the
/// longest `next` cursor and the `live` count.
const PAGE_OVERHEAD: usize = HEADER_LEN + 1 + 8 + 3 + 5 + 2 + MAX_ID_LEN + 5 + 9;

/// Bounds of a [`ProviderStore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProviderLimits {
    /// Most entries in one set; when full, the entry expiring soonest makes
    /// room, but only for a newcomer that outlives it.
    pub max_per_set: usize,
    /// Most sets held.
    pub max_sets: usize,
    /// Most entries held over all sets.
    pub max_entries: usize,
    /// Longest lifetime an entry may ask for.
    pub max_ttl: Duration,
}

impl Default for ProviderLimits {
    fn default() -> Self {
        ProviderLimits {
            max_per_set: 10_000,
            max_sets: 20_000,
            max_entries: 200_000,
            max_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// One provider of a service as a replica holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct ProviderEntry {
    /// The worker id.
    pub id: String,
    /// The publisher's version of this entry; higher wins.
    pub version: u64,
    /// When the replica stops serving it.
    pub expires_at: Time,
    /// The load the publisher announced, as a hint for ordering.
    pub load: Option<f64>,
    /// A tombstone: the worker was removed at `version`.
    pub gone: bool,
}

/// The provider sets this node holds for the network.
#[derive(Debug, Default)]
pub struct ProviderStore {
    limits: ProviderLimits,
    sets: HashMap<Key, BTreeMap<String, ProviderEntry>>,
    entries: usize,
    next_sweep: Option<Time>,
}

impl ProviderStore {
    /// An empty store with these limits.
    pub fn new(limits: ProviderLimits) -> Self {
        ProviderStore { limits, ..Default::default() }
    }

    /// Merges `entry` into the set under `key`. A newer version replaces the
    /// held entry, an older one is ignored, an equal one extends its life (a
    /// tombstone beats a live entry of the same version). Returns whether the
    /// set now reflects `entry` or something newer; `false` when the id is
    /// invalid or the bounds leave no room.
    pub fn upsert(&mut self, key: Key, mut entry: ProviderEntry, now: Time) -> bool {
        if !valid_id(&entry.id) {
            return false;
        }
        entry.expires_at = entry.expires_at.min(now + self.limits.max_ttl);
        if let Some(old) = self.sets.get_mut(&key).and_then(|s| s.get_mut(&entry.id)) {
            match (entry.version, entry.gone).cmp(&(old.version, old.gone)) {
                Ordering::Less => {}
                Ordering::Equal => {
                    old.expires_at = old.expires_at.max(entry.expires_at);
                    old.load = entry.load.or(old.load);
                }
                Ordering::Greater => *old = entry,
            }
            return true;
        }
        if entry.expires_at <= now || !self.make_room(&key, entry.expires_at, now) {
            return false;
        }
        self.sets.entry(key).or_default().insert(entry.id.clone(), entry);
        self.entries += 1;
        self.next_sweep.get_or_insert(now + SWEEP_EVERY);
        true
    }

    /// Frees a slot in `key`'s set (and the store) for an entry expiring at
    /// `expires_at`, evicting the soonest-expiring entry if it dies earlier.
    fn make_room(&mut self, key: &Key, expires_at: Time, now: Time) -> bool {
        let Some(set) = self.sets.get_mut(key) else {
            return self.sets.len() < self.limits.max_sets && self.entries < self.limits.max_entries;
        };
        if set.len() < self.limits.max_per_set && self.entries < self.limits.max_entries {
            return true;
        }
        let victim =
            set.values().min_by_key(|e| e.expires_at).filter(|e| e.expires_at <= now || e.expires_at < expires_at);
        let Some(id) = victim.map(|e| e.id.clone()) else { return false };
        set.remove(&id);
        self.entries -= 1;
        true
    }

    /// The unexpired entries (tombstones included) of `key`'s set after
    /// `after`, in id order.
    pub fn range<'a>(
        &'a self,
        key: &Key,
        after: Option<&'a str>,
        now: Time,
    ) -> impl Iterator<Item = &'a ProviderEntry> + 'a {
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.sets
            .get(key)
            .into_iter()
            .flat_map(move |s| s.range::<str, _>((start, Bound::Unbounded)))
            .map(|(_, e)| e)
            .filter(move |e| e.expires_at > now)
    }

    /// Live (unexpired, not removed) providers under `key`.
    pub fn live(&self, key: &Key, now: Time) -> usize {
        self.range(key, None, now).filter(|e| !e.gone).count()
    }

    /// Drops expired entries if a sweep is due at `now`; returns how many.
    pub fn expire(&mut self, now: Time) -> usize {
        if self.next_sweep.is_none_or(|t| t > now) {
            return 0;
        }
        let before = self.entries;
        self.sets.retain(|_, set| {
            set.retain(|_, e| e.expires_at > now);
            !set.is_empty()
        });
        self.entries = self.sets.values().map(BTreeMap::len).sum();
        self.next_sweep = (self.entries > 0).then(|| now + SWEEP_EVERY);
        before - self.entries
    }

    /// When [`ProviderStore::expire`] next has work.
    pub fn next_sweep(&self) -> Option<Time> {
        self.next_sweep
    }

    /// Sets held.
    pub fn set_count(&self) -> usize {
        self.sets.len()
    }

    /// Entries held over all sets, tombstones and not-yet-swept ones included.
    pub fn entry_count(&self) -> usize {
        self.entries
    }
}

/// A worker id as provider sets accept it: 1 to [`MAX_ID_LEN`] bytes of
/// ASCII letters, digits and `.`, `_`, `:`, `@`, `-`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'@' | b'-'))
}

/// A non-negative integer argument.
fn uint(v: &Value) -> Option<u64> {
    v.as_int().and_then(|i| u64::try_from(i).ok())
}

/// A finite number (int or float) argument.
fn number(v: &Value) -> Option<f64> {
    let f = match v {
        Value::F64(f) => *f,
        Value::F32(f) => f64::from(*f),
        Value::Int(i) => *i as f64,
        _ => return None,
    };
    f.is_finite().then_some(f)
}

/// One `[id, version, ttl_secs, load|nil]` write entry.
fn parse_write_entry(v: &Value, gone: bool, now: Time) -> Option<ProviderEntry> {
    let [id, version, ttl, load] = v.as_array()? else { return None };
    let expires_at = now + Duration::from_secs(uint(ttl)?);
    let load = if gone { None } else { number(load) };
    Some(ProviderEntry { id: id.as_str()?.to_owned(), version: uint(version)?, expires_at, load, gone })
}

/// One page entry on the wire: `[id, version, ttl_left_secs, load|nil, gone]`.
fn page_entry(e: &ProviderEntry, now: Time) -> Value {
    Value::Array(vec![
        Value::Str(e.id.clone()),
        Value::from_u64(e.version),
        Value::from_u64(e.expires_at.saturating_since(now).as_secs()),
        e.load.map_or(Value::Nil, Value::F64),
        Value::Bool(e.gone),
    ])
}

impl Engine {
    /// The provider sets held (read-only).
    pub fn providers(&self) -> &ProviderStore {
        &self.providers
    }

    /// Merges an entry into this node's own provider store, for a publisher
    /// that is itself among the closest nodes to `key`.
    pub fn provider_upsert(&mut self, now: Time, key: Key, entry: ProviderEntry) -> bool {
        self.providers.upsert(key, entry, now)
    }

    /// Answers the provider procedures; `None` (no reply) for malformed args,
    /// like an unknown procedure.
    pub(super) fn on_provider_rpc(
        &mut self,
        now: Time,
        from: SocketAddr,
        name: &str,
        args: Vec<Value>,
    ) -> Option<Value> {
        match name {
            ADD => self.on_provider_write(now, from, args, false),
            REMOVE => self.on_provider_write(now, from, args, true),
            LIST => self.on_provider_list(now, from, args),
            _ => None,
        }
    }

    fn provider_sender(&mut self, now: Time, from: SocketAddr, sender: &Value) -> Option<()> {
        let sender = sender.as_bytes().and_then(NodeId::from_slice)?;
        if sender != self.svc.id {
            self.learn(now, Contact::new(sender, from));
        }
        Some(())
    }

    fn on_provider_write(&mut self, now: Time, from: SocketAddr, args: Vec<Value>, gone: bool) -> Option<Value> {
        let [sender, key, entries] = <[Value; 3]>::try_from(args).ok()?;
        let key = key.as_bytes().and_then(NodeId::from_slice)?;
        let entries = entries.as_array().filter(|e| e.len() <= MAX_ENTRIES_PER_CALL)?;
        self.provider_sender(now, from, &sender)?;
        let mut accepted = 0;
        for e in entries.iter().filter_map(|v| parse_write_entry(v, gone, now)) {
            if self.providers.upsert(key, e, now) {
                accepted += 1;
            }
        }
        Some(Value::Int(accepted))
    }

    fn on_provider_list(&mut self, now: Time, from: SocketAddr, args: Vec<Value>) -> Option<Value> {
        let [sender, key, after, max] = <[Value; 4]>::try_from(args).ok()?;
        let key = key.as_bytes().and_then(NodeId::from_slice)?;
        let max = uint(&max).filter(|m| *m > 0)?.min(MAX_ENTRIES_PER_CALL as u64) as usize;
        let after = match &after {
            Value::Nil => None,
            v => Some(v.as_str()?),
        };
        self.provider_sender(now, from, &sender)?;
        Some(self.provider_page(&key, after, max, now))
    }

    /// One `LIST` reply body: as many entries after `after` as fit
    /// [`MAX_PAGE_DATAGRAM`], at most `max`.
    fn provider_page(&self, key: &Key, after: Option<&str>, max: usize, now: Time) -> Value {
        let mut budget = MAX_PAGE_DATAGRAM - PAGE_OVERHEAD;
        let mut entries = Vec::new();
        let mut next = Value::Nil;
        let mut last: Option<&str> = None;
        for e in self.providers.range(key, after, now) {
            let v = page_entry(e, now);
            let size = v.to_msgpack().len();
            if entries.len() >= max || size > budget {
                next = last.map_or(Value::Nil, |id| Value::Str(id.to_owned()));
                break;
            }
            budget -= size;
            last = Some(&e.id);
            entries.push(v);
        }
        let live = Value::from_u64(self.providers.live(key, now) as u64);
        Value::Map(vec![
            (Value::from("entries"), Value::Array(entries)),
            (Value::from("next"), next),
            (Value::from("live"), live),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, version: u64, expires: u64, gone: bool) -> ProviderEntry {
        ProviderEntry { id: id.into(), version, expires_at: Time::from_secs(expires), load: Some(0.5), gone }
    }

    fn key() -> Key {
        NodeId::for_key("service:ocr")
    }

    #[test]
    fn concurrent_adds_merge_instead_of_replacing() {
        let mut s = ProviderStore::default();
        for i in 0..500 {
            assert!(s.upsert(key(), entry(&format!("w{i}"), 1, 300, false), Time::ZERO));
        }
        assert_eq!(s.live(&key(), Time::ZERO), 500);
        assert_eq!(s.entry_count(), 500);
    }

    #[test]
    fn tombstone_beats_stale_add_and_newer_add_beats_tombstone() {
        let mut s = ProviderStore::default();
        s.upsert(key(), entry("w1", 5, 300, false), Time::ZERO);
        s.upsert(key(), entry("w1", 6, 300, true), Time::ZERO);
        s.upsert(key(), entry("w1", 5, 900, false), Time::ZERO);
        assert_eq!(s.live(&key(), Time::ZERO), 0);
        s.upsert(key(), entry("w1", 6, 300, false), Time::ZERO);
        assert_eq!(s.live(&key(), Time::ZERO), 0, "a tombstone wins a tie");
        s.upsert(key(), entry("w1", 7, 300, false), Time::ZERO);
        assert_eq!(s.live(&key(), Time::ZERO), 1);
    }

    #[test]
    fn entries_expire_and_sweep_keeps_its_timer_moving() {
        let mut s = ProviderStore::default();
        s.upsert(key(), entry("w1", 1, 30, false), Time::ZERO);
        s.upsert(key(), entry("w2", 1, 600, false), Time::ZERO);
        assert_eq!(s.live(&key(), Time::from_secs(31)), 1);
        assert_eq!(s.next_sweep(), Some(Time::ZERO + SWEEP_EVERY));
        assert_eq!(s.expire(Time::from_secs(30)), 0, "not due yet");
        assert_eq!(s.expire(Time::from_secs(60)), 1);
        assert!(s.next_sweep().is_some_and(|t| t > Time::from_secs(60)));
        assert_eq!(s.expire(Time::from_secs(700)), 1);
        assert_eq!((s.set_count(), s.next_sweep()), (0, None));
    }

    #[test]
    fn full_set_evicts_only_for_a_longer_lived_newcomer() {
        let limits = ProviderLimits { max_per_set: 2, ..Default::default() };
        let mut s = ProviderStore::new(limits);
        s.upsert(key(), entry("a", 1, 100, false), Time::ZERO);
        s.upsert(key(), entry("b", 1, 200, false), Time::ZERO);
        assert!(!s.upsert(key(), entry("c", 1, 50, false), Time::ZERO));
        assert!(s.upsert(key(), entry("c", 1, 300, false), Time::ZERO));
        let ids: Vec<_> = s.range(&key(), None, Time::ZERO).map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["b", "c"]);
        assert!(!s.upsert(key(), entry("bad id", 1, 300, false), Time::ZERO));
        assert!(!s.upsert(key(), entry("late", 1, 0, false), Time::ZERO), "already expired");
    }

    #[test]
    fn ttl_is_capped_and_store_bounds_hold() {
        let limits = ProviderLimits { max_entries: 3, max_sets: 2, ..Default::default() };
        let mut s = ProviderStore::new(limits);
        s.upsert(key(), entry("a", 1, u64::MAX / 2000, false), Time::ZERO);
        let e = s.range(&key(), None, Time::ZERO).next().unwrap();
        assert_eq!(e.expires_at, Time::ZERO + limits.max_ttl);
        s.upsert(NodeId::for_key("x"), entry("b", 1, 10, false), Time::ZERO);
        assert!(!s.upsert(NodeId::for_key("y"), entry("c", 1, 10, false), Time::ZERO), "max_sets");
        s.upsert(key(), entry("c", 1, 10, false), Time::ZERO);
        assert!(!s.upsert(key(), entry("d", 1, 5, false), Time::ZERO), "max_entries");
        assert_eq!(s.entry_count(), 3);
    }

    fn list(e: &mut Engine, after: Value, max: i64) -> Value {
        let args = vec![Value::Bin(vec![9; 20]), Value::Bin(key().0.to_vec()), after, Value::Int(max)];
        e.on_provider_rpc(Time::ZERO, "127.0.0.1:9".parse().unwrap(), LIST, args).unwrap()
    }

    #[test]
    fn pages_fit_the_mtu_and_walk_the_whole_set() {
        let mut e = Engine::new(NodeId([1; 20]), super::super::Config::default(), Time::ZERO);
        let long = "x".repeat(MAX_ID_LEN - 4);
        for i in 0..300 {
            e.provider_upsert(Time::ZERO, key(), entry(&format!("{long}{i:04}"), u64::MAX >> 1, 600, false));
        }
        let (mut seen, mut after, mut pages) = (0, Value::Nil, 0);
        loop {
            let page = list(&mut e, after, 256);
            let body = crate::wire::Datagram::Response { id: crate::wire::MessageId([0; 20]), body: page.clone() };
            assert!(body.encode().unwrap().len() <= MAX_PAGE_DATAGRAM);
            seen += page.as_map_get("entries").unwrap().as_array().unwrap().len();
            assert_eq!(page.as_map_get("live").unwrap().as_int(), Some(300));
            pages += 1;
            after = page.as_map_get("next").unwrap().clone();
            if after == Value::Nil || pages > 400 {
                break;
            }
        }
        assert_eq!(seen, 300);
        assert!(pages > 30, "pages = {pages}");
        let small = list(&mut e, Value::Nil, 2);
        assert_eq!(small.as_map_get("entries").unwrap().as_array().unwrap().len(), 2);
    }

    #[test]
    fn malformed_provider_calls_get_no_reply() {
        let mut e = Engine::new(NodeId([1; 20]), super::super::Config::default(), Time::ZERO);
        let from: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let id = Value::Bin(vec![9; 20]);
        for args in [vec![], vec![id.clone(), Value::Bin(vec![1; 3]), Value::Array(vec![])], vec![id.clone()]] {
            assert_eq!(e.on_provider_rpc(Time::ZERO, from, ADD, args), None);
        }
        let too_many = Value::Array(vec![Value::Nil; MAX_ENTRIES_PER_CALL + 1]);
        assert_eq!(e.on_provider_rpc(Time::ZERO, from, ADD, vec![id.clone(), id.clone(), too_many]), None);
        let bad = Value::Array(vec![Value::Array(vec![Value::from("w1"), Value::Int(-1), Value::Int(5), Value::Nil])]);
        assert_eq!(e.on_provider_rpc(Time::ZERO, from, ADD, vec![id.clone(), id.clone(), bad]), Some(Value::Int(0)));
        assert_eq!(
            e.on_provider_rpc(Time::ZERO, from, LIST, vec![id.clone(), id.clone(), Value::Nil, Value::Int(0)]),
            None
        );
        assert_eq!(e.on_provider_rpc(Time::ZERO, from, "kadmesh_provider_nope", vec![]), None);
    }
}
