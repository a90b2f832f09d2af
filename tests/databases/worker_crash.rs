//! Exactly one result per job when a worker process dies mid-run, on
//! SQLite, PostgreSQL and MariaDB.
//!
//! 1,000 jobs (half as `soapgate_requests` rows, half enqueued as queue
//! jobs) are run by the real `soapgate worker` binary against the Converse
//! emulator (each answer delayed, so work is in flight). The worker is
//! killed with SIGKILL once some results exist; the jobs it held RUNNING
//! are counted right after the kill. A second worker finishes the run (the
//! dead worker's jobs are claimed again when their short lease expires) and
//! is stopped with SIGTERM. Then: one DONE job and one result row per
//! correlation id, none missing, none twice, and no more model calls at the
//! emulator than jobs plus the jobs in flight at the kill.

use crate::common::db as db_support;
use crate::common::worker_process as worker_support;

use std::process::Command;

use db_support::{Kind, TestDb, scalar};
use soapgate::emulator::{self, Script};
use soapgate::store::{JobSource, NewJob, NewRequest, Store};
use worker_support::{emulator_calls, log_tail, payload, start_worker, wait_for};

const JOBS: usize = 1_000;

async fn crash_midway(kind: Kind) {
    let Some(db) = TestDb::create(kind, "worker_crash").await else {
        return;
    };
    let script = Script::parse("rules:\n  - delay_ms: 25\n", "crash.yaml").expect("script");
    let emulator = emulator::spawn(Some(script)).await.expect("emulator");
    let url = emulator.base_url().to_owned();

    let store = Store::connect(&db.url).await.expect("store");
    for n in 0..JOBS {
        let correlation_id = format!("crash-{n:04}");
        if n % 2 == 0 {
            store
                .insert_request(&NewRequest {
                    correlation_id,
                    service: "InvoiceService".into(),
                    operation: "ClassifyInvoice".into(),
                    payload: payload(n),
                    tenant: None,
                })
                .await
                .expect("insert request");
        } else {
            store
                .enqueue(&NewJob {
                    service: "InvoiceService".into(),
                    operation: "ClassifyInvoice".into(),
                    correlation_id,
                    payload: payload(n),
                    idempotency_key: Some(format!("crash-key-{n}")),
                    source: JobSource::Queue,
                    tenant: None,
                })
                .await
                .expect("enqueue");
        }
    }

    let first_log = db.dir.path().join("worker-1.log");
    let mut first = start_worker(&db.url, db.dir.path(), &url, &first_log, 1_500);
    wait_for(
        "a first batch of results",
        &mut first,
        &first_log,
        || async { scalar(&db, "SELECT COUNT(*) FROM soapgate_results").await >= 150 },
    )
    .await;
    first.kill().expect("SIGKILL");
    first.wait().expect("reaping the killed worker");
    let in_flight = scalar(
        &db,
        "SELECT COUNT(*) FROM soapgate_jobs WHERE status = 'RUNNING'",
    )
    .await;
    let done_at_kill = scalar(&db, "SELECT COUNT(*) FROM soapgate_results").await;
    assert!(
        (done_at_kill as usize) < JOBS,
        "the kill must come midway; {done_at_kill} results already"
    );

    let second_log = db.dir.path().join("worker-2.log");
    let mut second = start_worker(&db.url, db.dir.path(), &url, &second_log, 1_500);
    wait_for("every job to finish", &mut second, &second_log, || async {
        scalar(
            &db,
            "SELECT COUNT(*) FROM soapgate_jobs WHERE status IN ('DONE', 'FAILED')",
        )
        .await
            == JOBS as i64
    })
    .await;
    // A graceful stop: SIGTERM, and the worker exits cleanly.
    let term = Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(term.success());
    let status = second.wait().expect("waiting for the worker");
    assert!(
        status.success(),
        "worker exit {status}:\n{}",
        log_tail(&second_log)
    );

    let jobs = JOBS as i64;
    assert_eq!(
        scalar(&db, "SELECT COUNT(*) FROM soapgate_jobs").await,
        jobs
    );
    assert_eq!(
        scalar(
            &db,
            "SELECT COUNT(*) FROM soapgate_jobs WHERE status = 'DONE'"
        )
        .await,
        jobs,
        "{}",
        log_tail(&second_log)
    );
    assert_eq!(
        scalar(
            &db,
            "SELECT COUNT(*) FROM soapgate_requests WHERE picked_up_at IS NULL OR job_id IS NULL"
        )
        .await,
        0
    );
    // Exactly one result per correlation id: none missing, none twice, all
    // DONE, each belonging to a DONE job.
    assert_eq!(
        scalar(&db, "SELECT COUNT(*) FROM soapgate_results").await,
        jobs
    );
    assert_eq!(
        scalar(
            &db,
            "SELECT COUNT(DISTINCT correlation_id) FROM soapgate_results"
        )
        .await,
        jobs
    );
    assert_eq!(
        scalar(
            &db,
            "SELECT COUNT(*) FROM soapgate_results r JOIN soapgate_jobs j \
             ON j.correlation_id = r.correlation_id \
             WHERE r.status = 'DONE' AND j.status = 'DONE' AND r.payload IS NOT NULL \
             AND r.category IS NOT NULL"
        )
        .await,
        jobs
    );
    // Model calls: every job once, plus at most once more for each job the
    // killed worker held. On a loaded machine a live worker may also miss a
    // heartbeat and lose a lease; it says so in its log (the lease lost, or
    // its result refused for a stale token), and such a job is legitimately
    // run again: those are counted as in flight.
    let calls = emulator_calls(&url).await;
    let abandoned = [&first_log, &second_log]
        .iter()
        .map(|log| {
            std::fs::read_to_string(log)
                .unwrap_or_default()
                .lines()
                .filter(|l| {
                    // "lease lost (the job was claimed again elsewhere)",
                    // "result refused: the job was claimed again elsewhere",
                    // "... the job runs again elsewhere".
                    l.contains("claimed again elsewhere") || l.contains("runs again elsewhere")
                })
                .count() as i64
        })
        .sum::<i64>();
    assert!(
        calls >= jobs && calls <= jobs + in_flight + abandoned,
        "{calls} model calls for {jobs} jobs with {in_flight} in flight at the kill \
         and {abandoned} abandoned by a live worker"
    );
    eprintln!(
        "{kind:?}: {done_at_kill} results before the kill, {in_flight} jobs in flight, \
         {abandoned} abandoned on lease loss, {calls} model calls"
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    crash_midway(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    crash_midway(Kind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb() {
    crash_midway(Kind::MariaDb).await;
}
