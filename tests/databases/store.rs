//! The store's queue and polling-table guarantees, run with the same test
//! bodies on SQLite (a temporary file), PostgreSQL and MariaDB.
//!
//! Each test gets a fresh database (`soapgate_test_<random>` on the servers,
//! dropped afterwards, also when the body panics), so claims never see
//! another test's jobs. A missing PostgreSQL or MariaDB skips with a line on
//! stderr, or fails under `SOAPGATE_REQUIRE_PEERS=1`. Server URLs come from
//! `SOAPGATE_TEST_POSTGRES_URL` and `SOAPGATE_TEST_MYSQL_URL`.
//!
//! Time is a `ManualClock`: lease expiry and retry delays are tested by
//! moving the clock, never by sleeping.

use std::collections::{BTreeSet, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use soapgate::store::{
    BatchCut, BatchStatus, BatchStep, JobEnd, JobFailure, JobFinish, JobId, JobResult, JobSource,
    JobStatus, KIND_SERVED, KIND_SHADOW, ManualClock, NewJob, NewRecording, NewRequest,
    RecordingQuery, ResultRow, ResultStatus, StepResult, Store, StoreError,
};
use sqlx::{Connection, Executor};

const START_MS: i64 = 1_800_000_000_000;
const LEASE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy)]
enum Kind {
    Sqlite,
    Postgres,
    MariaDb,
}

#[derive(Clone)]
struct Ctx {
    store: Store,
    clock: Arc<ManualClock>,
    url: String,
}

fn require_peers() -> bool {
    std::env::var("SOAPGATE_REQUIRE_PEERS").is_ok_and(|v| v.trim() == "1")
}

fn server_url(kind: Kind) -> String {
    match kind {
        Kind::Postgres => std::env::var("SOAPGATE_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned()),
        Kind::MariaDb => std::env::var("SOAPGATE_TEST_MYSQL_URL")
            .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned()),
        Kind::Sqlite => String::new(),
    }
}

/// `base` with its database (the last path segment) replaced by `name`.
fn with_database(base: &str, name: &str) -> String {
    let (prefix, _) = base.rsplit_once('/').expect("server URL has a path");
    format!("{prefix}/{name}")
}

async fn admin(kind: Kind, url: &str, sql: &str) -> Result<(), sqlx::Error> {
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

/// Creates a fresh database of `kind`, runs `body` on a store connected to
/// it, and drops the database, re-raising the body's panic afterwards.
async fn run<F, Fut>(kind: Kind, test: &str, body: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let name = format!("soapgate_test_{}", uuid::Uuid::new_v4().simple());
    let tmp = tempfile::tempdir().expect("temp dir");
    let base = server_url(kind);
    let url = match kind {
        Kind::Sqlite => format!("sqlite://{}", tmp.path().join("store.db").display()),
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
                return;
            }
            with_database(&base, &name)
        }
    };
    let clock = Arc::new(ManualClock::new(START_MS));
    let connected = Store::connect_with_clock(&url, clock.clone()).await;
    let outcome = match connected {
        Ok(store) => {
            let ctx = Ctx {
                store: store.clone(),
                clock,
                url: url.clone(),
            };
            let outcome = tokio::spawn(body(ctx)).await;
            store.close().await;
            outcome.map_err(|e| e.into_panic())
        }
        Err(e) => Err(Box::new(format!("{test}: connecting to {kind:?}: {e}"))
            as Box<dyn std::any::Any + Send>),
    };
    match kind {
        Kind::Postgres => {
            let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            admin(kind, &base, &drop)
                .await
                .expect("dropping test database");
        }
        Kind::MariaDb => {
            let drop = format!("DROP DATABASE IF EXISTS {name}");
            admin(kind, &base, &drop)
                .await
                .expect("dropping test database");
        }
        Kind::Sqlite => {}
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// One test per scenario and backend: `scenario::sqlite`,
/// `scenario::postgres`, `scenario::mariadb`.
macro_rules! on_every_backend {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                super::run(super::Kind::Sqlite, stringify!($scenario), super::$scenario).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                super::run(super::Kind::Postgres, stringify!($scenario), super::$scenario).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn mariadb() {
                super::run(super::Kind::MariaDb, stringify!($scenario), super::$scenario).await;
            }
        }
    )*};
}

on_every_backend!(
    migrations_apply_twice,
    enqueue_is_idempotent,
    concurrent_claims_hand_out_each_job_once,
    expired_lease_is_reclaimed_and_old_token_refused,
    fail_retries_then_ends_failed,
    requests_are_picked_up_in_order_exactly_once,
    results_are_written_once,
    finishing_a_job_writes_its_result_row_in_the_same_transaction,
    release_requeues_without_counting_an_attempt,
    claim_many_takes_expired_leases_first_then_queued_up_to_max,
    finish_all_fences_each_end_and_isolates_a_bad_one,
    a_final_end_writes_its_reply_row_with_the_result,
    a_declared_fault_ends_failed_with_its_fault_kept,
    recordings_are_kept_read_back_and_pruned_by_age_and_count,
    batches_lease_their_jobs_step_fenced_and_give_jobs_back,
    job_steps_are_kept_once_and_only_under_the_lease,
);

fn new_job(n: usize, key: Option<&str>) -> NewJob {
    NewJob {
        service: "InvoiceService".to_owned(),
        operation: "ClassifyInvoice".to_owned(),
        correlation_id: format!("corr-{n}"),
        payload: format!("<Invoice><Number>{n}</Number></Invoice>"),
        idempotency_key: key.map(str::to_owned),
        source: JobSource::Api,
        tenant: None,
    }
}

fn result(text: &str) -> JobResult {
    JobResult {
        payload: format!("<Answer>{text}</Answer>"),
        model: Some("anthropic.claude-3-haiku-20240307-v1:0".to_owned()),
        input_tokens: Some(12),
        output_tokens: Some(34),
        columns: Vec::new(),
    }
}

async fn get(ctx: &Ctx, id: &JobId) -> soapgate::store::Job {
    ctx.store.get(id).await.expect("get").expect("job exists")
}

