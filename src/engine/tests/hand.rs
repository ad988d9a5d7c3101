//! Helpers for tests that drive one engine by hand: a local node and five
//! contacts placed around a few keys, and ways to feed it requests and
//! replies and read what it sends.

use super::*;

/// `[first, 0, ..., 0, last]`: ids placed by hand around a few keys.
pub(super) fn id_at(first: u8, last: u8) -> NodeId {
    let mut b = [0; 20];
    b[0] = first;
    b[19] = last;
    NodeId(b)
}

/// The local node of the hand-driven tests below, and its five contacts:
/// three next to `id_at(0, 0)`, two next to the local node. Around each key
/// the number of contacts closer than the local node is then known:
/// - `id_at(0, 0)`: 3 closer (the `0, i` ones);
/// - `id_at(0x80, 3)`: 2 closer (`0x80, 1` at distance 2, `0x80, 2` at 1; we are at 3);
/// - `id_at(0x80, 5)`: 1 closer (`0x80, 1` at 4; `0x80, 2` is at 7; we are at 5).
pub(super) const LOCAL: (u8, u8) = (0x80, 0);

pub(super) const CONTACTS: [(u8, u8); 5] = [(0, 1), (0, 2), (0, 3), (0x80, 1), (0x80, 2)];

/// An engine at `LOCAL` that has heard a ping from each of `CONTACTS`
/// (contact `i` at `addr(i + 1)`), its replies and hellos drained.
pub(super) fn engine_with_contacts(config: Config) -> Engine {
    engine_knowing(config, CONTACTS.len())
}

/// Like [`engine_with_contacts`], knowing only the first `n` of `CONTACTS`.
pub(super) fn engine_knowing(config: Config, n: usize) -> Engine {
    let mut e = Engine::new(id_at(LOCAL.0, LOCAL.1), config, Time::ZERO);
    for (i, &(first, last)) in CONTACTS.iter().enumerate().take(n) {
        // Known and settled, as if each had answered our queries twice,
        // `SETTLE` apart (see `routing::freshness`), without an rtt sample.
        let id = id_at(first, last);
        e.learn_answered(Time::ZERO, Contact::new(id, addr(i + 1)));
        e.svc.routing.mark_answered(&id, Time::ZERO + crate::routing::freshness::SETTLE);
    }
    assert_eq!(e.routing().len(), n);
    sent_requests(&mut e);
    e
}

/// The requests `e` has queued, decoded (replies are dropped).
pub(super) fn sent_requests(e: &mut Engine) -> Vec<Call> {
    let mut calls = Vec::new();
    while let Some(t) = e.poll_transmit() {
        if let Ok(Datagram::Request { call, .. }) = crate::wire::decode(&t.payload) {
            calls.push(call);
        }
    }
    calls
}

/// Contact 0 asks `e` for `key` at `now`; returns the reply.
pub(super) fn ask_find_value(e: &mut Engine, now: Time, key: Key) -> crate::wire::FindValueReply {
    let call = Call::FindValue { sender: id_at(CONTACTS[0].0, CONTACTS[0].1), key };
    crate::wire::parse_find_value_reply(&reply_to(e, now, 0, call)).unwrap()
}

/// Contact `asker` sends `e` the request `call` at `now`; returns the body of `e`'s reply.
pub(super) fn reply_to(e: &mut Engine, now: Time, asker: usize, call: Call) -> Value {
    reply_to_id(e, now, asker, MessageId([0xaa; 20]), call)
}

/// [`reply_to`] with the request's message id `msg` (a marked one, say).
pub(super) fn reply_to_id(e: &mut Engine, now: Time, asker: usize, msg: MessageId, call: Call) -> Value {
    e.handle_datagram(now, addr(asker + 1), &Datagram::Request { id: msg, call }.encode().unwrap());
    while let Some(t) = e.poll_transmit() {
        if let Ok(Datagram::Response { id, body }) = crate::wire::decode(&t.payload) {
            if id == msg {
                return body;
            }
        }
    }
    panic!("no reply");
}

/// The id of `CONTACTS[i]` (at `addr(i + 1)`).
pub(super) fn contact_id(i: usize) -> NodeId {
    id_at(CONTACTS[i].0, CONTACTS[i].1)
}

pub(super) fn known(i: usize) -> Contact {
    Contact::new(contact_id(i), addr(i + 1))
}

