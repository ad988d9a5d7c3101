//! The tokio driver: runs one [`Engine`] on a real UDP socket.
//!
//! [`Node::spawn`] takes a socket the caller already bound (tests bind
//! `127.0.0.1:0`) and starts one task that owns the socket and the engine;
//! everything else talks to it through the cloneable [`NodeHandle`]. Replies
//! always leave from the socket the request arrived on, so peers behind NAT
//! or Docker bridges see the address they sent to.
//!
//! Besides UDP the driver moves datagrams over HTTP (`tunnel.rs`: URL
//! contacts and `POST /api/dht/rpc`), relays request datagrams for HTTP
//! clients (`relay.rs`: `POST /api/dht/relay`), and, for a node started with
//! [`Node::spawn_without_udp`], sends every UDP-bound datagram through a
//! relay instead of a socket.

mod bootstrap;
mod clock;
mod join;
mod relay;
mod socket;
mod tunnel;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

pub use bootstrap::{bootstrap_with_retry, keep_seeds_in_touch, Backoff, SEED_RECHECK};
pub use clock::Clock;
pub use join::{join_in_order, JoinCounts, JoinEvent, Joined, SeedSources};
pub use relay::{RelayAnswer, RelayError, RelayResult, RelaySettings, RelayStats};
pub use socket::SocketBuffers;
pub use tunnel::{HttpAnswer, TunnelSettings, TunnelStats};

use crate::contact::Contact;
use crate::engine::providers::client::Announce;
use crate::engine::{
    BootstrapOutcome, Config, Engine, GetOutcome, Outcome, PingReply, ProviderReadOutcome, ProviderWriteOutcome,
    PutOutcome, QueryId,
};
use crate::id::{Key, NodeId};
use crate::reach::recent::RecentPeers;
use crate::time::Time;
use crate::wire::{Call, Value, MAX_DATAGRAM};

