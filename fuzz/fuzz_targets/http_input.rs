//! Fuzzes the property `kadmesh::fuzzing::http_input` (see its docs); the seed
//! corpus `fuzz/corpus/http_input/` is also replayed by `tests/fuzz_corpus.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kadmesh::fuzzing::http_input(data));
