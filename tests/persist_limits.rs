//! The state file as untrusted input: a symlink (to a real state file or to
//! `/dev/zero`), a FIFO and a directory at the state path are refused
//! unread with one clear error; restored contacts are capped to what a
//! routing table can hold and pinged in paced waves, not all at once.

use std::net::SocketAddr;
use std::time::Duration;

use kadmesh::contact::Contact;
use kadmesh::engine::Config;
use kadmesh::id::{NodeId, ID_BITS};
use kadmesh::node::Node;
use kadmesh::persist::{self, capped_contacts, PersistError, SavedState, StateDir, STATE_FILE};
use kadmesh::time::Time;
use rand::{Rng, SeedableRng};

fn state(contacts: Vec<Contact>) -> SavedState {
    SavedState {
        id: NodeId::for_key("me"),
        saved_at: Time::from_secs(1),
        contacts,
        published: Vec::new(),
        records: Vec::new(),
    }
}

/// Loads in a thread so a loader that blocks (on a FIFO) fails the test
/// instead of hanging it.
fn load_bounded(dir: &StateDir) -> Result<Option<SavedState>, PersistError> {
    let dir = dir.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(dir.load_or_quarantine());
    });
    rx.recv_timeout(Duration::from_secs(5)).expect("the loader blocked")
}

fn assert_refused(dir: &StateDir, kind: &str) {
    let err = load_bounded(dir).expect_err("a non-regular state path was read");
    assert!(matches!(err, PersistError::NotRegular { .. }), "{err}");
    let line = err.to_string();
    assert!(line.contains(kind) && line.contains(STATE_FILE) && !line.contains('\n'), "{line}");
}

#[test]
fn symlinks_fifos_devices_and_directories_are_refused_unread() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = StateDir::open(tmp.path().join("data")).unwrap();
    let real = tmp.path().join("elsewhere.state");
    let other = StateDir::open(tmp.path().join("other")).unwrap();
    other.save(&state(Vec::new())).unwrap();
    std::fs::rename(other.path(), &real).unwrap();

    std::os::unix::fs::symlink(&real, dir.path()).unwrap();
    assert_refused(&dir, "symbolic link");
    std::fs::remove_file(dir.path()).unwrap();

    std::os::unix::fs::symlink("/dev/zero", dir.path()).unwrap();
    assert_refused(&dir, "symbolic link");
    std::fs::remove_file(dir.path()).unwrap();

    let c = std::ffi::CString::new(dir.path().as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates a node.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    assert_refused(&dir, "FIFO");
    std::fs::remove_file(dir.path()).unwrap();

    std::fs::create_dir(dir.path()).unwrap();
    assert_refused(&dir, "directory");
    std::fs::remove_dir(dir.path()).unwrap();

    std::fs::copy(&real, dir.path()).unwrap();
    assert!(load_bounded(&dir).unwrap().is_some(), "the same bytes in a regular file load");
}

fn random_contacts(n: usize, seed: u64) -> Vec<Contact> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let addr = SocketAddr::from(([127, 1 + (i / 60_000) as u8, (i / 250 % 240) as u8, (i % 250) as u8], 9));
            Contact::new(NodeId(rng.gen()), addr)
        })
        .collect()
}

#[test]
fn restored_contacts_are_capped_to_what_a_routing_table_can_hold() {
    let me = NodeId::for_key("me");
    let k = 20;
    let contacts = random_contacts(50_000, 7);
    let kept = capped_contacts(me, k, &contacts);
    assert!(kept.len() <= k * (ID_BITS + 1), "{}", kept.len());
    // Random ids fill about 15 depths with k each: a few hundred, not 50,000.
    assert!((k * 10..=k * 25).contains(&kept.len()), "{}", kept.len());
    let mut unique = kept.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), kept.len(), "an address twice");
    // The farthest half of the id space (depth 0) gives exactly k.
    let far: Vec<_> = contacts.iter().filter(|c| me.distance(&c.id).leading_zeros() == 0).map(|c| c.addr).collect();
    assert_eq!(kept.iter().filter(|a| far.contains(a)).count(), k);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_from_50k_dead_contacts_sends_a_bounded_number_of_pings() {
    let config = Config { rpc_timeout: Duration::from_millis(200), rng_seed: 3, ..Config::default() };
    let node = Node::bind(SocketAddr::from(([127, 0, 0, 1], 0)), config).await.unwrap();
    let pacing = persist::RestorePacing { gap: Duration::from_millis(20), ..persist::RestorePacing::default() };
    let out = persist::restore_paced(&node, state(random_contacts(50_000, 9)), pacing).await.unwrap();
    assert_eq!(out.seeds_reached, 0);
    let kept = capped_contacts(node.id(), 20, &random_contacts(50_000, 9)).len();
    assert_eq!(out.seeds_tried, kept.min(pacing.max_pinged), "{out:?}");
    let pings = node.with_engine(|e, _| e.stats().sent[0]).await.unwrap();
    assert!(pings as usize <= pacing.max_pinged, "{pings} pings sent");
    node.shutdown().await;
}
