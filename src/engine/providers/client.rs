//! The calling side of the provider-set procedures (served by
//! [`crate::engine::providers`]): building write and read requests that stay
//! within one typical-MTU datagram, parsing page replies, and merging what
//! several replicas answered.
//!
//! Contract: every request built here encodes to at most
//! [`MAX_PAGE_DATAGRAM`] bytes (a write carries as many entries as fit, so a
//! large batch becomes several requests); [`parse_page`] accepts any value
//! and returns `None` for anything but the documented reply shape, skipping
//! malformed entries (and signed entries whose signature fails) rather than
//! failing the page.

use std::collections::HashMap;
use std::time::Duration;

use ed25519_dalek::SigningKey;

use crate::engine::providers::signature::{self, Signed};
use crate::engine::providers::wire::{number, parse_signature, uint, write_entry, SetPrint, Shard};
use crate::engine::providers::{valid_id, EntrySignature, ADD, LIST, MAX_ENTRIES_PER_CALL, MAX_PAGE_DATAGRAM, REMOVE};
use crate::id::{Key, NodeId};
use crate::wire::{Call, Value, HEADER_LEN};

/// Bytes of a write request outside its entries: header, `[name, args]`,
/// either name (both counted, for margin), sender, key, entries header.
const WRITE_OVERHEAD: usize = HEADER_LEN + 1 + 1 + ADD.len() + REMOVE.len() + 1 + 22 + 22 + 3;

/// One provider to add or remove.
#[derive(Clone, Debug, PartialEq)]
pub struct Announce {
    /// Worker id.
    pub id: String,
    /// Publisher's version; a removal must carry a newer one than the add.
    pub version: u64,
    /// How long replicas keep the entry (or the tombstone).
    pub ttl: Duration,
    /// Load hint.
    pub load: Option<f64>,
    /// The worker's signature over this entry for one set ([`Announce::signed`]).
    pub signature: Option<EntrySignature>,
}

impl Announce {
    /// This announcement signed by `key` for the set `set` (an add, or a
    /// tombstone when `gone`), to be served until `expires_at` (Unix
    /// seconds) at the latest.
    pub fn signed(mut self, set: &Key, gone: bool, expires_at: u64, key: &SigningKey) -> Announce {
        let load = if gone { None } else { self.load.filter(|l| l.is_finite()) };
        self.load = load;
        let e = Signed { key: set, id: &self.id, version: self.version, gone, load, expires_at };
        self.signature = Some(signature::sign(&e, key));
        self
    }
}

/// One provider entry as a replica reported it.
#[derive(Clone, Debug, PartialEq)]
pub struct SeenEntry {
    /// Worker id.
    pub id: String,
    /// Publisher's version.
    pub version: u64,
    /// Lifetime left at the replica when it answered.
    pub ttl: Duration,
    /// Load hint.
    pub load: Option<f64>,
    /// Removed at `version`.
    pub gone: bool,
    /// The public key whose signature over the entry verified, if any.
    pub signer: Option<[u8; 32]>,
}

impl SeenEntry {
    /// Whether the entry names a provider that is still announced.
    pub fn is_live(&self) -> bool {
        !self.gone && !self.ttl.is_zero()
    }
}

/// One page of a provider set.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Page {
    /// Entries in id order.
    pub entries: Vec<SeenEntry>,
    /// Cursor for the next page; `None` on the last one.
    pub next: Option<String>,
    /// Live entries in the whole set at the replica.
    pub live: u64,
    /// The shard the page is of, as the replica echoed it (`None`: the
    /// whole set, or a replica that does not shard).
    pub shard: Option<Shard>,
    /// The whole set's fingerprint at the replica when it answered (see
    /// [`SetPrint`]; `None` from a replica older than it).
    pub print: Option<SetPrint>,
}

fn id_value(id: &NodeId) -> Value {
    Value::Bin(id.0.to_vec())
}

