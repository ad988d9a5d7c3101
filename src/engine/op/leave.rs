//! A replica leaving a key's neighbourhood: its replication lookup found k
//! live nodes closer to the key than itself, so its copy is a leftover.
//!
//! Dropping it at once would be safe only if those k hold the record. Under
//! churn they may not: newcomers get a record handed over only by the holder
//! closest to the key that hears of them (`Engine::hand_over_records`), and
//! once one newcomer nearer than every holder misses it, the holders see a
//! closer contact and hand nothing to the next. If every holder then drops
//! its copy as a leftover, the record is gone, though live nodes held it.
//!
//! So the leaving replica first asks the nearest of the k for the key
//! (`find_value`). If it holds the record, the neighbourhood has it (its
//! holders re-replicate it among the k closest) and our copy is dropped:
//! one request. Otherwise the others are asked too, our copy is stored to
//! those that answer without it, and only then dropped. Those holding a
//! copy are not sent ours: theirs may be newer (a publisher's re-put
//! reaches the k closest, not us), and a plain store would overwrite it. If
//! none of them answers, the copy is kept for the next sweep: nobody is
//! known to hold the record.

use std::time::Duration;

use super::{Cx, Finished, Step};
use crate::contact::Contact;
use crate::engine::services::ReplyTo;
use crate::id::{Key, NodeId};
use crate::rpc::RpcKind;
use crate::wire::{Call, FindValueReply, Value};

/// The asks of a leaving replica still out, and what came back.
pub(super) struct Leaving {
    /// The k closest the lookup found, nearest first.
    closest: Vec<Contact>,
    /// Whether the others past the nearest were asked.
    all_asked: bool,
    asked: Vec<NodeId>,
    pending: usize,
    answered: usize,
    lacking: Vec<Contact>,
}

impl Leaving {
    /// Asks the nearest of `closest` whether it holds `key`; `lacking` is
    /// one already known to lack it (a probe before the lookup), not asked
    /// again.
    pub(super) fn start(cx: &mut Cx, key: Key, closest: Vec<Contact>, lacking: Option<NodeId>) -> Leaving {
        let mut l =
            Leaving { closest, all_asked: false, asked: Vec::new(), pending: 0, answered: 0, lacking: Vec::new() };
        match l.closest.first().copied() {
            Some(nearest) if Some(nearest.id) == lacking => {
                l.answered += 1;
                l.lacking.push(nearest);
                l.ask_the_others(cx, key);
            }
            Some(nearest) => l.ask(cx, key, nearest),
            None => {}
        }
        l
    }

    fn ask(&mut self, cx: &mut Cx, key: Key, c: Contact) {
        if cx.send(c.addr, Call::FindValue { sender: cx.svc.id, key }, Some(c.id)) {
            self.asked.push(c.id);
            self.pending += 1;
        }
    }

    fn ask_the_others(&mut self, cx: &mut Cx, key: Key) {
        self.all_asked = true;
        for c in self.closest.clone().into_iter().skip(1) {
            self.ask(cx, key, c);
        }
    }

    /// Whether the reply or failure of a `kind` request to `peer` is one of our asks.
    pub(super) fn is_ask(&self, peer: Option<NodeId>, kind: RpcKind) -> bool {
        kind == RpcKind::FindValue && peer.is_some_and(|p| self.asked.contains(&p))
    }

    /// `peer` answered: with the value (`Some(true)`), without it
    /// (`Some(false)`), or not at all (`None`).
    pub(super) fn on_answer(&mut self, cx: &mut Cx, key: Key, peer: Option<NodeId>, holds: Option<bool>) {
        self.pending = self.pending.saturating_sub(1);
        if let Some(holds) = holds {
            self.answered += 1;
            let contact = self.closest.iter().find(|c| Some(c.id) == peer);
            match (holds, contact) {
                (true, _) if !self.all_asked => return,
                (false, Some(c)) => self.lacking.push(*c),
                _ => {}
            }
        }
        if !self.all_asked {
            self.ask_the_others(cx, key);
        }
    }

    /// Once every ask is settled: hands our copy to those that lack it and
    /// drops ours, unless nobody answered. `Step::Wait` while asks are out.
    pub(super) fn finish(&self, cx: &mut Cx, key: Key, value: &Value, ttl: Option<Duration>) -> Step {
        if self.pending > 0 {
            return Step::Wait;
        }
        if self.answered == 0 {
            return Step::Done(Finished::Task);
        }
        for c in &self.lacking {
            let call = super::put::store_call(cx.svc.id, cx.peers.kind(&c.id), key, value.clone(), ttl);
            cx.svc.send_request(cx.now, c.addr, call, ReplyTo::Fire { peer: c.id });
        }
        cx.svc.stats.handed_down += self.lacking.len() as u64;
        drop_copy(cx, key)
    }
}

/// Drops our leftover copy of `key`; the task is done.
pub(super) fn drop_copy(cx: &mut Cx, key: Key) -> Step {
    cx.svc.stats.records_dropped += 1;
    cx.store.remove(&key);
    Step::Done(Finished::Task)
}

/// Whether a `find_value` reply body carries the value (`None`: garbage).
pub(super) fn holds(body: &Value) -> Option<bool> {
    match crate::wire::parse_find_value_reply(body).ok()? {
        FindValueReply::Value(_) => Some(true),
        FindValueReply::Nodes(_) => Some(false),
    }
}
