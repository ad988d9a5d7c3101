//! Racers of a provider read's round ([`Config::provider_read_racers`]):
//! replicas never measured, asked their first page only beside the round's
//! replicas; one that answers before the round heard from as many as it
//! needs is read to its end, one that answers later is left.

use super::provider_ops::{is_list, live, page, read_outcome};
use super::provider_spare::{ids, read_from_memory, shard_entries};
use super::*;
use crate::engine::op::provider_read::memory::Hint;

/// A read wanting 2 from memory of a set of `n` (its size remembered),
/// its replicas known contacts 0-4: 0-2 measured at 40 ms (two wanted and
/// a spare), 3 and 4 never measured. Returns the engine, the read and the page
/// requests sent, by replica.
fn read_with_racers(cfg: Config, n: u64) -> (Engine, QueryId, Vec<Vec<(MessageId, Call)>>) {
    let hint = Some(Hint { live: n, per_page: 40 });
    let (mut e, q) = read_from_memory(cfg, id_at(0, 0), &[(0, 40), (1, 40), (2, 40)], 5, hint);
    let asked = by_replica(&mut e);
    (e, q, asked)
}

/// The page requests `e` sent since last asked, by replica (contacts 0-4).
fn by_replica(e: &mut Engine) -> Vec<Vec<(MessageId, Call)>> {
    let mut asked = vec![Vec::new(); 5];
    for (to, id, call) in sent_to(e).into_iter().filter(|(_, _, c)| is_list(c)) {
        let i = (0..5).position(|i| known(i).addr == to).expect("a remembered replica");
        asked[i].push((id, call));
    }
    asked
}

fn plain(call: &Call) -> bool {
    matches!(call, Call::Other { args, .. } if args.len() == 4)
}

/// Answers every request in `asked` from `i` with its part of `all`.
fn answer_all(e: &mut Engine, i: usize, asked: &[(MessageId, Call)], all: &[String]) {
    for (id, call) in asked {
        let Call::Other { args, .. } = call else { unreachable!() };
        let shard = args.get(4).and_then(crate::engine::providers::wire::Shard::parse);
        let held = if shard.is_some() { shard_entries(all, call) } else { all.to_vec() };
        answer(e, Time::ZERO, known(i).addr, *id, page(&held, None, all.len() as u64, shard));
    }
}

#[test]
fn two_racers_never_measured_are_asked_their_first_page_beside_the_round() {
    let (_, _, asked) = read_with_racers(small(0), 100);
    for (i, pages) in asked.iter().enumerate() {
        if i < 3 {
            assert!(pages.len() > 1 && pages.iter().all(|(_, c)| !plain(c)), "replica {i}: every shard at once");
        } else {
            assert!(pages.len() == 1 && plain(&pages[0].1), "racer {i}: its first page only");
        }
    }
    let (_, _, one) = read_with_racers(Config { provider_read_racers: 1, ..small(0) }, 100);
    assert!(one[3].len() == 1 && one[4].is_empty(), "one racer when set to one: the next stays in line");
    let (_, _, none) = read_with_racers(Config { provider_read_racers: 0, ..small(0) }, 100);
    assert!(none[3..].iter().all(Vec::is_empty), "no racers when set to none");
}

#[test]
fn a_racer_that_answers_before_the_round_heard_from_enough_is_read_to_its_end_and_counts() {
    let all = ids(100);
    let (mut e, q, asked) = read_with_racers(small(0), 100);
    let (id, _) = &asked[3][0];
    answer(&mut e, Time::ZERO, known(3).addr, *id, page(&all[..40], Some("w039"), 100, None));
    let rest = by_replica(&mut e);
    assert!(!rest[3].is_empty(), "the racer is asked the rest of its set");
    answer_all(&mut e, 3, &rest[3], &all);
    assert!(e.poll_event().is_none(), "one replica is not enough");
    answer_all(&mut e, 0, &asked[0], &all);
    let r = read_outcome(&mut e, q);
    assert_eq!((live(&r), r.rounds), (all, 1), "the racer and one replica agree: the round ends");
}

