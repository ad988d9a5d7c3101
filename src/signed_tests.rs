use super::*;
use proptest::prelude::*;

const NOW: u64 = 1_800_000_000_000;

fn key_of(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

/// A record for `id` signed by `signer` (its key named in the record).
fn record(id: &str, signer: &SigningKey, seq: u64, url: &str) -> String {
    let pk = hex::encode(signer.verifying_key().to_bytes());
    let expires = (NOW / 1000 + 300) as f64;
    let t = format!(
        r#"{{"worker_id":"{id}","tunnel_url":"{url}","expires_at":{expires},"public_key":"{pk}","seq":{seq}}}"#
    );
    sign(&t, signer).unwrap()
}

fn wkey(id: &str) -> Key {
    Key::for_key(&format!("worker:{id}"))
}

fn s(text: &str) -> Value {
    Value::Str(text.to_owned())
}

#[test]
fn a_signed_record_verifies_and_stays_json() {
    let text = record("w1", &key_of(1), 5, "https://a");
    let info = verify(&text).unwrap();
    assert_eq!((info.worker_id.as_str(), info.seq), ("w1", 5));
    assert_eq!(info.public_key, key_of(1).verifying_key().to_bytes());
    let doc: Json = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["tunnel_url"], "https://a", "readers that ignore sig still read the record");
    assert_eq!(parse_unverified(&text), Ok(info));
}

#[test]
fn tampering_or_a_foreign_key_fails() {
    let text = record("w1", &key_of(1), 5, "https://a");
    assert_eq!(verify(&text.replace("https://a", "https://b")), Err(SignedError::BadSignature));
    // The record names key 2 but key 1 signed it.
    let pk2 = hex::encode(key_of(2).verifying_key().to_bytes());
    let t = format!(r#"{{"worker_id":"w1","public_key":"{pk2}","seq":1}}"#);
    let forged = sign(&t, &key_of(1)).unwrap();
    assert_eq!(verify(&forged), Err(SignedError::BadSignature));
    assert_eq!(verify(r#"{"worker_id":"w1"}"#), Err(SignedError::NotSigned));
    let no_seq = sign(&format!(r#"{{"worker_id":"w1","public_key":"{pk2}"}}"#), &key_of(2)).unwrap();
    assert!(matches!(verify(&no_seq), Err(SignedError::Malformed(_))));
    assert_eq!(sign("{}", &key_of(1)), None, "an empty object has no member to follow");
    assert_eq!(sign("[1]", &key_of(1)), None);
}

#[test]
fn the_signed_bytes_are_the_domain_and_the_text_without_sig() {
    let t = r#"{"worker_id":"w","public_key":"00","seq":1}"#;
    let signed = sign(t, &key_of(3)).unwrap();
    let sig_hex = &signed[signed.len() - 130..signed.len() - 2];
    let mut msg = DOMAIN.to_vec();
    msg.extend_from_slice(t.as_bytes());
    assert_eq!(sig_hex, hex::encode(key_of(3).sign(&msg).to_bytes()));
}

#[test]
fn only_the_same_key_with_a_higher_seq_replaces_a_live_record() {
    let k = wkey("w1");
    let held = s(&record("w1", &key_of(1), 10, "https://a"));
    let newer = s(&record("w1", &key_of(1), 11, "https://b"));
    let older = s(&record("w1", &key_of(1), 9, "https://b"));
    let same_seq = s(&record("w1", &key_of(1), 10, "https://b"));
    let thief = s(&record("w1", &key_of(2), 99, "https://evil"));
    let unsigned = s(r#"{"worker_id":"w1","tunnel_url":"https://evil"}"#);
    assert!(admits(&k, Some(&held), &newer, NOW));
    assert!(admits(&k, Some(&held), &held, NOW), "a re-store of the same text refreshes it");
    for (bad, why) in [(&older, "replay"), (&same_seq, "same seq"), (&thief, "other key"), (&unsigned, "unsigned")] {
        assert!(!admits(&k, Some(&held), bad, NOW), "{why}");
    }
    assert!(admits(&k, None, &unsigned, NOW), "plain values stay storable");
    assert!(admits(&k, Some(&unsigned), &thief, NOW), "a signed record replaces an unsigned one");
}

#[test]
fn an_expired_record_frees_its_id() {
    let k = wkey("w1");
    let held = s(&record("w1", &key_of(1), 10, "https://a"));
    let later = NOW + 301_000;
    assert!(admits(&k, Some(&held), &s(&record("w1", &key_of(2), 1, "https://b")), later));
    assert!(!admits(&k, Some(&held), &s(&record("w1", &key_of(2), 1, "https://b")), NOW));
}

#[test]
fn wrong_key_bad_signature_and_far_future_are_refused() {
    let good = record("w1", &key_of(1), NOW, "https://a");
    assert!(!admits(&wkey("w2"), None, &s(&good), NOW), "stored under another worker's key");
    assert!(!admits(&wkey("w1"), None, &s(&good.replace("https://a", "https://z")), NOW));
    let future = record("w1", &key_of(1), NOW + MAX_SEQ_AHEAD + 1, "https://a");
    assert!(!admits(&wkey("w1"), None, &s(&future), NOW));
    assert!(admits(&wkey("w1"), None, &Value::Bin(good.into_bytes()), NOW), "UTF-8 bytes count as text");
    assert!(admits(&wkey("w1"), None, &Value::Int(3), NOW));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn sign_verify_roundtrip(id in "[a-z0-9-]{1,20}", seq in any::<u64>(), n in 1u8..=255, url in "[a-z]{1,12}") {
        let text = record(&id, &key_of(n), seq, &url);
        let info = verify(&text).unwrap();
        prop_assert_eq!((info.worker_id, info.seq), (id, seq));
    }

    #[test]
    fn any_changed_byte_breaks_the_signature(pos in 0usize..200, flip in 1u8..=255) {
        let text = record("w1", &key_of(7), 42, "https://a.example");
        let mut bytes = text.clone().into_bytes();
        let i = pos % bytes.len();
        bytes[i] ^= flip;
        if let Ok(changed) = String::from_utf8(bytes) {
            prop_assert!(verify(&changed).is_err());
        }
    }

    #[test]
    fn no_other_key_takes_a_live_id(n in 2u8..=255, seq in any::<u64>()) {
        let held = s(&record("w1", &key_of(1), 10, "https://a"));
        let other = s(&record("w1", &key_of(n), seq, "https://b"));
        prop_assert!(!admits(&wkey("w1"), Some(&held), &other, NOW));
    }

    #[test]
    fn verify_never_panics(text in ".{0,300}") {
        let _ = verify(&text);
        let _ = parse_unverified(&text);
    }
}

#[test]
fn the_verify_memo_answers_only_for_the_very_same_text() {
    let text = record("memo-w", &key_of(9), 77, "https://memo");
    verify(&text).unwrap();
    let before = verify_memo_hits();
    assert_eq!(verify(&text).unwrap().seq, 77);
    assert!(verify_memo_hits() > before, "the second check of the same text came from the memo");
    // A copy differing in one byte (same signature) is checked, and fails.
    let forged = text.replacen("https://memo", "https://evil", 1);
    assert_eq!(verify(&forged), Err(SignedError::BadSignature));
    let resigned = text.replacen("\"seq\":77", "\"seq\":78", 1);
    assert_eq!(verify(&resigned), Err(SignedError::BadSignature));
}
