//! The iterative lookup (Kademlia paper, section 2.3) as a state machine.
//!
//! A [`Lookup`] knows nothing of sockets or clocks. The engine asks
//! [`Lookup::next`] for the next contact to query until it answers
//! [`Next::Wait`] or [`Next::Done`], and feeds every reply or failure back with
//! [`Lookup::on_nodes`], [`Lookup::on_value`] or [`Lookup::on_failure`].
//!
//! Invariants: at most `alpha` queries count as in flight at once (once a
//! first copy arrived, as many as copies still wanted if more); a query that
//! has waited longer than its contact's stall threshold stops counting (and
//! stops blocking termination, unless nothing has answered yet: an empty
//! lookup waits for them), so one dead contact delays a lookup by that
//! threshold, not by a full RPC timeout; the lookup is done when the `k`
//! closest contacts that have not failed or stalled have all answered, or
//! when it holds [`Lookup::with_copies`] copies of the value (one unless
//! set: the first value ends it, as in the paper).
//!
//! Copies: a `find_value` lookup asked for several copies goes on past the
//! first value (BEP 44's read of mutable items), so a reader that meets a
//! replica left behind by a partition also meets the replicas that took the
//! newer write. The lookup keeps every copy with its holder; which copy is
//! newest is the caller's business (it knows the record rules, this does not).
//!
//! Proximity: the next contact queried is always one of the closest rank
//! (the length of the prefix its id shares with the target, capped by
//! [`Lookup::with_rank_cap`]); among several of that rank the one with the
//! lowest known round trip goes first, and at equal round trips the closer
//! in XOR terms. A candidate of a lower rank is never preferred, however
//! near: progress towards the target comes first, latency decides only
//! between equals. The cap makes every contact deep enough to be among the
//! target's k closest equal, so a `find_value` asks the nearest replica.
//!
//! Slack ([`Lookup::with_rank_slack`]): the ranks from `cap - slack` to
//! `cap - 1` also count as one, a class below the cap's. A contact that
//! deep holds, in its bucket towards the target, contacts about `log2(k)`
//! bits deeper still: replicas. Any of them is then one referral from the
//! replicas, so the nearest goes first instead of the XOR-closest, which on
//! a wide-area network costs a full continental round trip for nothing.
//! Classes still never invert: a replica goes before any of them.
//!
//! Replica fan-out ([`Lookup::with_replica_fanout`]): once replicas (the
//! cap's class) are known, queries still in flight to lower classes stop
//! counting against `alpha`, so `alpha` replicas are asked at once and the
//! nearest answer ends the read, instead of one replica per slot that the
//! first hop's slower queries free. At most `2 * alpha` queries are then in
//! flight, at most `alpha` of them to replicas.
//!
//! Replica width ([`Lookup::with_replica_width`]): under fan-out, up to this
//! many replicas (at least `alpha`) are asked at once. Most replicas' round
//! trips are unknown when they are first named, so the choice among them is
//! close to random; asking more at once makes the first answer (which ends
//! the read) come from the nearest of more of them. Not while a replica
//! whose round trip was measured ([`Near::measured`]) is asked: asked
//! before the strangers, it is nearer than the network's smoothed round
//! trip they count at, and its answer is expected first. At most `alpha`
//! plus the width are in flight.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::contact::Contact;
use crate::id::{Distance, NodeId};
use crate::time::Time;
use crate::wire::Value;

/// Kademlia's alpha: queries a lookup keeps in flight at once.
pub const ALPHA: usize = 3;

/// What a lookup looks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupKind {
    /// The k closest nodes to the target (`find_node`).
    FindNode,
    /// The value stored under the target key (`find_value`).
    FindValue,
}

/// What the engine should do next for this lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// Send a query to this contact.
    Query(Contact),
    /// Nothing to send until a reply, failure or stall.
    Wait,
    /// The lookup has finished; call [`Lookup::finish`].
    Done,
}

/// What the engine knows of a candidate's distance in time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Near {
    /// Its smoothed round trip (or a stand-in), if anything is known.
    pub rtt: Option<Duration>,
    /// Whether `rtt` is this contact's own measured round trip, not a stand-in.
    pub measured: bool,
    /// How long a query to it may go unanswered; `None`: the lookup's own.
    pub stall: Option<Duration>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    NotContacted,
    Waiting {
        stalls_at: Time,
    },
    /// Waited longer than `stall_after`: no longer counted, still accepted.
    Stalled,
    Succeeded,
    Failed,
}

