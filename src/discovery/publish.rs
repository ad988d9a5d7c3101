//! Register, heartbeat, unregister, and the refresher that keeps registered
//! workers fresh in the DHT.
//!
//! Write rate per worker: one record put (a node lookup plus k stores) and a
//! share of one batched provider write per service every `refresh_interval`
//! (default 120 s, against heartbeats every 30 s), plus at most one extra
//! put per `min_republish` (default 60 s) when its status or load changes
//! significantly. Register and a significant heartbeat publish at once and
//! wait for it up to `publish_wait`; the write goes on in the background if
//! it takes longer.
//!
//! Unregister writes a tombstone record (`status: offline`, `expires_at` =
//! now) over the live one, stops republishing it, and tombstones the
//! worker's provider entries with a newer version, so readers drop it at
//! once.

use ed25519_dalek::SigningKey;
use futures_util::future::join_all;

use super::input::{Heartbeat, InvalidInput, Registration};
use super::keys::{self, public_hex};
use super::metrics::bump;
use super::owner;
use super::record::{WorkerRecord, MAX_RECORD_BYTES, STATUS_HEALTHY, STATUS_OFFLINE};
use super::registry::{next_version, Urgency};
use super::wire::Announce;
use super::{service_key, worker_key, Discovery, DiscoveryError, SERVICE_INDEX_KEY};
use crate::id::Key;
use crate::node::NodeError;
use crate::wire::Value;

/// How a registration went.
#[derive(Clone, Debug, PartialEq)]
pub struct RegisterOutcome {
    /// The record as published.
    pub record: WorkerRecord,
    /// What the DHT write reached; `None` if it was still running after
    /// `publish_wait`.
    pub report: Option<PublishReport>,
    /// The worker's credential (hex key seed), answered when the id was
    /// free or the caller presented it; never to a credential-less caller
    /// re-registering a live id.
    pub credential: Option<String>,
}

/// How a heartbeat went.
#[derive(Clone, Debug, PartialEq)]
pub struct HeartbeatOutcome {
    /// The record after the heartbeat.
    pub record: WorkerRecord,
    /// Whether it was written to the DHT now (otherwise the scheduled
    /// refresh carries it).
    pub published: bool,
}

/// Where a publish landed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PublishReport {
    /// Nodes that acknowledged the record (plus this one, if it keeps a copy).
    pub record_replicas: usize,
    /// The fewest replicas that acknowledged any one service's announcement.
    pub provider_replicas: usize,
}

impl Discovery {
    /// Registers a worker through this node and publishes it, signed by its
    /// key; `presented` is the credential the caller sent, if any (the
    /// rules are in `owner`).
    pub async fn register(
        &self,
        mut reg: Registration,
        presented: Option<SigningKey>,
    ) -> Result<RegisterOutcome, DiscoveryError> {
        if self.inner.config.refuse_private_urls {
            super::input::refuse_private(&reg.tunnel_url)?;
        }
        let live = self.live_owner(&reg.worker_id).await;
        let held = self.inner.keys.get(&reg.worker_id);
        let grant = owner::decide_register(live.as_ref(), presented, held, &reg.tunnel_url, || {
            SigningKey::generate(&mut rand::rngs::OsRng)
        })
        .map_err(DiscoveryError::Forbidden)?;
        let now = self.now();
        if reg.services.is_empty() {
            reg.services = self.assigned_services(&reg);
        }
        let mut record = self.new_record(reg, now);
        record.public_key = Some(public_hex(grant.key()));
        // The next seq must pass the live record's, whatever this clock says.
        record.version = live.map(|l| l.seq);
        record.seq = record.version;
        let size = record.to_signed_json(grant.key()).len();
        if size > MAX_RECORD_BYTES {
            let msg = format!("the worker record would be {size} bytes; the limit is {MAX_RECORD_BYTES}");
            return Err(InvalidInput(msg).into());
        }
        self.inner.keys.set(&record.worker_id, grant.key());
        let (record, report) = self.install(record, now).await;
        let credential = grant.reveals().then(|| keys::credential(grant.key()));
        Ok(RegisterOutcome { record, report, credential })
    }

