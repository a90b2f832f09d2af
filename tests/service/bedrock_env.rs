//! `BedrockClient::from_env` honours the standard AWS environment:
//! `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`, `AWS_REGION` and credentials from
//! `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`.
//!
//! The environment is process-wide, and setting it inside a multi-threaded
//! test binary is unsound, so the test re-runs itself as a child process
//! with the variables set: the parent runs the emulator and checks that the
//! child's call reached it; the child builds the client from the
//! environment alone and makes the call.

use std::process::Command;

use soapgate::bedrock::{BedrockClient, BedrockSettings};
use soapgate::converse::{ModelClient, Request};

const CHILD_MARKER: &str = "SOAPGATE_TEST_BEDROCK_ENV_CHILD";
/// The name the test harness knows this test by (module path included).
const TEST_NAME: &str = "bedrock_env::from_env_honours_the_bedrock_endpoint_variable";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_env_honours_the_bedrock_endpoint_variable() {
    if std::env::var_os(CHILD_MARKER).is_some() {
        child().await;
        return;
    }
    let emulator = soapgate::emulator::spawn(None).await.unwrap();
    let url = emulator.base_url().to_string();
    let status = tokio::task::spawn_blocking(move || {
        let exe = std::env::current_exe().unwrap();
        Command::new(exe)
            .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
            .env_clear()
            .env(CHILD_MARKER, "1")
            .env("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", &url)
            .env("AWS_REGION", "eu-west-1")
            .env("AWS_ACCESS_KEY_ID", "AKIDTESTONLY")
            .env("AWS_SECRET_ACCESS_KEY", "test-secret")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/nonexistent/soapgate-test-config")
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/soapgate-test-credentials",
            )
            .status()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(status.success(), "the child test failed: {status}");
    let counts = reqwest::get(format!("{}/_emulator/calls", emulator.base_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let counts: serde_json::Value = serde_json::from_str(&counts).unwrap();
    assert_eq!(
        counts["models"]["env-model"],
        serde_json::json!(1),
        "{counts}"
    );
}

async fn child() {
    let settings = BedrockSettings {
        max_attempts: 1,
        ..BedrockSettings::default()
    };
    let client = BedrockClient::from_env(&settings).await.unwrap();
    assert_eq!(client.region(), Some("eu-west-1"));
    let response = client
        .converse("env-model", &Request::user_text("through the environment"))
        .await
        .unwrap();
    assert_eq!(response.text(), "through the environment");
}
