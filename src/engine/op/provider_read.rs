//! `provider_read`: who provides a key. A node lookup of the key, then the
//! provider set read from up to `replicas` of the closest nodes that speak
//! the extension (then nodes not yet known either way, never known stock
//! peers), merged with this node's own entries: a store lost at one
//! replica loses nothing.
//!
//! When that lookup's few closest hold too few known to speak the
//! extension, it looks up all k, and meanwhile asks the others what they
//! speak: enough answers before that lookup ends start the read from the
//! few (see [`kinds`]).
//!
//! The read does not wait for the lookup to end. Every one of the key's k
//! closest holds the set, so once the lookup knows `replicas` usable
//! contacts two bits deeper than its rank cap (see [`crate::lookup`]), or
//! twice as many one bit deeper once an extension peer among those
//! answered (around some keys fewer are that deep at all), the read starts
//! at once, from the nearest of the contacts it knows in the key's closest
//! half (one bit deeper), and the lookup is dropped: its
//! last rounds wait for the slowest of the closest, about a second on a
//! wide-area network. Such an early read falls back to the whole lookup
//! when it runs out of replicas, finds nothing, or meets an entry whose
//! time ran out at every replica read (its provider's refreshes went to
//! other nodes, so these were not the writers' closest).
//!
//! Each replica is read in parallel, not page after page: the first page
//! is the plain whole-set call, and it reports the set's size (`live`);
//! when more follows, the rest after its cursor is cut into hash shards
//! (`proto-spec/EXTENSIONS.md` §3.3) sized to about a page each, all asked
//! at once. A shard that still has more is cut again the same way. Once one
//! replica reported the size, the others (and every replica asked later)
//! are asked for all their shards at once, without waiting for their first
//! page: one round trip each instead of two. The size is also asked during
//! the lookup, of the nearest extension peer it knows in the key's closest
//! half (see [`sizer`]), so that a read often starts with it. Every reply
//! answers one request. A page not answered within a few of its replica's own round
//! trips is asked again, up to three times in all; at a replica that never
//! answered, one whose last try went unanswered as long ends incomplete
//! then, not at the requests' timeout (2 s), like a failed one. Pages of a
//! replica 120 ms or more away are each asked twice at once (hedged): the
//! read ends with the last page of the slowest replica it waits for, and a
//! lost one there would cost another long round trip.
//!
//! A round asks one replica more than it wants
//! ([`Config::provider_read_spare`](crate::engine::Config)), two more when
//! one of those it would ask has no measured round trip (replicas go
//! nearest first, one never measured ranked at the node's round trip to
//! everyone: the choice cannot tell how far it is), and ends once
//! as many as it wants read complete, each within a fiftieth of the merge,
//! or once every shard was read to its end at as many (see [`quorum`]), or
//! once as many reported the fingerprint of the providers merged, or of
//! all of them but some about to expire (every page carries its
//! replica's, `proto-spec/EXTENSIONS.md` §3.3; see [`copies`]): the
//! slowest replica, or one whose page was lost (another of its round
//! trips), is not waited for. What its pages brought so far
//! stays merged. With fingerprints a replica's part is often one page: the
//! read waits for the whole set from the nearest replicas, between them,
//! and for any one page of the third, not for all of the third's pages.
//! A round in which a replica was silent reads them all. Beside its
//! replicas a round races up to
//! [`Config::provider_read_racers`](crate::engine::Config) never-measured
//! ones further in line, asked their first page only: one that answers
//! before the round heard from as many replicas as it needs is nearer
//! than one of them and is read to its end too (see `take_racers`); one
//! silent past its stall is given up, and the round reads them all.
//!
//! When a replica's read fails, or it lacks more than a fiftieth of what
//! the merge holds, as many more replicas are read once. A replica that
//! reports a set more than a fiftieth smaller than another's, or whose
//! first page has not come within the stall threshold, gets a stand-in,
//! the next in line, at once; the round then neither waits for it (a
//! replica that left would hold it for the 5 s extension timeout) nor
//! reads a second round for it.
//!
//! A read of a key read within two minutes skips the lookup: it asks the
//! replicas the last lookup found, with the set's size known, so every
//! replica's shards go at once (see [`memory`]).

