//! The job workers in process, on SQLite, PostgreSQL and MariaDB, with the
//! Converse emulator behind the real Bedrock SDK client: polling-table rows
//! end DONE or FAILED with the fault code the HTTP path gives (never
//! silence), flat result columns are filled, and retryable failures are
//! retried with backoff until they succeed or run out of attempts.

use crate::common::db as db_support;
use crate::common::mappings as mappings_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use db_support::{Kind, TestDb};
use soapgate::bedrock::{BedrockClient, BedrockSettings};
use soapgate::config::WorkerSettings;
use soapgate::emulator::{self, EmulatorHandle, Script};
use soapgate::jobs::WorkerPool;
use soapgate::live::{Live, Sources};
use soapgate::store::{JobId, JobSource, JobStatus, NewJob, NewRequest, Store};
use soapgate::xml::Limits;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const INV_NS: &str = "http://erp.example.com/ap/invoice/types/v1";

fn repo_root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A bare ClassifyInvoice request payload (what a batch job inserts).
pub(crate) fn classify_payload(number: &str, vendor: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<inv:ClassifyInvoice xmlns:inv="{INV_NS}">
  <companyCode>1000</companyCode>
  <invoice source="OCR">
    <invoiceNumber>{number}</invoiceNumber>
    <invoiceDate>2024-11-18</invoiceDate>
    <vendor><vendorId>V0042117</vendorId><name>{vendor}</name><country>DE</country></vendor>
    <currency>EUR</currency>
    <netAmount>100.00</netAmount>
    <taxAmount>19.00</taxAmount>
    <totalAmount>119.00</totalAmount>
    <lines>
      <line><lineNumber>1</lineNumber><description>Rack space</description><quantity>1</quantity><unitPrice>100.00</unitPrice><amount>100.00</amount></line>
    </lines>
  </invoice>
</inv:ClassifyInvoice>"#
    )
}

struct Running {
    store: Store,
    emulator: EmulatorHandle,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Running {
    async fn start(db: &TestDb, script: Option<&str>, settings: WorkerSettings) -> Running {
        Running::start_with(db, script, settings, &repo_root().join("mappings")).await
    }

    /// Like [`Running::start`], with the mappings of `mappings_dir`.
    async fn start_with(
        db: &TestDb,
        script: Option<&str>,
        settings: WorkerSettings,
        mappings_dir: &std::path::Path,
    ) -> Running {
        let script = script.map(|s| Script::parse(s, "worker-test.yaml").expect("script"));
        let emulator = emulator::spawn(script).await.expect("emulator");
        let bedrock = BedrockSettings {
            connect_timeout_ms: 1_000,
            read_timeout_ms: 5_000,
            operation_timeout_ms: 10_000,
            max_attempts: 1,
            initial_backoff_ms: 10,
            ..BedrockSettings::default()
        };
        let model = Arc::new(soapgate::models::Models::new(
            Arc::new(BedrockClient::for_endpoint(emulator.base_url(), &bedrock)),
            bedrock.model_settings(),
        ));
        let live = Live::load(Sources {
            wsdl_dir: repo_root().join("wsdl"),
            mappings_dir: mappings_dir.to_path_buf(),
        })
        .expect("example contracts and mappings load");
        let store = Store::connect(&db.url).await.expect("store");
        let pool = WorkerPool::new(
            store.clone(),
            Arc::new(live),
            Some(model),
            settings,
            Limits::default(),
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            pool.run(async move {
                let _ = stopped.await;
            })
            .await
            .expect("workers run");
        });
        Running {
            store,
            emulator,
            stop: Some(stop),
            task: Some(task),
        }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("worker task");
        }
        self.store.close().await;
    }

    async fn model_calls(&self) -> u64 {
        let body = reqwest::get(format!("{}/_emulator/calls", self.emulator.base_url()))
            .await
            .expect("calls")
            .text()
            .await
            .expect("calls body");
        let v: serde_json::Value = serde_json::from_str(&body).expect("calls json");
        v["total"].as_u64().expect("total")
    }
}

fn fast_settings() -> WorkerSettings {
    WorkerSettings {
        concurrency: 4,
        lease_ms: 10_000,
        max_attempts: 3,
        backoff_base_ms: 20,
        backoff_cap_ms: 100,
        poll_interval_ms: 20,
        shutdown_grace_ms: 5_000,
        ..WorkerSettings::default()
    }
}

