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
//! Wider far buckets ([`RoutingTable::with_widening`]): bucket `i` below
//! the widening `w` holds `k << (w - i)` contacts instead of k. The best of
//! a bucket's contacts for a target in its range then shares about `w - i`
//! more bits with it, the same for every far bucket, so the first hop of a
//! lookup gains `w` bits (Kad's `b` bits per hop, by width instead of by
//! sub-buckets) at the cost of about `k * (2^w - 1) * 2` more contacts.
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
//!    parks the newcomer in that bucket's replacement cache and, unless every
//!    entry was heard from within [`RECENTLY_SEEN`], returns
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
pub mod freshness;

use std::ops::RangeInclusive;
use std::time::Duration;

use rand::Rng;

pub use self::bucket::{KBucket, PENDING_PING_TIMEOUT, RECENTLY_SEEN};
pub use self::freshness::Asker;
use crate::contact::Contact;
use crate::id::{Distance, NodeId, ID_BITS};
use crate::time::Time;

/// Bucket size: the Kademlia paper's `k`.
pub const K: usize = 20;
/// Replacement contacts kept per bucket; the most recently heard are kept.
pub const REPLACEMENT_CACHE: usize = 20;

/// The contacts to put in a reply, and those to ping first (see [`freshness`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Handout {
    /// Contacts we may hand out, closest first (young fillers last): what
    /// the reply may carry.
    pub contacts: Vec<Contact>,
    /// Contacts among the closest that are due a check: the caller pings
    /// each (the table has already noted the check as sent, and leaves them
    /// out until they answer).
    pub check: Vec<Contact>,
}

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
    /// Far buckets below this index hold more than k (see the module docs).
    widening: u32,
    /// Never empty: index `i` covers shared prefix `i` (the last one: `>= i`).
    buckets: Vec<KBucket>,
    /// What is left of this second's freshness checks ([`freshness::FRESHNESS_CHECKS_PER_SEC`]).
    check_budget: freshness::CheckBudget,
}

impl RoutingTable {
    /// An empty table for `local` with bucket size `k` (at least 1).
    pub fn new(local: NodeId, k: usize, now: Time) -> Self {
        RoutingTable {
            local,
            k: k.max(1),
            widening: 0,
            buckets: vec![KBucket::new(now)],
            check_budget: freshness::CheckBudget::new(now),
        }
    }

    /// Bucket `i` below `bits` holds `k << (bits - i)` contacts (at most
    /// 2^5 k); 0, the default, is the paper's table. Set it on a new table.
    pub fn with_widening(mut self, bits: u32) -> Self {
        self.widening = bits.min(5);
        self
    }

    /// How many live contacts bucket `index` holds.
    pub fn capacity(&self, index: usize) -> usize {
        let extra = self.widening.saturating_sub(u32::try_from(index).unwrap_or(u32::MAX));
        self.k << extra
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
            let k = self.capacity(idx);
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
        let (local, k, k_deeper) = (self.local, self.capacity(depth - 1), self.capacity(depth));
        let Some(last) = self.buckets.last_mut() else {
            return;
        };
        let mut deeper = last.split_off(|id| local.distance(id).leading_zeros() >= depth);
        // Replacements only exist beside a full bucket; after a split there may be room for them.
        last.fill_from_replacements(k);
        // A widened bucket may hand down more than the narrower one holds.
        deeper.trim(k_deeper, REPLACEMENT_CACHE);
        deeper.fill_from_replacements(k_deeper);
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
        let k = self.capacity(self.bucket_index(id));
        self.bucket_of_mut(id)?.remove(id, k)
    }

