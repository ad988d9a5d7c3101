//! The iterative lookup (Kademlia paper, section 2.3) as a state machine.
//!
//! A [`Lookup`] knows nothing of sockets or clocks. The engine asks
//! [`Lookup::next`] for the next contact to query until it answers
//! [`Next::Wait`] or [`Next::Done`], and feeds every reply or failure back with
//! [`Lookup::on_nodes`], [`Lookup::on_value`] or [`Lookup::on_failure`].
//!
//! Invariants: at most `alpha` queries count as in flight at once; a query that
//! has waited longer than `stall_after` stops counting (and stops blocking
//! termination), so one dead contact delays a lookup by `stall_after`, not by a
//! full RPC timeout; the lookup is done when the `k` closest contacts that have
//! not failed or stalled have all answered, or when a value is found.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::contact::Contact;
use crate::id::{Distance, NodeId};
use crate::time::Time;
use crate::wire::Value;

/// Kademlia's alpha: queries a lookup keeps in flight at once.
pub const ALPHA: usize = 3;

/// What a lookup looks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupKind {
    /// The k closest nodes to the target (`find_node`).
    FindNode,
    /// The value stored under the target key (`find_value`).
    FindValue,
}

/// What the engine should do next for this lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// Send a query to this contact.
    Query(Contact),
    /// Nothing to send until a reply, failure or stall.
    Wait,
    /// The lookup has finished; call [`Lookup::finish`].
    Done,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    NotContacted,
    Waiting {
        since: Time,
    },
    /// Waited longer than `stall_after`: no longer counted, still accepted.
    Stalled,
    Succeeded,
    Failed,
}

#[derive(Clone, Debug)]
struct Candidate {
    contact: Contact,
    state: State,
    hop: u32,
}

/// The result of a finished lookup.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LookupResult {
    /// Up to k contacts that answered, closest to the target first.
    pub closest: Vec<Contact>,
    /// The value, for a `FindValue` lookup that found one.
    pub value: Option<Value>,
    /// Who returned the value.
    pub value_from: Option<NodeId>,
    /// The closest contact that answered without the value: where the paper
    /// says to cache a found value.
    pub store_at: Option<Contact>,
    /// Queries sent.
    pub queried: usize,
    /// Queries that failed (timed out or answered garbage).
    pub failed: usize,
    /// Rounds of referral from the first contacts to the answer.
    pub hops: u32,
}

/// One iterative lookup.
#[derive(Debug)]
pub struct Lookup {
    target: NodeId,
    local: NodeId,
    kind: LookupKind,
    k: usize,
    alpha: usize,
    stall_after: Duration,
    candidates: BTreeMap<Distance, Candidate>,
    /// The candidates in `State::Waiting`, closest first, with when each was
    /// sent: at most `alpha`, so stall checks and the in-flight count need
    /// not walk every candidate (they ran after every datagram).
    waiting: Vec<(Distance, Time)>,
    /// The value, who sent it and its hop. Boxed: set at most once, and
    /// every operation in the engine's table is as large as a `Lookup`.
    value: Option<Box<(Value, NodeId, u32)>>,
    queried: usize,
    failed: usize,
    newly_stalled: Vec<NodeId>,
}

impl Lookup {
    /// A lookup for `target` starting from `seeds` (our own id is never queried).
    pub fn new(target: NodeId, local: NodeId, kind: LookupKind, k: usize, alpha: usize, stall_after: Duration) -> Self {
        Lookup {
            target,
            local,
            kind,
            k: k.max(1),
            alpha: alpha.max(1),
            stall_after,
            candidates: BTreeMap::new(),
            waiting: Vec::new(),
            value: None,
            queried: 0,
            failed: 0,
            newly_stalled: Vec::new(),
        }
    }

    /// Adds starting contacts (hop 1).
    pub fn with_seeds(mut self, seeds: impl IntoIterator<Item = Contact>) -> Self {
        for c in seeds {
            self.add(c, 1);
        }
        self
    }

    /// The target id or key.
    pub fn target(&self) -> NodeId {
        self.target
    }

    /// What this lookup looks for.
    pub fn kind(&self) -> LookupKind {
        self.kind
    }

    fn add(&mut self, contact: Contact, hop: u32) {
        if contact.id == self.local {
            return;
        }
        let d = contact.id.distance(&self.target);
        self.candidates.entry(d).or_insert(Candidate { contact, state: State::NotContacted, hop });
    }

