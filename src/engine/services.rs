//! The services every operation borrows: the routing table, the requests in
//! flight, the outgoing queue, the RNG, the settings and the counters.
//!
//! They are one struct so that the engine can lend them to an operation
//! (inside a [`Cx`](super::op::Cx)) while it keeps the operation table to
//! itself: an operation sends requests and reads the table, but cannot
//! reach other operations or the engine's inputs. Every request sent
//! carries a [`ReplyTo`] saying who takes its reply.

use std::collections::VecDeque;
use std::net::SocketAddr;

use rand::{rngs::StdRng, Rng, SeedableRng};

use super::{Config, QueryId, Stats, Transmit};
use crate::id::NodeId;
use crate::proximity::RttBook;
use crate::reach::recent::RecentPeers;
use crate::reach::ReachMode;
use crate::routing::RoutingTable;
use crate::rpc::{InFlight, RpcKind};
use crate::rtt::RttEstimate;
use crate::time::Time;
use crate::wire::{Call, Datagram, MessageId, Value};

/// Who takes the reply to (or the failure of) an outstanding request.
#[derive(Clone, Copy, Debug)]
pub(super) enum ReplyTo {
    /// Operation `op`; `peer` is who we expect to answer (`None` for a
    /// bare address, such as a seed or a command's ping).
    Op { op: QueryId, peer: Option<NodeId> },
    /// The engine: checking the least-recently-seen contact of a full bucket.
    Eviction { peer: NodeId },
    /// The engine: asking a new contact (at `addr`) whether it speaks our
    /// extensions; `tries` so far, this one included.
    Hello { peer: NodeId, addr: SocketAddr, tries: u8 },
    /// Nobody waits for the answer (record handover, a get's cache copy).
    Fire { peer: NodeId },
    /// The engine: a contact just failed a request; is it gone, or was a
    /// datagram lost?
    Verify { peer: NodeId },
    /// The engine: a contact evicted for silence, asked again
    /// ([`super::lost`]); an answer means a cut between us may have healed.
    Lost { peer: NodeId },
    /// The engine: `peer` announced a tunnel URL; does it answer there?
    Tunnel { peer: NodeId },
    /// The engine: a helper's answer to our `kadmesh_dialback`.
    Reach,
    /// The engine: a third node's answer to the probe we asked of it for
    /// `requester`, whose `kadmesh_dialback` (message `msg`) awaits it.
    Relay { requester: SocketAddr, msg: MessageId },
}

/// The shared services of one node.
pub(super) struct Services {
    /// This node's id.
    pub(super) id: NodeId,
    pub(super) config: Config,
    pub(super) rng: StdRng,
    pub(super) routing: RoutingTable,
    pub(super) in_flight: InFlight<ReplyTo>,
    pub(super) transmits: VecDeque<Transmit>,
    pub(super) stats: Stats,
    /// Round trips of our requests, for lookups' stall threshold.
    pub(super) rtt: RttEstimate,
    /// URL contacts: the URL behind each tunnel address, and who announced one.
    pub(super) tunnels: crate::tunnel::TunnelBook,
    /// Round trips per address: lookups' proximity and per-contact stalls.
    pub(super) book: RttBook,
    /// We are a client: our requests carry the mark ([`crate::reach::marker`]).
    pub(super) client: bool,
    /// Whom we sent to lately, kept while we detect reachability.
    pub(super) recent: Option<RecentPeers>,
}

/// Addresses remembered for the NAT window while detecting.
const RECENT_CAPACITY: usize = 8192;

impl Services {
    pub(super) fn new(id: NodeId, config: Config, now: Time) -> Self {
        Services {
            id,
            rng: StdRng::seed_from_u64(config.rng_seed),
            routing: RoutingTable::new(id, config.k, now).with_widening(config.bucket_widening),
            client: config.reach.mode != ReachMode::Public,
            recent: (config.reach.mode == ReachMode::Auto)
                .then(|| RecentPeers::new(RECENT_CAPACITY, config.reach.nat_window)),
            config,
            in_flight: InFlight::default(),
            transmits: VecDeque::new(),
            stats: Stats::default(),
            rtt: RttEstimate::default(),
            tunnels: crate::tunnel::TunnelBook::default(),
            book: RttBook::default(),
        }
    }

