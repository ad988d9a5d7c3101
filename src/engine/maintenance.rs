//! Keeping records alive and the routing table fresh: the publisher's
//! republish, replicas' re-replication, handover to newcomers (paper 2.5) and
//! bucket refresh (paper 2.3).
//!
//! All of it is queued and at most `max_maintenance_ops` run at once, so a
//! node restarting with thousands of saved records trickles them out instead
//! of flooding its neighbours; publish times carry jitter so nodes started
//! together do not republish in lockstep.

use std::collections::{BTreeSet, VecDeque};

use foldhash::{HashMap, HashSet};
use std::time::Duration;

use rand::Rng;

use super::op::find::FindNode;
use super::op::put::{store_call, Put};
use super::op::Operation;
use super::{Config, Engine};
use crate::contact::Contact;
use crate::id::{Key, NodeId};
use crate::time::Time;
use crate::wire::{Call, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Task {
    Republish(Key),
    Replicate(Key),
    /// A replica our table no longer counts among the k closest.
    Leave(Key),
    Refresh(NodeId),
    /// A lookup of a random id in a thin far bucket after a join, ending
    /// once [`Config::join_fill`] of the closest it meets answered.
    Fill(NodeId),
}

/// The maintenance schedule and its work queue.
#[derive(Debug)]
pub(super) struct Maintenance {
    published: HashMap<Key, (Value, Time)>,
    publish_due: BTreeSet<(Time, Key)>,
    next_sweep: Time,
    sweep_every: Duration,
    queue: VecDeque<Task>,
    queued: HashSet<Task>,
    /// When each contact was last handed our records; a contact dropped and
    /// re-learned (a lossy link) is not sent them all again within
    /// `replicate_interval`. Pruned at every sweep.
    handed_over: HashMap<NodeId, Time>,
    /// When each contact was last handed provider sets
    /// (`engine::provider_handover`). Pruned at every sweep.
    pub(super) providers_handed: HashMap<NodeId, Time>,
    active: usize,
    max_active: usize,
    /// Contacts evicted for timeouts, asked again one by one.
    lost: super::lost::Lost,
    next_recheck: Time,
    /// When a lost contact's answer may next make us ask all the others.
    next_lost_flush: Time,
    /// When a client looks itself up again if its table is still thin (see
    /// [`Maintenance::after_join`]), and the gap to the next time.
    thin_recheck: Option<(Time, Duration)>,
}

/// First gap after a join before a client with a thin table looks itself
/// up again; it doubles each time, up to [`THIN_RECHECK_MAX`].
const THIN_RECHECK_MIN: Duration = Duration::from_secs(5);
/// See [`THIN_RECHECK_MIN`]: in a network smaller than k it stays thin for
/// good, and a look-up every 10 minutes is then the whole cost.
const THIN_RECHECK_MAX: Duration = Duration::from_secs(600);

impl Maintenance {
    pub(super) fn new(config: &Config, now: Time) -> Self {
        let sweep_every = (config.replicate_interval.min(config.refresh_interval) / 6).max(Duration::from_millis(100));
        Maintenance {
            published: HashMap::default(),
            publish_due: BTreeSet::new(),
            next_sweep: now + sweep_every,
            sweep_every,
            queue: VecDeque::new(),
            queued: HashSet::default(),
            handed_over: HashMap::default(),
            providers_handed: HashMap::default(),
            active: 0,
            max_active: config.max_maintenance_ops.max(1),
            lost: super::lost::Lost::default(),
            next_recheck: now,
            next_lost_flush: now,
            thin_recheck: None,
        }
    }

    /// A join finished at `now`. A client may still know its seed alone:
    /// in a young network every contact the seed holds is young, and its
    /// answer to a client leaves out those its own settling checks are
    /// pending on (`routing::freshness`). Nobody asks a client anything, so
    /// nothing else would fill its table before the next bucket refresh, an
    /// hour away; it looks itself up again while its table is thin.
    pub(super) fn after_join(&mut self, now: Time) {
        self.thin_recheck = Some((now + THIN_RECHECK_MIN, THIN_RECHECK_MIN));
    }

    /// Remembers a record we publish; its first republish is due after
    /// `after`.
    pub(super) fn publish(&mut self, key: Key, value: Value, now: Time, after: Duration) {
        self.unpublish(&key);
        let due = now + after;
        self.published.insert(key, (value, due));
        self.publish_due.insert((due, key));
    }

    pub(super) fn unpublish(&mut self, key: &Key) -> bool {
        match self.published.remove(key) {
            Some((_, due)) => {
                self.publish_due.remove(&(due, *key));
                true
            }
            None => false,
        }
    }

    pub(super) fn is_published(&self, key: &Key) -> bool {
        self.published.contains_key(key)
    }

    pub(super) fn op_finished(&mut self) {
        self.active = self.active.saturating_sub(1);
    }

    pub(super) fn next_due(&self) -> Time {
        if !self.queue.is_empty() && self.active < self.max_active {
            return Time::ZERO;
        }
        let publish = self.publish_due.first().map(|(t, _)| *t);
        let mut due = publish.map_or(self.next_sweep, |p| p.min(self.next_sweep));
        if !self.lost.is_empty() {
            due = due.min(self.next_recheck);
        }
        if let Some((at, _)) = self.thin_recheck {
            due = due.min(at);
        }
        due
    }

    /// `c` was evicted at `now` for timeouts: it is asked again from
    /// `every` later on (see [`super::lost`]).
    pub(super) fn note_lost(&mut self, c: Contact, now: Time, every: Duration) {
        // Rechecks off: remembering would only keep a deadline due forever.
        if every.is_zero() {
            return;
        }
        if self.lost.is_empty() {
            self.next_recheck = self.next_recheck.max(now + every);
        }
        self.lost.note(c, now);
    }

    /// `id` said it is a client: it is not asked again, so its answer (a NAT
    /// mapping its own request opened lets it through) cannot put a client
    /// back in the table.
    pub(super) fn forget_lost(&mut self, id: &NodeId) {
        self.lost.found(id);
    }

    /// Queues a lookup of `target` (our own id once we become reachable:
    /// the nodes closest to us learn us from it).
    pub(super) fn refresh_soon(&mut self, target: NodeId) {
        self.enqueue(Task::Refresh(target));
    }

    fn enqueue(&mut self, task: Task) {
        if self.queued.insert(task) {
            self.queue.push_back(task);
        }
    }
}

/// `interval` shortened by up to a tenth, at random.
fn jittered<R: Rng>(interval: Duration, rng: &mut R) -> Duration {
    let tenth = (interval.as_millis() / 10) as u64;
    interval.saturating_sub(Duration::from_millis(rng.gen_range(0..=tenth)))
}

impl Engine {
    /// The records this node publishes (and republishes).
    pub fn published(&self) -> impl Iterator<Item = (&Key, &Value)> {
        self.maintenance.published.iter().map(|(k, (v, _))| (k, v))
    }

    /// Stops republishing `key`; copies already stored elsewhere live out
    /// their lifetime. Returns whether it was published.
    pub fn unpublish(&mut self, key: &Key) -> bool {
        self.put_targets.forget(key);
        self.maintenance.unpublish(key)
    }

    /// Adopts records published before a restart: each is republished within
    /// `spread`, at a random moment, through the rate-limited queue.
    pub fn restore_published(&mut self, now: Time, records: Vec<(Key, Value)>, spread: Duration) {
        for (key, value) in records {
            let after = Duration::from_millis(self.svc.rng.gen_range(0..=spread.as_millis() as u64));
            self.maintenance.publish(key, value, now, after);
        }
    }

    /// Adopts a record held before a restart: what is left of its lifetime
    /// (capped at `record_ttl`) and its original `stored_at`, so an old copy
    /// is not taken for a freshly refreshed one.
    pub fn restore_record(&mut self, now: Time, record: crate::store::Record) {
        let remaining = record.expires_at.saturating_since(now).min(self.svc.config.record_ttl);
        if remaining.is_zero() {
            return;
        }
        let key = record.key;
        match self.store.put(key, record.value, record.publisher, now, remaining) {
            Ok(()) => self.store.backdate(&key, record.stored_at.min(now)),
            Err(e) => tracing::debug!(%key, error = %e, "saved record not restored"),
        }
    }

    pub(super) fn run_maintenance(&mut self, now: Time) {
        while let Some(&(due, key)) = self.maintenance.publish_due.first() {
            if due > now {
                break;
            }
            self.maintenance.publish_due.pop_first();
            let next = now + jittered(self.svc.config.republish_interval, &mut self.svc.rng);
            if let Some(entry) = self.maintenance.published.get_mut(&key) {
                entry.1 = next;
                self.maintenance.publish_due.insert((next, key));
                self.maintenance.enqueue(Task::Republish(key));
            }
        }
        if now >= self.maintenance.next_sweep {
            self.maintenance.next_sweep = now + self.maintenance.sweep_every;
            self.sweep(now);
        }
        self.recheck_lost(now);
        self.refill_thin_client(now);
        self.start_queued(now);
    }

    /// Just joined: queues a lookup of a random id in every bucket farther
    /// than our neighbourhood (all but the last) that holds fewer than
    /// [`Config::join_fill`] contacts. The own-id lookup of a join only
    /// meets the seed and our neighbourhood, so in a young network nobody
    /// else would fill those buckets before their hourly refresh: in
    /// `versus` (1,000 nodes joined one after another through one seed)
    /// nodes held no contact at all in the far half of the id space, their
    /// neighbours none either, and 1 put in 100 stored its record to 20
    /// nodes of the wrong half, where no get looked. Each lookup also
    /// introduces us to the region (its nodes check and learn us).
    pub(super) fn fill_far_buckets(&mut self) {
        let want = self.svc.config.join_fill;
        let buckets = self.svc.routing.buckets();
        let far = buckets.len().saturating_sub(1);
        let thin: Vec<usize> = (0..far).filter(|&i| buckets[i].len() < want).collect();
        for index in thin {
            let target = self.svc.routing.random_id_in_bucket(index, &mut self.svc.rng);
            self.svc.stats.join_fills += 1;
            self.maintenance.enqueue(Task::Fill(target));
        }
    }

    /// A client whose table holds fewer than k contacts looks itself up
    /// again when [`Maintenance::after_join`]'s time comes, with a doubling gap.
    fn refill_thin_client(&mut self, now: Time) {
        let Some((at, gap)) = self.maintenance.thin_recheck else { return };
        if now < at {
            return;
        }
        let len = self.svc.routing.len();
        if !self.svc.client || len == 0 || len >= self.svc.config.k {
            self.maintenance.thin_recheck = None;
            return;
        }
        self.svc.stats.thin_rejoins += 1;
        self.maintenance.refresh_soon(self.svc.id);
        let gap = (gap * 2).min(THIN_RECHECK_MAX);
        self.maintenance.thin_recheck = Some((now + gap, gap));
    }

    /// Pings the lost contact whose turn it is (see [`super::lost`]); one
    /// that answers is learned again.
    fn recheck_lost(&mut self, now: Time) {
        let every = self.svc.config.lost_recheck_every;
        let m = &mut self.maintenance;
        if every.is_zero() || now < m.next_recheck || m.lost.is_empty() {
            return;
        }
        m.next_recheck = now + every;
        let Some(c) = m.lost.next(now, self.svc.config.lost_keep) else { return };
        if self.svc.routing.contains(&c.id) {
            m.lost.found(&c.id);
        } else {
            self.svc.stats.lost_rechecks += 1;
            self.send_lost_check(now, c);
        }
    }

    /// A lost contact answered again: a cut between us has likely healed.
    /// Every other lost contact is asked now, so both sides relearn each
    /// other within a round trip rather than one contact per
    /// `lost_recheck_every` (see [`super::lost`]).
    ///
    /// Provider sets read lately are read through a lookup again: the
    /// replicas remembered were found while the cut was open, all on our
    /// side of it (see [`super::op::ReadMemory`]).
    pub(super) fn lost_answered(&mut self, now: Time, peer: NodeId) {
        self.read_memory.forget_all();
        let m = &mut self.maintenance;
        m.lost.found(&peer);
        if now < m.next_lost_flush {
            return;
        }
        m.next_lost_flush = now + super::lost::FLUSH_EVERY;
        let keep = self.svc.config.lost_keep;
        for c in m.lost.all(now, keep) {
            if !self.svc.routing.contains(&c.id) {
                self.svc.stats.lost_rechecks += 1;
                self.send_lost_check(now, c);
            }
        }
    }

    fn send_lost_check(&mut self, now: Time, c: Contact) {
        let call = self.svc.ping();
        self.svc.send_request(now, c.addr, call, super::services::ReplyTo::Lost { peer: c.id });
    }

    fn sweep(&mut self, now: Time) {
        let stale = now - self.svc.config.replicate_interval;
        self.maintenance.handed_over.retain(|_, at| *at > stale);
        let handed = now - super::provider_handover::HANDED_AGAIN_AFTER;
        self.maintenance.providers_handed.retain(|_, at| *at > handed);
        let unrefreshed = self
            .store
            .iter()
            .filter(|r| r.stored_at <= stale && r.expires_at > now && !self.maintenance.published.contains_key(&r.key))
            .map(|r| r.key);
        // Only the k closest re-replicate: a copy elsewhere may be old, and
        // pushing it would overwrite the publisher's newer one. But our table
        // alone does not drop a copy: it may list dead contacts nearer the
        // key, and if every holder dropped on such a word the record would be
        // gone. A copy the table places outside the k closest leaves through
        // `Put::leaving`: one request to the nearest contact, and a lookup
        // only if that one answers without the key.
        let (mut keep, mut leave): (Vec<Key>, Vec<Key>) =
            unrefreshed.partition(|key| self.svc.routing.would_be_among_closest(&self.svc.id, key, self.svc.config.k));
        // Sorted: HashMap order differs between processes and seeded runs must replay.
        keep.sort_unstable();
        leave.sort_unstable();
        for key in keep {
            self.maintenance.enqueue(Task::Replicate(key));
        }
        for key in leave {
            self.maintenance.enqueue(Task::Leave(key));
        }
        for index in self.svc.routing.lonely_buckets(now, self.svc.config.refresh_interval) {
            let target = self.svc.routing.random_id_in_bucket(index, &mut self.svc.rng);
            self.maintenance.enqueue(Task::Refresh(target));
        }
    }

    fn start_queued(&mut self, now: Time) {
        while self.maintenance.active < self.maintenance.max_active {
            let Some(task) = self.maintenance.queue.pop_front() else { return };
            self.maintenance.queued.remove(&task);
            // Counted before starting: a task can finish inside start_task.
            self.maintenance.active += 1;
            if !self.start_task(now, task) {
                self.maintenance.active -= 1;
            }
        }
    }

    fn start_task(&mut self, now: Time, task: Task) -> bool {
        let op: Box<dyn Operation> = match task {
            Task::Republish(key) => match self.maintenance.published.get(&key) {
                Some((value, _)) => Put::task(key, value.clone(), None),
                None => return false,
            },
            Task::Replicate(key) => {
                let Some((value, ttl)) = self.unrefreshed(&key, now) else { return false };
                Put::task(key, value, ttl)
            }
            Task::Leave(key) => {
                let Some((value, ttl)) = self.unrefreshed(&key, now) else { return false };
                match self.leftover_nearest(&key) {
                    Some(nearest) => Put::leaving(key, value, ttl, nearest),
                    None => Put::task(key, value, ttl),
                }
            }
            Task::Refresh(target) => FindNode::refresh(target),
            Task::Fill(target) => FindNode::fill(target, self.svc.config.join_fill),
        };
        let id = self.alloc_op();
        self.launch(now, id, op);
        true
    }

    /// Our copy of `key` and what is left of its lifetime, unless another
    /// replica re-stored it while its task waited in the queue.
    fn unrefreshed(&self, key: &Key, now: Time) -> Option<(Value, Option<Duration>)> {
        let r = self.store.get(key, now)?;
        let fresh = r.stored_at > now - self.svc.config.replicate_interval;
        (!fresh).then(|| (r.value.clone(), Some(r.expires_at.saturating_since(now))))
    }

    /// The nearest contact to `key` if k contacts not known to have failed
    /// are closer to it than we are (a copy of ours is then a leftover);
    /// `None` if we are among the k closest once failed contacts are left
    /// out, and our copy is re-replicated like any replica's.
    fn leftover_nearest(&self, key: &Key) -> Option<Contact> {
        let k = self.svc.config.k;
        let mine = key.distance(&self.svc.id);
        let closest = self.svc.routing.closest_unfailed(key, k);
        let closer = closest.iter().filter(|c| key.distance(&c.id) < mine).count();
        (closer >= k).then(|| closest[0])
    }

    /// Paper 2.5: a new contact gets the records it is now among the k
    /// closest for, but only from the node closest to each key, so a
    /// newcomer is not sent the same record by all k holders. The key's
    /// position is the stored key itself (the Python package hashes it a
    /// second time here, so its newcomers get few of their records).
    ///
    /// Not while we are joining ourselves: a node restarting with its saved
    /// records knows few contacts, so every contact it meets looks like one
    /// of the k closest to every key, and it would spray its whole store
    /// across the network (in the churn simulation, most records ended up
    /// at nodes hundreds of ranks from their key).
    pub(super) fn hand_over_records(&mut self, now: Time, newcomer: Contact) {
        if self.joining {
            return;
        }
        let recent = self.maintenance.handed_over.get(&newcomer.id);
        if recent.is_some_and(|&at| now.saturating_since(at) < self.svc.config.replicate_interval) {
            return;
        }
        let k = self.svc.config.k;
        let mut owed = Vec::new();
        let mut keys: Vec<Key> = self.store.keys().collect();
        keys.sort_unstable();
        for key in keys {
            if owed.len() >= self.svc.config.max_handover_per_contact {
                break;
            }
            // Cheap test first: we hand over only keys we are the closest to.
            if self.svc.routing.has_closer_than_local(&key, &newcomer.id) {
                continue;
            }
            if self.svc.routing.would_be_among_closest(&newcomer.id, &key, k) {
                owed.push(key);
            }
        }
        // Remembered only when something is owed: a contact that needed
        // nothing now may need records we receive before it next reappears.
        // Sent at a bounded pace (`handover`), not in one burst.
        if !owed.is_empty() && self.queue_handover(now, newcomer, owed) {
            self.maintenance.handed_over.insert(newcomer.id, now);
        }
    }

    /// The store request that gives `peer` our copy of `key` (see [`store_call`]).
    pub(super) fn store_call(&self, peer: NodeId, key: Key, value: Value, ttl: Option<Duration>) -> Call {
        store_call(self.svc.id, self.peers.kind(&peer), key, value, ttl)
    }
}