async fn migrations_apply_twice(ctx: Ctx) {
    // connect already migrated once; again on the same pool, then through a
    // second connect as a restarted instance would.
    ctx.store.migrate().await.expect("second migrate");
    ctx.store.migrate().await.expect("third migrate");
    let again = Store::connect(&ctx.url).await.expect("reconnect migrates");
    let id = again.enqueue(&new_job(1, None)).await.expect("enqueue");
    assert_eq!(get(&ctx, &id).await.status, JobStatus::Queued);
    again.close().await;
}

async fn enqueue_is_idempotent(ctx: Ctx) {
    let first = ctx
        .store
        .enqueue(&new_job(1, Some("msg-1")))
        .await
        .expect("enqueue");
    let second = ctx
        .store
        .enqueue(&new_job(1, Some("msg-1")))
        .await
        .expect("enqueue");
    assert_eq!(first, second, "same key, same job");
    let other = ctx
        .store
        .enqueue(&new_job(2, Some("msg-2")))
        .await
        .expect("enqueue");
    assert_ne!(first, other);
    let a = ctx.store.enqueue(&new_job(3, None)).await.expect("enqueue");
    let b = ctx.store.enqueue(&new_job(3, None)).await.expect("enqueue");
    assert_ne!(a, b, "no key, no deduplication");

    let job = get(&ctx, &first).await;
    assert_eq!(job.status, JobStatus::Queued);
    assert_eq!(job.attempts, 0);
    assert_eq!(job.idempotency_key.as_deref(), Some("msg-1"));
    assert_eq!(job.payload, "<Invoice><Number>1</Number></Invoice>");
    assert_eq!(job.source, JobSource::Api);
    // Each job keeps the digest of its request; a key reused for another
    // payload still names the first job, whose digest tells them apart.
    assert_eq!(
        job.request_digest.as_deref(),
        Some(soapgate::store::request_digest(&job.payload).as_str())
    );
    let mut reused = new_job(4, Some("msg-1"));
    reused.payload = "<Invoice><Number>4</Number></Invoice>".to_owned();
    let reused_id = ctx.store.enqueue(&reused).await.expect("enqueue");
    assert_eq!(reused_id, first);
    assert_ne!(
        get(&ctx, &first).await.request_digest,
        Some(soapgate::store::request_digest(&reused.payload))
    );
    assert!(
        ctx.store
            .get(&JobId::from_ticket("no-such-job"))
            .await
            .expect("get")
            .is_none()
    );

    // Racing enqueues of one key all get the one job.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = ctx.store.clone();
        tasks.push(tokio::spawn(async move {
            store.enqueue(&new_job(9, Some("msg-race"))).await
        }));
    }
    let mut ids = HashSet::new();
    for task in tasks {
        ids.insert(task.await.expect("task").expect("enqueue"));
    }
    assert_eq!(ids.len(), 1, "racing enqueues made {} jobs", ids.len());
}

async fn concurrent_claims_hand_out_each_job_once(ctx: Ctx) {
    let mut enqueued = BTreeSet::new();
    for n in 0..200 {
        enqueued.insert(ctx.store.enqueue(&new_job(n, None)).await.expect("enqueue"));
    }
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = ctx.store.clone();
        tasks.push(tokio::spawn(async move {
            let worker = format!("worker-{w}");
            let mut mine = Vec::new();
            while let Some(claimed) = store.claim(&worker, LEASE).await.expect("claim") {
                assert_eq!(claimed.job.status, JobStatus::Running);
                assert_eq!(claimed.job.lease_owner.as_deref(), Some(worker.as_str()));
                let done = store
                    .complete(&claimed.job.id, claimed.token, &result(&worker))
                    .await
                    .expect("complete");
                assert!(done, "a fresh claim's completion is recorded");
                mine.push(claimed.job.id);
            }
            mine
        }));
    }
    let mut claimed = Vec::new();
    for task in tasks {
        claimed.extend(task.await.expect("claimer"));
    }
    let distinct: BTreeSet<JobId> = claimed.iter().cloned().collect();
    assert_eq!(claimed.len(), 200, "claims handed out: {}", claimed.len());
    assert_eq!(distinct, enqueued, "every job claimed exactly once");
    for id in &enqueued {
        let job = get(&ctx, id).await;
        assert_eq!(job.status, JobStatus::Done);
        assert_eq!(job.attempts, 1);
    }
}

async fn expired_lease_is_reclaimed_and_old_token_refused(ctx: Ctx) {
    let id = ctx.store.enqueue(&new_job(1, None)).await.expect("enqueue");
    let first = ctx
        .store
        .claim("w1", LEASE)
        .await
        .expect("claim")
        .expect("a job");
    assert_eq!(first.job.id, id);
    assert_eq!(first.job.attempts, 1);
    assert!(
        ctx.store.claim("w2", LEASE).await.expect("claim").is_none(),
        "leased"
    );

    // A heartbeat keeps the lease alive past its first expiry.
    ctx.clock.advance(Duration::from_secs(20));
    assert!(
        ctx.store
            .heartbeat(&id, first.token, LEASE)
            .await
            .expect("heartbeat")
    );
    ctx.clock.advance(Duration::from_secs(20));
    assert!(
        ctx.store.claim("w2", LEASE).await.expect("claim").is_none(),
        "heartbeat held"
    );

    // w1 goes silent; after the lease the job is w2's with a higher token.
    ctx.clock.advance(LEASE);
    let second = ctx
        .store
        .claim("w2", LEASE)
        .await
        .expect("claim")
        .expect("re-claim");
    assert_eq!(second.job.id, id);
    assert!(
        second.token > first.token,
        "{} > {}",
        second.token,
        first.token
    );
    assert_eq!(second.job.attempts, 2);
    assert_eq!(second.job.lease_owner.as_deref(), Some("w2"));

    assert!(
        !ctx.store
            .heartbeat(&id, first.token, LEASE)
            .await
            .expect("heartbeat")
    );
    assert!(
        !ctx.store
            .complete(&id, first.token, &result("w1"))
            .await
            .expect("complete")
    );
    let failure = JobFailure {
        fault_code: "MODEL_TIMEOUT".to_owned(),
        fault_text: "late".to_owned(),
        payload: None,
    };
    assert!(
        !ctx.store
            .fail(&id, first.token, &failure, None)
            .await
            .expect("fail")
    );
    assert_eq!(get(&ctx, &id).await.status, JobStatus::Running);

    assert!(
        ctx.store
            .heartbeat(&id, second.token, LEASE)
            .await
            .expect("heartbeat")
    );
    assert!(
        ctx.store
            .complete(&id, second.token, &result("w2"))
            .await
            .expect("complete")
    );
    // Repeats and late arrivals change nothing: one result per job.
    assert!(
        !ctx.store
            .complete(&id, second.token, &result("again"))
            .await
            .expect("complete")
    );
    assert!(
        !ctx.store
            .fail(&id, second.token, &failure, None)
            .await
            .expect("fail")
    );
    assert!(
        !ctx.store
            .heartbeat(&id, second.token, LEASE)
            .await
            .expect("heartbeat")
    );
    let job = get(&ctx, &id).await;
    assert_eq!(job.status, JobStatus::Done);
    assert_eq!(job.result_payload.as_deref(), Some("<Answer>w2</Answer>"));
    assert_eq!(job.input_tokens, Some(12));
    assert_eq!(job.output_tokens, Some(34));
    assert_eq!(job.fault_code, None);
    // A finished job is never claimed again, however long we wait.
    ctx.clock.advance(Duration::from_secs(3600));
    assert!(ctx.store.claim("w3", LEASE).await.expect("claim").is_none());
}