/// Why a node operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Binding or reading the UDP socket failed; check the port is free.
    #[error("UDP socket error: {0}")]
    Io(#[from] std::io::Error),
    /// The node task has stopped (shut down or crashed); start a new node.
    #[error("the node has shut down")]
    Stopped,
    /// The value was refused before anything was sent (too large for a
    /// `store` request); store a smaller value or a reference to it.
    #[error("value refused: {0}")]
    Rejected(crate::store::StoreError),
    /// The engine settings are unusable (see [`Config::validate`]); the
    /// error names the field to fix.
    #[error("invalid engine settings: {0}")]
    Config(#[from] crate::engine::ConfigError),
    /// The engine answered a command with an outcome of another kind (a bug).
    #[error("unexpected outcome for {0}")]
    Unexpected(&'static str),
    /// The HTTP client for URL contacts could not be built (its TLS setup
    /// failed); the message says why.
    #[error("HTTP transport: {0}")]
    Transport(String),
}

type Job = Box<dyn FnOnce(&mut Engine, Time) -> Option<QueryId> + Send>;

enum Command {
    /// Run a closure on the engine; if it starts an operation, the outcome
    /// goes to `reply`.
    Run(Job, Option<oneshot::Sender<Outcome>>),
    /// A request datagram that came over HTTP from an IP, and where its
    /// answer goes.
    Http(IpAddr, Bytes, oneshot::Sender<HttpAnswer>),
    /// A request datagram an HTTP client asked us to relay to a UDP contact.
    Relay(IpAddr, SocketAddr, Bytes, oneshot::Sender<RelayAnswer>),
    Shutdown(oneshot::Sender<()>),
    /// Simulate a reply-only NAT with this mapping lifetime, or stop.
    ReplyOnly(Option<std::time::Duration>),
}

/// How the driver moves bytes.
#[derive(Clone, Debug, Default)]
pub struct NodeOptions {
    /// Kernel buffer sizes of the UDP socket.
    pub buffers: SocketBuffers,
    /// The HTTP transport to URL contacts.
    pub tunnel: TunnelSettings,
    /// Drop every request that arrives over UDP (replies to our own
    /// requests still pass): what a stateful firewall that drops unsolicited
    /// UDP does. For a node that announces a tunnel URL
    /// ([`Config::tunnel_url`]) because its UDP is not reachable, so that it
    /// is never taken for a UDP node, and for tests of such nodes.
    pub refuse_udp_requests: bool,
    /// How this node relays for HTTP clients (`POST /api/dht/relay`).
    pub relay: RelaySettings,
    /// Base URLs of kadmesh nodes that relay for us: a node started with
    /// [`Node::spawn_without_udp`] sends every datagram for a UDP contact
    /// through one of them (the next after a failure).
    pub relays: Vec<String>,
}

/// Starts nodes.
pub struct Node;

impl Node {
    /// Binds `addr` and starts a node with a random id.
    pub async fn bind(addr: SocketAddr, config: Config) -> Result<NodeHandle, NodeError> {
        let socket = UdpSocket::bind(addr).await?;
        let id = NodeId::random(&mut rand::thread_rng());
        Node::spawn(socket, id, config)
    }

    /// Starts a node on an already bound socket. The engine's RNG seed is
    /// mixed with OS randomness: message ids must not be predictable on a
    /// real network (simulations drive [`Engine`] directly with fixed seeds).
    /// The socket's kernel buffers are enlarged to [`SocketBuffers`]'
    /// defaults; [`Node::spawn_with_buffers`] chooses them.
    pub fn spawn(socket: UdpSocket, id: NodeId, config: Config) -> Result<NodeHandle, NodeError> {
        Node::spawn_with_buffers(socket, id, config, SocketBuffers::default())
    }

    /// [`Node::spawn`] with chosen socket buffer sizes.
    pub fn spawn_with_buffers(
        socket: UdpSocket,
        id: NodeId,
        config: Config,
        buffers: SocketBuffers,
    ) -> Result<NodeHandle, NodeError> {
        Node::spawn_with_options(socket, id, config, NodeOptions { buffers, ..NodeOptions::default() })
    }

    /// [`Node::spawn`] with chosen driver options.
    pub fn spawn_with_options(
        socket: UdpSocket,
        id: NodeId,
        config: Config,
        options: NodeOptions,
    ) -> Result<NodeHandle, NodeError> {
        options.buffers.apply(&socket);
        let local_addr = socket.local_addr()?;
        let probes = socket::probe_socket(local_addr);
        Node::start(Some(socket), probes, local_addr, id, config, options)
    }

    /// Starts a node with no UDP socket at all (`dhtd --no-udp`): a client
    /// for good (its config's reachability mode is set to `client`, its
    /// verdict is `no-udp`) that reaches URL contacts over HTTP and every
    /// UDP contact through [`NodeOptions::relays`]. Its
    /// [`NodeHandle::local_addr`] is `0.0.0.0:0`.
    pub fn spawn_without_udp(id: NodeId, mut config: Config, options: NodeOptions) -> Result<NodeHandle, NodeError> {
        config.reach.mode = crate::reach::ReachMode::Client;
        let local_addr = SocketAddr::from(([0, 0, 0, 0], 0));
        Node::start(None, None, local_addr, id, config, options)
    }

    fn start(
        socket: Option<UdpSocket>,
        probes: Option<UdpSocket>,
        local_addr: SocketAddr,
        id: NodeId,
        mut config: Config,
        options: NodeOptions,
    ) -> Result<NodeHandle, NodeError> {
        config.validate()?;
        config.rng_seed ^= rand::random::<u64>();
        let clock = Clock::new();
        let mut engine = Engine::new(id, config, clock.now());
        if socket.is_none() {
            engine.declare_no_udp(clock.now(), NO_UDP_REASON);
        }
        let (tx, rx) = mpsc::channel(1024);
        let (tunnel, answers) = tunnel::Tunnel::new(&options.tunnel, options.relays).map_err(NodeError::Transport)?;
        let counters = Arc::clone(&tunnel.counters);
        let relay_counters = Arc::default();
        let relay_timeout = options.relay.timeout;
        let io = Io {
            socket: socket.map(Arc::new),
            probes,
            local_addr,
            tunnel,
            answers,
            relays: relay::Relays::new(options.relay),
            udp_requests: !options.refuse_udp_requests,
        };
        tokio::spawn(run(io, engine, clock, rx));
        Ok(NodeHandle { tx, id, local_addr, tunnel: counters, relay: relay_counters, relay_timeout })
    }
}

/// The reachability reason of a node without UDP.
pub const NO_UDP_REASON: &str = "--no-udp: no UDP socket; UDP contacts are reached through relays";

/// A handle to a running node; cheap to clone.
#[derive(Clone, Debug)]
pub struct NodeHandle {
    tx: mpsc::Sender<Command>,
    id: NodeId,
    local_addr: SocketAddr,
    tunnel: Arc<tunnel::TunnelCounters>,
    relay: Arc<relay::RelayCounters>,
    relay_timeout: std::time::Duration,
}

impl NodeHandle {
    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The address the node's socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// What the HTTP transport (URL contacts, `POST /api/dht/rpc`) did so far.
    pub fn tunnel_stats(&self) -> TunnelStats {
        self.tunnel.read()
    }

    /// Runs `f` on the engine and returns its result.
    pub async fn with_engine<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Engine, Time) -> R + Send + 'static,
    ) -> Result<R, NodeError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |e, now| {
            let _ = tx.send(f(e, now));
            None
        });
        self.tx.send(Command::Run(job, None)).await.map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)
    }

    /// Starts an operation with `f` and waits for its outcome.
    pub async fn operation(
        &self,
        f: impl FnOnce(&mut Engine, Time) -> QueryId + Send + 'static,
    ) -> Result<Outcome, NodeError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |e, now| Some(f(e, now)));
        self.tx.send(Command::Run(job, Some(tx))).await.map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)
    }

    /// Looks `key` up.
    pub async fn get(&self, key: Key) -> Result<GetOutcome, NodeError> {
        match self.operation(move |e, now| e.get(now, key)).await? {
            Outcome::Get(g) => Ok(g),
            _ => Err(NodeError::Unexpected("get")),
        }
    }

    /// Stores `value` under `key` at the k closest nodes, republishing it
    /// while this node runs.
    pub async fn put(&self, key: Key, value: Value) -> Result<PutOutcome, NodeError> {
        match self.operation(move |e, now| e.put(now, key, value)).await? {
            Outcome::Put(PutOutcome { rejected: Some(e), .. }) => Err(NodeError::Rejected(e)),
            Outcome::Put(p) => Ok(p),
            _ => Err(NodeError::Unexpected("put")),
        }
    }

    /// The k closest nodes to `target` in the network.
    pub async fn find_node(&self, target: NodeId) -> Result<Vec<Contact>, NodeError> {
        match self.operation(move |e, now| e.find_node(now, target)).await? {
            Outcome::FindNode { closest, .. } => Ok(closest),
            _ => Err(NodeError::Unexpected("find_node")),
        }
    }

    /// Pings `seeds`, then looks up our own id.
    pub async fn bootstrap(&self, seeds: Vec<SocketAddr>) -> Result<BootstrapOutcome, NodeError> {
        match self.operation(move |e, now| e.bootstrap(now, &seeds)).await? {
            Outcome::Bootstrap(b) => Ok(b),
            _ => Err(NodeError::Unexpected("bootstrap")),
        }
    }

    /// Pings `addr`; `None` when it did not answer in time.
    pub async fn ping(&self, addr: SocketAddr) -> Result<Option<PingReply>, NodeError> {
        match self.operation(move |e, now| e.ping(now, addr)).await? {
            Outcome::Ping(p) => Ok(p),
            _ => Err(NodeError::Unexpected("ping")),
        }
    }

    /// Our address as `addr` sees it.
    pub async fn stun(&self, addr: SocketAddr) -> Result<Option<SocketAddr>, NodeError> {
        match self.operation(move |e, now| e.stun(now, addr)).await? {
            Outcome::Stun(s) => Ok(s),
            _ => Err(NodeError::Unexpected("stun")),
        }
    }

    /// Calls any procedure on `addr`; `None` when it did not answer.
    pub async fn call(&self, addr: SocketAddr, call: Call) -> Result<Option<Value>, NodeError> {
        match self.operation(move |e, now| e.call(now, addr, call)).await? {
            Outcome::Call(v) => Ok(v),
            _ => Err(NodeError::Unexpected("call")),
        }
    }

    /// Reads the provider set under `key` from up to `replicas` of the
    /// closest extension nodes, merged with this node's own entries.
    pub async fn provider_read(&self, key: Key, replicas: usize) -> Result<ProviderReadOutcome, NodeError> {
        match self.operation(move |e, now| e.provider_read(now, key, replicas)).await? {
            Outcome::ProviderRead(r) => Ok(r),
            _ => Err(NodeError::Unexpected("provider_read")),
        }
    }

    /// Adds `items` to (or, with `remove`, tombstones them in) the provider
    /// set under `key`, batched with other writes within `window`.
    pub async fn provider_write(
        &self,
        key: Key,
        items: Vec<Announce>,
        remove: bool,
        window: std::time::Duration,
    ) -> Result<ProviderWriteOutcome, NodeError> {
        match self.operation(move |e, now| e.provider_write(now, key, items, remove, window)).await? {
            Outcome::ProviderWrite(w) => Ok(w),
            _ => Err(NodeError::Unexpected("provider_write")),
        }
    }

    /// Handles a request datagram that `client` sent over HTTP
    /// (`POST /api/dht/rpc`) and answers its reply datagram, if any.
    pub async fn http_request(&self, client: IpAddr, data: Bytes) -> Result<HttpAnswer, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Command::Http(client, data, tx)).await.map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)
    }

    /// Relays `data`, a request datagram `client` sent over HTTP, to the
    /// UDP contact `target` and answers its reply (`POST /api/dht/relay`).
    /// A target that is this node is answered as by
    /// [`http_request`](Self::http_request). Counts the result.
    pub async fn relay(&self, client: IpAddr, target: SocketAddr, data: Bytes) -> Result<RelayAnswer, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Command::Relay(client, target, data.clone(), tx)).await.map_err(|_| NodeError::Stopped)?;
        let answer = match tokio::time::timeout(self.relay_timeout, rx).await {
            Ok(r) => r.map_err(|_| NodeError::Stopped)?,
            Err(_) => Err(RelayError::Timeout),
        };
        let answer = match answer {
            Err(RelayError::ToSelf) => self.http_request(client, data).await?.map_err(|e| match e {
                crate::engine::HttpRequestError::Malformed => crate::engine::RelayRefusal::Malformed.into(),
                crate::engine::HttpRequestError::Limited => crate::engine::RelayRefusal::Limited.into(),
            }),
            other => other,
        };
        self.count_relay(match &answer {
            Ok(Some(_)) => RelayResult::Answered,
            Ok(None) => RelayResult::NoReply,
            Err(e) => RelayResult::of(*e),
        });
        Ok(answer)
    }

    /// Counts a relay request that ended with `result` (the HTTP layer
    /// counts those it refuses before asking the node).
    pub fn count_relay(&self, result: RelayResult) {
        self.relay.bump(result);
    }

    /// Relay requests served so far, by result.
    pub fn relay_stats(&self) -> RelayStats {
        self.relay.read()
    }

    /// The address standing for the node at tunnel URL `url` (a seed given
    /// by URL): pass it to [`bootstrap`](Self::bootstrap) or
    /// [`ping`](Self::ping). `None` for a URL that cannot be a contact.
    pub async fn tunnel_addr(&self, url: String) -> Result<Option<SocketAddr>, NodeError> {
        self.with_engine(move |e, _| e.add_tunnel(&url)).await
    }

    /// Whether other nodes can reach this one, and why we think so.
    pub async fn reachability(&self) -> Result<crate::reach::Verdict, NodeError> {
        self.with_engine(|e, _| e.reachability().clone()).await
    }

    /// Starts a reachability check now (mode `auto` only).
    pub async fn check_reachability(&self) -> Result<(), NodeError> {
        self.with_engine(|e, now| e.check_reachability(now)).await
    }

    /// For tests: puts the node behind a simulated reply-only NAT (datagrams
    /// from an address it has not sent to within `window` are dropped on
    /// arrival), or takes it out with `None`.
    pub async fn set_reply_only(&self, window: Option<std::time::Duration>) -> Result<(), NodeError> {
        self.tx.send(Command::ReplyOnly(window)).await.map_err(|_| NodeError::Stopped)
    }

    /// The contacts in the routing table.
    pub async fn contacts(&self) -> Result<Vec<Contact>, NodeError> {
        self.with_engine(|e, _| e.routing().contacts().collect()).await
    }

    /// Stops the node and waits until its task has ended.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// What the node task moves bytes through: its UDP socket and the HTTP
