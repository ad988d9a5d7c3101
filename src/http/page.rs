//! The live network page at `/`: plain HTML, CSS and JavaScript embedded in
//! the binary (no CDN, no build step; works offline). It reads only this
//! surface's own JSON: `/api/dht/topology/stream` (server-sent events) with
//! `/api/dht/topology` polled every 5 s as the fallback, and
//! `/api/services/discover/{service}` for a searched service's
//! `recommended` worker.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::AppState;

const INDEX: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/app.js");
const RING: &str = include_str!("page/ring.js");
const STYLE: &str = include_str!("page/style.css");

/// `/`, `/page/app.js`, `/page/ring.js`, `/page/style.css`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { asset("text/html; charset=utf-8", INDEX) }))
        .route("/page/app.js", get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }))
        .route("/page/ring.js", get(|| async { asset("text/javascript; charset=utf-8", RING) }))
        .route("/page/style.css", get(|| async { asset("text/css; charset=utf-8", STYLE) }))
}

fn asset(kind: &'static str, body: &'static str) -> impl IntoResponse {
    ([(CONTENT_TYPE, kind), (CACHE_CONTROL, "no-cache")], body)
}
