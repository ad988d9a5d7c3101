//! The legacy `service:{type}` JSON list, kept for the platform's Python
//! client, which looks for a service's workers nowhere else.
//!
//! The provider set is the source of truth; the list is derived from it. A
//! node with workers of a service registered here rebuilds the list at every
//! refresh ([`Discovery::refresh_legacy_list`]):
//! - live provider entries (our side's workers) are in;
//! - ids the list holds now or held when this node last read it (workers the
//!   platform's own code added by read-modify-write), and that are not in the
//!   provider set, stay while their `worker:{id}` record is healthy;
//! - withdrawn providers and workers whose record is gone or dead are out.
//!
//! The result keeps the current list's order, appends newcomers, is capped to
//! fit a value a stock peer accepts ([`MAX_LIST_BYTES`]), and is written with
//! an ordinary `store` to the k closest nodes only when its members changed.
//! Before writing, the list is read once more, and ids in it that this
//! rebuild did not judge stay: a rebuild whose first read waited seconds on
//! a slow peer must not write its stale view over the complete lists other
//! nodes wrote meanwhile (seen in `tests/platform.rs`: one late rebuild
//! undid three). Their read-modify-write racing with ours can drop entries,
//! but every rebuild puts back whatever is alive, so nobody's workers are
//! missing for longer than one refresh interval. Entries of workers that are
//! gone leave the list at the next rebuild.
//!
//! When one of its workers registers or leaves, the node only updates the
//! list ([`Discovery::update_legacy_list`]): it reads the list, adds its own
//! healthy workers of the service and takes out those that left through it,
//! and writes it if that changed its members. A rebuild reads the whole
//! provider set (a page per seven signed entries, from several replicas); a
//! burst of registrations each starting one made it the bulk of the
//! traffic: 500 workers registering at once through 20 nodes
//! (`tests/discovery.rs`) read the set 48-63 times, 90,000-130,000 page
//! requests, and took 20-23 s instead of 3.5 (debug build).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;

use super::record::{Health, MAX_RECORD_BYTES};
use super::{service_key, Discovery};
use crate::node::NodeError;
use crate::wire::Value;

/// Largest list written: like a record, it must fit a stock `store`.
pub const MAX_LIST_BYTES: usize = MAX_RECORD_BYTES;
/// Most remembered ids per service (the platform's workers found in lists).
const MAX_REMEMBERED: usize = 4096;

/// Per service: legacy ids seen in lists, and whether a rebuild is running.
#[derive(Debug, Default)]
pub(crate) struct LegacyLists {
    state: Mutex<HashMap<String, ServiceState>>,
}

#[derive(Debug, Default)]
struct ServiceState {
    remembered: BTreeSet<String>,
    /// Our workers that left the service, to take out of the list at the
    /// next update.
    leaving: BTreeSet<String>,
    running: bool,
    again: bool,
    /// When the last rebuild started (Unix seconds).
    last: f64,
}

impl LegacyLists {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ServiceState>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `service`'s list was last rebuilt `interval` or more before `now`.
    pub(crate) fn due(&self, service: &str, now: f64, interval: f64) -> bool {
        self.lock().get(service).is_none_or(|s| now - s.last >= interval)
    }

    fn mark(&self, service: &str, now: f64) {
        self.lock().entry(service.to_owned()).or_default().last = now;
    }

    /// Claims the rebuild of `service`; false (and a rerun noted) if one runs.
    fn start(&self, service: &str) -> bool {
        let mut map = self.lock();
        let s = map.entry(service.to_owned()).or_default();
        if s.running {
            s.again = true;
            return false;
        }
        s.running = true;
        true
    }

    /// Ends a rebuild; true if another was asked for meanwhile.
    fn finish(&self, service: &str) -> bool {
        let mut map = self.lock();
        let Some(s) = map.get_mut(service) else { return false };
        s.running = false;
        std::mem::take(&mut s.again)
    }

