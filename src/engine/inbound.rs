//! Requests other nodes send us, replies to ours, and what we learn of the
//! sender from each.

use std::net::SocketAddr;
use std::time::Duration;

use super::ops::Op;
use super::{rpc_kind, Ctx, Engine, PeerKind, QueryId};
use crate::contact::Contact;
use crate::id::NodeId;
use crate::limits::reply::ReplyBudget;
use crate::routing::InsertOutcome;
use crate::rpc::{Pending, RpcKind};
use crate::time::Time;
use crate::wire::{self, Call, MessageId, Value, HEADER_LEN};

/// The id an extension request names as its sender (its first argument,
/// for every extension of ours), for the reply budget.
fn extension_sender(call: &Call) -> Option<crate::id::NodeId> {
    match call {
        Call::Other { args, .. } => args.first()?.as_bytes().and_then(crate::id::NodeId::from_slice),
        _ => None,
    }
}

/// Our extension procedures (see proto-spec/EXTENSIONS.md). Stock peers do
/// not answer them, which is how we tell the two apart.
pub const HELLO: &str = "kadmesh_hello";
/// `store` with the record's remaining lifetime in seconds as a fourth arg.
pub const STORE_TTL: &str = "kadmesh_store_ttl";

impl Engine {
    /// Answers a request of `len` bytes; replies to an address that has not
    /// answered us stay within the reply budget ([`crate::limits::reply`]).
    pub(super) fn on_request(&mut self, now: Time, from: SocketAddr, id: MessageId, call: Call, len: usize) {
        self.stats.count_received(rpc_kind(&call));
        let sender = call.sender().or_else(|| extension_sender(&call));
        if let Some(sender) = call.sender() {
            if sender != self.id {
                self.learn(now, Contact::new(sender, from));
            }
        }
        let budget = self.reply_budget(from, sender, len);
        let reply = match call {
            Call::Ping { .. } => Some(Value::Bin(self.id.0.to_vec())),
            Call::Store { sender, key, value } => {
                let ttl = self.config.record_ttl;
                Some(Value::Bool(self.accept_store(now, from, key, value, Some(sender), ttl)))
            }
            Call::FindNode { key, .. } => self.send_neighbours(now, from, id, &key, budget),
            Call::FindValue { key, .. } => match self.servable(&key, now) {
                // A value too large for the budget: point at the closest
                // nodes instead, as if we did not hold it.
                Some(r) if budget.fits(HEADER_LEN + wire::encoded_len(&wire::found_value(&r.value))) => {
                    Some(wire::found_value(&r.value))
                }
                Some(_) => {
                    self.stats.replies_trimmed += 1;
                    self.send_neighbours(now, from, id, &key, budget)
                }
                None => self.send_neighbours(now, from, id, &key, budget),
            },
            Call::Stun => Some(wire::stun_value(from)),
            Call::Other { name, args } => self.on_extension(now, from, &name, args, budget),
        };
        if let Some(body) = reply {
            self.send_response(from, id, body);
        }
    }

    /// The copy of `key` we may answer with. A copy held far from the key is
    /// a cache or left over from before closer nodes joined; nobody
    /// refreshes it there, so after `cache_ttl` it is likely older than the
    /// one the closest nodes hold, and we point the asker at them instead.
    /// "Far" is outside the closest k/2 in our view, not k: a node's view
    /// misses some newcomers, and in simulation a node at true rank 21-22
    /// believing itself in the top 20 was the main source of stale answers.
    pub(super) fn servable(&self, key: &crate::id::Key, now: Time) -> Option<&crate::store::Record> {
        let r = self.store.get(key, now)?;
        let fresh = now.saturating_since(r.stored_at) <= self.config.cache_ttl;
        let ours = self.maintenance.is_published(key);
        let close = || self.routing.would_be_among_closest(&self.id, key, (self.config.k / 2).max(1));
        (fresh || ours || close()).then_some(r)
    }

