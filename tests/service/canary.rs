//! Canary and shadow variants end to end, through the real SDK client to
//! the emulator: a variant at weight 10 serves about a tenth of the calls
//! and is counted under its own `variant` label; `sticky_by` keeps a key
//! on one variant; a shadow variant runs beside sampled calls without
//! changing their answers or making them wait, and its agreement with the
//! served answer is counted in `soapgate_shadow_calls_total`.

use crate::common::gateway as e2e_support;

use std::time::{Duration, Instant};

use e2e_support::{Gateway, SoapReply, Version, post_soap, repo_root};
use soapgate::store::{KIND_SERVED, KIND_SHADOW, Recording, RecordingQuery};

const ACTION: &str = "http://erp.example.com/ap/invoice/v1/ClassifyInvoice";
const PRIMARY: &str = "primary-model";
const CANARY: &str = "canary-model";

/// A mapping folder with ClassifyInvoice answered by `primary-model`, and
/// `extra` under the operation (four-space indent).
fn mappings(extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let yaml = format!(
        "service: InvoiceService
wsdl: InvoiceService.wsdl
operations:
  ClassifyInvoice:
    model: {{ targets: [ {{ model: {PRIMARY} }} ], max_tokens: 512 }}
    input:
      vendor: invoice/vendor/name
    prompt: \"Classify the invoice from {{{{ vendor }}}}.\"
    output:
      structured: true
{extra}"
    );
    std::fs::write(dir.path().join("InvoiceService.yaml"), yaml).expect("writing the mapping");
    dir
}

/// The sample call, from `vendor`.
fn envelope(vendor: &str) -> String {
    let path = repo_root().join("examples/InvoiceService/ClassifyInvoice.xml");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .replace("Nordlicht Rechenzentrum GmbH", vendor)
}

/// Send every envelope, `concurrency` at a time; the replies in order.
async fn call_all(gateway: &Gateway, envelopes: Vec<String>, concurrency: usize) -> Vec<SoapReply> {
    let url = gateway.endpoint("InvoiceService");
    let queue = std::sync::Arc::new(std::sync::Mutex::new(
        envelopes.into_iter().enumerate().collect::<Vec<_>>(),
    ));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (http, url, queue) = (gateway.http().clone(), url.clone(), queue.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = Vec::new();
            loop {
                let next = queue.lock().expect("queue").pop();
                let Some((i, envelope)) = next else { break };
                done.push((
                    i,
                    post_soap(&http, &url, Version::V11, ACTION, envelope.as_bytes()).await,
                ));
            }
            done
        }));
    }
    let mut replies = Vec::new();
    for task in tasks {
        replies.extend(task.await.expect("caller task"));
    }
    replies.sort_by_key(|(i, _)| *i);
    replies.into_iter().map(|(_, r)| r).collect()
}

/// One sample of the `/metrics` text: the value of `name` whose labels
/// include all of `labels` (summed over the rest).
async fn metric(gateway: &Gateway, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = gateway
        .http()
        .get(format!("{}/metrics", gateway.base_url))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .unwrap_or_else(|e| panic!("not Prometheus text ({e}):\n{text}"));
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            _ => 0.0,
        })
        .sum()
}