#[derive(Clone, Debug)]
struct Candidate {
    contact: Contact,
    state: State,
    hop: u32,
    /// Known round trip in microseconds; `u32::MAX` when unknown.
    rtt_us: u32,
    /// Its stall threshold in microseconds; 0: the lookup's own.
    stall_us: u32,
    /// `rtt_us` is its own measurement (see [`Near::measured`]).
    measured: bool,
}

/// The result of a finished lookup.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LookupResult {
    /// Up to k contacts that answered, closest to the target first.
    pub closest: Vec<Contact>,
    /// The value, for a `FindValue` lookup that found one: the first copy.
    pub value: Option<Value>,
    /// Who returned the value.
    pub value_from: Option<NodeId>,
    /// Every copy received and its holder, in order of arrival (the first
    /// is `value`); more than one only with [`Lookup::with_copies`].
    pub copies: Vec<(Value, NodeId)>,
    /// The closest contact that answered without the value: where the paper
    /// says to cache a found value.
    pub store_at: Option<Contact>,
    /// Queries sent.
    pub queried: usize,
    /// Queries that failed (timed out or answered garbage).
    pub failed: usize,
    /// Rounds of referral from the first contacts to the answer.
    pub hops: u32,
    /// Contacts asked that had neither answered nor failed when the lookup
    /// ended, having waited past their stall threshold, and closer to the
    /// target than the farthest of `closest` (all of them when `closest`
    /// is short of k): slow, not known dead. A write sends to them too.
    pub stalled: Vec<Contact>,
}

/// The copies a `find_value` lookup received: each with who sent it and its hop.
#[derive(Debug, Default)]
struct Copies(Vec<(Value, NodeId, u32)>);

/// One iterative lookup.
#[derive(Debug)]
pub struct Lookup {
    target: NodeId,
    local: NodeId,
    kind: LookupKind,
    k: usize,
    alpha: usize,
    stall_after: Duration,
    /// Ranks at or above this count as one (see the module docs).
    rank_cap: usize,
    /// Ranks from `rank_cap - rank_slack` below the cap count as one too.
    rank_slack: usize,
    /// Queries below the cap's class stop counting once a replica is next.
    replica_fanout: bool,
    /// Replica queries allowed in flight at once under fan-out (at least
    /// alpha). Small: every operation in the engine's table is as large as
    /// a `Lookup`.
    replica_width: u16,
    candidates: BTreeMap<Distance, Candidate>,
    /// The candidates in `State::Waiting`, closest first, with when each
    /// stalls: at most `alpha`, so stall checks and the in-flight count need
    /// not walk every candidate (they ran after every datagram).
    waiting: Vec<(Distance, Time)>,
    /// Copies of the value received. Boxed: most lookups find none, and
    /// every operation in the engine's table is as large as a `Lookup`.
    copies: Option<Box<Copies>>,
    /// Copies that end the lookup (see [`Lookup::with_copies`]).
    wanted_copies: u16,
    queried: usize,
    failed: usize,
    newly_stalled: Vec<NodeId>,
}

impl Lookup {
    /// A lookup for `target` starting from `seeds` (our own id is never queried).
    pub fn new(target: NodeId, local: NodeId, kind: LookupKind, k: usize, alpha: usize, stall_after: Duration) -> Self {
        Lookup {
            target,
            local,
            kind,
            k: k.max(1),
            alpha: alpha.max(1),
            stall_after,
            rank_cap: usize::MAX,
            rank_slack: 0,
            replica_fanout: false,
            replica_width: 0,
            candidates: BTreeMap::new(),
            waiting: Vec::new(),
            copies: None,
            wanted_copies: 1,
            queried: 0,
            failed: 0,
            newly_stalled: Vec::new(),
        }
    }

    /// Adds starting contacts (hop 1).
    pub fn with_seeds(self, seeds: impl IntoIterator<Item = Contact>) -> Self {
        self.with_seeds_near(seeds, |_| Near::default())
    }

    /// Adds starting contacts (hop 1) with what `near` knows of each.
    pub fn with_seeds_near(
        mut self,
        seeds: impl IntoIterator<Item = Contact>,
        near: impl Fn(&Contact) -> Near,
    ) -> Self {
        for c in seeds {
            let n = near(&c);
            self.add(c, 1, n);
        }
        self
    }

    /// Ranks (shared prefix lengths with the target) from `cap` up count as
    /// one, so the round trip decides among them. Set it to the depth at
    /// which the target's k closest live; the default never caps.
    pub fn with_rank_cap(mut self, cap: usize) -> Self {
        self.rank_cap = cap;
        self
    }

