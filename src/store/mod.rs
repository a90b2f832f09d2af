//! The store: every SQL statement soapgate runs, over SQLite (the embedded
//! default), PostgreSQL and MySQL/MariaDB, chosen by the URL's scheme.
//!
//! `Store` wraps an enum of the three native sqlx pools rather than
//! `sqlx::Any`. `Any` maps every value through a narrow common type set and
//! hides the backend behind one connection type, but the queue needs exactly
//! the backend-specific parts: `BEGIN IMMEDIATE` on SQLite, `FOR UPDATE SKIP
//! LOCKED` on the servers, READ COMMITTED on InnoDB, and one embedded
//! migration set per backend. With native pools each statement is written
//! for its engine and the compiler checks the binds per backend; the
//! `on_backend!` macro keeps the statements that are the same everywhere
//! from being written three times.
//!
//! Job times are epoch milliseconds taken from an injected [`Clock`], so
//! lease expiry is a plain integer comparison on every backend and tests
//! move time instead of sleeping. The legacy polling tables use the
//! database's own timestamps, because batch jobs read them.
//!
//! This module knows nothing of SOAP, mappings or workers: it stores and
//! hands out strings. `jobs` holds the queue, `polling` the legacy tables,
//! `tenants` the budgets, usage rows and audit trail, `recordings` the
//! calls kept for replay, `steps` the finished steps of jobs.

mod batches;
mod jobs;
pub mod keys;
mod outbox;
mod polling;
mod recordings;
mod slot;
mod stats;
mod steps;
mod tenants;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::Executor;
use sqlx::migrate::Migrator;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use batches::{Batch, BatchCut, BatchStatus, BatchStep};
pub use jobs::{
    ClaimedJob, Job, JobCounts, JobEnd, JobFailure, JobFinish, JobId, JobResult, JobSource,
    JobStatus, NewJob, RESULT_CONTRACT_COLUMNS, is_valid_result_column, request_digest,
};
pub use outbox::{JobClaim, OutboxEntry, ReplyEntry};
pub use polling::{ClaimedRequest, NewRequest, RequestRow, ResultRow, ResultStatus};
pub use recordings::{KIND_SERVED, KIND_SHADOW, NewRecording, Recording, RecordingQuery};
pub use slot::{SlotState, StoreSlot};
pub use stats::JobStats;
pub use steps::StepResult;
pub use tenants::{AuditRow, BudgetHold, BudgetShort, Charge, UsageBy, UsageRow, UsageTotal};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");
static MYSQL_MIGRATIONS: Migrator = sqlx::migrate!("migrations/mysql");

/// Connections for reads beside SQLite's one writer connection.
const SQLITE_READERS: u32 = 4;

/// How long a SQLite writer waits for the lock before giving up; writers
/// queue on the single write lock, so a short timeout turns load into errors.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Failures of the store. Callers branch on `Database` (retry later) versus
/// `Config` (fix the settings); `Corrupt` means a row holds a value this
/// version never writes.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL's scheme names no supported backend. Only the scheme is kept:
    /// the rest of the URL may carry a password.
    #[error("unsupported database URL scheme `{0}` (expected sqlite:, postgres: or mysql:)")]
    UnsupportedScheme(String),
    #[error("invalid database URL: {0}")]
    Config(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("creating the database directory {path}: {source}")]
    CreateDir {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("applying migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A flat result column name that is not `[a-z_][a-z0-9_]{0,62}` or
    /// is one of the contract's own columns.
    #[error("invalid result column name {0:?}")]
    InvalidColumn(String),
    #[error("unexpected value in column {column}: {value:?}")]
    Corrupt { column: &'static str, value: String },
    /// The task that writes results in groups has stopped.
    #[error("the result writer has stopped")]
    WriterStopped,
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// An error no retry can mend: the URL itself is wrong. Anything else
    /// met while connecting (a server that does not answer, a directory that
    /// cannot be made yet, a migration that did not apply) may pass.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            StoreError::UnsupportedScheme(_) | StoreError::Config(_)
        )
    }

    /// The server chose this transaction as a deadlock victim (InnoDB
    /// 1213 / SQLSTATE 40001, PostgreSQL 40P01): nothing was written, and
    /// running the transaction again is the documented remedy.
    pub fn is_deadlock(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(e)) => {
                matches!(e.code().as_deref(), Some("40001" | "40P01"))
            }
            _ => false,
        }
    }
}

