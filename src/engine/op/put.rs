//! `put`, republish and replicate: find the k closest nodes to the key (by
//! lookup, or for a publisher's re-put from [`targets`](super::targets)),
//! keep a copy when we are among them, and store to each.
//!
//! A command's put reports its outcome; a maintenance put (republish,
//! replicate) frees its slot in the maintenance queue instead, and a
//! replica whose lookup found k nodes closer than us leaves the key's
//! neighbourhood ([`leave`](super::leave)): it hands its copy to those of
//! them that lack the record, never over a copy they hold, then drops it.

use std::time::Duration;

use super::leave::{self, Leaving};
use super::search::{Progress, Search};
use super::{targets, Cx, Finished, Operation, Reply, Step};
use crate::contact::Contact;
use crate::engine::inbound::STORE_TTL;
use crate::engine::{Engine, LookupStats, Outcome, PeerKind, PutOutcome, QueryId};
use crate::id::{Key, NodeId};
use crate::lookup::LookupKind;
use crate::rpc::RpcKind;
use crate::store::StoreError;
use crate::time::Time;
use crate::wire::{self, Call, Value};

/// How many bytes a `kadmesh_store_ttl` request takes beyond a plain
/// `store` of the same value: 12 for the longer procedure name and 5 for
/// the lifetime (a msgpack uint32; a day is 86 400 s). Values within this
/// of [`MAX_VALUE_BYTES`](crate::store::MAX_VALUE_BYTES) travel as plain stores.
pub(in crate::engine) const STORE_TTL_EXTRA_BYTES: usize = 17;

impl Engine {
    /// Stores `value` under `key` at the k closest nodes and republishes it
    /// on schedule for as long as this node runs (until [`Engine::unpublish`]).
    pub fn put(&mut self, now: Time, key: Key, value: Value) -> QueryId {
        let op = self.alloc_op();
        let size = value.to_msgpack().len();
        let max = self.svc.config.store_limits.max_value_bytes;
        if size > max {
            let outcome = PutOutcome {
                key,
                stored: 0,
                attempted: 0,
                stored_locally: false,
                rejected: Some(StoreError::TooLarge { size, max }),
                stats: LookupStats::default(),
            };
            self.emit(op, Outcome::Put(outcome));
            return op;
        }
        self.maintenance.publish(key, value.clone(), now, self.svc.config.republish_interval);
        self.launch(now, op, Box::new(Put { key, value, report: true, ttl: None, phase: Phase::Start, lacking: None }));
        op
    }
}

/// A `store` for stock peers; for ours, when `ttl` is given and the value
/// leaves room, a `kadmesh_store_ttl` that also carries the lifetime.
pub(in crate::engine) fn store_call(
    local: NodeId,
    peer: PeerKind,
    key: Key,
    value: Value,
    ttl: Option<Duration>,
) -> Call {
    let fits = || value.to_msgpack().len() + STORE_TTL_EXTRA_BYTES <= crate::store::MAX_VALUE_BYTES;
    match (ttl, peer) {
        (Some(ttl), PeerKind::Extended) if fits() => Call::Other {
            name: STORE_TTL.into(),
            args: vec![
                Value::Bin(local.0.to_vec()),
                Value::Bin(key.0.to_vec()),
                value,
                // Rounded up: a sub-second lifetime must not arrive as 0 (expired).
                Value::Int(ttl.as_secs().saturating_add(u64::from(ttl.subsec_nanos() > 0)) as i64),
            ],
        },
        _ => Call::Store { sender: local, key, value },
    }
}

/// A put in progress.
pub(in crate::engine) struct Put {
    key: Key,
    value: Value,
    /// A command's put: reported, and may reuse its last targets.
    report: bool,
    /// The lifetime extension peers are told; `None` is the default.
    ttl: Option<Duration>,
    phase: Phase,
    /// A contact that answered our probe without the key.
    lacking: Option<NodeId>,
}

enum Phase {
    Start,
    /// A replica our table no longer counts among the k closest asks the
    /// nearest contact for the key before anything else (see [`Put::leaving`]).
    Probe {
        nearest: Contact,
        sent: bool,
    },
    Search(Search),
    Storing(Storing),
    Leaving(Leaving),
}

struct Storing {
    pending: usize,
    stored: usize,
    attempted: usize,
    local: bool,
    stats: LookupStats,
    /// The target asked for the key's neighbourhood (a lookup-free re-put).
    probe: Option<NodeId>,
}

