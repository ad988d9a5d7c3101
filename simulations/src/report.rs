//! Turning a finished run into a table and charts.
//!
//! Definitions (all over the measurement window):
//! - *lookup success*: measured `get`s that returned a value, over those that
//!   reported back (lookups whose client crashed are counted apart);
//!   *alive*: the value's `last_seen` was within 5 minutes.
//! - *latency*, *hops*: of successful lookups (`LookupStats.duration`, `.hops`).
//! - *messages/bytes per lookup*: all `find_value` requests and replies on the
//!   wire, over all `get`s completed (measured lookups and probes).
//! - *bandwidth per node-hour*: wire bytes (payload + 28 bytes of IP/UDP
//!   header) sent plus received by a node, over its uptime; nodes up less
//!   than 10 minutes are left out.
//! - *per day*: window count scaled to 24 hours.

use std::time::Duration;

use crate::metrics::{pct, Samples};
use crate::net::{FIND_VALUE, KIND_LABELS};
use crate::node::Role;
use crate::svg::Plot;
use crate::world::World;

/// One scenario's results.
#[derive(Clone, Debug)]
pub struct Report {
    /// Scenario name.
    pub name: String,
    /// `(metric, value)` rows; a pure function of the run (no wall time).
    pub rows: Vec<(String, String)>,
    /// `(file name, SVG text)` charts.
    pub charts: Vec<(String, String)>,
    /// Wall-clock time the run took.
    pub wall: Duration,
    /// Events processed.
    pub events: u64,
}

fn f0(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else {
        format!("{v:.0}")
    }
}

fn f1(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else {
        format!("{v:.1}")
    }
}

fn f2(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else {
        format!("{v:.2}")
    }
}

fn spread(s: &mut Samples, scale: f64, fmt: fn(f64) -> String) -> String {
    let (p50, p95, max) = (s.percentile(50.0), s.percentile(95.0), s.max());
    format!("{} / {} / {} (n={})", fmt(p50 / scale), fmt(p95 / scale), fmt(max / scale), s.len())
}

/// Appends `(metric, value)` rows.
type Rows = Vec<(String, String)>;

fn push(rows: &mut Rows, k: &str, v: String) {
    rows.push((k.to_string(), v));
}

impl Report {
    /// Builds the report of a finished world.
    pub fn build(name: &str, w: &mut World, markers: Vec<(f64, String)>, wall: Duration) -> Report {
        let mut rows = Rows::new();
        lookup_rows(w, &mut rows);
        if w.params.discovers_per_min > 0.0 {
            discover_rows(w, &mut rows);
        }
        cost_rows(w, &mut rows);
        lifecycle_rows(w, &mut rows);
        let charts = charts(name, w, &markers);
        Report { name: name.to_string(), rows, charts, wall, events: w.steps }
    }

    /// The rows as a markdown table.
    pub fn markdown(&self) -> String {
        let mut out = format!("| {} | value |\n| --- | --- |\n", self.name);
        for (k, v) in &self.rows {
            out.push_str(&format!("| {k} | {v} |\n"));
        }
        out
    }
}

/// A markdown table with a column per run: each of `cols` is a title and
/// its `(metric, value)` rows; the metric names are the first column's.
pub fn side_by_side<K: AsRef<str>>(cols: &[(&str, &[(K, String)])]) -> String {
    let mut out = String::from("| metric |");
    out.extend(cols.iter().map(|(title, _)| format!(" {title} |")));
    out.push_str("\n| --- |");
    out.extend(cols.iter().map(|_| " --- |"));
    out.push('\n');
    let Some((_, first)) = cols.first() else { return out };
    for (i, (metric, _)) in first.iter().enumerate() {
        out.push_str(&format!("| {} |", metric.as_ref()));
        out.extend(cols.iter().map(|(_, rows)| format!(" {} |", rows.get(i).map_or("", |x| x.1.as_str()))));
        out.push('\n');
    }
    out
}

