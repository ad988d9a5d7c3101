//! `dhtd config` reports every source correctly, the data-directory lock
//! keeps a second daemon out, an unreachable bootstrap URL is retried, not
//! fatal, and the daemon runs on as many threads as `--threads` says. Real
//! `dhtd` processes.

#[path = "support/process.rs"]
mod process;

use std::collections::HashMap;
use std::process::{Command, Output};
use std::time::Duration;

/// Runs `dhtd args` with a clean DHT_ environment plus `env`.
fn dhtd(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dhtd"));
    for (k, _) in std::env::vars() {
        if k.starts_with("DHT_") || k == "COORDINATOR_URL" || k == "WORKER_TTL" {
            cmd.env_remove(k);
        }
    }
    cmd.args(args).envs(env.iter().copied()).output().expect("dhtd runs")
}

/// `dhtd config`'s table: key -> (value, source).
fn table(out: &Output) -> HashMap<String, (String, String)> {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let (key, value, source) = match words.as_slice() {
                [k, v, "env", name] => (k.to_string(), v.to_string(), format!("env {name}")),
                [k, v, s] => (k.to_string(), v.to_string(), s.to_string()),
                other => panic!("bad line {l:?}: {other:?}"),
            };
            (key, (value, source))
        })
        .collect()
}

#[test]
fn dhtd_config_reports_default_file_env_alias_and_flag() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dhtd.toml");
    std::fs::write(&file, "port = 9100\nworker_ttl = 200\nseeds = [\"a.example:8468\", \"b.example:8468\"]\ncache_ttl = 7\nlog_json = true\n").unwrap();
    let env = [
        ("DHT_CONFIG", file.to_str().unwrap()),
        ("DHT_CACHE_TTL", "3"),
        ("COORDINATOR_URL", "http://coord.example"),
        ("WORKER_TTL", "250"),
    ];
    let t = table(&dhtd(&["config", "--stale-after", "900", "--http-bind", "0.0.0.0:9000"], &env));
    let at = |k: &str| t.get(k).cloned().unwrap_or_else(|| panic!("no {k} in {t:?}"));
    assert_eq!(at("bind"), ("0.0.0.0".into(), "default".into()));
    assert_eq!(at("refresh_interval"), ("120".into(), "default".into()));
    assert_eq!(at("port"), ("9100".into(), "file".into()));
    assert_eq!(at("seeds"), ("a.example:8468,b.example:8468".into(), "file".into()));
    assert_eq!(at("log_json"), ("true".into(), "file".into()));
    // env beats the file; the platform's old names count as env, and beat the file too.
    assert_eq!(at("cache_ttl"), ("3".into(), "env DHT_CACHE_TTL".into()));
    assert_eq!(at("coordinator_url"), ("http://coord.example".into(), "env COORDINATOR_URL".into()));
    assert_eq!(at("worker_ttl"), ("250".into(), "env WORKER_TTL".into()));
    assert_eq!(at("config"), (file.to_str().unwrap().into(), "env DHT_CONFIG".into()));
    // flags beat everything.
    assert_eq!(at("stale_after"), ("900".into(), "flag".into()));
    assert_eq!(at("http_bind"), ("0.0.0.0:9000".into(), "flag".into()));
    let t = table(&dhtd(&["config", "--worker-ttl", "100"], &[("DHT_WORKER_TTL", "90"), ("WORKER_TTL", "80")]));
    assert_eq!(t["worker_ttl"], ("100".into(), "flag".into()));
    let t = table(&dhtd(&["config"], &[("DHT_WORKER_TTL", "90"), ("WORKER_TTL", "80")]));
    assert_eq!(t["worker_ttl"], ("90".into(), "env DHT_WORKER_TTL".into()), "the DHT_ name wins over the alias");
    let t = table(&dhtd(&["config"], &[]));
    assert_eq!(t["http_bind"], ("127.0.0.1:8080".into(), "default".into()), "HTTP on loopback unless configured");
}

