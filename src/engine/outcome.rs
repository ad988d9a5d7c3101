//! What finished commands report.

use std::net::SocketAddr;
use std::time::Duration;

use crate::contact::Contact;
use crate::id::{Key, NodeId};
use crate::wire::Value;

/// Names one command; events carry it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueryId(pub u64);

/// A finished command.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// The command it answers.
    pub id: QueryId,
    /// What came of it.
    pub outcome: Outcome,
}

/// How a lookup went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LookupStats {
    /// Queries sent.
    pub queried: usize,
    /// Queries that timed out or failed.
    pub failed: usize,
    /// Referral rounds to the answer.
    pub hops: u32,
    /// Time from start to finish.
    pub duration: Duration,
}

/// The result of [`Engine::get`](super::Engine::get).
#[derive(Clone, Debug, PartialEq)]
pub struct GetOutcome {
    /// The key looked up.
    pub key: Key,
    /// The value, or `None` when no node had it.
    pub value: Option<Value>,
    /// Whether it came from this node's own store.
    pub local: bool,
    /// How the lookup went.
    pub stats: LookupStats,
}

/// The result of [`Engine::put`](super::Engine::put).
#[derive(Clone, Debug, PartialEq)]
pub struct PutOutcome {
    /// The key stored.
    pub key: Key,
    /// Remote nodes that acknowledged the store.
    pub stored: usize,
    /// Remote nodes asked to store.
    pub attempted: usize,
    /// Whether this node keeps a copy too (it is among the k closest and
    /// its store accepted the value).
    pub stored_locally: bool,
    /// Why nothing was stored, when the value itself was refused (too large
    /// for a `store` request); `None` otherwise.
    pub rejected: Option<crate::store::StoreError>,
    /// How the node lookup went.
    pub stats: LookupStats,
}

/// The result of [`Engine::bootstrap`](super::Engine::bootstrap).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootstrapOutcome {
    /// Seeds that answered our ping.
    pub seeds_reached: usize,
    /// Seeds tried.
    pub seeds_tried: usize,
    /// Contacts in the routing table afterwards.
    pub table_size: usize,
}

/// A ping's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PingReply {
    /// The id the peer reported.
    pub id: NodeId,
    /// Round-trip time.
    pub rtt: Duration,
}

/// What a command produced.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// From `get`.
    Get(GetOutcome),
    /// From `put`.
    Put(PutOutcome),
    /// From `find_node`: the closest contacts that answered.
    FindNode {
        /// The target.
        target: NodeId,
        /// Up to k contacts, closest first.
        closest: Vec<Contact>,
        /// How the lookup went.
        stats: LookupStats,
    },
    /// From `bootstrap`.
    Bootstrap(BootstrapOutcome),
    /// From `ping`: `None` when it timed out.
    Ping(Option<PingReply>),
    /// From `stun`: our address as the peer sees it.
    Stun(Option<SocketAddr>),
    /// From `call`: the reply body, `None` on timeout.
    Call(Option<Value>),
    /// From `provider_read`.
    ProviderRead(ProviderReadOutcome),
    /// From `provider_write`.
    ProviderWrite(ProviderWriteOutcome),
}

/// The result of [`Engine::provider_read`](super::Engine::provider_read).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProviderReadOutcome {
    /// Merged provider entries by worker id, tombstones included.
    pub entries: std::collections::HashMap<String, crate::engine::providers::client::SeenEntry>,
    /// Replicas whose sets were read completely (this node counts when it
    /// holds entries); a round that ended once every shard was read
    /// complete at as many replicas as it needed counts that many.
    pub replicas: usize,
    /// Page requests sent.
    pub pages_sent: usize,
    /// Page requests unanswered or answered with something else than a page.
    pub pages_failed: usize,
    /// Page requests that asked again for a page already asked (it stalled
    /// or failed); hedged copies do not count.
    pub pages_reasked: usize,
    /// Read rounds (a second one when the first round's replicas disagreed).
    pub rounds: usize,
    /// It began at the replicas an earlier read's lookup found, without a
    /// lookup of its own (`stats.queried` > 0: it fell back to one).
    pub remembered: bool,
    /// Replicas a read from memory added because the nearest replica named
    /// nodes closer to the key than every remembered one (the next read
    /// then runs the lookup).
    pub newcomers: usize,
    /// How the node lookup went (its duration covers every lookup the read
    /// ran, from the read's start to its first page request).
    pub stats: LookupStats,
}

/// The result of [`Engine::provider_write`](super::Engine::provider_write).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProviderWriteOutcome {
    /// Replicas that acknowledged the whole batch, this node included.
    pub acked: usize,
    /// This node keeps the batch itself (it counts in `acked`): it took
    /// itself for one of the key's closest.
    pub local: bool,
    /// Write requests sent (each try counts).
    pub sent: usize,
    /// Tries unanswered or refused by kadmesh peers.
    pub failed: usize,
}
