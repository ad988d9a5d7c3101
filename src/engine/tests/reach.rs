//! Reachability detection and client mode (`engine::dialback`,
//! `crate::reach`): sixteen public nodes and one `auto` node, with or without a
//! reply-only NAT in front of it.

use super::*;
use crate::reach::recent::RecentPeers;
use crate::reach::{ReachMode, Reachability};

const PUBLIC: usize = 16;
/// NAT mapping lifetime of the test network, and of the auto node's view.
const WINDOW: Duration = Duration::from_secs(1);
const INTERVAL: Duration = Duration::from_secs(60);

fn auto() -> Config {
    let mut c = Config::default();
    c.reach.mode = ReachMode::Auto;
    c.reach.nat_window = WINDOW;
    c.reach.interval = INTERVAL;
    c
}

/// Sixteen public nodes that know each other, and node `PUBLIC` in `mode`,
/// bootstrapped through node 0, behind a reply-only NAT if `behind_nat`.
fn network(config: Config, behind_nat: bool) -> Net {
    let mut net = Net::new(PUBLIC, |_| Config::default());
    net.bootstrap_all();
    let a = net.add(config);
    if behind_nat {
        net.nat.insert(a, RecentPeers::new(1024, WINDOW));
    }
    let seed = [addr(0)];
    let _ = net.run(a, |e, now| e.bootstrap(now, &seed), Duration::from_secs(30));
    net.advance(Duration::from_secs(10));
    net
}

/// Nodes whose routing table holds node `a`.
fn holders_of(net: &Net, a: usize) -> Vec<usize> {
    let id = net.nodes[a].id();
    (0..PUBLIC).filter(|&i| net.nodes[i].routing().contains(&id)).collect()
}

#[test]
fn a_reachable_node_proves_it_is_public() {
    let net = network(auto(), false);
    let a = PUBLIC;
    // It has talked to everyone's DHT port while joining, but the probes
    // come from other ports: the first round proves it.
    let v = net.nodes[a].reachability().clone();
    assert_eq!((v.state, v.assumed), (Reachability::Public, false), "{v:?}");
    assert!(v.reason.contains("arrived"), "{}", v.reason);
    assert_eq!(v.observed, Some(addr(a)), "the helpers' view of our address");
    assert!(!holders_of(&net, a).is_empty(), "a public node is inserted");
}

#[test]
fn a_nated_node_that_talked_to_every_node_is_found_out_in_its_first_round() {
    let net = network(auto(), true);
    let a = PUBLIC;
    // Joining sent to all sixteen within the NAT window: a probe from any
    // of their DHT ports would pass the NAT. From their other ports none does.
    let v = net.nodes[a].reachability().clone();
    assert_eq!((v.state, v.assumed), (Reachability::Nat, false), "{v:?}");
    assert!(net.nodes[a].is_client());
    assert_eq!(holders_of(&net, a), Vec::<usize>::new(), "never inserted, never handed out");
}

#[test]
fn a_probe_leaves_from_another_port() {
    let mut e = helper_engine();
    let target = SocketAddr::from(([198, 51, 100, 9], 5000));
    let args = vec![Value::Bin(contact_id(0).0.to_vec()), crate::wire::stun_value(target), Value::Bin(vec![2; 8])];
    request(&mut e, Time::from_secs(1), addr(1), DIALBACK_PROBE, args);
    let sent: Vec<Transmit> = std::iter::from_fn(|| e.poll_transmit()).collect();
    let probe = sent.iter().find(|t| t.to == target).expect("a probe to the target");
    assert!(probe.from_other_port, "a probe from our DHT port passes the target's NAT if it talked to us");
    assert!(sent.iter().filter(|t| t.to != target).all(|t| !t.from_other_port), "the reply leaves from our port");
}

#[test]
fn a_helper_with_no_third_node_probes_from_its_other_port() {
    let mut e = super::hand::engine_knowing(Config::default(), 0);
    let requester = SocketAddr::from(([192, 0, 2, 7], 4000));
    request(&mut e, Time::from_secs(1), requester, DIALBACK, vec![Value::Bin(vec![0x42; 20]), Value::Bin(vec![1; 8])]);
    let sent: Vec<Transmit> = std::iter::from_fn(|| e.poll_transmit()).collect();
    assert_eq!(sent.len(), 2, "the probe and the answer: {sent:?}");
    assert!(sent.iter().all(|t| t.to == requester));
    let probe = sent.iter().find(|t| t.from_other_port).expect("a probe from the other port");
    assert!(matches!(crate::wire::decode(&probe.payload), Ok(crate::wire::Datagram::Request { .. })));
    let answer = sent.iter().find(|t| !t.from_other_port).expect("the answer from our port");
    let body = match crate::wire::decode(&answer.payload) {
        Ok(crate::wire::Datagram::Response { body, .. }) => body,
        other => panic!("{other:?}"),
    };
    assert_eq!(body, Value::Array(vec![Value::Bool(true), crate::wire::stun_value(requester)]));
}

