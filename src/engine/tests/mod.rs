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
    let i = net.add_with_id(key, Config { k: 3, ..Config::default() });
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

// ---- Freshness rules (commit 00f80b4) ----

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

#[test]
fn get_caches_the_value_at_an_extended_peer_for_cache_ttl_only() {
    let key = NodeId::for_key("cached");
    let (mut net, holder, reader) = held_by_one(key, Value::Int(1));
    assert_eq!(holders(&net, &key), vec![holder]);
    assert_eq!(net.get(reader, key), Some(Value::Int(1)));
    let cached: Vec<usize> = holders(&net, &key).into_iter().filter(|&i| i != holder).collect();
    assert_eq!(cached.len(), 1, "exactly one cached copy: {cached:?}");
    let at = cached[0];
    assert_eq!(net.nodes[reader].peer_kind(&net.nodes[at].id()), PeerKind::Extended);
    // Sent with its lifetime (kadmesh_store_ttl): a plain store would live record_ttl.
    let r = net.nodes[at].store().get(&key, net.now).unwrap();
    assert_eq!(Config::default().cache_ttl, Duration::from_secs(60));
    assert_eq!(r.expires_at, r.stored_at + net.nodes[reader].config().cache_ttl);
    // Nobody refreshes a cached copy: it is gone after cache_ttl, the holder's is not.
    net.advance(Duration::from_secs(61));
    assert_eq!(holders(&net, &key), vec![holder]);
}

#[test]
fn get_leaves_no_cached_copy_at_a_stock_peer() {
    let key = NodeId::for_key("not cached");
    let (mut net, holder, reader) = held_by_one(key, Value::Int(1));
    // As if none of the reader's contacts had answered kadmesh_hello. All
    // hellos were answered during bootstrap, so nothing re-marks them now.
    let set_all = |net: &mut Net, kind: PeerKind| {
        let ids: Vec<NodeId> = net.nodes[reader].routing().contacts().map(|c| c.id).collect();
        for id in ids {
            net.nodes[reader].peers.insert(id, kind);
        }
    };
    set_all(&mut net, PeerKind::Base);
    assert_eq!(net.get(reader, key), Some(Value::Int(1)));
    assert_eq!(holders(&net, &key), vec![holder], "a stock peer got a cached copy");
    // Control: the very same get with the same peers as Extended does cache,
    // so the lookup above did have a node to cache at.
    set_all(&mut net, PeerKind::Extended);
    assert_eq!(net.get(reader, key), Some(Value::Int(1)));
    assert_eq!(holders(&net, &key).len(), 2);
}

#[test]
fn get_leaves_no_cached_copy_of_a_value_too_big_to_carry_its_lifetime() {
    // Encoded within 17 bytes of the store limit: kadmesh_store_ttl cannot
    // carry it, and a plain store would make the cache live record_ttl.
    let big = Value::Str("x".repeat(crate::store::MAX_VALUE_BYTES - 10));
    let key = NodeId::for_key("big cached");
    let (mut net, holder, reader) = held_by_one(key, big.clone());
    assert_eq!(holders(&net, &key), vec![holder]);
    assert_eq!(net.get(reader, key), Some(big));
    assert_eq!(holders(&net, &key), vec![holder], "a plain-store cache was left");
}

/// `[first, 0, ..., 0, last]`: ids placed by hand around a few keys.
fn id_at(first: u8, last: u8) -> NodeId {
    let mut b = [0; 20];
    b[0] = first;
    b[19] = last;
    NodeId(b)
}

/// The local node of the hand-driven tests below, and its five contacts:
/// three next to `id_at(0, 0)`, two next to the local node. Around each key
/// the number of contacts closer than the local node is then known:
/// - `id_at(0, 0)`: 3 closer (the `0, i` ones);
/// - `id_at(0x80, 3)`: 2 closer (`0x80, 1` at distance 2, `0x80, 2` at 1; we are at 3);
/// - `id_at(0x80, 5)`: 1 closer (`0x80, 1` at 4; `0x80, 2` is at 7; we are at 5).
const LOCAL: (u8, u8) = (0x80, 0);
const CONTACTS: [(u8, u8); 5] = [(0, 1), (0, 2), (0, 3), (0x80, 1), (0x80, 2)];

