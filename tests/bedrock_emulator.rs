//! The real aws-sdk-bedrockruntime client, through `BedrockClient`, talking
//! HTTP to the emulator on a port-0 listener: round trips, forced-tool JSON
//! checked against its schema, every Converse error kind, the SDK's own
//! retries counted at the emulator, and timeouts; every case twice, over
//! HTTP/1.1 (the SDK's own client) and over h2c (`http2_prior_knowledge`).

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use soapgate::bedrock::{BedrockClient, BedrockSettings};
use soapgate::converse::{
    ContentBlock, DocumentBlock, DocumentFormat, DocumentSource, ImageBlock, ImageFormat,
    ImageSource, InferenceConfig, Message, ModelClient, ModelError, Request, ServiceErrorKind,
    StopReason, SystemBlock, ToolConfig, ToolSpec,
};
use soapgate::emulator::{self, EmulatorHandle, Script};

const HAIKU: &str = "anthropic.claude-3-haiku-20240307-v1:0";

/// Fast retries so retry tests take milliseconds, not seconds.
fn base_settings() -> BedrockSettings {
    BedrockSettings {
        connect_timeout_ms: 1_000,
        read_timeout_ms: 5_000,
        operation_timeout_ms: 10_000,
        max_attempts: 3,
        initial_backoff_ms: 10,
        ..BedrockSettings::default()
    }
}

async fn start_with(
    script: Option<&str>,
    settings: BedrockSettings,
) -> (EmulatorHandle, BedrockClient) {
    let script = script.map(|s| Script::parse(s, "test.yaml").unwrap());
    let emulator = emulator::spawn(script).await.unwrap();
    let client = BedrockClient::for_endpoint(emulator.base_url(), &settings);
    (emulator, client)
}

/// `GET /_emulator/calls` as JSON.
async fn calls(emulator: &EmulatorHandle) -> Value {
    let body = reqwest::get(format!("{}/_emulator/calls", emulator.base_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    serde_json::from_str(&body).unwrap()
}

/// Every case over HTTP/1.1, through the SDK's own HTTP client.
mod http1 {
    const H2C: bool = false;
    include!("bedrock_emulator/cases.rs");
}

/// Every case over HTTP/2 without TLS, through soapgate's h2c client.
mod h2c {
    const H2C: bool = true;
    include!("bedrock_emulator/cases.rs");
}


#[tokio::test]
async fn malformed_bodies_get_a_validation_exception_on_the_wire() {
    let (emulator, _client) = start_with(None, base_settings()).await;
    let http = reqwest::Client::new();
    let response = http
        .post(format!("{}/model/{HAIKU}/converse", emulator.base_url()))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(
        response.headers()["x-amzn-ErrorType"].to_str().unwrap(),
        "ValidationException"
    );
    let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Malformed input request")
    );

    let response = http
        .post(format!("{}/model/{HAIKU}/converse", emulator.base_url()))
        .body(r#"{"messages": []}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);

    let response = http
        .post(format!("{}/nowhere", emulator.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    emulator.stop().await.unwrap();
}
