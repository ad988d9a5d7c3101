//! `dhtd`: a Kademlia node daemon, wire-compatible with Python `kademlia`,
//! serving the platform coordinator's HTTP routes and a live network page
//! from the DHT.
//!
//! `dhtd` runs one node (UDP, default port 8468) with its HTTP surface
//! (default 127.0.0.1:8080); `dhtd demo` starts a small local network with
//! sample workers that come and go; `dhtd config` prints the effective
//! settings and where each came from; `dhtd health` probes a running
//! daemon (the container's HEALTHCHECK). The daemon and the demo stop on
//! Ctrl-C or SIGTERM.
//!
//! Layout: `options` (every setting, once; the limits on strangers in
//! `limit_options`), `config` (file, environment
//! and flags merged, with sources), `run` (the daemon), `demo`, `server`
//! (the HTTP task and stop signals), `probe` (`dhtd health`), `runtime`
//! (threads and malloc arenas).

mod codepages;
mod config;
mod demo;
mod limit_options;
mod options;
mod probe;
mod run;
mod runtime;
mod server;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use options::{Color, RunArgs};

/// Run a DHT node on UDP (default port 8468) and join the network through
/// seeds given as host:port (hostnames allowed) or a bootstrap URL; serve the
/// coordinator's HTTP routes (register, heartbeat, discover, ...) and the
/// network page at / from it. Every option is also a DHT_ variable and a key
/// of the --config TOML file; `dhtd config` shows what is in force.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start a local network in this process with sample workers that come
    /// and go, light lookup and heartbeat traffic, and the network page;
    /// prints the page URL first.
    Demo(demo::DemoArgs),
    /// Print every setting's effective value and where it came from
    /// (default, file, env NAME, flag); takes the same options as the daemon.
    Config(RunArgs),
    /// Ask a running daemon (at its --http-bind) whether it is alive, or
    /// with --ready whether it has joined a network; exit 0 if so, else 1.
    Health(probe::HealthArgs),
}

fn main() -> ExitCode {
    let loaded = match config::load(std::env::args_os().collect()) {
        Ok(l) => l,
        // A bad value is one line naming the option; usage errors, help and
        // the version are clap's own.
        Err(config::LoadError::Clap(e)) if is_bad_value(&e) => return fail(&config::first_line(&e)),
        Err(config::LoadError::Clap(e)) => e.exit(),
        Err(config::LoadError::Bad(msg)) => return fail(&msg),
    };
    let cli = loaded.cli;
    let result = match cli.command {
        Some(Command::Config(_)) => {
            print!("{}", config::render(&loaded.settings));
            Ok(())
        }
        Some(Command::Health(args)) => runtime::build(1).and_then(|rt| rt.block_on(probe::run(args))),
        Some(Command::Demo(args)) => {
            init_logging(false, Color::Auto);
            runtime::build(0).and_then(|rt| rt.block_on(demo::run(args)))
        }
        None => {
            let workers = runtime::workers(cli.run.threads, !cli.run.no_http, cores());
            // Before the first thread, or glibc has already made its arenas.
            runtime::limit_malloc_arenas(workers);
            init_logging(cli.run.log_json, cli.run.log_color);
            tracing::info!("effective configuration: {}", config::summary(&loaded.settings));
            runtime::build(workers).and_then(|rt| rt.block_on(run::run(cli.run)))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => fail(&msg),
    }
}

fn is_bad_value(e: &clap::Error) -> bool {
    matches!(e.kind(), clap::error::ErrorKind::InvalidValue | clap::error::ErrorKind::ValueValidation)
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("dhtd: {msg}");
    ExitCode::FAILURE
}

/// Cores this process may use (1 when unknown).
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// Text or JSON lines on stderr; colours only where a person reads them.
fn init_logging(json: bool, color: Color) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = match color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
