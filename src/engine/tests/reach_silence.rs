//! Reachability detection when nobody answers (`engine::dialback`): an
//! `auto` node none of whose requests is answered says `no-udp`, and a
//! helper whose third node stays silent tells the requester nothing was
//! probed.

use super::hand::*;
use super::*;
use crate::reach::{ReachMode, Reachability};

fn is_call(c: &Call, procedure: &str) -> bool {
    matches!(c, Call::Other { name, .. } if name == procedure)
}

/// Fires `e`'s timers up to `end` (bounded in count).
fn run_until(e: &mut Engine, end: Time) {
    for _ in 0..200 {
        match e.poll_timeout() {
            Some(t) if t <= end => e.handle_timeout(t),
            _ => break,
        }
        let _ = sent_to(e);
    }
    e.handle_timeout(end);
}

#[test]
fn an_auto_node_that_hears_no_answer_at_all_says_no_udp() {
    let mut config = Config::default();
    config.reach.mode = ReachMode::Auto;
    let mut e = engine_knowing(config, CONTACTS.len());
    let now = Time::from_secs(1);
    e.check_reachability(now);
    let asked = sent_to(&mut e).iter().filter(|(_, _, c)| is_call(c, DIALBACK)).count();
    assert!(asked > 0, "a round starts at once");
    assert!(!e.unreachable(), "no verdict yet");
    run_until(&mut e, now + Duration::from_secs(30));
    assert_eq!(e.reachability().state, Reachability::NoUdp, "{:?}", e.reachability());
    assert!(e.unreachable());
    assert!(e.is_client(), "an auto node that cannot be reached acts as a client");
}

#[test]
fn a_relay_whose_third_node_is_silent_answers_not_probed() {
    let mut e = engine_with_contacts(Config::default());
    for i in 0..CONTACTS.len() {
        let hello = Call::Other { name: HELLO.into(), args: vec![Value::Bin(contact_id(i).0.to_vec())] };
        let _ = reply_to(&mut e, Time::ZERO, i, hello);
    }
    let msg = MessageId([0x5b; 20]);
    let args = vec![Value::Bin(contact_id(0).0.to_vec()), Value::Bin(vec![3; 8])];
    let call = Call::Other { name: DIALBACK.into(), args };
    e.handle_datagram(Time::ZERO, addr(1), &Datagram::Request { id: msg, call }.encode().unwrap());
    let replies_to_requester = |e: &mut Engine| {
        let mut out = Vec::new();
        while let Some(t) = e.poll_transmit() {
            match crate::wire::decode(&t.payload) {
                Ok(Datagram::Response { id, body }) if id == msg && t.to == addr(1) => out.push(body),
                Ok(Datagram::Request { call, .. }) => assert!(t.to != addr(1) || !is_call(&call, DIALBACK_PROBE)),
                _ => {}
            }
        }
        out
    };
    assert!(replies_to_requester(&mut e).is_empty(), "it waits for the third node");
    e.handle_timeout(Time::from_secs(10));
    let expected = Value::Array(vec![Value::Bool(false), crate::wire::stun_value(addr(1))]);
    assert_eq!(replies_to_requester(&mut e), vec![expected]);
}
