//! A shutdown signal shared by every task of a process: triggered once (by
//! a signal, a test, or a task that failed), awaited by many. Cheap to
//! clone; every clone sees the same trigger.

use std::future::Future;

use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct Shutdown {
    tx: std::sync::Arc<watch::Sender<bool>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown {
            tx: std::sync::Arc::new(watch::channel(false).0),
        }
    }

    /// Asks every waiter to stop. Idempotent.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow()
    }

    /// Resolves once [`Shutdown::trigger`] has been called (at once if it
    /// already was). Owns what it needs, so it can be handed to a task.
    pub fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.tx.subscribe();
        async move {
            // The sender lives in `self.tx`, which this future does not
            // hold: if every handle is gone, nobody can trigger any more,
            // and waiting ends too.
            let _ = rx.wait_for(|stopped| *stopped).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_clone_sees_one_trigger_and_late_waiters_return_at_once() {
        let shutdown = Shutdown::new();
        let early = tokio::spawn(shutdown.clone().wait());
        assert!(!shutdown.is_triggered());
        shutdown.clone().trigger();
        early.await.unwrap();
        assert!(shutdown.is_triggered());
        tokio::time::timeout(std::time::Duration::from_secs(1), shutdown.wait())
            .await
            .expect("a waiter after the trigger returns at once");
    }
}
