//! `versus`: the same scenario on kadmesh nodes and on stock Python
//! `kademlia` nodes, in one run, with one table of both.
//!
//! N nodes on one loopback address (127.x.y.1, see `isolate`) join one after another through node 0, K keys are
//! set from random nodes, then G gets of random keys from random nodes run
//! with C in flight. Both sides host all their nodes in one process (Rust:
//! this one, a tokio runtime; Python: `simulations/versus/pybench.py`, one
//! asyncio loop) and run one plan drawn from `--seed`; they run one after the
//! other, never at once, so neither steals the other's CPU.
//!
//! Before the Rust side, on its runtime, an echo measures the machine's
//! loopback round-trip ceiling (`ceiling`), and the run ends with our
//! lookups per second as a fraction of the lookups per second that ceiling
//! allows. `--rust-only` skips the Python side (for profiling the engine).
//!
//! `cargo run --release -p simulations --bin versus -- --nodes 100 --sets 200 --gets 1000 --concurrency 20`

mod ceiling;
#[path = "../loadtest/isolate.rs"]
mod isolate;
// Shared with `loadtest`, which uses all of it.
#[allow(dead_code)]
#[path = "../loadtest/measure.rs"]
mod measure;
mod plan;
mod python_side;
mod rust_side;
mod table;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

use plan::Plan;

/// Benchmark kadmesh against the Python `kademlia` package on loopback.
#[derive(Parser, Debug)]
#[command(version, about = "The same join/set/get plan on kadmesh and on stock Python kademlia nodes, one table of both with ratios", long_about = None)]
struct Args {
    /// Nodes per side.
    #[arg(long, default_value_t = 100)]
    nodes: usize,
    /// Keys set (each once, from a random node).
    #[arg(long, default_value_t = 200)]
    sets: usize,
    /// Gets of random keys from random nodes.
    #[arg(long, default_value_t = 1000)]
    gets: usize,
    /// Operations in flight at once.
    #[arg(long, default_value_t = 20)]
    concurrency: usize,
    /// Seed of the plan (default: drawn and printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Most seconds one operation may take.
    #[arg(long, default_value_t = 30.0)]
    op_timeout: f64,
    /// Tokio worker threads on the Rust side.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Python with the `kademlia` package (default: $KADMESH_PYTHON, else .venv/bin/python).
    #[arg(long)]
    python: Option<PathBuf>,
    /// Hard bound on each side's run, in seconds.
    #[arg(long, default_value_t = 900.0)]
    max_side_secs: f64,
    /// Run the Rust side only (no Python needed); the table has one column.
    #[arg(long)]
    rust_only: bool,
    /// Seconds of each loopback echo that measures a round-trip ceiling (on
    /// one echo socket, then spread over one per node; 0 skips both).
    #[arg(long, default_value_t = 2.0)]
    ceiling_secs: f64,
    /// Values carry `last_seen` = the time the plan is drawn (Unix seconds),
    /// as the worker records kadmesh publishes do: a kadmesh get then ends
    /// at its first copy (`get_fresh_for`). Without it values carry no
    /// freshness, as the platform's Python workers' (a monotonic
    /// `last_seen`) do not either, and each get collects `get_copies` (4)
    /// copies to return the newest.
    #[arg(long)]
    last_seen: bool,
}

