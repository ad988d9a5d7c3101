//! The namespace lab: hosts with their own addresses on a virtual switch,
//! `dhtd` daemons on them, and partitions of the switch.
//!
//! Layout, all named with the prefix `kmn<pid>x<lab>` so runs and the labs
//! of one run never collide:
//! a switch namespace `<prefix>sw` holding two bridges (`<prefix>b0`, the
//! LAN, and `<prefix>b1`, where partitioned hosts are moved), and one
//! namespace per host with a veth pair whose far end is a port of a bridge.
//! Host i has 10.201.0.(i+1)/24 and a hosts file naming every host, at
//! `/etc/netns/<ns>/hosts`, which `ip netns exec` mounts over `/etc/hosts`.
//! Nothing is added to the caller's own namespace, and every address used
//! exists only inside the lab. [`Drop`] kills the daemons, deletes the
//! namespaces (which deletes their links) and the hosts files; namespaces
//! left by a run that was killed outright are removed by the next run.

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

use super::client::{invoke, Reply};

/// The hosts' names, which are also their hostnames in the lab. The first
/// four sit on the LAN; the last two exist only in a lab built with
/// [`Lab::build_with_edges`].
pub const HOSTS: [&str; 6] = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"];
/// On a private network behind a router doing masquerading NAT; the router
/// is 10.201.0.5 on the LAN.
pub const ECHO: usize = 4;
/// On the LAN at 10.201.0.6, with a firewall that drops every UDP datagram
/// that is not part of a flow it started; HTTP (TCP 8080) is open.
pub const FOXTROT: usize = 5;
/// The port every daemon serves HTTP on.
pub const HTTP_PORT: u16 = 8080;

/// The UDP port every daemon listens on.
pub const PORT: u16 = 8468;

const NAME_PREFIX: &str = "kmn";

/// Why the lab could not be built.
#[derive(Debug)]
pub enum Setup {
    /// This environment cannot create namespaces; the test is skipped.
    Skip(String),
    /// Namespaces work but a later step failed: a real failure.
    Fail(String),
}

/// A running lab; torn down on drop.
pub struct Lab {
    prefix: String,
    namespaces: Vec<String>,
    hosts_dirs: Vec<PathBuf>,
    daemons: Mutex<Vec<(String, Child)>>,
    logs: tempfile::TempDir,
}

/// Runs `ip` with `args`; the error is its stderr.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("cannot run `ip` ({e}); install iproute2"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("`ip {}`: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Foxtrot's firewall: UDP only as part of a flow it started (replies to
/// its own requests); everything else, TCP included, passes.
const UDP_FIREWALL: &str = "table inet kmfw {
  chain input {
    type filter hook input priority 0; policy accept;
    ct state established,related accept
    meta l4proto udp drop
  }
}
";

/// No UDP at all, either way; the outgoing datagrams are counted.
/// (Used by `tests/relay_netns.rs` only.)
#[allow(dead_code)]
const NO_UDP_FIREWALL: &str = "table inet kmnoudp {
  chain output {
    type filter hook output priority 0; policy accept;
    meta l4proto udp counter drop
  }
  chain input {
    type filter hook input priority 0; policy accept;
    meta l4proto udp drop
  }
}
";

/// Runs `program args` inside namespace `ns`; the error is its stderr.
fn run_in(ns: &str, program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, program])
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {program} in {ns}: {e}"))?;
    match out.status.success() {
        true => Ok(()),
        false => Err(format!("{program} {} in {ns}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim())),
    }
}

/// Loads the nftables `ruleset` in namespace `ns`.
fn nft(ns: &str, ruleset: &str) -> Result<(), String> {
    let path = std::env::temp_dir().join(format!("{ns}.nft"));
    fs::write(&path, ruleset).map_err(|e| format!("writing {}: {e}", path.display()))?;
    let loaded = run_in(ns, "nft", &["-f", &path.to_string_lossy()]);
    let _ = fs::remove_file(&path);
    loaded.map_err(|e| format!("{e} (nft comes with the nftables package)"))
}

/// Deletes namespaces named by earlier runs whose process no longer exists.
fn remove_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else { return };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(rest) = name.strip_prefix(NAME_PREFIX) else { continue };
        let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if !pid.is_empty() && !PathBuf::from(format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", name]);
            let _ = fs::remove_dir_all(format!("/etc/netns/{name}"));
        }
    }
}

impl Lab {
    /// Builds the switch and the four LAN hosts.
    pub fn build() -> Result<Lab, Setup> {
        Lab::build_hosts(false)
    }

