//! Replays the datagrams captured from the real Python `kademlia` package
//! (`proto-spec/vectors.json`, produced by `proto-spec/vectors.py`): each must
//! decode to the content the vector describes and re-encode byte for byte.
use kadmesh::id::NodeId;
use kadmesh::wire::{self, Call, Datagram, FindValueReply, Value};
use serde_json::Value as J;

struct Vector {
    name: String,
    direction: String,
    rpc: String,
    bytes: Vec<u8>,
    decoded: J,
}

fn load() -> Vec<Vector> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/proto-spec/vectors.json");
    let text = std::fs::read_to_string(path).expect("read proto-spec/vectors.json");
    let list: Vec<J> = serde_json::from_str(&text).expect("vectors.json is a JSON list");
    list.into_iter()
        .map(|v| Vector {
            name: field(&v, "name").to_owned(),
            direction: field(&v, "direction").to_owned(),
            rpc: field(&v, "rpc").to_owned(),
            bytes: hex::decode(field(&v, "hex")).expect("hex"),
            decoded: v["decoded"].clone(),
        })
        .collect()
}

fn field<'a>(v: &'a J, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_else(|| panic!("vector field {k} missing in {v}"))
}

fn id(hex: &J) -> NodeId {
    NodeId::from_hex(hex.as_str().expect("id hex")).expect("20-byte id")
}

/// The typed body description (see vectors.py) as a `Value`.
fn typed(j: &J) -> Value {
    // `bits` rides along with `float`; serde_json sorts keys, so skip it.
    let node = j.as_object().expect("typed node");
    let (tag, x) = node.iter().find(|(k, _)| *k != "bits").expect("typed tag");
    match tag.as_str() {
        "nil" => Value::Nil,
        "bool" => Value::Bool(x.as_bool().unwrap()),
        "int" => x.as_i64().map_or_else(|| Value::UInt(x.as_u64().unwrap()), Value::Int),
        "float" => {
            let bits = hex::decode(j["bits"].as_str().unwrap()).unwrap();
            Value::F64(f64::from_bits(u64::from_be_bytes(bits.try_into().unwrap())))
        }
        "str" => Value::Str(x.as_str().unwrap().to_owned()),
        "bin" => Value::Bin(hex::decode(x.as_str().unwrap()).unwrap()),
        "array" => Value::Array(x.as_array().unwrap().iter().map(typed).collect()),
        "map" => Value::Map(x.as_array().unwrap().iter().map(|kv| (typed(&kv[0]), typed(&kv[1]))).collect()),
        other => panic!("unknown typed tag {other}"),
    }
}

fn check_request(v: &Vector, call: &Call, body: &Value) {
    assert_eq!(call.name(), v.rpc, "{}: rpc name", v.name);
    assert_eq!(&call.to_body(), body, "{}: body", v.name);
    let sender = id(&v.decoded["sent_by_id"]);
    let key = v.decoded.get("key").map(id);
    if let Some(k) = key {
        let dht_key = v.decoded["dht_key"].as_str().unwrap();
        assert_eq!(NodeId::for_key(dht_key), k, "{}: digest(dht_key)", v.name);
    }
    let args = body.as_array().unwrap()[1].as_array().unwrap();
    match call {
        Call::Ping { sender: s } => assert_eq!(*s, sender, "{}", v.name),
        Call::Store { sender: s, key: k, value } => {
            assert_eq!((*s, Some(*k)), (sender, key), "{}", v.name);
            assert_eq!(value, &args[2], "{}: stored value", v.name);
        }
        Call::FindNode { sender: s, .. } => assert_eq!(*s, sender, "{}", v.name),
        Call::FindValue { sender: s, key: k } => {
            assert_eq!((*s, Some(*k)), (sender, key), "{}", v.name)
        }
        Call::Stun => assert!(args.is_empty(), "{}", v.name),
        Call::Other { name, .. } => assert!(!is_builtin(name), "{}: typed as Other", v.name),
    }
}

fn is_builtin(rpc: &str) -> bool {
    ["ping", "store", "find_node", "find_value", "stun"].contains(&rpc)
}

