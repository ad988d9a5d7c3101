//! One replica's part of a provider read: the shards of its set being
//! read (each a chain of pages), what it reported, and whether another
//! replica was asked in its stead.

use std::time::Duration;

use crate::contact::Contact;
use crate::engine::providers::wire::{SetPrint, Shard};
use crate::time::Time;

/// Tries of one page request: a page lost on the way (1% loss and twenty
/// pages make that common) is asked again rather than ending the replica's
/// read, which would leave the rest of its set unread.
pub(super) const PAGE_TRIES: usize = 3;
/// Most extra prefix bits one cut adds: a shard splits into at most 32.
const MAX_CUT_BITS: u32 = 5;

/// One replica's set, as read so far.
pub(super) struct Replica {
    pub(super) contact: Contact,
    /// Its shards being read (the whole set at first).
    pub(super) chains: Vec<Chain>,
    /// Pages asked of it.
    pub(super) pages: usize,
    /// Entries it reported (merged as they arrive).
    pub(super) seen: usize,
    /// Their [`Shard::hash`]es: what it holds in each shard (see
    /// [`super::quorum`]).
    pub(super) hashes: Vec<u32>,
    /// A page of it arrived.
    pub(super) heard: bool,
    /// Whether another replica was asked in its stead, and why.
    pub(super) stood_in: StoodIn,
    /// Its shards were asked at once, before (or without) its first page,
    /// from the set's size another replica reported.
    pub(super) blind: bool,
    /// The set's size it reported last.
    pub(super) live: Option<u64>,
    /// How long its pages may take before they are asked again: from its
    /// own measured round trips once it answered (a lost shard of a near
    /// replica then costs a few of its round trips, not the network-wide
    /// threshold), the read's threshold before.
    pub(super) stall: Duration,
    /// Asked only its first page, in a race for a near replica (see
    /// `take_racers` in `provider_read.rs`): the round neither waits for it nor
    /// counts it short until its answer makes it a replica like the others.
    pub(super) racer: bool,
    /// The set's fingerprint its latest page reported.
    pub(super) print: Option<SetPrint>,
    /// Its pages reported different fingerprints (its set changed while
    /// it was read): what it sent is no snapshot to compare others with.
    pub(super) print_moved: bool,
    /// The fingerprint of the entries it sent, summed as they arrive.
    pub(super) sent_print: SetPrint,
}

/// Why another replica was asked in one's stead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum StoodIn {
    No,
    /// Its first page did not come within the stall threshold.
    Silent,
    /// It reported a set far smaller than another replica did: it was not
    /// among the writers' closest (a newcomer, or one at the edge).
    Short,
    /// As many others as the round wanted read complete, in agreement,
    /// before it did: the round ended without the rest of its pages
    /// (see `ProviderRead::covered`).
    Covered,
}

/// What the largest first page so far said of the set: its size and how
/// many entries a page holds. Shards of other replicas are planned from it.
#[derive(Clone, Copy, Debug)]
pub(in crate::engine) struct Hint {
    pub(in crate::engine) live: u64,
    pub(in crate::engine) per_page: usize,
}

/// The pages of one shard of a replica's set, one after the other.
pub(super) struct Chain {
    pub(super) shard: Shard,
    /// Cursor of the page asked for last.
    pub(super) after: Option<String>,
    /// Entries of this shard read so far.
    pub(super) got: usize,
    /// Tries of the page asked for last.
    pub(super) tries: usize,
    /// When it was last asked.
    pub(super) asked_at: Time,
    /// `Some(complete)` once it ended.
    pub(super) done: Option<bool>,
}

impl Chain {
    pub(super) fn new(shard: Shard, after: Option<String>, got: usize, now: Time) -> Chain {
        Chain { shard, after, got, tries: 0, asked_at: now, done: None }
    }

    /// Still reading, with a try of its page left.
    pub(super) fn may_resend(&self) -> bool {
        self.done.is_none() && self.tries < PAGE_TRIES
    }

    /// Still reading, every try of its page asked, the last one `stall` or
    /// more ago at `now`: as good as failed.
    pub(super) fn exhausted(&self, now: Time, stall: Duration) -> bool {
        self.done.is_none() && self.tries >= PAGE_TRIES && self.asked_at + stall <= now
    }
}

