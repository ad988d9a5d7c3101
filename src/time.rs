//! Time as plain data.
//!
//! The protocol core never reads a clock: every entry point takes `now: Time`.
//! A [`Time`] is milliseconds on a monotonic timeline whose origin the caller
//! picks. The tokio driver anchors it at the Unix epoch when the node starts and
//! then advances it with tokio's monotonic clock (so paused-time tests control
//! it); the simulator starts it at zero and advances it virtually.

use std::ops::{Add, Sub};
use std::time::Duration;

/// A point in time, in milliseconds since an origin chosen by the driver.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(u64);

impl Time {
    /// The origin of the timeline.
    pub const ZERO: Time = Time(0);

    /// A time `ms` milliseconds after the origin.
    pub const fn from_millis(ms: u64) -> Self {
        Time(ms)
    }

    /// A time `s` seconds after the origin.
    pub const fn from_secs(s: u64) -> Self {
        Time(s.saturating_mul(1000))
    }

    /// Milliseconds since the origin.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Whole seconds since the origin.
    pub const fn as_secs(self) -> u64 {
        self.0 / 1000
    }

    /// Seconds since the origin, with fractions.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// How long after `earlier` this is; zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Time) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Time {
    type Output = Time;
    fn add(self, d: Duration) -> Time {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Time(self.0.saturating_add(ms))
    }
}

impl Sub<Duration> for Time {
    type Output = Time;
    fn sub(self, d: Duration) -> Time {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Time(self.0.saturating_sub(ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Time::from_secs(10);
        assert_eq!((t + Duration::from_millis(1500)).as_millis(), 11_500);
        assert_eq!(t - Duration::from_secs(20), Time::ZERO);
        assert_eq!(Time::from_millis(u64::MAX) + Duration::from_secs(1), Time::from_millis(u64::MAX));
        assert_eq!(t.saturating_since(Time::from_secs(12)), Duration::ZERO);
        assert_eq!(Time::from_secs(12).saturating_since(t), Duration::from_secs(2));
    }
}
