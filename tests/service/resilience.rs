//! Resilience end to end, through the real aws-sdk-bedrockruntime client to
//! the Converse emulator, with short real timings (the HTTP emulator and
//! paused tokio time do not mix; the breaker, backoff and deadline logic
//! is tested with paused time beside the code, in `models`
//! and `pipeline`): the SDK's retries of throttling, our retries of what
//! the SDK leaves alone, the breaker and the fallback chain, the
//! deadline, the response cache, the static and cache failure policies
//! with their `sg:Degraded` header, the in-flight cap, `/readyz` and
//! `/metrics` read by a Prometheus text-format parser.

use crate::common::gateway as e2e_support;

use std::time::{Duration, Instant};

use e2e_support::{Gateway, SG, SoapReply, Version, bedrock_settings, repo_root};
use soapgate::bedrock::BedrockSettings;
use soapgate::models::BreakerSettings;

const ACTION: &str = "http://erp.example.com/ap/invoice/v1/ClassifyInvoice";
const PRIMARY: &str = "primary-model";
const BACKUP: &str = "backup-model";

const STATIC: &str = r#"
    on_failure:
      static:
        classification:
          category: UNCLASSIFIED
          confidence: 0
          glAccount: "999999"
          requiresReview: true
          reasons:
            reason: [Automatic classification unavailable]
"#;

/// A mapping folder with ClassifyInvoice only: `targets` (model ids, in
/// order), lines added under `model:` and under the operation.
fn mappings(targets: &[&str], model_extra: &str, op_extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let targets: String = targets
        .iter()
        .map(|t| format!("        - {{ model: {t} }}\n"))
        .collect();
    let yaml = format!(
        "service: InvoiceService\nwsdl: InvoiceService.wsdl\noperations:\n  ClassifyInvoice:\n    \
         model:\n      targets:\n{targets}      max_tokens: 512\n{model_extra}\n    input:\n      \
         vendor: invoice/vendor/name\n    prompt: \"Classify the invoice from VENDOR.\"\n    \
         output:\n      structured: true\n{op_extra}\n"
    )
    .replace("VENDOR", "{{ vendor }}");
    std::fs::write(dir.path().join("InvoiceService.yaml"), yaml).expect("writing the mapping");
    dir
}