fn check_response(v: &Vector, body: &Value) {
    let entries = || body.as_array().map_or(0, <[Value]>::len);
    match v.rpc.as_str() {
        "ping" => assert_eq!(wire::parse_ping_reply(body), Ok(id(&v.decoded["sent_by_id"]))),
        "store" => assert_eq!(wire::parse_store_reply(body), Ok(true)),
        "find_node" => assert_eq!(wire::parse_find_node_reply(body).unwrap().len(), entries()),
        "find_value" => match wire::parse_find_value_reply(body).unwrap() {
            FindValueReply::Value(x) => assert_eq!(Some(&x), body.as_map_get("value")),
            FindValueReply::Nodes(n) => assert_eq!(n.len(), entries()),
        },
        "stun" => {
            let addr = wire::parse_stun_reply(body).unwrap();
            let parts = body.as_array().unwrap();
            assert_eq!(parts[0].as_str(), Some(addr.ip().to_string().as_str()));
            assert_eq!(parts[1].as_int(), Some(i64::from(addr.port())));
            assert_eq!(wire::stun_value(addr), *body, "{}: stun_value rebuilds it", v.name);
        }
        other => panic!("{}: response to unexpected rpc {other}", v.name),
    }
}

#[test]
fn every_python_vector_decodes_and_reencodes_exactly() {
    let vectors = load();
    for v in &vectors {
        let d = wire::decode(&v.bytes).unwrap_or_else(|e| panic!("{}: decode failed: {e}", v.name));
        let body = typed(&v.decoded["body"]);
        let msg_id = hex::decode(v.decoded["msg_id"].as_str().unwrap()).unwrap();
        assert_eq!(d.id().0[..], msg_id[..], "{}: message id", v.name);
        match (&d, v.direction.as_str()) {
            (Datagram::Request { call, .. }, "request") => check_request(v, call, &body),
            (Datagram::Response { body: got, .. }, "response") => {
                assert_eq!(got, &body, "{}: body", v.name);
                check_response(v, got);
            }
            _ => panic!("{}: decoded {d:?}, expected a {}", v.name, v.direction),
        }
        let again = d.encode().unwrap_or_else(|e| panic!("{}: encode failed: {e}", v.name));
        assert_eq!(hex::encode(again), hex::encode(&v.bytes), "{}: re-encoding", v.name);
    }
}

/// The find_node fast path reads every Python contact list it takes exactly
/// as the general path does, and takes the IPv4 ones.
#[test]
fn fast_nodes_path_agrees_on_python_vectors() {
    let mut taken = 0;
    for v in load() {
        let Some(wire::NodesReply { id, contacts, named }) = wire::decode_nodes_response(&v.bytes) else { continue };
        let Ok(Datagram::Response { id: general_id, body }) = wire::decode(&v.bytes) else {
            panic!("{}: fast path took what decode refuses", v.name)
        };
        assert_eq!((id, Ok(contacts)), (general_id, wire::parse_find_node_reply(&body)), "{}", v.name);
        // A stock node names nobody after its contacts.
        assert_eq!((named, wire::answering_node(&body)), (None, None), "{}", v.name);
        taken += 1;
    }
    assert!(taken >= 2, "fast path took only {taken} vectors");
}

#[test]
fn vectors_cover_every_rpc_and_value_kind() {
    let vectors = load();
    assert!(vectors.len() >= 50, "only {} vectors", vectors.len());
    for rpc in ["ping", "store", "find_node", "find_value", "stun"] {
        for dir in ["request", "response"] {
            let n = vectors.iter().filter(|v| v.rpc == rpc && v.direction == dir).count();
            assert!(n > 0, "no {dir} vector for {rpc}");
        }
    }
    let stored: Vec<Value> = vectors
        .iter()
        .filter(|v| v.rpc == "store" && v.direction == "request")
        .map(|v| typed(&v.decoded["body"]).as_array().unwrap()[1].as_array().unwrap()[2].clone())
        .collect();
    let has = |f: &dyn Fn(&Value) -> bool| stored.iter().any(f);
    assert!(has(&|x| matches!(x, Value::UInt(_))), "no u64 above i64::MAX");
    assert!(has(&|x| matches!(x, Value::Int(i) if *i < -32768)), "no wide negative int");
    assert!(has(&|x| matches!(x, Value::F64(_))), "no float");
    assert!(has(&|x| matches!(x, Value::Bin(_))), "no bytes");
    assert!(has(&|x| matches!(x, Value::Bool(false))), "no bool");
    assert!(has(&|x| x.as_str().is_some_and(|s| s.len() > 255)), "no str16");
    assert!(vectors.iter().any(|v| !is_builtin(&v.rpc)), "no unknown-rpc vector");
    let v6_stun = vectors.iter().any(|v| {
        v.rpc == "stun"
            && v.direction == "response"
            && wire::decode(&v.bytes)
                .is_ok_and(|d| matches!(d, Datagram::Response { body: Value::Array(a), .. } if a.len() == 4))
    });
    assert!(v6_stun, "no IPv6 stun reply");
}
