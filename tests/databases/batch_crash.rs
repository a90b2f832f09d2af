//! A batch survives its worker process dying at any stage of its life, on
//! SQLite and PostgreSQL.
//!
//! The example InvoiceService.ClassifyInvoice batches 100 to 100 records
//! for a batch model of its own (a wait of ten minutes, so nothing runs on
//! demand by timeout); 100 `soapgate_requests` rows are inserted. The real
//! `soapgate worker` binary drives the batch against moto's S3 and the
//! emulator's batch control plane, and is killed with SIGKILL:
//!
//! 1. after the cut: its S3 is a closed port, the batch row stays CUT with
//!    the upload's error;
//! 2. after the upload: its control plane is a closed port, the row stays
//!    UPLOADED with the create's error;
//! 3. as soon as the Bedrock job is created (SUBMITTED);
//! 4. while polling it (two polls in);
//! 5. while writing the answers: each batch answer is invalid for the
//!    schema, so each job's repair is an on-demand call (150 ms each, two
//!    at a time); killed when 20 or more jobs of the batch are DONE and
//!    others still in it.
//!
//! A second worker, with good endpoints, takes the batch over when its
//! lease runs out and is stopped with SIGTERM. Then: one DONE result per
//! row, none missing; every job DONE; exactly one Bedrock job at the
//! emulator (a repeated create found the first by its token); the batch
//! DONE with all 100 jobs accounted for; and, for the kill while writing,
//! no more on-demand calls than 100 plus those in flight at the kill —
//! answers already written are not redone.

use std::net::TcpListener;
use std::process::{Child, Command};
use std::time::Instant;

use soapgate::emulator::{self, Options, Script};
use soapgate::store::{Batch, BatchStatus, NewRequest, Store};

use crate::common::db::{Kind, TestDb, scalar};
use crate::common::mappings;
use crate::common::moto::Moto;
use crate::common::worker_process::{
    emulator_calls, log_tail, payload, start_worker_with, wait_for,
};

const BUCKET: &str = "soapgate-batch-crash";
const ROWS: usize = 100;
const BATCH_MODEL: &str = "anthropic.claude-batch-test-v1:0";
/// Batch answers checked and written at the same time.
const CONCURRENCY: i64 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Cut,
    Uploaded,
    Submitted,
    Polling,
    Writing,
}

impl Stage {
    fn script(self) -> &'static str {
        match self {
            Stage::Cut | Stage::Uploaded => "batch: { delay_ms: 200 }\n",
            Stage::Submitted | Stage::Polling => "batch: { delay_ms: 3000 }\n",
            Stage::Writing => {
                "rules:\n  - model: \"anthropic.claude-batch-test*\"\n    \
                 tool: { classification: { category: \"NOT A CATEGORY\" } }\n  \
                 - delay_ms: 150\nbatch: { delay_ms: 200 }\n"
            }
        }
    }

    /// Whether the first worker has brought the batch where it is killed.
    async fn reached(self, store: &Store, db: &TestDb) -> bool {
        let Some(b) = the_batch(store).await else {
            return false;
        };
        match self {
            Stage::Cut => b.status == BatchStatus::Cut && b.last_error.is_some(),
            Stage::Uploaded => b.status == BatchStatus::Uploaded && b.last_error.is_some(),
            Stage::Submitted => b.status == BatchStatus::Submitted,
            Stage::Polling => b.status == BatchStatus::Submitted && b.polls >= 2,
            Stage::Writing => {
                done_jobs(db).await >= 20
                    && !store.batch_jobs(&b.id).await.expect("jobs").is_empty()
            }
        }
    }
}

async fn the_batch(store: &Store) -> Option<Batch> {
    let batches = store.batches(10).await.expect("batches");
    assert!(batches.len() <= 1, "{batches:#?}");
    batches.into_iter().next()
}

async fn done_jobs(db: &TestDb) -> i64 {
    scalar(
        db,
        "SELECT COUNT(*) FROM soapgate_jobs WHERE status = 'DONE'",
    )
    .await
}

