//! How near the node's contacts are: a bounded book of smoothed round-trip
//! times per address, fed by every reply the engine matches.
//!
//! On a wide-area network a lookup's latency is the sum of the round trips
//! it waits on, and those range from 20 to 300 ms. Knowing each contact's own
//! RTT lets the engine prefer the nearer of two contacts that are equally
//! close in XOR terms ([`crate::lookup`]), give each query its own stall
//! threshold instead of one for the whole network (a slow or dead contact
//! then holds a lookup slot about as long as it deserves), and keep nearer
//! contacts when a bucket has a choice (proximity neighbour selection).
//!
//! Keyed by address, not id: the round trip belongs to the path, and a seed
//! is pinged before its id is known. Memory is bounded: at [`BOOK_CAPACITY`]
//! entries the least recently measured half is dropped (by a unique stamp,
//! so the result does not depend on the map's iteration order).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::rtt::RttEstimate;

/// Addresses whose RTT the book keeps: a routing table's worth and more.
pub const BOOK_CAPACITY: usize = 256;

/// Smoothed RTTs of recently measured addresses.
#[derive(Debug, Default)]
pub struct RttBook {
    entries: HashMap<SocketAddr, (RttEstimate, u64)>,
    stamp: u64,
}

impl RttBook {
    /// Takes a measured round trip to `addr` into account.
    pub fn observe(&mut self, addr: SocketAddr, rtt: Duration) {
        self.stamp += 1;
        if self.entries.len() >= BOOK_CAPACITY && !self.entries.contains_key(&addr) {
            self.forget_oldest_half();
        }
        let entry = self.entries.entry(addr).or_insert((RttEstimate::default(), 0));
        entry.0.observe(rtt);
        entry.1 = self.stamp;
    }

    fn forget_oldest_half(&mut self) {
        let mut stamps: Vec<u64> = self.entries.values().map(|e| e.1).collect();
        let mid = stamps.len() / 2;
        let (_, &mut cut, _) = stamps.select_nth_unstable(mid);
        self.entries.retain(|_, e| e.1 >= cut);
    }

    /// The estimate for `addr`, if it has answered recently.
    pub fn get(&self, addr: &SocketAddr) -> Option<&RttEstimate> {
        self.entries.get(addr).map(|e| &e.0)
    }

    /// `addr`'s smoothed RTT, if known.
    pub fn smoothed(&self, addr: &SocketAddr) -> Option<Duration> {
        self.get(addr).and_then(RttEstimate::smoothed)
    }

    /// Addresses held (at most [`BOOK_CAPACITY`]).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing was measured.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// How long a query to one contact may go unanswered before the lookup
/// stops counting it: the contact's own `srtt + 4 * rttvar` within
/// `[contact_min, max]` once it has answered before, else the engine-wide
/// estimate within `[min, max]` (a stranger may be as slow as anyone).
pub fn stall_for(own: Option<&RttEstimate>, all: &RttEstimate, bounds: StallBounds) -> Duration {
    match own.filter(|e| e.smoothed().is_some()) {
        Some(e) => e.stall_after(bounds.contact_min, bounds.max),
        None => all.stall_after(bounds.min, bounds.max),
    }
}

/// The bounds of a stall threshold (see [`stall_for`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StallBounds {
    /// Floor for a contact measured before.
    pub contact_min: Duration,
    /// Floor for a contact never measured.
    pub min: Duration,
    /// Ceiling for every contact (and the threshold before any sample).
    pub max: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u32) -> SocketAddr {
        SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 4000))
    }

    const B: StallBounds = StallBounds {
        contact_min: Duration::from_millis(50),
        min: Duration::from_millis(200),
        max: Duration::from_millis(1000),
    };

    #[test]
    fn book_is_bounded_and_keeps_the_most_recent() {
        let mut book = RttBook::default();
        for i in 0..(3 * BOOK_CAPACITY as u32) {
            book.observe(addr(i), Duration::from_millis(u64::from(i % 300) + 1));
            assert!(book.len() <= BOOK_CAPACITY);
        }
        let last = addr(3 * BOOK_CAPACITY as u32 - 1);
        assert!(book.smoothed(&last).is_some());
        assert!(book.smoothed(&addr(0)).is_none(), "the oldest were dropped");
    }

    #[test]
    fn a_measured_contact_gets_its_own_threshold_bounded_both_ways() {
        let mut all = RttEstimate::default();
        all.observe(Duration::from_millis(160));
        let mut near = RttEstimate::default();
        near.observe(Duration::from_millis(20));
        // 20 ms + 4 * 10 ms = 60 ms: its own, below the engine-wide floor.
        assert_eq!(stall_for(Some(&near), &all, B), Duration::from_millis(60));
        let mut loopback = RttEstimate::default();
        loopback.observe(Duration::from_micros(90));
        assert_eq!(stall_for(Some(&loopback), &all, B), B.contact_min, "floored");
        let mut slow = RttEstimate::default();
        slow.observe(Duration::from_millis(700));
        assert_eq!(stall_for(Some(&slow), &all, B), B.max, "capped");
        // A stranger: the engine-wide 160 + 4 * 80 = 480 ms.
        assert_eq!(stall_for(None, &all, B), Duration::from_millis(480));
        assert_eq!(stall_for(None, &RttEstimate::default(), B), B.max, "nothing measured yet");
    }
}
