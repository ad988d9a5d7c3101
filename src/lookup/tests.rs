use super::*;
use proptest::prelude::*;
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::net::SocketAddr;

fn contact(id: NodeId, port: u16) -> Contact {
    Contact::new(id, SocketAddr::from(([127, 0, 0, 1], port)))
}

fn ids(n: usize, seed: u64) -> Vec<Contact> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|i| contact(NodeId::random(&mut rng), i as u16 + 1)).collect()
}

/// Every node knows the `k` nodes closest to any target among all nodes: an
/// idealised network, so a correct lookup must end with the true k closest.
fn closest_of(all: &[Contact], target: &NodeId, k: usize) -> Vec<Contact> {
    let mut v = all.to_vec();
    v.sort_by_key(|c| c.id.distance(target));
    v.truncate(k);
    v
}

fn new_lookup(target: NodeId, kind: LookupKind, seeds: Vec<Contact>) -> Lookup {
    Lookup::new(target, NodeId([0xff; 20]), kind, 20, ALPHA, Duration::from_secs(1)).with_seeds(seeds)
}

fn drain(l: &mut Lookup, now: Time) -> Vec<Contact> {
    let mut out = Vec::new();
    while let Next::Query(c) = l.next(now) {
        out.push(c);
    }
    out
}

#[test]
fn finds_true_closest_in_ideal_network() {
    let all = ids(300, 1);
    let target = NodeId::random(&mut StdRng::seed_from_u64(9));
    let mut l = new_lookup(target, LookupKind::FindNode, all[..3].to_vec());
    let now = Time::ZERO;
    loop {
        let batch = drain(&mut l, now);
        if batch.is_empty() {
            assert_eq!(l.next(now), Next::Done);
            break;
        }
        for c in batch {
            l.on_nodes(&c.id, closest_of(&all, &target, 20));
        }
    }
    let r = l.finish();
    assert_eq!(r.closest, closest_of(&all, &target, 20));
    assert!(r.hops >= 2);
}

#[test]
fn respects_alpha_until_replies_arrive() {
    let all = ids(10, 2);
    let mut l = new_lookup(NodeId([0; 20]), LookupKind::FindNode, all.clone());
    let first = drain(&mut l, Time::ZERO);
    assert_eq!(first.len(), ALPHA);
    assert_eq!(l.next(Time::ZERO), Next::Wait);
    l.on_nodes(&first[0].id, vec![]);
    assert_eq!(drain(&mut l, Time::ZERO).len(), 1);
}

#[test]
fn stalled_query_frees_a_slot_and_stops_blocking_termination() {
    let all = ids(2, 3);
    let mut l = new_lookup(NodeId([0; 20]), LookupKind::FindNode, all.clone());
    let sent = drain(&mut l, Time::ZERO);
    assert_eq!(sent.len(), 2);
    l.on_nodes(&sent[0].id, vec![]);
    assert_eq!(l.next(Time::from_millis(500)), Next::Wait);
    assert_eq!(l.next_stall(), Some(Time::from_millis(1000)));
    assert_eq!(l.next(Time::from_millis(1000)), Next::Done);
    // A late answer is still used if it comes before finish.
    l.on_nodes(&sent[1].id, vec![]);
    assert_eq!(l.finish().closest.len(), 2);
}

#[test]
fn a_lookup_nobody_answered_waits_for_its_stalled_queries() {
    let all = ids(2, 3);
    let mut l = new_lookup(NodeId([0; 20]), LookupKind::FindNode, all[..1].to_vec());
    assert_eq!(drain(&mut l, Time::ZERO), vec![all[0]]);
    // Past its stall, with nothing else to ask: not done while it may answer.
    assert_eq!(l.next(Time::from_millis(1000)), Next::Wait);
    assert_eq!(l.take_stalled(), vec![all[0].id]);
    // Its late answer goes on as any answer would.
    l.on_nodes(&all[0].id, vec![all[1]]);
    assert_eq!(drain(&mut l, Time::from_millis(1100)), vec![all[1]]);
    l.on_nodes(&all[1].id, vec![]);
    assert_eq!(l.next(Time::from_millis(1200)), Next::Done);
    assert_eq!(l.finish().closest.len(), 2);
    // The same lookup whose only query then times out ends, empty.
    let mut l = new_lookup(NodeId([0; 20]), LookupKind::FindNode, all[..1].to_vec());
    drain(&mut l, Time::ZERO);
    assert_eq!(l.next(Time::from_millis(1000)), Next::Wait);
    l.on_failure(&all[0].id);
    assert_eq!(l.next(Time::from_millis(2000)), Next::Done);
    assert!(l.finish().closest.is_empty());
}

