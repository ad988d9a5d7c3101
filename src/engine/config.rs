//! Engine settings, with defaults that match the Python package where it
//! matters on the wire and the platform's needs elsewhere.

use std::time::Duration;

use super::providers::ProviderLimits;
use crate::lookup::ALPHA;
use crate::routing::K;
use crate::store::StoreLimits;

/// Default of [`Config::get_copies`]: copies a `get` collects.
pub const GET_COPIES: usize = 4;

/// Default of [`Config::join_fill`]: alpha's default, the contacts a lookup
/// starts from towards a region.
pub const JOIN_FILL: usize = 3;

/// Default of [`Config::lookup_rank_slack`].
pub const LOOKUP_RANK_SLACK: usize = 4;

/// Default of [`Config::lookup_replica_width`]. In the simulator (issue 17,
/// 10,000 nodes, 1 h) widths 6 / 8 / 10 gave lookup p50 204 / 200 / 197 ms
/// against 230 at alpha; at 2,000 nodes 8 cost 9 % more bandwidth per
/// worker-hour, 10 cost 13 %. 10 since `0f8fadd` measured 201 ms at 8
/// (the target is 200) and 197 ms at 10, for 1 % more bandwidth there.
pub const LOOKUP_REPLICA_WIDTH: usize = 10;
/// Default of [`Config::bucket_widening`].
pub const BUCKET_WIDENING: u32 = 0;

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
    /// The least a lookup waits on a contact whose own round trip it has
    /// measured: such a query stalls after that contact's `srtt + 4 *
    /// rttvar` within `contact_stall_min..=lookup_stall` (see
    /// [`crate::proximity`]), so a near contact that lost a datagram does not
    /// hold a lookup slot for the network-wide threshold.
    pub contact_stall_min: Duration,
    /// Ranks (bits a contact shares with the target) within this many below
    /// the depth of the target's k closest count as one, so the lookup asks
    /// the nearest of them first (see [`crate::lookup`], "Slack"): each is
    /// one referral from the replicas. 0 orders every rank by XOR first.
    pub lookup_rank_slack: usize,
    /// A `find_value` lookup that knows replicas (contacts as deep as the
    /// target's k closest) asks `alpha` of them at once, however many of its
    /// first hop's queries are still out (see [`crate::lookup`], "Replica
    /// fan-out"): the nearest replica's answer ends the read. Costs about
    /// one query per read; false keeps `alpha` in flight in all.
    pub lookup_replica_fanout: bool,
    /// Under replica fan-out, how many replicas a `find_value` lookup asks
    /// at once (at least `alpha`; see [`crate::lookup`], "Replica width").
    /// Most replicas' round trips are unknown when they are named, so
    /// asking more of them at once lets the nearest answer first. Each
    /// extra costs one query per read. Applies only where the network's
    /// smoothed round trip is 20 ms or more (not on a LAN or loopback,
    /// where every replica is about as near).
    pub lookup_replica_width: usize,
    /// Far routing buckets hold more contacts: bucket `i` below this many
    /// bits holds `k << (bits - i)` (see [`crate::routing`]), so a lookup's
    /// first hop lands that many bits deeper. 0 is the paper's table.
    pub bucket_widening: u32,
    /// Consecutive timeouts before a contact leaves the routing table.
    pub max_failures: u32,
    /// Lifetime of a value received by plain `store`.
    pub record_ttl: Duration,
    /// Lifetime of the copy a finished `get` leaves at the closest node that
    /// lacked the value (paper 2.3 caching). Short, because nobody refreshes
    /// a cached copy: it would otherwise answer later lookups with an old
    /// value. Only peers that speak our `store` with a lifetime get one.
    pub cache_ttl: Duration,
    /// Copies of a value a `get` collects before it ends (or fewer, when
    /// the k closest have all answered): it then returns the newest by the
    /// record rules (`engine::op::newest`) and stores it back to the k
    /// closest holders that answered with an older copy. 1 ends at the
    /// first value (the paper's lookup, and the behaviour before); more
    /// lets a reader meet, past a replica a partition left behind, those
    /// that took the newer write. Each copy past the first costs about one
    /// `find_value` query, sent in parallel with those already in flight.
    pub get_copies: usize,
    /// A first copy that is a worker record whose `last_seen` is at most this
    /// old ends a `get` at once, however many copies `get_copies` asks for:
    /// its publisher re-puts every refresh interval (2 min), so no replica
    /// can hold a newer one that matters, and the common read keeps the
    /// latency of a lookup that stops at the first value. Older copies, and
    /// values whose age cannot be told, go on collecting.
    pub get_fresh_for: Duration,
    /// Replicas a provider read's round asks beyond those it wants; the
    /// round ends once as many as it wants read complete and agree, so the
    /// slowest (or one whose page was lost) is not waited for. 0 waits for
    /// every replica asked (the behaviour before). Each spare costs about
    /// a third more pages per read of three replicas. With at least one,
    /// a round whose replicas include one never measured asks one more.
    pub provider_read_spare: usize,
    /// Replicas never measured that a provider read's round asks beyond
    /// those (spares included) for their first page only, to race the
    /// round's replicas: one that answers before as many of those as the
    /// round needs were heard from is nearer than one of them and is read
    /// to its end too. 0: no racers.
    pub provider_read_racers: usize,
    /// Seconds from the Unix epoch to the engine's time origin, to compare
    /// `last_seen` (Unix seconds) with `now`. The tokio driver anchors time
    /// at the epoch (0); the simulator sets its own origin.
    pub unix_offset: Duration,
    /// How often the engine pings one of the contacts it recently evicted
    /// for timeouts (`engine::lost`), so that after a partition heals the
    /// two sides learn each other again; zero never asks.
    pub lost_recheck_every: Duration,
    /// How long after its eviction a lost contact is still asked.
    pub lost_keep: Duration,
    /// Memory bounds of the record store.
    pub store_limits: StoreLimits,
    /// Bounds of the provider sets this node holds for the network.
    pub provider_limits: ProviderLimits,
    /// How often a publisher re-stores its own records.
    pub republish_interval: Duration,
    /// How long a replica waits without being refreshed before it
    /// re-replicates a record it holds.
    pub replicate_interval: Duration,
    /// Buckets untouched this long get a refresh lookup (paper: an hour).
    pub refresh_interval: Duration,
    /// After a join, every bucket farther than our neighbourhood that holds
    /// fewer than this many contacts gets a lookup of a random id in its
    /// range, ending once that many of the closest it meets answered
    /// (paper 2.3: the joiner "refreshes all k-buckets further away than its
    /// closest neighbor"; see `Engine::fill_far_buckets`). 0: no such
    /// lookups, only the own-id lookup.
    pub join_fill: usize,
    /// How long the k closest nodes a put found for one of our keys are
    /// trusted: a re-put within this stores straight to them (plus closer
    /// contacts learned since) instead of looking the key up again. Zero
    /// looks up every time. See `engine::op::targets`.
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
    /// This node's tunnel URL, announced to peers in `kadmesh_hello` so
    /// that kadmesh peers reach it over HTTP instead of its UDP source
    /// address (see [`crate::tunnel`]); set it for a node whose UDP is not
    /// reachable from outside. `None`: peers use the UDP address.
    pub tunnel_url: Option<String>,
    /// Reachability detection and client mode ([`crate::reach`]); the
    /// default is a full node that does not detect (today's behaviour).
    pub reach: crate::reach::ReachConfig,
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
            // As low as 50 ms suits a WAN (the simulator uses it), but on a
            // loaded loopback host replies of 100 nodes in one process were
            // later than that, every query stalled and puts found nobody.
            contact_stall_min: Duration::from_millis(200),
            lookup_rank_slack: LOOKUP_RANK_SLACK,
            bucket_widening: BUCKET_WIDENING,
            lookup_replica_fanout: true,
            lookup_replica_width: LOOKUP_REPLICA_WIDTH,
            max_failures: 2,
            record_ttl: 24 * HOUR,
            cache_ttl: Duration::from_secs(60),
            get_copies: GET_COPIES,
            provider_read_spare: 1,
            provider_read_racers: 2,
            get_fresh_for: Duration::from_secs(150),
            unix_offset: Duration::ZERO,
            lost_recheck_every: Duration::from_secs(10),
            lost_keep: HOUR,
            store_limits: StoreLimits::default(),
            provider_limits: ProviderLimits::default(),
            republish_interval: HOUR,
            replicate_interval: HOUR,
            refresh_interval: HOUR,
            join_fill: JOIN_FILL,
            put_lookup_every: Duration::from_secs(600),
            max_maintenance_ops: 4,
            max_handover_per_contact: 256,
            rng_seed: 0,
            limits: crate::limits::Limits::default(),
            tunnel_url: None,
            reach: crate::reach::ReachConfig::default(),
        }
    }
}

