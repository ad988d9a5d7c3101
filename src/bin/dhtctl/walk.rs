//! `crawl`: joins through the seeds, runs [`kadmesh::crawl::crawl`] within
//! what is left of `--timeout`, and prints the nodes and the size estimate.
//! Progress goes to stderr: one line rewritten in place on a terminal, plain
//! lines once a second with `--progress`, nothing otherwise.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use kadmesh::crawl::{crawl as run_crawl, CrawlConfig, CrawlProgress, CrawlReport};
use serde_json::json;
use tokio::time::Instant;

use crate::args::{CrawlArgs, Global};
use crate::net;
use crate::output::{emit, emit_json, ms, ms_json, Failure, Table};

pub async fn crawl(g: &Global, a: &CrawlArgs) -> Result<(), Failure> {
    let start = Instant::now();
    let joined = net::join(g).await?;
    let config = CrawlConfig {
        concurrency: usize::from(a.concurrency),
        max_duration: g.timeout.saturating_sub(start.elapsed()),
        max_nodes: a.max_nodes as usize,
        spread: usize::from(a.spread),
        query_timeout: net::rpc_timeout(g).min(Duration::from_secs(2)),
        hello_timeout: net::rpc_timeout(g).min(Duration::from_secs(1)),
        estimate_probes: usize::from(a.probes),
        rng_seed: rand::random(),
    };
    let mut progress = Progress::new(a);
    let report = run_crawl(&joined.node, &joined.seeds, &config, |p| progress.show(p)).await;
    progress.finish();
    joined.node.shutdown().await;
    let report = report?;
    if report.responding().next().is_none() {
        return Err(Failure::Unreachable("no node answered the crawl".into()));
    }
    if g.json {
        emit_json(&report_json(&report));
    } else {
        emit(&report_table(&report));
    }
    Ok(())
}

struct Progress {
    tty: bool,
    enabled: bool,
    every: Duration,
    last: Option<Duration>,
}

impl Progress {
    fn new(a: &CrawlArgs) -> Self {
        let tty = std::io::stderr().is_terminal();
        let every = if tty { Duration::from_millis(200) } else { Duration::from_secs(1) };
        Progress { tty, enabled: !a.quiet && (tty || a.progress), every, last: None }
    }

    fn show(&mut self, p: &CrawlProgress) {
        if !self.enabled || self.last.is_some_and(|l| p.elapsed < l + self.every) {
            return;
        }
        self.last = Some(p.elapsed);
        let line = format!(
            "crawl: {} nodes found, {} visited, {} visits in flight, {:.1} s",
            p.found,
            p.visited,
            p.in_flight,
            p.elapsed.as_secs_f64()
        );
        let mut err = std::io::stderr().lock();
        let _ = if self.tty { write!(err, "\r\x1b[K{line}") } else { writeln!(err, "{line}") };
        let _ = err.flush();
    }

    fn finish(&self) {
        if self.enabled && self.tty && self.last.is_some() {
            eprint!("\r\x1b[K");
        }
    }
}

fn report_table(r: &CrawlReport) -> String {
    let mut t = Table::new(&["ID", "ADDRESS", "RTT", "SOFTWARE", "SEEN_BY"]);
    // Live nodes first; the rest are contacts peers still list but that did
    // not answer (gone, or unreachable from here).
    for n in r.responding().chain(r.nodes.iter().filter(|n| !n.responded())) {
        let id = n.id.map_or_else(|| "-".to_owned(), |id| id.to_hex());
        let rtt = n.rtt.map_or_else(|| "no answer".to_owned(), ms);
        t.row(vec![id, n.addr.to_string(), rtt, n.software.to_string(), n.reported_by.to_string()]);
    }
    let e = &r.estimate;
    // A complete crawl counts; the density figure is then a cross-check.
    let density = match e.density {
        Some(d) if r.complete => format!(", density estimate {d:.0}"),
        _ => String::new(),
    };
    format!(
        "{}\n{} nodes found, {} answered, in {:.1} s ({} queries, {} failed); crawl {}\n\
         estimated network size: {:.0} ({}{density})",
        t.render().trim_end(),
        r.nodes.len(),
        e.responding,
        r.elapsed.as_secs_f64(),
        r.queries,
        r.failed_queries,
        if r.complete { "complete" } else { "partial (limit or --timeout reached)" },
        e.best(),
        e.method(),
    )
}

fn report_json(r: &CrawlReport) -> serde_json::Value {
    let nodes: Vec<_> = r
        .nodes
        .iter()
        .map(|n| {
            json!({
                "id": n.id.map(|id| id.to_hex()),
                "address": n.addr.to_string(),
                "responded": n.responded(),
                "rtt_ms": n.rtt.map(ms_json),
                "software": n.software.to_string(),
                "reported_by": n.reported_by,
            })
        })
        .collect();
    let e = &r.estimate;
    json!({
        "nodes": nodes,
        "found": r.nodes.len(),
        "responding": e.responding,
        "complete": r.complete,
        "queries": r.queries,
        "failed_queries": r.failed_queries,
        "elapsed_ms": ms_json(r.elapsed),
        "estimate": { "nodes": e.best().round() as u64, "method": e.method(), "density": e.density, "probes": e.probes },
    })
}
