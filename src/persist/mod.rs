//! Persistence: a node's id, routing-table contacts and records, saved in a
//! data directory and restored on start, so a restarted node keeps its
//! identity, rejoins from its saved contacts without any seed, still serves
//! what it held and goes on republishing what it published.
//!
//! # Contract
//! - [`StateDir::save`] is atomic: it writes a temporary file in the same
//!   directory, fsyncs it, renames it over [`STATE_FILE`] and fsyncs the
//!   directory. A crash at any moment leaves the old file or the new one,
//!   never a mix. Saves through clones of one [`StateDir`] are serialized and
//!   an older snapshot never overwrites a newer one.
//! - The file is versioned and checksummed (layout in `format.rs`, version
//!   [`FORMAT_VERSION`]). Reading never panics, whatever the bytes.
//! - Record lifetimes are saved as absolute times on the driver's timeline
//!   (Unix-epoch milliseconds for the tokio node), so time spent stopped
//!   counts against them: a record that expired while the node was down is
//!   not restored.
//!
//! # Bad state files: the policy
//! | the file | [`StateDir::load`] | [`StateDir::load_or_quarantine`] (what `dhtd` uses) |
//! |---|---|---|
//! | missing | `Ok(None)` | `Ok(None)`: fresh identity |
//! | truncated or corrupt (our magic, damaged body or checksum) | `Err(Truncated \| Corrupt)` | renamed to `kadmesh.state.corrupt-<unix-ms>`, one error line logged, `Ok(None)`: the node starts clean with a new id |
//! | written by a newer format version | `Err(FutureVersion)` | `Err`: the daemon refuses to start |
//! | not a kadmesh state file at all | `Err(Foreign)` | `Err`: the daemon refuses to start |
//! | a symlink, FIFO, device or directory | `Err(NotRegular)`, never followed or read | `Err`: the daemon refuses to start |
//!
//! Why the split: with atomic writes, damage means the disk or someone else
//! broke the file. An unattended volunteer worker should keep serving rather
//! than stay down until a human looks, and the bad file is kept for
//! inspection. A newer version's file is intact data that an older binary
//! must not throw away (a downgrade would otherwise lose the node id); a
//! foreign file is not ours to move. Both errors say which file and what to
//! do, in one line.
//!
//! # Layout
//! `format` owns the bytes; this file the types, the directory and the
//! policy; `live` the glue to a running [`NodeHandle`](crate::node::NodeHandle)
//! (snapshot, restore, autosave, save on shutdown); `lock` keeps a second
//! daemon off a directory in use.

mod file;
mod format;
mod live;
mod lock;

use std::fs;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use file::{decode_state, encode_state};
pub use format::FORMAT_VERSION;
pub use live::{
    republish_spread, restore, restore_paced, save, shutdown_saving, snapshot, spawn_autosave, RestorePacing,
};
pub use lock::{DirLock, LOCK_FILE};

use crate::contact::Contact;
use crate::engine::Engine;
use crate::id::{Key, NodeId};
use crate::node::{Clock, NodeError};
use crate::store::Record;
use crate::time::Time;
use crate::wire::{decode_value, encode_value, Value};
use format::{Blob, BodyV1, ContactV1, Defect, PublishedV1, RecordV1};

/// Name of the state file inside the data directory.
pub const STATE_FILE: &str = "kadmesh.state";
/// Largest state file read; anything bigger is refused as corrupt rather
/// than loaded into memory.
pub const MAX_STATE_BYTES: u64 = 2 << 30;
const TMP_PREFIX: &str = ".kadmesh.state.tmp-";

/// Why state could not be saved or loaded. Every message names the file and
/// fits on one line.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// The OS refused a file operation; check the path, its permissions and free space.
    #[error("{}: {action}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The file does not start with the kadmesh magic: someone else's file.
    #[error("{} is not a kadmesh state file; move it away or choose another data directory", path.display())]
    Foreign {
        /// The file.
        path: PathBuf,
    },
    /// Written by a newer kadmesh; run that version, or move the file away
    /// to start over with a new node id.
    #[error(
        "{} was written by a newer kadmesh (state format v{found}, this build reads v{supported}); \
         run the newer version, or move the file away to start with a new node id",
        path.display()
    )]
    FutureVersion {
        /// The file.
        path: PathBuf,
        /// Its format version.
        found: u16,
        /// The version this build reads.
        supported: u16,
    },
    /// Something other than a regular file sits at the state path (a
    /// symlink, FIFO, device, directory); it is never followed or read.
    /// Replace it with the real file or choose another data directory.
    #[error(
        "{} is {kind}, not a regular file; the state file is never read through a link or from a \
         FIFO or device: replace it or choose another data directory",
        path.display()
    )]
    NotRegular {
        /// The path.
        path: PathBuf,
        /// What is there.
        kind: &'static str,
    },
    /// Shorter than it declares (an interrupted copy, a full disk).
    #[error("{} is truncated ({found} of {expected} bytes); move it away to start with a new node id", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes the header declares (or the header's own size).
        expected: u64,
        /// Bytes present.
        found: u64,
    },
    /// Damaged: checksum mismatch, bad header or unreadable body.
    #[error("{} is corrupt ({reason}); move it away to start with a new node id", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The state could not be encoded (a bug: report it).
    #[error("cannot encode the node state: {0}")]
    Encode(String),
    /// Another process holds the data directory (two daemons on one
    /// directory would overwrite each other's state); stop it or use another.
    #[error("data directory {} is in use by {} (lock file {LOCK_FILE}); stop that process or choose another --data-dir",
        path.display(), holder.map_or("another process".to_owned(), |p| format!("process {p}")))]
    Locked {
        /// The data directory.
        path: PathBuf,
        /// The holder's PID, as it wrote it into the lock file.
        holder: Option<u32>,
    },
    /// The node stopped before its state could be read.
    #[error(transparent)]
    Node(#[from] NodeError),
}

