//! Machines starting, joining, crashing and restarting, the bootstrap seed
//! sources, and the scenario disruptions.
//!
//! A worker joins through the sources of [`kadmesh::seed_order`], in its
//! order, skipping any that has nothing for it; a source whose seeds all
//! stay silent (the bootstrap reached nobody) passes to the next. What a
//! machine has, faithfully:
//! 1. **Saved contacts**: only a restart that kept its state (not a new
//!    identity: that is a re-imaged container or a wiped volume).
//! 2. **Configured**: its coordinator's bootstrap URL (`GET
//!    /api/dht/bootstrap`, which workers already talk to): the coordinator's
//!    own address plus its 7 most recently seen contacts. Fails at once when
//!    that coordinator is down (its tunnel answers with an error).
//! 3. **Learned**: seeds from the bootstrap documents it fetched before
//!    (coordinator or edge), kept with its saved state: so only a restart
//!    with state has any.
//! 4. **DNS**: a name whose records the coordinators rewrite every hour
//!    through the DNS provider's API (not the edge router) with the 16
//!    longest-registered live workers from their worker registry. Stale once
//!    every coordinator is gone.
//! 5. **Seed list**: a static file (CDN or code host) the coordinators
//!    rewrite the same way every 6 hours.
//! 6. **The edge router** (the bootstrap URL of last resort): the configured
//!    coordinator addresses, live or not (it is a stateless function), plus
//!    the addresses of the last 16 nodes that joined through it or were
//!    pushed to it (kept in its KV store). Every call is counted. When every
//!    source failed the node starts over after a backoff (30 s doubling, at
//!    most 10 min).
//!
//! So that the edge still knows live nodes when every coordinator is gone,
//! one live coordinator pushes its 8 most recently seen contacts to the edge
//! every 6 hours (4 requests a day, counted).

use std::net::SocketAddr;
use std::time::Duration;

use kadmesh::engine::{BootstrapOutcome, Engine};
use kadmesh::reach::recent::RecentPeers;
use kadmesh::seed_order::{SeedPlan, SeedSource};
use kadmesh::time::Time;
use rand::seq::SliceRandom;
use rand::Rng;

use crate::hash::mix;
use crate::net::addr_of;
use crate::node::{Role, Saved, SimNode};
use crate::params::SeedSource as Mode;
use crate::workload::Pending;
use crate::world::{Action, ScenarioEvent, World};

/// Addresses a simulated NAT remembers (more than a node talks to within
/// [`crate::net::NAT_TIMEOUT`]).
const NAT_MAPPINGS: usize = 1 << 16;

/// Contacts a coordinator's bootstrap endpoint returns besides itself.
const COORDINATOR_SEEDS: usize = 7;
/// Recent joiners and pushed seeds the edge router remembers and hands out.
const EDGE_RECENT: usize = 16;
/// How often a coordinator pushes seeds to the edge router.
const EDGE_REFRESH: Duration = Duration::from_secs(6 * 3600);
/// Seeds the DNS name and the static seed list carry.
const PUBLISHED_SEEDS: usize = 16;
/// How often the coordinators rewrite the DNS records and the seed list.
const DNS_REFRESH: Duration = Duration::from_secs(3600);
const LIST_REFRESH: Duration = Duration::from_secs(6 * 3600);

impl World {
    pub(crate) fn schedule_initial(&mut self) {
        for slot in 0..self.params.coordinators {
            self.schedule(Time::ZERO, Action::Start { slot });
        }
        let spread = self.params.join_spread.as_millis().max(1) as u64;
        for slot in self.params.coordinators..self.params.coordinators + self.params.workers {
            let at = Time::from_millis(5_000 + self.rng.gen_range(0..spread));
            self.schedule(at, Action::Start { slot });
        }
        self.schedule(Time::from_secs(60), Action::Sample);
        self.schedule(Time::ZERO + self.params.join_spread, Action::EdgeRefresh);
        self.schedule(Time::ZERO + self.params.join_spread, Action::PublishSeeds { dns: true });
        self.schedule(Time::ZERO + self.params.join_spread, Action::PublishSeeds { dns: false });
        self.schedule(Time::ZERO + self.params.warmup, Action::OpenWindow);
        if self.params.lookups_per_min > 0.0 {
            self.schedule(Time::ZERO + self.params.join_spread, Action::Lookup);
        }
        if self.params.discovers_per_min > 0.0 {
            self.schedule(Time::ZERO + self.params.join_spread, Action::Discover);
        }
    }

