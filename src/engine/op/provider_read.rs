//! `provider_read`: who provides a key. A node lookup of the key, then the
//! provider set read page by page from up to `replicas` of the closest nodes
//! that speak the extension (falling back to nodes not yet known either way,
//! never to known stock peers), merged with this node's own entries: a store
//! lost at one replica loses nothing. When the replicas read disagree (a page
//! failed, or one lacked entries the merge has), as many more are read once.

use std::collections::VecDeque;
use std::time::Duration;

use super::search::{Progress, Search};
use super::{Cx, Finished, Operation, Reply, Step};
use crate::contact::Contact;
use crate::engine::providers::client::{list_call, merge, parse_page, SeenEntry};
use crate::engine::providers::MAX_ENTRIES_PER_CALL;
use crate::engine::{Engine, LookupStats, Outcome, PeerKind, ProviderReadOutcome, QueryId};
use crate::id::{Key, NodeId};
use crate::lookup::LookupKind;
use crate::rpc::RpcKind;
use crate::time::Time;

/// Most pages read from one replica (a full set of 10,000 short ids takes
/// a few hundred).
pub(in crate::engine) const MAX_PAGES: usize = 2_000;
/// Read rounds: the first, and one more when its replicas disagree.
const ROUNDS: usize = 2;
/// Tries of one page request: a page lost on the way (1% loss and twenty
/// pages make that common) is asked again rather than ending the replica's
/// read, which would leave the rest of its set unread.
const PAGE_TRIES: usize = 3;

impl Engine {
    /// Reads the provider set under `key` from up to `replicas` of the
    /// closest extension nodes (a second round as many more when they
    /// disagree), merged with this node's own entries.
    pub fn provider_read(&mut self, now: Time, key: Key, replicas: usize) -> QueryId {
        let op = self.alloc_op();
        let svc = &self.svc;
        let stall = svc.rtt.stall_after(svc.config.lookup_stall_min, svc.config.lookup_stall);
        let out = ProviderReadOutcome::default();
        let read = ProviderRead { key, want: replicas.max(1), stall, phase: Phase::Start, out };
        self.launch(now, op, Box::new(read));
        op
    }
}

/// A provider read in progress.
struct ProviderRead {
    key: Key,
    /// Replicas read per round.
    want: usize,
    /// How long a page may take before it is asked again (the lookup's
    /// stall threshold, from measured round trips): a lost page then costs
    /// a round trip or two, not the extension timeout.
    stall: Duration,
    phase: Phase,
    out: ProviderReadOutcome,
}

enum Phase {
    Start,
    Search(Search),
    Reading(Reading),
}

/// The paged reads of one round, and the replicas left for another.
struct Reading {
    round: usize,
    replicas: Vec<Replica>,
    rest: VecDeque<Contact>,
}

/// One replica's set, as read so far.
struct Replica {
    contact: Contact,
    /// Cursor of the page asked for last.
    after: Option<String>,
    pages: usize,
    /// Tries of the page asked for last.
    tries: usize,
    /// When it was last asked.
    asked_at: Time,
    /// Entries it reported (merged as they arrive).
    seen: usize,
    /// `Some(complete)` once its reads ended.
    done: Option<bool>,
}

impl ProviderRead {
    fn on_progress(&mut self, cx: &mut Cx, progress: Progress) -> Step {
        let Progress::Found(r, stats) = progress else { return Step::Wait };
        self.start_reading(cx, &r.closest, stats)
    }

    /// The lookup is done: this node's own entries, then the first round.
    fn start_reading(&mut self, cx: &mut Cx, closest: &[Contact], stats: LookupStats) -> Step {
        self.out.stats = stats;
        let local = local_entries(cx, &self.key);
        self.out.replicas = usize::from(!local.is_empty());
        for e in local {
            merge(&mut self.out.entries, e);
        }
        let peers = cx.peers;
        let pick = |k: PeerKind| closest.iter().filter(move |c| peers.kind(&c.id) == k).copied();
        let mut rest: VecDeque<Contact> = pick(PeerKind::Extended).collect();
        if rest.is_empty() {
            rest = pick(PeerKind::Unknown).collect();
        }
        self.phase = Phase::Reading(Reading { round: 0, replicas: Vec::new(), rest });
        self.next_round(cx)
    }

    /// Starts the next round, or finishes when none is due.
    fn next_round(&mut self, cx: &mut Cx) -> Step {
        let Phase::Reading(r) = &mut self.phase else { return Step::Wait };
        if r.round >= ROUNDS || r.rest.is_empty() {
            return self.finish();
        }
        r.round += 1;
        let take = self.want.min(r.rest.len());
        r.replicas = r
            .rest
            .drain(..take)
            .map(|contact| Replica { contact, after: None, pages: 0, tries: 0, asked_at: cx.now, seen: 0, done: None })
            .collect();
        for i in 0..r.replicas.len() {
            self.ask_page(cx, i);
        }
        self.round_done(cx)
    }

    /// Asks replica `i` for its next page; marks it incomplete if that
    /// cannot be sent.
    fn ask_page(&mut self, cx: &mut Cx, i: usize) {
        let Phase::Reading(r) = &mut self.phase else { return };
        let rep = &mut r.replicas[i];
        let call = list_call(cx.svc.id, self.key, rep.after.as_deref(), MAX_ENTRIES_PER_CALL);
        rep.pages += usize::from(rep.tries == 0);
        rep.tries += 1;
        rep.asked_at = cx.now;
        self.out.pages_sent += 1;
        // With the peer's id: a replica that does not answer is struck
        // like any contact that times out (and checked by a ping), so the
        // next reads and lookups stop waiting on it.
        if !cx.send(rep.contact.addr, call, Some(rep.contact.id)) {
            self.out.pages_failed += 1;
            rep.done = Some(false);
        }
    }

