//! The fast path for lookups' nodes replies against the general path.
use std::net::SocketAddr;
use std::time::Duration;

use crate::contact::Contact;
use crate::engine::{Config, Engine, Transmit};
use crate::id::NodeId;
use crate::time::Time;
use crate::wire::{self, Call, Datagram, MessageId};

fn contact(i: u8) -> Contact {
    let mut id = [i.wrapping_mul(37); 20];
    id[19] = i;
    Contact::new(NodeId(id), SocketAddr::from(([10, 0, 0, i], 8468)))
}

/// The same bytes `encode_nodes_response` writes, but every IP as a str8,
/// which the fast path leaves to the general one.
fn slow_nodes_response(id: MessageId, contacts: &[Contact]) -> Vec<u8> {
    let fast = wire::encode_nodes_response(id, contacts).unwrap();
    let mut out = fast[..22].to_vec();
    let mut rest = &fast[22..];
    for _ in contacts {
        out.extend_from_slice(&rest[..23]);
        let len = usize::from(rest[23] & 0x1f);
        out.extend_from_slice(&[0xd9, len as u8]);
        rest = &rest[24..];
        out.extend_from_slice(&rest[..len]);
        rest = &rest[len..];
        let port_len = match rest[0] {
            0xcd => 3,
            0xcc => 2,
            _ => 1,
        };
        out.extend_from_slice(&rest[..port_len]);
        rest = &rest[port_len..];
    }
    assert!(rest.is_empty());
    out
}

fn drain(e: &mut Engine) -> Vec<Transmit> {
    std::iter::from_fn(|| e.poll_transmit()).collect()
}

/// Two engines fed the same inputs, but one gets every nodes reply in the
/// form the fast path takes and the other in a form it declines: they must
/// send, report and keep exactly the same.
#[test]
fn fast_and_general_nodes_replies_act_alike() {
    let config = Config { k: 6, ..Config::default() };
    let mut engines = [0, 1].map(|_| Engine::new(NodeId([0x55; 20]), config.clone(), Time::ZERO));
    let pool: Vec<Contact> = (1..=40).map(contact).collect();
    for e in &mut engines {
        for c in &pool[..10] {
            e.learn(Time::ZERO, *c);
        }
        // One known contact has timed out: replies naming it must drop it.
        e.svc.routing.record_failure(&pool[3].id, 5);
        drain(e);
    }
    let mut now = Time::from_secs(1);
    let targets = [NodeId([0; 20]), pool[3].id, pool[20].id];
    let queries = targets.map(|t| engines.each_mut().map(|e| e.find_node(now, t)));
    assert!(queries.iter().all(|q| q[0] == q[1]));
    let (mut fast_taken, mut round) = (0, 0);
    while round < 200 {
        round += 1;
        let sent = engines.each_mut().map(drain);
        assert_eq!(sent[0], sent[1], "round {round}");
        for t in &sent[0] {
            let Ok(Datagram::Request { id, call: Call::FindNode { .. } }) = wire::decode(&t.payload) else { continue };
            let i = usize::from(t.to.ip().to_string().rsplit('.').next().unwrap().parse::<u8>().unwrap());
            // Some answer nobody, some answer from elsewhere, most name a few
            // others, half of them the contact that timed out.
            let mut named: Vec<Contact> =
                pool.iter().copied().filter(|c| (usize::from(c.id.0[19]) + i) % 4 == 0).collect();
            if i % 2 == 0 {
                named.push(pool[3]);
            }
            let from = if i % 7 == 0 { SocketAddr::from(([10, 9, 9, 9], 8468)) } else { t.to };
            if i % 11 == 0 {
                continue;
            }
            let fast = wire::encode_nodes_response(id, &named).unwrap();
            let slow = slow_nodes_response(id, &named);
            assert!(wire::decode_nodes_response(&slow).is_none());
            fast_taken += usize::from(from == t.to);
            engines[0].handle_datagram(now, from, &fast);
            engines[1].handle_datagram(now, from, &slow);
            // A duplicate is unmatched either way.
            engines[0].handle_datagram(now, from, &fast);
            engines[1].handle_datagram(now, from, &slow);
        }
        now = now + Duration::from_millis(300);
        for e in &mut engines {
            e.handle_timeout(now);
        }
        let events = engines.each_mut().map(|e| std::iter::from_fn(|| e.poll_event()).collect::<Vec<_>>());
        assert_eq!(events[0], events[1], "round {round}");
        assert_eq!(engines[0].stats(), engines[1].stats(), "round {round}");
        let table = engines.each_ref().map(|e| e.routing().contacts().collect::<Vec<_>>());
        assert_eq!(table[0], table[1], "round {round}");
        if engines.iter().all(|e| e.ops_in_progress() == 0) {
            break;
        }
    }
    assert!(engines.iter().all(|e| e.ops_in_progress() == 0), "lookups did not finish");
    assert!(fast_taken >= 10, "only {fast_taken} replies could take the fast path");
    assert!(engines[0].stats().unmatched_replies > 0);
}
