//! `loadtest`: real nodes on real loopback sockets under a steady lookup load,
//! with abrupt kills and restarts in the middle.
//!
//! All nodes run in this one process (tokio, a few worker threads), each on
//! its own UDP socket on a loopback address of the run's own (see `isolate`). The run has three equal phases, before,
//! during and after chaos; lookups of registered workers start at a fixed
//! rate from random live nodes throughout, and the chaos phase kills a
//! fraction of the nodes and restarts them (see `chaos`). It prints one
//! markdown table row per phase on stdout and progress on stderr, and stops
//! by itself: the whole run is bounded by `--max-wall-secs`.
//!
//! `cargo run --release -p simulations --bin loadtest -- --nodes 200 --workers 120 --rate 1000 --minutes 3`

mod chaos;
mod cluster;
mod isolate;
mod measure;
mod monitor;
mod report;
mod services;
mod workload;

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use tokio::time::Instant;

use cluster::Cluster;
use measure::ProcSample;
use services::Services;
use workload::{Schedule, Target};

/// Load and chaos test of kadmesh nodes on loopback, in one process.
#[derive(Parser, Debug)]
#[command(version, about = "Real kadmesh nodes on loopback under a steady lookup load, with abrupt kills and restarts in the middle", long_about = None)]
struct Args {
    /// Nodes to start.
    #[arg(long, default_value_t = 200)]
    nodes: usize,
    /// Worker records to register.
    #[arg(long, default_value_t = 120)]
    workers: usize,
    /// Lookups per minute, spread evenly over time.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Length of the whole load (three equal phases), in minutes.
    #[arg(long, default_value_t = 3.0)]
    minutes: f64,
    /// Fraction of the nodes killed (and later restarted) during chaos.
    #[arg(long, default_value_t = 0.2)]
    kill_fraction: f64,
    /// Seed of every random choice (default: drawn and printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Most seconds one lookup may take before it counts as timed out.
    #[arg(long, default_value_t = 10.0)]
    lookup_timeout: f64,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Register workers and look up services through the discovery layer
    /// instead of plain `worker:{id}` records.
    #[arg(long)]
    discovery: bool,
    /// Hard bound on the whole run in seconds (default: the load plus 120 s).
    #[arg(long)]
    max_wall_secs: Option<f64>,
}

impl Args {
    fn check(&self) -> Result<(), String> {
        let bad = |ok: bool, what: &str| if ok { Ok(()) } else { Err(what.to_string()) };
        bad((2..=5000).contains(&self.nodes), "--nodes must be 2..=5000")?;
        bad((1..=100_000).contains(&self.workers), "--workers must be 1..=100000")?;
        bad(self.rate >= 1.0 && self.rate <= 600_000.0, "--rate must be 1..=600000 per minute")?;
        bad(self.minutes > 0.0 && self.minutes <= 120.0, "--minutes must be in (0, 120]")?;
        bad((0.0..=0.9).contains(&self.kill_fraction), "--kill-fraction must be in [0, 0.9]")?;
        bad(self.lookup_timeout > 0.0 && self.lookup_timeout <= 300.0, "--lookup-timeout must be in (0, 300]")?;
        bad((1..=64).contains(&self.threads), "--threads must be 1..=64")?;
        bad(self.max_wall_secs.is_none_or(|w| w > 0.0 && w <= 86_400.0), "--max-wall-secs must be in (0, 86400]")
    }

