//! The direct find_node encoder and decoder against the general path.
use super::*;
use crate::wire::{answering_node, contacts_value, decode, parse_find_node_reply, Datagram};
use proptest::prelude::*;

/// What the general path makes of `datagram`: decode, then parse the body
/// as a find_node reply and read the name after it.
fn general(datagram: &[u8]) -> Option<NodesReply> {
    match decode(datagram).ok()? {
        Datagram::Response { id, body } => {
            Some(NodesReply { id, contacts: parse_find_node_reply(&body).ok()?, named: answering_node(&body) })
        }
        Datagram::Request { .. } => None,
    }
}

/// The reply a plain (unnamed) decode gives.
fn plain(id: MessageId, contacts: Vec<Contact>) -> Option<NodesReply> {
    Some(NodesReply { id, contacts, named: None })
}

/// The fast path may decline anything, but what it accepts it must read
/// exactly as the general path does.
fn agrees(datagram: &[u8]) -> Result<(), TestCaseError> {
    if let Some(fast) = decode_nodes_response(datagram) {
        prop_assert_eq!(Some(fast), general(datagram), "{}", hex::encode(datagram));
    }
    Ok(())
}

fn v4_contact() -> impl Strategy<Value = Contact> {
    (any::<[u8; 20]>(), any::<[u8; 4]>(), 1..=u16::MAX)
        .prop_map(|(id, ip, port)| Contact::new(NodeId(id), SocketAddr::new(IpAddr::from(ip), port)))
}

fn any_contact() -> impl Strategy<Value = Contact> {
    let ip = prop_oneof![
        any::<[u8; 4]>().prop_map(IpAddr::from),
        any::<[u8; 16]>().prop_map(IpAddr::from),
        any::<[u8; 4]>().prop_map(|b| IpAddr::V6(Ipv4Addr::from(b).to_ipv6_mapped())),
    ];
    (any::<[u8; 20]>(), ip, any::<u16>()).prop_map(|(id, ip, port)| Contact::new(NodeId(id), SocketAddr::new(ip, port)))
}

/// A response whose body is `body` (raw msgpack bytes).
fn response(body: &[u8]) -> Vec<u8> {
    let mut d = vec![1];
    d.extend_from_slice(&[0xab; 20]);
    d.extend_from_slice(body);
    d
}

/// `[[id, <ip marker and text>, <port bytes>]]` from raw pieces.
fn one_triple(ip: &[u8], port: &[u8]) -> Vec<u8> {
    let mut b = vec![0x91, 0x93, 0xc4, 20];
    b.extend_from_slice(&[7; 20]);
    b.extend_from_slice(ip);
    b.extend_from_slice(port);
    response(&b)
}

