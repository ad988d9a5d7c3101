//! Requests other nodes send us: the base procedures, our `kadmesh_hello`
//! and `kadmesh_store_ttl`, and the provider procedures (answered in
//! [`providers`](super::providers)). Every request also teaches us its sender.

use std::net::SocketAddr;
use std::time::Duration;

use super::services::rpc_kind;
use super::{Engine, PeerKind};
use crate::contact::Contact;
use crate::id::{Key, NodeId};
use crate::limits::reply::ReplyBudget;
use crate::routing::Asker;
use crate::store::Record;
use crate::time::Time;
use crate::wire::{self, Call, MessageId, Value, HEADER_LEN};

/// Our extension procedures (see proto-spec/EXTENSIONS.md). Stock peers do
/// not answer them, which is how we tell the two apart.
pub const HELLO: &str = "kadmesh_hello";
/// `store` with the record's remaining lifetime in seconds as a fourth arg.
pub const STORE_TTL: &str = "kadmesh_store_ttl";

impl Engine {
    /// Answers a request of `len` bytes; replies to an address that has not
    /// answered us stay within the reply budget ([`crate::limits::reply`]).
    pub(super) fn on_request(&mut self, now: Time, from: SocketAddr, id: MessageId, call: Call, len: usize) {
        self.svc.stats.count_received(rpc_kind(&call));
        // Whatever we answer opens a NAT mapping towards the requester; a
        // probe is not answered, and must be judged before it is noted.
        if !matches!(&call, Call::Other { name, .. } if name == super::REACH) {
            self.svc.note_sent(from, now);
        }
        let sender = call.sender().or_else(|| extension_sender(&call));
        self.inbound_client = crate::reach::marker::is_marked(&id);
        self.inbound_node = crate::reach::marker::is_node_marked(&id);
        if self.inbound_client {
            self.svc.stats.client_requests += 1;
            self.forget_client(sender, from);
        }
        if let Some(sender) = call.sender() {
            if sender != self.svc.id {
                self.learn(now, Contact::new(sender, from));
            }
        }
        let budget = self.reply_budget(from, sender, len);
        // The node mark (a hint anyone may forge) only gives young contacts too.
        let ours = self.inbound_node || sender.is_some_and(|s| self.peers.kind(&s) == PeerKind::Extended);
        let asker = if ours { Asker::Ours } else { Asker::Other };
        let named = (self.inbound_node || self.inbound_client).then_some(self.svc.id);
        let hit = |v: &Value| wire::found_value_named(v, named.as_ref());
        let reply = match call {
            Call::Ping { .. } => Some(Value::Bin(self.svc.id.0.to_vec())),
            Call::Store { sender, key, value } => {
                let ttl = self.svc.config.record_ttl;
                Some(Value::Bool(self.accept_store(now, from, key, value, Some(sender), ttl)))
            }
            Call::FindNode { key, .. } => self.send_neighbours(now, from, asker, id, &key, budget),
            Call::FindValue { key, .. } => match self.servable(&key, now) {
                // A value too large for the budget: point at the closest
                // nodes instead, as if we did not hold it. A marked asker
                // learns from the hit, as from a miss, that we speak the
                // extensions (EXTENSIONS.md §7.1b): no hello to a holder.
                Some(r) if budget.fits(HEADER_LEN + wire::encoded_len(&hit(&r.value))) => Some(hit(&r.value)),
                Some(_) => {
                    self.svc.stats.replies_trimmed += 1;
                    self.send_neighbours(now, from, asker, id, &key, budget)
                }
                None => self.send_neighbours(now, from, asker, id, &key, budget),
            },
            Call::Stun => Some(wire::stun_value(from)),
            Call::Other { name, args } => self.on_extension(now, from, id, &name, args, budget),
        };
        (self.inbound_client, self.inbound_node) = (false, false);
        if let Some(body) = reply {
            self.svc.send_response(from, id, body);
        }
    }

