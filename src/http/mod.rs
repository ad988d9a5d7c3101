//! The HTTP surface: the platform coordinator's routes, answered from the
//! DHT, so a worker that points its coordinator URL at a node keeps working
//! unchanged; and the live network page.
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
//! | `POST /api/dht/rpc` | one rpcudp request datagram in, its reply out ([`rpc`]) |
//! | `POST /api/dht/relay` | the same, relayed over UDP to `X-Kadmesh-Relay-To` ([`relay`]) |
//! | `GET /api/dht/topology` | the network graph, current and older shapes |
//! | `GET /api/dht/topology/stream` | the same, pushed every 5 s (server-sent events) |
//! | `GET /health` | readiness: 503 with a reason while alone |
//! | `GET /health/live` | liveness |
//! | `GET /metrics` | Prometheus text |
//! | `GET /` | the network page ([`page`]) |
//!
//! Errors are JSON ([`error`]). [`serve`] takes a listener the caller bound
//! (tests bind `127.0.0.1:0`) and a shutdown future; [`serve_with`] also
//! takes [`HttpOptions`] (CORS, topology limits, and the [`HttpLimits`]:
//! timeouts, connection caps, body and work bounds, see [`limits`]). Every
//! request is logged at debug level (tower-http's trace layer:
//! `RUST_LOG=tower_http=debug`).

pub mod dht;
pub mod drain;
pub mod error;
pub mod forward;
pub mod health;
pub mod limits;
pub mod metrics;
pub mod page;
pub mod penalty;
pub mod relay;
pub mod route;
pub mod rpc;
mod server;
pub mod services;
pub mod topology;
pub mod workers;

use std::future::Future;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRef};
use axum::http::{HeaderValue, Method, Uri};
use axum::routing::{delete, get, post};
use axum::{Extension, Router};
use tokio::sync::watch;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;

use crate::discovery::Discovery;
use error::ApiError;
pub use limits::{HttpGuard, HttpLimits};
pub use topology::network::TopologyConfig;

/// Largest request body accepted by default, bytes ([`HttpLimits::max_body`]).
pub const MAX_BODY: usize = 64 * 1024;
/// The heartbeat period workers are told to keep.
pub const HEARTBEAT_INTERVAL_SECS: u64 = 30;

/// Settings of the HTTP surface beyond the discovery layer's.
#[derive(Clone, Debug, Default)]
pub struct HttpOptions {
    /// Origins a browser may read the JSON from (`*`: any); empty: no CORS headers.
    pub cors_origins: Vec<String>,
    /// Limits of the topology's crawl.
    pub topology: TopologyConfig,
    /// Timeouts, connection caps, body and work bounds.
    pub limits: HttpLimits,
}

impl HttpOptions {
    /// The CORS layer, or a message naming an origin that is not a valid header value.
    pub fn cors(&self) -> Result<Option<CorsLayer>, String> {
        if self.cors_origins.is_empty() {
            return Ok(None);
        }
        let origin = if self.cors_origins.iter().any(|o| o == "*") {
            AllowOrigin::any()
        } else {
            let list: Result<Vec<HeaderValue>, String> = self
                .cors_origins
                .iter()
                .map(|o| HeaderValue::from_str(o.trim_end_matches('/')).map_err(|_| format!("bad CORS origin {o:?}")))
                .collect();
            AllowOrigin::list(list?)
        };
        let methods = [Method::GET, Method::POST, Method::DELETE, Method::OPTIONS];
        Ok(Some(
            CorsLayer::new()
                .allow_origin(origin)
                .allow_methods(methods)
                .allow_headers([axum::http::header::CONTENT_TYPE, axum::http::header::CACHE_CONTROL]),
        ))
    }
}

/// What every handler can reach; handlers that need only the discovery
/// service take `State<Discovery>`.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The discovery service (and its node).
    pub discovery: Discovery,
    /// The cached network view.
    pub network: Arc<topology::network::Network>,
    /// The lookups/s sample.
    pub rate: Arc<topology::LookupRate>,
    /// Turns true when the server stops, ending live streams.
    pub stop: watch::Receiver<bool>,
}

impl FromRef<AppState> for Discovery {
    fn from_ref(app: &AppState) -> Discovery {
        app.discovery.clone()
    }
}

/// Every route, over `discovery`, with default options and no stop signal.
pub fn router(discovery: Discovery) -> Router {
    let (_, stop) = watch::channel(false);
    let guard = Arc::new(HttpGuard::new(HttpLimits::default()));
    routes(discovery, &HttpOptions::default(), stop, None, guard)
}

fn routes(
    discovery: Discovery,
    options: &HttpOptions,
    stop: watch::Receiver<bool>,
    cors: Option<CorsLayer>,
    guard: Arc<HttpGuard>,
) -> Router {
    // The route handler takes `State<Discovery>` as its router's state.
    let forwarding = Router::new()
        .route(route::PATH, route::handler(forward::RouteConfig::default()))
        .with_state::<AppState>(discovery.clone());
    let state = AppState {
        discovery,
        network: Arc::new(topology::network::Network::new(options.topology.clone())),
        rate: Arc::default(),
        stop,
    };
    let body_limit = guard.limits.max_body;
    let router = Router::new()
        .route("/api/worker/register", post(workers::register))
        .route("/api/worker/heartbeat", post(workers::heartbeat))
        .route("/api/worker/unregister/:worker_id", delete(workers::unregister))
        .route("/api/services/discover/:service_type", get(services::discover))
        .route("/api/worker/find/:service_type", get(services::discover))
        .route("/api/services/list", get(services::list))
        .merge(forwarding)
        .route("/api/dht/bootstrap", get(dht::bootstrap))
        .route(rpc::PATH, post(rpc::rpc))
        .route(relay::PATH, post(relay::relay))
        .route("/api/dht/topology", get(topology::topology))
        .route("/api/dht/topology/stream", get(topology::stream))
        .route("/health", get(health::ready))
        .route("/health/live", get(health::live))
        .route("/metrics", get(metrics::metrics))
        .merge(page::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(drain::drain_refused))
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&guard), limits::request_timeout))
        .layer(Extension(guard))
        .with_state(state);
    let router = match cors {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router.layer(TraceLayer::new_for_http())
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
    serve_with(listener, discovery, HttpOptions::default(), shutdown).await
}

/// Serves the routes with `options` (their limits included) until
/// `shutdown` completes; live streams end then too, so the server can finish.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    discovery: Discovery,
    options: HttpOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let cors = options.cors().map_err(|m| std::io::Error::new(std::io::ErrorKind::InvalidInput, m))?;
    let (tx, rx) = watch::channel(false);
    let guard = Arc::new(HttpGuard::new(options.limits.clone()));
    let router = routes(discovery, &options, rx, cors, Arc::clone(&guard));
    let stopping = async move {
        shutdown.await;
        tx.send_replace(true);
    };
    server::run(listener, router, guard, stopping).await
}
