//! After a join, a node fills its thin far buckets
//! (`Engine::fill_far_buckets`): the own-id lookup only meets the seed and
//! the joiner's neighbourhood, so in a network joined one node after
//! another through one seed, a node in the seed's half of the id space knew
//! nobody in the other half, nor did its neighbours, and its puts of keys
//! there went to the wrong half.

use super::*;

/// `n` nodes with buckets of `k`, joined one after another through node 0
/// (as `versus` does), each join's fill lookups done before the next.
/// Also returns, for each joiner right after its join, its far buckets
/// (all but the last) holding fewer than `want` contacts while the nodes
/// up by then have at least that many in their range.
fn chain(n: usize, k: usize, join_fill: usize, want: usize) -> (Net, Vec<(usize, usize)>) {
    let mut net = Net::new(n, |_| Config { k, join_fill, ..Config::default() });
    let mut thin = Vec::new();
    for i in 1..n {
        let seed = [addr(0)];
        let _ = net.run(i, |e, now| e.bootstrap(now, &seed), Duration::from_secs(30));
        net.advance(Duration::from_secs(2));
        let e = &net.nodes[i];
        let buckets = e.routing().buckets();
        for (b, bucket) in buckets.iter().enumerate().take(buckets.len().saturating_sub(1)) {
            let up = net.nodes[..=i].iter().filter(|o| e.id().distance(&o.id()).leading_zeros() == b).count();
            if bucket.len() < want.min(up) {
                thin.push((i, b));
            }
        }
    }
    (net, thin)
}

/// Keys whose put from `from` misses one of the key's `k` closest nodes.
fn puts_off_the_closest(net: &mut Net, k: usize, from: impl Fn(usize) -> usize) -> Vec<usize> {
    let mut missed = Vec::new();
    for j in 0..24 {
        let key = NodeId::for_key(&format!("worker:fill-{j}"));
        let _ = net.put(from(j), key, Value::Str(format!("v{j}")));
        let mut by_distance: Vec<usize> = (0..net.nodes.len()).collect();
        by_distance.sort_by_key(|&i| net.nodes[i].id().distance(&key));
        let held = holders(net, &key);
        if by_distance[..k].iter().any(|i| !held.contains(i)) {
            missed.push(j);
        }
    }
    missed
}

#[test]
fn after_joining_every_far_bucket_holds_contacts_where_the_network_has_them() {
    let want = Config::default().join_fill;
    let (filled, thin) = chain(64, 4, want, want);
    assert_eq!(thin, Vec::<(usize, usize)>::new());
    assert!(filled.nodes[1..].iter().any(|e| e.stats().join_fills > 0), "some joins found thin buckets");
    let (unfilled, thin) = chain(64, 4, 0, want);
    assert!(!thin.is_empty(), "without the fill, some far buckets stay thin");
    assert!(unfilled.nodes.iter().all(|e| e.stats().join_fills == 0));
}

#[test]
fn puts_from_freshly_joined_nodes_reach_the_keys_closest() {
    let from = |j: usize| 1 + (j * 7) % 63;
    let (mut filled, _) = chain(64, 4, Config::default().join_fill, 0);
    assert_eq!(puts_off_the_closest(&mut filled, 4, from), Vec::<usize>::new());
    let (mut unfilled, _) = chain(64, 4, 0, 0);
    assert!(
        !puts_off_the_closest(&mut unfilled, 4, from).is_empty(),
        "without the fill, some puts land off the closest"
    );
}
