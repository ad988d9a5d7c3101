//! Persistence: the state file round-trips, bad files get the documented
//! treatment with one clear line, a restarted node comes back as itself and
//! rejoins without seeds, and a restart with many saved records republishes
//! them spread out and rate-limited.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kadmesh::contact::Contact;
use kadmesh::engine::{Config, Engine};
use kadmesh::id::NodeId;
use kadmesh::node::{Node, NodeHandle};
use kadmesh::persist::{self, PersistError, SavedState, StateDir, STATE_FILE};
use kadmesh::store::Record;
use kadmesh::time::Time;
use kadmesh::wire::{self, Call, Datagram, MessageId, Value};

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn quick(seed: u64, record_ttl: Duration, republish: Duration) -> Config {
    Config {
        rpc_timeout: Duration::from_millis(300),
        extension_timeout: Duration::from_millis(200),
        lookup_stall: Duration::from_millis(150),
        record_ttl,
        republish_interval: republish,
        replicate_interval: Duration::from_secs(600),
        refresh_interval: Duration::from_secs(600),
        rng_seed: seed,
        ..Config::default()
    }
}

fn sample_state() -> SavedState {
    let id = NodeId::for_key("me");
    let record = |n: u8, value: Value, publisher| {
        let size = value.to_msgpack().len();
        let (stored_at, expires_at) = (Time::from_secs(100), Time::from_secs(100 + u64::from(n) * 60));
        Record { key: NodeId([n; 20]), value, publisher, stored_at, expires_at, size }
    };
    SavedState {
        id,
        saved_at: Time::from_secs(120),
        contacts: vec![Contact::new(NodeId([9; 20]), "127.0.0.1:4000".parse().unwrap())],
        published: vec![(NodeId::for_key("worker:w1"), Value::Str("{\"worker_id\": \"w1\"}".into()))],
        records: vec![
            record(1, Value::Map(vec![(Value::Str("a".into()), Value::Array(vec![Value::F64(1.5)]))]), Some(id)),
            record(2, Value::Bin(vec![0, 255, 7]), None),
        ],
    }
}

#[test]
fn saved_state_round_trips_and_older_snapshots_never_overwrite_newer() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = StateDir::open(tmp.path().join("data")).unwrap();
    assert_eq!(dir.load().unwrap(), None);
    let state = sample_state();
    dir.save(&state).unwrap();
    assert_eq!(dir.load().unwrap(), Some(state.clone()));
    let older = SavedState { saved_at: Time::from_secs(1), contacts: vec![], ..state.clone() };
    dir.save(&older).unwrap();
    assert_eq!(StateDir::open(tmp.path().join("data")).unwrap().load().unwrap(), Some(state));
    let names: Vec<String> = std::fs::read_dir(tmp.path().join("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec![STATE_FILE.to_string()], "no temporary files may be left behind");
}

#[test]
fn a_data_dir_that_is_a_file_is_refused_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let e = StateDir::open(&file).unwrap_err();
    assert!(matches!(e, PersistError::Io { .. }), "{e:?}");
    assert!(e.to_string().contains("not-a-dir"), "{e}");
}

/// Captures what `f` logs, as text lines.
fn logged(f: impl FnOnce()) -> Vec<String> {
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
    tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    text.lines().map(str::to_string).collect()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    v.sort();
    v
}

#[test]
fn damaged_files_are_moved_aside_with_one_error_line_and_the_node_starts_clean() {
    let good = {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(tmp.path()).unwrap();
        dir.save(&sample_state()).unwrap();
        std::fs::read(dir.path()).unwrap()
    };
    let mut flipped = good.clone();
    let mid = good.len() / 2;
    flipped[mid] ^= 0x01;
    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("corrupt", flipped, "corrupt (checksum mismatch)"),
        ("truncated", good[..good.len() - 7].to_vec(), "is truncated"),
        ("empty", Vec::new(), "is truncated (0 of 40 bytes)"),
    ];
    for (name, bytes, expect) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(tmp.path()).unwrap();
        std::fs::write(dir.path(), &bytes).unwrap();
        let e = dir.load().unwrap_err();
        let msg = e.to_string();
        assert!(e.is_damage(), "{name}: {e:?}");
        assert!(msg.contains(expect) && msg.contains(STATE_FILE) && !msg.contains('\n'), "{name}: {msg}");
        let mut result = None;
        let lines = logged(|| result = Some(dir.load_or_quarantine()));
        assert_eq!(result.unwrap().unwrap(), None, "{name}: starts clean");
        assert_eq!(lines.len(), 1, "{name}: {lines:?}");
        assert!(
            lines[0].contains("ERROR") && lines[0].contains(expect) && lines[0].contains("moved it to"),
            "{lines:?}"
        );
        let names = files_in(tmp.path());
        assert_eq!(names.len(), 1, "{name}: {names:?}");
        assert!(names[0].starts_with(&format!("{STATE_FILE}.corrupt-")), "{names:?}");
        assert_eq!(std::fs::read(tmp.path().join(&names[0])).unwrap(), bytes, "{name}: kept for inspection");
        assert_eq!(dir.load().unwrap(), None);
    }
}

