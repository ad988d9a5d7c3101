//! The HTTP surface in its own task, and the signals that stop the daemon.

use kadmesh::discovery::Discovery;
use kadmesh::http::HttpOptions;
use tokio::net::TcpListener;

/// Waits for Ctrl-C or (on Unix) SIGTERM; returns which.
pub async fn stop_signal() -> Result<&'static str, String> {
    let ctrl_c = async { tokio::signal::ctrl_c().await.map(|_| "Ctrl-C") };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).map_err(|e| format!("cannot wait for SIGTERM: {e}"))?;
        tokio::select! {
            r = ctrl_c => r.map_err(|e| format!("cannot wait for Ctrl-C: {e}")),
            _ = term.recv() => Ok("SIGTERM"),
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await.map_err(|e| format!("cannot wait for Ctrl-C: {e}"))
}

/// The HTTP API running in its own task until [`HttpServer::stop`].
pub struct HttpServer {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl HttpServer {
    /// Serves `discovery` on `listener`.
    pub fn start(listener: TcpListener, discovery: Discovery, options: HttpOptions) -> HttpServer {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(kadmesh::http::serve_with(listener, discovery, options, async {
            let _ = stopped.await;
        }));
        HttpServer { stop, task }
    }

    /// Stops accepting, lets requests in progress finish, and waits.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(Err(e)) => tracing::warn!(error = %e, "HTTP server failed"),
            Err(e) => tracing::warn!(error = %e, "HTTP server task failed"),
            Ok(Ok(())) => {}
        }
    }
}