mod copies;
mod kinds;
pub(in crate::engine) mod memory;
mod quorum;
mod recall;
mod replica;
mod sizer;

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use super::search::{Progress, Search};
use super::{Cx, Finished, Operation, Reply, Step};
use crate::contact::Contact;
use crate::engine::providers::client::{merge, parse_page, shard_call, Page, SeenEntry};
use crate::engine::providers::wire::{SetPrint, Shard};
use crate::engine::providers::MAX_ENTRIES_PER_CALL;
use crate::engine::{Engine, LookupStats, Outcome, PeerKind, ProviderReadOutcome, QueryId};
use crate::id::{Key, NodeId};
use crate::lookup::{LookupKind, LookupResult};
use crate::proximity::RttBook;
use crate::rpc::RpcKind;
use crate::time::Time;
use copies::{copies_agree, copies_of_merge};
use kinds::Few;
use memory::Remembered;
use replica::{cut_bits, Chain, Hint, Replica, StoodIn, PAGE_TRIES};
use sizer::Sizer;

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
/// A replica that lacks more than 1/`SHORT_BY` of the merged entries is
/// read again elsewhere: replicas each miss a few late writes, which the
/// union of the others covers; one that misses many was not really among
/// the writers' closest.
const SHORT_BY: usize = 50;
/// Floor of a page's stall threshold at a replica that answered: a
/// duplicate page request costs one datagram, a late re-ask a round trip.
const PAGE_STALL_MIN: Duration = Duration::from_millis(50);
/// Round trip from which a replica's pages are each asked twice at once.
/// In the simulator's wide-area model (`simulations steady --seed 1..3`)
/// this took discover p50 down by 10-16 % and p95 by 9-36 % for 22-26 %
/// more messages per discover; asking every page twice took p50 down by
/// 25-32 % for twice the messages, and hedging only first pages gained
/// nothing.
const HEDGE_RTT: Duration = Duration::from_millis(120);
/// Bits past the lookup's rank cap that as many contacts as replicas wanted
/// must share with the key for the read to start before the lookup ends.
const EARLY_DEPTH: usize = 2;
/// Contacts of the key's closest half per replica wanted that start an
/// early read too, once an extension peer among them answered (see
/// `read_early`).
const HALF_PER_REPLICA: usize = 2;
/// Bits past the rank cap of the contacts an early read takes its replicas
/// from, nearest first, and remembers for the next read: about the key's
/// closest half, a wider choice of near replicas than the few deep enough
/// to start it (see README, "Replicas from the key's closest half").
const CHOICE_DEPTH: usize = 1;
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
        let memory = self.read_memory.recall(&key, now);
        let read = ProviderRead {
            key,
            want,
            stall,
            lookup_k,
            early: true,
            started: now,
            hint: memory.as_ref().and_then(|m| m.hint),
            memory,
            found_at: None,
            pool: Vec::new(),
            known: Vec::new(),
            probe: None,
            sizer: Sizer::Unsent,
            asked: Vec::new(),
            few: None,
            phase: Phase::Start,
            out,
            merged_print: SetPrint::default(),
        };
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
    /// Reading may start before the lookup ends (see `read_early`); off
    /// once an early read found nothing and the full lookup runs.
    early: bool,
    /// When the read began: the lookup part of its time is reported.
    started: Time,
    /// The set's size from the largest first page so far (or remembered).
    hint: Option<Hint>,
    /// The last read of the key, taken at the start: read without a lookup
    /// when it holds replicas.
    memory: Option<Remembered>,
    /// When this read's lookup found its replicas (none: it ran none).
    found_at: Option<Time>,
    /// Contacts the lookup found among the key's closest, remembered for
    /// the next read besides the replicas read.
    pool: Vec<Contact>,
    /// A read from memory: the replicas remembered, and the one asked for
    /// its closest to the key, until it answers.
    known: Vec<NodeId>,
    probe: Option<NodeId>,
    /// The set's size asked during the lookup (see [`sizer`]).
    sizer: Sizer,
    /// Replicas asked so far (a read after an early one skips them).
    asked: Vec<NodeId>,
    /// The few closest a first lookup found, too few of them known to speak
    /// the extension, while the lookup of all k runs.
    few: Option<Few>,
    phase: Phase,
    out: ProviderReadOutcome,
    /// The fingerprint of the merged entries (see [`SetPrint`]).
    merged_print: SetPrint,
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

impl ProviderRead {
    fn on_progress(&mut self, cx: &mut Cx, progress: Progress) -> Step {
        let Progress::Found(r, stats) = progress else { return self.read_early(cx) };
        self.out.stats.queried += stats.queried;
        self.out.stats.failed += stats.failed;
        // The lookup of all k ended before the few closest were known.
        self.few = None;
        let extended = r.closest.iter().filter(|c| cx.peers.kind(&c.id) == PeerKind::Extended).count();
        // Among stock peers the few closest may hold no extension peer at
        // all: then the lookup goes on to all k rather than reading from
        // peers that may never answer. A reader new to the neighbourhood
        // may only not know their kinds yet: they are asked meanwhile, and
        // whichever comes first, enough answers or the lookup's end, starts
        // the read (see `kinds`).
        if extended < self.want && self.lookup_k < cx.svc.config.k {
            self.few = Some(Few::ask(cx, r, stats));
            self.lookup_k = cx.svc.config.k;
            return self.start_search(cx);
        }
        // A read after the whole lookup is final, whatever it finds.
        self.early = false;
        self.read_found(cx, &r, stats)
    }

    /// Reads from the closest a finished lookup found.
    fn read_found(&mut self, cx: &mut Cx, r: &LookupResult, stats: LookupStats) -> Step {
        self.found_at = Some(cx.now);
        let peers = cx.peers;
        let pick = |k: PeerKind| r.closest.iter().filter(move |c| peers.kind(&c.id) == k).copied();
        // Extension peers first, then peers not known either way: a
        // reader new to the key's neighbourhood knows few kinds yet, and
        // one replica alone cannot show what it lacks.
        let order: Vec<Contact> = pick(PeerKind::Extended).chain(pick(PeerKind::Unknown)).collect();
        self.pool.clone_from(&order);
        self.start_reading(cx, order, stats)
    }

