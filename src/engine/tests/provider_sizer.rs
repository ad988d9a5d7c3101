//! A provider read asks the set's size during its lookup (see
//! `op::provider_read::sizer`), so that every replica is asked for all its
//! shards at once when the read begins: one round trip after the lookup.

use super::provider_ops::{answer_lookup, is_list, live, page, read_outcome};
use super::*;
use crate::engine::providers::wire::Shard;

/// The hand-driven engine (k = 4, rank cap 0) with contacts of `kind`,
/// reading the set at `id_at(0, 0)` from four replicas: only three
/// contacts are deep enough for an early read, so its lookup goes on.
/// Returns what it sent at once.
fn reading_four(kind: PeerKind) -> (Engine, QueryId, Vec<(SocketAddr, MessageId, Call)>) {
    let mut e = engine_with_contacts(Config { k: 4, ..small(0) });
    for i in 0..CONTACTS.len() {
        e.peers.insert(contact_id(i), kind);
    }
    let q = e.provider_read(Time::ZERO, id_at(0, 0), 4);
    let sent = sent_to(&mut e);
    (e, q, sent)
}

fn lists(sent: &[(SocketAddr, MessageId, Call)]) -> Vec<(SocketAddr, MessageId, Call)> {
    sent.iter().filter(|(_, _, c)| is_list(c)).cloned().collect()
}

fn shard_of(call: &Call) -> Option<Shard> {
    let Call::Other { args, .. } = call else { return None };
    args.get(4).and_then(Shard::parse)
}

/// Answers the lookup's `find_node` queries among `sent`, and those it
/// sends next; returns the page requests sent once it ended.
fn end_lookup(e: &mut Engine, sent: &[(SocketAddr, MessageId, Call)]) -> Vec<(SocketAddr, MessageId, Call)> {
    for (to, id, c) in sent {
        if matches!(c, Call::FindNode { .. }) {
            answer(e, Time::ZERO, *to, *id, Value::Array(vec![]));
        }
    }
    answer_lookup(e, Time::ZERO)
}

#[test]
fn the_size_asked_during_the_lookup_lets_every_replica_be_read_in_one_round_trip() {
    let all: Vec<String> = (0..400).map(|i| format!("w{i:03}")).collect();
    let (mut e, q, sent) = reading_four(PeerKind::Extended);
    let sizes = lists(&sent);
    assert_eq!(sizes.len(), 1, "one size request while the lookup runs");
    let (to, id, call) = &sizes[0];
    assert_eq!(shard_of(call), None, "the plain first page");
    assert!(sent.iter().any(|(_, _, c)| matches!(c, Call::FindNode { .. })), "the lookup goes on");
    answer(&mut e, Time::ZERO, *to, *id, page(&all[..40], Some("w039"), 400, None));
    assert!(sent_to(&mut e).is_empty(), "the size alone starts nothing");
    let pages = end_lookup(&mut e, &sent);
    let replicas: std::collections::BTreeSet<SocketAddr> = pages.iter().map(|(t, _, _)| *t).collect();
    assert!(replicas.len() >= 4, "{} replicas read", replicas.len());
    // No replica's plain first page: all their shards, from the start.
    assert!(pages.iter().all(|(_, _, c)| shard_of(c).is_some()), "every page request names a shard");
    for (to, id, call) in pages {
        let s = shard_of(&call).expect("a shard");
        let ids: Vec<String> = all.iter().filter(|i| s.holds(i)).cloned().collect();
        answer(&mut e, Time::ZERO, to, id, page(&ids, None, 400, Some(s)));
    }
    let r = read_outcome(&mut e, q);
    assert_eq!((live(&r).len(), r.pages_failed), (400, 0));
    assert!(r.replicas >= 4);
}

#[test]
fn a_set_that_fits_one_page_leaves_the_replicas_first_pages_plain() {
    let (mut e, _, sent) = reading_four(PeerKind::Extended);
    let (to, id, _) = lists(&sent).pop().expect("a size request");
    answer(&mut e, Time::ZERO, to, id, page(&["w1".to_string()], None, 1, None));
    let pages = end_lookup(&mut e, &sent);
    assert!(!pages.is_empty() && pages.iter().all(|(_, _, c)| shard_of(c).is_none()), "plain first pages");
}

#[test]
fn only_peers_known_to_speak_the_extension_are_asked_the_size() {
    // A peer of unknown kind may be a stock node, which never answers an
    // extension call: it would be struck for it.
    let (_, _, sent) = reading_four(PeerKind::Unknown);
    assert!(lists(&sent).is_empty(), "no size request to a peer of unknown kind");
}
