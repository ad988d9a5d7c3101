//! A short-lived client node for tools such as `dhtctl`.
//!
//! Asking the DHT anything (get, find_node, crawl) needs a node of our own: the
//! protocol has no client role, every request carries a sender id. This module
//! owns starting such a node on an OS-chosen port with settings suited to a
//! process that lives for seconds ([`client_config`]), and joining the network
//! through seeds with a single bootstrap attempt ([`connect`]), which fails
//! with [`ClientError::Unreachable`] instead of retrying when no seed answers:
//! an operator's command should say "unreachable" promptly, not wait forever.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::engine::{BootstrapOutcome, Config};
use crate::id::NodeId;
use crate::node::{Node, NodeError, NodeHandle};
use crate::seeds::{resolve_all, Seed, SeedError};

/// Why a client node could not be started or could not reach the network.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No seed was given; pass `--seed host:port`, set `DHT_SEEDS` or give a
    /// bootstrap URL.
    #[error("no seeds: pass --seed HOST:PORT, set DHT_SEEDS, or give --bootstrap-url")]
    NoSeeds,
    /// None of the seeds resolved to an address; check the names and DNS.
    #[error("no seed resolved: {0}")]
    Resolve(String),
    /// The seeds resolved but none answered a ping within the RPC timeout;
    /// check the addresses, that the nodes run, and that UDP passes firewalls.
    #[error("no seed answered within {timeout:.1?}: {seeds}")]
    Unreachable {
        /// The addresses pinged, comma-separated.
        seeds: String,
        /// How long each ping waited.
        timeout: Duration,
    },
    /// The local UDP socket could not be bound.
    #[error("cannot bind a local UDP socket on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The client node itself failed.
    #[error(transparent)]
    Node(#[from] NodeError),
}

impl From<SeedError> for ClientError {
    fn from(e: SeedError) -> Self {
        ClientError::Resolve(e.to_string())
    }
}

/// How long a client's lookup waits on one query before trying others too.
/// Short because routing tables hold dead contacts (often earlier short-lived
/// clients) and a one-off command should not wait a second on each.
pub const CLIENT_LOOKUP_STALL: Duration = Duration::from_millis(400);

/// Engine settings for a node that lives for one command: requests wait at
/// most `rpc_timeout`, lookups move past silent peers sooner, extension
/// probes (which stock Python peers never answer) give up quickly, and it
/// is a client ([`crate::reach`]): kadmesh peers do not insert a node that
/// is gone a second later, nor hand it out.
pub fn client_config(rpc_timeout: Duration) -> Config {
    let rpc_timeout = rpc_timeout.max(Duration::from_millis(50));
    let mut defaults = Config::default();
    defaults.reach.mode = crate::reach::ReachMode::Client;
    Config {
        rpc_timeout,
        // A stalled query still counts if it answers; stalling early only
        // lets the lookup try others sooner instead of waiting on dead peers.
        lookup_stall: CLIENT_LOOKUP_STALL.min(rpc_timeout),
        extension_timeout: defaults.extension_timeout.min(rpc_timeout).min(Duration::from_secs(1)),
        // Its one command's lookup starts from the seed, which knows the
        // network; lookups filling far buckets would only compete with it.
        join_fill: 0,
        rng_seed: rand::random(),
        ..defaults
    }
}

/// The wildcard address of the family most `addrs` use (IPv4 when tied), so
/// the client can reach its seeds.
pub fn wildcard_for(addrs: &[SocketAddr]) -> IpAddr {
    let v6 = addrs.iter().filter(|a| a.is_ipv6()).count();
    if v6 * 2 > addrs.len() {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    }
}

/// How to start a client node.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Local IP to bind (the port is always chosen by the OS); `None`: the
    /// wildcard of the peers' address family.
    pub bind: Option<IpAddr>,
    /// How long each request waits for its answer.
    pub rpc_timeout: Duration,
    /// The client's node id; `None`: [`machine_id`].
    pub id: Option<NodeId>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions { bind: None, rpc_timeout: Duration::from_secs(5), id: None }
    }
}

/// The id a client uses unless told otherwise: SHA-1 of the host name and
/// user, the same on every run. Peers remember whoever contacts them, and a
/// client that has exited stays in their tables until a request to it times
/// out (a stock Python peer's lookup waits 5 s on it). With one id per
/// machine, repeated runs refresh a single entry (kadmesh peers update its
/// address; Python peers keep the first) instead of leaving a new dead
/// contact behind each time. Random when no host name can be found.
pub fn machine_id() -> NodeId {
    let host = ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty());
    let user = std::env::var("USER").or_else(|_| std::env::var("USERNAME")).unwrap_or_default();
    match host {
        Some(host) => NodeId::digest(format!("kadmesh-client:{host}:{user}").as_bytes()),
        None => NodeId::random(&mut rand::thread_rng()),
    }
}