/// An engine at `LOCAL` that has heard a ping from each of `CONTACTS`
/// (contact `i` at `addr(i + 1)`), its replies and hellos drained.
fn engine_with_contacts(config: Config) -> Engine {
    engine_knowing(config, CONTACTS.len())
}

/// Like [`engine_with_contacts`], knowing only the first `n` of `CONTACTS`.
fn engine_knowing(config: Config, n: usize) -> Engine {
    let mut e = Engine::new(id_at(LOCAL.0, LOCAL.1), config, Time::ZERO);
    for (i, &(first, last)) in CONTACTS.iter().enumerate().take(n) {
        // Known and verified, as if each had answered one of our queries
        // (see `routing::freshness`), without an rtt sample.
        e.learn_answered(Time::ZERO, Contact::new(id_at(first, last), addr(i + 1)));
    }
    assert_eq!(e.routing().len(), n);
    sent_requests(&mut e);
    e
}

/// The requests `e` has queued, decoded (replies are dropped).
fn sent_requests(e: &mut Engine) -> Vec<Call> {
    let mut calls = Vec::new();
    while let Some(t) = e.poll_transmit() {
        if let Ok(Datagram::Request { call, .. }) = crate::wire::decode(&t.payload) {
            calls.push(call);
        }
    }
    calls
}

/// Contact 0 asks `e` for `key` at `now`; returns the reply.
fn ask_find_value(e: &mut Engine, now: Time, key: Key) -> crate::wire::FindValueReply {
    let call = Call::FindValue { sender: id_at(CONTACTS[0].0, CONTACTS[0].1), key };
    crate::wire::parse_find_value_reply(&reply_to(e, now, 0, call)).unwrap()
}

/// Contact `asker` sends `e` the request `call` at `now`; returns the body of `e`'s reply.
fn reply_to(e: &mut Engine, now: Time, asker: usize, call: Call) -> Value {
    let msg = MessageId([0xaa; 20]);
    e.handle_datagram(now, addr(asker + 1), &Datagram::Request { id: msg, call }.encode().unwrap());
    while let Some(t) = e.poll_transmit() {
        if let Ok(Datagram::Response { id, body }) = crate::wire::decode(&t.payload) {
            if id == msg {
                return body;
            }
        }
    }
    panic!("no reply");
}

#[test]
fn only_a_node_among_the_k_closest_re_replicates() {
    let cfg = Config { k: 3, replicate_interval: Duration::from_secs(60), ..Config::default() };
    let mut e = engine_with_contacts(cfg);
    // We are third closest to `third` (in the k = 3 closest) and fourth to
    // `far` (3 contacts closer): both held since t = 0, neither published.
    let (third, far) = (id_at(0x80, 3), id_at(0, 0));
    for key in [third, far] {
        e.store.put(key, Value::Int(1), None, Time::ZERO, Duration::from_secs(3600)).unwrap();
    }
    // Past replicate_interval: the sweep starts a replication lookup per eligible key.
    e.handle_timeout(Time::from_secs(61));
    let looked_up: Vec<Key> = sent_requests(&mut e)
        .into_iter()
        .filter_map(|c| match c {
            Call::FindNode { key, .. } => Some(key),
            _ => None,
        })
        .collect();
    assert!(looked_up.contains(&third), "the third closest must re-replicate: {looked_up:?}");
    assert!(!looked_up.contains(&far), "a node with k closer contacts re-replicated");
    // The far copy is dropped: we no longer serve it and must not spread it.
    assert!(e.store().get(&far, Time::from_secs(61)).is_none());
    assert!(e.store().get(&third, Time::from_secs(61)).is_some());
}

