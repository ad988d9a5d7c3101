//! Fuzzes `kadmesh::wire::decode_nodes_response`, the direct reader of the
//! commonest datagram (a find_node reply): it may decline anything, but what
//! it accepts it must read exactly as the general path (decode, then parse
//! the body as a find_node reply and read the answering node's name after
//! it) does.
#![no_main]

use kadmesh::wire::{self, Datagram};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(fast) = wire::decode_nodes_response(data) {
        let general = match wire::decode(data) {
            Ok(Datagram::Response { id, body }) => wire::parse_find_node_reply(&body)
                .ok()
                .map(|contacts| wire::NodesReply { id, contacts, named: wire::answering_node(&body) }),
            _ => None,
        };
        assert_eq!(Some(fast), general, "the fast path read what the general path reads differently");
    }
});
