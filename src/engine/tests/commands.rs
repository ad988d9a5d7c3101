//! Commands through a network of engines: get, put, find_node, ping, stun,
//! and what a node does with input it cannot read.

use super::*;

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
