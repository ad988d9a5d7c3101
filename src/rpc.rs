//! Outstanding requests, matched by message id *and* by the address the
//! request went to.
//!
//! rpcudp matches replies by message id alone, so any host that learns an id
//! can answer for another. Here a reply is accepted only from the address the
//! request was sent to (IPv4-mapped IPv6 addresses compare equal to their IPv4
//! form, so a dual-stack socket does not reject honest replies). Deadlines are
//! data: the engine asks [`InFlight::next_deadline`] and calls
//! [`InFlight::expire`] when it passes.

use std::collections::BTreeSet;

use foldhash::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::time::Time;
use crate::wire::MessageId;

/// Which remote procedure a request called.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RpcKind {
    /// `ping`
    Ping,
    /// `store`
    Store,
    /// `find_node`
    FindNode,
    /// `find_value`
    FindValue,
    /// `stun`
    Stun,
    /// An extension procedure that stock Python peers do not answer.
    Extension,
}

impl RpcKind {
    /// The metric label of this kind.
    pub fn label(self) -> &'static str {
        match self {
            RpcKind::Ping => "ping",
            RpcKind::Store => "store",
            RpcKind::FindNode => "find_node",
            RpcKind::FindValue => "find_value",
            RpcKind::Stun => "stun",
            RpcKind::Extension => "extension",
        }
    }
}

/// One request awaiting its reply; `C` is what the caller needs to resume.
#[derive(Debug)]
pub struct Pending<C> {
    /// Where the request went.
    pub to: SocketAddr,
    /// What it asked.
    pub kind: RpcKind,
    /// When it was sent (for round-trip times).
    pub sent_at: Time,
    /// When it is given up.
    pub deadline: Time,
    /// The caller's context.
    pub context: C,
}

/// Why a reply was not matched to a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatchError {
    /// No request with that id is outstanding: a late reply after its
    /// timeout, a duplicate, or a forged id. Dropped.
    #[error("no outstanding request with this message id")]
    Unknown,
    /// The id is outstanding but the reply came from another address than the
    /// request went to. Dropped; the request keeps waiting.
    #[error("reply came from {got}, request went to {expected}")]
    WrongSender {
        /// Where the request went.
        expected: SocketAddr,
        /// Where the reply came from.
        got: SocketAddr,
    },
}

/// The table of outstanding requests.
#[derive(Debug)]
pub struct InFlight<C> {
    pending: HashMap<MessageId, Pending<C>>,
    deadlines: BTreeSet<(Time, MessageId)>,
    /// `deadlines`' first time, kept beside it: the engine asks after every
    /// datagram, and walking down the tree cost cache misses each time.
    earliest: Option<Time>,
}

impl<C> Default for InFlight<C> {
    fn default() -> Self {
        InFlight { pending: HashMap::default(), deadlines: BTreeSet::new(), earliest: None }
    }
}

impl<C> InFlight<C> {
    /// Records a request sent at `now` that expires after `timeout`.
    pub fn insert(&mut self, id: MessageId, to: SocketAddr, kind: RpcKind, now: Time, timeout: Duration, context: C) {
        let deadline = now + timeout;
        if let Some(old) = self.pending.insert(id, Pending { to, kind, sent_at: now, deadline, context }) {
            self.deadlines.remove(&(old.deadline, id));
        }
        self.deadlines.insert((deadline, id));
        self.earliest = self.deadlines.first().map(|(t, _)| *t);
    }

    /// Takes the request a reply with `id` from `from` answers.
    pub fn take_reply(&mut self, id: &MessageId, from: SocketAddr) -> Result<Pending<C>, MatchError> {
        let p = self.pending.get(id).ok_or(MatchError::Unknown)?;
        if !same_endpoint(p.to, from) {
            return Err(MatchError::WrongSender { expected: p.to, got: from });
        }
        let p = self.pending.remove(id).ok_or(MatchError::Unknown)?;
        self.deadlines.remove(&(p.deadline, *id));
        if self.earliest == Some(p.deadline) {
            self.earliest = self.deadlines.first().map(|(t, _)| *t);
        }
        Ok(p)
    }