fn fixstr(s: &str) -> Vec<u8> {
    let mut b = vec![0xa0 | s.len() as u8];
    b.extend_from_slice(s.as_bytes());
    b
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn encoding_equals_the_value_encoding(contacts in prop::collection::vec(any_contact(), 0..40), mid in any::<[u8; 20]>()) {
        let id = MessageId(mid);
        let want = Datagram::response(id, contacts_value(&contacts)).encode();
        prop_assert_eq!(encode_nodes_response(id, &contacts), want);
    }

    #[test]
    fn ipv4_replies_take_the_fast_path(contacts in prop::collection::vec(v4_contact(), 0..40), mid in any::<[u8; 20]>()) {
        let bytes = encode_nodes_response(MessageId(mid), &contacts).unwrap();
        prop_assert_eq!(decode_nodes_response(&bytes), plain(MessageId(mid), contacts));
        agrees(&bytes)?;
    }

    /// A reply naming its sender after the triples takes the fast path, reads
    /// the same contacts and the name, and agrees with the general path.
    #[test]
    fn named_replies_take_the_fast_path(contacts in prop::collection::vec(v4_contact(), 0..40), me in any::<[u8; 20]>()) {
        let id = MessageId([9; 20]);
        let bytes = encode_nodes_response_urls(id, &contacts, |_| None, Some(&NodeId(me))).unwrap();
        let mut body = contacts_value(&contacts);
        if let crate::wire::Value::Array(items) = &mut body {
            items.push(crate::wire::Value::Bin(me.to_vec()));
        }
        prop_assert_eq!(Ok(bytes.clone()), Datagram::response(id, body).encode());
        prop_assert_eq!(decode_nodes_response(&bytes), Some(NodesReply { id, contacts, named: Some(NodeId(me)) }));
        agrees(&bytes)?;
    }

    #[test]
    fn mixed_replies_agree(contacts in prop::collection::vec(any_contact(), 0..20)) {
        agrees(&encode_nodes_response(MessageId([3; 20]), &contacts).unwrap())?;
    }

    /// Single-byte edits, cuts and additions of a valid reply, named or
    /// not, reach every branch of the fast path.
    #[test]
    fn damaged_replies_agree(
        contacts in prop::collection::vec(v4_contact(), 0..5),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        how in 0..4u8,
        named in any::<bool>(),
    ) {
        let me = NodeId([5; 20]);
        let name = named.then_some(&me);
        let mut bytes = encode_nodes_response_urls(MessageId([3; 20]), &contacts, |_| None, name).unwrap();
        let i = at.index(bytes.len());
        match how {
            0 => bytes[i] = byte,
            1 => bytes.truncate(i),
            2 => bytes.insert(i, byte),
            _ => { bytes.remove(i); }
        }
        agrees(&bytes)?;
    }

    #[test]
    fn arbitrary_bytes_agree(mut bytes in prop::collection::vec(any::<u8>(), 0..200), head in 0..3u8) {
        // Mostly responses with an array body, so the fast path gets past its first checks.
        if head > 0 && bytes.len() > 22 {
            bytes[0] = 1;
            bytes[21] = 0x90 | (bytes[21] & 0x0f);
        }
        agrees(&bytes)?;
    }

    #[test]
    fn ip_text_agrees_with_std(parts in prop::collection::vec("[0-9]{0,4}", 1..6)) {
        let text = parts.join(".");
        if let Some(ip) = parse_ipv4(text.as_bytes()) {
            prop_assert_eq!(text.parse::<Ipv4Addr>().ok(), Some(ip));
        }
    }

    #[test]
    fn canonical_ip_text_parses(octets in any::<[u8; 4]>()) {
        let ip = Ipv4Addr::from(octets);
        let mut buf = [0; 15];
        let text = ipv4_text(ip, &mut buf);
        prop_assert_eq!(parse_ipv4(text), Some(ip));
        let std_text = ip.to_string();
        prop_assert_eq!(text, std_text.as_bytes());
    }
}

#[test]
fn unusual_entries_go_the_general_way() {
    let declined: Vec<Vec<u8>> = vec![
        // Texts std may or may not take, and ones it refuses.
        one_triple(&fixstr("01.2.3.4"), &[5]),
        one_triple(&fixstr("1.2.3"), &[5]),
        one_triple(&fixstr("1.2.3.4.5"), &[5]),
        one_triple(&fixstr("256.1.1.1"), &[5]),
        one_triple(&fixstr("1.2.3.4 "), &[5]),
        one_triple(&fixstr(""), &[5]),
        one_triple(&fixstr("::1"), &[5]),
        // The same text as str8, and ports that are skipped or need more width.
        one_triple(&[0xd9, 7, b'1', b'.', b'2', b'.', b'3', b'.', b'4'], &[5]),
        one_triple(&fixstr("1.2.3.4"), &[0]),
        one_triple(&fixstr("1.2.3.4"), &[0xce, 0, 0, 0, 5]),
        one_triple(&fixstr("1.2.3.4"), &[0xd0, 5]),
        one_triple(&fixstr("1.2.3.4"), &[0xff]),
        // Trailing bytes, a request, an array32 body, a map body.
        [one_triple(&fixstr("1.2.3.4"), &[5]), vec![0xc0]].concat(),
        [vec![0], one_triple(&fixstr("1.2.3.4"), &[5])[1..].to_vec()].concat(),
        response(&[0xdd, 0, 0, 0, 0]),
        response(&[0x80]),
    ];
    for d in declined {
        assert_eq!(decode_nodes_response(&d), None, "{}", hex::encode(&d));
        agrees(&d).unwrap();
    }
    let widths = [&[5u8][..], &[0xcc, 5], &[0xcd, 0, 5], &[0xcd, 0xff, 0xff]];
    for port in widths {
        let d = one_triple(&fixstr("10.0.0.1"), port);
        assert!(decode_nodes_response(&d).is_some(), "{}", hex::encode(&d));
        agrees(&d).unwrap();
    }
    let array16 = response(&[0xdc, 0, 0]);
    assert_eq!(decode_nodes_response(&array16), plain(MessageId([0xab; 20]), vec![]));
}

