//! A get's cache copy (paper 2.3): at the closest extended peer that lacked
//! the value, for `cache_ttl` only, never as a plain store.

use super::*;

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
    // Their replies name nobody, as stock peers' do.
    net.unnamed = true;
    // As if none of the reader's contacts had answered the kadmesh_hello
    // the reader sent them just now, so nothing asks them again yet.
    let set_all = |net: &mut Net, kind: PeerKind| {
        let ids: Vec<NodeId> = net.nodes[reader].routing().contacts().map(|c| c.id).collect();
        let now = net.now;
        for id in ids {
            net.nodes[reader].peers.insert(id, kind);
            net.nodes[reader].peers.probed.insert(id, now);
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