/// A loopback URL nothing listens on.
fn closed_port() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    format!("http://127.0.0.1:{port}")
}

async fn crash_at(kind: Kind, stage: Stage) {
    let test = format!("batch_crash {stage:?}");
    let started = Instant::now();
    let Some(db) = TestDb::create(kind, &test).await else {
        return;
    };
    let Some(moto) = Moto::start(&test) else {
        return;
    };
    moto.s3_with_bucket(BUCKET).await;
    let emulator = emulator::spawn_with(Options {
        script: Some(Script::parse(stage.script(), "crash script").expect("the script parses")),
        s3_endpoint_url: Some(moto.url.clone()),
    })
    .await
    .expect("the emulator starts");
    let url = emulator.base_url().to_owned();
    let bedrock = aws_sdk_bedrock::Client::from_conf(
        aws_sdk_bedrock::Config::builder()
            .behavior_version(aws_sdk_bedrock::config::BehaviorVersion::latest())
            .region(aws_sdk_bedrock::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_bedrock::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .endpoint_url(&url)
            .build(),
    );
    let batch = format!(
        "    batch:\n      min_records: {ROWS}\n      max_records: {ROWS}\n      \
         max_wait_secs: 600\n      role_arn: arn:aws:iam::123456789012:role/BedrockBatch\n      \
         s3_uri: s3://{BUCKET}/soapgate\n      model: {BATCH_MODEL}\n"
    );
    let mappings = mappings::edited(|text| {
        text.replace(
            "  ClassifyInvoice:\n    mode: sync\n",
            &format!("  ClassifyInvoice:\n    mode: sync\n{batch}"),
        )
    });

    let store = Store::connect(&db.url).await.expect("store");
    for n in 0..ROWS {
        store
            .insert_request(&NewRequest {
                correlation_id: format!("batch-crash-{n:03}"),
                service: "InvoiceService".into(),
                operation: "ClassifyInvoice".into(),
                payload: payload(n),
                tenant: None,
            })
            .await
            .expect("insert a request row");
    }

    let worker = |log: &str, bedrock_url: &str, s3_url: &str| -> (Child, std::path::PathBuf) {
        let log = db.dir.path().join(log);
        let env = [
            ("RUST_LOG", "warn,soapgate::jobs::batch=info".to_owned()),
            ("SOAPGATE_BATCH__TICK_MS", "50".to_owned()),
            ("SOAPGATE_BATCH__POLL_INITIAL_MS", "100".to_owned()),
            ("SOAPGATE_BATCH__POLL_MAX_MS", "300".to_owned()),
            ("SOAPGATE_BATCH__LEASE_MS", "1500".to_owned()),
            ("SOAPGATE_BATCH__CONCURRENCY", CONCURRENCY.to_string()),
            ("SOAPGATE_BATCH__ENDPOINT_URL", bedrock_url.to_owned()),
            ("SOAPGATE_BATCH__S3_ENDPOINT_URL", s3_url.to_owned()),
        ];
        let child = start_worker_with(
            &db.url,
            db.dir.path(),
            mappings.path(),
            &url,
            &log,
            1_500,
            &env,
        );
        (child, log)
    };

    let closed = closed_port();
    let (bedrock_url, s3_url) = match stage {
        Stage::Cut => (url.as_str(), closed.as_str()),
        Stage::Uploaded => (closed.as_str(), moto.url.as_str()),
        _ => (url.as_str(), moto.url.as_str()),
    };
    let (mut first, first_log) = worker("worker-1.log", bedrock_url, s3_url);
    wait_for(
        &format!("the batch at {stage:?}"),
        &mut first,
        &first_log,
        || stage.reached(&store, &db),
    )
    .await;
    first.kill().expect("SIGKILL");
    first.wait().expect("reaping the killed worker");
    let at_kill = the_batch(&store).await.expect("the batch");
    let done_at_kill = done_jobs(&db).await;
    let calls_at_kill = emulator_calls(&url).await;
    let killed_at = started.elapsed();

    let (mut second, second_log) = worker("worker-2.log", &url, &moto.url);
    wait_for("every row's result", &mut second, &second_log, || async {
        scalar(&db, "SELECT COUNT(*) FROM soapgate_results").await >= ROWS as i64
            && the_batch(&store).await.is_some_and(|b| !b.status.is_open())
    })
    .await;
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

    let rows = ROWS as i64;
    let logs = || format!("{}\n---\n{}", log_tail(&first_log), log_tail(&second_log));
    // One DONE result per row, none missing, none twice.
    assert_eq!(
        scalar(&db, "SELECT COUNT(*) FROM soapgate_results").await,
        rows
    );
    assert_eq!(
        scalar(
            &db,
            "SELECT COUNT(DISTINCT r.correlation_id) FROM soapgate_results r \
             JOIN soapgate_requests q ON q.correlation_id = r.correlation_id \
             WHERE r.status = 'DONE' AND r.payload IS NOT NULL"
        )
        .await,
        rows,
        "{}",
        logs()
    );
    assert_eq!(
        scalar(&db, "SELECT COUNT(*) FROM soapgate_jobs").await,
        rows
    );
    assert_eq!(done_jobs(&db).await, rows, "{}", logs());
    // One Bedrock job: a create repeated after the kill found the first.
    let listed = bedrock
        .list_model_invocation_jobs()
        .send()
        .await
        .expect("the emulator lists its batch jobs");
    assert_eq!(
        listed.invocation_job_summaries().len(),
        1,
        "{:#?}",
        listed.invocation_job_summaries()
    );
    let b = the_batch(&store).await.expect("the batch");
    assert_eq!(b.status, BatchStatus::Done, "{b:#?}\n{}", logs());
    assert_eq!(b.records, rows, "{b:#?}");
    assert_eq!(b.answered + b.returned, rows, "{b:#?}\n{}", logs());
    assert_eq!((b.answered, b.returned), (rows, 0), "{b:#?}\n{}", logs());
    let arn = listed.invocation_job_summaries()[0].job_arn();
    assert_eq!(b.job_arn.as_deref(), Some(arn), "{b:#?}");

    let calls = emulator_calls(&url).await;
    if stage == Stage::Writing {
        // Each job's repair is one call; redone only for the jobs whose
        // answer was not written at the kill: those in flight.
        let in_flight = calls_at_kill - done_at_kill;
        assert!(
            (0..=CONCURRENCY).contains(&in_flight),
            "{calls_at_kill} calls and {done_at_kill} jobs DONE at the kill"
        );
        assert!(
            calls >= rows && calls <= rows + in_flight,
            "{calls} on-demand calls for {rows} repairs, {in_flight} in flight at the kill"
        );
    } else {
        assert_eq!(calls, 0, "valid batch answers need no on-demand call");
    }
    eprintln!(
        "{kind:?} {stage:?}: killed at {:?} with the batch {} (polls {}, {done_at_kill} jobs \
         DONE, {calls_at_kill} calls), {calls} on-demand calls in all, {:.1?} in all",
        killed_at,
        at_kill.status.as_str(),
        at_kill.polls,
        started.elapsed()
    );
    store.close().await;
}

macro_rules! stages {
    ($($name:ident: $kind:expr, $stage:expr;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            crash_at($kind, $stage).await;
        }
    )*};
}

stages! {
    sqlite_after_cut: Kind::Sqlite, Stage::Cut;
    sqlite_after_upload: Kind::Sqlite, Stage::Uploaded;
    sqlite_after_create: Kind::Sqlite, Stage::Submitted;
    sqlite_while_polling: Kind::Sqlite, Stage::Polling;
    sqlite_while_writing_results: Kind::Sqlite, Stage::Writing;
    postgres_after_cut: Kind::Postgres, Stage::Cut;
    postgres_after_upload: Kind::Postgres, Stage::Uploaded;
    postgres_after_create: Kind::Postgres, Stage::Submitted;
    postgres_while_polling: Kind::Postgres, Stage::Polling;
    postgres_while_writing_results: Kind::Postgres, Stage::Writing;
}