async fn fail_retries_then_ends_failed(ctx: Ctx) {
    let id = ctx.store.enqueue(&new_job(1, None)).await.expect("enqueue");
    let first = ctx
        .store
        .claim("w1", LEASE)
        .await
        .expect("claim")
        .expect("a job");
    let throttled = JobFailure {
        fault_code: "MODEL_THROTTLED".to_owned(),
        fault_text: "throttled".to_owned(),
        payload: None,
    };
    let retry = Some(Duration::from_secs(10));
    assert!(
        ctx.store
            .fail(&id, first.token, &throttled, retry)
            .await
            .expect("fail")
    );
    assert!(
        !ctx.store
            .fail(&id, first.token, &throttled, retry)
            .await
            .expect("fail again")
    );
    let queued = get(&ctx, &id).await;
    assert_eq!(queued.status, JobStatus::Queued);
    assert_eq!(queued.last_error.as_deref(), Some("throttled"));
    assert_eq!(queued.run_after_ms, START_MS + 10_000);
    assert!(
        ctx.store.claim("w1", LEASE).await.expect("claim").is_none(),
        "backing off"
    );

    ctx.clock.advance(Duration::from_secs(10));
    let second = ctx
        .store
        .claim("w2", LEASE)
        .await
        .expect("claim")
        .expect("retry");
    assert!(second.token > first.token);
    assert_eq!(second.job.attempts, 2);
    let fatal = JobFailure {
        fault_code: "MODEL_ERROR".to_owned(),
        fault_text: "the model failed".to_owned(),
        payload: None,
    };
    assert!(
        ctx.store
            .fail(&id, second.token, &fatal, None)
            .await
            .expect("fail")
    );
    assert!(
        !ctx.store
            .fail(&id, second.token, &fatal, None)
            .await
            .expect("fail again")
    );
    assert!(
        !ctx.store
            .complete(&id, second.token, &result("late"))
            .await
            .expect("complete")
    );
    let job = get(&ctx, &id).await;
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.fault_code.as_deref(), Some("MODEL_ERROR"));
    assert_eq!(job.fault_text.as_deref(), Some("the model failed"));
    assert_eq!(job.result_payload, None);
    ctx.clock.advance(Duration::from_secs(3600));
    assert!(ctx.store.claim("w3", LEASE).await.expect("claim").is_none());
}

/// A job whose answer was a declared fault ends FAILED under the fault's
/// name, keeping the fault as its result payload — on the job and in its
/// `soapgate_results` row, read by polls, replies and batch readers.
async fn a_declared_fault_ends_failed_with_its_fault_kept(ctx: Ctx) {
    let mut job = new_job(1, None);
    job.source = JobSource::Requests;
    let id = ctx.store.enqueue(&job).await.expect("enqueue");
    let c = ctx
        .store
        .claim("w1", LEASE)
        .await
        .expect("claim")
        .expect("a job");
    let fault = "<soap:Fault xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\">\
                 <faultcode>soap:Client</faultcode><faultstring>Rejected</faultstring>\
                 <detail><r:Rejection xmlns:r=\"urn:r\">spam</r:Rejection></detail></soap:Fault>";
    let declared = JobFailure {
        fault_code: "TicketRejected".to_owned(),
        fault_text: "Rejected".to_owned(),
        payload: Some(fault.to_owned()),
    };
    assert!(
        ctx.store
            .fail(&id, c.token, &declared, None)
            .await
            .expect("fail")
    );
    let job = get(&ctx, &id).await;
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.fault_code.as_deref(), Some("TicketRejected"));
    assert_eq!(job.result_payload.as_deref(), Some(fault));
    let row = ctx
        .store
        .get_result("corr-1")
        .await
        .expect("get")
        .expect("row");
    assert_eq!(row.status, ResultStatus::Failed);
    assert_eq!(row.fault_code.as_deref(), Some("TicketRejected"));
    assert_eq!(row.fault_text.as_deref(), Some("Rejected"));
    assert_eq!(row.payload.as_deref(), Some(fault));
}

fn new_request(n: usize) -> NewRequest {
    NewRequest {
        correlation_id: format!("batch-{n:04}"),
        service: "InvoiceService".to_owned(),
        operation: "ClassifyInvoice".to_owned(),
        payload: format!("<Invoice><Number>{n}</Number></Invoice>"),
        tenant: None,
    }
}

