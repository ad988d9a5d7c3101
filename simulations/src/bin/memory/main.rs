//! `memory`: what one `dhtd` process costs in memory and idle CPU.
//!
//! Starts `--nodes` `dhtd --no-http` processes on a loopback address of the
//! run's own (see `isolate`), each joining through the first, plus one `dhtd`
//! serving HTTP; stores `--records` records through a client node in this
//! process; waits `--settle` seconds; then reads each process's `VmRSS`,
//! `Pss` and private pages (`/proc/PID/status`, `/proc/PID/smaps_rollup`)
//! and threads, and its CPU time over `--idle` seconds of no requests. One
//! table row per process class, and where a median node's resident pages are
//! (`/proc/PID/smaps`). Every wait is bounded by `--deadline`; only the
//! processes started here are stopped, by their PIDs.
//!
//! `cargo build --profile dist --bin dhtd && cargo run --release -p simulations --bin memory -- --dhtd target/dist/dhtd`

// This tool bounds waits on real processes by the wall clock; the ban on
// reading the clock is for the protocol core.
#![allow(clippy::disallowed_methods)]

#[path = "../loadtest/isolate.rs"]
mod isolate;
// Shared with `loadtest`; this tool uses `machine` only.
#[allow(dead_code)]
#[path = "../loadtest/measure.rs"]
mod measure;
mod procfs;
mod procs;
mod report;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use kadmesh::client::{self, ClientOptions};
use kadmesh::id::NodeId;
use kadmesh::seeds::Seed;
use kadmesh::wire::Value;

use procs::Fleet;

/// Measure dhtd's memory and idle CPU per process on loopback.
#[derive(Parser, Debug)]
#[command(version, about = "Start N dhtd processes (no HTTP) and one with HTTP on loopback, store records, and print RSS, PSS, private memory, threads and idle CPU per process class", long_about = None)]
pub struct Args {
    /// The dhtd binary.
    #[arg(long, default_value = "target/release/dhtd")]
    dhtd: PathBuf,
    /// dhtd processes without HTTP.
    #[arg(long, default_value_t = 40)]
    nodes: usize,
    /// Records stored in the network (through a client node in this process).
    #[arg(long, default_value_t = 100)]
    records: usize,
    /// Seconds to wait after the stores before reading memory.
    #[arg(long, default_value_t = 10)]
    settle: u64,
    /// Seconds of idle over which CPU is measured.
    #[arg(long, default_value_t = 30)]
    idle: u64,
    /// Most seconds the whole run may take before it gives up.
    #[arg(long, default_value_t = 300)]
    deadline: u64,
    /// Extra arguments passed to every dhtd (e.g. `--extra=--threads=1`).
    #[arg(long = "extra", allow_hyphen_values = true)]
    extra: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("memory: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(args.deadline);
    let ip = IpAddr::V4(isolate::run_address(u64::from(std::process::id())));
    let mut fleet = Fleet::new().map_err(|e| format!("cannot create the log directory: {e}"))?;
    let seed = start_all(&mut fleet, args, ip, deadline)?;
    let http = fleet.http_addr(args.nodes, deadline)?;
    eprintln!("{} dhtd without HTTP and 1 with HTTP (http://{http}) on {ip}, seed {seed}", args.nodes);
    let stored = store_records(seed, args.records, ip, deadline)?;
    eprintln!("stored {}/{} records; settling {} s", stored.ok, args.records, args.settle);
    std::thread::sleep(Duration::from_secs(args.settle));
    let held = report::records_held(http);
    let readings = report::measure(&fleet, Duration::from_secs(args.idle))?;
    report::print(args, &readings, &stored, held);
    for w in fleet.warnings(5) {
        eprintln!("{w}");
    }
    Ok(())
}

/// Starts node 0, reads its address, then the other nodes and the HTTP one
/// with node 0 as their seed; returns node 0's address once every node has
/// logged its own.
fn start_all(fleet: &mut Fleet, args: &Args, ip: IpAddr, deadline: Instant) -> Result<SocketAddr, String> {
    let mut common = vec!["--reachability".to_owned(), "public".to_owned()];
    common.extend(args.extra.iter().cloned());
    fleet.start(&args.dhtd, ip, false, &common)?;
    let seed = fleet.udp_addr(0, deadline)?;
    let mut joining = common.clone();
    joining.extend(["--seed".to_owned(), seed.to_string()]);
    for i in 1..=args.nodes {
        fleet.start(&args.dhtd, ip, i == args.nodes, &joining)?;
    }
    for i in 1..=args.nodes {
        fleet.udp_addr(i, deadline)?;
    }
    Ok(seed)
}

/// How the stores went.
pub struct Stored {
    /// Records stored at one node at least.
    pub ok: usize,
    /// Replicas acknowledged, over every record.
    pub replicas: usize,
}

/// Joins through `seed` with a client node and puts `n` records shaped like
/// a worker's registration (a JSON string of about 250 bytes).
fn store_records(seed: SocketAddr, n: usize, ip: IpAddr, deadline: Instant) -> Result<Stored, String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let left = deadline.saturating_duration_since(Instant::now());
    rt.block_on(async {
        let opts = ClientOptions { bind: Some(ip), id: Some(NodeId::digest(b"kadmesh-memory-probe")), ..Default::default() };
        let seeds = [Seed::parse(&seed.to_string()).map_err(|e| e.to_string())?];
        // Give the daemons a moment to join before the client asks them.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let joined = client::connect(&seeds, &opts).await.map_err(|e| e.to_string())?;
        let puts = async {
            let mut stored = Stored { ok: 0, replicas: 0 };
            for i in 0..n {
                let key = format!("worker:mem-probe-{i}");
                let value = format!(
                    r#"{{"worker_id":"mem-probe-{i}","tunnel_url":"https://mem-probe-{i}.example-tunnel.net","services":["ocr"],"capabilities":{{"has_gpu":false,"cpu_cores":4}},"load":0.0,"last_seen":{i}.5}}"#
                );
                let out = joined.node.put(NodeId::digest(key.as_bytes()), Value::Str(value)).await;
                match out {
                    Ok(o) if o.stored > 0 || o.stored_locally => {
                        stored.ok += 1;
                        stored.replicas += o.stored;
                    }
                    _ => {}
                }
            }
            stored
        };
        let stored = tokio::time::timeout(left, puts).await.map_err(|_| "stores did not finish before --deadline")?;
        joined.node.shutdown().await;
        Ok(stored)
    })
}
