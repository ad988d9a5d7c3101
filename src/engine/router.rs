//! Where replies, failures and deadlines go: to the operation that sent
//! the request (by the [`ReplyTo`] it was tracked with), or to the
//! node-wide checks (eviction, hello, verify).
//!
//! This is the only place that calls into operations. It lends them the
//! services in a [`Cx`], then carries out the [`Step`] they return:
//! learns the contacts that answered them, polls them again, or drops them and
//! reports their result.

use std::net::SocketAddr;
use std::time::Duration;

use super::op::{Cx, Finished, Operation, Reply, Step};
use super::services::ReplyTo;
use super::{Engine, QueryId};
use crate::contact::Contact;
use crate::id::NodeId;
use crate::rpc::{Pending, RpcKind};
use crate::time::Time;
use crate::wire::{self, MessageId, Value};

impl Engine {
    /// Registers operation `op` under `id` and starts it.
    pub(super) fn launch(&mut self, now: Time, id: QueryId, op: Box<dyn Operation>) {
        self.ops.insert(id, op);
        self.with_op(now, id, poll);
    }

    /// Runs `f` on operation `id` with the services lent to it, then
    /// carries out the step it returns.
    pub(super) fn with_op(&mut self, now: Time, id: QueryId, f: impl FnOnce(&mut dyn Operation, &mut Cx) -> Step) {
        let Engine { svc, store, providers, peers, maintenance, put_targets, read_memory, joining, ops, .. } = self;
        let Some(op) = ops.get_mut(&id) else { return };
        let (learned, ask_kind) = (Vec::new(), Vec::new());
        let mut cx = Cx {
            now,
            op: id,
            svc,
            store,
            providers,
            peers,
            maintenance,
            put_targets,
            read_memory,
            joining,
            learned,
            ask_kind,
        };
        let step = f(op.as_mut(), &mut cx);
        let (learned, ask_kind) = (cx.learned, cx.ask_kind);
        self.settle(now, id, step, learned, ask_kind);
    }

    /// Carries out what operation `id` returned.
    fn settle(&mut self, now: Time, id: QueryId, step: Step, learned: Vec<Contact>, ask_kind: Vec<Contact>) {
        for c in learned {
            self.learn_answered(now, c);
        }
        for c in ask_kind {
            self.probe_if_due(now, c);
        }
        match step {
            Step::Wait => {}
            Step::Poll => self.with_op(now, id, poll),
            Step::Done(finished) => {
                self.ops.remove(&id);
                match finished {
                    Finished::Report(outcome) => {
                        if matches!(outcome, super::Outcome::Bootstrap(_)) {
                            // Joined: find out whether we can be reached.
                            self.reach.detector.schedule(now);
                            self.maintenance.after_join(now);
                            self.fill_far_buckets();
                            self.joined_at = Some(now);
                        }
                        if let super::Outcome::ProviderWrite(w) = &outcome {
                            self.after_write(now, id, w);
                        }
                        // Provider writes batched into this one get its result too.
                        for other in self.provider_batches.followers(id) {
                            self.emit(other, super::op::provider_write::for_follower(&outcome));
                        }
                        self.emit(id, outcome)
                    }
                    Finished::Task => self.maintenance.op_finished(),
                    Finished::Quiet => {}
                }
            }
        }
    }

    /// Polls every operation whose deadline has passed, in id order (the
    /// table's own order differs between processes; sorted, runs replay).
    pub(super) fn poll_due_ops(&mut self, now: Time) {
        let mut due: Vec<QueryId> =
            self.ops.iter().filter(|(_, op)| op.next_deadline().is_some_and(|t| t <= now)).map(|(id, _)| *id).collect();
        due.sort_unstable();
        for id in due {
            self.with_op(now, id, poll);
        }
    }