    /// Removes and returns every request whose deadline is at or before `now`.
    pub fn expire(&mut self, now: Time) -> Vec<(MessageId, Pending<C>)> {
        let mut out = Vec::new();
        while let Some(&(deadline, id)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            if let Some(p) = self.pending.remove(&id) {
                out.push((id, p));
            }
        }
        self.earliest = self.deadlines.first().map(|(t, _)| *t);
        out
    }

    /// The earliest deadline, if any request is outstanding.
    pub fn next_deadline(&self) -> Option<Time> {
        debug_assert_eq!(self.earliest, self.deadlines.first().map(|(t, _)| *t));
        self.earliest
    }

    /// The outstanding request with `id`.
    pub fn get(&self, id: &MessageId) -> Option<&Pending<C>> {
        self.pending.get(id)
    }

    /// Whether `id` is outstanding.
    pub fn contains(&self, id: &MessageId) -> bool {
        self.pending.contains_key(id)
    }

    /// Number of outstanding requests.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// True when nothing is outstanding.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

/// Compares endpoints, treating `::ffff:a.b.c.d` as `a.b.c.d`.
pub fn same_endpoint(a: SocketAddr, b: SocketAddr) -> bool {
    normalize(a) == normalize(b)
}

/// The canonical form of an address: IPv4-mapped IPv6 becomes IPv4.
pub fn normalize(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), addr.port()),
            None => addr,
        },
        IpAddr::V4(_) => addr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn reply_from_other_address_is_ignored_and_request_keeps_waiting() {
        let mut t = InFlight::default();
        let id = MessageId([1; 20]);
        t.insert(id, addr("127.0.0.1:9000"), RpcKind::Ping, Time::ZERO, Duration::from_secs(5), 7u32);
        let err = t.take_reply(&id, addr("127.0.0.1:9001")).unwrap_err();
        assert!(matches!(err, MatchError::WrongSender { .. }));
        assert!(t.contains(&id));
        let p = t.take_reply(&id, addr("[::ffff:127.0.0.1]:9000")).unwrap();
        assert_eq!(p.context, 7);
        assert_eq!(t.take_reply(&id, addr("127.0.0.1:9000")).unwrap_err(), MatchError::Unknown);
        assert_eq!(t.next_deadline(), None);
    }

    #[test]
    fn expire_returns_only_due_requests_in_deadline_order() {
        let mut t = InFlight::default();
        let to = addr("10.0.0.1:8468");
        for i in 0..5u8 {
            let timeout = Duration::from_secs(u64::from(5 - i));
            t.insert(MessageId([i; 20]), to, RpcKind::FindNode, Time::ZERO, timeout, i);
        }
        assert_eq!(t.next_deadline(), Some(Time::from_secs(1)));
        let due: Vec<u8> = t.expire(Time::from_secs(3)).into_iter().map(|(_, p)| p.context).collect();
        assert_eq!(due, vec![4, 3, 2]);
        assert_eq!(t.len(), 2);
        assert_eq!(t.next_deadline(), Some(Time::from_secs(4)));
    }

    #[test]
    fn reinserting_an_id_replaces_its_deadline() {
        let mut t = InFlight::default();
        let id = MessageId([9; 20]);
        let to = addr("10.0.0.1:1");
        t.insert(id, to, RpcKind::Ping, Time::ZERO, Duration::from_secs(1), ());
        t.insert(id, to, RpcKind::Ping, Time::ZERO, Duration::from_secs(9), ());
        assert!(t.expire(Time::from_secs(2)).is_empty());
        assert_eq!(t.expire(Time::from_secs(9)).len(), 1);
        assert!(t.is_empty());
    }
}

#[cfg(test)]
mod kind_tests;
