//! The workers registered through this node, and when each must be written
//! to the DHT again.
//!
//! Heartbeats land here, not in the DHT: a heartbeat only moves the worker's
//! `last_seen`/`expires_at` and load in memory. A record is (re)published
//! when [`Registry::due`] says so:
//! - never published yet, or the last publish is `refresh_interval` old
//!   (scheduled refresh, well inside the liveness window);
//! - a significant change (status, load moved by `load_threshold`, free
//!   memory appeared or moved by a tenth), at once unless another
//!   significant change was published less than `min_republish` ago, then
//!   when that time has passed ([`Urgency`]);
//! - never once its last heartbeat is older than `worker_ttl` (it would only
//!   carry a stale `last_seen`); after `stale_after` it is dropped
//!   ([`Registry::drop_stale`]).
//!
//! Versions are Unix milliseconds, bumped to stay strictly increasing per
//! worker, so replicas can order a worker's writes and tombstones.

use std::collections::HashMap;
use std::sync::Mutex;

use super::input::Heartbeat;
use super::record::WorkerRecord;
use super::DiscoveryConfig;

/// What a heartbeat asks of the publisher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Urgency {
    /// Nothing readers would notice changed.
    None,
    /// A significant change: publish now.
    Now,
    /// A significant change, but the last publish was too recent: the
    /// refresher publishes it once `min_republish` has passed.
    Later,
}

#[derive(Clone, Debug)]
struct LocalWorker {
    record: WorkerRecord,
    published_at: Option<f64>,
    /// When a significant change was last published; the registration and
    /// scheduled refreshes do not count, so a worker's first heartbeat after
    /// registering is published at once.
    urgent_at: Option<f64>,
    published_load: f64,
    published_status: String,
    published_memory: Option<f64>,
    dirty: bool,
}

/// Workers registered here, by id.
#[derive(Debug, Default)]
pub struct Registry {
    map: Mutex<HashMap<String, LocalWorker>>,
}

/// A version after `prev` and no earlier than `now` (Unix seconds).
pub fn next_version(prev: Option<u64>, now: f64) -> u64 {
    let ms = (now * 1000.0) as u64;
    prev.map_or(ms, |p| ms.max(p + 1))
}

