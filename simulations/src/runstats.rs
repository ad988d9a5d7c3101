//! What a run measures, as raw observations; `report` turns them into rows.

use crate::metrics::{Samples, Series};
use crate::net::Traffic;

/// Observations of one run. Only what happens inside the measurement window
/// is recorded, except the per-minute series, which cover the whole run.
#[derive(Clone, Debug)]
pub struct RunStats {
    /// Measured lookups started.
    pub lookups_issued: u64,
    /// Measured lookups that reported back.
    pub lookups_done: u64,
    /// ... and found a value.
    pub lookups_found: u64,
    /// ... and found a live (not stale) value.
    pub lookups_fresh: u64,
    /// Values found by lookups issued across an open partition (reader and
    /// worker on different sides: no newer copy can reach the reader).
    pub cut_found: u64,
    /// ... of which live.
    pub cut_fresh: u64,
    /// Values found by lookups issued from `SimParams::late_from` on.
    pub late_found: u64,
    /// ... of which live.
    pub late_fresh: u64,
    /// Lookups whose client crashed before the answer.
    pub lookups_aborted: u64,
    /// Answered from the client's own store.
    pub lookups_local: u64,
    /// Latency of successful lookups, ms.
    pub latency_ms: Samples,
    /// The same by the asking machine's [`crate::net::Edge`] (open, NAT, no UDP).
    pub latency_by_edge_ms: [Samples; 3],
    /// Referral rounds of successful network lookups.
    pub hops: Samples,
    /// Queries sent per lookup.
    pub queried: Samples,
    /// All `get`s completed (measured lookups and probes): the denominator of
    /// lookup traffic.
    pub gets_done: u64,
    /// Success (value found) of measured lookups per minute, and live nodes.
    pub per_minute: Series,
    /// Time from a new worker's first put to a successful get elsewhere, ms.
    pub new_worker_ms: Samples,
    /// New workers never found within the probe limit.
    pub new_worker_missed: u64,
    /// Time from a worker's crash to a get that sees it gone or stale, ms.
    pub dead_worker_ms: Samples,
    /// Crashed workers that restarted (same key, fresh record) before being seen gone.
    pub dead_worker_restarted: u64,
    /// Crashed workers still seen alive when the probe gave up.
    pub dead_worker_lingering: u64,
    /// Records per live node, sampled every 10 minutes.
    pub records_per_node: Samples,
    /// Time from bootstrap start to joined, ms.
    pub bootstrap_ms: Samples,
    /// Bootstraps that reached nobody and fell back to another seed source.
    pub bootstrap_fallbacks: u64,
    /// Requests to the edge router (bootstrap URL).
    pub edge_requests: u64,
    /// Bootstrap requests to coordinators' HTTP endpoint.
    pub coordinator_requests: u64,
    /// Worker joins by the seed source that served them, in
    /// [`kadmesh::seed_order::SeedSource::ORDER`].
    pub joins_by_source: [u64; 6],
    /// Puts (announcements) completed and those that stored nowhere.
    pub puts_done: u64,
    /// Puts acknowledged by no remote node.
    pub puts_failed: u64,
    /// Crashes and restarts.
    pub crashes: u64,
    /// Discovers (when the run has them).
    pub discover: crate::discover::DiscoverStats,
    /// Restarts, split by whether state was kept.
    pub restarts_saved: u64,
    /// Restarts as a new identity.
    pub restarts_fresh: u64,
    /// Network counters when the window opened (for deltas).
    pub traffic_at_start: Traffic,
    /// Network counters when the run ended.
    pub traffic_at_end: Traffic,
    /// Engine timers that asked to fire again at once after firing.
    pub timer_spins: u64,
}

impl RunStats {
    /// Empty observations with one-minute series.
    pub fn new() -> Self {
        RunStats {
            lookups_issued: 0,
            lookups_done: 0,
            lookups_found: 0,
            lookups_fresh: 0,
            cut_found: 0,
            cut_fresh: 0,
            late_found: 0,
            late_fresh: 0,
            lookups_aborted: 0,
            lookups_local: 0,
            latency_ms: Samples::default(),
            latency_by_edge_ms: Default::default(),
            hops: Samples::default(),
            queried: Samples::default(),
            gets_done: 0,
            per_minute: Series::new(60_000),
            new_worker_ms: Samples::default(),
            new_worker_missed: 0,
            dead_worker_ms: Samples::default(),
            dead_worker_restarted: 0,
            dead_worker_lingering: 0,
            records_per_node: Samples::default(),
            bootstrap_ms: Samples::default(),
            bootstrap_fallbacks: 0,
            edge_requests: 0,
            coordinator_requests: 0,
            joins_by_source: [0; 6],
            puts_done: 0,
            puts_failed: 0,
            crashes: 0,
            discover: Default::default(),
            restarts_saved: 0,
            restarts_fresh: 0,
            traffic_at_start: Traffic::default(),
            traffic_at_end: Traffic::default(),
            timer_spins: 0,
        }
    }
}

impl Default for RunStats {
    fn default() -> Self {
        Self::new()
    }
}
