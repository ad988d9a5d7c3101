//! Reading every daemon over the idle window, and the tables printed from
//! the readings: one row per process class (no HTTP, HTTP), then where a
//! median process's resident pages are.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::procfs::{self, Breakdown, Memory};
use crate::procs::Fleet;
use crate::{Args, Stored};

/// One daemon's reading: memory at the end of the idle window, CPU over it.
pub struct Reading {
    /// Memory and threads.
    pub memory: Memory,
    /// CPU use over the idle window, in percent of one core.
    pub idle_cpu: f64,
    /// Whether the daemon serves HTTP.
    pub http: bool,
    /// Its process id.
    pub pid: u32,
}

/// CPU ticks of every daemon, `idle` of sleep, then ticks and memory again.
pub fn measure(fleet: &Fleet, idle: Duration) -> Result<Vec<Reading>, String> {
    let pids: Vec<u32> = fleet.daemons.iter().map(|d| d.pid()).collect();
    let before: Vec<Option<u64>> = pids.iter().map(|p| procfs::cpu_ticks(*p)).collect();
    std::thread::sleep(idle);
    let hz = procfs::ticks_per_second() as f64;
    let mut out = Vec::new();
    for ((d, pid), t0) in fleet.daemons.iter().zip(&pids).zip(before) {
        let gone = || format!("dhtd pid {pid} is gone; log {}", d.log.display());
        let memory = procfs::memory(*pid).ok_or_else(gone)?;
        let t1 = procfs::cpu_ticks(*pid).ok_or_else(gone)?;
        let spent = t1.saturating_sub(t0.unwrap_or(t1)) as f64 / hz;
        out.push(Reading { memory, idle_cpu: 100.0 * spent / idle.as_secs_f64(), http: d.http, pid: *pid });
    }
    Ok(out)
}

/// `records_held` from the HTTP daemon's `/health`, if it answers.
pub fn records_held(http: SocketAddr) -> Option<u64> {
    let mut s = TcpStream::connect_timeout(&http, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET /health HTTP/1.0\r\nHost: {http}\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let body = text.split_once("\r\n\r\n")?.1;
    serde_json::from_str::<serde_json::Value>(body).ok()?.get("records_held")?.as_u64()
}

/// Prints the run's header, the per-class table and the breakdowns.
pub fn print(args: &Args, readings: &[Reading], stored: &Stored, held: Option<u64>) {
    let exe = std::fs::canonicalize(&args.dhtd).unwrap_or_else(|_| args.dhtd.clone());
    let size = std::fs::metadata(&exe).map(|m| m.len() / 1024).unwrap_or(0);
    println!("machine: {}", crate::measure::machine());
    println!("binary: {} ({size} KiB on disk); commit {}", exe.display(), commit());
    println!(
        "network: {} dhtd --no-http + 1 dhtd with HTTP, {}/{} records stored ({} replicas acknowledged); \
         the HTTP node holds {}; {} s settle, idle CPU over {} s",
        args.nodes,
        stored.ok,
        args.records,
        stored.replicas,
        held.map_or_else(|| "n/a".to_owned(), |h| h.to_string()),
        args.settle,
        args.idle
    );
    println!();
    println!("| process | count | RSS KiB median (min-max) | PSS KiB median | private KiB median | anon KiB median | threads | idle CPU % median (max) |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for (name, http) in [("dhtd --no-http", false), ("dhtd with HTTP", true)] {
        let class: Vec<&Reading> = readings.iter().filter(|r| r.http == http).collect();
        println!("{}", row(name, &class));
    }
    let nodes: Vec<&Reading> = readings.iter().filter(|r| !r.http).collect();
    let pss: u64 = nodes.iter().map(|r| r.memory.pss).sum();
    let rss: u64 = nodes.iter().map(|r| r.memory.rss).sum();
    println!();
    println!("{} no-HTTP nodes together: {pss} KiB PSS (what the box gives them), {rss} KiB summed RSS", nodes.len());
    let exe_name = exe.to_string_lossy().into_owned();
    for (name, http) in [("median dhtd --no-http", false), ("dhtd with HTTP", true)] {
        let class: Vec<&Reading> = readings.iter().filter(|r| r.http == http).collect();
        if let Some(r) = median_by_rss(&class) {
            if let Some(b) = procfs::breakdown(r.pid, &exe_name) {
                print_breakdown(name, &b);
            }
        }
    }
}

fn row(name: &str, class: &[&Reading]) -> String {
    let pick = |f: fn(&Reading) -> u64| {
        let mut v: Vec<u64> = class.iter().map(|r| f(r)).collect();
        v.sort_unstable();
        v
    };
    let med = |v: &[u64]| v.get(v.len() / 2).copied().unwrap_or(0);
    let rss = pick(|r| r.memory.rss);
    let mut cpu: Vec<f64> = class.iter().map(|r| r.idle_cpu).collect();
    cpu.sort_by(f64::total_cmp);
    format!(
        "| {name} | {} | {} ({}-{}) | {} | {} | {} | {} | {:.2} ({:.2}) |",
        class.len(),
        med(&rss),
        rss.first().copied().unwrap_or(0),
        rss.last().copied().unwrap_or(0),
        med(&pick(|r| r.memory.pss)),
        med(&pick(|r| r.memory.private)),
        med(&pick(|r| r.memory.anon)),
        med(&pick(|r| r.memory.threads)),
        cpu.get(cpu.len() / 2).copied().unwrap_or(0.0),
        cpu.last().copied().unwrap_or(0.0),
    )
}

fn median_by_rss<'a>(class: &[&'a Reading]) -> Option<&'a Reading> {
    let mut v = class.to_vec();
    v.sort_by_key(|r| r.memory.rss);
    v.get(v.len() / 2).copied()
}

fn print_breakdown(name: &str, b: &Breakdown) {
    println!();
    println!("where the resident pages of the {name} are (KiB of RSS, /proc/PID/smaps):");
    println!("  binary (text, rodata, data)      {}", b.binary);
    println!("  shared libraries, loader          {}", b.libraries);
    println!("  [heap] (glibc main arena)         {}", b.heap);
    println!("  [stack] (main thread)             {}", b.main_stack);
    println!("  other anonymous                   {}", b.anon_other);
    println!("    of which malloc thread arenas   {} in {} arena(s)", b.arenas.1, b.arenas.0);
    println!("    of which thread/signal stacks   {} in {} stack(s)", b.stacks.1, b.stacks.0);
}

/// The commit being measured (`git rev-parse --short HEAD`, `+dirty` with
/// uncommitted changes), or "unknown".
fn commit() -> String {
    let git = |args: &[&str]| std::process::Command::new("git").args(args).output().ok();
    let Some(head) = git(&["rev-parse", "--short", "HEAD"]).filter(|o| o.status.success()) else {
        return "unknown".to_owned();
    };
    let dirty = git(&["diff", "--quiet", "HEAD"]).is_some_and(|o| !o.status.success());
    format!("{}{}", String::from_utf8_lossy(&head.stdout).trim(), if dirty { "+dirty" } else { "" })
}
