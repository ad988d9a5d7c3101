//! Which contacts we hand to other nodes, and when we check one first.
//!
//! A stock Python peer waits a fixed 5 s on every contact that does not
//! answer, so every unreachable address we put in a `find_node` reply costs
//! each of its lookups 5 s. Hearing a request from an address proves nothing
//! about whether it can be reached (a short-lived script, a client behind
//! NAT, a node that has just left), so, as in BEP 5, only a *good* contact is
//! handed out: one that answered one of our own queries within
//! [`GOOD_FOR`] (or, having answered once from its address, sent us a
//! request within it, as BEP 5 allows), and has neither timed out nor
//! stalled since.
//!
//! A contact that has not answered lately is checked with a base `ping`
//! (every peer answers it) when it would be handed out, at most once per
//! [`recheck_gap`]. The gap grows with how long the contact has been
//! answering (Kademlia §2.2: the longer a node has been up, the likelier it
//! stays up): a client that answered for ten seconds is re-checked every
//! 2.5 s it is handed out, so once it stops it is left out within one ping
//! timeout of its next hand-out; a node answering for 40 minutes or more is
//! re-checked at most every ten. A new requester is checked as soon as it is
//! first seen. (Simulation, 500 nodes, steady hour: an eighth and five
//! minutes cost 17% more bandwidth per worker, mostly pings.)

use std::time::Duration;

use super::bucket::Entry;
use crate::time::Time;

/// How long an answer keeps a contact good (BEP 5's 15 minutes).
pub const GOOD_FOR: Duration = Duration::from_secs(15 * 60);
/// Shortest and longest gap between two checks of one contact.
pub const RECHECK_MIN: Duration = Duration::from_secs(1);
/// See [`RECHECK_MIN`]. Below [`GOOD_FOR`], so a contact handed out
/// regularly is checked before it would lapse.
pub const RECHECK_MAX: Duration = Duration::from_secs(10 * 60);
/// A contact is re-checked after a quarter of the time it has been answering.
const RECHECK_DIVISOR: u32 = 4;
/// A contact that never answered is asked again at most this often (its
/// check may have been lost; a failed check already asks again itself).
pub const UNVERIFIED_RECHECK: Duration = Duration::from_secs(5);

/// How long after its last answer a contact that has been answering since
/// `first` is checked again.
pub fn recheck_gap(first: Time, now: Time) -> Duration {
    (now.saturating_since(first) / RECHECK_DIVISOR).clamp(RECHECK_MIN, RECHECK_MAX)
}

impl Entry {
    /// Answered one of our queries within [`GOOD_FOR`] and has not failed since.
    pub(crate) fn is_good(&self, now: Time) -> bool {
        self.answering() && self.answered.is_some_and(|a| now.saturating_since(a.last) <= GOOD_FOR)
    }

