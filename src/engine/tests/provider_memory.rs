//! A provider read of a key read lately: straight to the replicas the last
//! lookup found, every shard asked at once from the size it saw.

use super::provider_ops::{
    answer_lookup, is_list, item, list_shard, live, page, read, read_outcome, start_read, write,
};
use super::*;
use crate::engine::op::provider_read::memory::{REUSE_FOR, SIZE_FOR};

/// The key [`start_read`] reads (`id_at(0, 0)`).
const KEY_AT: Key = NodeId([0; 20]);

/// A set of 400 ids, 40 to a page.
fn ids() -> Vec<String> {
    (0..400).map(|i| format!("w{i:03}")).collect()
}

/// The read's requests: the probe (a `find_node` of the key), if any, and
/// the page requests.
type Sent = (SocketAddr, MessageId, Call);
fn probe_and_pages(sent: Vec<Sent>) -> (Option<Sent>, Vec<Sent>) {
    let (mut finds, pages): (Vec<_>, Vec<_>) =
        sent.into_iter().partition(|(_, _, c)| matches!(c, Call::FindNode { .. }));
    assert!(finds.len() <= 1, "one probe at most: {finds:?}");
    assert!(pages.iter().all(|(_, _, c)| is_list(c)));
    (finds.pop(), pages)
}

/// Answers every page request in `lists` from `all` as the replica would.
fn answer_pages(e: &mut Engine, now: Time, all: &[String], lists: Vec<(SocketAddr, MessageId, Call)>) {
    for (to, id, call) in lists {
        let s = list_shard(&call);
        let ids: Vec<String> = all.iter().filter(|i| s.holds(i)).cloned().collect();
        let shard = (s.bits > 0).then_some(s);
        answer(e, now, to, id, page(&ids, None, all.len() as u64, shard));
    }
}

/// A cold read of the 400-id set from one replica, to its end: first page,
/// then the rest in shards. Returns the replica's address.
fn cold_read(e: &mut Engine, q: QueryId, lists: &[(SocketAddr, MessageId, Call)], all: &[String]) -> SocketAddr {
    let (to, id, _) = lists[0];
    answer(e, Time::ZERO, to, id, page(&all[..40], Some("w039"), 400, None));
    for (to, id, call) in sent_to(e) {
        let s = list_shard(&call);
        let rest: Vec<String> = all[40..].iter().filter(|i| s.holds(i)).cloned().collect();
        answer(e, Time::ZERO, to, id, page(&rest, None, 400, Some(s)));
    }
    let r = read_outcome(e, q);
    assert_eq!((r.entries.len(), r.remembered), (400, false));
    to
}

#[test]
fn a_read_within_the_reuse_time_asks_the_last_replicas_every_shard_at_once_without_a_lookup() {
    let (mut e, q, lists) = start_read(|_| PeerKind::Extended, 1);
    let all = ids();
    let replica = cold_read(&mut e, q, &lists, &all);
    let now = Time::ZERO + REUSE_FOR - Duration::from_secs(1);
    let q = e.provider_read(now, KEY_AT, 1);
    let (probe, sent) = probe_and_pages(sent_to(&mut e));
    let (to, id, _) = probe.expect("the nearest replica is asked for its closest");
    assert!(to == replica && sent.iter().all(|(to, _, _)| *to == replica), "no lookup, only the last replica");
    // 400 entries at 40 a page, planned at three quarters of a page: 16 shards.
    assert!(sent.len() >= 10, "{} pages asked at once", sent.len());
    assert!(sent.iter().all(|(_, _, c)| list_shard(c).bits > 0), "no first page: the size is known");
    // It names nobody closer to the key than the replica.
    answer(&mut e, now, to, id, crate::wire::contacts_value(&[known(3)]));
    answer_pages(&mut e, now, &all, sent);
    let r = read_outcome(&mut e, q);
    assert_eq!(r.entries.len(), 400);
    assert!(r.remembered);
    assert_eq!((r.stats.queried, r.replicas, r.pages_failed, r.newcomers), (0, 1, 0, 0));
    assert!(e.read_memory.recall(&KEY_AT, now).is_some_and(|m| !m.replicas.is_empty()), "still remembered");
}

