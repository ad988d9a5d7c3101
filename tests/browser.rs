//! The network page in headless Chromium against a running `dhtd demo`:
//! the expected nodes are drawn, a searched service's providers are
//! highlighted and its recommended worker marked, a node's details open by
//! keyboard, a worker that joins appears and one that leaves goes within
//! 10 s, the exports produce JSON and PNG, the polling fallback keeps the
//! page current, and it lays out at a phone's width. Screenshots go to
//! `target/browser-test/`.
//!
//! Needs Chromium (`apt-get install -y chromium`, `scripts/ci-deps-browser`);
//! without it the test says so and passes as skipped.

#[path = "browser/cdp.rs"]
mod cdp;
#[path = "support/process.rs"]
mod process;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

fn shots() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../browser-test")
}

/// Chromium, and a `dhtd demo` of `nodes` nodes without visitors with its
/// page URL; `None`, saying so, when there is no Chromium.
fn demo_with_chromium(nodes: &str) -> Option<(PathBuf, process::Dhtd, String)> {
    let Some(exe) = cdp::find_chromium() else {
        eprintln!("SKIPPED: no chromium on PATH (apt-get install -y chromium, or scripts/ci-deps-browser)");
        return None;
    };
    let args = ["demo", "--nodes", nodes, "--http-port", "0", "--udp-port", "0", "--churn-every", "0"];
    let demo = process::Dhtd::start(&args, &[]);
    let url = demo.demo_url();
    Some((exe, demo, url))
}

/// The set of strings in a JSON array, sorted.
fn sorted(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()).collect();
    out.sort();
    out
}

#[test]
fn the_page_draws_the_network_searches_opens_details_by_keyboard_and_follows_joins() {
    let Some((exe, demo, url)) = demo_with_chromium("6") else { return };
    let mut b = cdp::Browser::launch(&exe, 1280, 1100);
    b.goto(&format!("{url}/"));
    assert!(b.wait_for("!!window.kadmesh && kadmesh.state.updates > 0", Duration::from_secs(30)).is_some());

    // Every node and worker the topology names is drawn.
    let expect = "fetch('/api/dht/topology').then(r => r.json()).then(t => t.nodes.map(n => n.id).sort())";
    let want = sorted(&b.eval(expect));
    assert_eq!(want.iter().filter(|id| id.len() == 40).count(), 6, "six DHT nodes: {want:?}");
    assert!(want.contains(&"worker-gpu-001".to_owned()) && want.contains(&"worker-store-01".to_owned()));
    let same = format!("JSON.stringify(kadmesh.drawn().sort()) === {:?}", serde_json::to_string(&want).unwrap());
    assert!(b.wait_for(&same, Duration::from_secs(10)).is_some(), "drawn: {}", b.eval("kadmesh.drawn()"));
    assert_eq!(b.eval("document.querySelectorAll('#node-list button').length"), json!(want.len()));
    b.screenshot(&shots().join("1-network.png"));

    // Search: the providers of ocr are highlighted and the recommended one marked.
    b.eval("document.getElementById('search').focus()");
    b.type_text("ocr");
    let providers = sorted(&b.eval(
        "fetch('/api/dht/topology').then(r => r.json()).then(t => t.nodes.filter(n => n.node_type === 'worker' && n.services.includes('ocr')).map(n => n.id))",
    ));
    assert!(providers.len() >= 4, "{providers:?}");
    let lit =
        format!("JSON.stringify(kadmesh.highlighted().sort()) === {:?}", serde_json::to_string(&providers).unwrap());
    assert!(b.wait_for(&lit, Duration::from_secs(5)).is_some(), "highlighted: {}", b.eval("kadmesh.highlighted()"));
    let recommended = b.eval("fetch('/api/services/discover/ocr').then(r => r.json()).then(d => d.recommended)");
    let marked = format!("kadmesh.state.recommended === {recommended}");
    assert!(b.wait_for(&marked, Duration::from_secs(5)).is_some(), "recommended {recommended} not marked");
    assert!(b.eval("document.getElementById('search-result').textContent").as_str().unwrap().contains("recommended"));
    b.screenshot(&shots().join("2-search-ocr.png"));

    // Keyboard only: Tab to the ring, an arrow to a node, Enter for its details.
    let mut on_ring = false;
    for _ in 0..20 {
        b.press("Tab");
        if b.eval("document.activeElement && document.activeElement.id") == json!("ring") {
            on_ring = true;
            break;
        }
    }
    assert!(on_ring, "Tab never reached the ring");
    b.press("ArrowRight");
    b.press("Enter");
    let selected = b.eval("kadmesh.state.selected");
    assert!(selected.is_string(), "no node selected by the arrow key");
    assert_eq!(b.eval("kadmesh.details()"), selected);
    let text = b.eval("document.getElementById('details').textContent");
    assert!(text.as_str().unwrap().contains(selected.as_str().unwrap()), "{text}");
    assert!(text.as_str().unwrap().contains("last seen"), "{text}");
    b.screenshot(&shots().join("3-details-by-keyboard.png"));

    // A worker joins through the HTTP surface: drawn within 10 s.
    let register = r#"fetch('/api/worker/register', {method: 'POST', headers: {'Content-Type': 'application/json'},
        body: JSON.stringify({worker_id: 'browser-test-worker', tunnel_url: 'https://browser-test-worker.example-tunnel.net',
        capabilities: {has_gpu: true, gpu_type: 'Test GPU'}, services: ['ocr']})}).then(async r => { window.testCredential = (await r.json()).credential; return r.status; })"#;
    assert_eq!(b.eval(register), json!(200));
    let joined = b.wait_for("kadmesh.drawn().includes('browser-test-worker')", Duration::from_secs(10));
    assert!(joined.is_some(), "a joining worker was not drawn within 10 s");
    b.screenshot(&shots().join("4-joined.png"));
    // Unregistering needs the credential the registration answered (issue 14).
    let leave = "fetch('/api/worker/unregister/browser-test-worker', {method: 'DELETE', \
                 headers: {'X-Kadmesh-Credential': window.testCredential}}).then(r => r.status)";
    assert_eq!(b.eval(leave), json!(200));
    let left = b.wait_for("!kadmesh.drawn().includes('browser-test-worker')", Duration::from_secs(10));
    assert!(left.is_some(), "a leaving worker was still drawn after 10 s");
    eprintln!("joined drawn after {joined:?}, departure after {left:?}; screenshots in {}", shots().display());

    // Export: the buttons hand a JSON document and a PNG to the download link.
    b.eval("window.blobs = []; const make = URL.createObjectURL; URL.createObjectURL = (x) => { blobs.push(x); return make(x); }; true");
    b.eval("document.getElementById('export-json').click(); document.getElementById('export-png').click(); true");
    assert!(b.wait_for("blobs.length === 2", Duration::from_secs(5)).is_some(), "exports: {}", b.eval("blobs.length"));
    let kinds = b.eval("Promise.all(blobs.map(x => x.text().then(t => [x.type, x.size, t.slice(0, 8)])))");
    let json_doc = kinds.as_array().unwrap().iter().find(|k| k[0] == "application/json").expect("a JSON export");
    assert!(json_doc[2].as_str().unwrap().starts_with('{'), "{kinds}");
    let png = kinds.as_array().unwrap().iter().find(|k| k[0] == "image/png").expect("a PNG export");
    assert!(png[1].as_u64().unwrap() > 1000, "{kinds}");

    // The polling fallback keeps the page current without the stream.
    b.goto(&format!("{url}/?poll"));
    let polled = "!!window.kadmesh && kadmesh.state.feed === 'polling' && kadmesh.state.updates >= 2 && kadmesh.drawn().length > 6";
    assert!(b.wait_for(polled, Duration::from_secs(15)).is_some(), "polling: {}", b.eval("kadmesh.state.feed"));

    // Phone width: the page still lays out and draws.
    b.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true}),
        true,
    );
    assert!(b
        .wait_for(
            "document.getElementById('ring').clientWidth <= 390 && kadmesh.drawn().length > 6",
            Duration::from_secs(5)
        )
        .is_some());
    b.screenshot(&shots().join("5-phone.png"));
    drop(b);
    let mut demo = demo;
    assert!(demo.terminate(Duration::from_secs(10)).is_some(), "the demo did not stop on SIGTERM within 10 s");
}

