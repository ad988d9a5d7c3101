//! Persistence for a running node: snapshot through its handle, restore and
//! rejoin, save on shutdown, and a periodic autosave.
//!
//! File writes run on tokio's blocking pool so a large state never stalls
//! the runtime; the snapshot itself is taken inside the node task (one clone
//! of the records, between two datagrams).

use std::time::Duration;

use tokio::task::JoinHandle;

use super::{PersistError, SavedState, StateDir};
use crate::engine::{BootstrapOutcome, Config};
use crate::node::{NodeError, NodeHandle};

/// How widely a restarted node spreads the first republish of its saved
/// records: a sixth of the republish interval (10 minutes by default). A
/// whole network restarting at once then republishes over minutes, not in
/// one burst, and each node's queue is also capped at
/// `max_maintenance_ops` in flight.
pub fn republish_spread(config: &Config) -> Duration {
    config.republish_interval / 6
}

/// The node's current state.
pub async fn snapshot(node: &NodeHandle) -> Result<SavedState, NodeError> {
    node.with_engine(|engine, now| SavedState::capture(engine, now)).await
}

/// Loads `state` into a freshly spawned node (spawn it with `state.id`) and
/// rejoins the network by bootstrapping from the saved contacts: no seed is
/// needed while any of them is still up. Returns that bootstrap's outcome;
/// when it reached nobody (the whole network restarted too), fall back to
/// the configured seeds.
pub async fn restore(node: &NodeHandle, state: SavedState) -> Result<BootstrapOutcome, NodeError> {
    if node.id() != state.id {
        tracing::warn!(saved = %state.id, running = %node.id(), "restoring state saved under another node id");
    }
    let (records, published) = (state.records.len(), state.published.len());
    let addrs = node
        .with_engine(move |engine, now| {
            let spread = republish_spread(engine.config());
            state.restore_into(engine, now, spread)
        })
        .await?;
    tracing::info!(
        records,
        published,
        contacts = addrs.len(),
        "restored saved state; rejoining through saved contacts"
    );
    node.bootstrap(addrs).await
}

/// Snapshots `node` and writes it to `dir`.
pub async fn save(node: &NodeHandle, dir: &StateDir) -> Result<(), PersistError> {
    let state = snapshot(node).await?;
    write(dir, state).await
}

/// Graceful shutdown: snapshots the node, stops it, then writes the state.
pub async fn shutdown_saving(node: &NodeHandle, dir: &StateDir) -> Result<(), PersistError> {
    let state = snapshot(node).await?;
    node.shutdown().await;
    write(dir, state).await
}

/// Saves `node` to `dir` every `every` until the node stops. Failures are
/// logged as warnings and retried at the next tick; abort the returned task
/// to stop early.
pub fn spawn_autosave(node: NodeHandle, dir: StateDir, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            match save(&node, &dir).await {
                Ok(()) => tracing::debug!(path = %dir.path().display(), "state saved"),
                Err(PersistError::Node(_)) => return,
                Err(e) => tracing::warn!(error = %e, "autosave failed; retrying at the next interval"),
            }
        }
    })
}

async fn write(dir: &StateDir, state: SavedState) -> Result<(), PersistError> {
    let dir = dir.clone();
    let path = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || dir.save(&state)).await.map_err(|e| PersistError::Io {
        path,
        action: "the save task failed",
        source: std::io::Error::other(e.to_string()),
    })?
}
