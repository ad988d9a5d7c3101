//! Signed provider entries: the canonical bytes a worker signs for one entry
//! of one provider set, so a replica can tell the worker's own adds and
//! removals from anybody else's.
//!
//! The message is [`DOMAIN`] (so an entry signature can never pass as a
//! worker-record signature, [`crate::signed::DOMAIN`], or any other
//! signature of the same key) followed by fixed-width fields and the id:
//!
//! ```text
//! DOMAIN                      26 bytes  "kadmesh-provider-entry-v1" 0x00
//! set key                     20 bytes  the provider set's key
//! kind                         1 byte   0x00 add, 0x01 remove (tombstone)
//! version                      8 bytes  u64 big-endian (the BEP 44 `seq`)
//! expires_at                   8 bytes  u64 big-endian, Unix seconds
//! load flag                    1 byte   0x00 no load, 0x01 load follows
//! load                         8 bytes  f64 big-endian IEEE 754 (zero without load)
//! id length                    1 byte   1..=128
//! id                           the id's ASCII bytes
//! ```
//!
//! Binding the set key means an entry signed for `service:ocr` cannot be
//! replayed into another set; binding `expires_at` means a replayed entry
//! can never outlive what its signer asked for; binding the kind means an
//! add cannot be turned into a removal. Pure: no I/O, no clock.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

use crate::id::Key;

/// Prefix of every signed entry message.
pub const DOMAIN: &[u8] = b"kadmesh-provider-entry-v1\0";

/// The proof a signed entry carries besides its plain fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntrySignature {
    /// The signer's Ed25519 public key.
    pub public_key: [u8; 32],
    /// The latest Unix second the signer allows the entry to be served.
    pub expires_at: u64,
    /// Ed25519 signature over [`message`].
    pub sig: [u8; 64],
}

/// The fields of an entry that a signature covers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Signed<'a> {
    /// The provider set's key.
    pub key: &'a Key,
    /// The provider id.
    pub id: &'a str,
    /// The signer's version.
    pub version: u64,
    /// A tombstone.
    pub gone: bool,
    /// The load hint (always `None` for a tombstone).
    pub load: Option<f64>,
    /// Unix seconds.
    pub expires_at: u64,
}

/// The exact bytes signed for `e` (module doc).
pub fn message(e: &Signed<'_>) -> Vec<u8> {
    let mut m = Vec::with_capacity(DOMAIN.len() + 47 + e.id.len());
    m.extend_from_slice(DOMAIN);
    m.extend_from_slice(&e.key.0);
    m.push(u8::from(e.gone));
    m.extend_from_slice(&e.version.to_be_bytes());
    m.extend_from_slice(&e.expires_at.to_be_bytes());
    m.push(u8::from(e.load.is_some()));
    m.extend_from_slice(&e.load.unwrap_or(0.0).to_be_bytes());
    // Ids are at most 128 bytes (`valid_id`); longer ones never verify.
    m.push(u8::try_from(e.id.len()).unwrap_or(u8::MAX));
    m.extend_from_slice(e.id.as_bytes());
    m
}

/// Signs `e` with `key`.
pub fn sign(e: &Signed<'_>, key: &SigningKey) -> EntrySignature {
    let sig = key.sign(&message(e)).to_bytes();
    EntrySignature { public_key: key.verifying_key().to_bytes(), expires_at: e.expires_at, sig }
}

/// Whether `s` is a valid signature of `e` (whose `expires_at` must be the
/// signature's). Ids longer than [`super::MAX_ID_LEN`] never verify.
pub fn verify(e: &Signed<'_>, s: &EntrySignature) -> bool {
    if e.expires_at != s.expires_at || e.id.len() > super::MAX_ID_LEN {
        return false;
    }
    let Ok(key) = VerifyingKey::from_bytes(&s.public_key) else { return false };
    key.verify(&message(e), &Signature::from_bytes(&s.sig)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &Key) -> Signed<'_> {
        Signed {
            key,
            id: "worker-gpu-001",
            version: 1_800_000_000_000,
            gone: false,
            load: Some(0.25),
            expires_at: 1_800_000_300,
        }
    }

    #[test]
    fn a_signature_covers_every_field() {
        let key = Key::for_key("service:ocr");
        let other = Key::for_key("service:llm");
        let sk = SigningKey::from_bytes(&[1; 32]);
        let e = entry(&key);
        let s = sign(&e, &sk);
        assert!(verify(&e, &s));
        let changed = [
            Signed { key: &other, ..e },
            Signed { id: "worker-gpu-002", ..e },
            Signed { version: e.version + 1, ..e },
            Signed { gone: true, ..e },
            Signed { load: Some(0.0), ..e },
            Signed { load: None, ..e },
            Signed { expires_at: e.expires_at + 1, ..e },
        ];
        for c in changed {
            assert!(!verify(&c, &s), "{c:?}");
            assert!(!verify(&c, &EntrySignature { expires_at: c.expires_at, ..s.clone() }), "{c:?}");
        }
        let thief = SigningKey::from_bytes(&[2; 32]);
        assert!(!verify(&e, &EntrySignature { public_key: thief.verifying_key().to_bytes(), ..s.clone() }));
        assert!(!verify(&e, &EntrySignature { public_key: [0; 32], ..s }));
    }

    /// The test vector of `proto-spec/EXTENSIONS.md` §3.5: if this fails,
    /// the encoding changed and the spec (and every other implementation)
    /// must change with it.
    #[test]
    fn test_vector_matches_the_spec() {
        let key = Key::for_key("service:ocr");
        let e = entry(&key);
        let sk = SigningKey::from_bytes(&[1; 32]);
        assert_eq!(hex::encode(message(&e)), VECTOR_MESSAGE);
        assert_eq!(hex::encode(sign(&e, &sk).sig), VECTOR_SIG);
    }

    const VECTOR_MESSAGE: &str = "6b61646d6573682d70726f76696465722d656e7472792d76310072919cce33891bb85e2532e3e3f5decbda54224700000001a3185c5000000000006b49d32c013fd00000000000000e776f726b65722d6770752d303031";
    const VECTOR_SIG: &str = "8cffd5b854549488807cfd05a2bd8defcfc3000fa1ba618054d96a69f564f070c7b7fd2d485c77b01e2441eaf71c32a010a9d4c2d5fb8de675639246c0d18b0e";
}
