use super::*;
use ed25519_dalek::SigningKey;

const NOW_MS: u64 = 1_700_000_000_000;

fn holder(n: u8) -> NodeId {
    NodeId([n; 20])
}

fn key_of(id: &str) -> Key {
    Key::for_key(&format!("worker:{id}"))
}

fn signed_record(id: &str, seq: u64, signer: u8) -> Value {
    let key = SigningKey::from_bytes(&[signer; 32]);
    let pk = hex::encode(key.verifying_key().to_bytes());
    let t = format!(r#"{{"worker_id":"{id}","public_key":"{pk}","seq":{seq}}}"#);
    Value::Str(signed::sign(&t, &key).expect("a record with members signs"))
}

fn plain(id: &str, last_seen: f64) -> Value {
    Value::Str(format!(r#"{{"worker_id":"{id}","last_seen":{last_seen}}}"#))
}

fn copies(values: &[&Value]) -> Vec<(Value, NodeId)> {
    values.iter().enumerate().map(|(i, v)| ((*v).clone(), holder(i as u8 + 1))).collect()
}

#[test]
fn equal_copies_are_taken_as_they_are_with_nothing_to_repair() {
    let v = Value::Str("not even json".into());
    let c = choose(&key_of("w"), &copies(&[&v, &v, &v]), NOW_MS).expect("copies");
    assert_eq!(c, Choice { value: v, older: vec![] });
    assert_eq!(choose(&key_of("w"), &[], NOW_MS), None);
}

#[test]
fn highest_seq_wins_and_lower_seq_holders_are_repaired() {
    let (old, new) = (signed_record("w", 10, 1), signed_record("w", 20, 1));
    // The stale copy arrives first, as from a replica the partition kept.
    let c = choose(&key_of("w"), &copies(&[&old, &new, &old]), NOW_MS).expect("copies");
    assert_eq!(c.value, new);
    assert_eq!(c.older, vec![holder(1), holder(3)]);
}

#[test]
fn a_forged_signer_at_a_minority_of_holders_loses_to_the_majority_signer() {
    let real = signed_record("w", 10, 1);
    let forged = signed_record("w", NOW_MS, 2);
    let c = choose(&key_of("w"), &copies(&[&forged, &real, &real]), NOW_MS).expect("copies");
    assert_eq!(c.value, real);
    assert!(c.older.is_empty(), "another signer's copy is not an older copy of this one");
}

#[test]
fn signed_copies_must_verify_and_be_bound_to_the_key() {
    let good = signed_record("w", 10, 1);
    let other_worker = signed_record("x", 99, 1);
    let mut tampered = signed::value_text(&signed_record("w", 50, 1)).expect("text").to_owned();
    tampered = tampered.replace("\"seq\":50", "\"seq\":90");
    let tampered = Value::Str(tampered);
    let c = choose(&key_of("w"), &copies(&[&other_worker, &tampered, &good]), NOW_MS).expect("copies");
    assert_eq!(c.value, good);
    assert!(c.older.is_empty());
}

#[test]
fn a_signed_copy_beats_unsigned_ones_which_are_not_repaired() {
    let s = signed_record("w", 10, 1);
    let u = plain("w", 1e12);
    let c = choose(&key_of("w"), &copies(&[&u, &u, &s]), NOW_MS).expect("copies");
    assert_eq!(c, Choice { value: s, older: vec![] });
}

#[test]
fn unsigned_worker_records_go_by_last_seen() {
    let (old, new) = (plain("w", 800.5), plain("w", 815.2));
    let c = choose(&key_of("w"), &copies(&[&old, &old, &new]), NOW_MS).expect("copies");
    assert_eq!(c.value, new);
    assert_eq!(c.older, vec![holder(1), holder(2)]);
}

#[test]
fn anything_else_goes_by_the_most_holders_and_repairs_nothing() {
    let (a, b) = (Value::Str(r#"["w1"]"#.into()), Value::Str(r#"["w1","w2"]"#.into()));
    let c = choose(&key_of("s"), &copies(&[&a, &b, &b]), NOW_MS).expect("copies");
    assert_eq!(c, Choice { value: b.clone(), older: vec![] });
    // A tie goes to the first received.
    let c = choose(&key_of("s"), &copies(&[&a, &b]), NOW_MS).expect("copies");
    assert_eq!(c.value, a);
    // Records of two different workers are not ordered by last_seen.
    let (x, y) = (plain("w", 1.0), plain("v", 2.0));
    assert_eq!(choose(&key_of("w"), &copies(&[&x, &y]), NOW_MS).expect("copies").value, x);
}

#[test]
fn a_worker_record_looks_current_only_within_the_window_and_never_from_the_future() {
    let window = std::time::Duration::from_secs(150);
    let v = plain("w", 1_000.0);
    assert!(looks_current(&v, 1_100.0, window));
    assert!(looks_current(&v, 1_150.0, window));
    assert!(!looks_current(&v, 1_151.0, window), "older than the window");
    assert!(looks_current(&v, 990.0, window), "a little clock skew is allowed");
    assert!(!looks_current(&v, 900.0, window), "last_seen far in the future");
    assert!(!looks_current(&Value::Str("not json".into()), 1_000.0, window));
    assert!(!looks_current(&Value::Int(7), 1_000.0, window));
}