    /// Starts reading before the lookup ends, once it knows `want`
    /// extension peers deep enough to be among the key's closest (every
    /// one of which holds the set), or twice as many in the key's closest
    /// half after one of those answered: nearest first. The lookup's last
    /// rounds, which wait for the slowest of the k closest, are not waited
    /// for.
    fn read_early(&mut self, cx: &mut Cx) -> Step {
        if let Some(step) = self.read_few_if_known(cx) {
            return step;
        }
        let Phase::Search(s) = &self.phase else { return Step::Wait };
        if !self.early {
            return Step::Wait;
        }
        let peers = cx.peers;
        let usable = |c: &Contact| peers.kind(&c.id) != PeerKind::Base;
        // Or as many times `HALF_PER_REPLICA` in the key's closest half, once
        // an extension peer among those answered (its own view of the
        // neighbourhood named no more deep ones, and a stock neighbourhood
        // is not read from blindly): around some keys fewer than `want`
        // nodes are that deep at all, and the read then waited for the
        // lookup's end (a fifth of workers' cold reads in `simulations
        // steady --seed 1`, 850 ms p50).
        let deep_enough = s.deep(EARLY_DEPTH).filter(|(c, _)| usable(c)).count() >= self.want;
        let half_enough = s.answered_deep(CHOICE_DEPTH).any(|c| peers.kind(&c.id) == PeerKind::Extended)
            && s.deep(CHOICE_DEPTH).filter(|(c, _)| usable(c)).count() >= HALF_PER_REPLICA * self.want;
        if !deep_enough && !half_enough {
            self.ask_size(cx);
            return Step::Wait;
        }
        // The replicas from the key's closest half, not only those deep
        // enough to start: the read waits for its third nearest, and a wider
        // choice holds nearer ones.
        let mut deep: Vec<_> = s.deep(CHOICE_DEPTH).filter(|(c, _)| usable(c)).collect();
        deep.sort_by_key(|(c, rtt)| read_rank(cx, c, *rtt));
        let order: Vec<Contact> = deep.into_iter().map(|(c, _)| c).collect();
        let stats = s.stats_so_far(cx.now);
        self.pool = order.clone();
        self.found_at = Some(cx.now);
        self.out.stats.queried += stats.queried;
        self.out.stats.failed += stats.failed;
        self.start_reading(cx, order, stats)
    }

    fn start_search(&mut self, cx: &mut Cx) -> Step {
        let alpha = cx.svc.config.alpha;
        let (search, progress) = Search::start_sized(cx, self.key, LookupKind::FindNode, alpha, self.lookup_k);
        self.phase = Phase::Search(search);
        self.on_progress(cx, progress)
    }

    /// The lookup is done: this node's own entries, then the first round.
    /// The lookup is done (or far enough): this node's own entries, then
    /// the first round, from replicas in `order`.
    fn start_reading(&mut self, cx: &mut Cx, order: Vec<Contact>, stats: LookupStats) -> Step {
        // Queries of every lookup this read ran (counted in `on_progress`).
        let (queried, failed) = (self.out.stats.queried, self.out.stats.failed);
        let duration = cx.now.saturating_since(self.started);
        self.out.stats = LookupStats { queried, failed, duration, ..stats };
        // Once: a read after an early one keeps what that one merged.
        if self.asked.is_empty() {
            let local = local_entries(cx, &self.key);
            self.out.replicas = usize::from(!local.is_empty());
            for e in local {
                merge_printed(&mut self.out.entries, &mut self.merged_print, e);
            }
        }
        let asked = &self.asked;
        let rest: VecDeque<Contact> = order.into_iter().filter(|c| !asked.contains(&c.id)).collect();
        self.phase = Phase::Reading(Reading { round: 0, replicas: Vec::new(), rest });
        self.next_round(cx)
    }