    /// [`Lab::build`] plus echo behind a NAT router and foxtrot behind a
    /// UDP-dropping firewall (needs `nft`, from nftables).
    pub fn build_with_edges() -> Result<Lab, Setup> {
        Lab::build_hosts(true)
    }

    fn build_hosts(edges: bool) -> Result<Lab, Setup> {
        remove_stale();
        // The tests of one process run side by side: each lab its own names
        // (before this, the second lab found the first's switch namespace and
        // skipped as if namespaces could not be made).
        static LABS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = LABS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let prefix = format!("{NAME_PREFIX}{}x{n}", std::process::id());
        let logs = tempfile::tempdir().map_err(|e| Setup::Fail(format!("no temp dir: {e}")))?;
        let mut lab = Lab { prefix, namespaces: Vec::new(), hosts_dirs: Vec::new(), daemons: Mutex::default(), logs };
        let sw = format!("{}sw", lab.prefix);
        ip(&["netns", "add", &sw]).map_err(Setup::Skip)?;
        lab.namespaces.push(sw);
        lab.wire(if edges { 6 } else { 4 }).map_err(Setup::Fail)?;
        Ok(lab)
    }

    fn ns(&self, host: usize) -> String {
        format!("{}{}", self.prefix, &HOSTS[host][..1])
    }

    fn port(&self, host: usize) -> String {
        format!("{}p", self.ns(host))
    }

    fn bridge(&self, n: usize) -> String {
        format!("{}b{n}", self.prefix)
    }

    fn wire(&mut self, hosts: usize) -> Result<(), String> {
        let sw = self.namespaces[0].clone();
        for b in [self.bridge(0), self.bridge(1)] {
            ip(&["-n", &sw, "link", "add", &b, "type", "bridge"])?;
            ip(&["-n", &sw, "link", "set", &b, "up"])?;
        }
        let hosts_file: String = std::iter::once("127.0.0.1 localhost\n".to_string())
            .chain(HOSTS.iter().enumerate().map(|(i, h)| format!("10.201.0.{} {h}\n", i + 1)))
            .collect();
        for i in 0..hosts {
            let ns = self.ns(i);
            ip(&["netns", "add", &ns])?;
            self.namespaces.push(ns.clone());
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            if i == ECHO {
                self.wire_nat(&ns)?;
            } else {
                self.plug(&ns, &self.port(i), &format!("{}e", ns), &format!("10.201.0.{}/24", i + 1))?;
            }
            if i == FOXTROT {
                nft(&ns, UDP_FIREWALL)?;
            }
            let dir = PathBuf::from(format!("/etc/netns/{ns}"));
            fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
            self.hosts_dirs.push(dir.clone());
            fs::write(dir.join("hosts"), &hosts_file).map_err(|e| format!("writing {}/hosts: {e}", dir.display()))?;
        }
        Ok(())
    }

    /// Connects namespace `ns` to the LAN: its end `dev` with `addr`, the
    /// switch's end `port` on the LAN bridge.
    fn plug(&self, ns: &str, port: &str, dev: &str, addr: &str) -> Result<(), String> {
        let sw = &self.namespaces[0];
        ip(&["link", "add", dev, "netns", ns, "type", "veth", "peer", "name", port, "netns", sw])?;
        ip(&["-n", sw, "link", "set", port, "master", &self.bridge(0), "up"])?;
        ip(&["-n", ns, "addr", "add", addr, "dev", dev])?;
        ip(&["-n", ns, "link", "set", dev, "up"])
    }

    /// Echo's side: a router namespace on the LAN at 10.201.0.5 that
    /// masquerades the private network 192.168.77.0/24, where echo
    /// (`ns`) is 192.168.77.2 with the router as its default route.
    fn wire_nat(&mut self, ns: &str) -> Result<(), String> {
        let router = format!("{}r", self.prefix);
        ip(&["netns", "add", &router])?;
        self.namespaces.push(router.clone());
        let (lan, inner) = (format!("{router}l"), format!("{router}i"));
        self.plug(&router, &format!("{router}p"), &lan, "10.201.0.5/24")?;
        let dev = format!("{ns}e");
        ip(&["link", "add", &dev, "netns", ns, "type", "veth", "peer", "name", &inner, "netns", &router])?;
        ip(&["-n", &router, "addr", "add", "192.168.77.1/24", "dev", &inner])?;
        ip(&["-n", &router, "link", "set", &inner, "up"])?;
        ip(&["-n", ns, "addr", "add", "192.168.77.2/24", "dev", &dev])?;
        ip(&["-n", ns, "link", "set", &dev, "up"])?;
        ip(&["-n", ns, "route", "add", "default", "via", "192.168.77.1"])?;
        run_in(&router, "sysctl", &["-qw", "net.ipv4.ip_forward=1"])?;
        nft(&router, &format!("table ip kmnat {{\n chain post {{\n type nat hook postrouting priority 100;\n oifname \"{lan}\" masquerade\n }}\n}}\n"))
    }

