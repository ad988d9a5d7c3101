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

/// How a restarted node pings its saved contacts: in waves, stopping once
/// enough answered, so a large state file never turns into a burst of
/// thousands of pings (and a whole network restarting at once does not
/// flood itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestorePacing {
    /// Contacts pinged per wave. Default 32.
    pub wave: usize,
    /// Pause between waves. Default 200 ms.
    pub gap: Duration,
    /// Waves stop once this many contacts answered: the bootstrap's own
    /// lookup fills the table from them. Default 8.
    pub enough: usize,
    /// Most contacts pinged in all; when none of them answers the caller
    /// falls back to its seeds. Default 256.
    pub max_pinged: usize,
}

impl Default for RestorePacing {
    fn default() -> Self {
        RestorePacing { wave: 32, gap: Duration::from_millis(200), enough: 8, max_pinged: 256 }
    }
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
    restore_paced(node, state, RestorePacing::default()).await
}

/// [`restore`] with explicit pacing of the rejoin pings.
pub async fn restore_paced(
    node: &NodeHandle,
    state: SavedState,
    pacing: RestorePacing,
) -> Result<BootstrapOutcome, NodeError> {
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
    let mut total = BootstrapOutcome { seeds_reached: 0, seeds_tried: 0, table_size: 0 };
    let most = addrs.len().min(pacing.max_pinged);
    for (i, wave) in addrs[..most].chunks(pacing.wave.max(1)).enumerate() {
        if i > 0 {
            tokio::time::sleep(pacing.gap).await;
        }
        let got = node.bootstrap(wave.to_vec()).await?;
        total = BootstrapOutcome {
            seeds_reached: total.seeds_reached + got.seeds_reached,
            seeds_tried: total.seeds_tried + got.seeds_tried,
            table_size: got.table_size,
        };
        if total.seeds_reached >= pacing.enough {
            break;
        }
    }
    Ok(total)
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
