//! A round ends when every shard of the set was read to its end at as many
//! replicas as it wants, in agreement, even if no single replica was: a
//! page lost at one replica is then covered by the spare's copy of that
//! shard instead of waited for.
//!
//! A read of three replicas and a spare asks each about thirty shards; at
//! 1 % loss each way, about half the replicas lose one, so only a third of
//! the rounds had three complete replicas at the first round trip. The
//! others waited for a page asked again, one more round trip of that
//! replica (`simulations steady --seed 1`: the replica that ended a read
//! took 1.98 of its round trips at the median). Per shard, two losses among
//! four replicas of the same shard are needed to wait.
//!
//! The guarantee is the whole-replica rule's, shard by shard: an entry is
//! missed only if every replica counted for its shard lacks it. A replica
//! counts for the shards it read to their end (every chain of its read that
//! overlaps the shard complete) and only if it agrees there: it lacks no
//! more than a fiftieth of what the merge holds in those shards.

use crate::engine::providers::wire::Shard;

use super::replica::Replica;

/// Whether every shard of `bits` bits is covered by `needed` replicas of
/// `replicas` that read it to its end and agree, given the merged entries'
/// hashes `merged` (see [`Replica::hashes`]; only drawn when enough shards
/// were read at all, as it hashes every merged id) and `short_by` (a
/// replica may lack one entry in `short_by` of the merge where it counts).
pub(super) fn covered(
    replicas: &[Replica],
    merged: impl IntoIterator<Item = u32>,
    bits: u32,
    needed: usize,
    short_by: usize,
) -> bool {
    if bits == 0 {
        return false;
    }
    let n = 1usize << bits;
    let read: Vec<Vec<bool>> = replicas.iter().map(|p| read_to_end(p, bits)).collect();
    // Cheap bound first: too few shards read to their end in all.
    if read.iter().flatten().filter(|&&r| r).count() < needed * n {
        return false;
    }
    let in_merge = histogram(merged.into_iter(), bits);
    let mut counts = vec![0usize; n];
    for (p, read) in replicas.iter().zip(&read) {
        if !agrees(p, read, &in_merge, bits, short_by) {
            continue;
        }
        for (c, _) in counts.iter_mut().zip(read).filter(|(_, r)| **r) {
            *c += 1;
        }
    }
    counts.iter().all(|&c| c >= needed)
}

/// The shards of `bits` bits `p` read to their end: some chain of its read
/// overlaps the shard, and every one that does is complete (a chain
/// coarser than the shard covers it whole; finer ones must all be done).
fn read_to_end(p: &Replica, bits: u32) -> Vec<bool> {
    let n = 1usize << bits;
    let (mut some, mut open) = (vec![false; n], vec![false; n]);
    for c in &p.chains {
        let marks = if c.done == Some(true) { &mut some } else { &mut open };
        for i in span(c.shard, bits) {
            marks[i] = true;
        }
    }
    some.iter().zip(&open).map(|(s, o)| *s && !o).collect()
}

/// The indexes of the shards of `bits` bits that `shard` overlaps.
fn span(shard: Shard, bits: u32) -> std::ops::Range<usize> {
    if shard.bits >= bits {
        let i = (shard.index >> (shard.bits - bits)) as usize;
        i..i + 1
    } else {
        let w = bits - shard.bits;
        let start = (shard.index as usize) << w;
        start..start + (1usize << w)
    }
}

/// Entries per shard of `bits` bits, from their hashes.
fn histogram(hashes: impl Iterator<Item = u32>, bits: u32) -> Vec<usize> {
    let mut h = vec![0usize; 1usize << bits];
    for x in hashes {
        h[(x >> (32 - bits)) as usize] += 1;
    }
    h
}