fn lookup_rows(w: &mut World, rows: &mut Rows) {
    let p = &w.params;
    let hours = p.duration.as_secs_f64() / 3600.0;
    push(rows, "workers at start / coordinators", format!("{} / {}", p.workers, p.coordinators));
    push(rows, "machines ever started", format!("{}", w.nodes.iter().filter(|n| n.inc > 0).count()));
    push(
        rows,
        "measured window (after warm-up)",
        format!("{hours:.2} h after {:.0} min", p.warmup.as_secs_f64() / 60.0),
    );
    let s = &mut w.stats;
    let issued = format!("{} / {} / {}", s.lookups_issued, s.lookups_done, s.lookups_aborted);
    push(rows, "lookups issued / answered / client crashed", issued);
    push(rows, "lookup success (value found) %", f2(pct(s.lookups_found, s.lookups_done)));
    push(rows, "lookup success, value alive (last_seen <= 5 min) %", f2(pct(s.lookups_fresh, s.lookups_done)));
    push(rows, "found values older than 5 min %", f2(100.0 - pct(s.lookups_fresh, s.lookups_found)));
    if s.cut_found > 0 {
        // Across an open cut the newer copy cannot reach the reader: real
        // staleness, but no read rule can help; the rest could have been fresh.
        let (found, fresh) = (s.lookups_found - s.cut_found, s.lookups_fresh - s.cut_fresh);
        push(rows, "... reads across the open cut (newest unreachable) %", f2(100.0 - pct(s.cut_fresh, s.cut_found)));
        push(rows, "... all other reads %", f2(100.0 - pct(fresh, found)));
    }
    if p.late_from.is_some() {
        let late = f2(100.0 - pct(s.late_fresh, s.late_found));
        push(rows, "... among lookups issued after the last disruption %", late);
    }
    push(rows, "workers sign their records", (if p.signed { "yes" } else { "no" }).to_string());
    let worst = s.per_minute.worst_success_pct(p.warmup.as_millis() as u64, 10).unwrap_or(f64::NAN);
    push(rows, "worst minute success % (>= 10 lookups)", f1(worst));
    push(rows, "answered from own store %", f2(pct(s.lookups_local, s.lookups_found)));
    push(rows, "hops mean / p95", format!("{} / {}", f2(s.hops.mean()), f0(s.hops.percentile(95.0))));
    push(rows, "queries per lookup mean", f1(s.queried.mean()));
    let lat = &mut s.latency_ms;
    let lat = format!("{} / {} / {}", f0(lat.percentile(50.0)), f0(lat.percentile(95.0)), f0(lat.percentile(99.0)));
    push(rows, "lookup latency p50 / p95 / p99 ms", lat);
}

fn discover_rows(w: &mut World, rows: &mut Rows) {
    let d = &mut w.stats.discover;
    let p3 = |s: &mut crate::metrics::Samples| {
        format!("{} / {} / {}", f0(s.percentile(50.0)), f0(s.percentile(95.0)), f0(s.percentile(99.0)))
    };
    push(rows, "discovers answered", d.done.to_string());
    push(rows, "discover success (named every live provider) %", f2(pct(d.complete, d.done)));
    push(rows, "discover latency p50 / p95 / p99 ms", p3(&mut d.latency_ms));
    push(rows, "... of which the lookup p50 / p95 / p99 ms", p3(&mut d.lookup_ms));
    for (who, r) in [("routers", &mut d.routers), ("random workers", &mut d.workers)] {
        reader_rows(rows, who, r);
    }
    if d.cut_done > 0 {
        // As for lookups: a provider across an open cut can refresh only
        // the replicas on its own side, so these are split out.
        let (done, complete) = (d.done - d.cut_done, d.complete - d.cut_complete);
        push(rows, "... issued with the cut open: answered", d.cut_done.to_string());
        push(
            rows,
            "... success %: every live provider / those on the reader's side",
            format!("{} / {}", f2(pct(d.cut_complete, d.cut_done)), f2(pct(d.cut_near_complete, d.cut_done))),
        );
        push(rows, "... all other discovers: success %", f2(pct(complete, done)));
    }
    push(rows, "... discovers that read a second round %", f2(pct(d.second_rounds, d.done)));
    push(rows, "... discovers that asked a page again %", f2(pct(d.reasked, d.done)));
    push(
        rows,
        "messages per discover mean / p95",
        format!("{} / {}", f1(d.messages.mean()), f0(d.messages.percentile(95.0))),
    );
    if w.params.disrupted_at.is_some() {
        push(rows, "... in the 10 min after the disruption: discovers answered", d.after_done.to_string());
        push(rows, "... success %", f2(pct(d.after_complete, d.after_done)));
        push(rows, "... discover latency p50 / p95 / p99 ms", p3(&mut d.after_latency_ms));
        push(rows, "... plain lookup latency p50 / p95 / p99 ms", p3(&mut d.after_lookup_ms));
        for (who, r) in [("routers", &mut d.after_routers), ("random workers", &mut d.after_workers)] {
            reader_rows(rows, &format!("{who} in those 10 min"), r);
        }
    }
}

