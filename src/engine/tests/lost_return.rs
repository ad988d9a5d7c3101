//! A contact evicted for silence that comes back by itself before its
//! recheck (`engine::lost`): it is found, not pinged again.

use super::hand::*;
use super::*;

fn pings_to(sent: &[(SocketAddr, MessageId, Call)], to: SocketAddr) -> Vec<MessageId> {
    sent.iter().filter(|(a, _, c)| *a == to && matches!(c, Call::Ping { .. })).map(|(_, id, _)| *id).collect()
}

/// An engine knowing contact 0, which then times out twice (its query, then
/// the check ping) and is evicted, remembered as lost; returns the engine
/// and when it was evicted.
fn with_contact_0_lost() -> (Engine, Time) {
    with_lost(1)
}

/// An engine whose `n` contacts all time out twice (a query, then the check
/// ping) and are evicted, as when a partition cut them off; and when.
fn with_lost(n: usize) -> (Engine, Time) {
    let mut e = engine_knowing(Config::default(), n);
    let timeout = e.config().rpc_timeout;
    let _ = e.find_node(Time::ZERO, id_at(0, 0));
    let _ = sent_to(&mut e);
    e.handle_timeout(Time::ZERO + timeout);
    let sent = sent_to(&mut e);
    assert!((1..=n).all(|i| pings_to(&sent, addr(i)).len() == 1), "the check pings: {sent:?}");
    let evicted_at = Time::ZERO + timeout * 2;
    e.handle_timeout(evicted_at);
    assert_eq!(e.routing().len(), 0);
    let _ = sent_to(&mut e);
    (e, evicted_at)
}

#[test]
fn a_lost_contact_that_came_back_by_itself_is_not_asked_again() {
    let (mut e, evicted_at) = with_contact_0_lost();
    let peer = contact_id(0);
    // It pings us before its recheck and answers our check: back in the table.
    let back = evicted_at + Duration::from_secs(1);
    for id in pings_to(&ping_from(&mut e, back, 0), addr(1)) {
        answer(&mut e, back, addr(1), id, Value::Bin(peer.0.to_vec()));
    }
    assert!(e.routing().contains(&peer));
    // Its recheck comes and goes without a ping.
    let recheck = evicted_at + e.config().lost_recheck_every;
    e.handle_timeout(recheck);
    assert_eq!(pings_to(&sent_to(&mut e), addr(1)), Vec::<MessageId>::new());
    assert_eq!(e.stats().lost_rechecks, 0);
    // Nor later: it is no longer lost.
    e.handle_timeout(recheck + e.config().lost_recheck_every);
    assert_eq!(pings_to(&sent_to(&mut e), addr(1)), Vec::<MessageId>::new());
}

#[test]
fn a_lost_contact_that_turns_out_to_be_a_client_is_not_asked_again() {
    let (mut e, evicted_at) = with_contact_0_lost();
    let peer = contact_id(0);
    // It asks us something as a client (behind NAT, it found out): its
    // request opened a NAT mapping, so a recheck ping would be answered and
    // would put a client back in the table, to be handed out.
    let call = Call::Ping { sender: peer };
    let marked = crate::reach::marker::mark([7; 20]);
    e.handle_datagram(evicted_at, addr(1), &Datagram::Request { id: marked, call }.encode().unwrap());
    let _ = sent_to(&mut e);
    let recheck = evicted_at + e.config().lost_recheck_every;
    e.handle_timeout(recheck);
    e.handle_timeout(recheck + e.config().lost_recheck_every);
    assert_eq!(pings_to(&sent_to(&mut e), addr(1)), Vec::<MessageId>::new(), "a client was re-pinged");
    assert_eq!(e.stats().lost_rechecks, 0);
    assert!(!e.routing().contains(&peer));
}

#[test]
fn a_lost_contact_that_answers_again_has_every_other_asked_at_once() {
    let (mut e, evicted_at) = with_lost(3);
    let every = e.config().lost_recheck_every;
    // The first recheck asks one of them.
    let recheck = evicted_at + every;
    e.handle_timeout(recheck);
    let sent = sent_to(&mut e);
    let asked: Vec<_> = (1..=3).filter(|&i| !pings_to(&sent, addr(i)).is_empty()).collect();
    assert_eq!(asked.len(), 1, "one recheck: {sent:?}");
    let back = asked[0];
    // It answers: the cut has healed. The other two are asked now, not one
    // per recheck interval.
    let id = pings_to(&sent, addr(back))[0];
    answer(&mut e, recheck, addr(back), id, Value::Bin(contact_id(back - 1).0.to_vec()));
    e.handle_timeout(recheck);
    let sent = sent_to(&mut e);
    let others: Vec<_> = (1..=3).filter(|&i| i != back && !pings_to(&sent, addr(i)).is_empty()).collect();
    assert_eq!(others.len(), 2, "{sent:?}");
    // Another answer soon after asks nobody again.
    let second = others[0];
    let id = pings_to(&sent, addr(second))[0];
    answer(&mut e, recheck, addr(second), id, Value::Bin(contact_id(second - 1).0.to_vec()));
    let third = others[1];
    assert!(pings_to(&sent_to(&mut e), addr(third)).is_empty(), "asked twice in one flush");
}

#[test]
fn a_lost_contact_that_answers_again_makes_the_next_provider_read_look_up() {
    use crate::engine::op::provider_read::memory::Remembered;
    let (mut e, evicted_at) = with_lost(1);
    let key = id_at(0x40, 0);
    let replica = Contact::new(id_at(0x40, 1), addr(9));
    let recheck = evicted_at + e.config().lost_recheck_every;
    e.handle_timeout(recheck);
    let found = Remembered { replicas: vec![replica], hint: None, found_at: recheck, sized_at: recheck };
    e.read_memory.remember(key, found);
    assert!(e.read_memory.recall(&key, recheck).is_some(), "remembered while the cut is open");
    let id = pings_to(&sent_to(&mut e), addr(1))[0];
    answer(&mut e, recheck, addr(1), id, Value::Bin(contact_id(0).0.to_vec()));
    // The cut healed: replicas found while it was open are not read from.
    assert!(e.read_memory.recall(&key, recheck).is_none());
}
