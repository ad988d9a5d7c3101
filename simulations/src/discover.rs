//! Service discovery in the simulator: workers add themselves to their
//! service's provider set at every announcement (the core's
//! `provider_write`), and clients discover a service (the core's
//! `provider_read`) at random times.
//!
//! A discover succeeds when the merged set names every *live provider* of
//! the service at issue: a worker that is up and whose provider write was
//! acknowledged in its current life. Crashed workers the set still names are
//! not counted against it (their entries age out). Latency is from issue to
//! answer; messages are the lookup's queries plus the page requests.

use std::time::Duration;

use kadmesh::engine::ProviderReadOutcome;
use kadmesh::time::Time;
use rand::Rng;

use crate::announce::{provider_key, service_of, SERVICE_COUNT};
use crate::workload::Pending;
use crate::world::{Action, World};

/// Replicas a discover reads per round (the discovery layer's default).
pub const READ_REPLICAS: usize = 3;
/// How long after a disruption discovers are also counted apart.
const AFTER_DISRUPTION: Duration = Duration::from_secs(600);

/// Discover observations.
#[derive(Clone, Debug, Default)]
pub struct DiscoverStats {
    /// Measured discovers answered.
    pub done: u64,
    /// ... that named every live provider.
    pub complete: u64,
    /// Latency of every answered discover, ms.
    pub latency_ms: crate::metrics::Samples,
    /// Messages per discover (lookup queries plus page requests).
    pub messages: crate::metrics::Samples,
    /// The lookup part of each answered discover's latency, ms.
    pub lookup_ms: crate::metrics::Samples,
    /// Answered discovers that read a second round.
    pub second_rounds: u64,
    /// Answered discovers that asked some page again (it stalled or failed).
    pub reasked: u64,
    /// The same three for discovers issued in the 10 minutes after a disruption.
    pub after_done: u64,
    /// ... complete.
    pub after_complete: u64,
    /// ... latency, ms.
    pub after_latency_ms: crate::metrics::Samples,
    /// Plain lookups issued in those 10 minutes: latency, ms.
    pub after_lookup_ms: crate::metrics::Samples,
    /// Those 10 minutes' discovers by routers, by how their read went.
    pub after_routers: ReaderStats,
    /// ... and by random workers.
    pub after_workers: ReaderStats,
    /// Discovers issued by routers (live coordinators).
    pub routers: ReaderStats,
    /// Discovers issued by random workers.
    pub workers: ReaderStats,
    /// Answered discovers issued while a partition cut the reader off from
    /// some live providers (their refreshes cannot reach its side).
    pub cut_done: u64,
    /// ... that named every live provider, on both sides.
    pub cut_complete: u64,
    /// ... that named every live provider on the reader's side of the cut.
    pub cut_near_complete: u64,
}

/// Discovers of one kind of reader.
#[derive(Clone, Debug, Default)]
pub struct ReaderStats {
    /// Measured discovers answered.
    pub done: u64,
    /// ... that named every live provider.
    pub complete: u64,
    /// ... read from the replicas of an earlier read (no lookup).
    pub remembered: u64,
    /// Latency of each, ms.
    pub latency_ms: crate::metrics::Samples,
    /// The same discovers by how their read went ([`ReadPath`]).
    pub by_path: [PathStats; 4],
}

impl ReaderStats {
    /// One answered discover: `ok` if it named every live provider, `ms` long.
    fn count(&mut self, ok: bool, ms: f64, r: &ProviderReadOutcome) {
        self.done += 1;
        self.complete += u64::from(ok);
        self.remembered += u64::from(r.remembered);
        self.latency_ms.push(ms);
        let path = &mut self.by_path[ReadPath::of(r) as usize];
        path.latency_ms.push(ms);
        path.lookup_ms.push(r.stats.duration.as_millis() as f64);
        path.pages.push(r.pages_sent as f64);
    }
}

/// How a discover's read went: it decides most of its time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadPath {
    /// From the replicas an earlier read found, no lookup, one round.
    Memory,
    /// From memory, plus nodes closer to the key its probe named.
    MemoryNewcomers,
    /// A lookup first, one round.
    Cold,
    /// A second round (its first round's replicas disagreed).
    SecondRound,
}

impl ReadPath {
    /// Every path, in report order.
    pub const ALL: [ReadPath; 4] = [ReadPath::Memory, ReadPath::MemoryNewcomers, ReadPath::Cold, ReadPath::SecondRound];

    fn of(r: &ProviderReadOutcome) -> ReadPath {
        match (r.rounds > 1, r.remembered, r.newcomers > 0) {
            (true, _, _) => ReadPath::SecondRound,
            (false, true, true) => ReadPath::MemoryNewcomers,
            (false, true, false) => ReadPath::Memory,
            (false, false, _) => ReadPath::Cold,
        }
    }

    /// Its name in the report.
    pub fn label(self) -> &'static str {
        match self {
            ReadPath::Memory => "from memory",
            ReadPath::MemoryNewcomers => "from memory, newcomers added",
            ReadPath::Cold => "cold (a lookup first)",
            ReadPath::SecondRound => "a second round",
        }
    }
}

/// Discovers whose read took one [`ReadPath`].
#[derive(Clone, Debug, Default)]
pub struct PathStats {
    /// Latency, ms.
    pub latency_ms: crate::metrics::Samples,
    /// The lookup part of it, ms.
    pub lookup_ms: crate::metrics::Samples,
    /// Page requests sent.
    pub pages: crate::metrics::Samples,
}

