//! Operations: each command (get, put, find_node, bootstrap, ping, stun,
//! call) and each maintenance task runs as its own state machine.
//!
//! An operation owns its state and answers three inputs, [`Operation::on_reply`],
//! [`Operation::on_failure`] and [`Operation::poll`] (started, woken by its
//! deadline, or asked to continue), with a [`Step`]: wait, poll again, or
//! done with a result. It sends through the services lent to it in a [`Cx`]
//! and never sees the engine or other operations, so the engine only routes
//! inputs to it by [`QueryId`]. A new operation is one module here that
//! implements [`Operation`], plus the command that launches it.
//!
//! | module | operations |
//! | --- | --- |
//! | [`search`] | the iterative lookup every other operation drives |
//! | [`find`] | `get` (find_value collecting copies, then repair and a cache copy) and `find_node`, bucket refresh |
//! | [`newest`] | which of a `get`'s copies is newest, and who holds older ones |
//! | [`put`] | `put`, republish and replicate: a lookup (or reused targets), then stores |
//! | [`leave`] | a replica whose lookup found k closer nodes: hands its copy to those lacking it, then drops it |
//! | [`targets`] | where a publisher's re-puts go without a lookup |
//! | [`bootstrap`] | seed pings, then a lookup of our own id |
//! | [`single`] | one request: `ping`, `stun`, `call` |
//! | [`provider_read`] | a provider set: lookup (the set's size asked meanwhile; read begins once replicas deep enough are known; none within two minutes of the last), sharded reads from the nearest replicas (a round ends once each shard came from enough), merge, stand-ins, second round |
//! | [`provider_write`] | provider adds or removes: a batch's lookup, local copy, writes with retries |

/// `search` and `on_nodes` of an operation that drives a lookup in a
/// `Phase::Search` variant of its `phase` and takes the lookup's progress in
/// its own `on_progress`: bootstrap, put and the provider operations.
macro_rules! search_phase {
    () => {
        fn search(&self) -> Option<&Search> {
            match &self.phase {
                Phase::Search(s) => Some(s),
                _ => None,
            }
        }

        fn on_nodes(&mut self, cx: &mut Cx, peer: NodeId, contacts: Vec<Contact>) -> Step {
            let Phase::Search(s) = &mut self.phase else { return Step::Wait };
            let progress = s.on_nodes(cx, peer, contacts);
            self.on_progress(cx, progress)
        }
    };
}
pub(super) use search_phase;

pub(super) mod bootstrap;
pub(super) mod find;
pub(super) mod leave;
pub(super) mod newest;
pub(super) mod provider_read;
pub(super) mod provider_write;
pub(super) mod put;
pub(super) mod search;
pub(super) mod single;
pub(super) mod targets;

use std::net::SocketAddr;
use std::time::Duration;

use super::maintenance::Maintenance;
use super::peers::Peers;
use super::services::{ReplyTo, Services};
use super::{Outcome, QueryId};
use crate::contact::Contact;
use crate::id::NodeId;
use crate::rpc::RpcKind;
use crate::store::RecordStore;
use crate::time::Time;
use crate::wire::{Call, Value};
pub(super) use provider_read::memory::ReadMemory;
use search::Search;
use targets::PutTargets;

/// What an operation may use while it handles one input: the time, its own
/// id, and borrows of the node's services and state.
pub(super) struct Cx<'a> {
    pub(super) now: Time,
    /// The operation being run; its requests carry this id.
    pub(super) op: QueryId,
    pub(super) svc: &'a mut Services,
    pub(super) store: &'a mut RecordStore,
    /// This node's own provider sets.
    pub(super) providers: &'a mut super::providers::ProviderStore,
    pub(super) peers: &'a Peers,
    /// Read-only: which keys this node publishes.
    pub(super) maintenance: &'a Maintenance,
    pub(super) put_targets: &'a mut PutTargets,
    /// Where provider sets were read lately.
    pub(super) read_memory: &'a mut ReadMemory,
    /// Our own bootstrap is running (no records are handed over meanwhile).
    pub(super) joining: &'a mut bool,
    /// Contacts that answered, to learn once the operation returns.
    /// Learning can send (hello, eviction ping, handover), so it happens in
    /// the engine, in the order the operation asked, before a [`Step::Poll`].
    pub(super) learned: Vec<Contact>,
    /// Contacts whose kind the operation needs: each is asked
    /// (`kadmesh_hello`) once the input is handled, if a hello is due.
    pub(super) ask_kind: Vec<Contact>,
}

impl Cx<'_> {
    /// Sends `call` to `to` on behalf of this operation, expecting `peer` to
    /// answer; false if it could not be sent.
    pub(super) fn send(&mut self, to: SocketAddr, call: Call, peer: Option<NodeId>) -> bool {
        self.svc.send_request(self.now, to, call, ReplyTo::Op { op: self.op, peer })
    }

    /// Asks the engine to learn `contact`, which answered one of our
    /// queries, when this input is handled.
    pub(super) fn learn_answered(&mut self, contact: Contact) {
        self.learned.push(contact);
    }

    /// Asks the engine to find out what `contact` speaks, when this input
    /// is handled (a contact outside the routing table is never asked
    /// otherwise).
    pub(super) fn ask_kind(&mut self, contact: Contact) {
        self.ask_kind.push(contact);
    }
}

/// A reply to one of an operation's requests.
pub(super) struct Reply {
    /// Who was expected to answer (`None`: a bare address).
    pub(super) peer: Option<NodeId>,
    /// Where the request went.
    pub(super) to: SocketAddr,
    /// What it asked.
    pub(super) kind: RpcKind,
    pub(super) body: Value,
    pub(super) rtt: Duration,
}

/// What an operation asks the engine to do after an input.
#[must_use]
pub(super) enum Step {
    /// Nothing more until the next reply, failure or deadline.
    Wait,
    /// Learn what it asked to learn, then call [`Operation::poll`] again.
    Poll,
    /// It is finished; the engine drops it.
    Done(Finished),
}

/// How an operation ended.
pub(super) enum Finished {
    /// A command's result, reported as an [`Event`](super::Event).
    Report(Outcome),
    /// A maintenance task ended; its slot in the queue is free.
    Task,
    /// Work the engine started for itself ended; nobody waits for it.
    Quiet,
}

/// One operation's state machine.
pub(super) trait Operation: Send {
    /// Starts it, or continues after [`Step::Poll`] or its deadline.
    fn poll(&mut self, cx: &mut Cx) -> Step;
    /// A reply to one of its requests.
    fn on_reply(&mut self, cx: &mut Cx, reply: Reply) -> Step;
    /// One of its requests timed out; `peer` is who was expected.
    fn on_failure(&mut self, cx: &mut Cx, peer: Option<NodeId>, kind: RpcKind) -> Step;
    /// Its lookup, while it is in one.
    fn search(&self) -> Option<&Search> {
        None
    }
    /// When [`Operation::poll`] must next run: its lookup's next stall.
    fn next_deadline(&self) -> Option<Time> {
        self.search().and_then(Search::next_stall)
    }
    /// Whether it is in a lookup that takes nodes replies through
    /// [`Operation::on_nodes`] (the engine's fast decoding path).
    fn takes_nodes(&self) -> bool {
        self.search().is_some()
    }
    /// `peer` answered a lookup query with `contacts`.
    fn on_nodes(&mut self, _cx: &mut Cx, _peer: NodeId, _contacts: Vec<Contact>) -> Step {
        Step::Wait
    }
}
