//! `dhtd`'s limits on strangers (README "Security: limits on strangers"):
//! every bound of [`kadmesh::limits::Limits`], the stores' caps, the UDP
//! socket buffers and [`kadmesh::http::HttpLimits`], each a flag, a `DHT_`
//! variable and a TOML key, in the file's `[limits]` table or at its top.
//!
//! Defaults are the library's; clap checks each value's range so a
//! nonsense value is one line naming the flag, and [`LimitArgs`]' builders
//! turn them into the library's settings (`run` calls them).

use std::time::Duration;

use clap::Args;
use kadmesh::engine::providers::ProviderLimits;
use kadmesh::http::HttpLimits;
use kadmesh::limits::{ChurnLimits, HandoverPace, Limits, Quota, Rate, RateLimits, Share};
use kadmesh::node::SocketBuffers;
use kadmesh::store::StoreLimits;

/// A count of at least one.
fn count(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err("expected a whole number".into()),
    }
}

/// A rate (per second) of at least one.
fn rate(text: &str) -> Result<u32, String> {
    count(text).and_then(|n| u32::try_from(n).map_err(|_| "too large".into()))
}

/// A head-size bound: hyper needs at least 8 KiB.
fn head_bytes(text: &str) -> Result<usize, String> {
    count(text).and_then(|n| if n < 8192 { Err("must be at least 8192".into()) } else { Ok(n) })
}

/// Seconds, at least one.
fn seconds(text: &str) -> Result<u64, String> {
    count(text).map(|n| n as u64)
}

