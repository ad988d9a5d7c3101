//! The provider procedures as a peer reaches them, over the datagram path
//! (`engine::providers`): writes charged to the sender's quota, signed
//! entries and their owner's hold, refreshed entries, loads as any number,
//! and a page that does not fit an unverified asker's budget.

use ed25519_dalek::SigningKey;

use super::hand::*;
use super::*;
use crate::engine::providers::signature::{sign, Signed};
use crate::engine::providers::wire::write_entry;
use crate::engine::providers::{ADD, LIST};
use crate::limits::quota::{Quota, Share};
use crate::limits::Limits;

const NOW: Time = Time::from_secs(1_000);

fn service() -> Key {
    Key::for_key("service:ocr")
}

/// Contact 0 calls `name(sender, service, ...rest)` at `now`; the reply body, if any.
fn provider_call(e: &mut Engine, now: Time, name: &str, rest: Vec<Value>) -> Option<Value> {
    let mut args = vec![Value::Bin(contact_id(0).0.to_vec()), Value::Bin(service().0.to_vec())];
    args.extend(rest);
    let msg = MessageId([0xcd; 20]);
    let call = Call::Other { name: name.into(), args };
    e.handle_datagram(now, addr(1), &Datagram::Request { id: msg, call }.encode().unwrap());
    let mut reply = None;
    while let Some(t) = e.poll_transmit() {
        if let Ok(Datagram::Response { id, body }) = crate::wire::decode(&t.payload) {
            reply = reply.or((id == msg).then_some(body));
        }
    }
    reply
}

fn add(e: &mut Engine, now: Time, entries: Vec<Value>) -> Option<Value> {
    provider_call(e, now, ADD, vec![Value::Array(entries)])
}

fn plain(id: &str, version: u64, ttl_secs: u64, load: Value) -> Value {
    Value::Array(vec![Value::from(id), Value::from_u64(version), Value::from_u64(ttl_secs), load])
}

fn held(e: &Engine, now: Time) -> Vec<(String, Time, Option<f64>)> {
    e.providers().range(&service(), None, now).map(|p| (p.id.clone(), p.expires_at, p.load)).collect()
}

#[test]
fn writes_from_the_network_are_charged_to_the_senders_quota() {
    let two = Share { items: 2, bytes: usize::MAX };
    let quota = Quota { enabled: true, per_ip: two, per_prefix: Share { items: 100, bytes: usize::MAX } };
    let mut e =
        engine_with_contacts(Config { limits: Limits { providers: quota, ..Limits::default() }, ..Config::default() });
    let entries = vec![plain("w1", 1, 60, Value::Nil), plain("w2", 1, 60, Value::Nil), plain("w3", 1, 60, Value::Nil)];
    assert_eq!(add(&mut e, NOW, entries), Some(Value::Int(2)), "the third is over the sender's share");
    assert_eq!(e.limit_stats().provider_quota_refusals, 1);
    // Refreshing an entry it already holds costs the sender nothing more.
    assert_eq!(add(&mut e, NOW, vec![plain("w1", 2, 60, Value::Nil)]), Some(Value::Int(1)));
    assert_eq!(held(&e, NOW).len(), 2);
    // Loopback is exempt (limits.exempt_loopback): no share to use up.
    let local: SocketAddr = "127.0.0.1:9000".parse().unwrap();
    let args = vec![
        Value::Bin(vec![9; 20]),
        Value::Bin(service().0.to_vec()),
        Value::Array(vec![
            plain("l1", 1, 60, Value::Nil),
            plain("l2", 1, 60, Value::Nil),
            plain("l3", 1, 60, Value::Nil),
        ]),
    ];
    let call = Call::Other { name: ADD.into(), args };
    e.handle_datagram(NOW, local, &Datagram::Request { id: MessageId([2; 20]), call }.encode().unwrap());
    assert_eq!(held(&e, NOW).len(), 5);
}

