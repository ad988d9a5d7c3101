//! The commonest datagrams, a `find_node` reply and a `find_value` miss,
//! written from and read into contacts directly; and the requests that
//! carry only ids (`ping`, `find_node`, `find_value`) read without a tree.
//!
//! Each carries up to k `[id, ip, port]` triples (to an asker of ours, then
//! the answering node's own id, `proto-spec/EXTENSIONS.md` §7.1b); through
//! a [`Value`] tree that is three allocations and an IP string per contact
//! on both sides, and in a 2000-node simulation the tree was the largest
//! single cost.
//!
//! Contract: [`encode_nodes_response`] writes exactly the bytes of
//! `Datagram::response(id, contacts_value(contacts)).encode()`.
//! [`decode_nodes_response`] is a fast path, not a parser: it answers only
//! for a response whose body is an array of well-formed IPv4 triples (the
//! shape every peer sends), maybe ending in the answering node's id, and
//! then with exactly what `decode` followed by `parse_find_node_reply` and
//! `answering_node` gives. For anything else it answers `None` and
//! the caller takes the general path, which keeps every rejection and every
//! skipped entry where it was.
//!
//! [`Value`]: super::Value
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::message::{
    encode_response_with, Call, MessageId, WireError, HEADER_LEN, MAX_DATAGRAM, MIN_DATAGRAM, TYPE_RESPONSE,
};
use super::msgpack::{encode_array_len, encode_bin, encode_str, encode_unsigned};
use crate::contact::Contact;
use crate::id::{NodeId, ID_LEN};

/// The find_node response datagram for `contacts`, without a `Value` tree.
pub fn encode_nodes_response(id: MessageId, contacts: &[Contact]) -> Result<Vec<u8>, WireError> {
    encode_nodes_response_urls(id, contacts, |_| None, None)
}

/// [`encode_nodes_response`] where a contact for which `url_of` gives a URL
/// is written as the URL contact `[id, url, 0]` (see [`crate::tunnel`]), and
/// `named` (the answering node's own id, for an asker of ours) follows the
/// triples as a bare `bin 20` (`proto-spec/EXTENSIONS.md` §7.1b).
pub fn encode_nodes_response_urls<'a>(
    id: MessageId,
    contacts: &[Contact],
    url_of: impl Fn(&Contact) -> Option<&'a str>,
    named: Option<&NodeId>,
) -> Result<Vec<u8>, WireError> {
    // 42 bytes: array and bin headers, id, a 15-char IPv4 str, a uint16 port.
    encode_response_with(id, 3 + 22 + 42 * contacts.len(), |out| {
        encode_array_len(contacts.len() + usize::from(named.is_some()), out);
        for c in contacts {
            encode_array_len(3, out);
            encode_bin(&c.id.0, out);
            if let Some(url) = url_of(c) {
                encode_str(url.as_bytes(), out);
                encode_unsigned(0, out);
                continue;
            }
            match c.addr.ip() {
                IpAddr::V4(v4) => encode_str(ipv4_text(v4, &mut [0; 15]), out),
                ip => encode_str(ip.to_string().as_bytes(), out),
            }
            encode_unsigned(u64::from(c.addr.port()), out);
        }
        if let Some(me) = named {
            encode_bin(&me.0, out);
        }
    })
}

/// A nodes reply read by [`decode_nodes_response`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodesReply {
    /// The request it answers.
    pub id: MessageId,
    /// Its `[id, ip, port]` triples.
    pub contacts: Vec<Contact>,
    /// The id the answering node named after them (see [`answering_node`](super::answering_node)).
    pub named: Option<NodeId>,
}

/// A response datagram's id and contacts, if `datagram` is a response whose
/// body is an array of `[bin20, IPv4 str, port 1..=65535]`, maybe ending in
/// the answering node's `bin 20` id, and nothing else; `None` sends the
/// caller down the general path.
pub fn decode_nodes_response(datagram: &[u8]) -> Option<NodesReply> {
    if !(MIN_DATAGRAM..=MAX_DATAGRAM).contains(&datagram.len()) || datagram[0] != TYPE_RESPONSE {
        return None;
    }
    let id = MessageId(datagram[1..HEADER_LEN].try_into().ok()?);
    let mut r = Cursor(&datagram[HEADER_LEN..]);
    let n = match r.byte()? {
        m @ 0x90..=0x9f => usize::from(m & 0x0f),
        0xdc => usize::from(u16::from_be_bytes(r.array()?)),
        _ => return None,
    };
    // Each element takes at least 22 bytes: a larger count is a lie.
    if n > r.0.len() / 22 {
        return None;
    }
    let mut contacts = Vec::with_capacity(n);
    let mut named = None;
    for i in 0..n {
        match r.0.first() {
            Some(0xc4) if i + 1 == n => named = Some(r.named()?),
            _ => contacts.push(r.contact()?),
        }
    }
    r.0.is_empty().then_some(NodesReply { id, contacts, named })
}

