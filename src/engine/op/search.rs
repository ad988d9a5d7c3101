//! The lookup phase every lookup-based operation runs: it starts a
//! [`Lookup`] from the routing table, sends the queries it asks for, feeds
//! replies and failures back, and hands over the result when it is done.
//!
//! The [`Lookup`] itself is pure (no sends, no table); this is the part that
//! touches the services: contacts that stall are marked suspect, contacts
//! that just timed out on us are neither started from nor followed, and
//! every candidate is handed in with its measured round trip and stall
//! threshold ([`crate::proximity`]) and the depth at which the target's k
//! closest are expected to live (the rank cap, see [`Lookup::with_rank_cap`]).

use super::{Cx, Operation, Reply, Step};
use crate::contact::Contact;
use crate::engine::services::Services;
use crate::engine::LookupStats;
use crate::id::NodeId;
use crate::lookup::{Lookup, LookupKind, LookupResult, Near, Next};
use crate::proximity::{stall_for, StallBounds};
use crate::rpc::RpcKind;
use crate::time::Time;
use crate::wire::{self, Call, FindValueReply, Value};

/// A running lookup and when it started.
pub(in crate::engine) struct Search {
    lookup: Lookup,
    started: Time,
}

/// Where a search stands after an input.
pub(super) enum Progress {
    /// Still waiting on queries.
    Running,
    /// Done: what it found (boxed: most inputs leave a search running),
    /// and how it went.
    Found(Box<LookupResult>, LookupStats),
}

/// A client starts its lookups from kadmesh peers when it knows at least
/// `alpha` of them among the starting contacts: a stock peer inserts every
/// requester in its table (it cannot read the client mark) and hands it out.
fn prefer_kadmesh(seeds: &mut Vec<Contact>, peers: &crate::engine::peers::Peers, alpha: usize) {
    let is_stock = |c: &Contact| peers.kind(&c.id) == crate::engine::PeerKind::Base;
    if seeds.iter().filter(|c| !is_stock(c)).count() >= alpha {
        seeds.retain(|c| !is_stock(c));
    }
}

impl Search {
    /// Starts a lookup of `target` at `cx.now` and sends its first queries.
    pub(super) fn start(cx: &mut Cx, target: NodeId, kind: LookupKind) -> (Search, Progress) {
        let alpha = cx.svc.config.alpha;
        Search::start_with(cx, target, kind, alpha)
    }

    /// [`Search::start`] with `alpha` queries in flight instead of the configured number.
    pub(super) fn start_with(cx: &mut Cx, target: NodeId, kind: LookupKind, alpha: usize) -> (Search, Progress) {
        let k = cx.svc.config.k;
        Search::start_sized(cx, target, kind, alpha, k)
    }

    /// [`Search::start_with`] that ends once the `k` closest it knows of
    /// answered (at most the configured k): for a reader that needs a few
    /// of the closest, not all of them.
    pub(super) fn start_sized(
        cx: &mut Cx,
        target: NodeId,
        kind: LookupKind,
        alpha: usize,
        k: usize,
    ) -> (Search, Progress) {
        let svc = &mut *cx.svc;
        svc.routing.touch(&target, cx.now);
        let k = k.clamp(1, svc.config.k);
        // Twice k starting contacts: when the k closest we know are dead,
        // the next ones take their place instead of the lookup ending empty.
        // Contacts that just timed out are left out while a ping checks them.
        let mut seeds = svc.routing.closest_unfailed(&target, 2 * k);
        if seeds.is_empty() {
            seeds = svc.routing.closest(&target, 2 * k);
        }
        if svc.client {
            prefer_kadmesh(&mut seeds, cx.peers, svc.config.alpha);
        }
        let stall = svc.rtt.stall_after(svc.config.lookup_stall_min, svc.config.lookup_stall);
        let lookup = Lookup::new(target, svc.id, kind, k, alpha, stall)
            .with_rank_cap(replica_depth(svc))
            .with_rank_slack(svc.config.lookup_rank_slack)
            .with_replica_fanout(kind == LookupKind::FindValue && svc.config.lookup_replica_fanout)
            .with_replica_width(replica_width(svc.config.lookup_replica_width, svc.rtt.smoothed()))
            .with_copies(svc.config.get_copies)
            .with_seeds_near(seeds, |c| near(svc, c));
        let mut search = Search { lookup, started: cx.now };
        let progress = search.drive(cx);
        (search, progress)
    }

    /// When the earliest query in flight stalls.
    pub(super) fn next_stall(&self) -> Option<Time> {
        self.lookup.next_stall()
    }