impl Args {
    fn check(&self) -> Result<(), String> {
        let bad = |ok: bool, what: &str| if ok { Ok(()) } else { Err(what.to_string()) };
        bad((2..=5000).contains(&self.nodes), "--nodes must be 2..=5000")?;
        bad((1..=1_000_000).contains(&self.sets), "--sets must be 1..=1000000")?;
        bad((1..=10_000_000).contains(&self.gets), "--gets must be 1..=10000000")?;
        bad((1..=10_000).contains(&self.concurrency), "--concurrency must be 1..=10000")?;
        bad(self.op_timeout > 0.0 && self.op_timeout <= 300.0, "--op-timeout must be in (0, 300]")?;
        bad((1..=64).contains(&self.threads), "--threads must be 1..=64")?;
        bad((0.0..=60.0).contains(&self.ceiling_secs), "--ceiling-secs must be in [0, 60]")?;
        bad(self.max_side_secs > 0.0 && self.max_side_secs <= 86_400.0, "--max-side-secs must be in (0, 86400]")
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(msg) = args.check() {
        eprintln!("versus: {msg}");
        return ExitCode::from(2);
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("versus: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let seed = args.seed.unwrap_or_else(rand::random);
    let mut plan = Plan::draw(args.nodes, args.sets, args.gets, args.concurrency, args.op_timeout, seed);
    if args.last_seen {
        plan = plan.with_last_seen(unix_now());
    }
    let plan = Arc::new(plan);
    let python = args.python.clone().unwrap_or_else(python_side::default_python);
    let bound = Duration::from_secs_f64(args.max_side_secs);
    eprintln!("versus: seed {seed}; Rust side first");
    let drops0 = measure::udp_rcvbuf_errors();
    let (rust, ceiling) = run_rust(args, plan.clone(), seed, bound)?;
    let drops1 = measure::udp_rcvbuf_errors();
    let py = if args.rust_only {
        None
    } else {
        eprintln!("versus: Python side with {}", python.display());
        Some(python_side::run(&python, &plan, bound, true)?)
    };
    let drops2 = measure::udp_rcvbuf_errors();
    let delta =
        |a: Option<u64>, b: Option<u64>| measure::or_na(a.zip(b).map(|(a, b)| b.saturating_sub(a)), |d| d.to_string());
    let vs = if py.is_some() { "kadmesh vs Python kademlia" } else { "kadmesh" };
    println!(
        "## {vs}: {} nodes, {} sets, {} gets, {} in flight (--seed {seed})",
        args.nodes, args.sets, args.gets, args.concurrency
    );
    println!();
    println!(
        "machine: {}; Rust side on {} tokio worker threads, Python side one asyncio loop",
        measure::machine(),
        args.threads
    );
    println!();
    println!(
        "values: {}",
        if args.last_seen {
            "worker records with a current last_seen (--last-seen): a kadmesh get ends at its first copy"
        } else {
            "worker records without last_seen: a kadmesh get collects up to 4 copies to return the newest"
        }
    );
    println!();
    match &py {
        Some(py) => table::print(&plan, &rust, py),
        None => table::print_one(&plan, &rust),
    }
    println!();
    if let Some((c, spread)) = ceiling {
        let s = ceiling::standing(rust.get_s.len(), rust.get_wall_s, rust.get_rpcs, rust.get_requests, &c);
        println!("{}", ceiling::report(&s, &c, args.threads));
        println!("{}", ceiling::report_spread(&s, &spread, args.nodes));
        println!();
    }
    println!(
        "UDP datagrams dropped for full receive buffers (whole machine): {} during the Rust side, {} during the Python side",
        delta(drops0, drops1),
        if py.is_some() { delta(drops1, drops2) } else { "n/a".into() }
    );
    Ok(())
}

/// Unix seconds now: a benchmark driver, like `src/node`, may read the clock.
#[allow(clippy::disallowed_methods)]
pub(crate) fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// The loopback ceiling on one echo socket and spread over one per node.
type Ceilings = Option<(ceiling::Ceiling, ceiling::Ceiling)>;

/// The Rust side and, first, on the same runtime, the loopback ceilings
/// (`None` when `--ceiling-secs 0`).
fn run_rust(args: &Args, plan: Arc<Plan>, seed: u64, bound: Duration) -> Result<(plan::SideResult, Ceilings), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the tokio runtime: {e}"))?;
    let ceiling = if args.ceiling_secs > 0.0 {
        let host = plan.host.parse().map_err(|_| format!("plan host {:?} is not an IP address", plan.host))?;
        let one = rt.block_on(ceiling::measure(host, args.concurrency, args.ceiling_secs))?;
        let spread = rt.block_on(ceiling::measure_spread(host, args.concurrency, args.ceiling_secs, args.nodes))?;
        Some((one, spread))
    } else {
        None
    };
    let result = rt.block_on(async { tokio::time::timeout(bound, rust_side::run(plan, seed)).await });
    rt.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(Ok(r)) => Ok((r, ceiling)),
        Ok(Err(e)) => Err(format!("Rust side: {e}")),
        Err(_) => Err(format!("the Rust side did not finish within {:.0} s", bound.as_secs_f64())),
    }
}