    /// Notes that `id`, registered here, left `service`.
    fn leave(&self, service: &str, id: &str) {
        let mut map = self.lock();
        let s = map.entry(service.to_owned()).or_default();
        if s.leaving.len() < MAX_REMEMBERED {
            s.leaving.insert(id.to_owned());
        }
    }

    /// The ids that left `service` since the last update, now taken.
    fn take_leaving(&self, service: &str) -> BTreeSet<String> {
        self.lock().get_mut(service).map(|s| std::mem::take(&mut s.leaving)).unwrap_or_default()
    }

    fn remember(&self, service: &str, ids: &[String]) -> Vec<String> {
        let mut map = self.lock();
        let s = map.entry(service.to_owned()).or_default();
        for id in ids.iter().take(MAX_REMEMBERED.saturating_sub(s.remembered.len())) {
            s.remembered.insert(id.clone());
        }
        s.remembered.iter().cloned().collect()
    }

    fn keep_only(&self, service: &str, alive: &HashSet<String>) {
        if let Some(s) = self.lock().get_mut(service) {
            s.remembered.retain(|id| alive.contains(id));
        }
    }
}

/// The new list: `current` order first, then `added`; only ids in `members`,
/// each once, cut to fit [`MAX_LIST_BYTES`].
pub(crate) fn build_list(current: &[String], added: &[String], members: &HashSet<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut seen = HashSet::new();
    let mut bytes = 2;
    for id in current.iter().chain(added) {
        if !members.contains(id) || !seen.insert(id.as_str()) {
            continue;
        }
        // JSON: the quoted id plus ", " between entries; ids need no escaping (valid_id).
        let cost = id.len() + 2 + if out.is_empty() { 0 } else { 2 };
        if bytes + cost > MAX_LIST_BYTES {
            break;
        }
        bytes += cost;
        out.push(id.clone());
    }
    out
}

impl Discovery {
    /// Rebuilds the legacy list of `service` (see the module docs) and writes
    /// it when its members changed; true if it wrote. Concurrent calls for
    /// one service run once more after the one in progress, not in parallel.
    pub(crate) async fn refresh_legacy_list(&self, service: &str) -> Result<bool, NodeError> {
        self.legacy_exclusive(service, true).await
    }

    /// Updates the legacy list of `service` after a worker registered here
    /// joined or left it (see the module docs); true if it wrote. `leaving`:
    /// the worker that left, taken out of the list.
    pub(crate) async fn update_legacy_list(&self, service: &str, leaving: Option<&str>) -> Result<bool, NodeError> {
        if let Some(id) = leaving {
            self.inner.legacy.leave(service, id);
        }
        self.legacy_exclusive(service, false).await
    }

    /// Runs a rebuild (`full`) or an update of `service`'s list, one at a
    /// time per service: a call while one runs has an update run after it
    /// (a rebuild asked meanwhile is still due, and runs at the next
    /// refresh tick).
    async fn legacy_exclusive(&self, service: &str, mut full: bool) -> Result<bool, NodeError> {
        if !self.inner.legacy.start(service) {
            return Ok(false);
        }
        let mut wrote = false;
        loop {
            let result = if full {
                self.inner.legacy.mark(service, self.now());
                self.rebuild_legacy_list(service).await
            } else {
                self.patch_legacy_list(service).await
            };
            let again = self.inner.legacy.finish(service);
            wrote |= *result.as_ref().unwrap_or(&false);
            if result.is_err() || !again || !self.inner.legacy.start(service) {
                return result.map(|_| wrote);
            }
            full = false;
        }
    }

    /// The list as it is, plus this node's healthy workers of `service`,
    /// minus those that left it through this node; written if that changed
    /// its members.
    async fn patch_legacy_list(&self, service: &str) -> Result<bool, NodeError> {
        let key = service_key(service);
        let leaving = self.inner.legacy.take_leaving(service);
        let (now, window) = (self.now(), self.inner.config.worker_ttl);
        let ours: Vec<String> = self
            .local_workers()
            .into_iter()
            .filter(|r| r.services.iter().any(|s| s == service) && r.health(now, window) == Health::Healthy)
            .map(|r| r.worker_id)
            .collect();
        let current = self.read_legacy_list(key).await?;
        let list = patched(&current, &ours, &leaving);
        self.write_legacy_list(key, &current, &list).await
    }