impl Replica {
    /// A replica to read at `now`: its first page, or with the set's size
    /// known from another replica (`hint`), all its shards at once.
    pub(super) fn new(contact: Contact, now: Time, stall: Duration, hint: Option<Hint>) -> Replica {
        let chains = vec![Chain::new(Shard::ALL, None, 0, now)];
        let mut rep = Replica {
            contact,
            chains,
            pages: 0,
            seen: 0,
            hashes: Vec::new(),
            heard: false,
            stood_in: StoodIn::No,
            blind: false,
            live: None,
            stall,
            racer: false,
            print: None,
            print_moved: false,
            sent_print: SetPrint::default(),
        };
        if let Some(h) = hint {
            rep.chains.clear();
            rep.add_blind(h, now);
        }
        rep
    }

    /// Adds chains for the whole set cut into shards of about a page each.
    /// They cover what its first page, if asked, brings: that one is no
    /// longer waited for (nor asked again), and ignored when it comes.
    pub(super) fn add_blind(&mut self, hint: Hint, now: Time) {
        for c in &mut self.chains {
            c.done = Some(true);
        }
        let more = cut_bits(hint.live, 0, 0, hint.per_page);
        self.chains.extend(Shard::ALL.split(more).map(|s| Chain::new(s, None, 0, now)));
        self.blind = true;
    }

    /// A racer at `now`: its first page only, whatever the set's size.
    pub(super) fn racer(contact: Contact, now: Time, stall: Duration) -> Replica {
        Replica { racer: true, ..Replica::new(contact, now, stall, None) }
    }

    /// Ends every chain still being read, incomplete.
    pub(super) fn give_up(&mut self) {
        for c in self.chains.iter_mut().filter(|c| c.done.is_none()) {
            c.done = Some(false);
        }
    }

    /// Its first page is the only request out, unanswered.
    pub(super) fn first_page_pending(&self) -> bool {
        !self.heard && !self.blind && !self.racer && self.chains.len() == 1 && self.chains[0].done.is_none()
    }

    pub(super) fn done(&self) -> bool {
        self.chains.iter().all(|c| c.done.is_some())
    }

    pub(super) fn complete(&self) -> bool {
        self.chains.iter().all(|c| c.done == Some(true))
    }

    /// Notes the fingerprint a page of it reported.
    pub(super) fn reported(&mut self, print: Option<SetPrint>) {
        if let Some(p) = print {
            self.print_moved |= self.print.is_some_and(|had| had != p);
            self.print = Some(p);
        }
    }

    /// The fingerprint of its whole set, once it was read to its end and
    /// what it sent adds up to what it reported all along: then a replica
    /// reporting the same one holds the same providers (see
    /// `ProviderRead::covered`).
    pub(super) fn read_print(&self) -> Option<SetPrint> {
        let p = self.print.filter(|_| !self.print_moved && self.complete())?;
        (p == self.sent_print).then_some(p)
    }

    /// A replica whose stand-in covers it: the round neither waits for it
    /// nor counts its failure.
    pub(super) fn replaced(&self) -> bool {
        if self.racer {
            return true;
        }
        match self.stood_in {
            StoodIn::No => false,
            // Not one still being read after it answered after all.
            StoodIn::Silent => {
                let reading = self.heard && !self.done();
                !self.complete() && !reading
            }
            // Still read to its end (a replica that lied about its size
            // must not cut the others' reads short), just not compared.
            StoodIn::Short => self.done(),
            StoodIn::Covered => true,
        }
    }

    /// Left by a round that others covered (see `ProviderRead::covered`)
    /// after it answered: its pages lost or still on their way, it holds
    /// the set all the same, and a later read may ask it again.
    pub(super) fn left_answering(&self) -> bool {
        self.stood_in == StoodIn::Covered && self.heard
    }

    /// The chain a page of `shard` answers, or (`None`: a failure, which
    /// does not say which) the pending one asked longest ago.
    pub(super) fn chain_for(&self, shard: Option<Shard>) -> Option<usize> {
        let pending = self.chains.iter().enumerate().filter(|(_, c)| c.done.is_none());
        match shard {
            Some(s) => pending.filter(|(_, c)| c.shard == s).map(|(i, _)| i).next(),
            None => pending.min_by_key(|(_, c)| c.asked_at).map(|(i, _)| i),
        }
    }
}

/// How many more prefix bits the rest of a shard of `bits` bits needs so
/// that each part fits about one page, from the set's size `live`, the
/// entries `got` from the shard so far and the size `per_page` of the
/// page just read. Shards of a hash are uneven, so each part is planned at
/// three quarters of a page.
pub(super) fn cut_bits(live: u64, bits: u32, got: usize, per_page: usize) -> u32 {
    let expected = (live >> bits) as usize;
    let rest = expected.saturating_sub(got).max(1);
    let room = (per_page * 3 / 4).max(1);
    let parts = rest.div_ceil(room);
    let more = usize::BITS - parts.saturating_sub(1).leading_zeros();
    more.min(MAX_CUT_BITS)
}
