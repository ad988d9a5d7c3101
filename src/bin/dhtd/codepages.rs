//! Start-up code out of the resident set.
//!
//! A node's RSS is mostly code: the binary's and libc's file pages (4.4 and
//! 1.9 MiB of a 6.9 MiB no-HTTP node in `memory`), because the kernel maps
//! 64 KiB around each executed page (fault-around) and everything start-up
//! ran (argument parsing, configuration, runtime and socket set-up, the
//! first lookups) stays mapped. Once the node has started, dropping the
//! executable mappings' pages (`MADV_DONTNEED`) leaves only what it runs
//! from then on to fault back in. The pages stay in the page cache, shared
//! with every other process: a page touched again costs a minor fault, no
//! disk read.
//!
//! Only private, non-writable file mappings none of whose pages was ever
//! written are dropped (`Anonymous: 0 kB` in `/proc/self/smaps`): code and
//! read-only data, whose pages come back identical from the file. RELRO
//! pages, relocated by the loader before being made read-only, are
//! anonymous copies and stay. `DHT_KEEP_STARTUP_CODE=1` skips all this (for
//! comparisons).

use std::time::Duration;

/// How long after start the start-up code is dropped: the socket is bound,
/// the runtime and HTTP server are up and the first bootstrap round is
/// done or under way (a later retry only faults its pages back).
pub const AFTER: Duration = Duration::from_secs(5);

/// A mapping header of `/proc/self/smaps`: its range if it is private,
/// not writable and backed by a file.
fn candidate(line: &str) -> Option<(usize, usize)> {
    let mut fields = line.split_whitespace();
    let (start, end) = fields.next()?.split_once('-')?;
    let perms = fields.next()?.as_bytes();
    let path = fields.nth(3)?;
    let private_read_only = perms.len() == 4 && perms[1] == b'-' && perms[3] == b'p';
    if !private_read_only || !path.starts_with('/') {
        return None;
    }
    let (start, end) = (usize::from_str_radix(start, 16).ok()?, usize::from_str_radix(end, 16).ok()?);
    (end > start).then_some((start, end - start))
}

/// The mappings of `smaps` to drop: candidates with no anonymous page.
fn droppable(smaps: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut current = None;
    for line in smaps.lines() {
        if let Some(rest) = line.strip_prefix("Anonymous:") {
            let untouched = rest.split_whitespace().next() == Some("0");
            out.extend(current.take().filter(|_| untouched));
        } else if line.split_whitespace().next().is_some_and(|f| f.contains('-')) {
            // A header (field lines start with a name and a colon).
            current = candidate(line);
        }
    }
    out
}

/// Drops the resident pages of every file mapping that is the file's
/// bytes unchanged; returns how many mappings were dropped. Does nothing if `DHT_KEEP_STARTUP_CODE` is set.
#[cfg(target_os = "linux")]
pub fn drop_startup_code() -> usize {
    if std::env::var_os("DHT_KEEP_STARTUP_CODE").is_some_and(|v| v != "0") {
        return 0;
    }
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else { return 0 };
    let mut dropped = 0;
    for (start, len) in droppable(&smaps) {
        // SAFETY: the range is a whole mapping of this process, read from
        // /proc/self/smaps, private, not writable and with no page written
        // (none anonymous), so its pages equal the file's; MADV_DONTNEED
        // only unmaps them and the next access faults the same bytes back
        // in. No Rust object is written there.
        let r = unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED) };
        dropped += usize::from(r == 0);
    }
    dropped
}

/// Elsewhere fault-around and `/proc/self/maps` differ; nothing to do.
#[cfg(not(target_os = "linux"))]
pub fn drop_startup_code() -> usize {
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unwritten_private_read_only_file_mappings_are_dropped() {
        let smaps = "\
55d0c0800000-55d0c0a00000 r--p 00000000 08:01 1234 /usr/local/bin/dhtd
Rss:                 684 kB
Anonymous:             0 kB
55d0c0a00000-55d0c0e00000 r-xp 00100000 08:01 1234 /usr/local/bin/dhtd
Size:               4096 kB
Anonymous:             0 kB
55d0c0e00000-55d0c0f00000 r--p 00500000 08:01 1234 /usr/local/bin/dhtd
Anonymous:           144 kB
55d0c0f00000-55d0c0f10000 rw-p 00600000 08:01 1234 /usr/local/bin/dhtd
Anonymous:             0 kB
7f0000000000-7f0000001000 r-xs 00000000 08:01 99 /dev/shm/x
Anonymous:             0 kB
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0 [vdso]
Anonymous:             0 kB
7f0000100000-7f0000121000 r--p 00000000 00:00 0
Anonymous:             0 kB
garbage
Anonymous:             0 kB
";
        assert_eq!(droppable(smaps), vec![(0x55d0c0800000, 0x200000), (0x55d0c0a00000, 0x400000)]);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn dropping_code_pages_leaves_the_process_running() {
        assert!(drop_startup_code() > 0, "the test binary itself is an executable file mapping");
        // Code runs again from the re-faulted pages.
        assert_eq!(format!("{}", 6 * 7), "42");
    }
}
