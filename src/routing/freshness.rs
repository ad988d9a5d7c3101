//! Which contacts we hand to other nodes, and when we check one first.
//!
//! A stock Python peer waits a fixed 5 s on every contact that does not
//! answer, so every unreachable address we put in a `find_node` reply costs
//! each of its lookups 5 s. Hearing a request from an address proves nothing
//! about whether it can be reached (a short-lived script, a client behind
//! NAT, a node that has just left), and one answer proves it could be reached
//! then, not that it stays. Every asker gets only **good** contacts (BEP 5):
//! one that answered one of our own queries within [`GOOD_FOR`] (or, having
//! answered once from its address, sent us a request from it within that
//! time), and has neither timed out nor stalled since.
//!
//! A stock peer, or an asker not known to be one of ours ([`Asker::Other`]),
//! gets a good contact only when it is also
//! - **confirmed**: no check of it is pending. libtorrent hands out only
//!   `confirmed()` nodes, those whose last query was answered; we count a
//!   check in flight as not answered yet. A contact we decided to check is
//!   left out until it answers, so a stopped one is not handed out again
//!   (its check times out and counts a failure), instead of for the 5 s its
//!   check takes to time out;
//! - **settled**: it answered us at two moments at least [`SETTLE`] apart. A
//!   short-lived client (a `dhtctl` run, a script asking one node) answers
//!   the check its first request triggers and is gone a moment later; until
//!   it has answered again a while later it stays out. When fewer than k of
//!   the 2k closest candidates are settled, farther settled contacts fill
//!   the reply; only while the whole table knows fewer than k settled
//!   contacts (a network that has just started, or a node that has just
//!   joined, where every contact is young) do confirmed young ones fill it,
//!   closest first, after the settled ones: a short reply would send the
//!   asker's stores to nodes that are not the closest, and its later gets
//!   would miss them. Past that, a settled node farther away is the better
//!   guess: a young one may be a client that has just left (in
//!   `tests/churn_clients.rs`, with k = 4, young fills let clients into
//!   stock peers' tables, and gets then waited 5 s on them or missed), while
//!   a record stored a little off the closest reaches them with the next
//!   hourly replication (`replicate_interval`) or the publisher's republish.
//!
//! Our own nodes ([`Asker::Ours`]) get every good contact, young or being
//! checked: a dead one costs their lookup one stall (`lookup_stall`, at most
//! 1 s) before it moves on, while leaving out a live one can hide one of the
//! k closest nodes from a put (in `engine::tests::put_reuse`, where every
//! node re-checks the same contact at once, a put then missed a holder that
//! kept the old value), and when a network has just started every contact is
//! young.
//!
//! A contact is checked with a base `ping` (every peer answers it) when it
//! would be handed out and:
//! - it never answered, or a check of it is pending: at most every
//!   [`UNVERIFIED_RECHECK`] (a new requester is checked as soon as it is
//!   first seen, unless the engine keeps it unchecked until now,
//!   `Engine::check_later`, and then checks it with its hello; a check
//!   resolves within the RPC timeout, so this only repeats a lost one);
//! - it is young and the asker is not one of ours: once [`SETTLE`] has
//!   passed since its first answer, so the answer settles it (a node that
//!   answers such askers also sends this check on its own, on time, so
//!   that hand-outs rarely have to: `engine::settle`);
//! - [`recheck_gap`] has passed since it was last heard from. The gap grows
//!   with how long the contact has been answering (Kademlia §2.2: the longer
//!   a node has been up, the likelier it stays up): a quarter of that time,
//!   1 s to 10 min. A long-lived node heard from lately is handed out without
//!   any ping.
//!
//! Checks before a hand-out to one of ours are budgeted per node,
//! [`FRESHNESS_CHECKS_PER_SEC`]; a contact due one beyond the budget is
//! treated as not due: one that answered is handed out all the same, one
//! that never answered stays out (unchecked, it is never handed out, so the
//! budget lets no forged address through; it only waits for a later
//! hand-out's check). Checks before a hand-out to a stock or unknown asker
//! are not budgeted: such an asker waits 5 s on a contact that has left, and
//! an unbudgeted check keeps the contact out of its reply until it answers
//! again (a budget there let young contacts that had left fill stock peers'
//! replies unchecked).
//!
//! Cost (simulator, 500 nodes, one hour, seed 1, before / after the
//! confirmed and settled rules): bandwidth per worker-hour p50 1215 / 1213 kB
//! in `steady`, 1312 / 1302 kB in `crash30`, datagrams to dead addresses in
//! `crash30` 27,681 / 27,837: a network of our nodes alone behaves as before.
//! In a mixed network (`tests/churn_clients.rs`) stock peers' gets stay in
//! milliseconds while short-lived clients come and go.

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
/// A contact that never answered, or whose check is pending, is asked again
/// at most this often (its check may have been lost; a failed check already
/// asks again itself).
pub const UNVERIFIED_RECHECK: Duration = Duration::from_secs(5);
/// A contact is settled once two of its answers are at least this far
/// apart; until then only our own nodes are given it. Longer than a
/// one-shot client lives on loopback or a LAN (bootstrap, one operation).
pub const SETTLE: Duration = Duration::from_secs(2);

