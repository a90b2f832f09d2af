//! Multi-step operations end to end: the DocumentIntake example
//! (`mappings/DocumentIntake.yaml`: classify, extract only for invoices,
//! categorise each line) through the facade, the real
//! aws-sdk-bedrockruntime client and the emulator with the example's
//! script; each branch answered with a response valid against the WSDL,
//! synchronously and as an async job, and each step called exactly as
//! often as its branch needs.

use std::collections::BTreeMap;

use crate::common::gateway::{
    Gateway, SG, SoapReply, Validator, Version, find, repo_root, run_one_job, text_of,
};

const DI: &str = "urn:example:document-intake";
const PROCESS: &str = "urn:example:document-intake/ProcessDocument";
const QUEUE: &str = "urn:example:document-intake/QueueDocument";
const POLL: &str = "urn:example:document-intake/GetQueueDocumentResult";

fn example(path: &str) -> String {
    let path = repo_root().join("examples/DocumentIntake").join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn script() -> String {
    example("emulator.yaml")
}

/// The model calls of each step, by the tool the call offered.
fn calls_per_step(gateway: &Gateway) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (_, request) in gateway.model.requests() {
        let tool = request
            .tool_config
            .as_ref()
            .and_then(|t| t.tools.first())
            .map(|soapgate::converse::Tool::ToolSpec(spec)| spec.name.clone())
            .unwrap_or_else(|| "-".into());
        *out.entry(tool).or_default() += 1;
    }
    out
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// The `Line` elements of a response as (Number, Category).
fn lines(result: &soapgate::xml::Element) -> Vec<(String, String)> {
    let Some(lines) = find(result, DI, "Lines") else {
        return Vec::new();
    };
    lines
        .elements()
        .filter(|l| l.name.is(DI, "Line"))
        .map(|l| {
            (
                text_of(l, DI, "Number").unwrap_or_default(),
                text_of(l, DI, "Category").unwrap_or_default(),
            )
        })
        .collect()
}

async fn validate(validator: &Option<Validator>, gateway: &Gateway, reply: &SoapReply) {
    if let Some(v) = validator {
        let wsdl = gateway.published_wsdl("DocumentIntake").await;
        v.check(wsdl.path(), &reply.body)
            .unwrap_or_else(|e| panic!("xmlschema refuses:\n{e}\n{}", reply.text()));
    }
}

/// What a branch must answer: the kind, the invoice number (invoices only)
/// and the line categories.
struct Branch {
    sample: &'static str,
    kind: &'static str,
    invoice: Option<&'static str>,
    lines: &'static [(&'static str, &'static str)],
    calls: &'static [(&'static str, usize)],
}

const BRANCHES: &[Branch] = &[
    Branch {
        sample: "ProcessDocument.xml",
        kind: "INVOICE",
        invoice: Some("INV-2026-0815"),
        lines: &[("1", "GOODS"), ("2", "SERVICES"), ("3", "FREIGHT")],
        calls: &[("step_classify", 1), ("step_extract", 1), ("step_lines", 3)],
    },
    Branch {
        sample: "branches/ProcessDocument-receipt.xml",
        kind: "RECEIPT",
        invoice: None,
        lines: &[("1", "GOODS"), ("2", "OTHER")],
        calls: &[("step_classify", 1), ("step_lines", 2)],
    },
    Branch {
        sample: "branches/ProcessDocument-letter.xml",
        kind: "OTHER",
        invoice: None,
        lines: &[],
        calls: &[("step_classify", 1)],
    },
];