#[test]
fn a_name_anywhere_but_last_or_of_another_length_goes_the_general_way() {
    let mut named_first = vec![0x92, 0xc4, 20];
    named_first.extend_from_slice(&[1; 20]);
    named_first.extend_from_slice(&one_triple(&fixstr("1.2.3.4"), &[5])[22..]);
    let short_name = response(&[0x91, 0xc4, 2, 1, 2]);
    for d in [response(&named_first), short_name] {
        assert_eq!(decode_nodes_response(&d), None, "{}", hex::encode(&d));
        agrees(&d).unwrap();
    }
    // The general path skips the first as an entry that is not a contact.
    let Ok(Datagram::Response { body, .. }) = decode(&response(&named_first)) else { panic!("a response") };
    assert_eq!(parse_find_node_reply(&body).unwrap().len(), 1);
    assert_eq!(answering_node(&body), None);
}

/// What the general path makes of a request body.
fn general_call(body: &[u8]) -> Option<Call> {
    Call::from_body(crate::wire::decode_value(body).ok()?).ok()
}

fn call_agrees(body: &[u8]) -> Result<(), TestCaseError> {
    if let Some(fast) = decode_id_call(body) {
        prop_assert_eq!(Some(fast), general_call(body), "{}", hex::encode(body));
    }
    Ok(())
}

fn id_call() -> impl Strategy<Value = Call> {
    let id = || any::<[u8; 20]>().prop_map(NodeId);
    prop_oneof![
        id().prop_map(|sender| Call::Ping { sender }),
        (id(), id()).prop_map(|(sender, key)| Call::FindNode { sender, key }),
        (id(), id()).prop_map(|(sender, key)| Call::FindValue { sender, key }),
        (id(), id()).prop_map(|(sender, key)| Call::Store { sender, key, value: crate::wire::Value::Int(1) }),
        Just(Call::Stun),
    ]
}

fn body_of(call: &Call) -> Vec<u8> {
    call.to_body().to_msgpack()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn id_calls_take_the_fast_path(call in id_call()) {
        let body = body_of(&call);
        let takes = matches!(call, Call::Ping { .. } | Call::FindNode { .. } | Call::FindValue { .. });
        prop_assert_eq!(decode_id_call(&body), takes.then_some(call));
        call_agrees(&body)?;
    }

    #[test]
    fn damaged_calls_agree(call in id_call(), at in any::<prop::sample::Index>(), byte in any::<u8>(), how in 0..4u8) {
        let mut body = body_of(&call);
        let i = at.index(body.len());
        match how {
            0 => body[i] = byte,
            1 => body.truncate(i),
            2 => body.insert(i, byte),
            _ => { body.remove(i); }
        }
        call_agrees(&body)?;
    }

    #[test]
    fn arbitrary_call_bodies_agree(mut body in prop::collection::vec(any::<u8>(), 0..60), name in 0..4usize) {
        // Mostly a known name behind the right header, so the fast path reads on.
        let names: [&[u8]; 4] = [b"\x92\xa4ping", b"\x92\xa9find_node", b"\x92\xaafind_value", b""];
        body.splice(0..0, names[name].iter().copied());
        call_agrees(&body)?;
    }
}
