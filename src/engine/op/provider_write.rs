//! `provider_write`: adds (or tombstones) providers in the set under a key
//! at the closest nodes.
//!
//! Writes for the same key and direction that arrive within a batch window
//! travel together: the first opens a batch with a deadline the engine
//! keeps ([`Batches`], returned by `poll_timeout` like any timer), later
//! ones join it, and all get the batch's result. At the deadline one
//! operation runs for the batch: a node lookup of the key, a local copy
//! when this node is among the closest, then the writes. Kadmesh peers get
//! each request up to [`TRIES`] times and are waited for; peers not yet
//! known either way get each request once and are not waited for (their
//! late answers find the operation gone and are dropped); stock peers get
//! nothing (they do not know the procedures). Contacts the lookup asked
//! that were closer than the k-th to answer but had not answered within
//! their stall threshold ([`crate::lookup::LookupResult::stalled`]) get
//! each request once too: readers read the key's closest first, and one of
//! them that is far from the writer (or busy) must not be left out for it.
//!
//! A node's view of a key's neighbourhood is thin for a while after it
//! joins, so a write's lookup can end short of the key's closest nodes,
//! the very ones readers read first. Writes launched within [`YOUNG`] of
//! our join are therefore written again, once, [`REWRITE_AFTER`] later, by
//! a fresh lookup. (In `simulations flash-crowd`, seed 4, a newcomer's
//! first write missed the key's three closest nodes, and 55 discovers
//! missed it until its next heartbeat two minutes later.) When no other
//! node acknowledged the first write (a lookup so thin that the writer
//! took itself for one of the key's closest and kept the only copy), the
//! repeat runs [`UNHEARD_REWRITE_AFTER`] later instead: in `flash-crowd`,
//! seed 3, one newcomer in that state was missed by 41 discovers in the 30
//! s before its repeat.

use std::time::Duration;

use super::search::{Progress, Search};
use super::{Cx, Finished, Operation, Reply, Step};
use crate::contact::Contact;
use crate::engine::providers::client::{parse_write_reply, write_calls, Announce};
use crate::engine::providers::ProviderEntry;
use crate::engine::{Engine, Outcome, PeerKind, ProviderWriteOutcome, QueryId};
use crate::id::{Key, NodeId};
use crate::lookup::LookupKind;
use crate::rpc::RpcKind;
use crate::time::Time;
use crate::wire::Call;

/// How many times a kadmesh peer is sent each write request.
pub(in crate::engine) const TRIES: usize = 3;
/// Writes launched this soon after our join are written again.
pub const YOUNG: Duration = Duration::from_secs(60);
/// How long after a young write its repeat runs.
pub const REWRITE_AFTER: Duration = Duration::from_secs(30);
/// How long after a young write that no other node acknowledged its repeat
/// runs: its table has had a few seconds to fill.
pub const UNHEARD_REWRITE_AFTER: Duration = Duration::from_secs(5);

impl Engine {
    /// Adds `items` to (or, with `remove`, tombstones them in) the provider
    /// set under `key` at the closest nodes. Writes for the same `(key,
    /// remove)` within `window` of the first join its batch; each reports
    /// the batch's [`ProviderWriteOutcome`].
    pub fn provider_write(
        &mut self,
        now: Time,
        key: Key,
        items: Vec<Announce>,
        remove: bool,
        window: Duration,
    ) -> QueryId {
        let id = self.alloc_op();
        let Some(items) = self.provider_batches.join(key, remove, items, id) else { return id };
        if window.is_zero() {
            self.launch_write(now, id, key, items, remove);
        } else {
            self.provider_batches.open.push(Batch::new(key, remove, id, now + window, items, false));
        }
        id
    }

