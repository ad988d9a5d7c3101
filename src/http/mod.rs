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
//! (tests bind `127.0.0.1:0`) and a shutdown future; [`serve_with`] also
//! takes the [`HttpLimits`] (timeouts, connection caps, body and work
//! bounds, see [`limits`]) that [`serve`] sets to their defaults.

pub mod dht;
pub mod error;
pub mod forward;
pub mod limits;
pub mod metrics;
pub mod penalty;
pub mod route;
mod server;
pub mod services;
pub mod workers;

use std::future::Future;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::routing::{delete, get, post};
use axum::{Extension, Router};

use crate::discovery::Discovery;
use error::ApiError;
pub use limits::{HttpGuard, HttpLimits};
/// The heartbeat period workers are told to keep.
pub const HEARTBEAT_INTERVAL_SECS: u64 = 30;

/// Every route, over `discovery`, with the default limits.
pub fn router(discovery: Discovery) -> Router {
    router_with(discovery, Arc::new(HttpGuard::new(HttpLimits::default())))
}

/// Every route, over `discovery`, under `guard`'s request limits.
pub fn router_with(discovery: Discovery, guard: Arc<HttpGuard>) -> Router {
    let body_limit = guard.limits.max_body;
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
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&guard), limits::request_timeout))
        .layer(Extension(guard))
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

/// Serves the routes on `listener` with the default limits until
/// `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    discovery: Discovery,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, discovery, HttpLimits::default(), shutdown).await
}

/// Serves the routes on `listener` under `limits` until `shutdown` completes.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    discovery: Discovery,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let guard = Arc::new(HttpGuard::new(limits));
    server::run(listener, router_with(discovery, Arc::clone(&guard)), guard, shutdown).await
}
