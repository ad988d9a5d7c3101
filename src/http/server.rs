//! The accept loop: each connection is admitted by the [`HttpGuard`] (or
//! refused with a short 503) and served by hyper's HTTP/1 connection with
//! the header-read timer and head-size bound of [`super::HttpLimits`].
//!
//! axum's own `serve` has no timeouts and no connection caps, which is why
//! this loop exists. On shutdown every connection finishes its request in
//! flight (bounded by the request timeout) and closes.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::{Extension, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::limits::{Admission, HttpGuard, REFUSED_RESPONSE};

/// Pause after a failed `accept` (out of file descriptors, say) so the loop
/// does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `app` on `listener` under `guard` until `shutdown` completes.
pub async fn run(
    listener: tokio::net::TcpListener,
    app: Router,
    guard: Arc<HttpGuard>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!("http accept failed: {e}");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                };
                match guard.admit(peer.ip()) {
                    Ok(admission) => {
                        // Handlers that key on the client (the DHT's RPC route) read it as `ConnectInfo`.
                        let app = app.clone().layer(Extension(ConnectInfo(peer)));
                        conns.spawn(connection(stream, app, admission, Arc::clone(&guard), stop_rx.clone()));
                    }
                    Err(why) => {
                        tracing::debug!("http connection from {peer} refused: {why:?}");
                        // Best effort: the client may not read it before the close.
                        let _ = stream.try_write(REFUSED_RESPONSE);
                    }
                }
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    stop_tx.send_replace(true);
    while conns.join_next().await.is_some() {}
    Ok(())
}

/// Serves one admitted connection until it closes, times out or the server
/// stops; the admission is released when this returns.
async fn connection(
    stream: TcpStream,
    app: Router,
    _admission: Admission,
    guard: Arc<HttpGuard>,
    mut stop: watch::Receiver<bool>,
) {
    let limits = &guard.limits;
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192));
    let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(limits.request_timeout, conn).await;
        }
    }
}
