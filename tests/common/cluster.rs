//! A loopback discovery network with an HTTP server on every node.

use std::time::Duration;

use kadmesh::discovery::testnet::Testnet;
use kadmesh::discovery::{Discovery, DiscoveryConfig};
use kadmesh::engine::Config;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A running network with an HTTP server on every node.
pub struct Cluster {
    pub net: Testnet,
    pub urls: Vec<String>,
    pub _stops: Vec<oneshot::Sender<()>>,
    pub http: reqwest::Client,
}

/// Serves `d`'s routes on a fresh loopback port: its URL and its stop.
pub async fn serve(d: Discovery) -> (String, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(kadmesh::http::serve(listener, d, async {
        let _ = rx.await;
    }));
    (url, tx)
}

/// `n` nodes with discovery settings `cfg`, each serving HTTP.
pub async fn cluster(n: usize, cfg: DiscoveryConfig) -> Cluster {
    let net = Testnet::start(n, 0, Config::default(), cfg).await.unwrap();
    let (mut urls, mut stops) = (Vec::new(), Vec::new());
    for d in &net.nodes {
        let (url, stop) = serve(d.clone()).await;
        urls.push(url);
        stops.push(stop);
    }
    let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    Cluster { net, urls, _stops: stops, http }
}
