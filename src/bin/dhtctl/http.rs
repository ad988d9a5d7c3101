//! `workers` and `topology`: a node's HTTP surface, in the platform's shapes
//! (`/api/services/list`, `/api/services/discover/{service}`,
//! `/api/dht/topology`). `--json` prints the node's document unchanged, so
//! scripts see exactly what the platform's frontend sees; tables read the
//! fields leniently (a missing field shows as `-`).

use kadmesh::node::Clock;
use reqwest::StatusCode;
use serde_json::Value as Json;

use crate::args::{Global, HttpArgs, WorkersArgs};
use crate::net::check_url;
use crate::output::{emit, emit_json, Failure, Table};

/// GETs `base` + `segments`; 404 and 503 come back as `NotFound` with the
/// server's own message when it gave one.
async fn fetch(g: &Global, base: &str, segments: &[&str]) -> Result<Json, Failure> {
    let mut url = check_url(base)?;
    url.path_segments_mut()
        .map_err(|_| Failure::BadInput(format!("URL {base:?} cannot take a path")))?
        .pop_if_empty()
        .extend(segments);
    let client = reqwest::Client::builder()
        .timeout(g.timeout)
        .build()
        .map_err(|e| Failure::Other(format!("HTTP client: {e}")))?;
    let resp = client.get(url.clone()).send().await.map_err(|e| {
        let why = format!("{url}: {}", root_cause(&e));
        if e.is_connect() || e.is_timeout() {
            Failure::Unreachable(why)
        } else {
            Failure::Other(why)
        }
    })?;
    let status = resp.status();
    let body: Result<Json, _> = resp.json().await;
    match (status, body) {
        (s, Ok(doc)) if s.is_success() => Ok(doc),
        (s, Err(e)) if s.is_success() => Err(Failure::Other(format!("{url}: not a JSON document: {e}"))),
        (StatusCode::NOT_FOUND | StatusCode::SERVICE_UNAVAILABLE, body) => {
            let detail = body.ok().as_ref().and_then(message).unwrap_or_else(|| format!("HTTP {status}"));
            Err(Failure::NotFound(format!("{url}: {detail}")))
        }
        (s, _) => Err(Failure::Other(format!("{url}: HTTP {s}"))),
    }
}

/// The innermost error text: reqwest's outer message says only "error
/// sending request".
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// FastAPI puts its message in `detail`; others use `message` or `error`.
fn message(doc: &Json) -> Option<String> {
    ["detail", "message", "error"].iter().find_map(|k| doc.get(k)).map(text)
}

/// A JSON scalar for a table cell.
fn text(v: &Json) -> String {
    match v {
        Json::Null => "-".into(),
        Json::String(s) => s.clone(),
        Json::Array(a) => a.iter().map(text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

fn field<'a>(v: &'a Json, names: &[&str]) -> &'a Json {
    names.iter().find_map(|n| v.get(n)).unwrap_or(&Json::Null)
}

pub async fn workers(g: &Global, a: &WorkersArgs) -> Result<(), Failure> {
    let Some(service) = &a.service else {
        let doc = fetch(g, &a.http.url, &["api", "services", "list"]).await?;
        return print_services(g, &doc);
    };
    let doc = fetch(g, &a.http.url, &["api", "services", "discover", service]).await?;
    let workers = doc.get("workers").and_then(Json::as_array).cloned().unwrap_or_default();
    if workers.is_empty() {
        return Err(Failure::NotFound(format!("no healthy worker offers {service:?}")));
    }
    if g.json {
        emit_json(&doc);
        return Ok(());
    }
    let now = Clock::new().unix_secs();
    let mut t = Table::new(&["WORKER", "LOAD", "LAST_HEARTBEAT", "TUNNEL_URL", "CAPABILITIES"]);
    for w in &workers {
        let caps = w.get("capabilities").map_or_else(|| "-".into(), |c| c.to_string());
        let seen = field(w, &["last_heartbeat", "last_seen"]).as_f64();
        let age = seen.map_or_else(|| "-".to_owned(), |s| format!("{:.0} s ago", (now - s).max(0.0)));
        let load = field(w, &["load"]).as_f64().map_or_else(|| "-".to_owned(), |l| format!("{l:.2}"));
        t.row(vec![text(field(w, &["worker_id"])), load, age, text(field(w, &["tunnel_url"])), caps]);
    }
    emit(&t.render());
    emit(&format!("recommended: {}", text(field(&doc, &["recommended"]))));
    Ok(())
}

fn print_services(g: &Global, doc: &Json) -> Result<(), Failure> {
    if g.json {
        emit_json(doc);
        return Ok(());
    }
    let services = doc.get("services").and_then(Json::as_object);
    let services =
        services.ok_or_else(|| Failure::Other("the node's /api/services/list has no \"services\"".into()))?;
    let mut t = Table::new(&["SERVICE", "HEALTHY_WORKERS"]);
    let mut names: Vec<&String> = services.keys().collect();
    names.sort();
    for name in names {
        t.row(vec![name.clone(), text(field(&services[name], &["healthy_workers"]))]);
    }
    emit(&t.render());
    emit(&format!("total available: {}", text(field(doc, &["total_available"]))));
    Ok(())
}

pub async fn topology(g: &Global, a: &HttpArgs) -> Result<(), Failure> {
    let doc = fetch(g, &a.url, &["api", "dht", "topology"]).await?;
    if g.json {
        emit_json(&doc);
        return Ok(());
    }
    let nodes = doc.get("nodes").and_then(Json::as_array).cloned().unwrap_or_default();
    let mut t = Table::new(&["ID", "TYPE", "STATUS", "DHT_PORT", "LOAD", "SERVICES"]);
    for n in &nodes {
        let id = text(field(n, &["node_id", "id"]));
        let short: String = id.chars().take(16).collect();
        let rest = [field(n, &["node_type", "type"]), field(n, &["status"]), field(n, &["dht_port"])];
        let mut row = vec![short];
        row.extend(rest.iter().map(|v| text(v)));
        row.extend([text(field(n, &["load"])), text(field(n, &["services"]))]);
        t.row(row);
    }
    emit(&t.render());
    let links = field(&doc, &["connections", "edges"]).as_array().map_or(0, Vec::len);
    let stats = field(&doc, &["stats"]);
    let count = |k: &str| text(field(stats, &[k]));
    emit(&format!(
        "{} nodes ({} coordinators, {} workers, {} healthy), {links} connections",
        nodes.len(),
        count("coordinator_count"),
        count("worker_count"),
        count("healthy_count")
    ));
    Ok(())
}