/// One row of `soapgate_results` with the example mapping's flat columns.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
struct ResultLine {
    correlation_id: String,
    status: String,
    payload: Option<String>,
    fault_code: Option<String>,
    fault_text: Option<String>,
    model: Option<String>,
    category: Option<String>,
    confidence: Option<String>,
}

async fn results(db: &TestDb) -> Vec<ResultLine> {
    let sql = "SELECT correlation_id, status, payload, fault_code, fault_text, model, \
               category, confidence FROM soapgate_results ORDER BY correlation_id";
    match db.kind {
        Kind::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&db.url).await.expect("sqlite");
            let rows = sqlx::query_as(sql).fetch_all(&pool).await.expect("results");
            pool.close().await;
            rows
        }
        Kind::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await.expect("postgres");
            let rows = sqlx::query_as(sql).fetch_all(&pool).await.expect("results");
            pool.close().await;
            rows
        }
        Kind::MariaDb => {
            let pool = sqlx::MySqlPool::connect(&db.url).await.expect("mariadb");
            let rows = sqlx::query_as(sql).fetch_all(&pool).await.expect("results");
            pool.close().await;
            rows
        }
    }
}

/// Waits until `done` holds, checking every 50 ms, for at most a minute
/// (a hang, not a speed limit: the assertion is on what was recorded).
async fn wait_until<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !done().await {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `jobs` jobs have ended, DONE or FAILED.
async fn wait_for_final(store: &Store, jobs: i64, what: &str) {
    wait_until(what, || async {
        store
            .job_counts()
            .await
            .map(|c| c.done + c.failed)
            .unwrap_or(0)
            == jobs
    })
    .await;
}

macro_rules! on_every_backend {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                super::$scenario(super::Kind::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                super::$scenario(super::Kind::Postgres).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn mariadb() {
                super::$scenario(super::Kind::MariaDb).await;
            }
        }
    )*};
}

on_every_backend!(
    polling_rows_end_done_or_failed_with_their_fault,
    retryable_failures_are_retried_then_fail_after_max_attempts,
    shutdown_releases_jobs_still_running_after_the_grace_period,
);

async fn polling_rows_end_done_or_failed_with_their_fault(kind: Kind) {
    let Some(db) = TestDb::create(kind, "polling_rows").await else {
        return;
    };
    let running = Running::start(&db, None, fast_settings()).await;
    let envelope =
        std::fs::read_to_string(repo_root().join("examples/InvoiceService/ClassifyInvoice.xml"))
            .expect("example envelope");
    let valid = classify_payload("RE-1", "Nordlicht GmbH");
    let missing_currency = valid.replace("<currency>EUR</currency>", "");
    let rows: Vec<(&str, &str, &str, String)> = vec![
        ("a-bare", "InvoiceService", "ClassifyInvoice", valid.clone()),
        ("b-envelope", "InvoiceService", "ClassifyInvoice", envelope),
        (
            "c-malformed",
            "InvoiceService",
            "ClassifyInvoice",
            format!("<inv:ClassifyInvoice xmlns:inv=\"{INV_NS}\"><companyCode>1000"),
        ),
        (
            "d-schema",
            "InvoiceService",
            "ClassifyInvoice",
            missing_currency,
        ),
        (
            "e-no-operation",
            "InvoiceService",
            "ClassifyInvoices",
            valid.clone(),
        ),
        (
            "f-other-operation",
            "InvoiceService",
            "ExtractInvoiceFields",
            valid.clone(),
        ),
        (
            "g-no-service",
            "InvoiceServices",
            "ClassifyInvoice",
            valid.clone(),
        ),
    ];
    for (correlation_id, service, operation, payload) in &rows {
        running
            .store
            .insert_request(&NewRequest {
                correlation_id: (*correlation_id).to_owned(),
                service: (*service).to_owned(),
                operation: (*operation).to_owned(),
                payload: payload.clone(),
                tenant: None,
            })
            .await
            .expect("insert request");
    }
    wait_for_final(&running.store, 7, "a result per row").await;
    let got = results(&db).await;
    assert_eq!(got.len(), rows.len(), "{got:#?}");
    let by = |id: &str| {
        got.iter()
            .find(|r| r.correlation_id == id)
            .expect(id)
            .clone()
    };

    for id in ["a-bare", "b-envelope"] {
        let r = by(id);
        assert_eq!(r.status, "DONE", "{r:#?}");
        let payload = r.payload.as_deref().expect("payload");
        let doc = soapgate::xml::read_str(payload, &Limits::default()).expect("payload is XML");
        assert_eq!(doc.root.name.local, "ClassifyInvoiceResponse");
        assert_eq!(doc.root.name.ns, INV_NS);
        let classification = doc
            .root
            .child("", "classification")
            .expect("classification");
        let category = classification
            .child("", "category")
            .expect("category")
            .text();
        let confidence = classification
            .child("", "confidence")
            .expect("confidence")
            .text();
        assert_eq!(r.category.as_deref(), Some(category.as_str()), "{r:#?}");
        assert_eq!(r.confidence.as_deref(), Some(confidence.as_str()), "{r:#?}");
        assert!(
            r.model
                .as_deref()
                .is_some_and(|m| m.starts_with("anthropic.")),
            "{r:#?}"
        );
        assert!(r.fault_code.is_none());
    }
    for (id, code) in [
        ("c-malformed", "MALFORMED_XML"),
        ("d-schema", "INVALID_REQUEST"),
        ("e-no-operation", "UNKNOWN_OPERATION"),
        ("f-other-operation", "ACTION_MISMATCH"),
        ("g-no-service", "UNKNOWN_SERVICE"),
    ] {
        let r = by(id);
        assert_eq!(r.status, "FAILED", "{r:#?}");
        assert_eq!(r.fault_code.as_deref(), Some(code), "{r:#?}");
        assert!(
            r.fault_text.as_deref().is_some_and(|t| !t.is_empty()),
            "{r:#?}"
        );
        assert!(r.payload.is_none() && r.category.is_none(), "{r:#?}");
    }
    // Only the two valid requests reached the model.
    assert_eq!(running.model_calls().await, 2);
    running.stop().await;
}