/// transport for URL contacts.
struct Io {
    /// `None` for a node without UDP (its UDP datagrams go through relays).
    socket: Option<Arc<UdpSocket>>,
    /// Sends only: where reachability probes leave from (another port).
    probes: Option<UdpSocket>,
    local_addr: SocketAddr,
    tunnel: tunnel::Tunnel,
    /// Requests we relay for HTTP clients, waiting for their replies.
    relays: relay::Relays,
    /// Answers of the tunnel's POSTs: (tunnel address, reply datagram).
    answers: mpsc::Receiver<(SocketAddr, Bytes)>,
    /// Whether requests that arrive over UDP are handled.
    udp_requests: bool,
}

impl Io {
    /// Whether a datagram from `from` is handled: none may claim an address
    /// that stands for an HTTP peer, and requests only if UDP takes them.
    fn admits(&self, from: SocketAddr, data: &[u8]) -> bool {
        let http = crate::tunnel::is_tunnel(from) || crate::tunnel::is_http_source(from);
        !http && (self.udp_requests || data.first() != Some(&0))
    }

    /// Whether `target` is our own DHT socket: the bound address, or, bound
    /// to a wildcard, our port on loopback or at the address peers saw.
    fn is_self(&self, target: SocketAddr, engine: &Engine) -> bool {
        let own = self.local_addr;
        target == own
            || own.ip().is_unspecified()
                && target.port() == own.port()
                && (target.ip().is_loopback() || engine.reachability().observed == Some(target))
    }
}

