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
    /// An HTTP answer: status and body.
    Http {
        /// The status code.
        status: u16,
        /// The body (JSON), as parsed.
        body: serde_json::Value,
    },
    /// A `find_node` reply's contacts, each `(host or URL, port)`.
    Contacts(Vec<(String, u64)>),
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
    if let (Some(status), Some(body)) = (v.get("status").and_then(serde_json::Value::as_u64), v.get("body")) {
        return Reply::Http { status: status as u16, body: body.clone() };
    }
    if let Some(list) = v.get("contacts").and_then(serde_json::Value::as_array) {
        let entry = |c: &serde_json::Value| Some((c.get(0)?.as_str()?.to_owned(), c.get(1)?.as_u64()?));
        return Reply::Contacts(list.iter().filter_map(entry).collect());
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
        let work = async {
            match op.as_str() {
                "http-get" | "http-post" => http_job(&op, &key, value).await,
                "handout" => handout_job(&key, &value).await,
                _ => job(&op, &seed, &key, value).await,
            }
        };
        match tokio::time::timeout(CLIENT_BOUND, work).await {
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
    // A one-shot tool is a client: the daemons must not keep it in their
    // tables (nor pick it as a third node for a dial-back) once it is gone.
    let mut config = Config { rpc_timeout: Duration::from_secs(1), rng_seed: rand::random(), ..Config::default() };
    config.reach.mode = kadmesh::reach::ReachMode::Client;
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

/// `http-get url` or `http-post url body` (JSON), from inside the namespace.
async fn http_job(op: &str, url: &str, body: String) -> Result<serde_json::Value, String> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(15)).build().map_err(|e| e.to_string())?;
    let request = match op {
        "http-post" => client.post(url).header("content-type", "application/json").body(body),
        _ => client.get(url),
    };
    let r = request.send().await.map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap_or(serde_json::Value::Null);
    Ok(serde_json::json!({ "status": status, "body": body }))
}

/// The contacts the daemon at `addr` answers a `find_node` with, asked from
/// a fresh socket as a stock peer would (`as_what` = `stock`) or after a
/// `kadmesh_hello` (`kadmesh`).
async fn handout_job(addr: &str, as_what: &str) -> Result<serde_json::Value, String> {
    // Client-marked ids: the daemon must not insert this short-lived asker.
    use kadmesh::reach::marker::mark;
    use kadmesh::wire::Call;
    let to: SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    let sock = tokio::net::UdpSocket::bind("0.0.0.0:0").await.map_err(|e| e.to_string())?;
    let me = NodeId::random(&mut rand::thread_rng());
    if as_what == "kadmesh" {
        let hello = Call::Other { name: kadmesh::engine::HELLO.into(), args: vec![Value::Bin(me.0.to_vec())] };
        exchange(&sock, to, mark([1; 20]), hello).await?;
    }
    let find = Call::FindNode { sender: me, key: NodeId::random(&mut rand::thread_rng()) };
    let Value::Array(entries) = exchange(&sock, to, mark([2; 20]), find).await? else {
        return Err("find_node answered something else than a list".into());
    };
    let contacts: Vec<serde_json::Value> = entries
        .iter()
        .filter_map(|e| match e.as_array()? {
            [_, Value::Str(host), Value::Int(port)] => Some(serde_json::json!([host, port])),
            _ => None,
        })
        .collect();
    Ok(serde_json::json!({ "contacts": contacts }))
}

/// Sends request `call` as `id` and returns its response's body, skipping
/// the daemon's own requests to us.
async fn exchange(
    sock: &tokio::net::UdpSocket,
    to: SocketAddr,
    id: kadmesh::wire::MessageId,
    call: kadmesh::wire::Call,
) -> Result<Value, String> {
    use kadmesh::wire::Datagram;
    let data = Datagram::Request { id, call }.encode().map_err(|e| e.to_string())?;
    sock.send_to(&data, to).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0; kadmesh::wire::MAX_DATAGRAM];
    for _ in 0..20 {
        let wait = tokio::time::timeout(Duration::from_secs(3), sock.recv(&mut buf)).await;
        let n = wait.map_err(|_| format!("{to} did not answer"))?.map_err(|e| e.to_string())?;
        if let Ok(Datagram::Response { id: got, body }) = kadmesh::wire::decode(&buf[..n]) {
            if got == id {
                return Ok(body);
            }
        }
    }
    Err(format!("no response from {to}"))
}
