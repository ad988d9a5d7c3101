//! One request and its answer: `ping`, `stun`, and `call` (any procedure,
//! the raw reply reported). A ping that is answered also teaches us the
//! peer.

use std::net::SocketAddr;

use super::{Cx, Finished, Operation, Reply, Step};
use crate::contact::Contact;
use crate::engine::services::rpc_kind;
use crate::engine::{Engine, Outcome, PingReply, QueryId};
use crate::id::NodeId;
use crate::rpc::RpcKind;
use crate::time::Time;
use crate::wire::{self, Call};

impl Engine {
    /// Pings one address.
    pub fn ping(&mut self, now: Time, addr: SocketAddr) -> QueryId {
        let call = self.svc.ping();
        self.single(now, addr, call)
    }

    /// Asks `addr` what address our datagrams come from.
    pub fn stun(&mut self, now: Time, addr: SocketAddr) -> QueryId {
        self.single(now, addr, Call::Stun)
    }

    /// Calls any procedure on `addr` and reports the raw reply.
    pub fn call(&mut self, now: Time, addr: SocketAddr, call: Call) -> QueryId {
        self.single(now, addr, call)
    }

    fn single(&mut self, now: Time, addr: SocketAddr, call: Call) -> QueryId {
        let op = self.alloc_op();
        self.launch(now, op, Box::new(Single { kind: rpc_kind(&call), addr, call: Some(call) }));
        op
    }
}

struct Single {
    kind: RpcKind,
    addr: SocketAddr,
    /// The request, until it is sent.
    call: Option<Call>,
}

impl Single {
    /// The outcome of a request that got no answer.
    fn unanswered(&self) -> Step {
        let outcome = match self.kind {
            RpcKind::Ping => Outcome::Ping(None),
            RpcKind::Stun => Outcome::Stun(None),
            _ => Outcome::Call(None),
        };
        Step::Done(Finished::Report(outcome))
    }
}

impl Operation for Single {
    fn poll(&mut self, cx: &mut Cx) -> Step {
        let Some(call) = self.call.take() else { return Step::Wait };
        if cx.send(self.addr, call, None) {
            return Step::Wait;
        }
        self.unanswered()
    }

    fn on_reply(&mut self, cx: &mut Cx, reply: Reply) -> Step {
        let outcome = match self.kind {
            RpcKind::Ping => {
                let r = wire::parse_ping_reply(&reply.body).ok().map(|id| PingReply { id, rtt: reply.rtt });
                if let Some(r) = &r {
                    cx.learn_answered(Contact::new(r.id, reply.to));
                }
                Outcome::Ping(r)
            }
            RpcKind::Stun => Outcome::Stun(wire::parse_stun_reply(&reply.body).ok()),
            _ => Outcome::Call(Some(reply.body)),
        };
        Step::Done(Finished::Report(outcome))
    }

    fn on_failure(&mut self, _cx: &mut Cx, _peer: Option<NodeId>, _kind: RpcKind) -> Step {
        self.unanswered()
    }
}
