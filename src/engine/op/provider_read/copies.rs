//! Which replicas hold what a read merged, told by the set fingerprint
//! every page reports (`proto-spec/EXTENSIONS.md` §3.3 and §3.4).
//!
//! A replica counts as a copy of the merge when its fingerprint is the
//! merge's, or the merge's less some of the merged entries about to expire
//! (every replica that sent one gave it at most [`NEAR_EXPIRY`] left). A
//! read spans a few hundred milliseconds, and a provider that died (its
//! entries not refreshed) leaves every replica within that span: one read
//! a moment later, or written a moment earlier, no longer holds it. After
//! `simulations crash30-discover`'s crash, with the dead workers' entries
//! running out by the hundred, a sixth of the reads in the next ten minutes
//! met a replica whose fingerprint differed from the merge's, most of them
//! having merged entries with 3 s or less left, and waited for more pages
//! (192 against 140 ms p50 at `--seed 2`, by a temporary print). A replica
//! that lacks only such entries vouches for the rest of the merge as much
//! as an exact copy; the entries it no longer holds stay merged.

use std::collections::HashMap;
use std::time::Duration;

use super::replica::{Replica, StoodIn};
use crate::engine::providers::client::SeenEntry;
use crate::engine::providers::wire::{entry_print, SetPrint};

/// Most time left at which a merged entry may already be gone at a replica
/// read alongside: a read's span with pages asked again (a second or
/// two), and the time left rounded up to whole seconds on pages.
pub(super) const NEAR_EXPIRY: Duration = Duration::from_secs(3);
/// Most entries about to expire a replica may lack and still count as a
/// copy: the first to run out (their 2^8 combinations are tried).
pub(super) const NEAR_MAX: usize = 8;

/// Replicas that reported `print` for their whole set, not taken for
/// short or silent. When it is the merge's own fingerprint, or that of a
/// replica whose pages, all read, add up to it, each of them holds exactly
/// those providers: their pages still on the way (or lost) bring nothing
/// new, and any one of their pages tells it.
pub(super) fn copies_of(replicas: &[Replica], print: SetPrint) -> usize {
    replicas.iter().filter(|p| counts(p) && p.print == Some(print)).count()
}

/// Whether, for the fingerprint of some replica read to its end whose
/// entries add up to it and that agrees with the merge (`agree`), as many
/// as `needed` report it (see [`copies_of`]): though others brought more.
pub(super) fn copies_agree(replicas: &[Replica], agree: impl Fn(&&Replica) -> bool, needed: usize) -> bool {
    let mut read = replicas.iter().filter(agree).filter_map(Replica::read_print);
    read.any(|print| copies_of(replicas, print) >= needed)
}

/// Replicas that hold every entry of the merge (`entries`, whose
/// fingerprint is `merged`) but some about to expire (see the module
/// docs): [`copies_of`] the merge, and those whose fingerprint is the
/// merge's less any combination of its first [`NEAR_MAX`] entries to run
/// out within [`NEAR_EXPIRY`].
pub(super) fn copies_of_merge(replicas: &[Replica], entries: &HashMap<String, SeenEntry>, merged: SetPrint) -> usize {
    let exact = copies_of(replicas, merged);
    let others = replicas.iter().filter(|p| counts(p) && p.print.is_some_and(|x| x != merged));
    if others.clone().next().is_none() {
        return exact;
    }
    let lacking = near_expiry_sums(entries);
    if lacking.len() <= 1 {
        return exact;
    }
    let lacks_only_expiring =
        |p: &&Replica| p.print.is_some_and(|x| lacking.binary_search(&merged.0.wrapping_sub(x.0)).is_ok());
    exact + others.filter(lacks_only_expiring).count()
}

/// A replica neither taken for short nor for silent.
fn counts(p: &Replica) -> bool {
    !matches!(p.stood_in, StoodIn::Short | StoodIn::Silent)
}