    fn mark_stalled(&mut self, now: Time) {
        let stall_after = self.stall_after;
        let (candidates, stalled) = (&mut self.candidates, &mut self.newly_stalled);
        self.waiting.retain(|&(d, since)| {
            if now < since + stall_after {
                return true;
            }
            if let Some(c) = candidates.get_mut(&d) {
                c.state = State::Stalled;
                stalled.push(c.contact.id);
            }
            false
        });
    }

    /// Sets the state of the candidate at `d`, keeping `waiting` in step.
    fn set_state(&mut self, d: &Distance, state: State) {
        let Some(c) = self.candidates.get_mut(d) else { return };
        if let State::Waiting { .. } = c.state {
            self.waiting.retain(|(w, _)| w != d);
        }
        c.state = state;
        if let State::Waiting { since } = state {
            let at = self.waiting.partition_point(|(w, _)| w < d);
            self.waiting.insert(at, (*d, since));
        }
    }

    /// The next step at `now`. Call repeatedly until it is not `Query`.
    pub fn next(&mut self, now: Time) -> Next {
        if self.value.is_some() {
            return Next::Done;
        }
        self.mark_stalled(now);
        let in_flight = self.waiting.len();
        let mut live_seen = 0;
        let mut pending = false;
        let mut pick = None;
        for (d, c) in &self.candidates {
            if live_seen >= self.k {
                break;
            }
            match c.state {
                State::Failed | State::Stalled => continue,
                State::Waiting { .. } => pending = true,
                State::NotContacted if pick.is_none() && in_flight < self.alpha => pick = Some(*d),
                State::NotContacted => pending = true,
                State::Succeeded => {}
            }
            live_seen += 1;
        }
        match pick {
            Some(d) => self.mark_waiting(&d, now),
            None if pending || in_flight >= self.alpha => Next::Wait,
            None => Next::Done,
        }
    }

    fn mark_waiting(&mut self, d: &Distance, now: Time) -> Next {
        let Some(contact) = self.candidates.get(d).map(|c| c.contact) else { return Next::Wait };
        self.set_state(d, State::Waiting { since: now });
        self.queried += 1;
        Next::Query(contact)
    }

    /// Contacts this lookup stopped waiting on since the last call.
    pub fn take_stalled(&mut self) -> Vec<NodeId> {
        std::mem::take(&mut self.newly_stalled)
    }

    /// When the earliest in-flight query will stall, so the engine can wake up.
    pub fn next_stall(&self) -> Option<Time> {
        self.waiting.iter().map(|&(_, since)| since + self.stall_after).min()
    }

    /// `from`'s candidate, marked answered; its hop.
    fn succeeded(&mut self, from: &NodeId) -> Option<u32> {
        let d = from.distance(&self.target);
        let hop = self.candidates.get(&d)?.hop;
        self.set_state(&d, State::Succeeded);
        Some(hop)
    }

    /// `from` answered with contacts closer to the target.
    pub fn on_nodes(&mut self, from: &NodeId, contacts: Vec<Contact>) {
        let Some(hop) = self.succeeded(from) else { return };
        for contact in contacts {
            self.add(contact, hop + 1);
        }
    }

    /// `from` answered with the value.
    pub fn on_value(&mut self, from: &NodeId, value: Value) {
        let Some(hop) = self.succeeded(from) else { return };
        if self.kind == LookupKind::FindValue && self.value.is_none() {
            self.value = Some(Box::new((value, *from, hop)));
        }
    }

    /// The query to `from` timed out or its reply was unusable.
    pub fn on_failure(&mut self, from: &NodeId) {
        let d = from.distance(&self.target);
        if self.candidates.get(&d).is_some_and(|c| c.state != State::Failed) {
            self.set_state(&d, State::Failed);
            self.failed += 1;
        }
    }

    /// The outcome so far (normally called after `Next::Done`).
    pub fn finish(&self) -> LookupResult {
        let answered = self.candidates.values().filter(|c| c.state == State::Succeeded);
        let closest: Vec<&Candidate> = answered.take(self.k).collect();
        let value_from = self.value.as_ref().map(|found| found.1);
        let store_at = closest.iter().find(|c| Some(c.contact.id) != value_from).map(|c| c.contact);
        let hops = match self.value.as_deref() {
            Some((_, _, hop)) => *hop,
            None => closest.iter().map(|c| c.hop).max().unwrap_or(0),
        };
        LookupResult {
            closest: closest.iter().map(|c| c.contact).collect(),
            value: self.value.as_ref().map(|found| found.0.clone()),
            value_from,
            store_at: if self.value.is_some() { store_at } else { None },
            queried: self.queried,
            failed: self.failed,
            hops,
        }
    }
}

#[cfg(test)]
mod tests;