/// The requests `e` has queued with their destinations and message ids (replies are dropped).
pub(super) fn sent_to(e: &mut Engine) -> Vec<(SocketAddr, MessageId, Call)> {
    let mut out = Vec::new();
    while let Some(t) = e.poll_transmit() {
        if let Ok(Datagram::Request { id, call }) = crate::wire::decode(&t.payload) {
            out.push((t.to, id, call));
        }
    }
    out
}

/// Where the `find_node` requests among `sent` went, in order.
pub(super) fn find_nodes_to(sent: &[(SocketAddr, MessageId, Call)]) -> Vec<SocketAddr> {
    sent.iter().filter(|(_, _, c)| matches!(c, Call::FindNode { .. })).map(|(to, _, _)| *to).collect()
}

/// `from` answers `e`'s request `id`.
pub(super) fn answer(e: &mut Engine, now: Time, from: SocketAddr, id: MessageId, body: Value) {
    e.handle_datagram(now, from, &Datagram::Response { id, body }.encode().unwrap());
}

/// Contact `i` pings `e` (we hear from it); whatever `e` sends back or asks is returned.
pub(super) fn ping_from(e: &mut Engine, now: Time, i: usize) -> Vec<(SocketAddr, MessageId, Call)> {
    let call = Call::Ping { sender: contact_id(i) };
    e.handle_datagram(now, addr(i + 1), &Datagram::Request { id: MessageId([0xdd; 20]), call }.encode().unwrap());
    sent_to(e)
}

/// Contact `asker` asks `e` for the nodes closest to `key`; returns the ids listed, sorted.
pub(super) fn ask_find_node(e: &mut Engine, now: Time, asker: usize, key: Key) -> Vec<NodeId> {
    let call = Call::FindNode { sender: contact_id(asker), key };
    let body = reply_to(e, now, asker, call);
    let mut ids: Vec<NodeId> = crate::wire::parse_find_node_reply(&body).unwrap().into_iter().map(|c| c.id).collect();
    ids.sort();
    ids
}

pub(super) fn is_suspect(e: &Engine, id: &NodeId) -> bool {
    e.routing().buckets().iter().find_map(|b| b.get(id)).is_some_and(|entry| entry.suspect)
}

pub(super) fn sorted(mut ids: Vec<NodeId>) -> Vec<NodeId> {
    ids.sort();
    ids
}

/// The check `e` sent new requester `i` among `sent`, and contact `i`'s
/// answer to it: the `ping` if one went out (a requester without the node
/// mark, see `engine::peers`), else its `kadmesh_hello`, which is the check
/// of a node-marked requester.
pub(super) fn check_of(sent: &[(SocketAddr, MessageId, Call)], i: usize) -> (MessageId, Value) {
    check_answered_by(sent, i, contact_id(i))
}

/// Like [`check_of`], answered by node `by` (an impostor when not contact `i`).
pub(super) fn check_answered_by(sent: &[(SocketAddr, MessageId, Call)], i: usize, by: NodeId) -> (MessageId, Value) {
    let to_i = || sent.iter().filter(|(to, _, _)| *to == addr(i + 1));
    let pings: Vec<MessageId> =
        to_i().filter(|(_, _, c)| matches!(c, Call::Ping { .. })).map(|(_, id, _)| *id).collect();
    let hellos: Vec<MessageId> = to_i()
        .filter(|(_, _, c)| matches!(c, Call::Other { name, .. } if name == HELLO))
        .map(|(_, id, _)| *id)
        .collect();
    match (&pings[..], &hellos[..]) {
        ([ping], _) => (*ping, Value::Bin(by.0.to_vec())),
        ([], [hello]) => (*hello, crate::engine::inbound::hello_body(by)),
        _ => panic!("one check (a ping, or else a hello) to contact {i}, got {sent:?}"),
    }
}

/// Contact `i` pings `e` with the node mark on its message id (one of our
/// nodes); whatever `e` sends back or asks is returned.
pub(super) fn marked_ping_from(e: &mut Engine, now: Time, i: usize) -> Vec<(SocketAddr, MessageId, Call)> {
    let call = Call::Ping { sender: contact_id(i) };
    let id = crate::reach::marker::mark_node([0xdd; 20]);
    e.handle_datagram(now, addr(i + 1), &Datagram::Request { id, call }.encode().unwrap());
    sent_to(e)
}

/// A record write: a plain `store`, or `kadmesh_store_ttl` (what a peer
/// known to speak kadmesh gets, such as one whose hello was its check).
pub(super) fn is_store(call: &Call) -> bool {
    matches!(call, Call::Store { .. }) || matches!(call, Call::Other { name, .. } if name == STORE_TTL)
}
