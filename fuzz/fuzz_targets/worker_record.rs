//! Fuzzes the property `kadmesh::fuzzing::worker_record` (see its docs); the seed
//! corpus `fuzz/corpus/worker_record/` is also replayed by `tests/fuzz_corpus.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kadmesh::fuzzing::worker_record(data));
