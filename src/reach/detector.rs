//! One node's reachability detection as a state machine: rounds of
//! dial-back requests, the evidence each round gathers, and the verdict.
//!
//! A round asks a few peers (helpers) to have a probe sent to our observed
//! address by a third node, one we may never have talked to. The engine
//! feeds in the helpers' answers, their silence and the probes that arrive;
//! the detector decides:
//!
//! - a probe from an address we did not send to within the NAT window
//!   arrives: **public** (proven), at once;
//! - no probe arrived from an address we had not sent to lately, and of the
//!   probes the helpers say were sent, at least two are missing, or at least
//!   one is and none arrived at all: **nat** (a probe from an address we
//!   sent to lately passes a NAT, so it proves nothing either way; one
//!   probe lost beside others that arrived is more likely loss than NAT);
//! - no helper answered and no other reply arrived during the round:
//!   **no-udp**;
//! - otherwise (helpers could not find a third node, or every probe came
//!   from an address we had talked to) nothing was learned: a node that has
//!   no verdict yet is taken for public (*assumed*: in a network of one or
//!   two nodes nobody can check), one that has keeps it.
//!
//! Promotion from nat needs a proof; demotion from public needs a round in
//! which probes were sent and none arrived. Rounds repeat every `interval`.

use std::net::SocketAddr;

use super::{ReachConfig, Reachability, Verdict};
use crate::time::Time;

/// Bytes of a round's nonce.
pub const NONCE_LEN: usize = 8;

/// The evidence of the round in progress.
#[derive(Clone, Debug)]
struct Round {
    nonce: [u8; NONCE_LEN],
    asked: usize,
    /// Helpers that answered, and those of them that had a probe sent.
    answered: usize,
    probed: usize,
    silent: usize,
    /// Probes with our nonce that came from an address we had sent to.
    recent_probes: usize,
    /// Any reply to any of our requests since the round began.
    any_reply: bool,
    observed: Option<SocketAddr>,
    deadline: Time,
}

impl Round {
    /// Probes helpers said were sent that did not arrive.
    fn missing(&self) -> usize {
        self.probed.saturating_sub(self.recent_probes)
    }
}

/// A verdict that changed, for the engine to act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    /// Before.
    pub from: Reachability,
    /// After.
    pub to: Reachability,
}

/// Detection state: the verdict, the round in progress, the next round.
#[derive(Clone, Debug)]
pub struct Detector {
    verdict: Verdict,
    round: Option<Round>,
    next_round: Option<Time>,
}

impl Detector {
    /// No verdict; the first round is due at `first` (`None`: never, for a
    /// node that does not detect).
    pub fn new(now: Time, first: Option<Time>) -> Self {
        Detector { verdict: Verdict::unknown(now), round: None, next_round: first }
    }

    /// The current verdict.
    pub fn verdict(&self) -> &Verdict {
        &self.verdict
    }

    /// Sets the verdict without a round, for good (a node that knows it
    /// has no UDP socket at all); no round is scheduled.
    pub fn declare(&mut self, now: Time, state: Reachability, reason: String) {
        self.round = None;
        self.next_round = None;
        self.verdict = Verdict { state, reason, observed: None, at: now, assumed: false };
    }

    /// Brings the next round forward to `at` (after bootstrap).
    pub fn schedule(&mut self, at: Time) {
        if self.next_round.is_some() && self.round.is_none() {
            self.next_round = Some(at);
        }
    }

    /// Whether a round should start now.
    pub fn due(&self, now: Time) -> bool {
        self.round.is_none() && self.next_round.is_some_and(|t| t <= now)
    }

    /// When the engine must next call [`Detector::tick`].
    pub fn next_deadline(&self) -> Option<Time> {
        self.round.as_ref().map(|r| r.deadline).or(self.next_round)
    }

    /// The nonce of the round in progress.
    pub fn nonce(&self) -> Option<[u8; NONCE_LEN]> {
        self.round.as_ref().map(|r| r.nonce)
    }

