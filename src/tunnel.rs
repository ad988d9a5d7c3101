//! URL contacts: nodes reached over HTTP (`POST {url}/api/dht/rpc`)
//! instead of UDP, and requests that arrived over HTTP.
//!
//! The rest of the core speaks in [`SocketAddr`]s (routing table, requests
//! in flight, transmits), so a transport is a kind of address rather than a
//! new type threaded through every layer:
//!
//! - a **tunnel address** stands for a URL: `[100::h]:1`, where `h` is the
//!   first 64 bits of SHA-1 of the URL and `100::/64` is the IPv6
//!   discard-only prefix (RFC 6666), which no datagram can come from. The
//!   engine's [`TunnelBook`] maps it back to the URL; the driver sends a
//!   datagram addressed to it as an HTTP POST and feeds the answer back as a
//!   datagram from the same address;
//! - an **HTTP source** is `client_ip:0`: a request that arrived on
//!   `POST /api/dht/rpc` from `client_ip`. Port 0 is never a UDP source, so
//!   the engine's rate limits, quotas and reply budgets key on the real
//!   client IP, while the driver sends the reply back on the HTTP response
//!   (matched by message id) and never over UDP. The engine never learns an
//!   HTTP source as a contact: the client may have no address at all.
//!
//! Contract: [`addr_of`] is a pure function of the URL; [`is_tunnel`] and
//! [`is_http_source`] never both hold; nothing here reads the network.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use sha1::{Digest, Sha1};

use crate::id::NodeId;
use crate::limits::lru::LruMap;

/// The port of every tunnel address (any fixed non-zero value would do).
pub const TUNNEL_PORT: u16 = 1;
/// Longest URL a contact may carry, bytes.
pub const MAX_URL_LEN: usize = 256;
/// The path a tunnel URL serves the DHT's RPCs on.
pub const RPC_PATH: &str = "/api/dht/rpc";
/// The path a node relays one request datagram to a UDP contact on.
pub const RELAY_PATH: &str = "/api/dht/relay";
/// The header naming the UDP contact a relayed request goes to (`ip:port`).
pub const RELAY_TO_HEADER: &str = "x-kadmesh-relay-to";
/// URLs (and announced nodes) the engine remembers at most.
pub const BOOK_CAPACITY: usize = 10_000;

/// The first segment of the discard-only prefix `100::/64`.
const DISCARD_SEGMENT: u16 = 0x0100;

/// `url` if it can be a contact's tunnel URL: `http://` or `https://`, a
/// host, at most [`MAX_URL_LEN`] bytes of visible ASCII, no query or
/// fragment; a trailing `/` is dropped so one node has one spelling.
pub fn normalize_url(url: &str) -> Option<&str> {
    let url = url.strip_suffix('/').unwrap_or(url);
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"))?;
    let visible = url.bytes().all(|b| b.is_ascii_graphic());
    let host = rest.split('/').next().unwrap_or("");
    let ok = url.len() <= MAX_URL_LEN && visible && !host.is_empty() && !url.contains(['?', '#', '@']);
    ok.then_some(url)
}

/// The tunnel address standing for `url` (already normalized).
pub fn addr_of(url: &str) -> SocketAddr {
    let digest = Sha1::digest(url.as_bytes());
    let mut seg = [0u16; 8];
    seg[0] = DISCARD_SEGMENT;
    for (i, pair) in digest[..8].chunks_exact(2).enumerate() {
        seg[4 + i] = u16::from_be_bytes([pair[0], pair[1]]);
    }
    let ip = Ipv6Addr::new(seg[0], seg[1], seg[2], seg[3], seg[4], seg[5], seg[6], seg[7]);
    SocketAddr::new(IpAddr::V6(ip), TUNNEL_PORT)
}

/// Whether `ip` is in `100::/64`, where only tunnel addresses live.
pub fn is_reserved(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if v6.segments()[..4] == [DISCARD_SEGMENT, 0, 0, 0])
}

/// Whether `addr` stands for a URL.
pub fn is_tunnel(addr: SocketAddr) -> bool {
    addr.port() == TUNNEL_PORT && is_reserved(addr.ip())
}

/// Whether `addr` is the source of a request that arrived over HTTP.
pub fn is_http_source(addr: SocketAddr) -> bool {
    addr.port() == 0
}

