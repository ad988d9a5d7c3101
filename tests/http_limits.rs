//! The HTTP limits over real TCP on loopback: slow-loris and idle
//! connections are closed within the header-read timeout, a request head
//! over the bound is refused (431) without the server reading on, connections over
//! the per-IP and total caps are refused, an oversize body is a 413 JSON,
//! a slow body upload is cut off by the request timeout, a registration
//! naming too many services is a 400, and `/metrics` counts each refusal.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use kadmesh::discovery::testnet::Testnet;
use kadmesh::discovery::DiscoveryConfig;
use kadmesh::engine::Config;
use kadmesh::http::HttpLimits;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;

/// One node with its HTTP surface under `limits`.
struct Server {
    addr: SocketAddr,
    _net: Testnet,
    _stop: oneshot::Sender<()>,
}

async fn server(limits: HttpLimits) -> Server {
    let net = Testnet::start(1, 0, Config::default(), DiscoveryConfig::default()).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(kadmesh::http::serve_with(
        listener,
        net.nodes[0].clone(),
        kadmesh::http::HttpOptions { limits, ..Default::default() },
        async {
            let _ = rx.await;
        },
    ));
    Server { addr, _net: net, _stop: tx }
}

/// A connection from `source` (any 127.0.0.0/8 address is loopback).
async fn connect(to: SocketAddr, source: [u8; 4]) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::from((source, 0))).unwrap();
    sock.connect(to).await.unwrap()
}

/// Reads until the peer closes (or `limit` passes); the bytes read and
/// whether it closed.
async fn read_to_close(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (got, true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (got, false),
        }
    }
}

async fn metric(addr: SocketAddr, name: &str) -> f64 {
    let text = reqwest::get(format!("http://{addr}/metrics")).await.unwrap().text().await.unwrap();
    let line = text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} missing:\n{text}"));
    line.rsplit_once(' ').unwrap().1.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_loris_and_idle_connections_are_closed_within_the_header_timeout() {
    let timeout = Duration::from_millis(500);
    let s = server(HttpLimits { header_read_timeout: timeout, ..HttpLimits::default() }).await;
    let started = Instant::now();
    let mut slow = Vec::new();
    for _ in 0..20 {
        let mut c = connect(s.addr, [127, 0, 0, 1]).await;
        c.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        slow.push(c);
    }
    let mut idle = connect(s.addr, [127, 0, 0, 1]).await;
    idle.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    for c in &mut slow {
        let (_, closed) = read_to_close(c, Duration::from_secs(5)).await;
        assert!(closed, "a slow-loris connection stayed open");
    }
    assert!(started.elapsed() < timeout * 4, "closed after {:?}", started.elapsed());
    let (answer, closed) = read_to_close(&mut idle, Duration::from_secs(5)).await;
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"), "the idle connection got its answer first");
    assert!(closed, "an idle keep-alive connection stayed open");
    assert!(started.elapsed() < timeout * 4, "closed after {:?}", started.elapsed());
    assert_eq!(metric(s.addr, "kadmesh_http_connections_open").await, 1.0, "only the metrics request is open");
}