/// The rows of one kind of reader's discovers (`who`): how many, how they
/// went, and how long by the way their read went.
fn reader_rows(rows: &mut Rows, who: &str, r: &mut crate::discover::ReaderStats) {
    if r.done == 0 {
        return;
    }
    let p3 = |s: &mut crate::metrics::Samples| {
        format!("{} / {} / {}", f0(s.percentile(50.0)), f0(s.percentile(95.0)), f0(s.percentile(99.0)))
    };
    let (done, ok, mem) = (r.done, f2(pct(r.complete, r.done)), f1(100.0 * r.remembered as f64 / r.done as f64));
    push(rows, &format!("... by {who}: answered / success % / from memory %"), format!("{done} / {ok} / {mem}"));
    push(rows, &format!("... by {who}: latency p50 / p95 / p99 ms"), p3(&mut r.latency_ms));
    for path in crate::discover::ReadPath::ALL {
        let s = &mut r.by_path[path as usize];
        if s.latency_ms.is_empty() {
            continue;
        }
        let (n, p50, p90) = (s.latency_ms.len(), f0(s.latency_ms.percentile(50.0)), f0(s.latency_ms.percentile(90.0)));
        let (lookup, pages) = (f0(s.lookup_ms.percentile(50.0)), f0(s.pages.percentile(50.0)));
        push(
            rows,
            &format!("... by {who}, read {}: answered / p50 / p90 ms / lookup p50 ms / pages p50", path.label()),
            format!("{n} / {p50} / {p90} / {lookup} / {pages}"),
        );
    }
}

fn cost_rows(w: &mut World, rows: &mut Rows) {
    let s = &w.stats;
    let (a, b) = (&s.traffic_at_start, &s.traffic_at_end);
    let fv = usize::from(FIND_VALUE);
    let gets = s.gets_done.max(1) as f64;
    let msgs = f1((b.msgs[fv] - a.msgs[fv]) as f64 / gets);
    push(rows, "messages / bytes per lookup", format!("{msgs} / {}", f0((b.bytes[fv] - a.bytes[fv]) as f64 / gets)));
    let (workers_bw, coord_bw) = bandwidth(w);
    push(rows, "bandwidth per worker-hour p50 / p95 / max kB", workers_bw);
    push(rows, "bandwidth per coordinator-hour p50 / max kB", coord_bw);
    let r = &mut w.stats.records_per_node;
    let (mean, p50, p99, max) = (r.mean(), r.percentile(50.0), r.percentile(99.0), r.max());
    let records = format!("{} / {} / {} / {}", f1(mean), f0(p50), f0(p99), f0(max));
    push(rows, "records per node mean / p50 / p99 / max", records);
}

fn lifecycle_rows(w: &mut World, rows: &mut Rows) {
    let hours = w.params.duration.as_secs_f64() / 3600.0;
    let per_day = |n: u64| n as f64 * 24.0 / hours;
    let s = &mut w.stats;
    push(rows, "new worker findable after p50 / p95 / max s", spread(&mut s.new_worker_ms, 1000.0, f1));
    push(rows, "new workers never found (2 min)", s.new_worker_missed.to_string());
    push(rows, "dead worker gone after p50 / p95 / max s", spread(&mut s.dead_worker_ms, 1000.0, f0));
    let dead = format!("{} / {}", s.dead_worker_restarted, s.dead_worker_lingering);
    push(rows, "dead workers restarted first / still alive after 30 min", dead);
    push(rows, "bootstrap time p50 / p95 / max s", spread(&mut s.bootstrap_ms, 1000.0, f2));
    push(rows, "bootstrap fallbacks (reached nobody)", s.bootstrap_fallbacks.to_string());
    let edge = format!("{} / {}", s.edge_requests, f0(per_day(s.edge_requests)));
    push(rows, "edge-router requests (window / per day)", edge);
    push(rows, "coordinator bootstrap requests per day", f0(per_day(s.coordinator_requests)));
    let by: Vec<String> = s.joins_by_source.iter().map(u64::to_string).collect();
    push(rows, "worker joins by seed source: saved / configured / learned / dns / seed-list / edge", by.join(" / "));
    push(rows, "announcements put / stored nowhere", format!("{} / {}", s.puts_done, s.puts_failed));
    let restarts = format!("{} / {} / {}", s.crashes, s.restarts_saved, s.restarts_fresh);
    push(rows, "crashes / restarts with state / as new node", restarts);
    push(rows, "datagrams / lost / cut by partition / to dead address", traffic_row(w));
    push(rows, "traffic by kind: % of bytes (datagrams)", kinds_row(w));
    if w.stats.timer_spins > 0 {
        push(rows, "engine timers due again right after firing", w.stats.timer_spins.to_string());
    }
}

