//! Service routes: discover one service, list all known services.

use axum::extract::{Path, RawQuery, State};
use axum::http::{header::CACHE_CONTROL, HeaderMap};
use axum::Json;
use serde_json::{json, Map, Value as Json_};

use super::error::ApiError;
use crate::discovery::input::DiscoverFilter;
use crate::discovery::Discovery;

/// Query pairs, percent-decoded.
pub(super) fn pairs(raw: Option<&str>) -> Vec<(String, String)> {
    let Some(raw) = raw else { return Vec::new() };
    let url = format!("http://q/?{raw}");
    reqwest::Url::parse(&url).map(|u| u.query_pairs().into_owned().collect()).unwrap_or_default()
}

/// `GET /api/services/discover/{service_type}?gpu=true&min_memory=8&limit=5`
/// (`Cache-Control: no-cache` reads the DHT even when a cached answer is fresh).
pub async fn discover(
    State(d): State<Discovery>,
    Path(service): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Json_>, ApiError> {
    let q = pairs(query.as_deref());
    let filter = DiscoverFilter::from_query(q.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(|e| ApiError::invalid(e.0))?;
    let answer = d.discover_with(&service, &filter, !no_cache(&headers)).await?;
    Ok(Json(answer.to_json(d.now(), d.config().worker_ttl)))
}

/// Whether the request asks for an answer from the source (`no-cache`,
/// `no-store` or `max-age=0` among its `Cache-Control` directives).
pub(super) fn no_cache(headers: &HeaderMap) -> bool {
    headers.get_all(CACHE_CONTROL).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|d| {
        let d = d.trim().to_ascii_lowercase();
        d == "no-cache" || d == "no-store" || d == "max-age=0"
    })
}

/// `GET /api/services/list`
pub async fn list(State(d): State<Discovery>) -> Result<Json<Json_>, ApiError> {
    let services = d.list_services().await?;
    let available = services.iter().filter(|s| s.healthy_workers > 0).count();
    let map: Map<String, Json_> = services
        .into_iter()
        .map(|s| (s.name.clone(), json!({"name": s.name, "healthy_workers": s.healthy_workers})))
        .collect();
    Ok(Json(json!({"services": map, "total_available": available, "timestamp": d.now()})))
}