/// Which database engine a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    MySql,
}

impl Backend {
    /// The backend a database URL names, by its scheme.
    pub fn from_url(url: &str) -> Result<Backend> {
        let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or("");
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            "mysql" | "mariadb" => Ok(Backend::MySql),
            _ => Err(StoreError::UnsupportedScheme(scheme.to_owned())),
        }
    }
}

/// The time source for job timestamps and leases, in epoch milliseconds.
pub trait Clock: Send + Sync + fmt::Debug {
    fn now_ms(&self) -> i64;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that moves only when told, for lease and retry tests.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(start_ms: i64) -> ManualClock {
        ManualClock(AtomicI64::new(start_ms))
    }

    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(duration_ms(by), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A duration in whole milliseconds, saturating instead of wrapping.
pub(crate) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[derive(Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
    MySql(MySqlPool),
}

/// Runs the same body against whichever pool the store holds. `$dollar` is
/// true where placeholders are `$1, $2, ...` (SQLite accepts them too) and
/// false on MySQL, whose placeholders are `?`; a body picks its statement
/// with it and binds in the same order either way.
macro_rules! on_backend {
    ($store:expr, |$pool:ident, $dollar:ident| $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::Sqlite($pool) => {
                let $dollar = true;
                $body
            }
            $crate::store::Pool::Postgres($pool) => {
                let $dollar = true;
                $body
            }
            $crate::store::Pool::MySql($pool) => {
                let $dollar = false;
                $body
            }
        }
    };
}
pub(crate) use on_backend;

/// [`on_backend!`] for statements that only read: on SQLite they run on the
/// reader connections, so they neither wait for the writer nor hold it up.
macro_rules! on_backend_read {
    ($store:expr, |$pool:ident, $dollar:ident| $body:expr) => {
        match &$store.readers {
            // Only a SQLite file has readers.
            Some($pool) => {
                let $dollar = true;
                $body
            }
            None => $crate::store::on_backend!($store, |$pool, $dollar| $body),
        }
    };
}
pub(crate) use on_backend_read;

/// A connection pool to soapgate's database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    /// On SQLite: the one connection that writes (see `connect`).
    pool: Pool,
    /// On SQLite (a file): connections for statements that only read.
    readers: Option<SqlitePool>,
    clock: Arc<dyn Clock>,
    /// `queue.kind = sqs`: every new job also gets an outbox row, in the
    /// same transaction (see `outbox.rs`).
    outbox: bool,
    /// How long new jobs of an operation wait for a batch before they are
    /// due on demand (`None`: they do not wait).
    holds: Option<BatchHolds>,
}

/// How long new jobs of a (service, operation) wait for a batch; `None`
/// for an operation that does not batch.
pub type BatchHolds = Arc<dyn Fn(&str, &str) -> Option<Duration> + Send + Sync>;

impl fmt::Debug for Store {
    // The pool's options hold the password; say only which backend this is.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens a pool for `url` and applies the backend's migrations.
    /// `sqlite://path` creates the file if missing and runs in WAL mode.
    pub async fn connect(url: &str) -> Result<Store> {
        Store::connect_with_clock(url, Arc::new(SystemClock)).await
    }

