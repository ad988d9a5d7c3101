//! Engines wired together by an in-memory, zero-latency network with a
//! hand-advanced clock.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use super::*;
use crate::wire::Value;

struct Net {
    nodes: Vec<Engine>,
    by_addr: HashMap<SocketAddr, usize>,
    down: HashSet<usize>,
    now: Time,
    events: Vec<(usize, Event)>,
}

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, (i >> 8) as u8, i as u8, 1], 8468))
}

impl Net {
    fn new(n: usize, config: impl Fn(usize) -> Config) -> Net {
        let mut net = Net {
            nodes: Vec::new(),
            by_addr: HashMap::new(),
            down: HashSet::new(),
            now: Time::ZERO,
            events: Vec::new(),
        };
        for i in 0..n {
            net.add(config(i));
        }
        net
    }

    fn add(&mut self, mut config: Config) -> usize {
        let i = self.nodes.len();
        config.rng_seed = i as u64;
        let id = NodeId::digest(&i.to_be_bytes());
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
            if let Some(&to) = self.by_addr.get(&t.to) {
                if !self.down.contains(&to) {
                    self.nodes[to].handle_datagram(self.now, addr(from), &t.payload);
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

#[test]
fn every_node_gets_what_any_node_puts() {
    let mut net = Net::new(60, small);
    net.bootstrap_all();
    for i in 0..20 {
        let key = NodeId::for_key(&format!("worker:w{i}"));
        let p = net.put(i * 3, key, Value::Str(format!("v{i}")));
        assert!(p.stored >= 7, "only {} stored", p.stored);
    }
    for i in 0..20 {
        let key = NodeId::for_key(&format!("worker:w{i}"));
        for reader in [0, 17, 59, (i * 7) % 60] {
            assert_eq!(net.get(reader, key), Some(Value::Str(format!("v{i}"))), "reader {reader} key {i}");
        }
    }
    assert_eq!(net.get(5, NodeId::for_key("missing")), None);
}

#[test]
fn bootstrap_with_no_reachable_seed_reports_zero() {
    let mut net = Net::new(2, small);
    net.down.insert(0);
    match net.run(1, |e, now| e.bootstrap(now, &[addr(0)]), Duration::from_secs(30)) {
        Outcome::Bootstrap(b) => assert_eq!((b.seeds_reached, b.table_size), (0, 0)),
        o => panic!("unexpected {o:?}"),
    }
}

#[test]
fn malformed_datagrams_are_counted_and_change_nothing() {
    let mut net = Net::new(3, small);
    net.bootstrap_all();
    let e = &mut net.nodes[0];
    let before = e.routing().len();
    for junk in [&b""[..], &[0u8; 21], &[2u8; 40], &[0u8; 30], &[1u8; 25]] {
        e.handle_datagram(Time::ZERO, addr(99), junk);
    }
    assert_eq!(e.routing().len(), before);
    assert!(e.stats().malformed >= 3);
    assert!(e.poll_transmit().is_none());
}

#[test]
fn ping_and_stun_report_peer_and_address() {
    let mut net = Net::new(2, small);
    match net.run(1, |e, now| e.ping(now, addr(0)), Duration::from_secs(10)) {
        Outcome::Ping(Some(r)) => assert_eq!(r.id, net.nodes[0].id()),
        o => panic!("unexpected {o:?}"),
    }
    match net.run(1, |e, now| e.stun(now, addr(0)), Duration::from_secs(10)) {
        Outcome::Stun(Some(a)) => assert_eq!(a, addr(1)),
        o => panic!("unexpected {o:?}"),
    }
    net.down.insert(0);
    match net.run(1, |e, now| e.ping(now, addr(0)), Duration::from_secs(10)) {
        Outcome::Ping(None) => {}
        o => panic!("unexpected {o:?}"),
    }
}

#[test]
fn records_expire_on_schedule() {
    let mut net = Net::new(10, |_| Config { k: 4, record_ttl: Duration::from_secs(60), ..Config::default() });
    net.bootstrap_all();
    let key = NodeId::for_key("short-lived");
    // A raw store from outside the publisher path: nobody republishes it.
    let target = net.nodes[0].closest(&key, 1)[0];
    let call = Call::Store { sender: net.nodes[0].id(), key, value: Value::Int(1) };
    let _ = net.run(0, |e, now| e.call(now, target.addr, call), Duration::from_secs(10));
    let holder = net.by_addr[&target.addr];
    assert!(net.nodes[holder].store().get(&key, net.now).is_some());
    net.advance(Duration::from_secs(61));
    assert!(net.nodes[holder].store().get(&key, net.now).is_none());
    assert_eq!(net.nodes[holder].store().len(), 0);
}

#[test]
fn republished_record_survives_replacement_of_its_holders() {
    let cfg = |_| Config {
        k: 4,
        republish_interval: Duration::from_secs(60),
        replicate_interval: Duration::from_secs(60),
        refresh_interval: Duration::from_secs(60),
        record_ttl: Duration::from_secs(300),
        ..Config::default()
    };
    let mut net = Net::new(30, cfg);
    net.bootstrap_all();
    let key = NodeId::for_key("survivor");
    net.put(0, key, Value::Str("alive".into()));
    let holders: Vec<usize> = (1..30).filter(|&i| net.nodes[i].store().get(&key, net.now).is_some()).collect();
    assert!(!holders.is_empty());
    for h in &holders {
        net.down.insert(*h);
    }
    // Newcomers take their place; the publisher's republish reaches them.
    for _ in 0..8 {
        let i = net.add(cfg(0));
        let _ = net.run(i, |e, now| e.bootstrap(now, &[addr(0)]), Duration::from_secs(30));
    }
    net.advance(Duration::from_secs(200));
    let reader = 31;
    assert_eq!(net.get(reader, key), Some(Value::Str("alive".into())));
}

#[test]
fn newcomer_closest_to_a_key_receives_it() {
    let mut net = Net::new(20, |_| Config { k: 3, ..Config::default() });
    net.bootstrap_all();
    // Pick a key, then add a node whose id is the key itself: the closest possible.
    let key = NodeId::for_key("handover");
    net.put(0, key, Value::Int(7));
    let i = net.nodes.len();
    net.nodes.push(Engine::new(key, Config { k: 3, ..Config::default() }, net.now));
    net.by_addr.insert(addr(i), i);
    let _ = net.run(i, |e, now| e.bootstrap(now, &[addr(0)]), Duration::from_secs(30));
    net.advance(Duration::from_secs(10));
    assert_eq!(net.nodes[i].store().get(&key, net.now).map(|r| r.value.clone()), Some(Value::Int(7)));
    assert!(net.nodes.iter().map(|e| e.stats().handovers).sum::<u64>() >= 1);
}

#[test]
fn same_inputs_give_same_outputs() {
    let trace = || {
        let mut net = Net::new(15, small);
        net.bootstrap_all();
        net.put(3, NodeId::for_key("k"), Value::Int(1));
        net.nodes.iter().map(|e| (e.routing().len(), e.store().len(), e.stats().sent)).collect::<Vec<_>>()
    };
    assert_eq!(trace(), trace());
}

#[test]
fn values_too_big_for_a_store_request_are_refused_up_front() {
    let mut net = Net::new(3, small);
    net.bootstrap_all();
    let big = Value::Str("x".repeat(crate::store::MAX_VALUE_BYTES));
    let p = net.put(1, NodeId::for_key("big"), big);
    assert!(matches!(p.rejected, Some(crate::store::StoreError::TooLarge { .. })), "{p:?}");
    assert_eq!((p.stored, p.attempted, p.stored_locally), (0, 0, false));
    assert_eq!(net.nodes[1].published().count(), 0);
    let fits = Value::Str("x".repeat(crate::store::MAX_VALUE_BYTES - 3));
    let p = net.put(1, NodeId::for_key("fits"), fits);
    assert_eq!((p.rejected, p.stored), (None, 2));
}

#[test]
fn a_silent_hello_is_asked_again_later_not_never() {
    let mut e = Engine::new(NodeId([1; 20]), small(0), Time::ZERO);
    let peer = NodeId([2; 20]);
    let ping_from_peer = |e: &mut Engine, now: Time| {
        let call = Call::Ping { sender: peer };
        let d = Datagram::Request { id: MessageId([now.as_secs() as u8; 20]), call }.encode().unwrap();
        e.handle_datagram(now, addr(2), &d);
        let mut hellos = 0;
        while let Some(t) = e.poll_transmit() {
            if let Ok(Datagram::Request { call: Call::Other { name, .. }, .. }) = crate::wire::decode(&t.payload) {
                hellos += usize::from(name == HELLO);
            }
        }
        hellos
    };
    assert_eq!(ping_from_peer(&mut e, Time::ZERO), 1, "first contact is asked");
    e.handle_timeout(Time::from_secs(3));
    assert_eq!(e.peer_kind(&peer), PeerKind::Base);
    assert_eq!(ping_from_peer(&mut e, Time::from_secs(60)), 0, "not asked again so soon");
    assert_eq!(ping_from_peer(&mut e, Time::from_secs(3) + REPROBE_AFTER), 1, "asked again later");
}

#[test]
fn bootstrap_does_not_wait_for_dead_seeds() {
    let mut net = Net::new(4, small);
    let _ = net.run(1, |e, now| e.bootstrap(now, &[addr(3)]), Duration::from_secs(10));
    net.down.insert(0);
    let started = net.now;
    match net.run(2, |e, now| e.bootstrap(now, &[addr(0), addr(1)]), Duration::from_secs(30)) {
        Outcome::Bootstrap(b) => assert_eq!((b.seeds_tried, b.seeds_reached), (2, 1)),
        o => panic!("unexpected {o:?}"),
    }
    let took = net.now.saturating_since(started);
    assert!(took < net.nodes[2].config().rpc_timeout, "bootstrap waited {took:?} for a dead seed");
    assert!(net.nodes[2].routing().len() >= 2);
}
