//! `bedrock::BedrockBatch`, the production `BatchClient`, driven through
//! the trait against the emulator's batch-inference control plane with its
//! input and output on moto's S3: records built from Converse requests,
//! uploaded, a job created idempotently, followed to Completed and its
//! output read back as answers; the refusals that are not worth retrying;
//! a job stopped while it runs.
//!
//! A missing `moto_server` skips with a line on stderr, or fails under
//! `SOAPGATE_REQUIRE_PEERS=1`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use soapgate::bedrock::BedrockBatch;
use soapgate::converse::{BatchClient, BatchJobState, NewBatchJob, Request, StopReason};
use soapgate::emulator::{self, EmulatorHandle, Options, Script};

use crate::common::moto::Moto;

const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";
const ROLE: &str = "arn:aws:iam::123456789012:role/batch";
const BUCKET: &str = "batch-control";

/// moto's S3 with a bucket, the emulator reading and writing it, and the
/// batch client pointed at both.
struct Rig {
    _moto: Moto,
    _emulator: EmulatorHandle,
    client: BedrockBatch,
}

impl Rig {
    async fn start(test: &str, script: &str) -> Option<Rig> {
        let moto = Moto::start(test)?;
        let script = Script::parse(script, "test script").expect("the script parses");
        let emulator = emulator::spawn_with(Options {
            script: Some(script),
            s3_endpoint_url: Some(moto.url.clone()),
        })
        .await
        .expect("the emulator starts");
        moto.s3_with_bucket(BUCKET).await;
        let client = BedrockBatch::for_endpoints(emulator.base_url(), &moto.url);
        Some(Rig {
            _moto: moto,
            _emulator: emulator,
            client,
        })
    }

    /// `count` records of plain-text requests, uploaded as one JSONL object
    /// at `key`; their record ids.
    async fn upload(&self, key: &str, count: usize) -> BTreeSet<String> {
        let mut ids = BTreeSet::new();
        let mut body = String::new();
        for i in 0..count {
            let id = format!("note-{i:04}");
            let request = Request::user_text(format!("Summarise note {id}"));
            let line = self
                .client
                .record(&id, MODEL, &request)
                .expect("a plain-text request makes a record");
            body.push_str(&line);
            body.push('\n');
            ids.insert(id);
        }
        self.client
            .upload(&format!("s3://{BUCKET}/{key}"), body.into_bytes())
            .await
            .expect("the input is uploaded");
        ids
    }

    /// Polls until the job is no longer running.
    async fn until_done(&self, arn: &str) -> BatchJobState {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let state = self.client.state(arn).await.expect("the job's state");
            if state != BatchJobState::Running {
                return state;
            }
            assert!(Instant::now() < deadline, "the job {arn} never ended");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn job(name: &str, token: &str, input_key: &str) -> NewBatchJob {
    NewBatchJob {
        name: name.to_string(),
        client_request_token: token.to_string(),
        model_id: MODEL.to_string(),
        role_arn: ROLE.to_string(),
        input_uri: format!("s3://{BUCKET}/{input_key}"),
        output_uri: format!("s3://{BUCKET}/out/"),
        timeout_hours: 24,
    }
}

#[tokio::test]
async fn a_job_of_120_records_is_created_once_followed_and_answered() {
    let test = "a_job_of_120_records_is_created_once_followed_and_answered";
    let Some(rig) = Rig::start(test, "batch: { delay_ms: 50 }\n").await else {
        return;
    };
    let ids = rig.upload("in/notes.jsonl", 120).await;
    let job = job("notes-120", "notes-0001", "in/notes.jsonl");
    let arn = rig.client.create(&job).await.expect("the job is created");
    assert!(arn.contains(":model-invocation-job/"), "{arn}");
    let again = rig
        .client
        .create(&job)
        .await
        .expect("the same create again");
    assert_eq!(again, arn, "the same token names the same job");

    assert_eq!(rig.until_done(&arn).await, BatchJobState::Completed);
    // The folder without its trailing slash names the same output; the
    // manifest beside the output files is no line of it.
    let lines = rig
        .client
        .output(&format!("s3://{BUCKET}/out"), &arn)
        .await
        .expect("the output is read");
    assert_eq!(lines.len(), 120, "{lines:?}");
    let mut answered = BTreeSet::new();
    for line in &lines {
        let answer = rig.client.answer(line);
        let id = answer.record_id.expect("every line names its record");
        assert!(ids.contains(&id), "{id} is no record of ours");
        let response = answer
            .answer
            .unwrap_or_else(|e| panic!("{id} has no answer: {e}"));
        assert_eq!(response.stop_reason, StopReason::EndTurn, "{id}");
        // The emulator echoes a plain-text prompt.
        assert_eq!(response.text(), format!("Summarise note {id}"));
        assert!(answered.insert(id.clone()), "{id} answered twice");
    }
    assert_eq!(answered, ids);
    // A job with nothing under its folder has no lines.
    let none = rig
        .client
        .output(
            &format!("s3://{BUCKET}/out/"),
            "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/zzzzzzzzzzzz",
        )
        .await
        .expect("an empty listing");
    assert!(none.is_empty(), "{none:?}");
}

#[tokio::test]
async fn what_the_service_refuses_is_not_worth_retrying() {
    let test = "what_the_service_refuses_is_not_worth_retrying";
    let Some(rig) = Rig::start(test, "batch: { delay_ms: 10 }\n").await else {
        return;
    };
    rig.upload("in/short.jsonl", 99).await;
    let err = rig
        .client
        .create(&job("too-few", "too-few-0001", "in/short.jsonl"))
        .await
        .expect_err("99 records are too few");
    assert!(!err.retryable, "{err:?}");
    assert!(err.message.contains("minimum of 100"), "{}", err.message);

    let err = rig
        .client
        .state("arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abcdefghijkl")
        .await
        .expect_err("no such job");
    assert!(!err.retryable, "{err:?}");

    let err = rig
        .client
        .upload("https://example.com/in.jsonl", b"{}\n".to_vec())
        .await
        .expect_err("not an s3:// URI");
    assert!(!err.retryable, "{err:?}");
    let err = rig
        .client
        .upload("s3://no-such-bucket/in.jsonl", b"{}\n".to_vec())
        .await
        .expect_err("no such bucket");
    assert!(!err.retryable, "{err:?}");
}

#[tokio::test]
async fn a_running_job_stopped_ends_stopped() {
    let test = "a_running_job_stopped_ends_stopped";
    let Some(rig) = Rig::start(test, "batch: { delay_ms: 30000 }\n").await else {
        return;
    };
    rig.upload("in/long.jsonl", 100).await;
    let arn = rig
        .client
        .create(&job("long", "long-0001", "in/long.jsonl"))
        .await
        .expect("the job is created");
    assert_eq!(
        rig.client.state(&arn).await.expect("state"),
        BatchJobState::Running
    );
    rig.client.stop(&arn).await.expect("the job is stopped");
    match rig.until_done(&arn).await {
        BatchJobState::Ended { status, .. } => assert_eq!(status, "Stopped"),
        other => panic!("a stopped job is {other:?}"),
    }
    // Stopping a job that has ended is not an error.
    rig.client
        .stop(&arn)
        .await
        .expect("stopping an ended job again");
    let lines = rig
        .client
        .output(&format!("s3://{BUCKET}/out/"), &arn)
        .await
        .expect("the output is listed");
    assert!(lines.is_empty(), "a stopped job wrote {lines:?}");
}
