//! Oversized bodies answered cleanly. A 413 sent while the client is still
//! sending leaves unread bytes in our socket; closing it then makes the
//! kernel send a reset, which can reach the client before it has read the
//! 413, so it sees a broken connection instead of the JSON error (seen in
//! `tests/http.rs` under load). So the rest of the body of a request
//! answered 413 is read and dropped before the answer goes out, up to
//! [`DRAIN_MAX`] bytes and within the request timeout (this layer runs
//! inside it): a bounded form of nginx's "lingering close". A client that
//! sends more than that is cut off as before.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use hyper::body::{Frame, SizeHint};

/// The most of a refused body read before answering.
pub const DRAIN_MAX: usize = 1 << 20;

/// The request body, shared between the handler and this layer, which
/// reads what the handler left once the answer is a 413.
#[derive(Clone)]
struct Shared(Arc<Mutex<Body>>);

impl Shared {
    fn body(&self) -> MutexGuard<'_, Body> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl HttpBody for Shared {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut *self.body()).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body().is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body().size_hint()
    }
}

/// Middleware: reads and drops what is left of the body of a request
/// answered 413, up to [`DRAIN_MAX`] bytes, before answering.
pub async fn drain_refused(req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let shared = Shared(Arc::new(Mutex::new(body)));
    let response = next.run(Request::from_parts(parts, Body::new(shared.clone()))).await;
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        drain(shared).await;
    }
    response
}

async fn drain(mut shared: Shared) {
    let mut read = 0;
    while read <= DRAIN_MAX {
        match std::future::poll_fn(|cx| Pin::new(&mut shared).poll_frame(cx)).await {
            Some(Ok(frame)) => read += frame.data_ref().map_or(0, Bytes::len),
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::post;
    use axum::Router;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server whose one route refuses any body over 16 bytes.
    async fn serve() -> std::net::SocketAddr {
        let app = Router::new()
            .route("/", post(|_: Bytes| async { "ok" }))
            .layer(axum::extract::DefaultBodyLimit::max(16))
            .layer(axum::middleware::from_fn(drain_refused));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    /// Posts `len` bytes in 4 KiB pieces, a little slower than the server
    /// answers; what came back (an error if the connection broke).
    async fn post_slowly(addr: std::net::SocketAddr, len: usize) -> std::io::Result<String> {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        let head = format!("POST / HTTP/1.1\r\nhost: x\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n");
        s.write_all(head.as_bytes()).await?;
        for _ in 0..len / 4096 {
            s.write_all(&[b'x'; 4096]).await?;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let mut answer = String::new();
        s.read_to_string(&mut answer).await?;
        Ok(answer)
    }

    #[tokio::test]
    async fn a_refused_body_is_read_to_its_end_before_the_413() {
        let addr = serve().await;
        let answer = post_slowly(addr, 256 * 1024).await.expect("the connection broke instead of a 413");
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    }

    #[tokio::test]
    async fn a_body_within_the_limit_passes_through_the_layer() {
        let addr = serve().await;
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\nconnection: close\r\n\r\ntiny";
        s.write_all(request).await.unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok"), "{answer}");
    }
}
