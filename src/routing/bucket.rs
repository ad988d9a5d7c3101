//! One k-bucket: live contacts in least-recently-seen order, a bounded
//! replacement cache, and the eviction ping it may be waiting on.
//!
//! The bucket knows nothing about its id range; [`super::RoutingTable`] decides
//! which bucket a contact belongs to and passes `k` in, so the bucket stays a
//! plain ordered container with the eviction bookkeeping.

use std::time::Duration;

use super::InsertOutcome;
use crate::contact::Contact;
use crate::id::NodeId;
use crate::time::Time;

/// How long a bucket waits for the outcome of an eviction ping before it asks
/// for another one. Only matters if the caller loses a ping and never reports
/// it; without it such a bucket would never evict again.
pub const PENDING_PING_TIMEOUT: Duration = Duration::from_secs(60);

/// A full bucket whose least-recently-seen contact was heard from within this
/// window is healthy: a newcomer is only parked, nobody is pinged.
pub const RECENTLY_SEEN: Duration = Duration::from_secs(300);

/// A contact plus what the table tracks about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) contact: Contact,
    pub(crate) last_seen: Time,
    /// Consecutive RPC timeouts since we last heard from it.
    pub(crate) failures: u32,
    /// A lookup gave up waiting on it since we last heard from it (a
    /// timeout may still follow; until then it only counts as suspect).
    pub(crate) suspect: bool,
    /// When it answered one of our own queries, first and last: only such
    /// a contact is known to be reachable (see [`super::freshness`]).
    pub(crate) answered: Option<Answered>,
    /// When we last sent it a check ping.
    pub(crate) checked: Option<Time>,
}

/// When a contact answered our queries: the first time and the latest,
/// and when it was last heard from at all since its first answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Answered {
    pub(crate) first: Time,
    /// Its latest answer to one of our queries.
    pub(crate) replied: Time,
    /// Its latest answer or request (BEP 5 counts both).
    pub(crate) last: Time,
}

impl Entry {
    fn new(contact: Contact, now: Time) -> Self {
        Entry { contact, last_seen: now, failures: 0, suspect: false, answered: None, checked: None }
    }

    /// Neither timed out nor stalled since we last heard from it.
    pub(crate) fn answering(&self) -> bool {
        self.failures == 0 && !self.suspect
    }
}

/// An eviction ping the caller was asked to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PendingPing {
    id: NodeId,
    since: Time,
}

/// One k-bucket.
///
/// Live contacts are ordered least-recently-seen first. Newcomers that found
/// the bucket full wait in a bounded replacement cache (oldest first) until a
/// live contact is evicted or removed.
#[derive(Debug, Clone)]
pub struct KBucket {
    entries: Vec<Entry>,
    replacements: Vec<Entry>,
    last_touched: Time,
    pending: Option<PendingPing>,
}

impl KBucket {
    pub(crate) fn new(now: Time) -> Self {
        KBucket { entries: Vec::new(), replacements: Vec::new(), last_touched: now, pending: None }
    }

