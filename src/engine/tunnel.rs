//! URL contacts in the engine (see [`crate::tunnel`]): requests that arrived
//! over HTTP, the URLs learned from contact lists, and the announcement of
//! a tunnel URL in `kadmesh_hello`.
//!
//! A node announces its URL as `kadmesh_hello`'s second argument. The
//! callee believes it only once a `ping` sent to the URL comes back with
//! the announcer's id; from then on the node is in the routing table under
//! its tunnel address, whatever address its requests come from. Requests
//! that came over HTTP from a node that announced nothing teach us no
//! contact: the requester may have no address anyone can reach.

use std::net::{IpAddr, SocketAddr};

use super::services::ReplyTo;
use super::Engine;
use crate::contact::Contact;
use crate::id::NodeId;
use crate::time::Time;
use crate::tunnel;
use crate::wire::{self, Datagram, Value};

/// Why a request that came over HTTP was not handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HttpRequestError {
    /// The body is not one rpcudp request datagram; send exactly the bytes
    /// of a UDP request.
    #[error("the body is not an rpcudp request datagram")]
    Malformed,
    /// The client's IP is over its request rate (the same limit as UDP);
    /// retry later.
    #[error("too many requests from this address")]
    Limited,
}

impl Engine {
    /// Handles one request datagram that `client` POSTed to
    /// `/api/dht/rpc`. Its reply, if the procedure has one, is a transmit
    /// to [`tunnel::http_source`]`(client)` carrying the request's message
    /// id, which the driver returns on the HTTP response.
    pub fn handle_http_request(
        &mut self,
        now: Time,
        client: IpAddr,
        data: &[u8],
    ) -> Result<wire::MessageId, HttpRequestError> {
        let from = tunnel::http_source(client);
        if data.first() != Some(&0) {
            self.svc.stats.malformed += 1;
            return Err(HttpRequestError::Malformed);
        }
        if !self.admit(now, from, data) {
            return Err(HttpRequestError::Limited);
        }
        self.svc.stats.datagrams_received += 1;
        match wire::decode(data) {
            Ok(Datagram::Request { id, call }) => {
                self.on_request(now, from, id, call, data.len());
                Ok(id)
            }
            _ => {
                self.svc.stats.malformed += 1;
                Err(HttpRequestError::Malformed)
            }
        }
    }

    /// The URL a tunnel address stands for, for the driver to POST to.
    pub fn tunnel_url(&self, addr: SocketAddr) -> Option<&str> {
        self.svc.tunnels.url(addr)
    }

    /// Remembers `url` (a seed given by URL, say) and answers the address
    /// to send to; `None` for a URL that cannot be a contact.
    pub fn add_tunnel(&mut self, url: &str) -> Option<SocketAddr> {
        self.svc.tunnels.add(url)
    }

    /// Remembers the URLs of the URL contacts in a reply's contact list.
    pub(super) fn book_urls(&mut self, body: &Value) {
        for url in wire::tunnel_urls(body) {
            self.svc.tunnels.add(url);
        }
    }

    /// The contact to learn for a request or reply from `c`: under its
    /// announced tunnel address if it has one; none for an HTTP source.
    pub(super) fn reachable(&self, c: Contact) -> Option<Contact> {
        match self.svc.tunnels.announced(&c.id) {
            Some(addr) => Some(Contact::new(c.id, addr)),
            None => (!tunnel::is_http_source(c.addr)).then_some(c),
        }
    }

    /// `kadmesh_hello`'s arguments: our id, and our URL if we announce one.
    pub(super) fn hello_args(&self) -> Vec<Value> {
        let mut args = vec![Value::Bin(self.svc.id.0.to_vec())];
        if let Some(url) = self.svc.config.tunnel_url.as_deref().and_then(tunnel::normalize_url) {
            args.push(Value::Str(url.to_owned()));
        }
        args
    }

    /// `sender` said in its hello that it is reached at `url`: ping it there
    /// unless it is already known there.
    pub(super) fn on_announced_url(&mut self, now: Time, sender: NodeId, url: &str) {
        let Some(addr) = self.svc.tunnels.add(url) else {
            tracing::debug!(%sender, url, "ignoring unusable tunnel URL");
            return;
        };
        let known = self.svc.tunnels.announced(&sender) == Some(addr);
        if known && self.svc.routing.get(&sender).is_some_and(|c| c.addr == addr) {
            return;
        }
        let call = self.svc.ping();
        self.svc.send_request(now, addr, call, ReplyTo::Tunnel { peer: sender });
    }

    /// The ping to `peer`'s announced URL (`addr`) answered with `answered`.
    pub(super) fn on_tunnel_ping(&mut self, now: Time, peer: NodeId, addr: SocketAddr, answered: Option<NodeId>) {
        if answered != Some(peer) {
            tracing::debug!(%peer, "tunnel URL did not answer with the announcer's id");
            return;
        }
        self.svc.tunnels.announce(peer, addr);
        if self.svc.routing.get(&peer).is_some_and(|c| c.addr != addr) {
            self.svc.routing.remove(&peer);
        }
        self.learn_answered(now, Contact::new(peer, addr));
    }
}

/// Whether `c` may be named to a requester (`extended`: known to speak
/// kadmesh): a URL contact only to kadmesh peers, as stock peers cannot use
/// one, and only while its URL is still known.
pub(super) fn may_hand_out(tunnels: &tunnel::TunnelBook, extended: bool, c: &Contact) -> bool {
    !tunnel::is_tunnel(c.addr) || extended && tunnels.url(c.addr).is_some()
}
