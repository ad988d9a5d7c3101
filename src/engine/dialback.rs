//! Reachability in the engine: our detection rounds, and the dial-back work
//! we do for others (`proto-spec/EXTENSIONS.md` §7).
//!
//! Three procedures, in the order of a round:
//! 1. we (A) ask a helper B `kadmesh_dialback(id, nonce)`;
//! 2. B picks a third node C from its routing table (one that answered B,
//!    speaks kadmesh, and is neither A nor at A's address) and asks it
//!    `kadmesh_dialback_probe(id, A's address as B saw it, nonce)`; once C
//!    answers, B answers A `[probe sent?, A's address]`. With no third
//!    node, B probes A itself (from its other port) and answers at once;
//! 3. C sends `kadmesh_reach(id, nonce)` to that address, once, from
//!    another port than its DHT port, and nobody answers it. If it reaches
//!    A from an address A never sent to, A is reachable. The other port
//!    matters: in a small network A has talked to every node's DHT port
//!    within the NAT window, so a probe from one passes A's NAT and proves
//!    nothing, and a NATed node would never learn that it is (it kept the
//!    verdict *assumed public* and was handed out).
//!
//! The bounds: B only ever has A's own observed address probed (never one
//! named in the request); C only probes for a sender in its routing table
//! at that very address; both spend from a [`ProbeBudget`] (global per
//! second, one per IP per few seconds); a probe is one datagram no larger
//! than the request that caused it. None of the three teaches the callee a
//! contact. The verdict logic itself is in [`crate::reach::detector`].

use std::net::SocketAddr;

use rand::seq::SliceRandom;

use super::{Engine, PeerKind};
use crate::contact::Contact;
use crate::id::NodeId;
use crate::reach::budget::ProbeBudget;
use crate::reach::detector::{Change, Detector, NONCE_LEN};
use crate::reach::{ReachMode, Reachability, Verdict};
use crate::time::Time;
use crate::wire::{self, Call, MessageId, Value};

use super::services::ReplyTo;

/// "Have a probe sent to me from somewhere else."
pub const DIALBACK: &str = "kadmesh_dialback";
/// "Send this probe to that address" (helper to third node).
pub const DIALBACK_PROBE: &str = "kadmesh_dialback_probe";
/// The probe itself.
pub const REACH: &str = "kadmesh_reach";

/// The engine's reachability state.
#[derive(Debug)]
pub(super) struct Reach {
    pub(super) detector: Detector,
    relays: ProbeBudget,
    probes: ProbeBudget,
}

impl Reach {
    pub(super) fn new(cfg: &crate::reach::ReachConfig, now: Time) -> Self {
        // An auto node starts checking once it bootstraps, or (a first
        // seed, which never bootstraps) as soon as someone has joined it.
        let first = (cfg.mode == ReachMode::Auto).then(|| now + cfg.alone_retry);
        Reach {
            detector: Detector::new(now, first),
            relays: ProbeBudget::new(cfg.probes_per_sec, cfg.per_ip_every),
            probes: ProbeBudget::new(cfg.probes_per_sec, cfg.per_ip_every),
        }
    }
}

fn node_id(v: &Value) -> Option<NodeId> {
    v.as_bytes().and_then(NodeId::from_slice)
}

fn nonce(v: &Value) -> Option<&[u8]> {
    v.as_bytes().filter(|b| b.len() == NONCE_LEN)
}

/// A helper's answer: whether the probe was sent, and the requester's address.
fn dialback_answer(probed: bool, requester: SocketAddr) -> Value {
    Value::Array(vec![Value::Bool(probed), wire::stun_value(requester)])
}

impl Engine {
    /// Our reachability verdict and its reason.
    pub fn reachability(&self) -> &Verdict {
        self.reach.detector.verdict()
    }

    /// Whether we act as a client (our requests carry the client mark).
    pub fn is_client(&self) -> bool {
        self.svc.client
    }

    /// Starts a detection round now, unless one is running or this node
    /// does not detect (mode `public` or `client`).
    pub fn check_reachability(&mut self, now: Time) {
        self.reach.detector.schedule(now);
        self.reach_tick(now);
    }

