//! Stand-in workers for routing tests: local HTTP servers answering
//! `POST /service/{svc}`, each on a runtime of its own thread, so killing
//! one drops its listener and every open connection at once, as when a
//! worker process dies (aborting only an `axum::serve` task would leave its
//! keep-alive connections answering).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// How a stand-in worker answers `POST /service/{svc}`.
#[derive(Clone, Copy)]
pub enum Answer {
    /// 200 with what it received.
    Echo,
    /// This status, with a small JSON body.
    Status(u16),
}

#[derive(Clone)]
struct WorkerState {
    name: String,
    answer: Answer,
    hits: Arc<AtomicUsize>,
}

/// A stand-in worker on its own thread and runtime.
pub struct Worker {
    /// Base URL, `http://127.0.0.1:{port}`.
    pub url: String,
    hits: Arc<AtomicUsize>,
    kill: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

async fn work(
    State(w): State<WorkerState>,
    Path(svc): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Json<Value>) {
    w.hits.fetch_add(1, Ordering::SeqCst);
    let header = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).map(str::to_owned);
    match w.answer {
        Answer::Echo => (
            StatusCode::OK,
            Json(json!({"worker": w.name, "service": svc, "body": String::from_utf8_lossy(&body),
                "len": body.len(), "content_type": header("content-type"), "request_id": header("x-request-id"),
                "cookie": header("cookie"), "authorization": header("authorization")})),
        ),
        Answer::Status(code) => {
            (StatusCode::from_u16(code).unwrap(), Json(json!({"worker": w.name, "detail": "refused by the worker"})))
        }
    }
}

impl Worker {
    /// Starts `name`, answering as `answer`.
    pub fn start(name: &str, answer: Answer) -> Worker {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        let state = WorkerState { name: name.to_owned(), answer, hits: hits.clone() };
        let app = Router::new().route("/service/:svc", post(work)).with_state(state);
        let (kill, killed) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = TcpListener::from_std(listener).unwrap();
                tokio::spawn(async move { axum::serve(listener, app).await });
                let _ = killed.await;
            });
            // Dropping `rt` here cancels the server and every connection task.
        });
        Worker { url, hits, kill: Some(kill), thread: Some(thread) }
    }

    /// Requests received.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Stops it as a dying process would: listener and connections closed.
    pub fn kill(&mut self) {
        if let Some(k) = self.kill.take() {
            let _ = k.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}
