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
//! so the result does not depend on the map's iteration order). An entry is
//! 20 bytes (address folded to 64 bits, two `u32` of estimate, a `u32`
//! stamp), so a full book is about 25 KiB: proximity only works for
//! contacts whose RTT is known, and a node talks to hundreds of them an hour.

use std::net::SocketAddr;
use std::time::Duration;

use foldhash::HashMap;

use crate::rtt::RttEstimate;

/// Addresses whose RTT the book keeps (7/8 of 1024, so the map's table
/// never grows past 1024 slots).
pub const BOOK_CAPACITY: usize = 896;

/// Smoothed RTTs of recently measured addresses.
#[derive(Debug, Default)]
pub struct RttBook {
    entries: HashMap<u64, (RttEstimate, u32)>,
    stamp: u32,
}

/// The book's key for `addr`: exact for IPv4 (address and port fit in 48
/// bits), a 64-bit fold for IPv6 (a collision only borrows another
/// address's estimate).
fn key(addr: &SocketAddr) -> u64 {
    match addr {
        SocketAddr::V4(a) => u64::from(u32::from(*a.ip())) << 16 | u64::from(a.port()),
        SocketAddr::V6(a) => {
            let ip = u128::from(*a.ip());
            let folded = (ip as u64) ^ ((ip >> 64) as u64).rotate_left(17) ^ u64::from(a.port()).rotate_left(48);
            folded | 1 << 63
        }
    }
}

impl RttBook {
    /// Takes a measured round trip to `addr` into account.
    pub fn observe(&mut self, addr: SocketAddr, rtt: Duration) {
        let k = key(&addr);
        if self.stamp == u32::MAX {
            self.restamp();
        }
        self.stamp += 1;
        if self.entries.len() >= BOOK_CAPACITY && !self.entries.contains_key(&k) {
            self.forget_oldest_half();
        }
        let entry = self.entries.entry(k).or_insert((RttEstimate::default(), 0));
        entry.0.observe(rtt);
        entry.1 = self.stamp;
    }

    /// Renumbers the stamps from 1 in their order, before the counter wraps.
    fn restamp(&mut self) {
        let mut order: Vec<(u32, u64)> = self.entries.iter().map(|(k, e)| (e.1, *k)).collect();
        order.sort_unstable();
        for (i, (_, k)) in order.iter().enumerate() {
            if let Some(e) = self.entries.get_mut(k) {
                e.1 = i as u32 + 1;
            }
        }
        self.stamp = order.len() as u32;
    }

    fn forget_oldest_half(&mut self) {
        let mut stamps: Vec<u32> = self.entries.values().map(|e| e.1).collect();
        let mid = stamps.len() / 2;
        let (_, &mut cut, _) = stamps.select_nth_unstable(mid);
        self.entries.retain(|_, e| e.1 >= cut);
    }

    /// The estimate for `addr`, if it has answered recently.
    pub fn get(&self, addr: &SocketAddr) -> Option<&RttEstimate> {
        self.entries.get(&key(addr)).map(|e| &e.0)
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
/// `srtt + 2 * rttvar` within `[min, max]`: a stranger may be as slow as
/// anyone, and the spread of all contacts' round trips is wide enough that
/// two deviations above the mean already cover nearly all of them (a stall
/// does not give up on the reply, it only lets another query go).
pub fn stall_for(own: Option<&RttEstimate>, all: &RttEstimate, bounds: StallBounds) -> Duration {
    match own.filter(|e| e.smoothed().is_some()) {
        Some(e) => e.stall_after(bounds.contact_min, bounds.max),
        None => all.stall_after_spread(2, bounds.min, bounds.max),
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
    fn stamps_renumber_before_they_wrap_and_keep_their_order() {
        let mut book = RttBook::default();
        book.observe(addr(1), Duration::from_millis(10));
        book.stamp = u32::MAX - 1;
        book.observe(addr(2), Duration::from_millis(20));
        book.observe(addr(3), Duration::from_millis(30));
        assert!(book.stamp < 10, "renumbered: {}", book.stamp);
        let stamp = |i| book.entries[&key(&addr(i))].1;
        assert!(stamp(1) < stamp(2) && stamp(2) < stamp(3));
    }

    #[test]
    fn ipv6_addresses_are_told_apart() {
        let v6 = |last: u16, port| SocketAddr::from(([0x2001, 0xdb8, 0, 0, 0, 0, 0, last], port));
        let mut book = RttBook::default();
        book.observe(v6(1, 4000), Duration::from_millis(10));
        book.observe(v6(2, 4000), Duration::from_millis(200));
        book.observe(v6(1, 4001), Duration::from_millis(90));
        assert_eq!(book.len(), 3);
        assert_eq!(book.smoothed(&v6(1, 4000)), Some(Duration::from_millis(10)));
        assert_eq!(book.smoothed(&v6(2, 4000)), Some(Duration::from_millis(200)));
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
        // A stranger: the engine-wide 160 + 2 * 80 = 320 ms.
        assert_eq!(stall_for(None, &all, B), Duration::from_millis(320));
        assert_eq!(stall_for(None, &RttEstimate::default(), B), B.max, "nothing measured yet");
    }
}