#[test]
fn old_copies_are_served_only_near_the_key_or_by_their_publisher() {
    use crate::wire::FindValueReply as Reply;
    // k = 4: `third` is among the k closest but not the k/2 = 2 closest;
    // `close` is among the 2 closest; `far` is far but we publish it.
    let mut e = engine_with_contacts(Config { k: 4, ..Config::default() });
    let (third, close, far) = (id_at(0x80, 3), id_at(0x80, 5), id_at(0, 0));
    for key in [third, close, far] {
        e.store.put(key, Value::Int(7), None, Time::ZERO, Duration::from_secs(3600)).unwrap();
    }
    e.restore_published(Time::ZERO, vec![(far, Value::Int(7))], Duration::from_secs(600));
    assert_eq!(e.config().cache_ttl, Duration::from_secs(60));

    // Younger than cache_ttl: served wherever it is held.
    assert_eq!(ask_find_value(&mut e, Time::from_secs(30), third), Reply::Value(Value::Int(7)));
    // Older: `third` points the asker at closer nodes instead.
    let late = Time::from_secs(61);
    assert!(matches!(ask_find_value(&mut e, late, third), Reply::Nodes(n) if !n.is_empty()));
    assert_eq!(ask_find_value(&mut e, late, close), Reply::Value(Value::Int(7)));
    assert_eq!(ask_find_value(&mut e, late, far), Reply::Value(Value::Int(7)));
}

#[test]
fn local_get_skips_an_old_copy_held_far_from_the_key() {
    let mut e = engine_with_contacts(Config { k: 4, ..Config::default() });
    let (third, close) = (id_at(0x80, 3), id_at(0x80, 5));
    for key in [third, close] {
        e.store.put(key, Value::Int(7), None, Time::ZERO, Duration::from_secs(3600)).unwrap();
    }
    let late = Time::from_secs(61);
    // Near the key: answered from the store at once.
    let q = e.get(late, close);
    match e.poll_event() {
        Some(Event { id, outcome: Outcome::Get(g) }) if id == q => assert!(g.local && g.value == Some(Value::Int(7))),
        other => panic!("expected a local answer, got {other:?}"),
    }
    assert!(sent_requests(&mut e).is_empty());
    // Old and outside the k/2 closest: a lookup instead of the local copy.
    let _ = e.get(late, third);
    assert!(e.poll_event().is_none(), "answered locally from an old, far copy");
    let asked = sent_requests(&mut e);
    assert!(asked.iter().any(|c| matches!(c, Call::FindValue { key, .. } if *key == third)), "{asked:?}");
}

#[test]
fn restore_record_keeps_stored_at_and_caps_the_remaining_lifetime() {
    let cfg = Config { record_ttl: Duration::from_secs(3600), ..Config::default() };
    let mut e = Engine::new(id_at(LOCAL.0, LOCAL.1), cfg, Time::ZERO);
    let now = Time::from_secs(10_000);
    let saved = |n: u8, stored_at: u64, expires_at: u64| crate::store::Record {
        key: id_at(n, n),
        value: Value::Int(n.into()),
        publisher: None,
        stored_at: Time::from_secs(stored_at),
        expires_at: Time::from_secs(expires_at),
        size: 1,
    };
    for r in [
        saved(1, 9_000, 11_000),  // plain: kept as saved
        saved(2, 9_500, 90_000),  // lives longer than record_ttl from now: capped
        saved(3, 12_000, 12_500), // stored "after" now (clock stepped back): clamped
        saved(4, 5_000, 10_000),  // expired exactly now
        saved(5, 5_000, 9_000),   // expired while down
    ] {
        e.restore_record(now, r);
    }
    let times = |n: u8| e.store().get(&id_at(n, n), now).map(|r| (r.stored_at.as_secs(), r.expires_at.as_secs()));
    assert_eq!(times(1), Some((9_000, 11_000)));
    assert_eq!(times(2), Some((9_500, 13_600)));
    assert_eq!(times(3), Some((10_000, 12_500)));
    // Not restored at all, not even as a dead entry awaiting expiry.
    assert_eq!(e.store().len(), 3);
}

// ---- Lifetime fixes: store_ttl never shortens, idle maintenance, rounding ----

/// Contact 0 sends `e` a `kadmesh_store_ttl` for `key` with a lifetime of
/// `secs` at `now`; returns the store reply.
fn send_store_ttl(e: &mut Engine, now: Time, key: Key, value: Value, secs: i64) -> bool {
    let sender = Value::Bin(id_at(CONTACTS[0].0, CONTACTS[0].1).0.to_vec());
    let args = vec![sender, Value::Bin(key.0.to_vec()), value, Value::Int(secs)];
    let call = Call::Other { name: STORE_TTL.into(), args };
    crate::wire::parse_store_reply(&reply_to(e, now, 0, call)).unwrap()
}

