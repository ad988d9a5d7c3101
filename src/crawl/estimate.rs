//! Network size from the density of node ids.
//!
//! Ids are uniform over the 160-bit space, so among `n` nodes the i-th
//! closest to any target lies, on average, `i / (n + 1)` of the space away.
//! Given the closest nodes to a few random targets (each from an iterative
//! lookup, which finds the true closest), the least-squares fit of
//! `f_i = i / (n + 1)` through the origin, pooled over all samples, is
//! `n + 1 = Σ i² / Σ i·f_i`. With k = 20 and four probes the relative error is
//! typically within 15%.

use crate::id::{Distance, NodeId};

/// How big the network looks after a crawl.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SizeEstimate {
    /// Nodes that answered the crawl.
    pub responding: usize,
    /// Whether the crawl visited every address it learned.
    pub complete: bool,
    /// The density estimate, when the probes found anything.
    pub density: Option<f64>,
    /// Random-target lookups run for the density estimate.
    pub probes: usize,
}

impl SizeEstimate {
    /// The best single figure: the count of a complete crawl, else the
    /// density estimate (never below what the crawl actually reached).
    pub fn best(&self) -> f64 {
        let counted = self.responding as f64;
        match (self.complete, self.density) {
            (false, Some(d)) => d.max(counted),
            _ => counted,
        }
    }

    /// How [`best`](Self::best) was obtained: `exhaustive`, `density` or
    /// `lower bound` (a partial crawl without a density estimate).
    pub fn method(&self) -> &'static str {
        match (self.complete, self.density) {
            (true, _) => "exhaustive",
            (false, Some(_)) => "density",
            (false, None) => "lower bound",
        }
    }
}

/// A distance as a fraction of the whole id space, in `[0, 1]` (the top
/// end only through rounding).
pub fn distance_fraction(d: &Distance) -> f64 {
    d.0.iter().rev().fold(0.0, |acc, &b| (acc + f64::from(b)) / 256.0)
}

/// Estimates how many nodes exist besides the one that ran the lookups, from
/// `(target, closest ids found)` samples. `None` when there is nothing to go
/// on (no samples, or no id at a non-zero distance).
pub fn density_estimate(samples: &[(NodeId, Vec<NodeId>)]) -> Option<f64> {
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (target, ids) in samples {
        let mut ids = ids.clone();
        ids.sort_by_key(|id| target.distance(id));
        ids.dedup();
        for (i, id) in ids.iter().enumerate() {
            let rank = (i + 1) as f64;
            num += rank * rank;
            den += rank * distance_fraction(&target.distance(id));
        }
    }
    (den > 0.0).then(|| (num / den - 1.0).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    fn closest(ids: &[NodeId], target: &NodeId, k: usize) -> Vec<NodeId> {
        let mut v: Vec<(Distance, NodeId)> = ids.iter().map(|id| (target.distance(id), *id)).collect();
        let k = k.min(v.len());
        if k < v.len() {
            v.select_nth_unstable(k);
        }
        v.truncate(k);
        v.into_iter().map(|(_, id)| id).collect()
    }

    fn estimate_for(n: usize, probes: usize, seed: u64) -> f64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let ids: Vec<NodeId> = (0..n).map(|_| NodeId::random(&mut rng)).collect();
        let samples: Vec<(NodeId, Vec<NodeId>)> = (0..probes)
            .map(|_| {
                let t = NodeId::random(&mut rng);
                (t, closest(&ids, &t, 20))
            })
            .collect();
        density_estimate(&samples).unwrap()
    }

    #[test]
    fn distance_fraction_spans_the_space() {
        assert_eq!(distance_fraction(&Distance::default()), 0.0);
        let mut half = [0u8; 20];
        half[0] = 0x80;
        assert_eq!(distance_fraction(&Distance(half)), 0.5);
        let all = distance_fraction(&Distance([0xff; 20]));
        assert!(all <= 1.0 && all > 0.999_999, "{all}");
    }

    #[test]
    fn estimate_is_within_a_third_of_the_true_size_for_every_seed() {
        for n in [30, 200, 2_000, 20_000] {
            let mut errors = Vec::new();
            for seed in 0..10 {
                let est = estimate_for(n, 4, seed);
                let rel = (est - n as f64).abs() / n as f64;
                assert!(rel < 0.34, "n={n} seed={seed}: estimate {est:.0}");
                errors.push(rel);
            }
            errors.sort_by(f64::total_cmp);
            assert!(errors[5] < 0.15, "n={n}: median relative error {:.2}", errors[5]);
        }
    }

    #[test]
    fn estimate_needs_data_and_ignores_duplicates() {
        assert_eq!(density_estimate(&[]), None);
        let t = NodeId::for_key("t");
        assert_eq!(density_estimate(&[(t, vec![])]), None);
        assert_eq!(density_estimate(&[(t, vec![t])]), None);
        let mut rng = StdRng::seed_from_u64(9);
        let ids: Vec<NodeId> = (0..500).map(|_| NodeId::random(&mut rng)).collect();
        let near = closest(&ids, &t, 20);
        let doubled: Vec<NodeId> = near.iter().chain(near.iter()).copied().collect();
        assert_eq!(density_estimate(&[(t, near)]), density_estimate(&[(t, doubled)]));
    }

    #[test]
    fn best_prefers_the_count_of_a_complete_crawl() {
        let e = SizeEstimate { responding: 12, complete: true, density: Some(15.0), probes: 4 };
        assert_eq!((e.best(), e.method()), (12.0, "exhaustive"));
        let partial = SizeEstimate { complete: false, ..e };
        assert_eq!((partial.best(), partial.method()), (15.0, "density"));
        let low = SizeEstimate { responding: 40, complete: false, density: Some(15.0), probes: 4 };
        assert_eq!(low.best(), 40.0);
        let none = SizeEstimate { responding: 3, complete: false, density: None, probes: 0 };
        assert_eq!((none.best(), none.method()), (3.0, "lower bound"));
    }
}