#[test]
fn a_bad_config_file_is_refused_in_one_line_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    for (text, needle) in [
        ("no_such_option = 1\n", "unknown key `no_such_option`"),
        ("port = \"many\"\n", "invalid value 'many' for '--port"),
        ("port = [\n", "config file"),
        ("no_http = \"maybe\"\n", "expected true or false"),
    ] {
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, text).unwrap();
        let out = dhtd(&["config", "--config", file.to_str().unwrap()], &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text:?} accepted");
        assert!(err.contains(needle), "{text:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}

#[test]
fn a_second_dhtd_on_a_data_dir_in_use_refuses_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let common = ["--port", "0", "--bind", "127.0.0.1", "--no-http", "--data-dir", data];
    let mut first = process::Dhtd::start(&common, &[]);
    let lock = dir.path().join("kadmesh.lock");
    let mut holder = String::new();
    for _ in 0..100 {
        holder = std::fs::read_to_string(&lock).unwrap_or_default();
        if !holder.trim().is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = dhtd(&common, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the second daemon started: {err}");
    assert!(err.contains(&format!("in use by process {}", holder.trim())), "{err}");
    assert!(first.terminate(Duration::from_secs(10)).is_some(), "the first daemon did not stop cleanly");
    // Released with the process: a new daemon may take the directory.
    let mut again = process::Dhtd::start(&common, &[]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(again.terminate(Duration::from_secs(10)).is_some(), "the directory stayed locked");
}

#[test]
fn an_unreachable_bootstrap_url_is_retried_not_fatal() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/api/dht/bootstrap", closed.local_addr().unwrap());
    drop(closed);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("dhtd.log");
    let args = ["--port", "0", "--bind", "127.0.0.1", "--no-http", "--log-color", "always", "--bootstrap-url", &url];
    let mut d = process::Dhtd::start_logging(&args, &[], Some(std::fs::File::create(&log).unwrap()));
    // Attempts at 0 s, 1 s and 3 s: at least two within 2.5 s.
    std::thread::sleep(Duration::from_millis(2500));
    assert!(d.terminate(Duration::from_secs(10)).is_some(), "dhtd died or hung when its bootstrap URL failed");
    let text = std::fs::read_to_string(&log).unwrap();
    let tries = text.matches("no seed source reached the network; this node is alone until one answers").count();
    assert!(tries >= 2, "{tries} attempt(s):\n{text}");
    assert!(text.contains("retry_in_s"), "{text}");
    assert!(text.contains("effective configuration:") && text.contains("bootstrap_url=http://"), "{text}");
    assert!(text.contains('\u{1b}'), "--log-color always colours even a file");
}

#[test]
fn logs_written_to_a_file_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("dhtd.log");
    let mut d = process::Dhtd::start_logging(
        &["--port", "0", "--bind", "127.0.0.1", "--no-http"],
        &[],
        Some(std::fs::File::create(&log).unwrap()),
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(d.terminate(Duration::from_secs(10)).is_some());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("effective configuration:"), "{text}");
    assert!(!text.contains('\u{1b}'), "ANSI codes in a log file: {text:?}");
}

#[test]
fn every_http_request_is_logged_at_debug_level() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("dhtd.log");
    let bind = format!("127.0.0.1:{port}");
    let args = ["--port", "0", "--bind", "127.0.0.1", "--http-bind", &bind];
    let env = [("RUST_LOG", "info,tower_http=debug")];
    let mut d = process::Dhtd::start_logging(&args, &env, Some(std::fs::File::create(&log).unwrap()));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut status = 0;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        let got = rt.block_on(async { reqwest::get(format!("http://{bind}/health/live?probe=access-log")).await });
        if let Ok(r) = got {
            status = r.status().as_u16();
            break;
        }
    }
    assert_eq!(status, 200);
    std::thread::sleep(Duration::from_millis(200));
    assert!(d.terminate(Duration::from_secs(10)).is_some());
    let text = std::fs::read_to_string(&log).unwrap();
    let line = text.lines().find(|l| l.contains("/health/live?probe=access-log") && l.contains("DEBUG"));
    assert!(line.is_some_and(|l| l.contains("GET")), "no access log line:\n{text}");
    assert!(text.lines().any(|l| l.contains("finished processing request") && l.contains("status=200")), "{text}");
}

