//! `provider_read`: who provides a key. A node lookup of the key, then the
//! provider set read from up to `replicas` of the closest nodes that speak
//! the extension (then nodes not yet known either way, never known stock
//! peers), merged with this node's own entries: a store lost at one
//! replica loses nothing.
//!
//! Each replica is read in parallel, not page after page: the first page
//! is the plain whole-set call, and it reports the set's size (`live`);
//! when more follows, the rest after its cursor is cut into hash shards
//! (`proto-spec/EXTENSIONS.md` §3.3) sized to about a page each, all asked
//! at once. A shard that still has more is cut again the same way. So a
//! set of a few hundred entries costs two round trips instead of one per
//! page, and every reply answers one request. When a replica's read fails,
//! or it lacks more than a fiftieth of what the merge holds, as many more
//! replicas are read once. A replica whose first page has not come within
//! the stall threshold gets a stand-in, the next closest, at once; the
//! round then neither waits for it (a replica that left would hold it for
//! the 5 s extension timeout) nor reads a second round for its failure.

use std::collections::VecDeque;
use std::time::Duration;

use super::search::{Progress, Search};
use super::{Cx, Finished, Operation, Reply, Step};
use crate::contact::Contact;
use crate::engine::providers::client::{merge, parse_page, shard_call, Page, SeenEntry};
use crate::engine::providers::wire::Shard;
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
/// The lookup before a read ends once this many closest per replica wanted
/// answered, not all k: every one of the k closest holds the set, and a
/// lookup's last answers are its slowest (after a crash, a find_node of all
/// k took 0.8-1.6 s in the simulator before the first page was asked).
const LOOKUP_PER_REPLICA: usize = 3;
/// Tries of one page request: a page lost on the way (1% loss and twenty
/// pages make that common) is asked again rather than ending the replica's
/// read, which would leave the rest of its set unread.
const PAGE_TRIES: usize = 3;
/// Most extra prefix bits one cut adds: a shard splits into at most 32.
const MAX_CUT_BITS: u32 = 5;
/// A replica that lacks more than 1/`SHORT_BY` of the merged entries is
/// read again elsewhere: replicas each miss a few late writes, which the
/// union of the others covers; one that misses many was not really among
/// the writers' closest.
const SHORT_BY: usize = 50;
impl Engine {
    /// Reads the provider set under `key` from up to `replicas` of the
    /// closest extension nodes (a second round as many more when they
    /// disagree), merged with this node's own entries.
    pub fn provider_read(&mut self, now: Time, key: Key, replicas: usize) -> QueryId {
        let op = self.alloc_op();
        let svc = &self.svc;
        let stall = svc.rtt.stall_after(svc.config.lookup_stall_min, svc.config.lookup_stall);
        let out = ProviderReadOutcome::default();
        let want = replicas.max(1);
        let lookup_k = (LOOKUP_PER_REPLICA * want).min(svc.config.k);
        let read = ProviderRead { key, want, stall, lookup_k, phase: Phase::Start, out };
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
    /// How many closest the current lookup waits for: a few per replica
    /// first, all k when those held too few extension peers.
    lookup_k: usize,
    phase: Phase,
    out: ProviderReadOutcome,
}

enum Phase {
    Start,
    Search(Search),
    Reading(Reading),
}

/// The reads of one round, and the replicas left for another.
struct Reading {
    round: usize,
    replicas: Vec<Replica>,
    rest: VecDeque<Contact>,
}

/// One replica's set, as read so far.
struct Replica {
    contact: Contact,
    /// Its shards being read (the whole set at first).
    chains: Vec<Chain>,
    /// Pages asked of it.
    pages: usize,
    /// Entries it reported (merged as they arrive).
    seen: usize,
    /// A page of it arrived.
    heard: bool,
    /// Its first page stalled and another replica was asked in its stead.
    stood_in: bool,
}

/// The pages of one shard of a replica's set, one after the other.
struct Chain {
    shard: Shard,
    /// Cursor of the page asked for last.
    after: Option<String>,
    /// Entries of this shard read so far.
    got: usize,
    /// Tries of the page asked for last.
    tries: usize,
    /// When it was last asked.
    asked_at: Time,
    /// `Some(complete)` once it ended.
    done: Option<bool>,
}

impl Chain {
    fn new(shard: Shard, after: Option<String>, got: usize, now: Time) -> Chain {
        Chain { shard, after, got, tries: 0, asked_at: now, done: None }
    }

