//! Answering "give me a healthy, least-loaded worker of service X".
//!
//! Order of resort: the local cache; the DHT (provider sets merged from
//! several replicas plus the legacy JSON list, then worker records filtered
//! by health, GPU and memory, sorted by load); the fallback coordinator when
//! one is configured and the DHT could not answer (this node has no peers,
//! no healthy provider was found, or the lookup failed or timed out). The
//! answer says which of these it came from. Only positive answers are
//! cached, so a worker registering is visible at once.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value as Json};

use super::input::{check_service, valid_service, DiscoverFilter};
use super::metrics::{bump, LookupResult};
use super::record::{Health, WorkerRecord};
use super::{service_key, Discovery, DiscoveryError, SERVICE_INDEX_KEY};
use crate::id::Key;
use crate::node::NodeError;

/// Where an answer came from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// The DHT.
    Dht {
        /// Healthy matching workers, least loaded first.
        workers: Vec<WorkerRecord>,
        /// Candidate providers found before filtering.
        providers: usize,
        /// Provider-set replicas read completely.
        replicas: usize,
    },
    /// The fallback coordinator.
    Coordinator {
        /// Its answer, as it sent it.
        body: Json,
        /// Why the DHT did not answer.
        reason: String,
    },
}

/// The answer to a discover request.
#[derive(Clone, Debug, PartialEq)]
pub struct DiscoverAnswer {
    /// The service asked for.
    pub service: String,
    /// The workers and where they came from.
    pub source: Source,
    /// Whether it was served from the local cache.
    pub cached: bool,
}

impl DiscoverAnswer {
    /// The coordinator's response shape, plus `source` and `cached`.
    pub fn to_json(&self, now: f64, window: Duration) -> Json {
        match &self.source {
            Source::Dht { workers, providers, replicas } => json!({
                "service": self.service,
                "workers": workers.iter().map(|w| w.view(now, window)).collect::<Vec<_>>(),
                "count": workers.len(),
                "recommended": workers.first().map(|w| w.worker_id.clone()),
                "source": "dht",
                "cached": self.cached,
                "providers_seen": providers,
                "replicas_read": replicas,
            }),
            Source::Coordinator { body, reason } => {
                let mut out = body.clone();
                if let Some(o) = out.as_object_mut() {
                    o.insert("source".into(), json!("coordinator"));
                    o.insert("fallback_reason".into(), json!(reason));
                    o.insert("cached".into(), json!(self.cached));
                }
                out
            }
        }
    }

    /// How many workers it names.
    pub fn count(&self) -> usize {
        match &self.source {
            Source::Dht { workers, .. } => workers.len(),
            Source::Coordinator { body, .. } => body
                .get("count")
                .and_then(Json::as_u64)
                .map(|n| n as usize)
                .or_else(|| body.get("workers").and_then(Json::as_array).map(Vec::len))
                .unwrap_or(0),
        }
    }
}

/// The raw provider view of one service (for operators and tests).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProviderList {
    /// Workers with a live announcement.
    pub live: Vec<String>,
    /// Workers whose announcement was withdrawn.
    pub removed: Vec<String>,
    /// Workers named by the legacy JSON list.
    pub legacy: Vec<String>,
    /// Replicas read completely.
    pub replicas: usize,
}

/// One line of `GET /api/services/list`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceSummary {
    /// Service name.
    pub name: String,
    /// Healthy workers offering it.
    pub healthy_workers: usize,
}

impl Discovery {
    /// Healthy workers of `service` that pass `filter`, least loaded first.
    pub async fn discover(&self, service: &str, filter: &DiscoverFilter) -> Result<DiscoverAnswer, DiscoveryError> {
        self.discover_with(service, filter, true).await
    }

    /// [`discover`](Self::discover), reading the DHT even when a cached
    /// answer is fresh if `use_cache` is false (`Cache-Control: no-cache`);
    /// the new answer still replaces the cached one.
    pub async fn discover_with(
        &self,
        service: &str,
        filter: &DiscoverFilter,
        use_cache: bool,
    ) -> Result<DiscoverAnswer, DiscoveryError> {
        check_service(service)?;
        let metrics = &self.inner.metrics;
        let cache_key = format!("{service}?{filter:?}");
        if let Some(mut hit) = self.inner.cache.get(&cache_key).filter(|_| use_cache) {
            hit.cached = true;
            metrics.lookup(LookupResult::Cache);
            return Ok(hit);
        }
        if let Some(reason) = self.recent_miss(&cache_key, service) {
            metrics.lookup(LookupResult::Unavailable);
            return Err(DiscoveryError::NoHealthyWorkers { service: service.to_owned(), reason });
        }
        let alone = self.node().with_engine(|e, _| e.routing().is_empty()).await?;
        let mut reason = if alone && self.inner.coordinator.is_some() {
            "this node has no DHT peers yet".to_owned()
        } else {
            let started = tokio::time::Instant::now();
            let lookup = tokio::time::timeout(self.inner.config.lookup_timeout, self.discover_dht(service, filter));
            let result = lookup.await;
            metrics.lookup_latency.observe(started.elapsed());
            match result {
                Ok(Ok((workers, providers, replicas))) if !workers.is_empty() => {
                    let source = Source::Dht { workers, providers, replicas };
                    return Ok(self.answer(cache_key, service, source, LookupResult::Dht));
                }
                Ok(Ok((_, providers, _))) => {
                    format!("the DHT names {providers} provider(s), none healthy and matching")
                }
                Ok(Err(e)) => format!("DHT lookup failed: {e}"),
                Err(_) => format!("DHT lookup timed out after {:?}", self.inner.config.lookup_timeout),
            }
        };
        if let Some(c) = &self.inner.coordinator {
            match c.discover(service, filter).await {
                Ok(body) => {
                    let source = Source::Coordinator { body, reason };
                    return Ok(self.answer(cache_key, service, source, LookupResult::Coordinator));
                }
                Err(e) => {
                    if matches!(e, super::coordinator::CoordinatorError::Unreachable(_)) {
                        bump(&metrics.coordinator_errors);
                    }
                    reason = format!("{reason}; {e}");
                }
            }
        }
        metrics.lookup(LookupResult::Unavailable);
        self.inner.negative.insert(cache_key, reason.clone());
        Err(DiscoveryError::NoHealthyWorkers { service: service.to_owned(), reason })
    }

