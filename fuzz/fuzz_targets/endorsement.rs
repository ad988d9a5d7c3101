//! Certificate reading: any JSON text either is not a certificate or reads
//! back to itself, and checking one never panics.
#![no_main]
use kadmesh::endorsement::{check, Certificate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    if let Some(cert) = Certificate::from_json(&v) {
        assert_eq!(Certificate::from_json(&cert.to_json()), Some(cert.clone()));
        let coordinator = ed25519_dalek::SigningKey::from_bytes(&[5; 32]).verifying_key();
        let _ = check(&coordinator, "w1", &[7; 32], &cert, 0.0);
    }
});
