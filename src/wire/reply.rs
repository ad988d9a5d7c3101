//! Reply bodies of the built-in procedures: builders for the answering side
//! and parsers for the calling side.
//!
//! Contract: builders produce the msgpack shape Python's `KademliaProtocol`
//! returns (so umsgpack packs identical bytes); parsers accept everything
//! Python sends and return [`WireError::BadReply`] for any other shape. In a
//! contact list, unusable entries are dropped rather than failing the reply,
//! as one bad peer should not hide the good ones.
use std::net::{IpAddr, SocketAddr, SocketAddrV6};

use super::message::{id_arg, WireError};
use super::msgpack::Value;
use super::nodes::ipv4_text;
use crate::contact::Contact;
use crate::id::NodeId;
use crate::tunnel;

/// The answer to `find_value`: the value, or the closest contacts known.
#[derive(Clone, Debug, PartialEq)]
pub enum FindValueReply {
    /// The callee holds the key: its value.
    Value(Value),
    /// The callee does not: the closest contacts it knows.
    Nodes(Vec<Contact>),
}

/// The `find_node` reply (and `find_value` miss): `[[id, ip, port], ...]`,
/// as Python's `list(map(tuple, neighbors))`.
pub fn contacts_value(contacts: &[Contact]) -> Value {
    Value::Array(
        contacts
            .iter()
            .map(|c| {
                Value::Array(vec![
                    Value::Bin(c.id.0.to_vec()),
                    Value::Str(ip_text(c.addr.ip())),
                    Value::Int(i64::from(c.addr.port())),
                ])
            })
            .collect(),
    )
}

/// An address as text, IPv4 without going through `fmt`: `to_string` was a
/// visible share of a large simulation's time.
pub(crate) fn ip_text(ip: IpAddr) -> String {
    let IpAddr::V4(v4) = ip else { return ip.to_string() };
    ipv4_text(v4, &mut [0; 15]).iter().map(|&b| char::from(b)).collect()
}

/// The `find_value` hit: `{"value": value}`.
pub fn found_value(value: &Value) -> Value {
    found_value_named(value, None)
}

/// The `find_value` hit, with `named` (our own id) under `"node"` for an
/// asker carrying a mark (`proto-spec/EXTENSIONS.md` §7.1b), as a nodes
/// reply names its sender after the contacts. A reader of the plain hit
/// (Python's `response['value']`, [`parse_find_value_reply`]) takes only
/// `"value"`.
pub fn found_value_named(value: &Value, named: Option<&NodeId>) -> Value {
    let mut map = vec![(Value::Str("value".to_owned()), value.clone())];
    if let Some(id) = named {
        map.push((Value::Str("node".to_owned()), Value::Bin(id.0.to_vec())));
    }
    Value::Map(map)
}

/// The `stun` reply: the caller's address as Python's socket reports it,
/// `[ip, port]` for IPv4 and `[ip, port, flowinfo, scope_id]` for IPv6.
pub fn stun_value(addr: SocketAddr) -> Value {
    let ip = Value::Str(addr.ip().to_string());
    let port = Value::Int(i64::from(addr.port()));
    match addr {
        SocketAddr::V4(_) => Value::Array(vec![ip, port]),
        SocketAddr::V6(a) => {
            Value::Array(vec![ip, port, Value::Int(i64::from(a.flowinfo())), Value::Int(i64::from(a.scope_id()))])
        }
    }
}

fn bad(rpc: &'static str, expected: &'static str) -> WireError {
    WireError::BadReply { rpc, expected }
}

/// The `ping` reply: the answering node's id.
pub fn parse_ping_reply(body: &Value) -> Result<NodeId, WireError> {
    id_arg("ping", "reply", body).map_err(|_| bad("ping", "a 20-byte bin node id"))
}

/// The `store` reply: Python always answers `true`.
pub fn parse_store_reply(body: &Value) -> Result<bool, WireError> {
    body.as_bool().ok_or(bad("store", "a bool"))
}

