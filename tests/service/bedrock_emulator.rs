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
    include!("bedrock_emulator_cases.rs");
}

/// Every case over HTTP/2 without TLS, through soapgate's h2c client.
mod h2c {
    const H2C: bool = true;
    include!("bedrock_emulator_cases.rs");
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

fn h2c_settings() -> BedrockSettings {
    BedrockSettings {
        http2_prior_knowledge: true,
        max_attempts: 1,
        ..base_settings()
    }
}

#[tokio::test]
async fn h2c_reconnects_after_the_model_endpoint_restarts() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let first = tokio::spawn(emulator::serve(listener, None, async move {
        let _ = stopped.await;
    }));
    let client = BedrockClient::for_endpoint(&format!("http://{addr}"), &h2c_settings());
    let answer = client
        .converse(HAIKU, &Request::user_text("one"))
        .await
        .unwrap();
    assert_eq!(answer.text(), "one");

    // The endpoint goes away (its connection with it) and comes back on
    // the same port: the next call makes a new connection.
    stop.send(()).unwrap();
    first.await.unwrap().unwrap();
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(emulator::serve(listener, None, async move {
        let _ = stopped.await;
    }));
    let mut answered = None;
    // The old connection's end may reach the client just after a call
    // starts on it: that call fails as a connection error, the next one
    // reconnects.
    for _ in 0..3 {
        match client.converse(HAIKU, &Request::user_text("two")).await {
            Ok(answer) => {
                answered = Some(answer);
                break;
            }
            Err(e) => assert!(matches!(e, ModelError::Connection { .. }), "{e:?}"),
        }
    }
    assert_eq!(
        answered.expect("an answer after reconnecting").text(),
        "two"
    );
}

#[tokio::test]
async fn h2c_to_a_peer_that_speaks_only_http1_is_a_connection_error() {
    // Answers anything with an HTTP/1.1 400, as an HTTP/1.1-only server
    // does to the HTTP/2 preface, and closes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf).await;
            let _ = stream
                .write_all(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await;
        }
    });
    let client = BedrockClient::for_endpoint(&format!("http://{addr}"), &h2c_settings());
    let started = Instant::now();
    let error = client
        .converse(HAIKU, &Request::user_text("x"))
        .await
        .unwrap_err();
    assert!(matches!(error, ModelError::Connection { .. }), "{error:?}");
    assert_eq!(error.fault_code(), "MODEL_UNAVAILABLE");
    assert!(started.elapsed() < Duration::from_secs(4));
}
