//! Counters the engine keeps for metrics and simulations.

use crate::rpc::RpcKind;

/// Monotonic counters since the engine started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams handed to `handle_datagram`.
    pub datagrams_received: u64,
    /// Datagrams that did not decode.
    pub malformed: u64,
    /// Replies that matched no outstanding request (late, duplicate, forged).
    pub unmatched_replies: u64,
    /// Requests that timed out.
    pub timeouts: u64,
    /// Requests sent, by kind: ping, store, find_node, find_value, stun, extension.
    pub sent: [u64; 6],
    /// Requests received, same order.
    pub received: [u64; 6],
    /// Values accepted by `store`.
    pub stores_accepted: u64,
    /// Values refused by `store` (too large, store full).
    pub stores_refused: u64,
    /// Records handed to newly seen contacts.
    pub handovers: u64,
    /// Records re-stored by the republisher.
    pub republished: u64,
    /// Leftover copies dropped: the nearest contact to their key held it,
    /// or a replication lookup found k nodes closer than this one and the
    /// leftover was handed to those lacking it (`engine::op::leave`).
    pub records_dropped: u64,
    /// Stores of such a leftover to those of the k closest that lacked it.
    pub handed_down: u64,
    /// Newer copies a `get` stored back to holders that answered with an
    /// older one (read repair, `engine::op::find`).
    pub read_repairs: u64,
    /// Pings sent to contacts evicted for timeouts (`engine::lost`).
    pub lost_rechecks: u64,
    /// Look-ups of our own id a client made because its table was still
    /// thin after joining (`engine::maintenance`).
    pub thin_rejoins: u64,
    /// Lookups queued after a join to fill thin far buckets
    /// (`Engine::fill_far_buckets`).
    pub join_fills: u64,
    /// Provider-set write requests sent to contacts that became one of a
    /// set's k closest (`engine::provider_handover`).
    pub provider_handovers: u64,
    /// Replies shortened (or a value answered with contacts) to fit the
    /// budget towards an address that has not answered us.
    pub replies_trimmed: u64,
    /// Requests received carrying the client mark ([`crate::reach::marker`]).
    pub client_requests: u64,
    /// Contacts removed from the table because they said they are clients.
    pub clients_forgotten: u64,
}

/// The labels of [`Stats::sent`] and [`Stats::received`], in order.
pub const RPC_LABELS: [&str; 6] = ["ping", "store", "find_node", "find_value", "stun", "extension"];

fn index(kind: RpcKind) -> usize {
    match kind {
        RpcKind::Ping => 0,
        RpcKind::Store => 1,
        RpcKind::FindNode => 2,
        RpcKind::FindValue => 3,
        RpcKind::Stun => 4,
        RpcKind::Extension => 5,
    }
}

impl Stats {
    pub(crate) fn count_sent(&mut self, kind: RpcKind) {
        self.sent[index(kind)] += 1;
    }

    pub(crate) fn count_received(&mut self, kind: RpcKind) {
        self.received[index(kind)] += 1;
    }
}
