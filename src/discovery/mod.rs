//! Service discovery over the DHT: workers announce themselves and the
//! services they run; anyone asks for a healthy, least-loaded worker of a
//! service and gets an answer from the DHT, with no central router.
//!
//! # Data in the DHT
//! - `worker:{worker_id}` holds the worker's [`WorkerRecord`] as a JSON
//!   string, Python-readable, with liveness inside (`last_seen`,
//!   `expires_at`), checked when read.
//! - The nodes closest to `service:{type}` hold a *provider set* for it
//!   ([`crate::engine::providers`]): entries merged by worker id, so
//!   concurrent announcements through any nodes are never lost. The legacy
//!   `service:{type}` JSON list under the same key, the only place the
//!   platform's own client looks, is read too, and rebuilt from the provider
//!   set by nodes with workers of that service (`legacy`).
//! - The nodes closest to [`SERVICE_INDEX_KEY`] hold a provider set whose
//!   entries are service names, for `GET /api/services/list`.
//!
//! # Layout
//! - [`record`]: the worker record and its health rule; [`liveness`]: the
//!   rule for the platform's monotonic `last_seen`.
//! - [`input`]: checking register/heartbeat bodies and discover filters.
//! - [`keys`]: the Ed25519 keys of workers registered here and their
//!   credentials; `owner`: who may change a registration; `bindings`: which
//!   key owns which worker id, as readers have seen it (see
//!   [`crate::signed`] for the records themselves).
//! - [`url`]: the rule for a URL this node forwards a request to.
//! - [`wire`]: the calling side of the provider-set procedures.
//! - `registry`: workers registered through this node and their publish
//!   schedule; `publish`: register, heartbeat, unregister and the
//!   refresher; `announce`: batched provider writes to the closest nodes;
//!   `legacy`: the `service:{type}` JSON list the platform's client reads,
//!   rebuilt from the provider set; `bridge`: workers that registered the
//!   old way, announced into provider sets by the replicas of their records.
//! - `lookup`: reading provider sets from several replicas and fetching
//!   records; `discover`: filtering, ranking, caching and the coordinator
//!   fallback.
//! - [`cache`], [`coordinator`], [`metrics`]; [`testnet`] and [`demo`] for
//!   tests and `dhtd demo`.
//!
//! # Running it
//! [`Discovery::new`] spawns nothing. The owner spawns
//! [`Discovery::run_refresher`], which keeps registered workers' records and
//! announcements fresh until [`Discovery::shutdown`] or the node stops.

mod announce;
mod background;
mod bindings;
mod bridge;
pub mod cache;
pub mod coordinator;
pub mod demo;
mod discover;
pub mod input;
pub mod keys;
mod legacy;
pub mod liveness;
mod lookup;
pub mod metrics;
mod own_key;
mod owner;
mod publish;
pub mod record;
mod registry;
pub mod testnet;
pub mod url;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

pub use discover::{DiscoverAnswer, ProviderList, ServiceSummary, Source};
pub use publish::{HeartbeatOutcome, RegisterOutcome};
pub use record::{Health, WorkerRecord};

use crate::id::Key;
use crate::node::{Clock, NodeError, NodeHandle};
use coordinator::{Coordinator, CoordinatorError};
use input::InvalidInput;
use metrics::Metrics;
use registry::Registry;

/// The DHT key string of the provider set listing service names.
pub const SERVICE_INDEX_KEY: &str = "kadmesh:services";

/// The DHT key of a worker's record.
pub fn worker_key(worker_id: &str) -> Key {
    Key::for_key(&format!("worker:{worker_id}"))
}

/// The DHT key of a service's provider set (and legacy list).
pub fn service_key(service: &str) -> Key {
    Key::for_key(&format!("service:{service}"))
}

