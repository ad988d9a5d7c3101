//! Nodes replies that name their sender (EXTENSIONS.md §7.1b): a kadmesh
//! node answers a marked `find_node` / `find_value` miss with its own id
//! after the contacts, and the asker learns from it that the node speaks the
//! extensions, without a hello.

use std::net::SocketAddr;

use super::hand::*;
use super::*;
use crate::reach::marker::{mark, mark_node};
use crate::wire::{answering_node, parse_find_node_reply};

/// Contact 0 sends `e` `call` with message id `msg`; returns the reply's body.
fn reply_with_id(e: &mut Engine, msg: MessageId, call: Call) -> Value {
    reply_to_id(e, Time::ZERO, 0, msg, call)
}

#[test]
fn a_marked_asker_gets_our_id_after_the_contacts_and_a_stock_one_does_not() {
    let mut e = engine_with_contacts(Config::default());
    let me = e.id();
    let key = id_at(0, 0);
    let find_node = Call::FindNode { sender: contact_id(0), key };
    let stock = reply_with_id(&mut e, MessageId([0xaa; 20]), find_node.clone());
    let node = reply_with_id(&mut e, mark_node([0xab; 20]), find_node.clone());
    let client = reply_with_id(&mut e, mark([0xac; 20]), find_node);
    let miss = reply_with_id(&mut e, mark_node([0xad; 20]), Call::FindValue { sender: contact_id(0), key });
    // A stock asker gets the plain list of triples Python's kademlia reads.
    let Value::Array(plain) = &stock else { panic!("a list") };
    assert!(!plain.is_empty() && plain.iter().all(|c| matches!(c, Value::Array(t) if t.len() == 3)));
    assert_eq!(answering_node(&stock), None);
    for body in [&node, &client, &miss] {
        assert_eq!(answering_node(body), Some(me));
        assert_eq!(parse_find_node_reply(body).unwrap(), parse_find_node_reply(&stock).unwrap());
    }
}

/// A contact listed by contact 0, never heard from: `[0, ..., 0x10 + i]`.
fn newcomer(i: u8) -> Contact {
    Contact::new(id_at(0, 0x10 + i), addr(20 + usize::from(i)))
}

fn hello_went_to(sent: &[(SocketAddr, MessageId, Call)], to: SocketAddr) -> bool {
    sent.iter().any(|(a, _, c)| *a == to && matches!(c, Call::Other { name, .. } if name == HELLO))
}

#[test]
fn a_lookup_reply_naming_its_sender_makes_it_one_of_ours_without_a_hello() {
    let mut e = engine_knowing(Config::default(), 1);
    let now = Time::from_secs(1);
    e.find_node(now, id_at(0, 0));
    let sent = sent_to(&mut e);
    let (_, first, _) = sent.iter().find(|(to, _, c)| *to == addr(1) && matches!(c, Call::FindNode { .. })).unwrap();
    let listed: Vec<Contact> = (1..=4).map(newcomer).collect();
    answer(&mut e, now, addr(1), *first, contacts_named(&listed, Some(contact_id(0))));
    // Three in flight (alpha): 1 names itself, 2 names someone else, 3 no one.
    let mut sent = sent_to(&mut e);
    let asked = |sent: &[(SocketAddr, MessageId, Call)], c: &Contact| {
        sent.iter().find(|(to, _, call)| *to == c.addr && matches!(call, Call::FindNode { .. })).map(|(_, id, _)| *id)
    };
    let names = [Some(newcomer(1).id), Some(NodeId([0x77; 20])), None];
    for (c, name) in listed[..3].iter().zip(names) {
        let id = asked(&sent, c).expect("asked");
        // Fast path: IPv4 triples only.
        answer(&mut e, now, c.addr, id, contacts_named(&[], name));
    }
    sent.extend(sent_to(&mut e));
    // 4 names itself after an IPv6 contact, which the general path reads.
    let v6 = Contact::new(id_at(0, 0x30), "[2001:db8::1]:8468".parse().unwrap());
    let id = asked(&sent, &listed[3]).expect("the fourth asked once one answered");
    answer(&mut e, now, listed[3].addr, id, contacts_named(&[v6], Some(newcomer(4).id)));
    sent.extend(sent_to(&mut e));
    assert_eq!(e.peer_kind(&contact_id(0)), PeerKind::Extended);
    for (i, ours) in [(1, true), (2, false), (3, false), (4, true)] {
        let c = newcomer(i);
        assert_eq!(e.peer_kind(&c.id) == PeerKind::Extended, ours, "newcomer {i}");
        assert_eq!(hello_went_to(&sent, c.addr), !ours, "hello to newcomer {i}");
    }
}

/// A nodes reply body listing `contacts`, then `name` if any.
fn contacts_named(contacts: &[Contact], name: Option<NodeId>) -> Value {
    let mut body = crate::wire::contacts_value(contacts);
    if let (Value::Array(items), Some(n)) = (&mut body, name) {
        items.push(Value::Bin(n.0.to_vec()));
    }
    body
}

