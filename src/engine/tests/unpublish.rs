//! A key unpublished while its republish waits in the maintenance queue
//! (`engine::maintenance`, one task at a time) is not stored again.

use super::hand::*;
use super::*;

/// Answers every lookup query with no contacts and every store with true,
/// firing timers up to `end` (bounded); the keys stored, in order.
fn settle(e: &mut Engine, mut now: Time, end: Time) -> Vec<Key> {
    let mut stored = Vec::new();
    for _ in 0..100 {
        let sent = sent_to(e);
        let quiet = sent.is_empty();
        for (to, id, call) in sent {
            match call {
                Call::FindNode { .. } => answer(e, now, to, id, Value::Array(Vec::new())),
                Call::Store { key, .. } => {
                    stored.push(key);
                    answer(e, now, to, id, Value::Bool(true));
                }
                _ => {}
            }
        }
        match e.poll_timeout() {
            Some(t) if t <= end => {
                now = now.max(t);
                e.handle_timeout(now);
            }
            _ if quiet => break,
            _ => {}
        }
    }
    stored
}

#[test]
fn a_republish_still_queued_when_its_key_is_unpublished_is_dropped() {
    let mut e = engine_with_contacts(Config { max_maintenance_ops: 1, ..Config::default() });
    let (a, b) = (id_at(0, 0), id_at(0, 9));
    for key in [a, b] {
        e.put(Time::ZERO, key, Value::Int(1));
        assert_eq!(settle(&mut e, Time::ZERO, Time::ZERO), vec![key; 5]);
    }
    while e.poll_event().is_some() {}
    // Both are due; one republish runs, the other waits for its slot.
    let due = Time::ZERO + e.config().republish_interval;
    e.handle_timeout(due);
    let sent = sent_to(&mut e);
    let running: Vec<Key> = sent
        .iter()
        .filter_map(|(_, _, c)| match c {
            Call::FindNode { key, .. } => Some(*key),
            _ => None,
        })
        .collect();
    assert!(!running.is_empty());
    let first = running[0];
    assert!(running.iter().all(|k| *k == first), "one task at a time");
    let waiting = if first == a { b } else { a };
    assert!(e.unpublish(&waiting));
    for (to, id, _) in sent {
        answer(&mut e, due, to, id, Value::Array(Vec::new()));
    }
    let stored = settle(&mut e, due, due + Duration::from_secs(60));
    assert!(stored.contains(&first), "the running republish stores");
    assert!(!stored.contains(&waiting), "the unpublished one does not: {stored:?}");
}
