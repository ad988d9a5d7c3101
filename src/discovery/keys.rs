//! The Ed25519 keys of the workers registered through this node, and the
//! credentials that prove a worker owns one.
//!
//! A worker's credential is the hex of its key's 32-byte secret seed: any
//! node derives the public key from it and compares it with the one in the
//! worker's live signed record, so the credential proves ownership at every
//! node, not only the one that made it.
//!
//! With a key directory (`DiscoveryConfig::key_dir`, the daemon's
//! `--data-dir`) the keys are kept in `workers.keys` there, one
//! `<worker_id> <seed hex>` line each, rewritten whole on every change (to a
//! temporary file, mode 0600, then renamed over the old one) and read back
//! at start, so a restarted node can still sign for the workers registered
//! through it. Without one they live in memory only and a restart loses
//! them: those workers must present their credential, or wait for their
//! records to expire, to register again.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ed25519_dalek::SigningKey;

use super::input::InvalidInput;

/// The file in the key directory.
pub const KEYS_FILE: &str = "workers.keys";

/// Why the key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Reading or writing the file failed; the message names the file.
    #[error("worker key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
}

/// The credential that proves ownership of `key`: its seed in hex.
pub fn credential(key: &SigningKey) -> String {
    hex::encode(key.to_bytes())
}

/// The public key of `key`, as records carry it (64 hex digits).
pub fn public_hex(key: &SigningKey) -> String {
    hex::encode(key.verifying_key().to_bytes())
}

/// Reads a credential (64 hex digits).
pub fn parse_credential(text: &str) -> Result<SigningKey, InvalidInput> {
    let mut seed = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut seed)
        .map_err(|_| InvalidInput("the credential must be 64 hex digits, as register returned it".to_owned()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Worker keys by worker id, optionally kept in a file.
#[derive(Debug, Default)]
pub struct KeyStore {
    keys: Mutex<HashMap<String, SigningKey>>,
    file: Option<PathBuf>,
}

impl KeyStore {
    /// Keys kept in `dir/workers.keys` (loaded now), or in memory only.
    /// Unreadable lines are skipped with a warning.
    pub fn open(dir: Option<&Path>) -> Result<KeyStore, KeyFileError> {
        let Some(dir) = dir else { return Ok(KeyStore::default()) };
        let file = dir.join(KEYS_FILE);
        let io = |source| KeyFileError::Io { path: file.display().to_string(), source };
        std::fs::create_dir_all(dir).map_err(io)?;
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io(e)),
        };
        let mut keys = HashMap::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match line.split_once(' ').map(|(id, seed)| (id, parse_credential(seed))) {
                Some((id, Ok(key))) => {
                    keys.insert(id.to_owned(), key);
                }
                _ => tracing::warn!(file = %file.display(), "unreadable worker key line skipped"),
            }
        }
        Ok(KeyStore { keys: Mutex::new(keys), file: Some(file) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, SigningKey>> {
        // Every update is a single insert or remove; a panic cannot tear one.
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The key held for `id`.
    pub fn get(&self, id: &str) -> Option<SigningKey> {
        self.lock().get(id).cloned()
    }

    /// Keeps `key` for `id` (written to the file when it changed).
    pub fn set(&self, id: &str, key: &SigningKey) {
        let mut keys = self.lock();
        if keys.get(id).is_some_and(|k| k.to_bytes() == key.to_bytes()) {
            return;
        }
        keys.insert(id.to_owned(), key.clone());
        self.save(&keys);
    }

    /// Forgets the key of `id`.
    pub fn remove(&self, id: &str) {
        let mut keys = self.lock();
        if keys.remove(id).is_some() {
            self.save(&keys);
        }
    }

    /// Rewrites the file (under the lock, so writes never interleave); a
    /// failure is logged and the keys stay in memory.
    fn save(&self, keys: &HashMap<String, SigningKey>) {
        let Some(file) = &self.file else { return };
        let mut lines: Vec<String> = keys.iter().map(|(id, k)| format!("{id} {}\n", credential(k))).collect();
        lines.sort();
        if let Err(e) = write_private(file, lines.concat().as_bytes()) {
            tracing::warn!(file = %file.display(), error = %e, "worker keys not saved");
        }
    }
}

/// Writes `data` to `file` atomically, readable by the owner only.
fn write_private(file: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = file.with_extension("keys.tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_survive_a_reopen_and_the_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open(Some(dir.path())).unwrap();
        let key = SigningKey::from_bytes(&[9; 32]);
        store.set("w1", &key);
        store.set("w2", &SigningKey::from_bytes(&[8; 32]));
        store.remove("w2");
        let again = KeyStore::open(Some(dir.path())).unwrap();
        assert_eq!(again.get("w1").map(|k| k.to_bytes()), Some([9; 32]));
        assert!(again.get("w2").is_none());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEYS_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn credentials_roundtrip_and_bad_ones_are_refused() {
        let key = SigningKey::from_bytes(&[3; 32]);
        assert_eq!(parse_credential(&credential(&key)).unwrap().to_bytes(), key.to_bytes());
        assert!(parse_credential("abc").is_err());
        assert!(parse_credential(&"zz".repeat(32)).is_err());
        let store = KeyStore::open(None).unwrap();
        store.set("w", &key);
        assert_eq!(public_hex(&store.get("w").unwrap()), public_hex(&key));
    }
}