/// With `on_failure: static`, a job whose model keeps failing is retried
/// while it has attempts left; only its last attempt answers with the
/// static response (DONE), not its first.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_static_fallback_answers_a_job_only_on_its_last_attempt() {
    let Some(db) = TestDb::create(Kind::Sqlite, "static_last").await else {
        return;
    };
    let script = "rules:\n  - prompt: \"Broken Vendor\"\n    error: { kind: internal_server }\n";
    let settings = fast_settings();
    // The example mappings: ClassifyInvoice has a static fallback.
    let running = Running::start(&db, Some(script), settings.clone()).await;
    let id = running
        .store
        .enqueue(&NewJob {
            service: "InvoiceService".into(),
            operation: "ClassifyInvoice".into(),
            correlation_id: "static-broken".into(),
            payload: classify_payload("RE-7", "Broken Vendor"),
            idempotency_key: None,
            source: JobSource::Queue,
            tenant: None,
        })
        .await
        .expect("enqueue");
    wait_for_final(&running.store, 1, "the job final").await;
    let job = running.store.get(&id).await.expect("get").expect("job");
    assert_eq!(job.status, JobStatus::Done, "{job:#?}");
    assert_eq!(job.attempts, i64::from(settings.max_attempts), "{job:#?}");
    let got = results(&db).await;
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].status, "DONE", "{got:#?}");
    assert_eq!(got[0].category.as_deref(), Some("UNCLASSIFIED"), "{got:#?}");
    // Every attempt went down the whole chain: 2 targets x 3 attempts.
    assert_eq!(running.model_calls().await, 2 * 3);
    running.stop().await;
}

