//! Workers behind NAT (issue 15 part 4): the steady scenario with a share
//! of workers behind a reply-only NAT and [`NO_UDP_SHARE`] of them with no
//! UDP at all (they reach the DHT as clients through a public node's
//! tunnel, paying [`crate::net::TUNNEL_RTT_PENALTY_MS`] on every exchange;
//! see [`crate::net::Edge`]), run twice per share, once with every node
//! acting as public (the behaviour before client mode) and once with client
//! mode (workers detect their reachability; unreachable ones mark their
//! requests and stay out of routing tables; no-UDP workers are clients from
//! the start). One table, side by side.
//!
//! Figures (measurement window unless said otherwise):
//! - *lookup success*: measured `get`s of a worker's record that found it;
//! - *latency*: of the successful ones;
//! - *unreachable contacts handed out per lookup*: contacts of NATed
//!   machines in all `find_node` / `find_value` replies, over all `get`s;
//! - *datagrams dropped by NAT*: unsolicited datagrams a NAT refused (each
//!   one a request that will time out, or a probe that did its job);
//! - *latency by asker class*: successful lookups issued by coordinators
//!   and public workers, NATed workers, no-UDP workers;
//! - *records per node by class*: records held at the end of the run;
//! - *verdicts*: the workers' own reachability verdicts at the end.

use kadmesh::reach::Reachability;

use crate::metrics::{pct, Samples};
use crate::net::Edge;
use crate::node::Role;
use crate::scenario::{simulate, RunOptions, Scenario};
use crate::world::World;

/// The NAT shares the table compares.
pub const SHARES: [f64; 3] = [0.0, 0.5, 0.8];

/// Share of workers with no UDP at all, in every column.
pub const NO_UDP_SHARE: f64 = 0.1;

/// One run's figures, as table cells.
struct Column {
    title: String,
    cells: Vec<(&'static str, String)>,
}

/// Runs every share both ways and returns the markdown table.
pub fn run(o: &RunOptions) -> String {
    let mut cols = Vec::new();
    for share in SHARES {
        for client_mode in [false, true] {
            let (mut params, events) = Scenario::Steady.build(o);
            params.nat_share = share;
            params.no_udp_share = NO_UDP_SHARE;
            params.client_mode = client_mode;
            let mode = if client_mode { "client mode" } else { "all public" };
            params.progress = o.progress.then(|| format!("nat {:.0}% {mode}", share * 100.0));
            let (mut world, _) = simulate(params, events);
            cols.push(Column { title: format!("{:.0}% NAT, {mode}", share * 100.0), cells: figures(&mut world) });
        }
    }
    let cols: Vec<(&str, &[(&str, String)])> = cols.iter().map(|c| (c.title.as_str(), c.cells.as_slice())).collect();
    crate::report::side_by_side(&cols)
}

fn figures(w: &mut World) -> Vec<(&'static str, String)> {
    let s = &mut w.stats;
    let (a, b) = (&s.traffic_at_start, &s.traffic_at_end);
    let gets = s.gets_done.max(1) as f64;
    let unreachable = (b.handed_unreachable - a.handed_unreachable) as f64;
    let handed = (b.handed_out - a.handed_out).max(1) as f64;
    let lat = &mut s.latency_ms;
    let mut cells = vec![
        ("lookup success %", format!("{:.2}", pct(s.lookups_found, s.lookups_done))),
        ("lookup success, value alive %", format!("{:.2}", pct(s.lookups_fresh, s.lookups_done))),
        (
            "latency p50 / p95 / p99 ms",
            format!("{:.0} / {:.0} / {:.0}", lat.percentile(50.0), lat.percentile(95.0), lat.percentile(99.0)),
        ),
        ("unreachable contacts handed out per lookup", format!("{:.2}", unreachable / gets)),
        ("unreachable share of contacts handed out %", format!("{:.2}", 100.0 * unreachable / handed)),
        (
            "datagrams dropped by NAT / no UDP per lookup",
            format!("{:.2}", (b.nat_blocked - a.nat_blocked) as f64 / gets),
        ),
    ];
    let by_class =
        ["latency p50 / p95 asked by public nodes ms", "... by NATed workers ms", "... by no-UDP workers ms"];
    for (name, lat) in by_class.into_iter().zip(s.latency_by_edge_ms.iter_mut()) {
        let cell = match lat.is_empty() {
            true => "-".to_string(),
            false => format!("{:.0} / {:.0}", lat.percentile(50.0), lat.percentile(95.0)),
        };
        cells.push((name, cell));
    }
    cells.extend(records_by_class(w));
    let [natted, public] = verdicts(w);
    cells.push(("NATed workers' verdicts public / nat / unknown / no-udp", natted));
    cells.push(("public workers' verdicts public / nat / unknown / no-udp", public));
    cells
}

/// Mean / max records held at the end by coordinators, public, NATed and no-UDP workers.
fn records_by_class(w: &World) -> Vec<(&'static str, String)> {
    let mut classes: [Samples; 4] = Default::default();
    for (slot, n) in w.nodes.iter().enumerate() {
        let Some(e) = n.engine.as_ref() else { continue };
        let class = match (n.role, w.net.edge(slot as u32)) {
            (Role::Coordinator, _) => 0,
            (Role::Worker, Edge::Open) => 1,
            (Role::Worker, Edge::Nat) => 2,
            (Role::Worker, Edge::NoUdp) => 3,
        };
        classes[class].push(e.store().len() as f64);
    }
    let names = [
        "records per coordinator mean / max",
        "records per public worker mean / max",
        "records per NATed worker mean / max",
        "records per no-UDP worker mean / max",
    ];
    names
        .into_iter()
        .zip(classes.iter_mut())
        .map(|(name, s)| (name, if s.is_empty() { "-".into() } else { format!("{:.1} / {:.0}", s.mean(), s.max()) }))
        .collect()
}

/// How many NATed and public workers hold each verdict at the end.
fn verdicts(w: &World) -> [String; 2] {
    let order = [Reachability::Public, Reachability::Nat, Reachability::Unknown, Reachability::NoUdp];
    let mut counts = [[0u32; 4]; 2];
    for (slot, n) in w.nodes.iter().enumerate().filter(|(_, n)| n.role == Role::Worker) {
        let Some(e) = n.engine.as_ref() else { continue };
        let state = order.iter().position(|s| *s == e.reachability().state).unwrap_or(2);
        match w.net.edge(slot as u32) {
            Edge::Nat => counts[0][state] += 1,
            Edge::Open => counts[1][state] += 1,
            Edge::NoUdp => {}
        }
    }
    counts.map(|c| c.map(|n| n.to_string()).join(" / "))
}
