//! Engine tests, one module per behaviour. Here: engines wired together by
//! an in-memory, zero-latency network with a hand-advanced clock ([`Net`]);
//! in [`hand`]: one engine driven by hand.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use super::*;
use crate::wire::{Call, MessageId, Value};

struct Net {
    nodes: Vec<Engine>,
    by_addr: HashMap<SocketAddr, usize>,
    down: HashSet<usize>,
    now: Time,
    events: Vec<(usize, Event)>,
    /// Nodes behind a reply-only NAT (see `reach`).
    nat: HashMap<usize, crate::reach::recent::RecentPeers>,
    /// Nodes replies lose the name kadmesh adds after their contacts
    /// (EXTENSIONS.md §7.1b), as stock peers' carry none: for tests where
    /// a node takes the others for stock peers.
    unnamed: bool,
}

/// `payload` without the name after a nodes reply's contacts, or a value
/// hit's, if it has one.
fn without_name(payload: &[u8]) -> Vec<u8> {
    let Ok(Datagram::Response { id, body }) = crate::wire::decode(payload) else { return payload.to_vec() };
    let body = match (crate::wire::answering_node(&body), body) {
        (Some(_), Value::Array(mut items)) => {
            items.pop();
            Value::Array(items)
        }
        (Some(_), Value::Map(entries)) => {
            Value::Map(entries.into_iter().filter(|(k, _)| k.as_str() != Some("node")).collect())
        }
        _ => return payload.to_vec(),
    };
    Datagram::Response { id, body }.encode().unwrap_or_else(|_| payload.to_vec())
}

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, (i >> 8) as u8, i as u8, 1], 8468))
}

/// Where node `i`'s datagrams sent from its other port come from
/// ([`Transmit::from_other_port`]).
fn other_port(i: usize) -> SocketAddr {
    SocketAddr::new(addr(i).ip(), 50_000)
}

impl Net {
    fn new(n: usize, config: impl Fn(usize) -> Config) -> Net {
        let mut net = Net {
            nodes: Vec::new(),
            by_addr: HashMap::new(),
            down: HashSet::new(),
            now: Time::ZERO,
            events: Vec::new(),
            nat: HashMap::new(),
            unnamed: false,
        };
        for i in 0..n {
            net.add(config(i));
        }
        net
    }

    fn add(&mut self, config: Config) -> usize {
        let id = NodeId::digest(&self.nodes.len().to_be_bytes());
        self.add_with_id(id, config)
    }

    /// A node with a chosen id (say, right at a key).
    fn add_with_id(&mut self, id: NodeId, mut config: Config) -> usize {
        let i = self.nodes.len();
        config.rng_seed = i as u64;
        self.nodes.push(Engine::new(id, config, self.now));
        self.by_addr.insert(addr(i), i);
        i
    }

    /// Delivers datagrams until the network is quiet.
    fn flush(&mut self) {
        let mut queue: VecDeque<(usize, Transmit)> = VecDeque::new();
        loop {
            for (i, e) in self.nodes.iter_mut().enumerate() {
                while let Some(t) = e.poll_transmit() {
                    queue.push_back((i, t));
                }
                while let Some(ev) = e.poll_event() {
                    self.events.push((i, ev));
                }
            }
            let Some((from, t)) = queue.pop_front() else { return };
            if self.down.contains(&from) {
                continue;
            }
            if let Some(nat) = self.nat.get_mut(&from) {
                nat.note_sent(t.to, self.now);
            }
            let src = if t.from_other_port { other_port(from) } else { addr(from) };
            if let Some(&to) = self.by_addr.get(&t.to) {
                if self.nat.get(&to).is_some_and(|n| !n.admits(src, self.now)) {
                    continue;
                }
                let payload = if self.unnamed { without_name(&t.payload) } else { t.payload.to_vec() };
                if !self.down.contains(&to) {
                    self.nodes[to].handle_datagram(self.now, src, &payload);
                }
            }
        }
    }