async fn requests_are_picked_up_in_order_exactly_once(ctx: Ctx) {
    // One claimer: insertion order, each row once, each row a queued job.
    for n in 0..5 {
        ctx.store
            .insert_request(&new_request(n))
            .await
            .expect("insert");
    }
    let mut order = Vec::new();
    while let Some(claimed) = ctx.store.claim_request("w1").await.expect("claim_request") {
        let job = get(&ctx, &claimed.job_id).await;
        assert_eq!(job.source, JobSource::Requests);
        assert_eq!(job.status, JobStatus::Queued);
        assert_eq!(job.correlation_id, claimed.request.correlation_id);
        assert_eq!(job.payload, claimed.request.payload);
        order.push(claimed.request.correlation_id);
    }
    let expected: Vec<String> = (0..5).map(|n| format!("batch-{n:04}")).collect();
    assert_eq!(order, expected);
    // The jobs come out of the queue in the same order.
    for corr in &expected {
        let claimed = ctx
            .store
            .claim("w1", LEASE)
            .await
            .expect("claim")
            .expect("job");
        assert_eq!(&claimed.job.correlation_id, corr);
    }

    // Racing claimers: every row exactly once.
    for n in 100..160 {
        ctx.store
            .insert_request(&new_request(n))
            .await
            .expect("insert");
    }
    let mut tasks = Vec::new();
    for w in 0..4 {
        let store = ctx.store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Some(c) = store.claim_request(&format!("w{w}")).await.expect("claim") {
                mine.push(c.request.correlation_id);
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("claimer"));
    }
    all.sort();
    let expected: Vec<String> = (100..160).map(|n| format!("batch-{n:04}")).collect();
    assert_eq!(all, expected);
}

async fn results_are_written_once(ctx: Ctx) {
    let done = ResultRow {
        correlation_id: "batch-0001".to_owned(),
        status: ResultStatus::Done,
        payload: Some("<Answer>first</Answer>".to_owned()),
        fault_code: None,
        fault_text: None,
        model: Some("m".to_owned()),
        input_tokens: Some(1),
        output_tokens: Some(2),
    };
    assert!(ctx.store.write_result(&done).await.expect("write"));
    let mut second = done.clone();
    second.payload = Some("<Answer>second</Answer>".to_owned());
    assert!(!ctx.store.write_result(&second).await.expect("second write"));
    assert_eq!(
        ctx.store.get_result("batch-0001").await.expect("get"),
        Some(done)
    );
    assert_eq!(
        ctx.store.count_results("batch-0001").await.expect("count"),
        1
    );

    let failed = ResultRow {
        correlation_id: "batch-0002".to_owned(),
        status: ResultStatus::Failed,
        payload: None,
        fault_code: Some("SCHEMA_INVALID".to_owned()),
        fault_text: Some("Invoice/Total: not a decimal".to_owned()),
        model: None,
        input_tokens: None,
        output_tokens: None,
    };
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = ctx.store.clone();
        let row = failed.clone();
        tasks.push(tokio::spawn(async move { store.write_result(&row).await }));
    }
    let mut inserted = 0;
    for task in tasks {
        if task.await.expect("writer").expect("write") {
            inserted += 1;
        }
    }
    assert_eq!(inserted, 1, "exactly one racing write wins");
    assert_eq!(
        ctx.store.count_results("batch-0002").await.expect("count"),
        1
    );
    assert_eq!(
        ctx.store.get_result("batch-0002").await.expect("get"),
        Some(failed)
    );
    assert_eq!(ctx.store.get_result("batch-0003").await.expect("get"), None);
}

/// The embedded default: a SQLite file under directories that do not exist
/// yet, in WAL mode (the `-wal` file appears beside it once written).
#[tokio::test]
async fn sqlite_creates_its_file_and_directories_and_runs_in_wal_mode() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let path = tmp.path().join("data").join("soapgate").join("soapgate.db");
    let store = Store::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("connect creates the database");
    let id = store.enqueue(&new_job(1, None)).await.expect("enqueue");
    assert!(store.get(&id).await.expect("get").is_some());
    assert!(path.exists(), "{} created", path.display());
    let wal = path.with_file_name("soapgate.db-wal");
    assert!(wal.exists(), "{} exists in WAL mode", wal.display());
    store.close().await;
}

/// `sqlite::memory:` keeps one connection, so every call sees the same
/// database (each new connection would otherwise be an empty one).
#[tokio::test]
async fn sqlite_in_memory_is_one_database() {
    let store = Store::connect("sqlite::memory:").await.expect("connect");
    let id = store.enqueue(&new_job(1, None)).await.expect("enqueue");
    let claimed = store.claim("w1", LEASE).await.expect("claim").expect("job");
    assert_eq!(claimed.job.id, id);
    assert!(
        store
            .complete(&id, claimed.token, &result("ok"))
            .await
            .expect("complete")
    );
    store.close().await;
}

async fn finishing_a_job_writes_its_result_row_in_the_same_transaction(ctx: Ctx) {
    let columns = vec!["category".to_owned(), "confidence".to_owned()];
    let added = ctx
        .store
        .ensure_result_columns(&columns)
        .await
        .expect("columns");
    assert_eq!(added, columns);
    // Idempotent: a second worker starting finds them there.
    assert!(
        ctx.store
            .ensure_result_columns(&columns)
            .await
            .expect("again")
            .is_empty()
    );
    assert!(
        ctx.store
            .ensure_result_columns(&["status".to_owned()])
            .await
            .is_err()
    );
    assert!(
        ctx.store
            .ensure_result_columns(&["x; DROP".to_owned()])
            .await
            .is_err()
    );

    let mut queued = new_job(1, None);
    queued.source = JobSource::Queue;
    let mut api = new_job(2, None);
    api.source = JobSource::Api;
    let mut failing = new_job(3, None);
    failing.source = JobSource::Requests;
    // Another job reusing correlation id corr-1: the first result stands.
    let mut twin = new_job(1, None);
    twin.source = JobSource::OneWay;
    for job in [&queued, &api, &failing, &twin] {
        ctx.store.enqueue(job).await.expect("enqueue");
    }
    let mut with_columns = result("ok");
    with_columns.columns = vec![
        ("category".to_owned(), Some("GOODS".to_owned())),
        ("confidence".to_owned(), None),
    ];
    for _ in 0..4 {
        let c = ctx
            .store
            .claim("w", LEASE)
            .await
            .expect("claim")
            .expect("a job");
        match c.job.correlation_id.as_str() {
            "corr-3" => {
                let failure = JobFailure {
                    fault_code: "INVALID_REQUEST".to_owned(),
                    fault_text: "bad".to_owned(),
                    payload: None,
                };
                // A retry writes no result row; the final failure does.
                assert!(
                    ctx.store
                        .fail(&c.job.id, c.token, &failure, Some(Duration::ZERO))
                        .await
                        .expect("retry")
                );
                assert_eq!(ctx.store.count_results("corr-3").await.expect("count"), 0);
                let again = ctx
                    .store
                    .claim("w", LEASE)
                    .await
                    .expect("claim")
                    .expect("again");
                assert!(
                    ctx.store
                        .fail(&again.job.id, again.token, &failure, None)
                        .await
                        .expect("fail")
                );
            }
            _ => {
                assert!(
                    ctx.store
                        .complete(&c.job.id, c.token, &with_columns)
                        .await
                        .expect("complete")
                );
                // A repeat is refused by the fence and writes nothing.
                assert!(
                    !ctx.store
                        .complete(&c.job.id, c.token, &with_columns)
                        .await
                        .expect("repeat")
                );
            }
        }
    }
    assert_eq!(ctx.store.count_results("corr-1").await.expect("count"), 1);
    assert_eq!(
        ctx.store.count_results("corr-2").await.expect("count"),
        0,
        "api jobs are polled by ticket"
    );
    let failed = ctx
        .store
        .get_result("corr-3")
        .await
        .expect("get")
        .expect("row");
    assert_eq!(failed.status, ResultStatus::Failed);
    assert_eq!(failed.fault_code.as_deref(), Some("INVALID_REQUEST"));
    let done = ctx
        .store
        .get_result("corr-1")
        .await
        .expect("get")
        .expect("row");
    assert_eq!(done.status, ResultStatus::Done);
    assert_eq!(done.payload.as_deref(), Some("<Answer>ok</Answer>"));
    assert_eq!(done.input_tokens, Some(12));
    assert!(
        ctx.store
            .result_columns()
            .await
            .expect("columns")
            .contains(&"category".to_owned())
    );
}

