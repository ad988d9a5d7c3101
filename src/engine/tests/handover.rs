//! Handing records to a newcomer (paper 2.5): it gets what it is now among
//! the k closest for, once per `replicate_interval`.

use super::*;

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

/// Contact `i` pings `e` and answers the check `e` sends back (a
/// requester is verified before it gets records); how many records `e`
/// then handed it.
fn records_handed_on_ping(e: &mut Engine, now: Time, i: usize) -> usize {
    let mut sent = ping_from(e, now, i);
    assert!(e.routing().contains(&contact_id(i)));
    let (id, body) = check_of(&sent, i);
    answer(e, now, addr(i + 1), id, body);
    sent.extend(sent_to(e));
    sent.iter().filter(|(to, _, c)| *to == addr(i + 1) && is_store(c)).count()
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
    e.svc.routing.remove(&contact_id(0));
    assert_eq!(records_handed_on_ping(&mut e, first + Duration::from_secs(30), 0), 0);
    // Memory is per contact: another newcomer meanwhile gets its records.
    assert_eq!(records_handed_on_ping(&mut e, first + Duration::from_secs(30), 1), 2);
    e.svc.routing.remove(&contact_id(0));
    assert_eq!(records_handed_on_ping(&mut e, first + interval - Duration::from_millis(1), 0), 0);
    // A full interval after the handover it is handed them again.
    e.svc.routing.remove(&contact_id(0));
    assert_eq!(records_handed_on_ping(&mut e, first + interval, 0), 2);
    // And that handover starts a new interval.
    e.svc.routing.remove(&contact_id(0));
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
