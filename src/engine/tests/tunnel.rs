//! URL contacts in the engine (`engine::tunnel`): requests that came over
//! HTTP, a tunnel URL announced in `kadmesh_hello` and believed only once a
//! ping there answers with the announcer's id, and URLs learned from
//! contact lists.

use std::net::IpAddr;

use super::hand::*;
use super::*;
use crate::limits::{Limits, Rate, RateLimits};
use crate::tunnel::{addr_of, http_source};

const URL: &str = "https://worker-1.example/dht";

/// `CONTACTS[i]` says hello with `args`; the requests `e` sends in return.
fn hello_from(e: &mut Engine, now: Time, i: usize, args: Vec<Value>) -> Vec<(SocketAddr, MessageId, Call)> {
    let call = Call::Other { name: HELLO.into(), args };
    e.handle_datagram(now, addr(i + 1), &Datagram::Request { id: MessageId([0xee; 20]), call }.encode().unwrap());
    sent_to(e)
}

fn hello_args(i: usize, url: &str) -> Vec<Value> {
    vec![Value::Bin(contact_id(i).0.to_vec()), Value::Str(url.into())]
}

/// The ping `e` sent to `to`, if any.
fn ping_to(sent: &[(SocketAddr, MessageId, Call)], to: SocketAddr) -> Option<MessageId> {
    sent.iter().find(|(a, _, c)| *a == to && matches!(c, Call::Ping { .. })).map(|(_, id, _)| *id)
}

fn ping_request(sender: NodeId) -> Vec<u8> {
    Datagram::Request { id: MessageId([0x11; 20]), call: Call::Ping { sender } }.encode().unwrap().to_vec()
}

#[test]
fn an_announced_url_is_believed_once_a_ping_there_answers_with_the_announcers_id() {
    let mut e = engine_with_contacts(Config::default());
    let tunnel = addr_of(URL);
    let sent = hello_from(&mut e, Time::ZERO, 1, hello_args(1, URL));
    let ping = ping_to(&sent, tunnel).expect("the announced URL is pinged");
    assert_eq!(e.tunnel_url(tunnel), Some(URL));
    assert_eq!(e.routing().get(&contact_id(1)).map(|c| c.addr), Some(addr(2)), "not believed before the answer");

    answer(&mut e, Time::from_millis(50), tunnel, ping, Value::Bin(contact_id(1).0.to_vec()));
    assert_eq!(e.routing().get(&contact_id(1)).map(|c| c.addr), Some(tunnel), "now reached at its URL");

    // Announced again: already known there, nothing to check.
    let sent = hello_from(&mut e, Time::from_secs(1), 1, hello_args(1, URL));
    assert_eq!(ping_to(&sent, tunnel), None);
    // Heard over UDP from its old address, it stays at its tunnel address.
    ping_from(&mut e, Time::from_secs(2), 1);
    assert_eq!(e.routing().get(&contact_id(1)).map(|c| c.addr), Some(tunnel));
}

#[test]
fn a_url_answering_with_another_id_or_not_at_all_is_not_believed() {
    let mut e = engine_with_contacts(Config::default());
    let (other, silent) = ("https://other.example", "https://silent.example");
    let sent = hello_from(&mut e, Time::ZERO, 1, hello_args(1, other));
    let ping = ping_to(&sent, addr_of(other)).unwrap();
    answer(&mut e, Time::from_millis(50), addr_of(other), ping, Value::Bin(contact_id(2).0.to_vec()));
    assert_eq!(e.routing().get(&contact_id(1)).map(|c| c.addr), Some(addr(2)));

    let sent = hello_from(&mut e, Time::from_secs(1), 3, hello_args(3, silent));
    assert!(ping_to(&sent, addr_of(silent)).is_some());
    e.handle_timeout(Time::from_secs(60));
    assert_eq!(e.routing().get(&contact_id(3)).map(|c| c.addr), Some(addr(4)), "silence changes nothing");

    // A URL that cannot be a contact is not even pinged.
    let sent = hello_from(&mut e, Time::from_secs(61), 4, hello_args(4, "ftp://x.example"));
    assert!(sent.iter().all(|(_, _, c)| !matches!(c, Call::Ping { .. })), "{sent:?}");
}

