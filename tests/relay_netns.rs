//! A host with no UDP at all (issue 15), across real network hops: in the
//! namespace lab of `tests/netns.rs`, delta's firewall drops every UDP
//! datagram both ways (and counts the outgoing ones). Its daemon runs
//! `--no-udp --relay http://alpha:8080`: it joins, registers a worker that
//! the LAN hosts discover, discovers theirs, reports `no-udp`, is in nobody's
//! routing table, and never sends a single UDP datagram.
//!
//! Skipped (passes, saying why) where namespaces cannot be created; needs
//! `ip` (iproute2) and `nft` (nftables).

#[path = "netns/client.rs"]
mod client;
// The partition and NAT parts of the lab serve tests/netns.rs.
#[allow(dead_code)]
#[path = "netns/lab.rs"]
mod lab;

use std::time::Duration;

use client::Reply;
use lab::{Lab, Setup, HOSTS, HTTP_PORT};

const ALPHA: usize = 0;
const BRAVO: usize = 1;
const CHARLIE: usize = 2;
const DELTA: usize = 3;

fn settle<T>(what: &str, mut attempt: impl FnMut() -> Option<T>) -> T {
    for _ in 0..20 {
        if let Some(v) = attempt() {
            return v;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    panic!("{what}: not reached after 20 tries");
}

/// `GET path` on `host`'s own daemon (from inside its namespace): the JSON, if 2xx.
fn get(lab: &Lab, host: usize, path: &str) -> Option<serde_json::Value> {
    match lab.client(host, "http-get", &format!("http://127.0.0.1:{HTTP_PORT}{path}"), "") {
        Reply::Http { status: 200..=299, body } => Some(body),
        _ => None,
    }
}

fn register(lab: &Lab, host: usize, id: &str) {
    let url = format!("http://127.0.0.1:{HTTP_PORT}/api/worker/register");
    let body = format!(
        r#"{{"worker_id":"{id}","tunnel_url":"https://{id}.example","capabilities":{{}},"services":["ocr-relay"]}}"#
    );
    settle(&format!("{id} registered on {}", HOSTS[host]), || {
        matches!(lab.client(host, "http-post", &url, &body), Reply::Http { status: 200, .. }).then_some(())
    });
}

fn discovers_both(lab: &Lab, host: usize) -> bool {
    let Some(body) = get(lab, host, "/api/services/discover/ocr-relay") else { return false };
    let ids: Vec<&str> =
        body["workers"].as_array().into_iter().flatten().filter_map(|w| w["worker_id"].as_str()).collect();
    ids.contains(&"w-no-udp") && ids.contains(&"w-lan")
}

#[test]
fn a_host_without_any_udp_joins_registers_and_discovers_through_a_relay() {
    let lab = match Lab::build() {
        Ok(lab) => lab,
        Err(Setup::Skip(reason)) => return eprintln!("skipping: cannot create network namespaces: {reason}"),
        Err(Setup::Fail(msg)) => panic!("building the namespace lab failed: {msg}"),
    };
    let http_any = format!("0.0.0.0:{HTTP_PORT}");
    lab.start_dhtd_with(ALPHA, &[], &["--http-bind", &http_any, "--reachability", "public"]);
    settle("alpha answering", || matches!(lab.get(ALPHA, "nothing"), Reply::Found(None)).then_some(()));
    lab.start_dhtd(BRAVO, &["alpha"]);
    lab.start_dhtd(CHARLIE, &["alpha"]);
    // Delta joins a network that has settled a moment: alpha's answer to a
    // client then leaves out the contacts it is checking, and delta, whom
    // nobody asks anything, looks itself up again 5 s later (without that,
    // it stayed at one peer).
    settle("alpha knows bravo and charlie", || get(&lab, ALPHA, "/health").filter(|h| h["peers"].as_u64() >= Some(2)));
    if let Err(e) = lab.drop_all_udp(DELTA) {
        return eprintln!("skipping: no nftables: {e}");
    }
    let relay = format!("http://alpha:{HTTP_PORT}");
    lab.start_dhtd_with(DELTA, &[], &["--no-udp", "--relay", &relay]);

    let health =
        settle("delta healthy with peers", || get(&lab, DELTA, "/health").filter(|h| h["peers"].as_u64() >= Some(3)));
    assert_eq!(health["reachability"]["state"], "no-udp", "{health}");
    assert_eq!(health["reachability"]["client"], true, "{health}");
    let delta_id = health["node_id"].as_str().expect("a node id").to_owned();

    register(&lab, DELTA, "w-no-udp");
    register(&lab, BRAVO, "w-lan");
    for host in [DELTA, CHARLIE, ALPHA] {
        settle(&format!("{} discovers both workers", HOSTS[host]), || discovers_both(&lab, host).then_some(()));
    }
    // Nobody holds delta (alpha's bootstrap document lists its contacts).
    let doc = get(&lab, ALPHA, "/api/dht/bootstrap").expect("alpha's bootstrap document");
    assert!(!doc.to_string().contains(&delta_id), "alpha holds the host without UDP: {doc}");
    assert_eq!(lab.udp_sent(DELTA), Some(0), "delta sent UDP");
}

/// Not a test: the client the lab runs inside a host's namespace.
#[test]
#[ignore = "helper process for the namespace test; does nothing when run by hand"]
fn netns_client() {
    client::run_from_env();
}
