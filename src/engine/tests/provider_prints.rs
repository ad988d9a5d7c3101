//! Set fingerprints in a provider read (`proto-spec/EXTENSIONS.md` §3.3):
//! a replica that reports the fingerprint of the providers merged, or of a
//! replica read to its end whose pages add up to it, holds the same
//! providers, so its pages still on the way are not waited for.

use super::provider_ops::{is_list, list_shard, live, page, read_outcome, start_read_with};
use super::provider_spare::{ids, shard_entries};
use super::*;
use crate::engine::providers::wire::{SetPrint, Shard};

/// `page` reporting the set's fingerprint `print` (none: from a replica
/// older than fingerprints).
fn printed(page: Value, print: Option<SetPrint>) -> Value {
    let Value::Map(mut map) = page else { unreachable!() };
    map.extend(print.map(|p| (Value::from("fp"), Value::from_u64(p.0))));
    Value::Map(map)
}

type Prints = [Option<SetPrint>; 3];

/// The fingerprint of a set of live unsigned entries `ids`.
fn print_of(ids: &[String]) -> Option<SetPrint> {
    let mut p = SetPrint::default();
    for id in ids {
        p.add(id, false, None);
    }
    Some(p)
}

/// A read wanting 2 of a 400-entry set, 3 replicas asked: the first answers
/// its first page (40 entries, more to come) reporting `prints[0]`, so it
/// is asked the rest in shards and the others all their shards at once.
/// Replica `r` then answers the shard requests `answers(r, index)` lets
/// through (4-bit plan index), with `held[r]`'s entries of the shard and
/// `prints[r]`, the last replica's first. Returns the engine, the read and the requests left unanswered.
fn read(
    held: [&[String]; 3],
    prints: Prints,
    answers: impl Fn(usize, u32) -> bool,
) -> (Engine, QueryId, Vec<(SocketAddr, MessageId, Call)>) {
    read_dying(held, prints, answers, "")
}

/// [`read`], `dying` (if held) in its last second at every replica.
fn read_dying(
    held: [&[String]; 3],
    prints: Prints,
    answers: impl Fn(usize, u32) -> bool,
    dying: &str,
) -> (Engine, QueryId, Vec<(SocketAddr, MessageId, Call)>) {
    let page = |ids: &[String], next: Option<&str>, live: u64, shard: Option<Shard>| {
        last_second(page(ids, next, live, shard), dying)
    };
    let (mut e, q, lists) = start_read_with(small(0), |_| PeerKind::Extended, 2);
    assert_eq!(lists.len(), 3);
    let first = page(&held[0][..40], Some(held[0][39].as_str()), 400, None);
    answer(&mut e, Time::ZERO, lists[0].0, lists[0].1, printed(first, prints[0]));
    let replicas: Vec<SocketAddr> = lists.iter().map(|(t, _, _)| *t).collect();
    let mut left = Vec::new();
    let mut asked: Vec<_> = sent_to(&mut e).into_iter().filter(|(_, _, c)| is_list(c)).collect();
    let replica = |to: &SocketAddr| replicas.iter().position(|t| t == to).expect("a replica");
    // The last replica's answers come first.
    asked.sort_by_key(|(to, _, _)| std::cmp::Reverse(replica(to)));
    for (to, id, call) in asked {
        let r = replica(&to);
        let s = list_shard(&call);
        if !answers(r, s.index >> (s.bits - 4)) {
            left.push((to, id, call));
            continue;
        }
        let body = page(&shard_entries(held[r], &call), None, 400, Some(s));
        answer(&mut e, Time::ZERO, to, id, printed(body, prints[r]));
    }
    (e, q, left)
}

/// `page` with the entry `id`, if on it, in its last second.
fn last_second(page: Value, id: &str) -> Value {
    let Value::Map(mut map) = page else { unreachable!() };
    for (k, v) in map.iter_mut() {
        let (Value::Str(k), Value::Array(entries)) = (k, v) else { continue };
        for e in entries.iter_mut().filter(|_| k == "entries") {
            let Value::Array(fields) = e else { continue };
            if fields[0] == Value::from(id) {
                fields[2] = Value::Int(1);
            }
        }
    }
    Value::Map(map)
}

/// A set of 400, and the same with `w999` too.
fn with_one_more() -> (Vec<String>, Vec<String>) {
    let all = ids(400);
    let mut more = all.clone();
    more.push("w999".into());
    more.sort();
    (all, more)
}

