//! Walking the network from seeds to list its nodes and estimate its size.
//!
//! [`crawl`] drives a running [`NodeHandle`]: every address it learns is
//! visited once: a `ping` (the node's id and round-trip time), `find_node`
//! for the node's own id and for random ids spread over its farther buckets
//! (so the replies cover its whole routing table, not only its neighbours),
//! and, at the same time, our `kadmesh_hello` extension call (stock Python
//! peers never answer it, which is how they are told apart). Contacts in the
//! replies join the queue. At most [`CrawlConfig::concurrency`] visits run at
//! once; the walk stops when the queue is empty (the crawl is *complete*),
//! when [`CrawlConfig::max_nodes`] addresses are known, or at its deadline.
//!
//! The size estimate does not trust the walk alone: a few iterative lookups
//! for random targets return the true k closest nodes, and the distances of
//! those nodes give the density of ids ([`density_estimate`]). A complete walk
//! also counts the nodes that answered; [`SizeEstimate::best`] picks.
//!
//! Contract: every wait is bounded by [`CrawlConfig::max_duration`] in total;
//! a peer that does not answer is reported, never an error.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use rand::{rngs::StdRng, SeedableRng};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::contact::Contact;
use crate::id::NodeId;
use crate::node::{NodeError, NodeHandle};
use crate::rpc::normalize;

mod estimate;
mod visit;

pub use estimate::{density_estimate, distance_fraction, SizeEstimate};
pub use visit::parse_hello;
use visit::{visit, Visit, VisitLimits};

/// The extension procedure our nodes answer with `{"impl", "version"}`;
/// stock Python peers never answer it.
pub use crate::engine::HELLO;

/// Limits and effort of a crawl.
#[derive(Clone, Debug)]
pub struct CrawlConfig {
    /// Nodes visited at once (each visit is a few sequential requests).
    pub concurrency: usize,
    /// Bound on the whole crawl, size estimate included.
    pub max_duration: Duration,
    /// Stop learning addresses after this many (the crawl is then partial).
    pub max_nodes: usize,
    /// `find_node` requests per node beyond the one for its own id, aimed at
    /// its farthest buckets.
    pub spread: usize,
    /// How long to wait for each ping or `find_node` answer (the node's own
    /// RPC timeout still applies when shorter): a short wait keeps dead
    /// contacts, which every routing table holds for a while, cheap.
    pub query_timeout: Duration,
    /// How long to wait for a `kadmesh_hello` answer.
    pub hello_timeout: Duration,
    /// Random-target lookups for the density estimate (0: none).
    pub estimate_probes: usize,
    /// Seed for the random targets.
    pub rng_seed: u64,
}

impl Default for CrawlConfig {
    fn default() -> Self {
        CrawlConfig {
            concurrency: 32,
            max_duration: Duration::from_secs(30),
            max_nodes: 10_000,
            spread: 3,
            query_timeout: Duration::from_secs(2),
            hello_timeout: Duration::from_secs(1),
            estimate_probes: 4,
            rng_seed: 0,
        }
    }
}

/// What a node told us about its software.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Software {
    /// It answered `kadmesh_hello`.
    Extended {
        /// The `impl` field, e.g. `kadmesh`.
        implementation: String,
        /// The `version` field.
        version: String,
    },
    /// It answered the base RPCs but not our extension: a stock Python
    /// `kademlia` peer or another implementation without extensions.
    NoExtensions,
    /// It never answered.
    Unknown,
}

impl fmt::Display for Software {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Software::Extended { implementation, version } => write!(f, "{implementation} {version}"),
            Software::NoExtensions => f.write_str("python-kademlia (no extensions)"),
            Software::Unknown => f.write_str("unknown"),
        }
    }
}