#[test]
fn limits_come_from_the_limits_table_env_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dhtd.toml");
    let text = "port = 9100\n[limits]\nrate_per_ip = 50\nchurn_ids_per_ip = 4\nlimit_loopback = true\nprovider_max_per_set = 50\n";
    std::fs::write(&file, text).unwrap();
    let env = [("DHT_HTTP_MAX_BODY", "1000"), ("DHT_CHURN_IDS_PER_IP", "6"), ("DHT_HANDOVER_MAX_CONTACTS", "9")];
    let args = ["config", "--config", file.to_str().unwrap(), "--handover-rate", "5", "--churn-max-sources", "77"];
    let t = table(&dhtd(&args, &env));
    let at = |k: &str| t.get(k).cloned().unwrap_or_else(|| panic!("no {k} in {t:?}"));
    assert_eq!(at("rate_per_ip"), ("50".into(), "file".into()));
    assert_eq!(at("limit_loopback"), ("true".into(), "file".into()));
    assert_eq!(at("churn_ids_per_ip"), ("6".into(), "env DHT_CHURN_IDS_PER_IP".into()), "env beats the file");
    assert_eq!(at("http_max_body"), ("1000".into(), "env DHT_HTTP_MAX_BODY".into()));
    assert_eq!(at("handover_rate"), ("5".into(), "flag".into()));
    assert_eq!(at("provider_max_per_set"), ("50".into(), "file".into()));
    assert_eq!(at("handover_max_contacts"), ("9".into(), "env DHT_HANDOVER_MAX_CONTACTS".into()));
    assert_eq!(at("churn_max_sources"), ("77".into(), "flag".into()));
    assert_eq!(at("provider_max_ttl"), ("86400".into(), "default".into()));
    assert_eq!(at("rate_global"), ("8000".into(), "default".into()));
    assert_eq!(at("record_quota_per_ip"), ("(unset)".into(), "default".into()), "follows --max-records");
}

#[test]
fn a_nonsense_limit_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    for (args, env, file_text, needle) in [
        (vec!["config", "--rate-per-ip", "0"], vec![], None, "'--rate-per-ip <RATE_PER_IP>': must be at least 1"),
        (vec!["config"], vec![("DHT_HTTP_MAX_BODY", "lots")], None, "invalid value 'lots' for '--http-max-body"),
        (vec!["config", "--http-max-header-bytes", "100"], vec![], None, "must be at least 8192"),
        (vec!["config"], vec![], Some("[limits]\nrate_per_eye = 3\n"), "unknown key `rate_per_eye` in [limits]"),
        (vec!["config"], vec![], Some("port = 1\n[limits]\nport = 2\n"), "unknown key `port` in [limits]"),
        (vec!["config"], vec![], Some("rate_per_ip = 1\n[limits]\nrate_per_ip = 2\n"), "`rate_per_ip` is set twice"),
        (vec!["config"], vec![], Some("[limits]\nchurn_window = -5\n"), "invalid value '-5' for '--churn-window"),
        (
            vec!["--port", "0", "--bind", "127.0.0.1", "--no-http", "--http-max-connections", "4"],
            vec![],
            None,
            "--http-max-connections-per-ip cannot exceed --http-max-connections",
        ),
    ] {
        let mut args = args;
        if let Some(text) = file_text {
            std::fs::write(&file, text).unwrap();
            args.extend(["--config", file.to_str().unwrap()]);
        }
        let out = dhtd(&args, &env);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} {env:?} accepted");
        assert!(err.contains(needle), "{args:?} {env:?}: {err}");
        // The daemon logs its configuration before it checks the limits.
        assert_eq!(err.trim().lines().filter(|l| !l.contains(" INFO ")).count(), 1, "{err}");
    }
}

