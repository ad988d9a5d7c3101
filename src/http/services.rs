//! Service routes: discover one service, list all known services.

use axum::extract::{Path, RawQuery, State};
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
pub async fn discover(
    State(d): State<Discovery>,
    Path(service): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Json_>, ApiError> {
    let q = pairs(query.as_deref());
    let filter = DiscoverFilter::from_query(q.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(|e| ApiError::invalid(e.0))?;
    let answer = d.discover(&service, &filter).await?;
    Ok(Json(answer.to_json(d.now(), d.config().worker_ttl)))
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
