//! The provider store's bounds, expiry and paging, and the procedures'
//! handling of malformed calls. The replica rules have their own tests in
//! [`super::rules`], the encoding in [`super::signature`].

use super::*;
use crate::engine::Engine;
use crate::id::{Key, NodeId};
use crate::limits::reply::ReplyBudget;
use crate::wire::Value;
use std::net::SocketAddr;

fn entry(id: &str, version: u64, expires: u64, gone: bool) -> ProviderEntry {
    ProviderEntry {
        id: id.into(),
        version,
        expires_at: Time::from_secs(expires),
        load: Some(0.5),
        gone,
        signature: None,
    }
}

fn key() -> Key {
    NodeId::for_key("service:ocr")
}

#[test]
fn concurrent_adds_merge_instead_of_replacing() {
    let mut s = ProviderStore::default();
    for i in 0..500 {
        assert!(s.upsert(key(), entry(&format!("w{i}"), 1, 300, false), Time::ZERO));
    }
    assert_eq!(s.live(&key(), Time::ZERO), 500);
    assert_eq!(s.entry_count(), 500);
}

#[test]
fn tombstone_beats_stale_add_and_newer_add_beats_tombstone() {
    let mut s = ProviderStore::default();
    s.upsert(key(), entry("w1", 5, 300, false), Time::ZERO);
    s.upsert(key(), entry("w1", 6, 300, true), Time::ZERO);
    s.upsert(key(), entry("w1", 5, 900, false), Time::ZERO);
    assert_eq!(s.live(&key(), Time::ZERO), 0);
    s.upsert(key(), entry("w1", 6, 300, false), Time::ZERO);
    assert_eq!(s.live(&key(), Time::ZERO), 0, "a tombstone wins a tie");
    s.upsert(key(), entry("w1", 7, 300, false), Time::ZERO);
    assert_eq!(s.live(&key(), Time::ZERO), 1);
}

#[test]
fn entries_expire_and_sweep_keeps_its_timer_moving() {
    let mut s = ProviderStore::default();
    s.upsert(key(), entry("w1", 1, 30, false), Time::ZERO);
    s.upsert(key(), entry("w2", 1, 600, false), Time::ZERO);
    assert_eq!(s.live(&key(), Time::from_secs(31)), 1);
    assert_eq!(s.next_sweep(), Some(Time::ZERO + SWEEP_EVERY));
    assert_eq!(s.expire(Time::from_secs(30)), 0, "not due yet");
    assert_eq!(s.expire(Time::from_secs(60)), 1);
    assert!(s.next_sweep().is_some_and(|t| t > Time::from_secs(60)));
    assert_eq!(s.expire(Time::from_secs(700)), 1);
    assert_eq!((s.set_count(), s.next_sweep()), (0, None));
}

#[test]
fn full_set_evicts_only_for_a_longer_lived_newcomer() {
    let limits = ProviderLimits { max_per_set: 2, ..Default::default() };
    let mut s = ProviderStore::new(limits);
    s.upsert(key(), entry("a", 1, 100, false), Time::ZERO);
    s.upsert(key(), entry("b", 1, 200, false), Time::ZERO);
    assert!(!s.upsert(key(), entry("c", 1, 50, false), Time::ZERO));
    assert!(s.upsert(key(), entry("c", 1, 300, false), Time::ZERO));
    let ids: Vec<_> = s.range(&key(), None, Time::ZERO).map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["b", "c"]);
    assert!(!s.upsert(key(), entry("bad id", 1, 300, false), Time::ZERO));
    assert!(!s.upsert(key(), entry("late", 1, 0, false), Time::ZERO), "already expired");
}

#[test]
fn ttl_is_capped_and_store_bounds_hold() {
    let limits = ProviderLimits { max_entries: 3, max_sets: 2, ..Default::default() };
    let mut s = ProviderStore::new(limits);
    s.upsert(key(), entry("a", 1, u64::MAX / 2000, false), Time::ZERO);
    let e = s.range(&key(), None, Time::ZERO).next().unwrap();
    assert_eq!(e.expires_at, Time::ZERO + limits.max_ttl);
    s.upsert(NodeId::for_key("x"), entry("b", 1, 10, false), Time::ZERO);
    assert!(!s.upsert(NodeId::for_key("y"), entry("c", 1, 10, false), Time::ZERO), "max_sets");
    s.upsert(key(), entry("c", 1, 10, false), Time::ZERO);
    assert!(!s.upsert(key(), entry("d", 1, 5, false), Time::ZERO), "max_entries");
    assert_eq!(s.entry_count(), 3);
}