    /// Runs the detector's timers: ends a round whose time is up, starts one that is due.
    pub(super) fn reach_tick(&mut self, now: Time) {
        let cfg = self.svc.config.reach.clone();
        if let Some(change) = self.reach.detector.tick(now, &cfg) {
            self.apply_reach(now, change);
        }
        if !self.reach.detector.due(now) {
            return;
        }
        let nonce: [u8; NONCE_LEN] = rand::Rng::gen(&mut self.svc.rng);
        let helpers = self.pick_helpers(cfg.helpers);
        // Helper waits for its third node; we wait for both, plus the grace.
        let wait = self.svc.config.extension_timeout * 2 + cfg.grace;
        let mut asked = 0;
        for c in helpers {
            let args = vec![Value::Bin(self.svc.id.0.to_vec()), Value::Bin(nonce.to_vec())];
            let call = Call::Other { name: DIALBACK.into(), args };
            asked += usize::from(self.svc.send_request_within(now, c.addr, call, ReplyTo::Reach, wait));
        }
        self.reach.detector.begin(now, nonce, asked, now + wait + cfg.grace, &cfg);
    }

    /// Up to `n` contacts to ask, peers known to speak kadmesh first, then
    /// peers not asked yet; never stock peers (they would stay silent), nor
    /// URL contacts (over HTTP they see no UDP address of ours to probe).
    fn pick_helpers(&mut self, n: usize) -> Vec<Contact> {
        let (mut ours, mut unknown): (Vec<Contact>, Vec<Contact>) = self
            .svc
            .routing
            .contacts()
            .filter(|c| self.peers.kind(&c.id) != PeerKind::Base && !crate::tunnel::is_tunnel(c.addr))
            .partition(|c| self.peers.kind(&c.id) == PeerKind::Extended);
        ours.shuffle(&mut self.svc.rng);
        unknown.shuffle(&mut self.svc.rng);
        ours.into_iter().chain(unknown).take(n).collect()
    }

    fn apply_reach(&mut self, now: Time, change: Change) {
        let v = self.reach.detector.verdict();
        let client = v.is_client(self.svc.config.reach.mode);
        tracing::info!(from = change.from.as_str(), to = change.to.as_str(), reason = %v.reason, "reachability");
        let promoted = self.svc.client && !client;
        self.svc.client = client;
        if promoted {
            // Tell the nodes closest to us that we can be reached: our
            // requests no longer carry the mark, so they insert us.
            self.announce_self(now);
        }
    }

    /// Looks up our own id so that the nodes closest to us insert us.
    fn announce_self(&mut self, now: Time) {
        self.maintenance.refresh_soon(self.svc.id);
        self.run_maintenance(now);
    }

    /// A dial-back reply or its timeout.
    pub(super) fn on_reach_reply(&mut self, now: Time, body: Option<&Value>) {
        let cfg = self.svc.config.reach.clone();
        let parts = body.and_then(Value::as_array);
        match parts.and_then(|p| Some((p.first()?.as_bool()?, p.get(1)))) {
            Some((probed, seen)) => {
                let observed = seen.and_then(|s| wire::parse_stun_reply(s).ok());
                self.reach.detector.on_answer(now, probed, observed, &cfg);
            }
            None => self.reach.detector.on_silence(now, &cfg),
        }
    }

    /// Any reply to any of our requests: UDP works at least one way.
    pub(super) fn note_any_reply(&mut self) {
        self.reach.detector.note_reply();
    }

    /// B: `kadmesh_dialback(sender, nonce)` from `from`. Answers later,
    /// once the third node has answered; at once when there is none (we
    /// probe ourselves) or the relay budget is spent (`[false, ..]`).
    pub(super) fn on_dialback(&mut self, now: Time, from: SocketAddr, msg: MessageId, args: &[Value]) -> Option<Value> {
        let [sender, n] = args else { return None };
        let (sender, n) = (node_id(sender)?, nonce(n)?);
        // Over HTTP we see no UDP address of the requester's to probe.
        if crate::tunnel::is_http_source(from) || !self.reach.relays.allow(from.ip(), now) {
            return Some(dialback_answer(false, from));
        }
        // A client's relay request makes the third node drop it from its
        // table (§7.1) and then stay silent (§7.3): probe ourselves instead.
        let third = if self.svc.client { None } else { self.pick_third(sender, from) };
        let Some(third) = third else {
            // Nobody else to ask (a network of two or three), or we are a
            // client: probe it ourselves, from our other port, which it has
            // not talked to.
            let probed = self.probe(now, from, n.to_vec());
            tracing::debug!(requester = %from, probed, "dial-back: no third node, probed it ourselves");
            return Some(dialback_answer(probed, from));
        };
        tracing::debug!(requester = %from, third = %third.addr, "dial-back: relaying to a third node");
        let args = vec![Value::Bin(self.svc.id.0.to_vec()), wire::stun_value(from), Value::Bin(n.to_vec())];
        let call = Call::Other { name: DIALBACK_PROBE.into(), args };
        if self.svc.send_request(now, third.addr, call, ReplyTo::Relay { requester: from, msg }) {
            None
        } else {
            Some(dialback_answer(false, from))
        }
    }

