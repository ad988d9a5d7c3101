//! Kernel buffer sizes of the node's UDP socket, and the second socket
//! that reachability probes leave from.
//!
//! A node answers every datagram from one task; during a burst (a lookup
//! wave from many peers, a restarted network rejoining, a flood the rate
//! limiter is about to drop) datagrams queue in the kernel's receive
//! buffer, and Linux's default (about 208 KiB, some 150 full-size
//! datagrams) overflows and drops them silently before the engine can even
//! count them. Larger buffers absorb such bursts; the kernel caps the
//! request at `net.core.rmem_max` / `wmem_max`, which is logged so an
//! operator knows to raise it.

use std::net::SocketAddr;

use tokio::net::UdpSocket;

/// A second socket on the node's IP and any free port, that only sends:
/// reachability probes leave from it
/// ([`crate::engine::Transmit::from_other_port`]). `None` (logged) when it
/// cannot be bound; probes then leave from the node's own socket and prove
/// less. Must be called inside the tokio runtime.
pub(super) fn probe_socket(node: SocketAddr) -> Option<UdpSocket> {
    let bound = std::net::UdpSocket::bind(SocketAddr::new(node.ip(), 0))
        .and_then(|s| s.set_nonblocking(true).map(|()| s))
        .and_then(UdpSocket::from_std);
    match bound {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "no second UDP socket for reachability probes; they leave from the DHT port");
            None
        }
    }
}

/// Requested `SO_RCVBUF` / `SO_SNDBUF` sizes, bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketBuffers {
    /// Receive buffer. Default 4 MiB (about 3,000 full-size datagrams).
    pub recv: usize,
    /// Send buffer. Default 1 MiB (replies and lookup waves leave in
    /// bursts too).
    pub send: usize,
}

impl Default for SocketBuffers {
    fn default() -> Self {
        SocketBuffers { recv: 4 << 20, send: 1 << 20 }
    }
}

impl SocketBuffers {
    /// Asks the kernel for these sizes on `socket` and returns what it
    /// granted (Linux reports twice the usable size). A size of zero leaves
    /// that buffer at the system default. Failing to set a size is not
    /// fatal: the socket works with its default, and a warning says so.
    pub fn apply(&self, socket: &UdpSocket) -> (usize, usize) {
        let sock = socket2::SockRef::from(socket);
        if self.recv > 0 {
            if let Err(e) = sock.set_recv_buffer_size(self.recv) {
                tracing::warn!("cannot set the UDP receive buffer to {} bytes: {e}", self.recv);
            }
        }
        if self.send > 0 {
            if let Err(e) = sock.set_send_buffer_size(self.send) {
                tracing::warn!("cannot set the UDP send buffer to {} bytes: {e}", self.send);
            }
        }
        let granted = (sock.recv_buffer_size().unwrap_or(0), sock.send_buffer_size().unwrap_or(0));
        if granted.0 < self.recv || granted.1 < self.send {
            tracing::info!(
                requested_recv = self.recv,
                requested_send = self.send,
                granted_recv = granted.0,
                granted_send = granted.1,
                "the kernel capped the UDP socket buffers; raise net.core.rmem_max / wmem_max for more"
            );
        }
        granted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn buffers_grow_beyond_the_default_when_asked() {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let before = socket2::SockRef::from(&socket).recv_buffer_size().unwrap();
        let (recv, send) = SocketBuffers { recv: before * 2, send: before * 2 }.apply(&socket);
        // The kernel caps the request at rmem_max: it must grow wherever
        // that cap allows (Linux reports twice the size it keeps).
        let cap = std::fs::read_to_string("/proc/sys/net/core/rmem_max").ok().and_then(|s| s.trim().parse().ok());
        if cap.is_some_and(|c: usize| c * 2 > before) {
            assert!(recv > before, "{recv} <= {before}");
        }
        assert!(send > 0);
        let untouched = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let zero = SocketBuffers { recv: 0, send: 0 }.apply(&untouched);
        assert_eq!(zero.0, before, "zero leaves the default");
    }
}
