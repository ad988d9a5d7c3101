//! The Kademlia routing table: k-buckets over the XOR metric (paper §2.2, §2.4).
//!
//! # Layout
//!
//! Buckets are indexed by the length of the id prefix a contact shares with
//! the local id. Bucket `i`, for every bucket but the last, holds contacts that
//! share exactly `i` bits; the last bucket holds every contact sharing at least
//! its index. Only the last bucket splits, because only it covers the local id:
//! each far range is worth k contacts, while the range around ourselves gets
//! ever finer, which keeps the table at O(k log n) contacts yet lets a lookup
//! halve its distance with every hop. After [`ID_BITS`] buckets the last one
//! covers a single id, so splitting stops there.
//!
//! The layout also orders whole buckets by distance to any target, which is
//! what lets [`RoutingTable::closest`] stay exact while touching only the
//! buckets it needs (see `bucket_groups`).
//!
//! # Eviction contract
//!
//! Contacts that have been up for long are the likeliest to stay up (§2.2),
//! and an attacker cannot flush a bucket by flooding it with new ids, so a
//! full bucket never drops a live contact just because a newcomer appeared:
//!
//! 1. [`RoutingTable::insert`] of a newcomer into a full, unsplittable bucket
//!    parks the newcomer in that bucket's replacement cache and returns
//!    [`InsertOutcome::Full`] naming the least-recently-seen contact. The
//!    caller pings it.
//! 2. While that ping is outstanding, later newcomers are cached too and get
//!    [`InsertOutcome::Pending`], so a bucket has at most one eviction ping in
//!    flight.
//! 3. The caller reports [`RoutingTable::ping_answered`] (the contact stays and
//!    becomes most recent) or [`RoutingTable::ping_failed`] (it is evicted and
//!    the most recent replacement takes its slot).
//!
//! If the report never comes, the bucket asks again after
//! [`PENDING_PING_TIMEOUT`] so a lost callback cannot freeze it. [`remove`]
//! and [`record_failure`] reaching its threshold also promote a replacement:
//! the cache exists so a dead contact's slot refills without a lookup.
//!
//! Nothing here reads a clock or does I/O; every time is passed in.
//!
//! [`remove`]: RoutingTable::remove
//! [`record_failure`]: RoutingTable::record_failure

mod bucket;

use std::ops::RangeInclusive;
use std::time::Duration;

use rand::Rng;

pub use self::bucket::{KBucket, PENDING_PING_TIMEOUT};
use crate::contact::Contact;
use crate::id::{Distance, NodeId, ID_BITS};
use crate::time::Time;

/// Bucket size: the Kademlia paper's `k`.
pub const K: usize = 20;
/// Replacement contacts kept per bucket; the most recently heard are kept.
pub const REPLACEMENT_CACHE: usize = 20;

/// What [`RoutingTable::insert`] did with a contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsertOutcome {
    /// New contact placed in a bucket.
    Inserted,
    /// Contact already present: moved to most-recently-seen (address updated if it changed).
    Updated,
    /// Bucket full and cannot split: the candidate went into the replacement cache and the caller
    /// must ping `ping` (the least-recently-seen contact) and then call `ping_answered` or `ping_failed`.
    Full {
        /// The least-recently-seen contact of the bucket, to be pinged.
        ping: Contact,
    },
    /// Bucket full and already waiting on a ping for its oldest contact: candidate kept in the replacement cache.
    Pending,
    /// The local id itself: ignored.
    IsSelf,
}

/// The k-bucket routing table of one node. Pure state; see the module docs.
#[derive(Debug, Clone)]
pub struct RoutingTable {
    local: NodeId,
    k: usize,
    /// Never empty: index `i` covers shared prefix `i` (the last one: `>= i`).
    buckets: Vec<KBucket>,
}

impl RoutingTable {
    /// An empty table for `local` with bucket size `k` (at least 1).
    pub fn new(local: NodeId, k: usize, now: Time) -> Self {
        RoutingTable { local, k: k.max(1), buckets: vec![KBucket::new(now)] }
    }

    /// The local node's id.
    pub fn local_id(&self) -> NodeId {
        self.local
    }

