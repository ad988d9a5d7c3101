//! The spare replica of a provider read's round
//! ([`Config::provider_read_spare`]): one replica more is asked than the
//! round wants, and the round ends once as many as it wants read complete
//! and agree.

use super::provider_ops::{is_list, list_shard, live, no_spare, page, read_outcome, start_read_with};
use super::*;
use crate::engine::op::provider_read::memory::{Hint, Remembered};

pub(super) fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("w{i:03}")).collect()
}

type Lists = Vec<(SocketAddr, MessageId, Call)>;

/// A read wanting 2 replicas under `cfg`, `asked` of them asked, the first
/// answered at once with the whole set of `n`.
fn first_answered(cfg: Config, asked: usize, n: usize) -> (Engine, QueryId, Lists, Vec<String>) {
    let all = ids(n);
    let (mut e, q, lists) = start_read_with(cfg, |_| PeerKind::Extended, 2);
    assert_eq!(lists.len(), asked);
    answer(&mut e, Time::ZERO, lists[0].0, lists[0].1, page(&all, None, n as u64, None));
    (e, q, lists, all)
}

#[test]
fn a_round_asks_a_spare_and_ends_when_those_it_wants_read_complete_and_agree() {
    let all = ids(50);
    let (mut e, q, lists) = start_read_with(small(0), |_| PeerKind::Extended, 2);
    assert_eq!(lists.len(), 3, "two replicas wanted, one spare");
    for (to, id, _) in &lists[..2] {
        answer(&mut e, Time::ZERO, *to, *id, page(&all, None, 50, None));
    }
    // The third has not answered: the read ends all the same, at once.
    let r = read_outcome(&mut e, q);
    assert_eq!((live(&r), r.replicas, r.rounds), (all, 2, 1));
    assert!(sent_to(&mut e).iter().all(|(_, _, c)| !is_list(c)), "nothing asked again");
}

#[test]
fn without_a_spare_the_round_waits_for_every_replica_it_asked() {
    let (mut e, ..) = first_answered(no_spare(0), 2, 50);
    assert!(e.poll_event().is_none(), "the second replica is waited for");
}

#[test]
fn a_replica_short_of_the_merge_does_not_count_and_the_spare_covers_it() {
    let (mut e, q, lists, all) = first_answered(small(0), 3, 100);
    // Lacking 10 of 100 (more than a fiftieth): it does not agree.
    answer(&mut e, Time::ZERO, lists[1].0, lists[1].1, page(&all[10..], None, 90, None));
    let stand_ins = sent_to(&mut e).into_iter().filter(|(_, _, c)| is_list(c)).count();
    assert!(e.poll_event().is_none(), "one complete replica in agreement is not enough");
    answer(&mut e, Time::ZERO, lists[2].0, lists[2].1, page(&all, None, 100, None));
    let r = read_outcome(&mut e, q);
    assert_eq!((r.entries.len(), r.rounds), (100, 1), "the spare agrees: no second round");
    assert!(stand_ins <= 1, "at most a stand-in for the short one: {stand_ins}");
}

#[test]
fn a_complete_replica_that_disagrees_still_brings_a_second_round_when_too_few_agree() {
    let all = ids(100);
    let (mut e, _, lists) = start_read_with(small(0), |_| PeerKind::Extended, 2);
    // Each lacks a different tenth: none holds the merge within a fiftieth.
    for (n, (to, id, _)) in lists.iter().enumerate() {
        let held: Vec<String> = all.iter().enumerate().filter(|(i, _)| i / 10 != n).map(|(_, w)| w.clone()).collect();
        answer(&mut e, Time::ZERO, *to, *id, page(&held, None, 90, None));
    }
    let more = sent_to(&mut e).into_iter().filter(|(_, _, c)| is_list(c)).count();
    assert!(more > 0, "more replicas are read");
    assert!(e.poll_event().is_none());
}

