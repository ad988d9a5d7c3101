//! The HTTP transport of the driver: datagrams to URL contacts leave as
//! `POST {url}/api/dht/rpc` and their answers come back as datagrams from
//! the same tunnel address; requests that arrived on our own
//! `/api/dht/rpc` get their reply on the HTTP response (see
//! [`crate::tunnel`]).
//!
//! The engine decides what to send and to whom; this module only moves
//! bytes. One `reqwest` client keeps connections to each URL alive (a TLS
//! handshake through a tunnel costs several round trips), every POST is
//! bounded in time (the engine has stopped waiting by then anyway) and at
//! most [`TunnelSettings::max_in_flight`] run at once: beyond that a
//! datagram is dropped, as a full UDP socket buffer would, and the engine
//! sees a timeout.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::engine::HttpRequestError;
use crate::tunnel::{RELAY_PATH, RELAY_TO_HEADER, RPC_PATH};
use crate::wire::{MessageId, HEADER_LEN, MAX_DATAGRAM};

/// rpcudp's first byte of a response datagram.
const RESPONSE_TYPE: u8 = 0x01;

/// How the driver talks to URL contacts.
#[derive(Clone, Debug)]
pub struct TunnelSettings {
    /// Longest one POST may take, connection included. Default 5 s, the
    /// base RPC timeout: a tunnel adds a few hundred milliseconds to a round
    /// trip, and the engine gives up on the request at 5 s in any case.
    pub request_timeout: Duration,
    /// Longest a new connection (TCP and TLS) may take. Default 3 s.
    pub connect_timeout: Duration,
    /// POSTs in flight at once, all URLs together. Default 64.
    pub max_in_flight: usize,
    /// Idle connections kept per URL host. Default 4.
    pub idle_per_host: usize,
    /// POSTs to the current relay at once (a node without UDP); more wait
    /// their turn. Default 16: half a relay's default cap of 32
    /// connections per client IP, which a put to k = 20 nodes would
    /// otherwise exceed, making the relay look dead.
    pub relay_in_flight: usize,
}

impl Default for TunnelSettings {
    fn default() -> Self {
        TunnelSettings {
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
            max_in_flight: 64,
            idle_per_host: 4,
            relay_in_flight: 16,
        }
    }
}

/// What answers a request that came over HTTP: the reply datagram, none
/// (the procedure has no reply: unknown, or malformed arguments), or why
/// it was not handled.
pub type HttpAnswer = Result<Option<Bytes>, HttpRequestError>;

/// What the HTTP transport did since the node started (`/metrics`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TunnelStats {
    /// Datagrams sent to URL contacts as POSTs.
    pub posts_sent: u64,
    /// ... that came back with a reply datagram.
    pub posts_answered: u64,
    /// ... that the peer answered without a reply (204: the procedure has none).
    pub posts_without_reply: u64,
    /// ... that failed: no connection, timeout, an error status, or an
    /// answer that is not a reply datagram.
    pub posts_failed: u64,
    /// Datagrams to URL contacts dropped because too many POSTs were in
    /// flight (as a full socket buffer drops).
    pub posts_dropped: u64,
    /// Requests that peers sent us on `POST /api/dht/rpc`.
    pub requests_received: u64,
}