#[test]
fn future_version_and_foreign_files_are_refused_and_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = StateDir::open(tmp.path()).unwrap();
    dir.save(&sample_state()).unwrap();
    let mut future = std::fs::read(dir.path()).unwrap();
    future[8..10].copy_from_slice(&2u16.to_be_bytes());
    let cases: [(&str, Vec<u8>, &str); 2] = [
        ("future", future, "written by a newer kadmesh (state format v2, this build reads v1)"),
        ("foreign", b"{\"node_id\": \"abc\"}\n".to_vec(), "is not a kadmesh state file"),
    ];
    for (name, bytes, expect) in cases {
        std::fs::write(dir.path(), &bytes).unwrap();
        for e in [dir.load().unwrap_err(), dir.load_or_quarantine().unwrap_err()] {
            let msg = e.to_string();
            assert!(!e.is_damage(), "{name}: {e:?}");
            assert!(msg.contains(expect) && msg.contains(STATE_FILE) && !msg.contains('\n'), "{name}: {msg}");
        }
        assert_eq!(std::fs::read(dir.path()).unwrap(), bytes, "{name}: the file must stay untouched");
        assert_eq!(files_in(tmp.path()), vec![STATE_FILE.to_string()]);
    }
}

async fn start_network(n: usize, record_ttl: Duration) -> Vec<NodeHandle> {
    let mut nodes: Vec<NodeHandle> = Vec::new();
    for i in 0..n {
        let node = Node::bind(loopback(), quick(i as u64, record_ttl, Duration::from_secs(600))).await.unwrap();
        if let Some(first) = nodes.first() {
            assert_eq!(node.bootstrap(vec![first.local_addr()]).await.unwrap().seeds_reached, 1);
        }
        nodes.push(node);
    }
    nodes
}

async fn holds(node: &NodeHandle, key: NodeId) -> bool {
    node.with_engine(move |e, now| e.store().get(&key, now).is_some()).await.unwrap()
}

