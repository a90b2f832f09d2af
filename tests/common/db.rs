//! A fresh database per test on SQLite (a temporary file), PostgreSQL or
//! MariaDB, the same way `tests/databases/store.rs` makes them: `soapgate_test_<random>`
//! on the servers, dropped when the [`TestDb`] is dropped (also when the
//! test panics). A missing server skips with a line on stderr, or fails
//! under `SOAPGATE_REQUIRE_PEERS=1`. Server URLs come from
//! `SOAPGATE_TEST_POSTGRES_URL` and `SOAPGATE_TEST_MYSQL_URL`.

use sqlx::{Connection, Executor};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Sqlite,
    Postgres,
    MariaDb,
}

pub(crate) fn require_peers() -> bool {
    std::env::var("SOAPGATE_REQUIRE_PEERS").is_ok_and(|v| v.trim() == "1")
}

pub(crate) fn server_url(kind: Kind) -> String {
    match kind {
        Kind::Postgres => std::env::var("SOAPGATE_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned()),
        Kind::MariaDb => std::env::var("SOAPGATE_TEST_MYSQL_URL")
            .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned()),
        Kind::Sqlite => String::new(),
    }
}

/// `base` with its database (the last path segment) replaced by `name`.
pub(crate) fn with_database(base: &str, name: &str) -> String {
    let (prefix, _) = base.rsplit_once('/').expect("server URL has a path");
    format!("{prefix}/{name}")
}

/// Runs one administrative statement on a server.
pub(crate) async fn admin(kind: Kind, url: &str, sql: &str) -> Result<(), sqlx::Error> {
    match kind {
        Kind::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url).await?;
            conn.execute(sqlx::AssertSqlSafe(sql.to_owned())).await?;
            conn.close().await
        }
        Kind::MariaDb => {
            let mut conn = sqlx::MySqlConnection::connect(url).await?;
            conn.execute(sqlx::AssertSqlSafe(sql.to_owned())).await?;
            conn.close().await
        }
        Kind::Sqlite => Ok(()),
    }
}

/// A database of its own for one test.
#[derive(Debug)]
pub(crate) struct TestDb {
    pub(crate) kind: Kind,
    /// The URL soapgate connects to.
    pub(crate) url: String,
    name: String,
    base: String,
    /// Holds the SQLite file (and whatever else the test puts there).
    pub(crate) dir: tempfile::TempDir,
}

impl TestDb {
    /// A fresh, empty database; `None` when the server is missing and peers
    /// are not required (the skip is printed).
    pub(crate) async fn create(kind: Kind, test: &str) -> Option<TestDb> {
        let name = format!("soapgate_test_{}", uuid::Uuid::new_v4().simple());
        let dir = tempfile::tempdir().expect("temp dir");
        let base = server_url(kind);
        let url = match kind {
            Kind::Sqlite => format!("sqlite://{}", dir.path().join("soapgate.db").display()),
            Kind::Postgres | Kind::MariaDb => {
                if let Err(e) = admin(kind, &base, &format!("CREATE DATABASE {name}")).await {
                    assert!(
                        !require_peers(),
                        "{test}: required peer {kind:?} missing at {base}: {e} (SOAPGATE_REQUIRE_PEERS=1)"
                    );
                    eprintln!(
                        "{test}: skipped on {kind:?}: not reachable at {base}: {e} \
                         (set SOAPGATE_REQUIRE_PEERS=1 to make this fail)"
                    );
                    return None;
                }
                with_database(&base, &name)
            }
        };
        Some(TestDb {
            kind,
            url,
            name,
            base,
            dir,
        })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let sql = match self.kind {
            Kind::Sqlite => return,
            Kind::Postgres => format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            Kind::MariaDb => format!("DROP DATABASE IF EXISTS {}", self.name),
        };
        let (kind, base) = (self.kind, self.base.clone());
        // Drop runs inside the test's runtime, which cannot be blocked on:
        // a thread with a runtime of its own does the dropping.
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(admin(kind, &base, &sql))
        })
        .join();
        if let Ok(Err(e)) = done {
            eprintln!("dropping test database {}: {e}", self.name);
        }
    }
}

/// One integer from a query (a `COUNT(*)`, typically), on any backend.
pub(crate) async fn scalar(db: &TestDb, sql: &str) -> i64 {
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    match db.kind {
        Kind::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url)
                .await
                .expect("sqlite");
            let n = sqlx::query_scalar(sql)
                .fetch_one(&mut conn)
                .await
                .expect("query");
            let _ = conn.close().await;
            n
        }
        Kind::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url)
                .await
                .expect("postgres");
            let n = sqlx::query_scalar(sql)
                .fetch_one(&mut conn)
                .await
                .expect("query");
            let _ = conn.close().await;
            n
        }
        Kind::MariaDb => {
            let mut conn = sqlx::MySqlConnection::connect(&db.url)
                .await
                .expect("mariadb");
            let n = sqlx::query_scalar(sql)
                .fetch_one(&mut conn)
                .await
                .expect("query");
            let _ = conn.close().await;
            n
        }
    }
}