/// The sums of the prints of every combination (the empty one included) of
/// the first [`NEAR_MAX`] merged entries to run out within [`NEAR_EXPIRY`],
/// sorted: what a replica may lack of the merge and still hold the rest.
fn near_expiry_sums(entries: &HashMap<String, SeenEntry>) -> Vec<u64> {
    let mut near: Vec<&SeenEntry> = entries.values().filter(|e| e.ttl <= NEAR_EXPIRY).collect();
    // By time left, then id: the same choice whatever the map's order.
    near.sort_by(|a, b| (a.ttl, &a.id).cmp(&(b.ttl, &b.id)));
    let mut sums = vec![0u64];
    for e in near.into_iter().take(NEAR_MAX) {
        let print = entry_print(&e.id, e.gone, e.signer.as_ref());
        let more: Vec<u64> = sums.iter().map(|s| s.wrapping_add(print)).collect();
        sums.extend(more);
    }
    sums.sort_unstable();
    sums
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contact::Contact;
    use crate::id::NodeId;
    use crate::time::Time;

    fn entry(id: &str, ttl_secs: u64) -> SeenEntry {
        let ttl = Duration::from_secs(ttl_secs);
        SeenEntry { id: id.into(), version: 1, ttl, load: None, gone: false, signer: None }
    }

    fn print_of<'a>(ids: impl IntoIterator<Item = &'a str>) -> SetPrint {
        let mut p = SetPrint::default();
        ids.into_iter().for_each(|id| p.add(id, false, None));
        p
    }

    fn replica(i: u8, print: SetPrint) -> Replica {
        let c = Contact::new(NodeId([i; 20]), format!("127.0.0.1:{}", 2000 + u16::from(i)).parse().unwrap());
        let mut r = Replica::new(c, Time::ZERO, Duration::from_millis(300), None);
        r.reported(Some(print));
        r
    }

    /// `live` with 300 s left, `dying` with 1 s.
    fn merge(live: &[&str], dying: &[&str]) -> HashMap<String, SeenEntry> {
        let all = live.iter().map(|id| entry(id, 300)).chain(dying.iter().map(|id| entry(id, 1)));
        all.map(|e| (e.id.clone(), e)).collect()
    }

    #[test]
    fn a_replica_lacking_only_entries_about_to_expire_is_a_copy_of_the_merge() {
        let entries = merge(&["a", "b", "c"], &["x", "y"]);
        let merged = print_of(["a", "b", "c", "x", "y"]);
        let replicas = [
            replica(1, merged),
            replica(2, print_of(["a", "b", "c", "y"])),
            replica(3, print_of(["a", "b", "c"])),
            replica(4, print_of(["a", "b", "x", "y"])),
        ];
        assert_eq!(copies_of(&replicas, merged), 1, "the exact rule counts only the first");
        // The fourth lacks `c`, which has five minutes left: it is no copy.
        assert_eq!(copies_of_merge(&replicas, &entries, merged), 3);
    }

    #[test]
    fn entries_with_more_time_left_or_beyond_the_first_few_are_never_excused() {
        // `c` has 4 s left: a replica lacking it missed a write.
        let mut entries = merge(&["a", "b"], &[]);
        entries.insert("c".into(), entry("c", 4));
        let merged = print_of(["a", "b", "c"]);
        assert_eq!(copies_of_merge(&[replica(1, print_of(["a", "b"]))], &entries, merged), 0);
        // Nine about to run out: only the first eight (by time left, then
        // id) may be lacking.
        let dying: Vec<String> = (0..9).map(|i| format!("d{i}")).collect();
        let mut entries = merge(&["a"], &dying.iter().map(String::as_str).collect::<Vec<_>>());
        entries.get_mut("d0").expect("merged").ttl = Duration::from_secs(2);
        let merged = print_of(["a"].into_iter().chain(dying.iter().map(String::as_str)));
        let without =
            |gone: &str| print_of(["a"].into_iter().chain(dying.iter().map(String::as_str).filter(|d| *d != gone)));
        assert_eq!(copies_of_merge(&[replica(1, without("d8"))], &entries, merged), 1);
        assert_eq!(copies_of_merge(&[replica(1, without("d0"))], &entries, merged), 0, "d0 has the most time left");
    }

    #[test]
    fn short_or_silent_replicas_and_those_without_a_fingerprint_count_for_nothing() {
        let entries = merge(&["a"], &["x"]);
        let merged = print_of(["a", "x"]);
        let mut short = replica(1, print_of(["a"]));
        short.stood_in = StoodIn::Short;
        let mut silent = replica(2, merged);
        silent.stood_in = StoodIn::Silent;
        let mut unprinted = replica(3, merged);
        unprinted.print = None;
        assert_eq!(copies_of_merge(&[short, silent, unprinted], &entries, merged), 0);
    }

    #[test]
    fn the_sums_cover_every_combination_once_whatever_the_order() {
        let entries = merge(&["a"], &["x", "y", "z"]);
        let sums = near_expiry_sums(&entries);
        assert_eq!(sums.len(), 8);
        for combo in [vec![], vec!["x"], vec!["x", "z"], vec!["x", "y", "z"]] {
            assert!(sums.binary_search(&print_of(combo.iter().copied()).0).is_ok(), "{combo:?}");
        }
        assert_eq!(near_expiry_sums(&merge(&["a", "b"], &[])), [0]);
    }
}
