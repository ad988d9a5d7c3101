//! kadmesh: a Kademlia DHT over UDP, wire-compatible with the Python
//! `kademlia` 2.2 package, for finding workers of a distributed
//! document-processing platform without a central router.
//!
//! # Design
//! The protocol is a **sans-IO core**: the [`engine::Engine`] takes bytes and
//! the current time in and gives datagrams to send, timers and finished
//! commands out. It never touches a socket, a clock or the OS RNG, so the
//! same code runs on real UDP under the tokio [`node`] driver and on a virtual
//! network of thousands of nodes in the simulator (`simulations/`), in
//! virtual time and reproducibly from a seed.
//!
//! # Layout
//! - [`time`]: time as plain data.
//! - [`id`]: node ids, keys (SHA-1, as Python's `digest()`), XOR distance.
//! - [`contact`]: an id with the address it answers on; [`tunnel`]: the
//!   addresses that stand for a URL contact or a request that came over HTTP.
//! - [`wire`]: rpcudp framing and the msgpack codec; never panics on input.
//! - [`routing`]: k-buckets with splitting, ping-before-evict and
//!   replacement caches.
//! - [`rpc`]: outstanding requests, matched by message id and sender.
//! - [`lookup`]: the iterative lookup state machine (alpha-parallel,
//!   proximity-aware among candidates of equal rank).
//! - [`rtt`], [`proximity`]: round-trip estimates, network-wide and per
//!   address (bounded), for per-contact stalls and nearer-first choices.
//! - [`store`]: records with expiry and memory bounds.
//! - [`limits`]: rate limits, storage quotas, reply budgets, the node-id
//!   churn bound, the handover pace and bounded maps: what a stranger can
//!   make a node spend.
//! - [`store`]: records with expiry and memory bounds; [`signed`]: signed
//!   worker records and the rule for replacing them; [`endorsement`]:
//!   coordinator certificates for workers.
//! - [`engine`]: one node, tying the above together: its operations (each
//!   command and maintenance task a state machine of its own), republishing,
//!   replication to newcomers and bucket refresh.
//! - [`reach`]: whether other nodes can reach us over UDP (dial-back
//!   probes through a third node) and client mode for nodes they cannot
//!   (`proto-spec/EXTENSIONS.md` §7); the engine's part is `engine::dialback`.
//! - [`node`]: the tokio driver on a real UDP socket (or none, through an
//!   HTTP relay: `proto-spec/EXTENSIONS.md` §8) and its async handle.
//! - [`seeds`]: resolving `host:port` seeds and bootstrap URLs;
//!   [`seed_order`]: the order seed sources are tried in (edge router last).
//! - [`persist`]: saving and restoring node state in a data directory.
//! - [`discovery`]: worker records, concurrent-safe service provider sets
//!   (extension RPCs, see `proto-spec/EXTENSIONS.md`), discover with
//!   filters, local cache and coordinator fallback.
//! - [`http`]: the axum surface the platform's workers and frontend speak.
//! - [`client`], [`crawl`]: what `dhtctl` is built from.
//! - [`fuzzing`]: the property of each fuzz target, replayed by `cargo test`.
//!
//! # The path of a `find_node` reply
//! 1. [`engine::Engine::handle_datagram`] decodes it (a fast path for nodes replies).
//! 2. `engine::router` matches it to its request by id and sender, and learns the sender.
//! 3. The request's `ReplyTo::Op` names the operation; the router lends it `op::Cx`.
//! 4. Its `op::search::Search` feeds the [`lookup::Lookup`] and sends the next queries.
//! 5. Once done it returns `Step::Done`; the router drops it and queues an [`engine::Event`].
//!
//! Binaries: `dhtd` (the daemon; `dhtd demo`, `dhtd config`, `dhtd health`),
//! `dhtctl` (the CLI).
//! Nothing below [`node`] imports tokio; the engine's extension handlers for
//! provider sets live in `engine::providers`, still without I/O.
#![deny(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]
#![warn(missing_docs)]

pub mod client;
pub mod contact;
pub mod crawl;
pub mod discovery;
pub mod endorsement;
pub mod engine;
pub mod fuzzing;
pub mod http;
pub mod id;
pub mod limits;
pub mod lookup;
pub mod node;
pub mod persist;
pub mod proximity;
pub mod reach;
pub mod routing;
pub mod rpc;
pub mod rtt;
pub mod seed_order;
pub mod seeds;
pub mod signed;
pub mod store;
pub mod time;
pub mod tunnel;
pub mod wire;
