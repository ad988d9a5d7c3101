//! The network-wide view behind `/api/dht/topology`: DHT nodes from a crawl
//! and workers from the service index, both cached.
//!
//! Contract: at most one refresh runs at a time and refreshes start at most
//! once per [`TopologyConfig::crawl_every`]; a request during a refresh gets
//! the previous view at once (only the very first request waits). A refresh
//! is bounded in time ([`TopologyConfig::crawl_budget`]), in nodes and in
//! workers. A node is listed as answering only if it answered the latest
//! crawl; one that stopped answering is kept, marked silent, until it has
//! been silent for [`TopologyConfig::forget_after`].

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::crawl::{crawl, CrawlConfig, CrawledNode, Software};
use crate::discovery::input::valid_service;
use crate::discovery::{Discovery, WorkerRecord, SERVICE_INDEX_KEY};
use crate::id::{Key, NodeId};
use crate::node::NodeError;

/// Limits of the topology's crawl and worker listing.
#[derive(Clone, Debug)]
pub struct TopologyConfig {
    /// Least time between two refreshes.
    pub crawl_every: Duration,
    /// Longest one refresh (crawl and worker listing) runs.
    pub crawl_budget: Duration,
    /// Most nodes one crawl learns.
    pub max_nodes: usize,
    /// Most workers listed.
    pub max_workers: usize,
    /// Most services whose providers are read.
    pub max_services: usize,
    /// A node silent this long leaves the view.
    pub forget_after: Duration,
}

impl Default for TopologyConfig {
    fn default() -> Self {
        TopologyConfig {
            crawl_every: Duration::from_secs(15),
            crawl_budget: Duration::from_secs(8),
            max_nodes: 2000,
            max_workers: 2000,
            max_services: 64,
            forget_after: Duration::from_secs(600),
        }
    }
}

/// A DHT node as the latest crawls saw it.
#[derive(Clone, Debug)]
pub struct NodeSeen {
    /// Its id.
    pub id: NodeId,
    /// Where it answers.
    pub addr: SocketAddr,
    /// What it runs, as text.
    pub software: String,
    /// `kadmesh`, `python` (no extensions) or `unknown`.
    pub peer: &'static str,
    /// Ping round trip in the latest crawl; `None` when it did not answer.
    pub rtt: Option<Duration>,
    /// When it last answered, Unix seconds; `None` when it never did.
    pub last_answer: Option<f64>,
    /// Ids it listed as contacts when last visited.
    pub links: Vec<NodeId>,
}

/// One refresh's result.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// When it was taken, Unix seconds.
    pub taken: f64,
    /// DHT nodes other than this one.
    pub nodes: Vec<NodeSeen>,
    /// Every worker the service index and provider sets name, with its record.
    pub workers: Vec<WorkerRecord>,
    /// Service names found.
    pub services: Vec<String>,
    /// Whether the crawl ran out of addresses before any limit.
    pub complete: bool,
    /// How long the refresh took.
    pub elapsed: Duration,
}

/// The cached view; shared by every request.
#[derive(Debug, Default)]
pub struct Network {
    config: TopologyConfig,
    refreshing: tokio::sync::Mutex<()>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    snapshot: Option<(Instant, Arc<Snapshot>)>,
    known: HashMap<NodeId, NodeSeen>,
}

impl Network {
    /// An empty view with these limits.
    pub fn new(config: TopologyConfig) -> Network {
        Network { config, ..Network::default() }
    }