#[test]
fn the_same_entry_again_extends_its_life_and_takes_any_number_as_load() {
    let mut e = engine_with_contacts(Config::default());
    assert_eq!(add(&mut e, NOW, vec![plain("w1", 1, 60, Value::Int(1))]), Some(Value::Int(1)));
    assert_eq!(held(&e, NOW), vec![("w1".into(), NOW + Duration::from_secs(60), Some(1.0))]);
    let later = NOW + Duration::from_secs(30);
    assert_eq!(add(&mut e, later, vec![plain("w1", 1, 60, Value::F32(0.5))]), Some(Value::Int(1)));
    assert_eq!(held(&e, later), vec![("w1".into(), later + Duration::from_secs(60), Some(0.5))]);
    // A shorter life never shortens it.
    assert_eq!(add(&mut e, later, vec![plain("w1", 1, 5, Value::Nil)]), Some(Value::Int(1)));
    assert_eq!(held(&e, later), vec![("w1".into(), later + Duration::from_secs(60), Some(0.5))]);
}

/// A write entry for `w1` signed by key `by`.
fn signed_entry(by: u8, version: u64) -> Value {
    let expires_at = (NOW + Duration::from_secs(300)).as_secs();
    let k = service();
    let s = Signed { key: &k, id: "w1", version, gone: false, load: None, expires_at };
    let sig = sign(&s, &SigningKey::from_bytes(&[by; 32]));
    write_entry("w1", version, Duration::from_secs(300), None, Some(&sig))
}

#[test]
fn a_signed_entry_is_held_for_its_owner_only() {
    let mut e = engine_with_contacts(Config::default());
    assert_eq!(add(&mut e, NOW, vec![signed_entry(1, 5)]), Some(Value::Int(1)));
    assert_eq!(held(&e, NOW).len(), 1);
    // An unsigned write cannot touch it, nor one signed by another key.
    assert_eq!(add(&mut e, NOW, vec![plain("w1", 9, 60, Value::Nil)]), Some(Value::Int(0)));
    assert_eq!(add(&mut e, NOW, vec![signed_entry(2, 9)]), Some(Value::Int(0)));
    // Its owner's newer version replaces it.
    assert_eq!(add(&mut e, NOW, vec![signed_entry(1, 6)]), Some(Value::Int(1)));
    assert_eq!(e.providers().range(&service(), None, NOW).next().map(|p| p.version), Some(6));
}

#[test]
fn a_signature_of_the_wrong_shape_or_count_is_no_entry() {
    let mut e = engine_with_contacts(Config::default());
    let Value::Array(mut good) = signed_entry(1, 5) else { panic!() };
    let mut short_key = good.clone();
    short_key[4] = Value::Bin(vec![1; 3]);
    let six = good[..6].to_vec();
    good[5] = Value::Int(-1);
    for bad in [short_key, six, good] {
        assert_eq!(add(&mut e, NOW, vec![Value::Array(bad.clone())]), Some(Value::Int(0)), "{bad:?}");
    }
    assert!(held(&e, NOW).is_empty());
}

#[test]
fn a_page_that_does_not_fit_an_unverified_askers_budget_is_not_sent() {
    let limits = Limits { reply_ratio: 1, ..Limits::default() };
    let mut e = engine_with_contacts(Config { limits, ..Config::default() });
    assert_eq!(add(&mut e, NOW, vec![plain("w1", 1, 60, Value::Nil)]), Some(Value::Int(1)));
    let stranger: SocketAddr = "10.77.0.1:4000".parse().unwrap();
    let args = vec![Value::Bin(vec![0x77; 20]), Value::Bin(service().0.to_vec()), Value::Nil, Value::Int(10)];
    let call = Call::Other { name: LIST.into(), args };
    e.handle_datagram(NOW, stranger, &Datagram::Request { id: MessageId([1; 20]), call }.encode().unwrap());
    let replies = std::iter::from_fn(|| e.poll_transmit())
        .filter(|t| t.to == stranger && matches!(crate::wire::decode(&t.payload), Ok(Datagram::Response { .. })))
        .count();
    assert_eq!(replies, 0, "an empty page would read as the end of the set");
    assert_eq!(e.stats().replies_trimmed, 1);
    // A verified contact gets the page.
    let page = provider_call(&mut e, NOW, LIST, vec![Value::Nil, Value::Int(10)]).expect("a page");
    assert_eq!(page.as_map_get("entries").and_then(Value::as_array).map(|a| a.len()), Some(1));
}