/// Settings of the discovery layer.
#[derive(Clone, Debug)]
pub struct DiscoveryConfig {
    /// A worker is healthy while heartbeats arrive within this window; its
    /// record's `expires_at` is its last heartbeat plus this.
    pub worker_ttl: Duration,
    /// A worker silent this long is dropped from this node's registry.
    pub stale_after: Duration,
    /// Registered workers' records and announcements are re-written this
    /// often (must be well inside `worker_ttl`).
    pub refresh_interval: Duration,
    /// A significant heartbeat change is written at once, but not more often
    /// than this per worker.
    pub min_republish: Duration,
    /// A load change at least this large is significant.
    pub load_threshold: f64,
    /// How long discover answers are cached locally; zero disables.
    pub cache_ttl: Duration,
    /// Coordinator to ask when the DHT cannot answer.
    pub coordinator_url: Option<String>,
    /// Timeout of one coordinator request.
    pub coordinator_timeout: Duration,
    /// Replicas whose provider sets a lookup reads and merges.
    pub read_replicas: usize,
    /// Worker records fetched in parallel by one lookup.
    pub fetch_parallelism: usize,
    /// Announcements for one service made within this window share one
    /// write per replica.
    pub batch_window: Duration,
    /// How long register and heartbeat wait for their DHT write before
    /// answering (the write goes on in the background).
    pub publish_wait: Duration,
    /// Most worker-record writes this node runs at once; a burst of
    /// registrations queues instead of flooding the closest nodes' sockets.
    pub publish_concurrency: usize,
    /// Longest a discover lookup runs before it answers with what it has.
    pub lookup_timeout: Duration,
    /// Most candidate workers one discover fetches records of (the lightest
    /// announced first); bounds the DHT reads one request can cause.
    /// Default 64.
    pub max_candidates: usize,
    /// Most services one `list_services` call counts workers of (each
    /// costs a discover). Default 64.
    pub max_listed_services: usize,
    /// How long a "no healthy worker" answer is remembered, so repeated
    /// discovers of a service nobody runs cost one lookup per window; a
    /// worker registering here is visible at once. Zero disables. Default 2 s.
    pub negative_cache_ttl: Duration,
    /// Host name or IP other nodes reach this node's UDP port at (for
    /// `/api/dht/bootstrap`); default: the bound IP, else the HTTP Host.
    pub public_host: Option<String>,
    /// This node's public HTTP URL, shown as its `tunnel_url`.
    pub public_url: Option<String>,
    /// Services assigned to a worker that registers without naming any (the
    /// platform's agent does, and launches what `assigned_services` names).
    pub default_services: Vec<String>,
    /// Added to [`default_services`](Self::default_services) for such a worker when it reports a GPU.
    pub gpu_services: Vec<String>,
    /// Where the keys of workers registered here are kept (`workers.keys`,
    /// see [`keys`]); `None`: in memory only, lost on restart.
    pub key_dir: Option<std::path::PathBuf>,
    /// When set, register, heartbeat and unregister need
    /// `Authorization: Bearer <api_token>` (the daemon's `--api-token`).
    pub api_token: Option<String>,
    /// Refuse tunnel URLs on loopback, private or `localhost` hosts (they
    /// are allowed by default, for local development).
    pub refuse_private_urls: bool,
    /// Endorsement mode: serve only workers whose signed record carries
    /// this coordinator key's unexpired certificate ([`crate::endorsement`]).
    pub endorsement_key: Option<ed25519_dalek::VerifyingKey>,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            worker_ttl: Duration::from_secs(300),
            stale_after: Duration::from_secs(600),
            refresh_interval: Duration::from_secs(120),
            min_republish: Duration::from_secs(60),
            load_threshold: 0.2,
            // Short enough that an unregistration or a new URL is seen
            // everywhere within a second, long enough to absorb a hot loop.
            cache_ttl: Duration::from_secs(1),
            coordinator_url: None,
            coordinator_timeout: Duration::from_secs(5),
            read_replicas: 3,
            fetch_parallelism: 16,
            batch_window: Duration::from_millis(20),
            publish_wait: Duration::from_secs(3),
            publish_concurrency: 8,
            lookup_timeout: Duration::from_secs(10),
            max_candidates: 64,
            max_listed_services: 64,
            negative_cache_ttl: Duration::from_secs(2),
            public_host: None,
            public_url: None,
            default_services: vec!["ocr".to_owned()],
            gpu_services: vec!["llm-inference".to_owned()],
            key_dir: None,
            api_token: None,
            refuse_private_urls: false,
            endorsement_key: None,
        }
    }
}

impl DiscoveryConfig {
    /// Checks the settings fit together.
    pub fn validate(&self) -> Result<(), DiscoveryError> {
        let bad = |m: &str| Err(DiscoveryError::Config(m.to_owned()));
        if self.worker_ttl.is_zero() || self.refresh_interval.is_zero() {
            return bad("worker ttl and refresh interval must be positive");
        }
        if self.refresh_interval >= self.worker_ttl {
            return bad("the refresh interval must be shorter than the worker ttl");
        }
        if self.stale_after < self.worker_ttl {
            return bad("stale-after must be at least the worker ttl");
        }
        let assigned = self.default_services.iter().chain(&self.gpu_services);
        if let Some(bad) = assigned.clone().find(|s| input::check_service(s).is_err()) {
            return Err(DiscoveryError::Config(format!("default service {bad:?} is not a valid service name")));
        }
        if self.read_replicas == 0 || self.fetch_parallelism == 0 || self.publish_concurrency == 0 {
            return bad("read replicas, fetch parallelism and publish concurrency must be at least 1");
        }
        if self.max_candidates == 0 || self.max_listed_services == 0 {
            return bad("max candidates and max listed services must be at least 1");
        }
        Ok(())
    }
}