fn list(e: &mut Engine, after: Value, max: i64) -> Value {
    let args = vec![Value::Bin(vec![9; 20]), Value::Bin(key().0.to_vec()), after, Value::Int(max)];
    e.on_provider_rpc(Time::ZERO, "127.0.0.1:9".parse().unwrap(), LIST, args, ReplyBudget::Unbounded).unwrap()
}

#[test]
fn pages_fit_the_mtu_and_walk_the_whole_set() {
    let mut e = Engine::new(NodeId([1; 20]), crate::engine::Config::default(), Time::ZERO);
    let long = "x".repeat(MAX_ID_LEN - 4);
    for i in 0..300 {
        e.provider_upsert(Time::ZERO, key(), entry(&format!("{long}{i:04}"), u64::MAX >> 1, 600, false));
    }
    let (mut seen, mut after, mut pages) = (0, Value::Nil, 0);
    loop {
        let page = list(&mut e, after, 256);
        let body = crate::wire::Datagram::Response { id: crate::wire::MessageId([0; 20]), body: page.clone() };
        assert!(body.encode().unwrap().len() <= MAX_PAGE_DATAGRAM);
        seen += page.as_map_get("entries").unwrap().as_array().unwrap().len();
        assert_eq!(page.as_map_get("live").unwrap().as_int(), Some(300));
        pages += 1;
        after = page.as_map_get("next").unwrap().clone();
        if after == Value::Nil || pages > 400 {
            break;
        }
    }
    assert_eq!(seen, 300);
    assert!(pages > 30, "pages = {pages}");
    let small = list(&mut e, Value::Nil, 2);
    assert_eq!(small.as_map_get("entries").unwrap().as_array().unwrap().len(), 2);
}

#[test]
fn malformed_provider_calls_get_no_reply() {
    let mut e = Engine::new(NodeId([1; 20]), crate::engine::Config::default(), Time::ZERO);
    let from: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let id = Value::Bin(vec![9; 20]);
    for args in [vec![], vec![id.clone(), Value::Bin(vec![1; 3]), Value::Array(vec![])], vec![id.clone()]] {
        assert_eq!(e.on_provider_rpc(Time::ZERO, from, ADD, args, ReplyBudget::Unbounded), None);
    }
    let too_many = Value::Array(vec![Value::Nil; MAX_ENTRIES_PER_CALL + 1]);
    assert_eq!(
        e.on_provider_rpc(Time::ZERO, from, ADD, vec![id.clone(), id.clone(), too_many], ReplyBudget::Unbounded),
        None
    );
    let bad = Value::Array(vec![Value::Array(vec![Value::from("w1"), Value::Int(-1), Value::Int(5), Value::Nil])]);
    assert_eq!(
        e.on_provider_rpc(Time::ZERO, from, ADD, vec![id.clone(), id.clone(), bad], ReplyBudget::Unbounded),
        Some(Value::Int(0))
    );
    assert_eq!(
        e.on_provider_rpc(
            Time::ZERO,
            from,
            LIST,
            vec![id.clone(), id.clone(), Value::Nil, Value::Int(0)],
            ReplyBudget::Unbounded
        ),
        None
    );
    assert_eq!(e.on_provider_rpc(Time::ZERO, from, "kadmesh_provider_nope", vec![], ReplyBudget::Unbounded), None);
}

