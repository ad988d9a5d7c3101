//! Machines starting, joining, crashing and restarting, the bootstrap seed
//! sources (saved contacts, a coordinator's HTTP endpoint, the edge router),
//! and the scenario disruptions.
//!
//! Seed sources, in the order a node tries them:
//! 1. **Saved contacts**: a restart with state pings the contacts it saved.
//!    Costs no HTTP request.
//! 2. **Its coordinator** (`GET /api/dht/bootstrap`, which workers already
//!    talk to): the coordinator's own address plus its 7 most recently seen
//!    contacts. Skipped when that coordinator is down.
//! 3. **The edge router** (the bootstrap URL): the configured coordinator
//!    addresses, live or not (it is a stateless function), plus the addresses
//!    of the last 8 nodes that joined through it (kept in its KV store).
//!    Every call is counted. After a failure a node retries the edge with
//!    exponential backoff (30 s doubling, at most 10 min).
//!
//! So that the edge still knows live nodes when every coordinator is gone,
//! one live coordinator pushes its 8 most recently seen contacts to the edge
//! every 3 hours (8 requests a day, counted).

use std::net::SocketAddr;
use std::time::Duration;

use kadmesh::engine::{BootstrapOutcome, Engine};
use kadmesh::reach::recent::RecentPeers;
use kadmesh::time::Time;
use rand::seq::SliceRandom;
use rand::Rng;

use crate::hash::mix;
use crate::net::addr_of;
use crate::node::{Role, Saved, SimNode};
use crate::params::SeedSource;
use crate::workload::Pending;
use crate::world::{Action, ScenarioEvent, World};

/// Addresses a simulated NAT remembers (more than a node talks to within
/// [`crate::net::NAT_TIMEOUT`]).
const NAT_MAPPINGS: usize = 1 << 16;

/// Where a bootstrap's seeds came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Contacts saved before a restart.
    Saved,
    /// A coordinator's bootstrap endpoint.
    Coordinator,
    /// The edge router.
    Edge,
    /// The static coordinator list (coordinators joining each other).
    Static,
}

/// Contacts a coordinator's bootstrap endpoint returns besides itself.
const COORDINATOR_SEEDS: usize = 7;
/// Recent joiners and pushed seeds the edge router remembers and hands out.
const EDGE_RECENT: usize = 16;
/// How often a coordinator pushes seeds to the edge router.
const EDGE_REFRESH: Duration = Duration::from_secs(3 * 3600);

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
        self.schedule(Time::ZERO + self.params.warmup, Action::OpenWindow);
        if self.params.lookups_per_min > 0.0 {
            self.schedule(Time::ZERO + self.params.join_spread, Action::Lookup);
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
        node.up_since = now;
        node.edge_failures = 0;
        config.rng_seed = mix(seed, u64::from(slot) << 32 | u64::from(node.inc));
        if self.params.client_mode && node.role == Role::Worker {
            config.reach.mode = kadmesh::reach::ReachMode::Auto;
        }
        // A new life behind NAT starts with no mappings open.
        node.nat = self.net.natted_slot(slot).then(|| RecentPeers::new(NAT_MAPPINGS, crate::net::NAT_TIMEOUT));
        let mut engine = Engine::new(node.id, config, now);
        let saved = node.saved.take().unwrap_or_default();
        for record in saved.records {
            engine.restore_record(now, record);
        }
        node.engine = Some(engine);
        let (role, inc) = (node.role, node.inc);
        if let (Role::Worker, Some(churn)) = (role, &self.params.churn) {
            let session = churn.session(&mut self.rng);
            self.schedule_in(session, Action::Crash { slot, inc });
        }
        let source = match role {
            Role::Coordinator => Source::Static,
            Role::Worker if !saved.contacts.is_empty() => Source::Saved,
            Role::Worker => self.default_source(),
        };
        let seeds: Vec<SocketAddr> = saved.contacts.iter().map(|c| c.addr).collect();
        self.join(slot, source, seeds);
    }

    fn default_source(&self) -> Source {
        match self.params.seed_source {
            SeedSource::Coordinator => Source::Coordinator,
            SeedSource::Edge => Source::Edge,
        }
    }

    /// Bootstraps `slot` from `source`; `saved` are the seeds of a `Saved` join.
    pub(crate) fn join(&mut self, slot: u32, source: Source, saved: Vec<SocketAddr>) {
        let seeds = match source {
            Source::Saved => saved,
            Source::Static => self.coordinators.iter().filter(|&&c| c != slot).map(|&c| self.addr(c)).collect(),
            Source::Coordinator => match self.coordinator_seeds(slot) {
                Some(seeds) => seeds,
                None => return self.join(slot, Source::Edge, Vec::new()),
            },
            Source::Edge => self.edge_seeds(),
        };
        let now = self.now;
        let node = &mut self.nodes[slot as usize];
        let inc = node.inc;
        let Some(engine) = node.engine.as_mut() else { return };
        let q = engine.bootstrap(now, &seeds);
        self.pending.insert((slot, q.0), Pending::Bootstrap { inc, source, started: now });
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

    /// A bootstrap finished: joined, or fall back to the next seed source.
    pub(crate) fn on_bootstrap(&mut self, slot: u32, source: Source, started: Time, b: &BootstrapOutcome) {
        let node = &mut self.nodes[slot as usize];
        if b.seeds_reached == 0 && b.table_size == 0 && source != Source::Static {
            if self.window_open {
                self.stats.bootstrap_fallbacks += 1;
            }
            return match source {
                Source::Saved => self.join(slot, self.default_source(), Vec::new()),
                Source::Coordinator => self.join(slot, Source::Edge, Vec::new()),
                _ => {
                    node.edge_failures += 1;
                    let backoff = Duration::from_secs(30 << node.edge_failures.min(5)).min(Duration::from_secs(600));
                    let inc = node.inc;
                    self.schedule_in(backoff, Action::Rejoin { slot, inc });
                }
            };
        }
        node.joined = true;
        node.edge_failures = 0;
        let (role, addr) = (node.role, node.addr);
        self.joined.insert(slot);
        if self.window_open {
            self.stats.bootstrap_ms.push(self.event_time.saturating_since(started).as_millis() as f64);
        }
        if source == Source::Edge {
            self.remember_at_edge(addr);
        }
        if role == Role::Worker {
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
            self.join(slot, Source::Edge, Vec::new());
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
        self.nodes[slot as usize].saved = keeps.then(|| Saved::capture(&engine, now));
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