/// Write requests carrying `items` (adds, or tombstones when `remove`),
/// split so that each fits [`MAX_PAGE_DATAGRAM`]. Invalid ids are skipped.
pub fn write_calls(sender: NodeId, key: Key, items: &[Announce], remove: bool) -> Vec<Call> {
    let name = if remove { REMOVE } else { ADD };
    let mut calls = Vec::new();
    let mut batch: Vec<Value> = Vec::new();
    let mut size = WRITE_OVERHEAD;
    for a in items.iter().filter(|a| valid_id(&a.id)) {
        let load = a.load.filter(|_| !remove);
        let entry = write_entry(&a.id, a.version, a.ttl, load, a.signature.as_ref());
        let len = entry.to_msgpack().len();
        if !batch.is_empty() && (size + len > MAX_PAGE_DATAGRAM || batch.len() >= MAX_ENTRIES_PER_CALL) {
            let args = vec![id_value(&sender), id_value(&key), Value::Array(std::mem::take(&mut batch))];
            calls.push(Call::Other { name: name.into(), args });
            size = WRITE_OVERHEAD;
        }
        size += len;
        batch.push(entry);
    }
    if !batch.is_empty() {
        calls.push(Call::Other {
            name: name.into(),
            args: vec![id_value(&sender), id_value(&key), Value::Array(batch)],
        });
    }
    calls
}

/// A read of up to `max` entries after `after`.
pub fn list_call(sender: NodeId, key: Key, after: Option<&str>, max: usize) -> Call {
    shard_call(sender, key, after, max, Shard::ALL)
}

/// A read of up to `max` entries of `shard` after `after` (the plain
/// 4-argument call for the whole set).
pub fn shard_call(sender: NodeId, key: Key, after: Option<&str>, max: usize, shard: Shard) -> Call {
    let after = after.map_or(Value::Nil, Value::from);
    let max = Value::from_u64(max.clamp(1, MAX_ENTRIES_PER_CALL) as u64);
    let mut args = vec![id_value(&sender), id_value(&key), after, max];
    if shard != Shard::ALL {
        args.push(shard.to_value());
    }
    Call::Other { name: LIST.into(), args }
}

/// The count a write reply reports.
pub fn parse_write_reply(v: &Value) -> Option<u64> {
    v.as_int().and_then(|n| u64::try_from(n).ok())
}

/// One page entry of the set `key`; a signed one only when it verifies.
fn parse_entry(v: &Value, key: &Key) -> Option<SeenEntry> {
    let (plain, sig) = match v.as_array()? {
        a if a.len() == 5 => (a, None),
        a if a.len() == 8 => (&a[..5], Some(parse_signature(&a[5..])?)),
        _ => return None,
    };
    let [id, version, ttl, load, gone] = plain else { return None };
    let id = id.as_str().filter(|s| valid_id(s))?.to_owned();
    let (version, gone) = (uint(version)?, gone.as_bool()?);
    let load = number(load);
    let signer = match sig {
        None => None,
        Some(s) if signature::verify(&Signed { key, id: &id, version, gone, load, expires_at: s.expires_at }, &s) => {
            Some(s.public_key)
        }
        Some(_) => return None,
    };
    let ttl = Duration::from_secs(uint(ttl)?);
    Some(SeenEntry { id, version, ttl, load, gone, signer })
}

/// Parses a `kadmesh_providers` reply for the set `key`.
pub fn parse_page(v: &Value, key: &Key) -> Option<Page> {
    let entries = v.as_map_get("entries")?.as_array()?.iter().filter_map(|e| parse_entry(e, key)).collect();
    let next = match v.as_map_get("next")? {
        Value::Nil => None,
        s => Some(s.as_str().filter(|s| valid_id(s))?.to_owned()),
    };
    let live = v.as_map_get("live").and_then(Value::as_int).and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
    let shard = match v.as_map_get("shard") {
        None => None,
        Some(s) => Some(Shard::parse(s)?),
    };
    let print = v.as_map_get("fp").and_then(Value::as_u64).map(SetPrint);
    Some(Page { entries, next, live, shard, print })
}

