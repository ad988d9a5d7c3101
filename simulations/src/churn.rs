//! The churn model: how long volunteer machines stay up, how long they stay
//! down, and whether they come back with their saved state.
//!
//! Sessions and downtimes are log-normal, the shape measured for peer-to-peer
//! session lengths (many short sessions, a long tail of machines that stay up
//! for a day). Every departure is a crash: nodes never say goodbye. A machine
//! that restarts with saved state keeps its node id and address and rejoins
//! through the contacts it saved; one that restarts without (a re-imaged
//! container, a wiped volume) comes back as a new node with a new id and a new
//! address (a new tunnel or NAT mapping), and needs a bootstrap seed.

use std::time::Duration;

use rand::Rng;

use crate::latency::normal;

/// Session, downtime and restart parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct ChurnModel {
    /// Median time a worker stays up, minutes.
    pub session_median_min: f64,
    /// Log-normal shape of sessions (larger: more short and more very long ones).
    pub session_sigma: f64,
    /// Median time a machine stays down, minutes.
    pub down_median_min: f64,
    /// Log-normal shape of downtimes.
    pub down_sigma: f64,
    /// Probability that a restart keeps the saved state (id, contacts, records).
    pub keeps_state: f64,
}

impl Default for ChurnModel {
    /// Median session 2 h (mean about 3.3 h), median downtime 10 min (mean
    /// about 16 min), 90% of restarts keep their state.
    fn default() -> Self {
        ChurnModel {
            session_median_min: 120.0,
            session_sigma: 1.0,
            down_median_min: 10.0,
            down_sigma: 1.0,
            keeps_state: 0.9,
        }
    }
}

fn log_normal<R: Rng>(rng: &mut R, median_min: f64, sigma: f64) -> Duration {
    let z = normal(rng.gen(), rng.gen());
    let minutes = (median_min * (sigma * z).exp()).clamp(0.5, 7.0 * 24.0 * 60.0);
    Duration::from_millis((minutes * 60_000.0) as u64)
}

impl ChurnModel {
    /// How long the next session lasts.
    pub fn session<R: Rng>(&self, rng: &mut R) -> Duration {
        log_normal(rng, self.session_median_min, self.session_sigma)
    }

    /// How long the machine stays down before it restarts.
    pub fn downtime<R: Rng>(&self, rng: &mut R) -> Duration {
        log_normal(rng, self.down_median_min, self.down_sigma)
    }

    /// Whether the next restart keeps the saved state.
    pub fn restart_keeps_state<R: Rng>(&self, rng: &mut R) -> bool {
        rng.gen_bool(self.keeps_state.clamp(0.0, 1.0))
    }

    /// Expected session length in hours (log-normal mean, before clamping).
    pub fn mean_session_hours(&self) -> f64 {
        self.session_median_min * (self.session_sigma.powi(2) / 2.0).exp() / 60.0
    }

    /// Expected fraction of time a machine is up.
    pub fn availability(&self) -> f64 {
        let up = self.mean_session_hours();
        let down = self.down_median_min * (self.down_sigma.powi(2) / 2.0).exp() / 60.0;
        up / (up + down)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Samples;
    use rand::{rngs::SmallRng, SeedableRng};

    #[test]
    fn sessions_follow_the_configured_median() {
        let m = ChurnModel::default();
        let mut rng = SmallRng::seed_from_u64(3);
        let mut s = Samples::default();
        for _ in 0..20_000 {
            s.push(m.session(&mut rng).as_secs_f64() / 60.0);
        }
        let median = s.percentile(50.0);
        assert!((median - 120.0).abs() < 6.0, "median {median}");
        assert!((s.mean() / 60.0 - m.mean_session_hours()).abs() < 0.15);
        assert!(m.availability() > 0.9 && m.availability() < 0.95);
    }
}
