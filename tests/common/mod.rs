//! Helpers shared by the integration tests; each test file pulls them in
//! with `mod common;`.
//!
//! - [`cluster`]: that network plus an HTTP client, as most HTTP tests use it.
//! - [`python`]: spawn real Python `kademlia` peers ([`python::PyNode`]) to
//!   talk to from Rust.
//! - [`raw`]: a raw UDP stranger on a chosen loopback address.
//! - [`surface`]: a test network serving the HTTP surface on every node.
//! - [`worker`]: stand-in HTTP workers for the routing tests.
// Every test file compiles this module but uses only part of it.
#![allow(dead_code)]

pub mod cluster;
pub mod platform;
pub mod python;
pub mod raw;
pub mod surface;
pub mod worker;