    /// Starts machine `slot`: as a new identity when `fresh`, else with its saved state.
    pub(crate) fn start(&mut self, slot: u32, fresh: bool) {
        let now = self.now;
        let seed = self.params.seed;
        let mut config = self.params.engine.clone();
        let node = &mut self.nodes[slot as usize];
        if fresh {
            node.new_identity(slot, &mut self.rng);
            node.addr = self.net.new_address(slot);
            node.saved = None;
        }
        node.inc += 1;
        node.joined = false;
        node.registered = false;
        node.provided = false;
        node.up_since = now;
        node.edge_failures = 0;
        config.rng_seed = mix(seed, u64::from(slot) << 32 | u64::from(node.inc));
        let edge = self.net.edge(slot);
        if self.params.client_mode && node.role == Role::Worker {
            // A worker with no UDP knows it (it was started so): always a client.
            config.reach.mode = match edge {
                crate::net::Edge::NoUdp => kadmesh::reach::ReachMode::Client,
                _ => kadmesh::reach::ReachMode::Auto,
            };
        }
        // A new life behind NAT starts with no mappings open.
        node.nat = (edge == crate::net::Edge::Nat).then(|| RecentPeers::new(NAT_MAPPINGS, crate::net::NAT_TIMEOUT));
        let mut engine = Engine::new(node.id, config, now);
        let saved = node.saved.take().unwrap_or_default();
        for record in saved.records {
            engine.restore_record(now, record);
        }
        node.engine = Some(engine);
        node.boot_saved = saved.contacts.iter().map(|c| c.addr).collect();
        node.learned = saved.learned;
        let (role, inc) = (node.role, node.inc);
        if let (Role::Worker, Some(churn)) = (role, &self.params.churn) {
            let session = churn.session(&mut self.rng);
            self.schedule_in(session, Action::Crash { slot, inc });
        }
        match role {
            Role::Coordinator => {
                let seeds = self.coordinators.iter().filter(|&&c| c != slot).map(|&c| self.addr(c)).collect();
                self.bootstrap(slot, SeedSource::Configured, SeedPlan::new(), now, seeds);
            }
            Role::Worker => self.next_source(slot, SeedPlan::new(), now),
        }
    }

    /// Whether `slot` has anything to try from `source`.
    fn has_seeds(&self, slot: u32, source: SeedSource) -> bool {
        let node = &self.nodes[slot as usize];
        let platform = self.params.seed_source == Mode::Coordinator;
        match source {
            SeedSource::Saved => !node.boot_saved.is_empty(),
            SeedSource::Configured => platform,
            SeedSource::Learned => !node.learned.is_empty(),
            SeedSource::Dns => platform && !self.dns_seeds.is_empty(),
            SeedSource::SeedList => platform && !self.list_seeds.is_empty(),
            SeedSource::Edge => true,
        }
    }

    /// Joins `slot` through the next source of `plan` that offers seeds;
    /// when none is left, starts over after a backoff.
    pub(crate) fn next_source(&mut self, slot: u32, mut plan: SeedPlan, started: Time) {
        while let Some(source) = plan.next(|s| self.has_seeds(slot, s)) {
            let seeds = self.seeds_from(slot, source);
            if !seeds.is_empty() {
                return self.bootstrap(slot, source, plan, started, seeds);
            }
        }
        let node = &mut self.nodes[slot as usize];
        node.edge_failures += 1;
        let backoff = Duration::from_secs(30 << node.edge_failures.min(5)).min(Duration::from_secs(600));
        let inc = node.inc;
        self.schedule_in(backoff, Action::Rejoin { slot, inc });
    }

    /// What `source` hands `slot` now (counting the HTTP requests it costs).
    fn seeds_from(&mut self, slot: u32, source: SeedSource) -> Vec<SocketAddr> {
        let node = &self.nodes[slot as usize];
        match source {
            SeedSource::Saved => node.boot_saved.clone(),
            SeedSource::Configured => self.coordinator_seeds(slot).unwrap_or_default(),
            SeedSource::Learned => node.learned.seeds().to_vec(),
            SeedSource::Dns => self.dns_seeds.iter().map(|&a| addr_of(a)).collect(),
            SeedSource::SeedList => self.list_seeds.iter().map(|&a| addr_of(a)).collect(),
            SeedSource::Edge => self.edge_seeds(),
        }
    }