    pub(super) fn on_response(&mut self, now: Time, from: SocketAddr, id: MessageId, body: Value) {
        let Some((pending, rtt)) = self.take_reply(now, from, &id) else { return };
        self.book_urls(&body);
        match pending.context {
            ReplyTo::Op { op, peer } => {
                if let Some(p) = peer {
                    if matches!(pending.kind, RpcKind::FindNode | RpcKind::FindValue) {
                        self.on_named(now, Contact::new(p, pending.to), wire::answering_node(&body));
                    }
                    self.learn_answered(now, Contact::new(p, pending.to));
                }
                let reply = Reply { peer, to: pending.to, kind: pending.kind, body, rtt };
                self.with_op(now, op, |op, cx| op.on_reply(cx, reply));
            }
            // A different node now answering at that address does not vouch for the old id.
            ReplyTo::Eviction { peer } if wire::parse_ping_reply(&body).ok() != Some(peer) => {
                self.svc.routing.ping_failed(&peer, now)
            }
            ReplyTo::Eviction { peer } => {
                self.svc.routing.ping_answered(&peer, now);
                self.learn_answered(now, Contact::new(peer, from));
            }
            ReplyTo::Verify { peer } | ReplyTo::Lost { peer } if wire::parse_ping_reply(&body).ok() != Some(peer) => {
                self.verify_failed(now, peer)
            }
            ReplyTo::Lost { peer } => {
                self.learn_answered(now, Contact::new(peer, from));
                self.lost_answered(now, peer);
            }
            ReplyTo::Hello { peer, .. } => self.on_hello_reply(now, peer, from, &body),
            ReplyTo::Fire { peer } => self.learn_answered(now, Contact::new(peer, from)),
            ReplyTo::Verify { peer } => {
                let first_answer = !self.svc.routing.is_verified(&peer);
                self.learn_answered(now, Contact::new(peer, from));
                if first_answer {
                    self.hello_again_if_lost(now, Contact::new(peer, from));
                }
            }
            ReplyTo::Tunnel { peer } => self.on_tunnel_ping(now, peer, pending.to, wire::parse_ping_reply(&body).ok()),
            ReplyTo::Reach => self.on_reach_reply(now, Some(&body)),
            ReplyTo::Relay { requester, msg } => self.on_relay_done(requester, msg, Some(&body)),
        }
    }

    /// The request a reply answers, and its round trip; unmatched replies
    /// are counted and dropped.
    fn take_reply(&mut self, now: Time, from: SocketAddr, id: &MessageId) -> Option<(Pending<ReplyTo>, Duration)> {
        match self.svc.in_flight.take_reply(id, from) {
            Ok(pending) => {
                self.note_any_reply();
                let rtt = now.saturating_since(pending.sent_at);
                self.svc.rtt.observe(rtt);
                self.svc.book.observe(pending.to, rtt);
                Some((pending, rtt))
            }
            Err(e) => {
                self.svc.stats.unmatched_replies += 1;
                tracing::debug!(%from, error = %e, "dropping reply");
                None
            }
        }
    }

    /// The commonest datagram, a lookup's nodes reply, read straight into
    /// contacts (see [`wire::decode_nodes_response`]). False, with nothing
    /// changed, for any other datagram: it then takes the general path.
    pub(super) fn on_lookup_nodes_fast(&mut self, now: Time, from: SocketAddr, data: &[u8]) -> bool {
        let Some(wire::NodesReply { id, contacts, named }) = wire::decode_nodes_response(data) else { return false };
        let Some((op, peer)) = self.lookup_awaiting(&id, from) else { return false };
        let Some((pending, _)) = self.take_reply(now, from, &id) else { return false };
        // What on_response and the operation's on_reply do with this reply;
        // `fast_and_general_nodes_replies_act_alike` holds them together.
        self.on_named(now, Contact::new(peer, pending.to), named);
        self.learn_answered(now, Contact::new(peer, pending.to));
        self.with_op(now, op, |op, cx| op.on_nodes(cx, peer, contacts));
        true
    }

    /// The lookup and contact a find_node or find_value request with `id`,
    /// sent to `from`, was for.
    fn lookup_awaiting(&self, id: &MessageId, from: SocketAddr) -> Option<(QueryId, NodeId)> {
        let p = self.svc.in_flight.get(id)?;
        let ReplyTo::Op { op, peer: Some(peer) } = p.context else { return None };
        let asks_nodes = matches!(p.kind, RpcKind::FindNode | RpcKind::FindValue);
        let in_lookup = self.ops.get(&op).is_some_and(|o| o.takes_nodes());
        (asks_nodes && in_lookup && crate::rpc::same_endpoint(p.to, from)).then_some((op, peer))
    }

    /// A request timed out (or could not be sent).
    pub(super) fn on_request_failed(&mut self, now: Time, reply_to: ReplyTo, kind: RpcKind) {
        match reply_to {
            ReplyTo::Op { op, peer } => {
                if let Some(peer) = peer {
                    self.contact_failed(now, peer);
                }
                self.with_op(now, op, |op, cx| op.on_failure(cx, peer, kind));
            }
            ReplyTo::Eviction { peer } => self.svc.routing.ping_failed(&peer, now),
            ReplyTo::Hello { peer, addr, tries } => self.hello_failed(now, Contact::new(peer, addr), tries),
            ReplyTo::Fire { peer } => self.contact_failed(now, peer),
            ReplyTo::Verify { peer } | ReplyTo::Lost { peer } => self.verify_failed(now, peer),
            ReplyTo::Tunnel { peer } => tracing::debug!(%peer, "announced tunnel URL did not answer"),
            ReplyTo::Reach => self.on_reach_reply(now, None),
            ReplyTo::Relay { requester, msg } => self.on_relay_done(requester, msg, None),
        }
    }
}

fn poll(op: &mut dyn Operation, cx: &mut Cx) -> Step {
    op.poll(cx)
}
