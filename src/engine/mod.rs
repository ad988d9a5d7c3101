//! The engine: one Kademlia node as a sans-IO state machine.
//!
//! It owns no socket, reads no clock and spawns nothing; a driver (the tokio
//! [`node`](crate::node) or the simulator) runs it:
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
//!
//! # Layout
//! - `op/`: each command and maintenance task as its own state machine
//!   (`Operation`: `poll`, `on_reply`, `on_failure`), one module each;
//! - `services`: what operations borrow (routing table, requests in
//!   flight, outgoing queue, RNG, settings, counters), lent in an `op::Cx`;
//! - `router`: the one place that calls operations: replies, failures and
//!   deadlines go to the operation that sent the request, or to the
//!   node-wide checks;
//! - `inbound`: answering other nodes' requests; `providers`: the provider
//!   sets and their procedures; `peers`: peer kinds, learning contacts and
//!   checking failed ones; `pns`: keeping nearer contacts when a bucket
//!   has a choice; `maintenance`: the republish / replicate / refresh
//!   schedule and handover to newcomers; `settle`: checking young
//!   contacts on time for stock askers; `lost`: contacts evicted for
//!   timeouts, asked again so a healed partition rejoins; `tunnel`: URL contacts and
//!   requests that came over HTTP; `dialback`: reachability detection and
//!   client mode ([`crate::reach`]).

mod config;
mod dialback;
mod guard;
mod handover;
mod inbound;
mod lost;
mod maintenance;
mod op;
mod outcome;
mod peers;
mod pns;
mod provider_handover;
pub mod providers;
mod relay;
mod router;
mod services;
mod settle;
mod stats;
mod tunnel;

use std::collections::VecDeque;

use foldhash::HashMap;
use std::net::SocketAddr;

use bytes::Bytes;

pub use config::{Config, ConfigError};
pub use dialback::{DIALBACK, DIALBACK_PROBE, REACH};
pub use guard::LimitStats;
pub use inbound::{HELLO, STORE_TTL};
pub use outcome::{
    BootstrapOutcome, Event, GetOutcome, LookupStats, Outcome, PingReply, ProviderReadOutcome, ProviderWriteOutcome,
    PutOutcome, QueryId,
};
pub use peers::{PeerKind, REPROBE_AFTER};
pub use relay::RelayRefusal;
pub use stats::{Stats, RPC_LABELS};
pub use tunnel::HttpRequestError;

use crate::contact::Contact;
use crate::id::{Key, NodeId};
use crate::routing::RoutingTable;
use crate::store::RecordStore;
use crate::time::Time;
use crate::wire::Datagram;
use maintenance::Maintenance;
use op::targets::PutTargets;
use op::Operation;
use op::ReadMemory;
use peers::Peers;
use services::Services;

/// A datagram the driver must send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub to: SocketAddr,
    /// The encoded datagram.
    pub payload: Bytes,
    /// Send it from another port of this host than the node's own (a
    /// second socket), not from the node's address. Only reachability
    /// probes (`kadmesh_reach`): a NAT or stateful firewall in front of the
    /// target lets in datagrams from any address its host sent to lately,
    /// and the target has usually talked to the prober's DHT port, never to
    /// this one (`proto-spec/EXTENSIONS.md` §7.3).
    pub from_other_port: bool,
}

/// One Kademlia node, without I/O: the operations in progress, the
/// services they share, and the node-wide state (records, provider sets,
/// peer kinds, the maintenance schedule).
pub struct Engine {
    svc: Services,
    store: RecordStore,
    providers: providers::ProviderStore,
    peers: Peers,
    maintenance: Maintenance,
    put_targets: PutTargets,
    /// Where provider sets were read lately (a repeat read skips the lookup).
    read_memory: ReadMemory,
    /// Our own bootstrap is running: our table is too thin to judge who is
    /// among the k closest to a key, so no records are handed over.
    joining: bool,
    /// When our last bootstrap ended: provider writes in the minute after
    /// it are written again (`op::provider_write`).
    joined_at: Option<Time>,
    ops: HashMap<QueryId, Box<dyn Operation>>,
    next_op: u64,
    events: VecDeque<Event>,
    /// Drops requests over the per-source and global rates.
    limiter: crate::limits::RateLimiter,
    /// Provider writes waiting for their batch window to close.
    provider_batches: op::provider_write::Batches,
    /// Bounds the new node ids one source may introduce.
    churn: crate::limits::ChurnGuard,
    /// Records owed to newly verified contacts, sent at a bounded pace.
    handover: handover::HandoverQueue,
    /// Young contacts owed the check that settles them for stock askers.
    settle: settle::SettleQueue,
    /// Reachability detection and the dial-back work done for others.
    reach: dialback::Reach,
    /// The request being answered carries the client mark: its sender must
    /// not enter the routing table (read by `learn`).
    inbound_client: bool,
    /// The request being answered carries the node mark: a new sender is
    /// checked by its `kadmesh_hello` alone (read by `learn`).
    inbound_node: bool,
}

