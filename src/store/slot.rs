//! Where a process keeps its store while the database may not answer yet.
//!
//! A process does not wait for its database to start serving: HTTP listens
//! at once, sync calls need no database, and a task connects in the
//! background (see `app.rs`). Until it has, the slot is empty: async and
//! one-way calls fault with QUEUE_UNAVAILABLE, `/readyz` says why, and the
//! job workers wait for [`StoreSlot::connected`]. Once filled the slot
//! stays filled — a database that goes away later is the pool's to
//! reconnect to, and each query's error says so meanwhile.

use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::Notify;

use super::Store;

/// The store of a process, or why there is none yet. Cheap to clone; every
/// clone sees the same store.
#[derive(Debug, Clone)]
pub struct StoreSlot {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: OnceLock<Store>,
    /// Whether the process has a database at all (state built without one
    /// serves sync calls only).
    configured: bool,
    /// Why the last attempt to connect failed.
    last_error: Mutex<Option<String>>,
    filled: Notify,
}

/// What `/readyz` reports of the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotState {
    /// No database configured: sync calls only.
    None,
    /// Configured and not connected yet; the last attempt's error, if one
    /// has failed.
    Connecting(Option<String>),
    Connected,
}

impl StoreSlot {
    /// A slot that stays empty: no database configured.
    pub fn none() -> StoreSlot {
        StoreSlot::new(false)
    }

    /// A slot waiting for [`StoreSlot::fill`].
    pub fn connecting() -> StoreSlot {
        StoreSlot::new(true)
    }

    /// A slot holding `store` from the start.
    pub fn ready(store: Store) -> StoreSlot {
        let slot = StoreSlot::connecting();
        slot.fill(store);
        slot
    }

    fn new(configured: bool) -> StoreSlot {
        StoreSlot {
            inner: Arc::new(Inner {
                store: OnceLock::new(),
                configured,
                last_error: Mutex::new(None),
                filled: Notify::new(),
            }),
        }
    }

    /// The store, once connected.
    pub fn get(&self) -> Option<&Store> {
        self.inner.store.get()
    }

    /// Puts the connected store in; a second fill is ignored (the first
    /// store stays, so every clone keeps seeing one store).
    pub fn fill(&self, store: Store) {
        if self.inner.store.set(store).is_ok() {
            *self.error_guard() = None;
            self.inner.filled.notify_waiters();
        }
    }

    /// Records why the latest attempt to connect failed, for `/readyz`.
    pub fn failed(&self, error: String) {
        *self.error_guard() = Some(error);
    }

    pub fn state(&self) -> SlotState {
        if self.get().is_some() {
            SlotState::Connected
        } else if self.inner.configured {
            SlotState::Connecting(self.error_guard().clone())
        } else {
            SlotState::None
        }
    }

    /// Resolves with the store once the slot is filled (at once if it is).
    pub async fn connected(&self) -> Store {
        loop {
            // Registered before checking, so a fill in between still wakes.
            let filled = self.inner.filled.notified();
            if let Some(store) = self.get() {
                return store.clone();
            }
            filled.await;
        }
    }

    fn error_guard(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        // The guarded value is a plain Option: a panic elsewhere while it
        // was held cannot have left it half-written.
        self.inner
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiter_gets_the_store_filled_after_it_started_waiting() {
        let slot = StoreSlot::connecting();
        assert_eq!(slot.state(), SlotState::Connecting(None));
        slot.failed("connection refused".into());
        assert_eq!(
            slot.state(),
            SlotState::Connecting(Some("connection refused".into()))
        );
        let waiter = tokio::spawn({
            let slot = slot.clone();
            async move { slot.connected().await }
        });
        tokio::task::yield_now().await;
        let store = Store::connect("sqlite::memory:").await.expect("store");
        slot.fill(store);
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("the waiter woke")
            .expect("task");
        got.ping().await.expect("the filled store answers");
        assert_eq!(slot.state(), SlotState::Connected);
        assert!(StoreSlot::none().get().is_none());
        assert_eq!(StoreSlot::none().state(), SlotState::None);
    }
}