async fn run(mut io: Io, mut engine: Engine, clock: Clock, mut rx: mpsc::Receiver<Command>) {
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    let mut waiting: HashMap<QueryId, oneshot::Sender<Outcome>> = HashMap::new();
    let mut nat: Option<RecentPeers> = None;
    // One timer for the node's life, moved only when the engine's deadline
    // changes: a fresh `sleep_until` per datagram registered and removed a
    // timer entry under the runtime's shared timer lock every time.
    let timer = tokio::time::sleep_until(tokio::time::Instant::now());
    tokio::pin!(timer);
    let mut armed: Option<tokio::time::Instant> = None;
    loop {
        let wake = engine.poll_timeout().map(|t| clock.instant(t));
        if wake != armed {
            if let Some(t) = wake {
                timer.as_mut().reset(t);
            }
            armed = wake;
        }
        tokio::select! {
            r = recv(io.socket.as_deref(), &mut buf) => match r {
                Ok((_, from)) if nat.as_ref().is_some_and(|n| !n.admits(from, clock.now())) => {}
                Ok((n, from)) if io.relays.take_reply(from, &buf[..n]) => engine.note_relayed_reply(from, &buf[..n]),
                Ok((n, from)) if io.admits(from, &buf[..n]) => engine.handle_datagram(clock.now(), from, &buf[..n]),
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "recv failed"),
            },
            Some((from, reply)) = io.answers.recv() => engine.handle_datagram(clock.now(), from, &reply),
            cmd = rx.recv() => match cmd {
                Some(Command::Run(job, reply)) => {
                    if let (Some(q), Some(reply)) = (job(&mut engine, clock.now()), reply) {
                        waiting.insert(q, reply);
                    }
                }
                Some(Command::Http(client, data, reply)) => on_http(&mut io, &mut engine, clock.now(), client, &data, reply).await,
                Some(Command::Relay(client, target, data, reply)) => on_relay(&mut io, &mut engine, clock.now(), (client, target), &data, reply).await,
                Some(Command::ReplyOnly(window)) => nat = window.map(|w| RecentPeers::new(1 << 16, w)),
                Some(Command::Shutdown(done)) => {
                    flush(&mut io, &mut engine, None, clock.now()).await;
                    let _ = done.send(());
                    return;
                }
                None => return,
            },
            _ = &mut timer, if armed.is_some() => {
                // Fired: re-arm on the next pass even if the deadline is unchanged.
                armed = None;
                engine.handle_timeout(clock.now());
            }
        }
        flush(&mut io, &mut engine, nat.as_mut(), clock.now()).await;
        while let Some(ev) = engine.poll_event() {
            if let Some(tx) = waiting.remove(&ev.id) {
                let _ = tx.send(ev.outcome);
            }
        }
    }
}