    /// Still reading, with a try of its page left.
    fn may_resend(&self) -> bool {
        self.done.is_none() && self.tries < PAGE_TRIES
    }
}

impl Replica {
    fn new(contact: Contact, now: Time) -> Replica {
        let chains = vec![Chain::new(Shard::ALL, None, 0, now)];
        Replica { contact, chains, pages: 0, seen: 0, heard: false, stood_in: false }
    }

    fn done(&self) -> bool {
        self.chains.iter().all(|c| c.done.is_some())
    }

    fn complete(&self) -> bool {
        self.chains.iter().all(|c| c.done == Some(true))
    }

    /// A replica whose stand-in covers it: the round neither waits for it
    /// nor counts its failure.
    fn replaced(&self) -> bool {
        // Not one still being read after it answered after all.
        let reading = self.heard && !self.done();
        self.stood_in && !self.complete() && !reading
    }

    /// The chain a page of `shard` answers, or (`None`: a failure, which
    /// does not say which) the pending one asked longest ago.
    fn chain_for(&self, shard: Option<Shard>) -> Option<usize> {
        let pending = self.chains.iter().enumerate().filter(|(_, c)| c.done.is_none());
        match shard {
            Some(s) => pending.filter(|(_, c)| c.shard == s).map(|(i, _)| i).next(),
            None => pending.min_by_key(|(_, c)| c.asked_at).map(|(i, _)| i),
        }
    }
}

/// How many more prefix bits the rest of a shard of `bits` bits needs so
/// that each part fits about one page, from the set's size `live`, the
/// entries `got` from the shard so far and the size `per_page` of the
/// page just read. Shards of a hash are uneven, so each part is planned at
/// three quarters of a page.
fn cut_bits(live: u64, bits: u32, got: usize, per_page: usize) -> u32 {
    let expected = (live >> bits) as usize;
    let rest = expected.saturating_sub(got).max(1);
    let room = (per_page * 3 / 4).max(1);
    let parts = rest.div_ceil(room);
    let more = usize::BITS - parts.saturating_sub(1).leading_zeros();
    more.min(MAX_CUT_BITS)
}

impl ProviderRead {
    fn on_progress(&mut self, cx: &mut Cx, progress: Progress) -> Step {
        let Progress::Found(r, stats) = progress else { return Step::Wait };
        self.out.stats.queried += stats.queried;
        self.out.stats.failed += stats.failed;
        let extended = r.closest.iter().filter(|c| cx.peers.kind(&c.id) == PeerKind::Extended).count();
        // Among stock peers the few closest may hold no extension peer at
        // all: then the lookup goes on to all k rather than reading from
        // peers that may never answer.
        if extended < self.want && self.lookup_k < cx.svc.config.k {
            self.lookup_k = cx.svc.config.k;
            return self.start_search(cx);
        }
        self.start_reading(cx, &r.closest, stats)
    }

    fn start_search(&mut self, cx: &mut Cx) -> Step {
        let alpha = cx.svc.config.alpha;
        let (search, progress) = Search::start_sized(cx, self.key, LookupKind::FindNode, alpha, self.lookup_k);
        self.phase = Phase::Search(search);
        self.on_progress(cx, progress)
    }

