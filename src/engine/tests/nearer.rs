//! Proximity neighbour selection (`engine::pns`): a contact that answers
//! clearly faster than a full bucket's slowest measured one takes its place;
//! one that is not clearly faster waits in the replacement cache.

use super::hand::*;
use super::*;

/// A k = 2 engine whose far bucket holds contacts 0 and 1, each measured
/// at `rtt` by a ping answered that late.
fn measured_bucket(rtt: Duration) -> Engine {
    let mut e = engine_knowing(Config { k: 2, ..Config::default() }, 2);
    for i in 0..2 {
        pinged(&mut e, Time::ZERO, i, rtt);
    }
    e
}

/// `e` pings `CONTACTS[i]`, which answers `rtt` later with its id.
fn pinged(e: &mut Engine, now: Time, i: usize, rtt: Duration) {
    e.ping(now, addr(i + 1));
    let sent = sent_to(e);
    let (_, id, _) = sent.iter().find(|(to, _, c)| *to == addr(i + 1) && matches!(c, Call::Ping { .. })).unwrap();
    answer(e, now + rtt, addr(i + 1), *id, Value::Bin(contact_id(i).0.to_vec()));
    let _ = sent_to(e);
    while e.poll_event().is_some() {}
}

#[test]
fn a_clearly_nearer_contact_takes_the_place_of_the_slowest() {
    let mut e = measured_bucket(Duration::from_millis(400));
    pinged(&mut e, Time::from_secs(1), 2, Duration::from_millis(10));
    assert!(e.routing().contains(&contact_id(2)), "swapped in");
    let live = e.routing().buckets().iter().map(|b| b.contacts().count()).sum::<usize>();
    assert_eq!(live, e.routing().len());
    assert_eq!(e.routing().len(), 2, "one of the slow ones was parked");
}

#[test]
fn a_contact_not_twice_as_near_as_the_slowest_waits() {
    let mut e = measured_bucket(Duration::from_millis(400));
    // Slow answers elsewhere make 250 ms look near to the node as a whole...
    for n in 0..4 {
        pinged(&mut e, Time::from_secs(1 + n), 3, Duration::from_secs(2));
    }
    // ...but it is not PNS_FACTOR times nearer than the bucket's 400 ms.
    pinged(&mut e, Time::from_secs(10), 2, Duration::from_millis(250));
    assert!(!e.routing().contains(&contact_id(2)));
    assert!(e.routing().contains(&contact_id(0)) && e.routing().contains(&contact_id(1)));
}
