//! The engine: one Kademlia node as a sans-IO state machine.
//!
//! It ties together the routing table, in-flight requests, lookups, the record
//! store and the maintenance schedule. It owns no socket, reads no clock and
//! spawns nothing; a driver (the tokio [`node`](crate::node) or the simulator)
//! runs it:
//!
//! 1. feed inputs: [`Engine::handle_datagram`] for every datagram received,
//!    [`Engine::handle_timeout`] when [`Engine::poll_timeout`] passes, and
//!    commands such as [`Engine::get`] or [`Engine::put`];
//! 2. after each input, drain [`Engine::poll_transmit`] (datagrams to send)
//!    and [`Engine::poll_event`] (finished commands);
//! 3. sleep until [`Engine::poll_timeout`] or the next datagram.
//!
//! Every input takes `now`; the same inputs in the same order give the same
//! outputs, which is what makes seeded simulations reproducible.

mod config;
mod guard;
mod inbound;
mod maintenance;
mod ops;
mod outcome;
pub mod providers;
mod stats;
mod targets;

use std::collections::VecDeque;

use foldhash::HashMap;
use std::net::SocketAddr;

use bytes::Bytes;
use rand::{rngs::StdRng, Rng, SeedableRng};

pub use config::Config;
pub use guard::LimitStats;
pub use inbound::{HELLO, REPROBE_AFTER, STORE_TTL};
pub use outcome::{BootstrapOutcome, Event, GetOutcome, LookupStats, Outcome, PingReply, PutOutcome, QueryId};
pub use stats::{Stats, RPC_LABELS};

use crate::contact::Contact;
use crate::id::{Key, NodeId};
use crate::routing::RoutingTable;
use crate::rpc::{InFlight, RpcKind};
use crate::store::RecordStore;
use crate::time::Time;
use crate::wire::{Call, Datagram, MessageId, Value};
use maintenance::Maintenance;
use ops::Op;

/// A datagram the driver must send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub to: SocketAddr,
    /// The encoded datagram.
    pub payload: Bytes,
}

/// What a peer is known to speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerKind {
    /// Not asked yet, or the question is in flight.
    Unknown,
    /// Answers only the base RPCs (a stock Python peer, or an old node).
    Base,
    /// Answers our extension RPCs; the string is its version.
    Extended,
}

/// Why an outstanding request was sent: how to resume when it completes.
#[derive(Clone, Copy, Debug)]
enum Ctx {
    /// Part of a command or maintenance operation; `peer` is who we expect.
    Op { op: QueryId, peer: Option<NodeId> },
    /// Checking the least-recently-seen contact of a full bucket.
    Eviction { peer: NodeId },
    /// Asking a new contact whether it speaks our extensions.
    Hello { peer: NodeId },
    /// Nothing waits for the answer (record handover).
    Fire { peer: NodeId },
    /// A contact just failed a request: is it gone, or was a datagram lost?
    Verify { peer: NodeId },
}

/// One Kademlia node, without I/O.
pub struct Engine {
    id: NodeId,
    config: Config,
    rng: StdRng,
    routing: RoutingTable,
    in_flight: InFlight<Ctx>,
    store: RecordStore,
    ops: HashMap<QueryId, Op>,
    next_op: u64,
    /// Bounded (LRU): the sender of any `kadmesh_hello` lands here.
    peers: crate::limits::LruMap<NodeId, PeerKind>,
    /// When each contact was last sent `kadmesh_hello` (LRU-bounded).
    probed: crate::limits::LruMap<NodeId, Time>,
    /// Drops requests over the per-source and global rates.
    limiter: crate::limits::RateLimiter,
    maintenance: Maintenance,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: Stats,
    providers: providers::ProviderStore,
    rtt: crate::rtt::RttEstimate,
    put_targets: targets::PutTargets,
    /// Our own bootstrap is running: our table is too thin to judge who is
    /// among the k closest to a key, so no records are handed over.
    joining: bool,
}

