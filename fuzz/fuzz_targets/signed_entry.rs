//! Fuzzes the property `kadmesh::fuzzing::signed_entry` (see its docs); the seed
//! corpus `fuzz/corpus/signed_entry/` is also replayed by `tests/fuzz_corpus.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kadmesh::fuzzing::signed_entry(data));
