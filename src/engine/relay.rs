//! The relay's rules (`POST /api/dht/relay`, `proto-spec/EXTENSIONS.md`
//! §8): which request datagrams a node sends over UDP on behalf of an HTTP
//! client that has no UDP at all, and to whom.
//!
//! The driver moves the bytes (it rewrites the message id, sends from the
//! DHT socket and routes the reply back to the HTTP request); what may be
//! sent is decided here, so that a relay is never a UDP reflector: only
//! well-formed requests, within the client IP's request rate (the same
//! limiter as `/api/dht/rpc` and UDP), and only to a contact of ours that
//! answered us, or to an address a reply we relayed named as a contact
//! (the next hop of the client's lookup; bounded, least recently used
//! first). Never to a tunnel address, an HTTP source or a reserved IP.

use std::net::{IpAddr, SocketAddr};

use super::Engine;
use crate::reach::Reachability;
use crate::time::Time;
use crate::tunnel;
use crate::wire::{self, Datagram};

/// Why the engine refuses to relay a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RelayRefusal {
    /// The body is not one well-formed rpcudp request datagram; send
    /// exactly the bytes of a UDP request.
    #[error("the body is not an rpcudp request datagram")]
    Malformed,
    /// The client's IP is over its request rate (shared with
    /// `/api/dht/rpc` and UDP); retry later.
    #[error("too many requests from this address")]
    Limited,
    /// The target is not a contact that answered this node, nor one a
    /// relayed reply named: a relay never sends to arbitrary addresses.
    /// Ask a relay that knows the target, or look it up first.
    #[error("the target is not a known DHT contact of this node")]
    UnknownTarget,
}

impl Engine {
    /// Whether `client` may have `data` relayed over UDP to `target`; on
    /// `Ok` the driver sends it (with a fresh client-marked id).
    pub fn admit_relay(
        &mut self,
        now: Time,
        client: IpAddr,
        target: SocketAddr,
        data: &[u8],
    ) -> Result<(), RelayRefusal> {
        if !matches!(wire::decode(data), Ok(Datagram::Request { .. })) {
            self.svc.stats.malformed += 1;
            return Err(RelayRefusal::Malformed);
        }
        // Charged before the target is judged: a flood of refused targets spends the rate too.
        if !self.admit(now, tunnel::http_source(client), data) {
            return Err(RelayRefusal::Limited);
        }
        if !self.may_relay_to(target) {
            return Err(RelayRefusal::UnknownTarget);
        }
        Ok(())
    }

    /// A contact that answered us, or an address a relayed reply named.
    fn may_relay_to(&self, target: SocketAddr) -> bool {
        if tunnel::is_reserved(target.ip()) || tunnel::is_http_source(target) || target.ip().is_unspecified() {
            return false;
        }
        let routing = &self.svc.routing;
        self.svc.tunnels.is_relay_target(target)
            || routing.contacts().any(|c| c.addr == target && routing.is_verified(&c.id))
    }

    /// A reply we relayed back from `from`: the UDP contacts it names
    /// become relay targets (the client's lookup goes there next).
    pub fn note_relayed_reply(&mut self, from: SocketAddr, data: &[u8]) {
        let Ok(Datagram::Response { body, .. }) = wire::decode(data) else { return };
        let Ok(contacts) = wire::parse_find_node_reply(&body) else { return };
        tracing::trace!(%from, named = contacts.len(), "relayed reply names contacts");
        for c in contacts.into_iter().filter(|c| !tunnel::is_tunnel(c.addr)) {
            self.svc.tunnels.add_relay_target(c.addr);
        }
    }

    /// This node has no UDP socket (`dhtd --no-udp`): its verdict is
    /// `no-udp` for `reason`, for good (set client mode in the config).
    pub fn declare_no_udp(&mut self, now: Time, reason: &str) {
        self.reach.detector.declare(now, Reachability::NoUdp, reason.to_owned());
    }
}
