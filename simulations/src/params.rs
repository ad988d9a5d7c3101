//! Everything a simulation run is parameterised by.

use std::time::Duration;

use kadmesh::engine::Config;

use crate::churn::ChurnModel;
use crate::latency::LatencyModel;

/// Where a node without saved contacts gets its bootstrap seeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeedSource {
    /// Ask the worker's own coordinator over HTTP (`GET /api/dht/bootstrap`);
    /// the edge router only when that coordinator is down.
    Coordinator,
    /// Always ask the edge router.
    Edge,
}

/// Share of discovers routers issue by default: the platform's routers
/// read the DHT for every request they place, workers for peer discovery.
pub const ROUTER_SHARE: f64 = 0.5;

/// Parameters of one run.
#[derive(Clone, Debug)]
pub struct SimParams {
    /// Seed of everything random.
    pub seed: u64,
    /// Long-lived coordinator nodes (bootstrap seeds).
    pub coordinators: u32,
    /// Worker machines at the start.
    pub workers: u32,
    /// Workers start at random moments within this span after the coordinators.
    pub join_spread: Duration,
    /// Measurement starts this long after time zero (network formed).
    pub warmup: Duration,
    /// Length of the measurement window.
    pub duration: Duration,
    /// Measured lookups per minute, from random joined nodes for random
    /// registered workers.
    pub lookups_per_min: f64,
    /// How often a worker re-puts its announcement (with a fresh `last_seen`).
    pub heartbeat: Duration,
    /// An announcement is dead when `now > last_seen + stale_after` (the
    /// platform's "healthy if heard from within 5 minutes").
    pub stale_after: Duration,
    /// Session and restart model; `None` for no churn.
    pub churn: Option<ChurnModel>,
    /// Seed source for nodes without saved contacts.
    pub seed_source: SeedSource,
    /// Engine settings (the seed field is overwritten per node).
    pub engine: Config,
    /// Latency and loss.
    pub latency: LatencyModel,
    /// Measure time to find newly registered workers.
    pub probe_new: bool,
    /// Measure time for crashed workers to disappear.
    pub probe_dead: bool,
    /// Print progress lines to stderr under this label; `None` for silence.
    pub progress: Option<String>,
    /// Stop after this much wall-clock time and report the window simulated
    /// so far (the report's window row says how long it was). Breaks
    /// determinism, so off unless asked for.
    pub max_wall: Option<Duration>,
    /// Threads that run machines side by side (1: all on the calling
    /// thread). The report does not depend on it.
    pub threads: usize,
    /// Workers sign their announcements (EXTENSIONS.md §5.1, `seq` = the
    /// put's time), so the engines' store rule applies: an older copy never
    /// replaces a newer one at a replica.
    pub signed: bool,
    /// Discovers per minute (0: workers announce no provider entries and
    /// nobody discovers): workers add themselves to their service's
    /// provider set at every announcement, clients read the set
    /// ([`kadmesh::engine::Engine::provider_read`]).
    pub discovers_per_min: f64,
    /// Share of discovers a router issues (a live coordinator; the
    /// platform's routers read the DHT for every request they place), the
    /// rest by a random worker. A router reads the same few services again
    /// and again, so it reads from memory (see
    /// [`kadmesh::engine::ProviderReadOutcome::remembered`]).
    pub router_share: f64,
    /// Discovers issued in the 10 minutes from this far into the window
    /// (a disruption) are also counted apart.
    pub disrupted_at: Option<Duration>,
    /// Lookups issued this long into the window or later are also counted
    /// apart (for example from a partition's heal on).
    pub late_from: Option<Duration>,
    /// Share of workers behind a reply-only NAT (see [`crate::net`]).
    pub nat_share: f64,
    /// Share of workers with no UDP at all (see [`crate::net::Edge::NoUdp`]),
    /// taken from the workers not behind NAT.
    pub no_udp_share: f64,
    /// Workers detect their reachability and act as clients while they are
    /// not reachable (`ReachMode::Auto`); coordinators stay public. Off:
    /// every node acts as public (the behaviour before client mode).
    pub client_mode: bool,
}

impl SimParams {
    /// Defaults for `workers` workers: 8 coordinators, 2-minute heartbeat,
    /// 1000 lookups a minute, default engine settings, no churn.
    pub fn new(seed: u64, workers: u32) -> Self {
        let join_spread = Duration::from_secs(300);
        SimParams {
            seed,
            coordinators: 8,
            workers,
            join_spread,
            warmup: join_spread + Duration::from_secs(600),
            duration: Duration::from_secs(3600),
            lookups_per_min: 1000.0,
            heartbeat: Duration::from_secs(120),
            stale_after: Duration::from_secs(300),
            churn: None,
            seed_source: SeedSource::Coordinator,
            // Per-contact stalls down to 50 ms: wide-area RTTs start at 20 ms.
            // Announcements' last_seen count from EPOCH_SECS (announce.rs);
            // the engines' clocks start at zero.
            engine: Config {
                contact_stall_min: Duration::from_millis(50),
                unix_offset: Duration::from_secs(crate::announce::EPOCH_SECS),
                ..Config::default()
            },
            latency: LatencyModel::new(seed),
            probe_new: true,
            probe_dead: true,
            progress: None,
            max_wall: None,
            threads: 1,
            signed: false,
            late_from: None,
            discovers_per_min: 0.0,
            router_share: ROUTER_SHARE,
            disrupted_at: None,
            nat_share: 0.0,
            no_udp_share: 0.0,
            client_mode: false,
        }
    }

    /// End of the run (warmup plus window).
    pub fn end(&self) -> Duration {
        self.warmup + self.duration
    }
}
