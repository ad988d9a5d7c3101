//! The command line: global options and one struct per subcommand, each
//! with its own examples in `--help`.

use std::net::IpAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::output::EXIT_CODES;

/// Ask a Kademlia DHT (kadmesh or stock Python `kademlia`) questions: is a
/// node alive, what is stored under a key, who runs a service, how big is the
/// network.
#[derive(Parser, Debug)]
#[command(name = "dhtctl", version, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// Options every subcommand accepts.
#[derive(Args, Debug)]
pub struct Global {
    /// A node to join through, host:port (hostnames allowed); repeat for more.
    /// Also read from DHT_SEEDS (comma-separated).
    #[arg(long = "seed", short = 's', value_name = "HOST:PORT", global = true)]
    pub seeds: Vec<String>,
    /// URL serving the platform's {"seeds": [{"host", "dht_port"}]} document.
    #[arg(long, value_name = "URL", env = "DHT_BOOTSTRAP_URL", global = true)]
    pub bootstrap_url: Option<String>,
    /// Bound on the whole command, in seconds.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs, global = true)]
    pub timeout: Duration,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Local address for the client's UDP socket (default: any, of the seeds' family).
    #[arg(long, value_name = "IP", global = true)]
    pub bind: Option<IpAddr>,
    /// The client's node id, 40 hex digits (default: one per machine and user,
    /// so repeated runs do not leave a new dead contact in peers' tables each time).
    #[arg(long, value_name = "HEX", global = true)]
    pub node_id: Option<String>,
    /// Reach the DHT with no UDP at all, through this kadmesh node's HTTP
    /// relay (its base URL; POST /api/dht/relay): no UDP socket is bound,
    /// the node is the first seed, --seed ones are reached through it.
    #[arg(long, value_name = "URL", env = "DHT_VIA", global = true)]
    pub via: Option<String>,
    /// Log protocol activity to stderr (-v info, -vv debug; or DHTCTL_LOG=filter).
    #[arg(long, short = 'v', action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 3600.0 => Ok(Duration::from_secs_f64(v)),
        _ => Err(format!("{s:?} is not a number of seconds between 0 and 3600")),
    }
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Ping one node: its id and the round-trip time.
    #[command(
        after_help = "Examples:\n  dhtctl ping 10.0.0.5:8468\n  dhtctl ping coordinator.example.org:8468 --json"
    )]
    Ping(PingArgs),
    /// Fetch the value stored under a key.
    #[command(after_help = "Examples:\n  dhtctl -s 10.0.0.5:8468 get worker:w1\n  dhtctl get service:ocr --json\n  \
                            dhtctl get --raw-key 828717a2a10e23addde2af45a95e9e907529ff1c")]
    Get(KeyArgs),
    /// Store a value under a key (at the k closest nodes).
    #[command(
        override_usage = "dhtctl put [OPTIONS] KEY VALUE\n       dhtctl put [OPTIONS] --raw-key HEX VALUE",
        after_help = "Examples:\n  dhtctl -s 10.0.0.5:8468 put greeting hello\n  dhtctl put counter 7 --type int\n  \
                      dhtctl put --raw-key 828717a2a10e23addde2af45a95e9e907529ff1c 00ff --type bytes"
    )]
    Put(PutArgs),
    /// The k nodes closest to an id, from an iterative lookup (or one node's answer with --node).
    #[command(after_help = "Examples:\n  dhtctl find-node 828717a2a10e23addde2af45a95e9e907529ff1c\n  \
                            dhtctl find-node 8287...ff1c --node 10.0.0.5:8468")]
    FindNode(FindNodeArgs),
    /// Look a key up and show how the lookup went (or ask one node with --node).
    #[command(
        after_help = "Examples:\n  dhtctl find-value worker:w1\n  dhtctl find-value worker:w1 --node 10.0.0.5:8468"
    )]
    FindValue(FindValueArgs),
    /// The address a node sees our datagrams come from (NAT check).
    #[command(after_help = "Examples:\n  dhtctl stun 10.0.0.5:8468\n  dhtctl -s coordinator.example.org:8468 stun")]
    Stun(StunArgs),
    /// Healthy workers offering a service, straight from the DHT.
    #[command(after_help = "Examples:\n  dhtctl lookup ocr\n  dhtctl lookup llm --gpu --min-cores 8 --json")]
    Lookup(LookupArgs),
    /// Services and their healthy workers, from a node's HTTP surface.
    #[command(after_help = "Examples:\n  dhtctl workers --http http://localhost:8000\n  \
                            dhtctl workers ocr --http http://localhost:8000")]
    Workers(WorkersArgs),
    /// The network graph a node's HTTP surface reports.
    #[command(after_help = "Examples:\n  dhtctl topology --http http://localhost:8000 --json")]
    Topology(HttpArgs),
    /// Walk the network from the seeds: every node, its id, version, and a size estimate.
    #[command(
        after_help = "Examples:\n  dhtctl -s 10.0.0.5:8468 crawl\n  dhtctl crawl --timeout 60 --concurrency 32 --json"
    )]
    Crawl(CrawlArgs),
    /// Make a coordinator key pair for endorsement mode (prints seed and public key).
    #[command(after_help = "Examples:\n  dhtctl keygen --json")]
    Keygen,
    /// Issue a coordinator's certificate for a worker id and its public key
    /// (what register's `endorsement` field takes).
    #[command(
        after_help = "Examples:\n  DHT_COORDINATOR_KEY=<seed hex> dhtctl endorse worker-7 <worker public key hex> --days 30"
    )]
    Endorse(EndorseArgs),
}