/// Every limit on what others can make this node do.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Limits on strangers (TOML: the [limits] table)")]
pub struct LimitArgs {
    /// Turn every UDP defence off: rate limits, quotas, reply budgets, the
    /// churn bound (for measurements; never on a reachable network).
    #[arg(long, env = "DHT_NO_LIMITS")]
    pub no_limits: bool,
    /// Apply the UDP limits to loopback sources too (exempt by default:
    /// local test networks run every node on 127.0.0.1).
    #[arg(long, env = "DHT_LIMIT_LOOPBACK")]
    pub limit_loopback: bool,
    /// Requests per second one source IP may send (excess dropped).
    #[arg(long, env = "DHT_RATE_PER_IP", value_parser = rate, default_value_t = 100)]
    pub rate_per_ip: u32,
    /// Burst of requests one source IP may send after a quiet spell.
    #[arg(long, env = "DHT_RATE_PER_IP_BURST", value_parser = rate, default_value_t = 400)]
    pub rate_per_ip_burst: u32,
    /// Requests per second one /24 (IPv4) or /64 (IPv6) may send.
    #[arg(long, env = "DHT_RATE_PER_PREFIX", value_parser = rate, default_value_t = 400)]
    pub rate_per_prefix: u32,
    /// Burst of one /24 or /64.
    #[arg(long, env = "DHT_RATE_PER_PREFIX_BURST", value_parser = rate, default_value_t = 1_600)]
    pub rate_per_prefix_burst: u32,
    /// Requests per second from all sources together.
    #[arg(long, env = "DHT_RATE_GLOBAL", value_parser = rate, default_value_t = 8_000)]
    pub rate_global: u32,
    /// Burst of all sources together.
    #[arg(long, env = "DHT_RATE_GLOBAL_BURST", value_parser = rate, default_value_t = 16_000)]
    pub rate_global_burst: u32,
    /// Source IPs (and, apart, prefixes) the rate limiter tracks (LRU).
    #[arg(long, env = "DHT_RATE_MAX_SOURCES", value_parser = count, default_value_t = 16_384)]
    pub rate_max_sources: usize,
    /// Most records this node holds for the network.
    #[arg(long, env = "DHT_MAX_RECORDS", value_parser = count, default_value_t = 100_000)]
    pub max_records: usize,
    /// Most value bytes this node holds for the network.
    #[arg(long, env = "DHT_MAX_STORE_BYTES", value_parser = count, default_value_t = 256 << 20)]
    pub max_store_bytes: usize,
    /// Most provider entries this node holds for the network.
    #[arg(long, env = "DHT_MAX_PROVIDERS", value_parser = count, default_value_t = 200_000)]
    pub max_providers: usize,
    /// Most workers one service's provider set holds here (when full, the
    /// entry expiring soonest makes room for a newcomer that outlives it).
    #[arg(long, env = "DHT_PROVIDER_MAX_PER_SET", value_parser = count, default_value_t = 10_000)]
    pub provider_max_per_set: usize,
    /// Most provider sets (services) this node holds.
    #[arg(long, env = "DHT_PROVIDER_MAX_SETS", value_parser = count, default_value_t = 20_000)]
    pub provider_max_sets: usize,
    /// Longest lifetime a provider entry may ask for, seconds.
    #[arg(long, env = "DHT_PROVIDER_MAX_TTL", value_parser = seconds, default_value_t = 24 * 3600)]
    pub provider_max_ttl: u64,
    /// Records one source IP may have stored here (default: 1/64 of --max-records).
    #[arg(long, env = "DHT_RECORD_QUOTA_PER_IP", value_parser = count)]
    pub record_quota_per_ip: Option<usize>,
    /// Value bytes one source IP may have stored here (default: 1/64 of --max-store-bytes).
    #[arg(long, env = "DHT_RECORD_BYTES_PER_IP", value_parser = count)]
    pub record_bytes_per_ip: Option<usize>,
    /// Records one /24 or /64 may have stored here (default: 1/16 of --max-records).
    #[arg(long, env = "DHT_RECORD_QUOTA_PER_PREFIX", value_parser = count)]
    pub record_quota_per_prefix: Option<usize>,
    /// Value bytes one /24 or /64 may have stored here (default: 1/16 of --max-store-bytes).
    #[arg(long, env = "DHT_RECORD_BYTES_PER_PREFIX", value_parser = count)]
    pub record_bytes_per_prefix: Option<usize>,
    /// Provider entries one source IP may have stored here (default: 1/100 of --max-providers).
    #[arg(long, env = "DHT_PROVIDER_QUOTA_PER_IP", value_parser = count)]
    pub provider_quota_per_ip: Option<usize>,
    /// Provider entries one /24 or /64 may have stored here (default: 1/25 of --max-providers).
    #[arg(long, env = "DHT_PROVIDER_QUOTA_PER_PREFIX", value_parser = count)]
    pub provider_quota_per_prefix: Option<usize>,
    /// Largest reply/request byte ratio towards an address that never
    /// answered us (amplification bound; 0 turns it off).
    #[arg(long, env = "DHT_REPLY_RATIO", default_value_t = 10)]
    pub reply_ratio: usize,
    /// Peers whose kind and probe time are remembered (LRU).
    #[arg(long, env = "DHT_MAX_PEER_STATE", value_parser = count, default_value_t = 8_192)]
    pub max_peer_state: usize,
    /// New node ids one source IP may introduce per --churn-window.
    #[arg(long, env = "DHT_CHURN_IDS_PER_IP", value_parser = count, default_value_t = 16)]
    pub churn_ids_per_ip: usize,
    /// New node ids one /24 or /64 may introduce per --churn-window.
    #[arg(long, env = "DHT_CHURN_IDS_PER_PREFIX", value_parser = count, default_value_t = 1_024)]
    pub churn_ids_per_prefix: usize,
    /// The churn window, seconds.
    #[arg(long, env = "DHT_CHURN_WINDOW", value_parser = seconds, default_value_t = 600)]
    pub churn_window: u64,
    /// Source IPs (and, apart, prefixes) the churn bound tracks (LRU).
    #[arg(long, env = "DHT_CHURN_MAX_SOURCES", value_parser = count, default_value_t = 4_096)]
    pub churn_max_sources: usize,
    /// Record handover STOREs per second to one newly verified contact (also its burst).
    #[arg(long, env = "DHT_HANDOVER_RATE", value_parser = rate, default_value_t = 20)]
    pub handover_rate: u32,
    /// Record handover STOREs per second to all contacts together (also the burst).
    #[arg(long, env = "DHT_HANDOVER_GLOBAL_RATE", value_parser = rate, default_value_t = 200)]
    pub handover_global_rate: u32,
    /// Contacts with record handover waiting; a newcomer beyond it gets its
    /// records from hourly replication instead.
    #[arg(long, env = "DHT_HANDOVER_MAX_CONTACTS", value_parser = count, default_value_t = 256)]
    pub handover_max_contacts: usize,
    /// UDP receive buffer, bytes (the kernel may cap it: net.core.rmem_max).
    #[arg(long, env = "DHT_UDP_RECV_BUFFER", value_parser = count, default_value_t = 4 << 20)]
    pub udp_recv_buffer: usize,
    /// UDP send buffer, bytes (net.core.wmem_max).
    #[arg(long, env = "DHT_UDP_SEND_BUFFER", value_parser = count, default_value_t = 1 << 20)]
    pub udp_send_buffer: usize,
    /// Seconds an HTTP client has to send a request's headers (and the
    /// longest a keep-alive connection sits idle).
    #[arg(long, env = "DHT_HTTP_HEADER_TIMEOUT", value_parser = seconds, default_value_t = 10)]
    pub http_header_timeout: u64,
    /// Seconds one HTTP request may run, body and answer included.
    #[arg(long, env = "DHT_HTTP_REQUEST_TIMEOUT", value_parser = seconds, default_value_t = 90)]
    pub http_request_timeout: u64,
    /// Open HTTP connections, all clients together.
    #[arg(long, env = "DHT_HTTP_MAX_CONNECTIONS", value_parser = count, default_value_t = 512)]
    pub http_max_connections: usize,
    /// Open HTTP connections from one IP.
    #[arg(long, env = "DHT_HTTP_MAX_CONNECTIONS_PER_IP", value_parser = count, default_value_t = 32)]
    pub http_max_connections_per_ip: usize,
    /// Largest HTTP request body, bytes (larger: 413).
    #[arg(long, env = "DHT_HTTP_MAX_BODY", value_parser = count, default_value_t = 64 << 10)]
    pub http_max_body: usize,
    /// Largest HTTP request head, bytes (larger: 431; at least 8192).
    #[arg(long, env = "DHT_HTTP_MAX_HEADER_BYTES", value_parser = head_bytes, default_value_t = 16 << 10)]
    pub http_max_header_bytes: usize,
    /// Most services one registration may name.
    #[arg(long, env = "DHT_MAX_SERVICES_PER_REGISTRATION", value_parser = count, default_value_t = 16)]
    pub max_services_per_registration: usize,
    /// Most candidate workers one discover fetches records of.
    #[arg(long, env = "DHT_MAX_CANDIDATES", value_parser = count, default_value_t = 64)]
    pub max_candidates: usize,
    /// Most services one /api/services/list call counts workers of.
    #[arg(long, env = "DHT_MAX_LISTED_SERVICES", value_parser = count, default_value_t = 64)]
    pub max_listed_services: usize,
    /// Seconds a "no healthy worker" answer is remembered (0: not at all).
    #[arg(long, env = "DHT_NEGATIVE_CACHE_TTL", default_value_t = 2)]
    pub negative_cache_ttl: u64,
}

