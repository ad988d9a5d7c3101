//! Helpers shared by the integration tests; each test file pulls them in
//! with `mod common;`.
//!
//! - [`cluster`]: that network plus an HTTP client, as most HTTP tests use it.
//! - [`python`]: spawn real Python `kademlia` peers ([`python::PyNode`]) to
//!   talk to from Rust.
//! - [`raw`]: a raw UDP stranger on a chosen loopback address.
//! - [`surface`]: a test network serving the HTTP surface on every node.
//! - [`worker`]: stand-in HTTP workers for the routing tests.
//! - [`eventually`]: poll a condition with a bound.
// Every test file compiles this module but uses only part of it.
#![allow(dead_code)]

pub mod cluster;
pub mod platform;
pub mod python;
pub mod raw;
pub mod surface;
pub mod worker;

use std::time::Duration;

/// Polls `check` every 100 ms for up to 15 s; panics naming `what` if it
/// never holds.
pub async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..150 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting until {what}");
}