    /// Starts the next round, or finishes when none is due.
    fn next_round(&mut self, cx: &mut Cx) -> Step {
        let Phase::Reading(r) = &mut self.phase else { return Step::Wait };
        if r.round < ROUNDS && r.rest.is_empty() && self.early {
            // An early read ran out of replicas it knows of: the whole lookup finds more.
            return self.fall_back(cx);
        }
        if r.round >= ROUNDS || r.rest.is_empty() {
            return self.end(cx);
        }
        r.round += 1;
        self.out.rounds = r.round;
        // A spare: the round ends once `want` read complete and agree
        // (see `covered`). A read waited on its slowest replica, or on a
        // page asked again there (four discovers in five in `simulations
        // steady --seed 1`, its report's "asked a page again" row), for a
        // round trip or two more. Ending at two of three instead lost
        // entries only the third held (partition seed 5: success 99.83 ->
        // 99.16 %); three of four keeps every entry two of the four hold.
        // One more when a replica it would ask was never measured: the
        // nearest-first choice cannot tell how far it is, and the round waits
        // for the third fastest (random workers' cold reads mostly).
        let spare = cx.svc.config.provider_read_spare;
        let unmeasured = r.rest.iter().take(self.want + spare).any(|c| cx.svc.book.smoothed(&c.addr).is_none());
        let take = (self.want + spare + usize::from(unmeasured && spare > 0)).min(r.rest.len());
        let (now, stall, hint) = (cx.now, self.stall, self.hint);
        r.replicas = r.rest.drain(..take).map(|contact| Replica::new(contact, now, stall, hint)).collect();
        let racers = take_racers(&mut r.rest, cx.svc.config.provider_read_racers, &cx.svc.book);
        r.replicas.extend(racers.into_iter().map(|contact| Replica::racer(contact, now, stall)));
        let Phase::Reading(r) = &self.phase else { return Step::Wait };
        let (ids, n): (Vec<NodeId>, usize) = (r.replicas.iter().map(|p| p.contact.id).collect(), r.replicas.len());
        self.asked.extend(ids);
        for i in 0..n {
            self.ask_all(cx, i);
        }
        self.round_done(cx)
    }

    /// Asks replica `i` for the first page of each of its chains still
    /// being read.
    fn ask_all(&mut self, cx: &mut Cx, i: usize) {
        let Phase::Reading(r) = &self.phase else { return };
        let pending: Vec<usize> =
            (0..r.replicas[i].chains.len()).filter(|&j| r.replicas[i].chains[j].done.is_none()).collect();
        for j in pending {
            self.ask(cx, i, j);
        }
    }

    /// Asks replica `i` for the next page of its chain `j`; ends the chain
    /// incomplete if that cannot be sent.
    fn ask(&mut self, cx: &mut Cx, i: usize, j: usize) {
        let Phase::Reading(r) = &mut self.phase else { return };
        let rep = &mut r.replicas[i];
        let chain = &mut rep.chains[j];
        let fresh = chain.tries == 0 && chain.after.is_none() && chain.shard == Shard::ALL;
        if let Some(at) = fresh.then(|| self.sizer.adopt(rep.contact.id)).flatten() {
            // Its answer is on the way already.
            (rep.pages, chain.tries, chain.asked_at) = (rep.pages + 1, 1, at);
            return;
        }
        let call = shard_call(cx.svc.id, self.key, chain.after.as_deref(), MAX_ENTRIES_PER_CALL, chain.shard);
        rep.pages += usize::from(chain.tries == 0);
        self.out.pages_reasked += usize::from(chain.tries > 0);
        chain.tries += 1;
        chain.asked_at = cx.now;
        // A page of a far replica is asked twice at once (a hedged
        // request): a read waits for every page of the replicas it ends with,
        // and one lost there costs another of its long round trips. The
        // copy goes without the peer's id: its answer is matched by address
        // (`on_reply`), and its loss is no strike (pages lost together
        // time out together, and two strikes would evict a live replica).
        let far = cx.svc.book.smoothed(&rep.contact.addr).is_some_and(|rtt| rtt >= HEDGE_RTT);
        if far {
            self.out.pages_sent += 1;
            let _ = cx.send(rep.contact.addr, call.clone(), None);
        }
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
        let racer = r.replicas[i].racer;
        let chain = &mut r.replicas[i].chains[j];
        // An answer to an earlier try of a page already read (its entries
        // are not after the cursor): the current page is still coming.
        if page.as_ref().is_some_and(|p| p.entries.first().is_some_and(|e| Some(&e.id) <= chain.after.as_ref())) {
            return Step::Wait;
        }
        let Some(page) = page else {
            self.out.pages_failed += 1;
            // A racer is asked once: a request that failed is its silence.
            if body.is_none() && chain.tries < PAGE_TRIES && !racer {
                self.ask(cx, i, j);
            } else {
                chain.done = Some(false);
                if racer && body.is_none() {
                    r.replicas[i].stood_in = StoodIn::Silent;
                }
            }
            return self.round_done(cx);
        };
        self.on_chain_page(cx, i, j, page);
        self.round_done(cx)
    }

    /// A page of chain `j` of replica `i`: merged and followed (see
    /// `take_page`). A first page of a set larger than a page tells the
    /// set's size, so replicas whose first page is still on its way are
    /// asked for all their shards at once; a replica far short of that size
    /// gets a stand-in at once.
    fn on_chain_page(&mut self, cx: &mut Cx, i: usize, j: usize, page: Page) {
        let (live, per_page, more) = (page.live, page.entries.len(), page.next.is_some());
        if self.take_page(cx, i, j, page) && more {
            self.learn_size(cx, live, per_page);
        }
        self.stand_in_for_short(cx);
    }

