//! Node-id churn per source: how many different node ids one IP address,
//! and one /24 or /64 prefix, may introduce to this node within a window.
//!
//! A node id costs nothing to make, so one host can claim thousands of
//! them, each a fresh routing-table candidate that gets a check ping, a
//! `kadmesh_hello` probe and a slot in the peer maps (an eclipse attack
//! starts this way). Honest hosts run one node, a few behind one NAT; so
//! an IP gets [`ChurnLimits::ids_per_ip`] distinct new ids per window and a
//! prefix [`ChurnLimits::ids_per_prefix`], and ids beyond that are not
//! learned (counted, not answered differently: the request itself is still
//! served within the rate limits).
//!
//! Only ids the routing table does not hold yet are brought here (the
//! engine asks), and an id already admitted in the current window is
//! admitted again without counting twice, so a node that keeps talking
//! from its one address never uses up its IP's allowance. Both maps are
//! [`LruMap`]s: a flood from many addresses grows nothing beyond
//! `max_sources`. Sans-IO: time comes in as `now`.

use std::net::IpAddr;
use std::time::Duration;

use super::lru::LruMap;
use super::SourcePrefix;
use crate::id::NodeId;
use crate::time::Time;

/// The churn bounds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChurnLimits {
    /// Off: every id is learned (simulations of well-behaved networks).
    pub enabled: bool,
    /// Distinct new node ids one IP may introduce per window. Default 16:
    /// a host or a NAT with a few nodes, restarting a few times.
    pub ids_per_ip: usize,
    /// Distinct new node ids one /24 (IPv4) or /64 (IPv6) may introduce per
    /// window. Default 1,024: a /24 holds 256 hosts, so a full subnet of
    /// honest nodes fits with room for restarts.
    pub ids_per_prefix: usize,
    /// The window. Default 10 minutes.
    pub window: Duration,
    /// Most source IPs (and, separately, prefixes) tracked. Default 4,096.
    pub max_sources: usize,
}

impl Default for ChurnLimits {
    fn default() -> Self {
        ChurnLimits {
            enabled: true,
            ids_per_ip: 16,
            ids_per_prefix: 1_024,
            window: Duration::from_secs(600),
            max_sources: 4_096,
        }
    }
}

/// One IP's window: when it began and the ids it admitted since.
#[derive(Clone, Debug)]
struct IpWindow {
    start: Time,
    ids: Vec<NodeId>,
}

/// One prefix's window: when it began and how many ids it admitted since.
#[derive(Clone, Copy, Debug)]
struct PrefixWindow {
    start: Time,
    count: usize,
}

/// The churn guard; see the module docs.
#[derive(Clone, Debug)]
pub struct ChurnGuard {
    limits: ChurnLimits,
    ips: LruMap<IpAddr, IpWindow>,
    prefixes: LruMap<SourcePrefix, PrefixWindow>,
    refused: u64,
}

impl ChurnGuard {
    /// A guard with these bounds and nothing counted.
    pub fn new(limits: ChurnLimits) -> Self {
        ChurnGuard {
            ips: LruMap::new(limits.max_sources),
            prefixes: LruMap::new(limits.max_sources),
            limits,
            refused: 0,
        }
    }

    /// Whether `id`, new to the caller, may be learned from `ip` at `now`;
    /// counts it against the IP and its prefix when it may, counts the
    /// refusal when not.
    pub fn admit(&mut self, now: Time, ip: IpAddr, id: NodeId) -> bool {
        if !self.limits.enabled {
            return true;
        }
        let window = self.limits.window;
        let fresh = |start: Time| now.saturating_since(start) >= window;
        let mine = self.ips.get_or_insert_with(&ip, || IpWindow { start: now, ids: Vec::new() });
        if fresh(mine.start) {
            *mine = IpWindow { start: now, ids: Vec::new() };
        }
        if mine.ids.contains(&id) {
            return true;
        }
        if mine.ids.len() >= self.limits.ids_per_ip {
            self.refused += 1;
            return false;
        }
        let prefix = self.prefixes.get_or_insert_with(&SourcePrefix::of(ip), || PrefixWindow { start: now, count: 0 });
        if fresh(prefix.start) {
            *prefix = PrefixWindow { start: now, count: 0 };
        }
        if prefix.count >= self.limits.ids_per_prefix {
            self.refused += 1;
            return false;
        }
        prefix.count += 1;
        if let Some(mine) = self.ips.get_mut(&ip) {
            mine.ids.push(id);
        }
        true
    }

    /// Ids refused so far.
    pub fn refused(&self) -> u64 {
        self.refused
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

    fn id(n: u32) -> NodeId {
        let mut b = [0u8; 20];
        b[..4].copy_from_slice(&n.to_be_bytes());
        NodeId(b)
    }

    fn guard() -> ChurnGuard {
        ChurnGuard::new(ChurnLimits {
            ids_per_ip: 4,
            ids_per_prefix: 10,
            window: Duration::from_secs(60),
            max_sources: 32,
            enabled: true,
        })
    }

    #[test]
    fn one_ip_introduces_at_most_its_share_of_ids_per_window() {
        let mut g = guard();
        let admitted = (0..1000).filter(|&n| g.admit(Time::ZERO, ip("10.0.0.1"), id(n))).count();
        assert_eq!(admitted, 4);
        assert_eq!(g.refused(), 996);
        assert!(g.admit(Time::from_secs(30), ip("10.0.0.1"), id(2)), "an admitted id stays admitted");
        assert!(!g.admit(Time::from_secs(59), ip("10.0.0.1"), id(5000)));
        assert!(g.admit(Time::from_secs(60), ip("10.0.0.1"), id(5000)), "a new window has room again");
    }

    #[test]
    fn rotating_addresses_in_one_prefix_hits_the_prefix_bound() {
        let mut g = guard();
        let admitted = (0..100u32).filter(|&n| g.admit(Time::ZERO, ip(&format!("10.0.0.{n}")), id(n))).count();
        assert_eq!(admitted, 10);
        assert!(g.admit(Time::ZERO, ip("10.0.1.1"), id(7)), "another prefix is not affected");
    }

    #[test]
    fn memory_stays_bounded_and_disabled_admits_everything() {
        let mut g = guard();
        for n in 0..10_000u32 {
            g.admit(Time::ZERO, IpAddr::from(n.to_be_bytes()), id(n));
        }
        assert_eq!(g.tracked(), (32, 32));
        let mut off = ChurnGuard::new(ChurnLimits { enabled: false, ..ChurnLimits::default() });
        assert!((0..1000).all(|n| off.admit(Time::ZERO, ip("10.0.0.1"), id(n))));
    }
}