/// The source address of a request that arrived over HTTP from `client`.
pub fn http_source(client: IpAddr) -> SocketAddr {
    SocketAddr::new(client, 0)
}

/// The tunnel URLs an engine knows, by address, and the nodes that
/// announced one (they are reached there, whatever address their requests
/// come from). Both bounded; the least recently used entry goes first.
#[derive(Debug)]
pub struct TunnelBook {
    urls: LruMap<SocketAddr, String>,
    announced: LruMap<NodeId, SocketAddr>,
    /// UDP addresses a relayed reply named (`/api/dht/relay`): a relay
    /// may send to them too, so that a relayed lookup can go past the
    /// relay's own table.
    relay_targets: LruMap<SocketAddr, ()>,
}

impl Default for TunnelBook {
    fn default() -> Self {
        TunnelBook {
            urls: LruMap::new(BOOK_CAPACITY),
            announced: LruMap::new(BOOK_CAPACITY),
            relay_targets: LruMap::new(BOOK_CAPACITY),
        }
    }
}

impl TunnelBook {
    /// Remembers `url` and answers its address; `None` when the URL is not
    /// usable or another URL already holds the same address (a 64-bit hash
    /// collision: the first one keeps it).
    pub fn add(&mut self, url: &str) -> Option<SocketAddr> {
        let url = normalize_url(url)?;
        let addr = addr_of(url);
        match self.urls.get_mut(&addr) {
            Some(held) if held == url => {}
            Some(_) => return None,
            None => {
                self.urls.insert(addr, url.to_owned());
            }
        }
        Some(addr)
    }

    /// The URL `addr` stands for.
    pub fn url(&self, addr: SocketAddr) -> Option<&str> {
        self.urls.peek(&addr).map(String::as_str)
    }

    /// `id` proved it answers at tunnel address `addr`.
    pub fn announce(&mut self, id: NodeId, addr: SocketAddr) {
        self.announced.insert(id, addr);
    }

    /// Where `id` announced it is reached, if it did.
    pub fn announced(&self, id: &NodeId) -> Option<SocketAddr> {
        self.announced.peek(id).copied()
    }

    /// A relayed reply named `addr` as a contact (UDP addresses only).
    pub fn add_relay_target(&mut self, addr: SocketAddr) {
        if !is_reserved(addr.ip()) && !is_http_source(addr) {
            self.relay_targets.insert(addr, ());
        }
    }

    /// Whether a relayed reply named `addr`.
    pub fn is_relay_target(&self, addr: SocketAddr) -> bool {
        self.relay_targets.peek(&addr).is_some()
    }

    /// URLs remembered.
    pub fn len(&self) -> usize {
        self.urls.len()
    }

    /// Whether no URL is remembered.
    pub fn is_empty(&self) -> bool {
        self.urls.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tunnel_addresses_are_reserved_and_distinct_from_http_sources() {
        let a = addr_of("https://w7.example-tunnel.net");
        assert!(is_tunnel(a) && is_reserved(a.ip()) && !is_http_source(a));
        assert_ne!(a, addr_of("https://w8.example-tunnel.net"));
        let h = http_source("10.0.0.1".parse().unwrap());
        assert!(is_http_source(h) && !is_tunnel(h));
        assert!(!is_tunnel("10.0.0.1:1".parse().unwrap()));
    }

    #[test]
    fn only_plain_http_urls_are_contacts() {
        assert_eq!(normalize_url("https://a.example/x/"), Some("https://a.example/x"));
        for bad in ["ftp://a", "https://", "https://a b", "https://a?q=1", "https://u@a", "10.0.0.1", ""] {
            assert_eq!(normalize_url(bad), None, "{bad}");
        }
        assert_eq!(normalize_url(&format!("https://{}", "a".repeat(300))), None);
    }

    #[test]
    fn book_maps_back_and_refuses_bad_urls() {
        let mut b = TunnelBook::default();
        let a = b.add("http://127.0.0.1:8080/").unwrap();
        assert_eq!(b.url(a), Some("http://127.0.0.1:8080"));
        assert_eq!(b.add("http://127.0.0.1:8080"), Some(a));
        assert_eq!(b.add("gopher://x"), None);
        assert_eq!(b.len(), 1);
    }
}