/// The `find_node` reply. Entries that are not `[bin20, ip str, port 1..=65535]`
/// or a URL contact `[bin20, url str, 0]` (see [`crate::tunnel`]) are
/// skipped; a body that is not an array is an error.
pub fn parse_find_node_reply(body: &Value) -> Result<Vec<Contact>, WireError> {
    let entries = body.as_array().ok_or(bad("find_node", "an array of [id, ip, port]"))?;
    Ok(entries.iter().filter_map(parse_contact).collect())
}

/// The id a kadmesh node names after the triples of its nodes reply (a
/// `find_node` reply or a `find_value` miss) to a request carrying our mark
/// (`proto-spec/EXTENSIONS.md` §7.1b): the body's last element, a bare
/// `bin 20`, or a value hit's `"node"` ([`found_value_named`]).
/// [`parse_find_node_reply`] skips it like any entry that is not a contact,
/// so a kadmesh node that predates it reads the reply unchanged.
pub fn answering_node(body: &Value) -> Option<NodeId> {
    let name = match body {
        Value::Map(_) => body.as_map_get("node")?,
        _ => body.as_array()?.last()?,
    };
    NodeId::from_slice(name.as_bytes()?)
}

/// One `[id, ip, port]` triple, or `None` when any part is unusable.
fn parse_contact(entry: &Value) -> Option<Contact> {
    let [id, ip, port] = entry.as_array()? else {
        return None;
    };
    let id = NodeId::from_slice(id.as_bytes()?)?;
    let port = u16::try_from(port.as_int()?).ok()?;
    let text = ip.as_str()?;
    if port == 0 {
        let url = tunnel::normalize_url(text)?;
        return Some(Contact::new(id, tunnel::addr_of(url)));
    }
    // Tunnel addresses stand for URLs we were told; nobody may name one as an IP.
    let ip: IpAddr = text.parse().ok().filter(|ip| !tunnel::is_reserved(*ip))?;
    Some(Contact::new(id, SocketAddr::new(ip, port)))
}

/// The URLs of the URL contacts in a contact list (see [`crate::tunnel`]),
/// for the caller's [`tunnel::TunnelBook`]; empty for any other body.
pub fn tunnel_urls(body: &Value) -> Vec<&str> {
    let Some(entries) = body.as_array() else { return Vec::new() };
    entries
        .iter()
        .filter_map(|e| match e.as_array()? {
            [_, Value::Str(url), Value::Int(0)] => Some(url.as_str()),
            _ => None,
        })
        .collect()
}

/// The `find_value` reply: `{"value": v}` on a hit, a contact list otherwise.
pub fn parse_find_value_reply(body: &Value) -> Result<FindValueReply, WireError> {
    match body {
        Value::Map(_) => body
            .as_map_get("value")
            .map(|v| FindValueReply::Value(v.clone()))
            .ok_or(bad("find_value", "a map with a \"value\" key")),
        Value::Array(_) => parse_find_node_reply(body).map(FindValueReply::Nodes),
        _ => Err(bad("find_value", "a {\"value\": v} map or a contact array")),
    }
}

/// The `stun` reply: `[ip, port, ...]`, the address the peer saw us at. For
/// IPv6, a `%zone` suffix and the optional flowinfo/scope_id are honoured.
pub fn parse_stun_reply(body: &Value) -> Result<SocketAddr, WireError> {
    let err = || bad("stun", "[ip str, port int, ...]");
    let parts = body.as_array().filter(|p| p.len() >= 2).ok_or_else(err)?;
    let ip_text = parts[0].as_str().ok_or_else(err)?;
    let port = parts[1].as_int().and_then(|p| u16::try_from(p).ok()).ok_or_else(err)?;
    let host = ip_text.split('%').next().unwrap_or(ip_text);
    match host.parse::<IpAddr>().map_err(|_| err())? {
        IpAddr::V4(ip) => Ok(SocketAddr::new(IpAddr::V4(ip), port)),
        IpAddr::V6(ip) => {
            let extra =
                |i: usize| parts.get(i).and_then(Value::as_int).and_then(|v| u32::try_from(v).ok()).unwrap_or(0);
            Ok(SocketAddr::V6(SocketAddrV6::new(ip, port, extra(2), extra(3))))
        }
    }
}

#[cfg(test)]
#[path = "reply_tests.rs"]
mod tests;
