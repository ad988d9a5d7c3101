use std::net::SocketAddr;

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::*;

fn contact(id: NodeId, port: u16) -> Contact {
    Contact::new(id, SocketAddr::from(([127, 0, 0, 1], port)))
}

fn secs(s: u64) -> Time {
    Time::from_secs(s)
}

/// `s` seconds after contacts inserted at time zero stopped counting as recently seen.
fn late(s: u64) -> Time {
    secs(s) + RECENTLY_SEEN
}

fn bucket_ids(table: &RoutingTable, index: usize) -> Vec<NodeId> {
    table.buckets()[index].contacts().map(|c| c.id).collect()
}

fn replacement_ids(table: &RoutingTable, index: usize) -> Vec<NodeId> {
    table.buckets()[index].replacements().map(|c| c.id).collect()
}

/// A k=3 table whose bucket 0 holds exactly `far` (prefix 0) and is full but no longer
/// the last bucket, plus `extra` more prefix-0 ids to offer as candidates.
fn full_far_bucket(seed: u64, extra: usize) -> (RoutingTable, Vec<Contact>, Vec<Contact>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let local = NodeId::random(&mut rng);
    let mut table = RoutingTable::new(local, 3, Time::ZERO);
    let far: Vec<Contact> = (0..3).map(|i| contact(local.random_in_bucket(0, &mut rng), 1000 + i)).collect();
    for c in &far {
        assert_eq!(table.insert(*c, Time::ZERO), InsertOutcome::Inserted);
    }
    // Forces the split that leaves bucket 0 full and unsplittable.
    let filler = contact(local.random_in_bucket(4, &mut rng), 999);
    assert_eq!(table.insert(filler, Time::ZERO), InsertOutcome::Inserted);
    assert_eq!(table.bucket_count(), 2);
    let candidates = (0..extra).map(|i| contact(local.random_in_bucket(0, &mut rng), 2000 + i as u16)).collect();
    (table, far, candidates)
}

#[test]
fn insert_orders_least_recently_seen_first_and_updates_address() {
    let mut rng = StdRng::seed_from_u64(1);
    let mut table = RoutingTable::new(NodeId::random(&mut rng), K, Time::ZERO);
    let [a, b, c] = [1, 2, 3].map(|p| contact(NodeId::random(&mut rng), p));
    for x in [a, b, c] {
        assert_eq!(table.insert(x, secs(1)), InsertOutcome::Inserted);
    }
    assert_eq!(bucket_ids(&table, 0), vec![a.id, b.id, c.id]);

    // A datagram with a's id from elsewhere moves nothing while a answers...
    let moved = contact(a.id, 4000);
    assert_eq!(table.insert(moved, secs(3)), InsertOutcome::Updated);
    assert_eq!((table.get(&a.id), table.last_seen(&a.id)), (Some(a), Some(secs(1))));
    assert_eq!(bucket_ids(&table, 0), vec![a.id, b.id, c.id]);
    // ...but once the old address failed to answer, the new one is taken.
    table.record_failure(&a.id, 3);
    assert_eq!(table.insert(moved, secs(5)), InsertOutcome::Updated);
    assert_eq!(bucket_ids(&table, 0), vec![b.id, c.id, a.id]);
    assert_eq!(table.get(&a.id), Some(moved));
    assert_eq!(table.last_seen(&a.id), Some(secs(5)));
    assert_eq!(table.len(), 3);
    assert!(!table.is_empty());
}

#[test]
fn is_self_is_ignored() {
    let local = NodeId::for_key("me");
    let mut table = RoutingTable::new(local, K, Time::ZERO);
    assert_eq!(table.insert(contact(local, 1), Time::ZERO), InsertOutcome::IsSelf);
    assert!(table.is_empty());
    assert!(!table.contains(&local));
    assert_eq!(table.local_id(), local);
    assert_eq!(table.k(), K);
}

