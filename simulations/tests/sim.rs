//! Small, fast runs of the simulator: it is deterministic, and the network
//! it simulates actually works. The big runs are benchmarks, not tests.

use std::time::Duration;

use simulations::scenario::{run_params, simulate};
use simulations::world::ScenarioEvent;
use simulations::{SeedSource, SimParams};

/// `workers` joining within 2 minutes, 5 minutes to settle, then a short window.
fn small(seed: u64, workers: u32, window_min: u64) -> SimParams {
    let mut p = SimParams::new(seed, workers);
    p.coordinators = 4;
    p.join_spread = Duration::from_secs(120);
    p.warmup = Duration::from_secs(300);
    p.duration = Duration::from_secs(window_min * 60);
    p.lookups_per_min = 200.0;
    p
}

#[test]
fn same_seed_gives_identical_report() {
    let run = |seed| {
        let mut p = small(seed, 60, 3);
        p.churn = Some(Default::default());
        p.seed_source = SeedSource::Edge;
        let r = run_params("det", p, vec![(Duration::from_secs(60), ScenarioEvent::CrashFraction(0.2), "crash")]);
        (r.rows, r.charts, r.events)
    };
    let (a, b) = (run(7), run(7));
    assert_eq!(a, b);
    assert_ne!(a.0, run(8).0, "a different seed should change something");
}

#[test]
fn the_report_does_not_depend_on_the_number_of_threads() {
    let run = |threads| {
        // Enough machines that windows are shared between the two threads.
        let mut p = small(3, 150, 3);
        p.churn = Some(Default::default());
        p.threads = threads;
        let r = run_params("threads", p, vec![(Duration::from_secs(60), ScenarioEvent::CrashFraction(0.2), "crash")]);
        (r.rows, r.charts, r.events)
    };
    let one = run(1);
    assert!(one.2 > 10_000, "a run with real traffic ({} events)", one.2);
    assert_eq!(one, run(2));
}

#[test]
fn steady_state_lookups_succeed() {
    let (w, _) = simulate(small(3, 100, 5), vec![]);
    let s = &w.stats;
    assert!(s.lookups_done >= 800, "only {} lookups", s.lookups_done);
    let success = s.lookups_found as f64 / s.lookups_done as f64;
    assert!(success >= 0.99, "success {success}");
    assert!(s.lookups_found <= s.lookups_done && s.lookups_done + s.lookups_aborted <= s.lookups_issued);
    assert_eq!(s.latency_ms.len() as u64, s.lookups_found);
    // Every datagram is counted once at its sender and once more if delivered.
    let sent: u64 = (0..8).map(|i| s.traffic_at_end.msgs[i] - s.traffic_at_start.msgs[i]).sum();
    let per_node: u64 = w.nodes.iter().map(|n| n.msgs).sum();
    assert!(per_node > sent && per_node <= 2 * sent, "{per_node} vs {sent}");
}

#[test]
fn lookups_recover_after_thirty_percent_crash() {
    let crash_at = Duration::from_secs(60);
    let (w, _) = simulate(small(5, 100, 6), vec![(crash_at, ScenarioEvent::CrashFraction(0.3), "crash")]);
    assert_eq!(w.stats.crashes, 30);
    // Lookups issued from one minute after the crash on.
    let recovered = (w.params.warmup + crash_at + Duration::from_secs(60)).as_millis() as u64;
    let (ok, total) = w.stats.per_minute.totals_since(recovered);
    assert!(total >= 500, "only {total} lookups");
    assert!(ok as f64 >= 0.95 * total as f64, "{ok}/{total}");
}

#[test]
fn dead_workers_disappear_and_new_ones_are_found() {
    let mut p = small(11, 100, 8);
    p.churn = Some(simulations::churn::ChurnModel { session_median_min: 20.0, ..Default::default() });
    let (w, _) = simulate(p, vec![]);
    let s = &w.stats;
    assert!(s.crashes > 0 && !s.dead_worker_ms.is_empty(), "crashes {}", s.crashes);
    let mut dead = s.dead_worker_ms.clone();
    // Gone once the last heartbeat (at most 4 min old) is over 5 min old, probed every 15 s.
    assert!(dead.max() <= 5.0 * 60_000.0 + 30_000.0, "dead max {}", dead.max());
    if !s.new_worker_ms.is_empty() {
        let mut new = s.new_worker_ms.clone();
        assert!(new.percentile(50.0) < 10_000.0);
    }
}

#[test]
fn discovers_name_every_live_provider_before_and_after_a_crash() {
    let crash_at = Duration::from_secs(120);
    let mut p = small(13, 120, 6);
    p.discovers_per_min = 120.0;
    p.disrupted_at = Some(crash_at);
    let (w, _) = simulate(p, vec![(crash_at, ScenarioEvent::CrashFraction(0.3), "crash")]);
    let d = &w.stats.discover;
    assert!(d.done >= 500 && d.after_done >= 300, "only {} discovers, {} after the crash", d.done, d.after_done);
    let ok = |c: u64, n: u64| c as f64 / n as f64;
    assert!(ok(d.complete, d.done) >= 0.99, "{}/{} complete", d.complete, d.done);
    assert!(
        ok(d.after_complete, d.after_done) >= 0.98,
        "{}/{} complete after the crash",
        d.after_complete,
        d.after_done
    );
    assert!(d.messages.mean() > 3.0, "a discover is a lookup and page reads");
}
