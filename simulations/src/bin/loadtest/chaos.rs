//! The chaos schedule: abrupt kills of random live nodes, then restarts.
//!
//! Over a window of length `span`, `victims` kills are spread evenly across
//! the first half (each in the middle of its slice) and each killed slot is restarted half a window after its
//! kill, so all victims are down together at mid-window and every slot is
//! live again before the window ends. A kill is `NodeHandle::shutdown`: the
//! socket closes with no goodbye, peers learn only by timeouts. A restart is
//! a fresh node (new id, new port) bootstrapped from a random live node.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::cluster::Cluster;

/// Restart attempts per slot before it is left empty.
const RESTART_ATTEMPTS: usize = 3;

/// What the chaos schedule did.
#[derive(Clone, Debug, Default)]
pub struct ChaosReport {
    /// Nodes killed.
    pub killed: usize,
    /// How long each successful restart took, bind to bootstrapped.
    pub rejoins: Vec<Duration>,
    /// Slots left empty after every attempt.
    pub restart_failed: usize,
}

/// Runs the schedule over `[from, from + span)`.
pub async fn run(cluster: Arc<Cluster>, from: Instant, span: Duration, victims: usize) -> ChaosReport {
    let mut report = ChaosReport::default();
    if victims == 0 {
        return report;
    }
    let step = span / 2 / victims as u32;
    let mut down = Vec::with_capacity(victims);
    for i in 0..victims {
        tokio::time::sleep_until(from + step * i as u32 + step / 2).await;
        if let Some(slot) = cluster.kill_random().await {
            down.push((from + span / 2 + step * i as u32 + step / 2, slot));
            report.killed += 1;
        }
    }
    // Each restart runs on its own so a slow rejoin never delays the next.
    let mut restarts = tokio::task::JoinSet::new();
    for (generation, (at, slot)) in down.into_iter().enumerate() {
        let cluster = cluster.clone();
        restarts.spawn(async move {
            tokio::time::sleep_until(at).await;
            let began = Instant::now();
            restart(&cluster, slot, generation as u64 + 1).await.then(|| began.elapsed())
        });
    }
    while let Some(done) = restarts.join_next().await {
        match done {
            Ok(Some(took)) => report.rejoins.push(took),
            _ => report.restart_failed += 1,
        }
    }
    report
}

async fn restart(cluster: &Cluster, slot: usize, generation: u64) -> bool {
    for attempt in 0..RESTART_ATTEMPTS {
        match cluster.restart(slot, generation).await {
            Ok(true) => return true,
            Ok(false) => eprintln!("loadtest: restart of slot {slot} reached no seed (attempt {})", attempt + 1),
            Err(e) => eprintln!("loadtest: restart of slot {slot} failed: {e} (attempt {})", attempt + 1),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    false
}