#[test]
fn a_short_store_ttl_never_shortens_the_copy_held() {
    let mut e = engine_with_contacts(Config::default());
    let day = Duration::from_secs(24 * 3600);
    let (held, fresh) = (id_at(0x80, 3), id_at(0x80, 5));
    e.store.put(held, Value::Int(1), None, Time::ZERO, day).unwrap();
    let old = e.store().get(&held, Time::ZERO).unwrap().expires_at;
    // A cache copy (or a replica near its end) of the same key, 60 s to live.
    let now = Time::from_secs(100);
    assert!(send_store_ttl(&mut e, now, held, Value::Int(2), 60));
    let r = e.store().get(&held, now).unwrap();
    assert_eq!(r.value, Value::Int(2), "the value is replaced");
    assert!(r.expires_at >= old, "cut from {old:?} to {:?}", r.expires_at);
    assert!(e.store().get(&held, now + Duration::from_secs(3600)).is_some());
    // A key not held takes the lifetime it is sent with.
    assert!(send_store_ttl(&mut e, now, fresh, Value::Int(3), 60));
    assert_eq!(e.store().get(&fresh, now).unwrap().expires_at, now + Duration::from_secs(60));
    e.handle_timeout(now + Duration::from_secs(60));
    assert!(e.store().get(&fresh, now + Duration::from_secs(60)).is_none());
    assert!(e.store().get(&held, now + Duration::from_secs(60)).is_some());
}

#[test]
fn a_replication_that_reaches_nobody_keeps_the_old_stored_at() {
    let cfg = Config { replicate_interval: Duration::from_secs(60), ..Config::default() };
    let start = Time::from_secs(10_000);
    // No contacts at all: every lookup ends at once, empty.
    let mut e = Engine::new(id_at(LOCAL.0, LOCAL.1), cfg, start);
    let key = id_at(0x80, 3);
    let record = crate::store::Record {
        key,
        value: Value::Int(1),
        publisher: None,
        stored_at: Time::from_secs(5_000),
        expires_at: Time::from_secs(50_000),
        size: 1,
    };
    e.restore_record(start, record);
    // Past replicate_interval: the sweep runs the replicate task.
    let later = start + Duration::from_secs(61);
    e.handle_timeout(later);
    assert_eq!(e.stats().republished, 1, "the replicate task did not run");
    assert_eq!(e.ops_in_progress(), 0);
    let r = e.store().get(&key, later).unwrap();
    assert_eq!(r.stored_at, Time::from_secs(5_000), "an unreplicated record looks just replicated");
    assert_eq!(r.expires_at, Time::from_secs(50_000));
    // A user's put with nobody to store at still keeps the local copy.
    let mine = id_at(0x80, 5);
    let q = e.put(later, mine, Value::Int(2));
    match e.poll_event() {
        Some(Event { id, outcome: Outcome::Put(p) }) if id == q => {
            assert_eq!((p.stored, p.attempted, p.stored_locally), (0, 0, true))
        }
        other => panic!("expected a put outcome, got {other:?}"),
    }
    assert_eq!(e.store().get(&mine, later).map(|r| r.stored_at), Some(later));
}

#[test]
fn a_sub_second_lifetime_goes_on_the_wire_as_one_second() {
    let cfg = Config { cache_ttl: Duration::from_millis(500), ..Config::default() };
    let mut e = engine_with_contacts(cfg);
    let peer = id_at(CONTACTS[0].0, CONTACTS[0].1);
    e.peers.insert(peer, PeerKind::Extended);
    let key = id_at(0x80, 3);
    let secs = |ttl: Duration| match e.store_call(peer, key, Value::Int(1), Some(ttl)) {
        Call::Other { name, args } if name == STORE_TTL => args[3].clone(),
        other => panic!("expected {STORE_TTL}, got {other:?}"),
    };
    assert_eq!(secs(e.config().cache_ttl), Value::Int(1));
    assert_eq!(secs(Duration::from_millis(1500)), Value::Int(2));
    assert_eq!(secs(Duration::from_secs(60)), Value::Int(60));
    // The receiver keeps the copy for a moment instead of taking it as expired.
    let call = e.store_call(peer, key, Value::Int(1), Some(e.config().cache_ttl));
    let mut receiver = Engine::new(peer, Config::default(), Time::ZERO);
    let now = Time::from_secs(10);
    let d = Datagram::Request { id: MessageId([0xcc; 20]), call }.encode().unwrap();
    receiver.handle_datagram(now, addr(9), &d);
    assert_eq!(receiver.store().get(&key, now).map(|r| r.expires_at), Some(now + Duration::from_secs(1)));
}

