//! The wire codec: rpcudp framing and msgpack bodies, byte-compatible with
//! Python `kademlia` 2.2 (`rpcudp` 5 + `u-msgpack-python`).
//!
//! Contract: [`decode`] accepts any byte string and either returns a
//! [`Datagram`] or a typed [`WireError`]; it never panics and never allocates
//! more than a small multiple of the input length. Encoding produces exactly
//! the bytes the Python package produces for the same message.
//!
//! Layout: `value` is the msgpack value type, `msgpack` its codec, `message`
//! the framing and request shapes, `reply` the reply-body builders and
//! parsers. The protocol itself is written down in `proto-spec/PROTOCOL.md`.

mod message;
mod msgpack;
mod nodes;
mod reply;
mod value;

pub use message::*;
pub use msgpack::{decode_value, encode_value, encoded_len, DecodeError, Value, MAX_DEPTH};
pub use nodes::{decode_nodes_response, encode_nodes_response, encode_nodes_response_urls, NodesReply};
pub use reply::*;
