//! The virtual network: addresses, delivery queue, loss and partitions.
//!
//! The network routes a datagram to the machine that owns its destination
//! address, where it waits in that machine's inbox ([`Queued`], ordered by
//! delivery time, destination, source and a tag, see
//! [`crate::node::SimNode::inbox`]). The tag mixes the sender's own send
//! counter, the addresses and the send time, and loss and jitter are drawn
//! from it: a datagram's fate depends only on its sender's history, never on
//! how senders on different threads interleave. Every datagram spends at
//! least [`MIN_ONE_WAY`] in flight, which is what lets the world run machines
//! side by side in windows of that length (see [`crate::world`]).
//!
//! A share of the machines may sit behind a reply-only NAT: a datagram
//! reaches such a machine only from an address it sent to within
//! [`NAT_TIMEOUT`] ([`kadmesh::reach::recent::RecentPeers`] keeps that
//! record; the filter runs where the datagram is delivered, in
//! [`crate::window`]).
//!
//! Addresses are handed out once per node identity: `10.a.b.c:8468`, where
//! `a.b.c` is the identity's address index plus one. A machine that restarts
//! without its state gets a new address, as a new tunnel or NAT mapping would.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use bytes::Bytes;
use kadmesh::time::Time;

use crate::hash::{mix, unit};
use crate::latency::{LatencyModel, Placement, RTT_MIN_MS};

/// The least time any datagram spends in flight: half the smallest RTT.
pub const MIN_ONE_WAY: std::time::Duration = std::time::Duration::from_millis(RTT_MIN_MS as u64 / 2);

/// How long a simulated NAT keeps a mapping open after the machine sends.
pub const NAT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Added to the round trip of every exchange with a machine that has no
/// UDP: its datagrams travel as HTTPS POSTs through its tunnel to a public
/// relay node, which forwards them over UDP (half on each way).
pub const TUNNEL_RTT_PENALTY_MS: u64 = 200;

/// How a machine can be reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edge {
    /// Open UDP: anyone can send to it.
    Open,
    /// Behind a reply-only NAT: only from addresses it sent to lately.
    Nat,
    /// No UDP at all: it reaches the DHT as a client through a public
    /// node's tunnel (a relay), so it gets the replies to its own requests,
    /// [`TUNNEL_RTT_PENALTY_MS`] late, and no request ever reaches it.
    NoUdp,
}

/// The UDP port every virtual node listens on.
pub const PORT: u16 = 8468;
/// The port a machine's reachability probes leave from (the engine's
/// `Transmit::from_other_port`); nothing listens on it.
pub const OTHER_PORT: u16 = PORT + 1;
/// IPv4 plus UDP header bytes, added to every datagram's cost.
pub const HEADER_BYTES: u64 = 28;
/// rpcudp header: type byte and 20-byte message id.
const RPC_HEADER: usize = 21;

/// The address with index `i`.
pub fn addr_of(i: u32) -> SocketAddr {
    let [_, a, b, c] = (i + 1).to_be_bytes();
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, a, b, c)), PORT)
}

/// Where a datagram from machine `from_addr` comes from: its DHT address,
/// or the same IP at [`OTHER_PORT`].
pub fn source_of(from_addr: u32, from_other_port: bool) -> SocketAddr {
    let a = addr_of(from_addr);
    if from_other_port {
        SocketAddr::new(a.ip(), OTHER_PORT)
    } else {
        a
    }
}

/// The index of a virtual address, if it is one.
pub fn index_of(addr: SocketAddr) -> Option<u32> {
    match addr {
        SocketAddr::V4(v4) if v4.port() == PORT && v4.ip().octets()[0] == 10 => {
            let [_, a, b, c] = v4.ip().octets();
            u32::from_be_bytes([0, a, b, c]).checked_sub(1)
        }
        _ => None,
    }
}

/// Traffic classes, by the remote procedure a request calls (a reply counts
/// with its request).
pub const KIND_LABELS: [&str; 8] = ["ping", "store", "find_node", "find_value", "stun", "hello", "store_ttl", "other"];
/// Index of `find_value` in [`KIND_LABELS`]: the traffic of lookups.
pub const FIND_VALUE: u8 = 3;