    /// The bucket size.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Index of the bucket whose range covers `id` (the local id maps to the last bucket).
    pub fn bucket_index(&self, id: &NodeId) -> usize {
        let prefix = self.local.distance(id).leading_zeros();
        prefix.min(self.buckets.len().saturating_sub(1))
    }

    /// All buckets, by index.
    pub fn buckets(&self) -> &[KBucket] {
        &self.buckets
    }

    /// Called whenever we hear from a contact (any request or a reply).
    pub fn insert(&mut self, contact: Contact, now: Time) -> InsertOutcome {
        if contact.id == self.local {
            return InsertOutcome::IsSelf;
        }
        // Each pass either finishes or adds a bucket, and buckets are capped at ID_BITS.
        loop {
            let idx = self.bucket_index(&contact.id);
            let splittable = idx + 1 == self.buckets.len() && self.buckets.len() < ID_BITS;
            let k = self.k;
            let Some(bucket) = self.buckets.get_mut(idx) else {
                return InsertOutcome::Pending;
            };
            if bucket.update(contact, now) {
                return InsertOutcome::Updated;
            }
            if bucket.len() < k {
                bucket.push(contact, now);
                bucket.touch(now);
                return InsertOutcome::Inserted;
            }
            if !splittable {
                return bucket.offer(contact, now, REPLACEMENT_CACHE);
            }
            self.split_last();
        }
    }

    /// Splits the last bucket: contacts sharing more than its index move to a new last bucket.
    fn split_last(&mut self) {
        let depth = self.buckets.len();
        let (local, k) = (self.local, self.k);
        let Some(last) = self.buckets.last_mut() else {
            return;
        };
        let mut deeper = last.split_off(|id| local.distance(id).leading_zeros() >= depth);
        // Replacements only exist beside a full bucket; after a split there may be room for them.
        last.fill_from_replacements(k);
        deeper.fill_from_replacements(k);
        self.buckets.push(deeper);
    }

    fn bucket_of(&self, id: &NodeId) -> Option<&KBucket> {
        self.buckets.get(self.bucket_index(id))
    }

    fn bucket_of_mut(&mut self, id: &NodeId) -> Option<&mut KBucket> {
        let idx = self.bucket_index(id);
        self.buckets.get_mut(idx)
    }

    /// True if `id` is a live contact (replacements do not count).
    pub fn contains(&self, id: &NodeId) -> bool {
        self.get(id).is_some()
    }

    /// The live contact with this id.
    pub fn get(&self, id: &NodeId) -> Option<Contact> {
        self.bucket_of(id)?.get(id).map(|e| e.contact)
    }

    /// When we last heard from this live contact (insert or answered ping).
    pub fn last_seen(&self, id: &NodeId) -> Option<Time> {
        self.bucket_of(id)?.get(id).map(|e| e.last_seen)
    }

    /// Remove a contact; the most recently seen replacement (if any) takes its place. Returns the
    /// removed contact. A contact found only in a replacement cache is dropped from it and `None`
    /// is returned, so `Some` always means the live count went down (or a replacement stepped in).
    pub fn remove(&mut self, id: &NodeId) -> Option<Contact> {
        let k = self.k;
        self.bucket_of_mut(id)?.remove(id, k)
    }

    /// An RPC to this contact timed out. Counts consecutive failures; once they reach `max_failures`
    /// (0 is treated as 1) the contact is removed (replacement promoted) and true is returned.
    /// A later successful insert() resets the count. Unknown ids and replacements are ignored.
    pub fn record_failure(&mut self, id: &NodeId, max_failures: u32) -> bool {
        let k = self.k;
        let Some(bucket) = self.bucket_of_mut(id) else {
            return false;
        };
        match bucket.record_failure(id) {
            Some(n) if n >= max_failures.max(1) => bucket.remove(id, k).is_some(),
            _ => false,
        }
    }

    /// The pinged least-recently-seen contact answered: it stays (moved to most-recent), the
    /// pending state clears, the candidate stays in the replacement cache.
    pub fn ping_answered(&mut self, id: &NodeId, now: Time) {
        if let Some(bucket) = self.bucket_of_mut(id) {
            bucket.ping_answered(id, now);
        }
    }

