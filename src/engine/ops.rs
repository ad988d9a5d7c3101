//! Commands (get, put, find_node, bootstrap, ping, stun, call) and the
//! maintenance operations built from the same pieces.

use std::net::SocketAddr;
use std::time::Duration;

use super::{
    BootstrapOutcome, Ctx, Engine, GetOutcome, LookupStats, Outcome, PeerKind, PingReply, PutOutcome, QueryId,
};
use crate::contact::Contact;
use crate::id::{Key, NodeId};
use crate::lookup::{Lookup, LookupKind, LookupResult, Next};
use crate::rpc::RpcKind;
use crate::time::Time;
use crate::wire::{self, Call, FindValueReply, Value};

/// Why an operation runs; internal ones report no event.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Purpose {
    Get,
    FindNode,
    /// A put by a command (`report`) or by the republisher; `ttl` is what
    /// extension peers are told, `None` meaning the default lifetime.
    Put {
        value: Value,
        report: bool,
        ttl: Option<Duration>,
    },
    Bootstrap {
        seeds_tried: usize,
        seeds_reached: usize,
    },
    Refresh,
}

pub(super) enum Op {
    Lookup {
        lookup: Lookup,
        purpose: Purpose,
        started: Time,
    },
    Storing {
        key: Key,
        pending: usize,
        stored: usize,
        attempted: usize,
        local: bool,
        stats: LookupStats,
        report: bool,
        /// A re-put without lookup asks this target for the key's
        /// neighbourhood and stores the value to newcomers it names.
        probe: Option<(NodeId, Value)>,
    },
    Pinging {
        seeds_tried: usize,
        pending: usize,
        reached: Vec<Contact>,
    },
    Single {
        kind: RpcKind,
    },
}

impl Op {
    pub(super) fn next_stall(&self) -> Option<Time> {
        match self {
            Op::Lookup { lookup, .. } => lookup.next_stall(),
            _ => None,
        }
    }
}

impl Engine {
    /// Looks up `key`: this node's store first, then the network.
    pub fn get(&mut self, now: Time, key: Key) -> QueryId {
        let op = self.alloc_op();
        if let Some(r) = self.servable(&key, now) {
            let outcome = GetOutcome { key, value: Some(r.value.clone()), local: true, stats: LookupStats::default() };
            self.emit(op, Outcome::Get(outcome));
            return op;
        }
        self.start_lookup(now, op, key, LookupKind::FindValue, Purpose::Get);
        op
    }

    /// Stores `value` under `key` at the k closest nodes and republishes it
    /// on schedule for as long as this node runs (until [`Engine::unpublish`]).
    pub fn put(&mut self, now: Time, key: Key, value: Value) -> QueryId {
        let op = self.alloc_op();
        let size = value.to_msgpack().len();
        let max = self.config.store_limits.max_value_bytes;
        if size > max {
            let rejected = Some(crate::store::StoreError::TooLarge { size, max });
            let outcome = PutOutcome {
                key,
                stored: 0,
                attempted: 0,
                stored_locally: false,
                rejected,
                stats: LookupStats::default(),
            };
            self.emit(op, Outcome::Put(outcome));
            return op;
        }
        self.maintenance.publish(key, value.clone(), now, self.config.republish_interval);
        if let Some(closest) = self.reusable_targets(&key, now) {
            let nearest = closest.first().copied();
            self.start_storing(now, op, key, value.clone(), closest, LookupStats::default(), true, None);
            self.check_neighbourhood(now, op, key, value, nearest);
            return op;
        }
        self.start_lookup(now, op, key, LookupKind::FindNode, Purpose::Put { value, report: true, ttl: None });
        op
    }

    /// The k closest nodes to `target`.
    pub fn find_node(&mut self, now: Time, target: NodeId) -> QueryId {
        let op = self.alloc_op();
        self.start_lookup(now, op, target, LookupKind::FindNode, Purpose::FindNode);
        op
    }

