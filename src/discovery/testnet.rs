//! A small discovery network in one process on loopback: for tests, and for
//! `dhtd demo`.
//!
//! [`Testnet::start`] binds `n` nodes on 127.0.0.1 (the first on the port
//! asked for when it is free, every other on an OS-chosen port), bootstraps
//! each from the first, and starts a [`Discovery`] with its refresher on
//! every node. [`Testnet::shutdown`] stops them all.

use std::net::{Ipv4Addr, SocketAddr};

use tokio::task::JoinHandle;

use super::{Discovery, DiscoveryConfig, DiscoveryError};
use crate::engine::Config;
use crate::id::NodeId;
use crate::node::{Node, NodeError};

/// Running nodes, each with its discovery service.
#[derive(Debug)]
pub struct Testnet {
    /// One discovery service per node, in start order.
    pub nodes: Vec<Discovery>,
    refreshers: Vec<JoinHandle<()>>,
}

async fn bind(port: u16) -> Result<tokio::net::UdpSocket, NodeError> {
    let any = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    match tokio::net::UdpSocket::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await {
        Ok(s) => Ok(s),
        Err(_) if port != 0 => Ok(tokio::net::UdpSocket::bind(any).await?),
        Err(e) => Err(e.into()),
    }
}

impl Testnet {
    /// Starts `n` nodes; the first tries UDP port `first_port` (0: any).
    /// Node `i` gets `node.rng_seed + i` as its seed and a random id.
    pub async fn start(
        n: usize,
        first_port: u16,
        node: Config,
        discovery: DiscoveryConfig,
    ) -> Result<Testnet, DiscoveryError> {
        let mut nodes = Vec::with_capacity(n);
        let mut refreshers = Vec::with_capacity(n);
        let mut seed = None;
        for i in 0..n {
            let socket = bind(if i == 0 { first_port } else { 0 }).await?;
            let config = Config { rng_seed: node.rng_seed.wrapping_add(i as u64), ..node.clone() };
            let handle = Node::spawn(socket, NodeId::random(&mut rand::thread_rng()), config)?;
            if let Some(seed) = seed {
                let b = handle.bootstrap(vec![seed]).await?;
                if b.seeds_reached == 0 {
                    return Err(DiscoveryError::Config(format!("node {i} could not reach the first node at {seed}")));
                }
            } else {
                seed = Some(handle.local_addr());
            }
            let d = Discovery::new(handle, discovery.clone())?;
            refreshers.push(tokio::spawn(d.clone().run_refresher()));
            nodes.push(d);
        }
        Ok(Testnet { nodes, refreshers })
    }

    /// The UDP address of node `i`.
    pub fn addr(&self, i: usize) -> Option<SocketAddr> {
        self.nodes.get(i).map(|d| d.node().local_addr())
    }

    /// Stops every refresher and node.
    pub async fn shutdown(self) {
        for d in &self.nodes {
            d.shutdown();
        }
        for r in self.refreshers {
            let _ = r.await;
        }
        for d in &self.nodes {
            d.node().shutdown().await;
        }
    }
}
