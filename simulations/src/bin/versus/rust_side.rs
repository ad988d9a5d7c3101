//! The Rust side of `versus`: runs a [`Plan`] on kadmesh nodes hosted in
//! this process, measured exactly as `pybench.py` measures the Python side
//! (wall time around each call, VmRSS and utime + stime from `/proc/self`).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use kadmesh::engine::{Config, RPC_LABELS};
use kadmesh::id::NodeId;
use kadmesh::node::{Node, NodeError, NodeHandle};
use kadmesh::wire::Value;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::measure::ProcSample;
use crate::plan::{Plan, SideResult};

/// Runs `plan`; fails only when a node cannot be started.
pub async fn run(plan: Arc<Plan>, seed: u64) -> Result<SideResult, String> {
    let base = ProcSample::now();
    let timeout = Duration::from_secs_f64(plan.op_timeout_s);
    let nodes = Arc::new(start_nodes(&plan, seed).await?);
    let (bootstrap_s, join_s) = join(&nodes, timeout).await;
    eprintln!("versus: rust: {} nodes joined in {bootstrap_s:.2} s", nodes.len());

    let sets = bounded(plan.concurrency, plan.sets.clone(), |[n, k]| {
        let (node, key, value) = (nodes[n].clone(), plan.keys[k].clone(), plan.values[k].clone());
        async move {
            let (took, r) = timed(timeout, node.put(NodeId::for_key(&key), Value::Str(value))).await;
            (took, r.is_some_and(|p| p.stored > 0 || p.stored_locally))
        }
    })
    .await;
    eprintln!("versus: rust: {} sets done", sets.len());

    let rpcs0 = requests_sent(&nodes).await;
    let cpu0 = ProcSample::now();
    let wall0 = Instant::now();
    let gets = bounded(plan.concurrency, plan.gets.clone(), |[n, k]| {
        let (node, key, value) = (nodes[n].clone(), plan.keys[k].clone(), plan.values[k].clone());
        async move {
            let (took, r) = timed(timeout, node.get(NodeId::for_key(&key))).await;
            (took, r.is_some_and(|g| g.value == Some(Value::Str(value))))
        }
    })
    .await;
    let get_wall_s = wall0.elapsed().as_secs_f64();
    let end = ProcSample::now();
    let rpcs1 = requests_sent(&nodes).await;
    let by_kind: Vec<String> = RPC_LABELS
        .iter()
        .zip(rpcs1.iter().zip(rpcs0))
        .map(|(l, (b, a))| format!("{l} {}", b.saturating_sub(a)))
        .collect();
    eprintln!("versus: rust: requests sent during the gets: {}", by_kind.join(", "));
    let sent = |kinds: &[usize]| kinds.iter().map(|&i| rpcs1[i].saturating_sub(rpcs0[i])).sum::<u64>();
    let (get_rpcs, get_requests) = (sent(&LOOKUP_KINDS), sent(&[0, 1, 2, 3, 4, 5]));
    eprintln!("versus: rust: {} gets done in {get_wall_s:.2} s", gets.len());
    for n in nodes.iter() {
        n.shutdown().await;
    }
    Ok(SideResult {
        bootstrap_s,
        join_s,
        set_ok: sets.iter().filter(|(_, ok)| *ok).count(),
        set_s: sets.into_iter().map(|(t, _)| t).collect(),
        get_ok: gets.iter().filter(|(_, ok)| *ok).count(),
        get_s: gets.into_iter().map(|(t, _)| t).collect(),
        get_wall_s,
        get_cpu_s: end.cpu_since(&cpu0).unwrap_or_default().as_secs_f64(),
        get_rpcs,
        get_requests,
        rss_base_kib: base.rss_kib.unwrap_or_default(),
        rss_end_kib: end.rss_kib.unwrap_or_default(),
        label: format!("kadmesh {} (Rust)", env!("CARGO_PKG_VERSION")),
    })
}

/// Binds `plan.nodes` nodes on the plan's host, node i seeded `seed + i`.
async fn start_nodes(plan: &Plan, seed: u64) -> Result<Vec<NodeHandle>, String> {
    let host: IpAddr = plan.host.parse().map_err(|_| format!("plan host {:?} is not an IP address", plan.host))?;
    let mut nodes = Vec::with_capacity(plan.nodes);
    for i in 0..plan.nodes {
        let config = Config { rng_seed: seed.wrapping_add(i as u64), ..Config::default() };
        let node = Node::bind(SocketAddr::new(host, 0), config).await;
        nodes.push(node.map_err(|e| format!("starting node {i} on {host}: {e}"))?);
    }
    Ok(nodes)
}

/// Indices of `find_node` and `find_value` in [`RPC_LABELS`]: a lookup's own requests.
const LOOKUP_KINDS: [usize; 2] = [2, 3];

/// Requests all `nodes` have sent so far, by kind ([`RPC_LABELS`]).
async fn requests_sent(nodes: &[NodeHandle]) -> [u64; 6] {
    let mut sum = [0; 6];
    for n in nodes {
        let sent = n.with_engine(|e, _| e.stats().sent).await.unwrap_or_default();
        sum.iter_mut().zip(sent).for_each(|(s, n)| *s += n);
    }
    sum
}

/// Node i >= 1 joins through node 0, one after another.
async fn join(nodes: &[NodeHandle], timeout: Duration) -> (f64, Vec<f64>) {
    let seed = nodes[0].local_addr();
    let began = Instant::now();
    let mut joins = Vec::with_capacity(nodes.len());
    for n in &nodes[1..] {
        joins.push(timed(timeout, n.bootstrap(vec![seed])).await.0);
    }
    (began.elapsed().as_secs_f64(), joins)
}

/// Seconds taken and the result, `None` on timeout or a stopped node.
async fn timed<T>(timeout: Duration, op: impl Future<Output = Result<T, NodeError>>) -> (f64, Option<T>) {
    let began = Instant::now();
    let r = tokio::time::timeout(timeout, op).await.ok().and_then(Result::ok);
    (began.elapsed().as_secs_f64(), r)
}

/// Runs `job(item)` for every item with at most `limit` in flight; results
/// in completion order.
async fn bounded<I, F, Fut, T>(limit: usize, items: Vec<I>, job: F) -> Vec<T>
where
    F: Fn(I) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let mut running = JoinSet::new();
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        if running.len() >= limit.max(1) {
            if let Some(Ok(t)) = running.join_next().await {
                out.push(t);
            }
        }
        running.spawn(job(item));
    }
    while let Some(done) = running.join_next().await {
        if let Ok(t) = done {
            out.push(t);
        }
    }
    out
}