    /// A contact of ours now says it is a client (it was demoted, or joined
    /// before it knew): it leaves the table so we stop handing it out.
    fn forget_client(&mut self, sender: Option<NodeId>, from: SocketAddr) {
        if let Some(id) = &sender {
            self.maintenance.forget_lost(id);
        }
        let routing = &mut self.svc.routing;
        if let Some(id) = sender.filter(|id| routing.get(id).is_some_and(|c| c.addr == from)) {
            routing.remove(&id);
            self.svc.stats.clients_forgotten += 1;
        }
    }

    /// The copy of `key` we may answer with. A copy held far from the key is
    /// a cache or left over from before closer nodes joined; nobody
    /// refreshes it there, so after `cache_ttl` it is likely older than the
    /// one the closest nodes hold, and we point the asker at them instead.
    /// "Far" is outside the closest k/2 in our view, not k: a node's view
    /// misses some newcomers, and in simulation a node at true rank 21-22
    /// believing itself in the top 20 was the main source of stale answers.
    pub(super) fn servable(&self, key: &Key, now: Time) -> Option<&Record> {
        let r = self.store.get(key, now)?;
        let fresh = now.saturating_since(r.stored_at) <= self.svc.config.cache_ttl;
        let ours = self.maintenance.is_published(key);
        let (routing, k) = (&self.svc.routing, self.svc.config.k);
        let close = || routing.would_be_among_closest(&self.svc.id, key, (k / 2).max(1));
        (fresh || ours || close()).then_some(r)
    }

    /// Answers with the contacts closest to `key` that we may hand to the
    /// asker (see [`crate::routing::freshness`]; URL contacts only to kadmesh
    /// peers), encoded without a `Value` (the commonest reply), and pings
    /// those among them due a check;
    /// returns no body for the caller to send.
    fn send_neighbours(
        &mut self,
        now: Time,
        requester: SocketAddr,
        asker: Asker,
        id: MessageId,
        key: &Key,
        budget: ReplyBudget,
    ) -> Option<Value> {
        let extended = asker == Asker::Ours;
        if !extended {
            self.note_other_asker(now);
        }
        let tunnels = &self.svc.tunnels;
        let skip = |c: &Contact| {
            crate::rpc::same_endpoint(c.addr, requester) || !super::tunnel::may_hand_out(tunnels, extended, c)
        };
        let handout = self.svc.routing.handout(key, self.svc.config.k, now, asker, skip);
        for c in handout.check {
            self.check_before_handout(now, c);
        }
        let tunnels = &self.svc.tunnels;
        // A marked asker is one of ours (or says so): our id after the
        // contacts tells it we speak the extensions (EXTENSIONS.md §7.1b).
        let named = (self.inbound_node || self.inbound_client).then_some(&self.svc.id);
        let encode = |cs: &[Contact]| wire::encode_nodes_response_urls(id, cs, |c| tunnels.url(c.addr), named);
        let fit = budget.longest_fitting(&handout.contacts, |cs| encode(cs).map_or(usize::MAX, |p| p.len()));
        let encoded = encode(&handout.contacts[..fit]);
        if fit < handout.contacts.len() {
            self.svc.stats.replies_trimmed += 1;
        }
        match encoded {
            Ok(p) => self.svc.transmits.push_back(super::Transmit {
                to: requester,
                payload: p.into(),
                from_other_port: false,
            }),
            Err(e) => tracing::debug!(to = %requester, error = %e, "response not sent"),
        }
        None
    }

