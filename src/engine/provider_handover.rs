//! Paper 2.5 for provider sets: a contact that has just become one of a
//! set's k closest (a newcomer, or a node back after being evicted for
//! silence) is sent the set by every node among the k closest that holds
//! it.
//!
//! Records need no more than the newcomer's handover by the closest holder
//! (`Engine::hand_over_records`): a newcomer lacks them, and a replica back
//! from a partition is repaired by readers (`op::newest`). A provider set is
//! merged entry by entry, so a replica back from a partition lacks what the
//! providers on the other side wrote while the cut was open, until each of
//! them writes again, and a reader whose replicas all came from one side
//! missed those providers (`simulations partition`, seed 1: every miss
//! outside the open cut came in the minute after the heal). Handing a set
//! over is safe where a record's is not: the replica merges each entry by
//! its version and its signer ([`super::providers::rules`]), so an older
//! entry never replaces a newer one and a tombstone travels like an entry.
//! Every replica sends, not only the closest holder: after a heal the
//! closest holder on each side learns the other side's nodes in its own
//! order, and with the records' rule one side's writes did not reach the
//! other side's replicas (seed 1 kept two misses after the heal, seed 5
//! two).
//!
//! Only to peers known to speak the procedures, as `kadmesh_provider_add`
//! batches, and at most once per contact within [`HANDED_AGAIN_AFTER`]: a
//! contact on a lossy link is dropped and re-learned often, and each time
//! would be owed the same sets.

use std::time::Duration;

use super::peers::PeerKind;
use super::providers::client::{write_calls, Announce};
use super::services::ReplyTo;
use super::Engine;
use crate::contact::Contact;
use crate::id::Key;
use crate::time::Time;

/// How soon one contact may be handed provider sets again.
pub(super) const HANDED_AGAIN_AFTER: Duration = Duration::from_secs(60);

/// Most write datagrams one contact is handed at once (each carries up to
/// a typical MTU of entries): a few full sets, bounded for a node holding
/// many.
const MAX_DATAGRAMS: usize = 64;

impl Engine {
    /// Sends `contact` the provider sets it is now among the k closest for,
    /// where we are among them too (see the module docs).
    pub(super) fn hand_over_providers(&mut self, now: Time, contact: Contact) {
        if self.joining || self.peers.kind(&contact.id) != PeerKind::Extended {
            return;
        }
        let last = self.maintenance.providers_handed.get(&contact.id);
        if last.is_some_and(|&at| now.saturating_since(at) < HANDED_AGAIN_AFTER) {
            return;
        }
        let k = self.svc.config.k;
        let mut calls = Vec::new();
        for key in self.providers.keys() {
            let routing = &self.svc.routing;
            let among = |id| routing.would_be_among_closest(id, &key, k);
            if !among(&self.svc.id) || !among(&contact.id) {
                continue;
            }
            calls.extend(self.set_calls(now, key));
            if calls.len() >= MAX_DATAGRAMS {
                calls.truncate(MAX_DATAGRAMS);
                break;
            }
        }
        if calls.is_empty() {
            return;
        }
        self.maintenance.providers_handed.insert(contact.id, now);
        for call in calls {
            if self.svc.send_request(now, contact.addr, call, ReplyTo::Fire { peer: contact.id }) {
                self.svc.stats.provider_handovers += 1;
            }
        }
    }

    /// Write requests carrying the set under `key` as we hold it: entries,
    /// then tombstones, each with the lifetime it has left here.
    fn set_calls(&self, now: Time, key: Key) -> Vec<crate::wire::Call> {
        let (mut adds, mut removes) = (Vec::new(), Vec::new());
        for e in self.providers.range(&key, None, now) {
            let a = Announce {
                id: e.id.clone(),
                version: e.version,
                ttl: e.expires_at.saturating_since(now),
                load: e.load,
                signature: e.signature.clone(),
            };
            if e.gone {
                removes.push(a)
            } else {
                adds.push(a)
            }
        }
        let mut calls = write_calls(self.svc.id, key, &adds, false);
        calls.extend(write_calls(self.svc.id, key, &removes, true));
        calls
    }
}
