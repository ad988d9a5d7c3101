//! A raw UDP peer for tests of what a node does to strangers: sends any
//! request from a chosen loopback address (127.0.0.0/8 is all loopback on
//! Linux, so each test source can sit in its own /24) and collects what
//! comes back.

use std::net::SocketAddr;
use std::time::Duration;

use kadmesh::engine::Config;
use kadmesh::id::NodeId;
use kadmesh::limits::Limits;
use kadmesh::wire::{self, Call, Datagram, MessageId};
use tokio::net::UdpSocket;

/// Engine settings under which loopback sources are limited like any
/// other address (by default loopback is exempt).
pub fn limited(limits: Limits) -> Config {
    Config { limits: Limits { exempt_loopback: false, ..limits }, ..Config::default() }
}

/// A stranger's socket.
pub struct Raw {
    /// The socket, bound to `127.a.b.c:0`.
    pub sock: UdpSocket,
    /// The id it claims.
    pub id: NodeId,
}

impl Raw {
    /// Binds `ip:0` with a random id.
    pub async fn bind(ip: [u8; 4]) -> Raw {
        let sock = UdpSocket::bind(SocketAddr::from((ip, 0))).await.unwrap();
        Raw { sock, id: NodeId::random(&mut rand::thread_rng()) }
    }

    /// The encoded request datagram of `call` with message id `n`.
    pub fn request(n: u32, call: Call) -> Vec<u8> {
        let mut id = [0x5a; 20];
        id[..4].copy_from_slice(&n.to_be_bytes());
        Datagram::request(MessageId(id), call).encode().unwrap()
    }

    /// Sends `call` and returns the request's size and the reply's bytes,
    /// if one comes within `wait` (requests the node sends us are skipped).
    pub async fn call(&self, to: SocketAddr, n: u32, call: Call, wait: Duration) -> (usize, Option<Vec<u8>>) {
        let bytes = Raw::request(n, call);
        self.sock.send_to(&bytes, to).await.unwrap();
        let want = wire::decode(&bytes).unwrap().id();
        let deadline = tokio::time::Instant::now() + wait;
        let mut buf = vec![0u8; 65_536];
        loop {
            let Ok(Ok(got)) = tokio::time::timeout_at(deadline, self.sock.recv(&mut buf)).await else {
                return (bytes.len(), None);
            };
            if let Ok(Datagram::Response { id, .. }) = wire::decode(&buf[..got]) {
                if id == want {
                    return (bytes.len(), Some(buf[..got].to_vec()));
                }
            }
        }
    }

    /// Every datagram that arrives within `wait`.
    pub async fn drain(&self, wait: Duration) -> Vec<Vec<u8>> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut buf = vec![0u8; 65_536];
        let mut got = Vec::new();
        while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, self.sock.recv(&mut buf)).await {
            got.push(buf[..n].to_vec());
        }
        got
    }

    /// Answers every ping the node sends within `wait` (which makes this
    /// address a verified contact of the node); returns how many.
    pub async fn answer_pings(&self, wait: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + wait;
        let mut buf = vec![0u8; 65_536];
        let mut answered = 0;
        while let Ok(Ok((n, from))) = tokio::time::timeout_at(deadline, self.sock.recv_from(&mut buf)).await {
            if let Ok(Datagram::Request { id, call: Call::Ping { .. } }) = wire::decode(&buf[..n]) {
                let reply = Datagram::response(id, kadmesh::wire::Value::Bin(self.id.0.to_vec()));
                self.sock.send_to(&reply.encode().unwrap(), from).await.unwrap();
                answered += 1;
            }
        }
        answered
    }
}
