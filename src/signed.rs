//! Signed worker records: who may replace `worker:{id}`, decided from the
//! bytes alone.
//!
//! A signed record is a worker record's JSON text `T` (an object with at
//! least one member, carrying `worker_id`, `public_key` as 64 hex digits and
//! `seq` as an unsigned integer) with its final `}` replaced by
//! `,"sig":"<128 hex>"}`. The signature is Ed25519 over [`DOMAIN`] followed
//! by `T`'s exact bytes: nothing is canonicalised, so any language that can
//! cut a string and verify Ed25519 re-implements it (BEP 44 also signs raw
//! bytes). `sig` must be the text's last member, written exactly so
//! (lowercase hex, no spaces); anything else is not a signed record.
//!
//! [`admits`] is the store acceptance rule kadmesh nodes apply to every
//! `store`: a live signed record is replaced only by one signed by the same
//! key with a higher `seq`; an unsigned value never replaces it; a value
//! whose signature fails is never stored. `seq` more than [`MAX_SEQ_AHEAD`]
//! past `now` is refused: the engine's time is Unix milliseconds in the
//! daemon (`node::clock`), so no extra clock is needed.
//!
//! Pure: no I/O, no clock (time comes in as `now_ms`), no randomness. One
//! process-wide memo remembers texts whose signature verified (by SHA-256
//! of the whole signed text, so only the very same bytes hit): a reader
//! meets the same copy of a record on every discover, and an Ed25519 check
//! (about 50 us) was a third of a loopback discover's CPU. It changes no
//! answer, only how often the curve arithmetic runs; the simulator turns it
//! off ([`set_verify_memo`]) so each simulated node pays its own checks.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use crate::limits::lru::LruMap;

use crate::id::Key;
use crate::wire::Value;

/// Prefix of every signed message, so a record signature can never be
/// replayed as any other kind of signature made with the same key.
pub const DOMAIN: &[u8] = b"kadmesh-worker-record-v1\0";
/// How far past the current time a `seq` (Unix milliseconds) may be.
pub const MAX_SEQ_AHEAD: u64 = 24 * 3600 * 1000;
/// `,"sig":"` + 128 hex digits + `"}`.
const SUFFIX_LEN: usize = 8 + 128 + 2;

/// What a signed record says about itself.
#[derive(Clone, Debug, PartialEq)]
pub struct SignedInfo {
    /// The signer's Ed25519 public key.
    pub public_key: [u8; 32],
    /// The signer's sequence number (Unix milliseconds of the change).
    pub seq: u64,
    /// The `worker_id` the record is for.
    pub worker_id: String,
    /// The record's `expires_at` (Unix seconds), when it has one.
    pub expires_at: Option<f64>,
}

impl SignedInfo {
    /// Whether the record still binds its id to its key at `now_ms`.
    pub fn live(&self, now_ms: u64) -> bool {
        self.expires_at.is_none_or(|e| e * 1000.0 > now_ms as f64)
    }
}

/// Why a text is not an acceptable signed record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignedError {
    /// It does not end with a `sig` member: an unsigned value.
    #[error("the value is not signed")]
    NotSigned,
    /// It ends with a `sig` member but the signed part is not a record with
    /// `worker_id`, `public_key` and `seq`; the message names what is wrong.
    #[error("malformed signed record: {0}")]
    Malformed(&'static str),
    /// The signature does not verify against the record's `public_key`.
    #[error("the signature does not verify")]
    BadSignature,
}

/// The text of a DHT value, when it is a string (or UTF-8 bytes).
pub fn value_text(v: &Value) -> Option<&str> {
    match v {
        Value::Str(s) => Some(s),
        Value::Bin(b) => std::str::from_utf8(b).ok(),
        _ => None,
    }
}

/// Whether `text` ends like a signed record (cheap: no parsing).
pub fn looks_signed(text: &str) -> bool {
    split(text).is_some()
}

/// Splits a signed text into the signed part `T` and the signature bytes.
fn split(text: &str) -> Option<(String, [u8; 64])> {
    let cut = text.len().checked_sub(SUFFIX_LEN)?;
    let (body, suffix) = (text.get(..cut)?, text.get(cut..)?);
    let hex_sig = suffix.strip_prefix(",\"sig\":\"")?.strip_suffix("\"}")?;
    if !hex_sig.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut sig = [0u8; 64];
    hex::decode_to_slice(hex_sig, &mut sig).ok()?;
    Some((format!("{body}}}"), sig))
}

/// The fields of the signed part `t`, without checking the signature.
fn fields(t: &str) -> Result<SignedInfo, SignedError> {
    let doc: Json = serde_json::from_str(t).map_err(|_| SignedError::Malformed("not a JSON object"))?;
    let o = doc.as_object().ok_or(SignedError::Malformed("not a JSON object"))?;
    let worker_id = o.get("worker_id").and_then(Json::as_str).ok_or(SignedError::Malformed("no worker_id"))?;
    let pk = o.get("public_key").and_then(Json::as_str).ok_or(SignedError::Malformed("no public_key"))?;
    let mut public_key = [0u8; 32];
    if pk.len() != 64 || hex::decode_to_slice(pk, &mut public_key).is_err() {
        return Err(SignedError::Malformed("public_key is not 64 hex digits"));
    }
    let seq = o.get("seq").and_then(Json::as_u64).ok_or(SignedError::Malformed("seq is not an unsigned integer"))?;
    let expires_at = o.get("expires_at").and_then(Json::as_f64);
    Ok(SignedInfo { public_key, seq, worker_id: worker_id.to_owned(), expires_at })
}

