//! `POST /api/dht/rpc`: the DHT's RPCs over HTTP, for peers that cannot
//! reach this node over UDP (its tunnel URL carries HTTP only).
//!
//! The body is exactly one rpcudp request datagram; the answer is the reply
//! datagram (`application/octet-stream`), or 204 when the procedure has no
//! reply (unknown, or malformed arguments: silence, as over UDP). The
//! engine handles it as a request from `client_ip:0` (see
//! [`crate::tunnel`]), so the same per-IP rate limit, quotas and checks as
//! for UDP apply (the client is the TCP peer, or behind a local tunnel
//! agent the address it forwarded: [`client_ip`]), and the reply comes back
//! here, never over UDP.
//!
//! | status | when |
//! |---|---|
//! | 200 | the reply datagram |
//! | 204 | no reply |
//! | 400 `invalid_input` | the body is not a request datagram |
//! | 413 `payload_too_large` | the body is longer than a UDP datagram can be |
//! | 429 `rate_limited` | the client IP is over its request rate |
//! | 503 `unavailable` | the node has stopped |

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{header::CONTENT_TYPE, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;

use super::error::ApiError;
use crate::discovery::Discovery;
use crate::engine::HttpRequestError;
use crate::wire::MAX_DATAGRAM;

/// The route's path (the same as [`crate::tunnel::RPC_PATH`]).
pub const PATH: &str = crate::tunnel::RPC_PATH;

/// `POST /api/dht/rpc`.
pub async fn rpc(
    State(d): State<Discovery>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let client = requester(peer, &headers);
    let data = read_datagram(body).await?;
    match d.node().http_request(client, data).await? {
        Ok(Some(reply)) => Ok(([(CONTENT_TYPE, "application/octet-stream")], reply).into_response()),
        Ok(None) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(HttpRequestError::Malformed) => Err(ApiError::invalid(HttpRequestError::Malformed.to_string())),
        Err(e @ HttpRequestError::Limited) => {
            Err(ApiError { status: StatusCode::TOO_MANY_REQUESTS, code: "rate_limited", detail: e.to_string() })
        }
    }
}

/// The IP a request over HTTP is charged to: [`client_ip`] of the TCP peer.
/// Without a connection (a router driven in-process) every request shares
/// one key.
pub(super) fn requester(peer: Option<Extension<ConnectInfo<SocketAddr>>>, headers: &HeaderMap) -> IpAddr {
    let peer = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |Extension(ConnectInfo(a))| a.ip());
    client_ip(peer, headers)
}

/// The IP the rate limits and quotas charge: the TCP peer, except that a
/// peer on loopback is taken to be the local tunnel agent (cloudflared,
/// ngrok), which connects for every remote client, so the last address of
/// its `X-Forwarded-For` (the one the agent itself added) stands for the
/// client. Without this every request through the tunnel would come from
/// 127.0.0.1, which the limits exempt.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap) -> IpAddr {
    if !peer.is_loopback() {
        return peer;
    }
    let forwarded = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).next_back();
    forwarded.and_then(|v| v.rsplit(',').next()).and_then(|ip| ip.trim().parse().ok()).unwrap_or(peer)
}

/// The body, at most one datagram long.
pub(super) async fn read_datagram(body: Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_DATAGRAM).await.map_err(|_| ApiError {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        code: "payload_too_large",
        detail: format!("a DHT request is one datagram, at most {MAX_DATAGRAM} bytes"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_is_the_peer_unless_a_local_agent_forwards_it() {
        let mut h = HeaderMap::new();
        let remote: IpAddr = "203.0.113.9".parse().unwrap();
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(client_ip(remote, &h), remote);
        assert_eq!(client_ip(local, &h), local);
        h.insert("x-forwarded-for", "10.9.9.9, 198.51.100.7".parse().unwrap());
        assert_eq!(client_ip(local, &h), "198.51.100.7".parse::<IpAddr>().unwrap(), "the agent's own entry");
        assert_eq!(client_ip(remote, &h), remote, "a remote peer cannot choose its key");
        h.insert("x-forwarded-for", "garbage".parse().unwrap());
        assert_eq!(client_ip(local, &h), local);
    }
}
