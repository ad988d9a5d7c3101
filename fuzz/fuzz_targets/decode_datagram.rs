//! Fuzzes `kadmesh::wire::decode`: any bytes must decode or fail cleanly, and
//! whatever decodes must re-encode (never larger than the input, since our
//! encoding is the canonical shortest one) and decode back to the same datagram.
#![no_main]

use kadmesh::wire;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(datagram) = wire::decode(data) {
        let bytes = datagram.encode().expect("a decoded datagram re-encodes");
        assert!(bytes.len() <= data.len(), "re-encoding grew the datagram");
        let again = wire::decode(&bytes).expect("re-encoded datagram decodes");
        assert_eq!(again, datagram);
        assert_eq!(
            again.encode().expect("stable"),
            bytes,
            "encoding is not stable"
        );
    }
});