    /// Merges a page of chain `j` of replica `i` and asks what follows it:
    /// the next page, or the rest cut into shards asked at once. True if it
    /// was the replica's first page (of the whole set, from its start).
    fn take_page(&mut self, cx: &mut Cx, i: usize, j: usize, page: Page) -> bool {
        if self.take_racer_page(i, &page) {
            return page.next.is_some();
        }
        let Phase::Reading(r) = &mut self.phase else { return false };
        let rep = &mut r.replicas[i];
        let n = page.entries.len();
        let first = rep.chains[j].shard == Shard::ALL && rep.chains[j].after.is_none();
        rep.seen += n;
        rep.heard = true;
        rep.live = Some(page.live);
        rep.stall = page_stall(cx, &rep.contact, self.stall);
        rep.reported(page.print);
        for e in page.entries {
            rep.hashes.push(Shard::hash(&e.id));
            rep.sent_print.add(&e.id, e.gone, e.signer.as_ref());
            merge_printed(&mut self.out.entries, &mut self.merged_print, e);
        }
        let pages = rep.pages;
        let chain = &mut rep.chains[j];
        chain.got += n;
        chain.tries = 0;
        let next = match page.next {
            None => {
                chain.done = Some(true);
                return first;
            }
            // A cursor that does not move, or too many pages: incomplete.
            Some(next) if chain.after.as_ref() == Some(&next) || pages >= MAX_PAGES => {
                chain.done = Some(false);
                return first;
            }
            Some(next) => next,
        };
        let more = cut_bits(page.live, chain.shard.bits, chain.got, n);
        let parts: Vec<Chain> = chain.shard.split(more).map(|s| Chain::new(s, Some(next.clone()), 0, cx.now)).collect();
        let start = rep.chains.len();
        // The chain read so far is replaced by its parts (a part of the
        // same shard when no cut is due).
        rep.chains[j].done = Some(true);
        rep.chains.extend(parts);
        for k in start..rep.chains.len() {
            self.ask(cx, i, k);
        }
        first
    }

    /// The first page of racer `i`: it becomes a replica of the round, read
    /// to its end, when it is the whole set or came before as many of the
    /// round's replicas as it needs were heard from (it is nearer than one
    /// of them). Otherwise (true) its entries are merged and it is left.
    fn take_racer_page(&mut self, i: usize, page: &Page) -> bool {
        let needed = self.needed();
        let Phase::Reading(r) = &mut self.phase else { return false };
        if !r.replicas[i].racer {
            return false;
        }
        let heard = r.replicas.iter().filter(|p| !p.replaced() && p.heard).count();
        let rep = &mut r.replicas[i];
        rep.racer = false;
        if page.next.is_none() || heard < needed {
            return false;
        }
        rep.heard = true;
        rep.live = Some(page.live);
        rep.reported(page.print);
        for e in &page.entries {
            merge_printed(&mut self.out.entries, &mut self.merged_print, e.clone());
        }
        rep.give_up();
        rep.stood_in = StoodIn::Covered;
        true
    }

    /// A first page of a set larger than a page reported `live` entries,
    /// `per_page` on it: the read's hint when larger than the last one, and
    /// every replica whose first page is still on its way is asked for all
    /// its shards at once.
    fn learn_size(&mut self, cx: &mut Cx, live: u64, per_page: usize) {
        if self.hint.is_none_or(|h| h.live < live) {
            self.hint = Some(Hint { live, per_page });
            self.shard_unheard(cx);
        }
    }

    /// Asks every replica whose first page is still on its way for all its
    /// shards now, planned from the size another replica reported: its read
    /// then takes one round trip, not two.
    fn shard_unheard(&mut self, cx: &mut Cx) {
        let (Phase::Reading(r), Some(hint)) = (&mut self.phase, self.hint) else { return };
        let now = cx.now;
        let mut blind = Vec::new();
        for (i, rep) in r.replicas.iter_mut().enumerate() {
            if rep.first_page_pending() {
                rep.add_blind(hint, now);
                blind.push(i);
            }
        }
        for i in blind {
            self.ask_all(cx, i);
        }
    }

    /// Takes the next replica in line for each one that reported a set
    /// more than a fiftieth smaller than the largest reported: it was not
    /// among the writers' closest, and would bring a second round. It is
    /// still read to its end, so one that lies about a huge set costs
    /// stand-ins, never the honest replicas' entries.
    fn stand_in_for_short(&mut self, cx: &mut Cx) {
        let Phase::Reading(r) = &self.phase else { return };
        let Some(max) = r.replicas.iter().filter_map(|p| p.live).max() else { return };
        self.stand_in(cx, StoodIn::Short, |p| !p.racer && p.live.is_some_and(|l| l + max / (SHORT_BY as u64) < max));
    }

    /// When every replica of the round is done, or enough agree (see
    /// `covered`): counts the complete ones, and starts a second round if
    /// one failed or came up short and too few agree.
    fn round_done(&mut self, cx: &mut Cx) -> Step {
        let covered = self.covered();
        let Phase::Reading(r) = &self.phase else { return Step::Wait };
        if !covered && r.replicas.iter().any(|p| !p.done() && !p.replaced()) {
            return Step::Wait;
        }
        if covered {
            self.leave_to_the_covering();
        }
        let Phase::Reading(r) = &self.phase else { return Step::Wait };
        let merged = self.out.entries.len();
        let complete = r.replicas.iter().filter(|p| p.complete()).count();
        let short = |p: &Replica| !p.complete() || p.seen + merged / SHORT_BY < merged;
        // As many as wanted agree: one short or failed beside them is covered.
        let disagree = !covered && r.replicas.iter().filter(|p| !p.replaced()).any(short);
        // A round that ended on shards read each from as many replicas as
        // it needed counts those, though no single one read to its end.
        self.out.replicas += if covered { complete.max(self.needed()) } else { complete };
        if disagree {
            self.next_round(cx)
        } else {
            self.end(cx)
        }
    }