impl LimitArgs {
    /// The engine's limits. Quotas left unset follow the store sizes.
    pub fn limits(&self) -> Result<Limits, String> {
        if self.http_max_connections_per_ip > self.http_max_connections {
            return Err("--http-max-connections-per-ip cannot exceed --http-max-connections".into());
        }
        if self.no_limits {
            return Ok(Limits { max_peer_state: self.max_peer_state, handover: self.handover(), ..Limits::off() });
        }
        let rate = RateLimits {
            enabled: true,
            per_ip: Rate { per_sec: self.rate_per_ip, burst: self.rate_per_ip_burst },
            per_prefix: Rate { per_sec: self.rate_per_prefix, burst: self.rate_per_prefix_burst },
            global: Rate { per_sec: self.rate_global, burst: self.rate_global_burst },
            max_sources: self.rate_max_sources,
        };
        Ok(Limits {
            rate,
            records: self.record_quota(),
            providers: self.provider_quota(),
            max_peer_state: self.max_peer_state,
            reply_ratio: self.reply_ratio,
            churn: ChurnLimits {
                enabled: true,
                ids_per_ip: self.churn_ids_per_ip,
                ids_per_prefix: self.churn_ids_per_prefix,
                window: Duration::from_secs(self.churn_window),
                max_sources: self.churn_max_sources,
            },
            handover: self.handover(),
            exempt_loopback: !self.limit_loopback,
        })
    }

