//! What a node saves ([`SavedState`]): capturing it from an engine,
//! restoring it into one, and converting it to and from the file's body
//! (`format`), checking every id, address and value on the way in.

use std::net::SocketAddr;
use std::time::Duration;

use super::format::{Blob, BodyV1, ContactV1, PublishedV1, RecordV1};
use crate::contact::Contact;
use crate::engine::Engine;
use crate::id::{Key, NodeId};
use crate::store::Record;
use crate::time::Time;
use crate::wire::{decode_value, encode_value, Value};

/// Everything a node needs to come back as itself.
#[derive(Clone, Debug, PartialEq)]
pub struct SavedState {
    /// The node id.
    pub id: NodeId,
    /// When the snapshot was taken, on the driver's timeline.
    pub saved_at: Time,
    /// The routing table's contacts.
    pub contacts: Vec<Contact>,
    /// Records this node publishes and republishes.
    pub published: Vec<(Key, Value)>,
    /// Records this node holds, live at `saved_at`, with their metadata.
    pub records: Vec<Record>,
}

impl SavedState {
    /// A snapshot of `engine` at `now` (expired records left out).
    pub fn capture(engine: &Engine, now: Time) -> SavedState {
        SavedState {
            id: engine.id(),
            saved_at: now,
            contacts: engine.routing().contacts().collect(),
            published: engine.published().map(|(k, v)| (*k, v.clone())).collect(),
            records: engine.store().iter().filter(|r| r.expires_at > now).cloned().collect(),
        }
    }

    /// Loads this state into `engine` at `now`: held records with what is
    /// left of their lifetime (capped at the engine's `record_ttl`), and
    /// published records, each republished at a random moment within
    /// `republish_spread` through the engine's rate-limited queue. Returns
    /// the saved contacts' addresses, capped to what a routing table can
    /// hold ([`capped_contacts`]): bootstrap from them to rejoin.
    pub fn restore_into(self, engine: &mut Engine, now: Time, republish_spread: Duration) -> Vec<SocketAddr> {
        for r in self.records {
            engine.restore_record(now, r);
        }
        engine.restore_published(now, self.published, republish_spread);
        capped_contacts(engine.id(), engine.config().k, &self.contacts)
    }

    pub(super) fn to_body(&self) -> BodyV1 {
        let blob = |id: &NodeId| Blob(id.0.to_vec());
        let value = |v: &Value| {
            let mut b = Vec::new();
            encode_value(v, &mut b);
            Blob(b)
        };
        BodyV1 {
            id: blob(&self.id),
            saved_at_ms: self.saved_at.as_millis(),
            contacts: self.contacts.iter().map(|c| ContactV1 { id: blob(&c.id), addr: c.addr.to_string() }).collect(),
            published: self.published.iter().map(|(k, v)| PublishedV1 { key: blob(k), value: value(v) }).collect(),
            records: self
                .records
                .iter()
                .map(|r| RecordV1 {
                    key: blob(&r.key),
                    value: value(&r.value),
                    publisher: r.publisher.as_ref().map(blob),
                    stored_at_ms: r.stored_at.as_millis(),
                    expires_at_ms: r.expires_at.as_millis(),
                })
                .collect(),
        }
    }

    pub(super) fn from_body(body: BodyV1) -> Result<SavedState, String> {
        let contacts = body
            .contacts
            .into_iter()
            .map(|c| {
                let addr = c.addr.parse().map_err(|_| format!("bad contact address {:?}", c.addr))?;
                Ok(Contact::new(id_of(&c.id, "contact id")?, addr))
            })
            .collect::<Result<_, String>>()?;
        let published = body
            .published
            .into_iter()
            .map(|p| Ok((id_of(&p.key, "key")?, value_of(&p.value)?)))
            .collect::<Result<_, String>>()?;
        let records = body.records.into_iter().map(record_of).collect::<Result<_, String>>()?;
        Ok(SavedState {
            id: id_of(&body.id, "node id")?,
            saved_at: Time::from_millis(body.saved_at_ms),
            contacts,
            published,
            records,
        })
    }
}

/// The addresses of `contacts` a routing table of `local` with buckets of
/// `k` could hold: at most `k` per distance prefix (one bucket's worth at
/// each depth), so a state file with 50,000 contacts yields at most
/// 160 x `k`, not 50,000 pings. Ordered round-robin over depths, nearest
/// depth first, so a caller pinging the first few reaches every region.
pub fn capped_contacts(local: NodeId, k: usize, contacts: &[Contact]) -> Vec<SocketAddr> {
    let mut by_depth: Vec<Vec<SocketAddr>> = vec![Vec::new(); crate::id::ID_BITS + 1];
    let mut seen = std::collections::HashSet::new();
    for c in contacts.iter().filter(|c| c.id != local) {
        let depth = &mut by_depth[local.distance(&c.id).leading_zeros()];
        if depth.len() < k && seen.insert(c.addr) {
            depth.push(c.addr);
        }
    }
    let mut out = Vec::new();
    for round in 0..k {
        out.extend(by_depth.iter().rev().filter_map(|d| d.get(round)));
    }
    out
}

fn id_of(b: &Blob, what: &str) -> Result<NodeId, String> {
    NodeId::from_slice(&b.0).ok_or_else(|| format!("{what} is {} bytes, not 20", b.0.len()))
}

fn value_of(b: &Blob) -> Result<Value, String> {
    decode_value(&b.0).map_err(|e| format!("bad record value: {e}"))
}

fn record_of(r: RecordV1) -> Result<Record, String> {
    let publisher = r.publisher.as_ref().map(|p| id_of(p, "publisher")).transpose()?;
    Ok(Record {
        key: id_of(&r.key, "key")?,
        size: r.value.0.len(),
        value: value_of(&r.value)?,
        publisher,
        stored_at: Time::from_millis(r.stored_at_ms),
        expires_at: Time::from_millis(r.expires_at_ms),
    })
}
