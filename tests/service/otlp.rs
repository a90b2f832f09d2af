//! Spans exported over OTLP/HTTP: the real binary (`soapgate serve
//! --emulator`) with `otlp_endpoint` set sends its spans, protobuf-encoded,
//! to a collector; here the collector is a loopback HTTP server that
//! decodes each `ExportTraceServiceRequest` with the OpenTelemetry
//! project's own protobuf definitions (`opentelemetry-proto`).

use crate::common::app as support;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;
use support::{ServeProcess, repo_root};

/// What the collector received: one decoded request per POST.
type Received = Arc<Mutex<Vec<ExportTraceServiceRequest>>>;

async fn collect(State(received): State<Received>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_none_or(|ct| ct != "application/x-protobuf")
    {
        return StatusCode::UNSUPPORTED_MEDIA_TYPE;
    }
    match ExportTraceServiceRequest::decode(body) {
        Ok(request) => {
            received
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(request);
            StatusCode::OK
        }
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

/// A span as the test reads it: name, resource's service name, attributes.
#[derive(Debug)]
struct Seen {
    name: String,
    service_name: Option<String>,
    attributes: Vec<(String, String)>,
}

fn string_value(v: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn spans(received: &Received) -> Vec<Seen> {
    let mut out = Vec::new();
    for request in received
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
    {
        for rs in &request.resource_spans {
            let service_name = rs.resource.as_ref().and_then(|r| {
                r.attributes
                    .iter()
                    .find(|kv| kv.key == "service.name")
                    .map(|kv| string_value(kv.value.as_ref()))
            });
            for ss in &rs.scope_spans {
                for span in &ss.spans {
                    out.push(Seen {
                        name: span.name.clone(),
                        service_name: service_name.clone(),
                        attributes: span
                            .attributes
                            .iter()
                            .map(|kv| (kv.key.clone(), string_value(kv.value.as_ref())))
                            .collect(),
                    });
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soap_call_spans_reach_an_otlp_collector_with_the_correlation_id() {
    let received: Received = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let collector = format!("http://{}", listener.local_addr().expect("addr"));
    let app = Router::new()
        .route("/v1/traces", post(collect))
        .with_state(received.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let dir = tempfile::tempdir().expect("temp dir");
    let mut serve = ServeProcess::start_with_env(
        &repo_root().join("wsdl"),
        &repo_root().join("mappings"),
        dir.path(),
        &[("SOAPGATE_OTLP_ENDPOINT", collector.as_str())],
    );
    assert!(
        serve.log().contains("exporting spans over OTLP/HTTP"),
        "{}",
        serve.log()
    );

    let message_id = "urn:uuid:0b9e7a52-otlp-test";
    let example =
        std::fs::read_to_string(repo_root().join("examples/SupportDesk/TriageTicket.xml"))
            .expect("example");
    let envelope = example.replacen(
        "<soap:Body>",
        &format!(
            "<soap:Header><wsa:MessageID xmlns:wsa=\"http://www.w3.org/2005/08/addressing\">{message_id}</wsa:MessageID></soap:Header><soap:Body>"
        ),
        1,
    );
    let response = reqwest::Client::new()
        .post(format!("{}/soap/SupportDesk", serve.base_url))
        .header("content-type", "text/xml; charset=utf-8")
        .body(envelope)
        .send()
        .await
        .expect("SOAP call");
    assert_eq!(response.status(), 200, "{}", serve.log());

    // A graceful stop flushes the spans still batched.
    let status = tokio::task::block_in_place(|| serve.terminate());
    assert!(status.success(), "exit {status}:\n{}", serve.log());
    let deadline = Instant::now() + Duration::from_secs(10);
    let call = loop {
        let seen = spans(&received);
        if let Some(call) = seen.into_iter().find(|s| s.name == "soap_call") {
            break call;
        }
        assert!(
            Instant::now() < deadline,
            "no soap_call span reached the collector; spans: {:?}\n{}",
            spans(&received),
            serve.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(call.service_name.as_deref(), Some("soapgate"), "{call:?}");
    let attr = |key: &str| {
        call.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(attr("correlation_id"), Some(message_id), "{call:?}");
    assert_eq!(attr("service"), Some("SupportDesk"), "{call:?}");
    assert_eq!(attr("operation"), Some("TriageTicket"), "{call:?}");
}
