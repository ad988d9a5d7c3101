//! The set's size, asked during the lookup. A cold read took its lookup,
//! then a round trip for a replica's first page (which tells the set's
//! size), then one for the shards cut from that size. The lookup's own
//! hops are short (proximity picks near contacts: 51 ms p50 for workers'
//! cold reads in `simulations steady --seed 1`), while that first page
//! waits a round trip to wherever the key put its replicas.
//!
//! So while the lookup runs, before it knows enough contacts deep enough
//! to start the read, the nearest extension peer it knows in the key's
//! closest half (the contacts the read takes its replicas from, see
//! `CHOICE_DEPTH`) is asked for the plain first page. When that answer comes
//! before the replicas' first pages, every replica is asked for all its
//! shards at once: one round trip after the lookup, not two. Its entries are
//! not merged unless it is read as a replica: a peer the read does not
//! compare (see `covered`) must not add to what the replicas are compared
//! with. A replica read while its size request is out takes that request as
//! its first page, and its answer as such.

use std::time::Duration;

use super::{Phase, ProviderRead, CHOICE_DEPTH};
use crate::engine::op::{Cx, Step};
use crate::engine::providers::client::{parse_page, shard_call};
use crate::engine::providers::wire::Shard;
use crate::engine::providers::MAX_ENTRIES_PER_CALL;
use crate::engine::PeerKind;
use crate::id::NodeId;
use crate::time::Time;
use crate::wire::Value;

/// Where the read's size request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Sizer {
    /// Not asked yet (a read with a size remembered never asks).
    Unsent,
    /// Asked of this peer at this time, not answered yet.
    Asked(NodeId, Time),
    Done,
}

impl Sizer {
    /// When the size request out to `peer` (about to be read from the
    /// start) was sent: it is taken as that replica's first page request,
    /// not sent twice, and its answer or failure is then the replica's.
    pub(super) fn adopt(&mut self, peer: NodeId) -> Option<Time> {
        let Sizer::Asked(s, at) = *self else { return None };
        if s != peer {
            return None;
        }
        *self = Sizer::Done;
        Some(at)
    }
}

impl ProviderRead {
    /// During the lookup: asks the nearest extension peer of the key's
    /// closest half for its first page, once per read, when the set's size
    /// is not known yet.
    pub(super) fn ask_size(&mut self, cx: &mut Cx) {
        if self.sizer != Sizer::Unsent || self.hint.is_some() {
            return;
        }
        let Phase::Search(s) = &self.phase else { return };
        let peers = cx.peers;
        let extended = s.deep(CHOICE_DEPTH).filter(|(c, _)| peers.kind(&c.id) == PeerKind::Extended);
        let Some((c, _)) = extended.min_by_key(|(_, rtt)| rtt.unwrap_or(Duration::MAX)) else { return };
        let call = shard_call(cx.svc.id, self.key, None, MAX_ENTRIES_PER_CALL, Shard::ALL);
        if cx.send(c.addr, call, Some(c.id)) {
            self.out.pages_sent += 1;
            self.sizer = Sizer::Asked(c.id, cx.now);
        }
    }

    /// Whether `peer` is the one asked the size, its answer still due.
    pub(super) fn is_sizer(&self, peer: Option<NodeId>) -> bool {
        matches!((self.sizer, peer), (Sizer::Asked(s, _), Some(p)) if s == p)
    }

    /// The size request's answer (`None`: it failed): a set larger than a
    /// page is learnt as a replica's first page would be.
    pub(super) fn on_size(&mut self, cx: &mut Cx, body: Option<&Value>) -> Step {
        self.sizer = Sizer::Done;
        let Some(page) = body.and_then(|v| parse_page(v, &self.key)) else {
            self.out.pages_failed += 1;
            return Step::Wait;
        };
        if page.shard.is_none() && page.next.is_some() && !page.entries.is_empty() {
            self.learn_size(cx, page.live, page.entries.len());
        }
        Step::Wait
    }
}
