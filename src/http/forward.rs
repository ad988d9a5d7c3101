//! Forwarding one request to the first worker that answers: the logic
//! behind `POST /api/services/route/{service_type}`, without axum.
//!
//! Contract: [`Forwarder::forward`] tries the targets in the order given,
//! skipping (without contacting) any whose URL
//! [`check_target_url`](crate::discovery::url::check_target_url)
//! refuses, and contacts at most [`RouteConfig::max_attempts`] of them. It
//! moves on after a connection error, a timeout or a 5xx answer; any other
//! answer (2xx, 3xx, 4xx) is the worker's and is returned as it came, since
//! a redirect is not followed (it could point anywhere) and a 4xx would be
//! the same elsewhere. Every attempt has a bounded time, and so has the
//! whole call. A worker that failed is tried after the others for a while
//! ([`super::penalty`]). One [`reqwest::Client`] is shared by every call, so
//! connections to a worker are reused; its resolver drops addresses
//! [`refused_ip`] refuses, so a host name cannot lead to a metadata service
//! either. Only an allowlist of end-to-end headers crosses in either
//! direction: never `Host`, cookies, credentials or hop-by-hop headers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, StatusCode};
use reqwest::Url;
use tokio::time::Instant;

use super::penalty::Penalties;
use crate::discovery::url::{refused_ip, service_url};

/// Request headers passed on to the worker (everything else is dropped).
const REQUEST_HEADERS: [&str; 7] =
    ["content-type", "accept", "accept-language", "content-language", "x-request-id", "traceparent", "tracestate"];

/// Response headers passed back to the caller.
const RESPONSE_HEADERS: [&str; 7] = [
    "content-type",
    "content-language",
    "content-disposition",
    "cache-control",
    "retry-after",
    "location",
    "x-request-id",
];

/// Settings of request routing.
#[derive(Clone, Debug)]
pub struct RouteConfig {
    /// Longest wait for a worker's TCP (and TLS) connection. Default 2 s.
    pub connect_timeout: Duration,
    /// Longest one attempt may take, from sending to the last byte of the
    /// answer. Default 30 s.
    pub attempt_timeout: Duration,
    /// Longest the whole routed request may take over all its attempts.
    /// Default 60 s.
    pub total_timeout: Duration,
    /// Most workers contacted for one request. Default 3.
    pub max_attempts: usize,
    /// Largest request body accepted and forwarded, bytes. Default 16 MiB.
    pub max_request_body: usize,
    /// Largest worker answer passed back, bytes. Default 64 MiB.
    pub max_response_body: usize,
    /// Idle connections to one worker kept for reuse. Default 32.
    pub pool_max_idle_per_host: usize,
    /// How long an idle connection is kept. Default 90 s.
    pub pool_idle_timeout: Duration,
    /// A worker that failed is tried after the others for this long
    /// ([`super::penalty`]); zero disables. Default 30 s.
    pub failure_hold: Duration,
}

impl Default for RouteConfig {
    fn default() -> Self {
        RouteConfig {
            connect_timeout: Duration::from_secs(2),
            attempt_timeout: Duration::from_secs(30),
            total_timeout: Duration::from_secs(60),
            max_attempts: 3,
            max_request_body: 16 * 1024 * 1024,
            max_response_body: 64 * 1024 * 1024,
            pool_max_idle_per_host: 32,
            pool_idle_timeout: Duration::from_secs(90),
            failure_hold: Duration::from_secs(30),
        }
    }
}

/// A worker to try.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Its id, named in the answer.
    pub worker_id: String,
    /// Its `tunnel_url`, as registered.
    pub tunnel_url: String,
}

/// The worker's answer.
#[derive(Debug)]
pub struct Answer {
    /// Who answered.
    pub worker_id: String,
    /// The URL it answered at.
    pub url: Url,
    /// Workers contacted, this one included.
    pub tried: usize,
    /// Its status.
    pub status: StatusCode,
    /// Its allowlisted headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
}

