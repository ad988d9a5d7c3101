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
    let mut net = Net::new(10, |_| Config { get_copies: copies, ..Config::default() });
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