/// Starts a client node with [`client_config`], bound to `opts.bind` or to
/// the wildcard of the family of the `peers` it will talk to.
pub async fn start(opts: &ClientOptions, peers: &[SocketAddr]) -> Result<NodeHandle, ClientError> {
    let addr = SocketAddr::new(opts.bind.unwrap_or_else(|| wildcard_for(peers)), 0);
    let socket = tokio::net::UdpSocket::bind(addr).await.map_err(|source| ClientError::Bind { addr, source })?;
    let id = opts.id.unwrap_or_else(machine_id);
    Ok(Node::spawn(socket, id, client_config(opts.rpc_timeout))?)
}

/// A client node that has joined the network.
#[derive(Debug)]
pub struct Joined {
    /// The running node; call [`NodeHandle::shutdown`] when done.
    pub node: NodeHandle,
    /// What the bootstrap reached.
    pub outcome: BootstrapOutcome,
    /// The seed addresses pinged (resolved, of the socket's family).
    pub seeds: Vec<SocketAddr>,
}

/// Resolves `seeds`, starts a client node ([`start`]) and bootstraps once.
/// Seeds that do not resolve are skipped when others do.
pub async fn connect(seeds: &[Seed], opts: &ClientOptions) -> Result<Joined, ClientError> {
    if seeds.is_empty() {
        return Err(ClientError::NoSeeds);
    }
    let (mut addrs, errors) = resolve_all(seeds).await;
    if addrs.is_empty() {
        let why: Vec<String> = errors.iter().map(ToString::to_string).collect();
        return Err(ClientError::Resolve(why.join("; ")));
    }
    let bind = opts.bind.unwrap_or_else(|| wildcard_for(&addrs));
    // A v4 socket cannot send to v6 peers (and the reverse); keep what we can reach.
    addrs.retain(|a| a.is_ipv4() == bind.is_ipv4());
    if addrs.is_empty() {
        return Err(ClientError::Resolve(format!("no seed has an address of the same family as {bind}")));
    }
    let node = start(&ClientOptions { bind: Some(bind), ..opts.clone() }, &addrs).await?;
    let outcome = node.bootstrap(addrs.clone()).await?;
    if outcome.seeds_reached == 0 {
        node.shutdown().await;
        let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
        return Err(ClientError::Unreachable { seeds: list.join(", "), timeout: opts.rpc_timeout });
    }
    Ok(Joined { node, outcome, seeds: addrs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_follows_the_seeds_family() {
        let v4: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let v6: SocketAddr = "[::1]:1".parse().unwrap();
        assert!(wildcard_for(&[v4]).is_ipv4());
        assert!(wildcard_for(&[v6]).is_ipv6());
        assert!(wildcard_for(&[v4, v6]).is_ipv4());
        assert!(wildcard_for(&[]).is_ipv4());
    }

    #[test]
    fn client_config_bounds_every_wait_by_the_rpc_timeout() {
        let c = client_config(Duration::from_millis(300));
        assert_eq!(c.rpc_timeout, Duration::from_millis(300));
        assert!(c.lookup_stall <= c.rpc_timeout && c.extension_timeout <= c.rpc_timeout);
        assert_eq!(client_config(Duration::ZERO).rpc_timeout, Duration::from_millis(50));
        assert_eq!(c.reach.mode, crate::reach::ReachMode::Client, "dhtctl is a client");
    }

    #[tokio::test]
    async fn connect_reports_no_seeds_and_silent_seeds() {
        let opts = ClientOptions { rpc_timeout: Duration::from_millis(100), ..ClientOptions::default() };
        assert!(matches!(connect(&[], &opts).await, Err(ClientError::NoSeeds)));
        let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let seed = Seed::parse(&silent.local_addr().unwrap().to_string()).unwrap();
        let err = connect(&[seed], &opts).await.unwrap_err();
        assert!(matches!(err, ClientError::Unreachable { .. }), "{err}");
        assert!(err.to_string().contains(&silent.local_addr().unwrap().to_string()), "{err}");
    }

    #[tokio::test]
    async fn connect_joins_through_a_live_seed() {
        let local = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let seed_opts =
            ClientOptions { bind: Some(local.ip()), id: Some(NodeId::for_key("seed")), ..Default::default() };
        let seed_node = start(&seed_opts, &[]).await.unwrap();
        let seed = Seed::parse(&seed_node.local_addr().to_string()).unwrap();
        let joined = connect(&[seed], &ClientOptions::default()).await.unwrap();
        assert_eq!(joined.node.id(), machine_id(), "the same id on every run");
        assert_eq!(machine_id(), machine_id());
        assert_eq!(joined.outcome.seeds_reached, 1);
        assert!(joined.node.contacts().await.unwrap().iter().any(|c| c.id == seed_node.id()));
        joined.node.shutdown().await;
        seed_node.shutdown().await;
    }
}