// ---- Dead contacts (commit 15347e3): suspects, timeouts, verify pings, handover memory ----

/// The id of `CONTACTS[i]` (at `addr(i + 1)`).
fn contact_id(i: usize) -> NodeId {
    id_at(CONTACTS[i].0, CONTACTS[i].1)
}

fn known(i: usize) -> Contact {
    Contact::new(contact_id(i), addr(i + 1))
}

/// The requests `e` has queued with their destinations and message ids (replies are dropped).
fn sent_to(e: &mut Engine) -> Vec<(SocketAddr, MessageId, Call)> {
    let mut out = Vec::new();
    while let Some(t) = e.poll_transmit() {
        if let Ok(Datagram::Request { id, call }) = crate::wire::decode(&t.payload) {
            out.push((t.to, id, call));
        }
    }
    out
}

/// Where the `find_node` requests among `sent` went, in order.
fn find_nodes_to(sent: &[(SocketAddr, MessageId, Call)]) -> Vec<SocketAddr> {
    sent.iter().filter(|(_, _, c)| matches!(c, Call::FindNode { .. })).map(|(to, _, _)| *to).collect()
}

/// `from` answers `e`'s request `id`.
fn answer(e: &mut Engine, now: Time, from: SocketAddr, id: MessageId, body: Value) {
    e.handle_datagram(now, from, &Datagram::Response { id, body }.encode().unwrap());
}

/// Contact `i` pings `e` (we hear from it); whatever `e` sends back or asks is returned.
fn ping_from(e: &mut Engine, now: Time, i: usize) -> Vec<(SocketAddr, MessageId, Call)> {
    let call = Call::Ping { sender: contact_id(i) };
    e.handle_datagram(now, addr(i + 1), &Datagram::Request { id: MessageId([0xdd; 20]), call }.encode().unwrap());
    sent_to(e)
}

/// Contact `asker` asks `e` for the nodes closest to `key`; returns the ids listed, sorted.
fn ask_find_node(e: &mut Engine, now: Time, asker: usize, key: Key) -> Vec<NodeId> {
    let call = Call::FindNode { sender: contact_id(asker), key };
    let body = reply_to(e, now, asker, call);
    let mut ids: Vec<NodeId> = crate::wire::parse_find_node_reply(&body).unwrap().into_iter().map(|c| c.id).collect();
    ids.sort();
    ids
}

fn is_suspect(e: &Engine, id: &NodeId) -> bool {
    e.routing().buckets().iter().find_map(|b| b.get(id)).is_some_and(|entry| entry.suspect)
}

fn sorted(mut ids: Vec<NodeId>) -> Vec<NodeId> {
    ids.sort();
    ids
}

#[test]
fn find_node_replies_leave_out_suspect_and_timed_out_contacts() {
    use crate::wire::FindValueReply as Reply;
    let mut e = engine_with_contacts(Config::default());
    let key = id_at(0, 0);
    // Contact 0 asks: everyone else is listed.
    let everyone: Vec<NodeId> = sorted((1..CONTACTS.len()).map(contact_id).collect());
    assert_eq!(ask_find_node(&mut e, Time::from_secs(1), 0, key), everyone);
    let (suspect, failed) = (contact_id(1), contact_id(3));
    e.routing.mark_suspect(&suspect);
    assert!(!e.routing.record_failure(&failed, e.config().max_failures));
    let rest = sorted(vec![contact_id(2), contact_id(4)]);
    assert_eq!(ask_find_node(&mut e, Time::from_secs(2), 0, key), rest);
    // A find_value that misses points the asker at the same contacts.
    match ask_find_value(&mut e, Time::from_secs(3), key) {
        Reply::Nodes(n) => assert_eq!(sorted(n.into_iter().map(|c| c.id).collect()), rest),
        other => panic!("expected nodes, got {other:?}"),
    }
    // Both are still ours, and listed again once they are heard from.
    assert!(e.routing().contains(&suspect) && e.routing().contains(&failed));
    ping_from(&mut e, Time::from_secs(4), 1);
    ping_from(&mut e, Time::from_secs(4), 3);
    assert_eq!(ask_find_node(&mut e, Time::from_secs(5), 0, key), everyone);
}