    /// The ids in the legacy list under `key` now (none: no list).
    async fn read_legacy_list(&self, key: crate::id::Key) -> Result<Vec<String>, NodeError> {
        Ok(self.node().get(key).await?.value.map(|v| super::lookup::legacy_ids(&v)).unwrap_or_default())
    }

    /// Writes `list` under `key` unless it names the members of `current`,
    /// read just before; true if it wrote.
    async fn write_legacy_list(
        &self,
        key: crate::id::Key,
        current: &[String],
        list: &[String],
    ) -> Result<bool, NodeError> {
        if same_members(current, list) {
            return Ok(false);
        }
        let json = serde_json::to_string(list).unwrap_or_else(|_| "[]".to_owned());
        super::metrics::bump(&self.inner.metrics.legacy_list_writes);
        self.node().put(key, Value::Str(json)).await?;
        Ok(true)
    }

    async fn rebuild_legacy_list(&self, service: &str) -> Result<bool, NodeError> {
        let key = service_key(service);
        let found = self.collect_providers(key).await?;
        let remembered = self.inner.legacy.remember(service, &found.legacy);
        // Candidates come lightest first: live provider entries, then legacy ids.
        let live = |id: &String| found.entries.get(id).is_some_and(|e| e.is_live());
        let live_ours: Vec<String> = found.candidates().into_iter().filter(live).collect();
        let others: Vec<String> = remembered.into_iter().filter(|id| !found.entries.contains_key(id)).collect();
        let (now, window) = (self.now(), self.inner.config.worker_ttl);
        let healthy = |r: &super::WorkerRecord| {
            r.health(now, window) == Health::Healthy
                && (r.services.is_empty() || r.services.iter().any(|s| s == service))
        };
        let alive_others: HashSet<String> =
            self.fetch_records(others.clone(), None, healthy).await.into_iter().map(|r| r.worker_id).collect();
        self.inner.legacy.keep_only(service, &alive_others);
        let members: HashSet<String> = live_ours.iter().cloned().chain(alive_others.iter().cloned()).collect();
        let mut added = live_ours;
        added.extend(alive_others.iter().cloned());
        if same_members(&found.legacy, &build_list(&found.legacy, &added, &members)) {
            return Ok(false);
        }
        // The read above may be seconds old (a lookup that waited on a slow
        // peer), and other writers, ours included, have written complete
        // lists since: writing over theirs from it would drop what they put
        // back. So read again right before writing, and keep every id of
        // that list this rebuild did not judge (neither in the provider set
        // nor among the ids whose records it fetched); the next rebuild
        // judges them.
        let current = self.read_legacy_list(key).await?;
        let judged: HashSet<&String> = found.entries.keys().chain(&others).collect();
        let list = rebuilt_over(&current, &added, members, &judged);
        self.write_legacy_list(key, &current, &list).await
    }
}

/// The list to write over `current`, read just before: `members` (the ids
/// this rebuild found alive) plus the ids of `current` it did not `judge`,
/// in `current`'s order, then `added`.
fn rebuilt_over(
    current: &[String],
    added: &[String],
    mut members: HashSet<String>,
    judged: &HashSet<&String>,
) -> Vec<String> {
    members.extend(current.iter().filter(|id| !judged.contains(id)).cloned());
    build_list(current, added, &members)
}

/// `current` without `leaving`, with `ours` appended (one that left and
/// registered again is ours), cut to fit.
fn patched(current: &[String], ours: &[String], leaving: &BTreeSet<String>) -> Vec<String> {
    let kept = current.iter().filter(|id| !leaving.contains(*id));
    let members: HashSet<String> = kept.chain(ours).cloned().collect();
    build_list(current, ours, &members)
}

