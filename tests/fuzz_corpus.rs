//! Replays every file of the fuzz seed corpus (`fuzz/corpus/*/`) through the
//! decoders, so the fuzz properties are checked on every `cargo test` even
//! where cargo-fuzz is not installed: nothing panics, and whatever decodes
//! re-encodes and decodes back to an equal value.
use std::path::PathBuf;

use kadmesh::wire::{self, decode_value};

fn corpus_files() -> Vec<PathBuf> {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus"));
    let mut files = Vec::new();
    for dir in std::fs::read_dir(&root).expect("fuzz/corpus exists") {
        let dir = dir.unwrap().path();
        if dir.is_dir() {
            for f in std::fs::read_dir(&dir).unwrap() {
                files.push(f.unwrap().path());
            }
        }
    }
    files.sort();
    files
}

#[test]
fn corpus_replays_without_panic_and_roundtrips() {
    let files = corpus_files();
    assert!(files.len() >= 100, "seed corpus has only {} files", files.len());
    let (mut datagrams, mut values) = (0, 0);
    for path in &files {
        let data = std::fs::read(path).unwrap();
        let name = path.display();
        if let Ok(d) = wire::decode(&data) {
            datagrams += 1;
            let bytes = d.encode().unwrap_or_else(|e| panic!("{name}: re-encode: {e}"));
            assert_eq!(wire::decode(&bytes).as_ref(), Ok(&d), "{name}: datagram roundtrip");
        }
        if let Some(wire::NodesReply { id, contacts, named }) = wire::decode_nodes_response(&data) {
            let Ok(wire::Datagram::Response { id: general_id, body }) = wire::decode(&data) else {
                panic!("{name}: the find_node fast path took what decode refuses")
            };
            let general = (general_id, wire::parse_find_node_reply(&body), wire::answering_node(&body));
            assert_eq!((id, Ok(contacts), named), general, "{name}: fast and general paths");
        }
        if let Ok(v) = decode_value(&data) {
            values += 1;
            assert_eq!(decode_value(&v.to_msgpack()), Ok(v), "{name}: value roundtrip");
        }
    }
    // The captured Python vectors are in the corpus, so plenty must decode.
    assert!(datagrams >= 50 && values >= 50, "{datagrams} datagrams, {values} values decoded");
}

#[test]
fn malformed_seeds_are_rejected() {
    for path in corpus_files().into_iter().filter(|p| !p.parent().is_some_and(|d| d.ends_with("endorsement"))) {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let data = std::fs::read(&path).unwrap();
        let in_datagrams = path.parent().is_some_and(|p| p.ends_with("decode_datagram"));
        // Seeds that are valid on purpose (to reach deeper code) are named so.
        let valid_on_purpose =
            ["unknown_rpc", "float32", "noncanonical", "uint64_max", "bad_contacts"].iter().any(|s| file.contains(s));
        if !file.starts_with("bad_") || valid_on_purpose {
            continue;
        }
        if in_datagrams {
            assert!(wire::decode(&data).is_err(), "{file} decoded as a datagram");
        } else {
            assert!(decode_value(&data).is_err(), "{file} decoded as a value");
        }
    }
}

/// The signed-record seeds (written by a Python re-implementation of
/// `proto-spec/EXTENSIONS.md` §5 with the `cryptography` package): `valid_*`
/// verify in Rust, every other seed is refused, and none panics.
#[test]
fn signed_record_seeds_verify_exactly_when_valid() {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/signed_record"));
    let mut checked = 0;
    for f in std::fs::read_dir(&dir).expect("fuzz/corpus/signed_record exists") {
        let path = f.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = String::from_utf8(std::fs::read(&path).unwrap()).unwrap();
        let verified = kadmesh::signed::verify(&text);
        assert_eq!(verified.is_ok(), name.starts_with("valid_"), "{name}: {verified:?}");
        if let Ok(info) = verified {
            assert_eq!(kadmesh::signed::parse_unverified(&text), Ok(info), "{name}");
        }
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} signed-record seeds");
}

