//! The properties the fuzz targets check, one function per parser, shared
//! by `fuzz/` (cargo-fuzz drives them with generated inputs) and
//! `tests/fuzz_corpus.rs` (which replays the committed corpora through the
//! same functions on every `cargo test`, so the properties hold even where
//! no nightly toolchain is installed).
//!
//! Every function takes arbitrary bytes and panics only when a property is
//! broken: a parser panicking on its own, or something it accepted not
//! behaving as its contract says. [`TARGETS`] names them; the corpus of
//! target `name` is `fuzz/corpus/<name>/`.

use std::net::SocketAddr;

use crate::discovery::input::{
    check_service, check_worker_id, parse_heartbeat, parse_registration, valid_service, DiscoverFilter, MAX_SERVICES,
};
use crate::discovery::record::WorkerRecord;
use crate::discovery::wire::{parse_page, parse_write_reply};
use crate::engine::providers::wire::{page_entry, parse_write_entry, write_entry};
use crate::engine::providers::{valid_id, ProviderEntry, ProviderStore, ADD, LIST, REMOVE};
use crate::engine::{Config, Engine, HELLO, STORE_TTL};
use crate::id::NodeId;
use crate::time::Time;
use crate::wire::{self, decode_value, Call, Datagram, MessageId, Value, MAX_DATAGRAM};

/// A fuzz target's property check.
pub type Check = fn(&[u8]);

/// Every target beyond the three decoders of `wire` (whose checks live in
/// their own targets), by corpus directory name.
pub const TARGETS: [(&str, Check); 7] = [
    ("engine_request", engine_request),
    ("signed_entry", signed_entry),
    ("provider_page", provider_page),
    ("http_input", http_input),
    ("state_file", state_file),
    ("worker_record", worker_record),
    ("signed_record", signed_record),
];

/// Procedure names `engine_request` picks from with its first byte.
pub const PROCEDURES: [&str; 10] =
    ["ping", "store", "find_node", "find_value", "stun", HELLO, STORE_TTL, ADD, REMOVE, LIST];

/// The engine every request is fed to: holds a record and a provider set
/// so `find_value` and `kadmesh_providers` have something to answer.
fn engine_with_data(now: Time) -> Engine {
    let mut e = Engine::new(NodeId([0x11; 20]), Config { rng_seed: 1, ..Config::default() }, now);
    let from = SocketAddr::from(([10, 0, 0, 2], 8468));
    let key = NodeId([0x22; 20]);
    let sender = Value::Bin(vec![0x33; 20]);
    let seed_calls = [
        Call::Store { sender: NodeId([0x33; 20]), key, value: Value::Str("x".repeat(2000)) },
        Call::Other {
            name: ADD.into(),
            args: vec![sender, Value::Bin(key.0.to_vec()), Value::Array(vec![provider_entry("w-1")])],
        },
    ];
    for (i, call) in seed_calls.into_iter().enumerate() {
        let d = Datagram::request(MessageId([i as u8; 20]), call);
        e.handle_datagram(now, from, &d.encode().expect("seed requests encode"));
    }
    while e.poll_transmit().is_some() {}
    e
}

fn provider_entry(id: &str) -> Value {
    Value::Array(vec![Value::from(id), Value::Int(1), Value::Int(300), Value::F64(0.5)])
}

/// Request arguments: a msgpack array is the argument list, any other
/// value one argument.
fn args_of(bytes: &[u8]) -> Option<Vec<Value>> {
    match decode_value(bytes).ok()? {
        Value::Array(a) => Some(a),
        v => Some(vec![v]),
    }
}

/// Any request to a node holding data: the first byte picks a procedure
/// from [`PROCEDURES`] and the rest are its msgpack arguments (or, when they
/// do not decode, a raw datagram). Nothing panics, and everything the node
/// sends is a well-formed datagram no larger than UDP allows.
pub fn engine_request(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else { return };
    let now = Time::from_secs(1_000);
    let mut e = engine_with_data(now);
    let from = SocketAddr::from(([10, 0, 0, 9], 4000));
    let payload = match args_of(rest) {
        Some(args) => {
            let name = PROCEDURES[usize::from(pick) % PROCEDURES.len()].to_owned();
            let Ok(call) = Call::from_parts(name, args) else { return };
            let Ok(bytes) = Datagram::request(MessageId([7; 20]), call).encode() else { return };
            bytes
        }
        None => rest.to_vec(),
    };
    e.handle_datagram(now, from, &payload);
    e.handle_timeout(now);
    while let Some(t) = e.poll_transmit() {
        assert!(t.payload.len() <= MAX_DATAGRAM, "a {}-byte datagram", t.payload.len());
        assert!(wire::decode(&t.payload).is_ok(), "the node sent a datagram that does not decode");
    }
}

/// A provider page or write reply as a replica sends it: whatever
/// `parse_page` accepts names only valid ids, and a cursor is a valid id.
pub fn provider_page(data: &[u8]) {
    let Ok(v) = decode_value(data) else { return };
    let _ = parse_write_reply(&v);
    if let Some(page) = parse_page(&v, &NodeId([0x22; 20])) {
        assert!(page.entries.iter().all(|e| valid_id(&e.id)), "an invalid id in a page");
        assert!(page.next.as_deref().is_none_or(valid_id), "an invalid cursor");
    }
}