    /// Runs a batch's write; one launched soon after our join is also
    /// queued to run again (see the module docs).
    fn launch_write(&mut self, now: Time, id: QueryId, key: Key, items: Vec<Announce>, remove: bool) {
        if self.joined_at.is_some_and(|j| now < j + YOUNG) {
            let again = self.alloc_op();
            let batch = Batch::new(key, remove, again, now + REWRITE_AFTER, items.clone(), true);
            self.provider_batches.open.push(batch);
            self.provider_batches.repeats.insert(id, again);
        }
        self.launch(now, id, Box::new(ProviderWrite::new(key, items, remove, false)));
    }

    /// Write `id` reported `w`: if it is a young write that no other node
    /// acknowledged, its repeat runs soon (see the module docs).
    pub(in crate::engine) fn after_write(&mut self, now: Time, id: QueryId, w: &ProviderWriteOutcome) {
        let Some(again) = self.provider_batches.repeats.remove(&id) else { return };
        if w.acked > usize::from(w.local) {
            return;
        }
        if let Some(b) = self.provider_batches.open.iter_mut().find(|b| b.leader == again) {
            b.due = b.due.min(now + UNHEARD_REWRITE_AFTER);
        }
    }

    /// Starts the batches whose window has closed, oldest first.
    pub(in crate::engine) fn launch_due_batches(&mut self, now: Time) {
        for b in self.provider_batches.take_due(now) {
            // Recorded first: the operation may finish as it starts.
            if !b.followers.is_empty() {
                self.provider_batches.followers.insert(b.leader, b.followers);
            }
            if b.quiet {
                self.launch(now, b.leader, Box::new(ProviderWrite::new(b.key, b.items, b.remove, true)));
            } else {
                self.launch_write(now, b.leader, b.key, b.items, b.remove);
            }
        }
    }
}

/// Provider writes waiting for their batch's window to close, and the
/// writes that joined batches now running.
#[derive(Default)]
pub(in crate::engine) struct Batches {
    open: Vec<Batch>,
    /// Running batch (its operation's id) -> the other writes it carries.
    followers: std::collections::HashMap<QueryId, Vec<QueryId>>,
    /// A young write running -> its queued repeat's batch leader.
    repeats: std::collections::HashMap<QueryId, QueryId>,
}

struct Batch {
    key: Key,
    remove: bool,
    /// The first write's id; the batch's operation runs under it.
    leader: QueryId,
    due: Time,
    items: Vec<Announce>,
    followers: Vec<QueryId>,
    /// A young write's repeat: nobody waits for it, and no write joins it.
    quiet: bool,
}

impl Batch {
    fn new(key: Key, remove: bool, leader: QueryId, due: Time, items: Vec<Announce>, quiet: bool) -> Self {
        Batch { key, remove, leader, due, items, followers: Vec::new(), quiet }
    }
}

impl Batches {
    /// Adds write `id` to the open batch for `(key, remove)`; gives the
    /// items back when there is none (`id` then leads a new one).
    fn join(&mut self, key: Key, remove: bool, items: Vec<Announce>, id: QueryId) -> Option<Vec<Announce>> {
        match self.open.iter_mut().find(|b| b.key == key && b.remove == remove && !b.quiet) {
            Some(b) => {
                b.items.extend(items);
                b.followers.push(id);
                None
            }
            None => Some(items),
        }
    }

    /// When the next batch's window closes.
    pub(in crate::engine) fn next_due(&self) -> Option<Time> {
        self.open.iter().map(|b| b.due).min()
    }

    /// Removes and returns the batches due at `now`, in the order opened.
    fn take_due(&mut self, now: Time) -> Vec<Batch> {
        let (due, open) = std::mem::take(&mut self.open).into_iter().partition(|b| b.due <= now);
        self.open = open;
        due
    }

    /// The writes that joined the batch run by operation `leader`, once.
    pub(in crate::engine) fn followers(&mut self, leader: QueryId) -> Vec<QueryId> {
        self.followers.remove(&leader).unwrap_or_default()
    }
}