impl Put {
    /// A republish (`ttl: None`) or replication of `key` for the maintenance queue.
    pub(in crate::engine) fn task(key: Key, value: Value, ttl: Option<Duration>) -> Box<dyn Operation> {
        Box::new(Put { key, value, report: false, ttl, phase: Phase::Start, lacking: None })
    }

    /// The replication of a copy our table says is no longer among the k
    /// closest. The table may list dead contacts nearer the key, so it does
    /// not decide alone: `nearest` (the closest contact not known to have
    /// failed) is asked for the key first. If it holds it, the neighbourhood
    /// has the record and ours is dropped after one request. If it answers
    /// without it, the key is looked up as by any replica, and the lookup
    /// decides whether we replicate or leave ([`leave`]). If it is silent,
    /// the copy is kept as it is and asked about again at the next sweep,
    /// when the silent contact, now failed, is no longer the nearest: a
    /// lookup here would be the likeliest to come back short of k under
    /// load, count us among the closest and re-replicate a leftover, and
    /// on an overloaded loopback host that fed on itself (eight times the
    /// replications).
    pub(in crate::engine) fn leaving(
        key: Key,
        value: Value,
        ttl: Option<Duration>,
        nearest: Contact,
    ) -> Box<dyn Operation> {
        let phase = Phase::Probe { nearest, sent: false };
        Box::new(Put { key, value, report: false, ttl, phase, lacking: None })
    }

    fn probe(&mut self, cx: &mut Cx) -> Step {
        let Phase::Probe { nearest, sent } = &mut self.phase else { return Step::Wait };
        if *sent {
            return Step::Wait;
        }
        *sent = true;
        let nearest = *nearest;
        if cx.send(nearest.addr, Call::FindValue { sender: cx.svc.id, key: self.key }, Some(nearest.id)) {
            return Step::Wait;
        }
        // Not sent (no budget towards it): kept, and asked about again later.
        Step::Done(Finished::Task)
    }

    /// The probe's answer (`None`: none came, or garbage).
    fn on_probe(&mut self, cx: &mut Cx, peer: Option<NodeId>, holds: Option<bool>) -> Step {
        match holds {
            Some(true) => leave::drop_copy(cx, self.key),
            Some(false) => {
                self.lacking = peer;
                self.phase = Phase::Start;
                self.start(cx)
            }
            None => Step::Done(Finished::Task),
        }
    }

    fn start(&mut self, cx: &mut Cx) -> Step {
        let k = cx.svc.config.k;
        let max_age = cx.svc.config.put_lookup_every;
        let reuse =
            self.report.then(|| targets::reusable(cx.put_targets, &cx.svc.routing, &self.key, cx.now, max_age, k));
        if let Some(Some(closest)) = reuse {
            let nearest = closest.first().copied();
            return match self.start_storing(cx, closest, LookupStats::default()) {
                Step::Wait => self.check_neighbourhood(cx, nearest),
                step => step,
            };
        }
        let (search, progress) = Search::start(cx, self.key, LookupKind::FindNode);
        self.phase = Phase::Search(search);
        self.on_progress(cx, progress)
    }

    fn on_progress(&mut self, cx: &mut Cx, progress: Progress) -> Step {
        let Progress::Found(r, stats) = progress else { return Step::Wait };
        if cx.maintenance.is_published(&self.key) {
            cx.put_targets.remember(self.key, r.closest.clone(), cx.now);
        }
        self.start_storing(cx, r.closest, stats)
    }

    fn start_storing(&mut self, cx: &mut Cx, closest: Vec<Contact>, stats: LookupStats) -> Step {
        let (key, id, k) = (self.key, cx.svc.id, cx.svc.config.k);
        // Keep a copy when we are among the k closest, as the Python package does.
        let near = closest.len() < k || closest.last().is_some_and(|far| id.distance(&key) < far.id.distance(&key));
        let published = cx.maintenance.is_published(&key);
        if !self.report && !near && !published {
            // A replica's lookup found k nodes closer than us: ours is a
            // leftover, handed to those of them that lack it, then dropped.
            let leaving = Leaving::start(cx, key, closest, self.lacking);
            let step = leaving.finish(cx, key, &self.value, self.ttl);
            self.phase = Phase::Leaving(leaving);
            return step;
        }
        // A replication that reached nobody must not refresh our copy's
        // stored_at: that would make an unreplicated record look just
        // replicated. The publisher's own copy is always renewed.
        let refresh = self.report || !closest.is_empty() || published;
        let local = near && refresh && self.store_locally(cx);
        let mut pending = 0;
        for c in &closest {
            let call = store_call(id, cx.peers.kind(&c.id), key, self.value.clone(), self.ttl);
            pending += usize::from(cx.send(c.addr, call, Some(c.id)));
        }
        if !self.report {
            cx.svc.stats.republished += 1;
        }
        let attempted = closest.len();
        self.phase = Phase::Storing(Storing { pending, stored: 0, attempted, local, stats, probe: None });
        self.finish_if_done()
    }