#[test]
fn only_the_last_bucket_splits() {
    let mut rng = StdRng::seed_from_u64(2);
    let local = NodeId::random(&mut rng);
    let mut table = RoutingTable::new(local, 2, Time::ZERO);
    let [p0, p1, p5, p7] = [0, 1, 5, 7].map(|d| contact(local.random_in_bucket(d, &mut rng), 1));
    for x in [p0, p1, p5, p7] {
        assert_eq!(table.insert(x, Time::ZERO), InsertOutcome::Inserted);
    }
    assert_eq!(table.bucket_count(), 3);
    assert_eq!(bucket_ids(&table, 0), vec![p0.id]);
    assert_eq!(bucket_ids(&table, 1), vec![p1.id]);
    assert_eq!(bucket_ids(&table, 2), vec![p5.id, p7.id]);
    // Once bucket 1 is full it does not split (it is not last): an eviction ping instead.
    let [q1, r1] = [2, 3].map(|p| contact(local.random_in_bucket(1, &mut rng), p));
    assert_eq!(table.insert(q1, Time::ZERO), InsertOutcome::Inserted);
    assert_eq!(table.insert(r1, Time::ZERO + RECENTLY_SEEN), InsertOutcome::Full { ping: p1 });
    assert_eq!(table.insert(r1, Time::ZERO + RECENTLY_SEEN), InsertOutcome::Pending);
    assert_eq!(table.bucket_count(), 3);
}

#[test]
fn many_random_contacts_never_overfill_a_bucket() {
    let mut rng = StdRng::seed_from_u64(3);
    let local = NodeId::random(&mut rng);
    let mut table = RoutingTable::new(local, K, Time::ZERO);
    for i in 0..3000u16 {
        let id =
            if i & 1 == 0 { NodeId::random(&mut rng) } else { local.random_in_bucket(usize::from(i) % 40, &mut rng) };
        table.insert(contact(id, i), Time::ZERO);
    }
    assert!(table.bucket_count() > 10);
    for (i, bucket) in table.buckets().iter().enumerate() {
        assert!(bucket.len() <= K);
        assert!(bucket.contacts().all(|c| table.bucket_index(&c.id) == i));
    }
}

#[test]
fn full_then_ping_answered_keeps_old_contact() {
    let (mut table, far, cand) = full_far_bucket(4, 2);
    assert_eq!(table.insert(cand[0], late(1)), InsertOutcome::Full { ping: far[0] });
    assert!(!table.contains(&cand[0].id));
    assert_eq!(table.buckets()[0].pending_ping(), Some(far[0].id));

    table.ping_answered(&far[0].id, late(2));
    assert_eq!(bucket_ids(&table, 0), vec![far[1].id, far[2].id, far[0].id]);
    assert_eq!(table.buckets()[0].pending_ping(), None);
    assert_eq!(replacement_ids(&table, 0), vec![cand[0].id]);
    assert_eq!(table.last_seen(&far[0].id), Some(late(2)));
    // The next newcomer triggers a ping of the new oldest.
    assert_eq!(table.insert(cand[1], late(3)), InsertOutcome::Full { ping: far[1] });
}

#[test]
fn full_then_ping_failed_evicts_and_promotes_candidate() {
    let (mut table, far, cand) = full_far_bucket(5, 1);
    assert_eq!(table.insert(cand[0], late(1)), InsertOutcome::Full { ping: far[0] });
    table.ping_failed(&far[0].id, late(2));
    assert!(!table.contains(&far[0].id));
    assert_eq!(bucket_ids(&table, 0), vec![far[1].id, far[2].id, cand[0].id]);
    assert_eq!(table.buckets()[0].pending_ping(), None);
    assert!(replacement_ids(&table, 0).is_empty());
}