    /// Whether as many replicas as the round wants read complete, each
    /// holding all that is merged but a fiftieth (the rule that decides a
    /// second round), or every shard of the set did at as many (a page lost
    /// at one replica covered by another's, see [`quorum`]), or as many
    /// reported the fingerprint of what is merged (less, perhaps, entries
    /// about to expire) or of one of them read complete (see [`copies`]):
    /// the others' unread pages may then be left. An entry
    /// is missed only if it is on one of those pages and every complete
    /// replica lacks it. Newcomers a read from memory added count against
    /// it: a writer leaves out a remembered replica for each node nearer
    /// the key, so more complete ones than newcomers are needed (waiting
    /// for every newcomer cost `steady --seed 1` 40 ms of discover p50). A
    /// replica stood in for as short is still read to its end: another's
    /// claim of a larger set brought the stand-ins, and a liar must not cut
    /// an honest replica's read short. And a round with a replica stood in
    /// for as silent reads every replica: one unreachable (across a cut,
    /// or gone) means writes may not have reached the same replicas (in
    /// `partition --seed 5` such rounds missed providers across the open
    /// cut: success 99.83 -> 99.43 %, and 99.90 % with this rule; after
    /// `crash30-discover --seed 1`'s crash discover p50 was 304 ms without
    /// it, 270 ms with it).
    fn covered(&self) -> bool {
        let Phase::Reading(r) = &self.phase else { return false };
        let merged = self.out.entries.len();
        let agree = |p: &&Replica| p.complete() && p.seen + merged / SHORT_BY >= merged;
        let short_unread = r.replicas.iter().any(|p| p.stood_in == StoodIn::Short && !p.done());
        let needed = self.needed();
        let silent = r.replicas.iter().any(|p| p.stood_in == StoodIn::Silent);
        if short_unread || silent {
            return false;
        }
        r.replicas.iter().filter(agree).count() >= needed
            || copies_agree(&r.replicas, agree, needed)
            || copies_of_merge(&r.replicas, &self.out.entries, self.merged_print) >= needed
            || self.shards_covered(needed)
    }

    /// Replicas that must agree for a round to end (see `covered`).
    fn needed(&self) -> usize {
        self.want.max(self.out.newcomers + 1)
    }

    /// Whether every shard of the set, cut as the largest size reported
    /// plans it, was read to its end at `needed` replicas that agree there
    /// (see [`quorum`]).
    fn shards_covered(&self, needed: usize) -> bool {
        let (Phase::Reading(r), Some(hint)) = (&self.phase, self.hint) else { return false };
        let bits = cut_bits(hint.live, 0, 0, hint.per_page);
        let merged = self.out.entries.keys().map(|id| Shard::hash(id));
        quorum::covered(&r.replicas, merged, bits, needed, SHORT_BY)
    }

    /// Ends the reads of the replicas still being read: the complete ones
    /// cover them.
    fn leave_to_the_covering(&mut self) {
        let Phase::Reading(r) = &mut self.phase else { return };
        for p in r.replicas.iter_mut().filter(|p| !p.done()) {
            p.give_up();
            if p.stood_in == StoodIn::No {
                p.stood_in = StoodIn::Covered;
            }
        }
    }

    /// Finishes; but an early read that found nothing, or whose replicas
    /// look left by the writers (see [`left_by_writers`]), runs the whole
    /// lookup and reads again: its replicas may all have been deep but
    /// outside the k closest the writers wrote to.
    fn end(&mut self, cx: &mut Cx) -> Step {
        let stale = left_by_writers(&self.out.entries);
        if !self.early || (!self.out.entries.is_empty() && !stale) {
            self.remember(cx);
            return self.finish();
        }
        self.fall_back(cx)
    }

    /// Runs the whole lookup after an early read, and reads replicas it
    /// finds that were not read yet (what was merged stays).
    fn fall_back(&mut self, cx: &mut Cx) -> Step {
        if self.found_at.is_none() {
            cx.read_memory.forget(&self.key);
        }
        self.early = false;
        self.start_search(cx)
    }

