//! Seeds kept from bootstrap documents ([`crate::seed_order::LearnedSeeds`]),
//! in [`LEARNED_FILE`] beside the state file: one `ip:port` per line, newest
//! first. A text file, so an operator can read or seed it by hand.
//!
//! Read like the state file (no symlinks, regular files only, bounded), and
//! parsed leniently: a line that is not an address is skipped, so a damaged
//! file costs at most the seeds on its bad lines, never the start.

use std::net::SocketAddr;

use super::{file, write_atomic_at, PersistError, StateDir};
use crate::seed_order::{LearnedSeeds, LEARNED_CAPACITY};

/// Name of the learned-seeds file inside the data directory.
pub const LEARNED_FILE: &str = "learned-seeds";
/// Largest learned-seeds file read (32 addresses need under 2 KiB).
const MAX_LEARNED_BYTES: u64 = 64 * 1024;

/// The addresses in a learned-seeds file's text, in order, at most
/// [`LEARNED_CAPACITY`]; blank, `#` and unparsable lines are skipped.
pub fn parse_learned(text: &str) -> LearnedSeeds {
    let addrs: Vec<SocketAddr> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.parse().ok())
        .take(LEARNED_CAPACITY)
        .collect();
    let mut seeds = LearnedSeeds::default();
    seeds.learn(&addrs);
    seeds
}

impl StateDir {
    /// The seeds kept in [`LEARNED_FILE`]; empty when there is none.
    pub fn load_learned(&self) -> Result<LearnedSeeds, PersistError> {
        let path = self.dir.join(LEARNED_FILE);
        let Some(bytes) = file::read_bounded(&path, MAX_LEARNED_BYTES)? else { return Ok(LearnedSeeds::default()) };
        Ok(parse_learned(&String::from_utf8_lossy(&bytes)))
    }

    /// Writes `seeds` to [`LEARNED_FILE`] atomically.
    pub fn save_learned(&self, seeds: &LearnedSeeds) -> Result<(), PersistError> {
        let mut text = String::from("# seeds kept from bootstrap documents, newest first (kadmesh)\n");
        for a in seeds.seeds() {
            text.push_str(&a.to_string());
            text.push('\n');
        }
        write_atomic_at(&self.dir, &self.dir.join(LEARNED_FILE), text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_lines_are_skipped_and_order_kept() {
        let l = parse_learned("# c\n10.0.0.1:8468\nnot an address\n\n[::1]:9\n10.0.0.1:8468\n");
        let want: Vec<SocketAddr> = vec!["10.0.0.1:8468".parse().unwrap(), "[::1]:9".parse().unwrap()];
        assert_eq!(l.seeds(), &want[..]);
    }

    #[test]
    fn saved_seeds_load_back_and_a_symlink_is_refused() {
        let dir = std::env::temp_dir().join(format!("kadmesh-learned-{}", std::process::id()));
        let state = StateDir::open(&dir).unwrap();
        assert!(state.load_learned().unwrap().is_empty(), "no file yet");
        let mut seeds = LearnedSeeds::default();
        seeds.learn(&["10.1.2.3:8468".parse().unwrap(), "10.1.2.4:9000".parse().unwrap()]);
        state.save_learned(&seeds).unwrap();
        assert_eq!(state.load_learned().unwrap(), seeds);
        #[cfg(unix)]
        {
            let path = dir.join(LEARNED_FILE);
            std::fs::remove_file(&path).unwrap();
            std::os::unix::fs::symlink("/etc/hostname", &path).unwrap();
            assert!(matches!(state.load_learned(), Err(PersistError::NotRegular { .. })));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
