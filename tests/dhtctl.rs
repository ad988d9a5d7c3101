//! The built `dhtctl` binary against loopback networks of kadmesh nodes and
//! stock Python `kademlia` peers (tests/common/python.rs): ping, put/get both
//! ways, lookup of registered and legacy workers, the HTTP views, crawl, and
//! the documented exit codes and one-line errors.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use assert_cmd::Command;
use common::python::PyNode;
use kadmesh::discovery::{Discovery, DiscoveryConfig};
use kadmesh::engine::Config;
use kadmesh::id::NodeId;
use kadmesh::node::{Clock, Node, NodeHandle};
use kadmesh::wire::Value;
use serde_json::{json, Value as Json};

/// What one run of the binary did.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Json {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    /// Exit `code` with exactly one stderr line containing `text`.
    fn fails_with(&self, code: i32, text: &str) {
        assert_eq!(self.code, code, "{self:?}");
        assert_eq!(self.stderr.trim_end().lines().count(), 1, "one stderr line: {self:?}");
        assert!(self.stderr.contains(text), "stderr lacks {text:?}: {self:?}");
    }
}

/// Runs dhtctl with `args` (and `env`) off the async threads, killed after 30 s.
async fn dhtctl_env(args: &[String], env: &[(&str, String)]) -> Run {
    let mut cmd = Command::cargo_bin("dhtctl").unwrap();
    for var in ["DHT_SEEDS", "DHT_BOOTSTRAP_URL", "DHT_HTTP_URL", "DHTCTL_LOG"] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().map(|(k, v)| (*k, v.as_str()))).args(args).timeout(Duration::from_secs(30));
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn dhtctl(args: &[&str]) -> Run {
    dhtctl_env(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>(), &[]).await
}

/// `rust` kadmesh nodes on 127.0.0.1 (the first is everyone's seed) plus one
/// Python process hosting `py` stock peers.
async fn network(rust: usize, py: usize) -> (Vec<NodeHandle>, PyNode) {
    let mut nodes: Vec<NodeHandle> = Vec::new();
    for i in 0..rust {
        let config = Config { rng_seed: 40 + i as u64, ..Config::default() };
        let node = Node::bind(SocketAddr::from(([127, 0, 0, 1], 0)), config).await.unwrap();
        if let Some(seed) = nodes.first() {
            assert_eq!(node.bootstrap(vec![seed.local_addr()]).await.unwrap().seeds_reached, 1);
        }
        nodes.push(node);
    }
    let py = PyNode::spawn_many(py, &[nodes[0].local_addr()]).await;
    (nodes, py)
}

