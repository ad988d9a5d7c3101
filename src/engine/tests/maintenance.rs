//! Records over time: expiry, republish, re-replication by the k closest
//! only, and records restored after a restart.

use super::*;

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

/// An engine with contacts holding `third` (we are third closest of k = 3)
/// and `far` (three contacts closer) since t = 0; its sweep past
/// `replicate_interval` has run. Returns what it sent.
fn swept() -> (Engine, Key, Key, Vec<(SocketAddr, MessageId, Call)>) {
    let cfg = Config { k: 3, replicate_interval: Duration::from_secs(60), ..Config::default() };
    let mut e = engine_with_contacts(cfg);
    let (third, far) = (id_at(0x80, 3), id_at(0, 0));
    for key in [third, far] {
        e.store.put(key, Value::Int(1), None, Time::ZERO, Duration::from_secs(3600)).unwrap();
    }
    e.handle_timeout(Time::from_secs(61));
    let sent = sent_to(&mut e);
    (e, third, far, sent)
}

fn key_of(call: &Call) -> Option<Key> {
    match call {
        Call::FindNode { key, .. } | Call::FindValue { key, .. } => Some(*key),
        _ => None,
    }
}

#[test]
fn a_replica_among_the_k_closest_re_replicates_and_one_outside_asks_the_nearest_first() {
    let (e, third, far, sent) = swept();
    let lookups: Vec<Key> =
        sent.iter().filter(|(_, _, c)| matches!(c, Call::FindNode { .. })).filter_map(|(_, _, c)| key_of(c)).collect();
    assert!(lookups.contains(&third), "the third closest must re-replicate: {lookups:?}");
    assert!(!lookups.contains(&far), "the far copy was looked up before the nearest was asked");
    // Our table alone does not drop the far copy (its closer contacts may
    // be dead): the nearest contact, `0, 1`, is asked for the key.
    let asks: Vec<SocketAddr> =
        sent.iter().filter(|(_, _, c)| matches!(c, Call::FindValue { key, .. } if *key == far)).map(|s| s.0).collect();
    assert_eq!(asks, vec![addr(1)]);
    assert!(e.store().get(&far, Time::from_secs(61)).is_some());
    assert!(e.store().get(&third, Time::from_secs(61)).is_some());
}

#[test]
fn a_copy_outside_the_k_closest_is_dropped_when_the_nearest_holds_it() {
    let (mut e, _, far, sent) = swept();
    let now = Time::from_secs(61);
    let (to, id, _) = sent.iter().find(|(_, _, c)| matches!(c, Call::FindValue { key, .. } if *key == far)).unwrap();
    answer(&mut e, now, *to, *id, crate::wire::found_value(&Value::Int(1)));
    assert!(e.store().get(&far, now).is_none(), "the nearest holds it: ours must go");
    assert_eq!(e.stats().records_dropped, 1);
    // One request, no lookup and no store.
    let after = sent_to(&mut e);
    assert!(after.iter().all(|(_, _, c)| key_of(c) != Some(far) && !is_store(c)), "{after:?}");
}

#[test]
fn a_copy_outside_the_k_closest_is_looked_up_when_the_nearest_answers_without_it() {
    let (mut e, _, far, sent) = swept();
    let now = Time::from_secs(61);
    let (to, id, _) = sent.iter().find(|(_, _, c)| matches!(c, Call::FindValue { key, .. } if *key == far)).unwrap();
    answer(&mut e, now, *to, *id, crate::wire::contacts_value(&[]));
    let after = sent_to(&mut e);
    let looked_up = after.iter().any(|(_, _, c)| matches!(c, Call::FindNode { key, .. } if *key == far));
    assert!(looked_up, "no lookup after the nearest answered without the key: {after:?}");
    assert!(e.store().get(&far, now).is_some());
}

