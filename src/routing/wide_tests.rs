//! [`RoutingTable::with_widening`]: far buckets hold `k << (w - i)`
//! contacts, and no bucket ever holds more than its capacity, also right
//! after a wide last bucket splits into a narrower one.

use std::net::SocketAddr;

use super::*;

/// A contact whose id starts with `first` (the local id is all zeros).
fn contact(first: u8, n: u8) -> Contact {
    let mut b = [0u8; 20];
    b[0] = first;
    b[19] = n;
    Contact::new(NodeId(b), SocketAddr::from(([10, 0, first, n], 4000)))
}

fn assert_within_capacity(t: &RoutingTable) {
    for (i, b) in t.buckets().iter().enumerate() {
        assert!(b.len() <= t.capacity(i), "bucket {i} holds {} > {}", b.len(), t.capacity(i));
    }
}

#[test]
fn far_buckets_hold_k_shifted_by_their_distance_from_the_widening() {
    let now = Time::ZERO;
    let mut wide = RoutingTable::new(NodeId([0; 20]), 2, now).with_widening(2);
    let mut plain = RoutingTable::new(NodeId([0; 20]), 2, now);
    for first in 1..=255u8 {
        wide.insert(contact(first, 1), now);
        plain.insert(contact(first, 1), now);
    }
    let lens = |t: &RoutingTable| t.buckets().iter().take(4).map(KBucket::len).collect::<Vec<_>>();
    // Bucket 0 covers 0x80.., bucket 1 0x40.., bucket 2 0x20..: 8, 4, then k = 2.
    assert_eq!(lens(&wide), vec![8, 4, 2, 2]);
    assert_eq!(lens(&plain), vec![2, 2, 2, 2]);
    assert_within_capacity(&wide);
}

#[test]
fn a_wide_bucket_that_splits_hands_down_no_more_than_the_narrower_one_holds() {
    let now = Time::ZERO;
    let mut t = RoutingTable::new(NodeId([0; 20]), 2, now).with_widening(2);
    // Eight deep contacts fill the single (widened, 8-slot) bucket; a far
    // one then splits it, and all eight belong below index 0 (4 slots).
    for n in 1..=8u8 {
        t.insert(contact(0x01, n), now);
    }
    t.insert(contact(0x80, 1), now);
    assert_within_capacity(&t);
    assert_eq!(t.buckets()[0].len(), 1);
    assert!(t.len() <= 1 + 4, "the rest wait as replacements: {}", t.len());
}
