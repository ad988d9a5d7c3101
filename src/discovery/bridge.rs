//! Workers that registered the old way, brought into the provider sets.
//!
//! The platform's Python workers write `worker:{id}` and add themselves to
//! the `service:{type}` JSON list by read-modify-write. That list is a weak
//! source: a read-modify-write racing with any other writer, ours included,
//! can drop their entry for good, and nothing of theirs ever puts it back.
//! Their worker record is a strong one: they rewrite it every 30 s, and it
//! names the services.
//!
//! So a node that holds such a record as one of its [`BRIDGE_CLOSEST`]
//! closest replicas announces the worker into each named service's provider
//! set, once per refresh interval while the record is healthy, with a
//! lifetime of two intervals ([`Discovery::bridge_held_records`]). A worker
//! this node has not announced since the last full pass is announced at the
//! first refresher tick after its record arrives, not at the next pass: its
//! list entry may already be lost (their write landed between a rebuild's
//! read and its write), and waiting for the pass added up to one more
//! interval to the loss. The provider set then names it, discover finds it
//! without the list, and the next rebuild of the list (`legacy`) puts it
//! back: no worker of theirs is missing for longer than about one refresh
//! interval. Records written through a kadmesh node (`node_id` set) announce
//! themselves and are skipped.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use super::record::{Health, WorkerRecord};
use super::wire::Announce;
use super::{service_key, Discovery};
use crate::node::NodeError;
use crate::time::Time;

/// Only the nodes with fewer than this many kadmesh peers closer to a
/// record's key bridge it, so a worker is announced a handful of times per
/// interval, not once per replica.
pub const BRIDGE_CLOSEST: usize = 3;

/// Which held records a bridging pass looks at, and whom it announced.
#[derive(Debug, Default)]
pub(crate) struct Bridging {
    state: Mutex<BridgeState>,
}

#[derive(Debug, Default)]
struct BridgeState {
    /// When the last full pass ran (Unix seconds).
    full_at: Option<f64>,
    /// Engine time of the last pass's scan: later passes before the next
    /// full one look only at records received since.
    scanned_at: Option<Time>,
    /// Workers announced since the last full pass (at most one per held
    /// record): however often its record arrives, a worker is announced at
    /// most once between two full passes, so a stream of new or rewritten
    /// records costs at most one announcement per worker more than full
    /// passes alone did.
    announced: HashSet<String>,
}

/// One bridging pass: every held record, or only those received since `since`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Pass {
    pub full: bool,
    pub since: Option<Time>,
}

impl Bridging {
    fn lock(&self) -> std::sync::MutexGuard<'_, BridgeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a pass at `now` (Unix seconds): full once per `interval`,
    /// otherwise over records received since the last scan.
    pub(crate) fn begin(&self, now: f64, interval: Duration) -> Pass {
        let mut s = self.lock();
        if due(s.full_at, now, interval) {
            s.full_at = Some(now);
            s.announced.clear();
            return Pass { full: true, since: None };
        }
        Pass { full: false, since: s.scanned_at }
    }

    /// The pass's scan ran at engine time `at`.
    fn scanned(&self, at: Time) {
        self.lock().scanned_at = Some(at);
    }

    /// Whether `worker` is still to be announced in this interval (and notes
    /// that it now is): a full pass has just forgotten everyone.
    fn take(&self, worker: &str) -> bool {
        self.lock().announced.insert(worker.to_owned())
    }
}

