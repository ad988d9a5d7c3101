//! Answering others' requests at the edges (`engine::inbound`): stores
//! refused by the signed-record rule or the store's limits, exempt
//! sources, expired `kadmesh_store_ttl` writes, unknown procedures, replies
//! cut to the budget of an unverified asker; and the checks a reply can
//! fail (`engine::router`): a check or eviction ping answered by another id.

use super::hand::*;
use super::*;
use crate::limits::quota::{Quota, Share};
use crate::limits::Limits;
use crate::store::StoreLimits;

/// `call` from `from` at `now`; the body of `e`'s reply, if it sent one.
fn request_from(e: &mut Engine, now: Time, from: SocketAddr, call: Call) -> Option<Value> {
    let msg = MessageId([0xab; 20]);
    e.handle_datagram(now, from, &Datagram::Request { id: msg, call }.encode().unwrap());
    let mut reply = None;
    while let Some(t) = e.poll_transmit() {
        if let Ok(Datagram::Response { id, body }) = crate::wire::decode(&t.payload) {
            if id == msg && t.to == from {
                reply = Some(body);
            }
        }
    }
    reply
}

fn store(sender: NodeId, key: Key, value: Value) -> Call {
    Call::Store { sender, key, value }
}

fn store_ttl(sender: NodeId, key: Key, value: Value, secs: i64) -> Call {
    let args = vec![Value::Bin(sender.0.to_vec()), Value::Bin(key.0.to_vec()), value, Value::Int(secs)];
    Call::Other { name: STORE_TTL.into(), args }
}