#[test]
fn an_entry_in_its_last_second_is_read_as_live_not_expired() {
    let mut e = Engine::new(NodeId([1; 20]), crate::engine::Config::default(), Time::ZERO);
    let ends = |ms| ProviderEntry { expires_at: Time::from_millis(ms), ..entry("x", 1, 0, false) };
    e.provider_upsert(Time::ZERO, key(), ends(400));
    e.provider_upsert(Time::ZERO, key(), ProviderEntry { id: "y".into(), ..ends(3_000) });
    let page = list(&mut e, Value::Nil, 256);
    let seen = crate::engine::providers::client::parse_page(&page, &key()).unwrap().entries;
    let ttl: Vec<_> = seen.iter().map(|s| (s.id.as_str(), s.ttl.as_secs(), s.is_live())).collect();
    // 400 ms left is 1 s on the wire (rounded down it read as expired);
    // whole seconds stay as they are.
    assert_eq!(ttl, [("x", 1, true), ("y", 3, true)]);
}

#[test]
fn the_largest_entries_are_as_the_spec_says() {
    let id = "x".repeat(MAX_ID_LEN);
    let mut e = ProviderEntry {
        id,
        version: u64::MAX,
        expires_at: Time::from_millis(u64::MAX),
        load: Some(0.5),
        gone: false,
        signature: None,
    };
    assert_eq!(wire::page_entry(&e, Time::ZERO).to_msgpack().len(), 159);
    e.signature = Some(EntrySignature { public_key: [1; 32], expires_at: u64::MAX, sig: [2; 64] });
    assert_eq!(wire::page_entry(&e, Time::ZERO).to_msgpack().len(), 268);
}

fn list_shard(e: &mut Engine, after: Value, shard: Value) -> Option<Value> {
    let args = vec![Value::Bin(vec![9; 20]), Value::Bin(key().0.to_vec()), after, Value::Int(256), shard];
    e.on_provider_rpc(Time::ZERO, "127.0.0.1:9".parse().unwrap(), LIST, args, ReplyBudget::Unbounded)
}

#[test]
fn shards_split_the_set_without_overlap_and_are_echoed() {
    let mut e = Engine::new(NodeId([1; 20]), crate::engine::Config::default(), Time::ZERO);
    for i in 0..200 {
        e.provider_upsert(Time::ZERO, key(), entry(&format!("w{i}"), 1, 600, false));
    }
    let mut ids = Vec::new();
    for s in wire::Shard::ALL.split(3) {
        let mut after = Value::Nil;
        for _ in 0..20 {
            let page = list_shard(&mut e, after, s.to_value()).unwrap();
            let body = crate::wire::Datagram::Response { id: crate::wire::MessageId([0; 20]), body: page.clone() };
            assert!(body.encode().unwrap().len() <= MAX_PAGE_DATAGRAM);
            assert_eq!(page.as_map_get("shard"), Some(&s.to_value()), "the shard is echoed");
            assert_eq!(page.as_map_get("live").unwrap().as_int(), Some(200), "live counts the whole set");
            for v in page.as_map_get("entries").unwrap().as_array().unwrap() {
                let id = v.as_array().unwrap()[0].as_str().unwrap().to_owned();
                assert!(s.holds(&id), "{id} is not in shard {s:?}");
                ids.push(id);
            }
            after = page.as_map_get("next").unwrap().clone();
            if after == Value::Nil {
                break;
            }
        }
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200, "the eight shards together are the whole set, once");
    // The spec's vector (EXTENSIONS.md §3.3): "w1" hashes to 0x10473805.
    assert!(wire::Shard { index: 1, bits: 4 }.holds("w1") && wire::Shard { index: 0, bits: 1 }.holds("w1"));
    assert!(!wire::Shard { index: 0, bits: 4 }.holds("w1"));
    // The rest of a shard after a cursor is the rest of its two halves after it.
    let half = |i| wire::Shard { index: i, bits: 1 };
    let count = |e: &mut Engine, s: wire::Shard| {
        let p = list_shard(e, Value::from("w94"), s.to_value()).unwrap();
        p.as_map_get("entries").unwrap().as_array().unwrap().len()
    };
    assert_eq!(count(&mut e, half(0)) + count(&mut e, half(1)), 5, "w95 to w99");
    for bad in [
        Value::Array(vec![Value::Int(2), Value::Int(1)]),
        Value::Array(vec![Value::Int(0), Value::Int(17)]),
        Value::Int(0),
    ] {
        assert_eq!(list_shard(&mut e, Value::Nil, bad), None, "a malformed shard gets no reply");
    }
}

