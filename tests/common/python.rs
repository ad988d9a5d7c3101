//! Real Python `kademlia` 2.2 peers for interop tests.
//!
//! [`PyNode::spawn`] (or [`PyNode::spawn_many`]) starts `tests/interop/pynode.py`
//! under [`python_bin`]: one Python process hosting one or more stock
//! `kademlia.network.Server`s on `127.0.0.1`, each on its own OS-chosen port.
//! Commands go to the process as text lines on stdin and each gets exactly
//! one JSON line back (the protocol is documented at the top of pynode.py).
//! Every command is bounded twice: by the script (`--timeout`, default
//! [`PY_TIMEOUT`]) and here (that plus [`GRACE`]), so a wedged or dead
//! interpreter fails the test instead of hanging it. The child is killed when
//! the `PyNode` drops, and exits by itself on EOF if the test process dies.
//!
//! ```ignore
//! let py = PyNode::spawn(&[rust.local_addr()]).await;   // bootstrapped from Rust
//! assert!(py.set(0, "k", &Value::from("v")).await);
//! assert_eq!(py.get(0, "k").await, Some(Value::from("v")));
//! ```
//!
//! API: [`PyNode::spawn`], [`PyNode::spawn_many`], [`PyNode::spawn_with_k`]
//! (`Server(ksize=k)`); per server `i`: [`addr`](PyNode::addr),
//! [`id`](PyNode::id), [`set`](PyNode::set), [`get`](PyNode::get),
//! [`bootstrap`](PyNode::bootstrap), [`neighbors`](PyNode::neighbors) (the
//! routing table as Python recorded it), [`ping`](PyNode::ping),
//! [`stun`](PyNode::stun), [`visit`](PyNode::visit) (a short-lived
//! client that comes and goes); across all hosted servers at once:
//! [`get_all`](PyNode::get_all), [`get_many`](PyNode::get_many),
//! [`set_many`](PyNode::set_many),
//! [`holders`](PyNode::holders). Values cross as [`Value`] (str, int, uint,
//! f64, bool, bytes: what `Server.set` accepts), bit-exact.
//!
//! Methods take a server index (`0..count`) and panic with the Python error on
//! failure: they are for tests. [`PyNode::try_cmd`] returns errors instead.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use kadmesh::id::NodeId;
use kadmesh::wire::Value;
use serde_json::{json, Value as Json};
use tokio::sync::{mpsc, Mutex};

/// How long the script lets one command run (Python's rpc timeout is 5 s and
/// a lookup through dead peers can take several rounds of it).
pub const PY_TIMEOUT: Duration = Duration::from_secs(30);
/// Extra time the Rust side waits beyond the script's own timeout.
pub const GRACE: Duration = Duration::from_secs(5);

/// The Python interpreter that has `kademlia` installed: `$KADMESH_PYTHON`,
/// else `<repo>/.venv/bin/python`. Panics with a hint when neither exists.
pub fn python_bin() -> PathBuf {
    find_python().unwrap_or_else(|| {
        panic!(
            "no Python with the `kademlia` package: run `scripts/test` (it creates .venv), \
             or set KADMESH_PYTHON to a python that has kademlia==2.2.3 installed"
        )
    })
}

/// `$KADMESH_PYTHON`, else `<repo>/.venv/bin/python` if it exists.
pub fn find_python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KADMESH_PYTHON").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    venv.exists().then_some(venv)
}

/// True (after printing why) when no Python with `kademlia` is available:
/// the calling test should return at once. `scripts/test` and CI set
/// `KADMESH_PYTHON`, so there these tests always run.
pub fn skip_without_python(test: &str) -> bool {
    if find_python().is_some() {
        return false;
    }
    eprintln!("skipping {test}: KADMESH_PYTHON is unset and there is no .venv; run scripts/test (it creates .venv)");
    true
}

/// Path of the driver script.
pub fn pynode_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/pynode.py")
}

struct Pipe {
    stdin: ChildStdin,
    lines: mpsc::UnboundedReceiver<String>,
}

/// A Python driver script running as a child process: command lines go to
/// its stdin, each answered by one JSON line `{"ok", "result" | "error"}`.
/// The child is killed when this drops.
pub struct Script {
    child: Child,
    pipe: Mutex<Pipe>,
}

