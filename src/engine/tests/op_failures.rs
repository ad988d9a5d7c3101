//! Operations meeting failure, driven by hand: lookup queries that time
//! out before they stall or answer garbage, seeds that answer late or
//! wrongly, single requests nobody answers or that cannot be sent, and a
//! put's late lookup replies and unanswered neighbourhood query.

use super::hand::*;
use super::*;

/// A request times out (1 s) well before a lookup gives up waiting on it
/// (5 s), so the timeout reaches the operation while its lookup runs.
fn timeout_before_stall() -> Config {
    let stall = Duration::from_secs(5);
    Config {
        rpc_timeout: Duration::from_secs(1),
        lookup_stall: stall,
        lookup_stall_min: stall,
        contact_stall_min: stall,
        ..Config::default()
    }
}

/// A contact list as Python writes it: `[id, host, port]` triples.
fn nodes(contacts: &[Contact]) -> Value {
    let triple = |c: &Contact| {
        Value::Array(vec![
            Value::Bin(c.id.0.to_vec()),
            Value::Str(c.addr.ip().to_string()),
            Value::Int(i64::from(c.addr.port())),
        ])
    };
    Value::Array(contacts.iter().map(triple).collect())
}

/// Answers every lookup query `e` has sent with an empty contact list,
/// except those to `silent` (and, with `garbage`, one that answers a bool);
/// repeats until `e` asks nothing more. Returns the requests left unanswered.
fn answer_queries(
    e: &mut Engine,
    now: Time,
    silent: SocketAddr,
    mut garbage: Option<SocketAddr>,
) -> Vec<(SocketAddr, MessageId, Call)> {
    let mut left = Vec::new();
    for _ in 0..20 {
        let sent = sent_to(e);
        if sent.is_empty() {
            break;
        }
        for (to, id, call) in sent {
            let lookup = matches!(call, Call::FindNode { .. } | Call::FindValue { .. });
            if !lookup || to == silent {
                left.push((to, id, call));
            } else if garbage == Some(to) {
                garbage = None;
                answer(e, now, to, id, Value::Bool(true));
            } else {
                answer(e, now, to, id, Value::Array(Vec::new()));
            }
        }
    }
    left
}

fn event(e: &mut Engine) -> Option<Outcome> {
    e.poll_event().map(|ev| ev.outcome)
}

#[test]
fn a_lookup_query_that_times_out_counts_as_failed_and_the_lookup_ends_without_it() {
    let mut e = engine_with_contacts(timeout_before_stall());
    e.find_node(Time::ZERO, id_at(0, 0));
    let silent = addr(1);
    let left = answer_queries(&mut e, Time::from_millis(10), silent, None);
    assert_eq!(find_nodes_to(&left), vec![silent]);
    assert!(event(&mut e).is_none(), "the lookup waits on the silent contact");
    e.handle_timeout(Time::from_millis(1500));
    match event(&mut e) {
        Some(Outcome::FindNode { closest, stats, .. }) => {
            assert_eq!(stats.failed, 1);
            assert_eq!(closest.len(), 4);
            assert!(closest.iter().all(|c| c.addr != silent));
        }
        o => panic!("unexpected {o:?}"),
    }
}

#[test]
fn a_garbage_answer_to_a_lookup_query_counts_as_failed() {
    let key = id_at(0, 0);
    let mut e = engine_with_contacts(Config::default());
    e.get(Time::ZERO, key);
    let bad = addr(2);
    let _ = answer_queries(&mut e, Time::from_millis(10), SocketAddr::from(([0, 0, 0, 0], 0)), Some(bad));
    match event(&mut e) {
        Some(Outcome::Get(g)) => {
            assert_eq!(g.value, None);
            assert_eq!((g.stats.queried, g.stats.failed), (5, 1));
        }
        o => panic!("unexpected {o:?}"),
    }
    // The same in a put's lookup: the garbage answerer is not stored to.
    e.put(Time::from_secs(1), key, Value::Int(1));
    let stores = answer_queries(&mut e, Time::from_secs(1), SocketAddr::from(([0, 0, 0, 0], 0)), Some(bad));
    let stored_to: Vec<SocketAddr> =
        stores.iter().filter(|(_, _, c)| matches!(c, Call::Store { .. })).map(|(to, _, _)| *to).collect();
    assert_eq!(stored_to.len(), 4, "{stores:?}");
    assert!(!stored_to.contains(&bad));
}

