//! Queued jobs through batch inference, end to end: the example
//! InvoiceService.ClassifyInvoice with `batch:` (100 to 100 records, a
//! short wait), polling-table rows inserted as a legacy batch job does,
//! soapgate's own workers and batch driver, the emulator's runtime and
//! batch control plane through the real AWS SDKs, moto's S3. The rows
//! are a tenant's, so every model call leaves a usage row: a batch's
//! answers at batch price.
//!
//! A missing `moto_server` skips with a line on stderr, or fails under
//! `SOAPGATE_REQUIRE_PEERS=1`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use soapgate::app::{App, Parts, Role};
use soapgate::bedrock::{BedrockBatch, BedrockClient};
use soapgate::config::Settings;
use soapgate::contract::validate_payload;
use soapgate::emulator::{self, EmulatorHandle, Options, Script};
use soapgate::metrics::Metrics;
use soapgate::shutdown::Shutdown;
use soapgate::store::{BatchStatus, NewRequest, ResultStatus, Store};
use soapgate::tenants::{CredentialSettings, Price, TenantSettings};
use soapgate::xml::{self, Limits};

use crate::common::gateway::{bedrock_settings, repo_root};
use crate::common::moto::Moto;

const BUCKET: &str = "soapgate-batches";

/// The tenant every row is inserted for.
const TENANT: &str = "acme";

/// The price of every model the tests call, per million tokens: input
/// and output on demand, batch at half that (not configured).
const INPUT_PRICE: f64 = 2.0;
const OUTPUT_PRICE: f64 = 10.0;

/// The models ClassifyInvoice calls: its two targets and the batch model
/// of [`hundred`].
const MODELS: [&str; 3] = [
    "anthropic.claude-3-5-sonnet-20240620-v1:0",
    "anthropic.claude-3-haiku-20240307-v1:0",
    "anthropic.claude-batch-test-v1:0",
];

/// The example request with its vendor and total made the `i`th's own.
fn request_xml(i: usize) -> String {
    let text =
        std::fs::read_to_string(repo_root().join("examples/InvoiceService/ClassifyInvoice.xml"))
            .expect("the example request");
    let text = text.replace(
        "<name>Nordlicht Rechenzentrum GmbH</name>",
        &format!("<name>Vendor {i:04} GmbH</name>"),
    );
    text.replace(
        "<totalAmount>5795.30</totalAmount>",
        &format!("<totalAmount>{}.30</totalAmount>", 5000 + i),
    )
}

/// The example mappings, ClassifyInvoice batching with `batch`.
fn mappings_with_batch(dir: &Path, batch: &str) {
    for entry in std::fs::read_dir(repo_root().join("mappings")).expect("mappings") {
        let path = entry.expect("entry").path();
        let mut text = std::fs::read_to_string(&path).expect("mapping");
        if path.file_name().is_some_and(|n| n == "InvoiceService.yaml") {
            let at = "  ClassifyInvoice:\n    mode: sync\n";
            assert!(text.contains(at), "the example mapping has ClassifyInvoice");
            text = text.replace(at, &format!("{at}{batch}"));
        }
        std::fs::write(dir.join(path.file_name().expect("name")), text).expect("write");
    }
}

