//! Command line: `simulations <scenario|all> [--nodes N] [--hours H] [--seed S] [--out DIR]`.
//!
//! Prints a markdown table per scenario to stdout, progress to stderr, and
//! writes the SVG charts into `--out`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use simulations::{Report, RunOptions, Scenario, SeedSource};

// The engines allocate many small short-lived vectors (routing queries,
// msgpack values); glibc malloc spent a fifth of the run on them.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Source {
    /// Fresh nodes ask their coordinator; the edge router only if it is down.
    Coordinator,
    /// Fresh nodes always ask the edge router.
    Edge,
}

/// Deterministic simulations of the kadmesh DHT.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// steady, flash-crowd, crash30, partition, coordinator-loss, churn-day, crash30-discover,
    /// or all; or `nat`: steady with 0/50/80% of workers behind NAT, all
    /// public vs client mode, one table.
    scenario: String,
    /// Workers at the start (default 2000).
    #[arg(long)]
    nodes: Option<u32>,
    /// Measured hours after the warm-up (scenario default: 1, 2 or 24).
    #[arg(long)]
    hours: Option<f64>,
    /// Seed; the same seed gives the same report.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Lookups per minute.
    #[arg(long, default_value_t = 1000.0)]
    lookups_per_min: f64,
    /// Where fresh nodes get bootstrap seeds.
    #[arg(long, value_enum, default_value_t = Source::Coordinator)]
    seed_source: Source,
    /// Directory for the SVG charts.
    #[arg(long, default_value = "simulations/out")]
    out: PathBuf,
    /// Engine override: lifetime of stored records, minutes (core default 1440).
    #[arg(long)]
    record_ttl_min: Option<f64>,
    /// Engine override: re-replication interval of held records, minutes (core default 60).
    #[arg(long)]
    replicate_min: Option<f64>,
    /// Engine override: how long a put's lookup result is reused by the
    /// publisher's re-puts, minutes (core default 10; 0 looks up every time).
    #[arg(long)]
    put_lookup_every_min: Option<f64>,
    /// Engine override: copies of a value a get collects before it returns
    /// the newest (core default 4; 1 ends at the first value, as before).
    #[arg(long)]
    get_copies: Option<usize>,
    /// Engine override: ranks below the replica depth that count as one, so
    /// the nearest contact among them goes first (core default in
    /// `Config::lookup_rank_slack`; 0 keeps every rank apart, as before).
    #[arg(long)]
    rank_slack: Option<usize>,
    /// Engine override: far routing buckets hold `k << (bits - i)`
    /// contacts (core default in `Config::bucket_widening`; 0: k each).
    #[arg(long)]
    bucket_widening: Option<u32>,
    /// Engine override: 0 turns off the replica fan-out of find_value
    /// lookups (core default on), 1 turns it on.
    #[arg(long)]
    replica_fanout: Option<u8>,
    /// Engine override: replicas a find_value lookup asks at once under
    /// fan-out (core default in `Config::lookup_replica_width`; 3, alpha,
    /// is the behaviour before).
    #[arg(long)]
    replica_width: Option<usize>,
    /// Engine override: the least a lookup waits on a contact never
    /// measured before it asks another, ms (core default 200).
    #[arg(long)]
    lookup_stall_min_ms: Option<u64>,
    /// Engine override: seconds between pings of contacts evicted for
    /// timeouts (core default 10; 0 never asks, as before).
    #[arg(long)]
    lost_recheck_s: Option<f64>,
    /// Stop each scenario after this many wall-clock minutes and report the
    /// window simulated so far (not deterministic).
    #[arg(long)]
    max_wall_min: Option<f64>,
    /// Threads that run one scenario's machines side by side: 1, or 2 (more
    /// count as 2). The report is the same either way. The second thread
    /// spins between windows, so it wants a core of its own.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Run scenarios of `all` two at a time, one thread each (instead of one
    /// at a time on `--threads` threads).
    #[arg(long)]
    parallel: bool,
    /// No progress lines.
    #[arg(long)]
    quiet: bool,
    /// Engine override: turn off the defences against strangers (rate
    /// limits, quotas, reply budgets), to measure what they cost.
    #[arg(long)]
    no_limits: bool,
    /// Workers sign their announcements (Ed25519, with `seq`), so the
    /// engines' signed-record store rule applies.
    #[arg(long)]
    signed: bool,
    /// Discovers per minute in every scenario (0: none; crash30-discover
    /// defaults to 200): workers write their service's provider set,
    /// clients read it; the report gets discover rows.
    #[arg(long, default_value_t = 0.0)]
    discovers_per_min: f64,
    /// Share of discovers issued by routers (live coordinators, reading the
    /// same few services again and again); the rest by random workers.
    /// Default 0.5.
    #[arg(long, value_parser = share)]
    router_share: Option<f64>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    // Every simulated node checks its own signatures: a memo shared by the
    // whole process would make the CPU figures of --signed runs too cheap.
    kadmesh::signed::set_verify_memo(false);
    let opts = options(&cli);
    if cli.scenario == "nat" {
        println!("{}", simulations::nat::run(&opts));
        return Ok(());
    }
    let scenarios: Vec<Scenario> = if cli.scenario == "all" {
        Scenario::ALL.to_vec()
    } else {
        let s = Scenario::parse(&cli.scenario).ok_or_else(|| {
            let names: Vec<&str> = Scenario::ALL.iter().map(|s| s.name()).collect();
            format!("unknown scenario {:?}; expected one of {} or all", cli.scenario, names.join(", "))
        })?;
        vec![s]
    };
    std::fs::create_dir_all(&cli.out)?;
    let reports =
        if cli.parallel { run_parallel(&scenarios, &opts) } else { scenarios.iter().map(|s| s.run(&opts)).collect() };
    for report in &reports {
        print_report(report, &cli.out)?;
    }
    if reports.len() > 1 {
        println!("{}", summary(&reports));
    }
    Ok(())
}

