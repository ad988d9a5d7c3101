//! Node ids, keys and the XOR metric.
//!
//! Ids and keys share one 160-bit space. A string key is hashed exactly as the
//! Python package's `digest()` does: SHA-1 of its UTF-8 bytes, so
//! `NodeId::for_key("worker:w1")` names the same slot Python's
//! `server.set("worker:w1", ...)` writes to.

use std::fmt;

use rand::Rng;
use sha1::{Digest, Sha1};

/// Length of ids and keys in bytes (SHA-1 output).
pub const ID_LEN: usize = 20;
/// Length of ids and keys in bits.
pub const ID_BITS: usize = ID_LEN * 8;

/// A 160-bit node id or record key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct NodeId(pub [u8; ID_LEN]);

/// A record key lives in the same space as node ids.
pub type Key = NodeId;

impl NodeId {
    /// The id from exactly 20 bytes, or `None` for any other length.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; ID_LEN]>::try_from(bytes).ok().map(NodeId)
    }

    /// The key for a string, hashed as the Python package does.
    pub fn for_key(key: &str) -> Self {
        Self::digest(key.as_bytes())
    }

    /// SHA-1 of arbitrary bytes.
    pub fn digest(bytes: &[u8]) -> Self {
        NodeId(Sha1::digest(bytes).into())
    }

    /// A uniformly random id.
    pub fn random<R: Rng + ?Sized>(rng: &mut R) -> Self {
        let mut b = [0u8; ID_LEN];
        rng.fill(&mut b);
        NodeId(b)
    }

    /// A random id that shares exactly the first `prefix_len` bits with
    /// `self` and differs in the next one: a uniform pick from the range of
    /// the k-bucket at that depth.
    pub fn random_in_bucket<R: Rng + ?Sized>(&self, prefix_len: usize, rng: &mut R) -> Self {
        let mut out = Self::random(rng).0;
        let prefix_len = prefix_len.min(ID_BITS - 1);
        for bit in 0..=prefix_len {
            let (byte, mask) = (bit / 8, 0x80u8 >> (bit % 8));
            let mine = self.0[byte] & mask;
            let want = if bit == prefix_len { mine ^ mask } else { mine };
            out[byte] = (out[byte] & !mask) | want;
        }
        NodeId(out)
    }

    /// The XOR distance to `other`.
    pub fn distance(&self, other: &NodeId) -> Distance {
        let mut d = [0u8; ID_LEN];
        for (i, b) in d.iter_mut().enumerate() {
            *b = self.0[i] ^ other.0[i];
        }
        Distance(d)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; ID_LEN] {
        &self.0
    }

    /// Lower-case hex, 40 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 40 hex characters.
    pub fn from_hex(s: &str) -> Result<Self, IdError> {
        let bytes = hex::decode(s.trim()).map_err(|_| IdError::NotHex)?;
        Self::from_slice(&bytes).ok_or(IdError::WrongLength(bytes.len()))
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", &self.to_hex()[..12])
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Why a textual id was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdError {
    /// The text had characters other than hex digits; give 40 hex digits.
    #[error("id is not hexadecimal")]
    NotHex,
    /// The hex decoded to the wrong number of bytes; ids are 20 bytes (40 hex digits).
    #[error("id must be 20 bytes (40 hex digits), got {0} bytes")]
    WrongLength(usize),
}

/// XOR distance between two ids; compares as a 160-bit big-endian integer.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Distance(pub [u8; ID_LEN]);

impl Ord for Distance {
    // Two integer compares instead of a byte-wise memcmp call: distance
    // comparisons are the innermost loop of every routing-table query.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.halves().cmp(&other.halves())
    }
}

impl PartialOrd for Distance {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Distance {
    fn halves(&self) -> (u128, u32) {
        let (hi, lo) = self.0.split_at(16);
        let hi: [u8; 16] = hi.try_into().unwrap_or_default();
        let lo: [u8; 4] = lo.try_into().unwrap_or_default();
        (u128::from_be_bytes(hi), u32::from_be_bytes(lo))
    }

    /// Number of leading zero bits: the length of the shared id prefix.
    pub fn leading_zeros(&self) -> usize {
        let mut n = 0;
        for b in self.0 {
            if b == 0 {
                n += 8;
            } else {
                return n + b.leading_zeros() as usize;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    #[test]
    fn key_hash_matches_python_digest() {
        // hashlib.sha1(b"worker:w1").hexdigest()
        assert_eq!(NodeId::for_key("worker:w1").to_hex(), hex::encode(Sha1::digest(b"worker:w1")));
        assert_eq!(NodeId::for_key("").to_hex(), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    }

    #[test]
    fn distance_orders_like_its_bytes() {
        let mut rng = StdRng::seed_from_u64(2);
        for _ in 0..2000 {
            let (a, b, t) = (NodeId::random(&mut rng), NodeId::random(&mut rng), NodeId::random(&mut rng));
            let (mut da, mut db) = (t.distance(&a), t.distance(&b));
            // Share a random-length prefix so that every byte position decides some comparisons.
            let shared = rng.gen_range(0..ID_LEN);
            db.0[..shared].copy_from_slice(&da.0[..shared]);
            assert_eq!(da.cmp(&db), da.0.cmp(&db.0));
            da = db;
            assert_eq!(da.cmp(&db), std::cmp::Ordering::Equal);
        }
    }

    #[test]
    fn distance_is_symmetric_and_zero_to_self() {
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..100 {
            let (a, b) = (NodeId::random(&mut rng), NodeId::random(&mut rng));
            assert_eq!(a.distance(&b), b.distance(&a));
            assert_eq!(a.distance(&a), Distance::default());
            assert_eq!(a.distance(&a).leading_zeros(), ID_BITS);
        }
    }

    #[test]
    fn random_in_bucket_shares_exact_prefix() {
        let mut rng = StdRng::seed_from_u64(2);
        let me = NodeId::random(&mut rng);
        for depth in [0, 1, 7, 8, 9, 63, 158, 159] {
            let other = me.random_in_bucket(depth, &mut rng);
            assert_eq!(me.distance(&other).leading_zeros(), depth);
        }
    }

    #[test]
    fn hex_roundtrip_and_errors() {
        let id = NodeId::for_key("x");
        assert_eq!(NodeId::from_hex(&id.to_hex()), Ok(id));
        assert_eq!(NodeId::from_hex("zz"), Err(IdError::NotHex));
        assert_eq!(NodeId::from_hex("abcd"), Err(IdError::WrongLength(2)));
    }
}

#[cfg(test)]
mod format_tests;