async fn release_requeues_without_counting_an_attempt(ctx: Ctx) {
    let id = ctx.store.enqueue(&new_job(1, None)).await.expect("enqueue");
    let first = ctx
        .store
        .claim("a", LEASE)
        .await
        .expect("claim")
        .expect("job");
    assert_eq!(first.job.attempts, 1);
    assert!(ctx.store.release(&id, first.token).await.expect("release"));
    // Stale or repeated releases change nothing.
    assert!(!ctx.store.release(&id, first.token).await.expect("again"));
    let job = get(&ctx, &id).await;
    assert_eq!(job.status, JobStatus::Queued);
    assert_eq!(job.attempts, 0);
    // Claimable at once, by another worker, under a new token.
    let second = ctx
        .store
        .claim("b", LEASE)
        .await
        .expect("claim")
        .expect("job");
    assert!(second.token > first.token);
    assert_eq!(second.job.attempts, 1);
    assert!(!ctx.store.release(&id, first.token).await.expect("stale"));
}

async fn claim_many_takes_expired_leases_first_then_queued_up_to_max(ctx: Ctx) {
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(ctx.store.enqueue(&new_job(n, None)).await.expect("enqueue"));
        ctx.clock.advance(Duration::from_millis(1));
    }
    let ids_of = |claimed: &[soapgate::store::ClaimedJob]| -> BTreeSet<JobId> {
        claimed.iter().map(|c| c.job.id.clone()).collect()
    };
    assert!(
        ctx.store
            .claim_many("w1", LEASE, 0)
            .await
            .expect("claim")
            .is_empty()
    );
    let first = ctx.store.claim_many("w1", LEASE, 2).await.expect("claim");
    assert_eq!(ids_of(&first), ids[..2].iter().cloned().collect());
    for c in &first {
        assert_eq!(c.job.status, JobStatus::Running);
        assert_eq!(c.job.lease_owner.as_deref(), Some("w1"));
        assert_eq!(c.token, c.job.fencing_token);
    }

    // w1 dies: its two jobs come back before the queued ones, with new
    // tokens, and the batch is filled from the queue in enqueue order.
    ctx.clock.advance(LEASE + Duration::from_secs(1));
    let second = ctx.store.claim_many("w2", LEASE, 3).await.expect("claim");
    assert_eq!(
        ids_of(&second),
        [&ids[0], &ids[1], &ids[2]].into_iter().cloned().collect()
    );
    for c in &second {
        let before = first.iter().find(|f| f.job.id == c.job.id);
        if let Some(before) = before {
            assert!(c.token > before.token, "re-claimed with a higher token");
            assert_eq!(c.job.attempts, 2);
        } else {
            assert_eq!(c.job.attempts, 1);
        }
    }
    let third = ctx.store.claim_many("w3", LEASE, 10).await.expect("claim");
    assert_eq!(ids_of(&third), ids[3..].iter().cloned().collect());
    assert!(
        ctx.store
            .claim_many("w3", LEASE, 10)
            .await
            .expect("claim")
            .is_empty(),
        "nothing left to claim"
    );
}