fn envelope() -> String {
    let path = repo_root().join("examples/InvoiceService/ClassifyInvoice.xml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The same call for another vendor: another request, another cache key.
fn other_envelope() -> String {
    envelope().replace("Nordlicht Rechenzentrum GmbH", "Südwind Kälte AG")
}

async fn classify(gateway: &Gateway, envelope: &str) -> SoapReply {
    gateway
        .call("InvoiceService", Version::V11, ACTION, envelope.as_bytes())
        .await
}

fn degraded(reply: &SoapReply) -> Option<(String, String)> {
    reply
        .headers()
        .iter()
        .find(|h| h.name.is(SG, "Degraded"))
        .map(|h| {
            (
                h.attr("policy").unwrap_or_default().to_string(),
                h.attr("reason").unwrap_or_default().to_string(),
            )
        })
}

/// The response payload as XML text (source positions left out).
fn payload_xml(reply: &SoapReply) -> Vec<String> {
    reply
        .payload()
        .iter()
        .map(soapgate::xml::write_element)
        .collect()
}

fn calls_to(counts: &serde_json::Value, model: &str) -> u64 {
    counts["models"][model].as_u64().unwrap_or(0)
}

async fn get_text(gateway: &Gateway, path: &str) -> (u16, String) {
    let response = gateway
        .http()
        .get(format!("{}{path}", gateway.base_url))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

async fn breaker_of(gateway: &Gateway, model: &str) -> String {
    let (status, body) = get_text(gateway, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("readyz JSON");
    json["breakers"][format!("-/{model}")]
        .as_str()
        .unwrap_or("none")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_twice_then_answered_is_three_attempts_and_success() {
    let dir = mappings(&[PRIMARY], "", "");
    let bedrock = BedrockSettings {
        max_attempts: 3,
        initial_backoff_ms: 10,
        max_backoff_ms: 50,
        ..bedrock_settings()
    };
    let gateway = Gateway::start_full(
        Some("rules:\n  - fail_first: { times: 2, kind: throttling }\n"),
        dir.path(),
        bedrock,
    )
    .await;
    let reply = classify(&gateway, &envelope()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(degraded(&reply), None);
    // The SDK retried the two 429s itself: three calls at the emulator.
    assert_eq!(gateway.total_calls().await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_errors_the_sdk_leaves_alone_are_retried_by_our_policy_unless_the_mapping_says_no() {
    let script = "rules:\n  - fail_first: { times: 2, kind: model_error }\n";
    let bedrock = BedrockSettings {
        max_attempts: 3,
        initial_backoff_ms: 10,
        max_backoff_ms: 50,
        ..bedrock_settings()
    };
    let dir = mappings(&[PRIMARY], "", "");
    let gateway = Gateway::start_full(Some(script), dir.path(), bedrock.clone()).await;
    let reply = classify(&gateway, &envelope()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(gateway.total_calls().await, 3, "two 424s retried by us");

    let dir = mappings(&[PRIMARY], "      retry: false", "");
    let gateway = Gateway::start_full(Some(script), dir.path(), bedrock).await;
    let reply = classify(&gateway, &envelope()).await;
    assert_eq!(reply.status, 500, "{}", reply.text());
    assert_eq!(reply.fault().sg_code, "MODEL_ERROR");
    assert_eq!(gateway.total_calls().await, 1, "retry: false");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_storm_opens_the_breaker_calls_fail_over_and_probes_close_it() {
    let dir = mappings(&[PRIMARY, BACKUP], "", "");
    let bedrock = BedrockSettings {
        max_attempts: 1,
        breaker: BreakerSettings {
            window: 4,
            min_calls: 4,
            failure_rate_percent: 50,
            open_ms: 500,
            half_open_probes: 2,
        },
        ..bedrock_settings()
    };
    let script = format!(
        "rules:\n  - model: {PRIMARY}\n    fail_first: {{ times: 4, kind: internal_server }}\n"
    );
    let gateway = Gateway::start_full(Some(&script), dir.path(), bedrock).await;
    // The storm: each call fails on the primary and falls over.
    for i in 0..4 {
        let reply = classify(&gateway, &envelope()).await;
        assert_eq!(reply.status, 200, "call {i}: {}", reply.text());
    }
    let counts = gateway.model_calls().await;
    assert_eq!(
        (calls_to(&counts, PRIMARY), calls_to(&counts, BACKUP)),
        (4, 4)
    );
    assert_eq!(breaker_of(&gateway, PRIMARY).await, "open");

    // Open: the primary is skipped without a call.
    for i in 0..3 {
        let reply = classify(&gateway, &envelope()).await;
        assert_eq!(reply.status, 200, "call {i}: {}", reply.text());
    }
    let counts = gateway.model_calls().await;
    assert_eq!(
        (calls_to(&counts, PRIMARY), calls_to(&counts, BACKUP)),
        (4, 7)
    );

    // After the open period, two probes reach the (now healthy) primary
    // and close the breaker.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(breaker_of(&gateway, PRIMARY).await, "half_open");
    for _ in 0..2 {
        let reply = classify(&gateway, &envelope()).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    assert_eq!(breaker_of(&gateway, PRIMARY).await, "closed");
    let reply = classify(&gateway, &envelope()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let counts = gateway.model_calls().await;
    assert_eq!(
        (calls_to(&counts, PRIMARY), calls_to(&counts, BACKUP)),
        (7, 7)
    );
    // The chain moved on from the primary 7 times: 4 failures, 3 skips.
    let (_, metrics) = get_text(&gateway, "/metrics").await;
    assert!(
        metrics.contains(&format!(
            "soapgate_model_fallbacks_total{{target=\"-/{PRIMARY}\"}} 7"
        )),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_errors_do_not_fall_over() {
    let dir = mappings(&[PRIMARY, BACKUP], "", "");
    let script = format!("rules:\n  - model: {PRIMARY}\n    error: {{ kind: validation }}\n");
    let gateway = Gateway::start_full(Some(&script), dir.path(), bedrock_settings()).await;
    let reply = classify(&gateway, &envelope()).await;
    assert_eq!(reply.status, 500, "{}", reply.text());
    assert_eq!(reply.fault().sg_code, "MODEL_REJECTED_REQUEST");
    let counts = gateway.model_calls().await;
    assert_eq!(
        (calls_to(&counts, PRIMARY), calls_to(&counts, BACKUP)),
        (1, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_never_answers_is_a_fault_at_the_deadline_not_later() {
    let dir = mappings(&[PRIMARY], "      deadline_ms: 800", "");
    // The SDK would wait 5 s per attempt; the deadline is shorter.
    let gateway = Gateway::start_full(
        Some("rules:\n  - delay_ms: 30000\n"),
        dir.path(),
        bedrock_settings(),
    )
    .await;
    let started = Instant::now();
    let reply = classify(&gateway, &envelope()).await;
    let elapsed = started.elapsed();
    assert_eq!(reply.status, 500, "{}", reply.text());
    let fault = reply.fault();
    assert_eq!(
        (fault.code.as_str(), fault.sg_code.as_str()),
        ("Server", "MODEL_TIMEOUT")
    );
    assert!(elapsed >= Duration::from_millis(750), "{elapsed:?}");
    assert!(
        elapsed < Duration::from_millis(2_000),
        "cut at the deadline: {elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_second_identical_call_is_answered_from_the_cache() {
    let dir = mappings(&[PRIMARY], "", "    cache: { ttl_secs: 60 }");
    let gateway = Gateway::start_full(None, dir.path(), bedrock_settings()).await;
    let first = classify(&gateway, &envelope()).await;
    let second = classify(&gateway, &envelope()).await;
    assert_eq!(
        (first.status, second.status),
        (200, 200),
        "{}",
        second.text()
    );
    assert_eq!(payload_xml(&first), payload_xml(&second));
    assert_eq!(degraded(&second), None, "a fresh cache hit is not degraded");
    assert_eq!(gateway.total_calls().await, 1, "one model call");
    // Another request is not a hit.
    let other = classify(&gateway, &other_envelope()).await;
    assert_eq!(other.status, 200, "{}", other.text());
    assert_eq!(gateway.total_calls().await, 2);
    let (_, metrics) = get_text(&gateway, "/metrics").await;
    assert!(
        metrics.contains("soapgate_cache_lookups_total{kind=\"hit\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_static_policy_answers_model_failures_marked_degraded() {
    let dir = mappings(&[PRIMARY], "", STATIC);
    let gateway = Gateway::start_full(
        Some("rules:\n  - error: { kind: internal_server }\n"),
        dir.path(),
        bedrock_settings(),
    )
    .await;
    let reply = classify(&gateway, &envelope()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        degraded(&reply),
        Some(("static".to_string(), "MODEL_UNAVAILABLE".to_string())),
        "{}",
        reply.text()
    );
    assert!(reply.text().contains("UNCLASSIFIED"), "{}", reply.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_policy_answers_the_last_good_answer_marked_degraded() {
    let dir = mappings(&[PRIMARY], "", "    on_failure: cache");
    // The model answers once, then is unavailable.
    let gateway = Gateway::start_full(
        Some("rules:\n  - after: 1\n    error: { kind: service_unavailable }\n"),
        dir.path(),
        bedrock_settings(),
    )
    .await;
    let good = classify(&gateway, &envelope()).await;
    assert_eq!(good.status, 200, "{}", good.text());
    assert_eq!(degraded(&good), None);
    let again = classify(&gateway, &envelope()).await;
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(
        degraded(&again),
        Some(("cache".to_string(), "MODEL_UNAVAILABLE".to_string())),
        "{}",
        again.text()
    );
    assert_eq!(payload_xml(&good), payload_xml(&again));
    // Nothing good was ever answered for another request: the fault.
    let other = classify(&gateway, &other_envelope()).await;
    assert_eq!(other.status, 500, "{}", other.text());
    assert_eq!(other.fault().sg_code, "MODEL_UNAVAILABLE");
    assert_eq!(degraded(&other), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_in_flight_cap_calls_get_fast_overloaded_faults() {
    let dir = mappings(&[PRIMARY], "", "");
    let bedrock = BedrockSettings {
        max_in_flight: 1,
        overload_retry_after_secs: 2,
        ..bedrock_settings()
    };
    let gateway = std::sync::Arc::new(
        Gateway::start_full(Some("rules:\n  - delay_ms: 1500\n"), dir.path(), bedrock).await,
    );
    let slow = {
        let gateway = gateway.clone();
        tokio::spawn(async move { classify(&gateway, &envelope()).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..3 {
        let started = Instant::now();
        let reply = classify(&gateway, &envelope()).await;
        let elapsed = started.elapsed();
        assert_eq!(reply.status, 500, "{}", reply.text());
        let fault = reply.fault();
        assert_eq!(
            (fault.code.as_str(), fault.sg_code.as_str()),
            ("Server", "OVERLOADED")
        );
        assert_eq!(fault.retry_after.as_deref(), Some("2"));
        assert!(elapsed < Duration::from_millis(500), "fast: {elapsed:?}");
    }
    let slow = slow.await.expect("the first call");
    assert_eq!(slow.status, 200, "{}", slow.text());
    assert_eq!(
        gateway.total_calls().await,
        1,
        "refused calls reach no model"
    );
    // The cap is free again.
    let reply = classify(&gateway, &envelope()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text_and_readyz_reports_the_database_and_breakers() {
    let dir = mappings(&[PRIMARY], "", "");
    let gateway = Gateway::start_full(None, dir.path(), bedrock_settings()).await;
    let reply = classify(&gateway, &envelope()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    // An operation without a mapping: a fault, counted by its code.
    let unmapped = gateway
        .call(
            "InvoiceService",
            Version::V11,
            "http://erp.example.com/ap/invoice/v1/ExtractInvoiceFields",
            std::fs::read(repo_root().join("examples/InvoiceService/ExtractInvoiceFields.xml"))
                .expect("sample")
                .as_slice(),
        )
        .await;
    assert_eq!(unmapped.status, 500, "{}", unmapped.text());
    // A job waiting in the store (this gateway runs no workers).
    gateway
        .store
        .enqueue(&soapgate::store::NewJob {
            service: "InvoiceService".into(),
            operation: "ClassifyInvoice".into(),
            correlation_id: "urn:uuid:metrics-job".into(),
            payload: envelope(),
            idempotency_key: None,
            source: soapgate::store::JobSource::Api,
            tenant: None,
        })
        .await
        .expect("enqueue");

    let (status, text) = get_text(&gateway, "/metrics").await;
    assert_eq!(status, 200, "{text}");
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .unwrap_or_else(|e| panic!("not Prometheus text ({e}):\n{text}"));
    let value = |name: &str, labels: &[(&str, &str)]| -> Option<f64> {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match &s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => *v,
                prometheus_parse::Value::Histogram(buckets) => {
                    buckets.last().map_or(0.0, |b| b.count)
                }
                prometheus_parse::Value::Summary(_) => f64::NAN,
            })
    };
    let ok = [
        ("service", "InvoiceService"),
        ("operation", "ClassifyInvoice"),
        ("outcome", "ok"),
    ];
    assert_eq!(value("soapgate_requests_total", &ok), Some(1.0), "{text}");
    assert_eq!(
        value(
            "soapgate_requests_total",
            &[
                ("operation", "ExtractInvoiceFields"),
                ("outcome", "NOT_MAPPED")
            ]
        ),
        Some(1.0),
        "{text}"
    );
    let target = format!("-/{PRIMARY}");
    assert_eq!(
        value(
            "soapgate_model_attempts_total",
            &[("target", &target), ("result", "ok")]
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        value(
            "soapgate_tokens_total",
            &[("tenant", "-"), ("model", PRIMARY), ("direction", "output")]
        )
        .is_some_and(|v| v > 0.0),
        "{text}"
    );
    assert_eq!(
        value("soapgate_breaker_state", &[("target", &target)]),
        Some(0.0),
        "{text}"
    );
    assert_eq!(value("soapgate_queue_depth", &[]), Some(1.0), "{text}");
    assert_eq!(
        value("soapgate_jobs", &[("status", "QUEUED")]),
        Some(1.0),
        "{text}"
    );
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric == "soapgate_request_duration_seconds"),
        "a latency histogram: {text}"
    );
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric == "soapgate_model_attempt_duration_seconds"),
        "{text}"
    );

    let (status, body) = get_text(&gateway, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(json["database"], "ok", "{body}");
    assert_eq!(json["breakers"][&target], "closed", "{body}");
    assert_eq!(json["model_calls_in_flight"], 0, "{body}");
    assert_eq!(json["max_in_flight"], 256, "{body}");

    // A closed database makes the instance unready.
    gateway.store.close().await;
    let (status, body) = get_text(&gateway, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"database\":\"down\""), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_in_another_region_gets_a_client_of_its_own_with_the_same_endpoint() {
    let dir = mappings(&[&format!("{PRIMARY}, region: eu-west-1")], "", "");
    let gateway = Gateway::start_full(None, dir.path(), bedrock_settings()).await;
    let reply = classify(&gateway, &envelope()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        gateway.total_calls().await,
        1,
        "the derived client reached the emulator"
    );
    let (_, metrics) = get_text(&gateway, "/metrics").await;
    assert!(
        metrics.contains(
            "soapgate_model_attempts_total{target=\"eu-west-1/primary-model\",result=\"ok\"} 1"
        ),
        "{metrics}"
    );
}
