//! The emulator's batch-inference control plane driven by the real
//! aws-sdk-bedrock client, its input and output on moto's S3 through the
//! real aws-sdk-s3: a job's life to Completed, PartiallyCompleted, Failed
//! and Stopped, the refusals Bedrock makes, idempotent creation and List's
//! filters.
//!
//! A missing `moto_server` skips with a line on stderr, or fails under
//! `SOAPGATE_REQUIRE_PEERS=1`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use aws_sdk_bedrock::operation::get_model_invocation_job::GetModelInvocationJobOutput;
use aws_sdk_bedrock::types::{
    ModelInvocationJobInputDataConfig, ModelInvocationJobOutputDataConfig,
    ModelInvocationJobS3InputDataConfig, ModelInvocationJobS3OutputDataConfig,
    ModelInvocationJobStatus, S3InputFormat,
};
use aws_sdk_s3::primitives::ByteStream;
use serde_json::{Value, json};
use soapgate::emulator::{self, EmulatorHandle, Options, Script};

use crate::common::moto::Moto;

const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";
const ROLE: &str = "arn:aws:iam::123456789012:role/batch";
pub(super) const BUCKET: &str = "batch-test";

/// moto's S3 with a bucket, an emulator reading and writing it, and the two
/// SDK clients a caller of Bedrock batch inference uses.
pub(super) struct Rig {
    _moto: Moto,
    emulator: EmulatorHandle,
    s3: aws_sdk_s3::Client,
    bedrock: aws_sdk_bedrock::Client,
}

impl Rig {
    pub(super) async fn start(test: &str, script: &str) -> Option<Rig> {
        let moto = Moto::start(test)?;
        let script = Script::parse(script, "test script").expect("the script parses");
        let emulator = emulator::spawn_with(Options {
            script: Some(script),
            s3_endpoint_url: Some(moto.url.clone()),
        })
        .await
        .expect("the emulator starts");
        let s3 = moto.s3_with_bucket(BUCKET).await;
        let bedrock = aws_sdk_bedrock::Client::from_conf(
            aws_sdk_bedrock::Config::builder()
                .behavior_version(aws_sdk_bedrock::config::BehaviorVersion::latest())
                .region(aws_sdk_bedrock::config::Region::new("us-east-1"))
                .credentials_provider(aws_sdk_bedrock::config::Credentials::new(
                    "test", "test", None, None, "test",
                ))
                .endpoint_url(emulator.base_url())
                .build(),
        );
        Some(Rig {
            _moto: moto,
            emulator,
            s3,
            bedrock,
        })
    }

    pub(super) async fn upload(&self, key: &str, lines: &[String]) {
        let mut body = lines.join("\n");
        body.push('\n');
        self.s3
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(ByteStream::from(body.into_bytes()))
            .send()
            .await
            .expect("moto stores the input");
    }

    pub(super) async fn read(&self, key: &str) -> Option<String> {
        let object = self
            .s3
            .get_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .ok()?;
        let bytes = object.body.collect().await.ok()?.into_bytes();
        Some(String::from_utf8(bytes.to_vec()).expect("UTF-8 output"))
    }

