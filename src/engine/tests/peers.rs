//! Which peers speak our extensions: `kadmesh_hello`, asked again while a
//! contact that answers us stays silent to it, and again later.

use super::hand::*;
use super::*;
use crate::engine::peers::HELLO_TRIES;

/// The `kadmesh_hello`s `e` has queued: where each went and its message id.
fn hellos(e: &mut Engine) -> Vec<(SocketAddr, MessageId)> {
    let mut out = Vec::new();
    while let Some(t) = e.poll_transmit() {
        if let Ok(Datagram::Request { id, call: Call::Other { name, .. } }) = crate::wire::decode(&t.payload) {
            if name == HELLO {
                out.push((t.to, id));
            }
        }
    }
    out
}

/// Lets every hello in flight time out, one timeout after another from
/// `from`, until none is left; returns how many more hellos went out.
fn silent_hellos(e: &mut Engine, from: Time) -> usize {
    let (mut now, mut sent) = (from, 0);
    for _ in 0..10 {
        now = now + Duration::from_secs(3);
        e.handle_timeout(now);
        let n = hellos(e).len();
        if n == 0 {
            break;
        }
        sent += n;
    }
    sent
}

#[test]
fn a_silent_hello_is_asked_again_later_not_never() {
    // Contact 0 (at addr(1)) answered our queries; its hello went out then.
    let mut e = engine_knowing(Config::default(), 1);
    let peer = contact_id(0);
    let ping_from_peer = |e: &mut Engine, now: Time| {
        let call = Call::Ping { sender: peer };
        let d = Datagram::Request { id: MessageId([now.as_secs() as u8; 20]), call }.encode().unwrap();
        e.handle_datagram(now, addr(1), &d);
        hellos(e).len()
    };
    assert_eq!(silent_hellos(&mut e, Time::ZERO), HELLO_TRIES - 1, "asked again while silent");
    assert_eq!(e.peer_kind(&peer), PeerKind::Base);
    assert_eq!(ping_from_peer(&mut e, Time::from_secs(60)), 0, "not asked again so soon");
    assert_eq!(ping_from_peer(&mut e, Time::from_secs(60) + REPROBE_AFTER), 1, "asked again later");
}

#[test]
fn one_lost_hello_does_not_make_one_of_ours_a_stock_peer() {
    let mut e = engine_knowing(Config::default(), 1);
    let peer = contact_id(0);
    // The first hello (or its answer) is lost: the peer is asked again, not
    // taken for a stock peer.
    e.handle_timeout(Time::from_secs(3));
    assert_eq!(e.peer_kind(&peer), PeerKind::Unknown);
    let again = hellos(&mut e);
    assert_eq!(again.len(), 1, "asked again");
    let (to, id) = again[0];
    let answer = Datagram::Response { id, body: crate::engine::inbound::hello_body(peer) };
    e.handle_datagram(Time::from_secs(3), to, &answer.encode().unwrap());
    assert_eq!(e.peer_kind(&peer), PeerKind::Extended);
}

#[test]
fn an_address_that_never_answered_gets_one_hello() {
    // A stranger's ping (its source may be forged): one hello and the check
    // ping go back; neither is answered, and no second hello follows.
    let mut e = Engine::new(NodeId([1; 20]), small(0), Time::ZERO);
    let stranger = NodeId([2; 20]);
    let d = Datagram::Request { id: MessageId([7; 20]), call: Call::Ping { sender: stranger } }.encode().unwrap();
    e.handle_datagram(Time::ZERO, addr(2), &d);
    assert_eq!(hellos(&mut e).len(), 1);
    assert_eq!(silent_hellos(&mut e, Time::ZERO), 0);
    assert_eq!(e.peer_kind(&stranger), PeerKind::Base);
}

#[test]
fn a_requester_whose_hello_was_lost_but_who_answers_the_check_is_asked_again() {
    // One of ours (the node mark) asks us something: its hello is the check.
    let mut e = engine_knowing(Config::default(), 1);
    let newcomer = contact_id(1);
    let first = hellos_in(&marked_ping_from(&mut e, Time::from_secs(1), 1));
    assert_eq!(first.len(), 1);
    // The hello is lost: the check ping follows, and it is answered.
    let now = Time::from_secs(1) + e.config().extension_timeout;
    e.handle_timeout(now);
    let sent = sent_to(&mut e);
    assert!(hellos_in(&sent).is_empty(), "an address that never answered is not asked again yet");
    let (check, body) = check_of(&sent, 1);
    answer(&mut e, now, addr(2), check, body);
    // It answers, so the hello may have been lost: it is asked again.
    let again = hellos_in(&sent_to(&mut e));
    assert_eq!(again.len(), 1);
    let answer_hello = Datagram::Response { id: again[0], body: crate::engine::inbound::hello_body(newcomer) };
    e.handle_datagram(now, addr(2), &answer_hello.encode().unwrap());
    assert_eq!(e.peer_kind(&newcomer), PeerKind::Extended);
}

/// The hellos among `sent` to the newcomer (contact 1, at `addr(2)`).
fn hellos_in(sent: &[(SocketAddr, MessageId, Call)]) -> Vec<MessageId> {
    let hello = |c: &Call| matches!(c, Call::Other { name, .. } if name == HELLO);
    sent.iter().filter(|(to, _, c)| *to == addr(2) && hello(c)).map(|(_, id, _)| *id).collect()
}

#[test]
fn a_peer_that_used_up_its_hellos_gets_no_more_for_answering_a_check() {
    // Contact 0 answered us, then stayed silent to all its hellos: stock.
    let mut e = engine_knowing(Config::default(), 1);
    let peer = contact_id(0);
    assert_eq!(silent_hellos(&mut e, Time::ZERO), HELLO_TRIES - 1);
    assert_eq!(e.peer_kind(&peer), PeerKind::Base);
    // It answers a check ping soon after: nothing new about its kind.
    let now = Time::from_millis(9_500);
    e.send_check(now, known(0));
    let sent = sent_to(&mut e);
    let (check, body) = check_of(&sent, 0);
    answer(&mut e, now, addr(1), check, body);
    assert!(hellos(&mut e).is_empty(), "a stock peer was asked again");
}
