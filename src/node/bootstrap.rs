//! Bootstrap that never ends silently alone.
//!
//! The platform's first DHT "bootstrapped" with zero peers and nobody noticed.
//! [`bootstrap_with_retry`] resolves the seeds afresh each attempt, logs a
//! warning naming the seeds whenever it reaches none, and retries with
//! exponential backoff until it reaches at least one peer (or runs out of
//! attempts, when the caller asked for a limit).

use std::time::Duration;

use super::{NodeError, NodeHandle};
use crate::engine::BootstrapOutcome;
use crate::seeds::{resolve_all, Seed};

/// Retry schedule for bootstrap.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    /// Wait after the first failed attempt.
    pub initial: Duration,
    /// Longest wait between attempts.
    pub max: Duration,
    /// Attempts before giving up; `None` retries forever.
    pub attempts: Option<u32>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { initial: Duration::from_secs(1), max: Duration::from_secs(300), attempts: None }
    }
}

/// Bootstraps from `seeds` until at least one peer answers. Returns the last
/// outcome (with `seeds_reached == 0` only when attempts ran out).
pub async fn bootstrap_with_retry(
    node: &NodeHandle,
    seeds: &[Seed],
    backoff: Backoff,
) -> Result<BootstrapOutcome, NodeError> {
    let mut wait = backoff.initial;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let (addrs, errors) = resolve_all(seeds).await;
        for e in &errors {
            tracing::warn!(error = %e, "seed not usable");
        }
        let outcome = node.bootstrap(addrs.clone()).await?;
        // A seed must answer: contacts that found us while we waited may be
        // an island of late starters that never meets the seeds' network.
        if outcome.seeds_reached > 0 {
            tracing::info!(
                seeds_reached = outcome.seeds_reached,
                table_size = outcome.table_size,
                "bootstrap reached the network"
            );
            return Ok(outcome);
        }
        let list: Vec<String> = seeds.iter().map(ToString::to_string).collect();
        if backoff.attempts.is_some_and(|max| attempt >= max) {
            tracing::warn!(seeds = %list.join(","), attempt, "bootstrap reached no peers; giving up");
            return Ok(outcome);
        }
        tracing::warn!(
            seeds = %list.join(","),
            resolved = addrs.len(),
            retry_in_s = wait.as_secs_f64(),
            "bootstrap reached no peers; this node is alone until a seed answers"
        );
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(backoff.max);
    }
}

/// How often [`keep_seeds_in_touch`] looks for seeds missing from the table.
pub const SEED_RECHECK: Duration = Duration::from_secs(5);

/// After bootstrap: every `every`, pings each seed whose address is not in
/// the routing table, until the node stops. A seed evicted while a link was
/// cut (both sides of a partition drop each other after two timeouts) comes
/// back as soon as it answers, instead of the two halves staying apart until
/// an hourly bucket refresh happens to cross. One ping per missing seed per
/// interval; nothing while every seed is known.
pub async fn keep_seeds_in_touch(node: &NodeHandle, seeds: &[Seed], every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let (addrs, _) = resolve_all(seeds).await;
        let known = node.with_engine(|e, _| e.routing().contacts().map(|c| c.addr).collect::<Vec<_>>()).await;
        let Ok(known) = known else { return };
        for addr in addrs.into_iter().filter(|a| !known.contains(a)) {
            if let Err(NodeError::Stopped) = node.ping(addr).await {
                return;
            }
        }
    }
}