#[test]
fn a_read_from_memory_also_reads_nodes_closer_to_the_key_that_joined_since_and_the_next_read_looks_up() {
    let (mut e, q, lists) = start_read(|_| PeerKind::Extended, 1);
    let all = ids();
    let replica = cold_read(&mut e, q, &lists, &all);
    let now = Time::ZERO + Duration::from_secs(5);
    let q = e.provider_read(now, KEY_AT, 1);
    let (probe, pages) = probe_and_pages(sent_to(&mut e));
    let (to, id, _) = probe.expect("a probe");
    // A node that joined at the key itself, closer than any replica read.
    let newcomer = Contact::new(KEY_AT, "10.0.9.9:8468".parse().unwrap());
    answer(&mut e, now, to, id, crate::wire::contacts_value(&[newcomer, known(1)]));
    let (_, more) = probe_and_pages(sent_to(&mut e));
    assert!(!more.is_empty() && more.iter().all(|(t, _, _)| *t == newcomer.addr), "the newcomer is read too");
    answer_pages(&mut e, now, &all, pages);
    assert!(e.poll_event().is_none(), "the read waits for the newcomer");
    answer_pages(&mut e, now, &all, more);
    let r = read_outcome(&mut e, q);
    assert_eq!((r.entries.len(), r.replicas, r.newcomers), (400, 2, 1));
    assert_ne!(replica, newcomer.addr);
    assert!(e.read_memory.recall(&KEY_AT, now).is_some_and(|m| m.replicas.is_empty()), "replicas forgotten");
    let _ = e.provider_read(now, KEY_AT, 1);
    let finds = sent_to(&mut e).iter().filter(|(_, _, c)| matches!(c, Call::FindNode { .. })).count();
    assert!(finds >= 2, "a lookup (alpha queries), not one probe: {finds}");
}

#[test]
fn a_read_after_the_reuse_time_looks_the_key_up_again_and_asks_every_shard_at_once() {
    let (mut e, q, lists) = start_read(|_| PeerKind::Extended, 1);
    let all = ids();
    let _ = cold_read(&mut e, q, &lists, &all);
    let now = Time::ZERO + REUSE_FOR;
    let q = e.provider_read(now, KEY_AT, 1);
    let pages = answer_lookup(&mut e, now);
    assert!(pages.len() >= 10, "{} pages asked at once", pages.len());
    assert!(pages.iter().all(|(_, _, c)| list_shard(c).bits > 0), "no first page: the size is still known");
    answer_pages(&mut e, now, &all, pages);
    let r = read_outcome(&mut e, q);
    assert!(!r.remembered && r.stats.queried > 0, "the lookup ran");
    assert_eq!(r.entries.len(), 400);
    assert!(e.read_memory.recall(&KEY_AT, now + SIZE_FOR).is_none(), "the size is forgotten in time");
}

#[test]
fn a_read_from_memory_that_finds_nothing_looks_the_key_up_and_forgets_the_replicas() {
    let (mut e, q, lists) = start_read(|_| PeerKind::Extended, 1);
    let _ = cold_read(&mut e, q, &lists, &ids());
    let now = Time::ZERO + Duration::from_secs(5);
    let _ = e.provider_read(now, KEY_AT, 1);
    let (_, sent) = probe_and_pages(sent_to(&mut e));
    assert!(!sent.is_empty());
    // The replica has lost the set (it left the key's closest, say).
    answer_pages(&mut e, now, &[], sent);
    let after = sent_to(&mut e);
    assert!(after.iter().any(|(_, _, c)| matches!(c, Call::FindNode { .. })), "the lookup runs: {after:?}");
    let kept = e.read_memory.recall(&KEY_AT, now).expect("the size stays");
    assert!(kept.replicas.is_empty(), "the replicas are forgotten");
}

#[test]
fn a_repeat_read_names_providers_written_since_without_a_lookup() {
    let mut net = Net::new(20, small);
    net.bootstrap_all();
    let _ = write(&mut net, 3, vec![item("w1", 1)], false);
    let cold = read(&mut net, 11, 3);
    assert!(!cold.remembered && cold.stats.queried > 0);
    let _ = write(&mut net, 5, vec![item("w2", 1)], false);
    let warm = read(&mut net, 11, 3);
    assert_eq!(live(&warm), ["w1", "w2"]);
    assert!(warm.remembered);
    assert_eq!((warm.stats.queried, warm.rounds), (0, 1));
    // Another reader has no memory of the key.
    assert!(!read(&mut net, 12, 3).remembered);
}
