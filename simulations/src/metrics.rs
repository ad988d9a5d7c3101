//! Metric containers: samples with percentiles and CDFs, and per-interval
//! time series.
//!
//! Percentiles use the nearest-rank definition (the smallest sample such that
//! at least p% of the samples are at or below it), so every reported value
//! is one that was actually observed, and p100 is the maximum.

/// A bag of observations.
#[derive(Clone, Debug, Default)]
pub struct Samples {
    values: Vec<f64>,
    sorted: bool,
}

impl Samples {
    /// Adds one observation.
    pub fn push(&mut self, v: f64) {
        self.values.push(v);
        self.sorted = false;
    }

    /// Number of observations.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when nothing was observed.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    fn sort(&mut self) {
        if !self.sorted {
            self.values.sort_by(f64::total_cmp);
            self.sorted = true;
        }
    }

    /// The nearest-rank `p`-th percentile (0 < p <= 100); NaN when empty.
    pub fn percentile(&mut self, p: f64) -> f64 {
        self.sort();
        let n = self.values.len();
        if n == 0 {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        self.values[rank.clamp(1, n) - 1]
    }

    /// The arithmetic mean; NaN when empty.
    pub fn mean(&self) -> f64 {
        if self.values.is_empty() {
            return f64::NAN;
        }
        self.values.iter().sum::<f64>() / self.values.len() as f64
    }

    /// The largest observation; NaN when empty.
    pub fn max(&mut self) -> f64 {
        self.percentile(100.0)
    }

    /// The empirical CDF as `(value, fraction at or below)` steps, thinned to
    /// at most `points` points (always keeping the last).
    pub fn cdf(&mut self, points: usize) -> Vec<(f64, f64)> {
        self.sort();
        let n = self.values.len();
        if n == 0 {
            return Vec::new();
        }
        let step = n.div_ceil(points.max(1));
        let mut out: Vec<(f64, f64)> =
            (step - 1..n).step_by(step).map(|i| (self.values[i], (i + 1) as f64 / n as f64)).collect();
        if out.last().map(|p| p.1) != Some(1.0) {
            out.push((self.values[n - 1], 1.0));
        }
        out
    }
}

/// Counts of successes and attempts per fixed interval, plus a level gauge.
#[derive(Clone, Debug)]
pub struct Series {
    /// Length of one interval in ms.
    pub interval_ms: u64,
    ok: Vec<u64>,
    total: Vec<u64>,
    level: Vec<f64>,
}

impl Series {
    /// An empty series with `interval_ms` buckets.
    pub fn new(interval_ms: u64) -> Self {
        Series { interval_ms: interval_ms.max(1), ok: Vec::new(), total: Vec::new(), level: Vec::new() }
    }

    fn slot(&mut self, t_ms: u64) -> usize {
        let i = (t_ms / self.interval_ms) as usize;
        if self.total.len() <= i {
            self.ok.resize(i + 1, 0);
            self.total.resize(i + 1, 0);
            self.level.resize(i + 1, f64::NAN);
        }
        i
    }

    /// Records one attempt at `t_ms`.
    pub fn record(&mut self, t_ms: u64, ok: bool) {
        let i = self.slot(t_ms);
        self.total[i] += 1;
        self.ok[i] += u64::from(ok);
    }

    /// Sets the gauge (e.g. live nodes) for the interval containing `t_ms`.
    pub fn set_level(&mut self, t_ms: u64, v: f64) {
        let i = self.slot(t_ms);
        self.level[i] = v;
    }

    /// `(interval start in minutes, success %)` for intervals with attempts.
    pub fn success_pct(&self) -> Vec<(f64, f64)> {
        let minutes = |i: usize| (i as u64 * self.interval_ms) as f64 / 60_000.0;
        let rows = self.ok.iter().zip(&self.total).enumerate();
        rows.filter(|(_, (_, &t))| t > 0).map(|(i, (&o, &t))| (minutes(i), 100.0 * o as f64 / t as f64)).collect()
    }

