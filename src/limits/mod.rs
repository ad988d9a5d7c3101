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
//! - [`lru`]: the bounded map used for state keyed by what strangers choose.
//!
//! Nothing here reads a clock, a socket or an RNG: time comes in as `now`.
//! The engine calls [`rate::RateLimiter::check`] once per incoming request
//! and the stores call [`quota::SourceQuota`] on writes that came from the
//! network (see the README's Security section for the whole picture).

pub mod lru;
pub mod quota;
pub mod rate;
pub mod reply;

use std::net::IpAddr;

pub use lru::LruMap;
pub use quota::{Quota, Share, SourceQuota};
pub use rate::{Rate, RateLimiter, RateLimits, RateStats, Throttled};

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
