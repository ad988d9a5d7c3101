//! The simulated world: machines running real [`Engine`]s, the virtual
//! network between them, and a virtual clock advanced event by event.
//!
//! Three sources of events: datagrams arriving (the network's heap), engine
//! timers (a heap of `(deadline, slot)`, refreshed from
//! [`Engine::poll_timeout`] every time a node is touched, stale entries
//! skipped), and scheduled actions (joins, crashes, heartbeats, lookups,
//! scenario events) in a `BTreeMap` keyed by `(time, sequence)`. The next
//! event is the earliest of the three; ties go network, then timers, then
//! actions. Nothing iterates a `HashMap`, and the simulator's own randomness
//! is one seeded RNG, so a seed fixes the run.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::{Duration, Instant};

use kadmesh::engine::{Engine, Event};
use kadmesh::time::Time;
use rand::{rngs::SmallRng, SeedableRng};

use crate::net::{addr_of, Delivery, Network};
use crate::node::{Role, SimNode, SlotSet};
use crate::params::SimParams;
use crate::runstats::RunStats;
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
    /// Bootstrap again through the edge router after a failure.
    Rejoin { slot: u32, inc: u32 },
    /// A worker re-announces itself.
    Heartbeat { slot: u32, inc: u32 },
    /// The next measured lookup.
    Lookup,
    /// The next attempt of probe `id`.
    Probe { id: usize },
    /// Gauges: live nodes each minute, records per node every ten.
    Sample,
    /// A coordinator pushes fresh seeds to the edge router.
    EdgeRefresh,
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
    timers: BinaryHeap<Reverse<(Time, u32)>>,
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
    /// Whether the measurement window is open.
    pub window_open: bool,
    /// What was observed.
    pub stats: RunStats,
    /// Events processed.
    pub steps: u64,
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
            nodes.push(SimNode::new(role));
        }
        let mut w = World {
            rng: SmallRng::seed_from_u64(params.seed),
            coordinators: (0..params.coordinators).collect(),
            params,
            now: Time::ZERO,
            nodes,
            net,
            timers: BinaryHeap::new(),
            actions: BTreeMap::new(),
            action_seq: 0,
            joined: SlotSet::default(),
            registered: SlotSet::default(),
            pending: BTreeMap::new(),
            probes: Vec::new(),
            edge_recent: Vec::new(),
            window_open: false,
            stats: RunStats::new(),
            steps: 0,
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

    /// Runs until `end`, or until nothing is left to do.
    // The wall clock only paces progress lines; it never reaches the simulation.
    #[allow(clippy::disallowed_methods)]
    pub fn run_until(&mut self, end: Time) {
        let wall = Instant::now();
        let mut last_print = Instant::now();
        while self.step(end) {
            if self.steps & 0x1fff == 0 && last_print.elapsed() >= Duration::from_secs(2) {
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

    fn next_timer(&mut self) -> Option<Time> {
        while let Some(&Reverse((t, slot))) = self.timers.peek() {
            if self.nodes[slot as usize].timer == Some(t) {
                return Some(t);
            }
            self.timers.pop();
        }
        None
    }

    /// Processes the next event if it is due by `end`.
    fn step(&mut self, end: Time) -> bool {
        let tn = self.net.next_time();
        let tt = self.next_timer();
        let ta = self.actions.first_key_value().map(|(k, _)| k.0);
        let Some(t) = [tn, tt, ta].into_iter().flatten().min() else { return false };
        if t > end {
            return false;
        }
        self.now = t;
        self.steps += 1;
        if tn == Some(t) {
            if let Some(d) = self.net.pop() {
                self.deliver(d);
            }
        } else if tt == Some(t) {
            if let Some(Reverse((_, slot))) = self.timers.pop() {
                self.fire_timer(slot);
            }
        } else if let Some((_, action)) = self.actions.pop_first() {
            self.dispatch(action);
        }
        true
    }

    fn deliver(&mut self, d: Delivery) {
        let Some(slot) = self.net.owner(d.to_addr) else { return };
        let now = self.now;
        let node = &mut self.nodes[slot as usize];
        let Some(engine) = node.engine.as_mut().filter(|_| node.addr == d.to_addr) else {
            self.net.traffic.undeliverable += 1;
            return;
        };
        if self.window_open {
            node.bytes += d.payload.len() as u64 + crate::net::HEADER_BYTES;
            node.msgs += 1;
        }
        engine.handle_datagram(now, addr_of(d.from_addr), &d.payload);
        // A request is answered at once: the only reply in the queue now is its reply.
        self.after_touch(slot, d.request.then_some(d.kind));
    }

    fn fire_timer(&mut self, slot: u32) {
        let now = self.now;
        let node = &mut self.nodes[slot as usize];
        node.timer = None;
        if let Some(engine) = node.engine.as_mut() {
            engine.handle_timeout(now);
            self.after_touch(slot, None);
        }
        // A timer still due right after firing would spin forever at this
        // instant; push it a millisecond on and count it (a core defect if seen).
        let node = &mut self.nodes[slot as usize];
        if node.timer == Some(now) {
            self.stats.timer_spins += 1;
            node.timer = Some(now + Duration::from_millis(1));
            self.timers.push(Reverse((now + Duration::from_millis(1), slot)));
        }
    }

    /// Sends what the node queued, handles its finished commands (which may
    /// issue more commands on the same node), and re-arms its timer.
    pub fn after_touch(&mut self, slot: u32, reply_kind: Option<u8>) {
        let mut events: Vec<Event> = Vec::new();
        loop {
            let node = &mut self.nodes[slot as usize];
            let Some(engine) = node.engine.as_mut() else { return };
            while let Some(t) = engine.poll_transmit() {
                let kind = if t.payload.first() == Some(&1) { reply_kind } else { None };
                let size = self.net.send(self.now, node.addr, t.to, t.payload, kind);
                if self.window_open {
                    node.bytes += size;
                    node.msgs += 1;
                }
            }
            events.extend(std::iter::from_fn(|| engine.poll_event()));
            if events.is_empty() {
                break;
            }
            for ev in events.drain(..) {
                self.on_event(slot, ev);
            }
        }
        self.rearm(slot);
    }

    fn rearm(&mut self, slot: u32) {
        let now = self.now;
        let node = &mut self.nodes[slot as usize];
        let Some(engine) = node.engine.as_ref() else { return };
        let Some(mut t) = engine.poll_timeout() else {
            node.timer = None;
            return;
        };
        if t <= now {
            // Due now (or "as soon as possible"): fire after what is already queued at `now`.
            t = now;
        }
        if node.timer != Some(t) {
            node.timer = Some(t);
            self.timers.push(Reverse((t, slot)));
        }
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
            Action::Heartbeat { slot, inc } => self.heartbeat(slot, inc),
            Action::Lookup => self.lookup_tick(),
            Action::Probe { id } => self.probe_attempt(id),
            Action::Sample => self.sample(),
            Action::EdgeRefresh => self.edge_refresh(),
            Action::OpenWindow => self.open_window(),
            Action::Scenario(ev) => self.scenario_event(ev),
        }
    }

    fn open_window(&mut self) {
        self.window_open = true;
        self.stats.traffic_at_start = self.net.traffic.clone();
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
        self.stats.traffic_at_end = self.net.traffic.clone();
    }
}
