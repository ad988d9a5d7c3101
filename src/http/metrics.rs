//! `GET /metrics`: Prometheus text format (version 0.0.4), hand-written: a
//! few dozen lines do not justify a metrics crate.
//!
//! Families: `kadmesh_lookups_total{result}`, `kadmesh_lookup_duration_seconds`
//! (histogram), `kadmesh_rpcs_sent_total{kind}`, `kadmesh_rpcs_received_total{kind}`,
//! `kadmesh_rpc_timeouts_total`, `kadmesh_routing_table_size`,
//! `kadmesh_peers{peer}`, `kadmesh_records_held`, `kadmesh_record_bytes`,
//! `kadmesh_provider_sets`, `kadmesh_provider_entries`,
//! `kadmesh_bootstrap_url_fetches_total{result}`, `kadmesh_joins_total{source}`,
//! `kadmesh_seed_fetches_total{source,result}`, `kadmesh_workers_registered`,
//! the limits against strangers (`kadmesh_requests_dropped_total{bucket}`,
//! `kadmesh_quota_refusals_total{store}`, `kadmesh_replies_trimmed_total`,
//! `kadmesh_bounded_map_entries{map}`, the `kadmesh_http_*` families of
//! [`super::limits`]) and the engine's and discovery layer's other counters.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::Extension;

use super::error::ApiError;
use super::limits::HttpGuard;
use crate::discovery::metrics::{read, LookupResult, Metrics, LATENCY_BUCKETS};
use crate::discovery::Discovery;
use crate::engine::{PeerKind, Stats, RPC_LABELS};

/// Joins by the seed source that served them, and URL fetches per source.
fn join_families(out: &mut String, j: &crate::node::JoinCounts) {
    use crate::seed_order::SeedSource;
    family(out, "kadmesh_joins_total", "counter", "Joins, by the seed source whose seeds answered.");
    for s in SeedSource::ORDER {
        let _ = writeln!(out, "kadmesh_joins_total{{source=\"{}\"}} {}", s.name(), j.joins(s));
    }
    family(out, "kadmesh_seed_fetches_total", "counter", "Seed-source URL fetches, by source and result.");
    for s in [SeedSource::Configured, SeedSource::SeedList, SeedSource::Edge] {
        let (ok, failed) = j.fetches(s);
        let _ = writeln!(out, "kadmesh_seed_fetches_total{{source=\"{}\",result=\"ok\"}} {ok}", s.name());
        let _ = writeln!(out, "kadmesh_seed_fetches_total{{source=\"{}\",result=\"error\"}} {failed}", s.name());
    }
}

/// The content type Prometheus expects.
pub const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the engine reports, read in one pass on its task.
#[derive(Clone, Debug, Default)]
pub struct EngineSnapshot {
    /// Its counters.
    pub stats: Stats,
    /// Contacts in the routing table.
    pub routing: usize,
    /// Contacts by what they speak: kadmesh, python, unknown.
    pub peers: [usize; 3],
    /// Records held.
    pub records: usize,
    /// Encoded bytes of records held.
    pub record_bytes: usize,
    /// Provider sets held.
    pub provider_sets: usize,
    /// Provider entries held.
    pub provider_entries: usize,
    /// Operations in progress.
    pub ops: usize,
    /// What the engine's limits refused and hold.
    pub limits: crate::engine::LimitStats,
    /// The reachability verdict and whether we act as a client.
    pub reach: Option<(crate::reach::Reachability, bool)>,
    /// What the HTTP transport did (read from the node's handle).
    pub tunnel: crate::node::TunnelStats,
    /// Relay requests served (`POST /api/dht/relay`), by result.
    pub relay: crate::node::RelayStats,
}

/// Reads the snapshot from the engine.
pub async fn snapshot(d: &Discovery) -> Result<EngineSnapshot, ApiError> {
    let s = d
        .node()
        .with_engine(|e, _| {
            let mut peers = [0; 3];
            for c in e.routing().contacts() {
                peers[match e.peer_kind(&c.id) {
                    PeerKind::Extended => 0,
                    PeerKind::Base => 1,
                    PeerKind::Unknown => 2,
                }] += 1;
            }
            EngineSnapshot {
                stats: e.stats().clone(),
                routing: e.routing().len(),
                peers,
                records: e.store().len(),
                record_bytes: e.store().bytes(),
                provider_sets: e.providers().set_count(),
                provider_entries: e.providers().entry_count(),
                ops: e.ops_in_progress(),
                limits: e.limit_stats(),
                reach: Some((e.reachability().state, e.is_client())),
                tunnel: crate::node::TunnelStats::default(),
                relay: crate::node::RelayStats::default(),
            }
        })
        .await?;
    Ok(EngineSnapshot { tunnel: d.node().tunnel_stats(), relay: d.node().relay_stats(), ..s })
}

