//! The replica side of the provider procedures: the [`Engine`] answers
//! `kadmesh_provider_add` / `_remove` (each entry through the store and its
//! rules, charged to the sender's quota when limits apply to it) and
//! `kadmesh_providers` (one page that fits a datagram).

use std::net::SocketAddr;

use super::wire::{page_entry, parse_write_entry, uint, Shard};
use super::{ProviderEntry, ProviderStore, ADD, LIST, MAX_ENTRIES_PER_CALL, MAX_PAGE_DATAGRAM, PAGE_OVERHEAD, REMOVE};
use crate::contact::Contact;
use crate::engine::Engine;
use crate::id::{Key, NodeId};
use crate::time::Time;
use crate::wire::Value;

/// Bytes the shard echo adds to a page: the `"shard"` key (6) and
/// `[index, bits]` (at most 1 + 5 + 1).
const SHARD_ECHO: usize = 6 + 7;

impl Engine {
    /// The provider sets held (read-only).
    pub fn providers(&self) -> &ProviderStore {
        &self.providers
    }

    /// Merges an entry into this node's own provider store, for a publisher
    /// that is itself among the closest nodes to `key`.
    pub fn provider_upsert(&mut self, now: Time, key: Key, entry: ProviderEntry) -> bool {
        self.providers.upsert(key, entry, now)
    }

    /// Answers the provider procedures; `None` (no reply) for malformed args,
    /// like an unknown procedure.
    pub(in crate::engine) fn on_provider_rpc(
        &mut self,
        now: Time,
        from: SocketAddr,
        name: &str,
        args: Vec<Value>,
        budget: crate::limits::reply::ReplyBudget,
    ) -> Option<Value> {
        match name {
            ADD => self.on_provider_write(now, from, args, false),
            REMOVE => self.on_provider_write(now, from, args, true),
            LIST => self.on_provider_list(now, from, args, budget),
            _ => None,
        }
    }

    fn provider_sender(&mut self, now: Time, from: SocketAddr, sender: &Value) -> Option<()> {
        let sender = sender.as_bytes().and_then(NodeId::from_slice)?;
        if sender != self.svc.id {
            self.learn(now, Contact::new(sender, from));
        }
        Some(())
    }

    fn on_provider_write(&mut self, now: Time, from: SocketAddr, args: Vec<Value>, gone: bool) -> Option<Value> {
        let [sender, key, entries] = <[Value; 3]>::try_from(args).ok()?;
        let key = key.as_bytes().and_then(NodeId::from_slice)?;
        let entries = entries.as_array().filter(|e| e.len() <= MAX_ENTRIES_PER_CALL)?;
        self.provider_sender(now, from, &sender)?;
        let mut accepted = 0;
        for e in entries.iter().filter_map(|v| parse_write_entry(v, gone, now)) {
            let stored = if self.svc.config.limits.applies_to(from.ip()) {
                self.providers.upsert_from(from.ip(), key, e, now)
            } else {
                self.providers.upsert(key, e, now)
            };
            if stored {
                accepted += 1;
            }
        }
        Some(Value::Int(accepted))
    }

    fn on_provider_list(
        &mut self,
        now: Time,
        from: SocketAddr,
        args: Vec<Value>,
        budget: crate::limits::reply::ReplyBudget,
    ) -> Option<Value> {
        // A fifth argument names a shard (an extension of the 4-argument call).
        let shard = match args.len() {
            4 => None,
            5 => Some(Shard::parse(&args[4])?),
            _ => return None,
        };
        let mut args = args.into_iter();
        let (sender, key, after, max) = (args.next()?, args.next()?, args.next()?, args.next()?);
        let key = key.as_bytes().and_then(NodeId::from_slice)?;
        let max = uint(&max).filter(|m| *m > 0)?.min(MAX_ENTRIES_PER_CALL as u64) as usize;
        let after = match &after {
            Value::Nil => None,
            v => Some(v.as_str()?),
        };
        self.provider_sender(now, from, &sender)?;
        let room = match budget {
            crate::limits::reply::ReplyBudget::Unbounded => MAX_PAGE_DATAGRAM,
            crate::limits::reply::ReplyBudget::Bytes(b) => b.min(MAX_PAGE_DATAGRAM),
        };
        let page = self.provider_page(&key, after, max, now, room, shard);
        if page.is_none() {
            self.svc.stats.replies_trimmed += 1;
        }
        page
    }

    /// One `LIST` reply body: as many entries after `after` as fit a
    /// datagram of `room` bytes (at most [`MAX_PAGE_DATAGRAM`]), at most
    /// `max`, of `shard` when one is asked (and then echoed). `None` when
    /// not even one entry fits (a reply budget that small): an empty page
    /// would read as the end of the set.
    fn provider_page(
        &self,
        key: &Key,
        after: Option<&str>,
        max: usize,
        now: Time,
        room: usize,
        shard: Option<Shard>,
    ) -> Option<Value> {
        let echo = shard.map(|s| (Value::from("shard"), s.to_value()));
        let overhead = PAGE_OVERHEAD + echo.as_ref().map_or(0, |_| SHARD_ECHO);
        let mut budget = room.saturating_sub(overhead);
        let in_shard = |id: &str| shard.is_none_or(|s| s.holds(id));
        let mut entries = Vec::new();
        let mut next = Value::Nil;
        let mut last: Option<&str> = None;
        for e in self.providers.range(key, after, now).filter(|e| in_shard(&e.id)) {
            let v = page_entry(e, now);
            let size = v.to_msgpack().len();
            if entries.len() >= max || size > budget {
                if last.is_none() && entries.len() < max {
                    return None;
                }
                next = last.map_or(Value::Nil, |id| Value::Str(id.to_owned()));
                break;
            }
            budget -= size;
            last = Some(&e.id);
            entries.push(v);
        }
        let (live, print) = self.providers.summary(key, now);
        let mut map = vec![
            (Value::from("entries"), Value::Array(entries)),
            (Value::from("next"), next),
            (Value::from("live"), Value::from_u64(live as u64)),
            (Value::from("fp"), Value::from_u64(print.0)),
        ];
        map.extend(echo);
        Some(Value::Map(map))
    }
}