fn payload_xml(reply: &SoapReply) -> String {
    reply
        .payload()
        .iter()
        .map(soapgate::xml::write_element)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_at_weight_10_serves_a_tenth_of_2000_calls() {
    let dir = mappings(&format!(
        "    variants:
      canary:
        weight: 10
        model: {{ targets: [ {{ model: {CANARY} }} ], max_tokens: 512 }}
"
    ));
    let gateway = Gateway::start_with(None, dir.path()).await;
    let calls = 2_000;
    let replies = call_all(&gateway, vec![envelope("Nordlicht"); calls], 16).await;
    for reply in &replies {
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    // The model each call went to says which variant served it.
    let counts = gateway.model_calls().await;
    let canary = counts["models"][CANARY].as_u64().unwrap_or(0);
    let primary = counts["models"][PRIMARY].as_u64().unwrap_or(0);
    assert_eq!(canary + primary, calls as u64, "{counts}");
    let share = canary as f64 / calls as f64;
    assert!(
        (0.07..=0.13).contains(&share),
        "the canary served {canary} of {calls}"
    );
    // And the request metrics count the calls by variant.
    for (variant, n) in [("canary", canary), ("primary", primary)] {
        let labels = [
            ("operation", "ClassifyInvoice"),
            ("variant", variant),
            ("outcome", "ok"),
        ];
        assert_eq!(
            metric(&gateway, "soapgate_requests_total", &labels).await,
            n as f64,
            "{variant}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_by_keeps_each_key_on_one_variant() {
    let dir = mappings(&format!(
        "    variants:
      canary:
        weight: 30
        model: {{ targets: [ {{ model: {CANARY} }} ], max_tokens: 512 }}
    sticky_by: invoice/vendor/name
"
    ));
    let gateway = Gateway::start_with(None, dir.path()).await;
    let vendors: Vec<String> = (0..40).map(|i| format!("Vendor {i}")).collect();
    let envelopes: Vec<String> = (0..5)
        .flat_map(|_| vendors.iter().map(|v| envelope(v)))
        .collect();
    for reply in call_all(&gateway, envelopes, 8).await {
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let sent = gateway.model.requests();
    assert_eq!(sent.len(), 200);
    let mut on_canary = 0;
    for vendor in &vendors {
        let needle = format!("from {vendor}.");
        let models: std::collections::BTreeSet<&str> = sent
            .iter()
            .filter(|(_, r)| serde_json::to_string(r).expect("JSON").contains(&needle))
            .map(|(m, _)| m.as_str())
            .collect();
        assert_eq!(models.len(), 1, "{vendor} went to {models:?}");
        on_canary += usize::from(models.contains(CANARY));
    }
    assert!(
        (1..vendors.len()).contains(&on_canary),
        "both variants serve some keys: {on_canary} of {} on the canary",
        vendors.len()
    );
}

/// Wait until `n` shadow runs of `variant` have ended (or 20 s).
async fn shadow_runs(gateway: &Gateway, variant: &str, n: f64) -> (f64, f64, f64, f64) {
    let started = Instant::now();
    loop {
        let mut counts = [0.0; 4];
        for (i, result) in ["agree", "differ", "failed", "skipped"].iter().enumerate() {
            counts[i] = metric(
                gateway,
                "soapgate_shadow_calls_total",
                &[
                    ("service", "InvoiceService"),
                    ("operation", "ClassifyInvoice"),
                    ("variant", variant),
                    ("result", result),
                ],
            )
            .await;
        }
        if counts.iter().sum::<f64>() >= n || started.elapsed() > Duration::from_secs(20) {
            return (counts[0], counts[1], counts[2], counts[3]);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A valid ClassifyInvoice tool input in `category`.
fn classification(category: &str) -> String {
    format!(
        "{{ classification: {{ category: {category}, confidence: 0.875, glAccount: \"640100\", \
         requiresReview: false, reasons: {{ reason: [scripted] }} }} }}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_that_answers_differently_never_changes_or_delays_the_served_answer() {
    // The primary's model answers IT_HARDWARE at once; the shadow
    // variant's model answers TRAVEL after 1.5 s.
    let script = format!(
        "rules:\n  - model: {PRIMARY}\n    tool: {}\n  - model: shadow-model\n    delay_ms: 1500\n    tool: {}\n",
        classification("IT_HARDWARE"),
        classification("TRAVEL"),
    );
    let dir = mappings(
        "    variants:
      other:
        model: { targets: [ { model: shadow-model } ], max_tokens: 512 }
    shadow: { sample: 1.0, variant: other }
",
    );
    let gateway = Gateway::start_with(Some(&script), dir.path()).await;
    let vendors: Vec<String> = (0..20).map(|i| format!("Vendor {i}")).collect();
    let started = Instant::now();
    let replies = call_all(&gateway, vendors.iter().map(|v| envelope(v)).collect(), 4).await;
    let took = started.elapsed();
    for reply in &replies {
        assert_eq!(reply.status, 200, "{}", reply.text());
        let xml = payload_xml(reply);
        assert!(
            xml.contains("<category>IT_HARDWARE</category>"),
            "every served answer is the primary's: {xml}"
        );
    }
    assert!(
        took < Duration::from_millis(1_200),
        "20 calls took {took:?}: they waited for their 1.5 s shadows"
    );
    let (agree, differ, failed, skipped) = shadow_runs(&gateway, "other", 20.0).await;
    assert_eq!((agree, differ, failed, skipped), (0.0, 20.0, 0.0, 0.0));
    let counts = gateway.model_calls().await;
    assert_eq!(counts["models"]["shadow-model"], 20, "{counts}");
    // Shadow runs are not served calls.
    assert_eq!(
        metric(&gateway, "soapgate_requests_total", &[("variant", "other")]).await,
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identical_shadow_agrees_and_an_unsampled_call_runs_none() {
    let dir = mappings(
        "    variants:
      same: { weight: 0 }
    shadow: { sample: 1.0, variant: same }
",
    );
    let gateway = Gateway::start_with(None, dir.path()).await;
    let vendors: Vec<String> = (0..10).map(|i| format!("Vendor {i}")).collect();
    for reply in call_all(&gateway, vendors.iter().map(|v| envelope(v)).collect(), 4).await {
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    assert_eq!(
        shadow_runs(&gateway, "same", 10.0).await,
        (10.0, 0.0, 0.0, 0.0)
    );
    assert_eq!(gateway.total_calls().await, 20, "each call and its shadow");

    let dir = mappings(
        "    variants:
      same: { weight: 0 }
    shadow: { sample: 0.0, variant: same }
",
    );
    let gateway = Gateway::start_with(None, dir.path()).await;
    for reply in call_all(&gateway, vendors.iter().map(|v| envelope(v)).collect(), 4).await {
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(gateway.total_calls().await, 10, "no shadow at sample 0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_finding_no_free_model_permit_is_skipped_not_waited_for() {
    // One model permit. A call answered from the response cache needs none,
    // but its shadow does: while a slow call holds the only permit, the
    // shadow of a cached answer is skipped at once.
    let script = "rules:\n  - prompt: \"Slow Vendor\"\n    delay_ms: 3000\n";
    let dir = mappings(
        "    cache: { ttl_secs: 300 }
    variants:
      same: { weight: 0 }
    shadow: { sample: 1.0, variant: same }
",
    );
    let bedrock = soapgate::bedrock::BedrockSettings {
        max_in_flight: 1,
        ..e2e_support::bedrock_settings()
    };
    let gateway = Gateway::start_full(Some(script), dir.path(), bedrock).await;
    let fast = envelope("Fast Vendor");
    let first = call_all(&gateway, vec![fast.clone()], 1).await;
    assert_eq!(first[0].status, 200, "{}", first[0].text());
    // Its shadow ran once the call had given its permit back.
    assert_eq!(
        shadow_runs(&gateway, "same", 1.0).await,
        (1.0, 0.0, 0.0, 0.0)
    );

    let (http, url) = (gateway.http().clone(), gateway.endpoint("InvoiceService"));
    let slow = tokio::spawn(async move {
        post_soap(
            &http,
            &url,
            Version::V11,
            ACTION,
            envelope("Slow Vendor").as_bytes(),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let cached = call_all(&gateway, vec![fast], 1).await;
    assert_eq!(cached[0].status, 200, "{}", cached[0].text());
    assert!(started.elapsed() < Duration::from_millis(1_500));
    let (_, _, _, skipped) = shadow_runs(&gateway, "same", 2.0).await;
    assert_eq!(skipped, 1.0, "the cached answer's shadow found no permit");
    assert!(!slow.is_finished(), "the slow call still held the permit");
    let slow = slow.await.expect("slow call");
    assert_eq!(slow.status, 200, "{}", slow.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_whose_model_fails_counts_failed_and_the_call_is_answered() {
    let script = "rules:\n  - model: broken-model\n    error: { kind: access_denied }\n";
    let dir = mappings(
        "    variants:
      broken:
        model: { targets: [ { model: broken-model } ], max_tokens: 512 }
    shadow: { sample: 1.0, variant: broken }
",
    );
    let gateway = Gateway::start_with(Some(script), dir.path()).await;
    let vendors: Vec<String> = (0..5).map(|i| format!("Vendor {i}")).collect();
    for reply in call_all(&gateway, vendors.iter().map(|v| envelope(v)).collect(), 2).await {
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    assert_eq!(
        shadow_runs(&gateway, "broken", 5.0).await,
        (0.0, 0.0, 5.0, 0.0)
    );
}

/// The recordings of ClassifyInvoice of this kind, once `want` are in (or
/// after 10 s).
async fn recordings(gateway: &Gateway, kind: &'static str, want: usize) -> Vec<Recording> {
    let query = RecordingQuery {
        service: "InvoiceService".into(),
        operation: "ClassifyInvoice".into(),
        kind,
        since_ms: None,
        limit: None,
    };
    let started = Instant::now();
    loop {
        let rows = gateway
            .store
            .recordings(&query)
            .await
            .expect("reading recordings");
        if rows.len() >= want || started.elapsed() > Duration::from_secs(10) {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_operation_keeps_each_shadow_run_with_its_agreement() {
    let script = format!(
        "rules:\n  - model: {PRIMARY}\n    tool: {}\n  - model: shadow-model\n    tool: {}\n",
        classification("IT_HARDWARE"),
        classification("TRAVEL"),
    );
    let dir = mappings(
        "    record: { sample: 1.0, redact: [invoice/vendor/vatId] }
    variants:
      other:
        model: { targets: [ { model: shadow-model } ], max_tokens: 512 }
    shadow: { sample: 1.0, variant: other }
",
    );
    let gateway = Gateway::start_with(Some(&script), dir.path()).await;
    let vendors: Vec<String> = (0..3).map(|i| format!("Vendor {i}")).collect();
    let replies = call_all(&gateway, vendors.iter().map(|v| envelope(v)).collect(), 1).await;
    for reply in &replies {
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let served = recordings(&gateway, KIND_SERVED, 3).await;
    let shadows = recordings(&gateway, KIND_SHADOW, 3).await;
    assert_eq!((served.len(), shadows.len()), (3, 3));
    for row in &served {
        assert_eq!((row.variant.as_deref(), row.agreement), (None, None));
        assert!(
            row.response_xml
                .as_deref()
                .unwrap_or("")
                .contains("IT_HARDWARE")
        );
    }
    for row in &shadows {
        assert_eq!(row.variant.as_deref(), Some("other"));
        assert_eq!(row.model.as_deref(), Some("shadow-model"));
        assert!(
            served
                .iter()
                .any(|s| s.correlation_id == row.correlation_id),
            "a shadow row names its served call"
        );
        let response = row.response_xml.as_deref().expect("the shadow's response");
        assert!(response.contains("TRAVEL"), "{response}");
        assert!(
            row.converse_request
                .contains("Classify the invoice from Vendor")
        );
        // Redacted as the served call's.
        assert!(
            !row.request_xml.contains("DE287451906"),
            "{}",
            row.request_xml
        );
        assert!(row.request_xml.contains("[redacted]"));
        // Only the category differs of the answer's leaves.
        let agreement = row.agreement.expect("an agreement");
        assert!(agreement > 0.5 && agreement < 1.0, "agreement {agreement}");
        assert!(row.output_tokens > 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_served_by_a_variant_is_recorded_with_its_name() {
    let dir = mappings(&format!(
        "    record: {{ sample: 1.0 }}
    variants:
      canary:
        weight: 100
        model: {{ targets: [ {{ model: {CANARY} }} ], max_tokens: 512 }}
"
    ));
    let gateway = Gateway::start_with(None, dir.path()).await;
    for reply in call_all(&gateway, vec![envelope("Nordlicht"); 2], 1).await {
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let rows = recordings(&gateway, KIND_SERVED, 2).await;
    assert_eq!(rows.len(), 2);
    for row in rows {
        assert_eq!(row.variant.as_deref(), Some("canary"));
        assert_eq!(row.model.as_deref(), Some(CANARY));
    }
}