    /// Advances the clock by `d`, firing every timer on the way.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            self.flush();
            let next = self
                .nodes
                .iter()
                .enumerate()
                .filter(|(i, _)| !self.down.contains(i))
                .filter_map(|(_, e)| e.poll_timeout())
                .min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    let now = self.now;
                    for (i, e) in self.nodes.iter_mut().enumerate() {
                        if !self.down.contains(&i) && e.poll_timeout().is_some_and(|t| t <= now) {
                            e.handle_timeout(now);
                        }
                    }
                }
                _ => break,
            }
        }
        self.now = end;
    }

    fn run(&mut self, node: usize, f: impl FnOnce(&mut Engine, Time) -> QueryId, limit: Duration) -> Outcome {
        let now = self.now;
        let q = f(&mut self.nodes[node], now);
        let step = Duration::from_millis(100);
        let mut waited = Duration::ZERO;
        loop {
            self.flush();
            if let Some(pos) = self.events.iter().position(|(n, e)| *n == node && e.id == q) {
                return self.events.remove(pos).1.outcome;
            }
            assert!(waited < limit, "operation did not finish in {limit:?}");
            self.advance(step);
            waited += step;
        }
    }

    fn bootstrap_all(&mut self) {
        for i in 1..self.nodes.len() {
            let seed = [addr(0)];
            match self.run(i, |e, now| e.bootstrap(now, &seed), Duration::from_secs(30)) {
                Outcome::Bootstrap(b) => assert_eq!(b.seeds_reached, 1),
                o => panic!("unexpected {o:?}"),
            }
        }
    }

    fn get(&mut self, node: usize, key: Key) -> Option<Value> {
        match self.run(node, |e, now| e.get(now, key), Duration::from_secs(60)) {
            Outcome::Get(g) => g.value,
            o => panic!("unexpected {o:?}"),
        }
    }

    fn put(&mut self, node: usize, key: Key, value: Value) -> PutOutcome {
        match self.run(node, |e, now| e.put(now, key, value), Duration::from_secs(60)) {
            Outcome::Put(p) => p,
            o => panic!("unexpected {o:?}"),
        }
    }
}

fn small(_: usize) -> Config {
    Config { k: 8, ..Config::default() }
}

/// A network of ten nodes that all know each other, and `key` held by one
/// of them only (a raw store, so nobody republishes it). Returns the net,
/// the holder and a reader that is neither the holder nor the storer.
/// The holder is the third closest to the key: a lookup's first alpha = 3
/// queries then reach two closer nodes that lack the value and answer
/// before the holder, so there is a node to cache at (were the holder the
/// closest, its answer would end the lookup before any other came back).
fn held_by_one(key: Key, value: Value) -> (Net, usize, usize) {
    let mut net = Net::new(10, |_| Config::default());
    net.bootstrap_all();
    let target = net.nodes[0].closest(&key, 3)[2];
    let call = Call::Store { sender: net.nodes[0].id(), key, value };
    let _ = net.run(0, |e, now| e.call(now, target.addr, call), Duration::from_secs(10));
    let holder = net.by_addr[&target.addr];
    let reader = (1..10).rev().find(|&i| i != holder).unwrap_or_default();
    (net, holder, reader)
}

fn holders(net: &Net, key: &Key) -> Vec<usize> {
    (0..net.nodes.len()).filter(|&i| net.nodes[i].store().get(key, net.now).is_some()).collect()
}

mod bootstrap;
mod caching;
mod commands;
mod config;
mod dead_contacts;
mod fast_path;
mod freshness;
mod hand;
mod handover;
mod join_fill;
mod joining;
mod lazy_checks;
mod leftovers;
mod lost_return;
mod maintenance;
mod named_replies;
mod nearer;
mod newest;
mod op_failures;
mod peers;
mod provider_choice;
mod provider_handover;
mod provider_memory;
mod provider_ops;
mod provider_prints;
mod provider_racers;
mod provider_sizer;
mod provider_spare;
mod providers;
mod put_reuse;
mod reach;
mod reach_silence;
mod relay;
mod requests;
mod serving;
mod strangers;
mod thin_client;
mod tunnel;
mod unpublish;

use hand::*;