    /// A `find_value` lookup ends once `n` nodes have returned a copy (or
    /// when the k closest have answered, whichever comes first), instead of
    /// at the first copy. Each copy past the first costs about one query;
    /// the queries run in parallel with those already in flight.
    pub fn with_copies(mut self, n: usize) -> Self {
        self.wanted_copies = u16::try_from(n.max(1)).unwrap_or(u16::MAX);
        self
    }

    /// The ranks from `cap - slack` up to `cap - 1` count as one class
    /// (below the cap's): contacts one referral away from the replicas (see
    /// the module docs). 0, the default, keeps every rank apart. Without a
    /// cap there is no class.
    pub fn with_rank_slack(mut self, slack: usize) -> Self {
        self.rank_slack = slack;
        self
    }

    /// Once a candidate of the cap's class is the next to ask, queries in
    /// flight to lower classes no longer hold its slot (see the module
    /// docs). Off by default; without a cap it changes nothing.
    pub fn with_replica_fanout(mut self, on: bool) -> Self {
        self.replica_fanout = on;
        self
    }

    /// Under fan-out, up to `n` replicas (at least `alpha`) are asked at
    /// once instead of `alpha` (see the module docs). Without fan-out it
    /// changes nothing.
    pub fn with_replica_width(mut self, n: usize) -> Self {
        self.replica_width = u16::try_from(n).unwrap_or(u16::MAX);
        self
    }

    /// The class of a candidate at `d`: its rank, capped, and folded into
    /// `cap - slack` when it is within the slack below the cap.
    fn rank(&self, d: &Distance) -> usize {
        let r = d.leading_zeros().min(self.rank_cap);
        let floor = self.rank_cap.saturating_sub(self.rank_slack);
        if r < self.rank_cap && r > floor {
            floor
        } else {
            r
        }
    }

    /// The target id or key.
    pub fn target(&self) -> NodeId {
        self.target
    }

    /// What this lookup looks for.
    pub fn kind(&self) -> LookupKind {
        self.kind
    }

    fn add(&mut self, contact: Contact, hop: u32, near: Near) {
        if contact.id == self.local {
            return;
        }
        let d = contact.id.distance(&self.target);
        let micros = |t: Duration| u32::try_from(t.as_micros()).unwrap_or(u32::MAX);
        let rtt_us = near.rtt.map_or(u32::MAX, micros);
        let stall_us = near.stall.map_or(0, |t| micros(t).max(1));
        let candidate =
            Candidate { contact, state: State::NotContacted, hop, rtt_us, stall_us, measured: near.measured };
        self.candidates.entry(d).or_insert(candidate);
    }

    fn mark_stalled(&mut self, now: Time) {
        let (candidates, stalled) = (&mut self.candidates, &mut self.newly_stalled);
        self.waiting.retain(|&(d, stalls_at)| {
            if now < stalls_at {
                return true;
            }
            if let Some(c) = candidates.get_mut(&d) {
                c.state = State::Stalled;
                stalled.push(c.contact.id);
            }
            false
        });
    }

    /// Sets the state of the candidate at `d`, keeping `waiting` in step.
    fn set_state(&mut self, d: &Distance, state: State) {
        let Some(c) = self.candidates.get_mut(d) else { return };
        if let State::Waiting { .. } = c.state {
            self.waiting.retain(|(w, _)| w != d);
        }
        c.state = state;
        if let State::Waiting { stalls_at } = state {
            let at = self.waiting.partition_point(|(w, _)| w < d);
            self.waiting.insert(at, (*d, stalls_at));
        }
    }

    /// The next step at `now`. Call repeatedly until it is not `Query`.
    pub fn next(&mut self, now: Time) -> Next {
        if self.copies_held() >= usize::from(self.wanted_copies) {
            return Next::Done;
        }
        self.mark_stalled(now);
        let in_flight = self.waiting.len();
        let width = self.width();
        let mut live_seen = 0;
        let mut pending = false;
        // The best uncontacted candidate so far: its distance, rank and round trip.
        let mut pick: Option<(Distance, usize, u32)> = None;
        for (d, c) in &self.candidates {
            if live_seen >= self.k {
                break;
            }
            match c.state {
                State::Failed | State::Stalled => continue,
                State::Waiting { .. } => pending = true,
                State::NotContacted => {
                    pending = true;
                    let rank = self.rank(d);
                    // XOR order: the first of a rank wins ties; lower ranks never.
                    match pick {
                        None => pick = Some((*d, rank, c.rtt_us)),
                        Some((_, r, rtt)) if r == rank && c.rtt_us < rtt => pick = Some((*d, rank, c.rtt_us)),
                        _ => {}
                    }
                }
                State::Succeeded => {}
            }
            live_seen += 1;
        }
        match pick {
            Some((d, rank, _)) if self.counted_in_flight(rank) < self.width_for(rank, width) => {
                self.mark_waiting(&d, now)
            }
            Some(_) => Next::Wait,
            None if pending || in_flight >= width || self.only_stalled_left() => Next::Wait,
            None => Next::Done,
        }
    }

