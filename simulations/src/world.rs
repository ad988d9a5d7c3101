//! The simulated world: machines running real [`Engine`]s, the virtual
//! network between them, and a virtual clock advanced event by event.
//!
//! Two kinds of events: a machine's own (datagrams arriving in its inbox and
//! its engine's timer, see [`SimNode::next_event`]), found through the
//! [`Agenda`] with stale entries skipped; and scheduled actions
//! (joins, crashes, heartbeats, lookups, scenario events) in a `BTreeMap`
//! keyed by `(time, sequence)`.
//!
//! Time advances in windows. An action runs alone at its time. Otherwise
//! every machine with something due before `start + MIN_ONE_WAY` (or the next
//! action) handles it, independently of the others: no datagram sent in the
//! window can arrive inside it (see [`crate::window`]). With `threads > 1`
//! two threads share the machines of a window ([`crate::pair`]). Afterwards the world, alone,
//! queues the datagrams sent and handles the finished commands in
//! `(time, slot)` order, at the window's end; measurements use each
//! command's own finish time. Nothing iterates a `HashMap`, and the
//! simulator's own randomness is one seeded RNG, so a seed fixes the run,
//! whatever the number of threads.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kadmesh::engine::{Engine, Event};
use kadmesh::time::Time;
use rand::{rngs::SmallRng, SeedableRng};

use crate::agenda::Agenda;
use crate::net::{Network, Traffic, MIN_ONE_WAY};
use crate::node::{Role, SimNode, SlotSet};
use crate::pair::{Pair, QuitOnDrop};
use crate::params::SimParams;
use crate::runstats::RunStats;
use crate::window::{flush, run_machines, Shared, WindowOut};
use crate::workload::{Pending, Probe};

/// Something scheduled to happen at a time.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// A machine starts for the first time (fresh identity).
    Start { slot: u32 },
    /// A churn crash, if the machine is still in life `inc`.
    Crash { slot: u32, inc: u32 },
    /// A crashed machine comes back.
    Restart { slot: u32 },
    /// Go through the seed sources again after every one failed.
    Rejoin { slot: u32, inc: u32 },
    /// The next measured lookup.
    Lookup,
    /// The next measured discover.
    Discover,
    /// The next attempt of probe `id`.
    Probe { id: usize },
    /// Gauges: live nodes each minute, records per node every ten.
    Sample,
    /// A coordinator pushes fresh seeds to the edge router.
    EdgeRefresh,
    /// The coordinators rewrite the DNS seed records (`dns`) or the static seed list.
    PublishSeeds { dns: bool },
    /// The measurement window opens.
    OpenWindow,
    /// A scenario event.
    Scenario(ScenarioEvent),
}

/// Disruptions scenarios schedule.
#[derive(Clone, Debug, PartialEq)]
pub enum ScenarioEvent {
    /// This fraction of live workers crash at once and never return.
    CrashFraction(f64),
    /// Machines in these regions are cut off from the rest.
    Partition(Vec<u8>),
    /// The partition heals.
    Heal,
    /// Every coordinator crashes for good.
    KillCoordinators,
    /// `count` new machines start within `over`.
    FlashCrowd { count: u32, over: Duration },
}

/// The whole simulation state.
pub struct World {
    /// Run parameters.
    pub params: SimParams,
    /// Virtual time.
    pub now: Time,
    /// Machines, by slot.
    pub nodes: Vec<SimNode>,
    /// The network.
    pub net: Network,
    /// The simulator's randomness (engines have their own, seeded per node).
    pub rng: SmallRng,
    agenda: Agenda,
    actions: BTreeMap<(Time, u64), Action>,
    action_seq: u64,
    /// Nodes that finished bootstrap and are up: lookup clients.
    pub joined: SlotSet,
    /// Live workers whose announcement is stored: lookup targets.
    pub registered: SlotSet,
    /// Coordinator slots.
    pub coordinators: Vec<u32>,
    /// Commands awaiting their event, by `(slot, query id)`.
    pub pending: BTreeMap<(u32, u64), Pending>,
    /// Probes (new-worker and dead-worker measurements).
    pub probes: Vec<Probe>,
    /// Recent edge-router requesters, newest last: the edge's extra seeds.
    pub edge_recent: Vec<u32>,
    /// Addresses the DNS seed name resolves to.
    pub dns_seeds: Vec<u32>,
    /// Addresses in the static seed list.
    pub list_seeds: Vec<u32>,
    /// Whether the measurement window is open.
    pub window_open: bool,
    /// What was observed.
    pub stats: RunStats,
    /// Events processed.
    pub steps: u64,
    /// What the network carried and dropped so far.
    pub traffic: Traffic,
    /// When the event being handled happened: the world's clock, except for
    /// commands that finished inside a window and are handled at its end.
    pub event_time: Time,
}

