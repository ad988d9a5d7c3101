//! Helpers shared by the integration tests; each test file pulls them in
//! with `mod common;`.
//!
//! - [`python`]: spawn real Python `kademlia` peers ([`python::PyNode`]) to
//!   talk to from Rust.
//! - [`surface`]: a test network serving the HTTP surface on every node.
//! - [`worker`]: stand-in HTTP workers for the routing tests.
// Every test file compiles this module but uses only part of it.
#![allow(dead_code)]

pub mod platform;
pub mod python;
pub mod surface;
pub mod worker;
