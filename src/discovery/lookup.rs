//! Reading: who provides a service, and their records.
//!
//! [`Discovery::collect_providers`] runs the core's provider read
//! ([`Engine::provider_read`](crate::engine::Engine::provider_read): a node
//! lookup for the service key, then the set read in parallel hash shards
//! from up to `read_replicas` of the closest nodes that may speak the
//! extension plus this node's own store, merged; a second round when one
//! failed or lacks much of the merge)
//! and, at the same time, a plain `get` of the legacy `service:{type}` JSON
//! list.
//!
//! [`Discovery::fetch_records`] then gets `worker:{id}` records with bounded
//! parallelism, preferring this node's own registry for workers registered
//! here, keeps those a caller-supplied test accepts, and can stop early
//! once it has enough.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use tokio::task::JoinSet;

use super::bindings::Bindings;
use super::metrics::bump;
use super::record::WorkerRecord;
use super::wire::SeenEntry;
use super::{worker_key, Discovery};
use crate::engine::providers::valid_id;
use crate::id::Key;
use crate::node::NodeError;

/// Most ids taken from one legacy JSON list.
const MAX_LEGACY_IDS: usize = 10_000;

/// What the DHT says provides a key.
#[derive(Clone, Debug, Default)]
pub(crate) struct Providers {
    /// Merged provider entries, tombstones included.
    pub entries: HashMap<String, SeenEntry>,
    /// Worker ids from the legacy JSON list.
    pub legacy: Vec<String>,
    /// Replicas whose sets were read completely (this node counts).
    pub replicas: usize,
}

impl Providers {
    /// Candidate worker ids: live entries, verified (signed) ones first,
    /// each by announced load (lightest first); then legacy ids not already
    /// named; then tombstoned ids.
    ///
    /// Unsigned provider writes prove nothing (anyone can send them), and a
    /// replica that never saw the worker's signed entry may hold a forged
    /// tombstone. A tombstoned id is therefore still fetched, last; its
    /// record decides (a real unregistration leaves an `offline` record,
    /// which is filtered out; a live signed record means the tombstone was
    /// forged or stale).
    pub fn candidates(&self) -> Vec<String> {
        let mut live: Vec<&SeenEntry> = self.entries.values().filter(|e| e.is_live()).collect();
        let load = |e: &SeenEntry| e.load.unwrap_or(f64::MAX);
        live.sort_by(|a, b| {
            (b.signer.is_some().cmp(&a.signer.is_some())).then(load(a).total_cmp(&load(b))).then(a.id.cmp(&b.id))
        });
        let mut ids: Vec<String> = live.into_iter().map(|e| e.id.clone()).collect();
        for id in &self.legacy {
            if self.entries.get(id).is_none_or(|e| !e.is_live()) && !ids.contains(id) {
                ids.push(id.clone());
            }
        }
        let mut gone: Vec<&String> = self.entries.values().filter(|e| !e.is_live()).map(|e| &e.id).collect();
        gone.sort();
        for id in gone {
            if !self.legacy.contains(id) {
                ids.push(id.clone());
            }
        }
        ids
    }
}

/// The record of `id` in a DHT value, when it is one (a value claiming a
/// signature that fails reads as nothing).
fn record_for(v: &crate::wire::Value, id: &str) -> Option<WorkerRecord> {
    WorkerRecord::from_value(v).filter(|r| r.worker_id == id)
}

/// The copy a reader uses: signed ones first, newest first, the first the
/// id's binding admits.
fn best_copy(mut copies: Vec<WorkerRecord>, bindings: &Bindings, now: f64) -> Option<WorkerRecord> {
    copies.sort_by_key(|r| (std::cmp::Reverse(r.verified), std::cmp::Reverse(r.seq)));
    copies.into_iter().find(|r| bindings.admit(r, now))
}

/// Worker ids in a legacy `service:{type}` value (a JSON list as a string).
pub(crate) fn legacy_ids(v: &crate::wire::Value) -> Vec<String> {
    let text = match v {
        crate::wire::Value::Str(s) => s.as_str(),
        crate::wire::Value::Bin(b) => std::str::from_utf8(b).unwrap_or(""),
        _ => "",
    };
    let Ok(serde_json::Value::Array(list)) = serde_json::from_str(text) else { return Vec::new() };
    let mut seen = std::collections::HashSet::new();
    list.iter()
        .filter_map(|v| v.as_str())
        .filter(|s| valid_id(s) && seen.insert(*s))
        .take(MAX_LEGACY_IDS)
        .map(str::to_owned)
        .collect()
}