#[test]
fn a_record_that_looks_signed_but_does_not_verify_is_refused() {
    let mut e = engine_with_contacts(Config::default());
    let key = Key::for_key("worker:w1");
    let forged = format!(r#"{{"worker_id":"w1","seq":1,"sig":"{}"}}"#, "00".repeat(64));
    assert!(crate::signed::looks_signed(&forged));
    assert_eq!(reply_to(&mut e, Time::ZERO, 0, store(contact_id(0), key, Value::Str(forged))), Value::Bool(false));
    assert!(e.store().get(&key, Time::ZERO).is_none());
    assert_eq!((e.stats().stores_accepted, e.stats().stores_refused), (0, 1));
    // A plain value under the same key is stored as in any Kademlia.
    assert_eq!(reply_to(&mut e, Time::ZERO, 0, store(contact_id(0), key, Value::Int(1))), Value::Bool(true));
}

#[test]
fn a_value_over_the_stores_limit_is_refused() {
    let limits = StoreLimits { max_value_bytes: 100, ..StoreLimits::default() };
    let mut e = engine_with_contacts(Config { store_limits: limits, ..Config::default() });
    let big = Value::Str("x".repeat(200));
    assert_eq!(reply_to(&mut e, Time::ZERO, 0, store(contact_id(0), id_at(1, 1), big)), Value::Bool(false));
    assert_eq!(e.stats().stores_refused, 1);
    assert!(e.store().get(&id_at(1, 1), Time::ZERO).is_none());
}

#[test]
fn the_record_quota_binds_other_sources_but_not_loopback() {
    let one = Share { items: 1, bytes: usize::MAX };
    let quota = Quota { enabled: true, per_ip: one, per_prefix: Share { items: 100, bytes: usize::MAX } };
    let mut e =
        engine_with_contacts(Config { limits: Limits { records: quota, ..Limits::default() }, ..Config::default() });
    let from_contact = |e: &mut Engine, key| reply_to(e, Time::ZERO, 0, store(contact_id(0), key, Value::Int(1)));
    assert_eq!(from_contact(&mut e, id_at(1, 1)), Value::Bool(true));
    assert_eq!(from_contact(&mut e, id_at(1, 2)), Value::Bool(false), "its one record is held");
    // Loopback is exempt (limits.exempt_loopback): no share to use up.
    let local: SocketAddr = "127.0.0.1:9000".parse().unwrap();
    for key in [id_at(1, 3), id_at(1, 4)] {
        let reply = request_from(&mut e, Time::ZERO, local, store(NodeId([9; 20]), key, Value::Int(7)));
        assert_eq!(reply, Some(Value::Bool(true)));
        assert_eq!(e.store().get(&key, Time::ZERO).map(|r| r.value.clone()), Some(Value::Int(7)));
    }
}

#[test]
fn a_store_ttl_of_zero_is_refused_and_a_positive_one_sets_the_expiry() {
    let mut e = engine_with_contacts(Config::default());
    let (a, b) = (id_at(1, 1), id_at(1, 2));
    assert_eq!(
        request_from(&mut e, Time::ZERO, addr(1), store_ttl(contact_id(0), a, Value::Int(1), 0)),
        Some(Value::Bool(false))
    );
    assert!(e.store().get(&a, Time::ZERO).is_none());
    assert_eq!(
        request_from(&mut e, Time::ZERO, addr(1), store_ttl(contact_id(0), b, Value::Int(1), 60)),
        Some(Value::Bool(true))
    );
    assert_eq!(e.store().get(&b, Time::ZERO).map(|r| r.expires_at), Some(Time::from_secs(60)));
    // Malformed arguments get no reply at all.
    let bad = Call::Other { name: STORE_TTL.into(), args: vec![Value::Int(1)] };
    assert_eq!(request_from(&mut e, Time::ZERO, addr(1), bad), None);
}

#[test]
fn an_unknown_procedure_gets_no_reply_like_rpcudp() {
    let mut e = engine_with_contacts(Config::default());
    let call = Call::Other { name: "no_such_rpc".into(), args: vec![Value::Bin(contact_id(0).0.to_vec())] };
    assert_eq!(request_from(&mut e, Time::ZERO, addr(1), call), None);
    // A known procedure from the same sender is answered.
    assert!(request_from(&mut e, Time::ZERO, addr(1), Call::Ping { sender: contact_id(0) }).is_some());
}

/// An engine knowing `n` more contacts than [`engine_with_contacts`], all settled.
/// Replies to unverified addresses are held to 4 times the request's size.
fn engine_knowing_many(n: u32) -> Engine {
    let limits = Limits { reply_ratio: 4, ..Limits::default() };
    let mut e = engine_with_contacts(Config { limits, ..Config::default() });
    for i in 0..n {
        let c =
            Contact::new(NodeId::digest(&i.to_be_bytes()), SocketAddr::from(([10, 1, (i >> 8) as u8, i as u8], 8468)));
        e.learn_answered(Time::ZERO, c);
        e.svc.routing.mark_answered(&c.id, Time::ZERO + crate::routing::freshness::SETTLE);
    }
    let _ = sent_requests(&mut e);
    e
}

#[test]
fn replies_to_an_unverified_asker_are_cut_to_its_budget() {
    let mut e = engine_knowing_many(60);
    let key = id_at(1, 1);
    let value = Value::Str("v".repeat(2000));
    assert_eq!(reply_to(&mut e, Time::ZERO, 0, store(contact_id(0), key, value.clone())), Value::Bool(true));
    let stranger: SocketAddr = "10.77.0.1:4000".parse().unwrap();
    let ask = |e: &mut Engine, call| request_from(e, Time::ZERO, stranger, call).expect("a reply");

    // The value is far larger than the request: contacts instead, and as many as fit.
    let body = ask(&mut e, Call::FindValue { sender: NodeId([0x77; 20]), key });
    let listed = crate::wire::parse_find_node_reply(&body).expect("a contact list, not the value");
    assert!(!listed.is_empty() && listed.len() < e.config().k, "{} contacts", listed.len());
    let trimmed = e.stats().replies_trimmed;
    assert_eq!(trimmed, 2, "the value, then the contact list");
    let body = ask(&mut e, Call::FindNode { sender: NodeId([0x77; 20]), key });
    assert_eq!(crate::wire::parse_find_node_reply(&body).unwrap().len(), listed.len());
    assert_eq!(e.stats().replies_trimmed, trimmed + 1);

    // A verified contact gets the value whole.
    assert_eq!(ask_find_value(&mut e, Time::ZERO, key), crate::wire::FindValueReply::Value(value));
}

#[test]
fn a_check_answered_by_another_id_is_a_strike() {
    let mut e = engine_knowing(Config::default(), 0);
    let impostor = contact_id(1);
    // The first check is the (node-marked) newcomer's hello, the second a
    // ping: an answer naming another node fails either.
    let sent = marked_ping_from(&mut e, Time::ZERO, 0);
    assert!(!sent.iter().any(|(_, _, c)| matches!(c, Call::Ping { .. })), "{sent:?}");
    let (first, body) = check_answered_by(&sent, 0, impostor);
    answer(&mut e, Time::from_millis(10), addr(1), first, body);
    assert!(e.routing().contains(&contact_id(0)), "one strike of two");
    assert!(!e.routing().is_verified(&contact_id(0)));
    assert_ne!(e.peer_kind(&contact_id(0)), PeerKind::Extended, "the impostor's kind is not the newcomer's");
    let (second, body) = check_answered_by(&sent_to(&mut e), 0, impostor);
    answer(&mut e, Time::from_millis(20), addr(1), second, body);
    assert!(!e.routing().contains(&contact_id(0)), "two strikes: gone");
}

/// When the eviction ping goes out: a full bucket whose oldest contact was
/// seen within `RECENTLY_SEEN` only parks a newcomer.
const LATER: Time = Time::from_secs(301);

/// A k = 2 engine whose far bucket holds contacts 0 and 1 (not heard from
/// for a while), and contact 2 just heard from: the eviction ping `e` sent
/// to the bucket's oldest.
fn full_bucket() -> (Engine, SocketAddr, MessageId, NodeId) {
    let mut e = engine_knowing(Config { k: 2, ..Config::default() }, 2);
    let sent = ping_from(&mut e, LATER, 2);
    let pings: Vec<_> = sent.iter().filter(|(_, _, c)| matches!(c, Call::Ping { .. })).collect();
    assert_eq!(pings.len(), 1, "{sent:?}");
    let (to, id, _) = pings[0];
    let oldest = if *to == addr(1) { contact_id(0) } else { contact_id(1) };
    assert!(!e.routing().contains(&contact_id(2)), "waiting in the replacement cache");
    (e, *to, *id, oldest)
}

#[test]
fn an_eviction_ping_answered_by_another_id_or_unanswered_lets_the_newcomer_in() {
    let (mut e, to, id, oldest) = full_bucket();
    answer(&mut e, LATER, to, id, Value::Bin(contact_id(4).0.to_vec()));
    assert!(!e.routing().contains(&oldest));
    assert!(e.routing().contains(&contact_id(2)));

    let (mut e, _, _, oldest) = full_bucket();
    e.handle_timeout(LATER + Duration::from_secs(10));
    assert!(!e.routing().contains(&oldest));
    assert!(e.routing().contains(&contact_id(2)));

    let (mut e, to, id, oldest) = full_bucket();
    answer(&mut e, LATER, to, id, Value::Bin(oldest.0.to_vec()));
    assert!(e.routing().contains(&oldest), "the oldest answered: it stays");
    assert!(!e.routing().contains(&contact_id(2)));
}
