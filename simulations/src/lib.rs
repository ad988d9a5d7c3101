//! A deterministic simulator for the kadmesh DHT.
//!
//! It runs the project's own sans-IO [`kadmesh::engine::Engine`] for
//! thousands of nodes in virtual time over a virtual wide-area network, with
//! churn, worker announcements and client lookups, and reports what the
//! platform cares about: lookup success and latency, traffic per node, how
//! fast workers appear and disappear, and how often the edge router is asked
//! for bootstrap seeds. The same seed gives the same report, byte for byte.
//!
//! # Layout
//! - [`world`]: machines, the event loop and the virtual clock; [`window`]:
//!   machines handling their events side by side; [`pair`]: the second thread.
//! - [`net`], [`latency`]: the network, its RTT and loss model, partitions.
//! - [`churn`]: session lengths and restarts.
//! - [`lifecycle`]: starting, joining (seed sources), crashing, scenario events.
//! - [`workload`]: announcements, lookups and the appearance/disappearance probes.
//! - [`discover`]: provider-set writes by workers and discovers by clients
//!   (the core's `provider_write` / `provider_read`), with their success rule.
//! - [`scenario`]: the named experiments; [`report`]: tables and charts;
//!   [`nat`]: workers behind NAT, with and without client mode, side by side.
//! - [`metrics`], [`svg`]: percentiles and a small SVG plotter.

pub mod agenda;
pub mod announce;
pub mod churn;
pub mod discover;
pub mod hash;
pub mod latency;
pub mod lifecycle;
pub mod metrics;
pub mod nat;
pub mod net;
pub mod node;
pub mod pair;
pub mod params;
pub mod report;
pub mod runstats;
pub mod scenario;
pub mod svg;
pub mod window;
pub mod workload;
pub mod world;

pub use params::{SeedSource, SimParams};
pub use report::Report;
pub use scenario::{RunOptions, Scenario};