/// The call in a request body of exactly `["ping", [bin20]]`,
/// `["find_node", [bin20, bin20]]` or `["find_value", [bin20, bin20]]`;
/// `None` for anything else, which the general path decodes (and for these
/// bodies it yields the same call).
pub(super) fn decode_id_call(body: &[u8]) -> Option<Call> {
    let mut r = Cursor(body);
    let 0x92 = r.byte()? else { return None };
    let name = match r.byte()? {
        m @ 0xa0..=0xbf => r.take(usize::from(m & 0x1f))?,
        _ => return None,
    };
    let args = r.byte()?;
    let mut id = || -> Option<NodeId> {
        let [0xc4, 20] = r.array()? else { return None };
        r.array().map(NodeId)
    };
    let call = match (name, args) {
        (b"ping", 0x91) => Call::Ping { sender: id()? },
        (b"find_node", 0x92) => Call::FindNode { sender: id()?, key: id()? },
        (b"find_value", 0x92) => Call::FindValue { sender: id()?, key: id()? },
        _ => return None,
    };
    r.0.is_empty().then_some(call)
}

/// The unread rest of a body.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn byte(&mut self) -> Option<u8> {
        Some(self.array::<1>()?[0])
    }

    /// A bare `bin 20`: the answering node's id.
    fn named(&mut self) -> Option<NodeId> {
        let [0xc4, 20] = self.array()? else { return None };
        self.array().map(NodeId)
    }

    /// `[bin20 id, fixstr IPv4, positive int port]`.
    fn contact(&mut self) -> Option<Contact> {
        let [0x93, 0xc4, 20] = self.array()? else { return None };
        let id: [u8; ID_LEN] = self.array()?;
        let ip = match self.byte()? {
            m @ 0xa0..=0xbf => parse_ipv4(self.take(usize::from(m & 0x1f))?)?,
            _ => return None,
        };
        // Any marker the general decoder reads as an integer that fits u16.
        let port = match self.byte()? {
            m @ 0x01..=0x7f => u16::from(m),
            0xcc => u16::from(self.byte()?),
            0xcd => u16::from_be_bytes(self.array()?),
            _ => return None,
        };
        (port != 0).then(|| Contact::new(NodeId(id), SocketAddr::new(IpAddr::V4(ip), port)))
    }
}

/// Dotted-decimal text of `ip` in `buf` (15 bytes always suffice).
pub(super) fn ipv4_text(ip: Ipv4Addr, buf: &mut [u8; 15]) -> &[u8] {
    let mut n = 0;
    let mut put = |b: u8| {
        buf[n] = b;
        n += 1;
    };
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            put(b'.');
        }
        if octet >= 100 {
            put(b'0' + octet / 100);
        }
        if octet >= 10 {
            put(b'0' + octet / 10 % 10);
        }
        put(b'0' + octet % 10);
    }
    &buf[..n]
}

/// `text` as an IPv4 address if it is canonical dotted decimal (what
/// [`ipv4_text`] writes); anything else, even what `Ipv4Addr::from_str`
/// would accept, is `None`.
fn parse_ipv4(text: &[u8]) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = text.split(|&b| b == b'.');
    for octet in &mut octets {
        *octet = parse_octet(parts.next()?)?;
    }
    parts.next().is_none().then_some(Ipv4Addr::from(octets))
}

/// 1 to 3 digits, no leading zero, at most 255.
fn parse_octet(digits: &[u8]) -> Option<u8> {
    if digits.is_empty() || digits.len() > 3 || (digits.len() > 1 && digits[0] == b'0') {
        return None;
    }
    let mut v: u16 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u16::from(d - b'0');
    }
    u8::try_from(v).ok()
}

#[cfg(test)]
#[path = "nodes_tests.rs"]
mod tests;