/// The traffic class of a request datagram, from its procedure name.
pub fn classify_request(payload: &[u8]) -> u8 {
    let name = match payload.get(RPC_HEADER..RPC_HEADER + 2) {
        Some(&[0x92, len]) if len & 0xe0 == 0xa0 => {
            let start = RPC_HEADER + 2;
            payload.get(start..start + usize::from(len & 0x1f)).unwrap_or_default()
        }
        _ => return 7,
    };
    match name {
        b"ping" => 0,
        b"store" => 1,
        b"find_node" => 2,
        b"find_value" => 3,
        b"stun" => 4,
        b"kadmesh_hello" => 5,
        b"kadmesh_store_ttl" => 6,
        _ => 7,
    }
}

/// A datagram in flight.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// When it arrives.
    pub at: Time,
    /// Destination address index.
    pub to_addr: u32,
    /// Source address index.
    pub from_addr: u32,
    /// Traffic class ([`KIND_LABELS`]).
    pub kind: u8,
    /// Request (true) or reply.
    pub request: bool,
    /// Sent from the source machine's other port ([`OTHER_PORT`]).
    pub from_other_port: bool,
    /// The datagram.
    pub payload: Bytes,
}

/// A datagram waiting in its destination machine's inbox.
#[derive(Debug)]
pub struct Queued {
    /// Delivery time, destination, source, tag: the delivery order.
    pub key: (Time, u32, u32, u64),
    /// The datagram.
    pub d: Delivery,
}

impl PartialEq for Queued {
    fn eq(&self, o: &Self) -> bool {
        self.key == o.key
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Queued {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.key.cmp(&o.key)
    }
}

/// Counters of what the network carried and dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Datagrams sent, by class.
    pub msgs: [u64; 8],
    /// Wire bytes sent (with IP and UDP headers), by class.
    pub bytes: [u64; 8],
    /// Dropped by random loss.
    pub lost: u64,
    /// Dropped by a partition.
    pub cut: u64,
    /// Arrived at an address nobody listens on (crashed or moved).
    pub undeliverable: u64,
    /// Dropped by a reply-only NAT (the machine had not sent to the source
    /// lately), or a request to a machine with no UDP (it only gets the
    /// replies to its own requests, through its relay).
    pub nat_blocked: u64,
    /// Contacts in `find_node` / `find_value` replies.
    pub handed_out: u64,
    /// Of those, contacts of machines behind NAT or with no UDP: nobody can reach them.
    pub handed_unreachable: u64,
}

impl Traffic {
    /// Adds `o`'s counts to these.
    pub fn add(&mut self, o: &Traffic) {
        for i in 0..self.msgs.len() {
            self.msgs[i] += o.msgs[i];
            self.bytes[i] += o.bytes[i];
        }
        self.lost += o.lost;
        self.cut += o.cut;
        self.undeliverable += o.undeliverable;
        self.nat_blocked += o.nat_blocked;
        self.handed_out += o.handed_out;
        self.handed_unreachable += o.handed_unreachable;
    }
}

/// The network between all virtual machines: who is where and who owns
/// which address. It holds no datagrams, so machines on several threads can
/// route through it at once.
pub struct Network {
    seed: u64,
    /// The latency and loss model.
    pub model: LatencyModel,
    places: Vec<Placement>,
    groups: Vec<u8>,
    owners: Vec<u32>,
    partitioned: bool,
    /// How each machine is reachable, by slot (default [`Edge::Open`]).
    edges: Vec<Edge>,
    /// What was carried.
    pub traffic: Traffic,
}

impl Network {
    /// An empty network.
    pub fn new(seed: u64, model: LatencyModel) -> Self {
        Network {
            seed,
            model,
            places: Vec::new(),
            groups: Vec::new(),
            owners: Vec::new(),
            partitioned: false,
            edges: Vec::new(),
            traffic: Traffic::default(),
        }
    }

    /// Places machine `slot` (slots are added in order).
    pub fn add_machine(&mut self, slot: u32) {
        while self.places.len() <= slot as usize {
            let p = self.model.place(self.places.len() as u32);
            self.places.push(p);
            self.groups.push(0);
        }
    }

    /// Sets how machine `slot` is reachable.
    pub fn set_edge(&mut self, slot: u32, edge: Edge) {
        if self.edges.len() <= slot as usize {
            self.edges.resize(slot as usize + 1, Edge::Open);
        }
        self.edges[slot as usize] = edge;
    }

    /// How machine `slot` is reachable.
    pub fn edge(&self, slot: u32) -> Edge {
        self.edges.get(slot as usize).copied().unwrap_or(Edge::Open)
    }

    /// Whether nobody can start a conversation with machine `slot` (behind
    /// NAT, or no UDP at all).
    pub fn natted_slot(&self, slot: u32) -> bool {
        self.edge(slot) != Edge::Open
    }

