//! The load test's printed result: a short summary of the setup and one
//! markdown table row per phase, on stdout.
//!
//! Latency percentiles cover every lookup that started in the phase,
//! failures included (a timed-out lookup counts at the timeout), so the tail
//! shows what a caller would have waited. CPU per lookup is the process's
//! CPU time over the phase (every node's background work included) divided
//! by the lookups started in it. "Of which local" is the share of found
//! lookups the asked node answered from its own store (it is one of the k
//! replicas), with no network round trip.

use std::time::Duration;

use crate::chaos::ChaosReport;
use crate::cluster::JoinReport;
use crate::measure::{machine, ms, or_na, summarize, ProcSample};
use crate::monitor::Snapshot;
use crate::workload::{Outcome, Registration, Sample};

/// Names of the three phases, in order.
pub const PHASES: [&str; 3] = ["before chaos", "during chaos", "after chaos"];

/// Everything the report needs.
pub struct Run<'a> {
    /// The command line's settings, echoed.
    pub settings: String,
    /// Process reading before any node started.
    pub baseline: ProcSample,
    /// Process reading after joins and registration.
    pub setup: ProcSample,
    /// Nodes at start.
    pub nodes: usize,
    /// Join figures.
    pub join: &'a JoinReport,
    /// Registration figures.
    pub registration: &'a Registration,
    /// Chaos figures.
    pub chaos: ChaosReport,
    /// Phase boundaries.
    pub snapshots: &'a [Snapshot],
    /// Every lookup.
    pub samples: &'a [Sample],
    /// Wall time of the whole run.
    pub wall: Duration,
    /// UDP receive-buffer drops on the machine during the run.
    pub udp_drops: Option<u64>,
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// Prints the summary and the table.
pub fn print(r: &Run<'_>) {
    println!("## kadmesh load test ({})", r.settings);
    println!();
    println!("- machine: {}", machine());
    let mut joins = r.join.joins.clone();
    let j = summarize(&mut joins);
    println!(
        "- join: {} nodes bootstrapped one after another in {:.2} s (per join p50 {} ms, p99 {} ms; {} reached no seed)",
        r.nodes,
        r.join.total.as_secs_f64(),
        ms(j.p50),
        ms(j.p99),
        r.join.lonely
    );
    let reg = r.registration;
    println!(
        "- registration: {:.2} s; fewest remote replicas of a record {}; records nobody stored {}",
        reg.took.as_secs_f64(),
        reg.min_replicas,
        reg.unstored
    );
    let per_node = r.setup.rss_kib.zip(r.baseline.rss_kib).map(|(s, b)| s.saturating_sub(b) / r.nodes.max(1) as u64);
    println!(
        "- memory: RSS {} MiB with all nodes up (was {} MiB before any node), {} KiB per node",
        or_na(r.setup.rss_kib, mib),
        or_na(r.baseline.rss_kib, mib),
        or_na(per_node, |k| k.to_string())
    );
    let mut rejoins = r.chaos.rejoins.clone();
    let rj = summarize(&mut rejoins);
    println!(
        "- chaos: {} nodes killed abruptly over the first half of the chaos phase; {} restarted with new ids over the second half (rejoin p50 {} ms, max {} ms; {} restarts failed)",
        r.chaos.killed,
        rj.count,
        ms(rj.p50),
        ms(rj.max),
        r.chaos.restart_failed
    );
    println!("- wall time: {:.1} s", r.wall.as_secs_f64());
    println!(
        "- UDP datagrams the kernel dropped for full receive buffers during the run (whole machine): {}",
        or_na(r.udp_drops, |d| d.to_string())
    );
    println!();
    table(r);
}

fn table(r: &Run<'_>) {
    println!("| phase | lookups | found | of which local | not found | timed out | other | p50 ms | p95 ms | p99 ms | max ms | live nodes at end | RSS MiB at end | CPU ms per lookup |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (i, name) in PHASES.iter().enumerate() {
        let mine: Vec<&Sample> = r.samples.iter().filter(|s| s.phase == i).collect();
        let count = |o: Outcome| mine.iter().filter(|s| s.outcome == o).count();
        let n = mine.len();
        let found = count(Outcome::Found);
        let other = count(Outcome::Wrong) + count(Outcome::Failed);
        let mut lat: Vec<Duration> = mine.iter().map(|s| s.latency).collect();
        let l = summarize(&mut lat);
        let (start, end) = (r.snapshots.get(i), r.snapshots.get(i + 1));
        let cpu = start.zip(end).and_then(|(a, b)| b.proc.cpu_since(&a.proc));
        let cpu_per = cpu.filter(|_| n > 0).map(|c| c.as_secs_f64() * 1000.0 / n as f64);
        println!(
            "| {name} | {n} | {} | {} | {} | {} | {other} | {} | {} | {} | {} | {} | {} | {} |",
            pct(found, n),
            pct(mine.iter().filter(|s| s.local && s.outcome == Outcome::Found).count(), found),
            count(Outcome::NotFound),
            count(Outcome::TimedOut),
            ms(l.p50),
            ms(l.p95),
            ms(l.p99),
            ms(l.max),
            or_na(end.map(|s| s.live), |v| v.to_string()),
            or_na(end.and_then(|s| s.proc.rss_kib), mib),
            or_na(cpu_per, |c| format!("{c:.2}"))
        );
    }
}

fn pct(part: usize, whole: usize) -> String {
    if whole == 0 {
        return "n/a".into();
    }
    format!("{:.2}%", part as f64 * 100.0 / whole as f64)
}
