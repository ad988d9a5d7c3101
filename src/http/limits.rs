//! What one HTTP client may cost this node: [`HttpLimits`] (every bound,
//! with its default) and [`HttpGuard`] (the connection table and the
//! counters `/metrics` shows).
//!
//! The HTTP port is open to anyone who can reach it, so each resource a
//! client can hold is bounded:
//! - a connection must send its request headers within
//!   [`HttpLimits::header_read_timeout`]; hyper's timer also runs while a
//!   keep-alive connection waits for its next request, so an idle
//!   connection is closed after the same time (slow-loris defence);
//! - connections are capped in total and per client IP, so one client
//!   cannot take every file descriptor (autosave and the UDP socket need
//!   some too); a refused connection gets a short 503 and is closed;
//! - a request (body read and answer included) is cut off after
//!   [`HttpLimits::request_timeout`] with a JSON 503;
//! - bodies over [`HttpLimits::max_body`] are answered 413 JSON;
//! - the DHT work one request causes is bounded: services per registration
//!   here, candidates per discover, services per list call and the
//!   negative-answer cache in [`crate::discovery::DiscoveryConfig`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// The bounds of the HTTP surface. Every field has a default chosen for a
/// node that serves a few hundred workers of the platform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// Time a client has to send a request's headers, and the longest a
    /// keep-alive connection may sit idle between requests. Default 10 s.
    pub header_read_timeout: Duration,
    /// Longest one request may run, body read and answer included; then a
    /// JSON 503 `timeout`. Default 90 s: above the route's own 60 s total
    /// (`forward::RouteConfig::total_timeout`; keep it so if that is
    /// raised), far above a discover lookup's 10 s.
    pub request_timeout: Duration,
    /// Open connections at once, all clients together. Default 512.
    pub max_connections: usize,
    /// Open connections at once from one IP address. Default 32.
    pub max_connections_per_ip: usize,
    /// Largest request body, bytes; larger is answered 413. Default 64 KiB.
    pub max_body: usize,
    /// Largest request head (request line and headers), bytes; hyper
    /// answers 431 beyond it. Default 16 KiB (hyper's floor is 8 KiB).
    pub max_header_bytes: usize,
    /// Most services one registration may name; more is a 400. Each
    /// service costs a provider write to several replicas. Default 16.
    pub max_services_per_registration: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(90),
            max_connections: 512,
            max_connections_per_ip: 32,
            max_body: 64 * 1024,
            max_header_bytes: 16 * 1024,
            max_services_per_registration: 16,
        }
    }
}

/// Counters of what the limits refused, for `/metrics`.
#[derive(Debug, Default)]
pub struct HttpCounters {
    /// Connections refused because the total cap was reached.
    pub refused_total_cap: AtomicU64,
    /// Connections refused because their IP had its share.
    pub refused_per_ip_cap: AtomicU64,
    /// Requests cut off by the request timeout.
    pub request_timeouts: AtomicU64,
    /// Bodies answered 413.
    pub bodies_too_large: AtomicU64,
    /// Registrations refused for naming too many services.
    pub too_many_services: AtomicU64,
}

/// The limits in force, the open-connection table and the counters; one
/// per server, shared by its connections and handlers.
#[derive(Debug, Default)]
pub struct HttpGuard {
    /// The bounds.
    pub limits: HttpLimits,
    /// What they refused.
    pub counters: HttpCounters,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// Why a connection was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// [`HttpLimits::max_connections`] connections are open.
    TotalCap,
    /// This IP has [`HttpLimits::max_connections_per_ip`] open.
    PerIpCap,
}