#[test]
fn a_contact_taken_for_a_stock_peer_whose_reply_names_it_is_one_of_ours() {
    // Its hellos went unanswered (lost across a partition, say): its named
    // reply says it speaks kadmesh after all.
    let mut e = engine_knowing(Config::default(), 1);
    e.peers.insert(contact_id(0), PeerKind::Base);
    let now = Time::from_secs(1);
    e.find_node(now, id_at(0, 0));
    let sent = sent_to(&mut e);
    let (_, id, _) = sent.iter().find(|(to, _, c)| *to == addr(1) && matches!(c, Call::FindNode { .. })).unwrap();
    answer(&mut e, now, addr(1), *id, contacts_named(&[], Some(contact_id(0))));
    assert_eq!(e.peer_kind(&contact_id(0)), PeerKind::Extended);
}

#[test]
fn a_node_reached_by_its_url_still_says_hello_once_to_a_named_contact() {
    // The hello is what announces its URL (EXTENSIONS.md §6.3): knowing the
    // contact's kind from its reply must not leave the URL unsaid.
    let config = Config { tunnel_url: Some("https://me.tunnel.example".into()), ..Config::default() };
    let mut e = engine_knowing(config, 1);
    let now = Time::from_secs(1);
    e.find_node(now, id_at(0, 0));
    let sent = sent_to(&mut e);
    let (_, first, _) = sent.iter().find(|(to, _, c)| *to == addr(1) && matches!(c, Call::FindNode { .. })).unwrap();
    answer(&mut e, now, addr(1), *first, contacts_named(&[newcomer(1)], Some(contact_id(0))));
    let sent = sent_to(&mut e);
    let (_, id, _) =
        sent.iter().find(|(to, _, c)| *to == newcomer(1).addr && matches!(c, Call::FindNode { .. })).unwrap();
    answer(&mut e, now, newcomer(1).addr, *id, contacts_named(&[], Some(newcomer(1).id)));
    let sent = sent_to(&mut e);
    let hellos: Vec<&Call> = sent
        .iter()
        .filter(|(to, _, c)| *to == newcomer(1).addr && matches!(c, Call::Other { name, .. } if name == HELLO))
        .map(|(_, _, c)| c)
        .collect();
    assert_eq!(e.peer_kind(&newcomer(1).id), PeerKind::Extended);
    assert_eq!(hellos.len(), 1, "one hello to the named contact: {sent:?}");
    let Call::Other { args, .. } = hellos[0] else { unreachable!() };
    assert_eq!(args.get(1).and_then(Value::as_str), Some("https://me.tunnel.example"));
}

#[test]
fn a_marked_asker_gets_our_id_beside_a_value_hit_and_a_stock_one_the_plain_map() {
    let mut e = engine_with_contacts(Config::default());
    let me = e.id();
    let key = id_at(0, 0);
    let store = Call::Store { sender: contact_id(0), key, value: Value::Str("v".into()) };
    assert_eq!(reply_with_id(&mut e, MessageId([0xa0; 20]), store), Value::Bool(true));
    let find = Call::FindValue { sender: contact_id(0), key };
    let stock = reply_with_id(&mut e, MessageId([0xaa; 20]), find.clone());
    let node = reply_with_id(&mut e, mark_node([0xab; 20]), find.clone());
    let client = reply_with_id(&mut e, mark([0xac; 20]), find);
    // Exactly the one-key map Python's kademlia returns.
    assert_eq!(stock, crate::wire::found_value(&Value::Str("v".into())));
    assert_eq!(answering_node(&stock), None);
    for body in [&node, &client] {
        assert_eq!(answering_node(body), Some(me));
        let read = crate::wire::parse_find_value_reply(body).unwrap();
        assert_eq!(read, crate::wire::FindValueReply::Value(Value::Str("v".into())));
    }
}

#[test]
fn a_value_hit_naming_its_holder_makes_it_one_of_ours_without_a_hello() {
    for named in [true, false] {
        let mut e = engine_knowing(Config::default(), 1);
        let now = Time::from_secs(1);
        e.get(now, id_at(0, 0));
        let find_value_to = |sent: &[(SocketAddr, MessageId, Call)], to: SocketAddr| {
            sent.iter().find(|(a, _, c)| *a == to && matches!(c, Call::FindValue { .. })).map(|(_, id, _)| *id)
        };
        let first = find_value_to(&sent_to(&mut e), addr(1)).expect("asked");
        // Contact 0 points at a holder we never met.
        let holder = newcomer(1);
        answer(&mut e, now, addr(1), first, contacts_named(&[holder], Some(contact_id(0))));
        let id = find_value_to(&sent_to(&mut e), holder.addr).expect("holder asked");
        let name = named.then_some(holder.id);
        answer(&mut e, now, holder.addr, id, crate::wire::found_value_named(&Value::Int(7), name.as_ref()));
        let sent = sent_to(&mut e);
        assert_eq!(e.peer_kind(&holder.id) == PeerKind::Extended, named);
        assert_eq!(hello_went_to(&sent, holder.addr), !named, "named {named}: {sent:?}");
    }
}
