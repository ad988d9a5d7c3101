//! Contacts that stop answering: suspects, timeouts, the check ping, and
//! lookups that neither start from them nor follow pointers to them.

use super::*;

#[test]
fn find_node_replies_leave_out_suspect_and_timed_out_contacts() {
    use crate::wire::FindValueReply as Reply;
    let mut e = engine_with_contacts(Config::default());
    let key = id_at(0, 0);
    // Contact 0 asks: everyone else is listed.
    let everyone: Vec<NodeId> = sorted((1..CONTACTS.len()).map(contact_id).collect());
    assert_eq!(ask_find_node(&mut e, Time::from_secs(1), 0, key), everyone);
    let (suspect, failed) = (contact_id(1), contact_id(3));
    e.svc.routing.mark_suspect(&suspect);
    assert!(!e.svc.routing.record_failure(&failed, e.config().max_failures));
    let rest = sorted(vec![contact_id(2), contact_id(4)]);
    assert_eq!(ask_find_node(&mut e, Time::from_secs(2), 0, key), rest);
    // A find_value that misses points the asker at the same contacts.
    match ask_find_value(&mut e, Time::from_millis(2500), key) {
        Reply::Nodes(n) => assert_eq!(sorted(n.into_iter().map(|c| c.id).collect()), rest),
        other => panic!("expected nodes, got {other:?}"),
    }
    // Both are still ours, and listed again once they are heard from (the
    // others too: silent since 2 s, they would be due a check at 5 s and
    // left out until it is answered, see `routing::freshness`).
    assert!(e.routing().contains(&suspect) && e.routing().contains(&failed));
    for i in 1..CONTACTS.len() {
        ping_from(&mut e, Time::from_secs(4), i);
    }
    assert_eq!(ask_find_node(&mut e, Time::from_secs(5), 0, key), everyone);
}

/// An engine knowing contact 0 only, whose `find_node` through it went
/// unanswered until `rpc_timeout`; returns the engine and the message id of
/// the one ping it then sent to contact 0.
fn timed_out_once() -> (Engine, MessageId) {
    timed_out_once_with(Config::default())
}

/// `sent` without the `kadmesh_hello`s (asked again while unanswered).
fn not_hellos(sent: Vec<(SocketAddr, MessageId, Call)>) -> Vec<(SocketAddr, MessageId, Call)> {
    sent.into_iter().filter(|(_, _, c)| !matches!(c, Call::Other { name, .. } if name == HELLO)).collect()
}

fn timed_out_once_with(config: Config) -> (Engine, MessageId) {
    let mut e = engine_knowing(config, 1);
    let peer = contact_id(0);
    let _ = e.find_node(Time::ZERO, id_at(0, 0));
    assert_eq!(find_nodes_to(&sent_to(&mut e)), vec![addr(1)]);
    // The lookup's stall (1 s) and the hello's timeout (2 s) are not request
    // timeouts (the hello is asked again, nothing else goes out).
    e.handle_timeout(Time::from_secs(1));
    e.handle_timeout(Time::from_secs(2));
    assert!(not_hellos(sent_to(&mut e)).is_empty());
    assert_eq!(e.routing().failures(&peer), Some(0));
    let timeout = e.config().rpc_timeout;
    e.handle_timeout(Time::ZERO + timeout);
    assert_eq!(e.routing().failures(&peer), Some(1));
    match &not_hellos(sent_to(&mut e))[..] {
        [(to, id, Call::Ping { .. })] if *to == addr(1) => (e, *id),
        other => panic!("expected one ping to the contact that timed out, got {other:?}"),
    }
}

#[test]
fn a_timed_out_contact_that_answers_the_check_ping_stays_with_no_failures() {
    let (mut e, ping) = timed_out_once();
    let peer = contact_id(0);
    answer(&mut e, Time::from_secs(6), addr(1), ping, Value::Bin(peer.0.to_vec()));
    assert!(e.routing().contains(&peer));
    assert_eq!(e.routing().failures(&peer), Some(0));
    assert!(!is_suspect(&e, &peer));
    // Nothing is left to time out: it stays, and nothing more is sent.
    e.handle_timeout(Time::from_secs(20));
    assert!(e.routing().contains(&peer));
    assert_eq!(e.routing().failures(&peer), Some(0));
    assert!(sent_to(&mut e).is_empty());
}

#[test]
fn a_timed_out_contact_whose_check_ping_times_out_too_is_evicted() {
    let (mut e, _) = timed_out_once();
    let peer = contact_id(0);
    assert_eq!(e.config().max_failures, 2);
    let deadline = Time::ZERO + e.config().rpc_timeout * 2;
    e.handle_timeout(deadline - Duration::from_millis(1));
    assert!(e.routing().contains(&peer));
    e.handle_timeout(deadline);
    assert!(!e.routing().contains(&peer));
    assert!(e.routing().is_empty());
    assert!(sent_to(&mut e).is_empty(), "a failed check ping is not checked again");
}