/// Why no answer is passed back.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// Every worker contacted failed (or none could be contacted); `detail`
    /// names each with its reason. HTTP 503.
    #[error("no worker answered: {detail}")]
    NoneAnswered {
        /// Workers contacted.
        tried: usize,
        /// Each worker and why it was passed over.
        detail: String,
    },
    /// A worker's answer was larger than the limit; it is not re-run
    /// elsewhere (it would likely be as large). HTTP 502.
    #[error("worker {worker_id:?} answered with more than {limit} bytes")]
    ResponseTooLarge {
        /// The worker.
        worker_id: String,
        /// Workers contacted.
        tried: usize,
        /// [`RouteConfig::max_response_body`].
        limit: usize,
    },
    /// The HTTP client could not be built (TLS setup); a bug or a broken
    /// install. HTTP 500.
    #[error("the forwarding client could not be built: {0}")]
    Client(String),
}

/// One attempt's failure.
enum Failed {
    /// Move on to the next worker, for this reason.
    Next(String),
    /// The answer exceeded the limit.
    TooLarge,
}

/// The shared client and settings; cheap to clone.
#[derive(Clone, Debug)]
pub struct Forwarder {
    client: reqwest::Client,
    config: Arc<RouteConfig>,
    penalties: Arc<Penalties>,
}

impl Forwarder {
    /// A forwarder with its own connection pool.
    pub fn new(config: RouteConfig) -> Result<Forwarder, ForwardError> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .pool_max_idle_per_host(config.pool_max_idle_per_host)
            .pool_idle_timeout(config.pool_idle_timeout)
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(CheckedResolver))
            .build()
            .map_err(|e| ForwardError::Client(e.to_string()))?;
        let penalties = Arc::new(Penalties::new(config.failure_hold));
        Ok(Forwarder { client, config: Arc::new(config), penalties })
    }

    /// The settings in force.
    pub fn config(&self) -> &RouteConfig {
        &self.config
    }

    /// Sends `body` with `headers` (already passed through
    /// [`request_headers`]) to `{tunnel_url}/service/{service}` of the
    /// targets in turn (those that failed lately last), until one answers.
    pub async fn forward(
        &self,
        service: &str,
        targets: &[Target],
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Answer, ForwardError> {
        let deadline = Instant::now() + self.config.total_timeout;
        let (mut tried, mut reasons) = (0, Vec::new());
        let order = self.penalties.order(targets.iter().map(|t| t.worker_id.as_str()), Instant::now());
        for t in order.into_iter().filter_map(|i| targets.get(i)) {
            if tried == self.config.max_attempts {
                break;
            }
            let url = match service_url(&t.tunnel_url, service) {
                Ok(url) => url,
                Err(e) => {
                    reasons.push(format!("{}: not contacted, its tunnel_url is refused ({e})", t.worker_id));
                    continue;
                }
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                reasons.push(format!("{}: not contacted, the routing time ran out", t.worker_id));
                break;
            }
            tried += 1;
            let timeout = left.min(self.config.attempt_timeout);
            match self.attempt(url.clone(), headers, body.clone(), timeout).await {
                Ok((status, headers, body)) => {
                    self.penalties.answered(&t.worker_id);
                    return Ok(Answer { worker_id: t.worker_id.clone(), url, tried, status, headers, body });
                }
                Err(Failed::Next(why)) => {
                    self.penalties.failed(&t.worker_id, Instant::now());
                    reasons.push(format!("{}: {why}", t.worker_id));
                }
                Err(Failed::TooLarge) => {
                    let limit = self.config.max_response_body;
                    return Err(ForwardError::ResponseTooLarge { worker_id: t.worker_id.clone(), tried, limit });
                }
            }
        }
        if reasons.is_empty() {
            reasons.push("no worker to try".to_owned());
        }
        Err(ForwardError::NoneAnswered { tried, detail: reasons.join("; ") })
    }

    /// One request to one worker.
    async fn attempt(
        &self,
        url: Url,
        headers: &HeaderMap,
        body: Bytes,
        timeout: Duration,
    ) -> Result<(StatusCode, HeaderMap, Bytes), Failed> {
        let request = self.client.post(url).headers(headers.clone()).body(body).timeout(timeout);
        let mut response = request.send().await.map_err(|e| Failed::Next(describe(&e, timeout)))?;
        let status = response.status();
        if status.is_server_error() {
            return Err(Failed::Next(format!("answered {status}")));
        }
        let limit = self.config.max_response_body;
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(Failed::TooLarge);
        }
        let headers = response_headers(response.headers());
        let mut buf = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| Failed::Next(describe(&e, timeout)))? {
            if buf.len() + chunk.len() > limit {
                return Err(Failed::TooLarge);
            }
            buf.extend_from_slice(&chunk);
        }
        Ok((status, headers, Bytes::from(buf)))
    }
}

