//! The relay's rules (`POST /api/dht/relay`, EXTENSIONS.md §8): a node
//! sends a client's request datagram over UDP only when it is a
//! well-formed request, within the client IP's rate, and to a contact that
//! answered us or an address a relayed reply named; never to a tunnel
//! address, an HTTP source, an unspecified address, or anyone else. The
//! loopback tests (`tests/relay.rs`) run the driver around these rules.

use std::net::{IpAddr, Ipv4Addr};

use super::hand::*;
use super::*;
use crate::wire::MessageId;

/// An HTTP client's address, subject to the rate limits (not loopback).
const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9));

/// A `ping` request datagram, as a client would send it.
fn ping() -> Vec<u8> {
    let call = Call::Ping { sender: id_at(0x40, 1) };
    Datagram::Request { id: MessageId([7; 20]), call }.encode().expect("a ping encodes")
}

/// A `find_node` reply naming `contacts`.
fn reply_naming(contacts: &[Contact]) -> Vec<u8> {
    crate::wire::encode_nodes_response(MessageId([8; 20]), contacts).expect("the reply encodes")
}

#[test]
fn a_relay_goes_to_a_contact_that_answered_us_and_to_nobody_else() {
    let mut e = engine_with_contacts(Config::default());
    assert_eq!(e.admit_relay(Time::ZERO, CLIENT, addr(1), &ping()), Ok(()));
    let stranger: SocketAddr = "198.51.100.7:8468".parse().unwrap();
    assert_eq!(e.admit_relay(Time::ZERO, CLIENT, stranger, &ping()), Err(RelayRefusal::UnknownTarget));
    // A contact that only wrote to us, never answered: its address is unproven.
    let asker = Contact::new(id_at(0x40, 9), "198.51.100.8:8468".parse().unwrap());
    e.learn(Time::ZERO, asker);
    assert!(e.routing().contains(&asker.id), "it is in the table");
    assert_eq!(e.admit_relay(Time::ZERO, CLIENT, asker.addr, &ping()), Err(RelayRefusal::UnknownTarget));
}

#[test]
fn only_a_well_formed_request_is_relayed() {
    let mut e = engine_with_contacts(Config::default());
    let before = e.stats().malformed;
    let reply = reply_naming(&[]);
    for data in [b"not msgpack".to_vec(), Vec::new(), reply] {
        assert_eq!(e.admit_relay(Time::ZERO, CLIENT, addr(1), &data), Err(RelayRefusal::Malformed));
    }
    assert_eq!(e.stats().malformed, before + 3);
}

#[test]
fn the_contacts_a_relayed_reply_names_become_targets_but_never_tunnels_or_http_sources() {
    let mut e = engine_with_contacts(Config::default());
    let next = Contact::new(id_at(0x40, 2), "198.51.100.20:8468".parse().unwrap());
    assert_eq!(e.admit_relay(Time::ZERO, CLIENT, next.addr, &ping()), Err(RelayRefusal::UnknownTarget));
    let tunnel = Contact::new(id_at(0x40, 3), crate::tunnel::addr_of("https://worker.example/"));
    assert!(crate::tunnel::is_tunnel(tunnel.addr));
    e.note_relayed_reply(addr(1), &reply_naming(&[next, tunnel]));
    assert_eq!(e.admit_relay(Time::ZERO, CLIENT, next.addr, &ping()), Ok(()), "the client's next hop");
    assert_eq!(e.admit_relay(Time::ZERO, CLIENT, tunnel.addr, &ping()), Err(RelayRefusal::UnknownTarget));
    // Garbage, or a reply that names no contacts, teaches nothing.
    e.note_relayed_reply(addr(1), b"garbage");
    let ping_reply = Datagram::Response { id: MessageId([9; 20]), body: Value::Bin(vec![1; 20]) };
    e.note_relayed_reply(addr(1), &ping_reply.encode().unwrap());
    // A contact that answered us, but at an HTTP source or the unspecified address: never.
    for target in ["203.0.113.50:0", "0.0.0.0:8468"] {
        let target: SocketAddr = target.parse().unwrap();
        e.svc.tunnels.add_relay_target(target);
        assert_eq!(e.admit_relay(Time::ZERO, CLIENT, target, &ping()), Err(RelayRefusal::UnknownTarget), "{target}");
    }
}

#[test]
fn a_client_over_its_rate_is_limited_and_refused_targets_spend_it_too() {
    let mut e = engine_with_contacts(Config::default());
    let stranger: SocketAddr = "198.51.100.7:8468".parse().unwrap();
    let burst = e.svc.config.limits.rate.per_ip.burst as usize;
    // Every request is charged, whatever becomes of its target.
    for i in 0..burst {
        assert_eq!(e.admit_relay(Time::ZERO, CLIENT, stranger, &ping()), Err(RelayRefusal::UnknownTarget), "{i}");
    }
    assert_eq!(e.admit_relay(Time::ZERO, CLIENT, addr(1), &ping()), Err(RelayRefusal::Limited));
    // Another client is not.
    let other = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 44));
    assert_eq!(e.admit_relay(Time::ZERO, other, addr(1), &ping()), Ok(()));
}

#[test]
fn a_node_without_udp_says_so_for_good() {
    let mut e = engine_with_contacts(Config::default());
    e.declare_no_udp(Time::ZERO, "started with --no-udp");
    let v = e.reachability();
    assert_eq!((v.state, v.reason.as_str()), (crate::reach::Reachability::NoUdp, "started with --no-udp"));
}