/// A setting that would make an engine misbehave, from
/// [`Config::validate`]. Each names the field to fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `k` or `alpha` is zero: lookups would query nobody and buckets hold
    /// nobody. Use at least 1 (the paper's 20 and 3 are the defaults).
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    /// A timeout or interval is zero: requests would time out as they are
    /// sent, or maintenance would run on every timer. Give it a positive
    /// duration.
    #[error("{0} must be longer than zero")]
    ZeroDuration(&'static str),
    /// `store_limits.max_value_bytes` exceeds what one `store` datagram can
    /// carry: such values would be accepted and then fail to send. Keep it
    /// at or below [`MAX_VALUE_BYTES`](crate::store::MAX_VALUE_BYTES).
    #[error("store_limits.max_value_bytes ({0}) exceeds the datagram limit ({max})", max = crate::store::MAX_VALUE_BYTES)]
    ValueTooLarge(usize),
    /// A store or provider-set bound is zero: nothing could ever be held.
    /// Give it at least 1.
    #[error("{0} must be at least 1")]
    ZeroLimit(&'static str),
    /// `tunnel_url` is not an `http://` or `https://` URL a peer could POST
    /// to (see [`crate::tunnel::normalize_url`]). Give the node's public
    /// base URL, without query or credentials.
    #[error("tunnel_url {0:?} is not a usable http(s) URL")]
    BadTunnelUrl(String),
}

impl Config {
    /// Checks settings that come from user input (flags, files) before an
    /// engine runs on them; [`Node::spawn`](crate::node::Node::spawn) calls it.
    ///
    /// A `lookup_stall_min` above `lookup_stall` is allowed: the maximum
    /// wins (clients set a short stall and keep the default minimum).
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, n) in [("k", self.k), ("alpha", self.alpha), ("get_copies", self.get_copies)] {
            if n == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        let durations = [
            ("rpc_timeout", self.rpc_timeout),
            ("extension_timeout", self.extension_timeout),
            ("lookup_stall", self.lookup_stall),
            ("record_ttl", self.record_ttl),
            ("republish_interval", self.republish_interval),
            ("replicate_interval", self.replicate_interval),
            ("refresh_interval", self.refresh_interval),
            ("reach.interval", self.reach.interval),
            ("reach.retry", self.reach.retry),
            ("reach.alone_retry", self.reach.alone_retry),
        ];
        if let Some((name, _)) = durations.iter().find(|(_, d)| d.is_zero()) {
            return Err(ConfigError::ZeroDuration(name));
        }
        if self.store_limits.max_value_bytes > crate::store::MAX_VALUE_BYTES {
            return Err(ConfigError::ValueTooLarge(self.store_limits.max_value_bytes));
        }
        self.validate_limits()?;
        let p = &self.provider_limits;
        let limits = [
            ("store_limits.max_records", self.store_limits.max_records),
            ("store_limits.max_bytes", self.store_limits.max_bytes),
            ("provider_limits.max_per_set", p.max_per_set),
            ("provider_limits.max_sets", p.max_sets),
            ("provider_limits.max_entries", p.max_entries),
            ("provider_limits.max_ttl (s)", p.max_ttl.as_secs() as usize),
        ];
        if let Some((name, _)) = limits.iter().find(|(_, n)| *n == 0) {
            return Err(ConfigError::ZeroLimit(name));
        }
        match &self.tunnel_url {
            Some(url) if crate::tunnel::normalize_url(url).is_none() => Err(ConfigError::BadTunnelUrl(url.clone())),
            _ => Ok(()),
        }
    }
}