    /// Takes `record` as the registration of its worker and publishes it
    /// (waiting up to `publish_wait`); the record as published.
    pub(super) async fn install(&self, record: WorkerRecord, now: f64) -> (WorkerRecord, Option<PublishReport>) {
        let id = record.worker_id.clone();
        let mut left = Vec::new();
        if let Some(old) = self.inner.registry.insert(record.clone()) {
            // Services dropped by a re-registration must stop naming it.
            let gone: Vec<String> = old.services.into_iter().filter(|s| !record.services.contains(s)).collect();
            let version = next_version(old.version, now);
            for s in gone {
                self.inner.cache.invalidate(&s);
                let item = self.tombstone(&id, version, &s);
                self.start_announce(service_key(&s), item, true).await;
                left.push(s);
            }
        }
        bump(&self.inner.metrics.registrations);
        let report = self.publish_bounded(&id).await;
        let record = self.inner.registry.get(&id).unwrap_or(record);
        self.legacy_lists_changed(&id, record.services.clone(), left);
        (record, report)
    }

    /// What a worker that named no services is told to run: the default
    /// services, plus the GPU ones when it reports a GPU.
    fn assigned_services(&self, reg: &Registration) -> Vec<String> {
        let cfg = &self.inner.config;
        let extra = if super::record::reports_gpu(&reg.capabilities) { cfg.gpu_services.as_slice() } else { &[] };
        let mut out: Vec<String> = Vec::new();
        for s in cfg.default_services.iter().chain(extra) {
            if !out.contains(s) {
                out.push(s.clone());
            }
        }
        out
    }

    /// The record of a fresh registration: healthy, idle, heard from now.
    fn new_record(&self, reg: Registration, now: f64) -> WorkerRecord {
        WorkerRecord {
            worker_id: reg.worker_id,
            tunnel_url: reg.tunnel_url,
            services: reg.services,
            capabilities: reg.capabilities,
            vpn_ip: reg.vpn_ip,
            last_seen: Some(now),
            expires_at: Some(now + self.inner.config.worker_ttl.as_secs_f64()),
            status: STATUS_HEALTHY.to_owned(),
            load: 0.0,
            available_memory: None,
            gpu_utilization: None,
            active_requests: None,
            loaded_models: Vec::new(),
            containers: reg.containers,
            version: None,
            node_id: Some(self.node().id().to_hex()),
            public_key: None,
            seq: None,
            endorsement: reg.endorsement,
            verified: true,
        }
    }

    /// Applies a heartbeat; publishes at once when it changed something
    /// readers rank or filter by. A status change needs the credential.
    pub async fn heartbeat(
        &self,
        hb: Heartbeat,
        presented: Option<SigningKey>,
    ) -> Result<HeartbeatOutcome, DiscoveryError> {
        let current = self
            .inner
            .registry
            .get(&hb.worker_id)
            .ok_or_else(|| DiscoveryError::UnknownWorker(hb.worker_id.clone()))?;
        if self.inner.self_signed.get(&hb.worker_id).is_some() {
            let msg = "this worker signs its own records: send a new signed_record with each heartbeat";
            return Err(DiscoveryError::Forbidden(msg.to_owned()));
        }
        owner::check_credential(&current, presented.as_ref(), owner::changes_status(&current, &hb))
            .map_err(DiscoveryError::Forbidden)?;
        let now = self.now();
        let (record, urgency) = self
            .inner
            .registry
            .heartbeat(&hb, now, &self.inner.config)
            .ok_or_else(|| DiscoveryError::UnknownWorker(hb.worker_id.clone()))?;
        bump(&self.inner.metrics.heartbeats);
        let published = urgency == Urgency::Now;
        if published {
            self.publish_bounded(&hb.worker_id).await;
        }
        Ok(HeartbeatOutcome { record, published })
    }

    /// Unregisters a worker (needs its credential): it disappears from
    /// lookups at once.
    pub async fn unregister(
        &self,
        worker_id: &str,
        presented: Option<SigningKey>,
    ) -> Result<WorkerRecord, DiscoveryError> {
        let current =
            self.inner.registry.get(worker_id).ok_or_else(|| DiscoveryError::UnknownWorker(worker_id.to_owned()))?;
        owner::check_credential(&current, presented.as_ref(), true).map_err(DiscoveryError::Forbidden)?;
        self.retire(worker_id).await
    }

    /// Drops `worker_id` from the registry and withdraws it from the DHT,
    /// waiting up to `publish_wait`.
    pub(super) async fn retire(&self, worker_id: &str) -> Result<WorkerRecord, DiscoveryError> {
        let record =
            self.inner.registry.remove(worker_id).ok_or_else(|| DiscoveryError::UnknownWorker(worker_id.to_owned()))?;
        let (me, r) = (self.clone(), record.clone());
        let (tx, done) = tokio::sync::oneshot::channel();
        self.inner.background.spawn(async move {
            let _ = tx.send(me.withdraw(r).await);
        });
        if tokio::time::timeout(self.inner.config.publish_wait, done).await.is_err() {
            tracing::debug!(worker_id, "unregister still writing in the background");
        }
        Ok(record)
    }

