//! The container setup without a Docker daemon: `docker-compose.yml` and the
//! `Dockerfile` are checked as data (parsed YAML, the rules they must keep),
//! every service's command line is checked by `dhtd`'s own parser, and the
//! same topology runs as local processes: three seeds seeding each other by
//! name, four workers, each with its own data directory, all joined, all
//! ready, the HEALTHCHECK command passing, all stopping cleanly with their
//! state saved.

#[path = "support/process.rs"]
mod process;

use std::collections::{BTreeMap, HashMap};
use std::net::{TcpListener, UdpSocket};
use std::process::Command;
use std::time::Duration;

use serde_yaml::Value;

const DATA: &str = "/var/lib/kadmesh";

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn compose() -> Value {
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).unwrap();
    let mut v: Value = serde_yaml::from_str(&text).expect("docker-compose.yml is YAML");
    v.apply_merge().expect("merge keys resolve");
    // Nested merges (environment) need a second pass per service.
    for (_, svc) in v["services"].as_mapping_mut().unwrap().iter_mut() {
        svc.apply_merge().unwrap();
    }
    v
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence().map(|s| s.iter().map(|x| x.as_str().unwrap().to_owned()).collect()).unwrap_or_default()
}

fn services(v: &Value) -> BTreeMap<String, Value> {
    v["services"].as_mapping().unwrap().iter().map(|(k, s)| (k.as_str().unwrap().to_owned(), s.clone())).collect()
}

fn env_of(svc: &Value) -> BTreeMap<String, String> {
    let Some(m) = svc["environment"].as_mapping() else { return BTreeMap::new() };
    m.iter()
        .filter_map(|(k, v)| {
            let value = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return None,
            };
            Some((k.as_str()?.to_owned(), value))
        })
        .collect()
}

/// The host of each `--seed host:port`.
fn seed_hosts(cmd: &[String]) -> Vec<(String, String)> {
    cmd.windows(2)
        .filter(|w| w[0] == "--seed")
        .map(|w| {
            let (h, p) = w[1].rsplit_once(':').expect("seed is host:port");
            (h.to_owned(), p.to_owned())
        })
        .collect()
}

#[test]
fn the_compose_file_is_valid_and_keeps_its_rules() {
    let v = compose();
    let svcs = services(&v);
    let seeds: Vec<&String> = svcs.keys().filter(|k| k.starts_with("seed-")).collect();
    let workers: Vec<&String> = svcs.keys().filter(|k| k.starts_with("worker-")).collect();
    assert_eq!(seeds.len(), 3, "{:?}", svcs.keys());
    assert!(workers.len() >= 3, "several workers: {:?}", svcs.keys());
    let declared_volumes: Vec<String> =
        v["volumes"].as_mapping().unwrap().keys().map(|k| k.as_str().unwrap().to_owned()).collect();
    let mut used_volumes = Vec::new();
    let mut published = Vec::new();
    for (name, svc) in &svcs {
        assert_eq!(svc["image"].as_str(), Some("kadmesh:local"), "{name}");
        assert_eq!(svc["build"].as_str(), Some("."), "{name}");
        assert_eq!(strings(&svc["networks"]), ["dht"], "{name}: one network for all");
        let env = env_of(svc);
        assert_eq!(
            env.get("DHT_HTTP_BIND").map(String::as_str),
            Some("0.0.0.0:8080"),
            "{name}: HTTP bind set explicitly"
        );
        assert_eq!(env.get("DHT_DATA_DIR").map(String::as_str), Some(DATA), "{name}");
        let vols = strings(&svc["volumes"]);
        assert_eq!(vols.len(), 1, "{name}");
        let (vol, at) = vols[0].split_once(':').unwrap();
        assert_eq!(at, DATA, "{name}: the volume holds the data dir");
        assert!(declared_volumes.contains(&vol.to_owned()), "{name}: volume {vol} not declared");
        used_volumes.push(vol.to_owned());
        let cmd = strings(&svc["command"]);
        let hosts = seed_hosts(&cmd);
        assert!(!hosts.is_empty(), "{name} has no seed");
        for (host, port) in hosts {
            assert!(svcs.contains_key(&host) && host.starts_with("seed-"), "{name}: seed {host} is not a seed service");
            assert_ne!(host, *name, "{name} seeds itself");
            assert_eq!(port, "8468");
        }
        assert_eq!(strings(&svc["healthcheck"]["test"]), ["CMD", "dhtd", "health"], "{name}");
        published.extend(strings(&svc["ports"]).into_iter().map(|p| (name.clone(), p)));
    }
    used_volumes.sort();
    used_volumes.dedup();
    assert_eq!(used_volumes.len(), svcs.len(), "each node its own volume");
    assert_eq!(published, [("seed-1".to_owned(), "127.0.0.1:8080:8080".to_owned())], "the page on one port");
    assert!(v["networks"]["dht"].is_mapping());
}

#[test]
fn every_compose_command_line_is_accepted_by_dhtd() {
    for (name, svc) in services(&compose()) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dhtd"));
        cmd.arg("config").args(strings(&svc["command"])).env_clear().envs(env_of(&svc));
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(
            text.lines().any(|l| l.starts_with("data_dir") && l.contains(DATA) && l.contains("env DHT_DATA_DIR")),
            "{name}: {text}"
        );
        assert!(text.lines().any(|l| l.starts_with("http_bind") && l.contains("0.0.0.0:8080")), "{name}: {text}");
    }
}

