//! Fuzzes the property `kadmesh::fuzzing::state_file` (see its docs); the seed
//! corpus `fuzz/corpus/state_file/` is also replayed by `tests/fuzz_corpus.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kadmesh::fuzzing::state_file(data));