    fn bootstrap(&mut self, slot: u32, source: SeedSource, plan: SeedPlan, started: Time, seeds: Vec<SocketAddr>) {
        let now = self.now;
        let node = &mut self.nodes[slot as usize];
        if matches!(source, SeedSource::Configured | SeedSource::Edge) && node.role == Role::Worker {
            // A bootstrap document: its seeds are kept for later restarts.
            node.learned.learn(&seeds);
        }
        let inc = node.inc;
        let Some(engine) = node.engine.as_mut() else { return };
        let q = engine.bootstrap(now, &seeds);
        self.pending.insert((slot, q.0), Pending::Bootstrap { inc, source, plan, started });
        self.after_touch(slot, None);
    }

    fn addr(&self, slot: u32) -> SocketAddr {
        addr_of(self.nodes[slot as usize].addr)
    }

    /// The answer of the worker's own coordinator, or `None` if it is down.
    fn coordinator_seeds(&mut self, slot: u32) -> Option<Vec<SocketAddr>> {
        let home = *self.coordinators.get(slot as usize % self.coordinators.len().max(1))?;
        let seeds = self.seeds_of(home)?;
        self.stats.coordinator_requests += u64::from(self.window_open);
        Some(seeds)
    }

    /// A joined coordinator's address and its most recently seen contacts.
    fn seeds_of(&self, coordinator: u32) -> Option<Vec<SocketAddr>> {
        let node = &self.nodes[coordinator as usize];
        let engine = node.engine.as_ref().filter(|_| node.joined)?;
        let table = engine.routing();
        let mut recent: Vec<_> = table.contacts().map(|c| (table.last_seen(&c.id), c)).collect();
        recent.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.id.cmp(&b.1.id)));
        let mut seeds = vec![addr_of(node.addr)];
        seeds.extend(recent.into_iter().take(COORDINATOR_SEEDS).map(|(_, c)| c.addr));
        Some(seeds)
    }

    fn edge_seeds(&mut self) -> Vec<SocketAddr> {
        if self.window_open {
            self.stats.edge_requests += 1;
        }
        let mut seeds: Vec<SocketAddr> = self.coordinators.iter().map(|&c| self.addr(c)).collect();
        seeds.extend(self.edge_recent.iter().rev().map(|&a| addr_of(a)));
        seeds
    }

    /// A bootstrap finished: joined, or on to the next seed source.
    pub(crate) fn on_bootstrap(
        &mut self,
        slot: u32,
        source: SeedSource,
        plan: SeedPlan,
        started: Time,
        b: &BootstrapOutcome,
    ) {
        let node = &mut self.nodes[slot as usize];
        let worker = node.role == Role::Worker;
        if b.seeds_reached == 0 && b.table_size == 0 && worker {
            if self.window_open {
                self.stats.bootstrap_fallbacks += 1;
            }
            return self.next_source(slot, plan, started);
        }
        node.joined = true;
        node.edge_failures = 0;
        let addr = node.addr;
        self.joined.insert(slot);
        if self.window_open {
            self.stats.bootstrap_ms.push(self.event_time.saturating_since(started).as_millis() as f64);
            if worker {
                self.stats.joins_by_source[source.index()] += 1;
            }
        }
        if source == SeedSource::Edge {
            self.remember_at_edge(addr);
        }
        if worker {
            self.register(slot);
        }
    }

    /// A live coordinator pushes its most recently seen contacts to the edge.
    pub(crate) fn edge_refresh(&mut self) {
        self.schedule_in(EDGE_REFRESH, Action::EdgeRefresh);
        let Some(seeds) = self.coordinators.iter().find_map(|&c| self.seeds_of(c)) else { return };
        self.stats.edge_requests += u64::from(self.window_open);
        for a in seeds.into_iter().skip(1).filter_map(crate::net::index_of) {
            self.remember_at_edge(a);
        }
    }

    /// The coordinators rewrite the DNS records (`dns`) or the static seed
    /// list with the longest-registered live workers of their registry;
    /// nothing changes once every coordinator is down.
    pub(crate) fn publish_seeds(&mut self, dns: bool) {
        self.schedule_in(if dns { DNS_REFRESH } else { LIST_REFRESH }, Action::PublishSeeds { dns });
        if !self.coordinators.iter().any(|&c| self.nodes[c as usize].joined) {
            return;
        }
        let mut longest: Vec<(Time, u32)> =
            self.registered.iter().map(|s| (self.nodes[s as usize].up_since, s)).collect();
        longest.sort_unstable();
        let seeds = longest.into_iter().take(PUBLISHED_SEEDS).map(|(_, s)| self.nodes[s as usize].addr).collect();
        *(if dns { &mut self.dns_seeds } else { &mut self.list_seeds }) = seeds;
    }

    fn remember_at_edge(&mut self, addr: u32) {
        self.edge_recent.retain(|&a| a != addr);
        self.edge_recent.push(addr);
        if self.edge_recent.len() > EDGE_RECENT {
            self.edge_recent.remove(0);
        }
    }

    pub(crate) fn rejoin(&mut self, slot: u32, inc: u32) {
        let node = &self.nodes[slot as usize];
        if node.inc == inc && node.is_up() && !node.joined {
            let now = self.now;
            self.next_source(slot, SeedPlan::new(), now);
        }
    }

    /// Crashes `slot` without goodbye; with churn it restarts later.
    pub(crate) fn crash(&mut self, slot: u32, restart: bool) {
        let now = self.now;
        let node = &mut self.nodes[slot as usize];
        let Some(engine) = node.engine.take() else { return };
        let was_registered = node.registered;
        if self.window_open {
            node.uptime_ms += now.saturating_since(node.up_since).as_millis() as u64;
            self.stats.crashes += 1;
        }
        node.joined = false;
        node.registered = false;
        node.provided = false;
        node.timer = None;
        node.heartbeat_at = None;
        let (inc, key) = (node.inc, node.key);
        self.reschedule(slot);
        self.joined.remove(slot);
        self.registered.remove(slot);
        self.abort_pending(slot);
        if was_registered && self.params.probe_dead && self.window_open {
            self.start_probe(true, slot, inc, key, now);
        }
        let Some(churn) = self.params.churn.clone().filter(|_| restart) else { return };
        let keeps = churn.restart_keeps_state(&mut self.rng);
        let learned = self.nodes[slot as usize].learned.clone();
        self.nodes[slot as usize].saved = keeps.then(|| Saved { learned, ..Saved::capture(&engine, now) });
        let down = churn.downtime(&mut self.rng);
        self.schedule_in(down, Action::Restart { slot });
    }

    pub(crate) fn restart(&mut self, slot: u32) {
        let fresh = self.nodes[slot as usize].saved.is_none();
        if self.window_open {
            *(if fresh { &mut self.stats.restarts_fresh } else { &mut self.stats.restarts_saved }) += 1;
        }
        self.start(slot, fresh);
    }

    pub(crate) fn scenario_event(&mut self, ev: ScenarioEvent) {
        match ev {
            ScenarioEvent::CrashFraction(f) => {
                let mut up: Vec<u32> = (0..self.nodes.len() as u32)
                    .filter(|&s| self.nodes[s as usize].is_up() && self.nodes[s as usize].role == Role::Worker)
                    .collect();
                up.shuffle(&mut self.rng);
                let n = (f * up.len() as f64).round() as usize;
                up.into_iter().take(n).for_each(|s| self.crash(s, false));
            }
            ScenarioEvent::Partition(regions) => {
                for slot in 0..self.nodes.len() as u32 {
                    let cut = regions.contains(&self.net.placement(slot).region);
                    self.net.set_group(slot, u8::from(cut));
                }
                self.net.set_partitioned(true);
            }
            ScenarioEvent::Heal => self.net.set_partitioned(false),
            ScenarioEvent::KillCoordinators => {
                for c in self.coordinators.clone() {
                    self.crash(c, false);
                }
            }
            ScenarioEvent::FlashCrowd { count, over } => {
                for _ in 0..count {
                    let slot = self.nodes.len() as u32;
                    self.net.add_machine(slot);
                    self.nodes.push(SimNode::new(Role::Worker));
                    let at = self.rng.gen_range(0..over.as_millis().max(1) as u64);
                    self.schedule_in(Duration::from_millis(at), Action::Start { slot });
                }
            }
        }
    }

    /// Live-node gauge every minute; records per node every ten (in the window).
    pub(crate) fn sample(&mut self) {
        let t = self.now.as_millis();
        self.stats.per_minute.set_level(t, self.joined.len() as f64);
        if self.window_open && t % 600_000 < 60_000 {
            for slot in self.joined.iter() {
                if let Some(e) = self.nodes[slot as usize].engine.as_ref() {
                    self.stats.records_per_node.push(e.store().len() as f64);
                }
            }
        }
        self.schedule_in(Duration::from_secs(60), Action::Sample);
    }
}
