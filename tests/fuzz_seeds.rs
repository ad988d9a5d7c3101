//! Writes the seed corpora of the targets in `kadmesh::fuzzing` (valid
//! inputs that reach deep code, plus near-misses). The files are committed;
//! this is how they were made:
//! `cargo test --test fuzz_seeds -- --ignored` rewrites them.

use std::path::PathBuf;

use kadmesh::fuzzing::PROCEDURES;
use kadmesh::id::NodeId;
use kadmesh::persist::{encode_state, SavedState};
use kadmesh::time::Time;
use kadmesh::wire::Value;
use serde_json::json;

fn id(b: u8) -> Value {
    Value::Bin(vec![b; 20])
}

fn entry(i: &str, load: Value) -> Value {
    Value::Array(vec![Value::from(i), Value::Int(3), Value::Int(600), load])
}

fn engine_requests() -> Vec<(String, Vec<u8>)> {
    let (me, held) = (id(0x44), id(0x22));
    let procedure = |name: &str| PROCEDURES.iter().position(|p| *p == name).unwrap() as u8;
    let entries = Value::Array(vec![entry("w-1", Value::F64(0.1)), entry("w-2", Value::Nil)]);
    let cases: Vec<(&str, &str, Vec<Value>)> = vec![
        ("ping", "ping", vec![me.clone()]),
        ("ping_short_id", "ping", vec![Value::Bin(vec![1; 19])]),
        ("store", "store", vec![me.clone(), id(5), Value::from("hello")]),
        ("store_arity", "store", vec![me.clone(), id(5)]),
        ("find_node", "find_node", vec![me.clone(), id(0x10)]),
        ("find_value_held", "find_value", vec![me.clone(), held.clone()]),
        ("find_value_missing", "find_value", vec![me.clone(), id(0x99)]),
        ("stun", "stun", vec![]),
        ("hello", "kadmesh_hello", vec![me.clone()]),
        ("store_ttl", "kadmesh_store_ttl", vec![me.clone(), id(6), Value::Int(7), Value::Int(60)]),
        ("store_ttl_zero", "kadmesh_store_ttl", vec![me.clone(), id(6), Value::Int(7), Value::Int(0)]),
        ("provider_add", "kadmesh_provider_add", vec![me.clone(), held.clone(), entries.clone()]),
        ("provider_remove", "kadmesh_provider_remove", vec![me.clone(), held.clone(), entries]),
        ("providers", "kadmesh_providers", vec![me.clone(), held.clone(), Value::Nil, Value::Int(64)]),
        ("providers_after", "kadmesh_providers", vec![me, held, Value::from("w-1"), Value::Int(1)]),
    ];
    let mut out: Vec<(String, Vec<u8>)> = cases
        .into_iter()
        .map(|(file, name, args)| {
            let mut bytes = vec![procedure(name)];
            bytes.extend(Value::Array(args).to_msgpack());
            (file.to_owned(), bytes)
        })
        .collect();
    out.push(("raw_not_msgpack".into(), vec![0, 0xc1, 0x00, 0x01]));
    out
}

/// `page` with the set's fingerprint `fp`.
fn printed(page: Value, fp: Value) -> Value {
    let Value::Map(mut map) = page else { unreachable!() };
    map.push((Value::from("fp"), fp));
    Value::Map(map)
}

fn provider_pages() -> Vec<(String, Vec<u8>)> {
    let page = |entries: Vec<Value>, next: Value| {
        Value::Map(vec![
            (Value::from("entries"), Value::Array(entries)),
            (Value::from("next"), next),
            (Value::from("live"), Value::Int(2)),
        ])
    };
    let e = |i: &str, gone| {
        Value::Array(vec![Value::from(i), Value::Int(1), Value::Int(300), Value::F64(0.25), Value::Bool(gone)])
    };
    vec![
        ("page".into(), page(vec![e("w-1", false), e("w-2", true)], Value::Nil).to_msgpack()),
        ("page_next".into(), page(vec![e("w-1", false)], Value::from("w-1")).to_msgpack()),
        ("page_bad_id".into(), page(vec![e("bad id", false)], Value::from("x y")).to_msgpack()),
        ("write_reply".into(), Value::Int(5).to_msgpack()),
        (
            "page_fp".into(),
            printed(page(vec![e("w-1", false)], Value::Nil), Value::from_u64(u64::MAX - 7)).to_msgpack(),
        ),
        ("page_fp_negative".into(), printed(page(vec![e("w-1", false)], Value::Nil), Value::Int(-1)).to_msgpack()),
    ]
}

fn http_inputs() -> Vec<(String, Vec<u8>)> {
    let with = |pick: u8, body: &[u8]| [&[pick][..], body].concat();
    let reg = json!({"worker_id": "w-1", "tunnel_url": "https://w.example.net", "services": ["ocr", "llm"],
                     "capabilities": {"has_gpu": true}, "vpn_ip": "10.0.0.4", "containers": []});
    let hb = json!({"worker_id": "w-1", "status": "healthy", "current_load": 0.3, "available_memory": 12});
    vec![
        ("register".into(), with(0, reg.to_string().as_bytes())),
        ("register_bad".into(), with(0, br#"{"worker_id": "w 1", "services": "ocr"}"#)),
        ("heartbeat".into(), with(1, hb.to_string().as_bytes())),
        ("query".into(), with(2, b"gpu=true&min_memory=8&limit=5")),
        ("query_bad".into(), with(2, b"limit=0&gpu=maybe&min_memory=-1")),
        ("name".into(), with(3, b"llm-inference")),
        ("name_bad".into(), with(3, b"a/b")),
    ]
}

fn state_files() -> Vec<(String, Vec<u8>)> {
    let state = SavedState {
        id: NodeId([1; 20]),
        saved_at: Time::from_secs(100),
        contacts: vec![kadmesh::contact::Contact::new(NodeId([2; 20]), "127.0.0.1:4000".parse().unwrap())],
        published: vec![(NodeId([3; 20]), Value::from("{\"worker_id\": \"w1\"}"))],
        records: Vec::new(),
    };
    let good = encode_state(&state).unwrap();
    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0xff;
    vec![
        ("state".into(), good.clone()),
        ("state_truncated".into(), good[..good.len() / 2].to_vec()),
        ("state_flipped".into(), flipped),
    ]
}

fn worker_records() -> Vec<(String, Vec<u8>)> {
    let rec = json!({"worker_id": "w-1", "tunnel_url": "https://w.example.net", "services": ["ocr", "bad/name"],
                     "capabilities": {"gpu_type": "RTX"}, "last_seen": 1795493805.5, "load": "0.4",
                     "available_memory": 8, "version": 3});
    vec![
        ("record".into(), rec.to_string().into_bytes()),
        (
            "python_record".into(),
            br#"{"worker_id": "worker-7", "services": ["ocr"], "last_seen": 1795493805}"#.to_vec(),
        ),
        ("not_object".into(), b"[1, 2]".to_vec()),
    ]
}

#[test]
#[ignore = "rewrites the committed seed corpora"]
fn regenerate_seed_corpora() {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus"));
    for (target, seeds) in [
        ("engine_request", engine_requests()),
        ("provider_page", provider_pages()),
        ("http_input", http_inputs()),
        ("state_file", state_files()),
        ("worker_record", worker_records()),
    ] {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in seeds {
            std::fs::write(dir.join(format!("seed_{name}")), bytes).unwrap();
        }
    }
}