pub(crate) fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

pub(crate) fn single(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    family(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

fn rpc_families(out: &mut String, s: &Stats) {
    for (name, counts, help) in [
        ("kadmesh_rpcs_sent_total", &s.sent, "Requests sent, by procedure kind."),
        ("kadmesh_rpcs_received_total", &s.received, "Requests received, by procedure kind."),
    ] {
        family(out, name, "counter", help);
        for (label, n) in RPC_LABELS.iter().zip(counts.iter()) {
            let _ = writeln!(out, "{name}{{kind=\"{label}\"}} {n}");
        }
    }
}

fn lookup_families(out: &mut String, m: &Metrics) {
    family(out, "kadmesh_lookups_total", "counter", "Discover requests, by how they were answered.");
    for r in LookupResult::ALL {
        let _ = writeln!(out, "kadmesh_lookups_total{{result=\"{}\"}} {}", r.label(), m.lookups(r));
    }
    let name = "kadmesh_lookup_duration_seconds";
    family(out, name, "histogram", "Duration of discover lookups that went to the DHT.");
    let (buckets, sum) = m.lookup_latency.snapshot();
    for (bound, n) in LATENCY_BUCKETS.iter().zip(&buckets) {
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {n}");
    }
    let total = buckets.last().copied().unwrap_or(0);
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}\n{name}_sum {sum}\n{name}_count {total}");
}

fn limit_families(out: &mut String, l: &crate::engine::LimitStats) {
    let name = "kadmesh_requests_dropped_total";
    family(out, name, "counter", "Requests dropped by the rate limiter, by the bucket that refused them.");
    for (bucket, n) in [("ip", l.rate.dropped_ip), ("prefix", l.rate.dropped_prefix), ("global", l.rate.dropped_global)]
    {
        let _ = writeln!(out, "{name}{{bucket=\"{bucket}\"}} {n}");
    }
    let name = "kadmesh_quota_refusals_total";
    family(out, name, "counter", "Network writes refused for their source's storage quota.");
    let _ = writeln!(out, "{name}{{store=\"records\"}} {}", l.record_quota_refusals);
    let _ = writeln!(out, "{name}{{store=\"providers\"}} {}", l.provider_quota_refusals);
    let trimmed = "Replies cut to the size budget towards an address that has not answered us.";
    single(out, "kadmesh_replies_trimmed_total", "counter", trimmed, l.replies_trimmed);
    let churn = "New node ids not learned because their source IP or prefix introduced too many.";
    single(out, "kadmesh_churn_refusals_total", "counter", churn, l.churn_refusals);
    let queued = "Records waiting for their paced handover to a newly verified contact.";
    single(out, "kadmesh_handover_queued", "gauge", queued, l.handover_queued.0 as u64);
    let name = "kadmesh_bounded_map_entries";
    family(out, name, "gauge", "Entries of the maps keyed by what strangers choose (each LRU-bounded).");
    for (map, n) in [
        ("peer_kinds", l.peer_state.0),
        ("probes", l.peer_state.1),
        ("rate_ips", l.rate_sources.0),
        ("rate_prefixes", l.rate_sources.1),
        ("churn_ips", l.churn_sources.0),
        ("churn_prefixes", l.churn_sources.1),
        ("handover_contacts", l.handover_queued.1),
    ] {
        let _ = writeln!(out, "{name}{{map=\"{map}\"}} {n}");
    }
}

/// The whole exposition.
pub fn render(e: &EngineSnapshot, m: &Metrics, workers: usize) -> String {
    let mut out = String::with_capacity(4096);
    lookup_families(&mut out, m);
    rpc_families(&mut out, &e.stats);
    engine_families(&mut out, e, workers);
    limit_families(&mut out, &e.limits);
    reach_families(&mut out, e);
    tunnel_families(&mut out, &e.tunnel);
    relay_families(&mut out, e, m);
    join_families(&mut out, &m.joins);
    discovery_families(&mut out, m);
    out
}

/// The engine's own counters and what it holds.
fn engine_families(out: &mut String, e: &EngineSnapshot, workers: usize) {
    let s = &e.stats;
    single(out, "kadmesh_rpc_timeouts_total", "counter", "Requests that got no reply in time.", s.timeouts);
    single(out, "kadmesh_datagrams_received_total", "counter", "Datagrams received.", s.datagrams_received);
    single(out, "kadmesh_malformed_datagrams_total", "counter", "Datagrams that did not decode.", s.malformed);
    single(out, "kadmesh_unmatched_replies_total", "counter", "Replies matching no request.", s.unmatched_replies);
    single(out, "kadmesh_stores_accepted_total", "counter", "Values accepted by store.", s.stores_accepted);
    single(out, "kadmesh_stores_refused_total", "counter", "Values refused by store.", s.stores_refused);
    let (left, handed) = (s.records_dropped, s.handed_down);
    single(out, "kadmesh_records_left_total", "counter", "Leftover copies dropped once closer nodes had them.", left);
    single(
        out,
        "kadmesh_records_handed_down_total",
        "counter",
        "Leftover copies stored to closer nodes lacking them.",
        handed,
    );
    single(
        out,
        "kadmesh_provider_handovers_total",
        "counter",
        "Provider-set write requests sent to contacts that became one of a set's k closest.",
        s.provider_handovers,
    );
    single(out, "kadmesh_routing_table_size", "gauge", "Contacts in the routing table.", e.routing);
    family(out, "kadmesh_peers", "gauge", "Routing-table contacts by what they speak.");
    for (label, n) in ["kadmesh", "python", "unknown"].iter().zip(e.peers) {
        let _ = writeln!(out, "kadmesh_peers{{peer=\"{label}\"}} {n}");
    }
    single(out, "kadmesh_records_held", "gauge", "Records this node holds.", e.records);
    single(out, "kadmesh_record_bytes", "gauge", "Encoded bytes of records held.", e.record_bytes);
    single(out, "kadmesh_provider_sets", "gauge", "Provider sets this node holds.", e.provider_sets);
    single(out, "kadmesh_provider_entries", "gauge", "Provider entries held.", e.provider_entries);
    single(out, "kadmesh_operations_in_progress", "gauge", "Engine operations running.", e.ops);
    single(out, "kadmesh_workers_registered", "gauge", "Workers registered through this node.", workers);
}

/// Relay requests and bootstrap-URL fetches, by result.
fn relay_families(out: &mut String, e: &EngineSnapshot, m: &Metrics) {
    family(out, "kadmesh_relay_requests_total", "counter", "POST /api/dht/relay requests served, by result.");
    for r in crate::node::RelayResult::ALL {
        let _ = writeln!(out, "kadmesh_relay_requests_total{{result=\"{}\"}} {}", r.label(), e.relay.get(r));
    }
    family(out, "kadmesh_bootstrap_url_fetches_total", "counter", "Bootstrap-URL fetches, by result.");
    let _ = writeln!(out, "kadmesh_bootstrap_url_fetches_total{{result=\"ok\"}} {}", read(&m.bootstrap_url_ok));
    let _ = writeln!(out, "kadmesh_bootstrap_url_fetches_total{{result=\"error\"}} {}", read(&m.bootstrap_url_failed));
}

/// The discovery layer's counters.
fn discovery_families(out: &mut String, m: &Metrics) {
    for (name, c, help) in [
        ("kadmesh_record_puts_total", &m.record_puts, "Worker records written to the DHT."),
        ("kadmesh_record_fetches_total", &m.record_fetches, "Worker records read from the DHT."),
        ("kadmesh_legacy_list_writes_total", &m.legacy_list_writes, "Legacy service: lists written."),
        ("kadmesh_provider_writes_total", &m.provider_writes, "Provider write requests sent."),
        ("kadmesh_provider_reads_total", &m.provider_reads, "Provider pages requested."),
        ("kadmesh_provider_sets_read_total", &m.provider_sets_read, "Provider sets read."),
        (
            "kadmesh_provider_sets_from_memory_total",
            &m.provider_sets_from_memory,
            "Provider sets read from the replicas an earlier read found, without a lookup.",
        ),
        ("kadmesh_extension_failures_total", &m.extension_failures, "Extension requests unanswered."),
        ("kadmesh_registrations_total", &m.registrations, "Worker registrations accepted."),
        ("kadmesh_heartbeats_total", &m.heartbeats, "Worker heartbeats accepted."),
        ("kadmesh_coordinator_errors_total", &m.coordinator_errors, "Failed coordinator fallbacks."),
    ] {
        single(out, name, "counter", help, read(c));
    }
}

/// The DHT over HTTP: our POSTs to URL contacts by result, and the
/// requests peers sent to our `POST /api/dht/rpc`.
fn tunnel_families(out: &mut String, t: &crate::node::TunnelStats) {
    family(out, "kadmesh_tunnel_posts_total", "counter", "Datagrams sent to URL contacts over HTTP, by result.");
    for (result, n) in [
        ("answered", t.posts_answered),
        ("no_reply", t.posts_without_reply),
        ("failed", t.posts_failed),
        ("dropped", t.posts_dropped),
    ] {
        let _ = writeln!(out, "kadmesh_tunnel_posts_total{{result=\"{result}\"}} {n}");
    }
    single(
        out,
        "kadmesh_tunnel_requests_received_total",
        "counter",
        "Requests received on POST /api/dht/rpc.",
        t.requests_received,
    );
}

/// The reachability verdict as a one-hot gauge, client mode, and the
/// client requests seen from others.
fn reach_families(out: &mut String, e: &EngineSnapshot) {
    use crate::reach::Reachability as R;
    let (state, client) = e.reach.unwrap_or((R::Unknown, false));
    family(
        out,
        "kadmesh_reachability",
        "gauge",
        "1 for this node's reachability verdict (see /health for the reason).",
    );
    for r in [R::Unknown, R::Public, R::Nat, R::NoUdp] {
        let _ = writeln!(out, "kadmesh_reachability{{state=\"{}\"}} {}", r.as_str(), u8::from(r == state));
    }
    single(
        out,
        "kadmesh_client_mode",
        "gauge",
        "1 while this node acts as a client (not inserted by peers).",
        u8::from(client),
    );
    let s = &e.stats;
    single(out, "kadmesh_client_requests_total", "counter", "Requests received from clients.", s.client_requests);
    single(
        out,
        "kadmesh_clients_forgotten_total",
        "counter",
        "Contacts dropped for saying they are clients.",
        s.clients_forgotten,
    );
}

/// `GET /metrics`
pub async fn metrics(
    State(d): State<Discovery>,
    guard: Option<Extension<Arc<HttpGuard>>>,
) -> Result<impl IntoResponse, ApiError> {
    let snap = snapshot(&d).await?;
    let mut body = render(&snap, d.metrics(), d.local_worker_count());
    if let Some(Extension(g)) = guard {
        g.render(&mut body);
    }
    Ok(([(CONTENT_TYPE, CONTENT_TYPE_TEXT)], body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_is_well_formed() {
        let m = Metrics::default();
        m.lookup(LookupResult::Dht);
        m.lookup_latency.observe(std::time::Duration::from_millis(3));
        let mut snap = EngineSnapshot::default();
        (snap.stats.records_dropped, snap.stats.handed_down, snap.stats.provider_handovers) = (3, 5, 7);
        let text = render(&snap, &m, 2);
        assert!(text.contains("kadmesh_lookups_total{result=\"dht\"} 1\n"));
        assert!(text.contains("kadmesh_records_left_total 3\n"));
        assert!(text.contains("kadmesh_records_handed_down_total 5\n"));
        assert!(text.contains("kadmesh_provider_handovers_total 7\n"));
        assert!(text.contains("kadmesh_lookup_duration_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("kadmesh_lookup_duration_seconds_count 1\n"));
        assert!(text.contains("kadmesh_rpcs_sent_total{kind=\"find_value\"} 0\n"));
        assert!(text.contains("kadmesh_workers_registered 2\n"));
        assert!(text.contains("kadmesh_requests_dropped_total{bucket=\"prefix\"} 0\n"));
        assert!(text.contains("kadmesh_bounded_map_entries{map=\"peer_kinds\"} 0\n"));
        assert!(text.contains("kadmesh_reachability{state=\"unknown\"} 1\n"));
        assert!(text.contains("kadmesh_reachability{state=\"nat\"} 0\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
            assert!(name.starts_with("kadmesh_"), "{line}");
        }
        let typed = text.lines().filter(|l| l.starts_with("# TYPE")).count();
        assert_eq!(typed, text.lines().filter(|l| l.starts_with("# HELP")).count());
    }
}