    /// Asks again for the pages that stalled (their requests stay out: the
    /// first answer is used), and asks a stand-in for each replica whose
    /// first page stalled: one that has left would hold the round for the
    /// extension timeout (5 s), then bring a second round. A page of a
    /// replica never heard from whose last try stalled too ends incomplete
    /// now, not at its requests' timeout: a stock peer not yet known as
    /// one, read when nobody else was left in line, held reads for the
    /// whole 2 s timeout (seen on loopback in `tests/platform.rs`, beside
    /// stock Python peers).
    fn resend_stalled(&mut self, cx: &mut Cx) -> Step {
        self.stand_in_for_silent(cx);
        self.give_up_exhausted(cx.now);
        let Phase::Reading(r) = &mut self.phase else { return Step::Wait };
        let now = cx.now;
        // A racer not heard from within the stall lost its race; silent,
        // it says what a silent replica says (see `covered`): the round
        // reads every replica.
        for p in r.replicas.iter_mut().filter(|p| p.racer && p.chains[0].asked_at + p.stall <= now) {
            p.give_up();
            p.stood_in = StoodIn::Silent;
        }
        let stalled: Vec<(usize, usize)> = r
            .replicas
            .iter()
            .enumerate()
            .flat_map(|(i, p)| p.chains.iter().enumerate().map(move |(j, c)| (i, j, c, p.stall)))
            .filter(|(_, _, c, stall)| c.may_resend() && c.asked_at + *stall <= now)
            .map(|(i, j, _, _)| (i, j))
            .collect();
        for (i, j) in stalled {
            self.ask(cx, i, j);
        }
        self.round_done(cx)
    }

    /// Ends incomplete every page of a replica never heard from that was
    /// asked [`PAGE_TRIES`] times, its last try stalled too (a failure that
    /// later comes for it is ignored). A replica that answered keeps
    /// waiting for its pages: its threshold is its own few round trips, and
    /// giving up on a late page there brought second rounds (discover p50
    /// in the 10 min after `crash30-discover`'s crash 380 -> 468 ms).
    fn give_up_exhausted(&mut self, now: Time) {
        let Phase::Reading(r) = &mut self.phase else { return };
        for p in r.replicas.iter_mut().filter(|p| !p.heard) {
            let stall = p.stall;
            for c in p.chains.iter_mut().filter(|c| c.exhausted(now, stall)) {
                c.done = Some(false);
                self.out.pages_failed += 1;
            }
        }
    }

    /// Takes the next replica in line for each one not heard from within
    /// the stall threshold of its first page.
    /// An early read with no one left to take the place of a silent
    /// replica gives it up instead: the round then ends, and the whole
    /// lookup finds others (waiting would hold the read for the extension
    /// timeout).
    fn stand_in_for_silent(&mut self, cx: &mut Cx) {
        let now = cx.now;
        let silent = move |p: &Replica| !p.racer && !p.heard && !p.done() && p.chains[0].asked_at + p.stall <= now;
        self.stand_in(cx, StoodIn::Silent, silent);
        let (true, Phase::Reading(r)) = (self.early, &mut self.phase) else { return };
        for p in r.replicas.iter_mut().filter(|p| p.stood_in == StoodIn::No && silent(p)) {
            p.give_up();
        }
    }

    /// Asks the next replica in line in the stead of each one not stood in
    /// for yet that is `due`, while replicas are left.
    fn stand_in(&mut self, cx: &mut Cx, why: StoodIn, due: impl Fn(&Replica) -> bool) {
        let Phase::Reading(r) = &mut self.phase else { return };
        let (now, stall) = (cx.now, self.stall);
        let mut added = Vec::new();
        for i in 0..r.replicas.len() {
            if r.replicas[i].stood_in != StoodIn::No || !due(&r.replicas[i]) {
                continue;
            }
            let Some(next) = r.rest.pop_front() else { break };
            r.replicas[i].stood_in = why;
            self.asked.push(next.id);
            r.replicas.push(Replica::new(next, now, stall, self.hint));
            added.push(r.replicas.len() - 1);
        }
        for i in added {
            self.ask_all(cx, i);
        }
    }

    fn finish(&mut self) -> Step {
        Step::Done(Finished::Report(Outcome::ProviderRead(std::mem::take(&mut self.out))))
    }
}

/// Takes out of `rest`, in line order, up to `racers` replicas whose round
/// trip was never measured, to race a round's replicas: each is asked its
/// first page only (one datagram each way). The nearest-first choice of the
/// round's replicas cannot tell how far a never-measured one is, and the
/// round waits for its third fastest; a racer that answers before the round
/// heard from as many as it needs is nearer than one of them, and is read
/// to its end like them (see `ProviderRead::take_racer_page`). Racing alone
/// (never-measured replicas only raced, not read at once) cost a second
/// round trip more than it saved (`simulations steady`, seeds 1-5, discover
/// p50 186 / 192 / 159 / 168 / 165 ms against 179 / 175 / 140 / 146 / 156
/// with racers beside the round, both before the silent rule of
/// `resend_stalled`).
fn take_racers(rest: &mut VecDeque<Contact>, racers: usize, book: &RttBook) -> Vec<Contact> {
    let mut race = Vec::new();
    rest.retain(|c| {
        let take = race.len() < racers && book.smoothed(&c.addr).is_none();
        if take {
            race.push(*c);
        }
        !take
    });
    race
}