#[test]
fn the_result_names_stalled_contacts_closer_than_the_farthest_that_answered() {
    let at = |last: u8| {
        let mut b = [0; 20];
        b[19] = last;
        contact(NodeId(b), u16::from(last))
    };
    // Distances 1 to 4 from the target; k = 2, stall after 1 s.
    let all: Vec<Contact> = (1..=4).map(at).collect();
    let start = || {
        Lookup::new(NodeId([0; 20]), NodeId([0xff; 20]), LookupKind::FindNode, 2, ALPHA, Duration::from_secs(1))
            .with_seeds(all.clone())
    };
    let ms = Time::from_millis;
    // The closest has not answered when it stalls at 1 s, so the third is
    // asked; then `answers` answers and the lookup ends at `end`.
    let run = |answers: usize, end: Time| {
        let mut l = start();
        assert_eq!(drain(&mut l, ms(0)), vec![all[0], all[1]]);
        l.on_nodes(&all[1].id, vec![]);
        assert_eq!(drain(&mut l, ms(1000)), vec![all[2]]);
        l.on_nodes(&all[answers].id, vec![]);
        assert_eq!(l.next(end), Next::Done);
        let r = l.finish();
        (r.closest, r.stalled)
    };
    // The third answers: the closest was only slow, and is closer.
    assert_eq!(run(2, ms(1000)), (vec![all[1], all[2]], vec![all[0]]));
    // The closest answers late and the third stalls: it is farther than the
    // k that answered.
    assert_eq!(run(0, ms(2000)), (vec![all[0], all[1]], vec![]));
}

#[test]
fn failures_are_excluded_and_counted() {
    let all = ids(4, 4);
    let mut l = new_lookup(NodeId([0; 20]), LookupKind::FindNode, all.clone());
    let sent = drain(&mut l, Time::ZERO);
    for c in &sent {
        l.on_failure(&c.id);
        l.on_failure(&c.id);
    }
    let last = drain(&mut l, Time::ZERO);
    assert_eq!(last.len(), 1);
    l.on_nodes(&last[0].id, vec![]);
    assert_eq!(l.next(Time::ZERO), Next::Done);
    let r = l.finish();
    assert_eq!((r.failed, r.queried, r.closest.len()), (3, 4, 1));
}

#[test]
fn value_ends_lookup_and_names_cache_target() {
    let all = ids(6, 5);
    let target = NodeId([0; 20]);
    let mut l = new_lookup(target, LookupKind::FindValue, all.clone());
    let sent = drain(&mut l, Time::ZERO);
    // Out-of-order answers: the last query answers first.
    l.on_nodes(&sent[2].id, vec![]);
    l.on_value(&sent[1].id, Value::Str("v".into()));
    assert_eq!(l.next(Time::ZERO), Next::Done);
    let r = l.finish();
    assert_eq!(r.value, Some(Value::Str("v".into())));
    assert_eq!(r.value_from, Some(sent[1].id));
    assert_eq!(r.store_at, Some(sent[2]));
}

#[test]
fn collecting_copies_goes_past_the_first_value_and_keeps_each_holder() {
    let all = ids(6, 5);
    let target = NodeId([0; 20]);
    let mut l = new_lookup(target, LookupKind::FindValue, all.clone()).with_copies(3);
    let sent = drain(&mut l, Time::ZERO);
    l.on_value(&sent[1].id, Value::Str("old".into()));
    // One copy of three: the lookup goes on with alpha in flight (the two
    // copies still wanted fit in it), so one of the 3 candidates left is
    // asked, not all: those in flight are near the holder and likely hold it.
    let more = drain(&mut l, Time::ZERO);
    assert_eq!(more.len(), 1);
    l.on_nodes(&sent[0].id, vec![]);
    l.on_value(&sent[2].id, Value::Str("new".into()));
    assert_ne!(l.next(Time::ZERO), Next::Done);
    l.on_value(&more[0].id, Value::Str("new".into()));
    assert_eq!(l.next(Time::ZERO), Next::Done);
    let r = l.finish();
    let copies: Vec<(&str, NodeId)> = r.copies.iter().map(|(v, from)| (v.as_str().unwrap_or(""), *from)).collect();
    assert_eq!(copies, vec![("old", sent[1].id), ("new", sent[2].id), ("new", more[0].id)]);
    assert_eq!((r.value, r.value_from), (Some(Value::Str("old".into())), Some(sent[1].id)));
    // The cache copy goes to the closest that answered without the value.
    assert_eq!(r.store_at, Some(sent[0]));
}

