//! Settling young contacts on time, for stock askers.
//!
//! A stock or unknown asker gets only settled contacts, those that answered
//! us at two moments [`SETTLE`] apart (see [`crate::routing::freshness`]).
//! Left to hand-outs, the second answer comes from the check that the first
//! hand-out past [`SETTLE`] sends, and that hand-out must leave the contact
//! out while its check is pending: a young network's closest nodes drop out
//! of the very replies that would settle them, and young contacts fill those
//! replies instead, clients that have just left among them (in
//! `tests/churn_clients.rs` stock peers then waited 5 s on such clients).
//! So a node that answers stock or unknown askers checks each newly verified
//! contact once, [`SETTLE`] after its first answer, on its own; when it
//! starts answering them it does the same for the young contacts it holds.
//! A node that answers only our own nodes sends nothing here.

use std::collections::BTreeSet;
use std::time::Duration;

use super::Engine;
use crate::id::NodeId;
use crate::routing::freshness::SETTLE;
use crate::time::Time;

/// How long one request from a stock or unknown asker keeps us settling
/// newcomers for such askers.
const SERVING_WINDOW: Duration = Duration::from_secs(10 * 60);
/// Most settle checks waiting at once (a flood of fresh ids must not grow
/// the queue; those beyond it are settled by hand-outs, as before).
const MAX_QUEUED: usize = 4096;

/// Contacts owed a settle check, and whether we answer stock askers.
#[derive(Debug, Default)]
pub(super) struct SettleQueue {
    due: BTreeSet<(Time, NodeId)>,
    serving_until: Option<Time>,
}

impl SettleQueue {
    /// A stock or unknown asker was answered at `now`; true if we were not
    /// serving such askers until then.
    fn note_other(&mut self, now: Time) -> bool {
        let was = self.serving(now);
        self.serving_until = Some(now + SERVING_WINDOW);
        !was
    }

    fn serving(&self, now: Time) -> bool {
        self.serving_until.is_some_and(|until| now < until)
    }

    /// Owes `id`, first verified at `first`, a check at `first + SETTLE`.
    fn schedule(&mut self, first: Time, id: NodeId) {
        if self.due.len() < MAX_QUEUED {
            self.due.insert((first + SETTLE, id));
        }
    }

    /// When the next check is due.
    pub(super) fn next_due(&self) -> Option<Time> {
        self.due.first().map(|(at, _)| *at)
    }

    fn take_due(&mut self, now: Time) -> Vec<NodeId> {
        let mut ids = Vec::new();
        while let Some(&(at, id)) = self.due.first() {
            if at > now {
                break;
            }
            self.due.pop_first();
            ids.push(id);
        }
        ids
    }
}

impl Engine {
    /// `id` has just answered us for the first time, at `now`.
    pub(super) fn settle_later(&mut self, now: Time, id: NodeId) {
        if self.settle.serving(now) {
            self.settle.schedule(now, id);
        }
    }

    /// We are answering a stock or unknown asker at `now`: from the first
    /// such request on, the young contacts we hold are settled on time too.
    pub(super) fn note_other_asker(&mut self, now: Time) {
        if self.settle.note_other(now) {
            for (id, first) in self.svc.routing.unsettled() {
                self.settle.schedule(first, id);
            }
        }
    }

    /// Sends the settle checks due at `now`, to contacts still unsettled
    /// with no check of theirs pending.
    pub(super) fn send_settle_checks(&mut self, now: Time) {
        for id in self.settle.take_due(now) {
            if let Some(c) = self.svc.routing.settle_candidate(&id) {
                self.send_check(now, c);
                self.svc.routing.note_checked(&id, now);
            }
        }
    }
}