    fn record_quota(&self) -> Quota {
        let d = Quota::records(self.max_records, self.max_store_bytes);
        let share = |items: Option<usize>, bytes: Option<usize>, d: Share| Share {
            items: items.unwrap_or(d.items),
            bytes: bytes.unwrap_or(d.bytes),
        };
        Quota {
            enabled: true,
            per_ip: share(self.record_quota_per_ip, self.record_bytes_per_ip, d.per_ip),
            per_prefix: share(self.record_quota_per_prefix, self.record_bytes_per_prefix, d.per_prefix),
        }
    }

    fn provider_quota(&self) -> Quota {
        let d = Quota::providers(self.max_providers);
        let items = |n: Option<usize>, d: Share| Share { items: n.unwrap_or(d.items), ..d };
        Quota {
            enabled: true,
            per_ip: items(self.provider_quota_per_ip, d.per_ip),
            per_prefix: items(self.provider_quota_per_prefix, d.per_prefix),
        }
    }

    fn handover(&self) -> HandoverPace {
        let (one, all) = (self.handover_rate, self.handover_global_rate);
        HandoverPace {
            per_contact: Rate { per_sec: one, burst: one },
            global: Rate { per_sec: all, burst: all },
            max_contacts: self.handover_max_contacts,
        }
    }

    /// The record store's caps.
    pub fn store(&self) -> StoreLimits {
        StoreLimits { max_records: self.max_records, max_bytes: self.max_store_bytes, ..StoreLimits::default() }
    }

    /// The provider store's caps.
    pub fn providers(&self) -> ProviderLimits {
        ProviderLimits {
            max_per_set: self.provider_max_per_set,
            max_sets: self.provider_max_sets,
            max_entries: self.max_providers,
            max_ttl: Duration::from_secs(self.provider_max_ttl),
        }
    }

    /// The UDP socket's kernel buffers.
    pub fn buffers(&self) -> SocketBuffers {
        SocketBuffers { recv: self.udp_recv_buffer, send: self.udp_send_buffer }
    }

    /// The HTTP surface's bounds.
    pub fn http(&self) -> HttpLimits {
        HttpLimits {
            header_read_timeout: Duration::from_secs(self.http_header_timeout),
            request_timeout: Duration::from_secs(self.http_request_timeout),
            max_connections: self.http_max_connections,
            max_connections_per_ip: self.http_max_connections_per_ip,
            max_body: self.http_max_body,
            max_header_bytes: self.http_max_header_bytes,
            max_services_per_registration: self.max_services_per_registration,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        limits: LimitArgs,
    }

    fn parse(args: &[&str]) -> LimitArgs {
        Cli::try_parse_from(std::iter::once("dhtd").chain(args.iter().copied())).expect("valid flags").limits
    }

    #[test]
    fn store_set_and_pacing_bounds_reach_the_library() {
        let a = parse(&[
            "--provider-max-per-set=7",
            "--provider-max-sets=8",
            "--provider-max-ttl=60",
            "--max-providers=900",
            "--churn-max-sources=33",
            "--handover-max-contacts=4",
        ]);
        let p = a.providers();
        assert_eq!((p.max_per_set, p.max_sets, p.max_entries), (7, 8, 900));
        assert_eq!(p.max_ttl, Duration::from_secs(60));
        let l = a.limits().expect("consistent limits");
        assert_eq!(l.churn.max_sources, 33);
        assert_eq!(l.handover.max_contacts, 4);
    }

    #[test]
    fn defaults_are_the_librarys() {
        let a = parse(&[]);
        assert_eq!(a.providers(), ProviderLimits { max_entries: 200_000, ..ProviderLimits::default() });
        let l = a.limits().expect("consistent limits");
        assert_eq!(l.churn.max_sources, ChurnLimits::default().max_sources);
        assert_eq!(l.handover.max_contacts, HandoverPace::default().max_contacts);
    }

    #[test]
    fn a_zero_set_bound_is_refused() {
        let err = Cli::try_parse_from(["dhtd", "--provider-max-per-set", "0"]).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("must be at least 1")));
    }
}
