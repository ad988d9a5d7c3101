//! The error answer of every route: a status code and a JSON body
//! `{"error": <code>, "detail": <message>}` (`detail` is what FastAPI
//! clients of the coordinator already read).
//!
//! | code | status | when |
//! |---|---|---|
//! | `invalid_input` | 400 | missing or mistyped field, bad URL or name, body not JSON or too large |
//! | `not_found` | 404 | unknown worker, unknown route |
//! | `method_not_allowed` | 405 | known route, wrong method |
//! | `payload_too_large` | 413 | a routed request's body is over the limit |
//! | `no_healthy_workers` | 503 | nobody can name a healthy worker of the service |
//! | `unavailable` | 503 | the DHT node has stopped |
//! | `bad_gateway` | 502 | a routed request's answer is over the limit |
//! | `internal` | 500 | a bug; the message says what |

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::discovery::DiscoveryError;

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human-readable message.
    pub detail: String,
}

impl ApiError {
    /// 400 with `detail`.
    pub fn invalid(detail: impl Into<String>) -> Self {
        ApiError { status: StatusCode::BAD_REQUEST, code: "invalid_input", detail: detail.into() }
    }

    /// 404 with `detail`.
    pub fn not_found(detail: impl Into<String>) -> Self {
        ApiError { status: StatusCode::NOT_FOUND, code: "not_found", detail: detail.into() }
    }
}

impl From<DiscoveryError> for ApiError {
    fn from(e: DiscoveryError) -> Self {
        let detail = e.to_string();
        let (status, code) = match e {
            DiscoveryError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_input"),
            DiscoveryError::UnknownWorker(_) => (StatusCode::NOT_FOUND, "not_found"),
            DiscoveryError::NoHealthyWorkers { .. } => (StatusCode::SERVICE_UNAVAILABLE, "no_healthy_workers"),
            DiscoveryError::Node(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            DiscoveryError::Config(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        ApiError { status, code, detail }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({"error": self.code, "detail": self.detail}))).into_response()
    }
}

impl From<crate::node::NodeError> for ApiError {
    fn from(e: crate::node::NodeError) -> Self {
        DiscoveryError::from(e).into()
    }
}