    /// Live contacts, least recently seen first.
    pub fn contacts(&self) -> impl Iterator<Item = Contact> + '_ {
        self.entries.iter().map(|e| e.contact)
    }

    /// Replacement candidates, oldest first (the last one is promoted first).
    pub fn replacements(&self) -> impl Iterator<Item = Contact> + '_ {
        self.replacements.iter().map(|e| e.contact)
    }

    /// Number of live contacts.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if the bucket has no live contacts.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// When a lookup last went through this bucket's range or a new contact
    /// was inserted into it.
    pub fn last_touched(&self) -> Time {
        self.last_touched
    }

    /// The contact an eviction ping is outstanding for, if any.
    pub fn pending_ping(&self) -> Option<NodeId> {
        self.pending.map(|p| p.id)
    }

    pub(crate) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub(crate) fn get(&self, id: &NodeId) -> Option<&Entry> {
        self.position(id).map(|pos| &self.entries[pos])
    }

    /// Searched from the most recently seen end: a contact we hear from is
    /// likely to have been heard from lately, and each entry passed over was
    /// a cache miss. Ids are unique among the entries, so the index is the same.
    fn position(&self, id: &NodeId) -> Option<usize> {
        self.entries.iter().rposition(|e| e.contact.id == *id)
    }

    pub(crate) fn touch(&mut self, now: Time) {
        // max: a caller handing in an older time must not make the bucket look lonelier.
        self.last_touched = self.last_touched.max(now);
    }

    /// Moves a live contact to most-recently-seen, taking the new address and
    /// clearing its failures. False if the contact is not live here.
    ///
    /// A different address is taken only once the old one has failed to
    /// answer (libtorrent's rule): anyone can send a datagram carrying a
    /// known node's id, and taking its address at once would let a stranger
    /// redirect that node's traffic with one ping. Until then the datagram
    /// from the new address changes nothing (true: the id is live here).
    pub(crate) fn update(&mut self, contact: Contact, now: Time) -> bool {
        let Some(pos) = self.position(&contact.id) else {
            return false;
        };
        let old = &self.entries[pos];
        if old.contact.addr != contact.addr && old.failures == 0 && !old.suspect {
            return true;
        }
        self.entries[pos..].rotate_left(1);
        let Some(entry) = self.entries.last_mut() else { return false };
        if entry.contact.addr != contact.addr {
            // An answer from the old address says nothing about the new one.
            entry.answered = None;
            entry.checked = None;
        }
        entry.contact.addr = contact.addr;
        entry.last_seen = entry.last_seen.max(now);
        entry.failures = 0;
        entry.suspect = false;
        true
    }

    /// Adds a new live contact as most recently seen. The caller checked there is room.
    pub(crate) fn push(&mut self, contact: Contact, now: Time) {
        // A contact is never both live and a replacement: promotion would duplicate it.
        self.replacements.retain(|e| e.contact.id != contact.id);
        self.entries.push(Entry::new(contact, now));
    }

    /// The bucket is full and cannot split: park the newcomer and ask for the
    /// oldest contact to be pinged, unless a ping is already out.
    pub(crate) fn offer(&mut self, contact: Contact, now: Time, cap: usize) -> InsertOutcome {
        self.add_replacement(Entry::new(contact, now), cap);
        let outstanding = self.pending.is_some_and(|p| now.saturating_since(p.since) < PENDING_PING_TIMEOUT);
        if outstanding {
            return InsertOutcome::Pending;
        }
        match self.entries.first() {
            // Heard from within the window, so is every other entry (the
            // order is by last seen): nothing to evict, and pinging on every
            // stranger that writes to a busy node was most of a large
            // network's traffic in simulation (as in BEP 5, good nodes stay).
            Some(oldest) if now.saturating_since(oldest.last_seen) < RECENTLY_SEEN => InsertOutcome::Pending,
            Some(oldest) => {
                self.pending = Some(PendingPing { id: oldest.contact.id, since: now });
                InsertOutcome::Full { ping: oldest.contact }
            }
            // Unreachable with k >= 1 (a full bucket is non-empty); keep the candidate and move on.
            None => InsertOutcome::Pending,
        }
    }

    fn add_replacement(&mut self, entry: Entry, cap: usize) {
        self.replacements.retain(|e| e.contact.id != entry.contact.id);
        self.replacements.push(entry);
        if self.replacements.len() > cap {
            let excess = self.replacements.len() - cap;
            self.replacements.drain(..excess);
        }
    }

    /// Removes a live contact and refills its slot from the replacement
    /// cache; a replacement-only contact is dropped silently (returns None).
    pub(crate) fn remove(&mut self, id: &NodeId, k: usize) -> Option<Contact> {
        if self.pending.is_some_and(|p| p.id == *id) {
            self.pending = None;
        }
        match self.position(id) {
            Some(pos) => {
                let removed = self.entries.remove(pos).contact;
                self.fill_from_replacements(k);
                Some(removed)
            }
            None => {
                self.replacements.retain(|e| e.contact.id != *id);
                None
            }
        }
    }

    /// The pinged contact answered: it stays and becomes most recent.
    pub(crate) fn ping_answered(&mut self, id: &NodeId, now: Time) {
        if self.pending.is_some_and(|p| p.id == *id) {
            self.pending = None;
        }
        if let Some(pos) = self.position(id) {
            let contact = self.entries[pos].contact;
            self.update(contact, now);
        }
    }

    /// The live contact answered one of our queries at `now`. True if it
    /// never had before: it has just become verified.
    pub(crate) fn mark_answered(&mut self, id: &NodeId, now: Time) -> bool {
        let Some(pos) = self.position(id) else { return false };
        let entry = &mut self.entries[pos];
        match &mut entry.answered {
            Some(a) => {
                a.replied = a.replied.max(now);
                a.last = a.last.max(now);
                false
            }
            None => {
                entry.answered = Some(Answered { first: now, replied: now, last: now });
                true
            }
        }
    }

    /// A request came from `from` at `now`: if it is this live contact at
    /// the address that answered us before, that keeps it good (BEP 5). A
    /// request naming its id from elsewhere (anyone can send one) does not.
    pub(crate) fn note_request(&mut self, from: &Contact, now: Time) {
        let Some(entry) = self.entry_mut(&from.id) else { return };
        if entry.contact.addr != from.addr {
            return;
        }
        if let Some(a) = entry.answered.as_mut() {
            a.last = a.last.max(now);
        }
    }

    pub(crate) fn entry_mut(&mut self, id: &NodeId) -> Option<&mut Entry> {
        self.position(id).map(|pos| &mut self.entries[pos])
    }

    /// Marks a live contact suspect (a lookup stalled on it).
    pub(crate) fn mark_suspect(&mut self, id: &NodeId) {
        if let Some(pos) = self.position(id) {
            self.entries[pos].suspect = true;
        }
    }

    /// Counts one more consecutive failure; None if the contact is not live here.
    pub(crate) fn record_failure(&mut self, id: &NodeId) -> Option<u32> {
        let pos = self.position(id)?;
        let entry = &mut self.entries[pos];
        entry.failures = entry.failures.saturating_add(1);
        Some(entry.failures)
    }

    /// Proximity neighbour selection: `near`, parked in the replacement
    /// cache, takes the place of live `far`, which becomes the most recent
    /// replacement (first back if a slot frees). False, with nothing
    /// changed, unless `near` is parked here and `far` is live here.
    pub(crate) fn swap_in(&mut self, near: &NodeId, far: &NodeId) -> bool {
        let Some(r) = self.replacements.iter().rposition(|e| e.contact.id == *near) else { return false };
        let Some(pos) = self.position(far) else { return false };
        let incoming = self.replacements.remove(r);
        let outgoing = self.entries.remove(pos);
        if self.pending.is_some_and(|p| p.id == *far) {
            self.pending = None;
        }
        self.entries.push(incoming);
        self.replacements.push(outgoing);
        true
    }

    /// Promotes the most recent replacements while there is room.
    pub(crate) fn fill_from_replacements(&mut self, k: usize) {
        while self.entries.len() < k {
            match self.replacements.pop() {
                Some(entry) => self.entries.push(entry),
                None => break,
            }
        }
    }

    /// Moves the most recently seen live contacts beyond `k` to the
    /// replacement cache (bounded by `cap`): the long-lived ones stay.
    pub(crate) fn trim(&mut self, k: usize, cap: usize) {
        let extra = self.entries.len().saturating_sub(k);
        for entry in self.entries.drain(self.entries.len() - extra..).collect::<Vec<_>>() {
            self.add_replacement(entry, cap);
        }
    }

    /// Moves every contact (live or replacement) for which `moves` holds into
    /// a new bucket, keeping relative order; the pending ping follows its contact.
    pub(crate) fn split_off(&mut self, moves: impl Fn(&NodeId) -> bool) -> KBucket {
        let (deep, kept): (Vec<Entry>, Vec<Entry>) =
            std::mem::take(&mut self.entries).into_iter().partition(|e| moves(&e.contact.id));
        self.entries = kept;
        let (deep_repl, kept_repl): (Vec<Entry>, Vec<Entry>) =
            std::mem::take(&mut self.replacements).into_iter().partition(|e| moves(&e.contact.id));
        self.replacements = kept_repl;
        let pending = self.pending.filter(|p| moves(&p.id));
        if pending.is_some() {
            self.pending = None;
        }
        KBucket {
            entries: deep,
            replacements: deep_repl,
            // Both halves were covered by whatever last touched the parent.
            last_touched: self.last_touched,
            pending,
        }
    }
}
