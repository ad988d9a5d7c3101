//! Round-trip time estimate (Jacobson/Karels, RFC 6298 constants) and the
//! lookup stall threshold derived from it.
//!
//! A fixed stall threshold has to fit the slowest network a node might be
//! on, so on a fast one every dead contact on a lookup's path costs far more
//! than a live one ever takes: with 1 s, a read on loopback after churn took
//! about 2 s against 5 ms before it. The engine feeds every reply's RTT in
//! and gives each new lookup `srtt + 4 * rttvar`, clamped to the configured
//! bounds. A stalled query is not abandoned: its late reply is still used.

use std::time::Duration;

/// Smoothed RTT and its mean deviation, in microseconds (0: no sample yet).
///
/// Two `u32`s, not floats: one is kept per contact in [`crate::proximity`],
/// and 71 minutes of round trip is more than any request waits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RttEstimate {
    srtt: u32,
    rttvar: u32,
}

impl RttEstimate {
    /// Takes one measured round trip into account.
    pub fn observe(&mut self, rtt: Duration) {
        // At least 1 us, so a sample is never mistaken for "none yet".
        let r = u32::try_from(rtt.as_micros()).unwrap_or(u32::MAX).max(1);
        if self.srtt == 0 {
            self.srtt = r;
            self.rttvar = r / 2;
            return;
        }
        let (s, v) = (u64::from(self.srtt), u64::from(self.rttvar));
        let dev = u64::from(self.srtt.abs_diff(r));
        // RFC 6298: rttvar = 3/4 rttvar + 1/4 |srtt - r|, srtt = 7/8 srtt + 1/8 r.
        self.rttvar = ((3 * v + dev) / 4) as u32;
        self.srtt = ((7 * s + u64::from(r)) / 8).max(1) as u32;
    }

    /// The smoothed RTT, once anything was measured.
    pub fn smoothed(&self) -> Option<Duration> {
        (self.srtt > 0).then(|| Duration::from_micros(u64::from(self.srtt)))
    }

    /// How long a lookup waits on a query before it stops counting it:
    /// `srtt + 4 * rttvar` within `[min, max]` (`max` wins if they cross), or
    /// `max` before any sample.
    pub fn stall_after(&self, min: Duration, max: Duration) -> Duration {
        self.stall_after_spread(4, min, max)
    }

    /// [`RttEstimate::stall_after`] with `srtt + spread * rttvar`.
    pub fn stall_after_spread(&self, spread: u32, min: Duration, max: Duration) -> Duration {
        if self.srtt == 0 {
            return max;
        }
        let micros = u64::from(self.srtt) + u64::from(spread) * u64::from(self.rttvar);
        Duration::from_micros(micros).clamp(min.min(max), max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_millis(200);
    const MAX: Duration = Duration::from_millis(1000);

    #[test]
    fn no_sample_means_the_maximum() {
        assert_eq!(RttEstimate::default().stall_after(MIN, MAX), MAX);
        assert_eq!(RttEstimate::default().smoothed(), None);
    }

    #[test]
    fn steady_rtt_converges_and_is_clamped_below() {
        let mut e = RttEstimate::default();
        for _ in 0..50 {
            e.observe(Duration::from_millis(100));
        }
        let s = e.smoothed().expect("sampled");
        assert!((99..=101).contains(&s.as_millis()), "{s:?}");
        // Variance decays towards zero: the threshold approaches srtt.
        let stall = e.stall_after(Duration::ZERO, MAX);
        assert!(stall >= Duration::from_millis(100) && stall < Duration::from_millis(110), "{stall:?}");
        // Loopback-fast replies still leave the configured floor.
        let mut fast = RttEstimate::default();
        fast.observe(Duration::from_micros(80));
        assert_eq!(fast.stall_after(MIN, MAX), MIN);
    }

    #[test]
    fn jittery_rtt_widens_the_threshold_up_to_the_maximum() {
        let mut e = RttEstimate::default();
        for i in 0..40 {
            e.observe(Duration::from_millis(if i % 2 == 0 { 50 } else { 350 }));
        }
        let stall = e.stall_after(MIN, Duration::from_secs(5));
        // Mean 200 ms, deviation about 150 ms: about 800 ms.
        assert!(stall > Duration::from_millis(600) && stall < Duration::from_millis(1000), "{stall:?}");
        assert_eq!(e.stall_after(MIN, Duration::from_millis(500)), Duration::from_millis(500));
        // A configured maximum below the floor wins.
        assert_eq!(e.stall_after(MIN, Duration::from_millis(150)), Duration::from_millis(150));
    }
}