/// A live provider a discover should name, and whether an open partition
/// separated it from the reader when the discover was issued.
#[derive(Clone, Debug, PartialEq)]
pub struct Expected {
    /// The worker's name.
    pub name: String,
    /// Across an open cut from the reader.
    pub across: bool,
}

impl World {
    /// Issues one measured discover and schedules the next (Poisson arrivals).
    pub(crate) fn discover_tick(&mut self) {
        let rate_per_ms = self.params.discovers_per_min / 60_000.0;
        let gap = -(1.0 - self.rng.gen::<f64>()).ln() / rate_per_ms;
        self.schedule_in(Duration::from_millis(gap.round().max(1.0) as u64), Action::Discover);
        let router = self.rng.gen::<f64>() < self.params.router_share;
        let routers: Vec<u32> = self.coordinators.iter().copied().filter(|&c| self.joined.contains(c)).collect();
        let (client, router) = match (router, routers.is_empty()) {
            (true, false) => (routers[self.rng.gen_range(0..routers.len())], true),
            _ => match self.joined.pick(&mut self.rng) {
                Some(c) => (c, false),
                None => return,
            },
        };
        let service = self.rng.gen_range(0..SERVICE_COUNT);
        let expected: Vec<Expected> = (0..self.nodes.len() as u32)
            .filter(|&s| service_of(s) == service && s != client)
            .filter(|&s| self.nodes[s as usize].provided && self.nodes[s as usize].engine.is_some())
            .map(|s| Expected { name: self.nodes[s as usize].name.clone(), across: self.net.cut_between(client, s) })
            .collect();
        let (now, counted) = (self.now, self.window_open);
        let after = self.after_disruption(now);
        let Some(engine) = self.engine(client) else { return };
        let q = engine.provider_read(now, provider_key(service), READ_REPLICAS);
        self.pending.insert((client, q.0), Pending::Discover { issued: now, counted, after, router, expected });
        self.after_touch(client, None);
    }

    /// Whether `t` falls in the 10 minutes after the scenario's disruption.
    pub(crate) fn after_disruption(&self, t: Time) -> bool {
        let Some(at) = self.params.disrupted_at else { return false };
        let from = Time::ZERO + self.params.warmup + at;
        t >= from && t < from + AFTER_DISRUPTION
    }

    /// A discover answered; `after` a disruption, by a `router`.
    pub(crate) fn on_discover(
        &mut self,
        issued: Time,
        (after, router): (bool, bool),
        expected: &[Expected],
        r: &ProviderReadOutcome,
    ) {
        let named = |e: &Expected| r.entries.get(&e.name).is_some_and(|x| x.is_live());
        let ok = expected.iter().all(named);
        let near_ok = expected.iter().filter(|e| !e.across).all(named);
        let ms = self.event_time.saturating_since(issued).as_millis() as f64;
        let d = &mut self.stats.discover;
        d.done += 1;
        d.complete += u64::from(ok);
        d.latency_ms.push(ms);
        d.messages.push((r.stats.queried + r.pages_sent) as f64);
        d.lookup_ms.push(r.stats.duration.as_millis() as f64);
        d.second_rounds += u64::from(r.rounds > 1);
        d.reasked += u64::from(r.pages_reasked > 0);
        let by = if router { &mut d.routers } else { &mut d.workers };
        by.count(ok, ms, r);
        if after {
            let by = if router { &mut d.after_routers } else { &mut d.after_workers };
            by.count(ok, ms, r);
        }
        if expected.iter().any(|e| e.across) {
            d.cut_done += 1;
            d.cut_complete += u64::from(ok);
            d.cut_near_complete += u64::from(near_ok);
        }
        if after {
            d.after_done += 1;
            d.after_complete += u64::from(ok);
            d.after_latency_ms.push(ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_is_classed_by_its_second_round_first_then_memory_and_newcomers() {
        let read =
            |rounds, remembered, newcomers| ProviderReadOutcome { rounds, remembered, newcomers, ..Default::default() };
        assert_eq!(ReadPath::of(&read(1, true, 0)), ReadPath::Memory);
        assert_eq!(ReadPath::of(&read(1, true, 2)), ReadPath::MemoryNewcomers);
        assert_eq!(ReadPath::of(&read(1, false, 0)), ReadPath::Cold);
        assert_eq!(ReadPath::of(&read(2, true, 2)), ReadPath::SecondRound);
        assert_eq!(ReadPath::of(&read(2, false, 0)), ReadPath::SecondRound);
    }

    #[test]
    fn a_reader_counts_each_discover_once_under_its_path() {
        let mut by = ReaderStats::default();
        let memory = ProviderReadOutcome { rounds: 1, remembered: true, pages_sent: 9, ..Default::default() };
        let cold = ProviderReadOutcome { rounds: 1, ..Default::default() };
        by.count(true, 120.0, &memory);
        by.count(false, 300.0, &cold);
        assert_eq!((by.done, by.complete, by.remembered), (2, 1, 1));
        let path = |p: ReadPath, by: &ReaderStats| by.by_path[p as usize].latency_ms.len();
        assert_eq!(
            (path(ReadPath::Memory, &by), path(ReadPath::Cold, &by), path(ReadPath::SecondRound, &by)),
            (1, 1, 0)
        );
        assert_eq!(by.by_path[ReadPath::Memory as usize].pages.percentile(50.0), 9.0);
    }
}