#[test]
fn an_evicted_contact_is_asked_again_and_learned_back_when_it_answers() {
    let (mut e, _) = timed_out_once();
    let peer = contact_id(0);
    let evicted_at = Time::ZERO + e.config().rpc_timeout * 2;
    e.handle_timeout(evicted_at);
    assert!(!e.routing().contains(&peer));
    assert!(sent_to(&mut e).is_empty());
    // One recheck interval later (a healed partition, say) it gets a ping.
    let recheck = evicted_at + e.config().lost_recheck_every;
    assert!(e.poll_timeout().is_some_and(|t| t <= recheck));
    e.handle_timeout(recheck);
    let ping = match &sent_to(&mut e)[..] {
        [(to, id, Call::Ping { .. })] if *to == addr(1) => *id,
        other => panic!("expected a ping to the lost contact, got {other:?}"),
    };
    answer(&mut e, recheck, addr(1), ping, Value::Bin(peer.0.to_vec()));
    assert!(e.routing().contains(&peer));
    assert_eq!(e.stats().lost_rechecks, 1);
}

#[test]
fn an_evicted_contact_is_never_asked_again_with_rechecks_off() {
    let (mut e, _) = timed_out_once_with(Config { lost_recheck_every: Duration::ZERO, ..Config::default() });
    let evicted_at = Time::ZERO + e.config().rpc_timeout * 2;
    e.handle_timeout(evicted_at);
    // Nothing is due at once either (a deadline in the past would spin the driver).
    assert!(e.poll_timeout().is_none_or(|t| t > evicted_at));
    e.handle_timeout(evicted_at + Duration::from_secs(600));
    assert!(sent_to(&mut e).is_empty());
    assert_eq!(e.stats().lost_rechecks, 0);
}

#[test]
fn a_new_lookup_does_not_start_from_a_contact_that_timed_out() {
    let mut e = engine_with_contacts(Config::default());
    let target = id_at(0, 0);
    // Contact 0 is the closest to the target; contacts 1 and 2 follow, then 3.
    assert!(!e.svc.routing.record_failure(&contact_id(0), e.config().max_failures));
    let _ = e.find_node(Time::from_secs(1), target);
    assert_eq!(find_nodes_to(&sent_to(&mut e)), vec![addr(2), addr(3), addr(4)]);
    // Once it answers again, the next lookup starts from it.
    ping_from(&mut e, Time::from_secs(1), 0);
    let _ = e.find_node(Time::from_secs(1), target);
    assert_eq!(find_nodes_to(&sent_to(&mut e)), vec![addr(1), addr(2), addr(3)]);
}

#[test]
fn a_lookup_still_starts_from_timed_out_contacts_when_it_knows_no_other() {
    let mut e = engine_knowing(Config::default(), 1);
    assert!(!e.svc.routing.record_failure(&contact_id(0), e.config().max_failures));
    let _ = e.find_node(Time::from_secs(1), id_at(0, 0));
    assert_eq!(find_nodes_to(&sent_to(&mut e)), vec![addr(1)]);
}

#[test]
fn a_lookup_does_not_follow_pointers_to_a_contact_that_timed_out() {
    let mut e = engine_with_contacts(Config::default());
    let dead = known(0);
    assert!(!e.svc.routing.record_failure(&dead.id, e.config().max_failures));
    let now = Time::from_secs(1);
    let q = e.find_node(now, id_at(0, 0));
    // Everyone asked answers at once, naming the dead contact: the closest to the target.
    let mut asked = Vec::new();
    let mut pending = sent_to(&mut e);
    while let Some((to, id, call)) = pending.pop() {
        if matches!(call, Call::FindNode { .. }) {
            asked.push(to);
            answer(&mut e, now, to, id, crate::wire::contacts_value(&[dead]));
            pending.extend(sent_to(&mut e));
        }
    }
    asked.sort();
    assert_eq!(asked, vec![addr(2), addr(3), addr(4), addr(5)]);
    match e.poll_event() {
        Some(Event { id, outcome: Outcome::FindNode { closest, .. } }) if id == q => {
            assert_eq!(closest.len(), 4);
            assert!(!closest.contains(&dead));
        }
        other => panic!("expected the lookup to finish, got {other:?}"),
    }
}

#[test]
fn a_stalled_query_marks_the_contact_suspect() {
    let mut e = engine_with_contacts(Config::default());
    let _ = e.find_node(Time::ZERO, id_at(0, 0));
    let sent = sent_to(&mut e);
    assert_eq!(find_nodes_to(&sent), vec![addr(1), addr(2), addr(3)]);
    // Contacts 1 and 2 answer; contact 0 stays silent. Contacts 3 and 4 are asked next.
    for (to, id, _) in &sent[1..] {
        answer(&mut e, Time::from_millis(100), *to, *id, crate::wire::contacts_value(&[]));
    }
    assert_eq!(find_nodes_to(&sent_to(&mut e)), vec![addr(4), addr(5)]);
    // No rtt sample when the lookup began: it stalls on a query after lookup_stall (1 s).
    e.handle_timeout(Time::from_millis(999));
    assert!(!is_suspect(&e, &contact_id(0)));
    e.handle_timeout(Time::from_millis(1000));
    assert!(is_suspect(&e, &contact_id(0)));
    // Only suspect: still ours, no timeout recorded, nobody else marked.
    assert!(e.routing().contains(&contact_id(0)));
    assert_eq!(e.routing().failures(&contact_id(0)), Some(0));
    assert!((1..CONTACTS.len()).all(|i| !is_suspect(&e, &contact_id(i))));
    // Others are no longer pointed at it.
    let listed = ask_find_node(&mut e, Time::from_millis(1000), 1, id_at(0, 0));
    assert_eq!(listed, sorted(vec![contact_id(2), contact_id(3), contact_id(4)]));
}
