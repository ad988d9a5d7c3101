//! Requesters checked only when needed (`Engine::check_later`): a request
//! with the node mark from a contact far from us puts it in the table
//! unchecked; the first hand-out that would include it checks it with a
//! hello. A requester near us, or one without the mark, is checked at once.

use super::hand::*;
use super::*;
use crate::reach::marker::mark_node;

/// An engine at `LOCAL` with k = 2, knowing (verified) four contacts one
/// bucket each right next to it: `(0x80, 1)`, `(0x80, 2)`, `(0x80, 4)`, `(0x80, 8)`.
fn engine_k2() -> Engine {
    let config = Config { k: 2, ..Config::default() };
    let mut e = Engine::new(id_at(LOCAL.0, LOCAL.1), config, Time::ZERO);
    for (i, last) in [1u8, 2, 4, 8].into_iter().enumerate() {
        e.learn_answered(Time::ZERO, Contact::new(id_at(0x80, last), addr(i + 1)));
    }
    assert_eq!(e.routing().len(), 4);
    sent_to(&mut e);
    e
}

/// `from` sends `e` a `find_node` for `key`, its message id carrying the
/// node mark if `marked`; the requests `e` sends anyone meanwhile.
fn find_node_from(
    e: &mut Engine,
    now: Time,
    from: Contact,
    key: NodeId,
    marked: bool,
) -> Vec<(SocketAddr, MessageId, Call)> {
    let id = if marked { mark_node([0xd1; 20]) } else { MessageId([0xd1; 20]) };
    let call = Call::FindNode { sender: from.id, key };
    e.handle_datagram(now, from.addr, &Datagram::Request { id, call }.encode().unwrap());
    sent_to(e)
}

fn to(sent: &[(SocketAddr, MessageId, Call)], c: &Contact) -> Vec<Call> {
    sent.iter().filter(|(a, _, _)| *a == c.addr).map(|(_, _, call)| call.clone()).collect()
}

fn is_hello(call: &Call) -> bool {
    matches!(call, Call::Other { name, .. } if name == HELLO)
}

#[test]
fn a_far_marked_requester_is_kept_unchecked_until_a_hand_out_checks_it_with_a_hello() {
    let mut e = engine_k2();
    let now = Time::from_secs(1);
    // Four known contacts are closer to us: not among our 2k closest.
    let far = Contact::new(id_at(0, 0x40), addr(20));
    for at in [now, now + Duration::from_secs(1)] {
        let sent = find_node_from(&mut e, at, far, id_at(0, 0x41), true);
        assert!(to(&sent, &far).is_empty(), "nothing to it at its request: {sent:?}");
    }
    assert!(e.routing().contains(&far.id), "learnt all the same");
    assert!(!e.routing().is_verified(&far.id));
    // A stock asker's find_node near it: it is due its check, a hello (kind
    // and check in one), and left out of the reply until it answers.
    let later = now + Duration::from_secs(3);
    let asker = Contact::new(id_at(0x80, 2), addr(2));
    let call = Call::FindNode { sender: asker.id, key: far.id };
    e.handle_datagram(later, asker.addr, &Datagram::Request { id: MessageId([0xd2; 20]), call }.encode().unwrap());
    let mut sent = Vec::new();
    while let Some(t) = e.poll_transmit() {
        match crate::wire::decode(&t.payload) {
            Ok(Datagram::Request { id, call }) => sent.push((t.to, id, call)),
            Ok(Datagram::Response { body, .. }) => {
                assert!(!crate::wire::parse_find_node_reply(&body).unwrap().contains(&far), "not handed out unchecked")
            }
            Err(e) => panic!("{e}"),
        }
    }
    let calls = to(&sent, &far);
    assert!(matches!(&calls[..], [c] if is_hello(c)), "one hello, no ping: {calls:?}");
    let (_, hello, _) = sent.iter().find(|(a, _, _)| *a == far.addr).unwrap();
    answer(&mut e, later, far.addr, *hello, crate::engine::inbound::hello_body(far.id));
    assert!(e.routing().is_verified(&far.id));
    assert_eq!(e.peer_kind(&far.id), PeerKind::Extended);
}

#[test]
fn a_near_or_unmarked_requester_is_checked_at_once() {
    let mut e = engine_k2();
    let now = Time::from_secs(1);
    // Two known contacts are closer to us than (0x80, 3): among our 2k closest.
    let near = Contact::new(id_at(0x80, 3), addr(21));
    let sent = find_node_from(&mut e, now, near, id_at(0, 0x41), true);
    assert!(matches!(&to(&sent, &near)[..], [c] if is_hello(c)), "its hello is its check: {sent:?}");
    // Far, but no mark: a stock peer is learnt of only this way.
    let stock = Contact::new(id_at(0, 0x41), addr(22));
    let calls = to(&find_node_from(&mut e, now, stock, id_at(0, 0x41), false), &stock);
    assert!(calls.iter().any(|c| matches!(c, Call::Ping { .. })), "pinged at once: {calls:?}");
}