    /// Answers with the good contacts closest to `key` (see
    /// [`crate::routing::freshness`]), encoded without a `Value` (the
    /// commonest reply), and pings those among them not heard from lately;
    /// returns no body for the caller to send.
    fn send_neighbours(
        &mut self,
        now: Time,
        requester: SocketAddr,
        id: MessageId,
        key: &crate::id::Key,
        budget: ReplyBudget,
    ) -> Option<Value> {
        let skip = |c: &Contact| crate::rpc::same_endpoint(c.addr, requester);
        let handout = self.routing.handout(key, self.config.k, now, skip);
        for c in handout.check {
            self.send_check(now, c);
        }
        let size = |cs: &[Contact]| wire::encode_nodes_response(id, cs).map_or(usize::MAX, |p| p.len());
        let fit = budget.longest_fitting(&handout.contacts, size);
        if fit < handout.contacts.len() {
            self.stats.replies_trimmed += 1;
        }
        match wire::encode_nodes_response(id, &handout.contacts[..fit]) {
            Ok(p) => self.transmits.push_back(super::Transmit { to: requester, payload: p.into() }),
            Err(e) => tracing::debug!(to = %requester, error = %e, "response not sent"),
        }
        None
    }

    /// Stores a record that arrived from `source`, charged to its quota
    /// unless the source is exempt.
    fn accept_store(
        &mut self,
        now: Time,
        source: SocketAddr,
        key: crate::id::Key,
        value: Value,
        from: Option<crate::id::NodeId>,
        ttl: std::time::Duration,
    ) -> bool {
        let stored = if self.config.limits.applies_to(source.ip()) {
            self.store.put_from(source.ip(), key, value, from, now, ttl)
        } else {
            self.store.put(key, value, from, now, ttl)
        };
        match stored {
            Ok(()) => {
                self.stats.stores_accepted += 1;
                true
            }
            Err(e) => {
                self.stats.stores_refused += 1;
                tracing::debug!(key = %key, error = %e, "store refused");
                false
            }
        }
    }

    /// `kadmesh_store_ttl(sender, key, value, seconds)`: a store carrying the
    /// record's remaining lifetime. Malformed arguments get no reply.
    fn on_store_ttl(&mut self, now: Time, from: SocketAddr, args: Vec<Value>) -> Option<Value> {
        let [sender, key, value, ttl] = <[Value; 4]>::try_from(args).ok()?;
        let sender = sender.as_bytes().and_then(crate::id::NodeId::from_slice)?;
        let key = key.as_bytes().and_then(crate::id::NodeId::from_slice)?;
        let secs = u64::try_from(ttl.as_int()?).ok()?;
        self.learn(now, Contact::new(sender, from));
        if secs == 0 {
            // Already expired: storing it would only acknowledge a record nobody can read.
            return Some(Value::Bool(false));
        }
        // A short lifetime (a cache copy, or a replica near its end) never
        // shortens the copy we already hold: that one may be a replica with a
        // day to live, and cutting it would lose it at the next sweep.
        let held = self.store.get(&key, now).map_or(Duration::ZERO, |r| r.expires_at.saturating_since(now));
        let ttl = Duration::from_secs(secs).max(held).min(self.config.record_ttl);
        Some(Value::Bool(self.accept_store(now, from, key, value, Some(sender), ttl)))
    }

    /// Unknown procedures get no reply, exactly like rpcudp, so callers that
    /// probe for extensions see the same silence from us as from Python.
    fn on_extension(
        &mut self,
        now: Time,
        from: SocketAddr,
        name: &str,
        args: Vec<Value>,
        budget: ReplyBudget,
    ) -> Option<Value> {
        match name {
            HELLO => {
                if let Some(sender) = args.first().and_then(|v| v.as_bytes()).and_then(crate::id::NodeId::from_slice) {
                    self.peers.insert(sender, PeerKind::Extended);
                }
                Some(hello_body())
            }
            STORE_TTL => self.on_store_ttl(now, from, args),
            n if n.starts_with(super::providers::PREFIX) => self.on_provider_rpc(now, from, n, args, budget),
            _ => {
                tracing::debug!(%from, name, "ignoring unknown procedure");
                None
            }
        }
    }

