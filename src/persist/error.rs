//! Why state could not be saved or loaded ([`PersistError`]), with the
//! one-line messages `dhtd` prints, and which errors count as damage to
//! quarantine.

use std::io;
use std::path::{Path, PathBuf};

use super::format::{Defect, FORMAT_VERSION};
use super::lock::LOCK_FILE;
use crate::node::NodeError;

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

    pub(super) fn from_defect(path: &Path, d: Defect) -> Self {
        let path = path.to_path_buf();
        match d {
            Defect::Foreign => PersistError::Foreign { path },
            Defect::Future { found } => PersistError::FutureVersion { path, found, supported: FORMAT_VERSION },
            Defect::Truncated { expected, found } => PersistError::Truncated { path, expected, found },
            Defect::Corrupt(reason) => PersistError::Corrupt { path, reason },
        }
    }
}

pub(super) fn io_err<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(io::Error) -> PersistError + 'a {
    move |source| PersistError::Io { path: path.to_path_buf(), action, source }
}