    /// The remembered reason of a recent miss, unless a worker registered
    /// here offers the service now.
    fn recent_miss(&self, cache_key: &str, service: &str) -> Option<String> {
        let reason = self.inner.negative.get(cache_key)?;
        let local = self.inner.registry.records().iter().any(|w| w.services.iter().any(|s| s == service));
        (!local).then(|| format!("{reason} (remembered from a recent lookup)"))
    }

    fn answer(&self, cache_key: String, service: &str, source: Source, how: LookupResult) -> DiscoverAnswer {
        self.inner.metrics.lookup(how);
        let answer = DiscoverAnswer { service: service.to_owned(), source, cached: false };
        self.inner.cache.insert(cache_key, answer.clone());
        answer
    }

    /// Healthy matching workers, candidates seen, replicas read.
    async fn discover_dht(
        &self,
        service: &str,
        filter: &DiscoverFilter,
    ) -> Result<(Vec<WorkerRecord>, usize, usize), NodeError> {
        let found = self.collect_providers(service_key(service)).await?;
        let mut ids = found.candidates();
        let providers = ids.len();
        ids.truncate(self.inner.config.max_candidates);
        let (now, window) = (self.now(), self.inner.config.worker_ttl);
        let endorser = self.inner.config.endorsement_key.as_ref();
        let accept = |r: &WorkerRecord| {
            endorser.is_none_or(|k| r.endorsed_by(k, now))
                && r.health(now, window) == Health::Healthy
                && filter.matches(r)
                && (r.services.is_empty() || r.services.iter().any(|s| s == service))
        };
        let mut workers = self.fetch_records(ids, filter.limit, accept).await;
        // Verified workers first: an unsigned record (a stock peer's, or
        // anybody's forgery) is never recommended over a signed one.
        workers.sort_by(|a, b| {
            (b.verified.cmp(&a.verified)).then(a.load.total_cmp(&b.load)).then_with(|| a.worker_id.cmp(&b.worker_id))
        });
        if let Some(limit) = filter.limit {
            workers.truncate(limit);
        }
        Ok((workers, providers, found.replicas))
    }

    /// The provider view of `service` without fetching records.
    pub async fn find_providers(&self, service: &str) -> Result<ProviderList, DiscoveryError> {
        check_service(service)?;
        let found = self.collect_providers(service_key(service)).await?;
        let mut out = ProviderList { legacy: found.legacy, replicas: found.replicas, ..ProviderList::default() };
        for e in found.entries.into_values() {
            if e.is_live() {
                out.live.push(e.id);
            } else {
                out.removed.push(e.id);
            }
        }
        out.live.sort();
        out.removed.sort();
        Ok(out)
    }

    /// Every service this node can name (its own workers', the DHT's service
    /// index, recent answers) with its healthy-worker count.
    pub async fn list_services(&self) -> Result<Vec<ServiceSummary>, DiscoveryError> {
        let mut names: BTreeSet<String> = self.local_workers().into_iter().flat_map(|w| w.services).collect();
        let index = self.collect_providers(Key::for_key(SERVICE_INDEX_KEY)).await?;
        names.extend(index.entries.into_values().filter(|e| e.is_live()).map(|e| e.id));
        names.extend(self.inner.cache.values().into_iter().map(|a| a.service));
        let names: Vec<String> =
            names.into_iter().filter(|n| valid_service(n)).take(self.inner.config.max_listed_services).collect();
        let mut out = Vec::new();
        for chunk in names.chunks(8) {
            let mut tasks = tokio::task::JoinSet::new();
            for name in chunk {
                let (me, name) = (self.clone(), name.clone());
                tasks.spawn(async move {
                    let n = me.discover(&name, &DiscoverFilter::default()).await.map_or(0, |a| a.count());
                    ServiceSummary { name, healthy_workers: n }
                });
            }
            while let Some(r) = tasks.join_next().await {
                out.extend(r.ok());
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}