#[derive(Args, Debug)]
pub struct EndorseArgs {
    /// The worker id.
    #[arg(value_name = "WORKER_ID")]
    pub worker_id: String,
    /// The worker's public key, 64 hex digits (register answers it as public_key).
    #[arg(value_name = "PUBLIC_KEY")]
    pub public_key: String,
    /// The coordinator's secret seed, 64 hex digits.
    #[arg(long, env = "DHT_COORDINATOR_KEY", hide_env_values = true)]
    pub coordinator_key: String,
    /// Days the certificate stays valid.
    #[arg(long, default_value_t = 30)]
    pub days: u64,
}

#[derive(Args, Debug)]
pub struct PingArgs {
    /// The node, host:port.
    #[arg(value_name = "HOST:PORT")]
    pub target: String,
}

/// A key given as text (hashed as the Python package does) or as a digest.
#[derive(Args, Debug)]
pub struct KeyArgs {
    /// The key text; stored under SHA-1 of its UTF-8 bytes, like Python's `digest()`.
    #[arg(value_name = "KEY", required_unless_present = "raw_key", conflicts_with = "raw_key")]
    pub key: Option<String>,
    /// The 20-byte key itself, as 40 hex digits.
    #[arg(long, value_name = "HEX")]
    pub raw_key: Option<String>,
}

#[derive(Args, Debug)]
pub struct PutArgs {
    /// KEY VALUE, or only VALUE with --raw-key.
    #[arg(value_name = "KEY VALUE", num_args = 1..=2, required = true)]
    pub args: Vec<String>,
    /// The 20-byte key itself, as 40 hex digits.
    #[arg(long, value_name = "HEX")]
    pub raw_key: Option<String>,
    /// How to read VALUE (Python's `set` accepts these types).
    #[arg(long = "type", value_name = "TYPE", default_value = "str",
          value_parser = ["str", "int", "float", "bool", "bytes"])]
    pub kind: String,
}

#[derive(Args, Debug)]
pub struct FindNodeArgs {
    /// The target id, 40 hex digits.
    #[arg(value_name = "ID")]
    pub id: String,
    /// Ask only this node (one find_node request) instead of looking up.
    #[arg(long, value_name = "HOST:PORT")]
    pub node: Option<String>,
}

#[derive(Args, Debug)]
pub struct FindValueArgs {
    #[command(flatten)]
    pub key: KeyArgs,
    /// Ask only this node (one find_value request) instead of looking up.
    #[arg(long, value_name = "HOST:PORT")]
    pub node: Option<String>,
}

#[derive(Args, Debug)]
pub struct StunArgs {
    /// The node to ask (default: the first seed).
    #[arg(value_name = "HOST:PORT")]
    pub target: Option<String>,
}

#[derive(Args, Debug)]
pub struct LookupArgs {
    /// The service name, e.g. ocr.
    #[arg(value_name = "SERVICE")]
    pub service: String,
    /// Only workers that report a GPU.
    #[arg(long)]
    pub gpu: bool,
    /// Only workers reporting at least this much free memory (their own unit).
    #[arg(long, value_name = "AMOUNT")]
    pub min_memory: Option<f64>,
    /// Only workers whose capabilities report at least this many CPU cores.
    #[arg(long, value_name = "N")]
    pub min_cores: Option<u64>,
    /// Show at most this many workers (the least loaded).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: Option<u32>,
    /// Count a worker healthy if heard from within this many seconds (records
    /// without their own expiry).
    #[arg(long, value_name = "SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=604_800))]
    pub max_age: u64,
}

#[derive(Args, Debug)]
pub struct HttpArgs {
    /// Base URL of a node's HTTP surface.
    #[arg(long = "http", value_name = "URL", env = "DHT_HTTP_URL")]
    pub url: String,
}

#[derive(Args, Debug)]
pub struct WorkersArgs {
    /// Show this service's workers instead of the service list.
    #[arg(value_name = "SERVICE")]
    pub service: Option<String>,
    #[command(flatten)]
    pub http: HttpArgs,
}

#[derive(Args, Debug)]
pub struct CrawlArgs {
    /// Nodes visited at once.
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub concurrency: u16,
    /// Stop learning new addresses after this many.
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub max_nodes: u32,
    /// Extra find_node requests per node, aimed at its far buckets.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u8).range(0..=160))]
    pub spread: u8,
    /// Random-target lookups for the size estimate (0 to skip).
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u8).range(0..=64))]
    pub probes: u8,
    /// Print progress lines on stderr even when it is not a terminal.
    #[arg(long, conflicts_with = "quiet")]
    pub progress: bool,
    /// Never print progress.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}
