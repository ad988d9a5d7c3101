//! The HTTP surface: the platform coordinator's routes, answered from the
//! DHT, so a worker that points its coordinator URL at a node keeps working
//! unchanged.
//!
//! | route | answer |
//! |---|---|
//! | `POST /api/worker/register` | register and publish a worker |
//! | `POST /api/worker/heartbeat` | update load/status (404 if unknown) |
//! | `DELETE /api/worker/unregister/{worker_id}` | remove at once (404 if unknown) |
//! | `GET /api/services/discover/{service_type}` | healthy workers by load; `gpu`, `min_memory`, `limit` |
//! | `GET /api/worker/find/{service_type}` | the same as discover (the platform's `dht_router` calls it) |
//! | `GET /api/services/list` | known services and healthy-worker counts |
//! | `POST /api/services/route/{service_type}` | forward the body to a healthy worker ([`route`]) |
//! | `GET /api/dht/bootstrap` | seeds for new nodes |
//! | `GET /api/dht/topology` | the graph, current and older shapes |
//! | `GET /health` | node status |
//! | `GET /metrics` | Prometheus text |
//!
//! Errors are JSON ([`error`]). [`serve`] takes a listener the caller bound
//! (tests bind `127.0.0.1:0`) and a shutdown future.

pub mod dht;
pub mod error;
pub mod forward;
pub mod metrics;
pub mod penalty;
pub mod route;
pub mod services;
pub mod workers;

use std::future::Future;

use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::routing::{delete, get, post};
use axum::Router;

use crate::discovery::Discovery;
use error::ApiError;

/// Largest request body accepted, bytes.
pub const MAX_BODY: usize = 64 * 1024;
/// The heartbeat period workers are told to keep.
pub const HEARTBEAT_INTERVAL_SECS: u64 = 30;

/// Every route, over `discovery`.
pub fn router(discovery: Discovery) -> Router {
    Router::new()
        .route("/api/worker/register", post(workers::register))
        .route("/api/worker/heartbeat", post(workers::heartbeat))
        .route("/api/worker/unregister/:worker_id", delete(workers::unregister))
        .route("/api/services/discover/:service_type", get(services::discover))
        .route("/api/worker/find/:service_type", get(services::discover))
        .route("/api/services/list", get(services::list))
        .route(route::PATH, route::handler(forward::RouteConfig::default()))
        .route("/api/dht/bootstrap", get(dht::bootstrap))
        .route("/api/dht/topology", get(dht::topology))
        .route("/health", get(dht::health))
        .route("/metrics", get(metrics::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(discovery)
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError {
        status: axum::http::StatusCode::METHOD_NOT_ALLOWED,
        code: "method_not_allowed",
        detail: format!("{method} is not allowed on {}", uri.path()),
    }
}

/// Serves the routes on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    discovery: Discovery,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(discovery)).with_graceful_shutdown(shutdown).await
}
