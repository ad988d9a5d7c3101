//! One machine's events inside a window, on whichever thread runs it.
//!
//! No datagram arrives sooner than [`MIN_ONE_WAY`] after it is sent, so
//! within a window that short machines cannot affect each other: each one
//! handles its own arrivals and timers in time order, and whatever crosses
//! machines (datagrams sent, finished commands) is collected in a
//! [`WindowOut`] that the world merges once the window is over. Which thread
//! ran which machine, and in what order, cannot change the result.

use std::cmp::Reverse;
use std::time::Duration;

use kadmesh::engine::Event;
use kadmesh::time::Time;

use crate::announce::worker_value;
use crate::net::{source_of, Delivery, Network, Outgoing, Queued, Traffic, FIND_VALUE, HEADER_BYTES};
use crate::node::SimNode;
use crate::pair::Pair;

/// What machines produced in a window, for the world to merge.
#[derive(Default)]
pub struct WindowOut {
    /// Datagrams on their way, with the machine that receives each.
    pub sends: Vec<(u32, Queued)>,
    /// Finished commands: when, on which machine, what.
    pub events: Vec<(Time, u32, Event)>,
    /// What the network carried and dropped.
    pub traffic: Traffic,
    /// Events handled (arrivals and timers).
    pub steps: u64,
    /// Timers still due right after firing (a core defect if ever seen).
    pub timer_spins: u64,
    /// Announcements started: machine and query id.
    pub puts: Vec<(u32, u64)>,
    /// Provider writes started: machine and query id.
    pub provides: Vec<(u32, u64)>,
}

/// What every machine may read during a window.
#[derive(Clone, Copy)]
pub struct Shared<'a> {
    /// The network's placement, addresses and partitions.
    pub net: &'a Network,
    /// Whether traffic counts towards the measured window.
    pub window_open: bool,
    /// How often workers re-announce themselves.
    pub heartbeat: Duration,
    /// Whether workers sign their announcements.
    pub signed: bool,
    /// Whether workers also write their service's provider set.
    pub discover: bool,
}

/// Handles machine `slot`'s events due before `until`.
pub fn run_machine(node: &mut SimNode, slot: u32, until: Time, sh: Shared, out: &mut WindowOut) {
    while let Some(t) = node.next_event().filter(|&t| t < until) {
        out.steps += 1;
        node.clock = node.clock.max(t);
        if node.inbox.peek().is_some_and(|Reverse(q)| q.key.0 == t) {
            if let Some(Reverse(q)) = node.inbox.pop() {
                deliver(node, slot, q.d, sh, out);
            }
        } else if node.timer == Some(t) {
            fire_timer(node, slot, sh, out);
        } else {
            heartbeat(node, slot, sh, out);
        }
    }
}

fn deliver(node: &mut SimNode, slot: u32, d: Delivery, sh: Shared, out: &mut WindowOut) {
    let addr = node.addr;
    let Some(engine) = node.engine.as_mut().filter(|_| addr == d.to_addr) else {
        out.traffic.undeliverable += 1;
        return;
    };
    let from = source_of(d.from_addr, d.from_other_port);
    let no_udp = d.request && sh.net.edge(slot) == crate::net::Edge::NoUdp;
    if no_udp || node.nat.as_ref().is_some_and(|n| !n.admits(from, node.clock)) {
        out.traffic.nat_blocked += 1;
        return;
    }
    if sh.window_open {
        node.bytes += d.payload.len() as u64 + HEADER_BYTES;
        node.msgs += 1;
    }
    engine.handle_datagram(node.clock, from, &d.payload);
    // A request is answered at once: the only reply in the queue now is its reply.
    flush(node, slot, d.request.then_some(d.kind), sh, out);
}

/// A worker puts its announcement with a fresh `last_seen`, and again
/// after `sh.heartbeat`.
fn heartbeat(node: &mut SimNode, slot: u32, sh: Shared, out: &mut WindowOut) {
    let now = node.clock;
    node.heartbeat_at = Some(now + sh.heartbeat);
    let value = worker_value(&node.name, slot, now, sh.signed);
    let Some(engine) = node.engine.as_mut().filter(|_| node.joined) else { return };
    let q = engine.put(now, node.key, value);
    out.puts.push((slot, q.0));
    if sh.discover {
        let (key, item) = crate::announce::provider_write(&node.name, slot, now, sh.heartbeat);
        let q = engine.provider_write(now, key, vec![item], false, Duration::ZERO);
        out.provides.push((slot, q.0));
    }
    flush(node, slot, None, sh, out);
}

fn fire_timer(node: &mut SimNode, slot: u32, sh: Shared, out: &mut WindowOut) {
    let now = node.clock;
    node.timer = None;
    if let Some(engine) = node.engine.as_mut() {
        engine.handle_timeout(now);
        flush(node, slot, None, sh, out);
    }
    // A timer still due right after firing would spin forever at this
    // instant; push it a millisecond on and count it.
    if node.timer == Some(now) {
        out.timer_spins += 1;
        node.timer = Some(now + Duration::from_millis(1));
    }
}

/// Routes what the engine queued at the machine's clock, collects its
/// finished commands and re-arms its timer.
pub fn flush(node: &mut SimNode, slot: u32, reply_kind: Option<u8>, sh: Shared, out: &mut WindowOut) {
    let now = node.clock;
    let Some(engine) = node.engine.as_mut() else { return };
    while let Some(t) = engine.poll_transmit() {
        let reply_kind = if t.payload.first() == Some(&1) { reply_kind } else { None };
        if let Some(nat) = node.nat.as_mut() {
            nat.note_sent(t.to, now);
        }
        if matches!(reply_kind, Some(2 | FIND_VALUE)) {
            sh.net.count_handout(&t.payload, &mut out.traffic);
        }
        node.sent += 1;
        let outgoing = Outgoing { to: t.to, payload: t.payload, reply_kind, from_other_port: t.from_other_port };
        let (size, routed) = sh.net.route(now, node.addr, outgoing, node.sent, &mut out.traffic);
        if sh.window_open {
            node.bytes += size;
            node.msgs += 1;
        }
        out.sends.extend(routed);
    }
    while let Some(ev) = engine.poll_event() {
        out.events.push((now, slot, ev));
    }
    // Due now (or "as soon as possible"): fire after what is already queued.
    node.timer = engine.poll_timeout().map(|t| t.max(now));
}

/// Runs the machines in `active` (distinct slots) up to `until`, shared
/// with the `pair`'s helper thread when there is one and enough to share,
/// and returns what they produced.
pub fn run_machines(
    nodes: &mut [SimNode],
    active: &[u32],
    until: Time,
    sh: Shared,
    pair: Option<&Pair>,
) -> Vec<WindowOut> {
    // Below this many machines a hand-off to the other thread costs more than it saves.
    const SHARE_FROM: usize = 4;
    match pair {
        Some(pair) if active.len() >= SHARE_FROM => pair.run(nodes, active, until, sh),
        _ => {
            let mut out = WindowOut::default();
            for &s in active {
                run_machine(&mut nodes[s as usize], s, until, sh, &mut out);
            }
            vec![out]
        }
    }
}