/// The certificate seeds (written by Python's `cryptography` package from
/// the bytes `src/endorsement.rs` specifies): `valid_*` read as
/// certificates, `bad_*` do not, and only `valid_w1_key7` checks against the
/// coordinator key it was made with.
#[test]
fn endorsement_seeds_read_and_check_as_named() {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/endorsement"));
    let coordinator = ed25519_dalek::SigningKey::from_bytes(&[5; 32]).verifying_key();
    let mut checked = 0;
    for f in std::fs::read_dir(&dir).expect("fuzz/corpus/endorsement exists") {
        let path = f.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let cert = kadmesh::endorsement::Certificate::from_json(&v);
        assert_eq!(cert.is_some(), name.starts_with("valid_"), "{name}");
        let ok = cert.is_some_and(|c| kadmesh::endorsement::check(&coordinator, "w1", &[7; 32], &c, 0.0));
        assert_eq!(ok, name == "valid_w1_key7", "{name}");
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} endorsement seeds");
}

/// Every target of `kadmesh::fuzzing` has a corpus, and every file of it
/// passes that target's property check (these are the same functions the
/// cargo-fuzz targets call, so a crash cargo-fuzz found and saved here
/// stays a regression test).
#[test]
fn every_parser_target_replays_its_corpus() {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus"));
    for (target, check) in kadmesh::fuzzing::TARGETS {
        let dir = root.join(target);
        let files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|f| f.unwrap().path())
            .collect();
        assert!(files.len() >= 3, "{target}: only {} seed(s)", files.len());
        for path in files {
            let data = std::fs::read(&path).unwrap();
            check(&data);
        }
    }
}

/// A bounded, seeded stand-in for a fuzzer where cargo-fuzz is missing:
/// each seed of every `kadmesh::fuzzing` target is mutated (bit flips,
/// byte overwrites, truncation, splicing with another seed) and checked.
/// `KADMESH_FUZZ_ROUNDS` raises the count for a longer local run.
#[test]
fn mutated_seeds_keep_every_property() {
    use rand::{Rng, SeedableRng};
    let rounds: usize = std::env::var("KADMESH_FUZZ_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(200);
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus"));
    let mut rng = rand::rngs::StdRng::seed_from_u64(13);
    for (target, check) in kadmesh::fuzzing::TARGETS {
        let seeds: Vec<Vec<u8>> =
            std::fs::read_dir(root.join(target)).unwrap().map(|f| std::fs::read(f.unwrap().path()).unwrap()).collect();
        for _ in 0..rounds {
            let mut data = seeds[rng.gen_range(0..seeds.len())].clone();
            for _ in 0..rng.gen_range(1..4) {
                match rng.gen_range(0..4) {
                    0 if !data.is_empty() => {
                        let i = rng.gen_range(0..data.len());
                        data[i] ^= 1 << rng.gen_range(0..8);
                    }
                    1 if !data.is_empty() => {
                        let i = rng.gen_range(0..data.len());
                        data[i] = rng.gen();
                    }
                    2 => data.truncate(rng.gen_range(0..=data.len())),
                    _ => {
                        let other = &seeds[rng.gen_range(0..seeds.len())];
                        let at = rng.gen_range(0..=data.len());
                        data.splice(at..at, other.iter().copied());
                    }
                }
            }
            let caught = std::panic::catch_unwind(|| check(&data));
            assert!(caught.is_ok(), "{target} failed on {}", hex::encode(&data));
        }
    }
}

/// The signed provider entry seeds (written by `scripts/signed-entry-seeds`,
/// a Python re-implementation of `proto-spec/EXTENSIONS.md` §3.5 with the
/// `cryptography` package): a replica stores exactly the `valid_*` ones,
/// refuses the `forged_*` ones, and cannot parse the `malformed_*` ones.
#[test]
fn signed_entry_seeds_are_stored_exactly_when_valid() {
    use kadmesh::engine::providers::wire::parse_write_entry;
    use kadmesh::engine::providers::ProviderStore;
    use kadmesh::fuzzing::{SIGNED_ENTRY_NOW, SIGNED_ENTRY_SET};
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/signed_entry"));
    let key = kadmesh::id::Key::for_key(SIGNED_ENTRY_SET);
    let mut checked = 0;
    for f in std::fs::read_dir(&dir).expect("fuzz/corpus/signed_entry exists") {
        let path = f.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let v = decode_value(&std::fs::read(&path).unwrap()).unwrap();
        let entry = parse_write_entry(&v, name.contains("tombstone"), SIGNED_ENTRY_NOW);
        assert_eq!(entry.is_some(), !name.starts_with("malformed_"), "{name}");
        let stored = entry.is_some_and(|e| ProviderStore::default().upsert(key, e, SIGNED_ENTRY_NOW));
        assert_eq!(stored, name.starts_with("valid_"), "{name}");
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} signed-entry seeds");
}
