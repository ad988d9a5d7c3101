//! Reading the state file without trusting what sits at its path.
//!
//! The data directory may be shared or tampered with: a symlink there could
//! point the loader at another file, a FIFO would block startup forever and
//! a device such as `/dev/zero` would be read until memory runs out. So the
//! file is opened without following a symlink and without blocking
//! (`O_NOFOLLOW | O_NONBLOCK` on Unix), checked to be a regular file on the
//! open descriptor (no race between check and read), and read through a
//! bound of one byte more than the largest state accepted.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::{format, io_err, PersistError, SavedState, MAX_STATE_BYTES};

/// What sits at the state path, when it is not a regular file.
fn kind_of(meta: &fs::Metadata) -> &'static str {
    let t = meta.file_type();
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

fn open_no_follow(path: &Path) -> io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    options.open(path)
}

/// The bytes of the state file at `path`; `None` when there is none.
/// Anything but a regular file is refused with [`PersistError::NotRegular`];
/// a file over [`MAX_STATE_BYTES`] is [`PersistError::Corrupt`].
pub(super) fn read_state(path: &Path) -> Result<Option<Vec<u8>>, PersistError> {
    read_bounded(path, MAX_STATE_BYTES)
}

/// The bytes of the file at `path`, read as [`read_state`] reads the state
/// file but bounded by `limit`.
pub(super) fn read_bounded(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, PersistError> {
    let not_regular = |kind| PersistError::NotRegular { path: path.to_path_buf(), kind };
    // Checked first so a symlink is named as such (O_NOFOLLOW's ELOOP is
    // a less helpful message).
    match fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_file() => return Err(not_regular(kind_of(&m))),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path, "cannot read the file")(e)),
    }
    let file = match open_no_follow(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path, "cannot open the file")(e)),
    };
    let meta = file.metadata().map_err(io_err(path, "cannot read the file"))?;
    if !meta.is_file() {
        return Err(not_regular(kind_of(&meta)));
    }
    if meta.len() > limit {
        let reason = format!("{} bytes, more than the {limit}-byte limit", meta.len());
        return Err(PersistError::Corrupt { path: path.to_path_buf(), reason });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1).read_to_end(&mut bytes).map_err(io_err(path, "cannot read the file"))?;
    if bytes.len() as u64 > limit {
        let reason = format!("grew past the {limit}-byte limit while being read");
        return Err(PersistError::Corrupt { path: path.to_path_buf(), reason });
    }
    Ok(Some(bytes))
}

/// Decodes the bytes of the state file at `path` (named in errors).
pub(super) fn decode_at(path: &Path, bytes: &[u8]) -> Result<SavedState, PersistError> {
    let body = format::decode(bytes).map_err(|d| PersistError::from_defect(path, d))?;
    SavedState::from_body(body).map_err(|reason| PersistError::Corrupt { path: path.to_path_buf(), reason })
}

/// Decodes state-file bytes exactly as [`super::StateDir::load`] does, for
/// tools and the fuzz target; errors name the file `<state bytes>`.
pub fn decode_state(bytes: &[u8]) -> Result<SavedState, PersistError> {
    decode_at(&PathBuf::from("<state bytes>"), bytes)
}

/// Encodes `state` exactly as [`super::StateDir::save`] writes it.
pub fn encode_state(state: &SavedState) -> Result<Vec<u8>, PersistError> {
    format::encode(&state.to_body()).map_err(|e| PersistError::Encode(e.to_string()))
}