    fn store_locally(&self, cx: &mut Cx) -> bool {
        let record_ttl = cx.svc.config.record_ttl;
        let ttl = self.ttl.unwrap_or(record_ttl).min(record_ttl);
        match cx.store.put(self.key, self.value.clone(), Some(cx.svc.id), cx.now, ttl) {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(key = %self.key, error = %e, "local copy not kept");
                false
            }
        }
    }

    fn finish_if_done(&self) -> Step {
        let Phase::Storing(s) = &self.phase else { return Step::Wait };
        match (s.pending, self.report) {
            (0, true) => {
                let (key, stored, attempted, stored_locally, stats) =
                    (self.key, s.stored, s.attempted, s.local, s.stats);
                let outcome = PutOutcome { key, stored, attempted, stored_locally, rejected: None, stats };
                Step::Done(Finished::Report(Outcome::Put(outcome)))
            }
            (0, false) => Step::Done(Finished::Task),
            _ => Step::Wait,
        }
    }

    /// Asks `nearest` for the neighbourhood of the key on behalf of a
    /// lookup-free put, which stays open until the answer is in.
    fn check_neighbourhood(&mut self, cx: &mut Cx, nearest: Option<Contact>) -> Step {
        let Some(c) = nearest else { return Step::Wait };
        let call = Call::FindNode { sender: cx.svc.id, key: self.key };
        if cx.send(c.addr, call, Some(c.id)) {
            if let Phase::Storing(s) = &mut self.phase {
                s.pending += 1;
                s.probe = Some(c.id);
            }
        }
        Step::Wait
    }

    /// The neighbourhood answer (empty if it never came): stores to the
    /// newcomers among the k closest.
    fn on_neighbourhood(&mut self, cx: &mut Cx, mut nodes: Vec<Contact>) -> Step {
        let Phase::Storing(s) = &mut self.phase else { return Step::Wait };
        s.pending = s.pending.saturating_sub(1);
        if s.probe.take().is_none() {
            return Step::Wait;
        }
        nodes.retain(|c| c.id != cx.svc.id && cx.svc.routing.failures(&c.id).is_none_or(|f| f == 0));
        let mut sent = 0;
        for c in cx.put_targets.admit(&self.key, nodes, cx.svc.config.k) {
            let call = store_call(cx.svc.id, cx.peers.kind(&c.id), self.key, self.value.clone(), None);
            sent += usize::from(cx.send(c.addr, call, Some(c.id)));
        }
        s.pending += sent;
        s.attempted += sent;
        self.finish_if_done()
    }

    fn leaving_step(&self, cx: &mut Cx) -> Step {
        let Phase::Leaving(l) = &self.phase else { return Step::Wait };
        l.finish(cx, self.key, &self.value, self.ttl)
    }

    /// A store was answered (`took`: accepted) or failed.
    fn on_store(&mut self, cx: &mut Cx, peer: Option<NodeId>, took: bool) -> Step {
        let Phase::Storing(s) = &mut self.phase else { return Step::Wait };
        s.pending = s.pending.saturating_sub(1);
        s.stored += usize::from(took);
        if let Some(p) = peer {
            cx.put_targets.stored(&self.key, &p, took);
        }
        self.finish_if_done()
    }
}

impl Storing {
    /// Whether a request to `peer` of `kind` is the neighbourhood query.
    fn is_probe(&self, peer: Option<NodeId>, kind: RpcKind) -> bool {
        self.probe.is_some() && peer == self.probe && kind == RpcKind::FindNode
    }
}

/// Whether a reply or failure from `peer` of `kind` answers the probe sent to `nearest`.
fn is_answer_of(nearest: &Contact, peer: Option<NodeId>, kind: RpcKind) -> bool {
    kind == RpcKind::FindValue && peer == Some(nearest.id)
}