/// An engine knowing contact 0 only, whose `find_node` through it went
/// unanswered until `rpc_timeout`; returns the engine and the message id of
/// the one ping it then sent to contact 0.
fn timed_out_once() -> (Engine, MessageId) {
    let mut e = engine_knowing(Config::default(), 1);
    let peer = contact_id(0);
    let _ = e.find_node(Time::ZERO, id_at(0, 0));
    assert_eq!(find_nodes_to(&sent_to(&mut e)), vec![addr(1)]);
    // The lookup's stall (1 s) and the hello's timeout (2 s) are not request timeouts.
    e.handle_timeout(Time::from_secs(1));
    e.handle_timeout(Time::from_secs(2));
    assert!(sent_to(&mut e).is_empty());
    assert_eq!(e.routing().failures(&peer), Some(0));
    let timeout = e.config().rpc_timeout;
    e.handle_timeout(Time::ZERO + timeout);
    assert_eq!(e.routing().failures(&peer), Some(1));
    match &sent_to(&mut e)[..] {
        [(to, id, Call::Ping { .. })] if *to == addr(1) => (e, *id),
        other => panic!("expected one ping to the contact that timed out, got {other:?}"),
    }
}

#[test]
fn a_timed_out_contact_that_answers_the_check_ping_stays_with_no_failures() {
    let (mut e, ping) = timed_out_once();
    let peer = contact_id(0);
    answer(&mut e, Time::from_secs(6), addr(1), ping, Value::Bin(peer.0.to_vec()));
    assert!(e.routing().contains(&peer));
    assert_eq!(e.routing().failures(&peer), Some(0));
    assert!(!is_suspect(&e, &peer));
    // Nothing is left to time out: it stays, and nothing more is sent.
    e.handle_timeout(Time::from_secs(20));
    assert!(e.routing().contains(&peer));
    assert_eq!(e.routing().failures(&peer), Some(0));
    assert!(sent_to(&mut e).is_empty());
}

#[test]
fn a_timed_out_contact_whose_check_ping_times_out_too_is_evicted() {
    let (mut e, _) = timed_out_once();
    let peer = contact_id(0);
    assert_eq!(e.config().max_failures, 2);
    let deadline = Time::ZERO + e.config().rpc_timeout * 2;
    e.handle_timeout(deadline - Duration::from_millis(1));
    assert!(e.routing().contains(&peer));
    e.handle_timeout(deadline);
    assert!(!e.routing().contains(&peer));
    assert!(e.routing().is_empty());
    assert!(sent_to(&mut e).is_empty(), "a failed check ping is not checked again");
}

#[test]
fn a_new_lookup_does_not_start_from_a_contact_that_timed_out() {
    let mut e = engine_with_contacts(Config::default());
    let target = id_at(0, 0);
    // Contact 0 is the closest to the target; contacts 1 and 2 follow, then 3.
    assert!(!e.routing.record_failure(&contact_id(0), e.config().max_failures));
    let _ = e.find_node(Time::from_secs(1), target);
    assert_eq!(find_nodes_to(&sent_to(&mut e)), vec![addr(2), addr(3), addr(4)]);
    // Once it answers again, the next lookup starts from it.
    ping_from(&mut e, Time::from_secs(1), 0);
    let _ = e.find_node(Time::from_secs(1), target);
    assert_eq!(find_nodes_to(&sent_to(&mut e)), vec![addr(1), addr(2), addr(3)]);
}