/// Replica 0 answers every page; replica 1 one shard; replica 2 nothing.
fn first_whole_second_one_page(
    held: [&[String]; 3],
    prints: Prints,
) -> (Engine, QueryId, Vec<(SocketAddr, MessageId, Call)>) {
    read(held, prints, |r, i| r == 0 || (r == 1 && i == 0))
}

#[test]
fn a_replica_reporting_the_fingerprint_of_one_read_to_its_end_is_not_waited_for() {
    let all = ids(400);
    let p = print_of(&all);
    let (mut e, q, _) = first_whole_second_one_page([&all, &all, &all], [p, p, p]);
    let r = read_outcome(&mut e, q);
    assert_eq!((live(&r), r.rounds, r.replicas), (all.clone(), 1, 2), "one read to its end, one copy of it");
    assert_eq!(r.pages_reasked, 0);
    // Without fingerprints (older replicas) the same answers leave the read waiting.
    let (mut e, ..) = first_whole_second_one_page([&all, &all, &all], [None, None, None]);
    assert!(e.poll_event().is_none(), "no replica but the first read to its end: waited for");
}

#[test]
fn a_replica_reporting_another_fingerprint_is_read_to_its_end() {
    let (all, more) = with_one_more();
    let (mut e, q, left) =
        first_whole_second_one_page([&all, &more, &more], [print_of(&all), print_of(&more), print_of(&more)]);
    assert!(e.poll_event().is_none(), "the second holds another set: its pages are waited for");
    for (to, id, call) in left {
        let body = page(&shard_entries(&more, &call), None, 401, Some(list_shard(&call)));
        answer(&mut e, Time::ZERO, to, id, printed(body, print_of(&more)));
    }
    assert!(live(&read_outcome(&mut e, q)).contains(&"w999".to_string()), "the entry only the others hold");
}

#[test]
fn a_replica_whose_pages_do_not_add_up_to_its_fingerprint_vouches_for_no_one() {
    let (all, more) = with_one_more();
    // The first reports the set with w999 but never sends it.
    let p = print_of(&more);
    let (mut e, ..) = first_whole_second_one_page([&all, &all, &all], [p, p, p]);
    assert!(e.poll_event().is_none(), "the second's pages are waited for");
}

#[test]
fn pages_of_replicas_reporting_the_merges_fingerprint_cover_the_set_between_them() {
    let all = ids(400);
    let p = print_of(&all);
    // Neither reads to its end: the first answers the even shards, the second the odd ones.
    let (mut e, q, _) = read([&all, &all, &all], [p, p, p], |r, i| (r == 0 && i % 2 == 0) || (r == 1 && i % 2 == 1));
    let r = read_outcome(&mut e, q);
    assert_eq!((live(&r), r.rounds), (all.clone(), 1));
    // A fingerprint that is not the merge's covers nothing.
    let other = print_of(&all[1..]);
    let (mut e, ..) =
        read([&all, &all, &all], [other, other, other], |r, i| (r == 0 && i % 2 == 0) || (r == 1 && i % 2 == 1));
    assert!(e.poll_event().is_none(), "half the shards at each replica: waited for");
}

#[test]
fn a_copy_of_a_replica_read_to_its_end_counts_though_another_brought_more() {
    let (all, more) = with_one_more();
    let p = print_of(&all);
    // The third answers the page of its one entry more, and no other: the
    // merge is not the first two's set, but they hold the same one.
    let extra = Shard::hash("w999") >> 28;
    let (mut e, q, _) = read([&all, &all, &more], [p, p, print_of(&more)], |r, i| {
        r == 0 || (r == 1 && i == 0) || (r == 2 && i == extra)
    });
    let r = read_outcome(&mut e, q);
    assert_eq!(r.entries.len(), 401, "what the third brought is merged");
    assert_eq!(r.rounds, 1);
}

#[test]
fn a_replica_lacking_only_an_entry_in_its_last_second_is_a_copy_of_the_merge() {
    let (all, more) = with_one_more();
    // The first holds w999 still, in its last second; the second, read a
    // moment later, no longer does: it answers one shard, the third nothing.
    let answers = |r, i| r == 0 || (r == 1 && i == 0);
    let prints = [print_of(&more), print_of(&all), None];
    let (mut e, q, _) = read_dying([&more, &all, &all], prints, answers, "w999");
    let r = read_outcome(&mut e, q);
    assert_eq!((r.entries.len(), r.rounds), (401, 1), "w999 stays merged");
    // An entry with ten minutes left that the second lacks is a write it missed.
    let (mut e, ..) = read([&more, &all, &all], prints, answers);
    assert!(e.poll_event().is_none(), "the second's pages are waited for");
}