    /// A page (or its failure, `None`) from `peer`.
    fn on_page(&mut self, cx: &mut Cx, peer: Option<NodeId>, body: Option<&crate::wire::Value>) -> Step {
        let key = self.key;
        let Phase::Reading(r) = &mut self.phase else { return Step::Wait };
        let Some(i) = r.replicas.iter().position(|p| Some(p.contact.id) == peer && p.done.is_none()) else {
            return Step::Wait;
        };
        let rep = &mut r.replicas[i];
        let page = body.and_then(|v| parse_page(v, &key));
        // An answer to an earlier try of a page already read (its entries
        // are not after the cursor): the current page is still coming.
        if page.as_ref().is_some_and(|p| p.entries.first().is_some_and(|e| Some(&e.id) <= rep.after.as_ref())) {
            return Step::Wait;
        }
        let Some(page) = page else {
            self.out.pages_failed += 1;
            if body.is_none() && rep.tries < PAGE_TRIES {
                self.ask_page(cx, i);
                return self.round_done(cx);
            }
            rep.done = Some(false);
            return self.round_done(cx);
        };
        rep.tries = 0;
        rep.seen += page.entries.len();
        for e in page.entries {
            merge(&mut self.out.entries, e);
        }
        match page.next {
            Some(next) if rep.after.as_ref() != Some(&next) && rep.pages < MAX_PAGES => {
                rep.after = Some(next);
                self.ask_page(cx, i);
            }
            // A cursor that does not move, or too many pages: incomplete.
            Some(_) => rep.done = Some(false),
            None => rep.done = Some(true),
        }
        self.round_done(cx)
    }

    /// When every replica of the round is done: counts the complete ones,
    /// and starts a second round if they disagreed.
    fn round_done(&mut self, cx: &mut Cx) -> Step {
        let Phase::Reading(r) = &self.phase else { return Step::Wait };
        if r.replicas.iter().any(|p| p.done.is_none()) {
            return Step::Wait;
        }
        let merged = self.out.entries.len();
        let complete = r.replicas.iter().filter(|p| p.done == Some(true)).count();
        let disagree = r.replicas.iter().any(|p| p.done != Some(true) || p.seen != merged);
        self.out.replicas += complete;
        if disagree {
            self.next_round(cx)
        } else {
            self.finish()
        }
    }

    /// Asks again for the pages that stalled (their requests stay out: the
    /// first answer is used).
    fn resend_stalled(&mut self, cx: &mut Cx) -> Step {
        let Phase::Reading(r) = &self.phase else { return Step::Wait };
        let stalled: Vec<usize> = (0..r.replicas.len())
            .filter(|&i| r.replicas[i].may_resend() && r.replicas[i].asked_at + self.stall <= cx.now)
            .collect();
        for i in stalled {
            self.ask_page(cx, i);
        }
        self.round_done(cx)
    }

    fn finish(&mut self) -> Step {
        Step::Done(Finished::Report(Outcome::ProviderRead(std::mem::take(&mut self.out))))
    }
}

impl Replica {
    /// Still reading, with a try of its page left.
    fn may_resend(&self) -> bool {
        self.done.is_none() && self.tries < PAGE_TRIES
    }
}

/// This node's own entries under `key`, as a replica would report them.
fn local_entries(cx: &Cx, key: &Key) -> Vec<SeenEntry> {
    let now = cx.now;
    cx.providers
        .range(key, None, now)
        .map(|p| SeenEntry {
            id: p.id.clone(),
            version: p.version,
            ttl: p.expires_at.saturating_since(now),
            load: p.load,
            gone: p.gone,
            signer: p.signature.as_ref().map(|s| s.public_key),
        })
        .collect()
}

impl Operation for ProviderRead {
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
            Phase::Reading(_) => self.resend_stalled(cx),
        }
    }

    fn next_deadline(&self) -> Option<Time> {
        match &self.phase {
            Phase::Search(s) => s.next_stall(),
            Phase::Reading(r) => r.replicas.iter().filter(|p| p.may_resend()).map(|p| p.asked_at + self.stall).min(),
            Phase::Start => None,
        }
    }

    fn on_reply(&mut self, cx: &mut Cx, reply: Reply) -> Step {
        match &mut self.phase {
            Phase::Start => Step::Wait,
            Phase::Search(s) => {
                let progress = s.on_reply(cx, reply);
                self.on_progress(cx, progress)
            }
            Phase::Reading(_) if reply.kind == RpcKind::Extension => self.on_page(cx, reply.peer, Some(&reply.body)),
            Phase::Reading(_) => Step::Wait,
        }
    }

    fn on_failure(&mut self, cx: &mut Cx, peer: Option<NodeId>, kind: RpcKind) -> Step {
        match &mut self.phase {
            Phase::Start => Step::Wait,
            Phase::Search(s) => {
                let progress = s.on_failure(cx, peer);
                self.on_progress(cx, progress)
            }
            Phase::Reading(_) if kind == RpcKind::Extension => self.on_page(cx, peer, None),
            Phase::Reading(_) => Step::Wait,
        }
    }

    super::search_phase!();
}