    /// Queues a request to `to` and tracks it until its reply or timeout;
    /// false (nothing sent) if it does not encode.
    pub(super) fn send_request(&mut self, now: Time, to: SocketAddr, call: Call, reply_to: ReplyTo) -> bool {
        let kind = rpc_kind(&call);
        let timeout = if kind == RpcKind::Extension { self.config.extension_timeout } else { self.config.rpc_timeout };
        self.send_request_within(now, to, call, reply_to, timeout)
    }

    /// [`Services::send_request`] waiting `timeout` for the reply.
    pub(super) fn send_request_within(
        &mut self,
        now: Time,
        to: SocketAddr,
        call: Call,
        reply_to: ReplyTo,
        timeout: std::time::Duration,
    ) -> bool {
        let kind = rpc_kind(&call);
        let Some(id) = self.send_untracked(now, to, call) else { return false };
        self.in_flight.insert(id, to, kind, now, timeout, reply_to);
        self.stats.count_sent(kind);
        true
    }

    /// Queues a request without tracking it (the caller does, if it waits
    /// for a reply); its message id, or `None` if it does not encode. A
    /// client's requests carry the client mark.
    pub(super) fn send_untracked(&mut self, now: Time, to: SocketAddr, call: Call) -> Option<MessageId> {
        self.queue_request(now, to, call, false)
    }

    /// Queues reachability probe `call` to `to`, sent from another port
    /// than ours (see [`Transmit::from_other_port`]); its message id.
    pub(super) fn send_probe(&mut self, now: Time, to: SocketAddr, call: Call) -> Option<MessageId> {
        self.queue_request(now, to, call, true)
    }

    fn queue_request(&mut self, now: Time, to: SocketAddr, call: Call, from_other_port: bool) -> Option<MessageId> {
        let random: [u8; 20] = self.rng.gen();
        let id = if self.client { crate::reach::marker::mark(random) } else { crate::reach::marker::mark_node(random) };
        match (Datagram::Request { id, call }).encode() {
            Ok(p) => {
                self.note_sent(to, now);
                self.transmits.push_back(Transmit { to, payload: p.into(), from_other_port });
                Some(id)
            }
            Err(e) => {
                tracing::debug!(%to, error = %e, "request not sent");
                None
            }
        }
    }

    /// Remembers that we sent to `to` (a NAT mapping towards it may be open).
    pub(super) fn note_sent(&mut self, to: SocketAddr, now: Time) {
        if let Some(r) = self.recent.as_mut() {
            r.note_sent(to, now);
        }
    }

    /// Queues a reply to request `id` from `to`.
    pub(super) fn send_response(&mut self, to: SocketAddr, id: MessageId, body: Value) {
        match (Datagram::Response { id, body }).encode() {
            Ok(p) => self.transmits.push_back(Transmit { to, payload: p.into(), from_other_port: false }),
            Err(e) => tracing::debug!(%to, error = %e, "response not sent"),
        }
    }

    /// A ping carrying our id.
    pub(super) fn ping(&self) -> Call {
        Call::Ping { sender: self.id }
    }
}

/// Which procedure `call` asks for.
pub(super) fn rpc_kind(call: &Call) -> RpcKind {
    match call {
        Call::Ping { .. } => RpcKind::Ping,
        Call::Store { .. } => RpcKind::Store,
        Call::FindNode { .. } => RpcKind::FindNode,
        Call::FindValue { .. } => RpcKind::FindValue,
        Call::Stun => RpcKind::Stun,
        Call::Other { .. } => RpcKind::Extension,
    }
}