    /// Stores a record that arrived from `source`, charged to its quota
    /// unless the source is exempt. A live signed worker record is replaced
    /// only by its owner's newer one.
    fn accept_store(
        &mut self,
        now: Time,
        source: SocketAddr,
        key: Key,
        value: Value,
        from: Option<NodeId>,
        ttl: Duration,
    ) -> bool {
        let held = self.store.get(&key, now).map(|r| &r.value);
        if !crate::signed::admits(&key, held, &value, now.as_millis()) {
            self.svc.stats.stores_refused += 1;
            return false;
        }
        let stored = if self.svc.config.limits.applies_to(source.ip()) {
            self.store.put_from(source.ip(), key, value, from, now, ttl)
        } else {
            self.store.put(key, value, from, now, ttl)
        };
        match stored {
            Ok(()) => {
                self.svc.stats.stores_accepted += 1;
                true
            }
            Err(e) => {
                self.svc.stats.stores_refused += 1;
                tracing::debug!(key = %key, error = %e, "store refused");
                false
            }
        }
    }

    /// `kadmesh_store_ttl(sender, key, value, seconds)`: a store carrying the
    /// record's remaining lifetime. Malformed arguments get no reply.
    fn on_store_ttl(&mut self, now: Time, from: SocketAddr, args: Vec<Value>) -> Option<Value> {
        let [sender, key, value, ttl] = <[Value; 4]>::try_from(args).ok()?;
        let sender = sender.as_bytes().and_then(NodeId::from_slice)?;
        let key = key.as_bytes().and_then(NodeId::from_slice)?;
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
        let ttl = Duration::from_secs(secs).max(held).min(self.svc.config.record_ttl);
        Some(Value::Bool(self.accept_store(now, from, key, value, Some(sender), ttl)))
    }

    /// Unknown procedures get no reply, exactly like rpcudp, so callers that
    /// probe for extensions see the same silence from us as from Python.
    fn on_extension(
        &mut self,
        now: Time,
        from: SocketAddr,
        id: MessageId,
        name: &str,
        args: Vec<Value>,
        budget: ReplyBudget,
    ) -> Option<Value> {
        match name {
            HELLO => {
                let sender = args.first().and_then(|v| v.as_bytes()).and_then(NodeId::from_slice);
                if let Some(sender) = sender.filter(|&s| self.admit_id(now, Contact::new(s, from))) {
                    self.peers.insert(sender, PeerKind::Extended);
                    if let Some(url) = args.get(1).and_then(Value::as_str) {
                        self.on_announced_url(now, sender, url);
                    }
                }
                Some(hello_body(self.svc.id))
            }
            STORE_TTL => self.on_store_ttl(now, from, args),
            super::DIALBACK => self.on_dialback(now, from, id, &args),
            super::DIALBACK_PROBE => self.on_dialback_probe(now, from, &args),
            super::REACH => {
                self.on_reach_probe(now, from, &args);
                None
            }
            n if n.starts_with(super::providers::PREFIX) => self.on_provider_rpc(now, from, n, args, budget),
            _ => {
                tracing::debug!(%from, name, "ignoring unknown procedure");
                None
            }
        }
    }
}

/// The id an extension request names as its sender (its first argument,
/// for every extension of ours), for the reply budget.
fn extension_sender(call: &Call) -> Option<NodeId> {
    match call {
        Call::Other { args, .. } => args.first()?.as_bytes().and_then(NodeId::from_slice),
        _ => None,
    }
}

/// Our answer to `kadmesh_hello`. The `id` field lets the caller take the
/// answer for the check a ping would have been (EXTENSIONS.md §2.1): it
/// proves that node `id`, not merely some node, answers at that address.
pub(crate) fn hello_body(id: NodeId) -> Value {
    Value::Map(vec![
        (Value::Str("impl".into()), Value::Str("kadmesh".into())),
        (Value::Str("version".into()), Value::Str(env!("CARGO_PKG_VERSION").into())),
        (Value::Str("id".into()), Value::Bin(id.0.to_vec())),
    ])
}

/// The node id a `kadmesh_hello` answer names (`None` from a node older
/// than the `id` field, or a malformed answer).
pub(super) fn hello_reply_id(body: &Value) -> Option<NodeId> {
    let Value::Map(fields) = body else { return None };
    let (_, id) = fields.iter().find(|(k, _)| matches!(k, Value::Str(s) if s == "id"))?;
    id.as_bytes().and_then(NodeId::from_slice)
}
