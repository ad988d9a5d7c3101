//! Signed-record reading: `verify` and `parse_unverified` never panic on
//! any text, whatever verifies also parses unverified to the same fields,
//! and the store rule never panics on any pair of values.
#![no_main]
use kadmesh::id::Key;
use kadmesh::signed::{admits, parse_unverified, verify};
use kadmesh::wire::Value;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(info) = verify(text) {
        assert_eq!(parse_unverified(text), Ok(info));
    }
    let (a, b) = text.split_at(text.len() / 2);
    let key = Key::for_key("worker:w1");
    let _ = admits(&key, Some(&Value::Str(a.to_owned())), &Value::Str(b.to_owned()), 1_800_000_000_000);
    let _ = admits(&key, None, &Value::Str(text.to_owned()), 0);
});
