//! Worker routes: register, heartbeat, unregister. Bodies are read as raw
//! bytes and parsed here, so every failure (too large, not JSON, missing
//! field) becomes a JSON 400 instead of axum's plain-text rejections.
//!
//! Who may change what is decided by discovery (`owner`); this module only
//! reads the proofs: the worker's credential from the
//! `X-Kadmesh-Credential` header or a `credential` body field (register and
//! heartbeat; the header wins), and the operator's `--api-token` as
//! `Authorization: Bearer <token>` (401 without it, when one is set).
//! A worker that keeps its own key instead sends `signed_record` (and
//! optionally `entry_signatures`) in the body of all three
//! (`discovery::own_key`).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use ed25519_dalek::SigningKey;
use serde_json::{json, Value as Json_};

use super::error::ApiError;
use super::limits::{bump, HttpGuard};
use super::HEARTBEAT_INTERVAL_SECS;
use crate::discovery::input::{check_worker_id, parse_heartbeat, parse_registration};
use crate::discovery::keys::parse_credential;
use crate::discovery::Discovery;

/// The header carrying a worker's credential.
pub const CREDENTIAL_HEADER: &str = "x-kadmesh-credential";

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

/// Refuses a state-changing request without the operator's API token, when
/// one is configured (compared in constant time).
fn check_api_token(d: &Discovery, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = &d.config().api_token else { return Ok(()) };
    let sent = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let matches = sent.is_some_and(|s| {
        s.len() == token.len() && s.bytes().zip(token.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    });
    if matches {
        return Ok(());
    }
    Err(ApiError {
        status: StatusCode::UNAUTHORIZED,
        code: "unauthorized",
        detail: "this node requires its API token: send Authorization: Bearer <token>".to_owned(),
    })
}

/// The worker's credential from the header, else the body's `credential`.
fn credential(headers: &HeaderMap, body: Option<&Json_>) -> Result<Option<SigningKey>, ApiError> {
    let header = headers.get(CREDENTIAL_HEADER).map(|v| v.to_str().unwrap_or_default());
    let field = body.and_then(|b| b.get("credential")).filter(|c| !c.is_null());
    let text = match (header, field) {
        (Some(h), _) => h,
        (None, Some(f)) => f.as_str().ok_or_else(|| ApiError::invalid("field \"credential\" must be a string"))?,
        (None, None) => return Ok(None),
    };
    parse_credential(text).map(Some).map_err(|e| ApiError::invalid(e.0))
}

/// The body's `signed_record`, when the worker signs its own records.
fn signed_record(body: &Json_) -> Result<Option<&str>, ApiError> {
    match body.get("signed_record") {
        None | Some(Json_::Null) => Ok(None),
        Some(v) => v.as_str().map(Some).ok_or_else(|| ApiError::invalid("field \"signed_record\" must be a string")),
    }
}

/// Refuses a registration naming more services than this node allows.
fn check_service_count(guard: &HttpGuard, n: usize) -> Result<(), ApiError> {
    let most = guard.limits.max_services_per_registration;
    if n > most {
        bump(&guard.counters.too_many_services);
        return Err(ApiError::invalid(format!("field \"services\" names {n} services; at most {most} are allowed")));
    }
    Ok(())
}

/// `POST /api/worker/register`
pub async fn register(
    State(d): State<Discovery>,
    Extension(guard): Extension<Arc<HttpGuard>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Json_>, ApiError> {
    check_api_token(&d, &headers)?;
    let body = json_body(&guard, body)?;
    let out = match signed_record(&body)? {
        Some(text) => {
            let services = crate::discovery::record::WorkerRecord::from_json(text).map_or(0, |r| r.services.len());
            check_service_count(&guard, services)?;
            d.register_signed(text, body.get("entry_signatures")).await?
        }
        None => {
            let reg = parse_registration(&body).map_err(|e| ApiError::invalid(e.0))?;
            check_service_count(&guard, reg.services.len())?;
            d.register(reg, credential(&headers, Some(&body))?).await?
        }
    };
    Ok(Json(json!({
        "status": "registered",
        "worker_id": out.record.worker_id,
        "node_id": d.node().id().to_hex(),
        "services": out.record.services,
        // The platform's agent launches exactly these.
        "assigned_services": out.record.services,
        "heartbeat_interval": HEARTBEAT_INTERVAL_SECS,
        "expires_in": d.config().worker_ttl.as_secs(),
        "tunnel_url": out.record.tunnel_url,
        "public_key": out.record.public_key,
        "credential": out.credential,
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
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Json_>, ApiError> {
    check_api_token(&d, &headers)?;
    let body = json_body(&guard, body)?;
    let out = match signed_record(&body)? {
        Some(text) => d.heartbeat_signed(text, body.get("entry_signatures")).await?,
        None => {
            let hb = parse_heartbeat(&body).map_err(|e| ApiError::invalid(e.0))?;
            d.heartbeat(hb, credential(&headers, Some(&body))?).await?
        }
    };
    Ok(Json(json!({
        "status": "ok",
        "worker_id": out.record.worker_id,
        "published": out.published,
        "load": out.record.load,
        "expires_at": out.record.expires_at,
        "next_heartbeat": HEARTBEAT_INTERVAL_SECS,
    })))
}

/// `DELETE /api/worker/unregister/{worker_id}`; the body is optional (a
/// worker with its own key sends its signed tombstone record in it).
pub async fn unregister(
    State(d): State<Discovery>,
    Extension(guard): Extension<Arc<HttpGuard>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Json_>, ApiError> {
    check_api_token(&d, &headers)?;
    check_worker_id(&id).map_err(|e| ApiError::invalid(e.0))?;
    let signed = match &body {
        Ok(b) if b.is_empty() => None,
        _ => Some(json_body(&guard, body)?),
    };
    let record = match signed.as_ref().map(signed_record).transpose()?.flatten() {
        Some(text) => d.unregister_signed(&id, text, signed.as_ref().and_then(|b| b.get("entry_signatures"))).await?,
        None => d.unregister(&id, credential(&headers, None)?).await?,
    };
    Ok(Json(json!({"status": "unregistered", "worker_id": record.worker_id})))
}