    /// Nobody answered yet and a stalled query may still: the lookup waits
    /// for it (its answer, or its timeout as a failure) instead of ending
    /// empty. A join whose first seed answered the ping and then stalled on
    /// the find_node ended with no contact, the node unknown to its
    /// neighbourhood (`simulations partition --seed 3`: 63 of 2,008 joins;
    /// one such node was the second closest to a provider set and held 5 of
    /// its 500 entries, since no writer's lookup ever found it).
    fn only_stalled_left(&self) -> bool {
        let states = || self.candidates.values().map(|c| c.state);
        !states().any(|s| s == State::Succeeded) && states().any(|s| s == State::Stalled)
    }

    /// Queries allowed in flight against a next query of `rank`: `width`,
    /// or with fan-out and a replica next, the replica width if larger,
    /// unless a replica whose round trip was measured is already asked.
    /// Replicas go nearest first and a stranger counts at the network's
    /// smoothed round trip, so a measured replica asked before the
    /// strangers is nearer than they are expected to be, and its answer is
    /// expected first; one known to be slow is asked only once every
    /// stranger the width allows is out.
    fn width_for(&self, rank: usize, width: usize) -> usize {
        if !self.replica_fanout || rank < self.rank_cap {
            return width;
        }
        let measured_out = self
            .waiting
            .iter()
            .any(|(d, _)| self.rank(d) >= self.rank_cap && self.candidates.get(d).is_some_and(|c| c.measured));
        if measured_out {
            width
        } else {
            width.max(usize::from(self.replica_width))
        }
    }

    /// Queries in flight that hold a slot against a next query of `rank`:
    /// all of them, or with replica fan-out and a replica next, only those
    /// to replicas.
    fn counted_in_flight(&self, rank: usize) -> usize {
        if !self.replica_fanout || rank < self.rank_cap {
            return self.waiting.len();
        }
        self.waiting.iter().filter(|(d, _)| self.rank(d) >= self.rank_cap).count()
    }

    fn mark_waiting(&mut self, d: &Distance, now: Time) -> Next {
        let Some(c) = self.candidates.get(d) else { return Next::Wait };
        let contact = c.contact;
        // The contact's own threshold if the engine gave one, else the lookup's.
        let stall = match c.stall_us {
            0 => self.stall_after,
            us => Duration::from_micros(u64::from(us)),
        };
        self.set_state(d, State::Waiting { stalls_at: now + stall });
        self.queried += 1;
        Next::Query(contact)
    }

    /// Contacts this lookup stopped waiting on since the last call.
    pub fn take_stalled(&mut self) -> Vec<NodeId> {
        std::mem::take(&mut self.newly_stalled)
    }

    /// When the earliest in-flight query will stall, so the engine can wake up.
    pub fn next_stall(&self) -> Option<Time> {
        self.waiting.iter().map(|&(_, stalls_at)| stalls_at).min()
    }

    /// `from`'s candidate, marked answered; its hop.
    fn succeeded(&mut self, from: &NodeId) -> Option<u32> {
        let d = from.distance(&self.target);
        let hop = self.candidates.get(&d)?.hop;
        self.set_state(&d, State::Succeeded);
        Some(hop)
    }

    /// Adds a starting contact to a running lookup (a bootstrap seed that
    /// answered after the lookup began); one it knows already is left as is.
    pub fn offer(&mut self, contact: Contact, near: Near) {
        self.add(contact, 0, near);
    }

    /// `from` answered with contacts closer to the target.
    pub fn on_nodes(&mut self, from: &NodeId, contacts: Vec<Contact>) {
        self.on_nodes_near(from, contacts, |_| Near::default());
    }

    /// `from` answered with contacts closer to the target; `near` says
    /// what is known of each.
    pub fn on_nodes_near(&mut self, from: &NodeId, contacts: Vec<Contact>, near: impl Fn(&Contact) -> Near) {
        let Some(hop) = self.succeeded(from) else { return };
        for contact in contacts {
            let n = near(&contact);
            self.add(contact, hop + 1, n);
        }
    }