#[test]
fn the_dockerfile_caches_dependencies_runs_unprivileged_and_checks_health() {
    let text = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.starts_with('#')).collect();
    let pos = |needle: &str| lines.iter().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("no {needle:?}"));
    assert!(lines.iter().filter(|l| l.starts_with("FROM ")).count() >= 3, "multi-stage");
    let last_copy = lines.iter().rposition(|l| *l == "COPY . .").unwrap();
    assert!(pos("cargo chef cook") < last_copy, "dependencies built before the sources are copied");
    assert!(pos("cargo chef cook") > pos("COPY --from=plan"));
    assert!(lines.iter().any(|l| l.contains("--profile dist")), "stripped release profile");
    let user = lines.iter().rev().find(|l| l.starts_with("USER ")).unwrap();
    assert!(!user.contains("root"), "{user}");
    assert!(pos("USER kadmesh") < pos("ENTRYPOINT"));
    assert!(lines.iter().any(|l| l.starts_with("VOLUME") && l.contains(DATA)));
    assert!(text.contains(&format!("DHT_DATA_DIR={DATA}")), "--data-dir on the volume");
    assert!(lines.iter().any(|l| l.starts_with("EXPOSE") && l.contains("8468/udp")));
    assert!(lines.iter().any(|l| l.starts_with("HEALTHCHECK") && l.contains(r#"["dhtd", "health"]"#)));
    assert!(!lines.iter().any(|l| l.contains("curl")), "no curl needed");
    let cargo = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let dist = cargo.split("[profile.dist]").nth(1).expect("a dist profile");
    assert!(dist.contains("strip = true") && dist.contains("debug = 0"));
}

/// A free loopback port (UDP or TCP), released for the child to take.
fn free_port(udp: bool) -> u16 {
    match udp {
        true => UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port(),
        false => TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port(),
    }
}

/// The service's command and environment with service names mapped to
/// loopback ports, the way Docker's DNS maps them to containers.
fn localize(args: &[String], ports: &HashMap<String, (u16, u16)>) -> Vec<String> {
    args.iter()
        .map(|a| match a.split_once(':') {
            Some((host, "8468")) if ports.contains_key(host) => format!("127.0.0.1:{}", ports[host].0),
            _ if ports.contains_key(a.as_str()) => "127.0.0.1".to_owned(),
            _ => match a.strip_prefix("http://").and_then(|r| r.split_once(':')) {
                Some((host, _)) if ports.contains_key(host) => format!("http://127.0.0.1:{}", ports[host].1),
                _ => a.clone(),
            },
        })
        .collect()
}

#[test]
fn the_compose_topology_runs_as_processes() {
    let svcs = services(&compose());
    let ports: HashMap<String, (u16, u16)> =
        svcs.keys().map(|k| (k.clone(), (free_port(true), free_port(false)))).collect();
    let dirs = tempfile::tempdir().unwrap();
    let mut running = Vec::new();
    for (name, svc) in &svcs {
        let (udp, http) = ports[name];
        let data = dirs.path().join(name);
        let mut env: Vec<(String, String)> =
            env_of(svc).into_iter().map(|(k, v)| (k, localize(&[v], &ports).remove(0))).collect();
        env.retain(|(k, _)| k != "DHT_HTTP_BIND" && k != "DHT_DATA_DIR");
        env.push(("DHT_HTTP_BIND".into(), format!("127.0.0.1:{http}")));
        env.push(("DHT_DATA_DIR".into(), data.display().to_string()));
        env.push(("DHT_PORT".into(), udp.to_string()));
        env.push(("DHT_BIND".into(), "127.0.0.1".into()));
        let args = localize(&strings(&svc["command"]), &ports);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        running.push((name.clone(), process::Dhtd::start(&args, &env), data));
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let page = format!("http://127.0.0.1:{}", ports["seed-1"].1);
    let mut seen = 0;
    for _ in 0..60 {
        std::thread::sleep(Duration::from_millis(500));
        let topo: Option<serde_json::Value> =
            rt.block_on(async { reqwest::get(format!("{page}/api/dht/topology")).await.ok()?.json().await.ok() });
        seen = topo.and_then(|t| t["stats"]["coordinator_count"].as_u64()).unwrap_or(0);
        if seen == svcs.len() as u64 {
            break;
        }
    }
    assert_eq!(seen, svcs.len() as u64, "seed-1's page does not show every node");
    for (name, _, _) in &running {
        // The image's HEALTHCHECK command, and readiness.
        for extra in [&[][..], &["--ready"][..]] {
            let url = format!("http://127.0.0.1:{}", ports[name].1);
            let out =
                Command::new(env!("CARGO_BIN_EXE_dhtd")).args(["health", "--url", &url]).args(extra).output().unwrap();
            assert!(out.status.success(), "{name} {extra:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    for (name, mut d, data) in running {
        assert!(d.terminate(Duration::from_secs(10)).is_some(), "{name} did not stop cleanly");
        assert!(data.join("kadmesh.state").exists(), "{name} saved no state in its data dir");
    }
}