impl World {
    /// A world with coordinators and workers placed but not started; the
    /// run schedule (starts, lookups, samples) is already queued.
    pub fn new(params: SimParams) -> Self {
        let mut net = Network::new(params.seed, params.latency.clone());
        let mut nodes = Vec::new();
        for slot in 0..params.coordinators + params.workers {
            net.add_machine(slot);
            let role = if slot < params.coordinators { Role::Coordinator } else { Role::Worker };
            if role == Role::Worker {
                // Same draw for both shares: the NATed set does not depend on the no-UDP share.
                let u = crate::hash::unit(crate::hash::mix(params.seed ^ 0x006e_6174, u64::from(slot)));
                if u < params.nat_share {
                    net.set_edge(slot, crate::net::Edge::Nat);
                } else if u < params.nat_share + params.no_udp_share {
                    net.set_edge(slot, crate::net::Edge::NoUdp);
                }
            }
            nodes.push(SimNode::new(role));
        }
        let mut w = World {
            rng: SmallRng::seed_from_u64(params.seed),
            coordinators: (0..params.coordinators).collect(),
            params,
            now: Time::ZERO,
            nodes,
            net,
            agenda: Agenda::default(),
            actions: BTreeMap::new(),
            action_seq: 0,
            joined: SlotSet::default(),
            registered: SlotSet::default(),
            pending: BTreeMap::new(),
            probes: Vec::new(),
            edge_recent: Vec::new(),
            dns_seeds: Vec::new(),
            list_seeds: Vec::new(),
            window_open: false,
            stats: RunStats::new(),
            steps: 0,
            traffic: Traffic::default(),
            event_time: Time::ZERO,
        };
        w.schedule_initial();
        w
    }

    /// Queues `action` at `at` (never in the past).
    pub fn schedule(&mut self, at: Time, action: Action) {
        self.action_seq += 1;
        self.actions.insert((at.max(self.now), self.action_seq), action);
    }

    /// Queues `action` after `d`.
    pub fn schedule_in(&mut self, d: Duration, action: Action) {
        self.schedule(self.now + d, action);
    }

    /// Runs until `end`, or until nothing is left to do, on one thread, or
    /// two when `params.threads` asks for more.
    pub fn run_until(&mut self, end: Time) {
        if self.params.threads < 2 {
            return self.run_loop(end, None);
        }
        let pair = Pair::default();
        std::thread::scope(|s| {
            s.spawn(|| pair.serve());
            let _quit = QuitOnDrop(&pair);
            self.run_loop(end, Some(&pair));
        });
    }

    // The wall clock only paces progress lines; it never reaches the simulation.
    #[allow(clippy::disallowed_methods)]
    fn run_loop(&mut self, end: Time, pair: Option<&Pair>) {
        let wall = Instant::now();
        let mut last_print = Instant::now();
        let mut windows = 0u64;
        while self.step(end, pair) {
            windows += 1;
            if windows & 0x3ff == 0 && last_print.elapsed() >= Duration::from_secs(2) {
                last_print = Instant::now();
                self.progress(end, wall);
                if self.params.max_wall.is_some_and(|m| wall.elapsed() >= m) {
                    // Out of wall time: stop here and report the window simulated so far.
                    self.params.duration = self.now.saturating_since(Time::ZERO + self.params.warmup);
                    self.progress(end, wall);
                    return;
                }
            }
        }
        self.now = self.now.max(end);
        self.progress(end, wall);
    }

    fn progress(&self, end: Time, wall: Instant) {
        let Some(label) = &self.params.progress else { return };
        let s = self.now.as_secs();
        let pct = 100.0 * self.now.as_secs_f64() / end.as_secs_f64().max(1e-9);
        eprintln!(
            "[{label}] t={:02}:{:02}:{:02} sim, {pct:3.0}%, {:.1} s wall, {} up, {} events",
            s / 3600,
            s / 60 % 60,
            s % 60,
            wall.elapsed().as_secs_f64(),
            self.joined.len(),
            self.steps
        );
    }

    /// The earliest machine event, skipping stale agenda entries.
    fn next_machine_event(&mut self) -> Option<Time> {
        let nodes = &self.nodes;
        self.agenda.next(|t, slot| nodes[slot as usize].agenda == Some(t))
    }

    /// Runs the actions due at the earliest time, or else one window of
    /// machine events, if due by `end`.
    fn step(&mut self, end: Time, pair: Option<&Pair>) -> bool {
        let ta = self.actions.first_key_value().map(|(k, _)| k.0);
        let tm = self.next_machine_event();
        let Some(t) = [ta, tm].into_iter().flatten().min() else { return false };
        if t > end {
            return false;
        }
        self.now = t;
        self.event_time = t;
        if ta == Some(t) {
            while let Some(entry) = self.actions.first_entry().filter(|e| e.key().0 == t) {
                let action = entry.remove();
                self.steps += 1;
                self.dispatch(action);
            }
            return true;
        }
        let mut until = (t + MIN_ONE_WAY).min(end + Duration::from_millis(1));
        if let Some(a) = ta {
            until = until.min(a);
        }
        self.run_window(until, pair);
        true
    }