/// Whether a request of this kind is one of a put's stores (`store`, or the
/// `kadmesh_store_ttl` extension). Other replies in the storing phase are
/// late ones to the lookup.
fn is_store(kind: RpcKind) -> bool {
    matches!(kind, RpcKind::Store | RpcKind::Extension)
}

impl Operation for Put {
    fn poll(&mut self, cx: &mut Cx) -> Step {
        match &mut self.phase {
            Phase::Start => self.start(cx),
            Phase::Probe { .. } => self.probe(cx),
            Phase::Search(s) => {
                let progress = s.drive(cx);
                self.on_progress(cx, progress)
            }
            Phase::Storing(_) | Phase::Leaving(_) => Step::Wait,
        }
    }

    fn on_reply(&mut self, cx: &mut Cx, reply: Reply) -> Step {
        match &mut self.phase {
            Phase::Start => Step::Wait,
            Phase::Probe { nearest, .. } if is_answer_of(nearest, reply.peer, reply.kind) => {
                self.on_probe(cx, reply.peer, leave::holds(&reply.body))
            }
            Phase::Probe { .. } => Step::Wait,
            Phase::Search(s) => {
                let progress = s.on_reply(cx, reply);
                self.on_progress(cx, progress)
            }
            Phase::Storing(_) if is_store(reply.kind) => {
                let took = wire::parse_store_reply(&reply.body).unwrap_or(false);
                self.on_store(cx, reply.peer, took)
            }
            Phase::Storing(s) if s.is_probe(reply.peer, reply.kind) => {
                let nodes = wire::parse_find_node_reply(&reply.body).unwrap_or_default();
                self.on_neighbourhood(cx, nodes)
            }
            Phase::Storing(_) => Step::Wait,
            Phase::Leaving(l) if l.is_ask(reply.peer, reply.kind) => {
                l.on_answer(cx, self.key, reply.peer, leave::holds(&reply.body));
                self.leaving_step(cx)
            }
            Phase::Leaving(_) => Step::Wait,
        }
    }

    fn on_failure(&mut self, cx: &mut Cx, peer: Option<NodeId>, kind: RpcKind) -> Step {
        match &mut self.phase {
            Phase::Start => Step::Wait,
            Phase::Probe { nearest, .. } if is_answer_of(nearest, peer, kind) => self.on_probe(cx, peer, None),
            Phase::Probe { .. } => Step::Wait,
            Phase::Search(s) => {
                let progress = s.on_failure(cx, peer);
                self.on_progress(cx, progress)
            }
            Phase::Storing(_) if is_store(kind) => self.on_store(cx, peer, false),
            Phase::Storing(s) if s.is_probe(peer, kind) => self.on_neighbourhood(cx, Vec::new()),
            Phase::Storing(_) => Step::Wait,
            Phase::Leaving(l) if l.is_ask(peer, kind) => {
                l.on_answer(cx, self.key, peer, None);
                self.leaving_step(cx)
            }
            Phase::Leaving(_) => Step::Wait,
        }
    }

    super::search_phase!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Datagram, MessageId};

    #[test]
    fn store_ttl_extra_bytes_is_what_the_lifetime_costs_on_the_wire() {
        let (local, key) = (NodeId([1; 20]), NodeId([2; 20]));
        let value = Value::Str("x".repeat(100));
        let len = |call: Call| Datagram::Request { id: MessageId([0; 20]), call }.encode().unwrap().len();
        let plain = len(store_call(local, PeerKind::Extended, key, value.clone(), None));
        for ttl in [1, 60, 86_400, u64::from(u32::MAX)] {
            let with_ttl =
                len(store_call(local, PeerKind::Extended, key, value.clone(), Some(Duration::from_secs(ttl))));
            assert!(with_ttl - plain <= STORE_TTL_EXTRA_BYTES, "ttl {ttl}: {} extra bytes", with_ttl - plain);
        }
        let day = len(store_call(local, PeerKind::Extended, key, value.clone(), Some(Duration::from_secs(86_400))));
        assert_eq!(day - plain, STORE_TTL_EXTRA_BYTES, "a day's lifetime is the case the constant is sized for");
        // Stock peers always get a plain store.
        assert!(matches!(
            store_call(local, PeerKind::Base, key, value, Some(Duration::from_secs(1))),
            Call::Store { .. }
        ));
    }
}