    async fn keys(&self, prefix: &str) -> Vec<String> {
        let listed = self
            .s3
            .list_objects_v2()
            .bucket(BUCKET)
            .prefix(prefix)
            .send()
            .await
            .expect("moto lists");
        listed
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_string))
            .collect()
    }

    /// A CreateModelInvocationJob call reading `input` and writing under
    /// `s3://batch-test/out/`.
    pub(super) fn create(
        &self,
        name: &str,
        input: &str,
    ) -> aws_sdk_bedrock::operation::create_model_invocation_job::builders::CreateModelInvocationJobFluentBuilder
    {
        self.bedrock
            .create_model_invocation_job()
            .job_name(name)
            .role_arn(ROLE)
            .model_id(MODEL)
            .input_data_config(ModelInvocationJobInputDataConfig::S3InputDataConfig(
                ModelInvocationJobS3InputDataConfig::builder()
                    .s3_uri(format!("s3://{BUCKET}/{input}"))
                    .s3_input_format(S3InputFormat::Jsonl)
                    .build()
                    .expect("input config"),
            ))
            .output_data_config(ModelInvocationJobOutputDataConfig::S3OutputDataConfig(
                ModelInvocationJobS3OutputDataConfig::builder()
                    .s3_uri(format!("s3://{BUCKET}/out/"))
                    .build()
                    .expect("output config"),
            ))
    }

    async fn get(&self, arn: &str) -> GetModelInvocationJobOutput {
        self.bedrock
            .get_model_invocation_job()
            .job_identifier(arn)
            .send()
            .await
            .expect("GetModelInvocationJob")
    }

    /// Polls until the job has ended; every status seen on the way.
    pub(super) async fn until_ended(
        &self,
        arn: &str,
    ) -> (GetModelInvocationJobOutput, Vec<String>) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen: Vec<String> = Vec::new();
        loop {
            let job = self.get(arn).await;
            let status = job
                .status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default();
            if seen.last() != Some(&status) {
                seen.push(status.clone());
            }
            let running = matches!(
                job.status(),
                Some(
                    ModelInvocationJobStatus::Submitted
                        | ModelInvocationJobStatus::Validating
                        | ModelInvocationJobStatus::Scheduled
                        | ModelInvocationJobStatus::InProgress
                        | ModelInvocationJobStatus::Stopping
                )
            );
            if !running {
                return (job, seen);
            }
            assert!(
                Instant::now() < deadline,
                "the job {arn} never ended: {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The forced tool every structured record offers.
fn invoice_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "category": { "type": "string", "enum": ["GOODS", "SERVICES", "FREIGHT"] },
            "confidence": { "type": "number", "minimum": 0, "maximum": 1 },
            "reference": { "type": "string", "pattern": "^INV-[0-9]{4}$" },
            "lines": {
                "type": "array", "minItems": 1, "maxItems": 3,
                "items": { "type": "object", "properties": { "amount": { "type": "integer" } }, "required": ["amount"] }
            }
        },
        "required": ["category", "confidence", "reference", "lines"],
        "additionalProperties": false
    })
}

/// Record `i`: an Anthropic Messages body with a forced tool, except every
/// tenth, which is plain text (answered by echo).
fn record(i: usize) -> String {
    let id = format!("rec-{i:04}");
    let mut body = json!({
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 512,
        "system": "You classify supplier invoices.",
        "messages": [{ "role": "user", "content": [{ "type": "text", "text": format!("Classify invoice {id}") }] }],
    });
    if !i.is_multiple_of(10) {
        body["tools"] = json!([{ "name": "ClassifyInvoice", "description": "The classification", "input_schema": invoice_schema() }]);
        body["tool_choice"] = json!({ "type": "tool", "name": "ClassifyInvoice" });
    }
    json!({ "recordId": id, "modelInput": body }).to_string()
}

fn records(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(record).collect()
}

pub(super) fn job_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap()
}

/// The output lines of a job, by recordId (each must appear once).
async fn outputs(rig: &Rig, arn: &str, files: &[&str]) -> BTreeMap<String, Value> {
    let mut by_id = BTreeMap::new();
    for file in files {
        let key = format!("out/{}/{file}.out", job_id(arn));
        let text = rig.read(&key).await.unwrap_or_else(|| panic!("no {key}"));
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let value: Value = serde_json::from_str(line).expect("an output line is JSON");
            let id = value["recordId"].as_str().expect("recordId").to_string();
            assert!(
                by_id.insert(id.clone(), value).is_none(),
                "{id} answered twice"
            );
        }
    }
    by_id
}

async fn manifest(rig: &Rig, arn: &str) -> Value {
    let key = format!("out/{}/manifest.json.out", job_id(arn));
    serde_json::from_str(&rig.read(&key).await.expect("the manifest")).expect("manifest JSON")
}