    /// Every machine handles its events before `until`; then the world
    /// merges what they produced, at `until`.
    fn run_window(&mut self, until: Time, pair: Option<&Pair>) {
        let nodes = &mut self.nodes;
        let mut active = self.agenda.take_until(until, |t, slot| {
            let node = &mut nodes[slot as usize];
            // Taken once: a second entry at the same time is stale.
            node.agenda.take_if(|a| *a == t).is_some()
        });
        active.sort_unstable();
        let sh = Shared {
            net: &self.net,
            window_open: self.window_open,
            heartbeat: self.params.heartbeat,
            signed: self.params.signed,
            discover: self.params.discovers_per_min > 0.0,
        };
        let outs = run_machines(&mut self.nodes, &active, until, sh, pair);
        self.now = until;
        let mut events = Vec::new();
        for out in outs {
            events.extend(self.merge(out));
        }
        for slot in active {
            self.reschedule(slot);
        }
        // Each machine's commands in the order they finished; machines in slot order.
        events.sort_by_key(|(t, slot, _)| (*t, *slot));
        for (t, slot, ev) in events {
            self.event_time = t;
            self.on_event(slot, ev);
        }
        self.event_time = self.now;
    }

    /// Queues the datagrams of `out`, counts its traffic and notes the
    /// announcements it started; returns its finished commands.
    fn merge(&mut self, out: WindowOut) -> Vec<(Time, u32, Event)> {
        for (slot, q) in out.puts {
            self.pending.insert((slot, q), crate::workload::Pending::Put);
        }
        for (slot, q) in out.provides {
            self.pending.insert((slot, q), crate::workload::Pending::Provide);
        }
        self.steps += out.steps;
        self.stats.timer_spins += out.timer_spins;
        self.traffic.add(&out.traffic);
        for (slot, q) in out.sends {
            self.nodes[slot as usize].inbox.push(Reverse(q));
            self.reschedule(slot);
        }
        out.events
    }

    /// Puts machine `slot` in the agenda at its next event.
    pub fn reschedule(&mut self, slot: u32) {
        let node = &mut self.nodes[slot as usize];
        // Nothing is due before the agenda's floor; an event there runs at once.
        let next = node.next_event().map(|t| t.max(self.agenda.floor()));
        if next != node.agenda {
            node.agenda = next;
            if let Some(t) = next {
                self.agenda.push(t, slot);
            }
        }
    }

    /// After a command or action touched machine `slot` outside a window:
    /// sends what it queued, handles its finished commands (which may issue
    /// more) and re-arms it.
    pub fn after_touch(&mut self, slot: u32, reply_kind: Option<u8>) {
        let node = &mut self.nodes[slot as usize];
        node.clock = node.clock.max(self.now);
        let mut out = WindowOut::default();
        let sh = Shared {
            net: &self.net,
            window_open: self.window_open,
            heartbeat: self.params.heartbeat,
            signed: self.params.signed,
            discover: self.params.discovers_per_min > 0.0,
        };
        flush(node, slot, reply_kind, sh, &mut out);
        for (_, slot, ev) in self.merge(out) {
            self.on_event(slot, ev);
        }
        self.reschedule(slot);
    }

    /// The engine of a running machine.
    pub fn engine(&mut self, slot: u32) -> Option<&mut Engine> {
        self.nodes[slot as usize].engine.as_mut()
    }

    fn dispatch(&mut self, action: Action) {
        match action {
            Action::Start { slot } => self.start(slot, true),
            Action::Crash { slot, inc } => {
                if self.nodes[slot as usize].inc == inc && self.nodes[slot as usize].is_up() {
                    self.crash(slot, true);
                }
            }
            Action::Restart { slot } => self.restart(slot),
            Action::Rejoin { slot, inc } => self.rejoin(slot, inc),
            Action::Lookup => self.lookup_tick(),
            Action::Discover => self.discover_tick(),
            Action::Probe { id } => self.probe_attempt(id),
            Action::Sample => self.sample(),
            Action::EdgeRefresh => self.edge_refresh(),
            Action::PublishSeeds { dns } => self.publish_seeds(dns),
            Action::OpenWindow => self.open_window(),
            Action::Scenario(ev) => self.scenario_event(ev),
        }
    }

    fn open_window(&mut self) {
        self.window_open = true;
        self.stats.traffic_at_start = self.traffic.clone();
        let now = self.now;
        for n in self.nodes.iter_mut().filter(|n| n.is_up()) {
            n.up_since = now;
        }
    }

    /// Closes the books at the end of the run: uptime of machines still up
    /// and the final network counters.
    pub fn finish(&mut self) {
        let now = self.now;
        for n in self.nodes.iter_mut().filter(|n| n.is_up()) {
            n.uptime_ms += now.saturating_since(n.up_since).as_millis() as u64;
            n.up_since = now;
        }
        self.stats.traffic_at_end = self.traffic.clone();
    }
}