async fn finish_all_fences_each_end_and_isolates_a_bad_one(ctx: Ctx) {
    let mut ids = Vec::new();
    for n in 0..5 {
        let mut job = new_job(n, None);
        job.source = JobSource::Requests;
        ids.push(ctx.store.enqueue(&job).await.expect("enqueue"));
    }
    let claimed = ctx.store.claim_many("w1", LEASE, 5).await.expect("claim");
    assert_eq!(claimed.len(), 5);
    let token = |id: &JobId| {
        claimed
            .iter()
            .find(|c| &c.job.id == id)
            .expect("claimed")
            .token
    };
    // Job 0 was already recorded: its repeat in the group is refused.
    assert!(
        ctx.store
            .complete(&ids[0], token(&ids[0]), &result("earlier"))
            .await
            .expect("complete")
    );
    let failure = JobFailure {
        fault_code: "MODEL_THROTTLED".to_owned(),
        fault_text: "slow down".to_owned(),
        payload: None,
    };
    let end = |i: usize, end: JobEnd| JobFinish {
        id: ids[i].clone(),
        token: token(&ids[i]),
        end,
        reply_to: None,
    };
    let group = vec![
        end(0, JobEnd::Done(result("repeat"))),
        end(1, JobEnd::Done(result("one"))),
        end(2, JobEnd::Failed(failure.clone())),
        end(3, JobEnd::Retry(failure.clone(), Duration::from_secs(5))),
        // A stale token: refused, the others still recorded.
        JobFinish {
            id: ids[4].clone(),
            token: token(&ids[4]) - 1,
            end: JobEnd::Done(result("stale")),
            reply_to: None,
        },
    ];
    let written: Vec<bool> = ctx
        .store
        .finish_all(&group)
        .await
        .into_iter()
        .map(|w| w.expect("written"))
        .collect();
    assert_eq!(written, [false, true, true, true, false]);

    let job0 = get(&ctx, &ids[0]).await;
    assert_eq!(
        job0.result_payload.as_deref(),
        Some("<Answer>earlier</Answer>")
    );
    let job1 = get(&ctx, &ids[1]).await;
    assert_eq!(job1.status, JobStatus::Done);
    assert_eq!(job1.result_payload.as_deref(), Some("<Answer>one</Answer>"));
    let job2 = get(&ctx, &ids[2]).await;
    assert_eq!(job2.status, JobStatus::Failed);
    assert_eq!(job2.fault_code.as_deref(), Some("MODEL_THROTTLED"));
    let job3 = get(&ctx, &ids[3]).await;
    assert_eq!(job3.status, JobStatus::Queued);
    assert_eq!(job3.run_after_ms, START_MS + 5_000);
    assert_eq!(get(&ctx, &ids[4]).await.status, JobStatus::Running);
    // Final ends got their result rows in the same transaction; the retry
    // did not.
    for (n, status) in [
        (1, Some(ResultStatus::Done)),
        (2, Some(ResultStatus::Failed)),
        (3, None),
    ] {
        let row = ctx
            .store
            .get_result(&format!("corr-{n}"))
            .await
            .expect("result");
        assert_eq!(row.map(|r| r.status), status, "corr-{n}");
    }

    // A bad end (a result column no table may have) fails alone: the rest
    // of its group is written one by one.
    let mut bad = result("bad");
    bad.columns = vec![("payload".to_owned(), Some("x".to_owned()))];
    let group = vec![
        end(4, JobEnd::Done(bad)),
        JobFinish {
            id: ids[4].clone(),
            token: token(&ids[4]),
            end: JobEnd::Done(result("four")),
            reply_to: None,
        },
    ];
    let written = ctx.store.finish_all(&group).await;
    assert!(
        matches!(written[0], Err(StoreError::InvalidColumn(_))),
        "{:?}",
        written[0]
    );
    assert!(matches!(written[1], Ok(true)), "{:?}", written[1]);
    let job4 = get(&ctx, &ids[4]).await;
    assert_eq!(job4.status, JobStatus::Done);
    assert_eq!(
        job4.result_payload.as_deref(),
        Some("<Answer>four</Answer>")
    );
}

/// A final end that names a reply queue writes the reply's outbox row in
/// the result's own transaction (alone and in a group): a result can never
/// be committed without the reply that announces it. A retry, or an end
/// whose token is stale, writes none.
async fn a_final_end_writes_its_reply_row_with_the_result(ctx: Ctx) {
    let mut ids = Vec::new();
    for n in 0..4 {
        let mut job = new_job(n, None);
        job.source = JobSource::OneWay;
        ids.push(ctx.store.enqueue(&job).await.expect("enqueue"));
    }
    let claimed = ctx.store.claim_many("w1", LEASE, 4).await.expect("claim");
    let token = |id: &JobId| {
        claimed
            .iter()
            .find(|c| &c.job.id == id)
            .expect("claimed")
            .token
    };
    let failure = JobFailure {
        fault_code: "MODEL_UNAVAILABLE".to_owned(),
        fault_text: "down".to_owned(),
        payload: None,
    };
    let reply_to = Some("https://sqs.example/replies".to_owned());
    let end = |i: usize, token: i64, end: JobEnd| JobFinish {
        id: ids[i].clone(),
        token,
        end,
        reply_to: reply_to.clone(),
    };
    let group = vec![
        end(0, token(&ids[0]), JobEnd::Done(result("zero"))),
        end(1, token(&ids[1]), JobEnd::Failed(failure.clone())),
        end(
            2,
            token(&ids[2]),
            JobEnd::Retry(failure.clone(), Duration::from_secs(5)),
        ),
        end(3, token(&ids[3]) - 1, JobEnd::Done(result("stale"))),
    ];
    let written: Vec<bool> = ctx
        .store
        .finish_all(&group)
        .await
        .into_iter()
        .map(|r| r.expect("written"))
        .collect();
    assert_eq!(written, [true, true, true, false]);
    // One by one too (a group of one takes the single path).
    let alone = ctx
        .store
        .finish_all(&[end(3, token(&ids[3]), JobEnd::Done(result("three")))])
        .await;
    assert!(alone[0].as_ref().is_ok_and(|w| *w), "{alone:?}");
    let mut rows = Vec::new();
    for id in &ids {
        rows.push(ctx.store.replies_of(id).await.expect("replies").len());
    }
    assert_eq!(rows, [1, 1, 0, 1], "reply rows per job");
    assert_eq!(ctx.store.reply_outbox_len().await.expect("len"), 3);
}