/// Rebinds a port a node just released (its task drops the socket a moment
/// after `shutdown` returns).
async fn rebind(addr: SocketAddr) -> tokio::net::UdpSocket {
    for _ in 0..100 {
        if let Ok(s) = tokio::net::UdpSocket::bind(addr).await {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("could not rebind {addr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_node_keeps_id_contacts_and_records_and_rejoins_without_seeds() {
    // The others forget plain stores after 2 s, so once the restarted node
    // has been down that long only its own republish can put `mine` back.
    let others = start_network(6, Duration::from_secs(2)).await;
    let cfg = || quick(99, Duration::from_secs(120), Duration::from_secs(2));
    let node = Node::bind(loopback(), cfg()).await.unwrap();
    node.bootstrap(vec![others[0].local_addr()]).await.unwrap();
    let (mine, held) = (NodeId::for_key("worker:restarter"), NodeId::for_key("held-only-here"));
    assert!(node.put(mine, Value::Str("mine".into())).await.unwrap().stored >= 5);
    let call = Call::Store { sender: others[1].id(), key: held, value: Value::Int(42) };
    assert_eq!(others[1].call(node.local_addr(), call).await.unwrap(), Some(Value::Bool(true)));
    let (id, addr) = (node.id(), node.local_addr());

    let tmp = tempfile::tempdir().unwrap();
    let dir = StateDir::open(tmp.path()).unwrap();
    persist::shutdown_saving(&node, &dir).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for o in &others {
        assert!(!holds(o, mine).await && !holds(o, held).await, "copies elsewhere must have expired");
    }

    let state = dir.load().unwrap().expect("state was saved");
    assert_eq!(state.id, id);
    assert_eq!(state.contacts.len(), 6);
    assert_eq!(state.published, vec![(mine, Value::Str("mine".into()))]);
    let restarted = Node::spawn(rebind(addr).await, state.id, cfg()).unwrap();
    let rejoin = persist::restore(&restarted, state.clone()).await.unwrap();
    assert_eq!((rejoin.seeds_tried, rejoin.seeds_reached), (6, 6), "rejoined through saved contacts alone");
    let mut contacts: Vec<NodeId> = restarted.contacts().await.unwrap().iter().map(|c| c.id).collect();
    let mut saved: Vec<NodeId> = state.contacts.iter().map(|c| c.id).collect();
    contacts.sort();
    saved.sort();
    assert_eq!(contacts, saved);
    assert!(holds(&restarted, mine).await && holds(&restarted, held).await);
    // `held` keeps the age it had when saved, not the restart time: an old
    // copy must not pass for a freshly refreshed one (see Engine::servable).
    let saved_held = state.records.iter().find(|r| r.key == held).expect("held was saved").stored_at;
    let (restored_held, restart_now) =
        restarted.with_engine(move |e, now| (e.store().get(&held, now).map(|r| r.stored_at), now)).await.unwrap();
    assert_eq!(restored_held, Some(saved_held));
    assert!(saved_held + Duration::from_secs(2) < restart_now, "saved {saved_held:?}, restarted {restart_now:?}");

    // Reachable: another node, and a newcomer seeded elsewhere, find what only it held.
    assert_eq!(others[3].get(held).await.unwrap().value, Some(Value::Int(42)));
    let newcomer = Node::bind(loopback(), quick(7, Duration::from_secs(2), Duration::from_secs(600))).await.unwrap();
    newcomer.bootstrap(vec![others[2].local_addr()]).await.unwrap();
    assert_eq!(newcomer.get(held).await.unwrap().value, Some(Value::Int(42)));

    // Its own record is republished to the others (they had let it expire).
    // Handover to the re-met contacts may bring it back first, so wait for
    // the republisher itself as well.
    let (mut spread_to, mut republished) = (0, 0);
    for _ in 0..100 {
        spread_to = 0;
        for o in &others {
            spread_to += usize::from(holds(o, mine).await);
        }
        republished = restarted.with_engine(|e, _| e.stats().republished).await.unwrap();
        if spread_to >= 5 && republished >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(spread_to >= 5, "republished to only {spread_to} of 6 peers");
    assert!(republished >= 1, "the restarted node never republished its own record");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autosave_writes_periodically_and_shutdown_saves_the_latest_state() {
    let nodes = start_network(3, Duration::from_secs(60)).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = StateDir::open(tmp.path()).unwrap();
    let saver = persist::spawn_autosave(nodes[1].clone(), dir.clone(), Duration::from_millis(100));
    let mut saved = None;
    for _ in 0..50 {
        saved = dir.load().unwrap();
        if saved.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let saved = saved.expect("autosave wrote nothing within 2.5 s");
    assert_eq!((saved.id, saved.contacts.len()), (nodes[1].id(), 2));
    let key = NodeId::for_key("late");
    nodes[1].put(key, Value::Int(1)).await.unwrap();
    persist::shutdown_saving(&nodes[1], &dir).await.unwrap();
    let last = dir.load().unwrap().unwrap();
    assert_eq!(last.published, vec![(key, Value::Int(1))]);
    assert!(last.records.iter().any(|r| r.key == key && r.publisher == Some(nodes[1].id())));
    tokio::time::timeout(Duration::from_secs(2), saver).await.expect("autosave stops with its node").unwrap();
}

#[test]
fn restored_records_keep_the_stored_at_they_were_saved_with() {
    // Through the file, as a restart reads it: the engine restarts at 130 s,
    // 30 s after both sample records were stored (record 1 expires at 160 s,
    // record 2 at 220 s).
    let tmp = tempfile::tempdir().unwrap();
    let dir = StateDir::open(tmp.path()).unwrap();
    dir.save(&sample_state()).unwrap();
    let state = dir.load().unwrap().unwrap();
    let now = Time::from_secs(130);
    let mut engine = Engine::new(state.id, quick(1, Duration::from_secs(3600), Duration::from_secs(600)), now);
    state.restore_into(&mut engine, now, Duration::from_secs(60));
    for (n, expires) in [(1u8, 160), (2, 220)] {
        let r = engine.store().get(&NodeId([n; 20]), now).expect("restored");
        assert_eq!((r.stored_at, r.expires_at), (Time::from_secs(100), Time::from_secs(expires)), "record {n}");
    }
}

/// One engine after a restart, and 20 peers that answer every query one
/// 100 ms step later (with no contacts of their own).
struct Restarted {
    engine: Engine,
    now: Time,
    peers: std::collections::HashMap<SocketAddr, NodeId>,
    replies: Vec<(SocketAddr, Vec<u8>)>,
    peak_requests_per_step: usize,
    peak_ops: usize,
}

impl Restarted {
    fn new(max_ops: usize, records: usize, spread: Duration) -> Restarted {
        let config = Config { max_maintenance_ops: max_ops, rng_seed: 5, ..Config::default() };
        let now = Time::from_secs(1_000_000);
        let mut engine = Engine::new(NodeId::for_key("restarted"), config, now);
        let mut peers = std::collections::HashMap::new();
        for i in 0..20u16 {
            let (id, addr) = (NodeId::for_key(&format!("peer{i}")), SocketAddr::from(([10, 0, 0, 1], 1000 + i)));
            let ping = Datagram::Request { id: MessageId([i as u8; 20]), call: Call::Ping { sender: id } };
            engine.handle_datagram(now, addr, &ping.encode().unwrap());
            peers.insert(addr, id);
        }
        while engine.poll_transmit().is_some() {}
        let published = (0..records).map(|i| (NodeId::for_key(&format!("rec{i}")), Value::Int(i as i64))).collect();
        let state = SavedState { id: engine.id(), saved_at: now, contacts: vec![], published, records: vec![] };
        state.restore_into(&mut engine, now, spread);
        Restarted { engine, now, peers, replies: Vec::new(), peak_requests_per_step: 0, peak_ops: 0 }
    }

    fn step(&mut self) {
        self.now = self.now + Duration::from_millis(100);
        for (from, bytes) in std::mem::take(&mut self.replies) {
            self.engine.handle_datagram(self.now, from, &bytes);
        }
        if self.engine.poll_timeout().is_some_and(|t| t <= self.now) {
            self.engine.handle_timeout(self.now);
        }
        let mut requests = 0;
        while let Some(t) = self.engine.poll_transmit() {
            let Ok(Datagram::Request { id, call }) = wire::decode(&t.payload) else { continue };
            requests += 1;
            let body = match call {
                Call::FindNode { .. } | Call::FindValue { .. } => wire::contacts_value(&[]),
                Call::Store { .. } => Value::Bool(true),
                Call::Ping { .. } => Value::Bin(self.peers[&t.to].0.to_vec()),
                _ => continue,
            };
            self.replies.push((t.to, Datagram::Response { id, body }.encode().unwrap()));
        }
        self.peak_requests_per_step = self.peak_requests_per_step.max(requests);
        self.peak_ops = self.peak_ops.max(self.engine.ops_in_progress());
    }

    fn republished(&self) -> u64 {
        self.engine.stats().republished
    }
}

#[test]
fn restart_with_many_saved_records_republishes_rate_limited() {
    // Everything due at once: still never more than 4 operations in flight.
    let mut r = Restarted::new(4, 300, Duration::ZERO);
    for _ in 0..3000 {
        r.step();
        if r.republished() == 300 {
            break;
        }
    }
    assert_eq!(r.republished(), 300, "not all republished within 300 virtual seconds");
    assert!(r.peak_ops <= 4, "{} operations at once", r.peak_ops);
    // Each operation sends at most k stores (or alpha queries) per step.
    assert!(r.peak_requests_per_step <= 4 * 20, "{} requests in one step", r.peak_requests_per_step);
}

#[test]
fn restart_with_many_saved_records_spreads_republishing_over_the_window() {
    // Ample capacity, so only the spread decides when each record goes out.
    let mut r = Restarted::new(1000, 300, Duration::from_secs(60));
    let at = |r: &mut Restarted, secs: u64| {
        while r.now < Time::from_secs(1_000_000 + secs) {
            r.step();
        }
        r.republished()
    };
    let (early, half, done) = (at(&mut r, 6), at(&mut r, 30), at(&mut r, 65));
    assert!((5..=60).contains(&early), "{early} of 300 in the first tenth of the window");
    assert!((100..=200).contains(&half), "{half} of 300 by the middle of the window");
    assert_eq!(done, 300);
}
