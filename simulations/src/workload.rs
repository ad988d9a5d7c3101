//! What nodes do once joined: workers announce themselves and re-announce
//! every heartbeat, clients look workers up, and probes measure how fast a
//! new worker becomes findable and a dead one disappears.
//!
//! Heartbeat model: a worker `put`s `worker:{name}` with a fresh `last_seen`
//! right after it joins and then every `heartbeat` (2 min by default: what
//! the discovery layer writes to the DHT, however often the worker
//! heartbeats over HTTP, so one lost write still leaves the record inside
//! the platform's 5-minute liveness window).
//!
//! Probes:
//! - *new worker*: from one second after a brand-new identity's first put
//!   starts, a random other node `get`s its key every second until it finds
//!   a value with that `last_seen`; the time is from the put's start to that
//!   answer. (Not from the put's end: a put waits out the timeout of its
//!   slowest store, while the worker is findable once the first stores land.)
//! - *dead worker*: 15 s after a registered worker crashes, and every 15 s
//!   after, a random node `get`s its key; it has disappeared when the answer is
//!   "not found" or an announcement older than `stale_after`. The time is from
//!   the crash to that answer, so it is bounded below by how stale the last
//!   heartbeat already was. A worker that restarts with the same key first is
//!   counted as "restarted", not timed.

use std::time::Duration;

use kadmesh::engine::{Event, GetOutcome, Outcome};
use kadmesh::id::Key;
use kadmesh::seed_order::{SeedPlan, SeedSource};
use kadmesh::time::Time;
use rand::Rng;

use crate::announce::{is_fresh, last_seen, worker_value};
use crate::world::{Action, World};

/// A command the simulator waits on.
#[derive(Clone, Debug, PartialEq)]
pub enum Pending {
    /// A bootstrap in life `inc` through `source`; `plan` holds the sources
    /// left, `started` when the first was tried.
    Bootstrap { inc: u32, source: SeedSource, plan: SeedPlan, started: Time },
    /// A worker's announcement; `probe` when its findability is to be measured.
    Put,
    /// A measured lookup; `counted` when issued inside the window; `cut`
    /// when a partition separated the reader from the worker at issue.
    Lookup { issued: Time, counted: bool, cut: bool },
    /// One attempt of a probe.
    Probe { id: usize },
    /// A worker's provider write.
    Provide,
    /// A measured discover: `after` a disruption; `expected`: the live
    /// providers' names at issue.
    Discover { issued: Time, counted: bool, after: bool, router: bool, expected: Vec<crate::discover::Expected> },
}

/// A running measurement of one worker's key.
#[derive(Clone, Debug)]
pub struct Probe {
    /// Waiting for disappearance (true) or appearance (false).
    pub dead: bool,
    /// The worker's machine.
    pub worker: u32,
    /// The worker's life when the probe started.
    pub inc: u32,
    /// The worker's key.
    pub key: Key,
    /// Start of the measured interval.
    pub since: Time,
    /// Attempts so far.
    pub tries: u32,
}

const NEW_PROBE_EVERY: Duration = Duration::from_secs(1);
const NEW_PROBE_TRIES: u32 = 120;
const DEAD_PROBE_EVERY: Duration = Duration::from_secs(15);
const DEAD_PROBE_TRIES: u32 = 120;

impl World {
    /// First announcement after joining, then heartbeats.
    pub(crate) fn register(&mut self, slot: u32) {
        let node = &self.nodes[slot as usize];
        // Only a brand-new key is "newly registered"; a restart with state reuses its key.
        let probe = self.params.probe_new && self.window_open && node.fresh_key;
        let (inc, key) = (node.inc, node.key);
        self.announce(slot);
        if probe {
            self.start_probe(false, slot, inc, key, self.now);
        }
        // Later announcements are the machine's own events (see `window`).
        self.nodes[slot as usize].heartbeat_at = Some(self.now + self.params.heartbeat);
        self.reschedule(slot);
    }

