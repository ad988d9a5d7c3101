//! The provider sets a node holds: entries by set key and id, within the
//! bounds of [`ProviderLimits`], swept of expired entries every
//! [`SWEEP_EVERY`], and network writes charged to their source's quota.
//! What an incoming entry does to a held one is [`rules`]' decision.

use std::collections::BTreeMap;
use std::ops::Bound;

use foldhash::HashMap;

use super::rules::{self, Verdict};
use super::wire::SetPrint;
use super::{valid_id, ProviderEntry, ProviderLimits, SWEEP_EVERY};
use crate::id::Key;
use crate::limits::{Quota, SourceQuota};
use crate::time::Time;

/// The provider sets this node holds for the network.
#[derive(Debug, Default)]
pub struct ProviderStore {
    limits: ProviderLimits,
    sets: HashMap<Key, BTreeMap<String, ProviderEntry>>,
    entries: usize,
    next_sweep: Option<Time>,
    /// Which source each entry written from the network is charged to.
    quota: SourceQuota<(Key, String)>,
}

impl ProviderStore {
    /// An empty store with these limits.
    pub fn new(limits: ProviderLimits) -> Self {
        ProviderStore { limits, ..Default::default() }
    }

    /// Merges `entry` into the set under `key` by the replica rules
    /// ([`rules`]: for unsigned entries a newer version replaces the held
    /// entry, an older one is ignored, an equal one extends its life, a
    /// tombstone beats a live entry of the same version; signed entries are
    /// bound to their key). Returns whether the set now reflects `entry` or
    /// something newer from the same writer; `false` when the id is invalid,
    /// the signature fails, the rules refuse it or the bounds leave no room.
    pub fn upsert(&mut self, key: Key, entry: ProviderEntry, now: Time) -> bool {
        self.merge(key, entry, now, true)
    }

    /// An empty store with these limits, charging network writes to their
    /// source under `quota` (see [`crate::limits::quota`]).
    pub fn with_quota(limits: ProviderLimits, quota: Quota) -> Self {
        ProviderStore { limits, quota: SourceQuota::new(quota), ..Default::default() }
    }

    /// [`ProviderStore::upsert`] for an entry written from the network by
    /// `source`: a new entry is refused when the source holds its share,
    /// and never evicts a live entry to make room.
    pub fn upsert_from(&mut self, source: std::net::IpAddr, key: Key, entry: ProviderEntry, now: Time) -> bool {
        let item = (key, entry.id.clone());
        if self.sets.get(&key).is_some_and(|s| s.contains_key(&entry.id)) {
            return self.merge(key, entry, now, false);
        }
        if !self.quota.admits(source, &item, 1) || !self.merge(key, entry, now, false) {
            return false;
        }
        self.quota.charge(source, item, 1);
        true
    }

    /// Network writes refused for their source's quota so far.
    pub fn quota_refusals(&self) -> u64 {
        self.quota.refused()
    }

    /// Applies the replica rules ([`rules`]) to `entry`; `evict_live` lets a
    /// new entry evict a live one that expires sooner when the set is full.
    fn merge(&mut self, key: Key, mut entry: ProviderEntry, now: Time, evict_live: bool) -> bool {
        if !valid_id(&entry.id) || !rules::admissible(&key, &entry, now) {
            return false;
        }
        let signed_end =
            entry.signature.as_ref().map_or(Time::from_millis(u64::MAX), |s| Time::from_secs(s.expires_at));
        entry.expires_at = entry.expires_at.min(now + self.limits.max_ttl).min(signed_end);
        if entry.expires_at <= now {
            return false;
        }
        let held = self.sets.get_mut(&key).and_then(|s| s.get_mut(&entry.id));
        match (rules::judge(held.as_deref(), &entry, now), held) {
            (Verdict::Refuse, _) => false,
            (Verdict::Ignore, _) => true,
            (Verdict::Extend, Some(old)) => {
                old.expires_at = old.expires_at.max(entry.expires_at);
                old.load = entry.load.or(old.load);
                true
            }
            // An expired entry not swept yet is replaced in place.
            (Verdict::Replace | Verdict::Insert, Some(old)) => {
                *old = entry;
                true
            }
            (_, None) => self.insert(key, entry, now, evict_live),
        }
    }

    /// Adds an entry for an id the set does not hold, if the bounds allow.
    fn insert(&mut self, key: Key, entry: ProviderEntry, now: Time, evict_live: bool) -> bool {
        let evict_before = if evict_live { entry.expires_at } else { now };
        if !self.make_room(&key, evict_before, now) {
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
        self.quota.release(&(*key, id));
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

    /// The keys of the sets held, in key order (seeded runs must replay).
    pub fn keys(&self) -> Vec<Key> {
        let mut keys: Vec<Key> = self.sets.keys().copied().collect();
        keys.sort_unstable();
        keys
    }

    /// Live (unexpired, not removed) providers under `key`.
    pub fn live(&self, key: &Key, now: Time) -> usize {
        self.range(key, None, now).filter(|e| !e.gone).count()
    }

    /// The live count and the fingerprint (see [`SetPrint`]) of the set
    /// under `key`, tombstones included in the print: what a page reports.
    pub fn summary(&self, key: &Key, now: Time) -> (usize, SetPrint) {
        let mut print = SetPrint::default();
        let mut live = 0;
        for e in self.range(key, None, now) {
            live += usize::from(!e.gone);
            print.add(&e.id, e.gone, e.signature.as_ref().map(|s| &s.public_key));
        }
        (live, print)
    }

    /// Drops expired entries if a sweep is due at `now`; returns how many.
    pub fn expire(&mut self, now: Time) -> usize {
        if self.next_sweep.is_none_or(|t| t > now) {
            return 0;
        }
        let before = self.entries;
        let quota = &mut self.quota;
        self.sets.retain(|key, set| {
            set.retain(|id, e| {
                let keep = e.expires_at > now;
                if !keep {
                    quota.release(&(*key, id.clone()));
                }
                keep
            });
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