/// The counters behind [`TunnelStats`], shared by the driver task and the
/// node's handles.
#[derive(Debug, Default)]
pub(super) struct TunnelCounters {
    sent: AtomicU64,
    answered: AtomicU64,
    without_reply: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    received: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl TunnelCounters {
    /// The counts now.
    pub(super) fn read(&self) -> TunnelStats {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TunnelStats {
            posts_sent: r(&self.sent),
            posts_answered: r(&self.answered),
            posts_without_reply: r(&self.without_reply),
            posts_failed: r(&self.failed),
            posts_dropped: r(&self.dropped),
            requests_received: r(&self.received),
        }
    }

    /// A request arrived on our `POST /api/dht/rpc`.
    pub(super) fn received(&self) {
        bump(&self.received);
    }
}

/// The driver's side of the HTTP transport.
pub(super) struct Tunnel {
    /// Shared with the node's handles.
    pub(super) counters: Arc<TunnelCounters>,
    client: reqwest::Client,
    slots: Arc<Semaphore>,
    /// Answers of our POSTs, as (tunnel address, reply datagram).
    answers: mpsc::Sender<(SocketAddr, Bytes)>,
    /// Requests that came over HTTP, waiting for the engine's reply.
    exchanges: HashMap<(IpAddr, MessageId), oneshot::Sender<HttpAnswer>>,
    /// Base URLs of the relays a node without UDP sends datagrams for UDP
    /// contacts through (`POST {url}/api/dht/relay`).
    relays: Arc<Vec<String>>,
    /// The relay in use (an index into `relays`); the next one after a failure.
    current: Arc<AtomicUsize>,
    /// Bounds the POSTs to relays at once.
    relay_slots: Arc<Semaphore>,
}

impl Tunnel {
    /// The transport and the receiver of its POSTs' answers.
    pub(super) fn new(
        settings: &TunnelSettings,
        relays: Vec<String>,
    ) -> Result<(Tunnel, mpsc::Receiver<(SocketAddr, Bytes)>), String> {
        let client = reqwest::Client::builder()
            .timeout(settings.request_timeout)
            .connect_timeout(settings.connect_timeout)
            .pool_max_idle_per_host(settings.idle_per_host)
            .build()
            .map_err(|e| e.to_string())?;
        let (tx, rx) = mpsc::channel(settings.max_in_flight.max(1));
        let slots = Arc::new(Semaphore::new(settings.max_in_flight.max(1)));
        let counters = Arc::default();
        let relays =
            Arc::new(relays.iter().filter_map(|u| crate::tunnel::normalize_url(u)).map(str::to_owned).collect());
        let current = Arc::default();
        let relay_slots = Arc::new(Semaphore::new(settings.relay_in_flight.max(1)));
        let exchanges = HashMap::new();
        Ok((Tunnel { counters, client, slots, answers: tx, exchanges, relays, current, relay_slots }, rx))
    }

    /// Waits for the engine's reply to request `id` from `client`.
    pub(super) fn expect(&mut self, client: IpAddr, id: MessageId, reply: oneshot::Sender<HttpAnswer>) {
        self.exchanges.insert((client, id), reply);
    }

    /// The request `id` from `client` got no reply: say so.
    pub(super) fn unanswered(&mut self, client: IpAddr, id: MessageId) {
        if let Some(tx) = self.exchanges.remove(&(client, id)) {
            let _ = tx.send(Ok(None));
        }
    }

    /// A reply the engine addressed to an HTTP source: onto its response.
    pub(super) fn reply(&mut self, to: SocketAddr, payload: Bytes) {
        let Some(id) = payload.get(1..HEADER_LEN).and_then(|b| <[u8; 20]>::try_from(b).ok()) else { return };
        match self.exchanges.remove(&(to.ip(), MessageId(id))) {
            Some(tx) => {
                let _ = tx.send(Ok(Some(payload)));
            }
            None => tracing::debug!(%to, "no HTTP request waits for this reply"),
        }
    }

    /// Sends `payload` to `url` in the background; its answer comes back
    /// through the receiver as a datagram from `to`.
    pub(super) fn post(&self, to: SocketAddr, url: &str, payload: Bytes) {
        let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() else {
            bump(&self.counters.dropped);
            tracing::debug!(url, "too many tunnel requests in flight; dropped");
            return;
        };
        bump(&self.counters.sent);
        let counters = Arc::clone(&self.counters);
        let request = self
            .client
            .post(format!("{url}{RPC_PATH}"))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(payload);
        let answers = self.answers.clone();
        let url = url.to_owned();
        tokio::spawn(async move {
            if let Err(e) = deliver(exchange(request).await, &counters, &answers, to).await {
                tracing::debug!(url, error = %e, "tunnel request failed");
            }
            drop(permit);
        });
    }
}

impl Tunnel {
    /// Whether any relay URL is configured.
    pub(super) fn has_relays(&self) -> bool {
        !self.relays.is_empty()
    }

