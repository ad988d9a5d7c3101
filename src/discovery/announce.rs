//! Writing provider entries to the nodes closest to a key, in batches.
//!
//! Announcements for the same key (and the same direction: add or remove)
//! submitted within `batch_window` share one node lookup and one write per
//! replica, so the 500 workers of a busy moment cost a handful of lookups,
//! and a refresher re-announcing all of a node's workers costs one write per
//! replica per service.
//!
//! Writes go to every closest node that speaks the extension (and this node
//! itself when it is among the closest). Peers known to be stock Python
//! (`PeerKind::Base`) are skipped; peers not yet asked get the write in the
//! background, where a silent one costs only the short extension timeout
//! and nobody waits for it. A write that times out at a known extension
//! peer is retried twice.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use tokio::sync::oneshot;
use tokio::task::JoinSet;

use super::metrics::bump;
use super::wire::{parse_write_reply, write_calls, Announce};
use super::Discovery;
use crate::engine::providers::ProviderEntry;
use crate::engine::PeerKind;
use crate::id::Key;
use crate::node::NodeError;
use crate::wire::Call;

type Waiting = Vec<(Announce, oneshot::Sender<usize>)>;

/// Announcements waiting for their batch to leave.
#[derive(Debug, Default)]
pub(crate) struct Announcer {
    pending: Mutex<HashMap<(Key, bool), Waiting>>,
}

impl Announcer {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(Key, bool), Waiting>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Discovery {
    /// Adds `item` to (or, with `remove`, tombstones it in) the provider set
    /// under `key` at the closest nodes. Returns how many replicas
    /// acknowledged the batch it travelled in, this node included.
    pub(crate) async fn announce(&self, key: Key, item: Announce, remove: bool) -> usize {
        let (tx, rx) = oneshot::channel();
        let first = {
            let mut pending = self.inner.announcer.lock();
            let batch = pending.entry((key, remove)).or_default();
            batch.push((item, tx));
            batch.len() == 1
        };
        if first {
            let me = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(me.inner.config.batch_window).await;
                me.flush(key, remove).await;
            });
        }
        rx.await.unwrap_or(0)
    }

    async fn flush(&self, key: Key, remove: bool) {
        let batch = self.inner.announcer.lock().remove(&(key, remove)).unwrap_or_default();
        let (items, waiters): (Vec<Announce>, Vec<_>) = batch.into_iter().unzip();
        let acked = match self.write_replicas(key, items, remove).await {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(%key, error = %e, "provider write failed");
                0
            }
        };
        for w in waiters {
            let _ = w.send(acked);
        }
    }

    async fn write_replicas(&self, key: Key, items: Vec<Announce>, remove: bool) -> Result<usize, NodeError> {
        let node = self.node();
        let closest = node.find_node(key).await?;
        let calls = write_calls(node.id(), key, &items, remove);
        let ids: Vec<_> = closest.iter().map(|c| c.id).collect();
        let (kinds, local) = node
            .with_engine(move |e, now| {
                let kinds: Vec<PeerKind> = ids.iter().map(|id| e.peer_kind(id)).collect();
                let me = e.id().distance(&key);
                let near = ids.len() < e.config().k || ids.last().is_some_and(|far| me < far.distance(&key));
                if near {
                    for a in items {
                        let expires_at = now + a.ttl;
                        let load = a.load.filter(|_| !remove);
                        let (id, version, signature) = (a.id, a.version, a.signature);
                        let entry = ProviderEntry { id, version, expires_at, load, gone: remove, signature };
                        e.provider_upsert(now, key, entry);
                    }
                }
                (kinds, near)
            })
            .await?;
        let mut awaited = JoinSet::new();
        for (c, kind) in closest.iter().zip(kinds) {
            let (me, calls, addr) = (self.clone(), calls.clone(), c.addr);
            match kind {
                PeerKind::Base => {}
                PeerKind::Extended => {
                    awaited.spawn(async move { me.write_one(addr, calls, 3).await });
                }
                PeerKind::Unknown => {
                    tokio::spawn(async move { me.write_one(addr, calls, 1).await });
                }
            }
        }
        let mut acked = usize::from(local);
        while let Some(r) = awaited.join_next().await {
            acked += usize::from(r.unwrap_or(false));
        }
        Ok(acked)
    }

    /// Sends every call to `addr`, each up to `tries` times; true when all
    /// were answered.
    async fn write_one(&self, addr: SocketAddr, calls: Vec<Call>, tries: usize) -> bool {
        let metrics = &self.inner.metrics;
        for call in calls {
            let mut answered = false;
            for _ in 0..tries {
                bump(&metrics.provider_writes);
                match self.node().call(addr, call.clone()).await {
                    // "0 accepted" (the replica's quota or bounds refused
                    // every entry) is a failed write, not an acknowledgement.
                    Ok(Some(v)) if parse_write_reply(&v).is_some_and(|n| n > 0) => {
                        answered = true;
                        break;
                    }
                    Ok(_) => bump(&metrics.extension_failures),
                    Err(_) => return false,
                }
            }
            if !answered {
                return false;
            }
        }
        true
    }
}
