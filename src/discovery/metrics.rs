//! Counters the discovery layer keeps for `/metrics`: lookups by how they
//! were answered, a lookup-latency histogram, DHT writes and reads, and
//! fallbacks. All are lock-free atomics, safe to bump from any task; the
//! HTTP layer renders them with the engine's own counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the lookup-latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// A Prometheus-style histogram of durations.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BUCKETS.iter().position(|b| secs <= *b).unwrap_or(LATENCY_BUCKETS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Cumulative counts per bucket (the last is `+Inf`, i.e. the total) and
    /// the sum of observations in seconds.
    pub fn snapshot(&self) -> (Vec<u64>, f64) {
        let mut total = 0;
        let cumulative = self
            .counts
            .iter()
            .map(|c| {
                total += c.load(Ordering::Relaxed);
                total
            })
            .collect();
        (cumulative, self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6)
    }
}

/// How a discover request was answered, as a metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupResult {
    /// From the DHT.
    Dht,
    /// From the local cache.
    Cache,
    /// From the fallback coordinator.
    Coordinator,
    /// Nobody could name a healthy worker (HTTP 503).
    Unavailable,
}

impl LookupResult {
    /// Every result, in label order.
    pub const ALL: [LookupResult; 4] =
        [LookupResult::Dht, LookupResult::Cache, LookupResult::Coordinator, LookupResult::Unavailable];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            LookupResult::Dht => "dht",
            LookupResult::Cache => "cache",
            LookupResult::Coordinator => "coordinator",
            LookupResult::Unavailable => "unavailable",
        }
    }
}

/// Counters since start.
#[derive(Debug, Default)]
pub struct Metrics {
    lookups: [AtomicU64; 4],
    /// Duration of discover lookups that went to the DHT.
    pub lookup_latency: Histogram,
    /// Worker records written (puts of `worker:{id}`).
    pub record_puts: AtomicU64,
    /// Legacy `service:{type}` lists written (see `discovery::legacy`).
    pub legacy_list_writes: AtomicU64,
    /// Worker records read (gets of `worker:{id}`).
    pub record_fetches: AtomicU64,
    /// Provider write requests sent (`kadmesh_provider_add`/`_remove`).
    pub provider_writes: AtomicU64,
    /// Provider pages requested (`kadmesh_providers`).
    pub provider_reads: AtomicU64,
    /// Provider sets read.
    pub provider_sets_read: AtomicU64,
    /// ... of which from the replicas an earlier read found, without a
    /// lookup (a repeat discover within 2 minutes).
    pub provider_sets_from_memory: AtomicU64,
    /// Extension requests that got no answer.
    pub extension_failures: AtomicU64,
    /// Worker registrations accepted.
    pub registrations: AtomicU64,
    /// Heartbeats accepted.
    pub heartbeats: AtomicU64,
    /// Successful bootstrap-URL fetches.
    pub bootstrap_url_ok: AtomicU64,
    /// Failed bootstrap-URL fetches.
    pub bootstrap_url_failed: AtomicU64,
    /// Coordinator fallback requests that failed (unreachable or bad answer).
    pub coordinator_errors: AtomicU64,
    /// Joins and URL fetches per seed source (the daemon joins; we count).
    pub joins: crate::node::JoinCounts,
}

impl Metrics {
    /// Counts one discover request answered as `r`.
    pub fn lookup(&self, r: LookupResult) {
        self.lookups[r as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Discover requests answered as `r` so far.
    pub fn lookups(&self, r: LookupResult) -> u64 {
        self.lookups[r as usize].load(Ordering::Relaxed)
    }

    /// Counts a bootstrap-URL fetch (the daemon fetches; we count).
    pub fn bootstrap_url_fetch(&self, ok: bool) {
        let c = if ok { &self.bootstrap_url_ok } else { &self.bootstrap_url_failed };
        bump(c);
    }
}

/// Adds one to a counter.
pub fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Reads a counter.
pub fn read(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_and_sums_seconds() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(30));
        h.observe(Duration::from_secs(60));
        let (buckets, sum) = h.snapshot();
        assert_eq!(buckets[0], 1);
        assert_eq!(buckets[5], 2, "0.05 s bucket");
        assert_eq!(*buckets.last().unwrap(), 3);
        assert!((sum - 60.0305).abs() < 1e-6);
    }
}
