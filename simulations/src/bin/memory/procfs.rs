//! What `/proc` says about one process: resident memory (`VmRSS`, `Pss`,
//! private pages), threads, CPU ticks, and where its resident pages are
//! (the binary's own mappings, shared libraries, the heap, other anonymous
//! mappings such as thread stacks and malloc arenas).
//!
//! Readings are `None` where the file or field is missing (a process that
//! has exited, a kernel without `smaps_rollup`); callers print "n/a".

/// One reading of a process's memory, in KiB, and its thread count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    /// Resident set size (`VmRSS`): every page mapped and present, shared
    /// pages counted in full. What `top` and `ps` show.
    pub rss: u64,
    /// Proportional set size: shared pages divided among the processes
    /// sharing them (the binary's text is shared by every `dhtd` of a box).
    pub pss: u64,
    /// Pages only this process maps (`Private_Clean + Private_Dirty`): what
    /// stopping it would give back.
    pub private: u64,
    /// Anonymous resident pages (`Anonymous`): heap, stacks, arenas.
    pub anon: u64,
    /// Threads (`Threads` in `status`).
    pub threads: u64,
}

/// The value in KiB of the `name:` line of a `/proc` key-value file.
pub fn field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.strip_prefix(name).is_some_and(|r| r.starts_with(':')))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Reads `status` and `smaps_rollup` of `pid`.
pub fn memory(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    Some(Memory {
        rss: field(&status, "VmRSS")?,
        threads: field(&status, "Threads")?,
        pss: field(&rollup, "Pss")?,
        private: field(&rollup, "Private_Clean")? + field(&rollup, "Private_Dirty")?,
        anon: field(&rollup, "Anonymous")?,
    })
}

/// User plus system CPU time of `pid` in clock ticks (fields 14 and 15 of
/// `stat`, counted after the command name, which may hold spaces).
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    cpu_ticks_of(&stat)
}

fn cpu_ticks_of(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state), so utime (14) is at index 11.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second (`_SC_CLK_TCK`, 100 on Linux).
pub fn ticks_per_second() -> u64 {
    // SAFETY: sysconf reads a constant of the running system; no pointers.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(t).ok().filter(|t| *t > 0).unwrap_or(100)
}

/// Where a process's resident pages are, in KiB of RSS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Breakdown {
    /// Mappings of the executable itself: text, read-only data, data.
    pub binary: u64,
    /// Mappings of other files: libc, libm, the dynamic loader.
    pub libraries: u64,
    /// `[heap]`: glibc's main arena (the brk heap).
    pub heap: u64,
    /// `[stack]`: the main thread's stack.
    pub main_stack: u64,
    /// Other anonymous mappings: thread stacks, glibc's per-thread arenas,
    /// large (mmap'd) allocations, the binary's bss.
    pub anon_other: u64,
    /// glibc per-thread malloc arenas, part of `anon_other`: (count,
    /// resident KiB). Each is a 64 MiB reservation whose used front is
    /// read-write and the rest `---p`.
    pub arenas: (u64, u64),
    /// Thread stacks and Rust's per-thread signal stacks (for the stack
    /// overflow message), part of `anon_other`: (count, resident KiB). Each
    /// is a read-write mapping right above a 4 KiB `---p` guard page.
    pub stacks: (u64, u64),
}

/// One line of `smaps` and its `Rss`.
#[derive(Clone, Debug, Default)]
struct Mapping {
    start: u64,
    end: u64,
    perms: String,
    path: String,
    rss: u64,
}

/// Reads `/proc/<pid>/smaps` and sorts each mapping's `Rss` by kind.
pub fn breakdown(pid: u32, exe: &str) -> Option<Breakdown> {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).ok()?;
    Some(breakdown_of(&smaps, exe))
}

