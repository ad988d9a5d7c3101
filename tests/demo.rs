//! The one-command demo as a newcomer meets it: `dhtd demo` (what
//! `scripts/demo` runs once both binaries are built) prints the page URL
//! first, serves the page and a network with workers, lets a visiting
//! worker come and go, and stops on SIGTERM within a bounded time.

#[path = "support/process.rs"]
mod process;

use std::time::Duration;

use serde_json::Value;

fn get(rt: &tokio::runtime::Runtime, url: &str) -> (u16, String) {
    rt.block_on(async {
        let r = reqwest::get(url).await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    })
}

fn worker_ids(v: &Value) -> Vec<String> {
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["node_type"] == "worker")
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_demo_prints_its_page_first_serves_a_moving_network_and_stops_in_bounded_time() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let args =
        ["demo", "--nodes", "5", "--http-port", "0", "--udp-port", "0", "--churn-every", "2", "--heartbeat-every", "1"];
    let mut demo = process::Dhtd::start(&args, &[]);
    let url = demo.demo_url();
    let mut rest = Vec::new();
    while let Some(line) = demo.line(Duration::from_secs(30)) {
        let done = line.starts_with("Ctrl-C");
        rest.push(line);
        if done {
            break;
        }
    }
    assert!(rest.iter().any(|l| l.contains("dhtctl")), "no dhtctl line to try: {rest:?}");
    let (status, page) = get(&rt, &format!("{url}/"));
    assert_eq!(status, 200);
    assert!(page.contains("kadmesh network"));
    let (status, body) = get(&rt, &format!("{url}/api/dht/topology"));
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["stats"]["coordinator_count"], 5, "{body}");
    let samples = worker_ids(&v).iter().filter(|id| !id.starts_with("visitor-")).count();
    assert_eq!(samples, 7, "{body}");
    // A visitor comes and the previous one goes every 2 s: within 20 s two different ones are seen.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(500));
        let (_, body) = get(&rt, &format!("{url}/api/dht/topology"));
        let v: Value = serde_json::from_str(&body).unwrap();
        seen.extend(worker_ids(&v).into_iter().filter(|id| id.starts_with("visitor-")));
        if seen.len() >= 2 {
            break;
        }
    }
    assert!(seen.len() >= 2, "visitors seen: {seen:?}");
    let (_, metrics) = get(&rt, &format!("{url}/metrics"));
    let lookups: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("kadmesh_lookups_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(lookups > 0, "no lookup traffic: {metrics}");
    let took = demo.terminate(Duration::from_secs(10));
    assert!(took.is_some(), "the demo did not stop within 10 s of SIGTERM");
}