    /// Whether the machine owning address `addr` cannot be reached unasked.
    pub fn natted_addr(&self, addr: SocketAddr) -> bool {
        index_of(addr).and_then(|a| self.owner(a)).is_some_and(|s| self.natted_slot(s))
    }

    /// Counts the contacts a `find_node` / `find_value` reply hands out, and
    /// how many of them sit behind NAT.
    pub fn count_handout(&self, payload: &[u8], traffic: &mut Traffic) {
        if let Some(kadmesh::wire::NodesReply { contacts, .. }) = kadmesh::wire::decode_nodes_response(payload) {
            traffic.handed_out += contacts.len() as u64;
            traffic.handed_unreachable += contacts.iter().filter(|c| self.natted_addr(c.addr)).count() as u64;
        }
    }

    /// Where machine `slot` sits.
    pub fn placement(&self, slot: u32) -> Placement {
        self.places[slot as usize]
    }

    /// A fresh address for an identity on machine `slot`.
    pub fn new_address(&mut self, slot: u32) -> u32 {
        self.owners.push(slot);
        (self.owners.len() - 1) as u32
    }

    /// The machine an address belongs to.
    pub fn owner(&self, addr: u32) -> Option<u32> {
        self.owners.get(addr as usize).copied()
    }

    /// Puts machine `slot` in partition group `g` (groups only matter while partitioned).
    pub fn set_group(&mut self, slot: u32, g: u8) {
        self.groups[slot as usize] = g;
    }

    /// Whether a partition is open between machines `a` and `b` now.
    pub fn cut_between(&self, a: u32, b: u32) -> bool {
        let group = |s: u32| self.groups.get(s as usize).copied().unwrap_or(0);
        self.partitioned && group(a) != group(b)
    }

    /// Starts or heals the partition between groups.
    pub fn set_partitioned(&mut self, on: bool) {
        self.partitioned = on;
    }

    /// Round-trip time between two machines in ms.
    pub fn rtt_ms(&self, a: u32, b: u32) -> f64 {
        self.model.rtt_ms(&self.places[a as usize], &self.places[b as usize])
    }

    /// Routes a datagram sent at `now` from address `from_addr`, the
    /// sender's `seq`-th datagram: counts it in `traffic` and returns its
    /// wire size and, unless it is lost or cut, the machine that receives it
    /// and the queued delivery.
    pub fn route(
        &self,
        now: Time,
        from_addr: u32,
        t: Outgoing,
        seq: u64,
        traffic: &mut Traffic,
    ) -> (u64, Option<(u32, Queued)>) {
        let Outgoing { to, payload, reply_kind, from_other_port } = t;
        let request = reply_kind.is_none();
        let kind = reply_kind.unwrap_or_else(|| classify_request(&payload));
        let size = payload.len() as u64 + HEADER_BYTES;
        traffic.msgs[usize::from(kind)] += 1;
        traffic.bytes[usize::from(kind)] += size;
        let (Some(to_addr), Some(from)) = (index_of(to), self.owner(from_addr)) else {
            traffic.undeliverable += 1;
            return (size, None);
        };
        let Some(to_slot) = self.owner(to_addr) else {
            traffic.undeliverable += 1;
            return (size, None);
        };
        if self.partitioned && self.groups[from as usize] != self.groups[to_slot as usize] {
            traffic.cut += 1;
            return (size, None);
        }
        let tag = mix(seq, mix(u64::from(from_addr) << 32 | u64::from(to_addr), now.as_millis()));
        let h = mix(self.seed, tag);
        let (a, b) = (&self.places[from as usize], &self.places[to_slot as usize]);
        if unit(h) < self.model.loss_prob(a, b) {
            traffic.lost += 1;
            return (size, None);
        }
        // One-way delay: half the pair's RTT plus up to 10% queueing jitter.
        let one_way = self.model.rtt_ms(a, b) / 2.0 * (1.0 + 0.1 * unit(mix(h, 1)));
        let tunnel = [from, to_slot].iter().filter(|&&s| self.edge(s) == Edge::NoUdp).count() as u64;
        let one_way = (one_way.round() as u64).max(MIN_ONE_WAY.as_millis() as u64) + tunnel * TUNNEL_RTT_PENALTY_MS / 2;
        let at = Time::from_millis(now.as_millis() + one_way);
        let d = Delivery { at, to_addr, from_addr, kind, request, from_other_port, payload };
        (size, Some((to_slot, Queued { key: (at, to_addr, from_addr, tag), d })))
    }
}

