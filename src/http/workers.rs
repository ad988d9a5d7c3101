//! Worker routes: register, heartbeat, unregister. Bodies are read as raw
//! bytes and parsed here, so every failure (too large, not JSON, missing
//! field) becomes a JSON 400 instead of axum's plain-text rejections.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::{json, Value as Json_};

use super::error::ApiError;
use super::limits::{bump, HttpGuard};
use super::HEARTBEAT_INTERVAL_SECS;
use crate::discovery::input::{check_worker_id, parse_heartbeat, parse_registration};
use crate::discovery::Discovery;

/// The JSON document of a request body; a body over the limit is a 413.
fn json_body(guard: &HttpGuard, body: Result<Bytes, BytesRejection>) -> Result<Json_, ApiError> {
    let bytes = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            bump(&guard.counters.bodies_too_large);
            let detail = format!("the request body is larger than {} bytes", guard.limits.max_body);
            return ApiError { status: StatusCode::PAYLOAD_TOO_LARGE, code: "payload_too_large", detail };
        }
        match e {
            BytesRejection::FailedToBufferBody(_) => ApiError::invalid("the request body could not be read"),
            other => ApiError::invalid(other.body_text()),
        }
    })?;
    if bytes.is_empty() {
        return Err(ApiError::invalid("the request body is empty; send a JSON object"));
    }
    serde_json::from_slice(&bytes).map_err(|e| ApiError::invalid(format!("the request body is not valid JSON: {e}")))
}

/// `POST /api/worker/register`
pub async fn register(
    State(d): State<Discovery>,
    Extension(guard): Extension<Arc<HttpGuard>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Json_>, ApiError> {
    let reg = parse_registration(&json_body(&guard, body)?).map_err(|e| ApiError::invalid(e.0))?;
    let most = guard.limits.max_services_per_registration;
    if reg.services.len() > most {
        bump(&guard.counters.too_many_services);
        return Err(ApiError::invalid(format!(
            "field \"services\" names {} services; at most {most} are allowed",
            reg.services.len()
        )));
    }
    let out = d.register(reg).await?;
    Ok(Json(json!({
        "status": "registered",
        "worker_id": out.record.worker_id,
        "node_id": d.node().id().to_hex(),
        "services": out.record.services,
        // The platform's agent launches exactly these.
        "assigned_services": out.record.services,
        "heartbeat_interval": HEARTBEAT_INTERVAL_SECS,
        "expires_in": d.config().worker_ttl.as_secs(),
        "dht": out.report.map(|r| json!({
            "record_replicas": r.record_replicas,
            "provider_replicas": r.provider_replicas,
        })),
    })))
}

/// `POST /api/worker/heartbeat`
pub async fn heartbeat(
    State(d): State<Discovery>,
    Extension(guard): Extension<Arc<HttpGuard>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Json_>, ApiError> {
    let hb = parse_heartbeat(&json_body(&guard, body)?).map_err(|e| ApiError::invalid(e.0))?;
    let out = d.heartbeat(hb).await?;
    Ok(Json(json!({
        "status": "ok",
        "worker_id": out.record.worker_id,
        "published": out.published,
        "load": out.record.load,
        "expires_at": out.record.expires_at,
        "next_heartbeat": HEARTBEAT_INTERVAL_SECS,
    })))
}

/// `DELETE /api/worker/unregister/{worker_id}`
pub async fn unregister(State(d): State<Discovery>, Path(id): Path<String>) -> Result<Json<Json_>, ApiError> {
    check_worker_id(&id).map_err(|e| ApiError::invalid(e.0))?;
    let record = d.unregister(&id).await?;
    Ok(Json(json!({"status": "unregistered", "worker_id": record.worker_id})))
}