impl PersistError {
    /// True for a damaged file of ours (truncated or corrupt): the kind
    /// [`StateDir::load_or_quarantine`] moves aside.
    pub fn is_damage(&self) -> bool {
        matches!(self, PersistError::Truncated { .. } | PersistError::Corrupt { .. })
    }

    fn from_defect(path: &Path, d: Defect) -> Self {
        let path = path.to_path_buf();
        match d {
            Defect::Foreign => PersistError::Foreign { path },
            Defect::Future { found } => PersistError::FutureVersion { path, found, supported: FORMAT_VERSION },
            Defect::Truncated { expected, found } => PersistError::Truncated { path, expected, found },
            Defect::Corrupt(reason) => PersistError::Corrupt { path, reason },
        }
    }
}

fn io_err<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(io::Error) -> PersistError + 'a {
    move |source| PersistError::Io { path: path.to_path_buf(), action, source }
}

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

    fn to_body(&self) -> BodyV1 {
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

    fn from_body(body: BodyV1) -> Result<SavedState, String> {
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

/// A data directory holding one node's [`STATE_FILE`]. Cheap to clone.
#[derive(Clone, Debug)]
pub struct StateDir {
    dir: PathBuf,
    file: PathBuf,
    /// The newest snapshot written; the lock also serializes saves.
    last_saved: Arc<Mutex<Option<Time>>>,
}

impl StateDir {
    /// Opens (creating if needed) the data directory `path` and checks it is
    /// writable now rather than at the first save, an hour later.
    /// Temporary files left by a crash during a save are removed.
    pub fn open(path: impl Into<PathBuf>) -> Result<StateDir, PersistError> {
        let dir: PathBuf = path.into();
        fs::create_dir_all(&dir).map_err(io_err(&dir, "cannot create the data directory"))?;
        for entry in fs::read_dir(&dir).map_err(io_err(&dir, "cannot list the data directory"))?.flatten() {
            if entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                let _ = fs::remove_file(entry.path());
            }
        }
        let probe = temp_path(&dir);
        fs::File::create(&probe).map_err(io_err(&dir, "data directory is not writable"))?;
        let _ = fs::remove_file(&probe);
        let file = dir.join(STATE_FILE);
        Ok(StateDir { dir, file, last_saved: Arc::new(Mutex::new(None)) })
    }

    /// The state file's path.
    pub fn path(&self) -> &Path {
        &self.file
    }

    /// The saved state; `None` when nothing was saved yet. Any defect is an
    /// error and the file is left untouched; anything but a regular file
    /// (a symlink, a FIFO, a device) is refused unread.
    pub fn load(&self) -> Result<Option<SavedState>, PersistError> {
        let path = &self.file;
        let Some(bytes) = file::read_state(path)? else { return Ok(None) };
        file::decode_at(path, &bytes).map(Some)
    }

    /// [`StateDir::load`] with the module's policy applied: a truncated or
    /// corrupt file is renamed aside (`kadmesh.state.corrupt-<unix-ms>`),
    /// one error line is logged and `Ok(None)` returned, so the node starts
    /// clean; a future-version or foreign file stays an error.
    pub fn load_or_quarantine(&self) -> Result<Option<SavedState>, PersistError> {
        match self.load() {
            Err(e) if e.is_damage() => {
                let aside = self.quarantine()?;
                tracing::error!("{e}; moved it to {} and starting with a new node id", aside.display());
                Ok(None)
            }
            other => other,
        }
    }

    fn quarantine(&self) -> Result<PathBuf, PersistError> {
        let stamp = Clock::new().now().as_millis();
        let free = (0..100u32)
            .map(|n| {
                let suffix = if n == 0 { String::new() } else { format!("-{n}") };
                self.dir.join(format!("{STATE_FILE}.corrupt-{stamp}{suffix}"))
            })
            .find(|p| !p.exists())
            .unwrap_or_else(|| self.dir.join(format!("{STATE_FILE}.corrupt-{stamp}-last")));
        fs::rename(&self.file, &free).map_err(io_err(&self.file, "cannot move the damaged state file aside"))?;
        Ok(free)
    }

    /// Writes `state` atomically. A snapshot older than one already written
    /// through this directory is skipped (an autosave that lost a race with
    /// the save on shutdown).
    pub fn save(&self, state: &SavedState) -> Result<(), PersistError> {
        let mut last = self.last_saved.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if last.is_some_and(|t| t > state.saved_at) {
            return Ok(());
        }
        let bytes = encode_state(state)?;
        self.write_atomic(&bytes)?;
        *last = Some(state.saved_at);
        Ok(())
    }

    fn write_atomic(&self, bytes: &[u8]) -> Result<(), PersistError> {
        let tmp = temp_path(&self.dir);
        let written = (|| {
            let mut f = fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, &self.file)?;
            sync_dir(&self.dir)
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written.map_err(io_err(&self.file, "cannot write the state file"))
    }
}

fn temp_path(dir: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    dir.join(format!("{TMP_PREFIX}{}-{n}", std::process::id()))
}

/// Makes the rename itself durable (POSIX needs the directory synced too).
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}
