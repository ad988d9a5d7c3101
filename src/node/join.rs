//! Joining through every seed source in [`crate::seed_order`]'s order, the
//! edge router last.
//!
//! [`join_in_order`] walks a [`SeedPlan`]: each source with something to
//! offer is fetched (URLs) or resolved (names), and bootstrap runs through
//! its seeds; the first source whose seeds answer ends the join and is
//! reported, so the caller can count which source served it. A source whose
//! fetch fails or whose seeds all stay silent passes to the next one, with a
//! warning naming it. When every source failed, the node waits (backoff) and
//! starts over from the first source: a node is never silently alone.
//!
//! Saved contacts are tried before this, by the caller's restore
//! ([`crate::persist::restore`]); seeds from any bootstrap document fetched
//! here (configured URL, seed lists, edge router) are added to the learned
//! seeds the caller keeps on disk.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{Backoff, NodeError, NodeHandle};
use crate::engine::BootstrapOutcome;
use crate::seed_order::{LearnedSeeds, SeedPlan, SeedSource};
use crate::seeds::{fetch_bootstrap_url, fetch_seed_list, resolve_all, Seed, SeedError};

/// How long one bootstrap document or seed list may take to fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Every place a node without saved contacts may find the network.
#[derive(Clone, Debug, Default)]
pub struct SeedSources {
    /// `--seed`: seeds given by the operator.
    pub configured: Vec<Seed>,
    /// `--bootstrap-url`: the coordinator's `/api/dht/bootstrap`.
    pub bootstrap_url: Option<String>,
    /// Seeds kept from earlier bootstrap documents.
    pub learned: LearnedSeeds,
    /// `--seed-dns`: names that resolve to many seeds.
    pub dns: Vec<Seed>,
    /// `--seed-list`: static seed-list URLs.
    pub seed_lists: Vec<String>,
    /// `--edge-url`: the edge router's bootstrap URL, the last resort.
    pub edge_url: Option<String>,
}

impl SeedSources {
    /// True when `source` has anything to try (saved contacts are the
    /// caller's, so never here).
    pub fn offers(&self, source: SeedSource) -> bool {
        match source {
            SeedSource::Saved => false,
            SeedSource::Configured => !self.configured.is_empty() || self.bootstrap_url.is_some(),
            SeedSource::Learned => !self.learned.is_empty(),
            SeedSource::Dns => !self.dns.is_empty(),
            SeedSource::SeedList => !self.seed_lists.is_empty(),
            SeedSource::Edge => self.edge_url.is_some(),
        }
    }

    /// True when no source offers anything: the node starts a new network.
    pub fn is_empty(&self) -> bool {
        !SeedSource::ORDER.iter().any(|&s| self.offers(s))
    }
}

/// Something the join did, for the caller's counters and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinEvent {
    /// A URL of `source` was fetched (`ok`: it answered with seeds).
    Fetched {
        /// Whose URL.
        source: SeedSource,
        /// Whether it gave seeds.
        ok: bool,
    },
    /// The seeds of `source` were tried and none answered.
    Silent(SeedSource),
}

/// Joins and fetches per seed source, for `/metrics` and the page.
#[derive(Debug, Default)]
pub struct JoinCounts {
    joins: [AtomicU64; 6],
    fetched_ok: [AtomicU64; 6],
    fetch_failed: [AtomicU64; 6],
}

