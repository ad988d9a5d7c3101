//! `POST /api/dht/rpc`: the DHT's RPCs over HTTP, for peers that cannot
//! reach this node over UDP (its tunnel URL carries HTTP only).
//!
//! The body is exactly one rpcudp request datagram; the answer is the reply
//! datagram (`application/octet-stream`), or 204 when the procedure has no
//! reply (unknown, or malformed arguments: silence, as over UDP). The
//! engine handles it as a request from `client_ip:0` (see
//! [`crate::tunnel`]), so the same per-IP rate limit, quotas and checks as
//! for UDP apply, and the reply comes back here, never over UDP.
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
use axum::http::{header::CONTENT_TYPE, StatusCode};
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
    body: Body,
) -> Result<Response, ApiError> {
    // Without a connection (a router driven in-process) every request shares one key.
    let client = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |Extension(ConnectInfo(a))| a.ip());
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

/// The body, at most one datagram long.
async fn read_datagram(body: Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_DATAGRAM).await.map_err(|_| ApiError {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        code: "payload_too_large",
        detail: format!("a DHT request is one datagram, at most {MAX_DATAGRAM} bytes"),
    })
}