fn bandwidth(w: &World) -> (String, String) {
    let (mut workers, mut coords) = (Samples::default(), Samples::default());
    for n in w.nodes.iter().filter(|n| n.uptime_ms >= 600_000) {
        let kb_per_hour = n.bytes as f64 / 1000.0 / (n.uptime_ms as f64 / 3_600_000.0);
        match n.role {
            Role::Worker => workers.push(kb_per_hour),
            Role::Coordinator => coords.push(kb_per_hour),
        }
    }
    let w = format!("{} / {} / {}", f0(workers.percentile(50.0)), f0(workers.percentile(95.0)), f0(workers.max()));
    let c = format!("{} / {}", f0(coords.percentile(50.0)), f0(coords.max()));
    (w, c)
}

fn traffic_row(w: &World) -> String {
    let (a, b) = (&w.stats.traffic_at_start, &w.stats.traffic_at_end);
    let sent: u64 = b.msgs.iter().sum::<u64>() - a.msgs.iter().sum::<u64>();
    format!("{} / {} / {} / {}", sent, b.lost - a.lost, b.cut - a.cut, b.undeliverable - a.undeliverable)
}

fn kinds_row(w: &World) -> String {
    let (a, b) = (&w.stats.traffic_at_start, &w.stats.traffic_at_end);
    let total: u64 = (0..8).map(|i| b.bytes[i] - a.bytes[i]).sum::<u64>().max(1);
    let parts = (0..8).filter(|&i| b.bytes[i] > a.bytes[i]).map(|i| {
        let pct = 100.0 * (b.bytes[i] - a.bytes[i]) as f64 / total as f64;
        format!("{} {pct:.0} ({})", KIND_LABELS[i], b.msgs[i] - a.msgs[i])
    });
    parts.collect::<Vec<_>>().join(", ")
}

fn charts(name: &str, w: &mut World, markers: &[(f64, String)]) -> Vec<(String, String)> {
    let cdf = w.stats.latency_ms.cdf(400);
    let x_max = w.stats.latency_ms.percentile(99.5).max(1.0);
    let latency = Plot {
        title: format!("{name}: latency of successful lookups (CDF)"),
        x_label: "lookup latency (ms)".into(),
        y_label: "fraction of lookups".into(),
        series: vec![("lookups".into(), cdf)],
        x_range: Some((0.0, x_max)),
        y_range: Some((0.0, 1.0)),
        markers: Vec::new(),
    };
    let peak = w.stats.per_minute.levels().iter().map(|p| p.1).fold(1.0, f64::max);
    let live: Vec<(f64, f64)> = w.stats.per_minute.levels().into_iter().map(|(t, v)| (t, 100.0 * v / peak)).collect();
    let success = Plot {
        title: format!("{name}: lookup success per minute"),
        x_label: "simulated time (minutes)".into(),
        y_label: "%".into(),
        series: vec![
            ("lookup success %".into(), w.stats.per_minute.success_pct()),
            (format!("joined nodes (% of {peak:.0})"), live),
        ],
        y_range: Some((0.0, 102.0)),
        x_range: None,
        markers: markers.to_vec(),
    };
    vec![(format!("{name}-latency-cdf.svg"), latency.render()), (format!("{name}-success.svg"), success.render())]
}
