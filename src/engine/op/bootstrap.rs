//! Joining the network: ping every seed, and as soon as one answers, look
//! up our own id through it (paper 2.3), which fills the routing table with
//! our neighbourhood and introduces us to it. Once joined, each far bucket
//! that lookup left thin gets a short lookup of its own, as the paper's join
//! refreshes the buckets beyond the closest neighbour
//! (`Engine::fill_far_buckets`, queued as maintenance, after the outcome).
//!
//! The lookup does not wait for the other seeds: a dead seed would cost a
//! full request timeout. Seeds that answer later are still learned and
//! counted, and join the running lookup as starting contacts: when the
//! first seed's find_node stalls or is lost, they are the only other way
//! in. While it runs the node is "joining" and hands no records over (see
//! `Engine::hand_over_records`).
//!
//! The own-id lookup keeps [`join_alpha`] queries in flight, not alpha: a
//! find_node lookup ends only when all k closest have answered, so with 3 in
//! flight a join waited on at least seven round trips in a row (1.4 s at a
//! wide-area median of 160 ms). It sends about the same queries, only more
//! of them at once, and a node joins once.

use std::net::SocketAddr;

use super::search::{Progress, Search};
use super::{Cx, Finished, Operation, Reply, Step};
use crate::contact::Contact;
use crate::engine::{BootstrapOutcome, Engine, Outcome, QueryId};
use crate::id::NodeId;
use crate::lookup::LookupKind;
use crate::rpc::RpcKind;
use crate::time::Time;
use crate::wire;

impl Engine {
    /// Pings every seed, then looks up our own id through those that answered.
    pub fn bootstrap(&mut self, now: Time, seeds: &[SocketAddr]) -> QueryId {
        let op = self.alloc_op();
        self.joining = true;
        let bootstrap = Bootstrap { seeds: seeds.to_vec(), pending: 0, seeds_reached: 0, phase: Phase::Start };
        self.launch(now, op, Box::new(bootstrap));
        op
    }
}

struct Bootstrap {
    seeds: Vec<SocketAddr>,
    /// Seed pings not yet answered, while pinging.
    pending: usize,
    seeds_reached: usize,
    phase: Phase,
}

enum Phase {
    Start,
    Pinging,
    /// A seed answered (or none will): the lookup starts at the next poll,
    /// once the engine has learned the seed.
    Ready,
    Search(Search),
}

/// Queries a join's own-id lookup keeps in flight: half of k, or alpha if more.
pub(crate) fn join_alpha(alpha: usize, k: usize) -> usize {
    alpha.max(k / 2)
}

impl Bootstrap {
    fn ping_seeds(&mut self, cx: &mut Cx) -> Step {
        for &addr in &self.seeds {
            if cx.send(addr, cx.svc.ping(), None) {
                self.pending += 1;
            }
        }
        self.phase = Phase::Pinging;
        self.ready_if_done()
    }

    fn ready_if_done(&mut self) -> Step {
        if self.pending > 0 {
            return Step::Wait;
        }
        self.phase = Phase::Ready;
        Step::Poll
    }

    fn on_progress(&mut self, cx: &mut Cx, progress: Progress) -> Step {
        let Progress::Found(..) = progress else { return Step::Wait };
        *cx.joining = false;
        let outcome = BootstrapOutcome {
            seeds_reached: self.seeds_reached,
            seeds_tried: self.seeds.len(),
            table_size: cx.svc.routing.len(),
        };
        Step::Done(Finished::Report(Outcome::Bootstrap(outcome)))
    }

    /// A seed's ping reply: learned and counted, whatever the phase.
    fn on_seed(&mut self, cx: &mut Cx, reply: &Reply) -> Option<Contact> {
        let id = wire::parse_ping_reply(&reply.body).ok()?;
        self.seeds_reached += 1;
        let seed = Contact::new(id, reply.to);
        cx.learn_answered(seed);
        Some(seed)
    }
}

impl Operation for Bootstrap {
    fn poll(&mut self, cx: &mut Cx) -> Step {
        match &mut self.phase {
            Phase::Start => self.ping_seeds(cx),
            Phase::Pinging => Step::Wait,
            Phase::Ready => {
                let own_id = cx.svc.id;
                let alpha = join_alpha(cx.svc.config.alpha, cx.svc.config.k);
                let (search, progress) = Search::start_with(cx, own_id, LookupKind::FindNode, alpha);
                self.phase = Phase::Search(search);
                self.on_progress(cx, progress)
            }
            Phase::Search(s) => {
                let progress = s.drive(cx);
                self.on_progress(cx, progress)
            }
        }
    }

    fn on_reply(&mut self, cx: &mut Cx, reply: Reply) -> Step {
        match &mut self.phase {
            Phase::Pinging => {
                self.pending = self.pending.saturating_sub(1);
                // The first seed that answers is enough to start the lookup.
                if self.on_seed(cx, &reply).is_some() {
                    self.phase = Phase::Ready;
                    return Step::Poll;
                }
                self.ready_if_done()
            }
            // A seed answering after the lookup started is one more place to
            // start from: the first seed's find_node may be slow or lost.
            Phase::Search(_) if reply.peer.is_none() && reply.kind == RpcKind::Ping => {
                let Some(seed) = self.on_seed(cx, &reply) else { return Step::Wait };
                let Phase::Search(s) = &mut self.phase else { return Step::Wait };
                let progress = s.offer(cx, seed);
                self.on_progress(cx, progress)
            }
            Phase::Search(s) => {
                let progress = s.on_reply(cx, reply);
                self.on_progress(cx, progress)
            }
            Phase::Start | Phase::Ready => Step::Wait,
        }
    }

    fn on_failure(&mut self, cx: &mut Cx, peer: Option<NodeId>, _kind: RpcKind) -> Step {
        match &mut self.phase {
            Phase::Pinging => {
                self.pending = self.pending.saturating_sub(1);
                self.ready_if_done()
            }
            Phase::Search(s) => {
                let progress = s.on_failure(cx, peer);
                self.on_progress(cx, progress)
            }
            Phase::Start | Phase::Ready => Step::Wait,
        }
    }

    super::search_phase!();
}
