//! A provider read from memory ([`super::memory`]): where it starts, the
//! check that the key's neighbourhood has not changed under it, and what
//! a read leaves for the next one.

use super::memory::Remembered;
use super::replica::{Hint, Replica, StoodIn};
use super::{read_rank, Phase, ProviderRead};
use crate::contact::Contact;
use crate::engine::op::{Cx, Step};
use crate::engine::{LookupStats, PeerKind};
use crate::wire::{self, Call, Value};

impl ProviderRead {
    /// Reads from the replicas the key's last lookup found, nearest
    /// measured round trip first, as an early read: one that runs out of
    /// them or finds too little runs the lookup. The nearest is also asked
    /// for its closest to the key (see [`ProviderRead::on_probe`]).
    pub(super) fn start_from_memory(&mut self, cx: &mut Cx, m: Remembered) -> Step {
        self.out.remembered = true;
        let peers = cx.peers;
        let mut order: Vec<Contact> = m.replicas.into_iter().filter(|c| peers.kind(&c.id) != PeerKind::Base).collect();
        order.sort_by_key(|c| read_rank(cx, c, cx.svc.book.smoothed(&c.addr)));
        self.known = order.iter().map(|c| c.id).collect();
        if let Some(first) = order.first() {
            let call = Call::FindNode { sender: cx.svc.id, key: self.key };
            if cx.send(first.addr, call, Some(first.id)) {
                self.probe = Some(first.id);
            }
        }
        self.start_reading(cx, order, LookupStats::default())
    }

    /// The nearest replica's closest to the key. Nodes among them closer
    /// to the key than every remembered replica joined since the lookup:
    /// writers now count them among the key's closest, and may leave out
    /// replicas we remember (in `simulations flash-crowd`, routers reading
    /// from memory missed a newcomer that the key's two closest held). They
    /// are read in this round too, as many as replicas wanted, closest
    /// first, and the next read runs the lookup.
    pub(super) fn on_probe(&mut self, cx: &mut Cx, body: &Value) -> Step {
        self.probe = None;
        let Ok(contacts) = wire::parse_find_node_reply(body) else { return Step::Wait };
        let key = self.key;
        let Some(top) = self.known.iter().map(|id| id.distance(&key)).min() else { return Step::Wait };
        let peers = cx.peers;
        let mut new: Vec<Contact> = contacts
            .into_iter()
            .filter(|c| c.id != cx.svc.id && c.id.distance(&key) < top && !self.known.contains(&c.id))
            .filter(|c| peers.kind(&c.id) != PeerKind::Base)
            .collect();
        if new.is_empty() {
            return Step::Wait;
        }
        new.sort_by_key(|c| c.id.distance(&key));
        new.truncate(self.want);
        cx.read_memory.forget(&key);
        self.out.newcomers += new.len();
        let Phase::Reading(r) = &mut self.phase else { return Step::Wait };
        let (now, stall, hint) = (cx.now, self.stall, self.hint);
        let start = r.replicas.len();
        for c in new {
            self.asked.push(c.id);
            r.replicas.push(Replica::new(c, now, stall, hint));
        }
        for i in start..r.replicas.len() {
            self.ask_all(cx, i);
        }
        Step::Wait
    }

    /// Keeps where the set was read and its size for the next read: the
    /// replicas that read complete or answered until the round ended
    /// without them, then the lookup's others among the key's closest not
    /// asked. A read without a lookup updates only the size.
    pub(super) fn remember(&self, cx: &mut Cx) {
        let Phase::Reading(r) = &self.phase else { return };
        // The largest size reported this time (pages of every shard report
        // the whole set's); a set that now fits one page needs no plan.
        let live = r.replicas.iter().filter_map(|p| p.live).max();
        let hint = self.hint.map(|h| Hint { live: live.unwrap_or(h.live), ..h }).filter(|h| h.live > h.per_page as u64);
        let Some(found_at) = self.found_at else {
            cx.read_memory.resize(&self.key, hint, cx.now);
            return;
        };
        let good = r.replicas.iter().filter(|p| (p.complete() && p.stood_in == StoodIn::No) || p.left_answering());
        let good = good.map(|p| p.contact);
        let unasked = self.pool.iter().filter(|c| !self.asked.contains(&c.id)).copied();
        let replicas: Vec<Contact> = good.chain(unasked).collect();
        cx.read_memory.remember(self.key, Remembered { replicas, hint, found_at, sized_at: cx.now });
    }
}
