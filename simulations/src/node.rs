//! One virtual machine: its role, its current node identity and engine, what
//! it saved for a restart, and what it cost in traffic.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use kadmesh::contact::Contact;
use kadmesh::engine::Engine;
use kadmesh::id::{Key, NodeId};
use kadmesh::seed_order::LearnedSeeds;
use kadmesh::store::Record;
use kadmesh::time::Time;
use rand::Rng;

use crate::net::Queued;

/// What a machine does for the platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A long-lived, well-connected node run by a coordinator: a bootstrap seed.
    Coordinator,
    /// A volunteer worker: announces itself and comes and goes.
    Worker,
}

/// What a machine keeps on disk across a restart.
#[derive(Clone, Debug, Default)]
pub struct Saved {
    /// Recently seen contacts, most recent first: its bootstrap seeds.
    pub contacts: Vec<Contact>,
    /// Records it held, with their absolute expiry and receipt times.
    pub records: Vec<Record>,
    /// Seeds kept from bootstrap documents.
    pub learned: LearnedSeeds,
}

/// Contacts kept for a restart.
pub const SAVED_CONTACTS: usize = 16;

impl Saved {
    /// Takes what a node would save: its most recently seen contacts and its
    /// live records, both in a deterministic order.
    pub fn capture(engine: &Engine, now: Time) -> Saved {
        let table = engine.routing();
        let mut contacts: Vec<(Time, Contact)> =
            table.contacts().map(|c| (table.last_seen(&c.id).unwrap_or(Time::ZERO), c)).collect();
        contacts.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.id.cmp(&b.1.id)));
        let contacts = contacts.into_iter().take(SAVED_CONTACTS).map(|(_, c)| c).collect();
        let mut records: Vec<_> = engine.store().iter().filter(|r| r.expires_at > now).cloned().collect();
        records.sort_by_key(|r| r.key);
        Saved { contacts, records, learned: LearnedSeeds::default() }
    }
}

/// One machine.
pub struct SimNode {
    /// Coordinator or worker.
    pub role: Role,
    /// The running engine; `None` while down.
    pub engine: Option<Engine>,
    /// Current node id.
    pub id: NodeId,
    /// Current address index (see [`crate::net::addr_of`]).
    pub addr: u32,
    /// Bumped at every start, so actions scheduled for an earlier life are ignored.
    pub inc: u32,
    /// Worker name of the current identity (`w{slot}-{identity}`).
    pub name: String,
    /// The DHT key it announces under: `worker:{name}`.
    pub key: Key,
    /// Identities this machine has had.
    pub identities: u32,
    /// Finished bootstrap in this life.
    pub joined: bool,
    /// A put of its announcement succeeded in this life.
    pub registered: bool,
    /// The current key has never been announced successfully.
    pub fresh_key: bool,
    /// A provider write of its entry was acknowledged in this life.
    pub provided: bool,
    /// When the engine's timer is due, as last scheduled.
    pub timer: Option<Time>,
    /// Datagrams on their way to this machine, earliest first.
    pub inbox: BinaryHeap<Reverse<Queued>>,
    /// The machine's own clock: the time of the last event it handled. It
    /// may run a little ahead of the world's clock inside a window.
    pub clock: Time,
    /// Datagrams sent so far, over all lives (each datagram's tag).
    pub sent: u64,
    /// The time of this machine's entry in the world's agenda, if any.
    pub agenda: Option<Time>,
    /// When the worker next re-announces itself (a heartbeat).
    pub heartbeat_at: Option<Time>,
    /// State kept for the next restart.
    pub saved: Option<Saved>,
    /// This life's saved contacts, as bootstrap seeds.
    pub boot_saved: Vec<std::net::SocketAddr>,
    /// Seeds kept from bootstrap documents (lost with the saved state).
    pub learned: LearnedSeeds,
    /// Start of the current life.
    pub up_since: Time,
    /// Uptime inside the measurement window, ms.
    pub uptime_ms: u64,
    /// Wire bytes sent and received inside the window.
    pub bytes: u64,
    /// Datagrams sent and received inside the window.
    pub msgs: u64,
    /// Consecutive failed edge-router bootstraps (for backoff).
    pub edge_failures: u32,
    /// The reply-only NAT in front of this machine, if it is behind one.
    pub nat: Option<kadmesh::reach::recent::RecentPeers>,
}