/// A measurement, not a check of speed: draws a 1,000-node demo network and
/// prints what one frame and one update cost in this (software-rendering)
/// headless Chromium. Run: `cargo test --test browser -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement; run by hand"]
fn page_cost_at_1000_nodes() {
    let Some((exe, demo, url)) = demo_with_chromium("1000") else { return };
    while let Some(line) = demo.line(Duration::from_secs(120)) {
        if line.starts_with("Ctrl-C") {
            break;
        }
    }
    let mut b = cdp::Browser::launch(&exe, 1280, 1100);
    b.goto(&format!("{url}/"));
    assert!(b.wait_for("!!window.kadmesh && kadmesh.drawn().length >= 1007", Duration::from_secs(60)).is_some());
    std::thread::sleep(Duration::from_secs(2));
    let frame = b.eval(
        "(() => { const c = document.getElementById('ring'); const v = {visible: () => true, highlight: new Set(), \
         recommended: null, selected: null, hovered: null}; const t0 = performance.now(); \
         for (let i = 0; i < 60; i++) { Ring.step(); Ring.draw(c, v); } return (performance.now() - t0) / 60; })()",
    );
    let update = b.eval(
        "fetch('/api/dht/topology').then(r => r.text()).then(text => { const t0 = performance.now(); \
         for (let i = 0; i < 5; i++) kadmesh.apply(JSON.parse(text)); return [(performance.now() - t0) / 5, text.length]; })",
    );
    let links = b.eval("kadmesh.state.topo.connections.length");
    b.screenshot(&shots().join("1000-nodes.png"));
    println!("| nodes drawn | links | frame ms | update ms (parse + layout + list) | topology JSON bytes |");
    println!("|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {links} | {:.1} | {:.1} | {} |",
        b.eval("kadmesh.drawn().length"),
        frame.as_f64().unwrap(),
        update[0].as_f64().unwrap(),
        update[1]
    );
}
