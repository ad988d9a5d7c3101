//! Fuzzes the property `kadmesh::fuzzing::signed_record` (see its docs); the
//! corpus `fuzz/corpus/signed_record/` is also replayed by `tests/fuzz_corpus.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kadmesh::fuzzing::signed_record(data));
