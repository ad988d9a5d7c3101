//! The `dhtd` processes of one run: started with their logs in files, their
//! addresses read back from the logs, stopped (SIGTERM, then SIGKILL) when
//! the [`Fleet`] is dropped, on every path out of the run.
//!
//! Only the children started here are ever signalled, by their own PIDs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One started `dhtd`.
pub struct Daemon {
    /// The child process.
    pub child: Child,
    /// Its stderr (the log), in the run's directory.
    pub log: PathBuf,
    /// Whether it serves HTTP.
    pub http: bool,
}

impl Daemon {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// Every daemon of the run, and the directory holding their logs.
pub struct Fleet {
    /// The daemons, in start order.
    pub daemons: Vec<Daemon>,
    dir: PathBuf,
}

impl Fleet {
    /// An empty fleet whose logs go to a fresh directory under the temp dir.
    pub fn new() -> std::io::Result<Fleet> {
        let dir = std::env::temp_dir().join(format!("kadmesh-memory-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(Fleet { daemons: Vec::new(), dir })
    }

    /// Starts `dhtd` with `args` (plus its address and log settings): UDP on
    /// `ip` port 0, HTTP on `ip` port 0 when `http`, else `--no-http`.
    pub fn start(&mut self, dhtd: &Path, ip: std::net::IpAddr, http: bool, args: &[String]) -> Result<(), String> {
        let n = self.daemons.len();
        let log = self.dir.join(format!("dhtd-{n}.log"));
        let file = std::fs::File::create(&log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let mut cmd = Command::new(dhtd);
        cmd.args(["--bind", &ip.to_string(), "--port", "0", "--log-color", "never"]);
        match http {
            true => cmd.args(["--http-bind", &format!("{ip}:0")]),
            false => cmd.arg("--no-http"),
        };
        // The daemon's defaults, not whatever the caller's shell sets.
        cmd.args(args).env("RUST_LOG", "info").env_remove("DHT_CONFIG");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", dhtd.display()))?;
        self.daemons.push(Daemon { child, log, http });
        Ok(())
    }

    /// The UDP address daemon `i` logged, waiting for it until `deadline`.
    pub fn udp_addr(&mut self, i: usize, deadline: Instant) -> Result<SocketAddr, String> {
        self.logged_addr(i, "node listening", deadline)
    }

    /// The HTTP address daemon `i` logged.
    pub fn http_addr(&mut self, i: usize, deadline: Instant) -> Result<SocketAddr, String> {
        self.logged_addr(i, "HTTP API listening", deadline)
    }

    fn logged_addr(&mut self, i: usize, message: &str, deadline: Instant) -> Result<SocketAddr, String> {
        loop {
            let d = &mut self.daemons[i];
            let text = std::fs::read_to_string(&d.log).unwrap_or_default();
            if let Some(addr) = text.lines().filter(|l| l.contains(message)).find_map(addr_field) {
                return Ok(addr);
            }
            if let Ok(Some(status)) = d.child.try_wait() {
                return Err(format!("dhtd {i} exited ({status}) before logging {message:?}: {}", last_line(&text)));
            }
            if Instant::now() > deadline {
                return Err(format!("dhtd {i} did not log {message:?} in time; log {}", d.log.display()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Log lines of every daemon at WARN or above, at most `max`.
    pub fn warnings(&self, max: usize) -> Vec<String> {
        let mut out = Vec::new();
        for (i, d) in self.daemons.iter().enumerate() {
            let text = std::fs::read_to_string(&d.log).unwrap_or_default();
            let bad = text.lines().filter(|l| l.contains(" WARN ") || l.contains(" ERROR "));
            out.extend(bad.map(|l| format!("dhtd {i}: {l}")));
        }
        out.truncate(max);
        out
    }
}

/// The `addr=IP:PORT` field of a text log line.
fn addr_field(line: &str) -> Option<SocketAddr> {
    line.split_whitespace().find_map(|w| w.strip_prefix("addr=")).and_then(|a| a.parse().ok())
}

fn last_line(text: &str) -> &str {
    text.lines().last().unwrap_or("(empty log)")
}

impl Drop for Fleet {
    /// SIGTERM to each child (the daemon's clean stop), a second to exit,
    /// then SIGKILL to whichever has not; the logs are removed.
    fn drop(&mut self) {
        for d in &self.daemons {
            if let Ok(pid) = libc::pid_t::try_from(d.pid()) {
                // SAFETY: kill takes a pid and a signal number; the pid is our
                // own child's, not yet reaped, so it names no other process.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
        }
        let until = Instant::now() + Duration::from_secs(1);
        for d in &mut self.daemons {
            while matches!(d.child.try_wait(), Ok(None)) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10));
            }
            if matches!(d.child.try_wait(), Ok(None)) {
                let _ = d.child.kill();
            }
            let _ = d.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_address_field_of_a_log_line() {
        let line = "2026-12-04T03:20:00Z  INFO dhtd::run: node listening id=ab12 addr=127.4.5.1:40123";
        assert_eq!(addr_field(line), Some("127.4.5.1:40123".parse().unwrap()));
        assert_eq!(addr_field("node listening"), None);
    }
}