#[test]
fn pending_while_ping_outstanding_then_reissued_after_timeout() {
    let (mut table, far, cand) = full_far_bucket(6, 4);
    assert_eq!(table.insert(cand[0], late(10)), InsertOutcome::Full { ping: far[0] });
    assert_eq!(table.insert(cand[1], late(11)), InsertOutcome::Pending);
    assert_eq!(table.insert(cand[2], late(12)), InsertOutcome::Pending);
    assert_eq!(bucket_ids(&table, 0), far.iter().map(|c| c.id).collect::<Vec<_>>());
    // A lost ping outcome must not freeze the bucket forever.
    let later = late(10) + PENDING_PING_TIMEOUT;
    assert_eq!(table.insert(cand[3], later), InsertOutcome::Full { ping: far[0] });
    let expected: Vec<NodeId> = cand.iter().map(|c| c.id).collect();
    assert_eq!(replacement_ids(&table, 0), expected);
}

#[test]
fn healthy_full_bucket_parks_newcomer_without_ping() {
    let (mut table, far, cand) = full_far_bucket(10, 2);
    let just_before = Time::ZERO + RECENTLY_SEEN - Duration::from_millis(1);
    assert_eq!(table.insert(cand[0], just_before), InsertOutcome::Pending);
    assert_eq!(table.buckets()[0].pending_ping(), None);
    assert_eq!(replacement_ids(&table, 0), vec![cand[0].id]);
    // Once the oldest entry has been quiet for the window, it is pinged.
    assert_eq!(table.insert(cand[1], Time::ZERO + RECENTLY_SEEN), InsertOutcome::Full { ping: far[0] });
}

#[test]
fn replacement_cache_is_bounded_and_deduplicated() {
    let (mut table, _, cand) = full_far_bucket(7, REPLACEMENT_CACHE + 5);
    for c in &cand {
        table.insert(*c, secs(1));
    }
    let kept: Vec<NodeId> = cand[5..].iter().map(|c| c.id).collect();
    assert_eq!(replacement_ids(&table, 0), kept);

    let again = contact(cand[10].id, 7777);
    assert_eq!(table.insert(again, secs(2)), InsertOutcome::Pending);
    let repl: Vec<Contact> = table.buckets()[0].replacements().collect();
    assert_eq!(repl.len(), REPLACEMENT_CACHE);
    assert_eq!(repl.last(), Some(&again));
    assert_eq!(repl.iter().filter(|c| c.id == again.id).count(), 1);
}

#[test]
fn remove_promotes_most_recent_replacement() {
    let (mut table, far, cand) = full_far_bucket(8, 2);
    table.insert(cand[0], late(1));
    table.insert(cand[1], late(1));
    assert_eq!(table.remove(&far[1].id), Some(far[1]));
    assert_eq!(bucket_ids(&table, 0), vec![far[0].id, far[2].id, cand[1].id]);
    assert_eq!(replacement_ids(&table, 0), vec![cand[0].id]);
    // Replacement-only: dropped from the cache, not reported as a live removal.
    assert_eq!(table.remove(&cand[0].id), None);
    assert!(replacement_ids(&table, 0).is_empty());
    assert_eq!(table.remove(&NodeId::for_key("nobody")), None);
    // Removing the pinged contact clears the pending state.
    assert_eq!(table.buckets()[0].pending_ping(), Some(far[0].id));
    table.remove(&far[0].id);
    assert_eq!(table.buckets()[0].pending_ping(), None);
    assert_eq!(table.len(), 3);
}

#[test]
fn ping_failed_without_pending_acts_like_remove() {
    let (mut table, far, _) = full_far_bucket(9, 0);
    table.ping_failed(&far[2].id, secs(1));
    assert_eq!(bucket_ids(&table, 0), vec![far[0].id, far[1].id]);
    table.ping_failed(&NodeId::for_key("nobody"), secs(1));
    table.ping_answered(&NodeId::for_key("nobody"), secs(1));
    assert_eq!(table.len(), 3);
}