    /// The tombstone of worker `id` in `service`'s set, signed by its key.
    fn tombstone(&self, id: &str, version: u64, service: &str) -> Announce {
        let cfg = &self.inner.config;
        let ttl = cfg.worker_ttl + cfg.refresh_interval;
        self.sign_entry(Announce { id: id.to_owned(), version, ttl, load: None, signature: None }, service, true)
    }

    /// Worker `item` for `service`'s set signed by the worker's key: by this
    /// node when it holds the key (to be served no longer than its ttl from
    /// now), else with the worker's own signature when it sent one
    /// (`own_key`). (Entries of the service index name services, which
    /// nobody owns: unsigned.)
    fn sign_entry(&self, item: Announce, service: &str, gone: bool) -> Announce {
        let set = service_key(service);
        if let Some(own) = self.inner.self_signed.get(&item.id) {
            return own.attach(item, &set, service, gone);
        }
        let expires_at = (self.now() + item.ttl.as_secs_f64()).ceil() as u64;
        match self.inner.keys.get(&item.id) {
            Some(k) => item.signed(&set, gone, expires_at, &k),
            None => item,
        }
    }

    /// Publishes `id` and waits up to `publish_wait` for it.
    pub(super) async fn publish_bounded(&self, id: &str) -> Option<PublishReport> {
        let (me, id) = (self.clone(), id.to_owned());
        let (tx, done) = tokio::sync::oneshot::channel();
        self.inner.background.spawn(async move {
            let _ = tx.send(me.publish(&id).await);
        });
        match tokio::time::timeout(self.inner.config.publish_wait, done).await {
            Ok(Ok(Ok(report))) => Some(report),
            Ok(Ok(Err(e))) => {
                tracing::warn!(error = %e, "worker record not published");
                None
            }
            _ => None,
        }
    }

    /// Writes a registered worker's record and announces its services.
    async fn publish(&self, id: &str) -> Result<PublishReport, NodeError> {
        let now = self.now();
        let Some(mut record) = self.inner.registry.prepare(id, now) else { return Ok(PublishReport::default()) };
        if let Some(own) = self.inner.self_signed.get(id) {
            // Published as the worker signed it: its seq is the version.
            record = own.record;
        }
        record.seq = record.version;
        let version = record.version.unwrap_or_default();
        let ttl = std::time::Duration::from_secs_f64((record.expires_at.unwrap_or(now) - now).max(1.0));
        let mut announces = Vec::new();
        for s in &record.services {
            self.inner.cache.invalidate(s);
            let item = Announce { id: id.to_owned(), version, ttl, load: Some(record.load), signature: None };
            announces.push(self.announce(service_key(s), self.sign_entry(item, s, false), false));
            // The service index is not waited for: the engine owns that write.
            let index = Announce { id: s.clone(), version, ttl, load: None, signature: None };
            self.start_announce(Key::for_key(SERVICE_INDEX_KEY), index, false).await;
        }
        let put = async {
            // Announcements are batched; only the record writes queue.
            let _permit = self.inner.publishing.acquire().await;
            bump(&self.inner.metrics.record_puts);
            self.node().put(worker_key(id), Value::Str(self.signed_text(&record))).await
        };
        let (put, acked) = tokio::join!(put, join_all(announces));
        let put = put?;
        let provider_replicas = acked.into_iter().min().unwrap_or(0);
        let record_replicas = put.stored + usize::from(put.stored_locally);
        Ok(PublishReport { record_replicas, provider_replicas })
    }

    /// Overwrites the record with a tombstone and tombstones its providers.
    async fn withdraw(&self, mut record: WorkerRecord) -> Result<(), NodeError> {
        let now = self.now();
        let mut version = next_version(record.version, now);
        match self.inner.self_signed.get(&record.worker_id) {
            // The worker's own tombstone, installed by `unregister_signed`.
            Some(own) => (record, version) = (own.record.clone(), own.record.version.unwrap_or(version)),
            None => {
                record.status = STATUS_OFFLINE.to_owned();
                record.expires_at = Some(now);
                record.version = Some(version);
            }
        }
        record.seq = Some(version);
        let mut announces = Vec::new();
        for s in &record.services {
            self.inner.cache.invalidate(s);
            let item = self.tombstone(&record.worker_id, version, s);
            announces.push(self.announce(service_key(s), item, true));
        }
        let key = worker_key(&record.worker_id);
        let text = self.signed_text(&record);
        self.inner.keys.remove(&record.worker_id);
        self.inner.self_signed.remove(&record.worker_id);
        let record_written = async {
            self.node().put(key, Value::Str(text)).await?;
            // The tombstone only has to outlive the copies it replaced.
            self.node().with_engine(move |e, _| e.unpublish(&key)).await
        };
        let (written, _) = tokio::join!(record_written, join_all(announces));
        written?;
        self.legacy_lists_changed(&record.worker_id, Vec::new(), record.services.clone());
        Ok(())
    }