    fn announce(&mut self, slot: u32) {
        let now = self.now;
        let node = &mut self.nodes[slot as usize];
        let value = worker_value(&node.name, slot, now, self.params.signed);
        let key = node.key;
        let Some(engine) = node.engine.as_mut() else { return };
        let q = engine.put(now, key, value);
        self.pending.insert((slot, q.0), Pending::Put);
        if self.params.discovers_per_min > 0.0 {
            let (key, item) = crate::announce::provider_write(&node.name, slot, now, self.params.heartbeat);
            let q = engine.provider_write(now, key, vec![item], false, Duration::ZERO);
            self.pending.insert((slot, q.0), Pending::Provide);
        }
        self.after_touch(slot, None);
    }

    /// Issues one measured lookup and schedules the next (Poisson arrivals).
    pub(crate) fn lookup_tick(&mut self) {
        let rate_per_ms = self.params.lookups_per_min / 60_000.0;
        let gap = -(1.0 - self.rng.gen::<f64>()).ln() / rate_per_ms;
        self.schedule_in(Duration::from_millis(gap.round().max(1.0) as u64), Action::Lookup);
        let (Some(client), Some(target)) = (self.joined.pick(&mut self.rng), self.registered.pick(&mut self.rng))
        else {
            return;
        };
        if client == target {
            return;
        }
        let key = self.nodes[target as usize].key;
        let counted = self.window_open;
        self.stats.lookups_issued += u64::from(counted);
        let cut = self.net.cut_between(client, target);
        self.get(client, key, Pending::Lookup { issued: self.now, counted, cut });
    }

    fn get(&mut self, client: u32, key: Key, pending: Pending) {
        let now = self.now;
        let Some(engine) = self.engine(client) else { return };
        let q = engine.get(now, key);
        self.pending.insert((client, q.0), pending);
        self.after_touch(client, None);
    }

    pub(crate) fn start_probe(&mut self, dead: bool, worker: u32, inc: u32, key: Key, since: Time) {
        let id = self.probes.len();
        self.probes.push(Probe { dead, worker, inc, key, since, tries: 0 });
        let wait = if dead { DEAD_PROBE_EVERY } else { NEW_PROBE_EVERY };
        self.schedule_in(wait, Action::Probe { id });
    }

    pub(crate) fn probe_attempt(&mut self, id: usize) {
        let p = self.probes[id].clone();
        let worker = &self.nodes[p.worker as usize];
        if p.dead && worker.key == p.key && worker.inc != p.inc {
            self.stats.dead_worker_restarted += 1;
            return;
        }
        if !p.dead && worker.inc != p.inc {
            return; // crashed before it was found: nothing to measure
        }
        let client = self.joined.pick(&mut self.rng).filter(|&c| c != p.worker);
        let Some(client) = client else { return self.schedule_in(NEW_PROBE_EVERY, Action::Probe { id }) };
        self.probes[id].tries += 1;
        self.get(client, p.key, Pending::Probe { id });
    }

    fn on_probe_answer(&mut self, id: usize, value: Option<&kadmesh::wire::Value>) {
        let p = &self.probes[id];
        let now = self.event_time;
        let elapsed = now.saturating_since(p.since).as_millis() as f64;
        if p.dead {
            let gone = value.is_none_or(|v| !is_fresh(v, now, self.params.stale_after));
            match (gone, p.tries >= DEAD_PROBE_TRIES) {
                (true, _) => self.stats.dead_worker_ms.push(elapsed),
                (false, true) => self.stats.dead_worker_lingering += 1,
                (false, false) => self.schedule_in(DEAD_PROBE_EVERY, Action::Probe { id }),
            }
        } else {
            let found = value.and_then(last_seen).is_some_and(|seen| seen + Duration::from_secs(1) >= p.since);
            match (found, p.tries >= NEW_PROBE_TRIES) {
                (true, _) => self.stats.new_worker_ms.push(elapsed),
                (false, true) => self.stats.new_worker_missed += 1,
                (false, false) => self.schedule_in(NEW_PROBE_EVERY, Action::Probe { id }),
            }
        }
    }

