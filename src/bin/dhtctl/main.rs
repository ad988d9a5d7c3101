//! `dhtctl`: ask a Kademlia network questions from the command line.
//!
//! It speaks the UDP protocol through the library's own client node
//! ([`kadmesh::client`]), so it works against any node, ours or a stock
//! Python `kademlia` peer, and reads a node's HTTP surface where that is the
//! natural source (`workers`, `topology`). Every command runs under
//! `--timeout`; failures print one line on stderr and exit with the code
//! listed in [`output::EXIT_CODES`].

mod args;
mod dht;
mod http;
mod keys;
mod lookup;
mod net;
mod output;
mod walk;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Cmd};
use output::Failure;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints usage errors (exit 2) and --help/--version (exit 0).
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    init_logging(cli.global.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(&Failure::Other(format!("cannot start the async runtime: {e}"))),
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => fail(&f),
    }
}

fn fail(f: &Failure) -> ExitCode {
    eprintln!("{}", f.line());
    ExitCode::from(f.code())
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "off",
        1 => "kadmesh=info",
        _ => "kadmesh=debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("DHTCTL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

/// Runs the command under the global time bound (plus a little grace, so a
/// crawl that stops at the deadline can still print what it found).
async fn run(cli: Cli) -> Result<(), Failure> {
    let limit = cli.global.timeout + std::time::Duration::from_millis(750);
    let secs = cli.global.timeout.as_secs_f64();
    match tokio::time::timeout(limit, dispatch(cli)).await {
        Ok(result) => result,
        Err(_) => Err(Failure::Unreachable(format!("no answer within --timeout {secs} s"))),
    }
}

async fn dispatch(cli: Cli) -> Result<(), Failure> {
    let g = &cli.global;
    match &cli.cmd {
        Cmd::Ping(a) => dht::ping(g, a).await,
        Cmd::Get(a) => dht::get(g, a).await,
        Cmd::Put(a) => dht::put(g, a).await,
        Cmd::FindNode(a) => dht::find_node(g, a).await,
        Cmd::FindValue(a) => dht::find_value(g, a).await,
        Cmd::Stun(a) => dht::stun(g, a).await,
        Cmd::Lookup(a) => lookup::lookup(g, a).await,
        Cmd::Workers(a) => http::workers(g, a).await,
        Cmd::Topology(a) => http::topology(g, a).await,
        Cmd::Crawl(a) => walk::crawl(g, a).await,
        Cmd::Keygen => keys::keygen(g),
        Cmd::Endorse(a) => keys::endorse(g, a),
    }
}