#[test]
fn a_node_behind_a_reply_only_nat_says_nat_and_stays_out_of_tables() {
    let mut net = network(auto(), true);
    let a = PUBLIC;
    net.advance(INTERVAL);
    let v = net.nodes[a].reachability().clone();
    assert_eq!(v.state, Reachability::Nat, "{v:?}");
    assert!(v.reason.contains("none arrived"), "{}", v.reason);
    assert!(net.nodes[a].is_client());
    // Its lookups still work.
    let key = NodeId::for_key("worker:nat");
    assert!(net.put(a, key, Value::Str("v".into())).stored > 0);
    assert_eq!(net.get(a, key), Some(Value::Str("v".into())));
    assert_eq!(holders_of(&net, a), Vec::<usize>::new(), "a client stays out of every table");
}

#[test]
fn a_client_is_promoted_once_probes_arrive_and_demoted_when_they_stop() {
    let mut net = network(auto(), true);
    let a = PUBLIC;
    net.advance(INTERVAL);
    assert_eq!(net.nodes[a].reachability().state, Reachability::Nat);
    net.nat.remove(&a);
    net.advance(INTERVAL);
    let v = net.nodes[a].reachability().clone();
    assert_eq!((v.state, v.assumed), (Reachability::Public, false), "promoted on proof: {v:?}");
    assert!(!net.nodes[a].is_client());
    net.advance(Duration::from_secs(5));
    assert!(!holders_of(&net, a).is_empty(), "announced itself once public");
    net.nat.insert(a, RecentPeers::new(1024, WINDOW));
    net.advance(INTERVAL);
    assert_eq!(net.nodes[a].reachability().state, Reachability::Nat, "demoted");
    assert!(net.nodes[a].is_client());
    // Each marked request makes the peer it reaches drop it from its table.
    let key = NodeId::for_key("worker:demoted");
    assert!(net.put(a, key, Value::Str("v".into())).stored > 0);
    let forgotten: u64 = (0..PUBLIC).map(|i| net.nodes[i].stats().clients_forgotten).sum();
    assert!(forgotten > 0, "peers that held it while it was public dropped it");
}

#[test]
fn a_client_is_never_inserted_nor_handed_out() {
    let mut config = Config::default();
    config.reach.mode = ReachMode::Client;
    let mut net = network(config, false);
    let c = PUBLIC;
    let key = NodeId::for_key("worker:client");
    assert!(net.put(c, key, Value::Str("x".into())).stored > 0);
    assert_eq!(net.get(0, key), Some(Value::Str("x".into())), "its puts are readable by others");
    assert_eq!(net.get(c, key), Some(Value::Str("x".into())));
    assert_eq!(holders_of(&net, c), Vec::<usize>::new());
    let id = net.nodes[c].id();
    for i in 0..PUBLIC {
        let handed = net.nodes[i].closest(&id, 20);
        assert!(handed.iter().all(|x| x.id != id), "node {i} would hand the client out");
    }
    assert!(net.nodes[0].stats().client_requests > 0);
    assert_eq!(net.nodes[c].reachability().state, Reachability::Unknown, "a client does not detect");
}

#[test]
fn a_public_node_does_not_detect_nor_mark() {
    let net = network(Config::default(), false);
    let a = PUBLIC;
    assert!(!net.nodes[a].is_client());
    assert_eq!(net.nodes[a].reachability().state, Reachability::Unknown);
    assert_eq!(net.nodes[0].stats().client_requests, 0);
    assert!(!holders_of(&net, a).is_empty());
}

/// An engine knowing `CONTACTS`, each of them known to speak kadmesh.
fn helper_engine() -> Engine {
    let mut e = engine_with_contacts(Config::default());
    for i in 0..CONTACTS.len() {
        let hello = Call::Other { name: HELLO.into(), args: vec![Value::Bin(contact_id(i).0.to_vec())] };
        let _ = reply_to(&mut e, Time::ZERO, i, hello);
    }
    e
}