/// Why a discovery operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The request is malformed; the message says which field (HTTP 400).
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    /// The caller may not make this change to the worker (HTTP 403): it
    /// needs the worker's credential; the message says which rule.
    #[error("{0}")]
    Forbidden(String),
    /// The worker is not registered on this node (HTTP 404); register first.
    #[error("worker {0:?} is not registered on this node")]
    UnknownWorker(String),
    /// No healthy worker offers the service (HTTP 503); `reason` says what
    /// was tried.
    #[error("no healthy worker available for service {service:?}: {reason}")]
    NoHealthyWorkers {
        /// The service asked for.
        service: String,
        /// What was tried.
        reason: String,
    },
    /// The settings are inconsistent; fix the named option.
    #[error("discovery settings: {0}")]
    Config(String),
    /// The DHT node has stopped (HTTP 503); restart the daemon.
    #[error(transparent)]
    Node(#[from] NodeError),
}

/// The discovery service of one node; cheap to clone.
#[derive(Clone, Debug)]
pub struct Discovery {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    node: NodeHandle,
    config: DiscoveryConfig,
    clock: Clock,
    registry: Registry,
    keys: keys::KeyStore,
    /// Registrations of workers that sign their own records.
    self_signed: own_key::SelfSignedStore,
    bindings: bindings::Bindings,
    liveness: liveness::Liveness,
    legacy: legacy::LegacyLists,
    /// Which held legacy worker records were bridged, and when.
    bridging: bridge::Bridging,
    /// Tasks that may outlive their request, aborted at shutdown.
    background: background::Background,
    cache: cache::Cache<DiscoverAnswer>,
    /// Recent "no healthy worker" reasons, by the same key as `cache`.
    negative: cache::Cache<String>,
    coordinator: Option<Coordinator>,
    metrics: Metrics,
    publishing: tokio::sync::Semaphore,
    started: tokio::time::Instant,
    stop: watch::Sender<bool>,
}

impl Discovery {
    /// Discovery over `node`. Spawns nothing: run [`Discovery::run_refresher`].
    pub fn new(node: NodeHandle, config: DiscoveryConfig) -> Result<Discovery, DiscoveryError> {
        config.validate()?;
        let coordinator = match &config.coordinator_url {
            Some(url) => Some(Coordinator::new(url, config.coordinator_timeout).map_err(|e| match e {
                CoordinatorError::Unreachable(m) | CoordinatorError::NoWorkers(m) => {
                    DiscoveryError::Config(format!("coordinator URL {m}"))
                }
            })?),
            None => None,
        };
        let keys =
            keys::KeyStore::open(config.key_dir.as_deref()).map_err(|e| DiscoveryError::Config(e.to_string()))?;
        let inner = Inner {
            node,
            keys,
            self_signed: own_key::SelfSignedStore::default(),
            bindings: bindings::Bindings::default(),
            cache: cache::Cache::new(config.cache_ttl),
            negative: cache::Cache::new(config.negative_cache_ttl),
            publishing: tokio::sync::Semaphore::new(config.publish_concurrency),
            clock: Clock::new(),
            registry: Registry::default(),
            liveness: liveness::Liveness::default(),
            legacy: legacy::LegacyLists::default(),
            bridging: bridge::Bridging::default(),
            background: background::Background::default(),
            coordinator,
            metrics: Metrics::default(),
            config,
            started: tokio::time::Instant::now(),
            stop: watch::channel(false).0,
        };
        Ok(Discovery { inner: Arc::new(inner) })
    }

    /// The DHT node underneath.
    pub fn node(&self) -> &NodeHandle {
        &self.inner.node
    }

    /// The settings in force.
    pub fn config(&self) -> &DiscoveryConfig {
        &self.inner.config
    }

    /// Counters since start.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The fallback coordinator's base URL, when configured.
    pub fn coordinator_url(&self) -> Option<&str> {
        self.inner.coordinator.as_ref().map(Coordinator::base)
    }

    /// Now, in Unix seconds.
    pub fn now(&self) -> f64 {
        self.inner.clock.unix_secs()
    }

    /// Time since this service started.
    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }

    /// Records of the workers registered through this node.
    pub fn local_workers(&self) -> Vec<WorkerRecord> {
        self.inner.registry.records()
    }

    /// How many workers are registered through this node.
    pub fn local_worker_count(&self) -> usize {
        self.inner.registry.len()
    }

    /// Workers seen in recent (cached) discover answers.
    pub fn recent_workers(&self) -> Vec<WorkerRecord> {
        let mut seen = std::collections::HashMap::new();
        for answer in self.inner.cache.values() {
            if let Source::Dht { workers, .. } = answer.source {
                for w in workers {
                    seen.insert(w.worker_id.clone(), w);
                }
            }
        }
        seen.into_values().collect()
    }

    /// Stops the refresher and aborts the writes still running past their
    /// request (provider writes already handed to the node end with it).
    pub fn shutdown(&self) {
        self.inner.stop.send_replace(true);
        self.inner.background.abort_all();
    }
}
