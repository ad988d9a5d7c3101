//! Storage quotas per source: how many items (records, provider entries)
//! and bytes one source IP and one source prefix may have stored at this
//! node. A source over its quota is refused ("0 accepted"), so a flood
//! from one place fills its own share and nothing else; the stores refuse
//! a charged write rather than evict to make room for it, so a flood never
//! pushes out what others stored.
//!
//! The quota remembers which source each item was charged to, keyed by
//! the item, so replacing, removing or expiring an item gives its share
//! back. Its maps hold one entry per item held and per source holding
//! something, so they are bounded by the store they guard.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;

use super::SourcePrefix;

/// What one source may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Share {
    /// Items.
    pub items: usize,
    /// Bytes (as the store counts them).
    pub bytes: usize,
}

/// The quotas of one store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    /// Off: writes are never refused for their source.
    pub enabled: bool,
    /// One source IP.
    pub per_ip: Share,
    /// One /24 (IPv4) or /64 (IPv6).
    pub per_prefix: Share,
}

impl Quota {
    /// No quota: writes are never refused for their source.
    pub fn off() -> Quota {
        let all = Share { items: usize::MAX, bytes: usize::MAX };
        Quota { enabled: false, per_ip: all, per_prefix: all }
    }

    /// Record-store quotas for a store of `max_records` / `max_bytes`: one
    /// IP may fill 1/64 of it, one prefix 1/16 (with the 256 MB default:
    /// 4 MB per IP, 16 MB per prefix).
    pub fn records(max_records: usize, max_bytes: usize) -> Quota {
        Quota {
            enabled: true,
            per_ip: Share { items: (max_records / 64).max(1), bytes: (max_bytes / 64).max(1) },
            per_prefix: Share { items: (max_records / 16).max(1), bytes: (max_bytes / 16).max(1) },
        }
    }