#[test]
fn a_lookup_still_starts_from_timed_out_contacts_when_it_knows_no_other() {
    let mut e = engine_knowing(Config::default(), 1);
    assert!(!e.routing.record_failure(&contact_id(0), e.config().max_failures));
    let _ = e.find_node(Time::from_secs(1), id_at(0, 0));
    assert_eq!(find_nodes_to(&sent_to(&mut e)), vec![addr(1)]);
}

#[test]
fn a_lookup_does_not_follow_pointers_to_a_contact_that_timed_out() {
    let mut e = engine_with_contacts(Config::default());
    let dead = known(0);
    assert!(!e.routing.record_failure(&dead.id, e.config().max_failures));
    let now = Time::from_secs(1);
    let q = e.find_node(now, id_at(0, 0));
    // Everyone asked answers at once, naming the dead contact: the closest to the target.
    let mut asked = Vec::new();
    let mut pending = sent_to(&mut e);
    while let Some((to, id, call)) = pending.pop() {
        if matches!(call, Call::FindNode { .. }) {
            asked.push(to);
            answer(&mut e, now, to, id, crate::wire::contacts_value(&[dead]));
            pending.extend(sent_to(&mut e));
        }
    }
    asked.sort();
    assert_eq!(asked, vec![addr(2), addr(3), addr(4), addr(5)]);
    match e.poll_event() {
        Some(Event { id, outcome: Outcome::FindNode { closest, .. } }) if id == q => {
            assert_eq!(closest.len(), 4);
            assert!(!closest.contains(&dead));
        }
        other => panic!("expected the lookup to finish, got {other:?}"),
    }
}

#[test]
fn a_stalled_query_marks_the_contact_suspect() {
    let mut e = engine_with_contacts(Config::default());
    let _ = e.find_node(Time::ZERO, id_at(0, 0));
    let sent = sent_to(&mut e);
    assert_eq!(find_nodes_to(&sent), vec![addr(1), addr(2), addr(3)]);
    // Contacts 1 and 2 answer; contact 0 stays silent. Contacts 3 and 4 are asked next.
    for (to, id, _) in &sent[1..] {
        answer(&mut e, Time::from_millis(100), *to, *id, crate::wire::contacts_value(&[]));
    }
    assert_eq!(find_nodes_to(&sent_to(&mut e)), vec![addr(4), addr(5)]);
    // No rtt sample when the lookup began: it stalls on a query after lookup_stall (1 s).
    e.handle_timeout(Time::from_millis(999));
    assert!(!is_suspect(&e, &contact_id(0)));
    e.handle_timeout(Time::from_millis(1000));
    assert!(is_suspect(&e, &contact_id(0)));
    // Only suspect: still ours, no timeout recorded, nobody else marked.
    assert!(e.routing().contains(&contact_id(0)));
    assert_eq!(e.routing().failures(&contact_id(0)), Some(0));
    assert!((1..CONTACTS.len()).all(|i| !is_suspect(&e, &contact_id(i))));
    // Others are no longer pointed at it.
    let listed = ask_find_node(&mut e, Time::from_millis(1000), 1, id_at(0, 0));
    assert_eq!(listed, sorted(vec![contact_id(2), contact_id(3), contact_id(4)]));
}

/// Contact `i` pings `e` and answers the check ping `e` sends back (a
/// requester is verified before it gets records); how many records `e`
/// then handed it.
fn records_handed_on_ping(e: &mut Engine, now: Time, i: usize) -> usize {
    let mut sent = ping_from(e, now, i);
    assert!(e.routing().contains(&contact_id(i)));
    if let Some(&(to, id, _)) = sent.iter().find(|(to, _, c)| *to == addr(i + 1) && matches!(c, Call::Ping { .. })) {
        answer(e, now, to, id, Value::Bin(contact_id(i).0.to_vec()));
        sent.extend(sent_to(e));
    }
    sent.iter().filter(|(to, _, c)| *to == addr(i + 1) && matches!(c, Call::Store { .. })).count()
}

