//! The namespace test's client: one put or get through a short-lived node,
//! run as a separate process inside a host's network namespace.
//!
//! The parent ([`invoke`]) re-runs the test executable under `ip netns exec`
//! with the ignored `netns_client` test as filter and the job in `KADMESH_NETNS_*`
//! variables; the child ([`run_from_env`]) resolves its seed by hostname
//! through the namespace's hosts file, joins, does the job and prints one
//! `NETNS-REPLY <json>` line. The child bounds itself to [`CLIENT_BOUND`].

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use kadmesh::engine::Config;
use kadmesh::id::NodeId;
use kadmesh::node::Node;
use kadmesh::seeds::Seed;
use kadmesh::wire::Value;

/// Longest a client process may run.
pub const CLIENT_BOUND: Duration = Duration::from_secs(20);

const MARK: &str = "NETNS-REPLY ";

/// What a client reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// A put: how many remote nodes answered the lookup and were asked to
    /// store (`attempted`), and how many acknowledged (`stored`).
    Stored {
        /// Remote nodes asked to store.
        attempted: usize,
        /// Remote nodes that acknowledged.
        stored: usize,
    },
    /// A get: the value as a string, `None` when not found.
    Found(Option<String>),
    /// Anything that went wrong, as text.
    Error(String),
}

/// Runs one client job in namespace `ns`: `op` is `put` or `get`, `seed` a
/// `host:port` resolved inside the namespace.
pub fn invoke(ns: &str, seed: &str, op: &str, key: &str, value: &str) -> Reply {
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => return Reply::Error(format!("no test executable path: {e}")),
    };
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(exe)
        .args(["netns_client", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env("KADMESH_NETNS_OP", op)
        .env("KADMESH_NETNS_SEED", seed)
        .env("KADMESH_NETNS_KEY", key)
        .env("KADMESH_NETNS_VALUE", value)
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => return Reply::Error(format!("cannot run the client: {e}")),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    // libtest prints "test netns_client ... " before the reply on the same line.
    match stdout.lines().find_map(|l| l.find(MARK).map(|i| &l[i + MARK.len()..])) {
        Some(json) => {
            // Shown only when the test fails: what each client saw.
            println!("client {op} {key} in {ns} via {seed}: {json}");
            parse(json)
        }
        None => Reply::Error(format!("no reply ({}); stderr: {}", out.status, String::from_utf8_lossy(&out.stderr))),
    }
}

fn parse(json: &str) -> Reply {
    let v: serde_json::Value = match serde_json::from_str(json) {
        Ok(v) => v,
        Err(e) => return Reply::Error(format!("bad reply {json}: {e}")),
    };
    let count = |name: &str| v.get(name).and_then(serde_json::Value::as_u64).map(|n| n as usize);
    if let (Some(attempted), Some(stored)) = (count("attempted"), count("stored")) {
        return Reply::Stored { attempted, stored };
    }
    if let Some(found) = v.get("found") {
        return Reply::Found(found.as_str().map(str::to_string));
    }
    Reply::Error(v.get("error").and_then(|e| e.as_str()).unwrap_or(json).to_string())
}

/// The child side: does the job described by the environment and prints the
/// reply. Without the environment (run by hand) it returns at once.
pub fn run_from_env() {
    let Ok(op) = std::env::var("KADMESH_NETNS_OP") else {
        eprintln!("netns_client: helper of the namespace test; nothing to do when run by hand");
        return;
    };
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let (seed, key, value) = (var("KADMESH_NETNS_SEED"), var("KADMESH_NETNS_KEY"), var("KADMESH_NETNS_VALUE"));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    let reply = rt.block_on(async {
        match tokio::time::timeout(CLIENT_BOUND, job(&op, &seed, &key, value)).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => serde_json::json!({ "error": e }),
            Err(_) => serde_json::json!({ "error": format!("client bound of {CLIENT_BOUND:?} passed") }),
        }
    });
    println!("{MARK}{reply}");
}

async fn job(op: &str, seed: &str, key: &str, value: String) -> Result<serde_json::Value, String> {
    let seed = Seed::parse(seed).map_err(|e| e.to_string())?;
    let addrs = seed.resolve().await.map_err(|e| e.to_string())?;
    let config = Config { rpc_timeout: Duration::from_secs(1), rng_seed: rand::random(), ..Config::default() };
    let node = Node::bind(SocketAddr::from(([0, 0, 0, 0], 0)), config).await.map_err(|e| e.to_string())?;
    let joined = node.bootstrap(addrs.clone()).await.map_err(|e| e.to_string())?;
    if joined.seeds_reached == 0 {
        return Err(format!("seed {seed} ({addrs:?}) did not answer"));
    }
    let key = NodeId::for_key(key);
    let reply = match op {
        "put" => {
            let put = node.put(key, Value::Str(value)).await.map_err(|e| e.to_string())?;
            let s = put.stats;
            serde_json::json!({ "stored": put.stored, "attempted": put.attempted, "queried": s.queried, "failed": s.failed })
        }
        "get" => {
            let got = node.get(key).await.map_err(|e| e.to_string())?;
            let s = got.stats;
            serde_json::json!({ "found": got.value.as_ref().and_then(Value::as_str), "queried": s.queried, "failed": s.failed })
        }
        other => return Err(format!("unknown op {other}")),
    };
    node.shutdown().await;
    Ok(reply)
}
