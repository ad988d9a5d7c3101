//! A publisher's re-puts reuse the nodes its last lookup found
//! (`Config::put_lookup_every`, module `targets`).

use super::*;

const FIND_NODE: usize = 2;

fn reuse(_: usize) -> Config {
    Config { k: 4, put_lookup_every: Duration::from_secs(600), ..Config::default() }
}

/// A put of `value` by `node`, and the find_node queries it sent.
fn put_counting_queries(net: &mut Net, node: usize, key: Key, value: i64) -> (PutOutcome, u64) {
    let before = net.nodes[node].stats().sent[FIND_NODE];
    let p = net.put(node, key, Value::Int(value));
    (p, net.nodes[node].stats().sent[FIND_NODE] - before)
}

fn value_at(net: &Net, node: usize, key: &Key) -> Option<Value> {
    net.nodes[node].store().get(key, net.now).map(|r| r.value.clone())
}

#[test]
fn a_re_put_stores_to_the_same_nodes_with_one_query_instead_of_a_lookup() {
    let mut net = Net::new(40, reuse);
    net.bootstrap_all();
    let key = NodeId::for_key("worker:w1");
    let publisher = 7;
    let (first, lookup_queries) = put_counting_queries(&mut net, publisher, key, 1);
    assert!(lookup_queries > 1, "the first put looks the key up ({lookup_queries} queries)");
    let holders_first = holders(&net, &key);

    net.advance(Duration::from_secs(120));
    let (second, queries) = put_counting_queries(&mut net, publisher, key, 2);
    assert_eq!(queries, 1, "one neighbourhood query, no lookup");
    assert_eq!(second.stored, first.stored);
    assert_eq!(second.stats.queried, 0);
    assert_eq!(holders(&net, &key), holders_first);
    for h in holders_first {
        assert_eq!(value_at(&net, h, &key), Some(Value::Int(2)), "holder {h} has the new value");
    }
}

#[test]
fn after_put_lookup_every_the_key_is_looked_up_again() {
    let mut net = Net::new(40, reuse);
    net.bootstrap_all();
    let key = NodeId::for_key("worker:w2");
    net.put(3, key, Value::Int(1));
    net.advance(Duration::from_secs(601));
    assert!(put_counting_queries(&mut net, 3, key, 2).1 > 1, "a full lookup again");
}

#[test]
fn a_zero_put_lookup_every_looks_up_every_time() {
    let mut net = Net::new(40, |_| Config { put_lookup_every: Duration::ZERO, ..reuse(0) });
    net.bootstrap_all();
    let key = NodeId::for_key("worker:w3");
    net.put(3, key, Value::Int(1));
    assert!(put_counting_queries(&mut net, 3, key, 2).1 > 1);
}

#[test]
fn when_a_quarter_of_the_targets_miss_a_store_the_next_put_looks_up_again() {
    let mut net = Net::new(40, reuse);
    net.bootstrap_all();
    let key = NodeId::for_key("worker:w4");
    let publisher = 5;
    net.put(publisher, key, Value::Int(1));
    let gone: Vec<usize> = holders(&net, &key).into_iter().filter(|&h| h != publisher).take(2).collect();
    assert_eq!(gone.len(), 2);
    net.down.extend(gone.iter().copied());
    // Two of four targets time out: the set is no longer trusted.
    let p = net.put(publisher, key, Value::Int(2));
    assert_eq!(p.stats.queried, 0, "this put still reused the targets");
    assert_eq!(p.stored, p.attempted - 2);
    let (p, queries) = put_counting_queries(&mut net, publisher, key, 3);
    assert!(queries > 1, "looked up again");
    assert!(p.stats.queried > 0);
    for h in holders(&net, &key).into_iter().filter(|h| !gone.contains(h)) {
        assert_eq!(value_at(&net, h, &key), Some(Value::Int(3)));
    }
}

#[test]
fn a_newcomer_named_by_the_nearest_target_gets_the_re_put() {
    let mut net = Net::new(60, reuse);
    net.bootstrap_all();
    let key = NodeId::for_key("worker:w5");
    let publisher = 9;
    net.put(publisher, key, Value::Int(1));
    // A node whose id is the key itself joins: the closest possible. The
    // holders hand it the old value.
    let newcomer = net.add_with_id(key, reuse(0));
    let _ = net.run(newcomer, |e, now| e.bootstrap(now, &[addr(0)]), Duration::from_secs(30));
    net.advance(Duration::from_secs(10));
    assert!(!net.nodes[publisher].routing().contains(&key), "the publisher has not met the newcomer");
    assert_eq!(value_at(&net, newcomer, &key), Some(Value::Int(1)), "handed over");
    // The re-put skips the lookup, yet reaches the newcomer.
    let p = net.put(publisher, key, Value::Int(2));
    assert_eq!(p.stats.queried, 0);
    assert_eq!(value_at(&net, newcomer, &key), Some(Value::Int(2)));
}

#[test]
fn unpublishing_forgets_the_targets() {
    let mut net = Net::new(40, reuse);
    net.bootstrap_all();
    let key = NodeId::for_key("worker:w6");
    net.put(4, key, Value::Int(1));
    assert!(net.nodes[4].unpublish(&key));
    assert!(put_counting_queries(&mut net, 4, key, 2).1 > 1);
}
