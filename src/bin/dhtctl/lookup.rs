//! `lookup SERVICE`: healthy workers for a service, straight from the DHT,
//! through the library's discovery layer ([`kadmesh::discovery`]): provider
//! sets and legacy `service:{type}` lists, then `worker:{id}` records
//! filtered by health. dhtctl only adds the `--min-cores` filter, which the
//! discovery filter does not have, on the records it returns.

use std::time::Duration;

use kadmesh::discovery::input::DiscoverFilter;
use kadmesh::discovery::{Discovery, DiscoveryConfig, DiscoveryError, Source, WorkerRecord};
use serde_json::{json, Value as Json};

use crate::args::{Global, LookupArgs};
use crate::net;
use crate::output::{emit, emit_json, Failure, Table};

pub async fn lookup(g: &Global, a: &LookupArgs) -> Result<(), Failure> {
    let (config, filter) = settings(g, a)?;
    let window = config.worker_ttl;
    let joined = net::join(g).await?;
    let discovery = Discovery::new(joined.node.clone(), config).map_err(|e| Failure::Other(e.to_string()))?;
    let answer = discovery.discover(&a.service, &filter).await;
    let now = discovery.now();
    joined.node.shutdown().await;
    let answer = answer.map_err(|e| match e {
        DiscoveryError::Invalid(_) | DiscoveryError::Config(_) => Failure::BadInput(e.to_string()),
        DiscoveryError::NoHealthyWorkers { .. } => Failure::NotFound(e.to_string()),
        DiscoveryError::UnknownWorker(_) | DiscoveryError::Forbidden(_) | DiscoveryError::Node(_) => {
            Failure::Other(e.to_string())
        }
    })?;
    let Source::Dht { mut workers, providers, replicas } = answer.source else {
        return Err(Failure::Other("discovery answered from a coordinator, which dhtctl never configures".into()));
    };
    workers.retain(|w| a.min_cores.is_none_or(|min| cores(w).is_some_and(|c| c >= min)));
    if let Some(limit) = a.limit {
        workers.truncate(limit as usize);
    }
    if workers.is_empty() {
        let why = format!("no healthy worker for {:?} matches the filters ({providers} provider(s) seen)", a.service);
        return Err(Failure::NotFound(why));
    }
    if g.json {
        let list: Vec<Json> = workers.iter().map(|w| w.view(now, window)).collect();
        emit_json(&json!({
            "service": a.service,
            "workers": list,
            "count": workers.len(),
            "recommended": workers[0].worker_id,
            "providers_seen": providers,
            "replicas_read": replicas,
        }));
    } else {
        emit(&table(&workers, now));
        emit(&format!(
            "{} healthy worker(s) for {:?} ({providers} provider(s) seen, {replicas} replica(s) read); recommended: {}",
            workers.len(),
            a.service,
            workers[0].worker_id
        ));
    }
    Ok(())
}

/// Discovery settings for a one-off reader: the liveness window from
/// `--max-age`, no cache, no refresher, lookups bounded by `--timeout`.
fn settings(g: &Global, a: &LookupArgs) -> Result<(DiscoveryConfig, DiscoverFilter), Failure> {
    if a.min_memory.is_some_and(|m| !(m.is_finite() && m >= 0.0)) {
        return Err(Failure::BadInput("--min-memory must be a number of at least 0".into()));
    }
    let window = Duration::from_secs(a.max_age);
    let config = DiscoveryConfig {
        worker_ttl: window,
        stale_after: window * 2,
        refresh_interval: window / 2,
        cache_ttl: Duration::ZERO,
        lookup_timeout: g.timeout,
        ..DiscoveryConfig::default()
    };
    config.validate().map_err(|e| Failure::BadInput(e.to_string()))?;
    // --min-cores filters after discovery, so the limit must wait until then.
    let filter = DiscoverFilter { gpu: a.gpu, min_memory: a.min_memory, limit: None };
    Ok((config, filter))
}

fn cores(w: &WorkerRecord) -> Option<u64> {
    let v = w.capabilities.get("cpu_cores")?;
    v.as_u64().or_else(|| v.as_f64().map(|f| f as u64)).or_else(|| v.as_str()?.trim().parse().ok())
}

fn table(workers: &[WorkerRecord], now: f64) -> String {
    let mut t = Table::new(&["WORKER", "LOAD", "LAST_SEEN", "GPU", "CORES", "TUNNEL_URL"]);
    for w in workers {
        let seen = w.last_seen.map_or_else(|| "-".to_owned(), |s| format!("{:.0} s ago", (now - s).max(0.0)));
        let gpu = match w.capabilities.get("gpu_type").and_then(Json::as_str) {
            Some(kind) if !kind.trim().is_empty() => kind.to_owned(),
            _ if w.has_gpu() => "yes".to_owned(),
            _ => "-".to_owned(),
        };
        let cores = cores(w).map_or_else(|| "-".to_owned(), |c| c.to_string());
        t.row(vec![w.worker_id.clone(), format!("{:.2}", w.load), seen, gpu, cores, w.tunnel_url.clone()]);
    }
    t.render()
}
