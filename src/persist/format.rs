//! The state file's bytes: a fixed header, then an rmp-serde body.
//!
//! ```text
//! offset  size  field
//!      0     8  magic "\x89KADMESH" (the high byte catches 7-bit and text-mode damage)
//!      8     2  format version, big-endian (this build writes and reads 1)
//!     10     2  reserved, zero
//!     12     8  body length in bytes, big-endian
//!     20    20  SHA-1 of the body
//!     40     -  body: msgpack map (rmp-serde, named fields)
//! ```
//!
//! Contract: [`decode`] takes any bytes and returns the body or a [`Defect`]
//! saying what is wrong; it never panics. The checksum is verified before the
//! body is parsed, so the msgpack decoder only ever sees bytes this code wrote.
//! Ids and values are checked again when the body becomes a
//! [`SavedState`](super::SavedState).

use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha1::{Digest, Sha1};

/// First bytes of every state file.
pub(super) const MAGIC: [u8; 8] = *b"\x89KADMESH";
/// The format version this build writes; it reads this one only.
pub const FORMAT_VERSION: u16 = 1;
const HEADER_LEN: usize = 40;

/// What is wrong with a file, before the path is attached.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Defect {
    Foreign,
    Future { found: u16 },
    Truncated { expected: u64, found: u64 },
    Corrupt(String),
}

/// Bytes serialized as a msgpack `bin`, not as an array of integers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Blob(pub Vec<u8>);

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct BlobVisitor;
        impl<'de> Visitor<'de> for BlobVisitor {
            type Value = Blob;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Blob, E> {
                Ok(Blob(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Blob, E> {
                Ok(Blob(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Blob, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(Blob(out))
            }
        }
        d.deserialize_byte_buf(BlobVisitor)
    }
}

/// Body of format version 1. Times are milliseconds on the driver's
/// timeline (the Unix epoch for the tokio node).
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct BodyV1 {
    pub id: Blob,
    pub saved_at_ms: u64,
    pub contacts: Vec<ContactV1>,
    pub published: Vec<PublishedV1>,
    pub records: Vec<RecordV1>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct ContactV1 {
    pub id: Blob,
    pub addr: String,
}

/// A record this node publishes; the value is its wire (msgpack) encoding.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct PublishedV1 {
    pub key: Blob,
    pub value: Blob,
}

/// A record this node holds; the value is its wire (msgpack) encoding.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct RecordV1 {
    pub key: Blob,
    pub value: Blob,
    pub publisher: Option<Blob>,
    pub stored_at_ms: u64,
    pub expires_at_ms: u64,
}

/// The complete file for `body`.
pub(super) fn encode(body: &BodyV1) -> Result<Vec<u8>, rmp_serde::encode::Error> {
    let payload = rmp_serde::to_vec_named(body)?;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    out.extend_from_slice(&Sha1::digest(&payload));
    out.extend_from_slice(&payload);
    Ok(out)
}

/// The body of a complete file, or what is wrong with it.
pub(super) fn decode(bytes: &[u8]) -> Result<BodyV1, Defect> {
    let head = &bytes[..bytes.len().min(MAGIC.len())];
    if head != &MAGIC[..head.len()] {
        return Err(Defect::Foreign);
    }
    let found = bytes.len() as u64;
    let Some(header) = bytes.get(..HEADER_LEN) else {
        return Err(Defect::Truncated { expected: HEADER_LEN as u64, found });
    };
    let version = u16::from_be_bytes([header[8], header[9]]);
    if version > FORMAT_VERSION {
        return Err(Defect::Future { found: version });
    }
    if version != FORMAT_VERSION {
        return Err(Defect::Corrupt(format!("format version {version} was never written by kadmesh")));
    }
    if header[10..12] != [0, 0] {
        return Err(Defect::Corrupt("reserved header bytes are not zero".into()));
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&header[12..20]);
    let expected = (HEADER_LEN as u64).saturating_add(u64::from_be_bytes(len));
    if found < expected {
        return Err(Defect::Truncated { expected, found });
    }
    if found > expected {
        return Err(Defect::Corrupt(format!("{} bytes follow the declared end", found - expected)));
    }
    let body = &bytes[HEADER_LEN..];
    if Sha1::digest(body).as_slice() != &header[20..40] {
        return Err(Defect::Corrupt("checksum mismatch".into()));
    }
    rmp_serde::from_slice(body).map_err(|e| Defect::Corrupt(format!("unreadable body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BodyV1 {
        BodyV1 {
            id: Blob(vec![7; 20]),
            saved_at_ms: 1_700_000_000_000,
            contacts: vec![ContactV1 { id: Blob(vec![1; 20]), addr: "127.0.0.1:9".into() }],
            published: vec![PublishedV1 { key: Blob(vec![2; 20]), value: Blob(vec![0xa1, b'x']) }],
            records: vec![RecordV1 {
                key: Blob(vec![3; 20]),
                value: Blob(vec![0x05]),
                publisher: None,
                stored_at_ms: 1,
                expires_at_ms: 2,
            }],
        }
    }

    #[test]
    fn encode_decode_roundtrip() {
        let bytes = encode(&sample()).unwrap();
        let back = decode(&bytes).unwrap();
        assert_eq!(back.id, Blob(vec![7; 20]));
        assert_eq!(back.records[0].expires_at_ms, 2);
        assert_eq!(back.published[0].value, Blob(vec![0xa1, b'x']));
    }

    #[test]
    fn every_prefix_and_every_flipped_byte_is_a_defect_not_a_panic() {
        let bytes = encode(&sample()).unwrap();
        for n in 0..bytes.len() {
            assert!(matches!(decode(&bytes[..n]), Err(Defect::Truncated { .. })), "prefix {n}");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert!(decode(&b).is_err(), "flip at {i}");
        }
    }

    #[test]
    fn foreign_and_future_files_are_told_apart() {
        assert_eq!(decode(b"{\"id\": 1}").unwrap_err(), Defect::Foreign);
        let mut b = encode(&sample()).unwrap();
        b[8..10].copy_from_slice(&9u16.to_be_bytes());
        assert_eq!(decode(&b).unwrap_err(), Defect::Future { found: 9 });
    }
}
