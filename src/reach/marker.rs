//! The client mark: how a kadmesh peer learns from a request itself that
//! its sender is a client (not reachable), with no extra round trip and no
//! change a stock peer could notice.
//!
//! rpcudp's message id is 20 bytes the callee only echoes. A client draws
//! the first 16 at random as usual and sets the last 4 to the first 4 bytes
//! of `SHA-1("kadmesh-client-v1" || first 16)`. A kadmesh callee that sees
//! the tag neither inserts the sender in its routing table nor hands it out;
//! a stock callee echoes the id like any other. A random id carries the tag
//! by chance with probability 2^-32, and then its sender is merely not
//! inserted by that one request.

use sha1::{Digest, Sha1};

use crate::wire::MessageId;

/// Domain of the client tag, so that no other use of SHA-1 over 16 bytes collides.
const DOMAIN: &[u8] = b"kadmesh-client-v1";
/// Domain of the node tag (EXTENSIONS.md §7.1a): the request comes from a
/// kadmesh node, which answers `kadmesh_hello`.
const NODE_DOMAIN: &[u8] = b"kadmesh-node-v1";
/// Random bytes of a marked id; the rest is the tag.
const RANDOM_LEN: usize = 16;

fn tag(domain: &[u8], random: &[u8]) -> [u8; 4] {
    let mut h = Sha1::new();
    h.update(domain);
    h.update(random);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

fn with_tag(domain: &[u8], random: [u8; 20]) -> MessageId {
    let mut b = random;
    let t = tag(domain, &b[..RANDOM_LEN]);
    b[RANDOM_LEN..].copy_from_slice(&t);
    MessageId(b)
}

/// `random` with its last 4 bytes replaced by the client tag.
pub fn mark(random: [u8; 20]) -> MessageId {
    with_tag(DOMAIN, random)
}

/// Whether `id` carries the client tag.
pub fn is_marked(id: &MessageId) -> bool {
    id.0[RANDOM_LEN..] == tag(DOMAIN, &id.0[..RANDOM_LEN])
}

/// `random` with its last 4 bytes replaced by the node tag: what a kadmesh
/// node that is not a client sends. Only a hint (anyone can forge it): it
/// decides how and when a new requester is checked, never whether.
pub fn mark_node(random: [u8; 20]) -> MessageId {
    with_tag(NODE_DOMAIN, random)
}

/// Whether `id` carries the node tag.
pub fn is_node_marked(id: &MessageId) -> bool {
    id.0[RANDOM_LEN..] == tag(NODE_DOMAIN, &id.0[..RANDOM_LEN])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marked_ids_are_recognised_and_random_ones_are_not() {
        for seed in 0u8..50 {
            let random = [seed; 20];
            assert!(is_marked(&mark(random)));
            assert!(!is_marked(&MessageId(random)), "seed {seed}");
            assert_eq!(mark(random).0[..16], random[..16], "the random part is kept");
        }
    }

    #[test]
    fn node_and_client_marks_are_told_apart() {
        for seed in 0u8..50 {
            let random = [seed; 20];
            assert!(is_node_marked(&mark_node(random)));
            assert!(!is_marked(&mark_node(random)) && !is_node_marked(&mark(random)));
            assert!(!is_node_marked(&MessageId(random)), "seed {seed}");
        }
        let mut h = Sha1::new();
        h.update(b"kadmesh-node-v1");
        h.update([0u8; 16]);
        assert_eq!(mark_node([0; 20]).0[16..], h.finalize()[..4]);
    }

    #[test]
    fn the_tag_is_the_documented_sha1_prefix() {
        // EXTENSIONS.md §7.1's example: 16 zero bytes.
        let id = mark([0; 20]);
        let mut h = Sha1::new();
        h.update(b"kadmesh-client-v1");
        h.update([0u8; 16]);
        assert_eq!(id.0[16..], h.finalize()[..4]);
    }
}