impl Discovery {
    /// Everything the DHT says provides `key`: the core's provider read
    /// (lookup, paged reads from `read_replicas` replicas, merge, second
    /// round) joined with a `get` of the legacy list.
    pub(crate) async fn collect_providers(&self, key: Key) -> Result<Providers, NodeError> {
        let node = self.node();
        let (read, legacy) = tokio::join!(node.provider_read(key, self.inner.config.read_replicas), node.get(key));
        let read = read?;
        let legacy = legacy?.value.map(|v| legacy_ids(&v)).unwrap_or_default();
        let m = &self.inner.metrics;
        m.provider_reads.fetch_add(read.pages_sent as u64, Ordering::Relaxed);
        m.provider_sets_read.fetch_add(1, Ordering::Relaxed);
        m.provider_sets_from_memory.fetch_add(u64::from(read.remembered && read.stats.queried == 0), Ordering::Relaxed);
        m.extension_failures.fetch_add(read.pages_failed as u64, Ordering::Relaxed);
        Ok(Providers { entries: read.entries, legacy, replicas: read.replicas })
    }

    /// Fetches the records of `ids`, `fetch_parallelism` at a time, and
    /// keeps those `accept` approves. With `want`, it stops once the first
    /// `want` accepted records *in `ids` order* are known, so a caller that
    /// ranks `ids` gets the best-ranked ones, not the fastest to answer.
    pub(crate) async fn fetch_records(
        &self,
        ids: Vec<String>,
        want: Option<usize>,
        accept: impl Fn(&WorkerRecord) -> bool,
    ) -> Vec<WorkerRecord> {
        let total = ids.len();
        let mut results: Vec<Option<Option<WorkerRecord>>> = vec![None; total];
        let mut queue = ids.into_iter().enumerate();
        let mut running = JoinSet::new();
        let (mut settled, mut accepted) = (0, 0);
        loop {
            while running.len() < self.inner.config.fetch_parallelism {
                let Some((i, id)) = queue.next() else { break };
                let me = self.clone();
                running.spawn(async move { (i, me.fetch_record(&id).await) });
            }
            let Some(done) = running.join_next().await else { break };
            let Ok((i, record)) = done else { continue };
            results[i] = Some(record.filter(|r| accept(r)));
            while settled < total {
                let Some(r) = &results[settled] else { break };
                accepted += usize::from(r.is_some());
                settled += 1;
            }
            if want.is_some_and(|w| accepted >= w) {
                running.abort_all();
                return results.into_iter().take(settled).flatten().flatten().collect();
            }
        }
        results.into_iter().flatten().flatten().collect()
    }

    /// The newest record of `id`: the DHT's, or this node's registry's when
    /// that is at least as new. The DHT is read even for a worker registered
    /// here, because it may have registered again (or been unregistered)
    /// through another node since, and that must show at once.
    async fn fetch_record(&self, id: &str) -> Option<WorkerRecord> {
        let remote = self.fetch_remote(id).await;
        let record = self.reconcile(id, remote)?;
        Some(self.inner.liveness.observe(record, self.now()))
    }

    /// `worker:{id}` as the DHT holds it, verified records first: a get
    /// answers with the first copy found, so when that copy is unsigned or
    /// refused by the id's binding (`bindings`), the closest replicas are
    /// asked directly and the owner's newest signed copy wins. An unsigned
    /// record is returned only while no signed one binds the id.
    pub(crate) async fn fetch_remote(&self, id: &str) -> Option<WorkerRecord> {
        bump(&self.inner.metrics.record_fetches);
        let key = worker_key(id);
        let got = self.node().get(key).await.ok()?;
        let first = got.value.as_ref().and_then(|v| record_for(v, id))?;
        let now = self.now();
        if first.verified && self.inner.bindings.admit(&first, now) {
            return Some(first);
        }
        let mut copies = self.read_record_replicas(key, id).await;
        copies.push(first);
        best_copy(copies, &self.inner.bindings, now)
    }

