//! Contacts the routing table dropped for silence, asked again now and then
//! so a healed partition rejoins.
//!
//! While a network is cut in two, every query across the cut times out and
//! both sides evict each other from their tables (two strikes). Once the cut
//! heals nothing brings them back: lookups only follow contacts still in the
//! tables, so each side keeps reading its own replicas and each publisher
//! keeps storing to its own side (measured in the simulator's partition
//! scenario: replicas across the former cut were still stale 30 minutes
//! after the heal). So the engine remembers the last [`LOST_MAX`] contacts
//! it evicted for timeouts and pings the one waiting longest every
//! [`Config::lost_recheck_every`](super::Config::lost_recheck_every), for
//! [`Config::lost_keep`](super::Config::lost_keep) after it was lost. One
//! that answers is learned again (and learns us from the ping), and lookups
//! through it find the rest of its side.
//!
//! One answering means a cut may just have healed, so every other lost
//! contact is asked at once (at most every [`FLUSH_EVERY`]): one at a
//! time, a node relearned the other side over
//! minutes while each side's publishers kept writing to their own, and
//! discovers right after the heal in `simulations partition` missed
//! providers whose entries across the former cut had run out. (A look-up
//! of our own id beside it cost 60 % more `find_node` datagrams in
//! `simulations coordinator-loss`, where contacts lost to churn answer
//! again all the time, so it was dropped.)
//!
//! Pure bookkeeping: the engine sends the pings.

use std::collections::VecDeque;
use std::time::Duration;

use crate::contact::Contact;
use crate::time::Time;

/// Least time between two rounds of asking every lost contact at once.
pub const FLUSH_EVERY: Duration = Duration::from_secs(300);

/// Most lost contacts remembered; the oldest go first.
pub const LOST_MAX: usize = 64;

/// Recently evicted contacts, each with when it was lost.
#[derive(Debug, Default)]
pub(super) struct Lost {
    /// Next to ask at the front.
    queue: VecDeque<(Contact, Time)>,
}

impl Lost {
    /// `c` was evicted at `now` after timing out.
    pub(super) fn note(&mut self, c: Contact, now: Time) {
        self.queue.retain(|(x, _)| x.id != c.id);
        self.queue.push_back((c, now));
        while self.queue.len() > LOST_MAX {
            self.queue.pop_front();
        }
    }

    /// `id` is back in the table: nothing to ask.
    pub(super) fn found(&mut self, id: &crate::id::NodeId) {
        if !self.queue.is_empty() {
            self.queue.retain(|(x, _)| x.id != *id);
        }
    }

    /// The contact to ask now: the front one lost within `keep` (older ones
    /// are forgotten), moved to the back so the others get their turn.
    pub(super) fn next(&mut self, now: Time, keep: Duration) -> Option<Contact> {
        self.forget_older(now, keep);
        let (c, at) = self.queue.pop_front()?;
        self.queue.push_back((c, at));
        Some(c)
    }

    /// Every contact lost within `keep` (older ones are forgotten), in
    /// turn order.
    pub(super) fn all(&mut self, now: Time, keep: Duration) -> Vec<Contact> {
        self.forget_older(now, keep);
        self.queue.iter().map(|(c, _)| *c).collect()
    }

    fn forget_older(&mut self, now: Time, keep: Duration) {
        self.queue.retain(|(_, at)| now.saturating_since(*at) < keep);
    }

    /// Whether there is anyone to ask.
    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::NodeId;
    use std::net::SocketAddr;

    fn contact(b: u8) -> Contact {
        Contact::new(NodeId([b; 20]), SocketAddr::from(([10, 0, 0, b], 8468)))
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn asks_each_in_turn_and_forgets_after_keep() {
        let mut l = Lost::default();
        l.note(contact(1), Time::from_secs(0));
        l.note(contact(2), Time::from_secs(10));
        let ids = |l: &mut Lost, now| l.next(now, HOUR).map(|c| c.id.0[0]);
        assert_eq!(ids(&mut l, Time::from_secs(20)), Some(1));
        assert_eq!(ids(&mut l, Time::from_secs(20)), Some(2));
        assert_eq!(ids(&mut l, Time::from_secs(20)), Some(1));
        // An hour after 1 was lost only 2 is left, ten seconds later nobody.
        assert_eq!(ids(&mut l, Time::from_secs(3600)), Some(2));
        assert_eq!(ids(&mut l, Time::from_secs(3600)), Some(2));
        assert_eq!(ids(&mut l, Time::from_secs(3610)), None);
        assert!(l.is_empty());
    }

    #[test]
    fn holds_at_most_lost_max_and_drops_the_found() {
        let mut l = Lost::default();
        for b in 0..=LOST_MAX as u8 {
            l.note(contact(b), Time::ZERO);
        }
        l.note(contact(5), Time::ZERO);
        l.found(&NodeId([6; 20]));
        let mut seen = Vec::new();
        while let Some(c) = l.next(Time::ZERO, HOUR) {
            if seen.contains(&c.id.0[0]) {
                break;
            }
            seen.push(c.id.0[0]);
        }
        assert_eq!(seen.len(), LOST_MAX - 1);
        assert!(!seen.contains(&0), "the oldest went first");
        assert!(!seen.contains(&6), "a contact back in the table is not asked");
        assert_eq!(seen.last(), Some(&5), "noted again: asked last");
    }
}