#[test]
fn a_round_with_a_silent_replica_reads_every_replica() {
    let (mut e, q, lists, all) = first_answered(small(0), 3, 50);
    let first: Vec<SocketAddr> = lists.iter().map(|(t, _, _)| *t).collect();
    // Past the stall, the two silent ones get stand-ins.
    let now = Time::ZERO + small(0).lookup_stall + Duration::from_millis(1);
    e.handle_timeout(now);
    let stand_ins: Vec<_> = sent_to(&mut e).into_iter().filter(|(t, _, c)| is_list(c) && !first.contains(t)).collect();
    assert!(!stand_ins.is_empty(), "stand-ins for the silent ones");
    // One of them answers late: two agree, but a replica went silent, so
    // the stand-ins are read too.
    answer(&mut e, now, lists[1].0, lists[1].1, page(&all, None, 50, None));
    assert!(e.poll_event().is_none(), "the stand-ins are waited for");
    let more = ids(51);
    for (to, id, _) in &stand_ins {
        answer(&mut e, now, *to, *id, page(&more, None, 51, None));
    }
    let r = read_outcome(&mut e, q);
    assert_eq!(live(&r), more, "the entry only the stand-ins hold");
}

/// A read wanting 2 replicas of a 400-entry set, 3 asked: the first
/// answers its first page (40 entries, more to come), so it is asked the
/// rest in shards after its cursor and the other two all their shards at
/// once. Every shard request is then answered but those of plan shard
/// `lost[r]` (of four bits) at replica `r`. Returns the engine, the read,
/// every entry and the replicas' addresses.
fn shards_lost_at(lost: [Option<u32>; 3]) -> (Engine, QueryId, Vec<String>, Vec<SocketAddr>) {
    shards_answered(lost, None)
}

/// [`shards_lost_at`], replica `empty` (if any) answering every shard with
/// no entries though it reports the set's 400.
fn shards_answered(lost: [Option<u32>; 3], empty: Option<usize>) -> (Engine, QueryId, Vec<String>, Vec<SocketAddr>) {
    let all = ids(400);
    let (mut e, q, lists) = start_read_with(small(0), |_| PeerKind::Extended, 2);
    assert_eq!(lists.len(), 3);
    answer(&mut e, Time::ZERO, lists[0].0, lists[0].1, page(&all[..40], Some("w039"), 400, None));
    let replicas: Vec<SocketAddr> = lists.iter().map(|(t, _, _)| *t).collect();
    for (to, id, call) in sent_to(&mut e).into_iter().filter(|(_, _, c)| is_list(c)) {
        let r = replicas.iter().position(|t| *t == to).expect("a replica");
        let s = list_shard(&call);
        assert!(s.bits >= 4, "shards of at least four bits: {s:?}");
        if lost[r] == Some(s.index >> (s.bits - 4)) {
            continue;
        }
        let held = if empty == Some(r) { Vec::new() } else { shard_entries(&all, &call) };
        answer(&mut e, Time::ZERO, to, id, page(&held, None, 400, Some(s)));
    }
    (e, q, all, replicas)
}

/// The entries of `all` a page request asks for: its shard, after its cursor.
pub(super) fn shard_entries(all: &[String], call: &Call) -> Vec<String> {
    let s = list_shard(call);
    let Call::Other { args, .. } = call else { unreachable!() };
    let after = args[2].as_str().unwrap_or("");
    all.iter().filter(|w| w.as_str() > after && s.holds(w)).cloned().collect()
}

#[test]
fn a_page_lost_at_each_replica_is_covered_by_the_others_copies_of_its_shard() {
    // No replica reads complete, but every shard came from two of them.
    let (mut e, q, all, _) = shards_lost_at([Some(0), Some(1), Some(2)]);
    let r = read_outcome(&mut e, q);
    assert_eq!((live(&r), r.rounds, r.replicas), (all, 1, 2), "two replicas' worth, shard by shard");
    assert_eq!(r.pages_reasked, 0, "no lost page waited for");
    assert!(sent_to(&mut e).iter().all(|(_, _, c)| !is_list(c)), "nothing asked again");
}

#[test]
fn a_shard_lost_at_two_replicas_of_three_is_waited_for() {
    let (mut e, ..) = shards_lost_at([Some(5), Some(5), None]);
    assert!(e.poll_event().is_none(), "shard 5 came from one replica only");
}

#[test]
fn replicas_a_round_left_once_their_shards_were_covered_are_remembered() {
    let (mut e, q, _, replicas) = shards_lost_at([Some(0), Some(1), Some(2)]);
    let _ = read_outcome(&mut e, q);
    let m = e.read_memory.recall(&id_at(0, 0), Time::ZERO).expect("the read is remembered");
    let kept: Vec<SocketAddr> = m.replicas.iter().map(|c| c.addr).collect();
    assert!(replicas.iter().all(|r| kept.contains(r)), "every replica that answered: {kept:?}");
}

