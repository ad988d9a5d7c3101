//! Where a node looks for the network, and in what order: every free
//! source before the platform's edge router.
//!
//! The edge router is a serverless function with a budget of about 25
//! requests a day for 2000+ workers, so it is the last resort. A node without
//! a working routing table tries, in order: the contacts it saved, its
//! configured seeds (and its coordinator's bootstrap URL), seeds it learned
//! from any peer's bootstrap document and kept, DNS names that resolve to
//! many seeds, static seed-list URLs, and only then the edge router. A source
//! with nothing to offer is skipped without a round trip. [`SeedPlan`] is
//! that order as a state machine (no I/O: the caller resolves and pings);
//! [`LearnedSeeds`] is the bounded list of kept seeds.

use std::net::SocketAddr;

/// One place seeds come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SeedSource {
    /// Contacts saved before a restart.
    Saved,
    /// `--seed` / `DHT_SEEDS` and the configured bootstrap URL.
    Configured,
    /// Seeds from peers' bootstrap documents, kept on disk.
    Learned,
    /// DNS names that resolve to many seeds.
    Dns,
    /// Static seed-list URLs (a file on a CDN or code host).
    SeedList,
    /// The platform's edge router: counted against its daily budget.
    Edge,
}

impl SeedSource {
    /// Every source, in the order they are tried.
    pub const ORDER: [SeedSource; 6] = [
        SeedSource::Saved,
        SeedSource::Configured,
        SeedSource::Learned,
        SeedSource::Dns,
        SeedSource::SeedList,
        SeedSource::Edge,
    ];

    /// A short name for logs and tables.
    pub fn name(self) -> &'static str {
        match self {
            SeedSource::Saved => "saved",
            SeedSource::Configured => "configured",
            SeedSource::Learned => "learned",
            SeedSource::Dns => "dns",
            SeedSource::SeedList => "seed-list",
            SeedSource::Edge => "edge",
        }
    }

    /// Position in [`SeedSource::ORDER`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// The sources one join attempt has left, in order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeedPlan {
    next: usize,
}

impl SeedPlan {
    /// A plan that starts with saved contacts.
    pub fn new() -> Self {
        SeedPlan::default()
    }

    /// The next source that `has_seeds` says can offer something, or `None`
    /// once every source (the edge router last) was tried. Each source is
    /// offered once; skipped ones are not offered again.
    pub fn next(&mut self, has_seeds: impl Fn(SeedSource) -> bool) -> Option<SeedSource> {
        while let Some(&s) = SeedSource::ORDER.get(self.next) {
            self.next += 1;
            if has_seeds(s) {
                return Some(s);
            }
        }
        None
    }
}

/// Most seeds kept from peers' bootstrap documents.
pub const LEARNED_CAPACITY: usize = 32;

/// Seeds learned from bootstrap documents, newest first, without repeats,
/// at most [`LEARNED_CAPACITY`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LearnedSeeds {
    seeds: Vec<SocketAddr>,
}

impl LearnedSeeds {
    /// Keeps `seeds` (a document's order) ahead of older ones.
    pub fn learn(&mut self, seeds: &[SocketAddr]) {
        self.seeds.retain(|a| !seeds.contains(a));
        let mut fresh: Vec<SocketAddr> = Vec::with_capacity(seeds.len() + self.seeds.len());
        for a in seeds {
            if !fresh.contains(a) {
                fresh.push(*a);
            }
        }
        fresh.append(&mut self.seeds);
        fresh.truncate(LEARNED_CAPACITY);
        self.seeds = fresh;
    }

    /// The kept seeds, newest first.
    pub fn seeds(&self) -> &[SocketAddr] {
        &self.seeds
    }

    /// True when none are kept.
    pub fn is_empty(&self) -> bool {
        self.seeds.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_tried_in_order_and_the_edge_router_last() {
        let mut plan = SeedPlan::new();
        let mut seen = Vec::new();
        while let Some(s) = plan.next(|_| true) {
            seen.push(s);
        }
        assert_eq!(seen, SeedSource::ORDER.to_vec());
        assert_eq!(seen.last(), Some(&SeedSource::Edge));
        assert_eq!(plan.next(|_| true), None, "nothing after the edge router");
    }

    #[test]
    fn a_source_without_seeds_is_skipped_and_not_offered_again() {
        // A brand-new machine: nothing saved or learned.
        let has = |s: SeedSource| !matches!(s, SeedSource::Saved | SeedSource::Learned);
        let mut plan = SeedPlan::new();
        assert_eq!(plan.next(has), Some(SeedSource::Configured));
        assert_eq!(plan.next(has), Some(SeedSource::Dns));
        // Learned seeds arriving now do not send the plan back.
        assert_eq!(plan.next(|_| true), Some(SeedSource::SeedList));
        assert_eq!(plan.next(has), Some(SeedSource::Edge));
        assert_eq!(plan.next(has), None);
    }

    #[test]
    fn learned_seeds_are_newest_first_unique_and_bounded() {
        let a = |i: u16| SocketAddr::from(([10, 0, 0, 1], i));
        let mut l = LearnedSeeds::default();
        l.learn(&[a(1), a(2), a(1)]);
        l.learn(&[a(3), a(2)]);
        assert_eq!(l.seeds(), &[a(3), a(2), a(1)]);
        let many: Vec<SocketAddr> = (100..200).map(a).collect();
        l.learn(&many);
        assert_eq!(l.seeds().len(), LEARNED_CAPACITY);
        assert_eq!(l.seeds()[0], a(100));
    }
}
