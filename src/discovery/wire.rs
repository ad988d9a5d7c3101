//! The calling side of the provider-set procedures, kept here under its old
//! path for callers; it lives in the sans-IO core
//! ([`crate::engine::providers::client`]), where the provider operations use it.

pub use crate::engine::providers::client::*;