/// Most checks a node sends per second for hand-outs to its own nodes
/// ([`Asker::Ours`]), with [`FRESHNESS_CHECK_BURST`] at once. A young
/// network makes every contact young, so every hand-out found some due: in
/// `versus` (1,000 nodes, all joined seconds earlier) they were ~22 pings
/// per lookup against ~11.5 lookup requests. A contact that answered and is
/// due a check over the budget is handed out as if it were not due (it
/// answered within [`GOOD_FOR`]; BEP 5 asks no more; our nodes give up on a
/// dead one after one lookup stall); one that never answered stays out
/// until a later hand-out can afford its check (a requester the engine
/// checks only when needed, `Engine::check_later`, is checked there).
/// Checks before a hand-out to an [`Asker::Other`] are not counted.
pub const FRESHNESS_CHECKS_PER_SEC: u64 = 2;
/// See [`FRESHNESS_CHECKS_PER_SEC`]: one second's worth (it was 10). In
/// `versus` each node spent a burst of 10 in the half second its gets take.
pub const FRESHNESS_CHECK_BURST: u64 = 2;

/// A token bucket of [`FRESHNESS_CHECKS_PER_SEC`] (tokens in thousandths).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CheckBudget {
    milli_tokens: u64,
    at: Time,
}

impl CheckBudget {
    /// Full at `now`.
    pub(crate) fn new(now: Time) -> Self {
        CheckBudget { milli_tokens: FRESHNESS_CHECK_BURST * 1000, at: now }
    }

    /// Takes one check's token at `now`, if there is one.
    pub(crate) fn take(&mut self, now: Time) -> bool {
        let elapsed = u64::try_from(now.saturating_since(self.at).as_millis()).unwrap_or(u64::MAX);
        let refill = elapsed.saturating_mul(FRESHNESS_CHECKS_PER_SEC);
        self.milli_tokens = self.milli_tokens.saturating_add(refill).min(FRESHNESS_CHECK_BURST * 1000);
        self.at = self.at.max(now);
        let ok = self.milli_tokens >= 1000;
        if ok {
            self.milli_tokens -= 1000;
        }
        ok
    }
}

