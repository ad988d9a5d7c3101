//! `POST /api/dht/relay`: one request datagram relayed over UDP for a
//! client that has no UDP at all (`dhtd --no-udp`), and its reply back
//! (`proto-spec/EXTENSIONS.md` §8).
//!
//! The header `X-Kadmesh-Relay-To: ip:port` names the UDP contact; the body
//! is exactly one rpcudp request datagram. The node sends it from its DHT
//! socket under a fresh client-marked message id and answers the target's
//! reply with the client's id restored. What may be relayed is the
//! engine's rule ([`crate::engine::Engine::admit_relay`]): never to an
//! address that is not a DHT contact (no UDP reflector), within the same
//! per-IP rate as `/api/dht/rpc`.
//!
//! | status | when |
//! |---|---|
//! | 200 | the reply datagram (`application/octet-stream`) |
//! | 204 | the target is this node and the procedure has no reply |
//! | 400 `invalid_input` | missing or malformed `X-Kadmesh-Relay-To`, or the body is not a request datagram |
//! | 403 `unknown_target` | the target is not a contact of this node that answered it, nor one a relayed reply named |
//! | 413 `payload_too_large` | the body is longer than a UDP datagram can be |
//! | 429 `rate_limited` | the client IP is over its request rate |
//! | 503 `unavailable` | too many relayed requests in flight, no UDP here, or the node has stopped |
//! | 504 `timeout` | the target did not answer within 4 s |

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{header::CONTENT_TYPE, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;

use super::error::ApiError;
use super::rpc::{read_datagram, requester};
use crate::discovery::Discovery;
use crate::engine::RelayRefusal;
use crate::node::{RelayError, RelayResult};
use crate::tunnel::RELAY_TO_HEADER;

/// The route's path (the same as [`crate::tunnel::RELAY_PATH`]).
pub const PATH: &str = crate::tunnel::RELAY_PATH;

/// `POST /api/dht/relay`.
pub async fn relay(
    State(d): State<Discovery>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let client = requester(peer, &headers);
    let node = d.node();
    let target = target(&headers).inspect_err(|_| node.count_relay(RelayResult::Invalid))?;
    let data = read_datagram(body).await.inspect_err(|_| node.count_relay(RelayResult::TooLarge))?;
    match node.relay(client, target, data).await? {
        Ok(Some(reply)) => Ok(([(CONTENT_TYPE, "application/octet-stream")], reply).into_response()),
        Ok(None) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(e) => Err(refusal(e)),
    }
}

/// The target named by `X-Kadmesh-Relay-To`: a literal `ip:port` (IPv6 in
/// brackets), port not 0.
pub fn target(headers: &HeaderMap) -> Result<SocketAddr, ApiError> {
    let text = headers
        .get(RELAY_TO_HEADER)
        .ok_or_else(|| ApiError::invalid("missing X-Kadmesh-Relay-To: ip:port"))?
        .to_str()
        .map_err(|_| ApiError::invalid("X-Kadmesh-Relay-To is not ASCII"))?;
    text.trim()
        .parse::<SocketAddr>()
        .ok()
        .filter(|a| a.port() != 0)
        .ok_or_else(|| ApiError::invalid(format!("X-Kadmesh-Relay-To {text:?} is not ip:port")))
}

fn refusal(e: RelayError) -> ApiError {
    let (status, code) = match e {
        RelayError::Refused(RelayRefusal::Malformed) => (StatusCode::BAD_REQUEST, "invalid_input"),
        RelayError::Refused(RelayRefusal::Limited) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        RelayError::Refused(RelayRefusal::UnknownTarget) => (StatusCode::FORBIDDEN, "unknown_target"),
        RelayError::Timeout => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
        RelayError::Busy | RelayError::NoUdp | RelayError::ToSelf => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    };
    ApiError { status, code, detail: e.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_header_must_be_a_literal_address_with_a_port() {
        let mut h = HeaderMap::new();
        assert_eq!(target(&h).unwrap_err().status, StatusCode::BAD_REQUEST);
        for bad in ["example.com:80", "10.0.0.1", "10.0.0.1:0", "10.0.0.1:99999", "garbage"] {
            h.insert(RELAY_TO_HEADER, bad.parse().unwrap());
            assert!(target(&h).is_err(), "{bad}");
        }
        h.insert(RELAY_TO_HEADER, "[::1]:4000".parse().unwrap());
        assert_eq!(target(&h).unwrap(), "[::1]:4000".parse().unwrap());
        h.insert(RELAY_TO_HEADER, "10.0.0.1:4000".parse().unwrap());
        assert_eq!(target(&h).unwrap(), "10.0.0.1:4000".parse().unwrap());
    }
}