    /// Should we ping it before (or while) handing it out? Failing
    /// contacts are left out: a check of those is already under way.
    pub(crate) fn check_due(&self, now: Time) -> bool {
        if !self.answering() {
            return false;
        }
        let since_check = |gap: Duration| self.checked.is_none_or(|c| now.saturating_since(c) >= gap);
        match self.answered {
            None => since_check(UNVERIFIED_RECHECK),
            Some(a) => {
                let gap = recheck_gap(a.first, now);
                now.saturating_since(a.last) >= gap && since_check(gap)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contact::Contact;
    use crate::id::NodeId;
    use crate::routing::RoutingTable;

    fn secs(s: u64) -> Time {
        Time::from_secs(s)
    }

    /// A table around id 0 with `n` contacts whose ids are 1..=n.
    fn table(n: u8) -> (RoutingTable, Vec<Contact>) {
        let mut t = RoutingTable::new(NodeId([0; 20]), 20, secs(0));
        let contacts: Vec<Contact> = (1..=n)
            .map(|i| {
                let mut id = [0u8; 20];
                id[19] = i;
                Contact::new(NodeId(id), ([127, 0, 0, 1], 9000 + u16::from(i)).into())
            })
            .collect();
        for c in &contacts {
            t.insert(*c, secs(0));
        }
        (t, contacts)
    }

    #[test]
    fn recheck_gap_grows_with_time_answering_within_bounds() {
        assert_eq!(recheck_gap(secs(100), secs(100)), RECHECK_MIN);
        assert_eq!(recheck_gap(secs(0), secs(40)), Duration::from_secs(10));
        assert_eq!(recheck_gap(secs(0), secs(10 * 3600)), RECHECK_MAX);
    }

    #[test]
    fn only_contacts_that_answered_us_are_handed_out_and_the_others_are_checked_once() {
        let (mut t, cs) = table(4);
        assert!(t.mark_answered(&cs[0].id, secs(1)));
        assert!(!t.mark_answered(&cs[0].id, secs(1)), "second answer is not a first verification");
        let target = cs[1].id;
        let h = t.handout(&target, 4, secs(1), |_| false);
        assert_eq!(h.contacts, vec![cs[0]]);
        assert_eq!(h.check.len(), 3);
        assert!(!h.check.contains(&cs[0]));
        // Checks are noted: asking again at once sends none.
        assert!(t.handout(&target, 4, Time::from_millis(1500), |_| false).check.is_empty());
        // Unanswered checks are repeated after UNVERIFIED_RECHECK.
        let again = t.handout(&target, 4, secs(1) + UNVERIFIED_RECHECK, |_| false).check;
        assert!(cs[1..].iter().all(|c| again.contains(c)));
    }

    #[test]
    fn a_contact_silent_for_longer_than_good_for_is_left_out_and_checked() {
        let (mut t, cs) = table(1);
        t.mark_answered(&cs[0].id, secs(0));
        let late = secs(0) + GOOD_FOR + Duration::from_secs(1);
        let h = t.handout(&cs[0].id, 1, late, |_| false);
        assert!(h.contacts.is_empty());
        assert_eq!(h.check, vec![cs[0]]);
        // Its answer makes it good again.
        t.mark_answered(&cs[0].id, late);
        assert_eq!(t.handout(&cs[0].id, 1, late, |_| false).contacts, vec![cs[0]]);
    }

    #[test]
    fn a_young_contact_is_rechecked_soon_an_old_one_rarely() {
        let (mut t, cs) = table(2);
        // cs[0] has answered for an hour, cs[1] for ten seconds.
        t.mark_answered(&cs[0].id, secs(0));
        t.mark_answered(&cs[0].id, secs(3600));
        t.mark_answered(&cs[1].id, secs(3590));
        t.mark_answered(&cs[1].id, secs(3600));
        let h = t.handout(&cs[0].id, 2, secs(3604), |_| false);
        assert_eq!(h.contacts.len(), 2, "both still good");
        assert_eq!(h.check, vec![cs[1]], "only the young one is due a check after 4 s");
        let h = t.handout(&cs[0].id, 2, secs(3600) + RECHECK_MAX, |_| false);
        assert!(h.check.contains(&cs[0]));
    }

    #[test]
    fn requests_keep_a_verified_contact_fresh_but_never_verify_one() {
        let (mut t, cs) = table(2);
        t.mark_answered(&cs[0].id, secs(0));
        t.note_request(&cs[0].id, secs(3000));
        t.note_request(&cs[1].id, secs(3000));
        let h = t.handout(&cs[0].id, 2, secs(3001), |_| false);
        assert_eq!(h.contacts, vec![cs[0]], "its request counts; the never-verified one stays out");
        assert_eq!(h.check, vec![cs[1]]);
    }

    #[test]
    fn a_failing_or_moved_contact_is_not_handed_out() {
        let (mut t, cs) = table(2);
        t.mark_answered(&cs[0].id, secs(0));
        t.mark_answered(&cs[1].id, secs(0));
        t.record_failure(&cs[0].id, 3);
        // cs[1] failed and is then heard from another address: its old
        // answer no longer counts (while it answers, a new address is ignored).
        t.record_failure(&cs[1].id, 3);
        t.insert(Contact::new(cs[1].id, ([127, 0, 0, 2], 1).into()), secs(1));
        assert!(!t.is_verified(&cs[1].id));
        let h = t.handout(&cs[0].id, 2, secs(1), |_| false);
        assert!(h.contacts.is_empty());
        assert_eq!(h.check.iter().map(|c| c.id).collect::<Vec<_>>(), vec![cs[1].id]);
    }
}
