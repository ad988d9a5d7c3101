//! Provider sets: which workers offer a service, held by the nodes closest to
//! the service's key and grown by many writers at once without losing any.
//!
//! The platform's first DHT kept one JSON list per service and updated it by
//! read-modify-write, so two workers registering at once lost one. Here a
//! replica *merges*: [`ADD`] adds or refreshes entries by worker id and never
//! replaces the set, so concurrent writers through any number of nodes all
//! land. Each entry carries its publisher's version and its own lifetime; a
//! removal ([`REMOVE`]) is a tombstone with a newer version, so a late add
//! cannot bring a removed worker back. [`LIST`] reads a set in pages that
//! fit one typical-MTU datagram ([`MAX_PAGE_DATAGRAM`]). Sets and the whole
//! store are bounded ([`ProviderLimits`]). The wire format is specified in
//! `proto-spec/EXTENSIONS.md`.
//!
//! Provider sets live beside the record store, not in it: the legacy
//! `service:{type}` JSON list that Python peers keep under the same key is
//! left alone, and stock peers never receive these procedures (unknown names
//! get no reply, so callers only send them to peers known to speak them).
//! Expired entries are invisible at once and swept every [`SWEEP_EVERY`].
//!
//! Entries may be **signed** by the worker's key ([`signature`]); a signed
//! entry binds its id to that key while it lives, and only that key's newer
//! entries replace or remove it ([`rules`]).
//!
//! Layout: [`store`] holds the sets and their bounds, [`rules`] decides what
//! an incoming entry does to a held one, [`signature`] is the signed
//! encoding, [`wire`] the entry formats of the procedures, and `rpc` answers
//! them for the [`Engine`](super::Engine); [`client`] is the calling side
//! (requests, pages, merge rules) the provider operations use.

use std::time::Duration;

use crate::time::Time;
use crate::wire::HEADER_LEN;

pub mod client;
mod rpc;
pub mod rules;
pub mod signature;
mod store;
pub mod wire;

pub use signature::EntrySignature;
pub use store::ProviderStore;

/// `kadmesh_provider_add(sender, key, entries)`: add or refresh providers.
pub const ADD: &str = "kadmesh_provider_add";
/// `kadmesh_provider_remove(sender, key, entries)`: tombstone providers.
pub const REMOVE: &str = "kadmesh_provider_remove";
/// `kadmesh_providers(sender, key, after, max)`: read one page of a set.
pub const LIST: &str = "kadmesh_providers";
/// Every provider procedure name starts with this.
pub(crate) const PREFIX: &str = "kadmesh_provider";
/// Largest `LIST` reply datagram: fits the IPv6 minimum MTU (1280) minus
/// IP and UDP headers, so pages never fragment.
pub const MAX_PAGE_DATAGRAM: usize = 1232;
/// Longest worker id, in bytes; keeps the largest entry well inside a page.
pub const MAX_ID_LEN: usize = 128;
/// Most entries one write or one page carries.
pub const MAX_ENTRIES_PER_CALL: usize = 256;
/// How often expired entries are dropped from memory.
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// Bytes of a `LIST` reply outside its entries: header, map keys, the
/// longest `next` cursor, the `live` count and the `fp` fingerprint.
const PAGE_OVERHEAD: usize = HEADER_LEN + 1 + 8 + 3 + 5 + 2 + MAX_ID_LEN + 5 + 9 + 3 + 9;

/// Bounds of a [`ProviderStore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProviderLimits {
    /// Most entries in one set; when full, the entry expiring soonest makes
    /// room, but only for a newcomer that outlives it.
    pub max_per_set: usize,
    /// Most sets held.
    pub max_sets: usize,
    /// Most entries held over all sets.
    pub max_entries: usize,
    /// Longest lifetime an entry may ask for.
    pub max_ttl: Duration,
}

impl Default for ProviderLimits {
    fn default() -> Self {
        ProviderLimits {
            max_per_set: 10_000,
            max_sets: 20_000,
            max_entries: 200_000,
            max_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// One provider of a service as a replica holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct ProviderEntry {
    /// The worker id.
    pub id: String,
    /// The publisher's version of this entry; higher wins.
    pub version: u64,
    /// When the replica stops serving it.
    pub expires_at: Time,
    /// The load the publisher announced, as a hint for ordering.
    pub load: Option<f64>,
    /// A tombstone: the worker was removed at `version`.
    pub gone: bool,
    /// The signer's proof, for a signed entry (verified before it is held).
    pub signature: Option<EntrySignature>,
}

/// A worker id as provider sets accept it: 1 to [`MAX_ID_LEN`] bytes of
/// ASCII letters, digits and `.`, `_`, `:`, `@`, `-`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'@' | b'-'))
}

#[cfg(test)]
mod tests;