    /// Pings every seed, then looks up our own id through those that answered.
    pub fn bootstrap(&mut self, now: Time, seeds: &[SocketAddr]) -> QueryId {
        let op = self.alloc_op();
        self.joining = true;
        let mut pending = 0;
        for &addr in seeds {
            if self.send_request(now, addr, Call::Ping { sender: self.id }, Ctx::Op { op, peer: None }) {
                pending += 1;
            }
        }
        self.ops.insert(op, Op::Pinging { seeds_tried: seeds.len(), pending, reached: Vec::new() });
        if pending == 0 {
            self.finish_pinging(now, op);
        }
        op
    }

    /// Pings one address.
    pub fn ping(&mut self, now: Time, addr: SocketAddr) -> QueryId {
        self.single(now, addr, Call::Ping { sender: self.id })
    }

    /// Asks `addr` what address our datagrams come from.
    pub fn stun(&mut self, now: Time, addr: SocketAddr) -> QueryId {
        self.single(now, addr, Call::Stun)
    }

    /// Calls any procedure on `addr` and reports the raw reply.
    pub fn call(&mut self, now: Time, addr: SocketAddr, call: Call) -> QueryId {
        self.single(now, addr, call)
    }

    fn single(&mut self, now: Time, addr: SocketAddr, call: Call) -> QueryId {
        let op = self.alloc_op();
        let kind = super::rpc_kind(&call);
        self.ops.insert(op, Op::Single { kind });
        if !self.send_request(now, addr, call, Ctx::Op { op, peer: None }) {
            self.on_op_failure(now, op, None, kind);
        }
        op
    }

    pub(super) fn start_lookup(&mut self, now: Time, op: QueryId, target: NodeId, kind: LookupKind, purpose: Purpose) {
        self.routing.touch(&target, now);
        // Twice k starting contacts: when the k closest we know are dead,
        // the next ones take their place instead of the lookup ending empty.
        // Contacts that just timed out are left out while a ping checks them.
        let mut seeds = self.routing.closest_unfailed(&target, 2 * self.config.k);
        if seeds.is_empty() {
            seeds = self.routing.closest(&target, 2 * self.config.k);
        }
        let stall = self.rtt.stall_after(self.config.lookup_stall_min, self.config.lookup_stall);
        let lookup = Lookup::new(target, self.id, kind, self.config.k, self.config.alpha, stall).with_seeds(seeds);
        self.ops.insert(op, Op::Lookup { lookup, purpose, started: now });
        self.drive(now, op);
    }

