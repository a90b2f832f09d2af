//! A transaction the server picks as a deadlock victim is recognised as
//! such (`StoreError::is_deadlock`), which is what lets `Store::claim`
//! run it again instead of surfacing the error: two real transactions on
//! MariaDB and on PostgreSQL lock two rows in opposite orders.

use crate::common::db as db_support;

use db_support::{Kind, TestDb};
use soapgate::store::StoreError;
use sqlx::{Connection, Executor};

macro_rules! a_deadlock_victim_is_recognised {
    ($kind:expr, $conn:ty) => {{
        let kind = $kind;
        let Some(db) = TestDb::create(kind, "deadlock").await else {
            return;
        };
        let mut a = <$conn>::connect(&db.url).await.expect("connect a");
        let mut b = <$conn>::connect(&db.url).await.expect("connect b");
        a.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
            .await
            .expect("create");
        a.execute("INSERT INTO t (id, v) VALUES (1, 0), (2, 0)")
            .await
            .expect("insert");
        a.execute("BEGIN").await.expect("begin a");
        b.execute("BEGIN").await.expect("begin b");
        a.execute("UPDATE t SET v = 1 WHERE id = 1")
            .await
            .expect("a locks 1");
        b.execute("UPDATE t SET v = 1 WHERE id = 2")
            .await
            .expect("b locks 2");
        // Each now waits for the other's row: the server breaks the cycle by
        // failing one of them.
        let (ra, rb) = tokio::join!(
            a.execute("UPDATE t SET v = 2 WHERE id = 2"),
            b.execute("UPDATE t SET v = 2 WHERE id = 1"),
        );
        let victim = match (ra, rb) {
            (Err(e), Ok(_)) | (Ok(_), Err(e)) => StoreError::from(e),
            other => panic!("{kind:?}: expected one deadlock victim, got {other:?}"),
        };
        assert!(victim.is_deadlock(), "{kind:?}: {victim}");
        // Any other database error is not one.
        let other = StoreError::from(
            a.execute("SELECT * FROM no_such_table")
                .await
                .expect_err("no such table"),
        );
        assert!(!other.is_deadlock(), "{other}");
    }};
}

#[tokio::test]
async fn mariadb() {
    a_deadlock_victim_is_recognised!(Kind::MariaDb, sqlx::MySqlConnection);
}

#[tokio::test]
async fn postgres() {
    a_deadlock_victim_is_recognised!(Kind::Postgres, sqlx::PgConnection);
}