/// One address the crawl learned.
#[derive(Clone, Debug, PartialEq)]
pub struct CrawledNode {
    /// Where it was reached (or tried).
    pub addr: SocketAddr,
    /// Its id: from its own ping reply, else as other nodes reported it.
    pub id: Option<NodeId>,
    /// Ping round-trip time; `None` when it did not answer.
    pub rtt: Option<Duration>,
    /// What it runs.
    pub software: Software,
    /// How many visited nodes listed it as a contact.
    pub reported_by: usize,
    /// The ids it listed as its contacts when visited (its routing links).
    pub links: Vec<NodeId>,
}

impl CrawledNode {
    /// Whether it answered our ping.
    pub fn responded(&self) -> bool {
        self.rtt.is_some()
    }
}

/// A snapshot for progress displays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrawlProgress {
    /// Addresses learned so far.
    pub found: usize,
    /// Visits finished.
    pub visited: usize,
    /// Visits running.
    pub in_flight: usize,
    /// Time since the crawl started.
    pub elapsed: Duration,
}

/// The result of a crawl.
#[derive(Clone, Debug)]
pub struct CrawlReport {
    /// Every address learned, sorted by id (unknown ids last).
    pub nodes: Vec<CrawledNode>,
    /// Requests sent (pings and `find_node`s; hellos not counted).
    pub queries: usize,
    /// Requests that got no usable answer.
    pub failed_queries: usize,
    /// True when the walk ran out of addresses before any limit.
    pub complete: bool,
    /// Wall time of the whole crawl.
    pub elapsed: Duration,
    /// How big the network looks.
    pub estimate: SizeEstimate,
}

impl CrawlReport {
    /// Nodes that answered.
    pub fn responding(&self) -> impl Iterator<Item = &CrawledNode> {
        self.nodes.iter().filter(|n| n.responded())
    }
}

/// Crawls from `seeds` through `node` (which should have joined the network
/// for the size estimate to work). `progress` is called after each visit and
/// about four times a second. Fails only when `node` itself has stopped.
pub async fn crawl<F: FnMut(&CrawlProgress)>(
    node: &NodeHandle,
    seeds: &[SocketAddr],
    config: &CrawlConfig,
    mut progress: F,
) -> Result<CrawlReport, NodeError> {
    let start = Instant::now();
    let deadline = start + config.max_duration;
    // The estimate's lookups run alongside the walk, so both get the whole budget.
    let mut probes = start_probes(node, config.estimate_probes, config.rng_seed);
    let mut walk = Walk::new(node.clone(), config, start);
    for &s in seeds {
        walk.learn(s, None);
    }
    walk.run(deadline, &mut progress).await?;
    let density = finish_probes(&mut probes, deadline).await;
    let mut nodes: Vec<CrawledNode> = walk.nodes.into_values().collect();
    nodes.sort_by_key(|n| (n.id.is_none(), n.id, n.addr));
    let responding = nodes.iter().filter(|n| n.responded()).count();
    let estimate = SizeEstimate { responding, complete: walk.complete, density, probes: config.estimate_probes };
    Ok(CrawlReport {
        nodes,
        queries: walk.queries,
        failed_queries: walk.failed,
        complete: walk.complete,
        elapsed: start.elapsed(),
        estimate,
    })
}

struct Walk<'a> {
    node: NodeHandle,
    config: &'a CrawlConfig,
    start: Instant,
    rng: StdRng,
    nodes: HashMap<SocketAddr, CrawledNode>,
    queue: VecDeque<SocketAddr>,
    tasks: JoinSet<Result<Visit, NodeError>>,
    visited: usize,
    queries: usize,
    failed: usize,
    complete: bool,
    truncated: bool,
}

impl<'a> Walk<'a> {
    fn new(node: NodeHandle, config: &'a CrawlConfig, start: Instant) -> Self {
        Walk {
            node,
            config,
            start,
            rng: StdRng::seed_from_u64(config.rng_seed),
            nodes: HashMap::new(),
            queue: VecDeque::new(),
            tasks: JoinSet::new(),
            visited: 0,
            queries: 0,
            failed: 0,
            complete: false,
            truncated: false,
        }
    }

