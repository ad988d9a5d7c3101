//! A node that is still joining hands nothing over.

use super::*;

fn restored(key: Key, now: Time) -> crate::store::Record {
    crate::store::Record {
        key,
        value: Value::Int(1),
        publisher: None,
        stored_at: now,
        expires_at: now + Duration::from_secs(3600),
        size: 1,
    }
}

/// A node joins a 40-node network with 30 records restored from disk; how
/// many records it handed over while joining, and after one newcomer
/// appears next to one of its keys.
fn restart_with_records() -> (u64, u64) {
    let mut net = Net::new(40, small);
    net.bootstrap_all();
    let back = net.add(small(0));
    // The first key sits right next to the joining node: it is that key's
    // closest holder once joined.
    let mut next_to_it = net.nodes[back].id();
    next_to_it.0[19] ^= 1;
    let mut keys: Vec<Key> = (1..30).map(|i| NodeId::for_key(&format!("worker:saved{i}"))).collect();
    keys.insert(0, next_to_it);
    for key in &keys {
        net.nodes[back].restore_record(net.now, restored(*key, net.now));
    }
    let _ = net.run(back, |e, now| e.bootstrap(now, &[addr(0)]), Duration::from_secs(30));
    let while_joining = net.nodes[back].stats().handovers;
    // A newcomer whose id is one of the keys: the joined node, if it is the
    // closest holder it knows of, now hands that key over.
    let newcomer = net.add_with_id(keys[0], small(0));
    let call = Call::Ping { sender: keys[0] };
    let _ = net.run(newcomer, |e, now| e.call(now, addr(back), call), Duration::from_secs(10));
    (while_joining, net.nodes[back].stats().handovers)
}

#[test]
fn a_node_restarting_with_records_hands_none_over_while_it_joins() {
    let (while_joining, after) = restart_with_records();
    assert_eq!(while_joining, 0, "its thin table made every contact look close to every key");
    assert!(after >= 1, "once joined it hands over again ({after})");
}