async fn retryable_failures_are_retried_then_fail_after_max_attempts(kind: Kind) {
    let Some(db) = TestDb::create(kind, "retries").await else {
        return;
    };
    let script = r#"
rules:
  - prompt: "Flaky Vendor"
    fail_first: { times: 2, kind: internal_server }
  - prompt: "Broken Vendor"
    error: { kind: internal_server }
  - prompt: "Denied Vendor"
    error: { kind: access_denied }
"#;
    let settings = fast_settings();
    // The example's ClassifyInvoice answers model failures with its static
    // fallback (a DONE job, marked degraded); the retries and the final
    // FAILED are what this test is about.
    let mappings = mappings_support::with_fault_policy(
        "    on_failure:\n      static:\n        classification:",
        "    # Flat columns of soapgate_results",
    );
    let running = Running::start_with(&db, Some(script), settings.clone(), mappings.path()).await;
    let mut ids: Vec<(&str, JobId)> = Vec::new();
    for vendor in ["Flaky Vendor", "Broken Vendor", "Denied Vendor"] {
        let id = running
            .store
            .enqueue(&NewJob {
                service: "InvoiceService".into(),
                operation: "ClassifyInvoice".into(),
                correlation_id: format!("retry-{vendor}"),
                payload: classify_payload("RE-9", vendor),
                idempotency_key: None,
                source: JobSource::Queue,
                tenant: None,
            })
            .await
            .expect("enqueue");
        ids.push((vendor, id));
    }
    wait_for_final(&running.store, 3, "every job final").await;
    let job = |n: usize| {
        let store = running.store.clone();
        let id = ids[n].1.clone();
        async move { store.get(&id).await.expect("get").expect("job") }
    };
    // The first attempt fails on both targets of the chain; the second
    // succeeds.
    let flaky = job(0).await;
    assert_eq!(flaky.status, JobStatus::Done, "{flaky:#?}");
    assert_eq!(flaky.attempts, 2, "{flaky:#?}");
    // Always failing: every attempt, then FAILED with the last error.
    let broken = job(1).await;
    assert_eq!(broken.status, JobStatus::Failed, "{broken:#?}");
    assert_eq!(
        broken.attempts,
        i64::from(settings.max_attempts),
        "{broken:#?}"
    );
    assert_eq!(broken.fault_code.as_deref(), Some("MODEL_UNAVAILABLE"));
    // Not retryable: FAILED after one attempt.
    let denied = job(2).await;
    assert_eq!(denied.status, JobStatus::Failed, "{denied:#?}");
    assert_eq!(denied.attempts, 1, "{denied:#?}");
    assert_eq!(denied.fault_code.as_deref(), Some("MODEL_ACCESS_DENIED"));

    let got = results(&db).await;
    let statuses: Vec<(String, String, Option<String>)> = got
        .iter()
        .map(|r| {
            (
                r.correlation_id.clone(),
                r.status.clone(),
                r.fault_code.clone(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        vec![
            (
                "retry-Broken Vendor".into(),
                "FAILED".into(),
                Some("MODEL_UNAVAILABLE".into())
            ),
            (
                "retry-Denied Vendor".into(),
                "FAILED".into(),
                Some("MODEL_ACCESS_DENIED".into())
            ),
            ("retry-Flaky Vendor".into(), "DONE".into(), None),
        ]
    );
    // Flaky: 2 failed + 1 answer; broken: 2 targets x 3 attempts; denied:
    // stops at the first target (another target would be denied as well).
    assert_eq!(running.model_calls().await, 3 + 6 + 1);
    running.stop().await;
}

async fn shutdown_releases_jobs_still_running_after_the_grace_period(kind: Kind) {
    let Some(db) = TestDb::create(kind, "shutdown").await else {
        return;
    };
    // The model takes far longer than the grace period.
    let script = "rules:\n  - delay_ms: 20000\n";
    let settings = WorkerSettings {
        shutdown_grace_ms: 200,
        ..fast_settings()
    };
    let running = Running::start(&db, Some(script), settings).await;
    let mut ids = Vec::new();
    for n in 0..2 {
        let id = running
            .store
            .enqueue(&NewJob {
                service: "InvoiceService".into(),
                operation: "ClassifyInvoice".into(),
                correlation_id: format!("slow-{n}"),
                payload: classify_payload("RE-7", "Slow Vendor"),
                idempotency_key: None,
                source: JobSource::Queue,
                tenant: None,
            })
            .await
            .expect("enqueue");
        ids.push(id);
    }
    wait_until("both jobs running", || async {
        running
            .store
            .job_counts()
            .await
            .map(|c| c.running)
            .unwrap_or(0)
            == 2
    })
    .await;
    let store = running.store.clone();
    running.stop().await;
    let store = Store::connect(&db.url).await.unwrap_or(store);
    for id in &ids {
        let job = store.get(id).await.expect("get").expect("job");
        // Back in the queue at once, the interrupted run not counted.
        assert_eq!(job.status, JobStatus::Queued, "{job:#?}");
        assert_eq!(job.attempts, 0, "{job:#?}");
        assert!(job.lease_owner.is_none(), "{job:#?}");
    }
    let next = store
        .claim("another", Duration::from_secs(5))
        .await
        .expect("claim")
        .expect("a released job is claimable at once");
    assert_eq!(next.job.attempts, 1);
    store.close().await;
}