    /// The pinged contact did not answer: evict it and promote the most recent replacement.
    /// Without a matching pending ping this is exactly [`remove`](Self::remove).
    pub fn ping_failed(&mut self, id: &NodeId, now: Time) {
        // Eviction does not depend on time; `now` keeps the callback shape uniform.
        let _ = now;
        self.remove(id);
    }

    /// Exactly the `n` contacts closest to `target` by XOR distance, closest first.
    pub fn closest(&self, target: &NodeId, n: usize) -> Vec<Contact> {
        self.closest_filtered(target, n, |_| false)
    }

    /// Like [`closest`](Self::closest) but skipping contacts for which `skip` returns true
    /// (used to exclude the requester).
    pub fn closest_filtered(&self, target: &NodeId, n: usize, skip: impl Fn(&Contact) -> bool) -> Vec<Contact> {
        let mut out: Vec<Contact> = Vec::new();
        let mut group: Vec<(Distance, Contact)> = Vec::new();
        for range in self.bucket_groups(target) {
            let need = n.saturating_sub(out.len());
            if need == 0 {
                break;
            }
            group.clear();
            let buckets = self.buckets.get(range).unwrap_or_default();
            let contacts = buckets.iter().flat_map(|b| b.entries());
            for entry in contacts.filter(|e| !skip(&e.contact)) {
                group.push((target.distance(&entry.contact.id), entry.contact));
            }
            if group.len() > need {
                group.select_nth_unstable_by_key(need, |&(d, _)| d);
                group.truncate(need);
            }
            group.sort_unstable_by_key(|&(d, _)| d);
            out.extend(group.iter().map(|&(_, c)| c));
        }
        out
    }

    /// Bucket ranges in increasing distance from `target`; every contact of a group is strictly
    /// closer to `target` than any contact of a later group.
    ///
    /// With `b` the target's bucket: contacts in `b` share more than `b` bits with the target
    /// (or at least `b` if `b` is last); contacts in deeper buckets share exactly `b`; a contact
    /// in bucket `i < b` shares exactly `i`. So: `b`, then all deeper buckets together, then
    /// `b-1` down to `0`.
    fn bucket_groups(&self, target: &NodeId) -> impl Iterator<Item = RangeInclusive<usize>> {
        let b = self.bucket_index(target);
        let last = self.buckets.len().saturating_sub(1);
        let deeper = (b < last).then_some(b + 1..=last);
        std::iter::once(b..=b).chain(deeper).chain((0..b).rev().map(|i| i..=i))
    }

    /// Is `id` among the `n` closest to `target` that we know, counting ourselves? True if fewer
    /// than `n` known nodes (live contacts plus the local node, other than `id`) are strictly
    /// closer to `target` than `id`. Always false for `n == 0`.
    pub fn would_be_among_closest(&self, id: &NodeId, target: &NodeId, n: usize) -> bool {
        let dist = target.distance(id);
        let me_closer = self.local != *id && target.distance(&self.local) < dist;
        let mut closer = usize::from(me_closer);
        if closer >= n {
            return false;
        }
        for c in self.contacts() {
            if c.id != *id && target.distance(&c.id) < dist {
                closer += 1;
                if closer >= n {
                    return false;
                }
            }
        }
        true
    }

    /// Number of live contacts (replacements not counted).
    pub fn len(&self) -> usize {
        self.buckets.iter().map(KBucket::len).sum()
    }

    /// True if there are no live contacts.
    pub fn is_empty(&self) -> bool {
        self.buckets.iter().all(KBucket::is_empty)
    }

    /// All live contacts, bucket by bucket, each least recently seen first.
    pub fn contacts(&self) -> impl Iterator<Item = Contact> + '_ {
        self.buckets.iter().flat_map(KBucket::contacts)
    }

    /// Number of buckets (1 to [`ID_BITS`]).
    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    /// Mark the bucket that covers `target` as refreshed (a lookup went through its range).
    pub fn touch(&mut self, target: &NodeId, now: Time) {
        if let Some(bucket) = self.bucket_of_mut(target) {
            bucket.touch(now);
        }
    }

    /// Indices of buckets not touched (by a lookup into their range, or by a new contact inserted
    /// there) since `now - interval`, i.e. last touched strictly more than `interval` ago
    /// ("lonely buckets", paper section 2.3).
    pub fn lonely_buckets(&self, now: Time, interval: Duration) -> Vec<usize> {
        let cutoff = now - interval;
        let lonely = |(i, b): (usize, &KBucket)| (b.last_touched() < cutoff).then_some(i);
        self.buckets.iter().enumerate().filter_map(lonely).collect()
    }

    /// A uniformly random id inside bucket `index`'s range, for a refresh lookup. An index past
    /// the last bucket means the last bucket. The last bucket's range includes the local id.
    pub fn random_id_in_bucket<R: Rng + ?Sized>(&self, index: usize, rng: &mut R) -> NodeId {
        let last = self.buckets.len().saturating_sub(1);
        if index < last {
            self.local.random_in_bucket(index, rng)
        } else {
            random_with_prefix(&self.local, last, rng)
        }
    }
}

