//! Contacts handed to others must have answered us (see `routing::freshness`).

use super::*;

/// A fresh requester: contact `i` pings `e`; returns the message id of the
/// check ping `e` sends it back.
fn check_ping_after_request(e: &mut Engine, now: Time, i: usize) -> MessageId {
    let sent = ping_from(e, now, i);
    let checks: Vec<MessageId> = sent
        .iter()
        .filter(|(to, _, c)| *to == addr(i + 1) && matches!(c, Call::Ping { .. }))
        .map(|(_, id, _)| *id)
        .collect();
    assert_eq!(checks.len(), 1, "one check ping to the new requester, got {sent:?}");
    checks[0]
}

#[test]
fn a_requester_is_handed_out_only_after_it_answers_our_check_ping() {
    let mut e = engine_knowing(Config::default(), 1);
    e.peers.insert(contact_id(0), PeerKind::Extended);
    let check = check_ping_after_request(&mut e, Time::from_secs(1), 1);
    let listed = ask_find_node(&mut e, Time::from_secs(1), 0, contact_id(1));
    assert!(!listed.contains(&contact_id(1)), "an unverified requester was handed out");
    answer(&mut e, Time::from_secs(1), addr(2), check, Value::Bin(contact_id(1).0.to_vec()));
    let listed = ask_find_node(&mut e, Time::from_secs(1), 0, contact_id(1));
    assert!(listed.contains(&contact_id(1)), "one of our nodes gets it once it answered");
}

/// An engine with k = 3 knowing every contact but 1 (the newcomer of each
/// test), each settled and heard from at `now`: besides the asker, contact
/// 0, three settled contacts, enough to fill any reply to it.
fn engine_with_settled_contacts(now: Time) -> Engine {
    let mut e = engine_with_contacts(Config { k: 3, ..Config::default() });
    e.svc.routing.remove(&contact_id(1));
    for i in [0, 2, 3, 4] {
        ping_from(&mut e, now, i);
    }
    e
}

#[test]
fn a_stock_peer_gets_a_requester_only_once_it_answered_again_a_while_later() {
    let start = Time::from_secs(100);
    let mut e = engine_with_settled_contacts(start);
    let check = check_ping_after_request(&mut e, start, 1);
    answer(&mut e, start, addr(2), check, Value::Bin(contact_id(1).0.to_vec()));
    // Contact 0 has not answered `kadmesh_hello`: it may be a stock peer.
    assert!(!find_node_and_checks(&mut e, start, contact_id(1)).0.contains(&contact_id(1)));
    let settle = start + crate::routing::freshness::SETTLE;
    let (listed, checks) = find_node_and_checks(&mut e, settle, contact_id(1));
    assert!(!listed.contains(&contact_id(1)));
    assert_eq!(checks.iter().map(|(to, _)| *to).collect::<Vec<_>>(), vec![addr(2)], "checked once SETTLE passed");
    answer(&mut e, settle, addr(2), checks[0].1, Value::Bin(contact_id(1).0.to_vec()));
    assert!(find_node_and_checks(&mut e, settle, contact_id(1)).0.contains(&contact_id(1)));
}

#[test]
fn a_requester_that_never_answers_gets_no_records_and_leaves_the_table() {
    let mut e = engine_knowing(Config::default(), 1);
    e.store.put(id_at(0, 2), Value::Int(1), None, Time::ZERO, Duration::from_secs(3600)).unwrap();
    let sent = ping_from(&mut e, Time::from_secs(1), 1);
    assert!(!sent.iter().any(|(_, _, c)| matches!(c, Call::Store { .. })), "records went to an unverified address");
    // The check and its repeat time out: two strikes evict it.
    let timeout = e.config().rpc_timeout;
    for step in 1..=2u32 {
        e.handle_timeout(Time::from_secs(1) + timeout * step);
        let sent = sent_to(&mut e);
        assert!(!sent.iter().any(|(_, _, c)| matches!(c, Call::Store { .. })));
    }
    assert!(!e.routing().contains(&contact_id(1)));
}

#[test]
fn a_short_lived_client_that_answered_once_is_never_handed_to_a_stock_peer() {
    let start = Time::from_secs(100);
    let mut e = engine_with_settled_contacts(start);
    let check = check_ping_after_request(&mut e, start, 1);
    answer(&mut e, start, addr(2), check, Value::Bin(contact_id(1).0.to_vec()));
    // It stops 300 ms later. Whenever someone asks for its neighbourhood, up
    // to its eviction, it is not listed; the hand-out after SETTLE checks it.
    let timeout = e.config().rpc_timeout;
    let mut checks = 0;
    for ms in (300..=13_000).step_by(100) {
        let now = start + Duration::from_millis(ms);
        e.handle_timeout(now);
        let (listed, checked) = find_node_and_checks(&mut e, now, contact_id(1));
        assert!(!listed.contains(&contact_id(1)), "handed out {ms} ms after its answer");
        checks += checked.len();
    }
    assert!(checks >= 1, "never checked");
    assert!(!e.routing().contains(&contact_id(1)), "two unanswered checks in {:?} evict it", timeout * 2);
}

#[test]
fn a_settled_client_that_stops_is_not_handed_out_once_its_check_is_sent() {
    let mut e = engine_knowing(Config::default(), 1);
    let start = Time::from_secs(100);
    let check = check_ping_after_request(&mut e, start, 1);
    answer(&mut e, start, addr(2), check, Value::Bin(contact_id(1).0.to_vec()));
    // It answered our queries for ten seconds, then stopped.
    let stopped = start + Duration::from_secs(10);
    e.svc.routing.mark_answered(&contact_id(1), stopped);
    assert!(find_node_and_checks(&mut e, stopped, contact_id(1)).0.contains(&contact_id(1)));
    // Past its re-check gap (a quarter of the 13 s it has been known) the next hand-out checks it
    // and leaves it out, and so does every later one.
    let asked = stopped + Duration::from_secs(4);
    let (listed, checks) = find_node_and_checks(&mut e, asked, contact_id(1));
    assert!(!listed.contains(&contact_id(1)));
    assert_eq!(checks.iter().map(|(to, _)| *to).collect::<Vec<_>>(), vec![addr(2)]);
    for ms in (100..=6_000).step_by(100) {
        let now = asked + Duration::from_millis(ms);
        e.handle_timeout(now);
        assert!(!find_node_and_checks(&mut e, now, contact_id(1)).0.contains(&contact_id(1)), "at +{ms} ms");
    }
}

/// Contact 0 asks `e` for the nodes closest to `key`; the ids listed and
/// where (and with which message id) `e` sent check pings meanwhile.
fn find_node_and_checks(e: &mut Engine, now: Time, key: Key) -> (Vec<NodeId>, Vec<(SocketAddr, MessageId)>) {
    let msg = MessageId([0xab; 20]);
    let call = Call::FindNode { sender: contact_id(0), key };
    e.handle_datagram(now, addr(1), &Datagram::Request { id: msg, call }.encode().unwrap());
    let (mut listed, mut checks) = (Vec::new(), Vec::new());
    while let Some(t) = e.poll_transmit() {
        match crate::wire::decode(&t.payload) {
            Ok(Datagram::Response { id, body }) if id == msg => {
                listed = crate::wire::parse_find_node_reply(&body).unwrap().into_iter().map(|c| c.id).collect();
            }
            Ok(Datagram::Request { id, call: Call::Ping { .. } }) => checks.push((t.to, id)),
            _ => {}
        }
    }
    (listed, checks)
}
