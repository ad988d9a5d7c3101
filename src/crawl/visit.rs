//! One visit of a crawl: ping a node, ask it for contacts near its own id
//! and near random ids in its far buckets, and ask `kadmesh_hello` alongside.
//! Every request is bounded; a silent node yields an empty visit, not an error.

use std::net::SocketAddr;
use std::time::Duration;

use rand::rngs::StdRng;
use tokio::time::Instant;

use super::{Software, HELLO};
use crate::contact::Contact;
use crate::id::NodeId;
use crate::node::{NodeError, NodeHandle};
use crate::wire::{self, Call, Value};

/// A hello answer may take this many ping round trips...
const HELLO_RTT_FACTOR: u32 = 4;
/// ...plus this, before the node counts as having no extensions.
const HELLO_MARGIN: Duration = Duration::from_millis(250);

#[derive(Clone, Copy)]
pub(super) struct VisitLimits {
    pub(super) spread: usize,
    pub(super) query_timeout: Duration,
    pub(super) hello_timeout: Duration,
}

pub(super) struct Visit {
    pub(super) addr: SocketAddr,
    pub(super) id: Option<NodeId>,
    pub(super) rtt: Option<Duration>,
    pub(super) contacts: Vec<Contact>,
    pub(super) software: Software,
    pub(super) queries: usize,
    pub(super) failed: usize,
}

pub(super) async fn visit(
    node: NodeHandle,
    addr: SocketAddr,
    limits: VisitLimits,
    rng: &mut StdRng,
) -> Result<Visit, NodeError> {
    let VisitLimits { spread, query_timeout, hello_timeout } = limits;
    let mut v =
        Visit { addr, id: None, rtt: None, contacts: Vec::new(), software: Software::Unknown, queries: 1, failed: 0 };
    let sent = Instant::now();
    let Some(reply) = bounded(query_timeout, node.ping(addr)).await? else {
        v.failed = 1;
        return Ok(v);
    };
    // Measured here rather than by the engine, whose clock counts whole milliseconds.
    let rtt = sent.elapsed();
    v.id = Some(reply.id);
    v.rtt = Some(rtt);
    let targets: Vec<NodeId> =
        std::iter::once(reply.id).chain((0..spread).map(|depth| reply.id.random_in_bucket(depth, rng))).collect();
    let probes = find_nodes(&node, addr, &targets, query_timeout);
    // The node just answered a ping; one of ours answers `kadmesh_hello` about
    // as fast, so there is no need to wait the full limit on a stock peer.
    let hello_wait = (rtt * HELLO_RTT_FACTOR + HELLO_MARGIN).min(hello_timeout);
    let (software, probed) = tokio::join!(hello(&node, addr, hello_wait), probes);
    let (mut contacts, failed) = probed?;
    // Several probes of one node often return the same contact: count it once.
    contacts.sort_by_key(|c| (c.addr, c.id));
    contacts.dedup();
    v.software = software;
    v.contacts = contacts;
    v.queries += targets.len();
    v.failed += failed;
    Ok(v)
}

/// Asks `addr` for its contacts near each target; returns them and the
/// number of requests that got no usable answer.
async fn find_nodes(
    node: &NodeHandle,
    addr: SocketAddr,
    targets: &[NodeId],
    wait: Duration,
) -> Result<(Vec<Contact>, usize), NodeError> {
    let mut contacts = Vec::new();
    let mut failed = 0;
    for &key in targets {
        let body = bounded(wait, node.call(addr, Call::FindNode { sender: node.id(), key })).await?;
        match body.as_ref().map(wire::parse_find_node_reply) {
            Some(Ok(found)) => contacts.extend(found),
            _ => failed += 1,
        }
    }
    Ok((contacts, failed))
}

/// `request`, or `Ok(None)` (no answer) if it takes longer than `wait`.
async fn bounded<T>(
    wait: Duration,
    request: impl std::future::Future<Output = Result<Option<T>, NodeError>>,
) -> Result<Option<T>, NodeError> {
    tokio::time::timeout(wait, request).await.unwrap_or(Ok(None))
}

async fn hello(node: &NodeHandle, addr: SocketAddr, wait: Duration) -> Software {
    let call = Call::Other { name: HELLO.into(), args: vec![Value::Bin(node.id().0.to_vec())] };
    match tokio::time::timeout(wait, node.call(addr, call)).await {
        Ok(Ok(Some(body))) => parse_hello(&body),
        _ => Software::NoExtensions,
    }
}

/// Reads a `kadmesh_hello` answer: `{"impl": str, "version": str}`; missing
/// fields read as `unknown`.
pub fn parse_hello(body: &Value) -> Software {
    let field = |k: &str| body.as_map_get(k).and_then(Value::as_str).unwrap_or("unknown").to_owned();
    Software::Extended { implementation: field("impl"), version: field("version") }
}