impl Discovery {
    /// Announces the healthy legacy worker records this node holds as one of
    /// the closest replicas (see the module docs), all of them or those
    /// received since the last pass and not yet announced; returns how many.
    pub(crate) async fn bridge_held_records(&self, pass: Pass) -> Result<usize, NodeError> {
        let since = pass.since;
        let (held, at): (Vec<(crate::id::Key, crate::wire::Value)>, Time) = self
            .node()
            .with_engine(move |e, now| {
                // Only nodes that bridge count: stock peers closer to the key
                // never announce, so they must not stop us from doing it.
                let near = |key: &crate::id::Key| {
                    let mine = key.distance(&e.id());
                    let closer = e.routing().closest(key, e.config().k).into_iter().filter(|c| {
                        key.distance(&c.id) < mine && e.peer_kind(&c.id) == crate::engine::PeerKind::Extended
                    });
                    closer.count() < BRIDGE_CLOSEST
                };
                let fresh = |r: &&crate::store::Record| since.is_none_or(|t| r.stored_at >= t);
                let held = e.store().iter().filter(|r| r.expires_at > now && fresh(r) && near(&r.key));
                (held.map(|r| (r.key, r.value.clone())).collect(), now)
            })
            .await?;
        self.inner.bridging.scanned(at);
        let (now, cfg) = (self.now(), &self.inner.config);
        let mut bridged = 0;
        for (key, value) in held {
            let Some(record) = WorkerRecord::from_value(&value).filter(is_legacy) else { continue };
            // Only a record under its own `worker:{id}` key speaks for that worker.
            if super::worker_key(&record.worker_id) != key {
                continue;
            }
            let record = self.inner.liveness.observe(record, now);
            if record.health(now, cfg.worker_ttl) != Health::Healthy || !self.inner.bridging.take(&record.worker_id) {
                continue;
            }
            let ttl = cfg.refresh_interval * 2;
            for s in &record.services {
                let item = Announce {
                    id: record.worker_id.clone(),
                    version: version(&record, now),
                    ttl,
                    load: Some(record.load),
                    // Nobody here holds a legacy worker's key.
                    signature: None,
                };
                self.start_announce(service_key(s), item, false).await;
            }
            bridged += 1;
        }
        Ok(bridged)
    }
}

/// Written by the platform's own code, not through a kadmesh node, and
/// naming at least one service.
fn is_legacy(r: &WorkerRecord) -> bool {
    r.node_id.is_none() && !r.services.is_empty()
}

/// A provider version for a bridged entry: when its record was last seen to
/// change, in Unix milliseconds (newer heartbeats give newer versions).
fn version(r: &WorkerRecord, now: f64) -> u64 {
    (r.last_seen.unwrap_or(now) * 1000.0).max(0.0) as u64
}

/// How often [`Discovery::bridge_held_records`] runs: once per refresh interval.
pub(crate) fn due(last: Option<f64>, now: f64, interval: Duration) -> bool {
    last.is_none_or(|at| now - at >= interval.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_platform_written_records_with_services_are_bridged() {
        let theirs = WorkerRecord::from_json(
            r#"{"worker_id":"w","tunnel_url":"https://w","services":["ocr"],"last_seen":815.2}"#,
        )
        .unwrap();
        assert!(is_legacy(&theirs));
        let mut ours = theirs.clone();
        ours.node_id = Some("ab".into());
        assert!(!is_legacy(&ours));
        let mut idle = theirs.clone();
        idle.services.clear();
        assert!(!is_legacy(&idle));
        assert_eq!(version(&theirs, 0.0), 815_200);
    }

    #[test]
    fn bridging_runs_once_per_interval() {
        let i = Duration::from_secs(120);
        assert!(due(None, 10.0, i));
        assert!(!due(Some(10.0), 129.0, i));
        assert!(due(Some(10.0), 130.0, i));
    }

    #[test]
    fn passes_between_full_ones_see_only_new_records_and_announce_each_worker_once() {
        let (b, i) = (Bridging::default(), Duration::from_secs(120));
        assert_eq!(b.begin(10.0, i), Pass { full: true, since: None });
        b.scanned(Time::from_secs(10));
        assert!(b.take("w1"));
        let between = b.begin(15.0, i);
        assert_eq!(between, Pass { full: false, since: Some(Time::from_secs(10)) });
        assert!(!b.take("w1"), "announced in this interval already");
        assert!(b.take("w2"), "a worker new since the full pass");
        b.scanned(Time::from_secs(15));
        assert_eq!(b.begin(20.0, i).since, Some(Time::from_secs(15)), "each pass scans from the last");
        assert!(b.begin(130.0, i).full, "the next full pass");
        assert!(b.take("w1") && b.take("w2"), "a full pass announces everyone again");
    }
}
