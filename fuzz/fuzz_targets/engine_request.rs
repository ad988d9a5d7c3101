//! Fuzzes the property `kadmesh::fuzzing::engine_request` (see its docs); the seed
//! corpus `fuzz/corpus/engine_request/` is also replayed by `tests/fuzz_corpus.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kadmesh::fuzzing::engine_request(data));
