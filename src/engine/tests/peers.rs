//! Which peers speak our extensions: `kadmesh_hello`, asked again later when
//! it went unanswered.

use super::*;
use crate::engine::peers::HELLO_TRIES;

#[test]
fn a_silent_hello_is_asked_again_later_not_never() {
    let mut e = Engine::new(NodeId([1; 20]), small(0), Time::ZERO);
    let peer = NodeId([2; 20]);
    let ping_from_peer = |e: &mut Engine, now: Time| {
        let call = Call::Ping { sender: peer };
        let d = Datagram::Request { id: MessageId([now.as_secs() as u8; 20]), call }.encode().unwrap();
        e.handle_datagram(now, addr(2), &d);
        let mut hellos = 0;
        while let Some(t) = e.poll_transmit() {
            if let Ok(Datagram::Request { call: Call::Other { name, .. }, .. }) = crate::wire::decode(&t.payload) {
                hellos += usize::from(name == HELLO);
            }
        }
        hellos
    };
    assert_eq!(ping_from_peer(&mut e, Time::ZERO), 1, "first contact is asked");
    let silent = silent_hellos(&mut e, Time::ZERO);
    assert_eq!(silent, HELLO_TRIES - 1, "asked again while silent");
    assert_eq!(e.peer_kind(&peer), PeerKind::Base);
    assert_eq!(ping_from_peer(&mut e, Time::from_secs(60)), 0, "not asked again so soon");
    assert_eq!(ping_from_peer(&mut e, Time::from_secs(60) + REPROBE_AFTER), 1, "asked again later");
}

/// Lets every hello in flight time out, one timeout after another from
/// `from`, until none is left; returns how many more hellos went out.
fn silent_hellos(e: &mut Engine, from: Time) -> usize {
    let (mut now, mut sent) = (from, 0);
    for _ in 0..10 {
        now = now + Duration::from_secs(3);
        e.handle_timeout(now);
        let mut hellos = 0;
        while let Some(t) = e.poll_transmit() {
            if let Ok(Datagram::Request { call: Call::Other { name, .. }, .. }) = crate::wire::decode(&t.payload) {
                hellos += usize::from(name == HELLO);
            }
        }
        if hellos == 0 {
            break;
        }
        sent += hellos;
    }
    sent
}

#[test]
fn one_lost_hello_does_not_make_one_of_ours_a_stock_peer() {
    let mut e = Engine::new(NodeId([1; 20]), small(0), Time::ZERO);
    let (peer, at) = (NodeId([2; 20]), addr(2));
    let d = Datagram::Request { id: MessageId([7; 20]), call: Call::Ping { sender: peer } }.encode().unwrap();
    e.handle_datagram(Time::ZERO, at, &d);
    let hello_ids = |e: &mut Engine| {
        let mut ids = Vec::new();
        while let Some(t) = e.poll_transmit() {
            if let Ok(Datagram::Request { id, call: Call::Other { name, .. } }) = crate::wire::decode(&t.payload) {
                if name == HELLO {
                    ids.push(id);
                }
            }
        }
        ids
    };
    assert_eq!(hello_ids(&mut e).len(), 1);
    // The first hello (or its answer) is lost: the peer is asked again, not
    // taken for a stock peer.
    e.handle_timeout(Time::from_secs(3));
    assert_eq!(e.peer_kind(&peer), PeerKind::Unknown);
    let again = hello_ids(&mut e);
    assert_eq!(again.len(), 1, "asked again");
    let answer = Datagram::Response { id: again[0], body: crate::engine::inbound::hello_body(peer) };
    e.handle_datagram(Time::from_secs(3), at, &answer.encode().unwrap());
    assert_eq!(e.peer_kind(&peer), PeerKind::Extended);
}