/// An admitted connection; dropping it frees its slot.
#[derive(Debug)]
pub struct Admission {
    guard: Arc<HttpGuard>,
    ip: IpAddr,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut open = self.guard.table();
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Adds one to a counter.
pub fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl HttpGuard {
    /// A guard enforcing `limits`.
    pub fn new(limits: HttpLimits) -> Self {
        HttpGuard { limits, ..HttpGuard::default() }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        // The table is a plain count map: a panic elsewhere cannot leave it
        // half-updated.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Open connections, all clients together. The table holds one entry
    /// per IP with an open connection, so it is bounded by the total cap.
    pub fn open_connections(&self) -> usize {
        self.table().values().sum()
    }

    /// Admits a connection from `ip`, or says which cap refuses it (and
    /// counts the refusal).
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admission, Refusal> {
        let mut open = self.table();
        let total: usize = open.values().sum();
        if total >= self.limits.max_connections {
            bump(&self.counters.refused_total_cap);
            return Err(Refusal::TotalCap);
        }
        let mine = open.entry(ip).or_insert(0);
        if *mine >= self.limits.max_connections_per_ip {
            bump(&self.counters.refused_per_ip_cap);
            return Err(Refusal::PerIpCap);
        }
        *mine += 1;
        Ok(Admission { guard: Arc::clone(self), ip })
    }

    /// The Prometheus lines of the HTTP limits.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let c = &self.counters;
        let name = "kadmesh_http_connections_refused_total";
        super::metrics::family(out, name, "counter", "HTTP connections refused, by the cap that refused them.");
        let _ = writeln!(out, "{name}{{cap=\"total\"}} {}", c.refused_total_cap.load(Ordering::Relaxed));
        let _ = writeln!(out, "{name}{{cap=\"per_ip\"}} {}", c.refused_per_ip_cap.load(Ordering::Relaxed));
        for (name, kind, help, v) in [
            ("kadmesh_http_connections_open", "gauge", "HTTP connections open.", self.open_connections() as u64),
            (
                "kadmesh_http_request_timeouts_total",
                "counter",
                "Requests cut off by the request timeout.",
                load(&c.request_timeouts),
            ),
            (
                "kadmesh_http_bodies_too_large_total",
                "counter",
                "Request bodies answered 413.",
                load(&c.bodies_too_large),
            ),
            (
                "kadmesh_http_too_many_services_total",
                "counter",
                "Registrations refused for naming too many services.",
                load(&c.too_many_services),
            ),
        ] {
            super::metrics::single(out, name, kind, help, v);
        }
    }
}

fn load(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// The 503 a refused connection gets before it is closed.
pub const REFUSED_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
content-length: 72\r\nconnection: close\r\n\r\n\
{\"error\":\"unavailable\",\"detail\":\"too many connections; try again later\"}";

/// Middleware: cuts a request off after the request timeout.
pub async fn request_timeout(State(guard): State<Arc<HttpGuard>>, req: Request, next: Next) -> Response {
    let limit = guard.limits.request_timeout;
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(answer) => answer,
        Err(_) => {
            bump(&guard.counters.request_timeouts);
            let detail = format!("the request took longer than {limit:?} and was cut off");
            ApiError { status: axum::http::StatusCode::SERVICE_UNAVAILABLE, code: "timeout", detail }.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(total: usize, per_ip: usize) -> Arc<HttpGuard> {
        let limits = HttpLimits { max_connections: total, max_connections_per_ip: per_ip, ..HttpLimits::default() };
        Arc::new(HttpGuard::new(limits))
    }

    #[test]
    fn caps_hold_per_ip_and_in_total_and_free_on_drop() {
        let g = guard(3, 2);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let a1 = g.admit(a).unwrap();
        let _a2 = g.admit(a).unwrap();
        assert_eq!(g.admit(a).unwrap_err(), Refusal::PerIpCap);
        let _b1 = g.admit(b).unwrap();
        assert_eq!(g.admit(b).unwrap_err(), Refusal::TotalCap);
        assert_eq!(g.open_connections(), 3);
        drop(a1);
        assert_eq!(g.open_connections(), 2);
        assert!(g.admit(b).is_ok());
        assert_eq!(g.counters.refused_per_ip_cap.load(Ordering::Relaxed), 1);
        assert_eq!(g.counters.refused_total_cap.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn table_forgets_ips_with_no_connection() {
        let g = guard(10, 10);
        for i in 0..5u8 {
            drop(g.admit(IpAddr::from([10, 0, 0, i])).unwrap());
        }
        assert!(g.table().is_empty());
    }

    #[test]
    fn refused_response_is_well_formed() {
        let text = std::str::from_utf8(REFUSED_RESPONSE).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"], "unavailable");
    }
}
