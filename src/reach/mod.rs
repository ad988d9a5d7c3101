//! Reachability: whether unsolicited UDP reaches this node, and what a node
//! that cannot be reached does about it (client mode).
//!
//! A node behind NAT or a firewall that drops unsolicited UDP can send
//! requests and get replies, but nobody else can start a conversation with
//! it. If such a node enters other nodes' routing tables it is handed out,
//! and every lookup that meets it stalls on it. So a node finds out
//! ([`detector`]: peers have a probe sent to it from an address it has
//! never talked to, `kadmesh_dialback` in `proto-spec/EXTENSIONS.md` §7)
//! and, while it is not reachable, acts as a **client**: it marks its
//! requests ([`marker`]) so kadmesh peers neither insert it in their routing
//! tables nor hand it out. Stock peers ignore the mark (it hides in the
//! random message id).
//!
//! Owns the verdict type the rest of the crate and the HTTP surface read
//! ([`Reachability`], [`Verdict`]), the settings ([`ReachConfig`]), the
//! marker, the record of whom we sent to recently ([`recent::RecentPeers`],
//! which is also the simulator's and the tests' model of a reply-only NAT)
//! and the detection round's state machine. Sans-IO: time comes in as `now`.

pub mod budget;
pub mod detector;
pub mod marker;
pub mod recent;

use std::net::SocketAddr;
use std::time::Duration;

use crate::time::Time;

/// Whether unsolicited UDP reaches this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reachability {
    /// Not checked yet (or nobody could check). An `auto` node acts as a
    /// client meanwhile.
    Unknown,
    /// A probe from an address we never sent to arrived (or, when nobody
    /// could send one, assumed: see [`Verdict::assumed`]).
    Public,
    /// Peers sent probes from addresses we never talked to, and none arrived.
    Nat,
    /// Nobody answered any of our requests: no UDP at all.
    NoUdp,
}

impl Reachability {
    /// The lowercase name used in `/health`, `/metrics` and the logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Reachability::Unknown => "unknown",
            Reachability::Public => "public",
            Reachability::Nat => "nat",
            Reachability::NoUdp => "no-udp",
        }
    }
}

/// How a node decides whether it acts as a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReachMode {
    /// Full node, no detection (today's behaviour; the engine's default, and
    /// right for coordinators and seeds with open UDP).
    Public,
    /// Always a client, no detection (`dhtctl`, short-lived tools).
    Client,
    /// Detect at start and periodically; a client until proven public.
    Auto,
}

impl std::str::FromStr for ReachMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "public" => Ok(ReachMode::Public),
            "client" => Ok(ReachMode::Client),
            "auto" => Ok(ReachMode::Auto),
            _ => Err(format!("unknown reachability mode {s:?} (expected auto, public or client)")),
        }
    }
}

/// Reachability settings (a field of [`crate::engine::Config`]).
#[derive(Clone, Debug)]
pub struct ReachConfig {
    /// Detection and client mode, see [`ReachMode`].
    pub mode: ReachMode,
    /// Peers asked per detection round.
    pub helpers: usize,
    /// Time between rounds once a verdict is in.
    pub interval: Duration,
    /// Time before the next round after an assumed verdict.
    pub retry: Duration,
    /// Time before the next try when there was nobody to ask (an empty
    /// table: a first seed waiting for others to join). Nothing is sent, so
    /// it is short: the node is a client until its first verdict, and a
    /// client is dropped from the tables of the peers it sends to.
    pub alone_retry: Duration,
    /// How long after the last helper answered a probe may still arrive.
    pub grace: Duration,
    /// How long a NAT keeps a mapping open after we send to an address: a
    /// probe from an address we sent to within this proves nothing.
    pub nat_window: Duration,
    /// Most probes a node sends, and most dial-back requests it relays, per
    /// second (global), and per target IP at most one per `per_ip_every`.
    pub probes_per_sec: u32,
    /// Least time between two probes (or relays) for the same IP.
    pub per_ip_every: Duration,
}

impl Default for ReachConfig {
    fn default() -> Self {
        ReachConfig {
            mode: ReachMode::Public,
            helpers: 3,
            interval: Duration::from_secs(600),
            retry: Duration::from_secs(30),
            alone_retry: Duration::from_secs(2),
            grace: Duration::from_millis(1000),
            nat_window: Duration::from_secs(120),
            probes_per_sec: 20,
            per_ip_every: Duration::from_secs(5),
        }
    }
}

/// The current answer and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The answer.
    pub state: Reachability,
    /// Why, in words (for `/health` and the log).
    pub reason: String,
    /// Our address as the last helper saw it (what `stun` would say).
    pub observed: Option<SocketAddr>,
    /// When the answer was reached.
    pub at: Time,
    /// True when `state` is `Public` only because nobody could send a probe
    /// from a fresh address (a network of one or two nodes).
    pub assumed: bool,
}

impl Verdict {
    /// Nothing known yet.
    pub fn unknown(at: Time) -> Self {
        Verdict { state: Reachability::Unknown, reason: "not checked yet".into(), observed: None, at, assumed: false }
    }

    /// Whether a node in `mode` with this verdict acts as a client: marks its
    /// requests so kadmesh peers do not insert it.
    pub fn is_client(&self, mode: ReachMode) -> bool {
        match mode {
            ReachMode::Public => false,
            ReachMode::Client => true,
            ReachMode::Auto => self.state != Reachability::Public,
        }
    }
}
