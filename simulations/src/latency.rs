//! The wide-area latency and loss model.
//!
//! Every machine gets a placement derived from the seed and its slot number
//! alone: a region (weighted like a volunteer population: mostly North America
//! and Europe), a position inside the region and a last-mile access delay.
//! The round-trip time of a pair is the inter-region base RTT (rough public
//! ping tables) plus the in-region distance plus both access delays, clamped to
//! 20-300 ms. So RTTs are consistent (a triangle of nearby nodes is fast), not
//! independent random numbers, and the same pair always sees the same RTT.
//!
//! Loss: every datagram is lost with a base probability; a fraction of
//! machines sit on bad links and lose more of what they send and receive.

use crate::hash::{mix, unit};

/// Region names, in the order of [`REGION_WEIGHTS`] and [`REGION_RTT_MS`].
pub const REGIONS: [&str; 6] = ["na-east", "na-west", "europe", "asia", "s-america", "oceania"];
/// Share of machines per region.
const REGION_WEIGHTS: [f64; 6] = [0.25, 0.15, 0.30, 0.18, 0.07, 0.05];
/// Base round-trip times between regions, in ms (diagonal: same region).
const REGION_RTT_MS: [[f64; 6]; 6] = [
    [12.0, 62.0, 80.0, 195.0, 120.0, 200.0],
    [62.0, 12.0, 140.0, 145.0, 170.0, 150.0],
    [80.0, 140.0, 12.0, 225.0, 195.0, 265.0],
    [195.0, 145.0, 225.0, 35.0, 290.0, 115.0],
    [120.0, 170.0, 195.0, 290.0, 25.0, 290.0],
    [200.0, 150.0, 265.0, 115.0, 290.0, 18.0],
];
/// Side of the square a region's machines are spread over (ms of Manhattan distance).
const REGION_SPREAD_MS: f64 = 15.0;
/// Bounds of any pair's round-trip time.
/// The smallest round trip between any two machines, ms.
pub const RTT_MIN_MS: f64 = 20.0;
const RTT_MAX_MS: f64 = 300.0;

/// Where one machine sits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Placement {
    /// Index into [`REGIONS`].
    pub region: u8,
    x: f64,
    y: f64,
    /// One-way last-mile delay in ms (counted twice in a round trip).
    access_ms: f64,
    /// On a lossy link.
    pub lossy: bool,
}

/// Latency and loss parameters.
#[derive(Clone, Debug)]
pub struct LatencyModel {
    seed: u64,
    /// Loss probability of any datagram.
    pub loss: f64,
    /// Extra loss for each lossy endpoint.
    pub lossy_extra: f64,
    /// Fraction of machines on lossy links.
    pub lossy_fraction: f64,
}

impl LatencyModel {
    /// The default model: 1% loss everywhere, 5% of machines lose another 5%.
    pub fn new(seed: u64) -> Self {
        LatencyModel { seed, loss: 0.01, lossy_extra: 0.05, lossy_fraction: 0.05 }
    }

    /// The placement of machine `slot`; a pure function of seed and slot.
    pub fn place(&self, slot: u32) -> Placement {
        let h = |salt: u64| unit(mix(mix(self.seed, u64::from(slot)), salt));
        let mut pick = h(1);
        let mut region = 0;
        for (i, w) in REGION_WEIGHTS.iter().enumerate() {
            region = i;
            if pick < *w {
                break;
            }
            pick -= w;
        }
        // Log-normal access delay, median 4 ms, capped so no link is absurd.
        let access_ms = (4.0 * (0.8 * normal(h(4), h(5))).exp()).min(40.0);
        Placement {
            region: region as u8,
            x: h(2) * REGION_SPREAD_MS,
            y: h(3) * REGION_SPREAD_MS,
            access_ms,
            lossy: h(6) < self.lossy_fraction,
        }
    }

    /// Round-trip time between two machines in ms.
    pub fn rtt_ms(&self, a: &Placement, b: &Placement) -> f64 {
        let base = REGION_RTT_MS[usize::from(a.region)][usize::from(b.region)];
        let spread = (a.x - b.x).abs() + (a.y - b.y).abs();
        (base + spread + 2.0 * (a.access_ms + b.access_ms)).clamp(RTT_MIN_MS, RTT_MAX_MS)
    }

    /// Probability that a datagram from `a` to `b` is lost.
    pub fn loss_prob(&self, a: &Placement, b: &Placement) -> f64 {
        let extra = self.lossy_extra * (f64::from(u8::from(a.lossy)) + f64::from(u8::from(b.lossy)));
        (self.loss + extra).min(1.0)
    }
}

/// A standard normal sample from two uniforms (Box-Muller).
pub fn normal(u1: f64, u2: f64) -> f64 {
    let u1 = u1.max(1e-12);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Samples;

    #[test]
    fn rtts_are_wide_area_and_symmetric() {
        let m = LatencyModel::new(7);
        let places: Vec<Placement> = (0..400).map(|i| m.place(i)).collect();
        let mut s = Samples::default();
        for a in &places {
            for b in &places {
                let r = m.rtt_ms(a, b);
                assert_eq!(r, m.rtt_ms(b, a));
                assert!((RTT_MIN_MS..=RTT_MAX_MS).contains(&r));
                s.push(r);
            }
        }
        let (p10, p50, p90) = (s.percentile(10.0), s.percentile(50.0), s.percentile(90.0));
        assert!(p10 < 60.0 && (60.0..200.0).contains(&p50) && p90 > 150.0, "{p10} {p50} {p90}");
    }

    #[test]
    fn placement_is_a_function_of_seed_and_slot() {
        let (a, b) = (LatencyModel::new(1), LatencyModel::new(1));
        assert_eq!(a.place(42), b.place(42));
        assert_ne!(a.place(42), LatencyModel::new(2).place(42));
    }
}