/// Reads a signed record's fields without checking the signature: only
/// for values a node already checked before storing them.
pub fn parse_unverified(text: &str) -> Result<SignedInfo, SignedError> {
    let (t, _) = split(text).ok_or(SignedError::NotSigned)?;
    fields(&t)
}

/// Reads a signed record and checks its signature.
pub fn verify(text: &str) -> Result<SignedInfo, SignedError> {
    let (t, sig) = split(text).ok_or(SignedError::NotSigned)?;
    let info = fields(&t)?;
    let digest = MEMO_ON.load(Ordering::Relaxed).then(|| <[u8; 32]>::from(Sha256::digest(text.as_bytes())));
    if digest.as_ref().is_some_and(memo_has) {
        MEMO_HITS.fetch_add(1, Ordering::Relaxed);
        return Ok(info);
    }
    let key = VerifyingKey::from_bytes(&info.public_key).map_err(|_| SignedError::BadSignature)?;
    let mut msg = Vec::with_capacity(DOMAIN.len() + t.len());
    msg.extend_from_slice(DOMAIN);
    msg.extend_from_slice(t.as_bytes());
    key.verify(&msg, &Signature::from_bytes(&sig)).map_err(|_| SignedError::BadSignature)?;
    if let Some(d) = digest {
        memo_keep(d);
    }
    Ok(info)
}

/// Signed texts remembered as verified (32 bytes of digest each, so the
/// memo holds at most about 64 KiB).
const MEMO_CAPACITY: usize = 1024;
static MEMO: Mutex<Option<LruMap<[u8; 32], ()>>> = Mutex::new(None);
static MEMO_ON: AtomicBool = AtomicBool::new(true);
static MEMO_HITS: AtomicU64 = AtomicU64::new(0);

fn memo() -> std::sync::MutexGuard<'static, Option<LruMap<[u8; 32], ()>>> {
    MEMO.lock().unwrap_or_else(|e| e.into_inner())
}

fn memo_has(d: &[u8; 32]) -> bool {
    memo().as_mut().is_some_and(|m| m.get_mut(d).is_some())
}

fn memo_keep(d: [u8; 32]) {
    memo().get_or_insert_with(|| LruMap::new(MEMO_CAPACITY)).insert(d, ());
}

/// Turns the process-wide memo of verified texts on (the default) or off
/// (the simulator, whose thousands of nodes share one process).
pub fn set_verify_memo(on: bool) {
    MEMO_ON.store(on, Ordering::Relaxed);
}

/// Verifications answered from the memo so far.
pub fn verify_memo_hits() -> u64 {
    MEMO_HITS.load(Ordering::Relaxed)
}

/// Signs the record text `t` (a JSON object with at least one member, as
/// the writer produced it): `t` with its final `}` replaced by the `sig`
/// member. `None` when `t` does not end with `}` after a member.
pub fn sign(t: &str, key: &SigningKey) -> Option<String> {
    let body = t.strip_suffix('}')?;
    if body.trim_end().ends_with('{') || !body.trim_start().starts_with('{') {
        return None;
    }
    let mut msg = Vec::with_capacity(DOMAIN.len() + t.len());
    msg.extend_from_slice(DOMAIN);
    msg.extend_from_slice(t.as_bytes());
    let sig = key.sign(&msg);
    Some(format!("{body},\"sig\":\"{}\"}}", hex::encode(sig.to_bytes())))
}

/// The store acceptance rule: whether a node holding `old` under `key` may
/// replace it with `new` at `now_ms` (Unix milliseconds).
///
/// - A value that ends with a `sig` member must verify, be for the worker
///   whose key `key` is (`SHA-1("worker:" + worker_id)`), and have a `seq`
///   no more than [`MAX_SEQ_AHEAD`] past `now_ms`.
/// - A held signed record that is still live (its `expires_at` not passed)
///   is replaced only by the same text (a re-store refreshing its lifetime)
///   or by a record signed by the same key with a higher `seq`.
/// - Anything else behaves as in a plain Kademlia store.
pub fn admits(key: &Key, old: Option<&Value>, new: &Value, now_ms: u64) -> bool {
    let new_text = value_text(new).filter(|t| looks_signed(t));
    let new_info = match new_text.map(verify) {
        Some(Ok(n)) => {
            if Key::for_key(&format!("worker:{}", n.worker_id)) != *key || n.seq > now_ms.saturating_add(MAX_SEQ_AHEAD)
            {
                return false;
            }
            Some(n)
        }
        Some(Err(_)) => return false,
        None => None,
    };
    let old_text = old.and_then(value_text);
    let Some(held) = old_text.and_then(|t| parse_unverified(t).ok()).filter(|o| o.live(now_ms)) else {
        return true;
    };
    if old_text == value_text(new) {
        return true;
    }
    new_info.is_some_and(|n| n.public_key == held.public_key && n.seq > held.seq)
}

#[cfg(test)]
#[path = "signed_tests.rs"]
mod tests;