/// Whether free memory changed enough for `min_memory` filters to notice:
/// it appeared, vanished, or moved by a tenth or more.
fn memory_moved(published: Option<f64>, now: Option<f64>) -> bool {
    match (published, now) {
        (Some(a), Some(b)) => a != b && (a - b).abs() >= a.abs().max(b.abs()) / 10.0,
        (a, b) => a.is_some() != b.is_some(),
    }
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, LocalWorker>> {
        // Every update below is a single assignment; a panic cannot tear one.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds or replaces a worker; returns the record it replaced. A
    /// replacement keeps the old version, so its next one is still newer.
    pub fn insert(&self, mut record: WorkerRecord) -> Option<WorkerRecord> {
        let mut map = self.lock();
        let prev = map.get(&record.worker_id).and_then(|w| w.record.version);
        record.version = record.version.max(prev);
        let w = LocalWorker {
            published_load: record.load,
            published_status: record.status.clone(),
            published_memory: record.available_memory,
            record,
            published_at: None,
            urgent_at: None,
            dirty: false,
        };
        map.insert(w.record.worker_id.clone(), w).map(|old| old.record)
    }

    /// Applies a heartbeat at `now`; `None` when the worker is not registered
    /// here.
    pub fn heartbeat(&self, hb: &Heartbeat, now: f64, cfg: &DiscoveryConfig) -> Option<(WorkerRecord, Urgency)> {
        let mut map = self.lock();
        let w = map.get_mut(&hb.worker_id)?;
        let lapsed = w.record.expires_at.is_none_or(|e| e <= now);
        let r = &mut w.record;
        r.last_seen = Some(now);
        r.expires_at = Some(now + cfg.worker_ttl.as_secs_f64());
        if let Some(s) = &hb.status {
            r.status.clone_from(s);
        }
        r.load = hb.load.unwrap_or(r.load);
        r.available_memory = hb.available_memory.or(r.available_memory);
        r.gpu_utilization = hb.gpu_utilization.or(r.gpu_utilization);
        r.active_requests = hb.active_requests.or(r.active_requests);
        if let Some(m) = &hb.loaded_models {
            r.loaded_models.clone_from(m);
        }
        let significant = lapsed
            || r.status != w.published_status
            || (r.load - w.published_load).abs() >= cfg.load_threshold
            || memory_moved(w.published_memory, r.available_memory);
        let allowed = w.urgent_at.is_none_or(|at| now - at >= cfg.min_republish.as_secs_f64());
        let urgency = match (significant, allowed || lapsed) {
            (false, _) => Urgency::None,
            (true, true) => Urgency::Now,
            (true, false) => Urgency::Later,
        };
        w.dirty |= urgency == Urgency::Later;
        if urgency == Urgency::Now {
            w.urgent_at = Some(now);
        }
        Some((w.record.clone(), urgency))
    }

    /// Removes a worker; returns its record.
    pub fn remove(&self, id: &str) -> Option<WorkerRecord> {
        self.lock().remove(id).map(|w| w.record)
    }

    /// The record to publish for `id` now, with a fresh version; `None` when
    /// the worker is gone.
    pub fn prepare(&self, id: &str, now: f64) -> Option<WorkerRecord> {
        let mut map = self.lock();
        let w = map.get_mut(id)?;
        w.record.version = Some(next_version(w.record.version, now));
        w.published_at = Some(now);
        if w.dirty {
            w.urgent_at = Some(now);
        }
        w.published_load = w.record.load;
        w.published_status.clone_from(&w.record.status);
        w.published_memory = w.record.available_memory;
        w.dirty = false;
        Some(w.record.clone())
    }

    /// Ids whose record must be written again at `now`.
    pub fn due(&self, now: f64, cfg: &DiscoveryConfig) -> Vec<String> {
        let refresh = cfg.refresh_interval.as_secs_f64();
        let min = cfg.min_republish.as_secs_f64();
        self.lock()
            .values()
            .filter(|w| w.record.expires_at.is_some_and(|e| e > now))
            .filter(|w| match w.published_at {
                None => true,
                Some(at) => now - at >= refresh || (w.dirty && w.urgent_at.is_none_or(|u| now - u >= min)),
            })
            .map(|w| w.record.worker_id.clone())
            .collect()
    }

    /// Removes and returns workers silent for longer than `stale_after`.
    pub fn drop_stale(&self, now: f64, cfg: &DiscoveryConfig) -> Vec<WorkerRecord> {
        let limit = cfg.stale_after.as_secs_f64();
        let mut map = self.lock();
        let stale: Vec<String> = map
            .values()
            .filter(|w| w.record.last_seen.is_none_or(|seen| now - seen > limit))
            .map(|w| w.record.worker_id.clone())
            .collect();
        stale.iter().filter_map(|id| map.remove(id)).map(|w| w.record).collect()
    }

    /// The record of one worker.
    pub fn get(&self, id: &str) -> Option<WorkerRecord> {
        self.lock().get(id).map(|w| w.record.clone())
    }

    /// Every registered worker's record.
    pub fn records(&self) -> Vec<WorkerRecord> {
        self.lock().values().map(|w| w.record.clone()).collect()
    }

    /// How many workers are registered.
    pub fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cfg() -> DiscoveryConfig {
        DiscoveryConfig {
            worker_ttl: Duration::from_secs(300),
            refresh_interval: Duration::from_secs(120),
            min_republish: Duration::from_secs(60),
            stale_after: Duration::from_secs(600),
            ..DiscoveryConfig::default()
        }
    }

    fn registered(reg: &Registry, now: f64) {
        let mut r = WorkerRecord::from_json(r#"{"worker_id": "w1", "tunnel_url": "https://w"}"#).unwrap();
        r.last_seen = Some(now);
        r.expires_at = Some(now + 300.0);
        reg.insert(r);
        reg.prepare("w1", now).unwrap();
    }

    fn beat(load: f64) -> Heartbeat {
        Heartbeat { worker_id: "w1".into(), load: Some(load), ..Heartbeat::default() }
    }

    #[test]
    fn heartbeats_publish_only_on_schedule_or_significant_change() {
        let (reg, c) = (Registry::default(), cfg());
        registered(&reg, 1000.0);
        assert_eq!(reg.heartbeat(&beat(0.05), 1030.0, &c).unwrap().1, Urgency::None);
        assert!(reg.due(1030.0, &c).is_empty());
        assert_eq!(reg.heartbeat(&beat(0.9), 1040.0, &c).unwrap().1, Urgency::Now, "first change after register");
        reg.prepare("w1", 1040.0);
        assert_eq!(reg.heartbeat(&beat(0.1), 1070.0, &c).unwrap().1, Urgency::Later);
        assert!(reg.due(1099.0, &c).is_empty());
        assert_eq!(reg.due(1100.0, &c), ["w1"]);
        reg.prepare("w1", 1100.0);
        assert_eq!(reg.heartbeat(&beat(0.1), 1130.0, &c).unwrap().1, Urgency::None);
        assert_eq!(reg.heartbeat(&beat(0.8), 1160.0, &c).unwrap().1, Urgency::Now);
        reg.prepare("w1", 1160.0);
        assert_eq!(reg.due(1280.0, &c), ["w1"], "scheduled refresh");
        assert!(reg.heartbeat(&Heartbeat { worker_id: "nope".into(), ..Heartbeat::default() }, 0.0, &c).is_none());
    }

    #[test]
    fn silent_workers_stop_publishing_then_drop() {
        let (reg, c) = (Registry::default(), cfg());
        registered(&reg, 1000.0);
        assert!(reg.due(1000.0 + 300.0, &c).is_empty(), "expired: nothing fresh to say");
        assert!(reg.drop_stale(1000.0 + 600.0, &c).is_empty());
        assert_eq!(reg.drop_stale(1000.0 + 601.0, &c).len(), 1);
        assert_eq!(reg.len(), 0);
    }

    #[test]
    fn a_lapsed_worker_that_returns_is_published_at_once() {
        let (reg, c) = (Registry::default(), cfg());
        registered(&reg, 1000.0);
        assert_eq!(reg.heartbeat(&beat(0.0), 1400.0, &c).unwrap().1, Urgency::Now);
    }

    #[test]
    fn memory_changes_are_significant_when_filters_would_notice() {
        assert!(memory_moved(None, Some(8.0)) && memory_moved(Some(8.0), None));
        assert!(memory_moved(Some(10.0), Some(8.0)) && !memory_moved(Some(10.0), Some(9.5)));
        assert!(!memory_moved(None, None) && !memory_moved(Some(0.0), Some(0.0)));
    }

    #[test]
    fn versions_increase_strictly() {
        assert_eq!(next_version(None, 1.5), 1500);
        assert_eq!(next_version(Some(1500), 1.5), 1501);
        assert_eq!(next_version(Some(10), 2.0), 2000);
    }
}