    /// The lookup is done: this node's own entries, then the first round.
    fn start_reading(&mut self, cx: &mut Cx, closest: &[Contact], stats: LookupStats) -> Step {
        // Queries of every lookup this read ran (counted in `on_progress`).
        let (queried, failed) = (self.out.stats.queried, self.out.stats.failed);
        self.out.stats = LookupStats { queried, failed, ..stats };
        let local = local_entries(cx, &self.key);
        self.out.replicas = usize::from(!local.is_empty());
        for e in local {
            merge(&mut self.out.entries, e);
        }
        let peers = cx.peers;
        let pick = |k: PeerKind| closest.iter().filter(move |c| peers.kind(&c.id) == k).copied();
        // Extension peers first, then peers not known either way: a
        // reader new to the key's neighbourhood knows few kinds yet, and
        // one replica alone cannot show what it lacks.
        let rest: VecDeque<Contact> = pick(PeerKind::Extended).chain(pick(PeerKind::Unknown)).collect();
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
        let now = cx.now;
        r.replicas = r.rest.drain(..take).map(|contact| Replica::new(contact, now)).collect();
        for i in 0..r.replicas.len() {
            self.ask(cx, i, 0);
        }
        self.round_done(cx)
    }

    /// Asks replica `i` for the next page of its chain `j`; ends the chain
    /// incomplete if that cannot be sent.
    fn ask(&mut self, cx: &mut Cx, i: usize, j: usize) {
        let Phase::Reading(r) = &mut self.phase else { return };
        let rep = &mut r.replicas[i];
        let chain = &mut rep.chains[j];
        let call = shard_call(cx.svc.id, self.key, chain.after.as_deref(), MAX_ENTRIES_PER_CALL, chain.shard);
        rep.pages += usize::from(chain.tries == 0);
        chain.tries += 1;
        chain.asked_at = cx.now;
        self.out.pages_sent += 1;
        // With the peer's id: a replica that does not answer is struck
        // like any contact that times out (and checked by a ping), so the
        // next reads and lookups stop waiting on it.
        if !cx.send(rep.contact.addr, call, Some(rep.contact.id)) {
            self.out.pages_failed += 1;
            chain.done = Some(false);
        }
    }

    /// A page (or its failure, `None`) from `peer`.
    fn on_page(&mut self, cx: &mut Cx, peer: Option<NodeId>, body: Option<&crate::wire::Value>) -> Step {
        let key = self.key;
        let Phase::Reading(r) = &mut self.phase else { return Step::Wait };
        let Some(i) = r.replicas.iter().position(|p| Some(p.contact.id) == peer && !p.done()) else {
            return Step::Wait;
        };
        let page = body.and_then(|v| parse_page(v, &key));
        let shard = page.as_ref().map(|p| p.shard.unwrap_or(Shard::ALL));
        let Some(j) = r.replicas[i].chain_for(shard) else { return Step::Wait };
        let chain = &mut r.replicas[i].chains[j];
        // An answer to an earlier try of a page already read (its entries
        // are not after the cursor): the current page is still coming.
        if page.as_ref().is_some_and(|p| p.entries.first().is_some_and(|e| Some(&e.id) <= chain.after.as_ref())) {
            return Step::Wait;
        }
        let Some(page) = page else {
            self.out.pages_failed += 1;
            if body.is_none() && chain.tries < PAGE_TRIES {
                self.ask(cx, i, j);
            } else {
                chain.done = Some(false);
            }
            return self.round_done(cx);
        };
        self.on_chain_page(cx, i, j, page);
        self.round_done(cx)
    }

