//! Every option of the `dhtd` daemon, in one struct: each field is a flag
//! (`--name`), an environment variable (`DHT_NAME`) and a TOML key (the field
//! name) at once, with its default and help beside it.
//!
//! The limits on strangers are a group of their own, [`LimitArgs`] (the
//! TOML file may put them in a `[limits]` table).
//!
//! Adding an option is adding one field here: `config` reads the file and
//! reports the source of every field generically, through clap's own
//! description of the arguments. Only an extra, non-`DHT_` environment name
//! needs a line in [`ENV_ALIASES`].

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, ValueEnum};

pub use crate::limit_options::LimitArgs;

/// Environment names the platform already uses, accepted when the `DHT_`
/// name is unset: (argument id, alias).
pub const ENV_ALIASES: &[(&str, &str)] = &[("coordinator_url", "COORDINATOR_URL"), ("worker_ttl", "WORKER_TTL")];

/// Arguments that are about finding the configuration, not part of it.
pub const NOT_IN_FILE: &[&str] = &["config"];

/// When log lines carry ANSI colours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Color {
    /// Only when stderr is a terminal (and `NO_COLOR` is unset).
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// The daemon's options.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// TOML file with any of these options (keys are the long names with
    /// `_`, e.g. `http_bind = "0.0.0.0:8080"`); flags and DHT_ variables override it.
    #[arg(long, env = "DHT_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// UDP port to listen on (0: any free port).
    #[arg(long, env = "DHT_PORT", default_value_t = 8468)]
    pub port: u16,
    /// UDP bind address. 0.0.0.0 by default: other nodes must reach it, and a
    /// node bound to 127.0.0.1 cannot talk to a seed on another machine.
    #[arg(long, env = "DHT_BIND", default_value = "0.0.0.0")]
    pub bind: IpAddr,
    /// Seed node host:port; repeat, or comma-separate in DHT_SEEDS.
    #[arg(long = "seed", env = "DHT_SEEDS", value_name = "HOST:PORT", value_delimiter = ',')]
    pub seeds: Vec<String>,
    /// Seed node reached over HTTP at its tunnel URL (its POST
    /// /api/dht/rpc); repeat, or comma-separate in DHT_TUNNEL_SEEDS.
    #[arg(long = "tunnel-seed", env = "DHT_TUNNEL_SEEDS", value_name = "URL", value_delimiter = ',')]
    pub tunnel_seeds: Vec<String>,
    /// Serve the DHT over HTTP only: announce --public-url to kadmesh peers
    /// as this node's DHT address and drop requests arriving over UDP (for
    /// a node whose UDP cannot be reached from outside; its own requests
    /// still go out over UDP).
    #[arg(long, env = "DHT_OVER_HTTP", requires = "public_url")]
    pub dht_over_http: bool,
    /// No UDP at all: bind no UDP socket, act as a client for good
    /// (reachability `no-udp`, never in anyone's routing table) and send
    /// every datagram for a UDP contact through a --relay node's POST
    /// /api/dht/relay; URL contacts are reached directly. The relays are
    /// also bootstrap seeds.
    #[arg(long, env = "DHT_NO_UDP", conflicts_with = "dht_over_http")]
    pub no_udp: bool,
    /// Base URL of a kadmesh node that relays for this one (--no-udp);
    /// repeat, or comma-separate in DHT_RELAYS. The next is used when one fails.
    #[arg(long = "relay", env = "DHT_RELAYS", value_name = "URL", value_delimiter = ',')]
    pub relays: Vec<String>,
    /// The coordinator's bootstrap document, {"seeds": [{"host",
    /// "dht_port"}]} (its /api/dht/bootstrap): tried with --seed, after
    /// saved contacts and before every other source.
    #[arg(long, env = "DHT_BOOTSTRAP_URL")]
    pub bootstrap_url: Option<String>,
    /// DNS name resolving to many seeds (host:port); tried after seeds kept
    /// from earlier bootstrap documents; repeat, or comma-separate.
    #[arg(long = "seed-dns", env = "DHT_SEED_DNS", value_name = "NAME:PORT", value_delimiter = ',')]
    pub seed_dns: Vec<String>,
    /// Static seed-list URL (a bootstrap document, or one host:port per
    /// line); tried after --seed-dns; repeat, or comma-separate.
    #[arg(long = "seed-list", env = "DHT_SEED_LISTS", value_name = "URL", value_delimiter = ',')]
    pub seed_lists: Vec<String>,
    /// The edge router's bootstrap URL: the last resort, fetched only when
    /// every other source failed (every fetch counts against its budget).
    #[arg(long, env = "DHT_EDGE_URL")]
    pub edge_url: Option<String>,
    /// Node id as 40 hex digits (default: the saved one with --data-dir, else random).
    #[arg(long, env = "DHT_NODE_ID")]
    pub node_id: Option<String>,
    /// Directory for this node's state (id, contacts, records), locked while
    /// the daemon runs; restored at start, saved every --save-every seconds
    /// and on shutdown.
    #[arg(long, env = "DHT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Seconds between state saves (with --data-dir).
    #[arg(long, env = "DHT_SAVE_EVERY", default_value_t = 300)]
    pub save_every: u64,
    /// Reachability: `auto` finds out whether other nodes can reach this
    /// one over UDP and acts as a client (never inserted in others' routing
    /// tables) until it is proven reachable; `public` skips the check (open
    /// UDP: coordinators, seeds); `client` never serves others' lookups.
    #[arg(long, env = "DHT_REACHABILITY", default_value = "auto", value_parser = parse_reach_mode)]
    pub reachability: ReachModeArg,
    /// RPC timeout in seconds.
    #[arg(long, env = "DHT_RPC_TIMEOUT", default_value_t = 5.0)]
    pub rpc_timeout: f64,
    /// Copies of a value one get collects when its first copy is old, to
    /// return the newest and repair older holders (1: stop at the first).
    #[arg(long, env = "DHT_GET_COPIES", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=20))]
    pub get_copies: u16,
    /// Seconds within which a worker record's last_seen counts as fresh: a
    /// get whose first copy is that fresh ends with it.
    #[arg(long, env = "DHT_GET_FRESH_FOR", default_value_t = 150)]
    pub get_fresh_for: u64,
    /// Seconds between pings of a contact recently evicted for timeouts, so
    /// both sides of a healed partition meet again (0: never).
    #[arg(long, env = "DHT_LOST_RECHECK_EVERY", default_value_t = 10)]
    pub lost_recheck_every: u64,
    /// Address of the HTTP surface and the network page. Loopback by default:
    /// set 0.0.0.0:8080 to serve other machines (the image does).
    #[arg(long, env = "DHT_HTTP_BIND", default_value = "127.0.0.1:8080")]
    pub http_bind: SocketAddr,
    /// Do not serve HTTP (a pure DHT node).
    #[arg(long, env = "DHT_NO_HTTP")]
    pub no_http: bool,
    /// Coordinator to answer discover requests the DHT cannot (also COORDINATOR_URL).
    #[arg(long, env = "DHT_COORDINATOR_URL")]
    pub coordinator_url: Option<String>,
    /// Seconds a worker stays healthy after its last heartbeat (also WORKER_TTL).
    #[arg(long, env = "DHT_WORKER_TTL", default_value_t = 300)]
    pub worker_ttl: u64,
    /// Seconds between re-writes of registered workers' records.
    #[arg(long, env = "DHT_REFRESH_INTERVAL", default_value_t = 120)]
    pub refresh_interval: u64,
    /// Seconds of silence after which a registered worker is dropped.
    #[arg(long, env = "DHT_STALE_AFTER", default_value_t = 600)]
    pub stale_after: u64,
    /// Seconds discover answers are cached (0 disables).
    #[arg(long, env = "DHT_CACHE_TTL", default_value_t = 1)]
    pub cache_ttl: u64,
    /// Host name or IP other nodes reach this node's UDP port at (for /api/dht/bootstrap).
    #[arg(long, env = "DHT_PUBLIC_HOST")]
    pub public_host: Option<String>,
    /// This node's public HTTP URL (shown as its tunnel_url).
    #[arg(long, env = "DHT_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Token every register, heartbeat and unregister must carry as
    /// `Authorization: Bearer <token>` (default: none required).
    #[arg(long, env = "DHT_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
    /// Endorsement mode: serve only workers certified by this coordinator
    /// public key (64 hex digits; `dhtctl keygen` makes one, `dhtctl endorse` certifies).
    #[arg(long, env = "DHT_ENDORSEMENT_KEY", value_parser = parse_public_key_hex)]
    pub endorsement_key: Option<String>,
    /// Refuse worker tunnel URLs on loopback, private or localhost hosts.
    #[arg(long, env = "DHT_REFUSE_PRIVATE_URLS")]
    pub refuse_private_urls: bool,
    /// Services assigned to a worker that registers naming none (the
    /// platform's agent launches what `assigned_services` names).
    #[arg(long, env = "DHT_DEFAULT_SERVICES", value_delimiter = ',', default_value = "ocr")]
    pub default_services: Vec<String>,
    /// Added to the default services of such a worker when it reports a GPU.
    #[arg(long, env = "DHT_GPU_SERVICES", value_delimiter = ',', default_value = "llm-inference")]
    pub gpu_services: Vec<String>,
    /// Origins allowed to read the HTTP JSON from a browser (CORS); repeat or
    /// comma-separate; `*` allows any. None by default.
    #[arg(long = "cors-origin", env = "DHT_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Least seconds between two network crawls behind /api/dht/topology.
    #[arg(long, env = "DHT_CRAWL_EVERY", default_value_t = 15)]
    pub crawl_every: u64,
    /// Most nodes one topology crawl visits.
    #[arg(long, env = "DHT_CRAWL_MAX_NODES", default_value_t = 2000)]
    pub crawl_max_nodes: usize,
    /// Most workers the topology lists.
    #[arg(long, env = "DHT_TOPOLOGY_MAX_WORKERS", default_value_t = 2000)]
    pub topology_max_workers: usize,
    /// Runtime worker threads: 0 picks by role (1 without HTTP: the main
    /// thread runs everything; with HTTP one per core, at most 2); 1 runs
    /// everything on the main thread. Each thread costs memory (its stack, a
    /// malloc arena).
    #[arg(long, env = "DHT_THREADS", default_value_t = 0)]
    pub threads: usize,
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, env = "DHT_LOG_JSON")]
    pub log_json: bool,
    /// Colours in text logs.
    #[arg(long, env = "DHT_LOG_COLOR", value_enum, default_value_t = Color::Auto)]
    pub log_color: Color,
    /// Limits on strangers (the file's `[limits]` table).
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// `--reachability` as given (kept as text for `dhtd config`, checked).
pub type ReachModeArg = String;

/// Checks a reachability mode (`auto`, `public`, `client`).
pub fn parse_reach_mode(text: &str) -> Result<ReachModeArg, String> {
    text.parse::<kadmesh::reach::ReachMode>().map(|_| text.to_owned())
}

/// An Ed25519 public key given as 64 hex digits (checked, kept as text).
pub fn parse_public_key_hex(text: &str) -> Result<String, String> {
    public_key(text).map(|_| text.trim().to_owned())
}

/// The Ed25519 public key in 64 hex digits.
pub fn public_key(text: &str) -> Result<ed25519_dalek::VerifyingKey, String> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut bytes).map_err(|_| "expected 64 hex digits".to_owned())?;
    ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| "not a valid Ed25519 public key".to_owned())
}
