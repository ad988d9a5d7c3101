//! What the node knows of other nodes beyond the routing table, and how it
//! keeps the table honest: learning a contact (table insert, the eviction
//! ping of a full bucket, the check ping of a new requester, handover to a
//! newly verified contact, the `kadmesh_hello` question), and checking a
//! contact that failed a request.
//!
//! All of it is node-wide: any reply, request or operation can teach us a
//! contact, so operations ask for contacts to be learned
//! ([`Cx::learn_answered`](super::op::Cx::learn_answered)) and the engine
//! does it here.

use crate::limits::LruMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::inbound::{hello_reply_id, HELLO};
use super::services::ReplyTo;
use super::Engine;
use crate::contact::Contact;
use crate::id::NodeId;
use crate::routing::InsertOutcome;
use crate::time::Time;
use crate::wire::{Call, Value};

/// How long a contact that did not answer `kadmesh_hello` is taken for a
/// stock peer before it is asked again.
pub const REPROBE_AFTER: Duration = Duration::from_secs(600);

/// How many times a contact that answers us is sent `kadmesh_hello` before
/// its silence makes it a stock peer (an address that never answered gets
/// one). With one try, a datagram lost either way (1-6 % each in the
/// simulator's wide-area model) took one of ours for a stock peer until
/// [`REPROBE_AFTER`]: no provider writes or reads went to it, and in
/// `simulations flash-crowd` a newcomer that lost its hellos to the three
/// nodes closest to its service key was missing from every discover that
/// read them.
pub const HELLO_TRIES: usize = 3;

/// How soon after a contact's unanswered hello its answered check ping
/// gets it asked again ([`Engine::hello_again_if_lost`]).
const HELLO_AGAIN_WITHIN: Duration = Duration::from_secs(10);

/// What a peer is known to speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerKind {
    /// Not asked yet, or the question is in flight.
    Unknown,
    /// Answers only the base RPCs (a stock Python peer, or an old node).
    Base,
    /// Answers our extension RPCs; the string is its version.
    Extended,
}

/// Which peers speak our extensions, and when each was last asked. Both
/// maps are LRU-bounded: the sender of any `kadmesh_hello` lands in the
/// first, so a stranger with fresh ids must not grow it.
#[derive(Debug)]
pub(super) struct Peers {
    kinds: LruMap<NodeId, PeerKind>,
    /// When each contact was last sent `kadmesh_hello`.
    pub(super) probed: LruMap<NodeId, Time>,
}

impl Peers {
    /// Remembers at most `max` peers in each map.
    pub(super) fn new(max: usize) -> Self {
        Peers { kinds: LruMap::new(max), probed: LruMap::new(max) }
    }

    /// Entries held: (kinds, probe times).
    pub(super) fn sizes(&self) -> (usize, usize) {
        (self.kinds.len(), self.probed.len())
    }

    /// What `id` is known to speak.
    pub(super) fn kind(&self, id: &NodeId) -> PeerKind {
        self.kinds.peek(id).copied().unwrap_or(PeerKind::Unknown)
    }

    /// Records what `id` speaks.
    pub(super) fn insert(&mut self, id: NodeId, kind: PeerKind) {
        self.kinds.insert(id, kind);
    }
}

impl Engine {
    /// A request came from `contact`: what [`learn_answered`](Self::learn_answered) does, except
    /// that a request proves nothing about whether the sender can be reached, so a newcomer is
    /// checked first (at once, or when needed: [`check_later`](Self::check_later)) and gets
    /// records only once it answers.
    /// A client's request (it carries the client mark) teaches nothing: a
    /// client is never inserted, so never handed out.
    pub(crate) fn learn(&mut self, now: Time, contact: Contact) {
        if self.inbound_client {
            return;
        }
        self.learn_contact(now, contact, false);
    }