/// Whether the replicas an early read merged `entries` from look left by
/// the writers: more than a fiftieth of the live entries are in their last
/// second at every replica read (pages round the time left up, so 1 s).
/// Where writers' refreshes arrive, only providers that stopped writing run
/// out; where they stopped arriving, every entry runs out in turn, and the
/// replicas, a second later, lack what a replica short by a fiftieth lacks
/// (see `SHORT_BY`). Any one entry in its last second used to send the read
/// to the whole lookup: after `simulations crash30-discover`'s crash the
/// dead workers' entries ran out by the hundred, and the reads of the next
/// ten minutes that merged one with 3 s or less left (353 of 1,940 at
/// `--seed 2`, by a temporary print), most of them sent to the lookup, took
/// 1.2 s at the median against 140 ms for the others. Such entries still
/// count as live.
fn left_by_writers(entries: &HashMap<String, SeenEntry>) -> bool {
    let live = entries.values().filter(|e| !e.gone).count();
    let last = entries.values().filter(|e| !e.gone && e.ttl <= Duration::from_secs(1)).count();
    last > 0 && last * SHORT_BY > live
}

/// Merges `e` into `into` (see [`merge`]), keeping `print` the fingerprint
/// of what `into` holds.
fn merge_printed(into: &mut HashMap<String, SeenEntry>, print: &mut SetPrint, e: SeenEntry) {
    let id = e.id.clone();
    if let Some(h) = into.get(&id) {
        print.remove(&h.id, h.gone, h.signer.as_ref());
    }
    merge(into, e);
    if let Some(h) = into.get(&id) {
        print.add(&h.id, h.gone, h.signer.as_ref());
    }
}

/// Where `c`, `rtt` away if measured, goes in the order replicas are read
/// in: known extension peers first, then the rest; nearest first in each,
/// one never measured ranked at the node's round trip to everyone (it is a
/// draw from that spread), not behind every measured one however far.
fn read_rank(cx: &Cx, c: &Contact, rtt: Option<Duration>) -> (bool, Duration) {
    let typical = cx.svc.rtt.smoothed().unwrap_or(Duration::MAX);
    (cx.peers.kind(&c.id) != PeerKind::Extended, rtt.unwrap_or(typical))
}

/// How long a page of a replica that answered may take before it is
/// asked again: its own `srtt + 4 rttvar`, at least [`PAGE_STALL_MIN`], at
/// most the read's threshold `max`.
fn page_stall(cx: &Cx, contact: &Contact, max: Duration) -> Duration {
    let own = cx.svc.book.get(&contact.addr).filter(|e| e.smoothed().is_some());
    own.map_or(max, |e| e.stall_after(PAGE_STALL_MIN, max))
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
            Phase::Start => match self.memory.take() {
                Some(m) if !m.replicas.is_empty() => self.start_from_memory(cx, m),
                _ => self.start_search(cx),
            },
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
                // A page with tries left is asked again then; one of a
                // replica never heard from without is given up then.
                let due = |c: &Chain, heard: bool| c.may_resend() || (c.done.is_none() && !heard);
                let chains = r.replicas.iter().flat_map(|p| p.chains.iter().map(move |c| (c, p.stall, p.heard)));
                chains.filter(|(c, _, heard)| due(c, *heard)).map(|(c, stall, _)| c.asked_at + stall).min()
            }
            Phase::Start => None,
        }
    }

    fn on_reply(&mut self, cx: &mut Cx, reply: Reply) -> Step {
        if reply.kind == RpcKind::Extension && self.is_sizer(reply.peer) {
            return self.on_size(cx, Some(&reply.body));
        }
        match &mut self.phase {
            Phase::Start => Step::Wait,
            Phase::Search(s) => {
                let progress = s.on_reply(cx, reply);
                self.on_progress(cx, progress)
            }
            Phase::Reading(_)
                if reply.kind == RpcKind::FindNode && reply.peer.is_some_and(|p| self.probe == Some(p)) =>
            {
                self.on_probe(cx, &reply.body)
            }
            Phase::Reading(r) if reply.kind == RpcKind::Extension => {
                // A hedged copy's answer names no peer: its replica by address.
                let at = |p: &&Replica| crate::rpc::same_endpoint(p.contact.addr, reply.to);
                let peer = reply.peer.or_else(|| r.replicas.iter().find(at).map(|p| p.contact.id));
                self.on_page(cx, peer, Some(&reply.body))
            }
            Phase::Reading(_) => Step::Wait,
        }
    }

    fn on_failure(&mut self, cx: &mut Cx, peer: Option<NodeId>, kind: RpcKind) -> Step {
        if kind == RpcKind::Extension && self.is_sizer(peer) {
            return self.on_size(cx, None);
        }
        match &mut self.phase {
            Phase::Start => Step::Wait,
            Phase::Search(s) => {
                let progress = s.on_failure(cx, peer);
                self.on_progress(cx, progress)
            }
            Phase::Reading(_) if kind == RpcKind::Extension => self.on_page(cx, peer, None),
            Phase::Reading(_) => {
                self.probe = self.probe.filter(|p| Some(*p) != peer);
                Step::Wait
            }
        }
    }

    super::search_phase!();
}