fn recording(n: i64, at_ms: i64, operation: &str) -> NewRecording {
    NewRecording {
        at_ms,
        service: "SupportDesk".into(),
        operation: operation.into(),
        kind: KIND_SERVED,
        variant: (n % 2 == 1).then(|| "concise".to_string()),
        correlation_id: format!("c-{n}"),
        mapping_sha256: "ab".repeat(32),
        request_xml: format!("<DraftReply><TicketId>INC{n}</TicketId></DraftReply>"),
        converse_request: format!(r#"{{"messages":[{{"n":{n}}}]}}"#),
        model_answer: Some("{}".into()),
        response_xml: (n != 3).then(|| format!("<R>{n}</R>")),
        fault_code: (n == 3).then(|| "MODEL_TIMEOUT".to_string()),
        model: Some("m".into()),
        input_tokens: 10 + n,
        output_tokens: 20 + n,
        latency_ms: 30 + n,
        agreement: (n == 4).then_some(0.75),
    }
}

async fn recordings_are_kept_read_back_and_pruned_by_age_and_count(ctx: Ctx) {
    let rows: Vec<NewRecording> = (0..6)
        .map(|n| recording(n, START_MS + n * 1000, "DraftReply"))
        .chain([recording(9, START_MS, "TriageTicket")])
        .collect();
    ctx.store.insert_recordings(&rows).await.expect("insert");
    let query = |since_ms, limit| RecordingQuery {
        service: "SupportDesk".into(),
        operation: "DraftReply".into(),
        kind: KIND_SERVED,
        since_ms,
        limit,
    };
    let all = ctx
        .store
        .recordings(&query(None, None))
        .await
        .expect("read");
    assert_eq!(all.len(), 6, "one operation's rows only");
    for (got, want) in all.iter().zip(&rows) {
        assert_eq!(got.at_ms, want.at_ms);
        assert_eq!(got.variant, want.variant);
        assert_eq!(got.request_xml, want.request_xml);
        assert_eq!(got.converse_request, want.converse_request);
        assert_eq!(got.response_xml, want.response_xml);
        assert_eq!(got.fault_code, want.fault_code);
        assert_eq!(
            (got.input_tokens, got.output_tokens, got.latency_ms),
            (want.input_tokens, want.output_tokens, want.latency_ms)
        );
        assert_eq!(got.agreement, want.agreement);
        assert_eq!(got.mapping_sha256, want.mapping_sha256);
    }
    let later = ctx
        .store
        .recordings(&query(Some(START_MS + 2000), Some(2)))
        .await
        .expect("read since");
    let at: Vec<i64> = later.iter().map(|r| r.at_ms - START_MS).collect();
    assert_eq!(at, [2000, 3000], "since and limit, oldest first");
    let shadow = RecordingQuery {
        kind: KIND_SHADOW,
        ..query(None, None)
    };
    assert!(
        ctx.store
            .recordings(&shadow)
            .await
            .expect("read")
            .is_empty()
    );

    // By age: the rows before START_MS + 1000 (two) go.
    let gone = ctx
        .store
        .prune_recordings(START_MS + 1000, 100)
        .await
        .expect("prune by age");
    assert_eq!(gone, 2);
    // By count: of the five left, the newest three stay.
    let gone = ctx
        .store
        .prune_recordings(0, 3)
        .await
        .expect("prune by count");
    assert_eq!(gone, 2);
    let left = ctx
        .store
        .recordings(&query(None, None))
        .await
        .expect("read");
    let at: Vec<i64> = left.iter().map(|r| r.at_ms - START_MS).collect();
    assert_eq!(at, [3000, 4000, 5000]);
    assert_eq!(ctx.store.prune_recordings(0, 3).await.expect("again"), 0);
}

async fn batches_lease_their_jobs_step_fenced_and_give_jobs_back(ctx: Ctx) {
    // New jobs of ClassifyInvoice wait a minute for a batch.
    let store = ctx
        .store
        .clone()
        .with_batch_holds(Arc::new(|_: &str, operation: &str| {
            (operation == "ClassifyInvoice").then_some(Duration::from_secs(60))
        }));
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(store.enqueue(&new_job(n, None)).await.expect("enqueue"));
    }
    assert!(
        store.claim("w", LEASE).await.expect("claim").is_none(),
        "a job waiting for a batch is not due on demand"
    );
    let mut cut = BatchCut {
        service: "InvoiceService",
        operation: "ClassifyInvoice",
        model: "anthropic.claude-3-haiku-20240307-v1:0",
        min_records: 6,
        max_records: 4,
    };
    assert!(
        store
            .cut_batch(&cut, "d1", LEASE)
            .await
            .expect("cut")
            .is_none(),
        "5 waiting, fewer than min_records"
    );
    assert_eq!(
        store
            .batch_waiting("InvoiceService", "ClassifyInvoice")
            .await
            .expect("waiting"),
        5
    );
    cut.min_records = 3;
    let batch = store
        .cut_batch(&cut, "d1", LEASE)
        .await
        .expect("cut")
        .expect("a batch of the 4 oldest");
    assert_eq!(
        (batch.status, batch.records, batch.fencing_token),
        (BatchStatus::Cut, 4, 1)
    );
    let in_batch = store.batch_jobs(&batch.id).await.expect("batch jobs");
    let got: Vec<&JobId> = in_batch.iter().map(|c| &c.job.id).collect();
    assert_eq!(got, ids[..4].iter().collect::<Vec<_>>(), "oldest first");
    assert!(
        in_batch
            .iter()
            .all(|c| c.job.status == JobStatus::Running && c.job.attempts == 0)
    );
    assert!(
        store
            .cut_batch(&cut, "d1", LEASE)
            .await
            .expect("cut")
            .is_none(),
        "one job left waiting"
    );
    // Leased to d1: nobody else takes it, and a batch job never expires.
    assert!(
        store
            .claim_batch("d2", LEASE)
            .await
            .expect("claim")
            .is_none()
    );
    ctx.clock.advance(Duration::from_secs(3600));
    let on_demand = store
        .claim("w", LEASE)
        .await
        .expect("claim")
        .expect("job 4");
    assert_eq!(
        on_demand.job.id, ids[4],
        "the waiting job is due after its wait"
    );

    // d1 died: its lease ran out, d2 takes the batch, d1's writes are fenced.
    let taken = store
        .claim_batch("d2", LEASE)
        .await
        .expect("claim")
        .expect("the expired batch");
    assert_eq!(taken.fencing_token, 2);
    let mut step = BatchStep::of(&taken);
    step.status = BatchStatus::Uploaded;
    step.input_uri = Some("s3://b/x/records.jsonl");
    assert!(
        !store
            .advance_batch(&taken.id, 1, &step)
            .await
            .expect("stale")
    );
    assert!(
        store
            .advance_batch(&taken.id, 2, &step)
            .await
            .expect("step")
    );
    assert!(store.let_go_batch(&taken.id, 2).await.expect("let go"));
    let again = store.batch(&taken.id).await.expect("read").expect("row");
    assert_eq!(again.status, BatchStatus::Uploaded);
    assert_eq!(again.input_uri.as_deref(), Some("s3://b/x/records.jsonl"));
    let retaken = store
        .claim_batch("d3", LEASE)
        .await
        .expect("claim")
        .expect("let go, due");
    assert_eq!(retaken.fencing_token, 3);

    // Two jobs go back on demand (once), one is answered with its token.
    let back = [ids[0].clone(), ids[1].clone()];
    assert_eq!(
        store
            .return_batch_jobs(&batch.id, &back)
            .await
            .expect("return"),
        2
    );
    assert_eq!(
        store
            .return_batch_jobs(&batch.id, &back)
            .await
            .expect("again"),
        0
    );
    let answered = &in_batch[2];
    let recorded = store
        .finish_all(&[JobFinish {
            id: answered.job.id.clone(),
            token: answered.token,
            end: JobEnd::Done(result("batch")),
            reply_to: None,
        }])
        .await;
    assert!(matches!(recorded[..], [Ok(true)]));
    let left: Vec<JobId> = store
        .batch_jobs(&batch.id)
        .await
        .expect("left")
        .into_iter()
        .map(|c| c.job.id)
        .collect();
    assert_eq!(left, [ids[3].clone()]);
    assert_eq!(
        store.batch_tally(&batch.id).await.expect("tally"),
        (1, 2),
        "one answered, two given back, one still in the batch"
    );
    let returned = get(&ctx, &ids[0]).await;
    assert_eq!((returned.status, returned.attempts), (JobStatus::Queued, 0));
    let claimed = store.claim_many("w", LEASE, 5).await.expect("claim");
    let mut claimed: Vec<JobId> = claimed.into_iter().map(|c| c.job.id).collect();
    claimed.sort();
    let mut want = back.to_vec();
    want.sort();
    assert_eq!(
        claimed, want,
        "returned jobs run on demand; the batch keeps its own"
    );

    // A polling row of a held operation becomes a held job: the intake
    // need not wake a worker for it. Another operation's row is due now.
    for (n, operation) in [(90, "ClassifyInvoice"), (91, "ExtractInvoiceFields")] {
        store
            .insert_request(&NewRequest {
                correlation_id: format!("row-{n}"),
                service: "InvoiceService".into(),
                operation: operation.into(),
                payload: "<x/>".into(),
                tenant: None,
            })
            .await
            .expect("insert request");
        let picked = store
            .claim_request("intake")
            .await
            .expect("pick up")
            .expect("the row");
        assert_eq!(picked.held, operation == "ClassifyInvoice", "{operation}");
    }
    let due = store
        .claim("w", LEASE)
        .await
        .expect("claim")
        .expect("the due job");
    assert_eq!(due.job.operation, "ExtractInvoiceFields");
}