    /// The copies of `worker:{id}` held by the closest nodes, read one by one.
    async fn read_record_replicas(&self, key: Key, id: &str) -> Vec<WorkerRecord> {
        let Ok(closest) = self.node().find_node(key).await else { return Vec::new() };
        let me = self.node().id();
        let mut reads = JoinSet::new();
        for c in closest.into_iter().take(2 * self.inner.config.read_replicas) {
            let node = self.node().clone();
            reads.spawn(async move { node.call(c.addr, crate::wire::Call::FindValue { sender: me, key }).await });
        }
        let mut out = Vec::new();
        while let Some(done) = reads.join_next().await {
            let Ok(Ok(Some(body))) = done else { continue };
            if let Ok(crate::wire::FindValueReply::Value(v)) = crate::wire::parse_find_value_reply(&body) {
                out.extend(record_for(&v, id));
            }
        }
        out
    }

    /// Picks the newer of this node's registration of `id` and `remote`. A
    /// newer record written through another node means the worker moved
    /// there: this node forgets it, so it never republishes the old record
    /// over the new one.
    /// Only a signed record can move a worker: by the same key, or by
    /// another once this node's registration has expired.
    pub(crate) fn reconcile(&self, id: &str, remote: Option<WorkerRecord>) -> Option<WorkerRecord> {
        let Some(local) = self.inner.registry.get(id) else { return remote };
        let me = self.node().id().to_hex();
        let lapsed = local.expires_at.is_none_or(|e| e <= self.now());
        // A worker that signs its own records is at the seq it signed.
        let local_version = self.inner.self_signed.get(id).map_or(local.version, |o| o.record.version);
        match remote {
            Some(r)
                if r.verified
                    && (r.public_key == local.public_key || lapsed)
                    && r.seq.or(r.version) > local_version
                    && r.node_id.as_deref() != Some(me.as_str()) =>
            {
                tracing::info!(worker_id = id, "worker re-registered through another node; no longer published here");
                self.inner.registry.remove(id);
                self.inner.keys.remove(id);
                self.inner.self_signed.remove(id);
                for s in &local.services {
                    self.inner.cache.invalidate(s);
                }
                Some(r)
            }
            _ => Some(local),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Value;
    use std::time::Duration;

    #[test]
    fn legacy_lists_parse_leniently() {
        assert_eq!(legacy_ids(&Value::from(r#"["w1", "w2", 3, "bad id", "w2"]"#)), ["w1", "w2"]);
        assert!(legacy_ids(&Value::from("{}")).is_empty());
        assert!(legacy_ids(&Value::Int(1)).is_empty());
    }

    #[test]
    fn the_owners_newest_signed_copy_beats_unsigned_and_older_ones() {
        let rec = |url: &str, signed: Option<(&str, u64)>| {
            let mut r = WorkerRecord::from_json(&format!(r#"{{"worker_id": "w", "tunnel_url": "{url}"}}"#)).unwrap();
            r.expires_at = Some(1e10);
            if let Some((pk, seq)) = signed {
                (r.public_key, r.seq, r.verified) = (Some(pk.into()), Some(seq), true);
            }
            r
        };
        let b = Bindings::default();
        let copies =
            vec![rec("https://evil", None), rec("https://old", Some(("aa", 1))), rec("https://new", Some(("aa", 2)))];
        assert_eq!(best_copy(copies, &b, 0.0).unwrap().tunnel_url, "https://new");
        let thief = vec![rec("https://evil", None), rec("https://thief", Some(("bb", 9)))];
        assert_eq!(best_copy(thief, &b, 0.0), None, "the id is bound to key aa");
        let fresh = Bindings::default();
        assert_eq!(best_copy(vec![rec("https://legacy", None)], &fresh, 0.0).unwrap().tunnel_url, "https://legacy");
    }

    #[test]
    fn candidates_rank_verified_first_then_by_hint_and_add_legacy_ids() {
        let e = |id: &str, load, gone| SeenEntry {
            id: id.into(),
            version: 1,
            ttl: Duration::from_secs(60),
            load: Some(load),
            gone,
            signer: None,
        };
        let mut p = Providers { legacy: vec!["old".into(), "b".into(), "gone".into()], ..Providers::default() };
        let signed = SeenEntry { signer: Some([1; 32]), ..e("busy-signed", 0.95, false) };
        for x in [e("a", 0.9, false), e("b", 0.1, false), e("gone", 0.0, true), e("removed", 0.0, true), signed] {
            p.entries.insert(x.id.clone(), x);
        }
        assert_eq!(
            p.candidates(),
            ["busy-signed", "b", "a", "old", "gone", "removed"],
            "verified first, tombstoned ids last"
        );
    }
}
