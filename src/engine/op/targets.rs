//! Where our own published keys were last stored.
//!
//! A worker re-announces itself every couple of minutes, and a full lookup
//! for the k closest nodes costs about as many datagrams as the k stores
//! that follow it (in the 2000-node simulation, 22 queries per put). The k
//! closest to a key change slowly, so a re-put within
//! [`Config::put_lookup_every`](crate::engine::Config::put_lookup_every) of the last
//! lookup stores straight to the nodes that lookup found, plus any closer
//! contact learned since.
//!
//! Newcomers near the key are the risk: a node that joins among the k
//! closest gets a copy handed over by the holders, and that copy would age
//! until our next lookup. So every lookup-free re-put also asks the nearest
//! target for its k closest to the key (one request, where a lookup makes
//! about twenty) and stores to anyone it names who ranks among the k.
//!
//! A target that misses a store stays a target: a node that restarts with
//! its saved records comes back at the same place holding an old copy, and
//! only our next store freshens it. Once fewer than three quarters of the
//! targets took the latest store, the next put looks the key up again.

use foldhash::HashMap;
use std::time::Duration;

use crate::contact::Contact;
use crate::id::{Key, NodeId};
use crate::routing::RoutingTable;
use crate::time::Time;

#[derive(Debug)]
struct Target {
    contact: Contact,
    /// Whether its last store went unanswered or was refused.
    missed: bool,
}

#[derive(Debug)]
struct Targets {
    targets: Vec<Target>,
    found_at: Time,
}

impl Targets {
    fn trusted(&self) -> bool {
        let took = self.targets.iter().filter(|t| !t.missed).count();
        took * 4 >= self.targets.len() * 3
    }
}

/// The last lookup result of every key we publish.
#[derive(Debug, Default)]
pub(in crate::engine) struct PutTargets {
    by_key: HashMap<Key, Targets>,
}

impl PutTargets {
    /// Records what a put's lookup found for `key` at `now`; a lookup that
    /// found nobody leaves nothing to reuse.
    pub(super) fn remember(&mut self, key: Key, contacts: Vec<Contact>, now: Time) {
        if contacts.is_empty() {
            self.by_key.remove(&key);
            return;
        }
        let targets = contacts.into_iter().map(|contact| Target { contact, missed: false }).collect();
        self.by_key.insert(key, Targets { targets, found_at: now });
    }

    /// The targets of `key` if its lookup is younger than `max_age` and
    /// enough of them took the latest store.
    pub(super) fn fresh(&self, key: &Key, now: Time, max_age: Duration) -> Option<impl Iterator<Item = Contact> + '_> {
        let t = self.by_key.get(key)?;
        let young = now.saturating_since(t.found_at) < max_age;
        (young && t.trusted()).then(|| t.targets.iter().map(|t| t.contact))
    }

    /// Notes whether `peer` took the latest store of `key`.
    pub(super) fn stored(&mut self, key: &Key, peer: &NodeId, took: bool) {
        let Some(t) = self.by_key.get_mut(key) else { return };
        if let Some(target) = t.targets.iter_mut().find(|t| t.contact.id == *peer) {
            target.missed = !took;
        }
    }

    /// Adds those of `candidates` that rank among the `k` closest to `key`
    /// (pushing the farthest out) and returns them.
    pub(super) fn admit(&mut self, key: &Key, candidates: Vec<Contact>, k: usize) -> Vec<Contact> {
        let Some(t) = self.by_key.get_mut(key) else { return Vec::new() };
        let mut admitted = Vec::new();
        for c in candidates {
            if t.targets.iter().any(|t| t.contact.id == c.id) {
                continue;
            }
            let d = c.id.distance(key);
            let farthest = t.targets.iter().map(|t| t.contact.id.distance(key)).max();
            if t.targets.len() >= k && farthest.is_none_or(|f| d >= f) {
                continue;
            }
            t.targets.push(Target { contact: c, missed: false });
            t.targets.sort_by_key(|t| t.contact.id.distance(key));
            t.targets.truncate(k);
            admitted.push(c);
        }
        // One admitted early may have been pushed out by a closer one later.
        admitted.retain(|c| t.targets.iter().any(|t| t.contact.id == c.id));
        admitted
    }

    /// Forgets `key` (it is no longer published).
    pub(in crate::engine) fn forget(&mut self, key: &Key) {
        self.by_key.remove(key);
    }
}

