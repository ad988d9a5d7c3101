//! The entry formats of the provider procedures, shared by the replica side
//! ([`super::rpc`]) and the calling side ([`crate::discovery::wire`]).
//!
//! A write entry is `[id, version, ttl_secs, load|nil]`, or for a signed
//! entry `[id, version, ttl_secs, load|nil, public_key, expires_at, sig]`;
//! a page entry is `[id, version, ttl_left_secs, load|nil, gone]`, or
//! `[..., gone, public_key, expires_at, sig]` for a signed one. Parsers take
//! any value and return `None` for any other shape.

use std::time::Duration;

use super::signature::EntrySignature;
use super::ProviderEntry;
use crate::time::Time;
use crate::wire::Value;

/// A non-negative integer argument.
pub fn uint(v: &Value) -> Option<u64> {
    v.as_int().and_then(|i| u64::try_from(i).ok())
}

/// A finite number (int or float) argument.
pub fn number(v: &Value) -> Option<f64> {
    let f = match v {
        Value::F64(f) => *f,
        Value::F32(f) => f64::from(*f),
        Value::Int(i) => *i as f64,
        _ => return None,
    };
    f.is_finite().then_some(f)
}

/// The three trailing members of a signed entry.
pub fn signature_values(s: &EntrySignature) -> [Value; 3] {
    [Value::Bin(s.public_key.to_vec()), Value::from_u64(s.expires_at), Value::Bin(s.sig.to_vec())]
}

/// Reads the three trailing members of a signed entry.
pub fn parse_signature(members: &[Value]) -> Option<EntrySignature> {
    let [pk, expires_at, sig] = members else { return None };
    Some(EntrySignature {
        public_key: pk.as_bytes()?.try_into().ok()?,
        expires_at: uint(expires_at)?,
        sig: sig.as_bytes()?.try_into().ok()?,
    })
}

/// A write entry; a tombstone carries no load.
pub fn write_entry(id: &str, version: u64, ttl: Duration, load: Option<f64>, sig: Option<&EntrySignature>) -> Value {
    let load = load.filter(|l| l.is_finite()).map_or(Value::Nil, Value::F64);
    let mut v = vec![Value::from(id), Value::from_u64(version), Value::from_u64(ttl.as_secs()), load];
    v.extend(sig.into_iter().flat_map(signature_values));
    Value::Array(v)
}

/// One write entry, arrived at `now`.
pub fn parse_write_entry(v: &Value, gone: bool, now: Time) -> Option<ProviderEntry> {
    let (plain, signature) = match v.as_array()? {
        a if a.len() == 4 => (a, None),
        a if a.len() == 7 => (&a[..4], Some(parse_signature(&a[4..])?)),
        _ => return None,
    };
    let [id, version, ttl, load] = plain else { return None };
    let expires_at = now + Duration::from_secs(uint(ttl)?);
    let load = if gone { None } else { number(load) };
    Some(ProviderEntry { id: id.as_str()?.to_owned(), version: uint(version)?, expires_at, load, gone, signature })
}

/// Whole seconds `expires_at` is ahead of `now`, rounded up: a page holds
/// only unexpired entries, and a reader takes 0 for expired. Rounded down,
/// an entry in its last second read as expired at every replica; right
/// after a partition healed, providers whose refreshes could not cross the
/// cut sat in exactly that second at the replicas on the other side (36 of
/// 47 missed discovers in `simulations partition`, seed 1).
pub fn ttl_left_secs(expires_at: Time, now: Time) -> u64 {
    let left = expires_at.saturating_since(now);
    left.as_secs() + u64::from(left.subsec_nanos() > 0)
}

/// One page entry on the wire.
pub fn page_entry(e: &ProviderEntry, now: Time) -> Value {
    let mut v = vec![
        Value::Str(e.id.clone()),
        Value::from_u64(e.version),
        Value::from_u64(ttl_left_secs(e.expires_at, now)),
        e.load.map_or(Value::Nil, Value::F64),
        Value::Bool(e.gone),
    ];
    v.extend(e.signature.iter().flat_map(signature_values));
    Value::Array(v)
}