    /// `contact` answered one of our queries: keep the routing table current, check a full
    /// bucket's oldest contact, and hand a newly verified contact the records it is now
    /// responsible for. Contacts parked in a replacement cache are not "new" (the Python
    /// package re-sends them everything each time).
    pub(crate) fn learn_answered(&mut self, now: Time, contact: Contact) {
        self.learn_contact(now, contact, true);
    }

    fn learn_contact(&mut self, now: Time, contact: Contact, answered: bool) {
        // A fresh id from a source that made too many is not learned at all:
        // no table slot, no check ping, no probe, no peer-map entry.
        if !self.admit_id(now, contact) {
            return;
        }
        let Some(contact) = self.reachable(contact) else { return };
        let outcome = self.svc.routing.insert(contact, now);
        if !answered {
            self.svc.routing.note_request(&contact, now);
        } else if self.svc.routing.mark_answered(&contact.id, now) {
            self.on_verified(now, contact);
        }
        // In the table unchecked: see `check_later`.
        let kept = matches!(outcome, InsertOutcome::Inserted | InsertOutcome::Updated);
        if !answered && kept && self.check_later(&contact) {
            return;
        }
        match outcome {
            InsertOutcome::Inserted if !answered => {
                // A request with the node mark comes from one of ours, so its
                // hello, when one goes out, is the check: its answer proves the
                // address as a ping's would, and a ping beside it doubled a
                // newcomer's datagrams (a fifth of all requests in `versus` at
                // 1,000 nodes). Anyone else (a stock peer never answers the
                // hello) is pinged at once, and asked the hello beside.
                let hello_checks = self.inbound_node && self.probe_if_due(now, contact);
                if !hello_checks {
                    self.send_check(now, contact);
                    self.probe_if_due(now, contact);
                }
                self.svc.routing.note_checked(&contact.id, now);
            }
            InsertOutcome::Inserted => {
                self.probe_if_due(now, contact);
            }
            InsertOutcome::Updated => {
                self.probe_if_due(now, contact);
            }
            InsertOutcome::Full { ping } => {
                let call = self.svc.ping();
                self.svc.send_request(now, ping.addr, call, ReplyTo::Eviction { peer: ping.id });
                self.prefer_nearer(now, contact, answered);
            }
            InsertOutcome::Pending => self.prefer_nearer(now, contact, answered),
            InsertOutcome::IsSelf => {}
        }
    }

    /// Whether a request from `contact`, which has not answered us yet, is
    /// checked only when it is needed (libtorrent keeps requesters it heard
    /// about unconfirmed the same way): it carries the node mark, and it is
    /// not among the 2k closest we know to our own id, so it is owed none of
    /// our records or provider sets (those go to newly verified contacts
    /// near their keys, and our keys are near us). Kept unverified, it is
    /// never handed out; the first hand-out it would be part of checks it
    /// ([`check_before_handout`](Self::check_before_handout)), as does a
    /// full bucket's eviction ping or a lookup of ours that asks it. Checked
    /// at once, every new pair of nodes cost a hello (2.6 per get in
    /// `versus` at 1,000 nodes, of 16 requests). A stock requester (no
    /// mark) is checked at once: a stock peer is only learnt of this way.
    fn check_later(&self, contact: &Contact) -> bool {
        let k = self.svc.config.k;
        self.inbound_node
            && !self.svc.routing.is_verified(&contact.id)
            && !self.svc.routing.would_be_among_closest(&contact.id, &self.svc.id, k.saturating_mul(2))
    }

    /// A contact due a check before it is handed out: one that never
    /// answered and was never asked `kadmesh_hello` (a requester
    /// [`check_later`](Self::check_later) kept) is asked the hello, whose
    /// answer checks it as a ping's would and tells its kind in the same
    /// round trip; its silence brings the ping (`hello_failed`). Any other,
    /// the base ping.
    pub(super) fn check_before_handout(&mut self, now: Time, contact: Contact) {
        let unproven = !self.svc.routing.is_verified(&contact.id);
        if !(unproven && self.probe_if_due(now, contact)) {
            self.send_check(now, contact);
        }
    }

