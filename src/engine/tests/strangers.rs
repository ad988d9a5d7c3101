//! Two bounds on what others make this node do: the node-id churn one
//! address may cause ([`crate::limits::churn`]) and the pace of record
//! handover to a newly verified contact (`engine::handover`).

use super::hand::*;
use super::*;
use crate::limits::{ChurnLimits, HandoverPace, Limits, Rate, RateLimits};

/// Default limits except the rate limiter (off, so every ping is served
/// and only the churn bound decides).
fn no_rate_limit() -> Config {
    let rate = RateLimits { enabled: false, ..RateLimits::default() };
    Config { limits: Limits { rate, ..Limits::default() }, ..Config::default() }
}

fn ping(e: &mut Engine, now: Time, from: SocketAddr, sender: NodeId) {
    let call = Call::Ping { sender };
    e.handle_datagram(now, from, &Datagram::Request { id: MessageId([0xdd; 20]), call }.encode().unwrap());
}

#[test]
fn fresh_ids_from_one_address_are_learned_only_up_to_the_churn_bound() {
    let mut e = Engine::new(id_at(LOCAL.0, LOCAL.1), no_rate_limit(), Time::ZERO);
    let flooder: SocketAddr = "10.9.9.9:4000".parse().unwrap();
    let mut replies = 0;
    let mut checks = 0;
    for n in 0..1000u32 {
        ping(&mut e, Time::from_millis(u64::from(n)), flooder, NodeId::digest(&n.to_be_bytes()));
        while let Some(t) = e.poll_transmit() {
            match crate::wire::decode(&t.payload) {
                Ok(Datagram::Response { .. }) => replies += 1,
                Ok(Datagram::Request { .. }) => checks += 1,
                Err(_) => {}
            }
        }
    }
    let bound = ChurnLimits::default().ids_per_ip;
    assert_eq!(replies, 1000, "every ping is still answered");
    assert_eq!(e.routing().len(), bound, "only the first ids entered the table");
    let stats = e.limit_stats();
    assert_eq!(stats.churn_refusals, 1000 - bound as u64);
    assert!(stats.peer_state.0 <= bound && stats.peer_state.1 <= bound, "{:?}", stats.peer_state);
    // A check ping and a hello per admitted id (no node mark), nothing for the others.
    assert_eq!(checks, 2 * bound);
    // An id already admitted keeps talking; a host elsewhere is unaffected.
    ping(&mut e, Time::from_secs(2), flooder, NodeId::digest(&0u32.to_be_bytes()));
    ping(&mut e, Time::from_secs(2), "10.7.7.7:4000".parse().unwrap(), id_at(0x10, 1));
    assert_eq!(e.routing().len(), bound + 1);
    assert_eq!(e.limit_stats().churn_refusals, 1000 - bound as u64);
    // After the window the address may introduce new ids again.
    let later = Time::ZERO + ChurnLimits::default().window + Duration::from_secs(1);
    ping(&mut e, later, flooder, NodeId::digest(b"after the window"));
    assert!(e.routing().contains(&NodeId::digest(b"after the window")));
}

#[test]
fn a_flood_of_hellos_with_fresh_ids_does_not_fill_the_peer_map() {
    let mut e = Engine::new(id_at(LOCAL.0, LOCAL.1), no_rate_limit(), Time::ZERO);
    let from: SocketAddr = "10.9.9.9:4000".parse().unwrap();
    for n in 0..500u32 {
        let args = vec![Value::Bin(NodeId::digest(&n.to_be_bytes()).0.to_vec())];
        let call = Call::Other { name: HELLO.into(), args };
        e.handle_datagram(Time::ZERO, from, &Datagram::Request { id: MessageId([1; 20]), call }.encode().unwrap());
    }
    assert_eq!(e.limit_stats().peer_state.0, ChurnLimits::default().ids_per_ip);
}

/// An engine holding `n` records and knowing nobody, so a newcomer is owed
/// all of them, paced by `pace`.
fn holding(n: u32, pace: HandoverPace) -> Engine {
    let limits = Limits { handover: pace, ..Limits::default() };
    let mut e = Engine::new(id_at(LOCAL.0, LOCAL.1), Config { limits, ..Config::default() }, Time::ZERO);
    for k in 0..n {
        let key = NodeId::digest(&k.to_be_bytes());
        e.store.put(key, Value::Int(1), None, Time::ZERO, Duration::from_secs(24 * 3600)).unwrap();
    }
    e
}

