//! How much dial-back work a node does for others: a global cap per second
//! and one action per IP per `per_ip_every`, so that `kadmesh_dialback`
//! cannot be used to make the network send a stream of probes at a victim,
//! nor make this node relay or probe without bound. Every probe is one
//! small datagram, never larger than the request that caused it.

use std::net::IpAddr;
use std::time::Duration;

use crate::limits::LruMap;
use crate::time::Time;

/// IPs remembered for the per-IP spacing.
const TRACKED_IPS: usize = 4096;

/// A global per-second cap plus per-IP spacing.
#[derive(Debug)]
pub struct ProbeBudget {
    per_sec: u32,
    per_ip_every: Duration,
    second: u64,
    used: u32,
    last: LruMap<IpAddr, Time>,
}

impl ProbeBudget {
    /// At most `per_sec` actions a second, one per IP per `per_ip_every`.
    pub fn new(per_sec: u32, per_ip_every: Duration) -> Self {
        ProbeBudget { per_sec, per_ip_every, second: 0, used: 0, last: LruMap::new(TRACKED_IPS) }
    }

    /// Whether one more action for `ip` is allowed at `now`; if so it is counted.
    pub fn allow(&mut self, ip: IpAddr, now: Time) -> bool {
        let second = now.as_secs();
        if second != self.second {
            (self.second, self.used) = (second, 0);
        }
        if self.used >= self.per_sec || self.last.peek(&ip).is_some_and(|&t| now < t + self.per_ip_every) {
            return false;
        }
        self.used += 1;
        self.last.insert(ip, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_per_ip_per_spacing_and_a_global_cap() {
        let mut b = ProbeBudget::new(2, Duration::from_secs(5));
        let ip = |n: u8| IpAddr::from([10, 0, 0, n]);
        let t = Time::from_secs(100);
        assert!(b.allow(ip(1), t));
        assert!(b.allow(ip(2), t));
        assert!(!b.allow(ip(3), t), "global cap of 2 in this second");
        assert!(!b.allow(ip(1), t + Duration::from_secs(4)), "same IP too soon");
        assert!(b.allow(ip(3), t + Duration::from_secs(4)));
        assert!(b.allow(ip(1), Time::from_secs(105)));
    }
}