    /// An RPC to this contact timed out. Counts consecutive failures; once they reach `max_failures`
    /// (0 is treated as 1) the contact is removed (replacement promoted) and true is returned.
    /// A later successful insert() resets the count. Unknown ids and replacements are ignored.
    pub fn record_failure(&mut self, id: &NodeId, max_failures: u32) -> bool {
        let k = self.capacity(self.bucket_index(id));
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

    /// `near`, waiting in a full bucket's replacement cache, takes the live
    /// slot of `far` in the same bucket, which is parked instead (proximity
    /// neighbour selection, decided by the engine from measured RTTs). False
    /// if they are not in those places.
    pub fn swap_in(&mut self, near: &NodeId, far: &NodeId) -> bool {
        let same = self.bucket_index(near) == self.bucket_index(far);
        same && self.bucket_of_mut(far).is_some_and(|b| b.swap_in(near, far))
    }

    /// Exactly the `n` contacts closest to `target` by XOR distance, closest first.
    pub fn closest(&self, target: &NodeId, n: usize) -> Vec<Contact> {
        self.closest_filtered(target, n, |_| false)
    }

    /// Like [`closest`](Self::closest) but skipping contacts for which `skip` returns true
    /// (used to exclude the requester).
    pub fn closest_filtered(&self, target: &NodeId, n: usize, skip: impl Fn(&Contact) -> bool) -> Vec<Contact> {
        self.closest_where(target, n, |e| !skip(&e.contact))
    }

    /// Like [`closest_filtered`](Self::closest_filtered) but also leaving out contacts whose last
    /// request stalled or went unanswered: what we tell others, so a dead node stops costing every
    /// asker a stalled query as soon as anyone notices it. (Our own lookups only leave out
    /// timed-out contacts, see [`closest_unfailed`](Self::closest_unfailed): a suspect may just be
    /// slow, and a live node among the k closest must still receive our stores.)
    pub fn closest_answering(&self, target: &NodeId, n: usize, skip: impl Fn(&Contact) -> bool) -> Vec<Contact> {
        self.closest_where(target, n, |e| e.answering() && !skip(&e.contact))
    }

    /// The `n` closest contacts we may hand to `asker` (see [`freshness`]), skipping those for
    /// which `skip` holds (the requester): closest first; for a stock or unknown asker, when
    /// too few of the closest are settled, farther settled ones, or (while this table knows
    /// fewer than `n` settled contacts at all) young ones to fill the reply. Contacts
    /// considered that are due a check are listed in [`Handout::check`] and noted as checked
    /// (a stock or unknown asker gets none of them until they answer).
    pub fn handout(
        &mut self,
        target: &NodeId,
        n: usize,
        now: Time,
        asker: Asker,
        skip: impl Fn(&Contact) -> bool,
    ) -> Handout {
        // Twice n candidates: enough to fill n with good ones unless most are unverified.
        let window = n.saturating_mul(2);
        let candidates = self.closest_answering(target, window, &skip);
        let mut out = Handout::default();
        let young = self.hand_out_from(candidates, n, now, asker, &mut out);
        let room = n.saturating_sub(out.contacts.len());
        if room == 0 || young.is_empty() {
            return out;
        }
        if self.settled_count() < n {
            out.contacts.extend(young.into_iter().take(room));
        } else {
            let farther = self.closest_answering(target, self.len(), &skip).into_iter().skip(window).collect();
            self.hand_out_from(farther, n, now, asker, &mut out);
        }
        out
    }

    /// Adds to `out` those of `candidates` (closest first) that `asker` may have, until it
    /// holds `n`, and lists those due a check; returns the young ones that could fill it.
    fn hand_out_from(
        &mut self,
        candidates: Vec<Contact>,
        n: usize,
        now: Time,
        asker: Asker,
        out: &mut Handout,
    ) -> Vec<Contact> {
        let mut young = Vec::new();
        let mut budget = self.check_budget;
        for c in candidates {
            if out.contacts.len() >= n {
                break;
            }
            let Some(entry) = self.bucket_of_mut(&c.id).and_then(|b| b.entry_mut(&c.id)) else { continue };
            // Checks for our own nodes' hand-outs are budgeted (see `freshness`).
            let budgeted = asker == Asker::Ours;
            if entry.check_due(now, asker) && (!budgeted || budget.take(now)) {
                entry.checked = Some(now);
                out.check.push(c);
            }
            if entry.may_hand_out(now, asker) {
                out.contacts.push(c);
            } else if entry.may_fill(now) {
                young.push(c);
            }
        }
        self.check_budget = budget;
        young
    }

    /// How many live contacts are settled ([`freshness`]): fewer than k only in a network
    /// that has just started, or in a node that has just joined one.
    pub fn settled_count(&self) -> usize {
        self.buckets.iter().flat_map(KBucket::entries).filter(|e| e.answering() && e.settled()).count()
    }

    /// The live contact `id` answered one of our queries. True if it had never answered
    /// before: it has just become verified (what record handover waits for).
    pub fn mark_answered(&mut self, id: &NodeId, now: Time) -> bool {
        self.bucket_of_mut(id).is_some_and(|b| b.mark_answered(id, now))
    }

    /// A request came from `from` (its id and the address it came from): once that live
    /// contact has answered one of our queries from this address, its requests keep it good too
    /// (BEP 5: "ever responded, and sent us a query lately").
    pub fn note_request(&mut self, from: &Contact, now: Time) {
        if let Some(b) = self.bucket_of_mut(&from.id) {
            b.note_request(from, now);
        }
    }

    /// We have just sent this live contact a check ping.
    pub fn note_checked(&mut self, id: &NodeId, now: Time) {
        if let Some(entry) = self.bucket_of_mut(id).and_then(|b| b.entry_mut(id)) {
            entry.checked = Some(now);
        }
    }

    /// Live contacts that answered us but are not settled ([`freshness`]), with their first answer.
    pub(crate) fn unsettled(&self) -> Vec<(NodeId, Time)> {
        let entries = self.buckets.iter().flat_map(KBucket::entries);
        let young = entries.filter(|e| e.answering() && !e.settled());
        young.filter_map(|e| e.answered.map(|a| (e.contact.id, a.first))).collect()
    }

    /// This live contact, if a check now would settle it: it answered, is not settled, is not
    /// failing and has no check pending.
    pub(crate) fn settle_candidate(&self, id: &NodeId) -> Option<Contact> {
        let e = self.bucket_of(id).and_then(|b| b.get(id))?;
        (e.answering() && e.confirmed() && !e.settled()).then_some(e.contact)
    }

    /// Has this live contact ever answered one of our queries (from its current address)?
    pub fn is_verified(&self, id: &NodeId) -> bool {
        self.bucket_of(id).and_then(|b| b.get(id)).is_some_and(|e| e.answered.is_some())
    }

    /// Is this live contact good now: answered us within [`freshness::GOOD_FOR`], not failing?
    pub fn is_good(&self, id: &NodeId, now: Time) -> bool {
        self.bucket_of(id).and_then(|b| b.get(id)).is_some_and(|e| e.is_good(now))
    }

    /// Like [`closest`](Self::closest) but leaving out contacts whose last request timed out
    /// (while a ping checks whether they are gone): where our own lookups start.
    pub fn closest_unfailed(&self, target: &NodeId, n: usize) -> Vec<Contact> {
        self.closest_where(target, n, |e| e.failures == 0)
    }

    /// Consecutive timeouts of a live contact; `None` if it is not one.
    pub fn failures(&self, id: &NodeId) -> Option<u32> {
        self.bucket_of(id).and_then(|b| b.get(id)).map(|e| e.failures)
    }

    /// A lookup stopped waiting on `id`: leave it out of replies and lookups until we hear
    /// from it again. Unlike [`record_failure`](Self::record_failure) this never evicts.
    pub fn mark_suspect(&mut self, id: &NodeId) {
        if let Some(bucket) = self.bucket_of_mut(id) {
            bucket.mark_suspect(id);
        }
    }

    fn closest_where(&self, target: &NodeId, n: usize, keep: impl Fn(&bucket::Entry) -> bool) -> Vec<Contact> {
        let mut out: Vec<Contact> = Vec::new();
        // References, not copies: selecting and sorting move half the bytes.
        let mut group: Vec<(Distance, &Contact)> = Vec::new();
        for range in self.bucket_groups(target) {
            let need = n.saturating_sub(out.len());
            if need == 0 {
                break;
            }
            group.clear();
            let buckets = self.buckets.get(range).unwrap_or_default();
            let contacts = buckets.iter().flat_map(|b| b.entries());
            for entry in contacts.filter(|e| keep(e)) {
                group.push((target.distance(&entry.contact.id), &entry.contact));
            }
            if group.len() > need {
                group.select_nth_unstable_by_key(need, |&(d, _)| d);
                group.truncate(need);
            }
            group.sort_unstable_by_key(|&(d, _)| d);
            out.extend(group.iter().map(|&(_, c)| *c));
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
    ///
    /// Walks the buckets nearest `target` first (see `bucket_groups`) and stops after the first
    /// group holding a contact at least as far as `id`: every later contact is farther still.
    pub fn would_be_among_closest(&self, id: &NodeId, target: &NodeId, n: usize) -> bool {
        let dist = target.distance(id);
        let me_closer = self.local != *id && target.distance(&self.local) < dist;
        let mut closer = usize::from(me_closer);
        if closer >= n {
            return false;
        }
        for range in self.bucket_groups(target) {
            let mut reached_dist = false;
            for c in self.buckets.get(range).unwrap_or_default().iter().flat_map(KBucket::contacts) {
                let d = target.distance(&c.id);
                if d >= dist {
                    reached_dist = true;
                } else if c.id != *id {
                    closer += 1;
                    if closer >= n {
                        return false;
                    }
                }
            }
            if reached_dist {
                break;
            }
        }
        true
    }

    /// Does any live contact other than `except` lie strictly closer to `target` than the local
    /// node? Cheap: only the target's bucket and deeper ones can hold such a contact (a contact
    /// in a shallower bucket `i` differs from us at bit `i`, where the target agrees with us),
    /// and for most targets the target's own bucket answers with its first entry.
    pub fn has_closer_than_local(&self, target: &NodeId, except: &NodeId) -> bool {
        let mine = target.distance(&self.local);
        let from = self.bucket_index(target);
        let deeper = self.buckets.get(from..).unwrap_or_default();
        deeper.iter().flat_map(KBucket::contacts).any(|c| c.id != *except && target.distance(&c.id) < mine)
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
mod swap_tests;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod wide_tests;
