//! Fuzzes the property `kadmesh::fuzzing::provider_page` (see its docs); the seed
//! corpus `fuzz/corpus/provider_page/` is also replayed by `tests/fuzz_corpus.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kadmesh::fuzzing::provider_page(data));
