//! `soapgate replay` reading its recordings from PostgreSQL and MariaDB (a
//! fresh database each; SQLite is covered by the service tests): calls
//! recorded there replay against the emulator's own answers with every
//! recording agreeing.

use crate::common::db::{Kind, TestDb};
use crate::common::replay::{SUBJECTS, json_of, record, replay};

async fn replays_from(kind: Kind, test: &str) {
    let Some(db) = TestDb::create(kind, test).await else {
        return;
    };
    record(None, &SUBJECTS[..3], &db.url).await;
    let json = db.dir.path().join("report.json");
    let run = replay(
        &db.url,
        None,
        &["--emulator", "--json", json.to_str().expect("path")],
        db.dir.path(),
    )
    .await;
    assert_eq!(
        run.code,
        Some(0),
        "{kind:?}: {}\n{}",
        run.stdout,
        run.stderr
    );
    let report = json_of(&json);
    assert_eq!(report["recordings"], serde_json::json!(3), "{report:#}");
    assert_eq!(report["agreeing"], serde_json::json!(3), "{report:#}");
    // Oldest first, as recorded.
    let ids: Vec<i64> = (0..3)
        .map(|i| report["results"][i]["id"].as_i64().expect("id"))
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_reads_recordings_from_postgres() {
    replays_from(
        Kind::Postgres,
        "replay::replay_reads_recordings_from_postgres",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_reads_recordings_from_mariadb() {
    replays_from(
        Kind::MariaDb,
        "replay::replay_reads_recordings_from_mariadb",
    )
    .await;
}
