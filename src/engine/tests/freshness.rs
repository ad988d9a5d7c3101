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
    let check = check_ping_after_request(&mut e, Time::from_secs(1), 1);
    let listed = ask_find_node(&mut e, Time::from_secs(1), 0, contact_id(1));
    assert!(!listed.contains(&contact_id(1)), "an unverified requester was handed out");
    answer(&mut e, Time::from_secs(1), addr(2), check, Value::Bin(contact_id(1).0.to_vec()));
    let listed = ask_find_node(&mut e, Time::from_secs(1), 0, contact_id(1));
    assert!(listed.contains(&contact_id(1)));
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
fn a_short_lived_client_that_stops_is_left_out_within_one_ping_timeout() {
    let mut e = engine_knowing(Config::default(), 1);
    let start = Time::from_secs(100);
    let check = check_ping_after_request(&mut e, start, 1);
    answer(&mut e, start, addr(2), check, Value::Bin(contact_id(1).0.to_vec()));
    // It stops right after. Two seconds later someone asks for its neighbourhood:
    // it is still listed once, but checked at the same time ...
    let asked = start + Duration::from_secs(2);
    let (listed, checks) = find_node_and_checks(&mut e, asked, contact_id(1));
    assert!(listed.contains(&contact_id(1)));
    assert_eq!(checks, vec![addr(2)]);
    // ... and once that check has timed out it is no longer handed out.
    let later = asked + e.config().rpc_timeout;
    e.handle_timeout(later);
    assert!(!find_node_and_checks(&mut e, later, contact_id(1)).0.contains(&contact_id(1)));
}

/// Contact 0 asks `e` for the nodes closest to `key`; the ids listed and
/// where `e` sent check pings meanwhile.
fn find_node_and_checks(e: &mut Engine, now: Time, key: Key) -> (Vec<NodeId>, Vec<SocketAddr>) {
    let msg = MessageId([0xab; 20]);
    let call = Call::FindNode { sender: contact_id(0), key };
    e.handle_datagram(now, addr(1), &Datagram::Request { id: msg, call }.encode().unwrap());
    let (mut listed, mut checks) = (Vec::new(), Vec::new());
    while let Some(t) = e.poll_transmit() {
        match crate::wire::decode(&t.payload) {
            Ok(Datagram::Response { id, body }) if id == msg => {
                listed = crate::wire::parse_find_node_reply(&body).unwrap().into_iter().map(|c| c.id).collect();
            }
            Ok(Datagram::Request { call: Call::Ping { .. }, .. }) => checks.push(t.to),
            _ => {}
        }
    }
    (listed, checks)
}