/// Sends a request whose head is `header_bytes` of headers (1 KiB each),
/// stopping at the first failed write; the bytes written and what came back.
async fn big_head(to: SocketAddr, header_bytes: usize) -> (usize, String, bool) {
    let mut c = connect(to, [127, 0, 0, 1]).await;
    let mut sent = 0;
    let mut head = b"GET /health/live HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..header_bytes / 1024 {
        head.extend_from_slice(format!("x-pad-{i:06}: {}\r\n", "a".repeat(1024 - 17)).as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    for chunk in head.chunks(4096) {
        if c.write_all(chunk).await.is_err() {
            break;
        }
        sent += chunk.len();
        tokio::task::yield_now().await;
    }
    let (answer, closed) = read_to_close(&mut c, Duration::from_secs(5)).await;
    (sent, String::from_utf8_lossy(&answer).into_owned(), closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_over_the_bound_is_refused_and_not_read_on() {
    let limits = HttpLimits { max_header_bytes: 16 * 1024, ..HttpLimits::default() };
    let s = server(limits).await;
    let (_, answer, _) = big_head(s.addr, 12 * 1024).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "a 12 KiB head is within the bound: {answer}");
    // A 32 MiB head: the server answers 431 once its 16 KiB buffer is full
    // and closes, so the rest is never buffered (our writes fail or land
    // in the kernel's socket buffers, a few MiB at most).
    let (sent, answer, closed) = big_head(s.addr, 32 << 20).await;
    eprintln!("32 MiB head: {sent} bytes written before the close, answer {:?}", answer.lines().next());
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert!(closed, "the connection stayed open");
    assert!(sent < 32 << 20, "the server read a 32 MiB head to its end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_per_ip_and_total_caps_are_refused() {
    let limits = HttpLimits { max_connections: 6, max_connections_per_ip: 4, ..HttpLimits::default() };
    let s = server(limits).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect(s.addr, [127, 0, 0, 1]).await);
    }
    // Accepted connections are admitted in order, so give the loop a moment.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut over = connect(s.addr, [127, 0, 0, 1]).await;
    let (answer, closed) = read_to_close(&mut over, Duration::from_secs(2)).await;
    assert!(closed, "a fifth connection from one IP was kept");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.is_empty() || text.starts_with("HTTP/1.1 503"), "{text}");
    for _ in 0..2 {
        held.push(connect(s.addr, [127, 0, 0, 2]).await);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut over_total = connect(s.addr, [127, 0, 0, 3]).await;
    let (_, closed) = read_to_close(&mut over_total, Duration::from_secs(2)).await;
    assert!(closed, "a seventh connection was kept over the total cap of 6");
    drop(held);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(metric(s.addr, "kadmesh_http_connections_refused_total{cap=\"per_ip\"}").await, 1.0);
    assert_eq!(metric(s.addr, "kadmesh_http_connections_refused_total{cap=\"total\"}").await, 1.0);
}

async fn post(addr: SocketAddr, path: &str, body: Vec<u8>) -> (u16, Value) {
    let r = reqwest::Client::new().post(format!("http://{addr}{path}")).body(body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_bodies_get_413_json_and_too_many_services_400() {
    let s = server(HttpLimits { max_body: 4096, ..HttpLimits::default() }).await;
    let (status, v) = post(s.addr, "/api/worker/register", vec![b' '; 5000]).await;
    assert_eq!((status, v["error"].as_str()), (413, Some("payload_too_large")), "{v}");
    assert!(v["detail"].as_str().unwrap().contains("4096"), "{v}");
    let services: Vec<String> = (0..17).map(|i| format!("svc-{i}")).collect();
    let body = json!({"worker_id": "w1", "tunnel_url": "https://w1.example.net", "services": services});
    let (status, v) = post(s.addr, "/api/worker/register", serde_json::to_vec(&body).unwrap()).await;
    assert_eq!((status, v["error"].as_str()), (400, Some("invalid_input")), "{v}");
    assert!(v["detail"].as_str().unwrap().contains("at most 16"), "{v}");
    assert_eq!(metric(s.addr, "kadmesh_http_bodies_too_large_total").await, 1.0);
    assert_eq!(metric(s.addr, "kadmesh_http_too_many_services_total").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_finishes_is_cut_off_by_the_request_timeout() {
    let s = server(HttpLimits { request_timeout: Duration::from_millis(300), ..HttpLimits::default() }).await;
    let mut c = connect(s.addr, [127, 0, 0, 1]).await;
    let head = "POST /api/worker/heartbeat HTTP/1.1\r\nHost: x\r\ncontent-length: 100\r\n\r\n{\"worker";
    c.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("\"timeout\""), "{text}");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert_eq!(metric(s.addr, "kadmesh_http_request_timeouts_total").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_is_remembered_briefly_but_a_local_registration_shows_at_once() {
    let s = server(HttpLimits::default()).await;
    let discover = || async {
        let r = reqwest::get(format!("http://{}/api/services/discover/ocr", s.addr)).await.unwrap();
        let status = r.status().as_u16();
        (status, r.json::<Value>().await.unwrap())
    };
    let (status, first) = discover().await;
    assert_eq!(status, 503, "{first}");
    assert!(!first["detail"].as_str().unwrap().contains("remembered"), "{first}");
    let (status, second) = discover().await;
    assert_eq!(status, 503, "{second}");
    assert!(second["detail"].as_str().unwrap().contains("remembered"), "{second}");
    let body = json!({"worker_id": "w1", "tunnel_url": "https://w1.example.net", "services": ["ocr"]});
    let (status, v) = post(s.addr, "/api/worker/register", serde_json::to_vec(&body).unwrap()).await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = discover().await;
    assert_eq!((status, v["recommended"].as_str()), (200, Some("w1")), "{v}");
}