/// Where to store `key` without a lookup: the nodes its last put found, if
/// that was within `max_age` and they are still trusted, merged with the
/// `k` closest contacts of `routing` (closer ones learned since).
pub(super) fn reusable(
    targets: &PutTargets,
    routing: &RoutingTable,
    key: &Key,
    now: Time,
    max_age: Duration,
    k: usize,
) -> Option<Vec<Contact>> {
    let cached = targets.fresh(key, now, max_age)?;
    // Table entries first: on equal ids the dedup keeps their current address.
    let mut all = routing.closest_unfailed(key, k);
    all.extend(cached);
    all.sort_by_key(|c| c.id.distance(key));
    all.dedup_by_key(|c| c.id);
    all.truncate(k);
    Some(all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn contact(b: u8) -> Contact {
        let addr: SocketAddr = format!("10.0.0.{b}:8468").parse().unwrap();
        Contact::new(NodeId([b; 20]), addr)
    }

    fn ids(t: &PutTargets, key: &Key, now: Time) -> Option<Vec<u8>> {
        Some(t.fresh(key, now, Duration::from_secs(60))?.map(|c| c.id.0[0]).collect())
    }

    #[test]
    fn targets_expire_with_age() {
        let mut t = PutTargets::default();
        let key = NodeId([7; 20]);
        t.remember(key, vec![contact(1), contact(2)], Time::from_secs(100));
        assert_eq!(ids(&t, &key, Time::from_secs(159)), Some(vec![1, 2]));
        assert_eq!(ids(&t, &key, Time::from_secs(160)), None);
        assert_eq!(ids(&t, &NodeId([8; 20]), Time::from_secs(100)), None);
    }

    #[test]
    fn a_missed_target_stays_until_a_quarter_have_missed() {
        let mut t = PutTargets::default();
        let key = NodeId([7; 20]);
        let now = Time::from_secs(1);
        t.remember(key, (1..=8).map(contact).collect(), now);
        t.stored(&key, &NodeId([2; 20]), false);
        t.stored(&key, &NodeId([9; 20]), false);
        assert_eq!(ids(&t, &key, now), Some((1..=8).collect()));
        t.stored(&key, &NodeId([3; 20]), false);
        assert_eq!(ids(&t, &key, now), Some((1..=8).collect()), "2 of 8 missed");
        t.stored(&key, &NodeId([4; 20]), false);
        assert_eq!(ids(&t, &key, now), None, "3 of 8 missed");
        t.stored(&key, &NodeId([3; 20]), true);
        assert_eq!(ids(&t, &key, now), Some((1..=8).collect()), "a target that takes a store again counts again");
    }

    #[test]
    fn an_empty_lookup_result_leaves_nothing_to_reuse() {
        let mut t = PutTargets::default();
        let key = NodeId([7; 20]);
        t.remember(key, vec![contact(1)], Time::ZERO);
        t.remember(key, Vec::new(), Time::ZERO);
        assert_eq!(ids(&t, &key, Time::ZERO), None);
    }

    #[test]
    fn admit_keeps_the_k_closest_and_returns_who_got_in() {
        let mut t = PutTargets::default();
        let key = NodeId([0; 20]);
        let now = Time::ZERO;
        t.remember(key, vec![contact(2), contact(8), contact(32)], now);
        // 1 is closest, 16 ranks third, 64 is beyond the k = 3 farthest, 8 is known.
        let got = t.admit(&key, vec![contact(64), contact(16), contact(8), contact(1)], 3);
        let got: Vec<u8> = got.iter().map(|c| c.id.0[0]).collect();
        assert_eq!(got, vec![1], "16 got in, then 1 pushed it out again");
        assert_eq!(ids(&t, &key, now), Some(vec![1, 2, 8]));
        assert!(t.admit(&NodeId([5; 20]), vec![contact(1)], 3).is_empty(), "no targets, nothing admitted");
    }

    #[test]
    fn forgotten_keys_have_no_targets() {
        let mut t = PutTargets::default();
        let key = NodeId([7; 20]);
        t.remember(key, vec![contact(1)], Time::ZERO);
        t.forget(&key);
        assert_eq!(ids(&t, &key, Time::ZERO), None);
    }
}