    /// A round began at `now` asking `asked` helpers, ending by `deadline`;
    /// with nobody to ask it ends at once and the next is tried after
    /// `cfg.alone_retry`.
    pub fn begin(&mut self, now: Time, nonce: [u8; NONCE_LEN], asked: usize, deadline: Time, cfg: &ReachConfig) {
        if asked == 0 {
            self.next_round = Some(now + cfg.alone_retry);
            return;
        }
        self.round = Some(Round {
            nonce,
            asked,
            answered: 0,
            probed: 0,
            silent: 0,
            recent_probes: 0,
            any_reply: false,
            observed: None,
            deadline,
        });
    }

    /// A helper answered: `probed` if its third node sent the probe;
    /// `observed` is our address as it saw it.
    pub fn on_answer(&mut self, now: Time, probed: bool, observed: Option<SocketAddr>, cfg: &ReachConfig) {
        let Some(r) = self.round.as_mut() else {
            // A fresh probe can end the round before the helpers' answers
            // arrive; what they saw of our address is still worth keeping.
            self.verdict.observed = observed.or(self.verdict.observed);
            return;
        };
        r.answered += 1;
        r.probed += usize::from(probed);
        r.observed = observed.or(r.observed);
        Self::wind_down(r, now, cfg);
    }

    /// A helper did not answer.
    pub fn on_silence(&mut self, now: Time, cfg: &ReachConfig) {
        let Some(r) = self.round.as_mut() else { return };
        r.silent += 1;
        Self::wind_down(r, now, cfg);
    }

    /// Once every helper is accounted for, probes in flight get `grace`.
    fn wind_down(r: &mut Round, now: Time, cfg: &ReachConfig) {
        if r.answered + r.silent >= r.asked {
            r.deadline = r.deadline.min(now + cfg.grace);
        }
    }

    /// Some reply to one of our requests arrived (UDP works both ways).
    pub fn note_reply(&mut self) {
        if let Some(r) = self.round.as_mut() {
            r.any_reply = true;
        }
    }

    /// A probe carrying `nonce` arrived; `recent` if we sent to its source
    /// within the NAT window (or cannot rule it out). A fresh one proves we
    /// are reachable and ends the round.
    pub fn on_probe(&mut self, now: Time, nonce: &[u8], recent: bool, cfg: &ReachConfig) -> Option<Change> {
        let r = self.round.as_mut().filter(|r| r.nonce[..] == *nonce)?;
        if recent {
            r.recent_probes += 1;
            return None;
        }
        let observed = r.observed;
        let reason = "a probe from an address we never sent to arrived".to_string();
        self.finish(now, Reachability::Public, reason, observed, false, cfg)
    }

    /// Ends the round whose deadline has passed and weighs its evidence.
    pub fn tick(&mut self, now: Time, cfg: &ReachConfig) -> Option<Change> {
        let r = self.round.as_ref().filter(|r| r.deadline <= now)?.clone();
        tracing::info!(
            asked = r.asked,
            answered = r.answered,
            silent = r.silent,
            probed = r.probed,
            arrived_from_recent = r.recent_probes,
            any_reply = r.any_reply,
            "reachability round ended"
        );
        let (state, reason, assumed) = if r.silent == r.asked && !r.any_reply {
            (Reachability::NoUdp, format!("none of {} peers asked answered, nor anyone else", r.asked), false)
        } else if r.missing() >= 2 || (r.missing() >= 1 && r.recent_probes == 0) {
            let missing = r.missing();
            let reason = format!("{missing} peers sent probes from addresses we never talked to; none arrived");
            (Reachability::Nat, reason, false)
        } else if self.verdict.state == Reachability::Unknown {
            let reason = "no peer could send a probe from an address we never talked to; assumed reachable";
            (Reachability::Public, reason.to_string(), true)
        } else {
            self.round = None;
            let again = if self.verdict.assumed { cfg.retry } else { cfg.interval };
            self.next_round = Some(now + again);
            return None;
        };
        self.finish(now, state, reason, r.observed, assumed, cfg)
    }