#[test]
fn bootstrap_counts_late_seeds_and_survives_garbage_and_timeouts() {
    let mut e = Engine::new(id_at(LOCAL.0, LOCAL.1), timeout_before_stall(), Time::ZERO);
    let q = e.bootstrap(Time::ZERO, &[addr(1), addr(2), addr(5)]);
    let pings = sent_to(&mut e);
    let ping_id = |to: SocketAddr| pings.iter().find(|(a, _, _)| *a == to).map(|(_, id, _)| *id).unwrap();
    // A seed answering garbage is not reached; the others still count.
    answer(&mut e, Time::from_millis(5), addr(5), ping_id(addr(5)), Value::Bool(true));
    assert!(find_nodes_to(&sent_to(&mut e)).is_empty(), "no seed answered yet");
    answer(&mut e, Time::from_millis(10), addr(1), ping_id(addr(1)), Value::Bin(contact_id(0).0.to_vec()));
    let sent = sent_to(&mut e);
    let (_, lookup_id, _) = sent.iter().find(|(a, _, c)| *a == addr(1) && matches!(c, Call::FindNode { .. })).unwrap();
    // The first seed names contacts 2 and 3: one answers garbage, one never answers.
    answer(&mut e, Time::from_millis(20), addr(1), *lookup_id, nodes(&[known(2), known(3)]));
    // The second seed answers after the lookup started: counted all the
    // same, and asked too.
    answer(&mut e, Time::from_millis(30), addr(2), ping_id(addr(2)), Value::Bin(contact_id(1).0.to_vec()));
    let sent = sent_to(&mut e);
    assert_eq!(sorted_addrs(find_nodes_to(&sent)), vec![addr(2), addr(3), addr(4)]);
    let (_, garbage_id, _) = sent.iter().find(|(a, _, c)| *a == addr(3) && matches!(c, Call::FindNode { .. })).unwrap();
    answer(&mut e, Time::from_millis(40), addr(3), *garbage_id, Value::Bool(true));
    assert!(event(&mut e).is_none(), "still waiting on contact 3");
    e.handle_timeout(Time::from_millis(1500));
    let ev = e.poll_event().expect("bootstrap done after the timeout");
    assert_eq!(ev.id, q);
    match ev.outcome {
        Outcome::Bootstrap(b) => assert_eq!((b.seeds_reached, b.seeds_tried), (2, 3)),
        o => panic!("unexpected {o:?}"),
    }
}

#[test]
fn a_join_whose_only_seed_stalls_waits_for_its_answer_and_goes_on_from_it() {
    let stall = Duration::from_millis(100);
    let cfg = Config {
        rpc_timeout: Duration::from_secs(5),
        lookup_stall: stall,
        lookup_stall_min: stall,
        contact_stall_min: stall,
        ..Config::default()
    };
    let mut e = Engine::new(id_at(LOCAL.0, LOCAL.1), cfg, Time::ZERO);
    e.bootstrap(Time::ZERO, &[addr(1)]);
    let (_, ping, _) = sent_to(&mut e)[0].clone();
    answer(&mut e, Time::from_millis(10), addr(1), ping, Value::Bin(contact_id(0).0.to_vec()));
    let sent = sent_to(&mut e);
    let (_, query, _) = sent.iter().find(|(a, _, c)| *a == addr(1) && matches!(c, Call::FindNode { .. })).unwrap();
    // Long past the query's stall, nothing else to ask: still joining.
    e.handle_timeout(Time::from_secs(1));
    assert!(event(&mut e).is_none(), "the join ended with nobody answering");
    // The seed answers late: the join goes on to the contacts it names.
    answer(&mut e, Time::from_millis(1200), addr(1), *query, nodes(&[known(1), known(2)]));
    assert_eq!(sorted_addrs(find_nodes_to(&sent_to(&mut e))), vec![addr(2), addr(3)]);
}

fn sorted_addrs(mut a: Vec<SocketAddr>) -> Vec<SocketAddr> {
    a.sort();
    a
}

#[test]
fn unanswered_stun_and_call_report_nothing_after_the_timeout() {
    let mut e = engine_with_contacts(Config::default());
    let stun = e.stun(Time::ZERO, addr(1));
    let call = e.call(Time::ZERO, addr(2), Call::FindNode { sender: e.id(), key: id_at(1, 1) });
    assert_eq!(sent_to(&mut e).len(), 2);
    e.handle_timeout(Time::from_secs(4));
    assert!(e.poll_event().is_none(), "not before the timeout");
    e.handle_timeout(Time::from_secs(6));
    let mut got: Vec<(QueryId, Outcome)> =
        std::iter::from_fn(|| e.poll_event()).map(|ev| (ev.id, ev.outcome)).collect();
    got.sort_by_key(|(id, _)| *id);
    assert!(matches!(got.as_slice(), [(a, Outcome::Stun(None)), (b, Outcome::Call(None))] if *a == stun && *b == call));
}