#[test]
fn a_replica_that_answers_its_shards_empty_covers_nothing_and_the_lost_pages_are_asked_again() {
    // The two honest replicas each lost a different shard; the third
    // answered every shard at once, empty, though it reports 400.
    let (mut e, q, all, _) = shards_answered([Some(0), Some(1), None], Some(2));
    assert!(e.poll_event().is_none(), "an empty replica does not stand for the lost shards");
    let at = e.poll_timeout().expect("the lost pages' stall");
    e.handle_timeout(at);
    let again: Vec<_> = sent_to(&mut e).into_iter().filter(|(_, _, c)| is_list(c)).collect();
    assert!(!again.is_empty(), "the lost pages are asked again");
    for (to, id, call) in again {
        answer(&mut e, at, to, id, page(&shard_entries(&all, &call), None, 400, Some(list_shard(&call))));
    }
    assert_eq!(live(&read_outcome(&mut e, q)), all, "every honest entry");
}

/// An engine configured by `cfg` whose contacts all speak the extension,
/// its round trip to everyone 100 ms and to each contact `i` of `measured`
/// the given ms, reading `key` (wanting 2) from memory: known contacts
/// `0..replicas` (nearest the key first), the set's size `hint`.
pub(super) fn read_from_memory(
    cfg: Config,
    key: Key,
    measured: &[(usize, u64)],
    replicas: usize,
    hint: Option<Hint>,
) -> (Engine, QueryId) {
    let mut e = engine_with_contacts(cfg);
    for i in 0..CONTACTS.len() {
        e.peers.insert(contact_id(i), PeerKind::Extended);
    }
    e.svc.rtt.observe(Duration::from_millis(100));
    for &(i, ms) in measured {
        e.svc.book.observe(known(i).addr, Duration::from_millis(ms));
    }
    let replicas = (0..replicas).map(known).collect();
    e.read_memory.remember(key, Remembered { replicas, hint, found_at: Time::ZERO, sized_at: Time::ZERO });
    let q = e.provider_read(Time::ZERO, key, 2);
    (e, q)
}

/// A read wanting 2 from memory of its replicas known contacts 0-3, those
/// in `measured` with their round trip (see [`read_from_memory`]), without
/// racers (this is the choice of the round's own replicas); returns the
/// replicas asked, in the order asked.
fn asked_from_memory(measured: &[(usize, u64)]) -> Vec<SocketAddr> {
    let cfg = Config { provider_read_racers: 0, ..small(0) };
    let (mut e, _) = read_from_memory(cfg, NodeId([0; 20]), measured, 4, None);
    let mut asked: Vec<SocketAddr> = Vec::new();
    for (to, _, _) in sent_to(&mut e).into_iter().filter(|(_, _, c)| is_list(c)) {
        if !asked.contains(&to) {
            asked.push(to);
        }
    }
    asked
}

#[test]
fn a_round_asks_one_more_replica_when_one_it_would_ask_has_no_measured_round_trip() {
    let all = [(0, 40), (1, 40), (2, 40), (3, 40)];
    assert_eq!(asked_from_memory(&all).len(), 3, "all measured: two wanted and one spare");
    assert_eq!(asked_from_memory(&all[..3]).len(), 3, "the one not measured is not among the three asked");
    assert_eq!(asked_from_memory(&all[..2]).len(), 4, "one of the three unmeasured: one more");
}

#[test]
fn a_replica_never_measured_is_ranked_at_the_node_wide_round_trip_not_last() {
    // Contact 3 at 300 ms is slower than the node's 100 ms on the whole:
    // contact 2, never measured, goes before it.
    let asked = asked_from_memory(&[(0, 40), (1, 40), (3, 300)]);
    let pos = |i: usize| asked.iter().position(|a| *a == known(i).addr);
    assert!(pos(2).is_some_and(|p| pos(3).is_none_or(|q| p < q)), "{asked:?}");
    assert_eq!(&asked[..2], &[known(0).addr, known(1).addr]);
}