#[test]
fn our_hello_carries_our_tunnel_url_normalized() {
    let config = Config { tunnel_url: Some("https://me.example/".into()), ..Config::default() };
    let mut e = engine_knowing(config, 0);
    let sent = ping_from(&mut e, Time::ZERO, 0);
    let hello = sent.iter().find_map(|(_, _, c)| match c {
        Call::Other { name, args } if name == HELLO => Some(args.clone()),
        _ => None,
    });
    let args = hello.expect("a new contact gets a hello");
    assert_eq!(args, vec![Value::Bin(e.id().0.to_vec()), Value::Str("https://me.example".into())]);
}

#[test]
fn a_bad_tunnel_url_is_a_config_error() {
    let bad = Config { tunnel_url: Some("ftp://me.example".into()), ..Config::default() };
    assert!(matches!(bad.validate(), Err(ConfigError::BadTunnelUrl(u)) if u == "ftp://me.example"));
    let good = Config { tunnel_url: Some("https://me.example".into()), ..Config::default() };
    assert_eq!(good.validate(), Ok(()));
}

#[test]
fn urls_in_a_contact_list_are_booked() {
    let mut e = engine_with_contacts(Config::default());
    let url = "http://listed.example";
    let _ = e.find_node(Time::ZERO, id_at(0, 0));
    let sent = sent_to(&mut e);
    let (to, id, _) = sent.iter().find(|(_, _, c)| matches!(c, Call::FindNode { .. })).unwrap();
    let entry = Value::Array(vec![Value::Bin(vec![0x42; 20]), Value::Str(url.into()), Value::Int(0)]);
    answer(&mut e, Time::from_millis(10), *to, *id, Value::Array(vec![entry]));
    assert_eq!(e.tunnel_url(addr_of(url)), Some(url));
    assert_eq!(e.add_tunnel(url), Some(addr_of(url)), "the same URL, the same address");
    assert_eq!(e.add_tunnel("not a url"), None);
}

#[test]
fn a_request_over_http_is_answered_to_its_http_source_and_teaches_no_contact() {
    let mut e = engine_with_contacts(Config::default());
    let client: IpAddr = "198.51.100.7".parse().unwrap();
    let stranger = NodeId([0x33; 20]);
    let msg = e.handle_http_request(Time::ZERO, client, &ping_request(stranger)).unwrap();
    assert_eq!(msg, MessageId([0x11; 20]));
    let t = e.poll_transmit().expect("a reply");
    assert_eq!(t.to, http_source(client));
    assert!(matches!(crate::wire::decode(&t.payload), Ok(Datagram::Response { id, body })
        if id == msg && body == Value::Bin(e.id().0.to_vec())));
    assert!(!e.routing().contains(&stranger), "an HTTP client may have no address");

    let before = e.stats().malformed;
    assert_eq!(e.handle_http_request(Time::ZERO, client, b"\x01junk"), Err(HttpRequestError::Malformed));
    assert_eq!(e.handle_http_request(Time::ZERO, client, b"\x00junk"), Err(HttpRequestError::Malformed));
    assert_eq!(e.stats().malformed, before + 2);
}

#[test]
fn requests_over_http_share_the_udp_rate_limit() {
    let one = Rate { per_sec: 1, burst: 1 };
    let rate = RateLimits { per_ip: one, ..RateLimits::default() };
    let mut e = engine_with_contacts(Config { limits: Limits { rate, ..Limits::default() }, ..Config::default() });
    let client: IpAddr = "198.51.100.7".parse().unwrap();
    assert!(e.handle_http_request(Time::ZERO, client, &ping_request(NodeId([0x33; 20]))).is_ok());
    let over = e.handle_http_request(Time::ZERO, client, &ping_request(NodeId([0x33; 20])));
    assert_eq!(over, Err(HttpRequestError::Limited));
    // The same budget as UDP: a datagram from that IP is dropped too.
    let _ = sent_to(&mut e);
    e.handle_datagram(Time::ZERO, SocketAddr::new(client, 4000), &ping_request(NodeId([0x33; 20])));
    assert!(e.poll_transmit().is_none());
}