#[test]
fn a_copy_whose_nearest_is_silent_is_kept_and_asked_about_again_without_it() {
    let (mut e, _, far, sent) = swept();
    assert!(sent.iter().any(|(to, _, c)| *to == addr(1) && matches!(c, Call::FindValue { key, .. } if *key == far)));
    // The ask times out: no lookup (one coming back short of k under load
    // would count us among the closest), the copy stays.
    let later = Time::from_secs(61) + Duration::from_secs(6);
    e.handle_timeout(later);
    let after = sent_to(&mut e);
    assert!(!after.iter().any(|(_, _, c)| matches!(c, Call::FindNode { key, .. } if *key == far)), "{after:?}");
    assert!(e.store().get(&far, later).is_some());
    // Next sweep: contact `0, 1` has failed and is left out. Only two
    // unfailed contacts are closer than us, so we count among the k = 3
    // closest and replicate: a lookup.
    let next = Time::from_secs(61) + Duration::from_secs(11);
    e.handle_timeout(next);
    let after = sent_to(&mut e);
    assert!(after.iter().any(|(_, _, c)| matches!(c, Call::FindNode { key, .. } if *key == far)), "{after:?}");
    assert!(e.store().get(&far, next).is_some());
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

/// Drives the replication of `key` that `e`'s sweep at `now` starts, with
/// our table knowing only contact 0 (so it counts us among k = 3): the
/// lookup learns contacts 1 and 2, three nodes closer than us in all. Each
/// `find_value` is answered with the value by the contacts in `holders`,
/// with contacts by the others, by nobody if `silent`. Returns where stores
/// went.
fn leftover_replication(holders: &[usize], silent: bool) -> (Engine, Key, Vec<SocketAddr>) {
    let cfg = Config { k: 3, replicate_interval: Duration::from_secs(60), ..Config::default() };
    let mut e = engine_knowing(cfg, 1);
    let key = id_at(0, 0);
    e.store.put(key, Value::Int(1), None, Time::ZERO, Duration::from_secs(3600)).unwrap();
    let now = Time::from_secs(61);
    e.handle_timeout(now);
    let mut pending = sent_to(&mut e);
    assert_eq!(find_nodes_to(&pending), vec![addr(1)], "the sweep must start a replication lookup");
    let mut stores = Vec::new();
    while let Some((to, id, call)) = pending.pop() {
        match call {
            Call::FindNode { .. } => {
                let others = if to == addr(1) { vec![known(1), known(2)] } else { vec![] };
                answer(&mut e, now, to, id, crate::wire::contacts_value(&others));
            }
            Call::FindValue { .. } if silent => {}
            Call::FindValue { .. } if holders.iter().any(|&h| addr(h + 1) == to) => {
                answer(&mut e, now, to, id, crate::wire::found_value(&Value::Int(2)));
            }
            Call::FindValue { .. } => answer(&mut e, now, to, id, crate::wire::contacts_value(&[])),
            call if is_store(&call) => stores.push(to),
            _ => {}
        }
        pending.extend(sent_to(&mut e));
    }
    if silent {
        // The asks time out.
        e.handle_timeout(now + Duration::from_secs(10));
    }
    (e, key, stores)
}

#[test]
fn a_leftover_whose_closer_nodes_all_hold_the_record_drops_it_without_pushing() {
    let (e, key, stores) = leftover_replication(&[0, 1, 2], false);
    // Theirs may be newer: a plain store of ours would overwrite it.
    assert!(stores.is_empty(), "a leftover copy was pushed to {stores:?}");
    assert!(e.store().get(&key, Time::from_secs(61)).is_none(), "the leftover copy must be dropped");
    assert_eq!((e.stats().records_dropped, e.stats().handed_down), (1, 0));
}

#[test]
fn a_leftover_hands_its_copy_to_the_closer_nodes_that_lack_it_then_drops_it() {
    // Contact 1 holds the record; contacts 0 and 2 (newcomers, say) do not.
    let (e, key, mut stores) = leftover_replication(&[1], false);
    stores.sort();
    assert_eq!(stores, vec![addr(1), addr(3)], "stores must go to exactly those lacking it");
    assert!(e.store().get(&key, Time::from_secs(61)).is_none(), "the leftover copy must be dropped");
    assert_eq!((e.stats().records_dropped, e.stats().handed_down), (1, 2));
}

#[test]
fn a_leftover_nobody_closer_answers_for_keeps_its_copy() {
    let (e, key, stores) = leftover_replication(&[], true);
    assert!(stores.is_empty());
    let later = Time::from_secs(71);
    assert!(e.store().get(&key, later).is_some(), "nobody is known to hold it: the copy must stay");
    assert_eq!(e.stats().records_dropped, 0);
}
