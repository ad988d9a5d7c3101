//! A `get` collects copies, returns the newest and stores it back to the
//! holders that answered with an older one (read repair).

use super::*;

fn record(last_seen: u64) -> Value {
    Value::Str(format!(r#"{{"worker_id":"w","last_seen":{last_seen}}}"#))
}

/// Ten nodes that all know each other. The three closest to `key` hold an
/// old copy (as if a partition kept the newer write from them), the next
/// three the new one; raw stores, so nobody republishes. Returns the net,
/// the old holders, the new holders and a reader that holds nothing.
fn split_copies(key: Key, copies: usize) -> (Net, Vec<usize>, Vec<usize>, usize) {
    split_copies_with(key, Config { get_copies: copies, ..Config::default() })
}

fn split_copies_with(key: Key, config: Config) -> (Net, Vec<usize>, Vec<usize>, usize) {
    let mut net = Net::new(10, |_| config.clone());
    net.bootstrap_all();
    let near = net.nodes[0].closest(&key, 6);
    let mut at = Vec::new();
    for (i, c) in near.iter().enumerate() {
        let value = if i < 3 { record(100) } else { record(200) };
        let call = Call::Store { sender: net.nodes[0].id(), key, value };
        let _ = net.run(0, |e, now| e.call(now, c.addr, call), Duration::from_secs(10));
        at.push(net.by_addr[&c.addr]);
    }
    let reader = (1..10).rev().find(|i| !at.contains(i)).unwrap_or_default();
    let new = at.split_off(3);
    (net, at, new, reader)
}

fn held(net: &Net, i: usize, key: &Key) -> Option<Value> {
    net.nodes[i].store().get(key, net.now).map(|r| r.value.clone())
}

#[test]
fn get_returns_the_newest_copy_and_repairs_the_older_holders() {
    let key = Key::for_key("worker:w");
    let (mut net, old, new, reader) = split_copies(key, 4);
    assert_eq!(net.get(reader, key), Some(record(200)));
    net.advance(Duration::from_secs(1));
    for i in old.iter().chain(&new) {
        assert_eq!(held(&net, *i, &key), Some(record(200)), "node {i} holds the newest");
    }
    assert_eq!(net.nodes[reader].stats().read_repairs, 3);
}

#[test]
fn one_copy_ends_at_the_first_value_and_repairs_nothing() {
    let key = Key::for_key("worker:w");
    let (mut net, old, _, reader) = split_copies(key, 1);
    // The closest holder answers first; it holds the old copy.
    assert_eq!(net.get(reader, key), Some(record(100)));
    net.advance(Duration::from_secs(1));
    assert_eq!(held(&net, old[0], &key), Some(record(100)));
    assert_eq!(net.nodes[reader].stats().read_repairs, 0);
}

#[test]
fn a_first_copy_seen_lately_ends_the_get_without_collecting() {
    let key = Key::for_key("worker:w");
    // The engines' clock reads about 200 s after the epoch here, so the
    // closest holders' copy (last_seen 100) is within get_fresh_for (150 s).
    let config = Config { get_copies: 4, unix_offset: Duration::from_secs(200), ..Config::default() };
    let (mut net, old, _, reader) = split_copies_with(key, config);
    assert_eq!(net.get(reader, key), Some(record(100)), "the first copy is returned as it is");
    net.advance(Duration::from_secs(1));
    assert_eq!(held(&net, old[0], &key), Some(record(100)));
    assert_eq!(net.nodes[reader].stats().read_repairs, 0);
}

#[test]
fn a_first_copy_older_than_get_fresh_for_goes_on_collecting() {
    let key = Key::for_key("worker:w");
    // Same copies, but the clock reads 400 s: last_seen 100 is 300 s old.
    let config = Config { get_copies: 4, unix_offset: Duration::from_secs(400), ..Config::default() };
    let (mut net, _, _, reader) = split_copies_with(key, config);
    assert_eq!(net.get(reader, key), Some(record(200)));
    assert_eq!(net.nodes[reader].stats().read_repairs, 3);
}
