//! Engine settings, with defaults that match the Python package where it
//! matters on the wire and the platform's needs elsewhere.

use std::time::Duration;

use crate::lookup::ALPHA;
use crate::routing::K;
use crate::store::StoreLimits;

/// Everything an [`Engine`](super::Engine) can be tuned by.
#[derive(Clone, Debug)]
pub struct Config {
    /// Bucket size and replication factor (the paper's k).
    pub k: usize,
    /// Lookup parallelism (the paper's alpha).
    pub alpha: usize,
    /// How long a request waits for its reply (rpcudp uses 5 s).
    pub rpc_timeout: Duration,
    /// How long extension requests wait; stock peers never answer them, so
    /// this is short to keep the cost of asking low.
    pub extension_timeout: Duration,
    /// After this long without a reply a lookup stops waiting on a query and
    /// moves on (the reply is still used if it comes). The most it waits:
    /// the engine uses `srtt + 4 * rttvar` of the replies it has seen, within
    /// `lookup_stall_min..=lookup_stall` (see [`crate::rtt`]).
    pub lookup_stall: Duration,
    /// The least a lookup waits on a query before moving on.
    pub lookup_stall_min: Duration,
    /// Consecutive timeouts before a contact leaves the routing table.
    pub max_failures: u32,
    /// Lifetime of a value received by plain `store`.
    pub record_ttl: Duration,
    /// Lifetime of the copy a finished `get` leaves at the closest node that
    /// lacked the value (paper 2.3 caching). Short, because nobody refreshes
    /// a cached copy: it would otherwise answer later lookups with an old
    /// value. Only peers that speak our `store` with a lifetime get one.
    pub cache_ttl: Duration,
    /// Memory bounds of the record store.
    pub store_limits: StoreLimits,
    /// How often a publisher re-stores its own records.
    pub republish_interval: Duration,
    /// How long a replica waits without being refreshed before it
    /// re-replicates a record it holds.
    pub replicate_interval: Duration,
    /// Buckets untouched this long get a refresh lookup (paper: an hour).
    pub refresh_interval: Duration,
    /// How long the k closest nodes a put found for one of our keys are
    /// trusted: a re-put within this stores straight to them (plus closer
    /// contacts learned since) instead of looking the key up again. Zero
    /// looks up every time. See [`targets`](super::targets).
    pub put_lookup_every: Duration,
    /// Most maintenance operations (republish, replicate, refresh) in flight
    /// at once; the rest queue, so a restart with many records cannot flood.
    pub max_maintenance_ops: usize,
    /// Most STOREs pushed to one newly seen contact.
    pub max_handover_per_contact: usize,
    /// Seed of the engine's random number generator (message ids, jitter,
    /// refresh targets); simulations set it, the daemon draws it.
    pub rng_seed: u64,
    /// What strangers may make this node do: rate limits, storage quotas,
    /// reply budgets, bounded peer state ([`crate::limits::Limits`]).
    pub limits: crate::limits::Limits,
}

impl Default for Config {
    fn default() -> Self {
        const HOUR: Duration = Duration::from_secs(3600);
        Config {
            k: K,
            alpha: ALPHA,
            rpc_timeout: Duration::from_secs(5),
            extension_timeout: Duration::from_secs(2),
            lookup_stall: Duration::from_millis(1000),
            lookup_stall_min: Duration::from_millis(200),
            max_failures: 2,
            record_ttl: 24 * HOUR,
            cache_ttl: Duration::from_secs(60),
            store_limits: StoreLimits::default(),
            republish_interval: HOUR,
            replicate_interval: HOUR,
            refresh_interval: HOUR,
            put_lookup_every: Duration::from_secs(600),
            max_maintenance_ops: 4,
            max_handover_per_contact: 256,
            rng_seed: 0,
            limits: crate::limits::Limits::default(),
        }
    }
}
