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
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
}

impl Seen {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
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
                        trace_id: span.trace_id.clone(),
                        span_id: span.span_id.clone(),
                        parent_span_id: span.parent_span_id.clone(),
                    });
                }
            }
        }
    }
    out
}

/// A collector on a loopback port: its URL and what it received.
async fn collector() -> (String, Received) {
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
    (collector, received)
}

/// The spans received once one named `name` is among them (waiting up to
/// 10 s for the exporter).
async fn spans_with(received: &Received, name: &str, log: &str) -> Vec<Seen> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = spans(received);
        if seen.iter().any(|s| s.name == name) {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "no {name} span reached the collector; spans: {seen:?}\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soap_call_spans_reach_an_otlp_collector_with_the_correlation_id() {
    let (collector, received) = collector().await;
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
    let seen = spans_with(&received, "soap_call", &serve.log()).await;
    let call = seen
        .into_iter()
        .find(|s| s.name == "soap_call")
        .expect("a soap_call span");
    assert_eq!(call.service_name.as_deref(), Some("soapgate"), "{call:?}");
    assert_eq!(call.attr("correlation_id"), Some(message_id), "{call:?}");
    assert_eq!(call.attr("service"), Some("SupportDesk"), "{call:?}");
    assert_eq!(call.attr("operation"), Some("TriageTicket"), "{call:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_step_of_a_multi_step_call_is_a_span_under_the_calls_span() {
    let (collector, received) = collector().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut serve = ServeProcess::start_with_env(
        &repo_root().join("wsdl"),
        &repo_root().join("mappings"),
        dir.path(),
        &[("SOAPGATE_OTLP_ENDPOINT", collector.as_str())],
    );
    let example =
        std::fs::read_to_string(repo_root().join("examples/DocumentIntake/ProcessDocument.xml"))
            .expect("example");
    let response = reqwest::Client::new()
        .post(format!("{}/soap/DocumentIntake", serve.base_url))
        .header("content-type", "text/xml; charset=utf-8")
        .header(
            "soapaction",
            "\"urn:example:document-intake/ProcessDocument\"",
        )
        .body(example)
        .send()
        .await
        .expect("SOAP call");
    assert_eq!(response.status(), 200, "{}", serve.log());
    let status = tokio::task::block_in_place(|| serve.terminate());
    assert!(status.success(), "exit {status}:\n{}", serve.log());

    let seen = spans_with(&received, "soap_call", &serve.log()).await;
    let call = seen
        .iter()
        .find(|s| s.name == "soap_call" && s.attr("operation") == Some("ProcessDocument"))
        .unwrap_or_else(|| panic!("no ProcessDocument soap_call span: {seen:?}"));
    let mut steps: Vec<&str> = seen
        .iter()
        .filter(|s| s.name == "step")
        .map(|s| {
            assert_eq!(s.trace_id, call.trace_id, "{s:?}");
            assert_eq!(
                s.parent_span_id, call.span_id,
                "{s:?} is not under {call:?}"
            );
            s.attr("step").unwrap_or("-")
        })
        .collect();
    steps.sort_unstable();
    assert_eq!(steps, ["classify", "extract", "lines"], "{seen:?}");
}
