//! rpcudp framing and the Kademlia request shapes.
//!
//! Owns the datagram layout (`type byte | 20-byte message id | msgpack body`),
//! the request body `[name, [args...]]` and its typed form [`Call`], and the
//! [`WireError`] every wire-level rejection maps to. Reply bodies (builders
//! and parsers) live in `reply.rs`.
//!
//! Contract: [`decode`] takes any bytes and returns a [`Datagram`] or a typed
//! error, without panicking; [`Datagram::encode`] returns exactly the bytes
//! Python's `rpcudp` sends for the same message, and `decode(encode(d)) == d`
//! for every datagram that `decode` produced.
use rand::Rng;

use super::msgpack::{decode_value, encode_value, DecodeError, Value};
use crate::id::{Key, NodeId, ID_LEN};

/// Python refuses to send a request whose msgpack body exceeds this; we refuse
/// to send or accept one either.
pub const MAX_REQUEST_BODY: usize = 8192;
/// Largest datagram we accept at all (largest UDP payload over IPv4).
pub const MAX_DATAGRAM: usize = 65_507;
/// Type byte + message id.
pub const HEADER_LEN: usize = 21;
/// rpcudp ignores anything shorter: the header plus a one-byte body.
pub const MIN_DATAGRAM: usize = HEADER_LEN + 1;

/// Type byte of a request.
const TYPE_REQUEST: u8 = 0x00;
/// Type byte of a response.
pub(super) const TYPE_RESPONSE: u8 = 0x01;

/// The 20-byte id that pairs a response with its request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub [u8; 20]);

impl MessageId {
    /// A fresh random id (Python uses `sha1(os.urandom(32))`, i.e. 20 random
    /// bytes; only uniqueness matters).
    pub fn random<R: Rng + ?Sized>(rng: &mut R) -> Self {
        let mut b = [0u8; 20];
        rng.fill(&mut b);
        MessageId(b)
    }
}

/// One decoded datagram.
#[derive(Clone, Debug, PartialEq)]
pub enum Datagram {
    /// Type byte 0x00.
    Request {
        /// Fresh per request; the response echoes it.
        id: MessageId,
        /// The procedure and its arguments.
        call: Call,
    },
    /// Type byte 0x01: the body is whatever the remote procedure returned.
    Response {
        /// The id of the request this answers.
        id: MessageId,
        /// The procedure's return value.
        body: Value,
    },
}

/// A remote procedure call as carried in a request: `[name, [args...]]`.
#[derive(Clone, Debug, PartialEq)]
pub enum Call {
    /// `ping(sender)`: liveness check; answered with the callee's id.
    Ping {
        /// The caller's node id.
        sender: NodeId,
    },
    /// `store(sender, key, value)`: keep `value` under `key`; answered `true`.
    Store {
        /// The caller's node id.
        sender: NodeId,
        /// The record key (SHA-1 of the key string).
        key: Key,
        /// The value to store (Python sends int, float, bool, str or bin).
        value: Value,
    },
    /// `find_node(sender, key)`: answered with the contacts closest to `key`.
    FindNode {
        /// The caller's node id.
        sender: NodeId,
        /// The id being looked up.
        key: Key,
    },
    /// `find_value(sender, key)`: answered `{"value": v}` or like `find_node`.
    FindValue {
        /// The caller's node id.
        sender: NodeId,
        /// The record key being looked up.
        key: Key,
    },
    /// `stun()`: answered with the caller's address as the callee saw it.
    Stun,
    /// Any other procedure name (extensions); the args are kept as-is.
    /// Constructing one with a built-in name is not canonical: it encodes
    /// fine but decodes as the typed variant.
    Other {
        /// The procedure name.
        name: String,
        /// The arguments, in wire order.
        args: Vec<Value>,
    },
}