    /// Asks a contact whether it speaks our extensions: once when first
    /// seen, and again after [`REPROBE_AFTER`] if it stayed silent, so one
    /// lost datagram does not brand one of ours a stock peer for good.
    /// True if a hello went out.
    pub(super) fn probe_if_due(&mut self, now: Time, contact: Contact) -> bool {
        // Checked on every datagram: the common case (one of ours) costs one lookup.
        let kind = self.peers.kind(&contact.id);
        // A node reached by its URL still says hello once to one of ours
        // whose kind it learnt otherwise (its nodes reply named it, §7.1b):
        // the hello is what announces the URL (§6.3).
        if kind == PeerKind::Extended
            && (self.svc.config.tunnel_url.is_none() || self.peers.probed.peek(&contact.id).is_some())
        {
            return false;
        }
        let due = match (kind, self.peers.probed.peek(&contact.id)) {
            (_, None) => true,
            (PeerKind::Base, Some(&at)) => now >= at + REPROBE_AFTER,
            (PeerKind::Unknown | PeerKind::Extended, Some(_)) => false,
        };
        if due {
            self.peers.probed.insert(contact.id, now);
            return self.send_hello(now, contact, 1);
        }
        false
    }

    fn send_hello(&mut self, now: Time, contact: Contact, tries: u8) -> bool {
        let call = Call::Other { name: HELLO.into(), args: self.hello_args() };
        self.svc.send_request(now, contact.addr, call, ReplyTo::Hello { peer: contact.id, addr: contact.addr, tries })
    }

    /// `peer` answered our hello at `from`: it speaks kadmesh. An answer
    /// naming `peer` is also the check the hello stood in for. One naming
    /// another node (someone else now holds that address) vouches for
    /// nothing: a failed check, as a ping's would be. One naming nobody
    /// (a node older than the `id` field) proves the kind only, so an
    /// unverified peer still gets its check ping.
    pub(super) fn on_hello_reply(&mut self, now: Time, peer: NodeId, from: SocketAddr, body: &Value) {
        match hello_reply_id(body) {
            Some(id) if id == peer => {
                let verified = self.svc.routing.is_verified(&peer);
                self.peers.insert(peer, PeerKind::Extended);
                self.learn_answered(now, Contact::new(peer, from));
                if verified {
                    // Verified before we knew it speaks the procedures: its
                    // provider handover waited for this answer.
                    self.hand_over_providers(now, Contact::new(peer, from));
                }
            }
            Some(_) => self.verify_failed(now, peer),
            None => {
                self.peers.insert(peer, PeerKind::Extended);
                if self.svc.routing.is_verified(&peer) {
                    self.learn_answered(now, Contact::new(peer, from));
                } else {
                    self.send_verify(now, peer);
                }
            }
        }
    }

    /// `contact` answered our lookup query and named `named` after the
    /// contacts (EXTENSIONS.md §7.1b): when that is its own id, it speaks
    /// kadmesh, learnt without a hello (a read of its key's closest then
    /// need not wait for their kinds). That holds for one taken for a stock
    /// peer too: its hellos may have been lost across a partition, and
    /// left as one it was not read from after the heal (`simulations
    /// partition --seed 3`: discover success 99.93 -> 99.63 %). Like a
    /// hello answer, anyone at that address could send it: the kind only
    /// decides how we ask, never what we accept. One verified before we
    /// knew it is one of ours gets the provider handover that waited for
    /// its kind.
    pub(super) fn on_named(&mut self, now: Time, contact: Contact, named: Option<NodeId>) {
        if named != Some(contact.id) || self.peers.kind(&contact.id) == PeerKind::Extended {
            return;
        }
        self.peers.insert(contact.id, PeerKind::Extended);
        if self.svc.routing.is_verified(&contact.id) {
            self.hand_over_providers(now, contact);
        }
    }