impl JoinCounts {
    /// Counts a join served by `source`.
    pub fn joined(&self, source: SeedSource) {
        self.joins[source.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts what [`join_in_order`] reports.
    pub fn record(&self, event: JoinEvent) {
        if let JoinEvent::Fetched { source, ok } = event {
            let c = if ok { &self.fetched_ok } else { &self.fetch_failed };
            c[source.index()].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Joins served by `source` so far.
    pub fn joins(&self, source: SeedSource) -> u64 {
        self.joins[source.index()].load(Ordering::Relaxed)
    }

    /// URL fetches of `source` so far: (answered with seeds, failed).
    pub fn fetches(&self, source: SeedSource) -> (u64, u64) {
        let i = source.index();
        (self.fetched_ok[i].load(Ordering::Relaxed), self.fetch_failed[i].load(Ordering::Relaxed))
    }
}

/// How a join ended.
#[derive(Clone, Debug)]
pub struct Joined {
    /// The source whose seeds answered.
    pub source: SeedSource,
    /// The bootstrap through them.
    pub outcome: BootstrapOutcome,
    /// Those seeds, to keep in touch with.
    pub seeds: Vec<Seed>,
}

/// Joins through `sources` in order (see the module docs), retrying every
/// source after `backoff` when all failed; `attempts` in `backoff` bounds the
/// passes. Learned seeds grow with every bootstrap document fetched.
/// Returns `None` only when the passes ran out.
pub async fn join_in_order(
    node: &NodeHandle,
    sources: &mut SeedSources,
    backoff: Backoff,
    mut on_event: impl FnMut(JoinEvent),
) -> Result<Option<Joined>, NodeError> {
    let mut wait = backoff.initial;
    let mut pass = 0u32;
    loop {
        pass += 1;
        let mut plan = SeedPlan::new();
        while let Some(source) = plan.next(|s| sources.offers(s)) {
            let seeds = seeds_of(sources, source, &mut on_event).await;
            let Some(outcome) = try_seeds(node, source, &seeds).await? else {
                on_event(JoinEvent::Silent(source));
                continue;
            };
            tracing::info!(
                source = source.name(),
                seeds_reached = outcome.seeds_reached,
                table_size = outcome.table_size,
                "joined the network"
            );
            return Ok(Some(Joined { source, outcome, seeds }));
        }
        if backoff.attempts.is_some_and(|max| pass >= max) {
            tracing::warn!(pass, "no seed source reached the network; giving up");
            return Ok(None);
        }
        tracing::warn!(
            retry_in_s = wait.as_secs_f64(),
            "no seed source reached the network; this node is alone until one answers"
        );
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(backoff.max);
    }
}

/// The seeds `source` offers now; URLs are fetched (failures logged and
/// reported, the other URLs of the source still used).
async fn seeds_of(sources: &mut SeedSources, source: SeedSource, on_event: &mut impl FnMut(JoinEvent)) -> Vec<Seed> {
    let mut seeds = Vec::new();
    match source {
        SeedSource::Saved => {}
        SeedSource::Configured => {
            seeds.extend(sources.configured.iter().cloned());
            if let Some(url) = sources.bootstrap_url.clone() {
                seeds.extend(fetch(sources, source, &url, on_event).await);
            }
        }
        SeedSource::Learned => seeds.extend(sources.learned.seeds().iter().map(|a| seed_of(*a))),
        SeedSource::Dns => seeds.extend(sources.dns.iter().cloned()),
        SeedSource::SeedList => {
            for url in sources.seed_lists.clone() {
                seeds.extend(fetch(sources, source, &url, on_event).await);
            }
        }
        SeedSource::Edge => {
            if let Some(url) = sources.edge_url.clone() {
                seeds.extend(fetch(sources, source, &url, on_event).await);
            }
        }
    }
    seeds
}

/// Fetches one URL of `source` and learns the addresses its seeds name.
async fn fetch(
    sources: &mut SeedSources,
    source: SeedSource,
    url: &str,
    on_event: &mut impl FnMut(JoinEvent),
) -> Vec<Seed> {
    let fetched: Result<Vec<Seed>, SeedError> = match source {
        SeedSource::SeedList => fetch_seed_list(url, FETCH_TIMEOUT).await,
        _ => fetch_bootstrap_url(url, FETCH_TIMEOUT).await,
    };
    on_event(JoinEvent::Fetched { source, ok: fetched.is_ok() });
    match fetched {
        Ok(seeds) => {
            let (addrs, _) = resolve_all(&seeds).await;
            sources.learned.learn(&addrs);
            seeds
        }
        Err(e) => {
            tracing::warn!(source = source.name(), error = %e, "seed source failed; trying the next one");
            Vec::new()
        }
    }
}

/// Bootstraps through `seeds`; `None` when none resolved or answered.
async fn try_seeds(
    node: &NodeHandle,
    source: SeedSource,
    seeds: &[Seed],
) -> Result<Option<BootstrapOutcome>, NodeError> {
    let (addrs, errors) = resolve_all(seeds).await;
    for e in &errors {
        tracing::warn!(source = source.name(), error = %e, "seed not usable");
    }
    if addrs.is_empty() {
        return Ok(None);
    }
    let outcome = node.bootstrap(addrs.clone()).await?;
    if outcome.seeds_reached > 0 {
        return Ok(Some(outcome));
    }
    let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    tracing::warn!(source = source.name(), seeds = %list.join(","), "bootstrap reached none of this source's seeds; trying the next one");
    Ok(None)
}

fn seed_of(addr: SocketAddr) -> Seed {
    Seed { host: addr.ip().to_string(), port: addr.port() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_offers_only_what_it_was_given() {
        let mut s = SeedSources::default();
        assert!(s.is_empty());
        s.edge_url = Some("http://edge.invalid/".into());
        assert!(!s.is_empty());
        assert!(s.offers(SeedSource::Edge) && !s.offers(SeedSource::Configured) && !s.offers(SeedSource::Saved));
        s.bootstrap_url = Some("http://coordinator.invalid/".into());
        assert!(s.offers(SeedSource::Configured));
        s.learned.learn(&["10.0.0.1:8468".parse().unwrap()]);
        assert!(s.offers(SeedSource::Learned));
        assert!(!s.offers(SeedSource::Dns) && !s.offers(SeedSource::SeedList));
    }

    #[test]
    fn counts_are_kept_per_source() {
        let c = JoinCounts::default();
        c.joined(SeedSource::Dns);
        c.record(JoinEvent::Fetched { source: SeedSource::Edge, ok: true });
        c.record(JoinEvent::Fetched { source: SeedSource::Edge, ok: false });
        c.record(JoinEvent::Fetched { source: SeedSource::Edge, ok: false });
        c.record(JoinEvent::Silent(SeedSource::Configured));
        assert_eq!((c.joins(SeedSource::Dns), c.joins(SeedSource::Edge)), (1, 0));
        assert_eq!(c.fetches(SeedSource::Edge), (1, 2));
        assert_eq!(c.fetches(SeedSource::Configured), (0, 0));
    }

    #[test]
    fn learned_addresses_become_seeds_with_their_port() {
        let s = seed_of("[::1]:9000".parse().unwrap());
        assert_eq!(s.to_string(), "[::1]:9000");
    }
}