    pub(super) fn on_response(&mut self, now: Time, from: SocketAddr, id: MessageId, body: Value) {
        let Some((pending, rtt)) = self.take_reply(now, from, &id) else { return };
        match pending.context {
            Ctx::Op { op, peer } => self.on_op_reply(now, op, peer, pending.to, pending.kind, body, rtt),
            // A different node now answering at that address does not vouch for the old id.
            Ctx::Eviction { peer } if wire::parse_ping_reply(&body).ok() != Some(peer) => {
                self.routing.ping_failed(&peer, now)
            }
            Ctx::Eviction { peer } => {
                self.routing.ping_answered(&peer, now);
                self.learn_answered(now, Contact::new(peer, from));
            }
            Ctx::Verify { peer } if wire::parse_ping_reply(&body).ok() != Some(peer) => self.verify_failed(now, peer),
            Ctx::Hello { peer } => {
                self.peers.insert(peer, PeerKind::Extended);
                self.learn_answered(now, Contact::new(peer, from));
            }
            Ctx::Fire { peer } | Ctx::Verify { peer } => self.learn_answered(now, Contact::new(peer, from)),
        }
    }

    /// The request a reply answers, and its round trip; unmatched replies
    /// are counted and dropped.
    fn take_reply(&mut self, now: Time, from: SocketAddr, id: &MessageId) -> Option<(Pending<Ctx>, Duration)> {
        match self.in_flight.take_reply(id, from) {
            Ok(pending) => {
                let rtt = now.saturating_since(pending.sent_at);
                self.rtt.observe(rtt);
                Some((pending, rtt))
            }
            Err(e) => {
                self.stats.unmatched_replies += 1;
                tracing::debug!(%from, error = %e, "dropping reply");
                None
            }
        }
    }

    /// The commonest datagram, a lookup's nodes reply, read straight into
    /// contacts (see [`wire::decode_nodes_response`]). False, with nothing
    /// changed, for any other datagram: it then takes the general path.
    pub(super) fn on_lookup_nodes_fast(&mut self, now: Time, from: SocketAddr, data: &[u8]) -> bool {
        let Some((id, contacts)) = wire::decode_nodes_response(data) else { return false };
        let Some((op, peer)) = self.lookup_awaiting(&id, from) else { return false };
        let Some((pending, _)) = self.take_reply(now, from, &id) else { return false };
        // What on_response and on_op_reply do with this reply;
        // `fast_and_general_nodes_replies_act_alike` holds them together.
        self.learn_answered(now, Contact::new(peer, pending.to));
        self.on_lookup_nodes(now, op, peer, contacts);
        true
    }

    /// The lookup and contact a find_node or find_value request with `id`,
    /// sent to `from`, was for.
    fn lookup_awaiting(&self, id: &MessageId, from: SocketAddr) -> Option<(QueryId, NodeId)> {
        let p = self.in_flight.get(id)?;
        let Ctx::Op { op, peer: Some(peer) } = p.context else { return None };
        let asks_nodes = matches!(p.kind, RpcKind::FindNode | RpcKind::FindValue);
        let in_lookup = matches!(self.ops.get(&op), Some(Op::Lookup { .. }));
        (asks_nodes && in_lookup && crate::rpc::same_endpoint(p.to, from)).then_some((op, peer))
    }

    pub(super) fn on_request_failed(&mut self, now: Time, ctx: Ctx, kind: crate::rpc::RpcKind) {
        match ctx {
            Ctx::Op { op, peer } => {
                if let Some(peer) = peer {
                    self.contact_failed(now, peer);
                }
                self.on_op_failure(now, op, peer, kind);
            }
            Ctx::Eviction { peer } => self.routing.ping_failed(&peer, now),
            Ctx::Hello { peer } => {
                self.peers.insert(peer, PeerKind::Base);
            }
            Ctx::Fire { peer } => self.contact_failed(now, peer),
            Ctx::Verify { peer } => self.verify_failed(now, peer),
        }
    }

    /// The check ping went unanswered (or someone else answered): one more
    /// strike, and another check until `max_failures` evicts it.
    fn verify_failed(&mut self, now: Time, peer: crate::id::NodeId) {
        if !self.routing.record_failure(&peer, self.config.max_failures) {
            self.send_verify(now, peer);
        }
    }

    fn send_verify(&mut self, now: Time, peer: crate::id::NodeId) {
        if let Some(c) = self.routing.get(&peer) {
            self.send_check(now, c);
        }
    }