/// A request that came over HTTP: the engine answers it at once, so by the
/// end of the flush its reply is on its way or there is none.
async fn on_http(
    io: &mut Io,
    engine: &mut Engine,
    now: Time,
    client: IpAddr,
    data: &[u8],
    reply: oneshot::Sender<HttpAnswer>,
) {
    io.tunnel.counters.received();
    match engine.handle_http_request(now, client, data) {
        Ok(id) => {
            io.tunnel.expect(client, id, reply);
            flush(io, engine, None, now).await;
            io.tunnel.unanswered(client, id);
        }
        Err(e) => {
            let _ = reply.send(Err(e));
        }
    }
}

/// A request to relay: refused by the engine's rules, or sent from our DHT
/// socket under a fresh id, its reply awaited by [`relay::Relays`].
async fn on_relay(
    io: &mut Io,
    engine: &mut Engine,
    now: Time,
    (client, target): (IpAddr, SocketAddr),
    data: &[u8],
    reply: oneshot::Sender<RelayAnswer>,
) {
    let Some(socket) = io.socket.clone() else {
        let _ = reply.send(Err(RelayError::NoUdp));
        return;
    };
    if io.is_self(target, engine) {
        let _ = reply.send(Err(RelayError::ToSelf));
        return;
    }
    if let Err(e) = engine.admit_relay(now, client, target, data) {
        let _ = reply.send(Err(e.into()));
        return;
    }
    match io.relays.start(target, data, reply, tokio::time::Instant::now()) {
        Ok(out) => {
            if let Err(e) = socket.send_to(&out, target).await {
                tracing::debug!(%target, error = %e, "relay send failed");
                io.relays.fail(target, &out, RelayError::Timeout);
            }
        }
        Err((e, reply)) => {
            let _ = reply.send(Err(e));
        }
    }
}