    fn finish(
        &mut self,
        now: Time,
        state: Reachability,
        reason: String,
        observed: Option<SocketAddr>,
        assumed: bool,
        cfg: &ReachConfig,
    ) -> Option<Change> {
        self.round = None;
        // An assumption is checked again soon; a proof holds for `interval`.
        self.next_round = Some(now + if assumed { cfg.retry } else { cfg.interval });
        let from = self.verdict.state;
        self.verdict = Verdict { state, reason, observed: observed.or(self.verdict.observed), at: now, assumed };
        (from != state).then_some(Change { from, to: state })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONCE: [u8; NONCE_LEN] = [7; NONCE_LEN];

    fn started(asked: usize) -> (Detector, ReachConfig) {
        let cfg = ReachConfig::default();
        let mut d = Detector::new(Time::ZERO, Some(Time::ZERO));
        assert!(d.due(Time::ZERO));
        d.begin(Time::ZERO, NONCE, asked, Time::from_secs(10), &cfg);
        (d, cfg)
    }

    #[test]
    fn a_fresh_probe_proves_public_at_once() {
        let (mut d, cfg) = started(3);
        assert_eq!(d.on_probe(Time::from_secs(1), &[1; NONCE_LEN], false, &cfg), None, "wrong nonce");
        let change = d.on_probe(Time::from_secs(1), &NONCE, false, &cfg);
        assert_eq!(change, Some(Change { from: Reachability::Unknown, to: Reachability::Public }));
        assert!(!d.verdict().assumed);
        assert_eq!(d.next_deadline(), Some(Time::from_secs(1) + cfg.interval));
    }

    #[test]
    fn probes_sent_but_none_arriving_is_nat_after_the_grace() {
        let (mut d, cfg) = started(2);
        d.note_reply();
        d.on_answer(Time::from_secs(1), true, None, &cfg);
        d.on_silence(Time::from_secs(2), &cfg);
        assert_eq!(d.tick(Time::from_secs(2), &cfg), None, "grace still running");
        let change = d.tick(Time::from_secs(2) + cfg.grace, &cfg);
        assert_eq!(change.map(|c| c.to), Some(Reachability::Nat));
    }

    #[test]
    fn a_probe_from_a_recent_address_proves_nothing() {
        let (mut d, cfg) = started(1);
        d.on_answer(Time::from_secs(1), true, None, &cfg);
        assert_eq!(d.on_probe(Time::from_secs(1), &NONCE, true, &cfg), None);
        let change = d.tick(Time::from_secs(10), &cfg);
        assert_eq!(change.map(|c| c.to), Some(Reachability::Public));
        assert!(d.verdict().assumed, "nothing proven: assumed");
    }

    #[test]
    fn total_silence_is_no_udp_and_nobody_to_ask_retries() {
        let (mut d, cfg) = started(3);
        for _ in 0..3 {
            d.on_silence(Time::from_secs(5), &cfg);
        }
        assert_eq!(d.tick(Time::from_secs(10), &cfg).map(|c| c.to), Some(Reachability::NoUdp));
        let mut e = Detector::new(Time::ZERO, Some(Time::ZERO));
        e.begin(Time::ZERO, NONCE, 0, Time::from_secs(10), &cfg);
        assert_eq!(e.verdict().state, Reachability::Unknown);
        assert_eq!(e.next_deadline(), Some(Time::ZERO + cfg.alone_retry));
    }

    #[test]
    fn an_inconclusive_round_keeps_a_verdict_it_has() {
        let (mut d, cfg) = started(1);
        d.on_answer(Time::from_secs(1), true, None, &cfg);
        assert_eq!(d.tick(Time::from_secs(10), &cfg).map(|c| c.to), Some(Reachability::Nat));
        let t = Time::from_secs(1000);
        d.begin(t, NONCE, 1, t + cfg.grace, &cfg);
        d.on_answer(t, false, None, &cfg);
        assert_eq!(d.tick(t + cfg.grace, &cfg), None);
        assert_eq!(d.verdict().state, Reachability::Nat, "promotion needs a proof");
    }
}
