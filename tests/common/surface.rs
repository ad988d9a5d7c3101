//! A running test network with the HTTP surface served on every node.

use kadmesh::discovery::testnet::Testnet;
use kadmesh::discovery::{Discovery, DiscoveryConfig};
use kadmesh::engine::Config;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Serves the HTTP surface of `d` on a fresh loopback port; returns its base
/// URL and the sender that stops it (dropping the sender stops it too).
pub async fn serve(d: Discovery) -> (String, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(kadmesh::http::serve(listener, d, async {
        let _ = rx.await;
    }));
    (url, tx)
}

/// `n` nodes with `cfg`, each serving HTTP: the network, the base URLs and
/// the stop senders, in node order.
pub async fn start(n: usize, cfg: DiscoveryConfig) -> (Testnet, Vec<String>, Vec<oneshot::Sender<()>>) {
    let net = Testnet::start(n, 0, Config::default(), cfg).await.unwrap();
    let (mut urls, mut stops) = (Vec::new(), Vec::new());
    for d in &net.nodes {
        let (url, stop) = serve(d.clone()).await;
        urls.push(url);
        stops.push(stop);
    }
    (net, urls, stops)
}