    /// Our hello to `peer` went unanswered: a stock peer, one of ours that
    /// drops requests over UDP, or a lost datagram. A contact that answered
    /// us is asked up to [`HELLO_TRIES`] times before it is taken for a stock
    /// peer. If it never answered anything, it gets the base check ping its
    /// hello stood in for (see `learn_contact`) at the first silence.
    pub(super) fn hello_failed(&mut self, now: Time, contact: Contact, tries: u8) {
        let peer = contact.id;
        let verified = self.svc.routing.is_verified(&peer);
        if tries == 1 && !verified {
            self.send_verify(now, peer);
        }
        // A peer that said hello itself meanwhile speaks kadmesh whatever became of our
        // hello (a node behind a tunnel drops it when it came over UDP).
        if self.peers.kind(&peer) == PeerKind::Extended {
            return;
        }
        // Asked again only once it answered us: an address that never did
        // (a stranger's forged source, say) gets no more than one hello.
        if verified && usize::from(tries) < HELLO_TRIES && self.send_hello(now, contact, tries + 1) {
            return;
        }
        self.peers.insert(peer, PeerKind::Base);
    }

    /// `contact` answered us for the first time (its check ping) just after
    /// its one hello went unanswered (the hello was not asked again, since
    /// it had not answered us before): it does answer, so the hello may
    /// have been lost, and it gets the tries left. Called only on a first
    /// answer, so a contact that used up its tries gets no more.
    pub(super) fn hello_again_if_lost(&mut self, now: Time, contact: Contact) {
        let just_asked = self.peers.probed.peek(&contact.id).is_some_and(|&at| now < at + HELLO_AGAIN_WITHIN);
        if self.peers.kind(&contact.id) == PeerKind::Base && just_asked {
            self.peers.probed.insert(contact.id, now);
            self.send_hello(now, contact, 2);
        }
    }

    /// Counts a timeout; on a contact's first one, pings it. Until it answers, lookups
    /// neither start from it nor follow others' pointers to it; if the ping times out
    /// too it is gone (with the default two strikes), so after a mass failure dead
    /// contacts leave within two timeouts instead of costing every later lookup a stall.
    pub(super) fn contact_failed(&mut self, now: Time, peer: NodeId) {
        if self.evict_on_failure(now, peer) {
            return;
        }
        if self.svc.routing.failures(&peer) == Some(1) {
            self.send_verify(now, peer);
        }
    }

    /// The check ping went unanswered (or someone else answered): one more
    /// strike, and another check until `max_failures` evicts it.
    pub(super) fn verify_failed(&mut self, now: Time, peer: NodeId) {
        if !self.evict_on_failure(now, peer) {
            self.send_verify(now, peer);
        }
    }

    /// One more strike for `peer`; true if that evicted it (it is then
    /// remembered as lost, to be asked again later: [`super::lost`]).
    fn evict_on_failure(&mut self, now: Time, peer: NodeId) -> bool {
        let contact = self.svc.routing.get(&peer);
        let evicted = self.svc.routing.record_failure(&peer, self.svc.config.max_failures);
        if let Some(c) = contact.filter(|_| evicted) {
            self.maintenance.note_lost(c, now, self.svc.config.lost_recheck_every);
        }
        evicted
    }

    fn send_verify(&mut self, now: Time, peer: NodeId) {
        if let Some(c) = self.svc.routing.get(&peer) {
            self.send_check(now, c);
        }
    }

    /// `contact` has just answered us for the first time (or again, after
    /// it was evicted): it is owed the records and provider sets it is now
    /// responsible for, and (for stock askers) a settle check.
    pub(super) fn on_verified(&mut self, now: Time, contact: Contact) {
        self.hand_over_records(now, contact);
        self.hand_over_providers(now, contact);
        self.settle_later(now, contact.id);
    }

    /// A base `ping` (every peer answers it, stock or ours) to find out
    /// whether `c` can be reached; the answer makes it good, silence a strike.
    pub(super) fn send_check(&mut self, now: Time, c: Contact) {
        let call = self.svc.ping();
        self.svc.send_request(now, c.addr, call, ReplyTo::Verify { peer: c.id });
    }
}
