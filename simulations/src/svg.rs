//! A tiny hand-written SVG line plotter: axes with "nice" ticks, one
//! polyline per series, a legend and optional vertical markers (e.g. when a
//! partition starts). Enough for latency CDFs and success-over-time charts
//! without a plotting dependency.

use std::fmt::Write;

const W: f64 = 720.0;
const H: f64 = 400.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 36.0;
const BOTTOM: f64 = 48.0;
const COLORS: [&str; 6] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];

/// One line chart.
#[derive(Clone, Debug, Default)]
pub struct Plot {
    /// Title above the chart.
    pub title: String,
    /// Label under the x axis.
    pub x_label: String,
    /// Label beside the y axis.
    pub y_label: String,
    /// Named series of `(x, y)` points, drawn in order.
    pub series: Vec<(String, Vec<(f64, f64)>)>,
    /// Fixed y range; otherwise fitted to the data.
    pub y_range: Option<(f64, f64)>,
    /// Fixed x range; otherwise fitted to the data.
    pub x_range: Option<(f64, f64)>,
    /// Dashed vertical markers at these x positions, with labels.
    pub markers: Vec<(f64, String)>,
}

/// Round tick positions covering `[lo, hi]`, about `n` of them.
pub fn nice_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if hi <= lo || !lo.is_finite() || !hi.is_finite() {
        return vec![lo];
    }
    let raw = (hi - lo) / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

fn fit(points: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) =
        points.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    match (lo.is_finite(), hi > lo) {
        (true, true) => (lo, hi),
        (true, false) => (lo - 1.0, lo + 1.0),
        _ => (0.0, 1.0),
    }
}

fn label(v: f64) -> String {
    if v.abs() >= 1e4 || (v != 0.0 && v.abs() < 1e-2) {
        format!("{v:.1e}")
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}").trim_end_matches('0').to_string()
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

impl Plot {
    fn ranges(&self) -> ((f64, f64), (f64, f64)) {
        let xs = self.series.iter().flat_map(|(_, p)| p.iter().map(|q| q.0));
        let ys = self.series.iter().flat_map(|(_, p)| p.iter().map(|q| q.1));
        (self.x_range.unwrap_or_else(|| fit(xs)), self.y_range.unwrap_or_else(|| fit(ys)))
    }

    /// The chart as a standalone SVG document.
    pub fn render(&self) -> String {
        let ((x0, x1), (y0, y1)) = self.ranges();
        let px = |x: f64| LEFT + (x - x0) / (x1 - x0) * (W - LEFT - RIGHT);
        let py = |y: f64| H - BOTTOM - (y - y0) / (y1 - y0) * (H - TOP - BOTTOM);
        let mut s = String::new();
        let _ = write!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/><text x="{}" y="20" text-anchor="middle" font-size="15">{}</text>"#,
            W / 2.0,
            escape(&self.title)
        );
        self.axes(&mut s, (x0, x1), (y0, y1), &px, &py);
        self.annotate(&mut s, (x0, x1), &px);
        for (i, (name, pts)) in self.series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let inside = pts.iter().filter(|(x, y)| x.is_finite() && y.is_finite() && *x >= x0 && *x <= x1);
            let path: Vec<String> = inside.map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y.clamp(y0, y1)))).collect();
            let _ =
                write!(s, r#"<polyline fill="none" stroke="{color}" stroke-width="1.6" points="{}"/>"#, path.join(" "));
            let ly = TOP + 14.0 + 16.0 * i as f64;
            let _ = write!(
                s,
                r#"<line x1="{}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
                W - RIGHT - 190.0,
                W - RIGHT - 170.0,
                W - RIGHT - 164.0,
                ly + 4.0,
                escape(name)
            );
        }
        s.push_str("</svg>\n");
        s
    }

    fn axes(
        &self,
        s: &mut String,
        (x0, x1): (f64, f64),
        (y0, y1): (f64, f64),
        px: &dyn Fn(f64) -> f64,
        py: &dyn Fn(f64) -> f64,
    ) {
        let (bottom, right) = (H - BOTTOM, W - RIGHT);
        let _ = write!(
            s,
            r##"<rect x="{LEFT}" y="{TOP}" width="{}" height="{}" fill="none" stroke="#444"/>"##,
            right - LEFT,
            bottom - TOP
        );
        for t in nice_ticks(x0, x1, 8) {
            let x = px(t);
            let _ = write!(
                s,
                r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{bottom}" stroke="#e4e4e4"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"##,
                bottom + 16.0,
                label(t)
            );
        }
        for t in nice_ticks(y0, y1, 6) {
            let y = py(t);
            let _ = write!(
                s,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{right}" y2="{y:.1}" stroke="#e4e4e4"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                LEFT - 6.0,
                y + 4.0,
                label(t)
            );
        }
    }

    /// Vertical markers and the axis labels.
    fn annotate(&self, s: &mut String, (x0, x1): (f64, f64), px: &dyn Fn(f64) -> f64) {
        let (bottom, right) = (H - BOTTOM, W - RIGHT);
        for (mx, text) in self.markers.iter().filter(|(m, _)| *m >= x0 && *m <= x1) {
            let x = px(*mx);
            let _ = write!(
                s,
                r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{bottom}" stroke="#888" stroke-dasharray="4 3"/><text x="{:.1}" y="{}" fill="#555">{}</text>"##,
                x + 3.0,
                TOP + 12.0,
                escape(text)
            );
        }
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text><text transform="translate(16 {}) rotate(-90)" text-anchor="middle">{}</text>"#,
            (LEFT + right) / 2.0,
            H - 10.0,
            escape(&self.x_label),
            (TOP + bottom) / 2.0,
            escape(&self.y_label)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(nice_ticks(0.0, 100.0, 5), vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        assert_eq!(nice_ticks(0.0, 1.0, 4), vec![0.0, 0.25, 0.5, 0.75, 1.0]);
        assert_eq!(nice_ticks(3.0, 3.0, 4), vec![3.0]);
    }

    #[test]
    fn renders_one_polyline_per_series_and_escapes_text() {
        let plot = Plot {
            title: "a < b".into(),
            series: vec![("s1".into(), vec![(0.0, 0.0), (1.0, 1.0)]), ("s2".into(), vec![(0.5, 0.2)])],
            markers: vec![(0.5, "cut".into())],
            ..Plot::default()
        };
        let svg = plot.render();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("a &lt; b") && svg.contains("cut"));
    }
}