    /// Sends whatever a lookup wants sent and finishes it when it is done.
    pub(super) fn drive(&mut self, now: Time, op: QueryId) {
        loop {
            let Some(Op::Lookup { lookup, .. }) = self.ops.get_mut(&op) else { return };
            let kind = lookup.kind();
            let target = lookup.target();
            let next = lookup.next(now);
            for id in lookup.take_stalled() {
                self.routing.mark_suspect(&id);
            }
            match next {
                Next::Query(c) => {
                    let call = match kind {
                        LookupKind::FindNode => Call::FindNode { sender: self.id, key: target },
                        LookupKind::FindValue => Call::FindValue { sender: self.id, key: target },
                    };
                    if !self.send_request(now, c.addr, call, Ctx::Op { op, peer: Some(c.id) }) {
                        if let Some(Op::Lookup { lookup, .. }) = self.ops.get_mut(&op) {
                            lookup.on_failure(&c.id);
                        }
                    }
                }
                Next::Wait => return,
                Next::Done => return self.finish_lookup(now, op),
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_op_reply(
        &mut self,
        now: Time,
        op: QueryId,
        peer: Option<NodeId>,
        to: SocketAddr,
        kind: RpcKind,
        body: Value,
        rtt: Duration,
    ) {
        if let Some(p) = peer {
            self.learn_answered(now, Contact::new(p, to));
        }
        match self.ops.get_mut(&op) {
            Some(Op::Lookup { purpose, .. }) if peer.is_none() && kind == RpcKind::Ping => {
                // A seed answering after the bootstrap lookup started.
                if let (Ok(id), Purpose::Bootstrap { seeds_reached, .. }) = (wire::parse_ping_reply(&body), purpose) {
                    *seeds_reached += 1;
                    self.learn_answered(now, Contact::new(id, to));
                }
            }
            Some(Op::Lookup { lookup, .. }) => {
                let Some(p) = peer else { return };
                match parse_lookup_reply(kind, &body) {
                    Some(FindValueReply::Value(v)) => lookup.on_value(&p, v),
                    Some(FindValueReply::Nodes(n)) => return self.on_lookup_nodes(now, op, p, n),
                    None => lookup.on_failure(&p),
                }
                self.drive(now, op);
            }
            // Replies to the lookup that preceded the stores are not acks.
            Some(Op::Storing { pending, stored, key, .. }) if is_store(kind) => {
                *pending = pending.saturating_sub(1);
                let took = wire::parse_store_reply(&body).unwrap_or(false);
                *stored += usize::from(took);
                if let Some(p) = peer {
                    let key = *key;
                    self.put_targets.stored(&key, &p, took);
                }
                self.finish_storing_if_done(op);
            }
            Some(Op::Storing { probe: Some((asked, _)), .. }) if peer == Some(*asked) && kind == RpcKind::FindNode => {
                let nodes = match parse_lookup_reply(kind, &body) {
                    Some(FindValueReply::Nodes(n)) => n,
                    _ => Vec::new(),
                };
                self.on_neighbourhood(now, op, nodes);
            }
            Some(Op::Pinging { pending, reached, .. }) => {
                *pending = pending.saturating_sub(1);
                if let Ok(id) = wire::parse_ping_reply(&body) {
                    reached.push(Contact::new(id, to));
                    // The first seed that answers is enough to start the
                    // lookup: waiting for dead seeds' timeouts would cost
                    // bootstrap seconds. Later answers are counted below.
                    return self.finish_pinging(now, op);
                }
                self.finish_pinging_if_done(now, op);
            }
            Some(Op::Single { .. }) => {
                self.ops.remove(&op);
                let outcome = match kind {
                    RpcKind::Ping => Outcome::Ping(wire::parse_ping_reply(&body).ok().map(|id| PingReply { id, rtt })),
                    RpcKind::Stun => Outcome::Stun(wire::parse_stun_reply(&body).ok()),
                    _ => Outcome::Call(Some(body)),
                };
                if let Outcome::Ping(Some(r)) = &outcome {
                    self.learn_answered(now, Contact::new(r.id, to));
                }
                self.emit(op, outcome);
            }
            Some(Op::Storing { .. }) | None => {}
        }
    }

    /// Lookup `op`'s query to `peer` answered with `contacts`.
    pub(super) fn on_lookup_nodes(&mut self, now: Time, op: QueryId, peer: NodeId, mut contacts: Vec<Contact>) {
        // Others may still list a node that has just timed out on us.
        contacts.retain(|c| self.routing.failures(&c.id).is_none_or(|f| f == 0));
        if let Some(Op::Lookup { lookup, .. }) = self.ops.get_mut(&op) {
            lookup.on_nodes(&peer, contacts);
        }
        self.drive(now, op);
    }

    pub(super) fn on_op_failure(&mut self, now: Time, op: QueryId, peer: Option<NodeId>, kind: RpcKind) {
        match self.ops.get_mut(&op) {
            Some(Op::Lookup { lookup, .. }) => {
                if let Some(p) = peer {
                    lookup.on_failure(&p);
                }
                self.drive(now, op);
            }
            Some(Op::Storing { pending, key, .. }) if is_store(kind) => {
                *pending = pending.saturating_sub(1);
                let key = *key;
                if let Some(p) = peer {
                    self.put_targets.stored(&key, &p, false);
                }
                self.finish_storing_if_done(op);
            }
            Some(Op::Storing { probe: Some((asked, _)), .. }) if peer == Some(*asked) && kind == RpcKind::FindNode => {
                self.on_neighbourhood(now, op, Vec::new());
            }
            Some(Op::Pinging { pending, .. }) => {
                *pending = pending.saturating_sub(1);
                self.finish_pinging_if_done(now, op);
            }
            Some(&mut Op::Single { kind }) => {
                self.ops.remove(&op);
                let outcome = match kind {
                    RpcKind::Ping => Outcome::Ping(None),
                    RpcKind::Stun => Outcome::Stun(None),
                    _ => Outcome::Call(None),
                };
                self.emit(op, outcome);
            }
            Some(Op::Storing { .. }) | None => {}
        }
    }

    fn finish_lookup(&mut self, now: Time, op: QueryId) {
        let Some(Op::Lookup { lookup, purpose, started }) = self.ops.remove(&op) else { return };
        let r = lookup.finish();
        let stats =
            LookupStats { queried: r.queried, failed: r.failed, hops: r.hops, duration: now.saturating_since(started) };
        match purpose {
            Purpose::Get => self.finish_get(now, op, lookup.target(), r, stats),
            Purpose::FindNode => {
                self.emit(op, Outcome::FindNode { target: lookup.target(), closest: r.closest, stats })
            }
            Purpose::Put { value, report, ttl } => {
                if self.maintenance.is_published(&lookup.target()) {
                    self.put_targets.remember(lookup.target(), r.closest.clone(), now);
                }
                self.start_storing(now, op, lookup.target(), value, r.closest, stats, report, ttl)
            }
            Purpose::Bootstrap { seeds_tried, seeds_reached } => {
                self.joining = false;
                let outcome = BootstrapOutcome { seeds_reached, seeds_tried, table_size: self.routing.len() };
                self.emit(op, Outcome::Bootstrap(outcome));
            }
            Purpose::Refresh => self.maintenance.op_finished(),
        }
    }

    fn finish_get(&mut self, now: Time, op: QueryId, key: Key, r: LookupResult, stats: LookupStats) {
        // Paper 2.3: cache the value at the closest node that lacked it, for a
        // short while. Not at stock peers: a plain store would live there for a
        // day and be re-replicated over newer values every hour.
        let extended = |c: &Contact| self.peer_kind(&c.id) == PeerKind::Extended;
        if let (Some(v), Some(c)) = (&r.value, r.store_at.filter(extended)) {
            // A value too big to carry its lifetime would go as a plain store.
            let call = self.store_call(c.id, key, v.clone(), Some(self.config.cache_ttl));
            if matches!(call, Call::Other { .. }) {
                self.send_request(now, c.addr, call, Ctx::Fire { peer: c.id });
            }
        }
        self.emit(op, Outcome::Get(GetOutcome { key, value: r.value, local: false, stats }));
    }

    #[allow(clippy::too_many_arguments)]
    fn start_storing(
        &mut self,
        now: Time,
        op: QueryId,
        key: Key,
        value: Value,
        closest: Vec<Contact>,
        stats: LookupStats,
        report: bool,
        ttl: Option<Duration>,
    ) {
        // Keep a copy when we are among the k closest, as the Python package does.
        let near = closest.len() < self.config.k
            || closest.last().is_some_and(|far| self.id.distance(&key) < far.id.distance(&key));
        if !report && !near && !self.maintenance.is_published(&key) {
            // A replica's lookup found k nodes closer than us (our table was
            // thin, e.g. just after a restart): ours is a leftover, and pushing
            // it would overwrite their newer copies.
            self.store.remove(&key);
            return self.maintenance.op_finished();
        }
        // A replication that reached nobody must not refresh our copy's
        // stored_at: that would make an unreplicated record look just
        // replicated. The publisher's own copy is always renewed.
        let refresh = report || !closest.is_empty() || self.maintenance.is_published(&key);
        let local = near && refresh && self.store_locally(now, key, value.clone(), ttl);
        let mut pending = 0;
        for c in &closest {
            let call = self.store_call(c.id, key, value.clone(), ttl);
            if self.send_request(now, c.addr, call, Ctx::Op { op, peer: Some(c.id) }) {
                pending += 1;
            }
        }
        let attempted = closest.len();
        if !report {
            self.stats.republished += 1;
        }
        let storing = Op::Storing { key, pending, stored: 0, attempted, local, stats, report, probe: None };
        self.ops.insert(op, storing);
        self.finish_storing_if_done(op);
    }

    fn store_locally(&mut self, now: Time, key: Key, value: Value, ttl: Option<Duration>) -> bool {
        let ttl = ttl.unwrap_or(self.config.record_ttl).min(self.config.record_ttl);
        match self.store.put(key, value, Some(self.id), now, ttl) {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(%key, error = %e, "local copy not kept");
                false
            }
        }
    }

    /// A plain `store` for stock peers; ours also learn the remaining lifetime.
    pub(super) fn store_call(&self, peer: NodeId, key: Key, value: Value, ttl: Option<Duration>) -> Call {
        // The lifetime costs 17 more bytes than a plain store; values within
        // 17 bytes of the limit travel as plain stores.
        let fits = || value.to_msgpack().len() + 17 <= crate::store::MAX_VALUE_BYTES;
        match (ttl, self.peer_kind(&peer)) {
            (Some(ttl), PeerKind::Extended) if fits() => Call::Other {
                name: super::inbound::STORE_TTL.into(),
                args: vec![
                    Value::Bin(self.id.0.to_vec()),
                    Value::Bin(key.0.to_vec()),
                    value,
                    // Rounded up: a sub-second lifetime must not arrive as 0 (expired).
                    Value::Int(ttl.as_secs().saturating_add(u64::from(ttl.subsec_nanos() > 0)) as i64),
                ],
            },
            _ => Call::Store { sender: self.id, key, value },
        }
    }

    pub(super) fn finish_storing_if_done(&mut self, op: QueryId) {
        let Some(Op::Storing { pending: 0, .. }) = self.ops.get(&op) else { return };
        let Some(Op::Storing { key, stored, attempted, local, stats, report, .. }) = self.ops.remove(&op) else {
            return;
        };
        if report {
            let outcome = PutOutcome { key, stored, attempted, stored_locally: local, rejected: None, stats };
            self.emit(op, Outcome::Put(outcome));
        } else {
            self.maintenance.op_finished();
        }
    }

    fn finish_pinging_if_done(&mut self, now: Time, op: QueryId) {
        if let Some(Op::Pinging { pending: 0, .. }) = self.ops.get(&op) {
            self.finish_pinging(now, op);
        }
    }

    fn finish_pinging(&mut self, now: Time, op: QueryId) {
        let Some(Op::Pinging { seeds_tried, reached, .. }) = self.ops.remove(&op) else { return };
        for c in &reached {
            self.learn_answered(now, *c);
        }
        let purpose = Purpose::Bootstrap { seeds_tried, seeds_reached: reached.len() };
        self.start_lookup(now, op, self.id, LookupKind::FindNode, purpose);
    }
}

/// Whether a request of this kind is one of a put's stores (`store`, or the
/// `kadmesh_store_ttl` extension).
fn is_store(kind: RpcKind) -> bool {
    matches!(kind, RpcKind::Store | RpcKind::Extension)
}

fn parse_lookup_reply(kind: RpcKind, body: &Value) -> Option<FindValueReply> {
    match kind {
        RpcKind::FindValue => wire::parse_find_value_reply(body).ok(),
        _ => wire::parse_find_node_reply(body).ok().map(FindValueReply::Nodes),
    }
}