    /// Records that `addr` exists (reported as `id`), queueing it if new.
    fn learn(&mut self, addr: SocketAddr, id: Option<NodeId>) {
        let addr = normalize(addr);
        if id == Some(self.node.id()) || addr == self.node.local_addr() {
            return;
        }
        if let Some(known) = self.nodes.get_mut(&addr) {
            known.reported_by += usize::from(id.is_some());
            known.id = known.id.or(id);
            return;
        }
        if self.nodes.len() >= self.config.max_nodes {
            self.truncated = true;
            return;
        }
        let reported_by = usize::from(id.is_some());
        self.nodes.insert(
            addr,
            CrawledNode { addr, id, rtt: None, software: Software::Unknown, reported_by, links: Vec::new() },
        );
        self.queue.push_back(addr);
    }

    fn spawn_ready(&mut self) {
        while self.tasks.len() < self.config.concurrency.max(1) {
            let Some(addr) = self.queue.pop_front() else { return };
            let c = self.config;
            let limits =
                VisitLimits { spread: c.spread, query_timeout: c.query_timeout, hello_timeout: c.hello_timeout };
            let node = self.node.clone();
            let mut rng = StdRng::from_rng(&mut self.rng).unwrap_or_else(|_| StdRng::seed_from_u64(0));
            self.tasks.spawn(async move { visit(node, addr, limits, &mut rng).await });
        }
    }

    fn record(&mut self, v: Visit) {
        self.visited += 1;
        self.queries += v.queries;
        self.failed += v.failed;
        if let Some(n) = self.nodes.get_mut(&v.addr) {
            n.id = v.id.or(n.id);
            n.rtt = v.rtt;
            n.software = v.software;
            n.links = v.contacts.iter().map(|c| c.id).collect();
            n.links.sort();
            n.links.dedup();
        }
        for c in v.contacts {
            self.learn(c.addr, Some(c.id));
        }
    }

    fn snapshot(&self) -> CrawlProgress {
        CrawlProgress {
            found: self.nodes.len(),
            visited: self.visited,
            in_flight: self.tasks.len(),
            elapsed: self.start.elapsed(),
        }
    }

    async fn run<F: FnMut(&CrawlProgress)>(&mut self, deadline: Instant, progress: &mut F) -> Result<(), NodeError> {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            self.spawn_ready();
            if self.tasks.is_empty() {
                self.complete = !self.truncated;
                return Ok(());
            }
            tokio::select! {
                joined = self.tasks.join_next() => {
                    match joined {
                        Some(Ok(visit)) => self.record(visit?),
                        Some(Err(e)) => tracing::debug!(error = %e, "crawl visit task failed"),
                        None => {}
                    }
                    progress(&self.snapshot());
                }
                _ = tick.tick() => progress(&self.snapshot()),
                _ = tokio::time::sleep_until(deadline) => {
                    self.tasks.abort_all();
                    return Ok(());
                }
            }
        }
    }
}

type Probes = JoinSet<Result<(NodeId, Vec<Contact>), NodeError>>;

/// Starts `count` lookups for random targets, for the density estimate.
fn start_probes(node: &NodeHandle, count: usize, seed: u64) -> Probes {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let mut tasks = JoinSet::new();
    for _ in 0..count {
        let target = NodeId::random(&mut rng);
        let node = node.clone();
        tasks.spawn(async move { node.find_node(target).await.map(|c| (target, c)) });
    }
    tasks
}

/// Collects the probes that finish by `deadline` and estimates the size from them.
async fn finish_probes(tasks: &mut Probes, deadline: Instant) -> Option<f64> {
    let mut samples = Vec::new();
    while let Ok(Some(joined)) = tokio::time::timeout_at(deadline, tasks.join_next()).await {
        if let Ok(Ok((target, closest))) = joined {
            samples.push((target, closest.iter().map(|c| c.id).collect()));
        }
    }
    tasks.abort_all();
    density_estimate(&samples)
}

#[cfg(test)]
mod tests;