    /// `from` answered with the value.
    pub fn on_value(&mut self, from: &NodeId, value: Value) {
        let Some(hop) = self.succeeded(from) else { return };
        if self.kind == LookupKind::FindValue && self.copies_held() < usize::from(self.wanted_copies) {
            self.copies.get_or_insert_with(Box::default).0.push((value, *from, hop));
        }
    }

    /// Ends the lookup with the copies it holds (at least the first): the
    /// caller judged the copy it has current enough to stop collecting.
    pub fn enough(&mut self) {
        self.wanted_copies = u16::try_from(self.copies_held().max(1)).unwrap_or(u16::MAX);
    }

    /// Copies received so far.
    pub fn copies_held(&self) -> usize {
        self.copies.as_ref().map_or(0, |c| c.0.len())
    }

    /// Queries allowed in flight: `alpha`, and once a first copy arrived,
    /// as many as copies still wanted when that is more. The copies sit at
    /// the replicas around the one that answered, all known by now and most
    /// of them already asked, so the queries in flight bring them. Allowing
    /// alpha plus one per copy still wanted, as before, sent queries whose
    /// answers came after the lookup had its copies: in `versus` (1,000
    /// nodes, 4 copies) 11.1 lookup RPCs per get against 9.1, for the same
    /// gets found (see README, "Copies of a get").
    fn width(&self) -> usize {
        let held = self.copies_held();
        if held == 0 {
            return self.alpha;
        }
        self.alpha.max(usize::from(self.wanted_copies).saturating_sub(held))
    }

    /// Candidates at least `extra` bits deeper than the rank cap (so
    /// likely among the target's k closest) that have not failed or
    /// stalled, closest first, each with its known round trip. None while
    /// there is no cap (a table with fewer than k contacts).
    pub fn deep(&self, extra: usize) -> impl Iterator<Item = (Contact, Option<Duration>)> + '_ {
        let depth = self.rank_cap.saturating_add(extra);
        self.candidates
            .iter()
            .take_while(move |(d, _)| d.leading_zeros() >= depth)
            .filter(|(_, c)| !matches!(c.state, State::Failed | State::Stalled))
            .map(|(_, c)| (c.contact, (c.rtt_us != u32::MAX).then(|| Duration::from_micros(u64::from(c.rtt_us)))))
    }

    /// The candidates at least `extra` bits deeper than the rank cap that
    /// answered, closest first.
    pub fn answered_deep(&self, extra: usize) -> impl Iterator<Item = Contact> + '_ {
        let depth = self.rank_cap.saturating_add(extra);
        let deep = self.candidates.iter().take_while(move |(d, _)| d.leading_zeros() >= depth);
        deep.filter(|(_, c)| c.state == State::Succeeded).map(|(_, c)| c.contact)
    }

    /// The query to `from` timed out or its reply was unusable.
    pub fn on_failure(&mut self, from: &NodeId) {
        let d = from.distance(&self.target);
        if self.candidates.get(&d).is_some_and(|c| c.state != State::Failed) {
            self.set_state(&d, State::Failed);
            self.failed += 1;
        }
    }

    /// The outcome so far (normally called after `Next::Done`).
    pub fn finish(&self) -> LookupResult {
        let answered = self.candidates.values().filter(|c| c.state == State::Succeeded);
        let closest: Vec<&Candidate> = answered.take(self.k).collect();
        let copies: &[(Value, NodeId, u32)] = self.copies.as_ref().map_or(&[], |c| &c.0);
        let first = copies.first();
        let value_from = first.map(|found| found.1);
        let holds = |id: &NodeId| copies.iter().any(|(_, from, _)| from == id);
        let store_at = closest.iter().find(|c| !holds(&c.contact.id)).map(|c| c.contact);
        let hops = match first {
            Some((_, _, hop)) => *hop,
            None => closest.iter().map(|c| c.hop).max().unwrap_or(0),
        };
        let bound = closest.get(self.k - 1).map(|far| far.contact.id.distance(&self.target));
        let within = |d: &Distance| bound.is_none_or(|b| *d < b);
        let stalled = self.candidates.iter().filter(|(d, c)| c.state == State::Stalled && within(d));
        LookupResult {
            stalled: stalled.map(|(_, c)| c.contact).collect(),
            closest: closest.iter().map(|c| c.contact).collect(),
            value: first.map(|found| found.0.clone()),
            value_from,
            copies: copies.iter().map(|(v, from, _)| (v.clone(), *from)).collect(),
            store_at: if first.is_some() { store_at } else { None },
            queried: self.queried,
            failed: self.failed,
            hops,
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod near_tests;
