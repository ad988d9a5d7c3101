//! Which replicas an early read takes: from the key's closest half, nearest
//! measured round trip first, once enough contacts deep enough to start
//! it are known (see `op::provider_read`'s `CHOICE_DEPTH`).

use super::provider_ops::{is_list, no_spare};
use super::*;

/// The local node's contacts: three deep next to `id_at(0, 0)` (over 150
/// bits shared), one sharing a single bit with it (`0x40`, the key's closest
/// half but not deep enough to start a read), two next to the local node.
const AROUND: [(u8, u8); 6] = [(0, 1), (0, 2), (0, 3), (0x40, 1), (0x80, 1), (0x80, 2)];

/// The hand-driven engine at `LOCAL` (k = 4: its rank cap is 0) knowing
/// `AROUND`, all extension peers, with these measured round trips.
fn engine_around(rtt_ms: [u64; 6]) -> Engine {
    engine_knowing_around(&AROUND, rtt_ms)
}

/// Like [`engine_around`], knowing `around` instead.
fn engine_knowing_around(around: &[(u8, u8); 6], rtt_ms: [u64; 6]) -> Engine {
    let mut e = Engine::new(id_at(LOCAL.0, LOCAL.1), Config { k: 4, ..no_spare(0) }, Time::ZERO);
    for (i, &(first, last)) in around.iter().enumerate() {
        let id = id_at(first, last);
        e.learn_answered(Time::ZERO, Contact::new(id, addr(i + 1)));
        e.svc.routing.mark_answered(&id, Time::ZERO + crate::routing::freshness::SETTLE);
        e.svc.book.observe(addr(i + 1), Duration::from_millis(rtt_ms[i]));
        e.peers.insert(id, PeerKind::Extended);
    }
    sent_to(&mut e);
    e
}

/// Where an early read of two replicas asks its first pages.
fn first_read(rtt_ms: [u64; 6]) -> Vec<SocketAddr> {
    let mut e = engine_around(rtt_ms);
    let _ = e.provider_read(Time::ZERO, id_at(0, 0), 2);
    let mut to: Vec<SocketAddr> =
        sent_to(&mut e).into_iter().filter(|(_, _, c)| is_list(c)).map(|(t, _, _)| t).collect();
    to.sort();
    to
}

#[test]
fn an_early_read_takes_the_nearest_replicas_of_the_keys_closest_half() {
    // The one-bit contact is the nearest: read, beside the nearest deep one.
    assert_eq!(first_read([100, 120, 90, 10, 5, 5]), [addr(3), addr(4)]);
    // Nearest first among the deep ones too.
    assert_eq!(first_read([100, 30, 90, 200, 5, 5]), [addr(2), addr(3)]);
}

#[test]
fn contacts_outside_the_keys_closest_half_are_never_read_early() {
    // The local node's neighbours are the nearest of all, but share no bit
    // with the key: not among its closest, so they hold no set.
    let to = first_read([100, 120, 90, 200, 5, 5]);
    assert!(!to.contains(&addr(5)) && !to.contains(&addr(6)), "{to:?}");
}

/// One contact deep enough to start a read of `id_at(0, 0)` (two bits past
/// the cap), three more of its closest half (`0x40`: one bit), two next to
/// the local node.
const SPARSE: [(u8, u8); 6] = [(0, 1), (0x40, 1), (0x40, 2), (0x40, 3), (0x80, 1), (0x80, 2)];

#[test]
fn a_key_with_few_deep_contacts_is_read_once_one_of_its_closest_half_answered() {
    // Two replicas wanted, one contact deep enough: the deep rule alone
    // waited for the lookup's end. Four of the closest half (twice as many
    // as wanted) start it, once one of them answered: its own view of the
    // key's neighbourhood named nobody deeper.
    let mut e = engine_knowing_around(&SPARSE, [100, 20, 30, 40, 5, 5]);
    let _ = e.provider_read(Time::ZERO, id_at(0, 0), 2);
    let sent = sent_to(&mut e);
    let lists = |sent: &[(SocketAddr, MessageId, Call)]| sent.iter().filter(|(_, _, c)| is_list(c)).count();
    assert!(lists(&sent) <= 1, "at most the size request before anyone answered: {sent:?}");
    let half: Vec<SocketAddr> = (2..=4).map(addr).collect();
    let (to, id, _) = sent.iter().find(|(to, _, c)| half.contains(to) && matches!(c, Call::FindNode { .. })).unwrap();
    answer(&mut e, Time::ZERO, *to, *id, Value::Array(vec![]));
    let after = sent_to(&mut e);
    // The size request's peer is read as a replica (its request taken as
    // its first page), and a second replica is asked.
    let read: std::collections::BTreeSet<SocketAddr> =
        sent.iter().chain(&after).filter(|(_, _, c)| is_list(c)).map(|(t, _, _)| *t).collect();
    assert!(lists(&after) >= 1 && read.len() >= 2, "the read began: {after:?}");
}