/// A hash shard of a provider set: the entries whose id's 32-bit FNV-1a
/// hash begins with the `bits`-bit prefix `index` (`bits` 0: the whole
/// set). FNV-1a, not SHA-1: a replica hashes every entry after the cursor
/// for each sharded page, and that must stay cheap. A shard
/// splits into `(2 * index, bits + 1)` and `(2 * index + 1, bits + 1)`, so a
/// reader can cut the rest of a shard after a cursor into smaller shards
/// read in parallel, each after the same cursor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Shard {
    /// The prefix.
    pub index: u32,
    /// Its length in bits, 0..=[`MAX_SHARD_BITS`].
    pub bits: u32,
}

/// Longest shard prefix: 65,536 shards, far more than a set's pages.
pub const MAX_SHARD_BITS: u32 = 16;

impl Shard {
    /// The whole set.
    pub const ALL: Shard = Shard { index: 0, bits: 0 };

    /// Whether worker id `id` falls in this shard.
    pub fn holds(self, id: &str) -> bool {
        if self.bits == 0 {
            return true;
        }
        Shard::hash(id) >> (32 - self.bits) == self.index
    }

    /// Where worker id `id` falls: the 32-bit hash whose leading bits are
    /// the index of the shard that holds it, at any length.
    pub fn hash(id: &str) -> u32 {
        fnv1a(id.as_bytes())
    }

    /// The `2^more` shards this one splits into.
    pub fn split(self, more: u32) -> impl Iterator<Item = Shard> {
        let bits = (self.bits + more).min(MAX_SHARD_BITS);
        let more = bits - self.bits;
        (0..1u32 << more).map(move |i| Shard { index: (self.index << more) | i, bits })
    }

    /// The wire form, `[index, bits]`.
    pub fn to_value(self) -> Value {
        Value::Array(vec![Value::from_u64(u64::from(self.index)), Value::from_u64(u64::from(self.bits))])
    }

    /// Reads the wire form; `None` unless `bits <= MAX_SHARD_BITS` and
    /// `index < 2^bits`.
    pub fn parse(v: &Value) -> Option<Shard> {
        let [index, bits] = v.as_array()? else { return None };
        let (index, bits) = (u32::try_from(uint(index)?).ok()?, u32::try_from(uint(bits)?).ok()?);
        (bits <= MAX_SHARD_BITS && u64::from(index) < 1u64 << bits).then_some(Shard { index, bits })
    }
}

/// What an entry adds to its set's fingerprint (the `fp` of a page, see
/// [`SetPrint`]): its id, whether it is a tombstone, and its signer's key,
/// not its version, load or lifetime, which every refresh changes.
pub fn entry_print(id: &str, gone: bool, signer: Option<&[u8; 32]>) -> u64 {
    let h = fnv1a64(FNV64_BASIS, id.as_bytes());
    let h = fnv1a64(h, &[0xff, u8::from(gone)]);
    let h = signer.map_or(h, |k| fnv1a64(h, k));
    mix64(h)
}

/// A set's fingerprint: the wrapping sum of its entries' [`entry_print`]s,
/// so it does not depend on their order and two replicas holding the same
/// ids (as live or as tombstones, signed by the same keys) report the
/// same one, whatever versions they hold. A reader takes a replica whose
/// fingerprint equals that of a replica it read to its end for a copy of
/// it (`proto-spec/EXTENSIONS.md` §3.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetPrint(pub u64);

impl SetPrint {
    /// Adds one entry.
    pub fn add(&mut self, id: &str, gone: bool, signer: Option<&[u8; 32]>) {
        self.0 = self.0.wrapping_add(entry_print(id, gone, signer));
    }

    /// Takes one entry out.
    pub fn remove(&mut self, id: &str, gone: bool, signer: Option<&[u8; 32]>) {
        self.0 = self.0.wrapping_sub(entry_print(id, gone, signer));
    }
}

const FNV64_BASIS: u64 = 0xcbf2_9ce4_8422_2325;

/// 64-bit FNV-1a of `bytes` continued from `h`.
fn fnv1a64(h: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// The SplitMix64 finalizer: spreads FNV's weak high bits over the word, so
/// sums of prints do not cancel in patterns.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// 32-bit FNV-1a of `bytes` (offset basis 2166136261, prime 16777619).
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(2_166_136_261u32, |h, &b| (h ^ u32::from(b)).wrapping_mul(16_777_619))
}
