//! Unit tests for reply builders and parsers.
use super::*;

fn nid(b: u8) -> NodeId {
    NodeId([b; 20])
}

fn triple(id: Value, ip: &str, port: Value) -> Value {
    Value::Array(vec![id, ip.into(), port])
}

fn bad(rpc: &'static str) -> impl Fn(&WireError) -> bool {
    move |e| matches!(e, WireError::BadReply { rpc: r, .. } if *r == rpc)
}

#[test]
fn contacts_roundtrip_v4_and_v6() {
    let contacts = vec![
        Contact::new(nid(1), "127.0.0.1:8468".parse().unwrap()),
        Contact::new(nid(2), "[::1]:9000".parse().unwrap()),
        Contact::new(nid(3), "[2001:db8::7]:65535".parse().unwrap()),
    ];
    let v = contacts_value(&contacts);
    assert_eq!(v.as_array().unwrap()[1].as_array().unwrap()[1].as_str(), Some("::1"));
    assert_eq!(parse_find_node_reply(&v), Ok(contacts.clone()));
    assert_eq!(parse_find_value_reply(&v), Ok(FindValueReply::Nodes(contacts)));
    assert_eq!(parse_find_node_reply(&Value::Array(vec![])), Ok(vec![]));
}

#[test]
fn contacts_hex_matches_python() {
    // umsgpack.packb([(b"\x01"*20, "127.0.0.1", 8468)])
    let v = contacts_value(&[Contact::new(nid(1), "127.0.0.1:8468".parse().unwrap())]);
    let want = format!("9193c414{}a93132372e302e302e31cd2114", "01".repeat(20));
    assert_eq!(hex::encode(v.to_msgpack()), want);
}

#[test]
fn bad_contact_entries_are_skipped() {
    let good = triple(Value::Bin(vec![9; 20]), "10.0.0.1", Value::Int(1));
    let body = Value::Array(vec![
        triple(Value::Bin(vec![9; 19]), "10.0.0.1", Value::Int(1)),
        triple(Value::Bin(vec![9; 20]), "not-an-ip", Value::Int(1)),
        triple(Value::Bin(vec![9; 20]), "10.0.0.1", Value::Int(0)),
        triple(Value::Bin(vec![9; 20]), "10.0.0.1", Value::Int(65536)),
        triple(Value::Bin(vec![9; 20]), "10.0.0.1", Value::Int(-1)),
        triple(Value::Bin(vec![9; 20]), "10.0.0.1", "80".into()),
        Value::Array(vec![Value::Bin(vec![9; 20]), "10.0.0.1".into()]),
        Value::Nil,
        good,
    ]);
    let parsed = parse_find_node_reply(&body).unwrap();
    assert_eq!(parsed, vec![Contact::new(nid(9), "10.0.0.1:1".parse().unwrap())]);
    assert!(parse_find_node_reply(&Value::Nil).is_err_and(|e| bad("find_node")(&e)));
}

#[test]
fn find_value_reply_shapes() {
    let hit = found_value(&"x".into());
    assert_eq!(hex::encode(hit.to_msgpack()), "81a576616c7565a178");
    assert_eq!(parse_find_value_reply(&hit), Ok(FindValueReply::Value("x".into())));
    let no_key = Value::Map(vec![("other".into(), Value::Nil)]);
    assert!(parse_find_value_reply(&no_key).is_err_and(|e| bad("find_value")(&e)));
    assert!(parse_find_value_reply(&Value::Bool(true)).is_err_and(|e| bad("find_value")(&e)));
}

#[test]
fn ping_and_store_replies() {
    assert_eq!(parse_ping_reply(&Value::Bin(vec![4; 20])), Ok(nid(4)));
    assert!(parse_ping_reply(&Value::Bin(vec![4; 21])).is_err_and(|e| bad("ping")(&e)));
    assert!(parse_ping_reply(&Value::Nil).is_err_and(|e| bad("ping")(&e)));
    assert_eq!(parse_store_reply(&Value::Bool(true)), Ok(true));
    assert_eq!(parse_store_reply(&Value::Bool(false)), Ok(false));
    assert!(parse_store_reply(&Value::Int(1)).is_err_and(|e| bad("store")(&e)));
}

#[test]
fn stun_roundtrip_and_errors() {
    let v4: SocketAddr = "192.0.2.5:4000".parse().unwrap();
    let body = stun_value(v4);
    // umsgpack.packb(("192.0.2.5", 4000))
    assert_eq!(hex::encode(body.to_msgpack()), "92a93139322e302e322e35cd0fa0");
    assert_eq!(parse_stun_reply(&body), Ok(v4));
    let v6 = SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().unwrap(), 5, 0, 3));
    let body = stun_value(v6);
    assert_eq!(body.as_array().map(<[Value]>::len), Some(4));
    assert_eq!(parse_stun_reply(&body), Ok(v6));
    let zoned = Value::Array(vec!["fe80::1%eth0".into(), Value::Int(5), 0.into(), 3.into()]);
    assert_eq!(parse_stun_reply(&zoned), Ok(v6));
    for body in [
        Value::Nil,
        Value::Array(vec!["1.2.3.4".into()]),
        Value::Array(vec!["nope".into(), Value::Int(5)]),
        Value::Array(vec![Value::Int(1), Value::Int(5)]),
        Value::Array(vec!["1.2.3.4".into(), Value::Int(70_000)]),
    ] {
        assert!(parse_stun_reply(&body).is_err_and(|e| bad("stun")(&e)), "{body}");
    }
}

#[test]
fn ip_text_matches_std_formatting() {
    for a in [0u8, 1, 9, 10, 99, 100, 127, 199, 200, 255] {
        for b in [0u8, 7, 42, 250] {
            let ip = IpAddr::from([a, b, 255 - a, b / 3]);
            assert_eq!(ip_text(ip), ip.to_string());
        }
    }
    let v6: IpAddr = "2001:db8::1".parse().unwrap();
    assert_eq!(ip_text(v6), "2001:db8::1");
}

#[test]
fn url_contacts_roundtrip_and_reserved_addresses_are_refused() {
    let url = "https://w7.example-tunnel.net";
    let at = tunnel::addr_of(url);
    let contacts = vec![Contact::new(nid(1), "10.0.0.1:8468".parse().unwrap()), Contact::new(nid(2), at)];
    let id = super::super::MessageId([5; 20]);
    let bytes =
        super::super::encode_nodes_response_urls(id, &contacts, |c| (c.addr == at).then_some(url), None).unwrap();
    let Ok(super::super::Datagram::Response { body, .. }) = super::super::decode(&bytes) else { panic!() };
    assert_eq!(parse_find_node_reply(&body).unwrap(), contacts);
    assert_eq!(tunnel_urls(&body), vec![url]);
    // Nobody may name a tunnel address as an IP, nor give a URL with a port.
    let body = Value::Array(vec![
        triple(Value::Bin(vec![3; 20]), &at.ip().to_string(), Value::Int(1)),
        triple(Value::Bin(vec![4; 20]), url, Value::Int(443)),
        triple(Value::Bin(vec![5; 20]), "ftp://x", Value::Int(0)),
    ]);
    assert_eq!(parse_find_node_reply(&body).unwrap(), vec![]);
}
