//! The side-by-side table `versus` prints: one row per figure, both
//! implementations' values and how many times better the Rust one is.
//!
//! The ratio is Python ÷ Rust for figures where lower is better (times,
//! memory, CPU) and Rust ÷ Python where higher is better (success rates,
//! throughput), so above 1 always favours Rust.

use std::time::Duration;

use crate::measure::summarize;
use crate::plan::{Plan, SideResult};

/// Which way a figure is better.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Better {
    Lower,
    Higher,
}

struct Row {
    name: String,
    better: Better,
    rust: f64,
    python: f64,
    decimals: usize,
}

fn percentile(samples: &[f64], p: f64) -> f64 {
    let mut d: Vec<Duration> = samples.iter().map(|s| Duration::from_secs_f64(s.max(0.0))).collect();
    let s = summarize(&mut d);
    let v = if p >= 99.0 { s.p99 } else { s.p50 };
    v.as_secs_f64() * 1000.0
}

fn pct(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

fn rows(plan: &Plan, r: &SideResult, p: &SideResult) -> Vec<Row> {
    let n = plan.nodes.max(1) as f64;
    let row = |name: &str, better, decimals, f: &dyn Fn(&SideResult) -> f64| Row {
        name: name.to_string(),
        better,
        rust: f(r),
        python: f(p),
        decimals,
    };
    use Better::*;
    vec![
        row(&format!("bootstrap: all {} nodes joined, s", plan.nodes), Lower, 3, &|s| s.bootstrap_s),
        row("set latency p50, ms", Lower, 2, &|s| percentile(&s.set_s, 50.0)),
        row("set latency p99, ms", Lower, 2, &|s| percentile(&s.set_s, 99.0)),
        row("sets reported stored, %", Higher, 1, &|s| pct(s.set_ok, s.set_s.len())),
        row("get latency p50, ms", Lower, 2, &|s| percentile(&s.get_s, 50.0)),
        row("get latency p99, ms", Lower, 2, &|s| percentile(&s.get_s, 99.0)),
        row("gets returning the value, %", Higher, 1, &|s| pct(s.get_ok, s.get_s.len())),
        row(&format!("lookups per second, {} in flight", plan.concurrency), Higher, 0, &|s| {
            s.get_s.len() as f64 / s.get_wall_s.max(1e-9)
        }),
        row("memory per node (RSS growth / N), KiB", Lower, 0, &|s| {
            s.rss_end_kib.saturating_sub(s.rss_base_kib) as f64 / n
        }),
        row("CPU per lookup, ms", Lower, 3, &|s| s.get_cpu_s * 1000.0 / s.get_s.len().max(1) as f64),
    ]
}

fn ratio(row: &Row) -> String {
    let (num, den) = match row.better {
        Better::Lower => (row.python, row.rust),
        Better::Higher => (row.rust, row.python),
    };
    if den <= 0.0 || !num.is_finite() {
        return "n/a".into();
    }
    format!("{:.1}x", num / den)
}

/// Prints the table for one run of both sides.
pub fn print(plan: &Plan, rust: &SideResult, python: &SideResult) {
    println!("| figure | {} | {} | ratio (above 1 favours Rust) |", rust.label, python.label);
    println!("|---|---:|---:|---:|");
    for r in rows(plan, rust, python) {
        let d = r.decimals;
        println!("| {} | {:.d$} | {:.d$} | {} |", r.name, r.rust, r.python, ratio(&r));
    }
}

/// Prints the Rust side's figures alone (`--rust-only`).
pub fn print_one(plan: &Plan, rust: &SideResult) {
    println!("| figure | {} |", rust.label);
    println!("|---|---:|");
    for r in rows(plan, rust, rust) {
        let d = r.decimals;
        println!("| {} | {:.d$} |", r.name, r.rust);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_favour_the_better_side_either_way() {
        let lower = Row { name: "t".into(), better: Better::Lower, rust: 2.0, python: 10.0, decimals: 0 };
        let higher = Row { name: "r".into(), better: Better::Higher, rust: 300.0, python: 100.0, decimals: 0 };
        let zero = Row { name: "z".into(), better: Better::Lower, rust: 0.0, python: 1.0, decimals: 0 };
        assert_eq!((ratio(&lower), ratio(&higher), ratio(&zero)), ("5.0x".into(), "3.0x".into(), "n/a".into()));
        assert!((percentile(&[0.001, 0.002, 0.003, 0.004], 50.0) - 2.0).abs() < 1e-6);
    }
}