#[test]
fn record_failure_removes_at_threshold_and_insert_resets() {
    let mut rng = StdRng::seed_from_u64(10);
    let mut table = RoutingTable::new(NodeId::random(&mut rng), K, Time::ZERO);
    let a = contact(NodeId::random(&mut rng), 1);
    table.insert(a, Time::ZERO);
    assert!(!table.record_failure(&a.id, 3));
    assert!(!table.record_failure(&a.id, 3));
    table.insert(a, secs(1));
    assert!(!table.record_failure(&a.id, 3));
    assert!(!table.record_failure(&a.id, 3));
    assert!(table.record_failure(&a.id, 3));
    assert!(!table.contains(&a.id));
    assert!(!table.record_failure(&a.id, 3));
    let b = contact(NodeId::random(&mut rng), 2);
    table.insert(b, Time::ZERO);
    assert!(table.record_failure(&b.id, 0));
}

#[test]
fn closest_with_empty_target_bucket_still_returns_contacts() {
    let (mut table, far, _) = full_far_bucket(11, 0);
    let local = table.local_id();
    let filler = table.buckets()[1].contacts().next().map(|c| c.id);
    if let Some(id) = filler {
        table.remove(&id);
    }
    assert!(table.buckets()[1].is_empty());
    let mut rng = StdRng::seed_from_u64(12);
    for target in [local, local.random_in_bucket(9, &mut rng)] {
        let got = table.closest(&target, 10);
        let mut expected = far.clone();
        expected.sort_by_key(|c| target.distance(&c.id));
        assert_eq!(got, expected);
        assert_eq!(table.closest(&target, 1), expected[..1].to_vec());
    }
    assert!(table.closest(&local, 0).is_empty());
    let skip = far[0].id;
    assert!(!table.closest_filtered(&local, 10, |c| c.id == skip).contains(&far[0]));
}

#[test]
fn would_be_among_closest_counts_contacts_and_self() {
    let target = NodeId::for_key("target");
    let near = |d: u8| {
        let mut b = target.0;
        b[19] ^= d;
        NodeId(b)
    };
    let mut far_local = target.0;
    far_local[0] ^= 0x80;
    let mut table = RoutingTable::new(NodeId(far_local), K, Time::ZERO);
    for d in 1..=3 {
        table.insert(contact(near(d), 1), Time::ZERO);
    }
    assert!(!table.would_be_among_closest(&near(4), &target, 3));
    assert!(table.would_be_among_closest(&near(4), &target, 4));
    assert!(table.would_be_among_closest(&near(2), &target, 2));
    assert!(!table.would_be_among_closest(&near(2), &target, 1));
    assert!(!table.would_be_among_closest(&near(1), &target, 0));

    // Ourselves count as a known node.
    let table = RoutingTable::new(near(5), K, Time::ZERO);
    assert!(!table.would_be_among_closest(&near(6), &target, 1));
    assert!(table.would_be_among_closest(&near(6), &target, 2));
    assert!(table.would_be_among_closest(&near(5), &target, 1));
}

#[test]
fn lonely_buckets_follow_touch_and_new_contacts() {
    let mut rng = StdRng::seed_from_u64(13);
    let local = NodeId::random(&mut rng);
    let mut table = RoutingTable::new(local, 1, Time::ZERO);
    table.insert(contact(local.random_in_bucket(0, &mut rng), 1), Time::ZERO);
    table.insert(contact(local.random_in_bucket(0, &mut rng), 2), Time::ZERO);
    assert_eq!(table.bucket_count(), 2);
    let interval = Duration::from_secs(60);
    assert!(table.lonely_buckets(secs(10), interval).is_empty());
    assert_eq!(table.lonely_buckets(secs(100), interval), vec![0, 1]);

    table.touch(&local.random_in_bucket(0, &mut rng), secs(100));
    let c = contact(local.random_in_bucket(3, &mut rng), 3);
    assert_eq!(table.insert(c, secs(120)), InsertOutcome::Inserted);
    assert!(table.lonely_buckets(secs(160), interval).is_empty());
    // Hearing again from a known contact is not a refresh.
    assert_eq!(table.insert(c, secs(170)), InsertOutcome::Updated);
    assert_eq!(table.lonely_buckets(secs(175), interval), vec![0]);
    assert_eq!(table.lonely_buckets(secs(185), interval), vec![0, 1]);
}

