//! Which of the copies a `get` collected is the newest, and which holders
//! hold an older one (BEP 44's read: the reader keeps the highest `seq` and
//! stores it back to the replicas that answered with less).
//!
//! The rules, in order:
//! - Copies that are all the same bytes: that copy, nothing older (the
//!   common case, decided without parsing anything).
//! - Signed worker records (`crate::signed`) that verify and are bound to
//!   the key: the signer that most holders answered for, then the highest
//!   `seq` among its copies. Older: the same signer's copies with a lower
//!   `seq`. The majority guards against a forger with its own key and a far
//!   `seq` at one or two replicas (the store rule keeps it off replicas that
//!   hold the worker's live record); an unsigned or unverifiable copy is
//!   never chosen over a signed one, as the store rule never lets it replace
//!   one, and is never repaired (a stock writer may own the key).
//! - Otherwise, when every copy is a JSON object with the same `worker_id`
//!   and a numeric `last_seen` (the platform's worker record): the highest
//!   `last_seen`. Older: a lower `last_seen`.
//! - Otherwise (lists, foreign shapes): the copy most holders returned,
//!   the first received at a tie; nothing is called older, so nothing is
//!   repaired.
//!
//! Pure: values and time in, a choice out. Verification runs once per
//! distinct text, so equal copies cost one check at most.

use serde_json::Value as Json;

use crate::id::{Key, NodeId};
use crate::signed::{self, SignedInfo, MAX_SEQ_AHEAD};
use crate::wire::Value;

/// The newest copy and the holders of older ones.
#[derive(Clone, Debug, PartialEq)]
pub(in crate::engine) struct Choice {
    /// The copy to return.
    pub(in crate::engine) value: Value,
    /// Holders whose copy is older by the rules above (repair targets).
    pub(in crate::engine) older: Vec<NodeId>,
}

/// The newest of `copies` (value, holder; in arrival order) under `key` at
/// `now_ms` (Unix milliseconds); `None` when there are none.
pub(in crate::engine) fn choose(key: &Key, copies: &[(Value, NodeId)], now_ms: u64) -> Option<Choice> {
    let (first, _) = copies.first()?;
    if copies.iter().all(|(v, _)| v == first) {
        return Some(Choice { value: first.clone(), older: Vec::new() });
    }
    let distinct = distinct(copies);
    if let Some(c) = by_seq(key, copies, &distinct, now_ms) {
        return Some(c);
    }
    by_last_seen(copies, &distinct).or_else(|| by_count(&distinct))
}

/// The distinct values among `copies`, in arrival order, each with how many
/// holders returned it.
fn distinct(copies: &[(Value, NodeId)]) -> Vec<(&Value, usize)> {
    let mut out: Vec<(&Value, usize)> = Vec::new();
    for (v, _) in copies {
        match out.iter_mut().find(|(d, _)| *d == v) {
            Some((_, n)) => *n += 1,
            None => out.push((v, 1)),
        }
    }
    out
}

/// A signed copy that verifies and is bound to `key`.
fn verified(key: &Key, v: &Value, now_ms: u64) -> Option<SignedInfo> {
    let text = signed::value_text(v).filter(|t| signed::looks_signed(t))?;
    let info = signed::verify(text).ok()?;
    let bound = Key::for_key(&format!("worker:{}", info.worker_id)) == *key;
    (bound && info.seq <= now_ms.saturating_add(MAX_SEQ_AHEAD)).then_some(info)
}

fn by_seq(key: &Key, copies: &[(Value, NodeId)], distinct: &[(&Value, usize)], now_ms: u64) -> Option<Choice> {
    let signed: Vec<(&Value, usize, SignedInfo)> =
        distinct.iter().filter_map(|&(v, n)| verified(key, v, now_ms).map(|i| (v, n, i))).collect();
    // The signer most holders answered for; at a tie the one with the higher seq.
    let holders = |pk: &[u8; 32]| signed.iter().filter(|s| &s.2.public_key == pk).map(|s| s.1).sum::<usize>();
    let top = signed.iter().max_by_key(|s| (holders(&s.2.public_key), s.2.seq))?;
    let signer = top.2.public_key;
    let (value, _, best) =
        signed.iter().filter(|s| s.2.public_key == signer).max_by_key(|s| s.2.seq).map(|s| (s.0, s.1, &s.2))?;
    let stale: Vec<&Value> =
        signed.iter().filter(|s| s.2.public_key == signer && s.2.seq < best.seq).map(|s| s.0).collect();
    let older = copies.iter().filter(|(v, _)| stale.contains(&v)).map(|(_, from)| *from).collect();
    Some(Choice { value: value.clone(), older })
}

/// Whether `v` is a worker record whose `last_seen` (Unix seconds) lies
/// within `fresh_for` before `now_unix` (and not in the future, which only a
/// forger or a broken clock writes; a minute of clock skew is allowed).
pub(in crate::engine) fn looks_current(v: &Value, now_unix: f64, fresh_for: std::time::Duration) -> bool {
    seen(v).is_some_and(|(_, t)| t <= now_unix + 60.0 && now_unix - t <= fresh_for.as_secs_f64())
}

/// `worker_id` and `last_seen` of a JSON worker record.
fn seen(v: &Value) -> Option<(String, f64)> {
    let doc: Json = serde_json::from_str(signed::value_text(v)?).ok()?;
    let id = doc.get("worker_id")?.as_str()?.to_owned();
    let last_seen = doc.get("last_seen")?.as_f64()?;
    Some((id, last_seen))
}

fn by_last_seen(copies: &[(Value, NodeId)], distinct: &[(&Value, usize)]) -> Option<Choice> {
    let parsed: Vec<(&Value, (String, f64))> =
        distinct.iter().map(|&(v, _)| seen(v).map(|s| (v, s))).collect::<Option<_>>()?;
    let id = &parsed.first()?.1 .0;
    if parsed.iter().any(|(_, (other, _))| other != id) {
        return None;
    }
    // The first received wins a tie: max_by keeps the last maximum, so walk backwards.
    let (value, (_, newest)) = parsed.iter().rev().max_by(|a, b| a.1 .1.total_cmp(&b.1 .1))?;
    let stale: Vec<&Value> = parsed.iter().filter(|(_, (_, t))| t < newest).map(|(v, _)| *v).collect();
    let older = copies.iter().filter(|(v, _)| stale.contains(&v)).map(|(_, from)| *from).collect();
    Some(Choice { value: (*value).clone(), older })
}

fn by_count(distinct: &[(&Value, usize)]) -> Option<Choice> {
    // The first received wins a tie, as above.
    let (value, _) = distinct.iter().rev().max_by_key(|(_, n)| *n)?;
    Some(Choice { value: (*value).clone(), older: Vec::new() })
}

#[cfg(test)]
#[path = "newest_tests.rs"]
mod tests;