impl Config {
    /// The defences' bounds: a zero rate, burst or count would refuse
    /// everyone (or, for handover, never send); a zero window would count
    /// nothing.
    fn validate_limits(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        let r = &l.rate;
        let h = &l.handover;
        let rates = [
            ("limits.rate.per_ip", r.enabled, r.per_ip),
            ("limits.rate.per_prefix", r.enabled, r.per_prefix),
            ("limits.rate.global", r.enabled, r.global),
            ("limits.handover.per_contact", true, h.per_contact),
            ("limits.handover.global", true, h.global),
        ];
        if let Some((name, ..)) = rates.iter().find(|(_, on, rate)| *on && (rate.per_sec == 0 || rate.burst == 0)) {
            return Err(ConfigError::ZeroLimit(name));
        }
        let c = &l.churn;
        let counts = [
            ("limits.churn.ids_per_ip", c.enabled && c.ids_per_ip == 0),
            ("limits.churn.ids_per_prefix", c.enabled && c.ids_per_prefix == 0),
            ("limits.churn.window (s)", c.enabled && c.window.is_zero()),
            ("limits.handover.max_contacts", h.max_contacts == 0),
        ];
        match counts.iter().find(|(_, zero)| *zero) {
            Some((name, _)) => Err(ConfigError::ZeroLimit(name)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
    }

    #[test]
    fn each_bad_setting_is_named() {
        let bad = |f: fn(&mut Config)| {
            let mut c = Config::default();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert_eq!(bad(|c| c.k = 0), ConfigError::Zero("k"));
        assert_eq!(bad(|c| c.alpha = 0), ConfigError::Zero("alpha"));
        assert_eq!(bad(|c| c.rpc_timeout = Duration::ZERO), ConfigError::ZeroDuration("rpc_timeout"));
        assert_eq!(bad(|c| c.refresh_interval = Duration::ZERO), ConfigError::ZeroDuration("refresh_interval"));
        let big = bad(|c| c.store_limits.max_value_bytes = crate::store::MAX_VALUE_BYTES + 1);
        assert_eq!(big, ConfigError::ValueTooLarge(crate::store::MAX_VALUE_BYTES + 1));
        assert_eq!(bad(|c| c.provider_limits.max_sets = 0), ConfigError::ZeroLimit("provider_limits.max_sets"));
        assert!(bad(|c| c.store_limits.max_records = 0).to_string().contains("max_records"));
        assert_eq!(bad(|c| c.limits.rate.per_ip.burst = 0), ConfigError::ZeroLimit("limits.rate.per_ip"));
        assert_eq!(bad(|c| c.limits.handover.global.per_sec = 0), ConfigError::ZeroLimit("limits.handover.global"));
        assert_eq!(bad(|c| c.limits.churn.ids_per_ip = 0), ConfigError::ZeroLimit("limits.churn.ids_per_ip"));
        let mut off = Config::default();
        off.limits.rate.enabled = false;
        off.limits.rate.global.burst = 0;
        assert_eq!(off.validate(), Ok(()), "a disabled limiter's rates do not matter");
    }
}