/// Why a datagram or reply body was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Fewer than [`MIN_DATAGRAM`] bytes; rpcudp drops these silently.
    #[error("datagram too short: {0} bytes, need at least 22")]
    TooShort(usize),
    /// More than [`MAX_DATAGRAM`] bytes (received or about to be sent).
    #[error("datagram too long: {0} bytes, limit is {MAX_DATAGRAM}")]
    TooLong(usize),
    /// The first byte is neither 0x00 (request) nor 0x01 (response); rpcudp
    /// ignores such datagrams.
    #[error("unknown datagram type byte 0x{0:02x}")]
    UnknownType(u8),
    /// The body after the header is not a single valid msgpack value.
    #[error(transparent)]
    Msgpack(#[from] DecodeError),
    /// A request body over [`MAX_REQUEST_BODY`] bytes; Python's sender
    /// raises `MalformedMessage` rather than send it.
    #[error("request body is {0} bytes, limit is {MAX_REQUEST_BODY}")]
    RequestTooLarge(usize),
    /// A request body that is not a 2-element array `[name, args]` (rpcudp
    /// raises `MalformedMessage` and does not reply).
    #[error("request body is not a [name, args] pair")]
    NotACall,
    /// The procedure name in a request is not a msgpack str.
    #[error("procedure name is not a str")]
    NameNotStr,
    /// The argument list in a request is not a msgpack array.
    #[error("procedure arguments are not an array")]
    ArgsNotArray,
    /// A built-in procedure called with the wrong number of arguments (Python
    /// raises `TypeError` inside the handler and sends no reply).
    #[error("{rpc} takes {expected} arguments, got {got}")]
    WrongArity {
        /// The procedure name.
        rpc: &'static str,
        /// How many arguments it takes.
        expected: usize,
        /// How many the request carried.
        got: usize,
    },
    /// A node id or key argument that is not bin of exactly 20 bytes.
    #[error("{rpc}: argument `{arg}` is not a 20-byte bin")]
    BadId {
        /// The procedure name.
        rpc: &'static str,
        /// Which argument (`sender` or `key`).
        arg: &'static str,
    },
    /// A reply body that does not have the shape the procedure returns.
    #[error("{rpc} reply: expected {expected}")]
    BadReply {
        /// The procedure whose reply this was.
        rpc: &'static str,
        /// The shape we expected, in words.
        expected: &'static str,
    },
}

/// Parses one received datagram.
pub fn decode(datagram: &[u8]) -> Result<Datagram, WireError> {
    if datagram.len() < MIN_DATAGRAM {
        return Err(WireError::TooShort(datagram.len()));
    }
    if datagram.len() > MAX_DATAGRAM {
        return Err(WireError::TooLong(datagram.len()));
    }
    let mut raw_id = [0u8; 20];
    raw_id.copy_from_slice(&datagram[1..HEADER_LEN]);
    let id = MessageId(raw_id);
    let body = &datagram[HEADER_LEN..];
    match datagram[0] {
        TYPE_REQUEST => {
            // Checked before parsing so oversized requests cost no decoding.
            if body.len() > MAX_REQUEST_BODY {
                return Err(WireError::RequestTooLarge(body.len()));
            }
            if let Some(call) = super::nodes::decode_id_call(body) {
                return Ok(Datagram::Request { id, call });
            }
            let call = Call::from_body(decode_value(body)?)?;
            Ok(Datagram::Request { id, call })
        }
        TYPE_RESPONSE => Ok(Datagram::Response { id, body: decode_value(body)? }),
        other => Err(WireError::UnknownType(other)),
    }
}

impl Datagram {
    /// A request datagram.
    pub fn request(id: MessageId, call: Call) -> Self {
        Datagram::Request { id, call }
    }

    /// A response datagram.
    pub fn response(id: MessageId, body: Value) -> Self {
        Datagram::Response { id, body }
    }

    /// The message id, whichever the direction.
    pub fn id(&self) -> MessageId {
        match self {
            Datagram::Request { id, .. } | Datagram::Response { id, .. } => *id,
        }
    }

    /// The bytes to send; fails when Python would refuse the request (body
    /// over [`MAX_REQUEST_BODY`]) or the datagram exceeds [`MAX_DATAGRAM`].
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let (id, call) = match self {
            Datagram::Request { id, call } => (id, call),
            Datagram::Response { id, body } => return encode_response_with(*id, 64, |out| encode_value(body, out)),
        };
        let mut out = Vec::with_capacity(64);
        out.push(TYPE_REQUEST);
        out.extend_from_slice(&id.0);
        encode_value(&call.to_body(), &mut out);
        let body_len = out.len() - HEADER_LEN;
        if body_len > MAX_REQUEST_BODY {
            return Err(WireError::RequestTooLarge(body_len));
        }
        checked_len(out)
    }
}

/// A response datagram whose body `write_body` appends (`body_capacity`
/// is a size hint); fails like [`Datagram::encode`] when too long. Lets a
/// reply be written straight from its source data, without a [`Value`].
pub(super) fn encode_response_with(
    id: MessageId,
    body_capacity: usize,
    write_body: impl FnOnce(&mut Vec<u8>),
) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::with_capacity(HEADER_LEN + body_capacity);
    out.push(TYPE_RESPONSE);
    out.extend_from_slice(&id.0);
    write_body(&mut out);
    checked_len(out)
}