/// moto with a bucket, the emulator reading and writing it, and a
/// soapgate process (HTTP off to the side, workers and batch driver on)
/// over a SQLite file.
pub(super) struct BatchRig {
    _moto: Moto,
    pub(super) emulator: EmulatorHandle,
    pub(super) store: Store,
    pub(super) metrics: Arc<Metrics>,
    db_url: String,
    stop: Shutdown,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl BatchRig {
    pub(super) async fn start(test: &str, script: &str, batch: &str) -> Option<BatchRig> {
        let moto = Moto::start(test)?;
        moto.s3_with_bucket(BUCKET).await;
        let emulator = emulator::spawn_with(Options {
            script: Some(Script::parse(script, "test script").expect("the script parses")),
            s3_endpoint_url: Some(moto.url.clone()),
        })
        .await
        .expect("the emulator starts");
        let dir = tempfile::tempdir().expect("a temporary folder");
        let mappings = dir.path().join("mappings");
        std::fs::create_dir(&mappings).expect("mappings folder");
        mappings_with_batch(&mappings, batch);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let mut settings = Settings {
            wsdl_dir: repo_root().join("wsdl"),
            mappings_dir: mappings,
            bedrock: bedrock_settings(),
            ..Settings::default()
        };
        settings.database.url = format!("sqlite://{}", dir.path().join("jobs.db").display());
        settings.worker.poll_interval_ms = 20;
        settings.batch.tick_ms = 50;
        settings.batch.poll_initial_ms = 50;
        settings.batch.poll_max_ms = 200;
        settings.batch.lease_ms = 5_000;
        settings.tenants = vec![TenantSettings {
            name: TENANT.into(),
            credentials: vec![CredentialSettings::ApiKey {
                key_hash: soapgate::tenants::secret::hash_api_key("sg_batch_rig"),
            }],
            allow: vec!["*".into()],
            requests_per_minute: None,
            burst: None,
            tokens_per_minute: None,
            tokens_per_day: None,
            tokens_per_month: None,
        }];
        settings.tenancy.prices = MODELS
            .iter()
            .map(|m| (m.to_string(), Price::on_demand(INPUT_PRICE, OUTPUT_PRICE)))
            .collect();
        let db_url = settings.database.url.clone();
        let parts = Parts {
            model: Some(Arc::new(BedrockClient::for_endpoint(
                emulator.base_url(),
                &settings.bedrock,
            ))),
            listener: Some(listener),
            batch: Some(Arc::new(BedrockBatch::for_endpoints(
                emulator.base_url(),
                &moto.url,
            ))),
        };
        let app = App::build(settings, Role::Serve, parts)
            .await
            .unwrap_or_else(|e| panic!("the app does not build: {e:#}"));
        let store = app.state().store.get().cloned().expect("the store");
        let metrics = app.state().metrics.clone();
        let stop = Shutdown::new();
        let task = tokio::spawn(app.run_until_stopped(stop.clone()));
        Some(BatchRig {
            _moto: moto,
            emulator,
            store,
            metrics,
            db_url,
            stop,
            task,
            _dir: dir,
        })
    }

    pub(super) async fn insert_rows(&self, prefix: &str, n: usize) {
        for i in 0..n {
            self.store
                .insert_request(&NewRequest {
                    correlation_id: format!("{prefix}-{i:04}"),
                    service: "InvoiceService".into(),
                    operation: "ClassifyInvoice".into(),
                    payload: request_xml(i),
                    tenant: Some(TENANT.into()),
                })
                .await
                .expect("insert a request row");
        }
    }

    /// Waits until every one of the `n` rows has its result row.
    pub(super) async fn wait_for_results(&self, prefix: &str, n: usize, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let mut done = 0;
            for i in 0..n {
                let id = format!("{prefix}-{i:04}");
                if self.store.count_results(&id).await.expect("count") > 0 {
                    done += 1;
                }
            }
            if done == n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{done} of {n} results after {within:?}; batches: {:#?}",
                self.store.batches(10).await.expect("batches")
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every usage row: correlation id, model, input and output tokens,
    /// cost, batch; in the order written.
    pub(super) async fn usage_rows(&self) -> Vec<UsageLine> {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&self.db_url)
            .await
            .expect("connect");
        let rows: Vec<UsageLine> = sqlx::query_as(
            "SELECT correlation_id, model, input_tokens, output_tokens, cost_micros, batch, \
             COALESCE(tenant, '') FROM soapgate_usage ORDER BY id",
        )
        .fetch_all(&mut c)
        .await
        .expect("usage rows");
        rows
    }

    /// The value of one sample of `/metrics`: `name{labels}`, labels in
    /// the order rendered; `None` when there is none.
    pub(super) fn metric(&self, sample: &str) -> Option<f64> {
        let text = self.metrics.render();
        text.lines().find_map(|l| {
            l.strip_prefix(sample)
                .and_then(|v| v.strip_prefix(' '))
                .and_then(|v| v.trim().parse().ok())
        })
    }

    pub(super) async fn on_demand_calls(&self) -> i64 {
        crate::common::worker_process::emulator_calls(self.emulator.base_url()).await
    }

    pub(super) async fn stop(self) {
        self.stop.trigger();
        let _ = tokio::time::timeout(Duration::from_secs(20), self.task).await;
    }
}

/// A usage row as [`BatchRig::usage_rows`] reads it.
type UsageLine = (String, String, i64, i64, i64, i64, String);

/// What `input` and `output` tokens cost on demand at the rig's prices, in
/// millionths.
fn on_demand_micros(input: i64, output: i64) -> i64 {
    (INPUT_PRICE * input as f64 + OUTPUT_PRICE * output as f64).round() as i64
}

/// Every one of the `n` rows has exactly one DONE result, a valid
/// ClassifyInvoiceResponse.
async fn assert_one_valid_result_each(store: &Store, prefix: &str, n: usize) {
    let (contracts, _) = soapgate::app::load_set(&Settings {
        wsdl_dir: repo_root().join("wsdl"),
        mappings_dir: repo_root().join("mappings"),
        ..Settings::default()
    })
    .expect("the example contracts");
    let (contract, service) = contracts.service("InvoiceService").expect("service");
    let op = service.operation("ClassifyInvoice").expect("operation");
    let output = op.output.as_ref().expect("ClassifyInvoice answers");
    for i in 0..n {
        let id = format!("{prefix}-{i:04}");
        assert_eq!(store.count_results(&id).await.expect("count"), 1, "{id}");
        let row = store
            .get_result(&id)
            .await
            .expect("read")
            .expect("a result");
        assert_eq!(row.status, ResultStatus::Done, "{id}: {row:?}");
        let payload = row.payload.expect("a payload");
        let doc = xml::read(payload.as_bytes(), None, &Limits::default()).expect("XML");
        let violations = validate_payload(
            &contract.schemas,
            output,
            std::slice::from_ref(&doc.root),
            &xml::NsScope::new(),
        );
        assert!(violations.is_empty(), "{id}: {violations:?}\n{payload}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_rows_go_in_two_batches_and_the_remainder_runs_on_demand() {
    let test = "polling_rows_go_in_two_batches_and_the_remainder_runs_on_demand";
    let batch = format!(
        "    batch:\n      min_records: 100\n      max_records: 100\n      max_wait_secs: 8\n      \
         role_arn: arn:aws:iam::123456789012:role/BedrockBatch\n      s3_uri: s3://{BUCKET}/soapgate\n"
    );
    let Some(rig) = BatchRig::start(test, "batch: { delay_ms: 300 }\n", &batch).await else {
        return;
    };
    rig.insert_rows("row", 250).await;
    rig.wait_for_results("row", 250, Duration::from_secs(90))
        .await;

    let batches = rig.store.batches(10).await.expect("batches");
    assert_eq!(batches.len(), 2, "{batches:#?}");
    for b in &batches {
        assert_eq!(b.status, BatchStatus::Done, "{b:#?}");
        assert_eq!((b.records, b.answered, b.returned), (100, 100, 0), "{b:#?}");
        assert!(b.job_arn.is_some(), "{b:#?}");
    }
    // The 50 rows below the minimum ran on demand, each with one call.
    assert_eq!(rig.on_demand_calls().await, 50);
    assert_one_valid_result_each(&rig.store, "row", 250).await;
    let usage = rig.usage_rows().await;
    let batched = usage.iter().filter(|u| u.5 == 1).count();
    let on_demand = usage.iter().filter(|u| u.5 == 0).count();
    assert_eq!((batched, on_demand), (200, 50), "{usage:#?}");
    rig.stop().await;
}

/// `batch:` for 100-record batches of ClassifyInvoice created for a model
/// of its own, so a script can tell batch records from on-demand calls.
fn hundred(wait_secs: u32) -> String {
    format!(
        "    batch:\n      min_records: 100\n      max_records: 100\n      max_wait_secs: {wait_secs}\n      \
         role_arn: arn:aws:iam::123456789012:role/BedrockBatch\n      s3_uri: s3://{BUCKET}/soapgate\n      \
         model: anthropic.claude-batch-test-v1:0\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_records_and_invalid_answers_go_on_demand() {
    let test = "failed_records_and_invalid_answers_go_on_demand";
    // Rows 0-4: the record fails. Rows 10-19: the batch answers outside the
    // schema, and the repair goes on demand.
    let script = r#"
rules:
  - model: "anthropic.claude-batch-test*"
    prompt: "Vendor 000[0-4] "
    error: { kind: model_error, message: "scripted record failure" }
  - model: "anthropic.claude-batch-test*"
    prompt: "Vendor 001[0-9] "
    tool: { classification: { category: "NOT A CATEGORY" } }
batch: { delay_ms: 200 }
"#;
    let Some(rig) = BatchRig::start(test, script, &hundred(600)).await else {
        return;
    };
    rig.insert_rows("rec", 100).await;
    rig.wait_for_results("rec", 100, Duration::from_secs(60))
        .await;
    let batches = rig.store.batches(10).await.expect("batches");
    assert_eq!(batches.len(), 1, "{batches:#?}");
    let b = &batches[0];
    assert_eq!(b.status, BatchStatus::Done, "{b:#?}");
    assert_eq!((b.records, b.answered, b.returned), (100, 95, 5), "{b:#?}");
    // Five failed records run again on demand, ten invalid answers are
    // repaired on demand: one call each.
    assert_eq!(rig.on_demand_calls().await, 15);
    assert_one_valid_result_each(&rig.store, "rec", 100).await;

    // Usage: a batch-answered row per answered record, at half the
    // on-demand price; an on-demand row per failed record and per repair.
    let usage = rig.usage_rows().await;
    let mut batch_rows = 0;
    let mut on_demand_rows = 0;
    for (id, model, input, output, cost, batch, tenant) in &usage {
        assert_eq!(tenant, TENANT, "{usage:#?}");
        let n: usize = id.trim_start_matches("rec-").parse().expect("a row id");
        if *batch == 1 {
            batch_rows += 1;
            assert!(
                (5..100).contains(&n),
                "{id} has no batch answer: {usage:#?}"
            );
            assert_eq!(model, "anthropic.claude-batch-test-v1:0", "{id}");
            assert!(*input > 0 && *output > 0, "{id}: {usage:#?}");
            // The prices make both costs whole micros: exactly half.
            assert_eq!(
                2 * *cost,
                on_demand_micros(*input, *output),
                "{id}: half the on-demand price"
            );
        } else {
            assert_eq!(*batch, 0, "{id}");
            on_demand_rows += 1;
            assert!(
                n < 5 || (10..20).contains(&n),
                "{id} ran on demand: {usage:#?}"
            );
            assert_ne!(model, "anthropic.claude-batch-test-v1:0", "{id}");
            assert_eq!(*cost, on_demand_micros(*input, *output), "{id}");
        }
    }
    assert_eq!((batch_rows, on_demand_rows), (95, 15), "{usage:#?}");
    // `soapgate usage` reads the same: batch calls, tokens and cost apart.
    let totals = rig
        .store
        .usage_totals(0, Some(TENANT))
        .await
        .expect("totals");
    let batched = totals
        .iter()
        .find(|t| t.model == "anthropic.claude-batch-test-v1:0")
        .expect("the batch model's usage");
    assert_eq!(
        (batched.calls, batched.batch_calls),
        (95, 95),
        "{totals:#?}"
    );
    assert_eq!(
        batched.batch_cost_micros, batched.cost_micros,
        "{totals:#?}"
    );
    let batch_cost: i64 = usage.iter().filter(|u| u.5 == 1).map(|u| u.4).sum();
    assert_eq!(batched.batch_cost_micros, batch_cost, "{totals:#?}");
    assert!(
        totals
            .iter()
            .filter(|t| t.model != "anthropic.claude-batch-test-v1:0")
            .all(|t| t.batch_calls == 0 && t.batch_cost_micros == 0),
        "{totals:#?}"
    );

    // Metrics: one batch DONE, 95 jobs answered, 5 returned.
    let labels = "service=\"InvoiceService\",operation=\"ClassifyInvoice\"";
    assert_eq!(
        rig.metric(&format!(
            "soapgate_batches_total{{{labels},status=\"DONE\"}}"
        )),
        Some(1.0),
        "{}",
        rig.metrics.render()
    );
    assert_eq!(
        rig.metric(&format!(
            "soapgate_batches_total{{{labels},status=\"FAILED\"}}"
        )),
        None
    );
    assert_eq!(
        rig.metric(&format!(
            "soapgate_batch_jobs_total{{{labels},result=\"answered\"}}"
        )),
        Some(95.0)
    );
    assert_eq!(
        rig.metric(&format!(
            "soapgate_batch_jobs_total{{{labels},result=\"returned\"}}"
        )),
        Some(5.0)
    );
    assert_eq!(
        rig.metric(&format!("soapgate_batch_jobs_waiting{{{labels}}}")),
        Some(0.0)
    );
    // Rows below the minimum wait for a batch: the driver counts them.
    rig.insert_rows("late", 30).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let sample = format!("soapgate_batch_jobs_waiting{{{labels}}}");
    while rig.metric(&sample) != Some(30.0) {
        assert!(
            Instant::now() < deadline,
            "{:?} waiting\n{}",
            rig.metric(&sample),
            rig.metrics.render()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_runs_every_job_on_demand() {
    let test = "a_failed_batch_runs_every_job_on_demand";
    let script = r#"
rules:
  - model: "anthropic.claude-batch-test*"
    prompt: "Vendor 0007 "
    fail_job: "scripted: the batch job failed"
batch: { delay_ms: 200 }
"#;
    let Some(rig) = BatchRig::start(test, script, &hundred(600)).await else {
        return;
    };
    rig.insert_rows("failed", 100).await;
    rig.wait_for_results("failed", 100, Duration::from_secs(60))
        .await;
    let batches = rig.store.batches(10).await.expect("batches");
    assert_eq!(batches.len(), 1, "{batches:#?}");
    let b = &batches[0];
    assert_eq!(b.status, BatchStatus::Failed, "{b:#?}");
    assert_eq!((b.answered, b.returned), (0, 100), "{b:#?}");
    assert!(
        b.last_error
            .as_deref()
            .is_some_and(|e| e.contains("scripted: the batch job failed")),
        "{b:#?}"
    );
    assert_eq!(rig.on_demand_calls().await, 100);
    assert_one_valid_result_each(&rig.store, "failed", 100).await;
    // Nothing a failed batch did is charged at batch price.
    let usage = rig.usage_rows().await;
    assert_eq!(usage.len(), 100, "{usage:#?}");
    assert!(
        usage
            .iter()
            .all(|(_, _, i, o, cost, batch, _)| *batch == 0 && *cost == on_demand_micros(*i, *o)),
        "{usage:#?}"
    );
    let labels = "service=\"InvoiceService\",operation=\"ClassifyInvoice\"";
    assert_eq!(
        rig.metric(&format!(
            "soapgate_batches_total{{{labels},status=\"FAILED\"}}"
        )),
        Some(1.0),
        "{}",
        rig.metrics.render()
    );
    assert_eq!(
        rig.metric(&format!(
            "soapgate_batch_jobs_total{{{labels},result=\"returned\"}}"
        )),
        Some(100.0)
    );
    assert_eq!(
        rig.metric(&format!(
            "soapgate_batch_jobs_total{{{labels},result=\"answered\"}}"
        )),
        None
    );
    rig.stop().await;
}
