//! Whom this node sent a datagram to recently: the NAT mappings that may
//! still be open for it.
//!
//! A NAT lets a datagram in from an address the node sent to within its
//! mapping lifetime, whatever else blocks unsolicited traffic. So a probe
//! from such an address proves nothing about reachability, and the detector
//! ignores it. The same record, with a filter on top, is the model of a
//! reply-only NAT in the simulator and the loopback tests
//! ([`RecentPeers::admits`]).
//!
//! Bounded: at most `capacity` addresses; when an address still inside the
//! window has to be forgotten, the record knows it is no longer complete
//! until that time has passed and says so ([`RecentPeers::complete`]).

use std::net::SocketAddr;
use std::time::Duration;

use crate::limits::LruMap;
use crate::time::Time;

/// Addresses sent to, with the time of the last send.
#[derive(Debug)]
pub struct RecentPeers {
    sent: LruMap<SocketAddr, Time>,
    window: Duration,
    /// Until this time the record may miss an address sent to in the window.
    incomplete_until: Option<Time>,
}

impl RecentPeers {
    /// Remembers up to `capacity` addresses for `window`.
    pub fn new(capacity: usize, window: Duration) -> Self {
        RecentPeers { sent: LruMap::new(capacity.max(1)), window, incomplete_until: None }
    }

    /// We sent a datagram to `to` at `now`.
    pub fn note_sent(&mut self, to: SocketAddr, now: Time) {
        if let Some((_, at)) = self.sent.insert(to, now) {
            let until = at + self.window;
            if until > now {
                self.incomplete_until = Some(self.incomplete_until.map_or(until, |u| u.max(until)));
            }
        }
    }

    /// Whether we sent to `from` within the window before `now`.
    pub fn sent_recently(&self, from: SocketAddr, now: Time) -> bool {
        self.sent.peek(&from).is_some_and(|&at| now < at + self.window)
    }

    /// Whether every address sent to within the window is still recorded.
    pub fn complete(&self, now: Time) -> bool {
        self.incomplete_until.is_none_or(|u| now >= u)
    }

    /// A reply-only NAT's decision: a datagram from `from` gets in only if
    /// we sent to it within the window.
    pub fn admits(&self, from: SocketAddr, now: Time) -> bool {
        self.sent_recently(from, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(p: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], p))
    }

    #[test]
    fn an_address_is_recent_for_the_window_only() {
        let mut r = RecentPeers::new(8, Duration::from_secs(60));
        r.note_sent(addr(1), Time::from_secs(10));
        assert!(r.sent_recently(addr(1), Time::from_secs(69)));
        assert!(!r.sent_recently(addr(1), Time::from_secs(70)));
        assert!(!r.admits(addr(2), Time::from_secs(11)), "never sent to");
        r.note_sent(addr(1), Time::from_secs(100));
        assert!(r.admits(addr(1), Time::from_secs(150)), "a new send reopens the mapping");
    }

    #[test]
    fn forgetting_a_live_address_makes_the_record_incomplete_until_it_expires() {
        let mut r = RecentPeers::new(2, Duration::from_secs(60));
        for p in 1..=3 {
            r.note_sent(addr(p), Time::from_secs(u64::from(p)));
        }
        assert!(!r.sent_recently(addr(1), Time::from_secs(4)), "evicted");
        assert!(!r.complete(Time::from_secs(4)));
        assert!(r.complete(Time::from_secs(61)));
    }
}