    fn max_wall(&self) -> Duration {
        Duration::from_secs_f64(self.max_wall_secs.unwrap_or(self.minutes * 60.0 + 120.0))
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(msg) = args.check() {
        eprintln!("loadtest: {msg}");
        return ExitCode::from(2);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadtest: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let bound = args.max_wall();
    let code = rt.block_on(async {
        match tokio::time::timeout(bound, run(args)).await {
            Ok(Ok(())) => ExitCode::SUCCESS,
            Ok(Err(msg)) => {
                eprintln!("loadtest: {msg}");
                ExitCode::FAILURE
            }
            Err(_) => {
                eprintln!("loadtest: stopped at the wall-time bound of {:.0} s", bound.as_secs_f64());
                ExitCode::FAILURE
            }
        }
    });
    rt.shutdown_timeout(Duration::from_secs(1));
    code
}

impl Args {
    fn settings(&self, seed: u64) -> String {
        format!(
            "--nodes {} --workers {} --rate {} --minutes {} --kill-fraction {} --seed {seed}{}",
            self.nodes,
            self.workers,
            self.rate,
            self.minutes,
            self.kill_fraction,
            if self.discovery { " --discovery" } else { "" }
        )
    }

    fn schedule(&self) -> Schedule {
        Schedule {
            start: Instant::now() + Duration::from_millis(200),
            phase_len: Duration::from_secs_f64(self.minutes * 60.0 / report::PHASES.len() as f64),
            phases: report::PHASES.len(),
            rate_per_min: self.rate,
            timeout: Duration::from_secs_f64(self.lookup_timeout),
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let began = Instant::now();
    let seed = args.seed.unwrap_or_else(rand::random);
    let settings = args.settings(seed);
    eprintln!("loadtest: {settings}");
    let baseline = ProcSample::now();
    let drops_before = measure::udp_rcvbuf_errors();
    let ip = isolate::run_address(seed);
    let (cluster, join) = Cluster::start(args.nodes, seed, ip).await.map_err(|e| format!("starting nodes: {e}"))?;
    let cluster = Arc::new(cluster);
    eprintln!(
        "loadtest: {} nodes on {ip} joined in {:.2} s; registering workers",
        args.nodes,
        join.total.as_secs_f64()
    );
    let (target, registration) = if args.discovery {
        let (services, registration) = Services::register(&cluster, args.workers).await?;
        (Target::Services(Arc::new(services)), registration)
    } else {
        let workers = workload::workers(args.workers);
        let registration = workload::register(&cluster, &workers).await;
        (Target::Records(workers), registration)
    };
    let setup = ProcSample::now();
    let victims = (args.nodes as f64 * args.kill_fraction).round() as usize;
    let (chaos, snapshots, samples) = load(cluster.clone(), Arc::new(target), args.schedule(), victims).await?;
    cluster.shutdown().await;
    report::print(&report::Run {
        settings,
        baseline,
        setup,
        nodes: args.nodes,
        join: &join,
        registration: &registration,
        chaos,
        snapshots: &snapshots,
        samples: &samples,
        wall: began.elapsed(),
        udp_drops: measure::udp_rcvbuf_errors().zip(drops_before).map(|(a, b)| a.saturating_sub(b)),
    });
    Ok(())
}

/// Runs the three phases: lookups throughout, chaos in the middle one.
async fn load(
    cluster: Arc<Cluster>,
    target: Arc<Target>,
    schedule: Schedule,
    victims: usize,
) -> Result<(chaos::ChaosReport, Vec<monitor::Snapshot>, Vec<workload::Sample>), String> {
    let samples = Arc::new(Mutex::new(Vec::new()));
    let chaos_from = schedule.start + schedule.phase_len;
    let chaos = tokio::spawn(chaos::run(cluster.clone(), chaos_from, schedule.phase_len, victims));
    let monitor = tokio::spawn(monitor::watch(cluster.clone(), samples.clone(), schedule));
    if let Target::Services(s) = &*target {
        tokio::spawn(s.clone().heartbeat_until(schedule.end()));
    }
    workload::drive(cluster, target.clone(), schedule, samples.clone()).await;
    if let Target::Services(s) = &*target {
        s.shutdown();
    }
    let chaos = chaos.await.map_err(|e| format!("chaos task: {e}"))?;
    let snapshots = monitor.await.map_err(|e| format!("monitor task: {e}"))?;
    let samples = samples.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok((chaos, snapshots, samples))
}