    /// `(interval start in minutes, gauge)` for intervals where it was set.
    pub fn levels(&self) -> Vec<(f64, f64)> {
        let minutes = |i: usize| (i as u64 * self.interval_ms) as f64 / 60_000.0;
        self.level.iter().enumerate().filter(|(_, v)| !v.is_nan()).map(|(i, &v)| (minutes(i), v)).collect()
    }

    /// Successes and attempts summed over intervals starting at or after `from_ms`.
    pub fn totals_since(&self, from_ms: u64) -> (u64, u64) {
        let first = (from_ms / self.interval_ms) as usize;
        let ok = self.ok.iter().skip(first).sum();
        (ok, self.total.iter().skip(first).sum())
    }

    /// The worst success % over intervals starting at or after `from_ms` with
    /// at least `min_total` attempts.
    pub fn worst_success_pct(&self, from_ms: u64, min_total: u64) -> Option<f64> {
        let first = (from_ms / self.interval_ms) as usize;
        let rows = self.ok.iter().zip(&self.total).skip(first);
        rows.filter(|(_, &t)| t >= min_total).map(|(&o, &t)| 100.0 * o as f64 / t as f64).min_by(f64::total_cmp)
    }
}

/// A success ratio as a percentage; NaN when nothing was attempted.
pub fn pct(ok: u64, total: u64) -> f64 {
    if total == 0 {
        f64::NAN
    } else {
        100.0 * ok as f64 / total as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(v: &[f64]) -> Samples {
        let mut s = Samples::default();
        v.iter().for_each(|&x| s.push(x));
        s
    }

    #[test]
    fn nearest_rank_percentiles() {
        let mut s = samples(&[15.0, 20.0, 35.0, 40.0, 50.0]);
        assert_eq!(s.percentile(5.0), 15.0);
        assert_eq!(s.percentile(30.0), 20.0);
        assert_eq!(s.percentile(40.0), 20.0);
        assert_eq!(s.percentile(50.0), 35.0);
        assert_eq!(s.percentile(100.0), 50.0);
        let mut hundred = samples(&(1..=100).rev().map(f64::from).collect::<Vec<_>>());
        assert_eq!((hundred.percentile(50.0), hundred.percentile(95.0), hundred.percentile(99.0)), (50.0, 95.0, 99.0));
        assert_eq!(hundred.mean(), 50.5);
        assert!(Samples::default().percentile(50.0).is_nan());
    }

    #[test]
    fn cdf_is_monotone_and_ends_at_one() {
        let mut s = samples(&(0..1000).map(|i| f64::from(i % 37)).collect::<Vec<_>>());
        let c = s.cdf(50);
        assert!(c.len() <= 51);
        assert!(c.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 < w[1].1));
        assert_eq!(c.last().copied(), Some((36.0, 1.0)));
        assert_eq!(samples(&[3.0]).cdf(10), vec![(3.0, 1.0)]);
    }

    #[test]
    fn series_buckets_by_interval() {
        let mut s = Series::new(60_000);
        s.record(1_000, true);
        s.record(59_999, false);
        s.record(120_000, true);
        s.set_level(130_000, 7.0);
        assert_eq!(s.success_pct(), vec![(0.0, 50.0), (2.0, 100.0)]);
        assert_eq!(s.levels(), vec![(2.0, 7.0)]);
        assert_eq!(s.worst_success_pct(0, 1), Some(50.0));
        assert_eq!(s.worst_success_pct(60_000, 1), Some(100.0));
        assert_eq!(s.worst_success_pct(0, 5), None);
        assert_eq!((s.totals_since(0), s.totals_since(60_000)), ((2, 3), (1, 1)));
        assert!(pct(0, 0).is_nan());
        assert_eq!(pct(1, 4), 25.0);
    }
}