/// What a write that joined a batch reports: the batch's outcome, with the
/// request counts left to the batch's first write so that summing every
/// write's outcome counts each request once.
pub(in crate::engine) fn for_follower(outcome: &Outcome) -> Outcome {
    match outcome {
        Outcome::ProviderWrite(w) => Outcome::ProviderWrite(ProviderWriteOutcome { sent: 0, failed: 0, ..*w }),
        other => other.clone(),
    }
}

/// One batch's write in progress.
struct ProviderWrite {
    key: Key,
    items: Vec<Announce>,
    remove: bool,
    /// A repeat nobody waits for: it reports nothing.
    quiet: bool,
    phase: Phase,
    out: ProviderWriteOutcome,
}

enum Phase {
    Start,
    Search(Search),
    Writing(Vec<Writer>),
}

/// The requests to one kadmesh peer, sent one after the other.
struct Writer {
    peer: Contact,
    calls: Vec<Call>,
    /// The request being sent.
    next: usize,
    /// Tries of it so far.
    tries: usize,
    /// `Some(all acknowledged)` once it ended.
    done: Option<bool>,
}

impl ProviderWrite {
    fn new(key: Key, items: Vec<Announce>, remove: bool, quiet: bool) -> ProviderWrite {
        ProviderWrite { key, items, remove, quiet, phase: Phase::Start, out: ProviderWriteOutcome::default() }
    }

    fn on_progress(&mut self, cx: &mut Cx, progress: Progress) -> Step {
        let Progress::Found(r, _) = progress else { return Step::Wait };
        self.start_writing(cx, &r.closest, &r.stalled)
    }

    /// The lookup is done: the local copy, then the writes to the closest
    /// that answered and to those closer still that were only slow.
    fn start_writing(&mut self, cx: &mut Cx, closest: &[Contact], stalled: &[Contact]) -> Step {
        let (key, me, k) = (self.key, cx.svc.id, cx.svc.config.k);
        let near = closest.len() < k || closest.last().is_some_and(|far| me.distance(&key) < far.id.distance(&key));
        if near {
            self.store_locally(cx);
        }
        self.out.acked = usize::from(near);
        self.out.local = near;
        let calls = write_calls(me, key, &self.items, self.remove);
        let mut writers = Vec::new();
        for c in closest {
            match cx.peers.kind(&c.id) {
                PeerKind::Base => {}
                PeerKind::Extended => {
                    writers.push(Writer { peer: *c, calls: calls.clone(), next: 0, tries: 0, done: None })
                }
                PeerKind::Unknown => self.send_once(cx, c, &calls),
            }
        }
        // A contact slower than its stall threshold (far from us, or busy)
        // drops out of the lookup's result, however close to the key, and
        // readers read the key's closest first. In `simulations flash-crowd
        // --seed 7` a newcomer's write left out the key's three closest that
        // way (each farther than the threshold its few round trips had set),
        // and every read of them missed it for 20 s. They get the write too,
        // unwaited: one that has left costs a datagram, not the write's time.
        // At most k of them: replies naming many closer contacts that never
        // answer must not multiply our writes (the lookup asked each once).
        for c in stalled.iter().filter(|c| cx.peers.kind(&c.id) != PeerKind::Base).take(k) {
            self.send_once(cx, c, &calls);
        }
        self.phase = Phase::Writing(writers);
        let Phase::Writing(w) = &self.phase else { return Step::Wait };
        for i in 0..w.len() {
            self.send_next(cx, i);
        }
        self.finish_if_done()
    }

    /// Each request once, unwaited, and without the peer's id: a stock peer
    /// (one of unknown kind may be) ignores the procedure and must not be
    /// struck for it; a late answer finds the operation gone.
    fn send_once(&mut self, cx: &mut Cx, c: &Contact, calls: &[Call]) {
        for call in calls {
            self.out.sent += 1;
            let _ = cx.send(c.addr, call.clone(), None);
        }
    }

