//! Measurements shared by the `loadtest` and `versus` binaries: latency
//! percentiles, this process's resident memory (`VmRSS` in
//! `/proc/self/status`) and its CPU time (`getrusage(RUSAGE_SELF)`: user plus
//! system time of every thread, at microsecond resolution, where
//! `/proc/self/stat` only counts 10 ms ticks). `pybench.py` reads the same two
//! sources, so both sides of `versus` are measured alike.
//!
//! Percentiles are nearest-rank over every sample given (no interpolation),
//! so a p99 of 100 samples is the 99th smallest. Readings are `None` where
//! the OS does not provide them; callers print "n/a" then.

use std::time::Duration;

/// Percentiles of a set of latencies.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Summary {
    /// How many samples.
    pub count: usize,
    /// Median.
    pub p50: Duration,
    /// 95th percentile.
    pub p95: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Largest sample.
    pub max: Duration,
}

/// Nearest-rank percentiles of `samples` (sorted in place); all zero when empty.
pub fn summarize(samples: &mut [Duration]) -> Summary {
    if samples.is_empty() {
        return Summary::default();
    }
    samples.sort_unstable();
    let rank = |p: f64| {
        let r = (p / 100.0 * samples.len() as f64).ceil() as usize;
        samples[r.clamp(1, samples.len()) - 1]
    };
    Summary { count: samples.len(), p50: rank(50.0), p95: rank(95.0), p99: rank(99.0), max: samples[samples.len() - 1] }
}

/// Milliseconds with one decimal, for tables.
pub fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// A reading of this process's memory and CPU time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcSample {
    /// Resident set size in KiB (`VmRSS`).
    pub rss_kib: Option<u64>,
    /// User plus system CPU time of all threads.
    pub cpu: Option<Duration>,
}

impl ProcSample {
    /// Reads `/proc/self/status` and `/proc/self/stat` now.
    pub fn now() -> ProcSample {
        let rss_kib = std::fs::read_to_string("/proc/self/status").ok().and_then(|s| parse_vm_rss(&s));
        let cpu = process_cpu();
        ProcSample { rss_kib, cpu }
    }

    /// CPU time spent since `earlier`.
    pub fn cpu_since(&self, earlier: &ProcSample) -> Option<Duration> {
        Some(self.cpu?.saturating_sub(earlier.cpu?))
    }
}

/// The `VmRSS:` line of `/proc/<pid>/status`, in KiB.
fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User plus system CPU time of the whole process, all threads included
/// (also those that have exited).
fn process_cpu() -> Option<Duration> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes one `rusage` through the pointer, which points
    // at properly sized and aligned memory that lives across the call.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: the call succeeded, so it initialised the struct (and it was
    // zeroed before, which is a valid `rusage` anyway).
    let usage = unsafe { usage.assume_init() };
    let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    Some(tv(usage.ru_utime) + tv(usage.ru_stime))
}

/// `n/a` for a missing reading, else the value formatted by `f`.
pub fn or_na<T>(v: Option<T>, f: impl FnOnce(T) -> String) -> String {
    v.map(f).unwrap_or_else(|| "n/a".into())
}

/// Datagrams the kernel dropped because a UDP socket's receive buffer was
/// full (`RcvbufErrors` in `/proc/net/snmp`). The counter is for the whole
/// network namespace, so other programs' drops count too.
pub fn udp_rcvbuf_errors() -> Option<u64> {
    let snmp = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = (udp.next()?, udp.next()?);
    let at = names.split_whitespace().position(|n| n == "RcvbufErrors")?;
    values.split_whitespace().nth(at)?.parse().ok()
}

/// "CPU model x N cores, M GiB RAM; load average" from `/proc`: the load
/// says how much else ran on the machine, which every figure depends on.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo.lines().find_map(|l| l.strip_prefix("model name")).and_then(|l| l.split(':').nth(1));
    let cores = cpuinfo.lines().filter(|l| l.starts_with("processor")).count();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib: Option<u64> = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok());
    let load = std::fs::read_to_string("/proc/loadavg").ok();
    let load1 = load.as_deref().and_then(|l| l.split_whitespace().next().map(str::to_owned));
    format!(
        "{} x {} cores, {} GiB RAM; 1-minute load average {} when the report was printed",
        model.map(str::trim).unwrap_or("unknown CPU"),
        cores,
        or_na(kib, |k| format!("{:.0}", k as f64 / 1024.0 / 1024.0)),
        load1.unwrap_or_else(|| "n/a".into())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let s = summarize(&mut v);
        assert_eq!((s.count, s.p50, s.p95, s.p99, s.max), (100, ms_(50), ms_(95), ms_(99), ms_(100)));
        assert_eq!(summarize(&mut [ms_(7)]).p99, ms_(7));
        assert_eq!(summarize(&mut []).count, 0);
    }

    fn ms_(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn proc_readings_parse_and_see_memory_and_cpu() {
        assert_eq!(parse_vm_rss("Name:\tx\nVmRSS:\t  123456 kB\nVmSwap: 0 kB\n"), Some(123456));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
        let before = ProcSample::now();
        assert!(before.rss_kib.is_some_and(|r| r > 0));
        assert!(udp_rcvbuf_errors().is_some(), "/proc/net/snmp has a Udp RcvbufErrors column on Linux");
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        let spent = ProcSample::now().cpu_since(&before);
        assert!(spent.is_some_and(|d| d > Duration::ZERO), "busy loop ({x}) used no CPU: {spent:?}");
    }
}