impl Engine {
    /// A node with id `id`, started at `now`. The settings are taken as
    /// they are; see [`Config::validate`] for settings from user input.
    pub fn new(id: NodeId, config: Config, now: Time) -> Self {
        Engine {
            maintenance: Maintenance::new(&config, now),
            store: RecordStore::with_quota(config.store_limits, config.limits.records),
            providers: providers::ProviderStore::with_quota(config.provider_limits, config.limits.providers),
            peers: Peers::new(config.limits.max_peer_state),
            limiter: crate::limits::RateLimiter::new(config.limits.rate.clone(), now),
            churn: crate::limits::ChurnGuard::new(config.limits.churn.clone()),
            handover: handover::HandoverQueue::new(config.limits.handover, now),
            settle: settle::SettleQueue::default(),
            reach: dialback::Reach::new(&config.reach, now),
            inbound_client: false,
            inbound_node: false,
            svc: Services::new(id, config, now),
            put_targets: PutTargets::default(),
            read_memory: ReadMemory::default(),
            provider_batches: op::provider_write::Batches::default(),
            joining: false,
            joined_at: None,
            ops: HashMap::default(),
            next_op: 0,
            events: VecDeque::new(),
        }
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.svc.id
    }

    /// The settings in force.
    pub fn config(&self) -> &Config {
        &self.svc.config
    }

    /// The routing table (read-only).
    pub fn routing(&self) -> &RoutingTable {
        &self.svc.routing
    }

    /// The records held (read-only).
    pub fn store(&self) -> &RecordStore {
        &self.store
    }

    /// Counters since start.
    pub fn stats(&self) -> &Stats {
        &self.svc.stats
    }

    /// What `id` is known to speak.
    pub fn peer_kind(&self, id: &NodeId) -> PeerKind {
        self.peers.kind(id)
    }

    /// Commands and maintenance operations in progress.
    pub fn ops_in_progress(&self) -> usize {
        self.ops.len()
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.svc.transmits.pop_front()
    }

    /// The next finished command.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Engine::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Time> {
        let ops = self.ops.values().filter_map(|op| op.next_deadline());
        [self.svc.in_flight.next_deadline(), self.store.next_expiry(), Some(self.maintenance.next_due())]
            .into_iter()
            .flatten()
            .chain(self.providers.next_sweep())
            .chain(self.handover.next_due())
            .chain(self.settle.next_due())
            .chain(self.reach.detector.next_deadline())
            .chain(self.provider_batches.next_due())
            .chain(ops)
            .min()
    }

    /// Advances timers to `now`: request timeouts, lookup stalls, record
    /// expiry and maintenance.
    pub fn handle_timeout(&mut self, now: Time) {
        for (_, pending) in self.svc.in_flight.expire(now) {
            self.svc.stats.timeouts += 1;
            self.on_request_failed(now, pending.context, pending.kind);
        }
        self.store.expire(now);
        self.providers.expire(now);
        self.launch_due_batches(now);
        self.poll_due_ops(now);
        self.run_maintenance(now);
        self.send_handover(now);
        self.send_settle_checks(now);
        self.reach_tick(now);
    }

    /// Handles one datagram from `from`. Malformed input is counted, logged at
    /// debug level and dropped; it never changes state.
    pub fn handle_datagram(&mut self, now: Time, from: SocketAddr, data: &[u8]) {
        self.svc.stats.datagrams_received += 1;
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
                self.svc.stats.malformed += 1;
                tracing::debug!(%from, error = %e, "dropping malformed datagram");
            }
        }
    }

    fn alloc_op(&mut self) -> QueryId {
        self.next_op += 1;
        QueryId(self.next_op)
    }

    fn emit(&mut self, op: QueryId, outcome: Outcome) {
        self.events.push_back(Event { id: op, outcome });
    }

    /// The `n` contacts closest to `target` in the routing table.
    pub fn closest(&self, target: &Key, n: usize) -> Vec<Contact> {
        self.svc.routing.closest(target, n)
    }
}

#[cfg(test)]
mod tests;