/// A free port on loopback, for a daemon that must be told its ports.
fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn limits_from_a_flag_and_env_reach_the_running_node() {
    let (udp, http) = (free_port(), std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port());
    let (udp_s, http_s) = (udp.to_string(), format!("127.0.0.1:{http}"));
    let args = ["--port", &udp_s, "--bind", "127.0.0.1", "--http-bind", &http_s, "--limit-loopback"];
    let flags = ["--churn-ids-per-ip", "3", "--rate-per-ip", "1"];
    let env = [("DHT_RATE_PER_IP_BURST", "10"), ("DHT_HTTP_MAX_BODY", "1000")];
    let mut d = process::Dhtd::start(&[&args[..], &flags[..]].concat(), &env);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let metrics = || rt.block_on(async { reqwest::get(format!("http://{http_s}/metrics")).await?.text().await });
    let mut text = String::new();
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(100));
        if let Ok(t) = metrics() {
            text = t;
            break;
        }
    }
    assert!(text.contains("kadmesh_"), "no /metrics: {text}");
    // 30 pings under fresh ids from one socket: the burst (10, env) passes
    // the rate limit, of which 3 (flag) new ids are learned.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for n in 0..30u8 {
        let call = kadmesh::wire::Call::Ping { sender: kadmesh::id::NodeId([n + 1; 20]) };
        let msg = kadmesh::wire::Datagram::request(kadmesh::wire::MessageId([n; 20]), call).encode().unwrap();
        sock.send_to(&msg, ("127.0.0.1", udp)).unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    let text = metrics().unwrap();
    let value = |line: &str| -> f64 {
        let l = text.lines().find(|l| l.starts_with(line)).unwrap_or_else(|| panic!("no {line} in\n{text}"));
        l.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert!(value("kadmesh_requests_dropped_total{bucket=\"ip\"}") >= 19.0, "{text}");
    let passed = 30.0 - value("kadmesh_requests_dropped_total{bucket=\"ip\"}");
    assert_eq!(value("kadmesh_churn_refusals_total"), passed - 3.0, "{text}");
    assert_eq!(value("kadmesh_routing_table_size"), 3.0);
    let body = format!("{{\"pad\":\"{}\"}}", "x".repeat(2000));
    let status = rt.block_on(async {
        let url = format!("http://{http_s}/api/worker/register");
        reqwest::Client::new().post(url).header("content-type", "application/json").body(body).send().await
    });
    assert_eq!(status.unwrap().status().as_u16(), 413, "DHT_HTTP_MAX_BODY did not reach the HTTP surface");
    assert!(d.terminate(Duration::from_secs(10)).is_some());
}

/// The `Threads:` of a running daemon once it has logged `node listening`
/// (and, with HTTP, that HTTP listens), read from `/proc`.
#[cfg(target_os = "linux")]
fn threads_of_running(args: &[&str]) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("dhtd.log");
    let file = std::fs::File::create(&log).unwrap();
    let base = ["--port", "0", "--bind", "127.0.0.1", "--reachability", "public", "--log-color", "never"];
    let mut d = process::Dhtd::start_logging(&[&base[..], args].concat(), &[], Some(file));
    let want = if args.contains(&"--no-http") { "node listening" } else { "HTTP API listening" };
    let ready = (0..200).any(|_| {
        std::thread::sleep(Duration::from_millis(25));
        std::fs::read_to_string(&log).unwrap_or_default().contains(want)
    });
    assert!(ready, "dhtd did not start: {}", std::fs::read_to_string(&log).unwrap_or_default());
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.pid())).unwrap();
    let line = status.lines().find(|l| l.starts_with("Threads:")).unwrap();
    let threads = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(d.terminate(Duration::from_secs(10)).is_some(), "dhtd did not stop cleanly on SIGTERM");
    threads
}

#[cfg(target_os = "linux")]
#[test]
fn a_node_without_http_runs_on_its_main_thread_alone_and_threads_sets_the_workers() {
    // Each thread is a stack and, under glibc, a malloc arena: memory a
    // Raspberry Pi volunteer pays for nothing on a node that serves one socket.
    assert_eq!(threads_of_running(&["--no-http"]), 1);
    assert_eq!(threads_of_running(&["--http-bind", "127.0.0.1:0", "--threads", "1"]), 1);
    // The main thread blocks on the runtime; the workers run the tasks.
    assert_eq!(threads_of_running(&["--no-http", "--threads", "3"]), 4);
}

#[test]
fn read_freshness_settings_come_from_flags_and_env_and_are_checked() {
    let env = [("DHT_LOST_RECHECK_EVERY", "0")];
    let t = table(&dhtd(&["config", "--get-copies", "2"], &env));
    let at = |k: &str| t.get(k).cloned().unwrap_or_else(|| panic!("no {k} in {t:?}"));
    assert_eq!(at("get_copies"), ("2".into(), "flag".into()));
    assert_eq!(at("lost_recheck_every"), ("0".into(), "env DHT_LOST_RECHECK_EVERY".into()));
    assert_eq!(at("get_fresh_for"), ("150".into(), "default".into()));
    let out = dhtd(&["config", "--get-copies", "0"], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--get-copies"), "one line naming the flag");
}
