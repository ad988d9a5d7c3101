//! Fuzzes the msgpack codec alone: `decode_value` must not panic, and a
//! decoded value must re-encode canonically and decode back to itself.
#![no_main]

use kadmesh::wire::{decode_value, Value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = decode_value(data) {
        let bytes: Vec<u8> = Value::to_msgpack(&value);
        assert!(bytes.len() <= data.len(), "re-encoding grew the value");
        assert_eq!(decode_value(&bytes), Ok(value));
    }
});