    /// Sends whatever the lookup wants sent; the result once it is done.
    pub(super) fn drive(&mut self, cx: &mut Cx) -> Progress {
        loop {
            let next = self.lookup.next(cx.now);
            for id in self.lookup.take_stalled() {
                cx.svc.routing.mark_suspect(&id);
            }
            match next {
                Next::Query(c) => {
                    let (sender, key) = (cx.svc.id, self.lookup.target());
                    let call = match self.lookup.kind() {
                        LookupKind::FindNode => Call::FindNode { sender, key },
                        LookupKind::FindValue => Call::FindValue { sender, key },
                    };
                    if !cx.send(c.addr, call, Some(c.id)) {
                        self.lookup.on_failure(&c.id);
                    }
                }
                Next::Wait => return Progress::Running,
                Next::Done => return self.found(cx.now),
            }
        }
    }

    /// The lookup's contacts at least `extra` bits deeper than its rank
    /// cap (see [`Lookup::deep`]).
    pub(super) fn deep(&self, extra: usize) -> impl Iterator<Item = (Contact, Option<std::time::Duration>)> + '_ {
        self.lookup.deep(extra)
    }

    pub(super) fn answered_deep(&self, extra: usize) -> impl Iterator<Item = Contact> + '_ {
        self.lookup.answered_deep(extra)
    }

    /// How it went so far, for a caller that stops it early.
    pub(super) fn stats_so_far(&self, now: Time) -> LookupStats {
        let r = self.lookup.finish();
        let duration = now.saturating_since(self.started);
        LookupStats { queried: r.queried, failed: r.failed, hops: r.hops, duration }
    }

    fn found(&self, now: Time) -> Progress {
        let r = self.lookup.finish();
        let duration = now.saturating_since(self.started);
        let stats = LookupStats { queried: r.queried, failed: r.failed, hops: r.hops, duration };
        Progress::Found(Box::new(r), stats)
    }

    /// A reply to one of its queries. Replies from a bare address (a
    /// bootstrap seed's ping) are not the lookup's.
    pub(super) fn on_reply(&mut self, cx: &mut Cx, reply: Reply) -> Progress {
        let Some(p) = reply.peer else { return Progress::Running };
        match parse_lookup_reply(reply.kind, &reply.body) {
            Some(FindValueReply::Value(v)) => {
                let cfg = &cx.svc.config;
                let now_unix = cx.now.as_secs_f64() + cfg.unix_offset.as_secs_f64();
                let current =
                    self.lookup.copies_held() == 0 && super::newest::looks_current(&v, now_unix, cfg.get_fresh_for);
                self.lookup.on_value(&p, v);
                if current {
                    self.lookup.enough();
                }
            }
            Some(FindValueReply::Nodes(n)) => return self.on_nodes(cx, p, n),
            None => self.lookup.on_failure(&p),
        }
        self.drive(cx)
    }

    /// `peer` answered with `contacts`.
    pub(super) fn on_nodes(&mut self, cx: &mut Cx, peer: NodeId, mut contacts: Vec<Contact>) -> Progress {
        // Others may still list a node that has just timed out on us.
        contacts.retain(|c| cx.svc.routing.failures(&c.id).is_none_or(|f| f == 0));
        let svc = &*cx.svc;
        self.lookup.on_nodes_near(&peer, contacts, |c| near(svc, c));
        self.drive(cx)
    }

    /// Adds `contact` as a starting contact (see [`Lookup::offer`]).
    pub(super) fn offer(&mut self, cx: &mut Cx, contact: Contact) -> Progress {
        let svc = &*cx.svc;
        self.lookup.offer(contact, near(svc, &contact));
        self.drive(cx)
    }

    /// A request timed out; a query's if `peer` is known.
    pub(super) fn on_failure(&mut self, cx: &mut Cx, peer: Option<NodeId>) -> Progress {
        if let Some(p) = peer {
            self.lookup.on_failure(&p);
        }
        self.drive(cx)
    }
}

/// What the node knows of how near `c` is: its own smoothed round trip (the
/// network-wide one for a contact never measured, so a known-slow contact
/// ranks behind a stranger and a known-near one before) and its stall.
fn near(svc: &Services, c: &Contact) -> Near {
    let own = svc.book.get(&c.addr);
    let bounds = StallBounds {
        contact_min: svc.config.contact_stall_min,
        min: svc.config.lookup_stall_min,
        max: svc.config.lookup_stall,
    };
    let measured = own.and_then(|e| e.smoothed());
    let rtt = measured.or_else(|| svc.rtt.smoothed());
    Near { rtt, measured: measured.is_some(), stall: Some(stall_for(own, &svc.rtt, bounds)) }
}