    /// A finished command of node `slot`.
    pub(crate) fn on_event(&mut self, slot: u32, ev: Event) {
        let Some(pending) = self.pending.remove(&(slot, ev.id.0)) else { return };
        match (pending, &ev.outcome) {
            (Pending::Bootstrap { inc, source, plan, started }, Outcome::Bootstrap(b))
                if self.nodes[slot as usize].inc == inc =>
            {
                self.on_bootstrap(slot, source, plan, started, b);
            }
            (Pending::Put, Outcome::Put(p)) => {
                self.stats.puts_done += u64::from(self.window_open);
                self.stats.puts_failed += u64::from(self.window_open && p.stored == 0);
                let node = &mut self.nodes[slot as usize];
                if p.stored > 0 && !node.registered {
                    node.registered = true;
                    node.fresh_key = false;
                    self.registered.insert(slot);
                }
            }
            (Pending::Lookup { issued, counted, cut }, Outcome::Get(g)) => {
                self.stats.gets_done += u64::from(self.window_open);
                if counted {
                    self.record_lookup(slot, issued, cut, g);
                }
                if counted && self.after_disruption(issued) {
                    self.stats.discover.after_lookup_ms.push(g.stats.duration.as_millis() as f64);
                }
            }
            (Pending::Provide, Outcome::ProviderWrite(w)) => {
                let node = &mut self.nodes[slot as usize];
                node.provided |= w.acked > 0;
            }
            (Pending::Discover { issued, counted: true, after, router, expected }, Outcome::ProviderRead(r)) => {
                self.on_discover(issued, (after, router), &expected, r);
            }
            (Pending::Probe { id }, Outcome::Get(g)) => {
                self.stats.gets_done += u64::from(self.window_open);
                self.on_probe_answer(id, g.value.as_ref());
            }
            _ => {}
        }
    }

    fn record_lookup(&mut self, slot: u32, issued: Time, cut: bool, g: &GetOutcome) {
        let edge = self.net.edge(slot) as usize;
        let s = &mut self.stats;
        s.lookups_done += 1;
        let found = g.value.is_some();
        s.per_minute.record(issued.as_millis(), found);
        if let Some(v) = &g.value {
            s.lookups_found += 1;
            let fresh = is_fresh(v, self.event_time, self.params.stale_after);
            s.lookups_fresh += u64::from(fresh);
            s.cut_found += u64::from(cut);
            s.cut_fresh += u64::from(cut && fresh);
            if self.params.late_from.is_some_and(|l| issued >= Time::ZERO + self.params.warmup + l) {
                s.late_found += 1;
                s.late_fresh += u64::from(fresh);
            }

            s.lookups_local += u64::from(g.local);
            s.latency_ms.push(g.stats.duration.as_millis() as f64);
            s.latency_by_edge_ms[edge].push(g.stats.duration.as_millis() as f64);
            if !g.local {
                s.hops.push(f64::from(g.stats.hops));
                s.queried.push(g.stats.queried as f64);
            }
        }
    }

    /// Forgets the commands of a crashed node; probes it was running go on elsewhere.
    pub(crate) fn abort_pending(&mut self, slot: u32) {
        let keys: Vec<(u32, u64)> = self.pending.range((slot, 0)..=(slot, u64::MAX)).map(|(k, _)| *k).collect();
        for k in keys {
            match self.pending.remove(&k) {
                Some(Pending::Lookup { counted: true, .. }) => self.stats.lookups_aborted += 1,
                Some(Pending::Probe { id }) => self.schedule_in(Duration::from_millis(1), Action::Probe { id }),
                _ => {}
            }
        }
    }
}
