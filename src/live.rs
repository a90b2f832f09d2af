//! The live set of contracts and mappings an instance serves, swapped
//! atomically.
//!
//! Admins edit the WSDL and mapping folders while the service runs. A change (seen by a
//! file watch, or asked for with SIGHUP) reloads the whole set; a set with
//! any error is refused as a whole and logged with `path:line:col`, and the
//! last good set keeps serving. A call holds the `Arc<Snapshot>` it started
//! with, so in-flight calls finish on the set they began on.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use notify::{RecursiveMode, Watcher};

use crate::contract::{ContractSet, LoadError};
use crate::files::{load_contracts, load_mappings, publish_contracts};
use crate::mapping::MappingSet;

/// Everything loaded from the admin's folders, consistent with itself.
#[derive(Debug)]
pub struct Snapshot {
    pub contracts: ContractSet,
    pub mappings: MappingSet,
    /// Counts successful loads, starting at 1; logged so operators can tell
    /// which set served a call.
    pub generation: u64,
}

/// Where the set is loaded from.
#[derive(Debug, Clone)]
pub struct Sources {
    pub wsdl_dir: PathBuf,
    pub mappings_dir: PathBuf,
}

impl Sources {
    /// The check a process makes before its first load: the mappings folder
    /// must exist. [`Sources::load`] reads a missing one as "no mappings",
    /// which at start is almost always a typo in `mappings_dir`, and would
    /// serve every operation as `NOT_MAPPED`.
    pub fn check_folders(&self) -> Result<(), Vec<LoadError>> {
        if self.mappings_dir.is_dir() {
            return Ok(());
        }
        Err(vec![LoadError::new(
            &self.mappings_dir,
            crate::xml::Pos::default(),
            "the mappings folder does not exist (mappings_dir); create it, empty if nothing is mapped yet",
        )])
    }

    /// Load a complete set (contracts, then the mappings checked against
    /// them, then the contracts as published: async operations answer
    /// tickets and gain `Get{Op}Result`), or every error found. Plans keep
    /// the admin's contract, whose responses their jobs produce.
    pub fn load(&self) -> Result<(ContractSet, MappingSet), Vec<LoadError>> {
        let contracts = load_contracts(&self.wsdl_dir)?;
        let mappings = load_mappings(&self.mappings_dir, &contracts)?;
        let contracts = publish_contracts(contracts, &mappings)?;
        Ok((contracts, mappings))
    }
}

#[derive(Debug)]
pub struct Live {
    current: ArcSwap<Snapshot>,
    sources: Sources,
    generation: AtomicU64,
}

impl Live {
    /// Load the first set; an error here stops the process from starting.
    pub fn load(sources: Sources) -> Result<Live, Vec<LoadError>> {
        let (contracts, mappings) = sources.load()?;
        Ok(Live::from_set(contracts, mappings, sources))
    }

    /// Serve an already loaded set (tests, embedding).
    pub fn from_set(contracts: ContractSet, mappings: MappingSet, sources: Sources) -> Live {
        Live {
            current: ArcSwap::from_pointee(Snapshot {
                contracts,
                mappings,
                generation: 1,
            }),
            sources,
            generation: AtomicU64::new(1),
        }
    }

    /// The set to use for one call.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Load the folders again and swap the new set in, or keep the current
    /// one and return the errors.
    pub fn reload(&self) -> Result<u64, Vec<LoadError>> {
        let (contracts, mappings) = self.sources.load()?;
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        self.current.store(Arc::new(Snapshot {
            contracts,
            mappings,
            generation,
        }));
        Ok(generation)
    }

    /// Reload and log the outcome: errors at ERROR with their positions,
    /// since the admin has to act.
    pub fn reload_and_log(&self, why: &str) {
        match self.reload() {
            Ok(generation) => tracing::info!(generation, why, "reloaded contracts and mappings"),
            Err(errors) => {
                for e in &errors {
                    tracing::error!(error = %e, "reload refused");
                }
                tracing::error!(
                    errors = errors.len(),
                    why,
                    "reload refused; the previous set keeps serving"
                );
            }
        }
    }

    /// Reload on every change under the source folders (debounced) and on
    /// SIGHUP, until `shutdown` completes.
    pub async fn watch(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let watcher = start_watcher(&[&self.sources.wsdl_dir, &self.sources.mappings_dir], tx);
        let mut hup = hangup_signal();
        tokio::pin!(shutdown);
        loop {
            let why = tokio::select! {
                () = &mut shutdown => break,
                Some(()) = rx.recv() => "files changed",
                Some(()) = recv_signal(&mut hup) => "SIGHUP",
            };
            // Editors write in several steps (truncate, write, rename): wait
            // for the folder to settle, then take everything at once.
            tokio::time::sleep(Duration::from_millis(250)).await;
            while rx.try_recv().is_ok() {}
            let live = self.clone();
            let why = why.to_string();
            // Loading parses files: keep it off the async workers.
            let _ = tokio::task::spawn_blocking(move || live.reload_and_log(&why)).await;
        }
        drop(watcher);
    }
}

fn start_watcher(
    dirs: &[&Path],
    tx: tokio::sync::mpsc::UnboundedSender<()>,
) -> Option<notify::RecommendedWatcher> {
    let handler = move |event: notify::Result<notify::Event>| {
        if let Ok(e) = event
            && !e.kind.is_access()
        {
            let _ = tx.send(());
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch files; reload with SIGHUP");
            return None;
        }
    };
    for dir in dirs {
        if dir.is_dir()
            && let Err(e) = watcher.watch(dir, RecursiveMode::Recursive)
        {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch folder; reload with SIGHUP");
        }
    }
    Some(watcher)
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

#[cfg(unix)]
fn hangup_signal() -> Hangup {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}

#[cfg(not(unix))]
fn hangup_signal() -> Hangup {
    None
}

#[cfg(unix)]
async fn recv_signal(s: &mut Hangup) -> Option<()> {
    match s {
        Some(sig) => sig.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn recv_signal(_: &mut Hangup) -> Option<()> {
    std::future::pending().await
}
