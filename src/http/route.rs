//! `POST /api/services/route/{service_type}`: the platform routers' job
//! ("pick a worker, `POST {tunnel_url}/service/{service_type}`") done by a
//! node for any caller.
//!
//! The workers come from [`Discovery::discover`] (healthy, least loaded
//! first, the cache and coordinator fallback included); the query string is
//! read as the discover filter (`gpu`, `min_memory`, `limit`) and is not
//! forwarded; `Cache-Control: no-cache` skips the discover cache, as on
//! discover. [`forward`](super::forward) does the sending. The answer is
//! the worker's status, allowlisted headers and body, plus:
//!
//! | header | value |
//! |---|---|
//! | `X-Kadmesh-Worker` | id of the worker that answered |
//! | `X-Kadmesh-Worker-Url` | the URL it answered at |
//! | `X-Kadmesh-Tried` | workers contacted, this one included |
//!
//! Errors are JSON ([`ApiError`]): 413 `payload_too_large` (body over
//! [`RouteConfig::max_request_body`]), 400 `invalid_input` (bad service
//! name or filter), 503 `no_healthy_workers` (none known, or none of those
//! contacted answered; `X-Kadmesh-Tried` says how many were), 502
//! `bad_gateway` (an answer over [`RouteConfig::max_response_body`]).

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, MethodRouter};
use axum::Extension;
use serde_json::Value as Json;

use super::error::ApiError;
use super::forward::{request_headers, ForwardError, Forwarder, RouteConfig, Target};
use super::services::{no_cache, pairs};
use crate::discovery::input::{check_service, check_worker_id, DiscoverFilter};
use crate::discovery::{DiscoverAnswer, Discovery, Source};

/// Where the route is mounted.
pub const PATH: &str = "/api/services/route/:service_type";
/// Names the worker that answered.
pub const WORKER_HEADER: &str = "x-kadmesh-worker";
/// The URL the answer came from.
pub const WORKER_URL_HEADER: &str = "x-kadmesh-worker-url";
/// Workers contacted.
pub const TRIED_HEADER: &str = "x-kadmesh-tried";

/// The route's handler with its own connection pool and body limit.
pub fn handler(config: RouteConfig) -> MethodRouter<Discovery> {
    let limit = config.max_request_body;
    match Forwarder::new(config) {
        Ok(f) => post(route).layer::<_, Infallible>(Extension(f)).layer(DefaultBodyLimit::max(limit)),
        Err(e) => {
            let detail = e.to_string();
            post(
                move || async move { ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, code: "internal", detail } },
            )
        }
    }
}

async fn route(
    State(d): State<Discovery>,
    Extension(f): Extension<Forwarder>,
    Path(service): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => return body_error(&e, f.config().max_request_body).into_response(),
    };
    let targets = match targets_for(&d, &service, query.as_deref(), !no_cache(&headers)).await {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    match f.forward(&service, &targets, &request_headers(&headers), body).await {
        Ok(a) => {
            let mut r = (a.status, a.headers, Body::from(a.body)).into_response();
            set(&mut r, WORKER_HEADER, &a.worker_id);
            set(&mut r, WORKER_URL_HEADER, a.url.as_str());
            set(&mut r, TRIED_HEADER, &a.tried.to_string());
            r
        }
        Err(e) => forward_error(&service, e),
    }
}

/// The ranked workers to try.
async fn targets_for(d: &Discovery, service: &str, query: Option<&str>, cache: bool) -> Result<Vec<Target>, ApiError> {
    check_service(service).map_err(|e| ApiError::invalid(e.0))?;
    let q = pairs(query);
    let filter = DiscoverFilter::from_query(q.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(|e| ApiError::invalid(e.0))?;
    Ok(targets(&d.discover_with(service, &filter, cache).await?))
}

/// The workers of a discover answer, in its order (least loaded first).
/// Coordinator entries without a usable id or URL are left out.
pub fn targets(answer: &DiscoverAnswer) -> Vec<Target> {
    match &answer.source {
        Source::Dht { workers, .. } => workers
            .iter()
            .map(|w| Target { worker_id: w.worker_id.clone(), tunnel_url: w.tunnel_url.clone() })
            .collect(),
        Source::Coordinator { body, .. } => body
            .get("workers")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .filter_map(|w| {
                let id = w.get("worker_id")?.as_str().filter(|id| check_worker_id(id).is_ok())?;
                let url = w.get("tunnel_url")?.as_str()?;
                Some(Target { worker_id: id.to_owned(), tunnel_url: url.to_owned() })
            })
            .collect(),
    }
}

fn body_error(e: &BytesRejection, limit: usize) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        let detail = format!("the request body is larger than {limit} bytes");
        ApiError { status: StatusCode::PAYLOAD_TOO_LARGE, code: "payload_too_large", detail }
    } else {
        ApiError::invalid(format!("the request body could not be read: {}", e.body_text()))
    }
}

fn forward_error(service: &str, e: ForwardError) -> Response {
    let detail = e.to_string();
    let (status, code, tried, worker) = match e {
        ForwardError::NoneAnswered { tried, detail: _ } => {
            (StatusCode::SERVICE_UNAVAILABLE, "no_healthy_workers", tried, None)
        }
        ForwardError::ResponseTooLarge { worker_id, tried, .. } => {
            (StatusCode::BAD_GATEWAY, "bad_gateway", tried, Some(worker_id))
        }
        ForwardError::Client(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", 0, None),
    };
    tracing::debug!(service, %detail, "routed request not answered");
    let mut r = ApiError { status, code, detail: format!("service {service:?}: {detail}") }.into_response();
    set(&mut r, TRIED_HEADER, &tried.to_string());
    if let Some(w) = worker {
        set(&mut r, WORKER_HEADER, &w);
    }
    r
}

/// Sets a header whose value is known to be visible ASCII (worker ids,
/// URLs, numbers); anything else is left out rather than sent broken.
fn set(r: &mut Response, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn coordinator_answers_give_targets_in_order_without_unusable_entries() {
        let body = json!({"workers": [
            {"worker_id": "w-1", "tunnel_url": "https://w-1.example.net", "load": 0.1},
            {"worker_id": "bad id", "tunnel_url": "https://x.example.net"},
            {"worker_id": "w-2"},
            {"worker_id": "w-3", "tunnel_url": "http://10.0.0.3:8000"},
        ]});
        let answer = DiscoverAnswer {
            service: "ocr".into(),
            source: Source::Coordinator { body, reason: "test".into() },
            cached: false,
        };
        let ids: Vec<String> = targets(&answer).into_iter().map(|t| t.worker_id).collect();
        assert_eq!(ids, ["w-1", "w-3"]);
        let empty = DiscoverAnswer { source: Source::Coordinator { body: json!({}), reason: String::new() }, ..answer };
        assert!(targets(&empty).is_empty());
    }
}