/// The set the `signed_entry` seeds are signed for.
pub const SIGNED_ENTRY_SET: &str = "service:ocr";
/// The time the `signed_entry` seeds are judged at (Unix ms of 2027-01-15).
pub const SIGNED_ENTRY_NOW: Time = Time::from_secs(1_800_000_000);

/// A provider write entry (the msgpack value of one entry of
/// `kadmesh_provider_add` / `_remove`, signed or not) for the set
/// [`SIGNED_ENTRY_SET`]: parsing never panics; a signed entry a replica
/// accepts re-encodes to an entry that parses back equal and that a reader
/// verifies as signed by the same key; and storing it a second time (a
/// replay) changes nothing the replica serves.
pub fn signed_entry(data: &[u8]) {
    let Ok(v) = decode_value(data) else { return };
    let key = NodeId::for_key(SIGNED_ENTRY_SET);
    let now = SIGNED_ENTRY_NOW;
    for gone in [false, true] {
        let Some(e) = parse_write_entry(&v, gone, now) else { continue };
        let mut store = ProviderStore::default();
        if !store.upsert(key, e.clone(), now) {
            continue;
        }
        let held: Vec<ProviderEntry> = store.range(&key, None, now).cloned().collect();
        store.upsert(key, e.clone(), now);
        assert_eq!(store.range(&key, None, now).cloned().collect::<Vec<_>>(), held, "a replay changed the set");
        let Some(sig) = &e.signature else { continue };
        let ttl = e.expires_at.saturating_since(now);
        let again = parse_write_entry(&write_entry(&e.id, e.version, ttl, e.load, Some(sig)), gone, now);
        assert_eq!(again.as_ref().map(|a| &a.signature), Some(&e.signature), "a signed entry did not re-encode");
        let page = Value::Map(vec![
            (Value::from("entries"), Value::Array(held.iter().map(|h| page_entry(h, now)).collect())),
            (Value::from("next"), Value::Nil),
            (Value::from("live"), Value::Int(0)),
        ]);
        let read = parse_page(&page, &key).expect("a page the replica made parses");
        assert_eq!(read.entries.first().and_then(|r| r.signer), Some(sig.public_key), "the reader did not verify it");
    }
}

/// The inputs of every HTTP route: the first byte picks register,
/// heartbeat, a discover query string or a path segment (worker id or
/// service name). Accepted input is within the documented bounds.
pub fn http_input(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    match pick % 4 {
        0 => {
            let Ok(body) = serde_json::from_slice(rest) else { return };
            if let Ok(r) = parse_registration(&body) {
                assert!(check_worker_id(&r.worker_id).is_ok());
                assert!(r.services.len() <= MAX_SERVICES && r.services.iter().all(|s| valid_service(s)));
            }
        }
        1 => {
            let Ok(body) = serde_json::from_slice(rest) else { return };
            if let Ok(h) = parse_heartbeat(&body) {
                assert!(check_worker_id(&h.worker_id).is_ok());
            }
        }
        2 => {
            let pairs = text.split('&').map(|p| p.split_once('=').unwrap_or((p, "")));
            let _ = DiscoverFilter::from_query(pairs);
        }
        _ => {
            if check_service(&text).is_ok() {
                assert!(valid_service(&text));
            }
            let _ = check_worker_id(&text);
        }
    }
}

/// State-file bytes: whatever decodes re-encodes and decodes back equal.
pub fn state_file(data: &[u8]) {
    let Ok(state) = crate::persist::decode_state(data) else { return };
    let bytes = crate::persist::encode_state(&state).expect("a decoded state re-encodes");
    let again = crate::persist::decode_state(&bytes).expect("a re-encoded state decodes");
    assert_eq!(again, state, "state round trip");
}

/// A worker record as the DHT holds it (JSON text): an accepted record has
/// a valid id and valid services, and its own JSON reads back the same id.
pub fn worker_record(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Some(r) = WorkerRecord::from_json(text) else { return };
    assert!(valid_id(&r.worker_id) && r.services.iter().all(|s| valid_service(s)));
    let again = WorkerRecord::from_json(&r.to_json()).expect("a record's own JSON reads back");
    assert_eq!(again.worker_id, r.worker_id);
    assert_eq!(again.services, r.services);
    let _ = WorkerRecord::from_value(&Value::Bin(data.to_vec()));
}

/// Signed-record text: `verify` and `parse_unverified` never panic, what
/// verifies also parses unverified to the same fields, and the store rule
/// never panics on any pair of values (the text's halves, split at a
/// character boundary: libFuzzer found the split itself panicking inside
/// a multi-byte character, `fuzz/corpus/signed_record/crash-a0351b0c`).
pub fn signed_record(data: &[u8]) {
    use crate::signed::{admits, parse_unverified, verify};
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(info) = verify(text) {
        assert_eq!(parse_unverified(text), Ok(info));
    }
    let mid = (0..=text.len() / 2).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    let (a, b) = text.split_at(mid);
    let key = crate::id::Key::for_key("worker:w1");
    let _ = admits(&key, Some(&Value::Str(a.to_owned())), &Value::Str(b.to_owned()), 1_800_000_000_000);
    let _ = admits(&key, None, &Value::Str(text.to_owned()), 0);
}
