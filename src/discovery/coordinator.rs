//! The fallback coordinator: when the DHT cannot name a healthy worker, a
//! discover request is answered by the coordinator's own discover route.
//!
//! Contract: [`Coordinator::discover`] returns the coordinator's JSON object
//! on HTTP 200, [`CoordinatorError::NoWorkers`] when it answered "none"
//! (404/503, with its message), and [`CoordinatorError::Unreachable`] for
//! anything else (connection failure, timeout, other status, not JSON). It
//! never waits longer than the configured timeout.

use std::time::Duration;

use serde_json::Value as Json;

use super::input::DiscoverFilter;

/// Why the coordinator gave no workers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoordinatorError {
    /// The coordinator answered but has no healthy worker either.
    #[error("coordinator has no healthy worker: {0}")]
    NoWorkers(String),
    /// The coordinator could not be asked; check `--coordinator-url`.
    #[error("coordinator unreachable: {0}")]
    Unreachable(String),
}

/// A client for one coordinator.
#[derive(Clone, Debug)]
pub struct Coordinator {
    base: String,
    client: reqwest::Client,
}

impl Coordinator {
    /// A client for the coordinator at `base` (e.g. `https://coord.example.net`).
    pub fn new(base: &str, timeout: Duration) -> Result<Coordinator, CoordinatorError> {
        let url = reqwest::Url::parse(base).map_err(|e| CoordinatorError::Unreachable(format!("{base:?}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(CoordinatorError::Unreachable(format!("{base:?}: the scheme must be http or https")));
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| CoordinatorError::Unreachable(e.to_string()))?;
        Ok(Coordinator { base: base.trim_end_matches('/').to_owned(), client })
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Asks `GET {base}/api/services/discover/{service}` with the same filter.
    /// `service` must already be a valid service name (it goes into the path).
    pub async fn discover(&self, service: &str, filter: &DiscoverFilter) -> Result<Json, CoordinatorError> {
        let url = format!("{}/api/services/discover/{service}", self.base);
        let unreachable = |e: String| CoordinatorError::Unreachable(format!("{url}: {e}"));
        let resp =
            self.client.get(&url).query(&filter.to_query()).send().await.map_err(|e| unreachable(e.to_string()))?;
        let status = resp.status();
        let body: Option<Json> = resp.json().await.ok();
        match status.as_u16() {
            200 => body.filter(Json::is_object).ok_or_else(|| unreachable("answer is not a JSON object".into())),
            404 | 503 => {
                let detail = body.as_ref().and_then(|b| b.get("detail").or_else(|| b.get("message")));
                let msg = detail.and_then(Json::as_str).map_or_else(|| format!("HTTP {status}"), str::to_owned);
                Err(CoordinatorError::NoWorkers(msg))
            }
            _ => Err(unreachable(format!("HTTP {status}"))),
        }
    }
}