/// How many leading bits a target shares with its k closest nodes, judged
/// by our own neighbourhood: the prefix we share with the k-th closest
/// contact to our id. Ranks from there on are one (replicas are equal);
/// no cap while the table holds fewer than k contacts.
fn replica_depth(svc: &Services) -> usize {
    let k = svc.config.k;
    let mine = svc.routing.closest(&svc.id, k);
    match mine.get(k.saturating_sub(1)) {
        Some(c) if mine.len() >= k => c.id.distance(&svc.id).leading_zeros(),
        _ => usize::MAX,
    }
}

/// Round trips under which replicas are not asked beyond alpha at once.
const SPREAD_RTT: std::time::Duration = std::time::Duration::from_millis(20);

/// The replica width a lookup gets (see [`Lookup::with_replica_width`]):
/// the configured one where the network's smoothed round trip is at least
/// [`SPREAD_RTT`], none (alpha) below. Asking more replicas at once pays
/// where their round trips differ by tens of milliseconds; on a LAN or
/// loopback they are all about equal, and the extra queries are only cost
/// (the 1,000-node loopback benchmark sent 16 % more lookup queries).
fn replica_width(configured: usize, network_rtt: Option<std::time::Duration>) -> usize {
    match network_rtt {
        Some(rtt) if rtt >= SPREAD_RTT => configured,
        _ => 0,
    }
}

/// A find_value reply as value or nodes; a find_node reply as nodes.
pub(super) fn parse_lookup_reply(kind: RpcKind, body: &Value) -> Option<FindValueReply> {
    match kind {
        RpcKind::FindValue => wire::parse_find_value_reply(body).ok(),
        _ => wire::parse_find_node_reply(body).ok().map(FindValueReply::Nodes),
    }
}

/// What an operation that is one lookup and then a result does with it.
pub(super) trait Then: Send {
    /// The target and kind of its lookup.
    fn lookup(&self) -> (NodeId, LookupKind);
    /// How many of the closest must answer before it ends; `None`: k.
    fn wanted(&self) -> Option<usize> {
        None
    }
    /// The lookup is done.
    fn found(&mut self, cx: &mut Cx, result: LookupResult, stats: LookupStats) -> Step;
}

/// An operation made of one lookup, started at its first poll, and `T`.
pub(super) struct SearchOp<T> {
    then: T,
    search: Option<Search>,
}

impl<T: Then> SearchOp<T> {
    pub(super) fn new(then: T) -> Self {
        SearchOp { then, search: None }
    }

    fn step(&mut self, cx: &mut Cx, progress: Progress) -> Step {
        match progress {
            Progress::Running => Step::Wait,
            Progress::Found(r, stats) => self.then.found(cx, *r, stats),
        }
    }
}

impl<T: Then> Operation for SearchOp<T> {
    fn poll(&mut self, cx: &mut Cx) -> Step {
        let progress = match &mut self.search {
            Some(s) => s.drive(cx),
            None => {
                let (target, kind) = self.then.lookup();
                let (s, progress) = match self.then.wanted() {
                    Some(n) => Search::start_sized(cx, target, kind, cx.svc.config.alpha, n),
                    None => Search::start(cx, target, kind),
                };
                self.search = Some(s);
                progress
            }
        };
        self.step(cx, progress)
    }

    fn on_reply(&mut self, cx: &mut Cx, reply: Reply) -> Step {
        let Some(s) = &mut self.search else { return Step::Wait };
        let progress = s.on_reply(cx, reply);
        self.step(cx, progress)
    }

    fn on_failure(&mut self, cx: &mut Cx, peer: Option<NodeId>, _kind: RpcKind) -> Step {
        let Some(s) = &mut self.search else { return Step::Wait };
        let progress = s.on_failure(cx, peer);
        self.step(cx, progress)
    }

    fn search(&self) -> Option<&Search> {
        self.search.as_ref()
    }

    fn on_nodes(&mut self, cx: &mut Cx, peer: NodeId, contacts: Vec<Contact>) -> Step {
        let Some(s) = &mut self.search else { return Step::Wait };
        let progress = s.on_nodes(cx, peer, contacts);
        self.step(cx, progress)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn replicas_are_asked_wide_only_where_round_trips_are_wide_area() {
        assert_eq!(replica_width(8, Some(Duration::from_millis(160))), 8);
        assert_eq!(replica_width(8, Some(SPREAD_RTT)), 8);
        assert_eq!(replica_width(8, Some(Duration::from_millis(1))), 0, "loopback or a LAN");
        assert_eq!(replica_width(8, None), 0, "nothing measured yet");
    }
}