/// Merges one replica's entry into `into` with the replicas' own order:
/// a verified entry beats an unverified one, then the higher `(version,
/// gone)` wins, and an equal one keeps the longer lifetime. (Replicas that
/// disagree on the signer of an id are settled by version here; the worker
/// record decides in the end.)
pub fn merge(into: &mut HashMap<String, SeenEntry>, e: SeenEntry) {
    match into.get_mut(&e.id) {
        Some(have) => match rank(&e).cmp(&rank(have)) {
            std::cmp::Ordering::Greater => *have = e,
            std::cmp::Ordering::Equal => {
                have.ttl = have.ttl.max(e.ttl);
                have.load = e.load.or(have.load);
            }
            std::cmp::Ordering::Less => {}
        },
        None => {
            into.insert(e.id.clone(), e);
        }
    }
}

fn rank(e: &SeenEntry) -> (bool, u64, bool) {
    (e.signer.is_some(), e.version, e.gone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Datagram, MessageId};

    fn announce(i: usize) -> Announce {
        Announce {
            id: format!("{}{i:05}", "w".repeat(100)),
            version: u64::MAX / 4,
            ttl: Duration::MAX,
            load: Some(0.5),
            signature: None,
        }
    }

    #[test]
    fn big_batches_split_into_mtu_sized_requests() {
        let items: Vec<Announce> = (0..500).map(announce).collect();
        let calls = write_calls(NodeId([1; 20]), NodeId([2; 20]), &items, false);
        let mut total = 0;
        for call in &calls {
            let bytes = Datagram::Request { id: MessageId([0; 20]), call: call.clone() }.encode().unwrap();
            assert!(bytes.len() <= MAX_PAGE_DATAGRAM, "{}", bytes.len());
            let Call::Other { args, .. } = call else { panic!("not an extension call") };
            total += args[2].as_array().unwrap().len();
        }
        assert_eq!(total, 500);
        assert!(calls.len() > 50);
        let bad = Announce { id: "no spaces".into(), ..announce(1) };
        assert!(write_calls(NodeId([1; 20]), NodeId([2; 20]), &[bad], true).is_empty());
    }

    #[test]
    fn merge_prefers_newer_versions_and_tombstones() {
        let e = |v, gone, ttl| SeenEntry {
            id: "w".into(),
            version: v,
            ttl: Duration::from_secs(ttl),
            load: None,
            gone,
            signer: None,
        };
        let mut m = HashMap::new();
        merge(&mut m, e(2, false, 10));
        merge(&mut m, e(2, false, 50));
        assert_eq!(m["w"].ttl, Duration::from_secs(50));
        merge(&mut m, e(1, true, 99));
        assert!(m["w"].is_live());
        merge(&mut m, e(2, true, 5));
        assert!(!m["w"].is_live());
    }

    #[test]
    fn page_parser_rejects_other_shapes() {
        assert_eq!(parse_page(&Value::Nil, &NodeId([2; 20])), None);
        assert_eq!(parse_page(&Value::Map(vec![]), &NodeId([2; 20])), None);
        let entry =
            Value::Array(vec![Value::from("w1"), Value::Int(3), Value::Int(60), Value::F64(0.5), Value::Bool(false)]);
        let page = Value::Map(vec![
            (Value::from("entries"), Value::Array(vec![entry, Value::Int(1)])),
            (Value::from("next"), Value::from("w1")),
            (Value::from("live"), Value::Int(9)),
        ]);
        let p = parse_page(&page, &NodeId([2; 20])).unwrap();
        assert_eq!((p.entries.len(), p.next.as_deref(), p.live, p.shard), (1, Some("w1"), 9, None));
    }
}