#[test]
fn a_call_too_big_to_send_reports_nothing_at_once() {
    let mut e = engine_with_contacts(Config::default());
    let huge = Call::Other { name: "kadmesh_x".into(), args: vec![Value::Bin(vec![0; 70_000])] };
    let q = e.call(Time::ZERO, addr(1), huge);
    assert!(e.poll_transmit().is_none());
    let ev = e.poll_event().expect("reported without waiting for a timeout");
    assert_eq!(ev.id, q);
    assert!(matches!(ev.outcome, Outcome::Call(None)));
    assert_eq!(e.ops_in_progress(), 0);
}

#[test]
fn a_late_lookup_reply_during_a_puts_stores_is_not_a_store() {
    late_lookup_query_during_stores(true);
}

#[test]
fn a_late_lookup_timeout_during_a_puts_stores_is_not_a_failed_store() {
    late_lookup_query_during_stores(false);
}

/// A put whose lookup ended without a stalled query, which then `answers`
/// (or times out) while the stores are out: neither counts as a store.
fn late_lookup_query_during_stores(answers: bool) {
    let mut e = engine_with_contacts(Config::default());
    let key = id_at(0, 0);
    e.put(Time::ZERO, key, Value::Int(1));
    let slow = addr(1);
    let left = answer_queries(&mut e, Time::from_millis(10), slow, None);
    let (_, late_id, _) =
        left.iter().find(|(a, _, c)| *a == slow && matches!(c, Call::FindNode { .. })).unwrap().clone();
    // The slow contact stalls (1 s): the lookup ends without it and the stores go out.
    e.handle_timeout(Time::from_millis(1200));
    let stores: Vec<_> = sent_to(&mut e).into_iter().filter(|(_, _, c)| matches!(c, Call::Store { .. })).collect();
    assert_eq!(stores.len(), 4);
    let now = if answers {
        answer(&mut e, Time::from_millis(1300), slow, late_id, Value::Array(Vec::new()));
        Time::from_millis(1400)
    } else {
        // The query times out at 5 s, the stores (sent at 1.2 s) not yet.
        e.handle_timeout(Time::from_millis(5500));
        Time::from_millis(5600)
    };
    assert!(event(&mut e).is_none(), "a find_node reply or timeout does not count as a store");
    let (last, first) = stores.split_last().unwrap();
    for (to, id, _) in first {
        answer(&mut e, now, *to, *id, Value::Bool(true));
    }
    assert!(event(&mut e).is_none(), "one store still unanswered");
    answer(&mut e, now, last.0, last.1, Value::Bool(false));
    match event(&mut e) {
        Some(Outcome::Put(p)) => assert_eq!((p.stored, p.attempted), (3, 4), "the refused store is not counted"),
        o => panic!("unexpected {o:?}"),
    }
}

#[test]
fn a_re_put_whose_neighbourhood_query_times_out_still_finishes() {
    let mut e = engine_with_contacts(Config::default());
    let key = id_at(0, 0);
    e.put(Time::ZERO, key, Value::Int(1));
    let stores = answer_queries(&mut e, Time::from_millis(10), SocketAddr::from(([0, 0, 0, 0], 0)), None);
    for (to, id, _) in &stores {
        answer(&mut e, Time::from_millis(20), *to, *id, Value::Bool(true));
    }
    assert!(matches!(event(&mut e), Some(Outcome::Put(p)) if p.stored == 5));

    let now = Time::from_secs(10);
    e.put(now, key, Value::Int(2));
    let sent = sent_to(&mut e);
    assert_eq!(find_nodes_to(&sent), vec![addr(1)], "one neighbourhood query to the nearest, no lookup");
    for (to, id, c) in &sent {
        if matches!(c, Call::Store { .. }) {
            answer(&mut e, now, *to, *id, Value::Bool(true));
        }
    }
    assert!(event(&mut e).is_none(), "the put waits for the neighbourhood answer");
    e.handle_timeout(now + Duration::from_secs(6));
    match event(&mut e) {
        Some(Outcome::Put(p)) => assert_eq!((p.stored, p.attempted, p.stats.queried), (5, 5, 0)),
        o => panic!("unexpected {o:?}"),
    }
}