fn request(e: &mut Engine, now: Time, from: SocketAddr, name: &str, args: Vec<Value>) -> MessageId {
    let msg = MessageId([0x5a; 20]);
    let call = Call::Other { name: name.into(), args };
    e.handle_datagram(now, from, &crate::wire::Datagram::Request { id: msg, call }.encode().unwrap());
    msg
}

fn responses(e: &mut Engine) -> Vec<(SocketAddr, Value)> {
    let mut out = Vec::new();
    while let Some(t) = e.poll_transmit() {
        if let Ok(crate::wire::Datagram::Response { body, .. }) = crate::wire::decode(&t.payload) {
            out.push((t.to, body));
        }
    }
    out
}

#[test]
fn a_dialback_probes_only_the_requesters_own_address_and_is_rate_limited() {
    let mut e = helper_engine();
    let stranger = SocketAddr::from(([192, 0, 2, 7], 4000));
    let nonce = Value::Bin(vec![1; 8]);
    let args = || vec![Value::Bin(vec![0x42; 20]), nonce.clone()];
    let msg = request(&mut e, Time::from_secs(1), stranger, DIALBACK, args());
    let sent = sent_to(&mut e);
    assert_eq!(sent.len(), 1, "one probe request, to one third node: {sent:?}");
    let (third, probe_id, Call::Other { name, args: probe_args }) = &sent[0] else { panic!("{sent:?}") };
    assert_eq!(name, DIALBACK_PROBE);
    assert_eq!(probe_args[1], crate::wire::stun_value(stranger), "the target is where the request came from");
    assert_ne!(*third, stranger);
    answer(&mut e, Time::from_secs(1), *third, *probe_id, Value::Bool(true));
    let replies = responses(&mut e);
    assert_eq!(replies, vec![(stranger, Value::Array(vec![Value::Bool(true), crate::wire::stun_value(stranger)]))]);
    let _ = msg;
    // The same IP again (another port) within the spacing: refused at once.
    let again = SocketAddr::from(([192, 0, 2, 7], 4001));
    request(&mut e, Time::from_secs(2), again, DIALBACK, args());
    let out = responses(&mut e);
    assert_eq!(out, vec![(again, Value::Array(vec![Value::Bool(false), crate::wire::stun_value(again)]))]);
    // Malformed (a nonce of the wrong size): silence, as for any extension.
    request(&mut e, Time::from_secs(30), stranger, DIALBACK, vec![Value::Bin(vec![0x42; 20]), Value::Bin(vec![1; 3])]);
    assert!(e.poll_transmit().is_none());
}

#[test]
fn a_probe_is_sent_only_for_a_known_contact_and_within_budget() {
    let mut e = helper_engine();
    let target = SocketAddr::from(([198, 51, 100, 9], 5000));
    let args =
        |sender: NodeId| vec![Value::Bin(sender.0.to_vec()), crate::wire::stun_value(target), Value::Bin(vec![2; 8])];
    // A stranger cannot make us probe anything: no reply, nothing sent.
    request(&mut e, Time::from_secs(1), SocketAddr::from(([192, 0, 2, 1], 1)), DIALBACK_PROBE, args(NodeId([9; 20])));
    assert!(e.poll_transmit().is_none());
    // Nor a contact claiming another's id from its own address.
    request(&mut e, Time::from_secs(1), addr(2), DIALBACK_PROBE, args(contact_id(0)));
    assert!(e.poll_transmit().is_none());
    // A contact at its own address: one probe, to the target, no larger than the request.
    request(&mut e, Time::from_secs(1), addr(1), DIALBACK_PROBE, args(contact_id(0)));
    let mut sent = Vec::new();
    while let Some(t) = e.poll_transmit() {
        sent.push(t);
    }
    assert_eq!(sent.len(), 2, "the probe and the reply");
    let probe = sent.iter().find(|t| t.to == target).expect("a probe to the target");
    assert!(probe.payload.len() < 100);
    // The same target again within the spacing: refused, nothing sent to it.
    request(&mut e, Time::from_secs(2), addr(1), DIALBACK_PROBE, args(contact_id(0)));
    assert_eq!(responses(&mut e), vec![(addr(1), Value::Bool(false))]);
}