    /// Sends `payload`, a datagram for the UDP contact `to`, through the
    /// current relay in the background; the reply comes back through the
    /// receiver as a datagram from `to`. A relay that fails (no connection,
    /// 429, 5xx other than 504) is replaced by the next one for later
    /// datagrams; this one is lost, as over UDP, and the engine retries.
    pub(super) fn relay_post(&self, to: SocketAddr, payload: Bytes) {
        let n = self.relays.len();
        let Some(permit) = (n > 0).then(|| Arc::clone(&self.slots).try_acquire_owned().ok()).flatten() else {
            bump(&self.counters.dropped);
            return;
        };
        bump(&self.counters.sent);
        let at = self.current.load(Ordering::Relaxed) % n;
        let request = self
            .client
            .post(format!("{}{RELAY_PATH}", self.relays[at]))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(RELAY_TO_HEADER, to.to_string())
            .body(payload);
        let (counters, answers, current) =
            (Arc::clone(&self.counters), self.answers.clone(), Arc::clone(&self.current));
        let turn = Arc::clone(&self.relay_slots);
        tokio::spawn(async move {
            // At most `max_in_flight` tasks wait here (the slot taken above bounds them).
            let Ok(_turn) = turn.acquire_owned().await else { return };
            if let Err(e) = deliver(exchange(request).await, &counters, &answers, to).await {
                if e.relay_failed {
                    // Only the first to see this relay fail moves on.
                    let _ = current.compare_exchange(at, (at + 1) % n, Ordering::Relaxed, Ordering::Relaxed);
                }
                tracing::debug!(%to, error = %e.message, "relayed request failed");
            }
            drop(permit);
        });
    }
}

/// Counts a POST's outcome and hands a reply datagram to the driver as
/// one from `to`; gives back the error of a failed POST.
async fn deliver(
    result: Result<Option<Bytes>, PostError>,
    counters: &TunnelCounters,
    answers: &mpsc::Sender<(SocketAddr, Bytes)>,
    to: SocketAddr,
) -> Result<(), PostError> {
    match result {
        Ok(Some(reply)) => {
            bump(&counters.answered);
            let _ = answers.send((to, reply)).await;
            Ok(())
        }
        Ok(None) => {
            bump(&counters.without_reply);
            Ok(())
        }
        Err(e) => {
            bump(&counters.failed);
            Err(e)
        }
    }
}

/// Why a POST brought no reply datagram.
struct PostError {
    message: String,
    /// The relay itself failed (unreachable, overloaded, broken), rather
    /// than refusing this target or timing out on it.
    relay_failed: bool,
}

impl std::fmt::Display for PostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl PostError {
    fn other(message: impl Into<String>) -> Self {
        PostError { message: message.into(), relay_failed: true }
    }
}

/// One POST: the reply datagram, `None` when the peer had no reply (204,
/// or a relay's 504: the target did not answer).
async fn exchange(request: reqwest::RequestBuilder) -> Result<Option<Bytes>, PostError> {
    let mut response = request.send().await.map_err(|e| PostError::other(e.to_string()))?;
    let status = response.status();
    if status == reqwest::StatusCode::NO_CONTENT || status == reqwest::StatusCode::GATEWAY_TIMEOUT {
        return Ok(None);
    }
    if !status.is_success() {
        // A refused target (403) or a malformed request (400) is not the relay's failure.
        let relay_failed = status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS;
        return Err(PostError { message: format!("HTTP {status}"), relay_failed });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| PostError::other(e.to_string()))? {
        if body.len() + chunk.len() > MAX_DATAGRAM {
            return Err(PostError::other("answer larger than a datagram"));
        }
        body.extend_from_slice(&chunk);
    }
    // Only a response may come back: a peer cannot push requests at us this way.
    match body.first() {
        Some(&RESPONSE_TYPE) => Ok(Some(body.into())),
        _ => Err(PostError::other("answer is not a response datagram")),
    }
}