#[test]
fn collecting_more_copies_than_alpha_holds_asks_as_many_at_once() {
    let all = ids(12, 5);
    let mut l = new_lookup(NodeId([0; 20]), LookupKind::FindValue, all).with_copies(7);
    let sent = drain(&mut l, Time::ZERO);
    assert_eq!(sent.len(), ALPHA);
    l.on_value(&sent[0].id, Value::Int(1));
    // Six copies still wanted, two queries in flight: four more go at once.
    assert_eq!(drain(&mut l, Time::ZERO).len(), 4);
}

#[test]
fn collecting_copies_ends_when_the_k_closest_have_answered() {
    let all = ids(5, 7);
    let mut l = new_lookup(NodeId([0; 20]), LookupKind::FindValue, all.clone()).with_copies(4);
    let mut answered = 0;
    loop {
        let batch = drain(&mut l, Time::ZERO);
        if batch.is_empty() {
            break;
        }
        for c in batch {
            // Two of the five hold a copy; the others know nobody else.
            match answered {
                0 | 3 => l.on_value(&c.id, Value::Int(answered)),
                _ => l.on_nodes(&c.id, vec![]),
            }
            answered += 1;
        }
    }
    assert_eq!((answered, l.next(Time::ZERO)), (5, Next::Done));
    assert_eq!(l.finish().copies.len(), 2);
}

#[test]
fn replies_from_unknown_ids_are_ignored_and_self_is_never_queried() {
    let local = NodeId([0xff; 20]);
    let mut l = new_lookup(NodeId([0; 20]), LookupKind::FindNode, vec![contact(local, 1)]);
    assert_eq!(l.next(Time::ZERO), Next::Done);
    l.on_nodes(&NodeId([7; 20]), ids(5, 6));
    assert_eq!(l.next(Time::ZERO), Next::Done);
    assert!(l.finish().closest.is_empty());
}

/// What `Lookup::waiting` must hold: every candidate in `State::Waiting`, closest first.
fn waiting_by_state(l: &Lookup) -> Vec<(Distance, Time)> {
    let waiting = |(d, c): (&Distance, &Candidate)| match c.state {
        State::Waiting { stalls_at } => Some((*d, stalls_at)),
        _ => None,
    };
    l.candidates.iter().filter_map(waiting).collect()
}

proptest! {
    /// The waiting list stays exactly the candidates in `Waiting` through any
    /// mix of queries, stalls, late and repeated answers, failures and values.
    #[test]
    fn waiting_list_tracks_candidate_states(seed in any::<u64>(), n in 1usize..60) {
        let all = ids(n, seed);
        let mut rng = StdRng::seed_from_u64(seed);
        let target = NodeId::random(&mut rng);
        let mut l = new_lookup(target, LookupKind::FindValue, all[..n.min(5)].to_vec());
        let mut now = Time::ZERO;
        for _ in 0..500 {
            now = now + Duration::from_millis(rng.gen_range(0..700));
            if l.next(now) == Next::Done {
                break;
            }
            let c = all[rng.gen_range(0..n)];
            match rng.gen_range(0..10) {
                0 => l.on_failure(&c.id),
                1 => l.on_value(&c.id, Value::Nil),
                2..=5 => l.on_nodes(&c.id, closest_of(&all, &c.id, rng.gen_range(0..6))),
                _ => {}
            }
            prop_assert_eq!(&l.waiting, &waiting_by_state(&l));
            let stall = waiting_by_state(&l).iter().map(|&(_, stalls_at)| stalls_at).min();
            prop_assert_eq!(l.next_stall(), stall);
        }
    }

    /// Whatever mix of answers, failures and silences, a lookup never has more
    /// than alpha live queries and always terminates (a silent query times
    /// out in the end, as the engine's requests do).
    #[test]
    fn lookup_terminates_and_respects_alpha(seed in any::<u64>(), n in 1usize..80) {
        let all = ids(n, seed);
        let mut rng = StdRng::seed_from_u64(seed);
        let target = NodeId::random(&mut rng);
        let mut l = new_lookup(target, LookupKind::FindNode, all[..n.min(3)].to_vec());
        let mut now = Time::ZERO;
        let mut waiting: Vec<Contact> = Vec::new();
        let mut silent: Vec<Contact> = Vec::new();
        for _ in 0..10_000 {
            match l.next(now) {
                Next::Query(c) => { waiting.push(c); continue; }
                Next::Done => break,
                Next::Wait => {}
            }
            let live = l.candidates.values()
                .filter(|c| matches!(c.state, State::Waiting { .. }))
                .count();
            prop_assert!(live <= ALPHA);
            prop_assert_eq!(&l.waiting, &waiting_by_state(&l));
            if waiting.is_empty() || rng.gen_bool(0.1) {
                now = now + Duration::from_millis(1100);
                if waiting.is_empty() {
                    silent.drain(..).for_each(|c| l.on_failure(&c.id));
                }
                continue;
            }
            let c = waiting.swap_remove(rng.gen_range(0..waiting.len()));
            match rng.gen_range(0..3) {
                0 => l.on_failure(&c.id),
                1 => silent.push(c),
                _ => { let k = rng.gen_range(0..8); l.on_nodes(&c.id, closest_of(&all, &c.id, k)); }
            }
        }
        prop_assert_eq!(l.next(now), Next::Done);
        prop_assert!(l.finish().closest.len() <= 20);
    }

    #[test]
    fn in_flight_never_exceeds_alpha(seed in any::<u64>()) {
        let all = ids(60, seed);
        let mut l = new_lookup(NodeId([1; 20]), LookupKind::FindNode, all.clone());
        let sent = drain(&mut l, Time::ZERO);
        prop_assert_eq!(sent.len(), ALPHA);
    }
}