impl SimNode {
    /// A machine that has not started yet.
    pub fn new(role: Role) -> Self {
        SimNode {
            role,
            engine: None,
            id: NodeId::default(),
            addr: 0,
            inc: 0,
            name: String::new(),
            key: NodeId::default(),
            identities: 0,
            joined: false,
            registered: false,
            provided: false,
            fresh_key: false,
            timer: None,
            inbox: BinaryHeap::new(),
            clock: Time::ZERO,
            sent: 0,
            agenda: None,
            heartbeat_at: None,
            saved: None,
            boot_saved: Vec::new(),
            learned: LearnedSeeds::default(),
            up_since: Time::ZERO,
            uptime_ms: 0,
            bytes: 0,
            msgs: 0,
            edge_failures: 0,
            nat: None,
        }
    }

    /// When this machine next has something to do: a datagram arrives, its
    /// engine's timer is due or it re-announces itself.
    pub fn next_event(&self) -> Option<Time> {
        let arrival = self.inbox.peek().map(|Reverse(q)| q.key.0);
        [arrival, self.timer, self.heartbeat_at].into_iter().flatten().min()
    }

    /// True while running.
    pub fn is_up(&self) -> bool {
        self.engine.is_some()
    }

    /// Gives the machine a new identity: id from `rng`, name, key.
    pub fn new_identity<R: Rng>(&mut self, slot: u32, rng: &mut R) {
        self.identities += 1;
        self.id = NodeId::random(rng);
        self.name = format!("w{slot}-{}", self.identities);
        self.key = NodeId::for_key(&format!("worker:{}", self.name));
        self.registered = false;
        self.provided = false;
        self.fresh_key = true;
    }
}

/// A set of machine slots with O(1) insert, remove and uniform pick, and an
/// iteration order that depends only on the order of operations.
#[derive(Clone, Debug, Default)]
pub struct SlotSet {
    items: Vec<u32>,
    pos: Vec<u32>,
}

impl SlotSet {
    const ABSENT: u32 = u32::MAX;

    /// Adds `slot`; no-op if present.
    pub fn insert(&mut self, slot: u32) {
        let s = slot as usize;
        if self.pos.len() <= s {
            self.pos.resize(s + 1, Self::ABSENT);
        }
        if self.pos[s] == Self::ABSENT {
            self.pos[s] = self.items.len() as u32;
            self.items.push(slot);
        }
    }

    /// Removes `slot`; no-op if absent.
    pub fn remove(&mut self, slot: u32) {
        let Some(&p) = self.pos.get(slot as usize) else { return };
        if p == Self::ABSENT {
            return;
        }
        self.items.swap_remove(p as usize);
        if let Some(&moved) = self.items.get(p as usize) {
            self.pos[moved as usize] = p;
        }
        self.pos[slot as usize] = Self::ABSENT;
    }

    /// Whether `slot` is in the set.
    pub fn contains(&self, slot: u32) -> bool {
        self.pos.get(slot as usize).is_some_and(|&p| p != Self::ABSENT)
    }

    /// A uniformly random member.
    pub fn pick<R: Rng>(&self, rng: &mut R) -> Option<u32> {
        (!self.items.is_empty()).then(|| self.items[rng.gen_range(0..self.items.len())])
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Members in set order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.items.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::SmallRng, SeedableRng};

    #[test]
    fn slot_set_insert_remove_pick() {
        let mut s = SlotSet::default();
        for i in [5, 1, 9, 1] {
            s.insert(i);
        }
        assert_eq!(s.len(), 3);
        s.remove(5);
        s.remove(42);
        assert!(!s.contains(5) && s.contains(9) && s.contains(1));
        let mut rng = SmallRng::seed_from_u64(1);
        for _ in 0..20 {
            assert!(matches!(s.pick(&mut rng), Some(1 | 9)));
        }
        s.remove(1);
        s.remove(9);
        assert!(s.is_empty() && s.pick(&mut rng).is_none());
    }
}