#[test]
fn a_racer_that_answers_after_the_round_heard_from_enough_is_left() {
    let all = ids(100);
    let (mut e, q, asked) = read_with_racers(small(0), 100);
    // A page of each of two replicas: the round heard from as many as it needs.
    for (i, pages) in asked.iter().enumerate().take(2) {
        answer_all(&mut e, i, &pages[..1], &all);
    }
    let (id, _) = &asked[4][0];
    answer(&mut e, Time::ZERO, known(4).addr, *id, page(&all[..40], Some("w039"), 100, None));
    assert!(by_replica(&mut e)[4].is_empty(), "nothing more asked of the late racer");
    for (i, pages) in asked.iter().enumerate().take(2) {
        answer_all(&mut e, i, &pages[1..], &all);
    }
    let r = read_outcome(&mut e, q);
    assert_eq!(live(&r), all);
}

#[test]
fn a_silent_racer_gets_no_stand_in_and_is_not_asked_again() {
    let (mut e, _, asked) = read_with_racers(small(0), 100);
    assert!(asked[3].len() == 1 && asked[4].len() == 1, "two racers");
    let mut later = Vec::new();
    while let Some(at) = e.poll_timeout().filter(|t| *t < Time::ZERO + Duration::from_secs(3)) {
        e.handle_timeout(at);
        later.extend(by_replica(&mut e).into_iter().enumerate().filter(|(_, a)| !a.is_empty()).map(|(i, _)| i));
    }
    assert!(!later.contains(&3) && !later.contains(&4), "racers asked once: {later:?}");
}

#[test]
fn a_racer_silent_past_its_stall_makes_the_round_read_every_replica() {
    let all = ids(100);
    let (mut e, q, asked) = read_with_racers(small(0), 100);
    // Replica 0 reads complete, 1 all but its last shard, 2 one shard.
    answer_all(&mut e, 0, &asked[0], &all);
    let (last, rest) = asked[1].split_last().expect("shards");
    answer_all(&mut e, 1, rest, &all);
    answer_all(&mut e, 2, &asked[2][..1], &all);
    // Past the racers' stall (at most the lookup stall): they lost their race, silent.
    let past = Time::ZERO + small(0).lookup_stall + Duration::from_millis(100);
    while let Some(at) = e.poll_timeout().filter(|t| *t <= past) {
        e.handle_timeout(at);
        let _ = sent_to(&mut e);
    }
    // Two now agree, but a racer was silent (across a cut, or gone): the
    // third replica is read too.
    answer_all(&mut e, 1, std::slice::from_ref(last), &all);
    assert!(e.poll_event().is_none(), "the round waits for its third replica");
    answer_all(&mut e, 2, &asked[2][1..], &all);
    assert_eq!(live(&read_outcome(&mut e, q)), all);
}

#[test]
fn a_racer_whose_request_fails_before_its_stall_is_not_asked_again() {
    // Requests time out (100 ms) before the read's stall (at least 500 ms).
    let ms = Duration::from_millis;
    let cfg = Config { extension_timeout: ms(100), lookup_stall_min: ms(500), ..small(0) };
    let (mut e, _, asked) = read_with_racers(cfg, 100);
    assert!(asked[3].len() == 1 && asked[4].len() == 1, "two racers");
    let mut later = Vec::new();
    while let Some(at) = e.poll_timeout().filter(|t| *t < Time::ZERO + ms(400)) {
        e.handle_timeout(at);
        later.extend(by_replica(&mut e).into_iter().enumerate().filter(|(_, a)| !a.is_empty()).map(|(i, _)| i));
    }
    assert!(later.contains(&0), "a replica's failed page is asked again");
    assert!(!later.contains(&3) && !later.contains(&4), "a racer's is not: {later:?}");
}
