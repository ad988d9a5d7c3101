//! The relay in the driver (`POST /api/dht/relay`, `proto-spec/EXTENSIONS.md`
//! §8): a request datagram an HTTP client sent for a UDP contact leaves
//! from our DHT socket, and the contact's reply goes back on that HTTP
//! request instead of to the engine.
//!
//! The engine decides whether to relay ([`crate::engine::Engine::admit_relay`]);
//! this module only rewrites the message id and matches the reply. The
//! id is replaced by a fresh one carrying the client mark
//! ([`crate::reach::marker`]) so that (a) two clients choosing the same id
//! for one target never meet and our own requests never collide with
//! theirs, and (b) kadmesh receivers never insert the client's id at our
//! address; the reply gets the client's id back. At most
//! [`RelaySettings::max_in_flight`] relayed requests wait at once; one
//! whose HTTP request gave up (timeout) is forgotten at the next sweep.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::engine::RelayRefusal;
use crate::wire::{MessageId, HEADER_LEN};

/// rpcudp's first byte of a response datagram.
const RESPONSE_TYPE: u8 = 0x01;

/// How a node relays for HTTP clients.
#[derive(Clone, Debug)]
pub struct RelaySettings {
    /// Longest a relayed request waits for its reply before the HTTP
    /// answer is 504. Default 4 s: below the 5 s a client gives its POST,
    /// so that a silent target reads as 504 and not as a failed relay.
    pub timeout: Duration,
    /// Relayed requests waiting for a reply at once, all clients together;
    /// beyond that the answer is 503. Default 64.
    pub max_in_flight: usize,
}

impl Default for RelaySettings {
    fn default() -> Self {
        RelaySettings { timeout: Duration::from_secs(4), max_in_flight: 64 }
    }
}

/// Why a relayed request got no reply datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RelayError {
    /// The engine refused it (malformed, rate, unknown target).
    #[error(transparent)]
    Refused(#[from] RelayRefusal),
    /// Too many relayed requests are waiting; retry later.
    #[error("too many relayed requests in flight")]
    Busy,
    /// This node has no UDP socket (it is itself a `--no-udp` client).
    #[error("this node has no UDP socket to relay from")]
    NoUdp,
    /// The target did not answer within [`RelaySettings::timeout`].
    #[error("the target did not answer in time")]
    Timeout,
    /// The target is this node: handled as `POST /api/dht/rpc` instead.
    #[error("the target is this node")]
    ToSelf,
}

/// What a relay request ended with, for `kadmesh_relay_requests_total{result}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelayResult {
    /// 200: the reply came back.
    Answered,
    /// 204: the target is this node and the procedure has no reply.
    NoReply,
    /// 504: the target did not answer in time.
    Timeout,
    /// 400: bad target header or not a request datagram.
    Invalid,
    /// 413: body over one datagram.
    TooLarge,
    /// 403: the target is not a known contact.
    UnknownTarget,
    /// 429: the client IP is over its rate.
    Limited,
    /// 503: too many in flight, or no UDP here.
    Unavailable,
}

impl RelayResult {
    /// Every result, in the order of [`RelayStats::counts`].
    pub const ALL: [RelayResult; 8] = [
        RelayResult::Answered,
        RelayResult::NoReply,
        RelayResult::Timeout,
        RelayResult::Invalid,
        RelayResult::TooLarge,
        RelayResult::UnknownTarget,
        RelayResult::Limited,
        RelayResult::Unavailable,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            RelayResult::Answered => "answered",
            RelayResult::NoReply => "no_reply",
            RelayResult::Timeout => "timeout",
            RelayResult::Invalid => "invalid",
            RelayResult::TooLarge => "too_large",
            RelayResult::UnknownTarget => "unknown_target",
            RelayResult::Limited => "rate_limited",
            RelayResult::Unavailable => "unavailable",
        }
    }

    /// The result a relay error ends with.
    pub fn of(e: RelayError) -> RelayResult {
        match e {
            RelayError::Refused(RelayRefusal::Malformed) => RelayResult::Invalid,
            RelayError::Refused(RelayRefusal::Limited) => RelayResult::Limited,
            RelayError::Refused(RelayRefusal::UnknownTarget) => RelayResult::UnknownTarget,
            RelayError::Timeout => RelayResult::Timeout,
            RelayError::Busy | RelayError::NoUdp | RelayError::ToSelf => RelayResult::Unavailable,
        }
    }
}

/// Relay requests by result since the node started, in [`RelayResult::ALL`] order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Counts per result.
    pub counts: [u64; 8],
}

impl RelayStats {
    /// The count for `result`.
    pub fn get(&self, result: RelayResult) -> u64 {
        RelayResult::ALL.iter().position(|r| *r == result).map_or(0, |i| self.counts[i])
    }
}

/// The counters behind [`RelayStats`].
#[derive(Debug, Default)]
pub(super) struct RelayCounters([AtomicU64; 8]);