impl Engine {
    /// A node with id `id`, started at `now`.
    pub fn new(id: NodeId, config: Config, now: Time) -> Self {
        let rng = StdRng::seed_from_u64(config.rng_seed);
        let maintenance = Maintenance::new(&config, now);
        Engine {
            id,
            routing: RoutingTable::new(id, config.k, now),
            store: RecordStore::with_quota(config.store_limits, config.limits.records),
            providers: providers::ProviderStore::with_quota(Default::default(), config.limits.providers),
            peers: crate::limits::LruMap::new(config.limits.max_peer_state),
            probed: crate::limits::LruMap::new(config.limits.max_peer_state),
            limiter: crate::limits::RateLimiter::new(config.limits.rate.clone(), now),
            config,
            rng,
            in_flight: InFlight::default(),
            ops: HashMap::default(),
            next_op: 0,
            maintenance,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            rtt: crate::rtt::RttEstimate::default(),
            put_targets: targets::PutTargets::default(),
            joining: false,
        }
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The settings in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The routing table (read-only).
    pub fn routing(&self) -> &RoutingTable {
        &self.routing
    }

    /// The records held (read-only).
    pub fn store(&self) -> &RecordStore {
        &self.store
    }

    /// Counters since start.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// What `id` is known to speak.
    pub fn peer_kind(&self, id: &NodeId) -> PeerKind {
        self.peers.peek(id).copied().unwrap_or(PeerKind::Unknown)
    }

    /// Commands and maintenance operations in progress.
    pub fn ops_in_progress(&self) -> usize {
        self.ops.len()
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next finished command.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Engine::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Time> {
        let lookups = self.ops.values().filter_map(Op::next_stall);
        [self.in_flight.next_deadline(), self.store.next_expiry(), Some(self.maintenance.next_due())]
            .into_iter()
            .flatten()
            .chain(self.providers.next_sweep())
            .chain(lookups)
            .min()
    }

    /// Advances timers to `now`: request timeouts, lookup stalls, record
    /// expiry and maintenance.
    pub fn handle_timeout(&mut self, now: Time) {
        for (_, pending) in self.in_flight.expire(now) {
            self.stats.timeouts += 1;
            self.on_request_failed(now, pending.context, pending.kind);
        }
        self.store.expire(now);
        self.providers.expire(now);
        let mut stalled: Vec<QueryId> =
            self.ops.iter().filter(|(_, op)| op.next_stall().is_some_and(|t| t <= now)).map(|(id, _)| *id).collect();
        // HashMap order differs between processes; sorted, runs replay exactly.
        stalled.sort_unstable();
        for q in stalled {
            self.drive(now, q);
        }
        self.run_maintenance(now);
    }

    /// Handles one datagram from `from`. Malformed input is counted, logged at
    /// debug level and dropped; it never changes state.
    pub fn handle_datagram(&mut self, now: Time, from: SocketAddr, data: &[u8]) {
        self.stats.datagrams_received += 1;
        if !self.admit(now, from, data) {
            return;
        }
        if self.on_lookup_nodes_fast(now, from, data) {
            return;
        }
        match crate::wire::decode(data) {
            Ok(Datagram::Request { id, call }) => self.on_request(now, from, id, call, data.len()),
            Ok(Datagram::Response { id, body }) => self.on_response(now, from, id, body),
            Err(e) => {
                self.stats.malformed += 1;
                tracing::debug!(%from, error = %e, "dropping malformed datagram");
            }
        }
    }

    fn alloc_op(&mut self) -> QueryId {
        self.next_op += 1;
        QueryId(self.next_op)
    }

    fn send_request(&mut self, now: Time, to: SocketAddr, call: Call, ctx: Ctx) -> bool {
        let kind = rpc_kind(&call);
        let id = MessageId(self.rng.gen());
        let payload = match (Datagram::Request { id, call }).encode() {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(%to, error = %e, "request not sent");
                return false;
            }
        };
        let timeout = if kind == RpcKind::Extension { self.config.extension_timeout } else { self.config.rpc_timeout };
        self.in_flight.insert(id, to, kind, now, timeout, ctx);
        self.stats.count_sent(kind);
        self.transmits.push_back(Transmit { to, payload: payload.into() });
        true
    }

    fn send_response(&mut self, to: SocketAddr, id: MessageId, body: Value) {
        match (Datagram::Response { id, body }).encode() {
            Ok(p) => self.transmits.push_back(Transmit { to, payload: p.into() }),
            Err(e) => tracing::debug!(%to, error = %e, "response not sent"),
        }
    }

    fn emit(&mut self, op: QueryId, outcome: Outcome) {
        self.events.push_back(Event { id: op, outcome });
    }

    /// The `n` contacts closest to `target` in the routing table.
    pub fn closest(&self, target: &Key, n: usize) -> Vec<Contact> {
        self.routing.closest(target, n)
    }
}

fn rpc_kind(call: &Call) -> RpcKind {
    match call {
        Call::Ping { .. } => RpcKind::Ping,
        Call::Store { .. } => RpcKind::Store,
        Call::FindNode { .. } => RpcKind::FindNode,
        Call::FindValue { .. } => RpcKind::FindValue,
        Call::Stun => RpcKind::Stun,
        Call::Other { .. } => RpcKind::Extension,
    }
}

#[cfg(test)]
mod tests;
