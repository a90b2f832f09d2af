//! Queued jobs through batch inference, end to end: the example
//! InvoiceService.ClassifyInvoice with `batch:` (100 to 100 records, a
//! short wait), polling-table rows inserted as a legacy batch job does,
//! soapgate's own workers and batch driver, the emulator's runtime and
//! batch control plane through the real AWS SDKs, moto's S3.
//!
//! A missing `moto_server` skips with a line on stderr, or fails under
//! `SOAPGATE_REQUIRE_PEERS=1`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use soapgate::app::{App, Parts, Role};
use soapgate::bedrock::{BedrockBatch, BedrockClient};
use soapgate::config::Settings;
use soapgate::contract::validate_payload;
use soapgate::emulator::{self, EmulatorHandle, Options, Script};
use soapgate::shutdown::Shutdown;
use soapgate::store::{BatchStatus, NewRequest, ResultStatus, Store};
use soapgate::xml::{self, Limits};

use crate::common::gateway::{bedrock_settings, repo_root};
use crate::common::moto::Moto;

const BUCKET: &str = "soapgate-batches";

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
    stop: Shutdown,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl BatchRig {
    pub(super) async fn start(test: &str, script: &str, batch: &str) -> Option<BatchRig> {
        let moto = Moto::start(test)?;
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .credentials_provider(Credentials::new("test", "test", None, None, "test"))
                .endpoint_url(&moto.url)
                .force_path_style(true)
                .build(),
        );
        s3.create_bucket()
            .bucket(BUCKET)
            .send()
            .await
            .expect("moto creates the bucket");
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
        let stop = Shutdown::new();
        let task = tokio::spawn(app.run_until_stopped(stop.clone()));
        Some(BatchRig {
            _moto: moto,
            emulator,
            store,
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
                    tenant: None,
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

    pub(super) async fn on_demand_calls(&self) -> i64 {
        crate::common::worker_process::emulator_calls(self.emulator.base_url()).await
    }

    pub(super) async fn stop(self) {
        self.stop.trigger();
        let _ = tokio::time::timeout(Duration::from_secs(20), self.task).await;
    }
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
    rig.stop().await;
}
