//! Proximity choice and per-contact stalls (see the module docs of
//! [`crate::lookup`]): the round trip only ever decides between candidates
//! of the same rank.

use super::*;
use proptest::prelude::*;
use std::net::SocketAddr;

const TARGET: NodeId = NodeId([0; 20]);

/// An id sharing exactly `prefix` leading bits with [`TARGET`], told apart by `tail`.
fn id_at(prefix: usize, tail: u16) -> NodeId {
    let mut b = [0u8; 20];
    b[prefix / 8] |= 0x80 >> (prefix % 8);
    b[18] |= (tail >> 8) as u8;
    b[19] |= tail as u8;
    NodeId(b)
}

fn near(rtt_ms: u64) -> Near {
    Near { rtt: Some(Duration::from_millis(rtt_ms)), measured: true, stall: None }
}

/// A lookup over `(prefix, tail, rtt_ms)` candidates, every one allowed in flight.
fn lookup(cands: &[(usize, u16, u64)], cap: usize) -> Lookup {
    lookup_slack(cands, cap, 0)
}

/// [`lookup`] with a rank slack below the cap.
fn lookup_slack(cands: &[(usize, u16, u64)], cap: usize, slack: usize) -> Lookup {
    let n = cands.len().max(1);
    let seeds: Vec<Contact> =
        cands.iter().enumerate().map(|(i, &(p, t, _))| Contact::new(id_at(p, t), addr(i as u16 + 1))).collect();
    let rtt_of = |c: &Contact| cands.iter().find(|&&(p, t, _)| id_at(p, t) == c.id).map_or(0, |x| x.2);
    Lookup::new(TARGET, NodeId([0xff; 20]), LookupKind::FindValue, n, n, Duration::from_secs(1))
        .with_rank_cap(cap)
        .with_rank_slack(slack)
        .with_seeds_near(seeds, |c| near(rtt_of(c)))
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn picks(l: &mut Lookup) -> Vec<NodeId> {
    let mut out = Vec::new();
    while let Next::Query(c) = l.next(Time::ZERO) {
        out.push(c.id);
    }
    out
}

#[test]
fn a_nearer_contact_of_the_same_rank_goes_first_a_nearer_one_of_a_lower_rank_never() {
    // Rank 9: two candidates, the XOR-farther one is near. Rank 3: nearest of all.
    let mut l = lookup(&[(9, 1, 250), (9, 2, 30), (3, 1, 20)], usize::MAX);
    assert_eq!(picks(&mut l), vec![id_at(9, 2), id_at(9, 1), id_at(3, 1)]);
}

#[test]
fn at_equal_round_trips_xor_order_decides() {
    let mut l = lookup(&[(7, 3, 100), (7, 1, 100), (7, 2, 100)], usize::MAX);
    assert_eq!(picks(&mut l), vec![id_at(7, 1), id_at(7, 2), id_at(7, 3)]);
}

#[test]
fn the_rank_cap_makes_deep_candidates_equal() {
    // Prefixes 12 and 10 both reach the cap of 8: the 40 ms one goes first;
    // prefix 6 stays behind them although it is the nearest.
    let mut l = lookup(&[(12, 1, 200), (10, 1, 40), (6, 1, 10)], 8);
    assert_eq!(picks(&mut l), vec![id_at(10, 1), id_at(12, 1), id_at(6, 1)]);
}

#[test]
fn within_the_slack_below_the_cap_the_nearest_goes_first_and_replicas_still_lead() {
    // Cap 8, slack 3: prefixes 5 to 7 are one class, below the replicas (8+).
    // Prefix 9 (a replica, slow) leads; then the 20 ms prefix 5 before the
    // XOR-closer prefix 7; prefix 4 (nearest of all) comes last.
    let mut l = lookup_slack(&[(9, 1, 250), (7, 1, 200), (5, 1, 20), (4, 1, 10)], 8, 3);
    assert_eq!(picks(&mut l), vec![id_at(9, 1), id_at(5, 1), id_at(7, 1), id_at(4, 1)]);
    // Without the slack the XOR order of ranks holds.
    let mut l = lookup(&[(9, 1, 250), (7, 1, 200), (5, 1, 20), (4, 1, 10)], 8);
    assert_eq!(picks(&mut l), vec![id_at(9, 1), id_at(7, 1), id_at(5, 1), id_at(4, 1)]);
}

#[test]
fn each_query_stalls_after_its_own_threshold() {
    let a = Contact::new(id_at(5, 1), addr(1));
    let b = Contact::new(id_at(4, 1), addr(2));
    let own =
        |c: &Contact| Near { rtt: None, measured: false, stall: (c.id == a.id).then(|| Duration::from_millis(60)) };
    let mut l = Lookup::new(TARGET, NodeId([0xff; 20]), LookupKind::FindNode, 20, 2, Duration::from_secs(1))
        .with_seeds_near([a, b], own);
    assert_eq!(picks(&mut l), vec![a.id, b.id]);
    assert_eq!(l.next_stall(), Some(Time::ZERO + Duration::from_millis(60)));
    assert_eq!(l.next(Time::ZERO + Duration::from_millis(59)), Next::Wait);
    assert!(l.take_stalled().is_empty());
    assert_eq!(l.next(Time::ZERO + Duration::from_millis(60)), Next::Wait);
    assert_eq!(l.take_stalled(), vec![a.id], "the 60 ms contact stalls, the other waits its 1 s");
    assert_eq!(l.next_stall(), Some(Time::ZERO + Duration::from_secs(1)));
}

proptest! {
    /// Whatever the round trips: classes (ranks, capped, the slack folded)
    /// never rise along the order of queries, and within a class (round
    /// trip, XOR distance) never falls: a farther XOR candidate never goes
    /// before a closer one of the same class and round trip.
    #[test]
    fn proximity_never_picks_a_farther_rank_or_a_slower_equal(
        cands in proptest::collection::btree_map((0usize..40, 0u16..8), 0u64..4, 1..24),
        cap in 0usize..48,
        slack in 0usize..6,
    ) {
        let cands: Vec<(usize, u16, u64)> = cands.into_iter().map(|((p, t), r)| (p, t, r * 50)).collect();
        let mut l = lookup_slack(&cands, cap, slack);
        // The class: capped, and the slack below the cap folded into one.
        let floor = cap.saturating_sub(slack);
        let class = |p: usize| if p < cap && p > floor { floor } else { p.min(cap) };
        let order = picks(&mut l);
        prop_assert_eq!(order.len(), cands.len());
        let key = |id: &NodeId| {
            let &(p, _, rtt) = cands.iter().find(|&&(p, t, _)| id_at(p, t) == *id).expect("a candidate");
            (class(p), rtt, id.distance(&TARGET))
        };
        for w in order.windows(2) {
            let (a, b) = (key(&w[0]), key(&w[1]));
            prop_assert!(a.0 >= b.0, "rank rose: {:?} then {:?}", a, b);
            if a.0 == b.0 {
                prop_assert!((a.1, a.2) < (b.1, b.2), "within a rank: {:?} then {:?}", a, b);
            }
        }
    }
}

/// A lookup with `alpha` 2 over `seeds` (prefix, tail, rtt_ms), cap 8, with or without fan-out.
fn fanout_lookup(seeds: &[(usize, u16, u64)], fanout: bool) -> Lookup {
    width_lookup(seeds, fanout, 0)
}

/// [`fanout_lookup`] with a replica width.
fn width_lookup(seeds: &[(usize, u16, u64)], fanout: bool, width: usize) -> Lookup {
    let contacts: Vec<Contact> =
        seeds.iter().enumerate().map(|(i, &(p, t, _))| Contact::new(id_at(p, t), addr(i as u16 + 1))).collect();
    let rtt_of = |c: &Contact| RTTS.iter().chain(seeds).find(|&&(p, t, _)| id_at(p, t) == c.id).map_or(0, |x| x.2);
    Lookup::new(TARGET, NodeId([0xff; 20]), LookupKind::FindValue, 20, 2, Duration::from_secs(1))
        .with_rank_cap(8)
        .with_replica_fanout(fanout)
        .with_replica_width(width)
        .with_seeds_near(contacts, |c| near(rtt_of(c)))
}

/// Replicas (prefix >= the cap of 8) the first answer names, with their round trips.
const RTTS: [(usize, u16, u64); 3] = [(9, 1, 150), (10, 1, 40), (12, 1, 90)];

fn answer_with_replicas(l: &mut Lookup, from: NodeId) {
    let replicas: Vec<Contact> =
        RTTS.iter().enumerate().map(|(i, &(p, t, _))| Contact::new(id_at(p, t), addr(100 + i as u16))).collect();
    let rtt_of = |c: &Contact| RTTS.iter().find(|&&(p, t, _)| id_at(p, t) == c.id).map_or(0, |x| x.2);
    l.on_nodes_near(&from, replicas, |c| near(rtt_of(c)));
}

#[test]
fn with_fan_out_alpha_replicas_go_at_once_past_the_first_hops_still_in_flight() {
    let seeds = [(4, 1, 100), (3, 1, 100)];
    let mut on = fanout_lookup(&seeds, true);
    assert_eq!(picks(&mut on), vec![id_at(4, 1), id_at(3, 1)]);
    answer_with_replicas(&mut on, id_at(4, 1));
    // (3, 1) is still out; the two nearest replicas go anyway, nearest first.
    assert_eq!(picks(&mut on), vec![id_at(10, 1), id_at(12, 1)]);
    let mut off = fanout_lookup(&seeds, false);
    picks(&mut off);
    answer_with_replicas(&mut off, id_at(4, 1));
    assert_eq!(picks(&mut off), vec![id_at(10, 1)], "without it the slot (3, 1) holds waits");
}

/// The replicas of [`RTTS`], named by `from`, none of them measured: all at the same stand-in round trip.
fn answer_with_strangers(l: &mut Lookup, from: NodeId) {
    let replicas: Vec<Contact> =
        RTTS.iter().enumerate().map(|(i, &(p, t, _))| Contact::new(id_at(p, t), addr(100 + i as u16))).collect();
    l.on_nodes_near(&from, replicas, |_| Near { rtt: Some(Duration::from_millis(100)), measured: false, stall: None });
}

/// A width lookup over two first-hop seeds, both asked, after (4, 1)
/// answered naming the replicas of [`RTTS`], measured or not.
fn after_first_answer(fanout: bool, width: usize, measured: bool) -> Lookup {
    let mut l = width_lookup(&[(4, 1, 100), (3, 1, 100)], fanout, width);
    picks(&mut l);
    match measured {
        true => answer_with_replicas(&mut l, id_at(4, 1)),
        false => answer_with_strangers(&mut l, id_at(4, 1)),
    }
    l
}

#[test]
fn with_a_replica_width_that_many_unmeasured_replicas_go_at_once_and_never_more() {
    let mut wide = after_first_answer(true, 3, false);
    // Alpha is 2, the width 3: all three replicas the answer named go, XOR-closest first.
    assert_eq!(picks(&mut wide), vec![id_at(12, 1), id_at(10, 1), id_at(9, 1)]);
    // The width never lets a lower class through: (3, 1) is still out and nothing else is known.
    assert!(picks(&mut wide).is_empty());
    // A width under alpha is alpha; without fan-out the width changes nothing.
    assert_eq!(picks(&mut after_first_answer(true, 1, false)), vec![id_at(12, 1), id_at(10, 1)]);
    assert_eq!(picks(&mut after_first_answer(false, 3, false)), vec![id_at(12, 1)]);
}

#[test]
fn a_measured_replica_in_flight_keeps_the_replicas_asked_to_alpha() {
    let mut l = after_first_answer(true, 3, true);
    // The measured 40 ms replica goes first; with it out, only alpha (2) replicas are asked.
    assert_eq!(picks(&mut l), vec![id_at(10, 1), id_at(12, 1)]);
    // Once it fails, the last replica takes its slot.
    l.on_failure(&id_at(10, 1));
    assert_eq!(picks(&mut l), vec![id_at(9, 1)]);
}

proptest! {
    /// With fan-out, whatever answers: at most the replica width (or
    /// alpha, if larger) queries to replicas and alpha more in all are ever
    /// in flight, and the lookup terminates.
    #[test]
    fn fan_out_keeps_replica_queries_within_the_width_and_all_within_alpha_more(
        seeds in proptest::collection::btree_set((0usize..14, 0u16..4), 1..12),
        answers in proptest::collection::vec((0usize..16, 0usize..14, 0u16..4), 0..40),
        width in 0usize..6,
    ) {
        let seeds: Vec<(usize, u16, u64)> = seeds.into_iter().map(|(p, t)| (p, t, 100)).collect();
        let mut l = width_lookup(&seeds, true, width);
        let replica_slots = width.max(2);
        let mut out: Vec<NodeId> = picks(&mut l);
        for (who, p, t) in answers {
            if out.is_empty() { break; }
            let from = out.remove(who % out.len());
            l.on_nodes(&from, vec![Contact::new(id_at(p, t), addr(200 + p as u16 * 4 + t))]);
            out.extend(picks(&mut l));
            let replicas = out.iter().filter(|id| id.distance(&TARGET).leading_zeros() >= 8).count();
            prop_assert!(replicas <= replica_slots, "{} replica queries out", replicas);
            prop_assert!(out.len() <= 2 + replica_slots, "{} queries out", out.len());
        }
        for id in out { l.on_failure(&id); }
        let mut steps = 0;
        while l.next(Time::ZERO) != Next::Done {
            steps += 1;
            prop_assert!(steps < 100, "no termination");
            let Some(&(d, _)) = l.waiting.first() else { continue };
            let id = l.candidates[&d].contact.id;
            l.on_failure(&id);
        }
    }
}

#[test]
fn deep_lists_live_candidates_at_least_extra_bits_past_the_cap_closest_first() {
    let cands = [(12, 1, 90), (9, 1, 20), (10, 2, 40), (10, 1, 300), (7, 1, 10)];
    let mut l = lookup(&cands, 8);
    let deep = |l: &Lookup, extra| l.deep(extra).map(|(c, _)| c.id).collect::<Vec<_>>();
    assert_eq!(deep(&l, 0), vec![id_at(12, 1), id_at(10, 1), id_at(10, 2), id_at(9, 1)]);
    assert_eq!(deep(&l, 2), vec![id_at(12, 1), id_at(10, 1), id_at(10, 2)]);
    // With their round trips, so a reader can take the nearest.
    assert_eq!(l.deep(4).map(|(_, rtt)| rtt).collect::<Vec<_>>(), vec![Some(Duration::from_millis(90))]);
    // One that failed is left out; without a cap nothing is deep.
    l.on_failure(&id_at(10, 1));
    assert_eq!(deep(&l, 2), vec![id_at(12, 1), id_at(10, 2)]);
    assert!(deep(&lookup(&cands, usize::MAX), 0).is_empty());
}