impl Script {
    /// Starts `script` under [`python_bin`] with `args` and returns it with
    /// its startup line; `Err` (child killed) when no startup line comes.
    pub async fn spawn(script: &Path, args: &[String]) -> Result<(Script, Json), String> {
        let mut cmd = Command::new(python_bin());
        cmd.arg(script).args(args);
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = cmd.spawn().map_err(|e| format!("cannot start {:?}: {e}", python_bin()))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::unbounded_channel();
        // A plain thread: std pipes block, and it ends by itself at EOF.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut pipe = Pipe { stdin, lines };
        match read_reply(&mut pipe, PY_TIMEOUT + GRACE).await {
            Ok(hello) => Ok((Script { child, pipe: Mutex::new(pipe) }, hello)),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("{} did not start: {e}", script.display()))
            }
        }
    }

    /// Sends one raw command line and returns its `result`, or the
    /// Python-side error text.
    pub async fn try_cmd(&self, line: &str) -> Result<Json, String> {
        let mut pipe = self.pipe.lock().await;
        writeln!(pipe.stdin, "{line}").and_then(|_| pipe.stdin.flush()).map_err(|e| format!("write: {e}"))?;
        let reply = read_reply(&mut pipe, PY_TIMEOUT + GRACE).await?;
        match reply["ok"].as_bool() {
            Some(true) => Ok(reply["result"].clone()),
            _ => Err(reply["error"].as_str().unwrap_or("malformed reply").to_owned()),
        }
    }

    /// [`try_cmd`](Self::try_cmd), panicking on error.
    pub async fn cmd(&self, line: &str) -> Json {
        self.try_cmd(line).await.unwrap_or_else(|e| panic!("python `{line}` failed: {e}"))
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One Python process hosting `count` `kademlia.network.Server`s.
pub struct PyNode {
    script: Script,
    addrs: Vec<SocketAddr>,
    ids: Vec<NodeId>,
}

impl PyNode {
    /// One Python server, bootstrapped from `bootstrap` (if any) before this returns.
    pub async fn spawn(bootstrap: &[SocketAddr]) -> PyNode {
        PyNode::spawn_many(1, bootstrap).await
    }

    /// `count` Python servers in one process, each bootstrapped from `bootstrap`.
    pub async fn spawn_many(count: usize, bootstrap: &[SocketAddr]) -> PyNode {
        PyNode::spawn_with_k(count, 20, bootstrap).await
    }

    /// Like [`spawn_many`](Self::spawn_many) with `Server(ksize=k)` instead of
    /// the package's default 20 (a small k makes lookups cross the network
    /// in a small test network instead of finding every value locally).
    pub async fn spawn_with_k(count: usize, k: usize, bootstrap: &[SocketAddr]) -> PyNode {
        let mut args = vec!["--count".to_owned(), count.to_string(), "--ksize".to_owned(), k.to_string()];
        args.extend(["--timeout".to_owned(), PY_TIMEOUT.as_secs_f64().to_string()]);
        for seed in bootstrap {
            args.extend(["--bootstrap".to_owned(), seed.to_string()]);
        }
        let (script, hello) = Script::spawn(&pynode_script(), &args).await.unwrap_or_else(|e| panic!("{e}"));
        let ports = hello["ports"].as_array().expect("startup line has ports");
        let addrs = ports.iter().map(|p| SocketAddr::from(([127, 0, 0, 1], p.as_u64().expect("port") as u16)));
        let ids = hello["ids"].as_array().expect("startup line has ids");
        let ids = ids.iter().map(|h| NodeId::from_hex(h.as_str().expect("id hex")).expect("id"));
        PyNode { script, addrs: addrs.collect(), ids: ids.collect() }
    }

    /// How many servers this process hosts.
    pub fn count(&self) -> usize {
        self.addrs.len()
    }

    /// The UDP address of server `i`.
    pub fn addr(&self, i: usize) -> SocketAddr {
        self.addrs[i]
    }

    /// The addresses of all hosted servers.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The node id of server `i`.
    pub fn id(&self, i: usize) -> NodeId {
        self.ids[i]
    }

    /// Sends one raw command line (see pynode.py) and returns its `result`,
    /// or the Python-side error text.
    pub async fn try_cmd(&self, line: &str) -> Result<Json, String> {
        self.script.try_cmd(line).await
    }

    /// [`try_cmd`](Self::try_cmd), panicking on error.
    pub async fn cmd(&self, line: &str) -> Json {
        self.script.cmd(line).await
    }

    /// `Server.set(key, value)` on server `i`: whether any peer stored it.
    /// `value` must be a type Python accepts: str, int, uint, f64, bool or bytes.
    pub async fn set(&self, i: usize, key: &str, value: &Value) -> bool {
        let tagged = to_tagged(value).unwrap_or_else(|| panic!("python cannot set {value:?}"));
        self.cmd(&format!("@{i} set {key} {tagged}")).await.as_bool().expect("set returns a bool")
    }

    /// `Server.get(key)` on server `i`.
    pub async fn get(&self, i: usize, key: &str) -> Option<Value> {
        from_tagged(&self.cmd(&format!("@{i} get {key}")).await)
    }

    /// `Server.get(key)` on server `i` and, if it found nothing, why.
    pub async fn get_why(&self, i: usize, key: &str) -> (Option<Value>, Option<Nowhere>) {
        let got = self.cmd(&format!("@{i} getwhy {key}")).await;
        (from_tagged(&got[0]), Nowhere::parse(&got[1]))
    }

    /// `Server.get(key)` on every hosted server at once, in server order.
    pub async fn get_all(&self, key: &str) -> Vec<Option<Value>> {
        let found = self.cmd(&format!("getall {key}")).await;
        found.as_array().expect("getall returns a list").iter().map(from_tagged).collect()
    }

    /// `Server.get` of every key on every hosted server, all concurrently:
    /// per key, the results in server order.
    pub async fn get_many(&self, keys: &[String]) -> Vec<Vec<Option<Value>>> {
        let found = self.cmd(&format!("getmany {}", keys.join(" "))).await;
        let per_key = |k: &String| -> Vec<Option<Value>> {
            found[k.as_str()].as_array().expect("getmany returns lists").iter().map(from_tagged).collect()
        };
        keys.iter().map(per_key).collect()
    }

    /// `Server.set(key, key)` of every key at once, key `i` from hosted
    /// server `i % count`: per key, whether it was stored, how long the set
    /// took (timed in Python; a set that raised counts as not stored) and,
    /// if it stored nowhere, why ([`Nowhere`]).
    pub async fn set_many(&self, keys: &[String]) -> Vec<(bool, Duration, Option<Nowhere>)> {
        let done = self.cmd(&format!("setmany {}", keys.join(" "))).await;
        let each = |r: &Json| {
            (
                r[0].as_bool().expect("stored"),
                Duration::from_secs_f64(r[1].as_f64().expect("secs")),
                Nowhere::parse(&r[2]),
            )
        };
        done.as_array().expect("setmany returns a list").iter().map(each).collect()
    }

    /// Per hosted server, whether its own storage holds `key`.
    pub async fn holders(&self, key: &str) -> Vec<bool> {
        let held = self.cmd(&format!("holders {key}")).await;
        held.as_array().expect("holders returns a list").iter().map(|b| b.as_bool().expect("bool")).collect()
    }

    /// `Server.bootstrap([addr])` on server `i`: the nodes its lookup found.
    pub async fn bootstrap(&self, i: usize, addr: SocketAddr) -> Vec<(NodeId, SocketAddr)> {
        to_contacts(&self.cmd(&format!("@{i} bootstrap {} {}", addr.ip(), addr.port())).await)
    }

    /// Every contact in server `i`'s routing table, as Python recorded it.
    pub async fn neighbors(&self, i: usize) -> Vec<(NodeId, SocketAddr)> {
        to_contacts(&self.cmd(&format!("@{i} neighbors")).await)
    }

    /// `protocol.ping(addr, our_id)` from server `i`: the peer's id, `None` on timeout.
    pub async fn ping(&self, i: usize, addr: SocketAddr) -> Option<NodeId> {
        let r = self.cmd(&format!("@{i} ping {} {}", addr.ip(), addr.port())).await;
        r.as_str().map(|h| NodeId::from_hex(h).expect("ping returns an id"))
    }

    /// A short-lived stock client: a fresh `Server` bootstraps from `seed`,
    /// gets `key` and stops; `direct`: it asks `seed` alone (one
    /// `find_value`), answers pings for a moment, and stops. Returns its id,
    /// its port and what it got.
    pub async fn visit(&self, seed: SocketAddr, key: &str, direct: bool) -> (NodeId, u16, Option<Value>) {
        let mode = if direct { " direct" } else { "" };
        let r = self.cmd(&format!("visit {} {} {key}{mode}", seed.ip(), seed.port())).await;
        let id = NodeId::from_hex(r[0].as_str().expect("visitor id")).expect("id");
        (id, r[1].as_u64().expect("visitor port") as u16, from_tagged(&r[2]))
    }

    /// `protocol.stun(addr)` from server `i`: our address as the peer saw it.
    pub async fn stun(&self, i: usize, addr: SocketAddr) -> Option<SocketAddr> {
        let r = self.cmd(&format!("@{i} stun {} {}", addr.ip(), addr.port())).await;
        let (ip, port) = (r.get(0)?.as_str()?, r.get(1)?.as_u64()?);
        Some(SocketAddr::new(ip.parse().ok()?, u16::try_from(port).ok()?))
    }
}

async fn read_reply(pipe: &mut Pipe, wait: Duration) -> Result<Json, String> {
    match tokio::time::timeout(wait, pipe.lines.recv()).await {
        Err(_) => Err(format!("no reply from pynode.py within {wait:?}")),
        Ok(None) => Err("pynode.py exited (see its stderr above)".to_owned()),
        Ok(Some(line)) => serde_json::from_str(&line).map_err(|e| format!("bad reply line {line:?}: {e}")),
    }
}

/// A value in pynode.py's tagged JSON form; `None` for types Python cannot `set`.
pub fn to_tagged(value: &Value) -> Option<Json> {
    Some(match value {
        Value::Str(s) => json!({ "str": s }),
        Value::Int(i) => json!({ "int": i }),
        Value::UInt(u) => json!({ "int": u }),
        Value::F64(f) => json!({ "float": hex::encode(f.to_bits().to_be_bytes()) }),
        Value::Bool(b) => json!({ "bool": b }),
        Value::Bin(b) => json!({ "bytes": hex::encode(b) }),
        _ => return None,
    })
}

/// The inverse of [`to_tagged`]; JSON `null` (not found) is `None`. Panics on
/// a tag it does not know, so a surprising Python type fails the test loudly.
pub fn from_tagged(tagged: &Json) -> Option<Value> {
    let (tag, raw) = tagged.as_object()?.iter().next()?;
    Some(match tag.as_str() {
        "str" => Value::Str(raw.as_str().expect("str").to_owned()),
        "int" => raw.as_i64().map(Value::Int).or(raw.as_u64().map(Value::from_u64)).expect("int fits 64 bits"),
        "float" => {
            let bits: [u8; 8] = hex::decode(raw.as_str().expect("hex")).expect("hex").try_into().expect("8 bytes");
            Value::F64(f64::from_bits(u64::from_be_bytes(bits)))
        }
        "bool" => Value::Bool(raw.as_bool().expect("bool")),
        "bytes" => Value::Bin(hex::decode(raw.as_str().expect("hex")).expect("hex")),
        other => panic!("python returned a value of unexpected type {other}: {raw}"),
    })
}

fn to_contacts(list: &Json) -> Vec<(NodeId, SocketAddr)> {
    let list = list.as_array().expect("a list of [id, host, port]");
    let parse = |c: &Json| -> Option<(NodeId, SocketAddr)> {
        let id = NodeId::from_hex(c.get(0)?.as_str()?).ok()?;
        let port = u16::try_from(c.get(2)?.as_u64()?).ok()?;
        Some((id, SocketAddr::new(c.get(1)?.as_str()?.parse().ok()?, port)))
    };
    list.iter().map(|c| parse(c).unwrap_or_else(|| panic!("bad contact {c}"))).collect()
}

/// Why a stock `set` stored its key nowhere, or a stock `get` found nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Nowhere {
    /// Its own `find_neighbors` found nobody although its table holds
    /// contacts: the package's table traversal stops early past empty
    /// buckets (see `why_nowhere` in `pynode.py`). Nothing was sent.
    PackageTraversal,
    /// Anything else, as `pynode.py` describes it.
    Other(String),
}

impl Nowhere {
    /// `pynode.py`'s reason: null (none), "no-neighbours" or anything else.
    fn parse(why: &Json) -> Option<Nowhere> {
        why.as_str().map(|w| match w {
            "no-neighbours" => Nowhere::PackageTraversal,
            other => Nowhere::Other(other.to_owned()),
        })
    }
}
