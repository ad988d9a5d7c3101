//! One daemon per data directory: an exclusive advisory lock on
//! `DIR/kadmesh.lock`, held for as long as the [`DirLock`] lives.
//!
//! Two `dhtd`s on one directory would overwrite each other's state file and
//! run two nodes with the same id. The lock is the OS's own (`flock` on Unix,
//! `LockFileEx` on Windows, through `std::fs::File::try_lock`), so it is
//! released when the process dies, however it dies: a crashed daemon never
//! leaves a stale lock behind. The holder writes its PID into the file so the
//! refusal can name it; the PID is only informative, the lock decides.
//!
//! Why std and not a crate (`fs2`, `fd-lock`): `File::try_lock` has been
//! stable since Rust 1.89, does the same system call, and adds no
//! dependency.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::PersistError;

/// Name of the lock file inside the data directory.
pub const LOCK_FILE: &str = "kadmesh.lock";

/// The held lock; dropping it releases the directory.
#[derive(Debug)]
pub struct DirLock {
    file: File,
    path: PathBuf,
}

impl DirLock {
    /// Takes the lock on `dir` (created if missing) for this process, or
    /// fails with [`PersistError::Locked`] naming the holder's PID.
    pub fn acquire(dir: &Path) -> Result<DirLock, PersistError> {
        let path = dir.join(LOCK_FILE);
        let io = |action: &'static str| {
            let path = path.clone();
            move |source| PersistError::Io { path, action, source }
        };
        std::fs::create_dir_all(dir).map_err(io("cannot create the data directory"))?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io("cannot open the lock file"))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(PersistError::Locked { path: dir.to_path_buf(), holder: read_pid(&mut file) })
            }
            Err(TryLockError::Error(e)) => return Err(io("cannot lock the data directory")(e)),
        }
        file.set_len(0).map_err(io("cannot write the lock file"))?;
        file.seek(SeekFrom::Start(0)).map_err(io("cannot write the lock file"))?;
        writeln!(file, "{}", std::process::id()).map_err(io("cannot write the lock file"))?;
        Ok(DirLock { file, path })
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // Closing the file releases the lock. The file stays (removing it
        // would race with a newcomer that already opened it); emptied, it
        // names no holder.
        let _ = self.file.set_len(0);
    }
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn second_lock_is_refused_naming_the_holder_and_freed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path()).unwrap();
        let text = fs::read_to_string(first.path()).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
        match DirLock::acquire(dir.path()) {
            Err(PersistError::Locked { holder, .. }) => assert_eq!(holder, Some(std::process::id())),
            other => panic!("second lock taken: {other:?}"),
        }
        drop(first);
        assert!(DirLock::acquire(dir.path()).is_ok());
    }
}