/// Receives on the node's socket; never returns without one.
async fn recv(socket: Option<&UdpSocket>, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    match socket {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

/// Sends what the engine queued: to HTTP sources on their responses, to
/// tunnel addresses as POSTs, to everyone else over UDP (noting, behind a
/// simulated reply-only NAT, whom we sent to).
async fn flush(io: &mut Io, engine: &mut Engine, mut nat: Option<&mut RecentPeers>, now: Time) {
    while let Some(t) = engine.poll_transmit() {
        if let Some(n) = nat.as_deref_mut() {
            n.note_sent(t.to, now);
        }
        if crate::tunnel::is_http_source(t.to) {
            io.tunnel.reply(t.to, t.payload);
        } else if crate::tunnel::is_tunnel(t.to) {
            match engine.tunnel_url(t.to) {
                Some(url) => io.tunnel.post(t.to, url, t.payload),
                None => tracing::debug!(to = %t.to, "no URL known for this tunnel address"),
            }
        } else if let Some(own) = io.socket.as_deref() {
            let socket = io.probes.as_ref().filter(|_| t.from_other_port).unwrap_or(own);
            if let Err(e) = socket.send_to(&t.payload, t.to).await {
                tracing::debug!(to = %t.to, error = %e, "send failed");
            }
        } else if io.tunnel.has_relays() {
            io.tunnel.relay_post(t.to, t.payload);
        } else {
            tracing::debug!(to = %t.to, "no UDP socket and no relay; dropped");
        }
    }
}