/// A uniformly random id sharing at least the first `prefix_len` bits with `base`.
fn random_with_prefix<R: Rng + ?Sized>(base: &NodeId, prefix_len: usize, rng: &mut R) -> NodeId {
    let mut out = NodeId::random(rng).0;
    for (i, (o, b)) in out.iter_mut().zip(base.0).enumerate() {
        let bits = prefix_len.saturating_sub(i * 8).min(8) as u32;
        // checked_shl: shifting a u8 by 8 (no bits kept) would overflow.
        let mask = u8::MAX.checked_shl(8 - bits).unwrap_or(0);
        *o = (b & mask) | (*o & !mask);
    }
    NodeId(out)
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    fn contact(id: NodeId, port: u16) -> Contact {
        Contact::new(id, SocketAddr::from(([127, 0, 0, 1], port)))
    }

    fn secs(s: u64) -> Time {
        Time::from_secs(s)
    }

    fn bucket_ids(table: &RoutingTable, index: usize) -> Vec<NodeId> {
        table.buckets()[index].contacts().map(|c| c.id).collect()
    }

    fn replacement_ids(table: &RoutingTable, index: usize) -> Vec<NodeId> {
        table.buckets()[index].replacements().map(|c| c.id).collect()
    }

    /// A k=3 table whose bucket 0 holds exactly `far` (prefix 0) and is full but no longer
    /// the last bucket, plus `extra` more prefix-0 ids to offer as candidates.
    fn full_far_bucket(seed: u64, extra: usize) -> (RoutingTable, Vec<Contact>, Vec<Contact>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let local = NodeId::random(&mut rng);
        let mut table = RoutingTable::new(local, 3, Time::ZERO);
        let far: Vec<Contact> = (0..3).map(|i| contact(local.random_in_bucket(0, &mut rng), 1000 + i)).collect();
        for c in &far {
            assert_eq!(table.insert(*c, Time::ZERO), InsertOutcome::Inserted);
        }
        // Forces the split that leaves bucket 0 full and unsplittable.
        let filler = contact(local.random_in_bucket(4, &mut rng), 999);
        assert_eq!(table.insert(filler, Time::ZERO), InsertOutcome::Inserted);
        assert_eq!(table.bucket_count(), 2);
        let candidates = (0..extra).map(|i| contact(local.random_in_bucket(0, &mut rng), 2000 + i as u16)).collect();
        (table, far, candidates)
    }

    #[test]
    fn insert_orders_least_recently_seen_first_and_updates_address() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut table = RoutingTable::new(NodeId::random(&mut rng), K, Time::ZERO);
        let [a, b, c] = [1, 2, 3].map(|p| contact(NodeId::random(&mut rng), p));
        for x in [a, b, c] {
            assert_eq!(table.insert(x, secs(1)), InsertOutcome::Inserted);
        }
        assert_eq!(bucket_ids(&table, 0), vec![a.id, b.id, c.id]);

        let moved = contact(a.id, 4000);
        assert_eq!(table.insert(moved, secs(5)), InsertOutcome::Updated);
        assert_eq!(bucket_ids(&table, 0), vec![b.id, c.id, a.id]);
        assert_eq!(table.get(&a.id), Some(moved));
        assert_eq!(table.last_seen(&a.id), Some(secs(5)));
        assert_eq!(table.len(), 3);
        assert!(!table.is_empty());
    }

    #[test]
    fn is_self_is_ignored() {
        let local = NodeId::for_key("me");
        let mut table = RoutingTable::new(local, K, Time::ZERO);
        assert_eq!(table.insert(contact(local, 1), Time::ZERO), InsertOutcome::IsSelf);
        assert!(table.is_empty());
        assert!(!table.contains(&local));
        assert_eq!(table.local_id(), local);
        assert_eq!(table.k(), K);
    }

    #[test]
    fn only_the_last_bucket_splits() {
        let mut rng = StdRng::seed_from_u64(2);
        let local = NodeId::random(&mut rng);
        let mut table = RoutingTable::new(local, 2, Time::ZERO);
        let [p0, p1, p5, p7] = [0, 1, 5, 7].map(|d| contact(local.random_in_bucket(d, &mut rng), 1));
        for x in [p0, p1, p5, p7] {
            assert_eq!(table.insert(x, Time::ZERO), InsertOutcome::Inserted);
        }
        assert_eq!(table.bucket_count(), 3);
        assert_eq!(bucket_ids(&table, 0), vec![p0.id]);
        assert_eq!(bucket_ids(&table, 1), vec![p1.id]);
        assert_eq!(bucket_ids(&table, 2), vec![p5.id, p7.id]);
        // Once bucket 1 is full it does not split (it is not last): an eviction ping instead.
        let [q1, r1] = [2, 3].map(|p| contact(local.random_in_bucket(1, &mut rng), p));
        assert_eq!(table.insert(q1, Time::ZERO), InsertOutcome::Inserted);
        assert_eq!(table.insert(r1, Time::ZERO), InsertOutcome::Full { ping: p1 });
        assert_eq!(table.insert(r1, Time::ZERO), InsertOutcome::Pending);
        assert_eq!(table.bucket_count(), 3);
    }

    #[test]
    fn many_random_contacts_never_overfill_a_bucket() {
        let mut rng = StdRng::seed_from_u64(3);
        let local = NodeId::random(&mut rng);
        let mut table = RoutingTable::new(local, K, Time::ZERO);
        for i in 0..3000u16 {
            let id = if i & 1 == 0 {
                NodeId::random(&mut rng)
            } else {
                local.random_in_bucket(usize::from(i) % 40, &mut rng)
            };
            table.insert(contact(id, i), Time::ZERO);
        }
        assert!(table.bucket_count() > 10);
        for (i, bucket) in table.buckets().iter().enumerate() {
            assert!(bucket.len() <= K);
            assert!(bucket.contacts().all(|c| table.bucket_index(&c.id) == i));
        }
    }

    #[test]
    fn full_then_ping_answered_keeps_old_contact() {
        let (mut table, far, cand) = full_far_bucket(4, 2);
        assert_eq!(table.insert(cand[0], secs(1)), InsertOutcome::Full { ping: far[0] });
        assert!(!table.contains(&cand[0].id));
        assert_eq!(table.buckets()[0].pending_ping(), Some(far[0].id));

        table.ping_answered(&far[0].id, secs(2));
        assert_eq!(bucket_ids(&table, 0), vec![far[1].id, far[2].id, far[0].id]);
        assert_eq!(table.buckets()[0].pending_ping(), None);
        assert_eq!(replacement_ids(&table, 0), vec![cand[0].id]);
        assert_eq!(table.last_seen(&far[0].id), Some(secs(2)));
        // The next newcomer triggers a ping of the new oldest.
        assert_eq!(table.insert(cand[1], secs(3)), InsertOutcome::Full { ping: far[1] });
    }

    #[test]
    fn full_then_ping_failed_evicts_and_promotes_candidate() {
        let (mut table, far, cand) = full_far_bucket(5, 1);
        assert_eq!(table.insert(cand[0], secs(1)), InsertOutcome::Full { ping: far[0] });
        table.ping_failed(&far[0].id, secs(2));
        assert!(!table.contains(&far[0].id));
        assert_eq!(bucket_ids(&table, 0), vec![far[1].id, far[2].id, cand[0].id]);
        assert_eq!(table.buckets()[0].pending_ping(), None);
        assert!(replacement_ids(&table, 0).is_empty());
    }

    #[test]
    fn pending_while_ping_outstanding_then_reissued_after_timeout() {
        let (mut table, far, cand) = full_far_bucket(6, 4);
        assert_eq!(table.insert(cand[0], secs(10)), InsertOutcome::Full { ping: far[0] });
        assert_eq!(table.insert(cand[1], secs(11)), InsertOutcome::Pending);
        assert_eq!(table.insert(cand[2], secs(12)), InsertOutcome::Pending);
        assert_eq!(bucket_ids(&table, 0), far.iter().map(|c| c.id).collect::<Vec<_>>());
        // A lost ping outcome must not freeze the bucket forever.
        let later = secs(10) + PENDING_PING_TIMEOUT;
        assert_eq!(table.insert(cand[3], later), InsertOutcome::Full { ping: far[0] });
        let expected: Vec<NodeId> = cand.iter().map(|c| c.id).collect();
        assert_eq!(replacement_ids(&table, 0), expected);
    }

    #[test]
    fn replacement_cache_is_bounded_and_deduplicated() {
        let (mut table, _, cand) = full_far_bucket(7, REPLACEMENT_CACHE + 5);
        for c in &cand {
            table.insert(*c, secs(1));
        }
        let kept: Vec<NodeId> = cand[5..].iter().map(|c| c.id).collect();
        assert_eq!(replacement_ids(&table, 0), kept);

        let again = contact(cand[10].id, 7777);
        assert_eq!(table.insert(again, secs(2)), InsertOutcome::Pending);
        let repl: Vec<Contact> = table.buckets()[0].replacements().collect();
        assert_eq!(repl.len(), REPLACEMENT_CACHE);
        assert_eq!(repl.last(), Some(&again));
        assert_eq!(repl.iter().filter(|c| c.id == again.id).count(), 1);
    }

    #[test]
    fn remove_promotes_most_recent_replacement() {
        let (mut table, far, cand) = full_far_bucket(8, 2);
        table.insert(cand[0], secs(1));
        table.insert(cand[1], secs(1));
        assert_eq!(table.remove(&far[1].id), Some(far[1]));
        assert_eq!(bucket_ids(&table, 0), vec![far[0].id, far[2].id, cand[1].id]);
        assert_eq!(replacement_ids(&table, 0), vec![cand[0].id]);
        // Replacement-only: dropped from the cache, not reported as a live removal.
        assert_eq!(table.remove(&cand[0].id), None);
        assert!(replacement_ids(&table, 0).is_empty());
        assert_eq!(table.remove(&NodeId::for_key("nobody")), None);
        // Removing the pinged contact clears the pending state.
        assert_eq!(table.buckets()[0].pending_ping(), Some(far[0].id));
        table.remove(&far[0].id);
        assert_eq!(table.buckets()[0].pending_ping(), None);
        assert_eq!(table.len(), 3);
    }

    #[test]
    fn ping_failed_without_pending_acts_like_remove() {
        let (mut table, far, _) = full_far_bucket(9, 0);
        table.ping_failed(&far[2].id, secs(1));
        assert_eq!(bucket_ids(&table, 0), vec![far[0].id, far[1].id]);
        table.ping_failed(&NodeId::for_key("nobody"), secs(1));
        table.ping_answered(&NodeId::for_key("nobody"), secs(1));
        assert_eq!(table.len(), 3);
    }

    #[test]
    fn record_failure_removes_at_threshold_and_insert_resets() {
        let mut rng = StdRng::seed_from_u64(10);
        let mut table = RoutingTable::new(NodeId::random(&mut rng), K, Time::ZERO);
        let a = contact(NodeId::random(&mut rng), 1);
        table.insert(a, Time::ZERO);
        assert!(!table.record_failure(&a.id, 3));
        assert!(!table.record_failure(&a.id, 3));
        table.insert(a, secs(1));
        assert!(!table.record_failure(&a.id, 3));
        assert!(!table.record_failure(&a.id, 3));
        assert!(table.record_failure(&a.id, 3));
        assert!(!table.contains(&a.id));
        assert!(!table.record_failure(&a.id, 3));
        let b = contact(NodeId::random(&mut rng), 2);
        table.insert(b, Time::ZERO);
        assert!(table.record_failure(&b.id, 0));
    }

    #[test]
    fn closest_with_empty_target_bucket_still_returns_contacts() {
        let (mut table, far, _) = full_far_bucket(11, 0);
        let local = table.local_id();
        let filler = table.buckets()[1].contacts().next().map(|c| c.id);
        if let Some(id) = filler {
            table.remove(&id);
        }
        assert!(table.buckets()[1].is_empty());
        let mut rng = StdRng::seed_from_u64(12);
        for target in [local, local.random_in_bucket(9, &mut rng)] {
            let got = table.closest(&target, 10);
            let mut expected = far.clone();
            expected.sort_by_key(|c| target.distance(&c.id));
            assert_eq!(got, expected);
            assert_eq!(table.closest(&target, 1), expected[..1].to_vec());
        }
        assert!(table.closest(&local, 0).is_empty());
        let skip = far[0].id;
        assert!(!table.closest_filtered(&local, 10, |c| c.id == skip).contains(&far[0]));
    }

    #[test]
    fn would_be_among_closest_counts_contacts_and_self() {
        let target = NodeId::for_key("target");
        let near = |d: u8| {
            let mut b = target.0;
            b[19] ^= d;
            NodeId(b)
        };
        let mut far_local = target.0;
        far_local[0] ^= 0x80;
        let mut table = RoutingTable::new(NodeId(far_local), K, Time::ZERO);
        for d in 1..=3 {
            table.insert(contact(near(d), 1), Time::ZERO);
        }
        assert!(!table.would_be_among_closest(&near(4), &target, 3));
        assert!(table.would_be_among_closest(&near(4), &target, 4));
        assert!(table.would_be_among_closest(&near(2), &target, 2));
        assert!(!table.would_be_among_closest(&near(2), &target, 1));
        assert!(!table.would_be_among_closest(&near(1), &target, 0));

        // Ourselves count as a known node.
        let table = RoutingTable::new(near(5), K, Time::ZERO);
        assert!(!table.would_be_among_closest(&near(6), &target, 1));
        assert!(table.would_be_among_closest(&near(6), &target, 2));
        assert!(table.would_be_among_closest(&near(5), &target, 1));
    }

    #[test]
    fn lonely_buckets_follow_touch_and_new_contacts() {
        let mut rng = StdRng::seed_from_u64(13);
        let local = NodeId::random(&mut rng);
        let mut table = RoutingTable::new(local, 1, Time::ZERO);
        table.insert(contact(local.random_in_bucket(0, &mut rng), 1), Time::ZERO);
        table.insert(contact(local.random_in_bucket(0, &mut rng), 2), Time::ZERO);
        assert_eq!(table.bucket_count(), 2);
        let interval = Duration::from_secs(60);
        assert!(table.lonely_buckets(secs(10), interval).is_empty());
        assert_eq!(table.lonely_buckets(secs(100), interval), vec![0, 1]);

        table.touch(&local.random_in_bucket(0, &mut rng), secs(100));
        let c = contact(local.random_in_bucket(3, &mut rng), 3);
        assert_eq!(table.insert(c, secs(120)), InsertOutcome::Inserted);
        assert!(table.lonely_buckets(secs(160), interval).is_empty());
        // Hearing again from a known contact is not a refresh.
        assert_eq!(table.insert(c, secs(170)), InsertOutcome::Updated);
        assert_eq!(table.lonely_buckets(secs(175), interval), vec![0]);
        assert_eq!(table.lonely_buckets(secs(185), interval), vec![0, 1]);
    }

    #[test]
    fn random_id_in_bucket_lands_in_that_bucket() {
        let mut rng = StdRng::seed_from_u64(14);
        let local = NodeId::random(&mut rng);
        let mut table = RoutingTable::new(local, 2, Time::ZERO);
        for depth in 0..12 {
            for port in 0..3 {
                table.insert(contact(local.random_in_bucket(depth, &mut rng), port), Time::ZERO);
            }
        }
        let count = table.bucket_count();
        assert!(count >= 12);
        for index in 0..count {
            for _ in 0..50 {
                let id = table.random_id_in_bucket(index, &mut rng);
                assert_eq!(table.bucket_index(&id), index);
            }
        }
        let id = table.random_id_in_bucket(ID_BITS + 5, &mut rng);
        assert_eq!(table.bucket_index(&id), count - 1);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert { depth: usize, seed: u64, port: u16 },
        Remove(usize),
        Fail(usize),
        PingAnswered(usize),
        PingFailed(usize),
        Wait(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        let depth = prop_oneof![0usize..8, 0usize..ID_BITS];
        prop_oneof![
            8 => (depth, 0u64..200, 0u16..3)
                .prop_map(|(depth, seed, port)| Op::Insert { depth, seed, port }),
            1 => any::<usize>().prop_map(Op::Remove),
            1 => any::<usize>().prop_map(Op::Fail),
            1 => any::<usize>().prop_map(Op::PingAnswered),
            1 => any::<usize>().prop_map(Op::PingFailed),
            1 => (0u64..120_000).prop_map(Op::Wait),
        ]
    }

    /// Replays `ops`, checking the table's invariants after each one.
    fn replay(local: NodeId, k: usize, ops: &[Op]) -> Result<RoutingTable, TestCaseError> {
        let mut table = RoutingTable::new(local, k, Time::ZERO);
        let mut seen: Vec<NodeId> = Vec::new();
        let mut now = Time::ZERO;
        for op in ops {
            let pick = |i: &usize| seen.get(i % seen.len().max(1)).copied();
            match op {
                Op::Insert { depth, seed, port } => {
                    let id = local.random_in_bucket(*depth, &mut StdRng::seed_from_u64(*seed));
                    table.insert(contact(id, *port), now);
                    seen.push(id);
                }
                Op::Remove(i) => drop(pick(i).map(|id| table.remove(&id))),
                Op::Fail(i) => drop(pick(i).map(|id| table.record_failure(&id, 2))),
                Op::PingAnswered(i) => drop(pick(i).map(|id| table.ping_answered(&id, now))),
                Op::PingFailed(i) => drop(pick(i).map(|id| table.ping_failed(&id, now))),
                Op::Wait(ms) => now = now + Duration::from_millis(*ms),
            }
            check_invariants(&table)?;
        }
        Ok(table)
    }

    fn check_invariants(table: &RoutingTable) -> Result<(), TestCaseError> {
        prop_assert!(table.bucket_count() >= 1 && table.bucket_count() <= ID_BITS);
        let mut live: Vec<NodeId> = table.contacts().map(|c| c.id).collect();
        prop_assert_eq!(live.len(), table.len());
        for (i, bucket) in table.buckets().iter().enumerate() {
            prop_assert!(bucket.len() <= table.k());
            prop_assert!(bucket.replacements().count() <= REPLACEMENT_CACHE);
            for c in bucket.contacts().chain(bucket.replacements()) {
                prop_assert_eq!(table.bucket_index(&c.id), i);
            }
            for r in bucket.replacements() {
                prop_assert!(!table.contains(&r.id));
            }
            if let Some(p) = bucket.pending_ping() {
                prop_assert!(bucket.contacts().any(|c| c.id == p));
            }
        }
        live.sort();
        live.dedup();
        prop_assert_eq!(live.len(), table.len());
        Ok(())
    }

    proptest! {
        #[test]
        fn bucket_never_exceeds_k(
            local in any::<[u8; 20]>(),
            k in 1usize..6,
            ops in prop::collection::vec(op(), 0..300),
        ) {
            replay(NodeId(local), k, &ops)?;
        }

        #[test]
        fn closest_is_exact(
            local in any::<[u8; 20]>(),
            k in 1usize..8,
            ops in prop::collection::vec(op(), 0..200),
            targets in prop::collection::vec(any::<[u8; 20]>(), 1..4),
            n in 0usize..40,
        ) {
            let local = NodeId(local);
            let table = replay(local, k, &ops)?;
            let mut all: Vec<Contact> = table.contacts().collect();
            let mut targets: Vec<NodeId> = targets.into_iter().map(NodeId).collect();
            targets.push(local);
            targets.extend(all.first().map(|c| c.id));
            for target in targets {
                all.sort_by_key(|c| target.distance(&c.id));
                let expected: Vec<Contact> = all.iter().take(n).copied().collect();
                prop_assert_eq!(table.closest(&target, n), expected);
                let skip = |c: &Contact| c.id.0[19] & 1 == 0;
                let expected: Vec<Contact> =
                    all.iter().filter(|c| !skip(c)).take(n).copied().collect();
                prop_assert_eq!(table.closest_filtered(&target, n, skip), expected);
            }
        }
    }
}