    /// A verified kadmesh contact that is not the requester, at random
    /// among the farther half from the requester's id: a joining node talks
    /// mostly to nodes near its own id, and a probe from one of those
    /// proves nothing (it may pass the requester's NAT). Never a URL
    /// contact: our request would reach it over HTTP, from no address it
    /// holds us at, so it would stay silent (§7.3), and the round would
    /// learn nothing while a probe of our own would have.
    fn pick_third(&mut self, requester: NodeId, at: SocketAddr) -> Option<Contact> {
        let mut cands: Vec<Contact> = (self.svc.routing.contacts())
            .filter(|c| c.id != requester && !crate::rpc::same_endpoint(c.addr, at))
            .filter(|c| !crate::tunnel::is_tunnel(c.addr))
            .filter(|c| self.peers.kind(&c.id) == PeerKind::Extended && self.svc.routing.is_verified(&c.id))
            .collect();
        cands.sort_by_key(|c| std::cmp::Reverse(c.id.distance(&requester)));
        cands.truncate(cands.len().div_ceil(2));
        cands.shuffle(&mut self.svc.rng);
        cands.pop()
    }

    /// B: the third node answered (`body`) or timed out (`None`): answer A.
    pub(super) fn on_relay_done(&mut self, requester: SocketAddr, msg: MessageId, body: Option<&Value>) {
        let probed = body.and_then(Value::as_bool) == Some(true);
        tracing::debug!(%requester, probed, answered = body.is_some(), "dial-back: the third node is done");
        self.svc.send_response(requester, msg, dialback_answer(probed, requester));
    }

    /// C: `kadmesh_dialback_probe(sender, target, nonce)`: probe `target`
    /// once if the sender is a contact of ours at `from` and the budget allows.
    pub(super) fn on_dialback_probe(&mut self, now: Time, from: SocketAddr, args: &[Value]) -> Option<Value> {
        let [sender, target, n] = args else { return None };
        let (sender, n) = (node_id(sender)?, nonce(n)?.to_vec());
        let target = wire::parse_stun_reply(target).ok()?;
        if self.svc.routing.get(&sender).is_none_or(|c| c.addr != from) {
            return None;
        }
        Some(Value::Bool(self.probe(now, target, n)))
    }

    /// Sends one `kadmesh_reach` to `target` from our other port, if the
    /// probe budget allows; whether it was sent.
    fn probe(&mut self, now: Time, target: SocketAddr, nonce: Vec<u8>) -> bool {
        if !self.reach.probes.allow(target.ip(), now) {
            return false;
        }
        let call =
            Call::Other { name: REACH.into(), args: vec![Value::Bin(self.svc.id.0.to_vec()), Value::Bin(nonce)] };
        self.svc.send_probe(now, target, call).is_some()
    }

    /// A: a probe arrived. It counts only with this round's nonce, and
    /// proves something only from an address we have not sent to lately.
    pub(super) fn on_reach_probe(&mut self, now: Time, from: SocketAddr, args: &[Value]) {
        let Some(n) = args.get(1).and_then(nonce) else { return };
        let recent = self.svc.recent.as_ref().is_none_or(|r| r.sent_recently(from, now) || !r.complete(now));
        let cfg = self.svc.config.reach.clone();
        if let Some(change) = self.reach.detector.on_probe(now, n, recent, &cfg) {
            self.apply_reach(now, change);
        }
    }

    /// Whether the verdict says we are not reachable over UDP.
    pub fn unreachable(&self) -> bool {
        matches!(self.reachability().state, Reachability::Nat | Reachability::NoUdp)
    }
}