/// The fingerprint a page of `e`'s set reports (read back as a reader does).
fn page_print(e: &mut Engine, shard: Option<wire::Shard>) -> wire::SetPrint {
    let page = match shard {
        None => list(e, Value::Nil, 256),
        Some(s) => list_shard(e, Value::Nil, s.to_value()).unwrap(),
    };
    client::parse_page(&page, &key()).expect("a page").print.expect("a fingerprint")
}

#[test]
fn pages_report_a_fingerprint_of_the_set_that_only_its_ids_tombstones_and_signers_move() {
    let node = |entries: &[ProviderEntry]| {
        let mut e = Engine::new(NodeId([1; 20]), crate::engine::Config::default(), Time::ZERO);
        for x in entries {
            e.provider_upsert(Time::ZERO, key(), x.clone());
        }
        e
    };
    let ids: Vec<String> = (0..300).map(|i| format!("w{i}")).collect();
    let set: Vec<ProviderEntry> = ids.iter().map(|id| entry(id, 1, 600, false)).collect();
    let mut a = node(&set);
    // Another replica: the same ids written in the other order, newer versions, other lifetimes.
    let newer: Vec<ProviderEntry> = ids.iter().rev().map(|id| entry(id, 7, 900, false)).collect();
    let mut b = node(&newer);
    let print = page_print(&mut a, None);
    assert_eq!(page_print(&mut b, None), print, "versions, lifetimes and order do not count");
    // Every page, of any shard, reports the whole set's; it is the sum of the entries' prints.
    let mut sum = wire::SetPrint::default();
    for id in &ids {
        sum.add(id, false, None);
    }
    assert_eq!(print, sum);
    assert_eq!(page_print(&mut a, Some(wire::Shard { index: 3, bits: 3 })), print);
    // One entry fewer, one more, a tombstone or a signer: another print.
    let differ = |entries: Vec<ProviderEntry>| assert_ne!(page_print(&mut node(&entries), None), print);
    differ(set[1..].to_vec());
    differ([set.clone(), vec![entry("w999", 1, 600, false)]].concat());
    differ([set[1..].to_vec(), vec![entry("w0", 2, 600, true)]].concat());
    let mut signed = set.clone();
    signed[0].signature = Some(EntrySignature { public_key: [1; 32], expires_at: u64::MAX, sig: [2; 64] });
    let mut with_signer = wire::SetPrint::default();
    for x in &signed {
        with_signer.add(&x.id, x.gone, x.signature.as_ref().map(|s| &s.public_key));
    }
    assert_ne!(with_signer, print, "a signer's key counts");
    // The spec's vectors (EXTENSIONS.md §3.3), computed apart from this code.
    assert_eq!(wire::entry_print("w1", false, None), 0xe5c5_91bc_d96c_62ae);
    assert_eq!(wire::entry_print("w1", true, None), 0x6a7a_a1ad_0d35_624a);
    let mut two = wire::SetPrint::default();
    two.add("w2", false, None);
    two.add("w1", false, None);
    assert_eq!(two, wire::SetPrint(0x33f7_252b_60b4_dd80));
    // Taking an entry out undoes adding it.
    let mut back = print;
    back.add("w999", true, None);
    back.remove("w999", true, None);
    assert_eq!(back, print);
}

#[test]
fn a_page_fingerprint_is_read_over_its_whole_range_and_a_bad_one_says_nothing() {
    let with = |fp: Value| {
        let page = Value::Map(vec![
            (Value::from("entries"), Value::Array(Vec::new())),
            (Value::from("next"), Value::Nil),
            (Value::from("live"), Value::Int(0)),
            (Value::from("fp"), fp),
        ]);
        client::parse_page(&page, &key()).expect("a page").print
    };
    assert_eq!(with(Value::from_u64(u64::MAX)), Some(wire::SetPrint(u64::MAX)), "above i64::MAX");
    assert_eq!(with(Value::Int(5)), Some(wire::SetPrint(5)));
    assert_eq!(with(Value::Int(-1)), None);
    assert_eq!(with(Value::from("x")), None);
}