    /// `connect` with a chosen clock (tests use [`ManualClock`]).
    pub async fn connect_with_clock(url: &str, clock: Arc<dyn Clock>) -> Result<Store> {
        let mut readers = None;
        let pool = match Backend::from_url(url)? {
            Backend::Sqlite => {
                let options = SqliteConnectOptions::from_str(url)
                    .map_err(StoreError::Config)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    // WAL makes NORMAL durable against application crashes;
                    // only a power loss can drop the last transactions.
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(SQLITE_BUSY_TIMEOUT);
                // Each connection to an in-memory database is its own
                // database; one connection keeps the pool coherent.
                let in_memory = url.contains(":memory:") || url.contains("mode=memory");
                // The embedded default lives under a data directory that a
                // fresh install has not made yet; SQLite creates only the file.
                let dir = options.get_filename().parent();
                if let Some(dir) = dir.filter(|d| !in_memory && !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                        path: dir.to_owned(),
                        source,
                    })?;
                }
                // SQLite has one writer at a time. Writes go through one
                // connection, so this process's writers queue in the pool
                // (and each starts the moment the last commits) instead of
                // meeting at the file lock and sleeping in SQLite's busy
                // handler. Reads get connections of their own; WAL lets
                // them run beside the writer. An in-memory database is one
                // database per connection, so it gets the writer only.
                let writer = SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(options.clone())
                    .await?;
                readers = if in_memory {
                    None
                } else {
                    Some(
                        SqlitePoolOptions::new()
                            .max_connections(SQLITE_READERS)
                            .connect_with(options)
                            .await?,
                    )
                };
                Pool::Sqlite(writer)
            }
            Backend::Postgres => {
                let options = PgConnectOptions::from_str(url).map_err(StoreError::Config)?;
                Pool::Postgres(PgPoolOptions::new().connect_with(options).await?)
            }
            Backend::MySql => {
                let options = MySqlConnectOptions::from_str(url).map_err(StoreError::Config)?;
                let pool = MySqlPoolOptions::new()
                    // InnoDB's default REPEATABLE READ takes gap locks on the
                    // rows a claim scans, which serialises claimers that
                    // SKIP LOCKED is meant to keep apart.
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                                .await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await?;
                Pool::MySql(pool)
            }
        };
        let store = Store {
            pool,
            readers,
            clock,
            outbox: false,
            holds: None,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// The same store, enqueueing new jobs of the operations `holds`
    /// names due only after their wait for a batch.
    pub fn with_batch_holds(mut self, holds: BatchHolds) -> Store {
        self.holds = Some(holds);
        self
    }

    /// Whether new jobs of this operation wait for a batch.
    pub fn holds_jobs_of(&self, service: &str, operation: &str) -> bool {
        self.holds
            .as_ref()
            .is_some_and(|h| h(service, operation).is_some())
    }

    /// When a new job is due: now, or after its operation's batch wait.
    fn due_ms(&self, job: &NewJob, now: i64) -> i64 {
        match self
            .holds
            .as_ref()
            .and_then(|h| h(&job.service, &job.operation))
        {
            Some(wait) => now.saturating_add(duration_ms(wait)),
            None => now,
        }
    }

    /// Applies any migrations not yet applied; a no-op when up to date.
    pub async fn migrate(&self) -> Result<()> {
        match &self.pool {
            Pool::Sqlite(p) => SQLITE_MIGRATIONS.run(p).await?,
            Pool::Postgres(p) => POSTGRES_MIGRATIONS.run(p).await?,
            Pool::MySql(p) => MYSQL_MIGRATIONS.run(p).await?,
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
            Pool::MySql(_) => Backend::MySql,
        }
    }

    /// Closes every connection; waits for checked-out ones to come back.
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
            Pool::MySql(p) => p.close().await,
        }
        if let Some(readers) = &self.readers {
            readers.close().await;
        }
    }

    /// Now, by the store's clock (epoch milliseconds).
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_is_chosen_by_scheme() {
        assert_eq!(
            Backend::from_url("sqlite://x.db").ok(),
            Some(Backend::Sqlite)
        );
        assert_eq!(
            Backend::from_url("postgres://h/db").ok(),
            Some(Backend::Postgres)
        );
        assert_eq!(
            Backend::from_url("postgresql://h/db").ok(),
            Some(Backend::Postgres)
        );
        assert_eq!(Backend::from_url("mysql://h/db").ok(), Some(Backend::MySql));
        let err = Backend::from_url("oracle://scott:tiger@h/db");
        assert!(
            matches!(&err, Err(StoreError::UnsupportedScheme(s)) if s == "oracle"),
            "{err:?}"
        );
        // The password must not appear in the message.
        let text = err.map(|_| ()).unwrap_err().to_string();
        assert!(!text.contains("tiger"), "{text}");
    }
}
