//! Paced record handover: the STOREs a newly verified contact is owed
//! (chosen by `hand_over_records` in `maintenance`) wait here and leave at
//! [`HandoverPace`]'s rates, per contact and for all contacts together,
//! instead of in one burst.
//!
//! A node holding thousands of records can owe one newcomer hundreds of
//! STOREs; sent at once they overflow the newcomer's socket buffer (most
//! are lost) and, with many newcomers, this node's own. Here each contact
//! has a token bucket and so does the queue as a whole; contacts take
//! turns, one datagram each per round, while both have tokens. The queue
//! is bounded (`max_contacts`, and `max_handover_per_contact` keys each),
//! and a contact that leaves the table or moves loses what it was owed.
//! Sans-IO: the engine calls [`Engine::send_handover`] on every timeout and
//! [`HandoverQueue::next_due`] joins its wake-up.

use std::collections::{BTreeMap, VecDeque};

use super::services::ReplyTo;
use super::Engine;
use crate::contact::Contact;
use crate::id::{Key, NodeId};
use crate::limits::rate::Bucket;
use crate::limits::HandoverPace;
use crate::time::Time;

/// What one contact is still owed.
#[derive(Debug)]
struct Owed {
    contact: Contact,
    keys: VecDeque<Key>,
    bucket: Bucket,
}

/// The records waiting to be handed over; see the module docs.
#[derive(Debug)]
pub(super) struct HandoverQueue {
    pace: HandoverPace,
    global: Bucket,
    waiting: BTreeMap<NodeId, Owed>,
    /// The contact served last: the next round starts after it, so when
    /// the global bucket allows one datagram per wake-up, contacts still
    /// take turns.
    last: Option<NodeId>,
}

impl HandoverQueue {
    /// An empty queue, its global bucket full at `now`.
    pub(super) fn new(pace: HandoverPace, now: Time) -> Self {
        HandoverQueue { global: Bucket::full(pace.global, now), pace, waiting: BTreeMap::new(), last: None }
    }

    /// Queues `keys` for `contact` (replacing what it was owed); false when
    /// `max_contacts` others are waiting, and then nothing is queued.
    pub(super) fn queue(&mut self, now: Time, contact: Contact, keys: Vec<Key>) -> bool {
        if self.waiting.len() >= self.pace.max_contacts && !self.waiting.contains_key(&contact.id) {
            return false;
        }
        let bucket = Bucket::full(self.pace.per_contact, now);
        self.waiting.insert(contact.id, Owed { contact, keys: keys.into(), bucket });
        true
    }

    /// Drops what `id` was owed.
    pub(super) fn forget(&mut self, id: &NodeId) {
        self.waiting.remove(id);
    }

    /// Keys waiting, and the contacts they wait for.
    pub(super) fn queued(&self) -> (usize, usize) {
        (self.waiting.values().map(|o| o.keys.len()).sum(), self.waiting.len())
    }

    /// What may be sent at `now`, tokens taken: contacts in turn, one key
    /// each per round, while the global bucket and theirs have tokens.
    pub(super) fn release(&mut self, now: Time) -> Vec<(Contact, Key)> {
        let mut out = Vec::new();
        if self.waiting.is_empty() {
            return out;
        }
        let (per_contact, global) = (self.pace.per_contact, self.pace.global);
        self.global.refill(global, now);
        let mut progress = true;
        while progress && self.global.has_token() {
            progress = false;
            for id in self.turns() {
                let Some(owed) = self.waiting.get_mut(&id) else { continue };
                owed.bucket.refill(per_contact, now);
                if !self.global.has_token() || !owed.bucket.has_token() {
                    continue;
                }
                let Some(key) = owed.keys.pop_front() else { continue };
                owed.bucket.take();
                self.global.take();
                out.push((owed.contact, key));
                self.last = Some(id);
                progress = true;
            }
        }
        self.waiting.retain(|_, o| !o.keys.is_empty());
        out
    }

    /// The waiting contacts in turn order: those after the last one served,
    /// then the others.
    fn turns(&self) -> Vec<NodeId> {
        let after = |id: &&NodeId| self.last.is_some_and(|last| **id > last);
        let (mut first, rest): (Vec<&NodeId>, Vec<&NodeId>) = self.waiting.keys().partition(after);
        first.extend(rest);
        first.into_iter().copied().collect()
    }

    /// When [`HandoverQueue::release`] can next send something.
    pub(super) fn next_due(&self) -> Option<Time> {
        let contact = self.waiting.values().filter_map(|o| o.bucket.ready_at(self.pace.per_contact)).min()?;
        Some(contact.max(self.global.ready_at(self.pace.global)?))
    }
}

impl Engine {
    /// Sends the handover STOREs whose turn has come; a contact that left
    /// the table or changed address since loses the rest of its queue.
    pub(super) fn send_handover(&mut self, now: Time) {
        for (contact, key) in self.handover.release(now) {
            if self.svc.routing.get(&contact.id).map(|c| c.addr) != Some(contact.addr) {
                self.handover.forget(&contact.id);
                continue;
            }
            // Expired or evicted since it was queued.
            let Some(r) = self.store.get(&key, now) else { continue };
            let ttl = Some(r.expires_at.saturating_since(now));
            let call = self.store_call(contact.id, key, r.value.clone(), ttl);
            if self.svc.send_request(now, contact.addr, call, ReplyTo::Fire { peer: contact.id }) {
                self.svc.stats.handovers += 1;
            }
        }
    }

    /// Queues `keys` for `contact` and sends what the pace allows now;
    /// false when the queue had no room for another contact.
    pub(super) fn queue_handover(&mut self, now: Time, contact: Contact, keys: Vec<Key>) -> bool {
        let queued = self.handover.queue(now, contact, keys);
        self.send_handover(now);
        queued
    }
}
