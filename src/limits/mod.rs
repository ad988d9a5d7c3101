//! What a stranger can make this node do: the sans-IO building blocks of
//! the node's defences, each with documented defaults (on), each counted.
//!
//! Anyone can send datagrams to a node's UDP port, so everything a request
//! makes the node spend is bounded:
//! - [`rate`]: token buckets per source IP, per source prefix and global;
//!   requests over them are dropped silently and counted.
//! - [`quota`]: how much one source IP / prefix may have stored (records,
//!   provider entries); over it, writes are refused ("0 accepted"), and a
//!   charged write never evicts what others stored.
//! - [`reply`]: the reply-size budget towards an address that has not
//!   answered one of our queries (amplification bound, ratio 10).
//! - [`churn`]: how many new node ids one IP / prefix may introduce per
//!   window; ids beyond it are not learned.
//! - [`lru`]: the bounded map used for state keyed by what strangers choose.
//!
//! [`HandoverPace`] bounds the rate at which records go to a newly verified
//! contact (the engine's handover queue applies it).
//!
//! Nothing here reads a clock, a socket or an RNG: time comes in as `now`.
//! The engine calls [`rate::RateLimiter::check`] once per incoming request
//! and the stores call [`quota::SourceQuota`] on writes that came from the
//! network (see the README's Security section for the whole picture).

pub mod churn;
pub mod lru;
pub mod quota;
pub mod rate;
pub mod reply;

use std::net::IpAddr;

pub use churn::{ChurnGuard, ChurnLimits};
pub use lru::LruMap;
pub use quota::{Quota, Share, SourceQuota};
pub use rate::{Rate, RateLimiter, RateLimits, RateStats, Throttled};

/// Every limit the engine applies to what arrives from the network, with
/// its default; a field of [`crate::engine::Config`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Request rate limits ([`rate`]).
    pub rate: RateLimits,
    /// What one source may have stored in the record store ([`quota`]).
    /// Default: 1/64 of the default store per IP (1,562 records, 4 MB),
    /// 1/16 per prefix.
    pub records: Quota,
    /// What one source may have stored in the provider store. Default:
    /// 2,000 entries per IP, 8,000 per prefix (of 200,000).
    pub providers: Quota,
    /// Most peers whose kind (stock or ours) and probe time are remembered
    /// (LRU). Default 8,192: well above a routing table's few hundred
    /// contacts, so only strangers' churn is forgotten.
    pub max_peer_state: usize,
    /// Largest reply/request byte ratio towards an address that has not
    /// answered one of our queries ([`reply`]); zero turns the bound off.
    /// Default 10.
    pub reply_ratio: usize,
    /// Node ids one source may introduce per window ([`churn`]).
    pub churn: ChurnLimits,
    /// How fast records are handed over to a newly verified contact.
    pub handover: HandoverPace,
    /// Requests, writes and new ids from loopback addresses are exempt from
    /// the rate limits, quotas and churn bound. Default on: 127.0.0.0/8 and ::1 can only come from
    /// this host (the kernel drops them from outside), and local test
    /// networks and `dhtd demo` run every node on 127.0.0.1.
    pub exempt_loopback: bool,
}

impl Default for Limits {
    fn default() -> Self {
        // The record and provider stores' default capacities (`store` and
        // `engine::providers` sit above this module, so they are repeated;
        // `limits_match_the_store_defaults` in tests/limits_strangers.rs
        // checks them).
        Limits {
            rate: RateLimits::default(),
            records: Quota::records(100_000, 256 * 1024 * 1024),
            providers: Quota::providers(200_000),
            max_peer_state: 8_192,
            reply_ratio: reply::MAX_UNVERIFIED_RATIO,
            churn: ChurnLimits::default(),
            handover: HandoverPace::default(),
            exempt_loopback: true,
        }
    }
}

/// The pace of record handover (paper 2.5): the STOREs a newly verified
/// contact is owed leave at these rates instead of in one burst, so a
/// contact joining next to a full store is not sent hundreds of datagrams
/// at once (its socket buffer would drop most), and many newcomers at once
/// cannot make this node flood. Counted in datagrams (each at most one
/// record, [`crate::store::MAX_VALUE_BYTES`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandoverPace {
    /// To one contact. Default 20/s, burst 20.
    pub per_contact: Rate,
    /// To all contacts together. Default 200/s, burst 200.
    pub global: Rate,
    /// Most contacts with handover waiting; a newcomer beyond it gets none
    /// now (replication brings it its records within the hour). Default 256.
    pub max_contacts: usize,
}

impl Default for HandoverPace {
    fn default() -> Self {
        HandoverPace {
            per_contact: Rate { per_sec: 20, burst: 20 },
            global: Rate { per_sec: 200, burst: 200 },
            max_contacts: 256,
        }
    }
}

impl Limits {
    /// Every defence off (for measuring what they cost; never on a public
    /// network). Peer state stays bounded.
    pub fn off() -> Limits {
        Limits {
            rate: RateLimits { enabled: false, ..RateLimits::default() },
            records: Quota::off(),
            providers: Quota::off(),
            reply_ratio: 0,
            churn: ChurnLimits { enabled: false, ..ChurnLimits::default() },
            ..Limits::default()
        }
    }

    /// Whether traffic from `ip` is subject to the rate limits and quotas.
    pub fn applies_to(&self, ip: IpAddr) -> bool {
        !(self.exempt_loopback && ip.is_loopback())
    }
}

/// The network a source address belongs to for prefix limits: its /24
/// (IPv4, or IPv4-mapped IPv6) or its /64 (IPv6), the usual unit one host
/// or one customer controls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourcePrefix {
    /// The first three octets of an IPv4 address.
    V4([u8; 3]),
    /// The first eight bytes of an IPv6 address.
    V6([u8; 8]),
}

impl SourcePrefix {
    /// The prefix of `ip`.
    pub fn of(ip: IpAddr) -> SourcePrefix {
        let v4 = match ip {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(v6) => v6.to_ipv4_mapped(),
        };
        match (v4, ip) {
            (Some(v4), _) => {
                let o = v4.octets();
                SourcePrefix::V4([o[0], o[1], o[2]])
            }
            (None, IpAddr::V6(v6)) => {
                let mut p = [0u8; 8];
                p.copy_from_slice(&v6.octets()[..8]);
                SourcePrefix::V6(p)
            }
            (None, IpAddr::V4(_)) => SourcePrefix::V4([0; 3]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_group_a_v4_slash_24_and_a_v6_slash_64() {
        let p = |s: &str| SourcePrefix::of(s.parse().unwrap());
        assert_eq!(p("10.1.2.3"), p("10.1.2.250"));
        assert_ne!(p("10.1.2.3"), p("10.1.3.3"));
        assert_eq!(p("::ffff:10.1.2.3"), p("10.1.2.9"), "mapped addresses count as IPv4");
        assert_eq!(p("2001:db8:0:1::1"), p("2001:db8:0:1:ffff::2"));
        assert_ne!(p("2001:db8:0:1::1"), p("2001:db8:0:2::1"));
    }
}
