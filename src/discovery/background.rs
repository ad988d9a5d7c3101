//! The few discovery tasks that may run past the request that started them
//! (a registration answered after `publish_wait` while its record is still
//! being written; legacy lists rebuilt after a change). They are held here,
//! not detached: [`Discovery::shutdown`](super::Discovery::shutdown) aborts
//! them, and finished ones are reaped as new ones start.

use std::future::Future;
use std::sync::Mutex;

use tokio::task::JoinSet;

#[derive(Debug, Default)]
pub(crate) struct Background {
    tasks: Mutex<JoinSet<()>>,
}

impl Background {
    fn lock(&self) -> std::sync::MutexGuard<'_, JoinSet<()>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `task` until it ends or shutdown aborts it.
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let mut tasks = self.lock();
        while tasks.try_join_next().is_some() {}
        tasks.spawn(task);
    }

    /// Aborts every task still running.
    pub(crate) fn abort_all(&self) {
        self.lock().abort_all();
    }

    /// Tasks not yet reaped.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn abort_all_ends_running_tasks_and_finished_ones_are_reaped() {
        let bg = Background::default();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        bg.spawn(async move {
            std::future::pending::<()>().await;
            drop(tx);
        });
        bg.spawn(async {});
        tokio::time::sleep(Duration::from_millis(20)).await;
        bg.spawn(async {});
        assert!(bg.len() <= 2, "the finished task was reaped");
        bg.abort_all();
        // The aborted task drops its sender: the receiver sees it end.
        let ended = tokio::time::timeout(Duration::from_secs(5), rx).await;
        assert!(matches!(ended, Ok(Err(_))), "the pending task was aborted");
    }
}