    /// A base `ping` (every peer answers it, stock or ours) to find out
    /// whether `c` can be reached; the answer makes it good, silence a strike.
    fn send_check(&mut self, now: Time, c: Contact) {
        self.send_request(now, c.addr, Call::Ping { sender: self.id }, Ctx::Verify { peer: c.id });
    }

    /// Counts a timeout; on a contact's first one, pings it. Until it answers, lookups
    /// neither start from it nor follow others' pointers to it; if the ping times out
    /// too it is gone (with the default two strikes), so after a mass failure dead
    /// contacts leave within two timeouts instead of costing every later lookup a stall.
    fn contact_failed(&mut self, now: Time, peer: crate::id::NodeId) {
        if self.routing.record_failure(&peer, self.config.max_failures) {
            return;
        }
        if self.routing.failures(&peer) == Some(1) {
            self.send_verify(now, peer);
        }
    }

    /// A request came from `contact`: what [`learn_answered`](Self::learn_answered) does, except
    /// that a request proves nothing about whether the sender can be reached, so a newcomer is
    /// checked with a ping first and gets records only once it answers.
    pub(crate) fn learn(&mut self, now: Time, contact: Contact) {
        self.learn_contact(now, contact, false);
    }

    /// `contact` answered one of our queries: keep the routing table current, check a full
    /// bucket's oldest contact, and hand a newly verified contact the records it is now
    /// responsible for. Contacts parked in a replacement cache are not "new" (the Python
    /// package re-sends them everything each time).
    pub(crate) fn learn_answered(&mut self, now: Time, contact: Contact) {
        self.learn_contact(now, contact, true);
    }

    fn learn_contact(&mut self, now: Time, contact: Contact, answered: bool) {
        let outcome = self.routing.insert(contact, now);
        if answered && self.routing.mark_answered(&contact.id, now) {
            self.hand_over_records(now, contact);
        }
        match outcome {
            InsertOutcome::Inserted => {
                if !answered {
                    self.send_check(now, contact);
                    self.routing.note_checked(&contact.id, now);
                }
                self.probe_if_due(now, contact);
            }
            InsertOutcome::Updated => self.probe_if_due(now, contact),
            InsertOutcome::Full { ping } => {
                let call = Call::Ping { sender: self.id };
                self.send_request(now, ping.addr, call, Ctx::Eviction { peer: ping.id });
            }
            InsertOutcome::Pending | InsertOutcome::IsSelf => {}
        }
    }
}

impl Engine {
    /// Asks a contact whether it speaks our extensions: once when first
    /// seen, and again after [`REPROBE_AFTER`] if it stayed silent, so one
    /// lost datagram does not brand one of ours a stock peer for good.
    fn probe_if_due(&mut self, now: Time, contact: Contact) {
        // Checked on every datagram: the common case (one of ours) costs one lookup.
        let kind = self.peer_kind(&contact.id);
        if kind == PeerKind::Extended {
            return;
        }
        let due = match (kind, self.probed.peek(&contact.id)) {
            (_, None) => true,
            (PeerKind::Base, Some(&at)) => now >= at + REPROBE_AFTER,
            (PeerKind::Unknown | PeerKind::Extended, Some(_)) => false,
        };
        if due {
            self.probed.insert(contact.id, now);
            let call = Call::Other { name: HELLO.into(), args: vec![Value::Bin(self.id.0.to_vec())] };
            self.send_request(now, contact.addr, call, Ctx::Hello { peer: contact.id });
        }
    }
}

/// How long a contact that did not answer `kadmesh_hello` is taken for a
/// stock peer before it is asked again.
pub const REPROBE_AFTER: std::time::Duration = std::time::Duration::from_secs(600);

/// Our answer to `kadmesh_hello`.
pub(crate) fn hello_body() -> Value {
    Value::Map(vec![
        (Value::Str("impl".into()), Value::Str("kadmesh".into())),
        (Value::Str("version".into()), Value::Str(env!("CARGO_PKG_VERSION").into())),
    ])
}

#[cfg(test)]
#[path = "inbound_tests.rs"]
mod tests;