/// Whether `list` names exactly the ids of `current` (order aside).
fn same_members(current: &[String], list: &[String]) -> bool {
    let old: HashSet<&String> = current.iter().collect();
    old.len() == list.len() && list.iter().all(|id| old.contains(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_list_keeps_order_drops_non_members_and_appends_newcomers() {
        let members: HashSet<String> = ids(&["a", "c", "d", "e"]).into_iter().collect();
        let list = build_list(&ids(&["c", "b", "a"]), &ids(&["d", "a", "e", "d"]), &members);
        assert_eq!(list, ids(&["c", "a", "d", "e"]));
    }

    #[test]
    fn a_rebuild_from_a_stale_read_keeps_what_others_wrote_since_and_drops_what_it_judged_gone() {
        // Its first read saw one of theirs and our four; others have since
        // written all eight, plus one of theirs this rebuild found dead.
        let ours = ids(&["ours-0", "ours-1"]);
        let current = ids(&["py-2", "ours-0", "ours-1", "py-0", "py-1", "py-dead"]);
        let members: HashSet<String> = ids(&["ours-0", "ours-1", "py-2"]).into_iter().collect();
        let judged_ids = ids(&["ours-0", "ours-1", "py-2", "py-dead"]);
        let judged: HashSet<&String> = judged_ids.iter().collect();
        let list = rebuilt_over(&current, &ours, members, &judged);
        assert_eq!(list, ids(&["py-2", "ours-0", "ours-1", "py-0", "py-1"]));
        assert!(same_members(&ids(&["py-1", "py-0", "ours-1", "ours-0", "py-2"]), &list));
        assert!(!same_members(&current, &list));
    }

    #[test]
    fn an_update_appends_ours_takes_out_those_that_left_and_keeps_the_rest() {
        let current = ids(&["py-0", "ours-gone", "ours-0"]);
        let leaving: BTreeSet<String> = ids(&["ours-gone"]).into_iter().collect();
        let list = patched(&current, &ids(&["ours-0", "ours-1"]), &leaving);
        assert_eq!(list, ids(&["py-0", "ours-0", "ours-1"]));
        assert!(same_members(&current, &patched(&current, &ids(&["ours-0"]), &BTreeSet::new())));
        let back = patched(&current, &ids(&["ours-gone"]), &leaving);
        assert!(same_members(&current, &back), "registered again: stays");
    }

    #[test]
    fn ids_that_left_are_taken_once() {
        let l = LegacyLists::default();
        l.leave("ocr", "w1");
        l.leave("ocr", "w2");
        assert_eq!(l.take_leaving("ocr").len(), 2);
        assert!(l.take_leaving("ocr").is_empty());
        assert!(l.take_leaving("llm").is_empty());
    }

    #[test]
    fn the_list_fits_a_stock_store() {
        let many: Vec<String> = (0..2000).map(|i| format!("worker-{i:05}")).collect();
        let members: HashSet<String> = many.iter().cloned().collect();
        let list = build_list(&[], &many, &members);
        let json = serde_json::to_string(&list).unwrap();
        assert!(json.len() <= MAX_LIST_BYTES, "{}", json.len());
        assert!(list.len() > 300, "as many as fit: {}", list.len());
    }

    #[test]
    fn one_rebuild_at_a_time_and_one_rerun_for_callers_meanwhile() {
        let l = LegacyLists::default();
        assert!(l.start("ocr"));
        assert!(!l.start("ocr"));
        assert!(!l.start("ocr"));
        assert!(l.start("llm"), "services are independent");
        assert!(l.finish("ocr"), "a rerun was asked for");
        assert!(l.start("ocr"));
        assert!(!l.finish("ocr"));
    }

    #[test]
    fn remembered_ids_are_bounded_and_pruned_to_the_alive() {
        let l = LegacyLists::default();
        let many: Vec<String> = (0..MAX_REMEMBERED + 50).map(|i| format!("w{i}")).collect();
        assert_eq!(l.remember("ocr", &many).len(), MAX_REMEMBERED);
        l.keep_only("ocr", &ids(&["w1", "w2"]).into_iter().collect());
        assert_eq!(l.remember("ocr", &[]), ids(&["w1", "w2"]));
    }
}
