//! Which peers speak our extensions: `kadmesh_hello`, asked again later when
//! it went unanswered.

use super::*;

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
    e.handle_timeout(Time::from_secs(3));
    assert_eq!(e.peer_kind(&peer), PeerKind::Base);
    assert_eq!(ping_from_peer(&mut e, Time::from_secs(60)), 0, "not asked again so soon");
    assert_eq!(ping_from_peer(&mut e, Time::from_secs(3) + REPROBE_AFTER), 1, "asked again later");
}