/// A short reason for a failed attempt.
fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        format!("no answer within {} ms", timeout.as_millis())
    } else if e.is_connect() {
        format!("could not connect ({})", root_cause(e))
    } else {
        format!("the exchange failed ({})", root_cause(e))
    }
}

/// The innermost error message (reqwest's own says only "error sending
/// request").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

fn allowlisted(from: &HeaderMap, names: &[&'static str]) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in names {
        let name = HeaderName::from_static(name);
        for v in from.get_all(&name) {
            out.append(name.clone(), v.clone());
        }
    }
    out
}

/// The caller's headers that go on to the worker.
pub fn request_headers(from: &HeaderMap) -> HeaderMap {
    allowlisted(from, &REQUEST_HEADERS)
}

/// The worker's headers that come back to the caller.
pub fn response_headers(from: &HeaderMap) -> HeaderMap {
    allowlisted(from, &RESPONSE_HEADERS)
}

/// The system resolver, minus every address [`refused_ip`] refuses.
#[derive(Debug)]
struct CheckedResolver;

/// Every address a name resolved to is refused.
#[derive(Debug, thiserror::Error)]
#[error("{0} resolves only to refused (link-local, metadata, multicast) addresses")]
struct OnlyRefused(String);

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found.into_iter().filter(|a| !refused_ip(a.ip())).collect();
            if allowed.is_empty() {
                return Err(Box::new(OnlyRefused(host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_end_to_end_headers_cross() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("content-type", "application/json"),
            ("accept", "application/json"),
            ("x-request-id", "r-1"),
            ("host", "node.example"),
            ("cookie", "session=1"),
            ("authorization", "Bearer secret"),
            ("connection", "keep-alive, x-request-id"),
            ("transfer-encoding", "chunked"),
            ("proxy-authorization", "Basic x"),
            ("content-length", "12"),
        ] {
            h.append(HeaderName::from_static(k), v.parse().unwrap());
        }
        let out = request_headers(&h);
        let names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["content-type", "accept", "x-request-id"]);
        h.append("set-cookie", "a=b".parse().unwrap());
        h.append("location", "/x".parse().unwrap());
        let back: Vec<String> = response_headers(&h).keys().map(|k| k.to_string()).collect();
        assert_eq!(back, ["content-type", "location", "x-request-id"]);
    }

    #[tokio::test]
    async fn refused_targets_are_skipped_and_named() {
        let f = Forwarder::new(RouteConfig::default()).unwrap();
        let t = |id: &str, url: &str| Target { worker_id: id.into(), tunnel_url: url.into() };
        let targets = [t("meta", "http://169.254.169.254"), t("creds", "http://u:p@127.0.0.1:1")];
        match f.forward("ocr", &targets, &HeaderMap::new(), Bytes::new()).await {
            Err(ForwardError::NoneAnswered { tried, detail }) => {
                assert_eq!(tried, 0);
                assert!(detail.contains("meta: not contacted") && detail.contains("creds: not contacted"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn names_resolving_only_to_refused_addresses_fail() {
        use reqwest::dns::Resolve;
        let name = |n: &str| n.parse::<reqwest::dns::Name>().unwrap();
        let err = CheckedResolver.resolve(name("169.254.169.254")).await.err().unwrap();
        assert!(err.to_string().contains("only to refused"), "{err}");
        let ok: Vec<SocketAddr> = CheckedResolver.resolve(name("127.0.0.1")).await.unwrap().collect();
        assert_eq!(ok.len(), 1);
    }
}