#[tokio::test]
async fn a_job_of_120_records_answers_every_record_once_with_valid_tool_input() {
    let test = "a_job_of_120_records_answers_every_record_once_with_valid_tool_input";
    let Some(rig) = Rig::start(test, "batch: { delay_ms: 150 }\n").await else {
        return;
    };
    // Two files under one prefix: one output file each.
    rig.upload("in/nightly/a.jsonl", &records(0..70)).await;
    rig.upload("in/nightly/b.jsonl", &records(70..120)).await;
    rig.upload("in/nightly/notes.txt", &["not records".to_string()])
        .await;
    let created = rig
        .create("nightly-120", "in/nightly/")
        .send()
        .await
        .expect("CreateModelInvocationJob");
    let arn = created.job_arn().to_string();
    assert!(
        arn.starts_with("arn:aws:bedrock:us-east-1:") && arn.contains(":model-invocation-job/"),
        "{arn}"
    );
    let (job, seen) = rig.until_ended(&arn).await;
    assert_eq!(
        job.status(),
        Some(&ModelInvocationJobStatus::Completed),
        "{seen:?}"
    );
    assert_eq!(
        seen.first().map(String::as_str),
        Some("Submitted"),
        "{seen:?}"
    );
    assert!(seen.iter().any(|s| s == "InProgress"), "{seen:?}");
    assert_eq!(job.total_record_count(), Some(120));
    assert_eq!(job.success_record_count(), Some(120));
    assert_eq!(job.error_record_count(), Some(0));
    assert!(job.end_time().is_some());
    assert_eq!(job.model_id(), MODEL);

    let by_id = outputs(&rig, &arn, &["a.jsonl", "b.jsonl"]).await;
    let expected: BTreeSet<String> = (0..120).map(|i| format!("rec-{i:04}")).collect();
    assert_eq!(by_id.keys().cloned().collect::<BTreeSet<_>>(), expected);
    let validator = jsonschema::validator_for(&invoice_schema()).expect("the schema compiles");
    for (i, (id, line)) in by_id.iter().enumerate() {
        assert_eq!(
            line["modelInput"]["anthropic_version"],
            "bedrock-2023-05-31"
        );
        let output = &line["modelOutput"];
        assert_eq!(output["type"], "message", "{line}");
        assert_eq!(output["role"], "assistant");
        assert!(output["usage"]["input_tokens"].as_u64().unwrap() > 0);
        assert!(output["usage"]["output_tokens"].as_u64().unwrap() > 0);
        let block = &output["content"][0];
        if i.is_multiple_of(10) {
            assert_eq!(output["stop_reason"], "end_turn", "{line}");
            assert_eq!(block["type"], "text");
            assert_eq!(block["text"], format!("Classify invoice {id}"));
        } else {
            assert_eq!(output["stop_reason"], "tool_use", "{line}");
            assert_eq!(block["type"], "tool_use");
            assert_eq!(block["name"], "ClassifyInvoice");
            assert!(block["id"].as_str().unwrap().starts_with("toolu_"));
            let errors: Vec<String> = validator
                .iter_errors(&block["input"])
                .map(|e| e.to_string())
                .collect();
            assert!(errors.is_empty(), "{id}: {errors:?} in {}", block["input"]);
        }
    }
    // The order of the lines is not the input's: callers match by recordId.
    let first_file = rig
        .read(&format!("out/{}/a.jsonl.out", job_id(&arn)))
        .await
        .unwrap();
    let order: Vec<String> = first_file
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["recordId"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let input_order: Vec<String> = (0..70).map(|i| format!("rec-{i:04}")).collect();
    assert_ne!(order, input_order, "the output keeps the input's order");

    let manifest = manifest(&rig, &arn).await;
    assert_eq!(manifest["totalRecordCount"], 120);
    assert_eq!(manifest["processedRecordCount"], 120);
    assert_eq!(manifest["successRecordCount"], 120);
    assert_eq!(manifest["errorRecordCount"], 0);
    assert!(manifest["inputTokenCount"].as_u64().unwrap() > 0);
    assert!(manifest["outputTokenCount"].as_u64().unwrap() > 0);
    let mut written = rig.keys(&format!("out/{}/", job_id(&arn))).await;
    written.sort();
    assert_eq!(written.len(), 3, "{written:?}");
    // Batch records are not Converse calls.
    let calls = reqwest::get(format!("{}/_emulator/calls", rig.emulator.base_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let calls: Value = serde_json::from_str(&calls).unwrap();
    assert_eq!(calls["total"], 0);
}

#[tokio::test]
async fn what_bedrock_refuses_is_a_validation_exception_and_no_job() {
    let test = "what_bedrock_refuses_is_a_validation_exception_and_no_job";
    let Some(rig) = Rig::start(test, "batch: { delay_ms: 10 }\n").await else {
        return;
    };
    rig.upload("in/99.jsonl", &records(0..99)).await;
    let mut not_json = records(0..120);
    not_json[57] = "{\"recordId\": \"rec-0057\", \"modelInput\": ".to_string();
    rig.upload("in/not-json.jsonl", &not_json).await;
    let mut no_id = records(0..120);
    no_id[3] = json!({ "modelInput": {} }).to_string();
    rig.upload("in/no-id.jsonl", &no_id).await;
    let mut no_input = records(0..120);
    no_input[4] = json!({ "recordId": "rec-x" }).to_string();
    rig.upload("in/no-input.jsonl", &no_input).await;
    let mut duplicate = records(0..120);
    duplicate[9] = record(8);
    rig.upload("in/duplicate.jsonl", &duplicate).await;

    let cases = [
        ("in/99.jsonl", "fewer than the minimum of 100"),
        ("in/not-json.jsonl", "line 58 is not a valid JSON record"),
        ("in/no-id.jsonl", "line 4 has no recordId"),
        ("in/no-input.jsonl", "line 5 has no modelInput"),
        ("in/duplicate.jsonl", "rec-0008 more than once"),
        ("in/missing.jsonl", "Unable to read"),
        ("nothing-here/", "No .jsonl input files"),
    ];
    for (input, says) in cases {
        let err = rig
            .create("refused", input)
            .send()
            .await
            .expect_err(input)
            .into_service_error();
        assert!(err.is_validation_exception(), "{input}: {err:?}");
        let message = err.meta().message().unwrap_or_default().to_string();
        assert!(message.contains(says), "{input}: {message}");
    }
    let bad_uri = rig
        .bedrock
        .create_model_invocation_job()
        .job_name("bad-uri")
        .role_arn(ROLE)
        .model_id(MODEL)
        .input_data_config(ModelInvocationJobInputDataConfig::S3InputDataConfig(
            ModelInvocationJobS3InputDataConfig::builder()
                .s3_uri("https://example.com/in.jsonl")
                .build()
                .unwrap(),
        ))
        .output_data_config(ModelInvocationJobOutputDataConfig::S3OutputDataConfig(
            ModelInvocationJobS3OutputDataConfig::builder()
                .s3_uri(format!("s3://{BUCKET}/out/"))
                .build()
                .unwrap(),
        ))
        .send()
        .await
        .expect_err("an https URI")
        .into_service_error();
    assert!(bad_uri.is_validation_exception(), "{bad_uri:?}");
    let short = rig
        .create("short-timeout", "in/99.jsonl")
        .timeout_duration_in_hours(2)
        .send()
        .await
        .expect_err("2 hours")
        .into_service_error();
    assert!(short.is_validation_exception(), "{short:?}");

    let listed = rig
        .bedrock
        .list_model_invocation_jobs()
        .send()
        .await
        .unwrap();
    assert!(listed.invocation_job_summaries().is_empty());
    let missing = rig
        .bedrock
        .get_model_invocation_job()
        .job_identifier("abcdefghijkl")
        .send()
        .await
        .expect_err("no such job")
        .into_service_error();
    assert!(missing.is_resource_not_found_exception(), "{missing:?}");
}

#[tokio::test]
async fn the_same_client_request_token_returns_the_same_job() {
    let test = "the_same_client_request_token_returns_the_same_job";
    let Some(rig) = Rig::start(test, "batch: { delay_ms: 50 }\n").await else {
        return;
    };
    rig.upload("in/batch.jsonl", &records(0..100)).await;
    let first = rig
        .create("nightly-token", "in/batch.jsonl")
        .client_request_token("batch-0001")
        .send()
        .await
        .expect("created");
    let again = rig
        .create("nightly-token", "in/batch.jsonl")
        .client_request_token("batch-0001")
        .send()
        .await
        .expect("the same request again");
    assert_eq!(first.job_arn(), again.job_arn());
    let other = rig
        .create("nightly-token", "in/batch.jsonl")
        .client_request_token("batch-0002")
        .send()
        .await
        .expect("another request");
    assert_ne!(first.job_arn(), other.job_arn());
    let listed = rig
        .bedrock
        .list_model_invocation_jobs()
        .send()
        .await
        .unwrap();
    assert_eq!(listed.invocation_job_summaries().len(), 2);
    let (job, _) = rig.until_ended(first.job_arn()).await;
    assert_eq!(job.client_request_token(), Some("batch-0001"));
    assert_eq!(job.status(), Some(&ModelInvocationJobStatus::Completed));
    // After it ended, the token still names it.
    let later = rig
        .create("nightly-token", "in/batch.jsonl")
        .client_request_token("batch-0001")
        .send()
        .await
        .expect("the same request after the end");
    assert_eq!(first.job_arn(), later.job_arn());
}

#[tokio::test]
async fn a_scripted_record_failure_leaves_the_job_partially_completed() {
    let test = "a_scripted_record_failure_leaves_the_job_partially_completed";
    let script = r#"
rules:
  - prompt: "rec-0007"
    error: { kind: model_error, message: "The model could not answer record 7" }
  - prompt: "rec-0011"
    fail_first: { times: 1, kind: throttling }
batch: { delay_ms: 20 }
"#;
    let Some(rig) = Rig::start(test, script).await else {
        return;
    };
    let mut lines = records(0..110);
    // A body the model would refuse is that record's error, not the job's.
    lines[20] = json!({ "recordId": "rec-0020", "modelInput": { "messages": [] } }).to_string();
    rig.upload("in/batch.jsonl", &lines).await;
    let arn = rig
        .create("partial", "in/batch.jsonl")
        .send()
        .await
        .expect("created")
        .job_arn()
        .to_string();
    let (job, seen) = rig.until_ended(&arn).await;
    assert_eq!(
        job.status(),
        Some(&ModelInvocationJobStatus::PartiallyCompleted),
        "{seen:?}"
    );
    assert_eq!(job.success_record_count(), Some(107));
    assert_eq!(job.error_record_count(), Some(3));
    let by_id = outputs(&rig, &arn, &["batch.jsonl"]).await;
    assert_eq!(by_id.len(), 110);
    let error = |id: &str| by_id[id]["error"].clone();
    assert_eq!(error("rec-0007")["errorCode"], 424);
    assert_eq!(
        error("rec-0007")["errorMessage"],
        "The model could not answer record 7"
    );
    assert!(by_id["rec-0007"].get("modelOutput").is_none());
    assert_eq!(error("rec-0011")["errorCode"], 429);
    assert_eq!(error("rec-0020")["errorCode"], 400);
    assert!(
        error("rec-0020")["errorMessage"]
            .as_str()
            .unwrap()
            .contains("anthropic_version"),
        "{}",
        by_id["rec-0020"]
    );
    assert!(by_id["rec-0008"].get("error").is_none());
    let manifest = manifest(&rig, &arn).await;
    assert_eq!(manifest["totalRecordCount"], 110);
    assert_eq!(manifest["successRecordCount"], 107);
    assert_eq!(manifest["errorRecordCount"], 3);
}

#[tokio::test]
async fn a_scripted_job_failure_fails_the_job_with_its_message() {
    let test = "a_scripted_job_failure_fails_the_job_with_its_message";
    let script = r#"
rules:
  - prompt: "rec-0042"
    fail_job: "The batch could not be processed"
batch: { delay_ms: 20 }
"#;
    let Some(rig) = Rig::start(test, script).await else {
        return;
    };
    rig.upload("in/batch.jsonl", &records(0..100)).await;
    let arn = rig
        .create("doomed", "in/batch.jsonl")
        .send()
        .await
        .expect("created")
        .job_arn()
        .to_string();
    let (job, seen) = rig.until_ended(&arn).await;
    assert_eq!(
        job.status(),
        Some(&ModelInvocationJobStatus::Failed),
        "{seen:?}"
    );
    assert_eq!(job.message(), Some("The batch could not be processed"));
    assert!(job.end_time().is_some());
    assert!(rig.keys(&format!("out/{}/", job_id(&arn))).await.is_empty());
}

#[tokio::test]
async fn a_stopped_job_ends_stopped_and_list_filters_by_status_and_name() {
    let test = "a_stopped_job_ends_stopped_and_list_filters_by_status_and_name";
    let Some(rig) = Rig::start(test, "batch: { delay_ms: 1500 }\n").await else {
        return;
    };
    rig.upload("in/batch.jsonl", &records(0..100)).await;
    let stopped = rig
        .create("nightly-stopped", "in/batch.jsonl")
        .send()
        .await
        .unwrap()
        .job_arn()
        .to_string();
    let running = rig
        .create("nightly-running", "in/batch.jsonl")
        .send()
        .await
        .unwrap()
        .job_arn()
        .to_string();
    let other = rig
        .create("weekly", "in/batch.jsonl")
        .send()
        .await
        .unwrap()
        .job_arn()
        .to_string();
    // Stopped by id; Get by ARN or id alike.
    rig.bedrock
        .stop_model_invocation_job()
        .job_identifier(job_id(&stopped))
        .send()
        .await
        .expect("StopModelInvocationJob");
    let (job, seen) = rig.until_ended(&stopped).await;
    assert_eq!(
        job.status(),
        Some(&ModelInvocationJobStatus::Stopped),
        "{seen:?}"
    );
    assert_eq!(rig.get(job_id(&stopped)).await.job_arn(), stopped);
    let again = rig
        .bedrock
        .stop_model_invocation_job()
        .job_identifier(&stopped)
        .send()
        .await
        .expect_err("an ended job cannot be stopped")
        .into_service_error();
    assert!(again.is_validation_exception(), "{again:?}");

    let names = |summaries: &[aws_sdk_bedrock::types::ModelInvocationJobSummary]| {
        let mut names: Vec<String> = summaries.iter().map(|s| s.job_name().to_string()).collect();
        names.sort();
        names
    };
    let nightly = rig
        .bedrock
        .list_model_invocation_jobs()
        .name_contains("nightly")
        .send()
        .await
        .unwrap();
    assert_eq!(
        names(nightly.invocation_job_summaries()),
        ["nightly-running", "nightly-stopped"]
    );
    let by_status = rig
        .bedrock
        .list_model_invocation_jobs()
        .status_equals(ModelInvocationJobStatus::Stopped)
        .send()
        .await
        .unwrap();
    assert_eq!(
        names(by_status.invocation_job_summaries()),
        ["nightly-stopped"]
    );
    let summary = &by_status.invocation_job_summaries()[0];
    assert_eq!(summary.job_arn(), stopped);
    assert_eq!(summary.model_id(), MODEL);
    // Pages of one, newest first.
    let page = rig
        .bedrock
        .list_model_invocation_jobs()
        .max_results(1)
        .send()
        .await
        .unwrap();
    assert_eq!(page.invocation_job_summaries().len(), 1);
    assert_eq!(page.invocation_job_summaries()[0].job_arn(), other);
    assert!(page.next_token().is_some());

    let (job, _) = rig.until_ended(&running).await;
    assert_eq!(job.status(), Some(&ModelInvocationJobStatus::Completed));
    assert!(
        rig.keys(&format!("out/{}/", job_id(&stopped)))
            .await
            .is_empty()
    );
    let completed = rig
        .bedrock
        .list_model_invocation_jobs()
        .status_equals(ModelInvocationJobStatus::Completed)
        .name_contains("nightly")
        .send()
        .await
        .unwrap();
    assert_eq!(
        names(completed.invocation_job_summaries()),
        ["nightly-running"]
    );
}

#[tokio::test]
async fn converse_type_records_are_answered_in_converse_and_refuse_tool_config() {
    let test = "converse_type_records_are_answered_in_converse_and_refuse_tool_config";
    let Some(rig) = Rig::start(test, "batch: { delay_ms: 20, min_records: 10 }\n").await else {
        return;
    };
    let mut lines: Vec<String> = (0..10)
        .map(|i| {
            json!({
                "recordId": format!("conv-{i}"),
                "modelInput": {
                    "messages": [{ "role": "user", "content": [{ "text": format!("Summarise note {i}") }] }],
                    "inferenceConfig": { "maxTokens": 256 }
                }
            })
            .to_string()
        })
        .collect();
    // Bedrock refuses tool use in Converse-type batch records.
    lines[3] = json!({
        "recordId": "conv-3",
        "modelInput": {
            "messages": [{ "role": "user", "content": [{ "text": "Classify" }] }],
            "toolConfig": {
                "tools": [{ "toolSpec": { "name": "Answer", "inputSchema": { "json": { "type": "object" } } } }],
                "toolChoice": { "tool": { "name": "Answer" } }
            }
        }
    })
    .to_string();
    rig.upload("in/converse.jsonl", &lines).await;
    let arn = rig
        .create("converse-type", "in/converse.jsonl")
        .model_invocation_type(aws_sdk_bedrock::types::ModelInvocationType::Converse)
        .send()
        .await
        .expect("created")
        .job_arn()
        .to_string();
    let (job, seen) = rig.until_ended(&arn).await;
    assert_eq!(
        job.status(),
        Some(&ModelInvocationJobStatus::PartiallyCompleted),
        "{seen:?}"
    );
    assert_eq!(
        job.model_invocation_type(),
        Some(&aws_sdk_bedrock::types::ModelInvocationType::Converse)
    );
    let by_id = outputs(&rig, &arn, &["converse.jsonl"]).await;
    assert_eq!(by_id.len(), 10);
    assert_eq!(by_id["conv-3"]["error"]["errorCode"], 400);
    assert!(
        by_id["conv-3"]["error"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("toolConfig")
    );
    let answer = &by_id["conv-5"]["modelOutput"];
    assert_eq!(answer["stopReason"], "end_turn", "{answer}");
    assert_eq!(
        answer["output"]["message"]["content"][0]["text"],
        "Summarise note 5"
    );
}
