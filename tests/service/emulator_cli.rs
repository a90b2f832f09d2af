//! `soapgate emulator`: refuses a broken script with file:line:col, serves
//! the Converse wire protocol with a good one, and runs batch jobs on the S3
//! `--s3-endpoint-url` names (moto's server; a missing `moto_server` skips
//! that test with a line on stderr, or fails under
//! `SOAPGATE_REQUIRE_PEERS=1`).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_soapgate");

#[test]
fn a_broken_script_is_refused_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("bad.yaml");
    std::fs::write(&script, "rules:\n  - prompt: hi\n    answer: oops\n").unwrap();
    let output = Command::new(BIN)
        .args(["emulator", "--listen", "127.0.0.1:0", "--script"])
        .arg(&script)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("{}:3:5:", script.display())),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subcommand_serves_scripted_answers() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("script.yaml");
    std::fs::write(&script, "rules:\n  - prompt: ping\n    text: pong\n").unwrap();
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut child = Command::new(BIN)
        .args([
            "emulator",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--script",
        ])
        .arg(&script)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/model/any-model/converse");
    let body = r#"{"messages":[{"role":"user","content":[{"text":"ping"}]}]}"#;
    let started = Instant::now();
    let answer = loop {
        match reqwest::Client::new().post(&url).body(body).send().await {
            Ok(response) => break response.text().await.unwrap(),
            Err(_) if started.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => {
                let _ = child.kill();
                panic!("the emulator never answered: {e}");
            }
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(
        answer["output"]["message"]["content"][0]["text"],
        serde_json::json!("pong")
    );
    assert_eq!(answer["stopReason"], serde_json::json!("end_turn"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subcommand_runs_batch_jobs_on_the_s3_it_is_given() {
    use aws_sdk_bedrock::types::{
        ModelInvocationJobInputDataConfig, ModelInvocationJobOutputDataConfig,
        ModelInvocationJobS3InputDataConfig, ModelInvocationJobS3OutputDataConfig,
        ModelInvocationJobStatus, S3InputFormat,
    };
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    use aws_sdk_s3::primitives::ByteStream;

    let test = "the_subcommand_runs_batch_jobs_on_the_s3_it_is_given";
    let Some(moto) = crate::common::moto::Moto::start(test) else {
        return;
    };
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .endpoint_url(&moto.url)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket().bucket("cli-batch").send().await.unwrap();
    let lines: Vec<String> = (0..3)
        .map(|i| {
            serde_json::json!({
                "recordId": format!("rec-{i}"),
                "modelInput": {
                    "anthropic_version": "bedrock-2023-05-31",
                    "max_tokens": 64,
                    "messages": [{ "role": "user", "content": [{ "type": "text", "text": format!("ping {i}") }] }],
                },
            })
            .to_string()
        })
        .collect();
    s3.put_object()
        .bucket("cli-batch")
        .key("in/records.jsonl")
        .body(ByteStream::from(lines.join("\n").into_bytes()))
        .send()
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("script.yaml");
    std::fs::write(&script, "batch: { delay_ms: 50, min_records: 1 }\n").unwrap();
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut child = Command::new(BIN)
        .args([
            "emulator",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--s3-endpoint-url",
            &moto.url,
            "--script",
        ])
        .arg(&script)
        // Not the S3 the job must use.
        .env("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let bedrock = aws_sdk_bedrock::Client::from_conf(
        aws_sdk_bedrock::Config::builder()
            .behavior_version(aws_sdk_bedrock::config::BehaviorVersion::latest())
            .region(aws_sdk_bedrock::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_bedrock::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .endpoint_url(format!("http://127.0.0.1:{port}"))
            .build(),
    );
    let create = || {
        bedrock
            .create_model_invocation_job()
            .job_name("cli-batch")
            .role_arn("arn:aws:iam::123456789012:role/batch")
            .model_id("anthropic.claude-3-haiku-20240307-v1:0")
            .input_data_config(ModelInvocationJobInputDataConfig::S3InputDataConfig(
                ModelInvocationJobS3InputDataConfig::builder()
                    .s3_uri("s3://cli-batch/in/records.jsonl")
                    .s3_input_format(S3InputFormat::Jsonl)
                    .build()
                    .unwrap(),
            ))
            .output_data_config(ModelInvocationJobOutputDataConfig::S3OutputDataConfig(
                ModelInvocationJobS3OutputDataConfig::builder()
                    .s3_uri("s3://cli-batch/out/")
                    .build()
                    .unwrap(),
            ))
            .send()
    };
    let started = Instant::now();
    let arn = loop {
        match create().await {
            Ok(created) => break created.job_arn().to_string(),
            Err(_) if started.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => {
                let _ = child.kill();
                panic!("the emulator never created the job: {e:?}");
            }
        }
    };
    let status = loop {
        let job = bedrock
            .get_model_invocation_job()
            .job_identifier(&arn)
            .send()
            .await
            .unwrap();
        let status = job.status().cloned();
        if !matches!(
            status,
            Some(ModelInvocationJobStatus::Submitted | ModelInvocationJobStatus::InProgress)
        ) || started.elapsed() > Duration::from_secs(30)
        {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, Some(ModelInvocationJobStatus::Completed));
    let id = arn.rsplit('/').next().unwrap();
    let output = s3
        .get_object()
        .bucket("cli-batch")
        .key(format!("out/{id}/records.jsonl.out"))
        .send()
        .await
        .expect("the output is on the S3 the flag named");
    let text = output.body.collect().await.unwrap().into_bytes();
    let text = String::from_utf8(text.to_vec()).unwrap();
    assert_eq!(
        text.lines().filter(|l| !l.trim().is_empty()).count(),
        3,
        "{text}"
    );
    assert!(text.contains("ping 2"), "{text}");
}