fn options(cli: &Cli) -> RunOptions {
    RunOptions {
        seed: cli.seed,
        workers: cli.nodes,
        hours: cli.hours,
        lookups_per_min: cli.lookups_per_min,
        seed_source: match cli.seed_source {
            Source::Coordinator => SeedSource::Coordinator,
            Source::Edge => SeedSource::Edge,
        },
        progress: !cli.quiet,
        record_ttl: cli.record_ttl_min.map(|m| Duration::from_secs_f64(m * 60.0)),
        replicate_interval: cli.replicate_min.map(|m| Duration::from_secs_f64(m * 60.0)),
        put_lookup_every: cli.put_lookup_every_min.map(|m| Duration::from_secs_f64(m * 60.0)),
        get_copies: cli.get_copies,
        rank_slack: cli.rank_slack,
        bucket_widening: cli.bucket_widening,
        replica_fanout: cli.replica_fanout.map(|v| v != 0),
        replica_width: cli.replica_width,
        lookup_stall_min: cli.lookup_stall_min_ms.map(Duration::from_millis),
        lost_recheck: cli.lost_recheck_s.map(Duration::from_secs_f64),
        max_wall: cli.max_wall_min.map(|m| Duration::from_secs_f64(m * 60.0)),
        threads: if cli.parallel { 1 } else { cli.threads.max(1) },
        no_limits: cli.no_limits,
        signed: cli.signed,
        discovers_per_min: cli.discovers_per_min,
        router_share: cli.router_share,
    }
}

/// Runs the scenarios on two threads, last first (the list ends with the
/// day-long run, which should not start after the short ones); reports come
/// back in the given order (each run is independent and deterministic, so
/// threads change nothing but wall time).
fn run_parallel(scenarios: &[Scenario], opts: &RunOptions) -> Vec<Report> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let slots: Vec<std::sync::Mutex<Option<Report>>> = scenarios.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(i) = scenarios.len().checked_sub(n + 1) else { break };
                let Some(s) = scenarios.get(i) else { break };
                let report = s.run(opts);
                if let Ok(mut slot) = slots[i].lock() {
                    *slot = Some(report);
                }
            });
        }
    });
    slots.into_iter().filter_map(|m| m.into_inner().ok().flatten()).collect()
}

fn print_report(r: &Report, out: &std::path::Path) -> std::io::Result<()> {
    println!("{}", r.markdown());
    println!("_{}: {} events in {:.1} s wall_\n", r.name, r.events, r.wall.as_secs_f64());
    for (file, svg) in &r.charts {
        std::fs::write(out.join(file), svg)?;
    }
    Ok(())
}

/// One table with a column per scenario.
fn summary(reports: &[Report]) -> String {
    let cols: Vec<(&str, &[(String, String)])> = reports.iter().map(|r| (r.name.as_str(), r.rows.as_slice())).collect();
    let mut out = simulations::report::side_by_side(&cols);
    out.push_str("| wall time (s) |");
    out.extend(reports.iter().map(|r| format!(" {:.1} |", r.wall.as_secs_f64())));
    out.push('\n');
    out
}

/// A share between 0 and 1, for `--router-share`.
fn share(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{s}: {e}"))?;
    (0.0..=1.0).contains(&v).then_some(v).ok_or_else(|| format!("{s}: a share is between 0 and 1"))
}