/// Contact `i` pings and answers the check at `now`: it is verified
/// and owed records. Returns the STOREs sent to it right away.
fn verify(e: &mut Engine, now: Time, i: usize) -> usize {
    let sent = ping_from(e, now, i);
    let (id, body) = check_of(&sent, i);
    answer(e, now, addr(i + 1), id, body);
    stores_to(e, now).iter().filter(|&&to| to == addr(i + 1)).count()
}

/// Where the STOREs `e` sent went, each acknowledged at `now` (a contact
/// that let them time out would be evicted, and lose the rest of its
/// queue, before the pace is seen).
fn stores_to(e: &mut Engine, now: Time) -> Vec<SocketAddr> {
    let stores: Vec<_> = sent_to(e).into_iter().filter(|(_, _, c)| is_store(c)).collect();
    for &(to, id, _) in &stores {
        answer(e, now, to, id, Value::Bool(true));
    }
    stores.into_iter().map(|(to, _, _)| to).collect()
}

/// Runs `e`'s timers from `from` to `until`; the STOREs sent, with when.
fn run_until(e: &mut Engine, from: Time, until: Time) -> Vec<(Time, SocketAddr)> {
    let mut out = Vec::new();
    let mut now = from;
    while let Some(next) = e.poll_timeout().filter(|&t| t <= until) {
        now = next.max(now);
        e.handle_timeout(now);
        out.extend(stores_to(e, now).into_iter().map(|to| (now, to)));
    }
    out
}

#[test]
fn handover_to_one_contact_leaves_at_its_pace_not_in_one_burst() {
    let pace = HandoverPace { per_contact: Rate { per_sec: 10, burst: 5 }, ..HandoverPace::default() };
    let mut e = holding(40, pace);
    let start = Time::from_secs(1);
    assert_eq!(verify(&mut e, start, 0), 5, "the burst goes at once");
    assert_eq!(e.limit_stats().handover_queued, (35, 1));
    let later = run_until(&mut e, start, start + Duration::from_secs(10));
    assert_eq!(later.len(), 35, "everything owed arrives");
    // Never more than the burst plus the rate in any span since the start.
    for (i, &(at, _)) in later.iter().enumerate() {
        let allowed = 10 * at.saturating_since(start).as_millis() / 1000;
        assert!((i as u128) < allowed, "store {} at {at:?}: over the pace", i + 6);
    }
    let last = later.last().unwrap().0.saturating_since(start);
    assert!(last >= Duration::from_millis(3400) && last <= Duration::from_millis(3600), "{last:?}");
    assert_eq!(e.limit_stats().handover_queued, (0, 0));
    assert_eq!(e.stats().handovers, 40);
}

#[test]
fn handover_to_many_contacts_shares_the_global_pace() {
    let per_contact = Rate { per_sec: 100, burst: 100 };
    let pace = HandoverPace { per_contact, global: Rate { per_sec: 20, burst: 10 }, max_contacts: 2 };
    let mut e = holding(30, pace);
    let start = Time::from_secs(1);
    // Contacts 0 and 3 sit in opposite halves of the id space, so both are
    // owed records (each is the closest to its half's keys but us).
    let first = verify(&mut e, start, 0);
    let second = verify(&mut e, start, 3);
    assert_eq!((first, second), (10, 0), "one global burst for both");
    // A third newcomer finds the queue full: it is owed nothing now.
    assert_eq!(verify(&mut e, start, 4), 0);
    assert_eq!(e.limit_stats().handover_queued.1, 2);
    let later = run_until(&mut e, start, start + Duration::from_secs(1));
    assert_eq!(later.len(), 20, "20/s after the burst");
    let to = |i: usize| later.iter().filter(|(_, a)| *a == addr(i + 1)).count();
    assert_eq!((to(0), to(3)), (10, 10), "contacts take turns");
}

#[test]
fn a_contact_that_leaves_the_table_loses_what_it_was_owed() {
    let pace = HandoverPace { per_contact: Rate { per_sec: 1, burst: 1 }, ..HandoverPace::default() };
    let mut e = holding(10, pace);
    assert_eq!(verify(&mut e, Time::from_secs(1), 0), 1);
    e.svc.routing.remove(&contact_id(0));
    let later = run_until(&mut e, Time::from_secs(1), Time::from_secs(5));
    assert!(later.is_empty(), "{later:?}");
    assert_eq!(e.limit_stats().handover_queued, (0, 0));
}
