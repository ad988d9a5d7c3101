//! Token-bucket rate limiting of incoming requests: one bucket per source
//! IP, one per source prefix (/24 for IPv4, /64 for IPv6, so one host
//! cannot dodge its bucket by rotating addresses of its subnet) and one
//! global. A request passes only when all three have a token; otherwise
//! it is dropped without a reply and counted by the bucket that refused.
//!
//! The per-source buckets live in [`LruMap`]s, so a stranger sending from
//! many addresses grows nothing beyond `max_sources`; a forgotten source
//! comes back with a full bucket, which costs at most one burst.
//!
//! Sans-IO: time comes in as `now`; tokens are counted in thousandths so
//! the arithmetic is exact and runs replay.

use std::net::IpAddr;

use super::lru::LruMap;
use super::SourcePrefix;
use crate::time::Time;

/// A token bucket's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Tokens added per second (sustained requests per second).
    pub per_sec: u32,
    /// Bucket size (the burst allowed after a quiet spell).
    pub burst: u32,
}

/// The settings of the request limiter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimits {
    /// Off: every request passes (simulations of well-behaved networks).
    pub enabled: bool,
    /// One source IP. Default 100/s, burst 400: a peer doing lookups and
    /// replication at full speed stays well below it.
    pub per_ip: Rate,
    /// One /24 (IPv4) or /64 (IPv6). Default 400/s, burst 1,600.
    pub per_prefix: Rate,
    /// All sources together. Default 8,000/s, burst 16,000: above what one
    /// core answers, so it only bites when many sources flood at once.
    pub global: Rate,
    /// Most source IPs (and, separately, prefixes) tracked. Default 16,384.
    pub max_sources: usize,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            enabled: true,
            per_ip: Rate { per_sec: 100, burst: 400 },
            per_prefix: Rate { per_sec: 400, burst: 1_600 },
            global: Rate { per_sec: 8_000, burst: 16_000 },
            max_sources: 16_384,
        }
    }
}

/// One bucket: thousandths of a token, and when it was last refilled.
/// Shared with the engine's handover pacing.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bucket {
    milli: u64,
    at: Time,
}

impl Bucket {
    /// A bucket holding `rate.burst` tokens at `now`.
    pub(crate) fn full(rate: Rate, now: Time) -> Bucket {
        Bucket { milli: u64::from(rate.burst) * 1000, at: now }
    }

    /// Adds the tokens earned since the last refill, up to the burst.
    pub(crate) fn refill(&mut self, rate: Rate, now: Time) {
        let ms = now.as_millis().saturating_sub(self.at.as_millis());
        let cap = u64::from(rate.burst) * 1000;
        self.milli = self.milli.saturating_add(ms.saturating_mul(u64::from(rate.per_sec))).min(cap);
        self.at = now.max(self.at);
    }

    /// Whether a whole token is there (after [`Bucket::refill`]).
    pub(crate) fn has_token(&self) -> bool {
        self.milli >= 1000
    }

    /// Takes one token; call only after [`Bucket::has_token`].
    pub(crate) fn take(&mut self) {
        self.milli = self.milli.saturating_sub(1000);
    }

    /// When the next whole token will be there (`None` at a zero rate that
    /// never refills).
    pub(crate) fn ready_at(&self, rate: Rate) -> Option<Time> {
        let missing = 1000u64.saturating_sub(self.milli);
        match (missing, u64::from(rate.per_sec)) {
            (0, _) => Some(self.at),
            (_, 0) => None,
            (m, per_sec) => Some(self.at + std::time::Duration::from_millis(m.div_ceil(per_sec))),
        }
    }
}

/// Why a request was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Throttled {
    /// Its source IP is over its rate.
    Ip,
    /// Its source prefix is over its rate.
    Prefix,
    /// All sources together are over the global rate.
    Global,
}

/// Requests dropped, by the bucket that refused them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateStats {
    /// Dropped by a per-IP bucket.
    pub dropped_ip: u64,
    /// Dropped by a per-prefix bucket.
    pub dropped_prefix: u64,
    /// Dropped by the global bucket.
    pub dropped_global: u64,
    /// Requests let through.
    pub passed: u64,
}

/// The limiter; see the module docs.
#[derive(Clone, Debug)]
pub struct RateLimiter {
    limits: RateLimits,
    ips: LruMap<IpAddr, Bucket>,
    prefixes: LruMap<SourcePrefix, Bucket>,
    global: Bucket,
    stats: RateStats,
}

impl RateLimiter {
    /// A limiter with these settings, buckets full at `now`.
    pub fn new(limits: RateLimits, now: Time) -> Self {
        RateLimiter {
            ips: LruMap::new(limits.max_sources),
            prefixes: LruMap::new(limits.max_sources),
            global: Bucket::full(limits.global, now),
            limits,
            stats: RateStats::default(),
        }
    }