fn breakdown_of(smaps: &str, exe: &str) -> Breakdown {
    let mut maps: Vec<Mapping> = Vec::new();
    for line in smaps.lines() {
        if let Some(m) = mapping_header(line) {
            maps.push(m);
        } else if let (Some(m), Some(rss)) = (maps.last_mut(), field(line, "Rss")) {
            m.rss = rss;
        }
    }
    let mut b = Breakdown::default();
    for (i, m) in maps.iter().enumerate() {
        match m.path.as_str() {
            p if !exe.is_empty() && p == exe => b.binary += m.rss,
            "[heap]" => b.heap += m.rss,
            "[stack]" => b.main_stack += m.rss,
            p if !p.is_empty() => b.libraries += m.rss,
            _ => {
                b.anon_other += m.rss;
                let (before, after) = (i.checked_sub(1).and_then(|j| maps.get(j)), maps.get(i + 1));
                if is_arena(m, after) {
                    b.arenas = (b.arenas.0 + 1, b.arenas.1 + m.rss);
                } else if is_stack(m, before) {
                    b.stacks = (b.stacks.0 + 1, b.stacks.1 + m.rss);
                }
            }
        }
    }
    b
}

fn is_reserve(m: &Mapping) -> bool {
    m.path.is_empty() && m.perms.starts_with("---")
}

/// A read-write front followed by its `---p` rest, 64 MiB in all.
fn is_arena(m: &Mapping, after: Option<&Mapping>) -> bool {
    const ARENA: u64 = 64 << 20;
    m.perms.starts_with("rw") && after.is_some_and(|a| is_reserve(a) && a.start == m.end && a.end - m.start == ARENA)
}

/// A read-write mapping right above a one-page `---p` guard.
fn is_stack(m: &Mapping, before: Option<&Mapping>) -> bool {
    m.perms.starts_with("rw") && before.is_some_and(|g| is_reserve(g) && g.end == m.start && g.end - g.start == 4096)
}

/// `start-end perms offset dev inode [path]`.
fn mapping_header(line: &str) -> Option<Mapping> {
    let mut parts = line.split_whitespace();
    let (start, end) = parts.next()?.split_once('-')?;
    let (start, end) = (u64::from_str_radix(start, 16).ok()?, u64::from_str_radix(end, 16).ok()?);
    let perms = parts.next()?.to_owned();
    let _offset = parts.next()?;
    parts.next()?.contains(':').then_some(())?;
    let _inode = parts.next()?;
    let path = parts.collect::<Vec<&str>>().join(" ");
    Some(Mapping { start, end, perms, path, rss: 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_by_exact_name() {
        let status = "Name:\tdhtd\nVmRSS:\t    7012 kB\nThreads:\t3\nRssAnon:\t100 kB\n";
        assert_eq!(field(status, "VmRSS"), Some(7012));
        assert_eq!(field(status, "Threads"), Some(3));
        assert_eq!(field(status, "Rss"), None, "RssAnon is not Rss");
    }

    #[test]
    fn cpu_ticks_survive_spaces_in_the_command_name() {
        let stat = "42 (dh td) S 1 42 42 0 -1 4194560 100 0 0 0 17 5 0 0 20 0 3 0 1 1 1";
        assert_eq!(cpu_ticks_of(stat), Some(22));
    }

    #[test]
    fn smaps_rss_is_sorted_by_mapping_kind() {
        let smaps = "\
55d0-55e0 r-xp 00000000 fd:01 123 /bin/dhtd
Rss:                 40 kB
7f00-7f10 r-xp 00000000 fd:01 9 /usr/lib/libc.so.6
Rss:                 30 kB
5600-5700 rw-p 00000000 00:00 0 [heap]
Rss:                 20 kB
7a000000-7a021000 rw-p 00000000 00:00 0
Rss:                 100 kB
7a021000-7e000000 ---p 00000000 00:00 0
Rss:                 0 kB
7e000000-7e001000 ---p 00000000 00:00 0
Rss:                 0 kB
7e001000-7e201000 rw-p 00000000 00:00 0
Rss:                 8 kB
7f000000-7f001000 rw-p 00000000 00:00 0
Rss:                 4 kB
";
        let b = breakdown_of(smaps, "/bin/dhtd");
        assert_eq!((b.binary, b.libraries, b.heap, b.anon_other), (40, 30, 20, 112));
        assert_eq!(b.arenas, (1, 100));
        assert_eq!(b.stacks, (1, 8));
    }
}
