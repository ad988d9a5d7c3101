//! Endorsements: a coordinator's certificate that a worker id and its key
//! belong to the platform, so operators can run nodes that serve only
//! workers they vouch for.
//!
//! A certificate is an Ed25519 signature by the coordinator's key over
//! [`DOMAIN`] `|| worker_id (UTF-8) || 0x00 || worker public key (32 bytes)
//! || expires_at (u64 big-endian, Unix seconds)`. In a worker record it is
//! the member `"endorsement": {"expires_at": <uint>, "sig": "<128 hex>"}`,
//! inside the part the worker's own signature covers. A node started with
//! the coordinator's public key serves only workers whose verified record
//! carries a certificate for that id and that key, not yet expired.
//!
//! Pure: no I/O, no clock (`now` comes in as Unix seconds).

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde_json::{json, Value as Json};

/// Prefix of every certificate's signed bytes (never valid as a record
/// signature, whose prefix differs).
pub const DOMAIN: &[u8] = b"kadmesh-worker-endorsement-v1\0";

/// A certificate as a record carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certificate {
    /// Valid until then, Unix seconds.
    pub expires_at: u64,
    /// The coordinator's signature.
    pub sig: [u8; 64],
}

impl Certificate {
    /// Reads the `endorsement` member; `None` when it is not an object
    /// with an unsigned `expires_at` and a 128-hex-digit `sig`.
    pub fn from_json(v: &Json) -> Option<Certificate> {
        let expires_at = v.get("expires_at")?.as_u64()?;
        let hex_sig = v.get("sig")?.as_str()?;
        let mut sig = [0u8; 64];
        hex::decode_to_slice(hex_sig, &mut sig).ok()?;
        Some(Certificate { expires_at, sig })
    }

    /// The `endorsement` member.
    pub fn to_json(&self) -> Json {
        json!({"expires_at": self.expires_at, "sig": hex::encode(self.sig)})
    }
}

fn message(worker_id: &str, worker_key: &[u8; 32], expires_at: u64) -> Vec<u8> {
    let mut m = Vec::with_capacity(DOMAIN.len() + worker_id.len() + 41);
    m.extend_from_slice(DOMAIN);
    m.extend_from_slice(worker_id.as_bytes());
    m.push(0);
    m.extend_from_slice(worker_key);
    m.extend_from_slice(&expires_at.to_be_bytes());
    m
}

/// The certificate `coordinator` issues for `worker_id` with `worker_key`.
pub fn endorse(coordinator: &SigningKey, worker_id: &str, worker_key: &[u8; 32], expires_at: u64) -> Certificate {
    let sig = coordinator.sign(&message(worker_id, worker_key, expires_at)).to_bytes();
    Certificate { expires_at, sig }
}

/// Whether `cert` is `coordinator`'s, for this id and key, and unexpired
/// at `now` (Unix seconds).
pub fn check(coordinator: &VerifyingKey, worker_id: &str, worker_key: &[u8; 32], cert: &Certificate, now: f64) -> bool {
    (cert.expires_at as f64) > now
        && coordinator
            .verify(&message(worker_id, worker_key, cert.expires_at), &Signature::from_bytes(&cert.sig))
            .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_holds_for_its_id_key_and_time_only() {
        let coordinator = SigningKey::from_bytes(&[5; 32]);
        let pk = coordinator.verifying_key();
        let worker = [7u8; 32];
        let cert = endorse(&coordinator, "w1", &worker, 2000);
        assert!(check(&pk, "w1", &worker, &cert, 1999.0));
        assert!(!check(&pk, "w1", &worker, &cert, 2000.0), "expired");
        assert!(!check(&pk, "w2", &worker, &cert, 0.0), "another id");
        assert!(!check(&pk, "w1", &[8; 32], &cert, 0.0), "another worker key");
        let other = SigningKey::from_bytes(&[6; 32]).verifying_key();
        assert!(!check(&other, "w1", &worker, &cert, 0.0), "another coordinator");
        let longer = Certificate { expires_at: 9999, ..cert.clone() };
        assert!(!check(&pk, "w1", &worker, &longer, 0.0), "the expiry is signed");
        assert_eq!(Certificate::from_json(&cert.to_json()), Some(cert));
        assert_eq!(Certificate::from_json(&json!({"expires_at": -1, "sig": "00"})), None);
        assert_eq!(Certificate::from_json(&json!("x")), None);
    }
}