/// A datagram an engine wants sent.
pub struct Outgoing {
    /// Destination.
    pub to: SocketAddr,
    /// The datagram.
    pub payload: Bytes,
    /// The traffic class of the request it answers; `None` for a request.
    pub reply_kind: Option<u8>,
    /// Leaves from the machine's other port (a reachability probe).
    pub from_other_port: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use kadmesh::id::NodeId;
    use kadmesh::wire::{Call, Datagram, MessageId};

    fn request(call: Call) -> Bytes {
        Datagram::Request { id: MessageId([7; 20]), call }.encode().unwrap().into()
    }

    #[test]
    fn addresses_round_trip() {
        for i in [0u32, 1, 255, 256, 70_000, 16_000_000] {
            assert_eq!(index_of(addr_of(i)), Some(i));
        }
        assert_eq!(index_of("10.0.0.1:9999".parse().unwrap()), None);
        assert_eq!(index_of("127.0.0.1:8468".parse().unwrap()), None);
    }

    #[test]
    fn requests_are_classified_by_procedure() {
        let id = NodeId([1; 20]);
        assert_eq!(classify_request(&request(Call::Ping { sender: id })), 0);
        assert_eq!(classify_request(&request(Call::FindValue { sender: id, key: id })), FIND_VALUE);
        let hello = Call::Other { name: "kadmesh_hello".into(), args: vec![] };
        assert_eq!(classify_request(&request(hello)), 5);
        assert_eq!(classify_request(b"junk"), 7);
    }

    /// A network of three machines with an address each and no loss.
    fn three_lossless_machines() -> Network {
        let mut model = LatencyModel::new(1);
        (model.loss, model.lossy_extra) = (0.0, 0.0);
        let mut net = Network::new(1, model);
        for s in 0..3 {
            net.add_machine(s);
            net.new_address(s);
        }
        net
    }

    #[test]
    fn delivery_respects_latency_and_partitions() {
        let mut net = three_lossless_machines();
        let ping = request(Call::Ping { sender: NodeId([2; 20]) });
        let out =
            |to: u32| Outgoing { to: addr_of(to), payload: ping.clone(), reply_kind: None, from_other_port: false };
        let mut traffic = Traffic::default();
        let (_, routed) = net.route(Time::from_secs(1), 0, out(1), 1, &mut traffic);
        let (slot, q) = routed.unwrap();
        assert_eq!((slot, q.d.to_addr, q.d.from_addr), (1, 1, 0));
        let one_way = q.d.at.as_millis() - 1000;
        let rtt = net.rtt_ms(0, 1);
        assert!(one_way as f64 >= rtt / 2.0 - 1.0 && one_way as f64 <= rtt * 0.55 + 1.0, "{one_way} vs {rtt}");
        assert!(one_way >= MIN_ONE_WAY.as_millis() as u64);
        net.set_group(1, 1);
        net.set_partitioned(true);
        assert!(net.route(Time::from_secs(2), 0, out(1), 2, &mut traffic).1.is_none());
        assert!(net.route(Time::from_secs(2), 0, out(2), 3, &mut traffic).1.is_some());
        assert_eq!((traffic.cut, traffic.msgs[0]), (1, 3));
    }

    #[test]
    fn a_machine_with_no_udp_pays_the_tunnel_penalty_and_counts_as_unreachable() {
        let mut net = three_lossless_machines();
        net.set_edge(1, Edge::NoUdp);
        net.set_edge(2, Edge::Nat);
        assert!(net.natted_slot(1) && net.natted_slot(2) && !net.natted_slot(0));
        let ping = request(Call::Ping { sender: NodeId([2; 20]) });
        let out =
            |to: u32| Outgoing { to: addr_of(to), payload: ping.clone(), reply_kind: None, from_other_port: true };
        let mut traffic = Traffic::default();
        let (_, routed) = net.route(Time::from_secs(1), 0, out(1), 1, &mut traffic);
        let q = routed.unwrap().1;
        assert!(q.d.from_other_port);
        let one_way = (q.d.at.as_millis() - 1000) as f64;
        let (rtt, penalty) = (net.rtt_ms(0, 1), TUNNEL_RTT_PENALTY_MS as f64 / 2.0);
        assert!(one_way >= rtt / 2.0 + penalty - 1.0 && one_way <= rtt * 0.55 + penalty + 1.0, "{one_way} vs {rtt}");
        assert_eq!(source_of(0, true), SocketAddr::new(addr_of(0).ip(), OTHER_PORT));
    }
}