fn checked_len(datagram: Vec<u8>) -> Result<Vec<u8>, WireError> {
    if datagram.len() > MAX_DATAGRAM {
        return Err(WireError::TooLong(datagram.len()));
    }
    Ok(datagram)
}

impl Call {
    /// The procedure name as sent on the wire (Python calls `rpc_<name>`).
    pub fn name(&self) -> &str {
        match self {
            Call::Ping { .. } => "ping",
            Call::Store { .. } => "store",
            Call::FindNode { .. } => "find_node",
            Call::FindValue { .. } => "find_value",
            Call::Stun => "stun",
            Call::Other { name, .. } => name,
        }
    }

    /// The caller's node id, for the calls that carry one (all built-ins
    /// except `stun`; extensions are opaque).
    pub fn sender(&self) -> Option<NodeId> {
        match self {
            Call::Ping { sender }
            | Call::Store { sender, .. }
            | Call::FindNode { sender, .. }
            | Call::FindValue { sender, .. } => Some(*sender),
            Call::Stun | Call::Other { .. } => None,
        }
    }

    /// The argument list, in wire order.
    pub fn args(&self) -> Vec<Value> {
        let id = |n: &NodeId| Value::Bin(n.0.to_vec());
        match self {
            Call::Ping { sender } => vec![id(sender)],
            Call::Store { sender, key, value } => vec![id(sender), id(key), value.clone()],
            Call::FindNode { sender, key } | Call::FindValue { sender, key } => {
                vec![id(sender), id(key)]
            }
            Call::Stun => Vec::new(),
            Call::Other { args, .. } => args.clone(),
        }
    }

    /// The request body `[name, [args...]]`.
    pub fn to_body(&self) -> Value {
        Value::Array(vec![Value::Str(self.name().to_owned()), Value::Array(self.args())])
    }

    /// Parses a request body `[name, [args...]]`.
    pub fn from_body(body: Value) -> Result<Call, WireError> {
        let Value::Array(parts) = body else {
            return Err(WireError::NotACall);
        };
        let [name, args] = <[Value; 2]>::try_from(parts).map_err(|_| WireError::NotACall)?;
        let Value::Str(name) = name else {
            return Err(WireError::NameNotStr);
        };
        let Value::Array(args) = args else {
            return Err(WireError::ArgsNotArray);
        };
        Call::from_parts(name, args)
    }

    /// A call from its name and arguments, typed when the name is built in.
    pub fn from_parts(name: String, args: Vec<Value>) -> Result<Call, WireError> {
        Ok(match name.as_str() {
            "ping" => {
                let [s] = arity("ping", args)?;
                Call::Ping { sender: id_arg("ping", "sender", &s)? }
            }
            "store" => {
                let [s, k, value] = arity("store", args)?;
                let sender = id_arg("store", "sender", &s)?;
                let key = id_arg("store", "key", &k)?;
                Call::Store { sender, key, value }
            }
            "find_node" => {
                let [s, k] = arity("find_node", args)?;
                let sender = id_arg("find_node", "sender", &s)?;
                Call::FindNode { sender, key: id_arg("find_node", "key", &k)? }
            }
            "find_value" => {
                let [s, k] = arity("find_value", args)?;
                let sender = id_arg("find_value", "sender", &s)?;
                Call::FindValue { sender, key: id_arg("find_value", "key", &k)? }
            }
            "stun" => {
                let [] = arity("stun", args)?;
                Call::Stun
            }
            _ => Call::Other { name, args },
        })
    }
}

/// The args as exactly `N` values, or `WrongArity`.
fn arity<const N: usize>(rpc: &'static str, args: Vec<Value>) -> Result<[Value; N], WireError> {
    <[Value; N]>::try_from(args).map_err(|a| WireError::WrongArity { rpc, expected: N, got: a.len() })
}

/// A 20-byte bin as an id. Python accepts any `bytes` here, but a wrong
/// length would corrupt XOR distances, so we refuse it.
pub(crate) fn id_arg(rpc: &'static str, arg: &'static str, v: &Value) -> Result<NodeId, WireError> {
    v.as_bytes().filter(|b| b.len() == ID_LEN).and_then(NodeId::from_slice).ok_or(WireError::BadId { rpc, arg })
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
