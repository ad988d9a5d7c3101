//! Writing provider entries to the nodes closest to a key, in batches.
//!
//! The protocol is the core's `provider_write` operation
//! ([`Engine::provider_write`](crate::engine::Engine::provider_write)):
//! announcements for the same key (and the same direction: add or remove)
//! submitted within `batch_window` share one node lookup and one write per
//! replica, so the 500 workers of a busy moment cost a handful of lookups,
//! and a refresher re-announcing all of a node's workers costs one write per
//! replica per service. Writes go to every closest node that speaks the
//! extension (and this node itself when it is among the closest); stock
//! peers are skipped; peers not yet asked get the write once, unwaited. A
//! write that times out at a known extension peer is retried twice. Here
//! only the request is made and awaited: nothing outlives it.

use std::sync::atomic::Ordering;

use super::wire::Announce;
use super::Discovery;
use crate::id::Key;

impl Discovery {
    /// Adds `item` to (or, with `remove`, tombstones it in) the provider set
    /// under `key` at the closest nodes. Returns how many replicas
    /// acknowledged the batch it travelled in, this node included.
    pub(crate) async fn announce(&self, key: Key, item: Announce, remove: bool) -> usize {
        let window = self.inner.config.batch_window;
        match self.node().provider_write(key, vec![item], remove, window).await {
            Ok(w) => {
                // Counted by the batch's first write only (the others report 0).
                let m = &self.inner.metrics;
                m.provider_writes.fetch_add(w.sent as u64, Ordering::Relaxed);
                m.extension_failures.fetch_add(w.failed as u64, Ordering::Relaxed);
                w.acked
            }
            Err(e) => {
                tracing::debug!(%key, error = %e, "provider write failed");
                0
            }
        }
    }

    /// Hands the same write to the node without waiting for its result:
    /// the operation is the engine's, so it ends with the node at the
    /// latest, and nothing is left running here. (Its request counts are
    /// not added to the metrics.)
    pub(crate) async fn start_announce(&self, key: Key, item: Announce, remove: bool) {
        let window = self.inner.config.batch_window;
        let started = self.node().with_engine(move |e, now| {
            e.provider_write(now, key, vec![item], remove, window);
        });
        if let Err(e) = started.await {
            tracing::debug!(%key, error = %e, "provider write not started");
        }
    }
}