    /// Merges a page of chain `j` of replica `i` and asks what follows it:
    /// the next page, or the rest cut into shards asked at once.
    fn on_chain_page(&mut self, cx: &mut Cx, i: usize, j: usize, page: Page) {
        let Phase::Reading(r) = &mut self.phase else { return };
        let rep = &mut r.replicas[i];
        let n = page.entries.len();
        rep.seen += n;
        rep.heard = true;
        for e in page.entries {
            merge(&mut self.out.entries, e);
        }
        let pages = rep.pages;
        let chain = &mut rep.chains[j];
        chain.got += n;
        chain.tries = 0;
        let next = match page.next {
            None => {
                chain.done = Some(true);
                return;
            }
            // A cursor that does not move, or too many pages: incomplete.
            Some(next) if chain.after.as_ref() == Some(&next) || pages >= MAX_PAGES => {
                chain.done = Some(false);
                return;
            }
            Some(next) => next,
        };
        let more = cut_bits(page.live, chain.shard.bits, chain.got, n);
        let parts: Vec<Chain> = chain.shard.split(more).map(|s| Chain::new(s, Some(next.clone()), 0, cx.now)).collect();
        let first = rep.chains.len();
        // The chain read so far is replaced by its parts (a part of the
        // same shard when no cut is due).
        rep.chains[j].done = Some(true);
        rep.chains.extend(parts);
        for k in first..rep.chains.len() {
            self.ask(cx, i, k);
        }
    }

    /// When every replica of the round is done: counts the complete ones,
    /// and starts a second round if one failed or came up short.
    fn round_done(&mut self, cx: &mut Cx) -> Step {
        let Phase::Reading(r) = &self.phase else { return Step::Wait };
        if r.replicas.iter().any(|p| !p.done() && !p.replaced()) {
            return Step::Wait;
        }
        let merged = self.out.entries.len();
        let complete = r.replicas.iter().filter(|p| p.complete()).count();
        let short = |p: &Replica| !p.complete() || p.seen + merged / SHORT_BY < merged;
        let disagree = r.replicas.iter().filter(|p| !p.replaced()).any(short);
        self.out.replicas += complete;
        if disagree {
            self.next_round(cx)
        } else {
            self.finish()
        }
    }

    /// Asks again for the pages that stalled (their requests stay out: the
    /// first answer is used), and asks a stand-in for each replica whose
    /// first page stalled: one that has left would hold the round for the
    /// extension timeout (5 s), then bring a second round.
    fn resend_stalled(&mut self, cx: &mut Cx) -> Step {
        self.stand_in_for_silent(cx);
        let Phase::Reading(r) = &self.phase else { return Step::Wait };
        let stall = self.stall;
        let now = cx.now;
        let stalled: Vec<(usize, usize)> = r
            .replicas
            .iter()
            .enumerate()
            .flat_map(|(i, p)| p.chains.iter().enumerate().map(move |(j, c)| (i, j, c)))
            .filter(|(_, _, c)| c.may_resend() && c.asked_at + stall <= now)
            .map(|(i, j, _)| (i, j))
            .collect();
        for (i, j) in stalled {
            self.ask(cx, i, j);
        }
        self.round_done(cx)
    }

    /// Takes the next replica in line for each one not heard from within
    /// the stall threshold of its first page.
    fn stand_in_for_silent(&mut self, cx: &mut Cx) {
        let Phase::Reading(r) = &mut self.phase else { return };
        let (stall, now) = (self.stall, cx.now);
        let silent = |p: &Replica| !p.heard && !p.stood_in && !p.done() && p.chains[0].asked_at + stall <= now;
        let mut added = Vec::new();
        for i in 0..r.replicas.len() {
            if !silent(&r.replicas[i]) {
                continue;
            }
            let Some(next) = r.rest.pop_front() else { break };
            r.replicas[i].stood_in = true;
            r.replicas.push(Replica::new(next, now));
            added.push(r.replicas.len() - 1);
        }
        for i in added {
            self.ask(cx, i, 0);
        }
    }

    fn finish(&mut self) -> Step {
        Step::Done(Finished::Report(Outcome::ProviderRead(std::mem::take(&mut self.out))))
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
            Phase::Start => self.start_search(cx),
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
            Phase::Reading(r) => {
                let chains = r.replicas.iter().flat_map(|p| p.chains.iter());
                chains.filter(|c| c.may_resend()).map(|c| c.asked_at + self.stall).min()
            }
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