    /// `record` as stored in the DHT: as the worker signed it, or signed
    /// by the worker's key when this node holds it.
    fn signed_text(&self, record: &WorkerRecord) -> String {
        if let Some(own) = self.inner.self_signed.get(&record.worker_id) {
            return own.text;
        }
        match self.inner.keys.get(&record.worker_id) {
            Some(key) => record.to_signed_json(&key),
            None => record.to_json(),
        }
    }

    /// Keeps registered workers fresh in the DHT until [`Discovery::shutdown`]
    /// or the node stops: republishes each worker when its refresh is due or
    /// a deferred significant change may go out, and drops workers silent
    /// past `stale_after`.
    pub async fn run_refresher(self) {
        let tick = (self.inner.config.refresh_interval / 8)
            .clamp(std::time::Duration::from_millis(20), std::time::Duration::from_secs(5));
        let mut stop = self.inner.stop.subscribe();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() || self.refresh_once().await.is_err() {
                return;
            }
        }
    }

    async fn refresh_once(&self) -> Result<(), NodeError> {
        let now = self.now();
        let cfg = &self.inner.config;
        for r in self.inner.registry.drop_stale(now, cfg) {
            tracing::info!(worker_id = %r.worker_id, "worker silent past stale-after; dropped");
            self.inner.keys.remove(&r.worker_id);
            self.inner.self_signed.remove(&r.worker_id);
            let key = worker_key(&r.worker_id);
            self.node().with_engine(move |e, _| e.unpublish(&key)).await?;
        }
        let due = self.inner.registry.due(now, cfg);
        let refreshes = due.into_iter().map(|id| async move {
            // A scheduled refresh must not write back an old record over
            // a newer registration made through another node.
            let remote = self.fetch_remote(&id).await;
            if self.reconcile(&id, remote).is_some() && self.inner.registry.get(&id).is_none() {
                return Ok(PublishReport::default());
            }
            self.publish(&id).await
        });
        for r in join_all(refreshes).await {
            r?;
        }
        self.bridge_held(now).await?;
        self.refresh_legacy_lists(now).await
    }

    /// Announces the legacy worker records this node holds (see `bridge`):
    /// all once per refresh interval, new ones at every tick between.
    async fn bridge_held(&self, now: f64) -> Result<(), NodeError> {
        let pass = self.inner.bridging.begin(now, self.inner.config.refresh_interval);
        let n = self.bridge_held_records(pass).await?;
        if n > 0 {
            tracing::debug!(workers = n, full = pass.full, "announced workers that registered the old way");
        }
        Ok(())
    }

    /// Rebuilds the legacy list of every service of the workers registered
    /// here that was not rebuilt within the last refresh interval.
    async fn refresh_legacy_lists(&self, now: f64) -> Result<(), NodeError> {
        let interval = self.inner.config.refresh_interval.as_secs_f64();
        let mut services: Vec<String> = self.local_workers().into_iter().flat_map(|w| w.services).collect();
        services.sort();
        services.dedup();
        for s in services.into_iter().filter(|s| self.inner.legacy.due(s, now, interval)) {
            self.refresh_legacy_list(&s).await?;
        }
        Ok(())
    }

    /// Updates the legacy lists in the background now that worker `id`
    /// registered here joined `joined` and left `left` (see `legacy`).
    fn legacy_lists_changed(&self, id: &str, joined: Vec<String>, left: Vec<String>) {
        let (me, id) = (self.clone(), id.to_owned());
        self.inner.background.spawn(async move {
            let services = joined.iter().map(|s| (s, None)).chain(left.iter().map(|s| (s, Some(id.as_str()))));
            for (s, leaving) in services {
                if let Err(e) = me.update_legacy_list(s, leaving).await {
                    tracing::debug!(service = %s, error = %e, "legacy list not updated");
                }
            }
        });
    }
}