fn check_result(what: &str, branch: &Branch, result: &soapgate::xml::Element, text: &str) {
    assert_eq!(
        text_of(result, DI, "Kind").as_deref(),
        Some(branch.kind),
        "{what}:\n{text}"
    );
    let invoice = find(result, DI, "Invoice").and_then(|i| text_of(i, DI, "InvoiceNumber"));
    assert_eq!(invoice.as_deref(), branch.invoice, "{what}:\n{text}");
    let want: Vec<(String, String)> = branch
        .lines
        .iter()
        .map(|(n, c)| (n.to_string(), c.to_string()))
        .collect();
    assert_eq!(lines(result), want, "{what}:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_branch_of_the_example_answers_valid_synchronously() {
    let validator = Validator::find("every_branch_of_the_example_answers_valid_synchronously");
    for branch in BRANCHES {
        let gateway = Gateway::start(Some(&script())).await;
        let reply = gateway
            .call(
                "DocumentIntake",
                Version::V11,
                PROCESS,
                example(branch.sample).as_bytes(),
            )
            .await;
        assert_eq!(reply.status, 200, "{}: {}", branch.sample, reply.text());
        let payload = reply.payload();
        assert!(
            payload[0].name.is(DI, "ProcessDocumentResponse"),
            "{}",
            reply.text()
        );
        assert!(
            reply.headers().iter().all(|h| !h.name.is(SG, "Degraded")),
            "{}",
            reply.text()
        );
        check_result(branch.sample, branch, &payload[0], &reply.text());
        assert_eq!(
            calls_per_step(&gateway),
            counts(branch.calls),
            "{}: model calls per step",
            branch.sample
        );
        validate(&validator, &gateway, &reply).await;
        // Each step is counted by how it ended.
        let metrics = gateway
            .http()
            .get(format!("{}/metrics", gateway.base_url))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text");
        for (step, _) in branch.calls {
            let step = step.trim_start_matches("step_");
            let line = format!(
                "soapgate_steps_total{{service=\"DocumentIntake\",operation=\"ProcessDocument\",step=\"{step}\",result=\"answered\"}} 1"
            );
            assert!(
                metrics.contains(&line),
                "{}: no {line}\n{metrics}",
                branch.sample
            );
        }
        for step in ["extract", "lines"] {
            let skipped = format!(
                "soapgate_steps_total{{service=\"DocumentIntake\",operation=\"ProcessDocument\",step=\"{step}\",result=\"skipped\"}} 1"
            );
            let called = branch
                .calls
                .iter()
                .any(|(s, _)| *s == format!("step_{step}"));
            assert_eq!(
                metrics.contains(&skipped),
                !called,
                "{}: {skipped}\n{metrics}",
                branch.sample
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_intake_job_runs_its_steps_and_is_polled_done() {
    let validator = Validator::find("an_async_intake_job_runs_its_steps_and_is_polled_done");
    let gateway = Gateway::start(Some(&script())).await;
    let request = example("QueueDocument.xml");
    let reply = gateway
        .call("DocumentIntake", Version::V11, QUEUE, request.as_bytes())
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let job_id = text_of(&reply.payload()[0], SG, "jobId").expect("a ticket");
    assert_eq!(
        gateway.total_calls().await,
        0,
        "the steps wait for a worker"
    );

    let ran = run_one_job(&gateway.state, &gateway.store).await;
    assert_eq!(ran.map(|j| j.to_string()), Some(job_id.clone()));
    assert_eq!(
        calls_per_step(&gateway),
        counts(BRANCHES[0].calls),
        "model calls per step"
    );

    let poll = format!(
        "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body>\
         <sg:GetQueueDocumentResult xmlns:sg=\"{SG}\"><sg:jobId>{job_id}</sg:jobId></sg:GetQueueDocumentResult>\
         </s:Body></s:Envelope>"
    );
    let done = gateway
        .call("DocumentIntake", Version::V11, POLL, poll.as_bytes())
        .await;
    assert_eq!(done.status, 200, "{}", done.text());
    let payload = done.payload();
    assert_eq!(
        text_of(&payload[0], SG, "status").as_deref(),
        Some("DONE"),
        "{}",
        done.text()
    );
    let result = find(&payload[0], SG, "result")
        .and_then(|r| r.elements().next())
        .expect("the result");
    assert!(
        result.name.is(DI, "QueueDocumentResponse"),
        "{}",
        done.text()
    );
    check_result("QueueDocument", &BRANCHES[0], result, &done.text());
    validate(&validator, &gateway, &done).await;
}

/// The example's script with `rules` tried first.
fn script_with(rules: &str) -> String {
    script().replacen("rules:\n", &format!("rules:\n{rules}"), 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_item_of_a_continue_step_takes_its_default_and_the_call_goes_on() {
    // The hinges line fails at every target; `on_failure: continue` makes
    // it OTHER (the step's default) and the response is still answered.
    let rules = "  - name: hinges fail\n    prompt: \"(?m)^Categori[sz]e this line(?s:.*)[Hh]inges\"\n    error: { kind: validation, message: refused }\n";
    let gateway = Gateway::start(Some(&script_with(rules))).await;
    let reply = gateway
        .call(
            "DocumentIntake",
            Version::V11,
            PROCESS,
            example("branches/ProcessDocument-receipt.xml").as_bytes(),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let payload = reply.payload();
    assert_eq!(
        lines(&payload[0]),
        [("1".into(), "OTHER".into()), ("2".into(), "OTHER".into())],
        "{}",
        reply.text()
    );
    assert!(
        reply.headers().iter().all(|h| !h.name.is(SG, "Degraded")),
        "a default is not a degraded answer:\n{}",
        reply.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_step_without_a_policy_fails_the_call_and_stops_the_rest() {
    // classify is refused: the call ends in the model's fault, and no step
    // that reads classify is called.
    let rules = "  - name: classify refused\n    prompt: \"(?m)^Classify this document\"\n    error: { kind: access_denied, message: not subscribed }\n";
    let gateway = Gateway::start(Some(&script_with(rules))).await;
    let reply = gateway
        .call(
            "DocumentIntake",
            Version::V11,
            PROCESS,
            example("ProcessDocument.xml").as_bytes(),
        )
        .await;
    assert_eq!(reply.status, 500, "{}", reply.text());
    assert_eq!(
        reply.fault().sg_code,
        "MODEL_ACCESS_DENIED",
        "{}",
        reply.text()
    );
    let calls = calls_per_step(&gateway);
    assert!(
        calls.keys().all(|k| k == "step_classify"),
        "only classify was called: {calls:?}"
    );
}