#[test]
fn take_stalled_names_each_stalled_contact_once_at_the_first_next_after_its_stall() {
    let all = ids(5, 7);
    let mut l = new_lookup(NodeId([0; 20]), LookupKind::FindNode, all.clone());
    let sent = drain(&mut l, Time::ZERO);
    assert_eq!(sent.len(), 3);
    assert!(l.take_stalled().is_empty(), "nothing has waited yet");
    // One answers, one fails, one stays silent.
    l.on_nodes(&sent[0].id, vec![]);
    l.on_failure(&sent[1].id);
    let refill = drain(&mut l, Time::from_millis(500));
    assert_eq!(refill.len(), 2);
    assert_eq!(l.next(Time::from_millis(999)), Next::Wait);
    assert!(l.take_stalled().is_empty(), "reported before its stall");
    // The first call at or past the stall reports the silent one, and only it;
    // the next() calls that follow in the same drain add nothing.
    assert_eq!(l.next(Time::from_millis(1000)), Next::Wait);
    assert_eq!(l.next(Time::from_millis(1000)), Next::Wait);
    assert_eq!(l.take_stalled(), vec![sent[2].id]);
    assert!(l.take_stalled().is_empty(), "taken twice");
    assert_eq!(l.next(Time::from_millis(1400)), Next::Wait);
    assert!(l.take_stalled().is_empty(), "a stalled contact came back");
    // A late answer from it changes nothing here.
    l.on_nodes(&sent[2].id, vec![]);
    // The two sent at 500 ms stall together at 1500 ms.
    assert_eq!(l.next(Time::from_millis(1500)), Next::Done);
    let mut stalled = l.take_stalled();
    stalled.sort();
    let mut expected: Vec<NodeId> = refill.iter().map(|c| c.id).collect();
    expected.sort();
    assert_eq!(stalled, expected);
    assert_eq!(l.next(Time::from_millis(5000)), Next::Done);
    assert!(l.take_stalled().is_empty());
}

#[test]
fn take_stalled_is_empty_without_a_next_call_past_the_stall() {
    let all = ids(3, 8);
    let mut l = new_lookup(NodeId([0; 20]), LookupKind::FindNode, all.clone());
    let sent = drain(&mut l, Time::ZERO);
    assert_eq!(sent.len(), 3);
    // Time alone does not stall a query: only next() looks at the clock.
    assert_eq!(l.next_stall(), Some(Time::from_millis(1000)));
    assert!(l.take_stalled().is_empty());
    // Answered in time, then asked long after: never stalled.
    for c in &sent {
        l.on_nodes(&c.id, vec![]);
    }
    assert_eq!(l.next(Time::from_secs(60)), Next::Done);
    assert!(l.take_stalled().is_empty());
}