fn step(step: &str, item: Option<u32>, result: &str) -> StepResult {
    StepResult {
        step: step.to_owned(),
        item,
        result: result.to_owned(),
    }
}

async fn job_steps_are_kept_once_and_only_under_the_lease(ctx: Ctx) {
    let store = &ctx.store;
    let unknown = JobId::from_ticket("no-such-job");
    assert_eq!(store.step_results(&unknown).await.expect("read"), []);
    assert!(
        !store
            .save_step(&unknown, 1, "summarize", None, "{}")
            .await
            .expect("save"),
        "no job, no lease"
    );

    let id = store.enqueue(&new_job(1, None)).await.expect("enqueue");
    let other = store.enqueue(&new_job(2, None)).await.expect("enqueue");
    // A QUEUED job is held by no one.
    assert!(
        !store
            .save_step(&id, 0, "summarize", None, "{}")
            .await
            .expect("save")
    );
    let first = store
        .claim("w1", LEASE)
        .await
        .expect("claim")
        .expect("a job");
    assert_eq!(first.job.id, id);

    // Items saved out of order and a whole step read back in (step, item)
    // order; step names differing only in case are two steps.
    for (name, item, result) in [
        ("summarize", None, r#"{"summary":"late delivery"}"#),
        ("extract", Some(2), r#"{"line":2}"#),
        ("extract", Some(0), r#"{"line":0}"#),
        ("extract", Some(1), r#"{"line":1}"#),
        ("Summarize", None, r#"{"summary":"upper"}"#),
    ] {
        assert!(
            store
                .save_step(&id, first.token, name, item, result)
                .await
                .expect("save"),
            "{name} {item:?}"
        );
    }
    let kept = vec![
        step("Summarize", None, r#"{"summary":"upper"}"#),
        step("extract", Some(0), r#"{"line":0}"#),
        step("extract", Some(1), r#"{"line":1}"#),
        step("extract", Some(2), r#"{"line":2}"#),
        step("summarize", None, r#"{"summary":"late delivery"}"#),
    ];
    assert_eq!(store.step_results(&id).await.expect("read"), kept);
    assert_eq!(store.step_results(&other).await.expect("read"), []);

    // Saving a kept step again is accepted and keeps the first result.
    assert!(
        store
            .save_step(&id, first.token, "extract", Some(1), r#"{"line":"again"}"#)
            .await
            .expect("save again")
    );
    assert!(
        store
            .save_step(
                &id,
                first.token,
                "summarize",
                None,
                r#"{"summary":"again"}"#
            )
            .await
            .expect("save again")
    );
    assert_eq!(store.step_results(&id).await.expect("read"), kept);

    // w1's lease runs out and w2 takes the job over with a higher token.
    ctx.clock.advance(LEASE + Duration::from_secs(1));
    let second = store
        .claim("w2", LEASE)
        .await
        .expect("claim")
        .expect("re-claim");
    assert_eq!(second.job.id, id);
    assert!(second.token > first.token);
    // w1's late saves write nothing, new step or kept one alike.
    assert!(
        !store
            .save_step(&id, first.token, "extract", Some(3), r#"{"line":3}"#)
            .await
            .expect("stale save")
    );
    assert!(
        !store
            .save_step(&id, first.token, "extract", Some(0), r#"{"line":0}"#)
            .await
            .expect("stale save of a kept step")
    );
    assert_eq!(store.step_results(&id).await.expect("read"), kept);
    // w2 resumes where w1 stopped.
    assert!(
        store
            .save_step(&id, second.token, "extract", Some(3), r#"{"line":3}"#)
            .await
            .expect("save")
    );
    let mut resumed = kept.clone();
    resumed.insert(4, step("extract", Some(3), r#"{"line":3}"#));
    assert_eq!(store.step_results(&id).await.expect("read"), resumed);

    // A finished job takes no more steps, even under its last token.
    assert!(
        store
            .complete(&id, second.token, &result("done"))
            .await
            .expect("complete")
    );
    assert!(
        !store
            .save_step(&id, second.token, "review", None, "{}")
            .await
            .expect("save after done")
    );
    assert_eq!(store.step_results(&id).await.expect("read"), resumed);
}
