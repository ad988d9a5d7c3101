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
//! `format` owns the bytes; `state` what is saved ([`SavedState`]) and its
//! conversion to and from them; `error` the errors; this file the directory
//! and the policy; `file` reading and writing one state file; `live` the
//! glue to a running [`NodeHandle`](crate::node::NodeHandle) (snapshot,
//! restore, autosave, save on shutdown); `lock` keeps a second daemon off a
//! directory in use; `learned` the seeds kept from bootstrap documents
//! ([`LEARNED_FILE`], a text file beside the state).

mod error;
mod file;
mod format;
mod learned;
mod live;
mod lock;
mod state;

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use error::io_err;
pub use error::PersistError;
pub use file::{decode_state, encode_state};
pub use format::FORMAT_VERSION;
pub use learned::{parse_learned, LEARNED_FILE};
pub use live::{
    republish_spread, restore, restore_paced, save, shutdown_saving, snapshot, spawn_autosave, RestorePacing,
};
pub use lock::{DirLock, LOCK_FILE};
pub use state::{capped_contacts, SavedState};

use crate::node::Clock;
use crate::time::Time;

/// Name of the state file inside the data directory.
pub const STATE_FILE: &str = "kadmesh.state";
/// Largest state file read; anything bigger is refused as corrupt rather
/// than loaded into memory.
pub const MAX_STATE_BYTES: u64 = 2 << 30;
const TMP_PREFIX: &str = ".kadmesh.state.tmp-";

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
        write_atomic_at(&self.dir, &self.file, bytes)
    }
}

/// Writes `bytes` to `target` in `dir` atomically (temporary file, fsync,
/// rename, directory fsync).
fn write_atomic_at(dir: &Path, target: &Path, bytes: &[u8]) -> Result<(), PersistError> {
    let tmp = temp_path(dir);
    let written = (|| {
        let mut f = fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, target)?;
        sync_dir(dir)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written.map_err(io_err(target, "cannot write the file"))
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