    fn cached(&self, fresh_only: bool) -> Option<Arc<Snapshot>> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (at, snap) = state.snapshot.as_ref()?;
        (!fresh_only || at.elapsed() < self.config.crawl_every).then(|| snap.clone())
    }

    /// The current view: cached when fresh, or while another refresh runs.
    pub async fn current(&self, d: &Discovery) -> Result<Arc<Snapshot>, NodeError> {
        if let Some(s) = self.cached(true) {
            return Ok(s);
        }
        let _guard = match self.refreshing.try_lock() {
            Ok(g) => g,
            Err(_) => match self.cached(false) {
                Some(s) => return Ok(s),
                None => self.refreshing.lock().await,
            },
        };
        if let Some(s) = self.cached(true) {
            return Ok(s);
        }
        let snap = Arc::new(self.refresh(d).await?);
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.snapshot = Some((Instant::now(), snap.clone()));
        Ok(snap)
    }

    async fn refresh(&self, d: &Discovery) -> Result<Snapshot, NodeError> {
        let started = Instant::now();
        let mut seeds: BTreeSet<SocketAddr> = d.node().contacts().await?.into_iter().map(|c| c.addr).collect();
        seeds.extend(self.state.lock().unwrap_or_else(|p| p.into_inner()).known.values().map(|n| n.addr));
        let seeds: Vec<SocketAddr> = seeds.into_iter().collect();
        let config = CrawlConfig {
            concurrency: 16,
            max_duration: self.config.crawl_budget,
            max_nodes: self.config.max_nodes,
            spread: 1,
            query_timeout: Duration::from_secs(1),
            hello_timeout: Duration::from_millis(500),
            estimate_probes: 0,
            rng_seed: 0,
        };
        let listing = tokio::time::timeout(self.config.crawl_budget, self.workers(d));
        let (report, listed) = tokio::join!(crawl(d.node(), &seeds, &config, |_| {}), listing);
        let report = report?;
        // A listing cut short keeps the previous one rather than showing nobody.
        let (workers, services) = listed.unwrap_or_else(|_| {
            let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            state.snapshot.as_ref().map_or_else(Default::default, |(_, s)| (s.workers.clone(), s.services.clone()))
        });
        let now = d.now();
        let nodes = self.absorb(&report.nodes, d.node().id(), now);
        Ok(Snapshot { taken: now, nodes, workers, services, complete: report.complete, elapsed: started.elapsed() })
    }

    /// Folds a crawl into what is known: answering nodes are marked so with
    /// their software and links, silent ones keep their last answer, and
    /// nodes silent past `forget_after` leave. Returns every node, by id.
    fn absorb(&self, crawled: &[CrawledNode], me: NodeId, now: f64) -> Vec<NodeSeen> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        for n in state.known.values_mut() {
            n.rtt = None;
        }
        for c in crawled {
            let Some(id) = c.id.filter(|id| *id != me) else { continue };
            let entry = state.known.entry(id).or_insert_with(|| NodeSeen {
                id,
                addr: c.addr,
                software: Software::Unknown.to_string(),
                peer: "unknown",
                rtt: None,
                last_answer: None,
                links: Vec::new(),
            });
            entry.addr = c.addr;
            if c.responded() {
                entry.rtt = c.rtt;
                entry.last_answer = Some(now);
                entry.software = c.software.to_string();
                entry.peer = match c.software {
                    Software::Extended { .. } => "kadmesh",
                    Software::NoExtensions => "python",
                    Software::Unknown => "unknown",
                };
                entry.links = c.links.clone();
            }
        }
        let forget = self.config.forget_after.as_secs_f64();
        state.known.retain(|_, n| n.rtt.is_some() || n.last_answer.is_some_and(|t| now - t < forget));
        let mut nodes: Vec<NodeSeen> = state.known.values().cloned().collect();
        nodes.sort_by_key(|n| n.id);
        nodes
    }

    /// Every worker the network names: the service index, each service's
    /// providers (bounded), plus this node's own and recently seen workers.
    async fn workers(&self, d: &Discovery) -> (Vec<WorkerRecord>, Vec<String>) {
        let mut services: BTreeSet<String> = d.local_workers().into_iter().flat_map(|w| w.services).collect();
        if let Ok(index) = d.collect_providers(Key::for_key(SERVICE_INDEX_KEY)).await {
            services.extend(index.entries.into_values().filter(|e| e.is_live()).map(|e| e.id));
        }
        let services: Vec<String> =
            services.into_iter().filter(|s| valid_service(s)).take(self.config.max_services).collect();
        let mut ids = BTreeSet::new();
        for chunk in services.chunks(8) {
            let lists = futures_util::future::join_all(chunk.iter().map(|s| d.find_providers(s))).await;
            ids.extend(lists.into_iter().flatten().flat_map(|l| l.live.into_iter().chain(l.legacy)));
        }
        let local: Vec<WorkerRecord> = d.local_workers();
        ids.extend(local.iter().map(|w| w.worker_id.clone()));
        let ids: Vec<String> = ids.into_iter().take(self.config.max_workers).collect();
        let mut workers = d.fetch_records(ids, None, |r| r.status != crate::discovery::record::STATUS_OFFLINE).await;
        workers.sort_by(|a, b| a.worker_id.cmp(&b.worker_id));
        (workers, services)
    }
}