    /// Whether a request from `ip` at `now` may be answered; takes a token
    /// from each bucket when it may, counts the refusal when not.
    pub fn check(&mut self, now: Time, ip: IpAddr) -> Result<(), Throttled> {
        if !self.limits.enabled {
            self.stats.passed += 1;
            return Ok(());
        }
        let l = &self.limits;
        let (per_ip, per_prefix, global) = (l.per_ip, l.per_prefix, l.global);
        let ip_bucket = self.ips.get_or_insert_with(&ip, || Bucket::full(per_ip, now));
        ip_bucket.refill(per_ip, now);
        if !ip_bucket.has_token() {
            self.stats.dropped_ip += 1;
            return Err(Throttled::Ip);
        }
        let prefix = SourcePrefix::of(ip);
        let prefix_bucket = self.prefixes.get_or_insert_with(&prefix, || Bucket::full(per_prefix, now));
        prefix_bucket.refill(per_prefix, now);
        if !prefix_bucket.has_token() {
            self.stats.dropped_prefix += 1;
            return Err(Throttled::Prefix);
        }
        self.global.refill(global, now);
        if !self.global.has_token() {
            self.stats.dropped_global += 1;
            return Err(Throttled::Global);
        }
        self.global.take();
        prefix_bucket.take();
        if let Some(b) = self.ips.get_mut(&ip) {
            b.take();
        }
        self.stats.passed += 1;
        Ok(())
    }

    /// What was dropped and passed so far.
    pub fn stats(&self) -> RateStats {
        self.stats
    }

    /// Source IPs and prefixes currently tracked (bounded by `max_sources` each).
    pub fn tracked(&self) -> (usize, usize) {
        (self.ips.len(), self.prefixes.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn limiter() -> RateLimiter {
        let limits = RateLimits {
            per_ip: Rate { per_sec: 10, burst: 20 },
            per_prefix: Rate { per_sec: 30, burst: 50 },
            global: Rate { per_sec: 100, burst: 100 },
            max_sources: 64,
            enabled: true,
        };
        RateLimiter::new(limits, Time::ZERO)
    }

    fn passed(l: &mut RateLimiter, now: Time, from: &str, n: usize) -> usize {
        (0..n).filter(|_| l.check(now, ip(from)).is_ok()).count()
    }

    #[test]
    fn one_source_gets_its_burst_then_its_rate() {
        let mut l = limiter();
        assert_eq!(passed(&mut l, Time::ZERO, "10.0.0.1", 1000), 20);
        assert_eq!(passed(&mut l, Time::from_millis(500), "10.0.0.1", 1000), 5);
        assert_eq!(passed(&mut l, Time::from_secs(10), "10.0.0.1", 1000), 20, "refills up to the burst only");
        assert_eq!(l.stats().dropped_ip, 1000 - 20 + 1000 - 5 + 1000 - 20);
    }

    #[test]
    fn a_flooder_does_not_starve_a_peer_elsewhere() {
        let mut l = limiter();
        let mut good = 0;
        for ms in 0..10_000u64 {
            let now = Time::from_millis(ms);
            passed(&mut l, now, "10.0.0.1", 50);
            if ms % 200 == 0 {
                good += passed(&mut l, now, "192.168.1.7", 1);
            }
        }
        assert_eq!(good, 50, "every request of the peer passed");
    }

    #[test]
    fn rotating_addresses_in_one_prefix_hits_the_prefix_bucket() {
        let mut l = limiter();
        let got: usize = (0..200).map(|i| passed(&mut l, Time::ZERO, &format!("10.0.0.{i}"), 1)).sum();
        assert_eq!(got, 50);
        assert_eq!(l.stats().dropped_prefix, 150);
        let v6: usize = (0..200).map(|i| passed(&mut l, Time::ZERO, &format!("2001:db8::{i:x}"), 1)).sum();
        assert_eq!(v6, 50, "a /64 is one prefix");
    }

    #[test]
    fn the_global_bucket_caps_many_sources_and_memory_stays_bounded() {
        let mut l = limiter();
        let got: usize =
            (0..100_000u32).map(|i| usize::from(l.check(Time::ZERO, IpAddr::from(i.to_be_bytes())).is_ok())).sum();
        assert_eq!(got, 100);
        assert!(l.stats().dropped_global > 0);
        assert_eq!(l.tracked(), (64, 64));
    }

    #[test]
    fn disabled_passes_everything() {
        let mut l = RateLimiter::new(RateLimits { enabled: false, ..RateLimits::default() }, Time::ZERO);
        assert_eq!(passed(&mut l, Time::ZERO, "10.0.0.1", 10_000), 10_000);
    }
}
