//! The one place the daemon reads clocks.
//!
//! [`Time`] values handed to the engine are Unix-epoch milliseconds taken
//! once at start, advanced by tokio's monotonic clock: they never jump back
//! when the wall clock is adjusted, and `#[tokio::test(start_paused = true)]`
//! controls them.

use std::time::UNIX_EPOCH;

use crate::time::Time;

/// Converts between tokio instants and engine [`Time`].
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: Time,
    start: tokio::time::Instant,
}

impl Clock {
    /// A clock anchored at the current wall-clock time.
    #[allow(clippy::disallowed_methods)]
    pub fn new() -> Self {
        let since_epoch = std::time::SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Clock { origin: Time::from_millis(since_epoch.as_millis() as u64), start: tokio::time::Instant::now() }
    }

    /// The current time.
    pub fn now(&self) -> Time {
        self.origin + self.start.elapsed()
    }

    /// The tokio instant of an engine time (for sleeping until it).
    pub fn instant(&self, t: Time) -> tokio::time::Instant {
        self.start + t.saturating_since(self.origin)
    }

    /// Seconds since the Unix epoch now, for values that carry timestamps.
    pub fn unix_secs(&self) -> f64 {
        self.now().as_secs_f64()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}