    /// Provider-store quotas for a store of `max_entries`: one IP may hold
    /// 1/100 of the entries (2,000 by default), one prefix 1/25.
    pub fn providers(max_entries: usize) -> Quota {
        let share = |items| Share { items, bytes: usize::MAX };
        Quota { enabled: true, per_ip: share((max_entries / 100).max(1)), per_prefix: share((max_entries / 25).max(1)) }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Usage {
    items: usize,
    bytes: usize,
}

impl Usage {
    fn fits(&self, share: Share, bytes: usize) -> bool {
        self.items < share.items && self.bytes.saturating_add(bytes) <= share.bytes
    }
}

/// Usage by source, and which source each item was charged to.
#[derive(Clone, Debug)]
pub struct SourceQuota<K> {
    quota: Quota,
    by_ip: HashMap<IpAddr, Usage>,
    by_prefix: HashMap<SourcePrefix, Usage>,
    charged: HashMap<K, (IpAddr, usize)>,
    refused: u64,
}

impl<K> Default for SourceQuota<K> {
    fn default() -> Self {
        SourceQuota {
            quota: Quota::off(),
            by_ip: HashMap::new(),
            by_prefix: HashMap::new(),
            charged: HashMap::new(),
            refused: 0,
        }
    }
}

impl<K: Hash + Eq + Clone> SourceQuota<K> {
    /// No usage yet.
    pub fn new(quota: Quota) -> Self {
        SourceQuota { quota, by_ip: HashMap::new(), by_prefix: HashMap::new(), charged: HashMap::new(), refused: 0 }
    }

    /// Whether `ip` may store `item` of `bytes` (an item it already holds
    /// is replaced, so its old share does not count); counts a refusal.
    pub fn admits(&mut self, ip: IpAddr, item: &K, bytes: usize) -> bool {
        if !self.quota.enabled {
            return true;
        }
        let prefix = SourcePrefix::of(ip);
        let mut ip_use = self.by_ip.get(&ip).copied().unwrap_or_default();
        let mut prefix_use = self.by_prefix.get(&prefix).copied().unwrap_or_default();
        if let Some((old_ip, old_bytes)) = self.charged.get(item) {
            if *old_ip == ip {
                ip_use = Usage { items: ip_use.items - 1, bytes: ip_use.bytes - old_bytes };
            }
            if SourcePrefix::of(*old_ip) == prefix {
                prefix_use = Usage { items: prefix_use.items - 1, bytes: prefix_use.bytes - old_bytes };
            }
        }
        let ok = ip_use.fits(self.quota.per_ip, bytes) && prefix_use.fits(self.quota.per_prefix, bytes);
        if !ok {
            self.refused += 1;
        }
        ok
    }

    /// Charges `item` of `bytes` to `ip` (after the store accepted it),
    /// releasing whatever it was charged to before.
    pub fn charge(&mut self, ip: IpAddr, item: K, bytes: usize) {
        self.release(&item);
        for u in [self.by_ip.entry(ip).or_default(), self.by_prefix.entry(SourcePrefix::of(ip)).or_default()] {
            u.items += 1;
            u.bytes += bytes;
        }
        self.charged.insert(item, (ip, bytes));
    }

    /// Gives back `item`'s share (it was removed, expired or replaced by
    /// a write nobody is charged for).
    pub fn release(&mut self, item: &K) {
        let Some((ip, bytes)) = self.charged.remove(item) else { return };
        let prefix = SourcePrefix::of(ip);
        if let Some(u) = self.by_ip.get_mut(&ip) {
            u.items -= 1;
            u.bytes -= bytes;
            if u.items == 0 {
                self.by_ip.remove(&ip);
            }
        }
        if let Some(u) = self.by_prefix.get_mut(&prefix) {
            u.items -= 1;
            u.bytes -= bytes;
            if u.items == 0 {
                self.by_prefix.remove(&prefix);
            }
        }
    }

    /// Writes refused so far.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Items charged to `ip`.
    pub fn items_of(&self, ip: IpAddr) -> usize {
        self.by_ip.get(&ip).map_or(0, |u| u.items)
    }

    /// Sources (IPs) holding something.
    pub fn sources(&self) -> usize {
        self.by_ip.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q() -> SourceQuota<u32> {
        SourceQuota::new(Quota {
            enabled: true,
            per_ip: Share { items: 3, bytes: 100 },
            per_prefix: Share { items: 5, bytes: 1000 },
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn store(q: &mut SourceQuota<u32>, from: &str, item: u32, bytes: usize) -> bool {
        let ok = q.admits(ip(from), &item, bytes);
        if ok {
            q.charge(ip(from), item, bytes);
        }
        ok
    }

    #[test]
    fn a_source_fills_its_share_and_no_more() {
        let mut q = q();
        assert_eq!((0..10).filter(|i| store(&mut q, "10.0.0.1", *i, 10)).count(), 3);
        assert!(store(&mut q, "10.0.0.1", 1, 10), "replacing an item it holds is fine");
        assert!(!store(&mut q, "10.0.0.2", 50, 200), "over the byte share");
        assert_eq!((10..20).filter(|i| store(&mut q, "10.0.0.2", *i, 10)).count(), 2, "the /24 has 5");
        assert!(store(&mut q, "10.9.0.1", 30, 10), "another prefix is untouched");
        assert_eq!(q.refused(), 7 + 1 + 8);
    }

    #[test]
    fn release_gives_the_share_back_and_forgets_empty_sources() {
        let mut q = q();
        for i in 0..3 {
            assert!(store(&mut q, "10.0.0.1", i, 10));
        }
        assert!(!store(&mut q, "10.0.0.1", 9, 10));
        q.release(&0);
        assert!(store(&mut q, "10.0.0.1", 9, 10));
        for i in [1, 2, 9] {
            q.release(&i);
        }
        assert_eq!((q.sources(), q.by_prefix.len(), q.charged.len()), (0, 0, 0));
    }
}