async fn stop(nodes: &[NodeHandle]) {
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_and_stun_answer_for_rust_and_python_nodes() {
    let (nodes, py) = network(1, 1).await;
    let rust_addr = nodes[0].local_addr().to_string();
    let run = dhtctl(&["ping", &rust_addr]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains(&nodes[0].id().to_hex()) && run.stdout.contains(" ms"), "{run:?}");

    let py_addr = format!("localhost:{}", py.addr(0).port());
    let doc = dhtctl(&["ping", &py_addr, "--json"]).await.json();
    assert_eq!(doc["id"], json!(py.id(0).to_hex()));
    assert!(doc["rtt_ms"].as_f64().is_some_and(|ms| ms > 0.0 && ms < 5000.0), "{doc}");

    let seen = dhtctl(&["--seed", &py.addr(0).to_string(), "stun", "--json"]).await.json();
    let seen: SocketAddr = seen["seen_as"].as_str().unwrap().parse().unwrap();
    assert!(seen.ip().is_loopback() && seen.port() != 0, "{seen}");
    stop(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_and_get_round_trip_both_ways_with_python_peers() {
    let (nodes, py) = network(2, 4).await;
    let seed = nodes[0].local_addr().to_string();
    // Python writes first: every dhtctl run leaves its exited client in the
    // peers' tables, and Python's `set` waits its fixed 5 s on such a contact.
    assert!(py.set(1, "greeting", &Value::from("hello from python")).await);
    assert!(py.set(3, "answer", &Value::Int(42)).await);

    let run = dhtctl(&["-s", &seed, "put", "job:17", "{\"pages\": 3}"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.starts_with("stored \"job:17\""), "{run:?}");
    assert_eq!(py.get(2, "job:17").await, Some(Value::from("{\"pages\": 3}")));
    // A seed given by DHT_SEEDS, and by a Python peer's address.
    let env = [("DHT_SEEDS", py.addr(0).to_string())];
    let run = dhtctl_env(&["get".into(), "greeting".into()], &env).await;
    assert_eq!((run.code, run.stdout.as_str()), (0, "hello from python\n"), "{run:?}");
    let digest = NodeId::for_key("answer").to_hex();
    let doc = dhtctl(&["-s", &seed, "get", "--raw-key", &digest, "--json"]).await.json();
    assert_eq!((&doc["type"], &doc["value"]), (&json!("int"), &json!(42)), "{doc}");

    let run = dhtctl(&["-s", &seed, "put", "count", "7", "--type", "int"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(py.get(0, "count").await, Some(Value::Int(7)));

    let big = "x".repeat(9000);
    dhtctl(&["-s", &seed, "put", "big", &big]).await.fails_with(2, "dhtctl: bad input: value refused");
    dhtctl(&["-s", &seed, "get", "never-stored"])
        .await
        .fails_with(3, "dhtctl: not found: no value under \"never-stored\"");
    // Python's `set` may not keep a copy on the setter: ask a node known to hold it.
    let key = NodeId::for_key("greeting");
    let mut holder = None;
    for n in &nodes {
        if n.with_engine(move |e, now| e.store().get(&key, now).is_some()).await.unwrap() {
            holder = Some(n.local_addr().to_string());
        }
    }
    let holder = holder.expect("python stored the value at a kadmesh node");
    let run = dhtctl(&["find-value", "greeting", "--node", &holder]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("hello from python"), "{run:?}");
    let run = dhtctl(&["find-value", "never-stored", "--node", &holder]).await;
    run.fails_with(3, "not found");
    assert!(run.stdout.contains(&py.id(0).to_hex()[..8]) || run.stdout.contains("ADDRESS"), "{run:?}");
    stop(&nodes).await;
}

/// Registers a worker over the node's HTTP surface, as platform workers do.
async fn register(base: &str, id: &str, services: &[&str], caps: Json) {
    let body = json!({"worker_id": id, "tunnel_url": format!("https://{id}.example.net"), "services": services,
                      "capabilities": caps});
    let resp = reqwest::Client::new().post(format!("{base}/api/worker/register")).json(&body).send().await.unwrap();
    assert!(resp.status().is_success(), "{:?}", resp.text().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_workers_and_topology_find_registered_and_legacy_workers() {
    let (nodes, py) = network(3, 3).await;
    let discovery = Discovery::new(nodes[0].clone(), DiscoveryConfig::default()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop_http, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(kadmesh::http::serve(listener, discovery, async move {
        let _ = stopped.await;
    }));
    register(&base, "gpu-1", &["ocr"], json!({"has_gpu": true, "gpu_type": "RTX 3090", "cpu_cores": 16})).await;
    register(&base, "cpu-1", &["ocr"], json!({"cpu_cores": 4})).await;
    // A worker registered the old way by a stock Python peer.
    let now = Clock::new().unix_secs();
    let record = json!({"worker_id": "py-w1", "tunnel_url": "https://py.example.net", "services": ["legacy-ocr"],
                        "capabilities": {"cpu_cores": 2}, "last_seen": now});
    assert!(py.set(0, "worker:py-w1", &Value::from(record.to_string())).await);
    assert!(py.set(1, "service:legacy-ocr", &Value::from("[\"py-w1\"]")).await);

    let seed = nodes[1].local_addr().to_string();
    let run = dhtctl(&["-s", &seed, "lookup", "ocr"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("gpu-1") && run.stdout.contains("cpu-1"), "{run:?}");
    let doc = dhtctl(&["-s", &seed, "lookup", "ocr", "--gpu", "--json"]).await.json();
    assert_eq!(doc["workers"].as_array().map(|w| w.len()), Some(1), "{doc}");
    assert_eq!(doc["recommended"], json!("gpu-1"));
    let legacy = dhtctl(&["-s", &py.addr(2).to_string(), "lookup", "legacy-ocr", "--json"]).await.json();
    assert_eq!(legacy["workers"][0]["worker_id"], json!("py-w1"), "{legacy}");
    dhtctl(&["-s", &seed, "lookup", "ocr", "--min-cores", "64"]).await.fails_with(3, "no healthy worker");

    let run = dhtctl(&["workers", "--http", &base]).await;
    assert!(run.code == 0 && run.stdout.contains("ocr"), "{run:?}");
    let run = dhtctl(&["workers", "ocr", "--http", &base]).await;
    assert!(run.code == 0 && run.stdout.contains("gpu-1") && run.stdout.contains("recommended:"), "{run:?}");
    dhtctl(&["workers", "nobody-runs-this", "--http", &base]).await.fails_with(3, "dhtctl: not found:");
    let topo = dhtctl(&["topology", "--http", &base, "--json"]).await.json();
    assert_eq!(topo["nodes"][0]["node_id"], json!(nodes[0].id().to_hex()), "{topo}");
    let run = dhtctl(&["topology", "--http", &base]).await;
    assert!(run.code == 0 && run.stdout.contains(&nodes[0].id().to_hex()[..16]), "{run:?}");

    let _ = stop_http.send(());
    server.await.unwrap().unwrap();
    stop(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crawl_finds_every_rust_and_python_node() {
    let (nodes, py) = network(5, 15).await;
    let run = dhtctl(&["-s", &nodes[3].local_addr().to_string(), "crawl", "--json", "--progress"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.lines().all(|l| l.starts_with("crawl: ")), "progress only: {run:?}");
    let doc = run.json();
    let answered: std::collections::BTreeMap<String, String> = doc["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["responded"] == json!(true))
        .map(|n| (n["id"].as_str().unwrap().to_owned(), n["software"].as_str().unwrap().to_owned()))
        .collect();
    for n in &nodes {
        assert_eq!(answered.get(&n.id().to_hex()).map(String::as_str), Some("kadmesh 0.1.0"), "{doc}");
    }
    for i in 0..py.count() {
        let software = answered.get(&py.id(i).to_hex()).map(String::as_str);
        assert_eq!(software, Some("python-kademlia (no extensions)"), "python {i}: {doc}");
    }
    assert_eq!(answered.len(), 20, "{doc}");
    assert_eq!((&doc["complete"], &doc["estimate"]["method"]), (&json!(true), &json!("exhaustive")));
    assert_eq!(doc["estimate"]["nodes"], json!(20));
    let density = doc["estimate"]["density"].as_f64().expect("density estimate");
    assert!((5.0..80.0).contains(&density), "density estimate {density}");

    let run = dhtctl(&["-s", &nodes[0].local_addr().to_string(), "crawl", "--probes", "0"]).await;
    assert!(run.stdout.contains("estimated network size: 20 (exhaustive)"), "{run:?}");
    assert!(run.stderr.is_empty(), "no progress when stderr is not a terminal: {run:?}");
    stop(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_and_unreachable_seeds_give_the_documented_codes() {
    let help = dhtctl(&["--help"]).await;
    assert!(help.code == 0 && help.stdout.contains("Exit codes:") && help.stdout.contains("4  unreachable"));
    assert_eq!(dhtctl(&["no-such-command"]).await.code, 2);
    dhtctl(&["get", "k"]).await.fails_with(2, "dhtctl: bad input: no seeds");
    dhtctl(&["-s", "host:8000:8468", "get", "k"]).await.fails_with(2, "invalid seed \"host:8000:8468\"");
    dhtctl(&["-s", "127.0.0.1:1", "get", "--raw-key", "abcd"]).await.fails_with(2, "20 bytes");
    dhtctl(&["-s", "127.0.0.1:1", "find-node", "not-hex"]).await.fails_with(2, "not hexadecimal");
    dhtctl(&["-s", "127.0.0.1:1", "put", "k", "seven", "--type", "int"]).await.fails_with(2, "not an integer");
    dhtctl(&["workers", "--http", "ftp://x"]).await.fails_with(2, "not http or https");
    assert_eq!(dhtctl(&["-s", "127.0.0.1:1", "lookup", "ocr", "--max-age", "0"]).await.code, 2);
    assert_eq!(dhtctl(&["-s", "127.0.0.1:1", "crawl", "--spread", "100000"]).await.code, 2);
    dhtctl(&["--node-id", "xyz", "ping", "127.0.0.1:1"]).await.fails_with(2, "node id \"xyz\"");
    let env = [("DHT_SEEDS", "a:1:2".to_owned())];
    dhtctl_env(&["get".into(), "k".into()], &env).await.fails_with(2, "DHT_SEEDS");

    let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let dead = silent.local_addr().unwrap().to_string();
    let run = dhtctl(&["--timeout", "1", "-s", &dead, "get", "k"]).await;
    run.fails_with(4, &format!("dhtctl: unreachable: no seed answered within 500.0ms: {dead}"));
    dhtctl(&["--timeout", "1", "ping", &dead]).await.fails_with(4, &format!("{dead} did not answer"));
    dhtctl(&["--timeout", "1", "-s", &dead, "crawl"]).await.fails_with(4, "unreachable");
    dhtctl(&["-s", "no-such-host.invalid:8468", "get", "k"]).await.fails_with(4, "no-such-host.invalid");
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    dhtctl(&["topology", "--http", &format!("http://{closed}")]).await.fails_with(4, "dhtctl: unreachable:");
}
