//! Which copy a node answers with, and what a store with a lifetime does to
//! the copy it holds.

use super::*;

#[test]
fn old_copies_are_served_only_near_the_key_or_by_their_publisher() {
    use crate::wire::FindValueReply as Reply;
    // k = 4: `third` is among the k closest but not the k/2 = 2 closest;
    // `close` is among the 2 closest; `far` is far but we publish it.
    let mut e = engine_with_contacts(Config { k: 4, ..Config::default() });
    let (third, close, far) = (id_at(0x80, 3), id_at(0x80, 5), id_at(0, 0));
    for key in [third, close, far] {
        e.store.put(key, Value::Int(7), None, Time::ZERO, Duration::from_secs(3600)).unwrap();
    }
    e.restore_published(Time::ZERO, vec![(far, Value::Int(7))], Duration::from_secs(600));
    assert_eq!(e.config().cache_ttl, Duration::from_secs(60));

    // Younger than cache_ttl: served wherever it is held.
    assert_eq!(ask_find_value(&mut e, Time::from_secs(30), third), Reply::Value(Value::Int(7)));
    // Older: `third` points the asker at closer nodes instead (heard from
    // lately, so none is due a check and left out of the answer).
    let late = Time::from_secs(61);
    for i in 1..CONTACTS.len() {
        ping_from(&mut e, late, i);
    }
    assert!(matches!(ask_find_value(&mut e, late, third), Reply::Nodes(n) if !n.is_empty()));
    assert_eq!(ask_find_value(&mut e, late, close), Reply::Value(Value::Int(7)));
    assert_eq!(ask_find_value(&mut e, late, far), Reply::Value(Value::Int(7)));
}

#[test]
fn local_get_skips_an_old_copy_held_far_from_the_key() {
    let mut e = engine_with_contacts(Config { k: 4, ..Config::default() });
    let (third, close) = (id_at(0x80, 3), id_at(0x80, 5));
    for key in [third, close] {
        e.store.put(key, Value::Int(7), None, Time::ZERO, Duration::from_secs(3600)).unwrap();
    }
    let late = Time::from_secs(61);
    // Near the key: answered from the store at once.
    let q = e.get(late, close);
    match e.poll_event() {
        Some(Event { id, outcome: Outcome::Get(g) }) if id == q => assert!(g.local && g.value == Some(Value::Int(7))),
        other => panic!("expected a local answer, got {other:?}"),
    }
    assert!(sent_requests(&mut e).is_empty());
    // Old and outside the k/2 closest: a lookup instead of the local copy.
    let _ = e.get(late, third);
    assert!(e.poll_event().is_none(), "answered locally from an old, far copy");
    let asked = sent_requests(&mut e);
    assert!(asked.iter().any(|c| matches!(c, Call::FindValue { key, .. } if *key == third)), "{asked:?}");
}

/// Contact 0 sends `e` a `kadmesh_store_ttl` for `key` with a lifetime of
/// `secs` at `now`; returns the store reply.
fn send_store_ttl(e: &mut Engine, now: Time, key: Key, value: Value, secs: i64) -> bool {
    let sender = Value::Bin(id_at(CONTACTS[0].0, CONTACTS[0].1).0.to_vec());
    let args = vec![sender, Value::Bin(key.0.to_vec()), value, Value::Int(secs)];
    let call = Call::Other { name: STORE_TTL.into(), args };
    crate::wire::parse_store_reply(&reply_to(e, now, 0, call)).unwrap()
}

#[test]
fn a_short_store_ttl_never_shortens_the_copy_held() {
    let mut e = engine_with_contacts(Config::default());
    let day = Duration::from_secs(24 * 3600);
    let (held, fresh) = (id_at(0x80, 3), id_at(0x80, 5));
    e.store.put(held, Value::Int(1), None, Time::ZERO, day).unwrap();
    let old = e.store().get(&held, Time::ZERO).unwrap().expires_at;
    // A cache copy (or a replica near its end) of the same key, 60 s to live.
    let now = Time::from_secs(100);
    assert!(send_store_ttl(&mut e, now, held, Value::Int(2), 60));
    let r = e.store().get(&held, now).unwrap();
    assert_eq!(r.value, Value::Int(2), "the value is replaced");
    assert!(r.expires_at >= old, "cut from {old:?} to {:?}", r.expires_at);
    assert!(e.store().get(&held, now + Duration::from_secs(3600)).is_some());
    // A key not held takes the lifetime it is sent with.
    assert!(send_store_ttl(&mut e, now, fresh, Value::Int(3), 60));
    assert_eq!(e.store().get(&fresh, now).unwrap().expires_at, now + Duration::from_secs(60));
    e.handle_timeout(now + Duration::from_secs(60));
    assert!(e.store().get(&fresh, now + Duration::from_secs(60)).is_none());
    assert!(e.store().get(&held, now + Duration::from_secs(60)).is_some());
}