/// Who asks for contacts: decides whether a contact that is not settled
/// yet may be in the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asker {
    /// One of our nodes (it answered `kadmesh_hello`): it gives up on a dead
    /// contact after one lookup stall.
    Ours,
    /// A stock peer, or a node not known to be ours yet: it may wait a fixed
    /// 5 s on each dead contact.
    Other,
}

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

    /// We sent it a check and have not had an answer from it since.
    pub(crate) fn check_pending(&self) -> bool {
        self.checked.is_some_and(|c| self.answered.is_none_or(|a| a.replied < c))
    }

    /// Two of its answers are at least [`SETTLE`] apart.
    pub(crate) fn settled(&self) -> bool {
        self.answered.is_some_and(|a| a.replied.saturating_since(a.first) >= SETTLE)
    }

    /// Confirmed and good, though not settled: may fill a reply to a stock
    /// or unknown asker that settled contacts cannot fill.
    pub(crate) fn may_fill(&self, now: Time) -> bool {
        self.is_good(now) && !self.check_pending()
    }

    /// May it be put in a reply to `asker` now (see the module doc)?
    pub(crate) fn may_hand_out(&self, now: Time, asker: Asker) -> bool {
        match asker {
            Asker::Ours => self.is_good(now),
            Asker::Other => self.is_good(now) && !self.check_pending() && self.settled(),
        }
    }

    /// Has it answered us, with no check pending? A check due then is a
    /// freshness check, counted against [`FRESHNESS_CHECKS_PER_SEC`].
    pub(crate) fn confirmed(&self) -> bool {
        self.answered.is_some() && !self.check_pending()
    }

    /// Should we ping it before (or, for our own nodes, while) handing it to
    /// `asker`? Failing contacts are left out: a check of those is already
    /// under way. The settling check is made only for an [`Asker::Other`],
    /// the only asker a young contact is kept from.
    pub(crate) fn check_due(&self, now: Time, asker: Asker) -> bool {
        if !self.answering() {
            return false;
        }
        let since_check = |gap: Duration| self.checked.is_none_or(|c| now.saturating_since(c) >= gap);
        let Some(a) = self.answered.filter(|_| !self.check_pending()) else {
            return since_check(UNVERIFIED_RECHECK);
        };
        // Checked once SETTLE has passed, the answer settles it.
        let settle = asker == Asker::Other && !self.settled() && now.saturating_since(a.first) >= SETTLE;
        let gap = recheck_gap(a.first, now);
        settle || now.saturating_since(a.last) >= gap && since_check(gap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contact::Contact;
    use crate::id::NodeId;
    use crate::routing::{Handout, RoutingTable};

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

    /// `c` answers one of our queries at each of `times`.
    fn answers(t: &mut RoutingTable, c: &Contact, times: &[Time]) {
        for &at in times {
            t.mark_answered(&c.id, at);
        }
    }

    #[test]
    fn recheck_gap_grows_with_time_answering_within_bounds() {
        assert_eq!(recheck_gap(secs(100), secs(100)), RECHECK_MIN);
        assert_eq!(recheck_gap(secs(0), secs(40)), Duration::from_secs(10));
        assert_eq!(recheck_gap(secs(0), secs(10 * 3600)), RECHECK_MAX);
    }

    #[test]
    fn only_contacts_that_answered_us_are_handed_out_and_the_others_are_checked_once() {
        // Two unverified: within the check budget of our nodes' hand-outs.
        let (mut t, cs) = table(3);
        assert!(t.mark_answered(&cs[0].id, secs(1)));
        assert!(!t.mark_answered(&cs[0].id, secs(1)), "second answer is not a first verification");
        let target = cs[1].id;
        let h = t.handout(&target, 3, secs(1), Asker::Ours, |_| false);
        assert_eq!(h.contacts, vec![cs[0]]);
        assert_eq!(h.check.len(), 2);
        assert!(!h.check.contains(&cs[0]));
        // Checks are noted: asking again at once sends none.
        assert!(t.handout(&target, 3, Time::from_millis(1500), Asker::Ours, |_| false).check.is_empty());
        // Unanswered checks are repeated after UNVERIFIED_RECHECK.
        let again = t.handout(&target, 3, secs(1) + UNVERIFIED_RECHECK, Asker::Ours, |_| false).check;
        assert!(cs[1..].iter().all(|c| again.contains(c)));
    }

    #[test]
    fn a_contact_silent_for_longer_than_good_for_is_left_out_and_checked() {
        let (mut t, cs) = table(1);
        answers(&mut t, &cs[0], &[secs(0), secs(10)]);
        let late = secs(10) + GOOD_FOR + Duration::from_secs(1);
        let h = t.handout(&cs[0].id, 1, late, Asker::Other, |_| false);
        assert!(h.contacts.is_empty());
        assert_eq!(h.check, vec![cs[0]]);
        // Its answer makes it good again.
        t.mark_answered(&cs[0].id, late);
        assert_eq!(t.handout(&cs[0].id, 1, late, Asker::Other, |_| false).contacts, vec![cs[0]]);
    }

    #[test]
    fn a_stopped_client_is_never_handed_out_once_its_check_is_pending() {
        let (mut t, cs) = table(1);
        // A client that answered for ten seconds, then stopped at 10 s.
        answers(&mut t, &cs[0], &[secs(0), secs(10)]);
        let first = t.handout(&cs[0].id, 1, secs(10), Asker::Other, |_| false);
        assert_eq!(first.contacts, vec![cs[0]], "handed out while it answered lately");
        assert!(first.check.is_empty());
        // Past its re-check gap the next hand-out checks it and leaves it out ...
        let checked = secs(14);
        let h = t.handout(&cs[0].id, 1, checked, Asker::Other, |_| false);
        assert_eq!(h.check, vec![cs[0]]);
        assert!(h.contacts.is_empty(), "handed out while its check is pending");
        // ... all through the check's timeout, without a second check.
        for ms in [14_001, 15_000, 18_999] {
            let h = t.handout(&cs[0].id, 1, Time::from_millis(ms), Asker::Other, |_| false);
            assert!(h.contacts.is_empty() && h.check.is_empty(), "at {ms} ms: {h:?}");
        }
        // Our own nodes still get it meanwhile (a dead one costs them one stall).
        assert_eq!(t.handout(&cs[0].id, 1, secs(15), Asker::Ours, |_| false).contacts, vec![cs[0]]);
        // A request from it proves nothing about the check.
        t.note_request(&cs[0], Time::from_millis(15_000));
        assert!(t.handout(&cs[0].id, 1, Time::from_millis(15_500), Asker::Other, |_| false).contacts.is_empty());
        // The check timed out: one strike, and left out for everyone (not checked
        // again here: the engine re-checks a failed contact itself).
        t.record_failure(&cs[0].id, 3);
        for asker in [Asker::Ours, Asker::Other] {
            assert_eq!(t.handout(&cs[0].id, 1, secs(19), asker, |_| false), Handout::default());
        }
    }

    #[test]
    fn a_checked_contact_that_answers_is_handed_out_again() {
        let (mut t, cs) = table(1);
        answers(&mut t, &cs[0], &[secs(0), secs(10)]);
        assert_eq!(t.handout(&cs[0].id, 1, secs(14), Asker::Other, |_| false).check, vec![cs[0]]);
        t.mark_answered(&cs[0].id, Time::from_millis(14_040));
        let h = t.handout(&cs[0].id, 1, Time::from_millis(14_050), Asker::Other, |_| false);
        assert_eq!(h.contacts, vec![cs[0]]);
        assert!(h.check.is_empty());
    }

    #[test]
    fn a_verified_long_lived_peer_is_handed_out_without_an_extra_ping() {
        let (mut t, cs) = table(1);
        // Answering for an hour; asked about lately by a lookup of ours.
        answers(&mut t, &cs[0], &[secs(0), secs(1800), secs(3600)]);
        for at in [secs(3600), secs(3700), secs(3600) + RECHECK_MAX - Duration::from_secs(1)] {
            for asker in [Asker::Ours, Asker::Other] {
                let h = t.handout(&cs[0].id, 1, at, asker, |_| false);
                assert_eq!(h.contacts, vec![cs[0]], "at {at:?} to {asker:?}");
                assert!(h.check.is_empty(), "pinged at {at:?}");
            }
        }
        // Its requests keep it from being due, too.
        t.note_request(&cs[0], secs(3600) + RECHECK_MAX);
        let h = t.handout(&cs[0].id, 1, secs(3601) + RECHECK_MAX, Asker::Other, |_| false);
        assert_eq!((h.contacts, h.check), (vec![cs[0]], vec![]));
    }

    /// cs[1] has answered since 0 s, lately at 90 s: settled, and not due a
    /// check before 110 s.
    fn settled_neighbour(t: &mut RoutingTable, cs: &[Contact]) {
        answers(t, &cs[1], &[secs(0), secs(90)]);
    }

    #[test]
    fn a_young_contact_goes_to_our_nodes_and_to_others_only_once_settled() {
        let (mut t, cs) = table(2);
        settled_neighbour(&mut t, &cs);
        // cs[0] answered the check its first request triggered at 100 s.
        answers(&mut t, &cs[0], &[secs(100)]);
        let (young, old) = (vec![cs[0]], vec![cs[1]]);
        let early = Time::from_millis(100_200);
        let h = t.handout(&cs[0].id, 1, early, Asker::Other, |_| false);
        assert_eq!((h.contacts, h.check), (old.clone(), vec![]), "the settled one, though farther");
        assert_eq!(t.handout(&cs[0].id, 1, early, Asker::Ours, |_| false).contacts, young);
        // Re-checked a second after its answer; answering it is not enough yet.
        let h = t.handout(&cs[0].id, 1, Time::from_millis(101_500), Asker::Other, |_| false);
        assert_eq!((h.contacts, h.check), (old.clone(), young.clone()));
        t.mark_answered(&cs[0].id, Time::from_millis(101_550));
        assert_eq!(t.handout(&cs[0].id, 1, Time::from_millis(101_600), Asker::Other, |_| false).contacts, old);
        // Once SETTLE has passed since its first answer it is checked again;
        // our own nodes get it meanwhile.
        let due = secs(100) + SETTLE;
        let h = t.handout(&cs[0].id, 1, due, Asker::Other, |_| false);
        assert_eq!((h.contacts, h.check), (old, young.clone()));
        assert_eq!(t.handout(&cs[0].id, 1, due, Asker::Ours, |_| false).contacts, young);
        // A node that stayed answers it and is settled: now anyone gets it.
        t.mark_answered(&cs[0].id, due + Duration::from_millis(30));
        let h = t.handout(&cs[0].id, 1, due + Duration::from_millis(40), Asker::Other, |_| false);
        assert_eq!((h.contacts, h.check), (young, vec![]));
    }

    #[test]
    fn two_answers_close_together_do_not_settle_a_contact() {
        let (mut t, cs) = table(2);
        settled_neighbour(&mut t, &cs);
        answers(&mut t, &cs[0], &[secs(100), Time::from_millis(100_100), Time::from_millis(101_900)]);
        let h = t.handout(&cs[0].id, 1, Time::from_millis(101_950), Asker::Other, |_| false);
        assert_eq!(h.contacts, vec![cs[1]]);
        t.mark_answered(&cs[0].id, secs(102));
        assert_eq!(t.handout(&cs[0].id, 1, secs(102), Asker::Other, |_| false).contacts, vec![cs[0]]);
    }

    #[test]
    fn young_contacts_fill_a_reply_to_a_stock_peer_only_after_the_settled_ones_in_a_young_table() {
        let (mut t, cs) = table(4);
        settled_neighbour(&mut t, &cs);
        // cs[0] and cs[2] young and confirmed, cs[3] never answered.
        answers(&mut t, &cs[0], &[secs(100)]);
        answers(&mut t, &cs[2], &[secs(100)]);
        let now = Time::from_millis(100_100);
        let h = t.handout(&cs[0].id, 2, now, Asker::Other, |_| false);
        assert_eq!(h.contacts, vec![cs[1], cs[0]], "the settled one first, then the closest young one");
        assert_eq!(t.handout(&cs[0].id, 3, now, Asker::Other, |_| false).contacts, vec![cs[1], cs[0], cs[2]]);
        // For n = 1 the table knows n settled contacts: the settled one goes
        // out though it is outside the 2n closest (cs[0] and cs[2]).
        assert_eq!(t.handout(&cs[0].id, 1, now, Asker::Other, |_| false).contacts, vec![cs[1]]);
        // A young one whose check is pending does not fill anything.
        let h = t.handout(&cs[0].id, 2, Time::from_millis(101_500), Asker::Other, |_| false);
        assert_eq!(h.check, vec![cs[0], cs[2]], "cs[3]'s check went out at 100.1 s");
        assert_eq!(h.contacts, vec![cs[1]]);
    }

    #[test]
    fn once_the_table_knows_k_settled_contacts_a_stock_peer_gets_no_young_one() {
        let (mut t, cs) = table(8);
        // cs[4..8] settled; cs[0..4], the closest to cs[0], young: one of
        // them is a client that answered a moment ago and may have left.
        for c in &cs[4..] {
            answers(&mut t, c, &[secs(0), secs(90)]);
        }
        for c in &cs[..4] {
            answers(&mut t, c, &[secs(100)]);
        }
        let now = Time::from_millis(100_100);
        let h = t.handout(&cs[0].id, 2, now, Asker::Other, |_| false);
        // By distance to cs[0]: cs[2], cs[1], cs[4], cs[3], cs[6], cs[5], cs[7].
        assert_eq!(h.contacts, vec![cs[4], cs[6]], "the closest settled ones, one beyond the 4 closest");
        assert!(h.check.is_empty());
        // Our own nodes get the closest, young or not.
        assert_eq!(t.handout(&cs[0].id, 2, now, Asker::Ours, |_| false).contacts, vec![cs[0], cs[2]]);
        // With one settled contact left, k = 2 is not reached: young ones fill.
        for c in &cs[5..] {
            t.record_failure(&c.id, 3);
        }
        assert_eq!(t.handout(&cs[0].id, 2, now, Asker::Other, |_| false).contacts, vec![cs[4], cs[0]]);
    }

    #[test]
    fn a_young_contact_is_rechecked_soon_an_old_one_rarely() {
        let (mut t, cs) = table(2);
        // cs[0] has answered for an hour, cs[1] for ten seconds.
        answers(&mut t, &cs[0], &[secs(0), secs(3600)]);
        answers(&mut t, &cs[1], &[secs(3590), secs(3600)]);
        let h = t.handout(&cs[0].id, 2, secs(3604), Asker::Other, |_| false);
        assert_eq!(h.check, vec![cs[1]], "only the young one is due a check after 4 s");
        assert_eq!(h.contacts, vec![cs[0]], "and it is left out until it answers");
        let h = t.handout(&cs[0].id, 2, secs(3600) + RECHECK_MAX, Asker::Other, |_| false);
        assert!(h.check.contains(&cs[0]));
    }

    #[test]
    fn requests_keep_a_verified_contact_fresh_but_never_verify_one() {
        let (mut t, cs) = table(2);
        answers(&mut t, &cs[0], &[secs(0), secs(10)]);
        t.note_request(&cs[0], secs(3000));
        t.note_request(&cs[1], secs(3000));
        let h = t.handout(&cs[0].id, 2, secs(3001), Asker::Other, |_| false);
        assert_eq!(h.contacts, vec![cs[0]], "its request counts; the never-verified one stays out");
        assert_eq!(h.check, vec![cs[1]]);
    }

    #[test]
    fn a_request_naming_a_contact_from_another_address_does_not_keep_it_good() {
        let (mut t, cs) = table(1);
        answers(&mut t, &cs[0], &[secs(0), secs(10)]);
        let forged = Contact::new(cs[0].id, ([10, 0, 0, 9], 1).into());
        t.note_request(&forged, secs(10) + GOOD_FOR);
        assert!(!t.is_good(&cs[0].id, secs(11) + GOOD_FOR));
        t.note_request(&cs[0], secs(10) + GOOD_FOR);
        assert!(t.is_good(&cs[0].id, secs(11) + GOOD_FOR));
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
        let h = t.handout(&cs[0].id, 2, secs(1), Asker::Ours, |_| false);
        assert!(h.contacts.is_empty());
        assert_eq!(h.check.iter().map(|c| c.id).collect::<Vec<_>>(), vec![cs[1].id]);
    }

    #[test]
    fn freshness_checks_beyond_the_budget_are_not_sent_and_the_contacts_still_handed_out() {
        let (mut t, cs) = table(25);
        for c in &cs {
            answers(&mut t, c, &[secs(0), secs(10)]);
        }
        // At 14 s every contact is past its re-check gap (a quarter of 14 s).
        let now = secs(14);
        let h = t.handout(&cs[0].id, 25, now, Asker::Ours, |_| false);
        assert_eq!(h.check.len() as u64, FRESHNESS_CHECK_BURST);
        assert_eq!(h.contacts.len(), 25, "our nodes get every good contact, checked or not");
        // Half a second later the budget allows one more, a second later two.
        let h = t.handout(&cs[0].id, 25, now + Duration::from_millis(500), Asker::Ours, |_| false);
        assert_eq!(h.check.len(), 1);
        let h = t.handout(&cs[0].id, 25, now + Duration::from_millis(1500), Asker::Ours, |_| false);
        assert_eq!(h.check.len() as u64, FRESHNESS_CHECKS_PER_SEC);
    }

    #[test]
    fn checks_before_a_hand_out_to_a_stock_peer_are_not_budgeted() {
        let (mut t, cs) = table(25);
        // Settled contacts past their re-check gap, and young ones that
        // answered once, 1.5 s ago, and may have left since.
        for c in &cs[..12] {
            answers(&mut t, c, &[secs(0), secs(10)]);
        }
        for c in &cs[12..] {
            answers(&mut t, c, &[Time::from_millis(12_500)]);
        }
        let now = secs(14);
        let h = t.handout(&cs[0].id, 20, now, Asker::Other, |_| false);
        assert_eq!(h.check.len(), 25, "every due contact is checked");
        assert!(h.contacts.is_empty(), "handed out before their checks answered: {:?}", h.contacts);
        assert_eq!(t.check_budget.milli_tokens, FRESHNESS_CHECK_BURST * 1000, "the budget is untouched");
        // Our nodes still get every good one.
        assert_eq!(t.handout(&cs[0].id, 20, now, Asker::Ours, |_| false).contacts.len(), 20);
    }

    #[test]
    fn checks_of_contacts_that_never_answered_are_budgeted_for_our_nodes_only() {
        let (mut t, cs) = table(25);
        let h = t.handout(&cs[0].id, 25, secs(1), Asker::Ours, |_| false);
        assert_eq!(h.check.len() as u64, FRESHNESS_CHECK_BURST);
        assert!(h.contacts.is_empty(), "never handed out unchecked: {:?}", h.contacts);
        // A stock asker's hand-out checks every one not checked yet.
        let h = t.handout(&cs[0].id, 25, secs(1), Asker::Other, |_| false);
        assert_eq!(h.check.len() as u64, 25 - FRESHNESS_CHECK_BURST);
        assert!(h.contacts.is_empty());
    }
}