/// Whether `p` lacks at most a `short_by`-th of the merged entries in the
/// shards it read to their end (`read`).
fn agrees(p: &Replica, read: &[bool], in_merge: &[usize], bits: u32, short_by: usize) -> bool {
    let own = histogram(p.hashes.iter().copied(), bits);
    let (mut merged, mut lacking) = (0, 0);
    for ((r, m), o) in read.iter().zip(in_merge).zip(&own) {
        if *r {
            merged += m;
            lacking += m.saturating_sub(*o);
        }
    }
    lacking <= merged / short_by
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contact::Contact;
    use crate::engine::op::provider_read::replica::{Chain, Hint};
    use crate::id::NodeId;
    use crate::time::Time;
    use std::time::Duration;

    const BITS: u32 = 2;

    fn id(i: usize) -> String {
        format!("worker-{i}")
    }

    /// Hashes of 200 worker ids.
    fn all() -> Vec<u32> {
        (0..200).map(|i| Shard::hash(&id(i))).collect()
    }

    /// A replica read blind in four shards; `done[s]` says whether shard
    /// `s` came, and it reported every entry of the shards that came.
    fn replica(done: [bool; 4]) -> Replica {
        let contact = Contact { id: NodeId::from_slice(&[7; 20]).unwrap(), addr: "127.0.0.1:1".parse().unwrap() };
        let hint = Hint { live: 160, per_page: 60 };
        let mut p = Replica::new(contact, Time::ZERO, Duration::from_millis(100), Some(hint));
        assert_eq!(p.chains.iter().filter(|c| c.shard.bits == BITS).count(), 4, "a plan of four shards");
        for c in p.chains.iter_mut().filter(|c| c.shard.bits == BITS) {
            if done[c.shard.index as usize] {
                c.done = Some(true);
            }
        }
        let came = |h: &u32| done[(h >> (32 - BITS)) as usize];
        p.hashes = all().into_iter().filter(came).collect();
        p
    }

    #[test]
    fn a_shard_lost_at_each_of_three_replicas_is_covered_by_the_spare() {
        let reps = [
            replica([false, true, true, true]),
            replica([true, false, true, true]),
            replica([true, true, false, true]),
            replica([true, true, true, false]),
        ];
        assert!(covered(&reps, all(), BITS, 3, 50));
    }

    #[test]
    fn a_shard_lost_at_two_of_four_replicas_is_not_covered() {
        let reps = [
            replica([false, true, true, true]),
            replica([false, true, true, true]),
            replica([true, true, true, true]),
            replica([true, true, true, true]),
        ];
        assert!(!covered(&reps, all(), BITS, 3, 50));
        assert!(covered(&reps, all(), BITS, 2, 50));
    }

    #[test]
    fn a_replica_lacking_entries_in_its_shards_does_not_count() {
        let mut reps =
            [replica([true, true, true, true]), replica([true, true, true, true]), replica([true, true, true, true])];
        assert!(covered(&reps, all(), BITS, 3, 50));
        // It read its shards to their end but lacks a tenth of the merge.
        reps[2].hashes.truncate(180);
        assert!(!covered(&reps, all(), BITS, 3, 50));
    }

    #[test]
    fn a_chain_still_open_inside_a_shard_keeps_it_unread() {
        let mut p = replica([true, true, true, true]);
        // Shard 0 went on after its first page, cut in two: one part open.
        let after = Some("worker-9".to_string());
        p.chains.push(Chain::new(Shard { index: 0, bits: 3 }, after.clone(), 0, Time::ZERO));
        let mut done = Chain::new(Shard { index: 1, bits: 3 }, after, 0, Time::ZERO);
        done.done = Some(true);
        p.chains.push(done);
        assert_eq!(read_to_end(&p, BITS), vec![false, true, true, true]);
        p.chains.iter_mut().for_each(|c| c.done = Some(true));
        assert_eq!(read_to_end(&p, BITS), vec![true; 4]);
    }

    #[test]
    fn a_failed_or_coarser_chain_marks_what_it_overlaps() {
        let mut p = replica([true, true, true, true]);
        p.chains.push(Chain::new(Shard { index: 1, bits: 1 }, None, 0, Time::ZERO));
        p.chains.last_mut().unwrap().done = Some(false);
        assert_eq!(read_to_end(&p, BITS), vec![true, true, false, false]);
        assert_eq!(span(Shard { index: 1, bits: 1 }, BITS), 2..4);
        assert_eq!(span(Shard { index: 5, bits: 4 }, BITS), 1..2);
    }

    #[test]
    fn sets_within_one_page_are_left_to_the_whole_rule() {
        let reps = [replica([true, true, true, true])];
        assert!(covered(&reps, all(), BITS, 1, 50));
        assert!(!covered(&reps, all(), 0, 1, 50));
    }
}
