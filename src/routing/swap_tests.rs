//! [`RoutingTable::swap_in`]: proximity neighbour selection changes only
//! who of a full bucket is live, never how many.

use std::net::SocketAddr;

use super::*;

fn contact(first: u8, n: u8) -> Contact {
    let mut b = [0u8; 20];
    b[0] = first;
    b[19] = n;
    Contact::new(NodeId(b), SocketAddr::from(([10, 0, first, n], 4000)))
}

/// A k = 2 table whose far half (ids starting 0x80) is full, with one parked newcomer.
fn full_bucket() -> (RoutingTable, [Contact; 3]) {
    let now = Time::ZERO;
    let mut t = RoutingTable::new(NodeId([0; 20]), 2, now);
    let [a, b, c] = [contact(0x80, 1), contact(0x81, 2), contact(0x82, 3)];
    // Near contacts first, so the table splits and the far bucket stays k = 2.
    for i in 1..4 {
        t.insert(contact(0, i), now);
    }
    t.insert(a, now);
    t.insert(b, now);
    assert!(matches!(t.insert(c, now), InsertOutcome::Full { .. } | InsertOutcome::Pending));
    (t, [a, b, c])
}

#[test]
fn a_parked_contact_swaps_with_a_live_one_of_its_bucket() {
    let (mut t, [a, b, c]) = full_bucket();
    let before = t.len();
    assert!(t.swap_in(&c.id, &a.id));
    assert!(t.contains(&c.id) && t.contains(&b.id) && !t.contains(&a.id));
    assert_eq!(t.len(), before, "the live count is unchanged");
    // The swapped-out contact is first back when a slot frees.
    t.remove(&b.id);
    assert!(t.contains(&a.id));
}

#[test]
fn nothing_changes_unless_near_is_parked_and_far_is_live_in_the_same_bucket() {
    let (mut t, [a, b, c]) = full_bucket();
    assert!(!t.swap_in(&a.id, &b.id), "a is live, not parked");
    assert!(!t.swap_in(&c.id, &contact(0x83, 9).id), "far is unknown");
    assert!(!t.swap_in(&c.id, &contact(0, 1).id), "far is in another bucket");
    assert!(t.contains(&a.id) && t.contains(&b.id) && !t.contains(&c.id));
}
