//! Joining: seed pings, the lookup of our own id, and handing nothing over
//! while the table is still thin.

use super::*;

#[test]
fn bootstrap_with_no_reachable_seed_reports_zero() {
    let mut net = Net::new(2, small);
    net.down.insert(0);
    match net.run(1, |e, now| e.bootstrap(now, &[addr(0)]), Duration::from_secs(30)) {
        Outcome::Bootstrap(b) => assert_eq!((b.seeds_reached, b.table_size), (0, 0)),
        o => panic!("unexpected {o:?}"),
    }
}

#[test]
fn bootstrap_does_not_wait_for_dead_seeds() {
    let mut net = Net::new(4, small);
    let _ = net.run(1, |e, now| e.bootstrap(now, &[addr(3)]), Duration::from_secs(10));
    net.down.insert(0);
    let started = net.now;
    match net.run(2, |e, now| e.bootstrap(now, &[addr(0), addr(1)]), Duration::from_secs(30)) {
        Outcome::Bootstrap(b) => assert_eq!((b.seeds_tried, b.seeds_reached), (2, 1)),
        o => panic!("unexpected {o:?}"),
    }
    let took = net.now.saturating_since(started);
    assert!(took < net.nodes[2].config().rpc_timeout, "bootstrap waited {took:?} for a dead seed");
    assert!(net.nodes[2].routing().len() >= 2);
}
