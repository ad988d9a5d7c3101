//! Both sides of `versus` run a small plan end to end: the numbers in the
//! README come from code that works on every `cargo test`.

use std::sync::Arc;
use std::time::Duration;

use crate::plan::Plan;
use crate::{python_side, rust_side};

fn small_plan() -> Plan {
    Plan::draw(8, 10, 30, 4, 10.0, 11)
}

#[test]
fn rust_side_runs_a_small_plan() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let plan = Arc::new(small_plan());
    let r = rt.block_on(rust_side::run(plan, 11)).unwrap();
    assert_eq!((r.join_s.len(), r.set_s.len(), r.get_s.len()), (7, 10, 30));
    assert_eq!((r.set_ok, r.get_ok), (10, 30), "every set stored and every get found on loopback");
    assert!(r.get_wall_s > 0.0 && r.rss_end_kib > 0);
}

#[test]
fn gets_of_records_with_a_current_last_seen_end_at_their_first_copy() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let now = crate::unix_now();
    // Sixty nodes: most are not among a key's 20 closest, so most gets look it up.
    let plan = || Plan::draw(60, 10, 40, 4, 10.0, 11);
    let plain = rt.block_on(rust_side::run(Arc::new(plan()), 11)).unwrap();
    let fresh = rt.block_on(rust_side::run(Arc::new(plan().with_last_seen(now)), 11)).unwrap();
    assert_eq!((plain.get_ok, fresh.get_ok), (40, 40));
    assert!(
        fresh.get_rpcs < plain.get_rpcs,
        "collecting copies asks more: {} find_value with last_seen, {} without",
        fresh.get_rpcs,
        plain.get_rpcs
    );
}

#[test]
fn python_side_runs_the_same_plan_where_kademlia_is_installed() {
    let python = python_side::default_python();
    if !python.exists() {
        eprintln!("skipping: no Python with kademlia at {} (scripts/test creates .venv)", python.display());
        return;
    }
    let r = python_side::run(&python, &small_plan(), Duration::from_secs(60), false).unwrap();
    assert_eq!((r.join_s.len(), r.set_s.len(), r.get_s.len()), (7, 10, 30));
    assert_eq!(r.get_ok, 30, "stock kademlia finds every key on a small loopback network");
    assert!(r.label.starts_with("kademlia "), "label {}", r.label);
}

#[test]
fn a_missing_python_is_one_clear_error() {
    let err =
        python_side::run("/nonexistent/python".as_ref(), &small_plan(), Duration::from_secs(5), false).unwrap_err();
    assert!(err.contains("no Python at /nonexistent/python"), "{err}");
}
