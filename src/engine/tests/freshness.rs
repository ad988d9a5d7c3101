//! Contacts handed to others must have answered us (see `routing::freshness`).

use super::*;

/// A fresh requester: contact `i` pings `e`; returns the message id of the
/// check `e` sends it back (its hello, or a ping: see `hand::check_of`) and
/// contact `i`'s answer to it.
fn check_after_request(e: &mut Engine, now: Time, i: usize) -> (MessageId, Value) {
    check_of(&ping_from(e, now, i), i)
}

#[test]
fn a_requester_is_handed_out_only_after_it_answers_our_check() {
    let mut e = engine_knowing(Config::default(), 1);
    e.peers.insert(contact_id(0), PeerKind::Extended);
    let (check, answer_body) = check_after_request(&mut e, Time::from_secs(1), 1);
    let listed = ask_find_node(&mut e, Time::from_secs(1), 0, contact_id(1));
    assert!(!listed.contains(&contact_id(1)), "an unverified requester was handed out");
    answer(&mut e, Time::from_secs(1), addr(2), check, answer_body);
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

/// [`engine_with_settled_contacts`], and contact 1, a newcomer that sent
/// a request at `start` and answered the check it triggered.
fn with_verified_newcomer(start: Time) -> Engine {
    let mut e = engine_with_settled_contacts(start);
    let (check, answer_body) = check_after_request(&mut e, start, 1);
    answer(&mut e, start, addr(2), check, answer_body);
    e
}

#[test]
fn a_stock_peer_gets_a_requester_only_once_it_answered_again_a_while_later() {
    let start = Time::from_secs(100);
    let mut e = with_verified_newcomer(start);
    // Contact 0 has not answered `kadmesh_hello`: it may be a stock peer.
    assert!(!find_node_and_checks(&mut e, start, contact_id(1)).0.contains(&contact_id(1)));
    let settle = start + crate::routing::freshness::SETTLE;
    let (listed, checks) = find_node_and_checks(&mut e, settle, contact_id(1));
    assert!(!listed.contains(&contact_id(1)));
    assert_eq!(checks.iter().map(|(to, _)| *to).collect::<Vec<_>>(), vec![addr(2)], "checked once SETTLE passed");
    answer(&mut e, settle, addr(2), checks[0].1, Value::Bin(contact_id(1).0.to_vec()));
    assert!(find_node_and_checks(&mut e, settle, contact_id(1)).0.contains(&contact_id(1)));
}

/// The pings `e` sends to `to` at `now`'s timers: their message ids.
fn pings_at(e: &mut Engine, now: Time, to: SocketAddr) -> Vec<MessageId> {
    e.handle_timeout(now);
    let sent = sent_to(e).into_iter();
    sent.filter(|(at, _, c)| *at == to && matches!(c, Call::Ping { .. })).map(|(_, id, _)| id).collect()
}

/// A node that answers stock or unknown askers settles a newcomer on its
/// own, SETTLE after its first answer, so the next stock asker gets it with
/// no check pending; a node that answers only our own nodes sends nothing.
#[test]
fn a_node_answering_stock_peers_settles_a_newcomer_on_time() {
    let start = Time::from_secs(100);
    let settle = start + crate::routing::freshness::SETTLE;
    for stock_asked in [true, false] {
        let mut e = engine_with_settled_contacts(start);
        if stock_asked {
            // Contact 0 has not answered `kadmesh_hello`: it may be a stock peer.
            find_node_and_checks(&mut e, start, contact_id(3));
        }
        let (check, answer_body) = check_after_request(&mut e, start, 1);
        answer(&mut e, start, addr(2), check, answer_body);
        assert!(pings_at(&mut e, settle - Duration::from_millis(1), addr(2)).is_empty(), "checked early");
        let pings = pings_at(&mut e, settle, addr(2));
        if !stock_asked {
            assert!(pings.is_empty(), "a node no stock peer asks settled a contact on its own");
            continue;
        }
        assert_eq!(pings.len(), 1, "one settle check, SETTLE after its first answer");
        answer(&mut e, settle, addr(2), pings[0], Value::Bin(contact_id(1).0.to_vec()));
        let (listed, checks) = find_node_and_checks(&mut e, settle, contact_id(1));
        assert!(listed.contains(&contact_id(1)) && checks.is_empty(), "{listed:?} {checks:?}");
    }
}

/// Attack: a stranger asking find_node over and over (each request a stock
/// or unknown asker) costs one settle check per young contact, not one per
/// request.
#[test]
fn a_stranger_asking_again_and_again_costs_one_settle_check_per_contact() {
    let start = Time::from_secs(100);
    let mut e = with_verified_newcomer(start);
    for ms in (0..900).step_by(9) {
        find_node_and_checks(&mut e, start + Duration::from_millis(ms), id_at(0, ms as u8));
    }
    let settle = start + crate::routing::freshness::SETTLE;
    e.handle_timeout(settle - Duration::from_millis(1));
    sent_to(&mut e);
    e.handle_timeout(settle);
    let pings: Vec<SocketAddr> =
        sent_to(&mut e).into_iter().filter(|(_, _, c)| matches!(c, Call::Ping { .. })).map(|(to, _, _)| to).collect();
    assert_eq!(pings, vec![addr(2)], "100 requests, one young contact: one settle check");
}

/// When a node starts answering stock askers, the young contacts it already
/// holds are settled on time too.
#[test]
fn young_contacts_held_before_the_first_stock_asker_are_settled_on_time() {
    let start = Time::from_secs(100);
    let mut e = with_verified_newcomer(start);
    let asked = start + Duration::from_millis(500);
    find_node_and_checks(&mut e, asked, contact_id(3));
    let settle = start + crate::routing::freshness::SETTLE;
    assert!(pings_at(&mut e, settle - Duration::from_millis(1), addr(2)).is_empty());
    assert_eq!(pings_at(&mut e, settle, addr(2)).len(), 1);
}

#[test]
fn a_requester_that_never_answers_gets_no_records_and_leaves_the_table() {
    let mut e = engine_knowing(Config::default(), 1);
    e.store.put(id_at(0, 2), Value::Int(1), None, Time::ZERO, Duration::from_secs(3600)).unwrap();
    let sent = ping_from(&mut e, Time::from_secs(1), 1);
    assert!(!sent.iter().any(|(_, _, c)| is_store(c)), "records went to an unverified address");
    // The check (its hello), the ping that follows a silent hello and that
    // ping's repeat time out: two strikes evict it, and no record went to it.
    let (hello, ping) = (e.config().extension_timeout, e.config().rpc_timeout);
    for at in [hello, hello + ping, hello + ping * 2] {
        e.handle_timeout(Time::from_secs(1) + at);
        let sent = sent_to(&mut e);
        assert!(!sent.iter().any(|(_, _, c)| is_store(c)));
    }
    assert!(!e.routing().contains(&contact_id(1)));
}

#[test]
fn a_short_lived_client_that_answered_once_is_never_handed_to_a_stock_peer() {
    let start = Time::from_secs(100);
    let mut e = with_verified_newcomer(start);
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
    let (check, answer_body) = check_after_request(&mut e, start, 1);
    answer(&mut e, start, addr(2), check, answer_body);
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

/// A new requester with the node mark is checked by its `kadmesh_hello`:
/// the answer, naming the requester, verifies it with no ping (one datagram
/// fewer per newcomer). Should the hello go unanswered, it is pinged then.
/// A requester without the mark (a stock peer never answers the hello) is
/// pinged at once. Either way it is handed out only once verified.
#[test]
fn a_marked_requester_is_checked_by_its_hello_and_others_by_a_ping() {
    for (marked, silent) in [(true, false), (true, true), (false, false)] {
        let case = format!("marked {marked}, silent hello {silent}");
        let mut e = engine_knowing(Config::default(), 1);
        e.peers.insert(contact_id(0), PeerKind::Extended);
        let mut now = Time::from_secs(1);
        let sent = if marked { marked_ping_from(&mut e, now, 1) } else { ping_from(&mut e, now, 1) };
        let pings = sent.iter().filter(|(to, _, c)| *to == addr(2) && matches!(c, Call::Ping { .. })).count();
        assert_eq!(pings, usize::from(!marked), "{case}: {sent:?}");
        let (mut check, mut body) = check_of(&sent, 1);
        if silent {
            now = now + e.config().extension_timeout;
            e.handle_timeout(now);
            (check, body) = check_of(&sent_to(&mut e), 1);
            assert!(matches!(body, Value::Bin(_)), "{case}: a ping after the silent hello");
        }
        assert!(
            !ask_find_node(&mut e, now, 0, contact_id(1)).contains(&contact_id(1)),
            "{case}: handed out unverified"
        );
        answer(&mut e, now, addr(2), check, body);
        assert!(e.routing().is_verified(&contact_id(1)), "{case}");
        assert!(ask_find_node(&mut e, now, 0, contact_id(1)).contains(&contact_id(1)), "{case}");
    }
}

/// A hello answer that names no node (a kadmesh older than the `id` field)
/// proves the kind, not who answers at the address: the ping still goes.
#[test]
fn a_hello_answer_without_an_id_does_not_verify_the_requester() {
    let mut e = engine_knowing(Config::default(), 1);
    let now = Time::from_secs(1);
    let (hello, _) = check_of(&marked_ping_from(&mut e, now, 1), 1);
    let old = Value::Map(vec![(Value::Str("impl".into()), Value::Str("kadmesh".into()))]);
    answer(&mut e, now, addr(2), hello, old);
    assert_eq!(e.peer_kind(&contact_id(1)), PeerKind::Extended);
    assert!(!e.routing().is_verified(&contact_id(1)));
    let (ping, body) = check_of(&sent_to(&mut e), 1);
    answer(&mut e, now, addr(2), ping, body);
    assert!(e.routing().is_verified(&contact_id(1)));
}
