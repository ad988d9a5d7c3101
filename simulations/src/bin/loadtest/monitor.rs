//! Watches a load-test run: a progress line on stderr every few seconds, and
//! a reading of memory, CPU time and live nodes at each phase boundary so
//! each phase's CPU per lookup comes from its own window.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::measure::ProcSample;
use crate::workload::{Outcome, Sample, Schedule};

/// How often a progress line is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// State at one phase boundary.
#[derive(Clone, Copy, Debug)]
pub struct Snapshot {
    /// Memory and CPU time of the process.
    pub proc: ProcSample,
    /// Live nodes.
    pub live: usize,
}

/// Runs until the schedule ends; returns one snapshot at the start and one
/// at the end of every phase.
pub async fn watch(cluster: Arc<Cluster>, samples: Arc<Mutex<Vec<Sample>>>, s: Schedule) -> Vec<Snapshot> {
    let mut snaps = Vec::with_capacity(s.phases + 1);
    let mut next_progress = s.start + PROGRESS_EVERY;
    let mut seen = 0;
    for k in 0..=s.phases {
        let boundary = s.start + s.phase_len * k as u32;
        while next_progress < boundary {
            tokio::time::sleep_until(next_progress).await;
            progress(&cluster, &samples, &s, &mut seen);
            next_progress += PROGRESS_EVERY;
        }
        tokio::time::sleep_until(boundary).await;
        snaps.push(Snapshot { proc: ProcSample::now(), live: cluster.live() });
    }
    snaps
}

/// Prints what the lookups answered since the last line did.
fn progress(cluster: &Cluster, samples: &Mutex<Vec<Sample>>, s: &Schedule, seen: &mut usize) {
    let elapsed = Instant::now().saturating_duration_since(s.start);
    let (n, ok) = {
        let all = samples.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = all.get(*seen..).unwrap_or_default();
        let ok = fresh.iter().filter(|x| x.outcome == Outcome::Found).count();
        *seen = all.len();
        (fresh.len(), ok)
    };
    let pct = if n == 0 { 100.0 } else { ok as f64 * 100.0 / n as f64 };
    let phase = ((elapsed.as_secs_f64() / s.phase_len.as_secs_f64()) as usize).min(s.phases - 1);
    eprintln!(
        "[{:>4}s] phase {}: {n} lookups answered since the last line, {pct:.1}% found; {}/{} nodes live",
        elapsed.as_secs(),
        phase + 1,
        cluster.live(),
        cluster.size()
    );
}
