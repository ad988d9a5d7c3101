//! A loopback discovery network with an HTTP server on every node and a
//! client to call them with.

use std::time::Duration;

use kadmesh::discovery::testnet::Testnet;
use kadmesh::discovery::DiscoveryConfig;
use tokio::sync::oneshot;

/// A running network with an HTTP server on every node.
pub struct Cluster {
    pub net: Testnet,
    pub urls: Vec<String>,
    pub _stops: Vec<oneshot::Sender<()>>,
    pub http: reqwest::Client,
}

/// `n` nodes with discovery settings `cfg`, each serving HTTP.
pub async fn cluster(n: usize, cfg: DiscoveryConfig) -> Cluster {
    let (net, urls, stops) = super::surface::start(n, cfg).await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    Cluster { net, urls, _stops: stops, http }
}
