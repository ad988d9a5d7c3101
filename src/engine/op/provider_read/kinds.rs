//! The kinds of a read's few closest. A read looks up the few closest to
//! its key first, and all k only when too few of those are known to speak
//! the extension (a stock neighbourhood must not be read from blindly).
//! But a reader new to the key's neighbourhood has just met most of them,
//! so it may only not know their kinds yet. They are asked (`kadmesh_hello`
//! went to those that found room in the routing table as they answered;
//! the others are asked here), and the read starts from them as soon as
//! enough answered, if that comes before the lookup of all k ends: about a
//! round trip, where that lookup waited for the slowest of the k closest
//! (about 2 s in `simulations steady`, for one cold read by a worker in
//! eight).

use super::{Phase, ProviderRead};
use crate::engine::op::{Cx, Step};
use crate::engine::{LookupStats, PeerKind};
use crate::lookup::LookupResult;

/// The few closest a first lookup found, and how that lookup went.
pub(super) struct Few {
    found: Box<LookupResult>,
    stats: LookupStats,
}

impl Few {
    /// Keeps `found` and asks those of its closest of unknown kind what
    /// they speak (the engine sends a hello where one is due: not to one
    /// whose hello is in flight).
    pub(super) fn ask(cx: &mut Cx, found: Box<LookupResult>, stats: LookupStats) -> Few {
        for c in found.closest.iter().filter(|c| cx.peers.kind(&c.id) == PeerKind::Unknown) {
            cx.ask_kind(*c);
        }
        Few { found, stats }
    }
}

impl ProviderRead {
    /// While the lookup of all k runs: once enough of the few closest are
    /// known to speak the extension, drops that lookup and reads from them.
    pub(super) fn read_few_if_known(&mut self, cx: &mut Cx) -> Option<Step> {
        let few = self.few.as_ref()?;
        let extended = few.found.closest.iter().filter(|c| cx.peers.kind(&c.id) == PeerKind::Extended).count();
        if extended < self.want {
            return None;
        }
        let few = self.few.take()?;
        if let Phase::Search(s) = &self.phase {
            let so_far = s.stats_so_far(cx.now);
            self.out.stats.queried += so_far.queried;
            self.out.stats.failed += so_far.failed;
        }
        // A read from the few is final, as one after the whole lookup is.
        self.early = false;
        Some(self.read_found(cx, &few.found, few.stats))
    }
}
