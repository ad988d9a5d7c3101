//! A set of real nodes on one loopback address in this process, some of which may be
//! dead: the load generator picks random live ones, the chaos schedule kills
//! and restarts them.
//!
//! Slots never move: killing a node empties its slot, a restart fills the
//! same slot with a fresh node (new id, new port) once it has bootstrapped,
//! so lookups never start from a node that is still joining. The lock is
//! never held across an await.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use kadmesh::engine::Config;
use kadmesh::node::{Node, NodeError, NodeHandle};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

/// Nodes by slot, `None` where a node is dead.
pub struct Cluster {
    slots: Mutex<Vec<Option<NodeHandle>>>,
    rng: Mutex<SmallRng>,
    seed: u64,
    ip: Ipv4Addr,
}

/// How the initial join went.
pub struct JoinReport {
    /// Wall time from the first bind until every node had bootstrapped.
    pub total: Duration,
    /// Each node's bootstrap call.
    pub joins: Vec<Duration>,
    /// Nodes whose bootstrap reached no seed.
    pub lonely: usize,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking holder cannot leave the slots half-updated (every update
    // is one assignment), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Cluster {
    /// Binds `n` nodes on `ip` (port 0), then bootstraps each one (in order) from a random
    /// node that has already joined, as a fleet growing from one seed would.
    pub async fn start(n: usize, seed: u64, ip: Ipv4Addr) -> Result<(Cluster, JoinReport), NodeError> {
        let began = Instant::now();
        let rng = Mutex::new(SmallRng::seed_from_u64(seed));
        let cluster = Cluster { slots: Mutex::new(Vec::new()), rng, seed, ip };
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            nodes.push(Node::bind(cluster.addr(), cluster.config(i as u64)).await?);
        }
        let mut joins = Vec::with_capacity(n);
        let mut lonely = 0;
        for i in 1..n {
            let via = nodes[cluster.rng().gen_range(0..i)].local_addr();
            let t = Instant::now();
            let b = nodes[i].bootstrap(vec![via]).await?;
            joins.push(t.elapsed());
            lonely += usize::from(b.seeds_reached == 0);
        }
        *lock(&cluster.slots) = nodes.into_iter().map(Some).collect();
        Ok((cluster, JoinReport { total: began.elapsed(), joins, lonely }))
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from((self.ip, 0))
    }

    fn config(&self, salt: u64) -> Config {
        Config { rng_seed: self.seed ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15), ..Config::default() }
    }

    fn rng(&self) -> std::sync::MutexGuard<'_, SmallRng> {
        lock(&self.rng)
    }

    /// Slots in total (live or dead).
    pub fn size(&self) -> usize {
        lock(&self.slots).len()
    }

    /// Live nodes.
    pub fn live(&self) -> usize {
        lock(&self.slots).iter().filter(|s| s.is_some()).count()
    }

    /// A uniformly random live node.
    pub fn random_live(&self) -> Option<NodeHandle> {
        let slots = lock(&self.slots);
        let live: Vec<&NodeHandle> = slots.iter().flatten().collect();
        live.choose(&mut *self.rng()).map(|h| (*h).clone())
    }

    /// A uniformly random index below `n` from the cluster's generator.
    pub fn pick(&self, n: usize) -> usize {
        self.rng().gen_range(0..n.max(1))
    }

    /// Stops a random live node abruptly (no goodbye to its peers) and
    /// returns its slot; `None` when no node is left.
    pub async fn kill_random(&self) -> Option<usize> {
        let (slot, handle) = {
            let mut slots = lock(&self.slots);
            let live: Vec<usize> = (0..slots.len()).filter(|&i| slots[i].is_some()).collect();
            let slot = *live.choose(&mut *self.rng())?;
            (slot, slots[slot].take()?)
        };
        handle.shutdown().await;
        Some(slot)
    }

    /// Starts a fresh node for the empty `slot` and bootstraps it from a
    /// random live node; the slot is filled only if some seed answered.
    pub async fn restart(&self, slot: usize, generation: u64) -> Result<bool, NodeError> {
        let via = self.random_live().map(|h| h.local_addr());
        let node = Node::bind(self.addr(), self.config(generation << 32 | slot as u64)).await?;
        let reached = match via {
            Some(addr) => node.bootstrap(vec![addr]).await?.seeds_reached > 0,
            None => false,
        };
        if reached {
            if let Some(s) = lock(&self.slots).get_mut(slot) {
                *s = Some(node);
                return Ok(true);
            }
        }
        node.shutdown().await;
        Ok(false)
    }

    /// Stops every live node.
    pub async fn shutdown(&self) {
        let all: Vec<NodeHandle> = lock(&self.slots).iter_mut().filter_map(Option::take).collect();
        for h in all {
            h.shutdown().await;
        }
    }
}
