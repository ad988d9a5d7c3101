//! Lookups that report what they found: `get` (a find_value lookup that
//! collects up to [`Config::get_copies`](crate::engine::Config::get_copies)
//! copies, returns the newest ([`super::newest`]), stores it back to the k
//! closest holders that answered with an older one, and leaves a short-lived
//! cache copy at the closest node that lacked the value) and `find_node`
//! (the k closest nodes). A bucket refresh is a `find_node` that reports to
//! the maintenance queue instead of the caller.

use super::newest::Choice;
use super::search::{SearchOp, Then};
use super::{Cx, Finished, Operation, Step};
use crate::contact::Contact;
use crate::engine::services::ReplyTo;
use crate::engine::{Engine, GetOutcome, LookupStats, Outcome, PeerKind, QueryId};
use crate::id::{Key, NodeId};
use crate::lookup::{LookupKind, LookupResult};
use crate::time::Time;
use crate::wire::Call;

impl Engine {
    /// Looks up `key`: this node's store first, then the network.
    pub fn get(&mut self, now: Time, key: Key) -> QueryId {
        let op = self.alloc_op();
        if let Some(r) = self.servable(&key, now) {
            let outcome = GetOutcome { key, value: Some(r.value.clone()), local: true, stats: LookupStats::default() };
            self.emit(op, Outcome::Get(outcome));
            return op;
        }
        self.launch(now, op, Box::new(SearchOp::new(Get { key })));
        op
    }

    /// The k closest nodes to `target`.
    pub fn find_node(&mut self, now: Time, target: NodeId) -> QueryId {
        let op = self.alloc_op();
        self.launch(now, op, Box::new(SearchOp::new(FindNode { target, report: true, wanted: None })));
        op
    }
}

/// A `get` that missed the local store.
struct Get {
    key: Key,
}

impl Then for Get {
    fn lookup(&self) -> (NodeId, LookupKind) {
        (self.key, LookupKind::FindValue)
    }

    fn found(&mut self, cx: &mut Cx, r: LookupResult, stats: LookupStats) -> Step {
        let newest = super::newest::choose(&self.key, &r.copies, cx.now.as_millis());
        let value = newest.map(|c| {
            self.repair(cx, &c, &r.closest);
            c.value
        });
        // Paper 2.3: cache the value at the closest node that lacked it, for a
        // short while. Not at stock peers: a plain store would live there for a
        // day and be re-replicated over newer values every hour.
        let extended = |c: &Contact| cx.peers.kind(&c.id) == PeerKind::Extended;
        if let (Some(v), Some(c)) = (&value, r.store_at.filter(extended)) {
            // A value too big to carry its lifetime would go as a plain store.
            let ttl = Some(cx.svc.config.cache_ttl);
            let call = super::put::store_call(cx.svc.id, PeerKind::Extended, self.key, v.clone(), ttl);
            if matches!(call, Call::Other { .. }) {
                cx.svc.send_request(cx.now, c.addr, call, ReplyTo::Fire { peer: c.id });
            }
        }
        let outcome = GetOutcome { key: self.key, value, local: false, stats };
        Step::Done(Finished::Report(Outcome::Get(outcome)))
    }
}

impl Get {
    /// Stores the newest copy back to the holders among the k closest that
    /// answered with an older one (read repair), as a replica (the default
    /// lifetime): they are where later readers look. A holder outside the k
    /// closest is a cache copy that expires on its own. The holder's store
    /// rule still decides (a signed record only moves to a higher `seq`).
    fn repair(&self, cx: &mut Cx, newest: &Choice, closest: &[Contact]) {
        for c in closest.iter().filter(|c| newest.older.contains(&c.id)) {
            let call = super::put::store_call(cx.svc.id, cx.peers.kind(&c.id), self.key, newest.value.clone(), None);
            cx.svc.send_request(cx.now, c.addr, call, ReplyTo::Fire { peer: c.id });
            cx.svc.stats.read_repairs += 1;
        }
    }
}

/// A `find_node` command, or a bucket refresh (`report: false`).
pub(in crate::engine) struct FindNode {
    target: NodeId,
    report: bool,
    /// Ends once this many of the closest answered (`None`: k).
    wanted: Option<usize>,
}

impl FindNode {
    /// A refresh lookup of `target` for the maintenance queue.
    pub(in crate::engine) fn refresh(target: NodeId) -> Box<dyn Operation> {
        Box::new(SearchOp::new(FindNode { target, report: false, wanted: None }))
    }

    /// A refresh that only needs `wanted` contacts near `target` (a join's
    /// fill of a thin far bucket), not its k closest.
    pub(in crate::engine) fn fill(target: NodeId, wanted: usize) -> Box<dyn Operation> {
        Box::new(SearchOp::new(FindNode { target, report: false, wanted: Some(wanted) }))
    }
}

impl Then for FindNode {
    fn lookup(&self) -> (NodeId, LookupKind) {
        (self.target, LookupKind::FindNode)
    }

    fn wanted(&self) -> Option<usize> {
        self.wanted
    }

    fn found(&mut self, _cx: &mut Cx, r: LookupResult, stats: LookupStats) -> Step {
        if !self.report {
            return Step::Done(Finished::Task);
        }
        let outcome = Outcome::FindNode { target: self.target, closest: r.closest, stats };
        Step::Done(Finished::Report(outcome))
    }
}