#[test]
fn a_contact_re_learned_within_replicate_interval_is_not_handed_our_records_again() {
    let interval = Duration::from_secs(60);
    let mut e =
        Engine::new(id_at(LOCAL.0, LOCAL.1), Config { replicate_interval: interval, ..Config::default() }, Time::ZERO);
    // We know nobody else, so every newcomer is among the k closest to both keys.
    for key in [id_at(0x80, 3), id_at(0x80, 5)] {
        e.store.put(key, Value::Int(1), None, Time::ZERO, Duration::from_secs(24 * 3600)).unwrap();
    }
    let first = Time::from_secs(1);
    assert_eq!(records_handed_on_ping(&mut e, first, 0), 2);
    // Dropped and heard from again (a lossy link): not handed everything again.
    e.routing.remove(&contact_id(0));
    assert_eq!(records_handed_on_ping(&mut e, first + Duration::from_secs(30), 0), 0);
    // Memory is per contact: another newcomer meanwhile gets its records.
    assert_eq!(records_handed_on_ping(&mut e, first + Duration::from_secs(30), 1), 2);
    e.routing.remove(&contact_id(0));
    assert_eq!(records_handed_on_ping(&mut e, first + interval - Duration::from_millis(1), 0), 0);
    // A full interval after the handover it is handed them again.
    e.routing.remove(&contact_id(0));
    assert_eq!(records_handed_on_ping(&mut e, first + interval, 0), 2);
    // And that handover starts a new interval.
    e.routing.remove(&contact_id(0));
    assert_eq!(records_handed_on_ping(&mut e, first + interval + Duration::from_secs(1), 0), 0);
}

#[test]
fn handover_memory_is_forgotten_at_the_first_sweep_a_full_interval_later() {
    let interval = Duration::from_secs(60);
    let mut e =
        Engine::new(id_at(LOCAL.0, LOCAL.1), Config { replicate_interval: interval, ..Config::default() }, Time::ZERO);
    e.store.put(id_at(0x80, 3), Value::Int(1), None, Time::ZERO, Duration::from_secs(24 * 3600)).unwrap();
    let at = Time::from_secs(1);
    assert_eq!(records_handed_on_ping(&mut e, at, 0), 1);
    // The map is private to maintenance; its Debug output is the only window on it.
    let forgotten = |e: &Engine| format!("{:?}", e.maintenance).contains("handed_over: {}");
    e.handle_timeout(at + interval - Duration::from_secs(1));
    assert!(!forgotten(&e), "forgotten too early");
    // Sweeps run every interval / 6 = 10 s; the first one past at + interval prunes it.
    e.handle_timeout(at + interval + Duration::from_secs(10));
    assert!(forgotten(&e), "the sweep kept a handover a full interval old");
}

#[test]
fn a_replication_that_finds_k_closer_nodes_drops_our_copy_instead_of_pushing_it() {
    // k = 3 and we know only contact 0, so our thin table says we are among
    // the 3 closest to `key` (as after a restart): the sweep replicates.
    let cfg = Config { k: 3, replicate_interval: Duration::from_secs(60), ..Config::default() };
    let mut e = engine_knowing(cfg, 1);
    let key = id_at(0, 0);
    e.store.put(key, Value::Int(1), None, Time::ZERO, Duration::from_secs(3600)).unwrap();
    let now = Time::from_secs(61);
    e.handle_timeout(now);
    let mut pending = sent_to(&mut e);
    assert_eq!(find_nodes_to(&pending), vec![addr(1)], "the sweep must start a replication lookup");
    // The lookup learns of contacts 1 and 2: with contact 0, three nodes closer than us.
    let mut stores = Vec::new();
    while let Some((to, id, call)) = pending.pop() {
        match call {
            Call::FindNode { .. } => {
                let others = if to == addr(1) { vec![known(1), known(2)] } else { vec![] };
                answer(&mut e, now, to, id, crate::wire::contacts_value(&others));
                pending.extend(sent_to(&mut e));
            }
            Call::Store { .. } | Call::Other { .. } if !matches!(&call, Call::Other { name, .. } if name == crate::engine::inbound::HELLO) => {
                stores.push(to)
            }
            _ => {}
        }
    }
    assert!(stores.is_empty(), "a leftover copy was pushed to {stores:?}");
    assert!(e.store().get(&key, now).is_none(), "the leftover copy must be dropped");
}

mod freshness;
mod joining;
mod put_reuse;
