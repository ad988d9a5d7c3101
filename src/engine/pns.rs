//! Proximity neighbour selection: when a bucket is full and a contact that
//! just answered us is clearly nearer (in round-trip time) than one of the
//! bucket's live contacts, the two change places.
//!
//! Every lookup starts from the routing table, so the first round trip of
//! every lookup is to one of its contacts; keeping near ones there cuts it
//! (and the contacts they hand back tend to be near too: a triangle of
//! nearby machines is fast). Kademlia's preference for long-lived contacts
//! is kept where it matters: only a contact that answered us is swapped in,
//! only a measured one is swapped out, and it waits at the head of the
//! replacement cache, first back when a slot frees. Decided from the RTT book
//! ([`crate::proximity`]), so contacts never measured stay put.

use std::time::Duration;

use super::Engine;
use crate::contact::Contact;
use crate::time::Time;

/// A newcomer is swapped in only for a contact at least this many times slower.
pub const PNS_FACTOR: u32 = 2;

impl Engine {
    /// `contact` found its bucket full: if it `answered` us and is nearer
    /// than half the node's smoothed RTT, it takes the place of the bucket's
    /// slowest measured contact when that one is [`PNS_FACTOR`] times slower.
    pub(super) fn prefer_nearer(&mut self, now: Time, contact: Contact, answered: bool) {
        if !answered {
            return;
        }
        let book = &self.svc.book;
        let Some(near) = book.smoothed(&contact.addr) else { return };
        let typical = self.svc.rtt.smoothed().unwrap_or(Duration::MAX);
        if near.saturating_mul(2) > typical {
            return;
        }
        let table = &self.svc.routing;
        let Some(bucket) = table.buckets().get(table.bucket_index(&contact.id)) else { return };
        let slowest = bucket.contacts().filter_map(|c| book.smoothed(&c.addr).map(|r| (r, c.id))).max();
        let Some((far_rtt, far)) = slowest else { return };
        let swapped = far_rtt > near.saturating_mul(PNS_FACTOR) && self.svc.routing.swap_in(&contact.id, &far);
        // Live now: verified like any contact that answers, records handed over.
        if swapped && self.svc.routing.mark_answered(&contact.id, now) {
            self.on_verified(now, contact);
        }
    }
}