    /// Drops every UDP datagram in and out of `host` and counts the
    /// outgoing ones (`tests/relay_netns.rs`: a host with no UDP at all).
    #[allow(dead_code)]
    pub fn drop_all_udp(&self, host: usize) -> Result<(), String> {
        nft(&self.ns(host), NO_UDP_FIREWALL)
    }

    /// UDP datagrams `host` tried to send since [`Lab::drop_all_udp`].
    #[allow(dead_code)]
    pub fn udp_sent(&self, host: usize) -> Option<u64> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns(host), "nft", "list", "chain", "inet", "kmnoudp", "output"])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let after = text.split("packets ").nth(1)?;
        after.split_whitespace().next()?.parse().ok()
    }

    /// Starts `dhtd` on `host`, seeded by the hostnames in `seeds`.
    pub fn start_dhtd(&self, host: usize, seeds: &[&str]) {
        self.start_dhtd_with(host, seeds, &[]);
    }

    /// Runs one client job (see [`invoke`]) inside `host`'s namespace.
    pub fn client(&self, host: usize, op: &str, key: &str, value: &str) -> Reply {
        invoke(&self.ns(host), &format!("{}:{PORT}", HOSTS[host]), op, key, value)
    }

    /// [`Lab::start_dhtd`] with more `dhtd` arguments.
    pub fn start_dhtd_with(&self, host: usize, seeds: &[&str], extra: &[&str]) {
        let log = self.logs.path().join(format!("{}.log", HOSTS[host]));
        let file = fs::File::create(&log).expect("a log file in the temp dir");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns(host), env!("CARGO_BIN_EXE_dhtd")]);
        cmd.args(["--bind", "0.0.0.0", "--port", &PORT.to_string(), "--rpc-timeout", "1"]);
        for s in seeds {
            cmd.args(["--seed", &format!("{s}:{PORT}")]);
        }
        cmd.args(extra);
        let child = cmd
            .env("RUST_LOG", "info,kadmesh::engine::dialback=debug")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("ip netns exec dhtd starts");
        self.daemons.lock().unwrap_or_else(|p| p.into_inner()).push((HOSTS[host].to_string(), child));
    }

    /// Puts `key` = `value` (a string) from a client on `host`, seeded by
    /// that host's daemon.
    pub fn put(&self, host: usize, key: &str, value: &str) -> Reply {
        invoke(&self.ns(host), &format!("{}:{PORT}", HOSTS[host]), "put", key, value)
    }

    /// Gets `key` from a client on `host`.
    pub fn get(&self, host: usize, key: &str) -> Reply {
        invoke(&self.ns(host), &format!("{}:{PORT}", HOSTS[host]), "get", key, "")
    }

    /// Moves `hosts` to the second bridge: they reach each other but not
    /// the rest.
    pub fn partition(&self, hosts: &[usize]) {
        self.move_to(hosts, 1);
    }

    /// Moves `hosts` back to the LAN.
    pub fn heal(&self, hosts: &[usize]) {
        self.move_to(hosts, 0);
    }

    fn move_to(&self, hosts: &[usize], bridge: usize) {
        for &h in hosts {
            ip(&["-n", &self.namespaces[0], "link", "set", &self.port(h), "master", &self.bridge(bridge)])
                .expect("moving a switch port");
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let mut daemons = std::mem::take(&mut *self.daemons.lock().unwrap_or_else(|p| p.into_inner()));
        for (_, child) in daemons.iter_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            for (name, _) in &daemons {
                let log = fs::read_to_string(self.logs.path().join(format!("{name}.log"))).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                eprintln!("--- dhtd on {name}, last lines ---");
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
        if let Some(keep) = std::env::var_os("KADMESH_NETNS_KEEP_LOGS") {
            for (name, _) in &daemons {
                let log = format!("{name}.log");
                let _ = fs::copy(self.logs.path().join(&log), PathBuf::from(&keep).join(log));
            }
        }
        for ns in self.namespaces.iter().rev() {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("netns teardown: {e}");
            }
        }
        for dir in &self.hosts_dirs {
            let _ = fs::remove_dir_all(dir);
        }
        // Only succeeds when empty: /etc/netns may hold other namespaces' files.
        let _ = fs::remove_dir("/etc/netns");
    }
}