    fn store_locally(&self, cx: &mut Cx) {
        for a in &self.items {
            let load = a.load.filter(|_| !self.remove);
            let (id, version, signature) = (a.id.clone(), a.version, a.signature.clone());
            let expires_at = cx.now + a.ttl;
            let entry = ProviderEntry { id, version, expires_at, load, gone: self.remove, signature };
            cx.providers.upsert(self.key, entry, cx.now);
        }
    }

    /// Sends writer `i` its current request (a new try of it), or ends it:
    /// acknowledged when every request was, failed when tries run out.
    fn send_next(&mut self, cx: &mut Cx, i: usize) {
        let Phase::Writing(writers) = &mut self.phase else { return };
        let w = &mut writers[i];
        while w.done.is_none() {
            let Some(call) = w.calls.get(w.next) else {
                w.done = Some(true);
                self.out.acked += 1;
                return;
            };
            if w.tries >= TRIES {
                w.done = Some(false);
                return;
            }
            w.tries += 1;
            self.out.sent += 1;
            if cx.send(w.peer.addr, call.clone(), Some(w.peer.id)) {
                return;
            }
            self.out.failed += 1;
        }
    }

    /// `peer` answered its current request (`ok`: it took entries) or did not.
    fn on_write(&mut self, cx: &mut Cx, peer: Option<NodeId>, ok: bool) -> Step {
        let Phase::Writing(writers) = &mut self.phase else { return Step::Wait };
        let Some(i) = writers.iter().position(|w| Some(w.peer.id) == peer && w.done.is_none()) else {
            return Step::Wait;
        };
        if ok {
            writers[i].next += 1;
            writers[i].tries = 0;
        } else {
            // "0 accepted" (the replica's quota or bounds refused every
            // entry) is a failed write, like no answer.
            self.out.failed += 1;
        }
        self.send_next(cx, i);
        self.finish_if_done()
    }

    fn finish_if_done(&self) -> Step {
        let Phase::Writing(writers) = &self.phase else { return Step::Wait };
        if writers.iter().any(|w| w.done.is_none()) {
            return Step::Wait;
        }
        if self.quiet {
            return Step::Done(Finished::Quiet);
        }
        Step::Done(Finished::Report(Outcome::ProviderWrite(self.out)))
    }
}

impl Operation for ProviderWrite {
    fn poll(&mut self, cx: &mut Cx) -> Step {
        match &mut self.phase {
            Phase::Start => {
                let (search, progress) = Search::start(cx, self.key, LookupKind::FindNode);
                self.phase = Phase::Search(search);
                self.on_progress(cx, progress)
            }
            Phase::Search(s) => {
                let progress = s.drive(cx);
                self.on_progress(cx, progress)
            }
            Phase::Writing(_) => Step::Wait,
        }
    }

    fn on_reply(&mut self, cx: &mut Cx, reply: Reply) -> Step {
        match &mut self.phase {
            Phase::Start => Step::Wait,
            Phase::Search(s) => {
                let progress = s.on_reply(cx, reply);
                self.on_progress(cx, progress)
            }
            Phase::Writing(_) if reply.kind == RpcKind::Extension => {
                let ok = parse_write_reply(&reply.body).is_some_and(|n| n > 0);
                self.on_write(cx, reply.peer, ok)
            }
            Phase::Writing(_) => Step::Wait,
        }
    }

    fn on_failure(&mut self, cx: &mut Cx, peer: Option<NodeId>, kind: RpcKind) -> Step {
        match &mut self.phase {
            Phase::Start => Step::Wait,
            Phase::Search(s) => {
                let progress = s.on_failure(cx, peer);
                self.on_progress(cx, progress)
            }
            Phase::Writing(_) if kind == RpcKind::Extension => self.on_write(cx, peer, false),
            Phase::Writing(_) => Step::Wait,
        }
    }

    super::search_phase!();
}