impl RelayCounters {
    pub(super) fn bump(&self, result: RelayResult) {
        if let Some(i) = RelayResult::ALL.iter().position(|r| *r == result) {
            self.0[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(super) fn read(&self) -> RelayStats {
        let mut counts = [0; 8];
        for (c, a) in counts.iter_mut().zip(&self.0) {
            *c = a.load(Ordering::Relaxed);
        }
        RelayStats { counts }
    }
}

/// The answer the driver gives a relay request: the reply datagram (with
/// the client's message id), `None` when there is none, or why not.
pub type RelayAnswer = Result<Option<Bytes>, RelayError>;

struct Waiter {
    original: MessageId,
    reply: oneshot::Sender<RelayAnswer>,
    deadline: Instant,
}

/// Relayed requests waiting for their reply, by (target, our id).
pub(super) struct Relays {
    settings: RelaySettings,
    waiting: HashMap<(SocketAddr, MessageId), Waiter>,
}

impl Relays {
    pub(super) fn new(settings: RelaySettings) -> Self {
        Relays { settings, waiting: HashMap::new() }
    }

    /// Registers a relayed request to `target` and returns the datagram to
    /// send (the same bytes under a fresh marked id); `Busy` when full.
    pub(super) fn start(
        &mut self,
        target: SocketAddr,
        data: &[u8],
        reply: oneshot::Sender<RelayAnswer>,
        now: Instant,
    ) -> Result<Vec<u8>, (RelayError, oneshot::Sender<RelayAnswer>)> {
        let Some(original) = data.get(1..HEADER_LEN).and_then(|b| <[u8; 20]>::try_from(b).ok()) else {
            return Err((RelayError::Refused(RelayRefusal::Malformed), reply));
        };
        if self.waiting.len() >= self.settings.max_in_flight {
            self.waiting.retain(|_, w| !w.reply.is_closed() && w.deadline > now);
        }
        if self.waiting.len() >= self.settings.max_in_flight.max(1) {
            return Err((RelayError::Busy, reply));
        }
        let id = crate::reach::marker::mark(rand::random());
        let mut out = data.to_vec();
        out[1..HEADER_LEN].copy_from_slice(&id.0);
        let deadline = now + self.settings.timeout;
        self.waiting.insert((target, id), Waiter { original: MessageId(original), reply, deadline });
        Ok(out)
    }

    /// A datagram from `from`: if it is the reply to a relayed request,
    /// hands it back (under the client's id) and answers true; the engine
    /// must then not see it.
    pub(super) fn take_reply(&mut self, from: SocketAddr, data: &[u8]) -> bool {
        if data.first() != Some(&RESPONSE_TYPE) {
            return false;
        }
        let Some(id) = data.get(1..HEADER_LEN).and_then(|b| <[u8; 20]>::try_from(b).ok()) else { return false };
        let Some(w) = self.waiting.remove(&(from, MessageId(id))) else { return false };
        let mut out = data.to_vec();
        out[1..HEADER_LEN].copy_from_slice(&w.original.0);
        let _ = w.reply.send(Ok(Some(out.into())));
        true
    }

    /// Forgets a request whose send failed, answering `e`.
    pub(super) fn fail(&mut self, target: SocketAddr, sent: &[u8], e: RelayError) {
        let Some(id) = sent.get(1..HEADER_LEN).and_then(|b| <[u8; 20]>::try_from(b).ok()) else { return };
        if let Some(w) = self.waiting.remove(&(target, MessageId(id))) {
            let _ = w.reply.send(Err(e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reach::marker;

    fn request(id: [u8; 20]) -> Vec<u8> {
        let mut d = vec![0u8];
        d.extend_from_slice(&id);
        d.push(0x90);
        d
    }

    #[tokio::test]
    async fn the_id_is_rewritten_marked_and_restored_on_the_reply() {
        let mut r = Relays::new(RelaySettings::default());
        let target: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let (tx, rx) = oneshot::channel();
        let sent = r.start(target, &request([9; 20]), tx, Instant::now()).ok().unwrap();
        let relayed = MessageId(sent[1..HEADER_LEN].try_into().unwrap());
        assert!(marker::is_marked(&relayed) && relayed != MessageId([9; 20]));
        let mut reply = sent.clone();
        reply[0] = RESPONSE_TYPE;
        assert!(!r.take_reply("127.0.0.1:4001".parse().unwrap(), &reply), "only from the target");
        assert!(r.take_reply(target, &reply));
        let back = rx.await.unwrap().unwrap().unwrap();
        assert_eq!(back[1..HEADER_LEN], [9; 20]);
        assert!(!r.take_reply(target, &reply), "once");
    }

    #[tokio::test]
    async fn at_most_max_in_flight_wait_and_abandoned_ones_are_swept() {
        let mut r = Relays::new(RelaySettings { max_in_flight: 2, ..RelaySettings::default() });
        let target: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let (tx1, rx1) = oneshot::channel();
        let (tx2, _rx2) = oneshot::channel();
        assert!(r.start(target, &request([1; 20]), tx1, Instant::now()).is_ok());
        assert!(r.start(target, &request([2; 20]), tx2, Instant::now()).is_ok());
        let (tx3, _rx3) = oneshot::channel();
        let Err((e, tx3)) = r.start(target, &request([3; 20]), tx3, Instant::now()) else { panic!("not full") };
        assert_eq!(e, RelayError::Busy);
        drop(rx1);
        assert!(r.start(target, &request([3; 20]), tx3, Instant::now()).is_ok(), "the abandoned one was swept");
    }
}
