//! A `dhtd` child process for tests: its stdout read line by line, stopped
//! with SIGTERM within a bound, killed if the test fails first.
// Tests time real processes by the wall clock; the ban is for the core.
#![allow(clippy::disallowed_methods)]
// Each test file uses the part it needs.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

pub struct Dhtd {
    child: Child,
    lines: Receiver<String>,
}

impl Dhtd {
    /// Starts `dhtd args` with `env` added.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Dhtd {
        Dhtd::start_logging(args, env, None)
    }

    /// Starts `dhtd args` with `env` added, its log (stderr) going to `log`.
    pub fn start_logging(args: &[&str], env: &[(&str, &str)], log: Option<std::fs::File>) -> Dhtd {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dhtd"));
        let err = log.map_or_else(Stdio::null, Stdio::from);
        cmd.args(args).envs(env.iter().copied()).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(err);
        let mut child = cmd.spawn().expect("dhtd starts");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Dhtd { child, lines }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next stdout line, within `limit`.
    pub fn line(&self, limit: Duration) -> Option<String> {
        self.lines.recv_timeout(limit).ok()
    }

    /// `dhtd demo`'s page URL, from its first line.
    pub fn demo_url(&self) -> String {
        let first = self.line(Duration::from_secs(60)).expect("the demo prints a first line");
        let url = first.split_whitespace().find(|w| w.starts_with("http://")).expect("a URL on the first line");
        url.trim_end_matches('/').to_owned()
    }

    /// SIGTERM, then the time the process took to exit successfully (`None`
    /// if it did not within `limit` or failed).
    pub fn terminate(&mut self, limit: Duration) -> Option<Duration> {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success().then(|| start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Dhtd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