#[test]
fn random_id_in_bucket_lands_in_that_bucket() {
    let mut rng = StdRng::seed_from_u64(14);
    let local = NodeId::random(&mut rng);
    let mut table = RoutingTable::new(local, 2, Time::ZERO);
    for depth in 0..12 {
        for port in 0..3 {
            table.insert(contact(local.random_in_bucket(depth, &mut rng), port), Time::ZERO);
        }
    }
    let count = table.bucket_count();
    assert!(count >= 12);
    for index in 0..count {
        for _ in 0..50 {
            let id = table.random_id_in_bucket(index, &mut rng);
            assert_eq!(table.bucket_index(&id), index);
        }
    }
    let id = table.random_id_in_bucket(ID_BITS + 5, &mut rng);
    assert_eq!(table.bucket_index(&id), count - 1);
}

#[derive(Debug, Clone)]
enum Op {
    Insert { depth: usize, seed: u64, port: u16 },
    Remove(usize),
    Fail(usize),
    PingAnswered(usize),
    PingFailed(usize),
    Wait(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let depth = prop_oneof![0usize..8, 0usize..ID_BITS];
    prop_oneof![
        8 => (depth, 0u64..200, 0u16..3)
            .prop_map(|(depth, seed, port)| Op::Insert { depth, seed, port }),
        1 => any::<usize>().prop_map(Op::Remove),
        1 => any::<usize>().prop_map(Op::Fail),
        1 => any::<usize>().prop_map(Op::PingAnswered),
        1 => any::<usize>().prop_map(Op::PingFailed),
        1 => (0u64..120_000).prop_map(Op::Wait),
    ]
}

/// Replays `ops`, checking the table's invariants after each one.
fn replay(local: NodeId, k: usize, ops: &[Op]) -> Result<RoutingTable, TestCaseError> {
    let mut table = RoutingTable::new(local, k, Time::ZERO);
    let mut seen: Vec<NodeId> = Vec::new();
    let mut now = Time::ZERO;
    for op in ops {
        let pick = |i: &usize| seen.get(i % seen.len().max(1)).copied();
        match op {
            Op::Insert { depth, seed, port } => {
                let id = local.random_in_bucket(*depth, &mut StdRng::seed_from_u64(*seed));
                table.insert(contact(id, *port), now);
                seen.push(id);
            }
            Op::Remove(i) => drop(pick(i).map(|id| table.remove(&id))),
            Op::Fail(i) => drop(pick(i).map(|id| table.record_failure(&id, 2))),
            Op::PingAnswered(i) => drop(pick(i).map(|id| table.ping_answered(&id, now))),
            Op::PingFailed(i) => drop(pick(i).map(|id| table.ping_failed(&id, now))),
            Op::Wait(ms) => now = now + Duration::from_millis(*ms),
        }
        check_invariants(&table)?;
    }
    Ok(table)
}

fn check_invariants(table: &RoutingTable) -> Result<(), TestCaseError> {
    prop_assert!(table.bucket_count() >= 1 && table.bucket_count() <= ID_BITS);
    let mut live: Vec<NodeId> = table.contacts().map(|c| c.id).collect();
    prop_assert_eq!(live.len(), table.len());
    for (i, bucket) in table.buckets().iter().enumerate() {
        prop_assert!(bucket.len() <= table.k());
        prop_assert!(bucket.replacements().count() <= REPLACEMENT_CACHE);
        for c in bucket.contacts().chain(bucket.replacements()) {
            prop_assert_eq!(table.bucket_index(&c.id), i);
        }
        for r in bucket.replacements() {
            prop_assert!(!table.contains(&r.id));
        }
        if let Some(p) = bucket.pending_ping() {
            prop_assert!(bucket.contacts().any(|c| c.id == p));
        }
    }
    live.sort();
    live.dedup();
    prop_assert_eq!(live.len(), table.len());
    Ok(())
}

proptest! {
    #[test]
    fn bucket_never_exceeds_k(
        local in any::<[u8; 20]>(),
        k in 1usize..6,
        ops in prop::collection::vec(op(), 0..300),
    ) {
        replay(NodeId(local), k, &ops)?;
    }

    #[test]
    fn closest_is_exact(
        local in any::<[u8; 20]>(),
        k in 1usize..8,
        ops in prop::collection::vec(op(), 0..200),
        targets in prop::collection::vec(any::<[u8; 20]>(), 1..4),
        n in 0usize..40,
    ) {
        let local = NodeId(local);
        let table = replay(local, k, &ops)?;
        let mut all: Vec<Contact> = table.contacts().collect();
        let mut targets: Vec<NodeId> = targets.into_iter().map(NodeId).collect();
        targets.push(local);
        targets.extend(all.first().map(|c| c.id));
        for target in targets {
            all.sort_by_key(|c| target.distance(&c.id));
            let expected: Vec<Contact> = all.iter().take(n).copied().collect();
            prop_assert_eq!(table.closest(&target, n), expected);
            let skip = |c: &Contact| c.id.0[19] & 1 == 0;
            let expected: Vec<Contact> =
                all.iter().filter(|c| !skip(c)).take(n).copied().collect();
            prop_assert_eq!(table.closest_filtered(&target, n, skip), expected);
        }
    }
}

proptest! {
    #[test]
    fn would_be_among_closest_matches_a_full_scan(
        local in any::<[u8; 20]>(),
        k in 1usize..6,
        ops in prop::collection::vec(op(), 0..200),
        targets in prop::collection::vec(any::<[u8; 20]>(), 1..4),
        n in 0usize..30,
    ) {
        let local = NodeId(local);
        let table = replay(local, k, &ops)?;
        let all: Vec<Contact> = table.contacts().collect();
        let mut targets: Vec<NodeId> = targets.into_iter().map(NodeId).collect();
        targets.push(local);
        targets.extend(all.iter().take(3).map(|c| { let mut t = c.id; t.0[19] ^= 1; t }));
        let mut ids: Vec<NodeId> = all.iter().take(6).map(|c| c.id).collect();
        ids.extend([local, NodeId([0; 20]), NodeId([0xff; 20])]);
        for target in &targets {
            for id in ids.iter().chain(targets.iter()) {
                let dist = target.distance(id);
                let me = usize::from(local != *id && target.distance(&local) < dist);
                let closer = me + all.iter().filter(|c| c.id != *id && target.distance(&c.id) < dist).count();
                prop_assert_eq!(table.would_be_among_closest(id, target, n), closer < n, "n {}", n);
            }
        }
    }

    #[test]
    fn has_closer_than_local_matches_a_full_scan(
        local in any::<[u8; 20]>(),
        k in 1usize..6,
        ops in prop::collection::vec(op(), 0..200),
        targets in prop::collection::vec(any::<[u8; 20]>(), 1..6),
    ) {
        let local = NodeId(local);
        let table = replay(local, k, &ops)?;
        let all: Vec<Contact> = table.contacts().collect();
        let mut targets: Vec<NodeId> = targets.into_iter().map(NodeId).collect();
        targets.push(local);
        // Targets next to known contacts, so that the deep buckets decide.
        targets.extend(all.iter().take(3).map(|c| { let mut t = c.id; t.0[19] ^= 1; t }));
        for target in targets {
            for except in all.first().map(|c| c.id).into_iter().chain([NodeId([0; 20])]) {
                let mine = target.distance(&local);
                let expected = all.iter().any(|c| c.id != except && target.distance(&c.id) < mine);
                prop_assert_eq!(table.has_closer_than_local(&target, &except), expected);
            }
        }
    }
}

// ---- Dead contacts (commit 15347e3): suspects, timeouts, what each listing keeps ----

/// A table of `n` random contacts (all in one bucket with k = K) and those contacts.
fn table_of(seed: u64, n: u16) -> (RoutingTable, Vec<Contact>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut table = RoutingTable::new(NodeId::random(&mut rng), K, Time::ZERO);
    let contacts: Vec<Contact> = (0..n).map(|p| contact(NodeId::random(&mut rng), p + 1)).collect();
    for c in &contacts {
        assert_eq!(table.insert(*c, Time::ZERO), InsertOutcome::Inserted);
    }
    (table, contacts)
}

fn is_suspect(table: &RoutingTable, id: &NodeId) -> bool {
    table.buckets().iter().find_map(|b| b.get(id)).is_some_and(|e| e.suspect)
}

fn ids_of(contacts: &[Contact]) -> Vec<NodeId> {
    contacts.iter().map(|c| c.id).collect()
}

#[test]
fn a_suspect_is_left_out_of_closest_answering_only() {
    let (mut table, all) = table_of(20, 6);
    let target = all[0].id;
    let n = all.len();
    let before = table.closest(&target, n);
    table.mark_suspect(&all[0].id);
    assert!(is_suspect(&table, &all[0].id));
    // Still known, still listed wherever we do not vouch for it.
    assert_eq!(table.closest(&target, n), before);
    assert_eq!(table.closest_filtered(&target, n, |_| false), before);
    assert_eq!(table.closest_unfailed(&target, n), before);
    // Left out of what we tell others; the rest keep their order.
    let answering = table.closest_answering(&target, n, |_| false);
    assert_eq!(answering, before[1..].to_vec());
    // The skip predicate still applies on top.
    let skip = all[1].id;
    let answering = table.closest_answering(&target, n, |c| c.id == skip);
    assert!(!ids_of(&answering).contains(&all[0].id) && !ids_of(&answering).contains(&skip));
    assert_eq!(answering.len(), n - 2);
    // A suspect has no timeout recorded.
    assert_eq!(table.failures(&all[0].id), Some(0));
}

#[test]
fn closest_unfailed_leaves_out_timed_out_contacts_but_keeps_suspects() {
    let (mut table, all) = table_of(21, 6);
    let target = NodeId::for_key("target");
    let (failed, suspect) = (all[2].id, all[3].id);
    assert!(!table.record_failure(&failed, 3));
    table.mark_suspect(&suspect);
    let unfailed = ids_of(&table.closest_unfailed(&target, all.len()));
    assert_eq!(unfailed.len(), all.len() - 1);
    assert!(!unfailed.contains(&failed));
    assert!(unfailed.contains(&suspect));
    let answering = ids_of(&table.closest_answering(&target, all.len(), |_| false));
    assert_eq!(answering.len(), all.len() - 2);
    assert!(!answering.contains(&failed) && !answering.contains(&suspect));
    // Both are still live contacts, listed by plain `closest`.
    assert_eq!(table.closest(&target, all.len()).len(), all.len());
}

#[test]
fn failures_reports_the_consecutive_timeouts_of_live_contacts_only() {
    let (mut table, far, cand) = full_far_bucket(22, 1);
    let a = far[1].id;
    assert_eq!(table.failures(&a), Some(0));
    assert!(!table.record_failure(&a, 3));
    assert_eq!(table.failures(&a), Some(1));
    assert!(!table.record_failure(&a, 3));
    assert_eq!(table.failures(&a), Some(2));
    // A suspect mark is not a timeout.
    table.mark_suspect(&a);
    assert_eq!(table.failures(&a), Some(2));
    // Not live: unknown, parked in a replacement cache, or evicted.
    assert_eq!(table.failures(&NodeId::for_key("nobody")), None);
    assert_eq!(table.insert(cand[0], secs(1)), InsertOutcome::Pending);
    assert_eq!(table.failures(&cand[0].id), None);
    assert!(table.record_failure(&a, 3));
    assert_eq!(table.failures(&a), None);
}

#[test]
fn hearing_from_a_contact_clears_suspect_and_failures() {
    let (mut table, all) = table_of(23, 4);
    let target = all[0].id;
    let a = all[0];
    table.mark_suspect(&a.id);
    assert!(!table.record_failure(&a.id, 3));
    assert!(!ids_of(&table.closest_unfailed(&target, 4)).contains(&a.id));
    assert!(!ids_of(&table.closest_answering(&target, 4, |_| false)).contains(&a.id));

    assert_eq!(table.insert(a, secs(1)), InsertOutcome::Updated);
    assert_eq!(table.failures(&a.id), Some(0));
    assert!(!is_suspect(&table, &a.id));
    assert_eq!(table.closest_answering(&target, 1, |_| false), vec![a]);
    assert_eq!(table.closest_unfailed(&target, 1), vec![a]);

    // A suspect mark alone is cleared the same way, also by an answered eviction ping.
    let b = all[1];
    table.mark_suspect(&b.id);
    assert_eq!(table.insert(b, secs(2)), InsertOutcome::Updated);
    assert!(!is_suspect(&table, &b.id));
    table.mark_suspect(&b.id);
    table.ping_answered(&b.id, secs(3));
    assert!(!is_suspect(&table, &b.id));
    assert_eq!(table.closest_answering(&b.id, 1, |_| false), vec![b]);
}

#[test]
fn mark_suspect_never_evicts() {
    let (mut table, far, cand) = full_far_bucket(24, 2);
    for c in &cand {
        assert_eq!(table.insert(*c, secs(1)), InsertOutcome::Pending);
    }
    let live = bucket_ids(&table, 0);
    let parked = replacement_ids(&table, 0);
    for _ in 0..10 {
        for c in &far {
            table.mark_suspect(&c.id);
        }
    }
    assert_eq!(bucket_ids(&table, 0), live);
    assert_eq!(replacement_ids(&table, 0), parked);
    assert!(far.iter().all(|c| table.contains(&c.id) && table.failures(&c.id) == Some(0)));
    assert_eq!(table.len(), 4);
    // Marking an unknown or parked id changes nothing either.
    table.mark_suspect(&cand[0].id);
    table.mark_suspect(&NodeId::for_key("nobody"));
    assert_eq!(replacement_ids(&table, 0), parked);
    assert!(!table.contains(&cand[0].id));
}

proptest! {
    /// After any history, marking some contacts suspect and recording timeouts on others,
    /// `closest_answering` and `closest_unfailed` are exactly a full scan's filtered order.
    #[test]
    fn closest_answering_and_unfailed_are_exact(
        local in any::<[u8; 20]>(),
        k in 1usize..8,
        ops in prop::collection::vec(op(), 0..200),
        marks in prop::collection::vec((any::<usize>(), any::<bool>()), 0..12),
        targets in prop::collection::vec(any::<[u8; 20]>(), 1..4),
        n in 0usize..40,
    ) {
        let local = NodeId(local);
        let mut table = replay(local, k, &ops)?;
        let mut all: Vec<Contact> = table.contacts().collect();
        let mut suspects: Vec<NodeId> = Vec::new();
        if !all.is_empty() {
            for (i, suspect) in marks {
                let id = all[i % all.len()].id;
                if suspect {
                    table.mark_suspect(&id);
                    suspects.push(id);
                } else {
                    prop_assert!(!table.record_failure(&id, u32::MAX));
                }
            }
        }
        prop_assert_eq!(table.len(), all.len());
        let mut targets: Vec<NodeId> = targets.into_iter().map(NodeId).collect();
        targets.push(local);
        targets.extend(all.first().map(|c| c.id));
        let unfailed = |c: &Contact| table.failures(&c.id) == Some(0);
        let skip = |c: &Contact| c.id.0[19] & 1 == 0;
        for target in targets {
            all.sort_by_key(|c| target.distance(&c.id));
            let expected: Vec<Contact> = all.iter().filter(|c| unfailed(c)).take(n).copied().collect();
            prop_assert_eq!(table.closest_unfailed(&target, n), expected);
            let expected: Vec<Contact> = all
                .iter()
                .filter(|c| unfailed(c) && !suspects.contains(&c.id) && !skip(c))
                .take(n)
                .copied()
                .collect();
            prop_assert_eq!(table.closest_answering(&target, n, skip), expected);
        }
    }
}
