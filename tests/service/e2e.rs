//! End to end over HTTP: a SOAP client's envelope into the facade, the
//! real aws-sdk-bedrockruntime client out to the Converse emulator, and the
//! answer back. Every sample envelope in `examples/` gets a response that
//! validates against its WSDL's schema (checked by Python `xmlschema` too);
//! each Converse error kind becomes its documented fault without the
//! service's text; invalid answers are repaired with the validation errors
//! fed back; the static fallback and the INVALID_MODEL_OUTPUT fault apply
//! when repairs run out.

use crate::common::gateway as e2e_support;
use crate::common::mappings as mappings_support;

use std::path::Path;

use e2e_support::{
    Gateway, SG, SoapReply, Validator, Version, as_soap12, find, repo_root, text_of,
};
use soapgate::converse::{ContentBlock, Role, ToolResultContent, ToolResultStatus};

const INV: &str = "http://erp.example.com/ap/invoice/types/v1";
const PARTS: &str = "urn:example:mro:parts-catalog";
const DESK: &str = "http://helpdesk.example.com/SupportDesk/";
const INTAKE: &str = "urn:example:document-intake";
/// Local elements of the invoice schema (elementFormDefault unqualified).
const UNQUALIFIED: &str = "";

const SONNET: &str = "anthropic.claude-3-5-sonnet-20240620-v1:0";
const HAIKU: &str = "anthropic.claude-3-haiku-20240307-v1:0";

/// What a sample envelope is and what a client expects back.
struct Sample {
    service: &'static str,
    operation: &'static str,
    action: &'static str,
    /// `(namespace, local name)` of the response payload; `None` for
    /// one-way operations (HTTP 202, no body).
    response: Option<(&'static str, &'static str)>,
    /// The WSDL binds it over SOAP 1.2 as well.
    soap12: bool,
}

const SAMPLES: &[Sample] = &[
    Sample {
        service: "DocumentIntake",
        operation: "ProcessDocument",
        action: "urn:example:document-intake/ProcessDocument",
        // Several steps, their answers assembled into the response.
        response: Some((INTAKE, "ProcessDocumentResponse")),
        soap12: true,
    },
    Sample {
        service: "DocumentIntake",
        operation: "QueueDocument",
        action: "urn:example:document-intake/QueueDocument",
        response: Some((SG, "QueueDocumentTicket")),
        soap12: true,
    },
    Sample {
        service: "InvoiceService",
        operation: "ClassifyInvoice",
        action: "http://erp.example.com/ap/invoice/v1/ClassifyInvoice",
        response: Some((INV, "ClassifyInvoiceResponse")),
        soap12: false,
    },
    Sample {
        service: "InvoiceService",
        operation: "ExtractInvoiceFields",
        action: "http://erp.example.com/ap/invoice/v1/ExtractInvoiceFields",
        // mode: async: a ticket now, the response through
        // GetExtractInvoiceFieldsResult once a worker ran the job.
        response: Some((SG, "ExtractInvoiceFieldsTicket")),
        soap12: false,
    },
    Sample {
        service: "InvoiceService",
        operation: "SubmitInvoiceBatch",
        action: "http://erp.example.com/ap/invoice/v1/SubmitInvoiceBatch",
        response: None,
        soap12: false,
    },
    Sample {
        service: "PartsCatalog",
        operation: "DescribePart",
        action: "urn:example:mro:parts-catalog#DescribePart",
        response: Some((PARTS, "DescribePartResponse")),
        soap12: false,
    },
    Sample {
        service: "PartsCatalog",
        operation: "SuggestSubstitute",
        action: "urn:example:mro:parts-catalog#SuggestSubstitute",
        response: Some((PARTS, "SuggestSubstituteResponse")),
        soap12: false,
    },
    Sample {
        service: "SupportDesk",
        operation: "DraftReply",
        action: "http://helpdesk.example.com/SupportDesk/DraftReply",
        response: Some((DESK, "DraftReplyResponse")),
        soap12: true,
    },
    Sample {
        service: "SupportDesk",
        operation: "SummarizeTicket",
        action: "http://helpdesk.example.com/SupportDesk/SummarizeTicket",
        response: Some((DESK, "SummarizeTicketResponse")),
        soap12: true,
    },
    Sample {
        service: "SupportDesk",
        operation: "TriageTicket",
        action: "http://helpdesk.example.com/SupportDesk/TriageTicket",
        response: Some((DESK, "TriageTicketResponse")),
        soap12: true,
    },
];

fn sample(service: &str, operation: &str) -> (&'static Sample, String) {
    let s = SAMPLES
        .iter()
        .find(|s| s.service == service && s.operation == operation)
        .unwrap_or_else(|| panic!("no sample {service}.{operation}"));
    let path = repo_root().join(format!("examples/{service}/{operation}.xml"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    (s, text)
}

fn wsdl(service: &str) -> std::path::PathBuf {
    repo_root().join(format!("wsdl/{service}.wsdl"))
}

/// The in-Rust checks of a successful reply: status, media type, envelope
/// version, exactly the promised payload element, no fault, not degraded.
fn assert_answered(what: &str, s: &Sample, version: Version, reply: &SoapReply) {
    let Some((ns, local)) = s.response else {
        assert_eq!(reply.status, 202, "{what}: {}", reply.text());
        assert!(reply.body.is_empty(), "{what}: {}", reply.text());
        return;
    };
    assert_eq!(reply.status, 200, "{what}: {}", reply.text());
    let media = match version {
        Version::V11 => "text/xml",
        Version::V12 => "application/soap+xml",
    };
    assert!(
        reply.content_type.starts_with(media),
        "{what}: content type {:?}",
        reply.content_type
    );
    assert!(
        !reply.correlation_id.is_empty(),
        "{what}: no correlation id"
    );
    let env = reply.envelope();
    assert_eq!(
        env.name.ns,
        version.envelope_ns(),
        "{what}: {}",
        reply.text()
    );
    let payload = reply.payload();
    assert_eq!(payload.len(), 1, "{what}: {}", reply.text());
    assert!(
        payload[0].name.is(ns, local),
        "{what}: expected {{{ns}}}{local}, got {:?}\n{}",
        payload[0].name,
        reply.text()
    );
    assert!(
        reply.headers().iter().all(|h| !h.name.is(SG, "Degraded")),
        "{what}: a default emulator answer must not need the fallback:\n{}",
        reply.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sample_envelope_gets_a_response_valid_against_its_wsdl() {
    let validator = Validator::find("every_sample_envelope_gets_a_response_valid_against_its_wsdl");
    let gateway = Gateway::start(None).await;

    // Every sample on disk is in the table, so a new one cannot be missed.
    let mut on_disk = Vec::new();
    for dir in std::fs::read_dir(repo_root().join("examples")).expect("examples/") {
        let dir = dir.expect("entry").path();
        for file in std::fs::read_dir(&dir).expect("service folder") {
            let file = file.expect("entry").path();
            if file.extension().is_some_and(|x| x == "xml") {
                let service = dir
                    .file_name()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned();
                let op = file
                    .file_stem()
                    .expect("stem")
                    .to_string_lossy()
                    .into_owned();
                on_disk.push((service, op));
            }
        }
    }
    on_disk.sort();
    let mut listed: Vec<(String, String)> = SAMPLES
        .iter()
        .map(|s| (s.service.to_string(), s.operation.to_string()))
        .collect();
    listed.sort();
    assert_eq!(on_disk, listed, "examples/ and SAMPLES disagree");

    let mut problems = Vec::new();
    for s in SAMPLES {
        let (_, text) = sample(s.service, s.operation);
        let mut versions = vec![(Version::V11, text.clone())];
        if s.soap12 {
            versions.push((Version::V12, as_soap12(&text)));
        }
        for (version, envelope) in versions {
            let what = format!("{}.{} over {version:?}", s.service, s.operation);
            let before = gateway.total_calls().await;
            let reply = gateway
                .call(s.service, version, s.action, envelope.as_bytes())
                .await;
            assert_answered(&what, s, version, &reply);
            let calls = gateway.total_calls().await - before;
            // Async and one-way calls are queued for a worker, not run.
            let queued = s.response.is_none_or(|(ns, _)| ns == SG);
            // A multi-step operation calls the model once per step it runs,
            // which depends on the answers; at least its first.
            let multi_step = gateway
                .state
                .live
                .snapshot()
                .mappings
                .plan(s.service, s.operation)
                .is_some_and(|p| p.workflow().is_some());
            if queued {
                assert_eq!(calls, 0, "{what}: model calls before answering");
            } else if multi_step {
                assert!(calls >= 1, "{what}: {calls} model calls before answering");
            } else {
                assert_eq!(calls, 1, "{what}: model calls before answering");
            }
            if s.response.is_none() {
                continue;
            }
            // A ticket is declared by the published contract only.
            let published;
            let contract = if queued {
                published = gateway.published_wsdl(s.service).await;
                published.path().to_path_buf()
            } else {
                wsdl(s.service)
            };
            if let Some(v) = &validator
                && let Err(findings) = v.check(&contract, &reply.body)
            {
                problems.push(format!("{what}:\n{findings}\n{}", reply.text()));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "responses xmlschema refuses:\n{}",
        problems.join("\n")
    );
}

/// The external validator refuses what it should: a payload that breaks
/// the schema (otherwise the test above could pass on a validator that
/// accepts everything).
#[test]
fn the_external_validator_refuses_an_invalid_payload() {
    let Some(v) = Validator::find("the_external_validator_refuses_an_invalid_payload") else {
        return;
    };
    let bad = format!(
        r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>
        <TriageTicketResponse xmlns="{DESK}"><TriageTicketResult><Priority>Whenever</Priority>
        </TriageTicketResult></TriageTicketResponse></soap:Body></soap:Envelope>"#
    );
    let findings = v
        .check(&wsdl("SupportDesk"), bad.as_bytes())
        .expect_err("an out-of-enumeration Priority must be refused");
    assert!(findings.contains("Priority"), "{findings}");
    // rpc/literal: a part accessor must be unqualified.
    let bad_rpc = format!(
        r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>
        <p:DescribePartResponse xmlns:p="{PARTS}"><p:description>x</p:description>
        </p:DescribePartResponse></soap:Body></soap:Envelope>"#
    );
    v.check(&wsdl("PartsCatalog"), bad_rpc.as_bytes())
        .expect_err("a qualified rpc part accessor must be refused");
}

/// One Converse error kind and the fault it must become.
struct ErrorCase {
    kind: &'static str,
    code: &'static str,
    /// `sg:RetryAfterSeconds`: `Some` when a hint must be given.
    retry_after: Option<&'static str>,
    /// Another target of the chain may not share the error, so the chain
    /// moves on.
    next_target: bool,
}

const ERROR_CASES: &[ErrorCase] = &[
    ErrorCase {
        kind: "validation",
        code: "MODEL_REJECTED_REQUEST",
        retry_after: None,
        next_target: false,
    },
    ErrorCase {
        kind: "access_denied",
        code: "MODEL_ACCESS_DENIED",
        retry_after: None,
        next_target: false,
    },
    ErrorCase {
        kind: "resource_not_found",
        code: "MODEL_NOT_FOUND",
        retry_after: None,
        next_target: false,
    },
    ErrorCase {
        kind: "model_timeout",
        code: "MODEL_TIMEOUT",
        retry_after: None,
        next_target: true,
    },
    ErrorCase {
        kind: "model_error",
        code: "MODEL_ERROR",
        retry_after: None,
        next_target: true,
    },
    // The script sends `Retry-After: 7` with this one.
    ErrorCase {
        kind: "throttling",
        code: "MODEL_THROTTLED",
        retry_after: Some("7"),
        next_target: true,
    },
    ErrorCase {
        kind: "model_not_ready",
        code: "MODEL_UNAVAILABLE",
        retry_after: Some("5"),
        next_target: true,
    },
    ErrorCase {
        kind: "service_quota_exceeded",
        code: "MODEL_THROTTLED",
        retry_after: Some("5"),
        next_target: false,
    },
    ErrorCase {
        kind: "internal_server",
        code: "MODEL_UNAVAILABLE",
        retry_after: None,
        next_target: true,
    },
    ErrorCase {
        kind: "service_unavailable",
        code: "MODEL_UNAVAILABLE",
        retry_after: Some("5"),
        next_target: true,
    },
];

/// Text only the emulator knows: it must never reach a client.
const SECRET: &str = "acct-123456789012 arn:aws:iam::123456789012:role/internal";

fn error_script(kind: &str) -> String {
    let retry = if kind == "throttling" {
        ", retry_after_secs: 7"
    } else {
        ""
    };
    format!("rules:\n  - error: {{ kind: {kind}, message: \"{kind} for {SECRET}\"{retry} }}\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_converse_error_kind_becomes_its_documented_fault() {
    let mut problems = Vec::new();
    // ClassifyInvoice's static fallback answers model failures too; the
    // chain part below needs the faults themselves.
    let mappings = mappings_support::with_fault_policy(
        "    on_failure:\n      static:\n        classification:",
        "    # Flat columns of soapgate_results",
    );
    for case in ERROR_CASES {
        let gateway = Gateway::start_with(Some(&error_script(case.kind)), mappings.path()).await;
        let (s, text) = sample("SupportDesk", "SummarizeTicket");
        for (version, envelope, soap_code) in [
            (Version::V11, text.clone(), "Server"),
            (Version::V12, as_soap12(&text), "Receiver"),
        ] {
            let what = format!("{} over {version:?}", case.kind);
            gateway.reset().await;
            let reply = gateway
                .call(s.service, version, s.action, envelope.as_bytes())
                .await;
            if reply.status != 500 {
                problems.push(format!("{what}: HTTP {}", reply.status));
            }
            let fault = reply.fault();
            let got = (
                fault.code.as_str(),
                fault.sg_code.as_str(),
                fault.retry_after.as_deref(),
            );
            if got != (soap_code, case.code, case.retry_after) {
                problems.push(format!(
                    "{what}: got {got:?}, want {:?}",
                    (soap_code, case.code, case.retry_after)
                ));
            }
            let body = reply.text();
            if body.contains("123456789012") || body.contains(" for acct-") {
                problems.push(format!("{what}: the service's text leaked:\n{body}"));
            }
            if fault.sg_message.is_empty() {
                problems.push(format!("{what}: empty sg:Message"));
            }
            // One attempt per call (the SDK's retries are off here), one
            // target in this operation's chain.
            let calls = gateway.total_calls().await;
            if calls != 1 {
                problems.push(format!("{what}: {calls} model calls, want 1"));
            }
        }

        // A chain of two targets: errors another target may not share move
        // on to the next; the others stop at the first.
        gateway.reset().await;
        let (s, text) = sample("InvoiceService", "ClassifyInvoice");
        let reply = gateway
            .call(s.service, Version::V11, s.action, text.as_bytes())
            .await;
        let fault = reply.fault();
        if fault.sg_code != case.code {
            problems.push(format!(
                "{} via the chain: {} (with on_failure: fault the model's error is the fault)",
                case.kind, fault.sg_code
            ));
        }
        let counts = gateway.model_calls().await;
        let want = if case.next_target {
            serde_json::json!({ SONNET: 1, HAIKU: 1 })
        } else {
            serde_json::json!({ SONNET: 1 })
        };
        if counts["models"] != want {
            problems.push(format!(
                "{} via the chain: calls {}, want {want}",
                case.kind, counts["models"]
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A valid ClassifyInvoice tool input.
const GOOD_CLASSIFICATION: &str = "{ classification: { category: IT_HARDWARE, confidence: 0.875, \
     glAccount: \"640100\", costCenter: CC-4711, requiresReview: false, \
     reasons: { reason: [Colocation and cross-connects are data-centre services] } } }";

/// The same with a category outside the enumeration.
const BAD_CLASSIFICATION: &str = "{ classification: { category: DATACENTER_STUFF, confidence: 0.875, \
     glAccount: \"640100\", requiresReview: false, reasons: { reason: [guess] } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_breaking_the_schema_is_repaired_with_its_errors_fed_back() {
    // The repair message (a user turn) asks to call the tool again; only
    // then does the scripted model answer correctly.
    let script = format!(
        "rules:\n  - name: repaired\n    prompt: \"Call classify_invoice again\"\n    tool: {GOOD_CLASSIFICATION}\n  - name: first answer\n    prompt: \"Nordlicht\"\n    tool: {BAD_CLASSIFICATION}\n"
    );
    let gateway = Gateway::start(Some(&script)).await;
    let (s, text) = sample("InvoiceService", "ClassifyInvoice");
    let reply = gateway
        .call(s.service, Version::V11, s.action, text.as_bytes())
        .await;
    assert_answered("repaired ClassifyInvoice", s, Version::V11, &reply);
    let payload = &reply.payload()[0];
    assert_eq!(
        text_of(payload, UNQUALIFIED, "category").as_deref(),
        Some("IT_HARDWARE")
    );
    assert_eq!(
        text_of(payload, UNQUALIFIED, "costCenter").as_deref(),
        Some("CC-4711")
    );
    if let Some(v) = Validator::find("an_answer_breaking_the_schema_is_repaired") {
        v.check(&wsdl(s.service), &reply.body)
            .unwrap_or_else(|e| panic!("{e}\n{}", reply.text()));
    }

    let counts = gateway.model_calls().await;
    assert_eq!(counts["total"], 2, "{counts}");
    assert_eq!(counts["models"][SONNET], 2, "{counts}");

    // The second request carried the first answer and, as the error
    // toolResult for it, the validation errors.
    let seen = gateway.model.requests();
    assert_eq!(seen.len(), 2);
    let repair = &seen[1].1;
    let first = &seen[0].1;
    assert_eq!(repair.messages.len(), first.messages.len() + 2);
    let answer = &repair.messages[first.messages.len()];
    assert_eq!(answer.role, Role::Assistant);
    let tool_use_id = answer
        .content
        .iter()
        .find_map(|b| match b {
            ContentBlock::ToolUse(t) => Some(t.tool_use_id.clone()),
            _ => None,
        })
        .expect("the first answer's toolUse is replayed");
    let feedback = repair.messages.last().expect("repair turn");
    assert_eq!(feedback.role, Role::User);
    let result = feedback
        .content
        .iter()
        .find_map(|b| match b {
            ContentBlock::ToolResult(r) => Some(r),
            _ => None,
        })
        .expect("an error toolResult");
    assert_eq!(result.tool_use_id, tool_use_id);
    assert_eq!(result.status, Some(ToolResultStatus::Error));
    let errors: String = result
        .content
        .iter()
        .filter_map(|c| match c {
            ToolResultContent::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        errors.contains("category") && errors.contains("DATACENTER_STUFF"),
        "the violation is named: {errors}"
    );
}

/// The static response `mappings/InvoiceService.yaml` gives ClassifyInvoice.
fn assert_static_classification(reply: &SoapReply) {
    let payload = &reply.payload()[0];
    for (field, want) in [
        ("category", "UNCLASSIFIED"),
        ("confidence", "0"),
        ("glAccount", "999999"),
        ("requiresReview", "true"),
        (
            "reason",
            "Automatic classification unavailable; please classify manually.",
        ),
    ] {
        assert_eq!(
            text_of(payload, UNQUALIFIED, field).as_deref(),
            Some(want),
            "{field}:\n{}",
            reply.text()
        );
    }
    assert!(find(payload, UNQUALIFIED, "costCenter").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_that_stay_invalid_get_the_static_fallback_marked_degraded() {
    let validator = Validator::find("answers_that_stay_invalid_get_the_static_fallback");
    // A schema-breaking tool input, and prose where a tool call belongs.
    for answer in [
        format!("tool: {BAD_CLASSIFICATION}"),
        "text: \"{ category: IT_HARDWARE\"".to_string(),
    ] {
        let script = format!("rules:\n  - {answer}\n");
        let gateway = Gateway::start(Some(&script)).await;
        let (s, text) = sample("InvoiceService", "ClassifyInvoice");
        let reply = gateway
            .call(s.service, Version::V11, s.action, text.as_bytes())
            .await;
        assert_eq!(reply.status, 200, "{answer}: {}", reply.text());
        let payload = reply.payload();
        assert_eq!(payload.len(), 1, "{}", reply.text());
        assert!(payload[0].name.is(INV, "ClassifyInvoiceResponse"));
        assert_static_classification(&reply);
        let headers = reply.headers();
        let degraded = headers
            .iter()
            .find(|h| h.name.is(SG, "Degraded"))
            .unwrap_or_else(|| panic!("{answer}: no sg:Degraded header:\n{}", reply.text()));
        assert!(!degraded.text().trim().is_empty(), "the header says why");
        // The first answer and repair_attempts: 2 more.
        assert_eq!(gateway.total_calls().await, 3, "{answer}");
        if let Some(v) = &validator {
            v.check(&wsdl(s.service), &reply.body)
                .unwrap_or_else(|e| panic!("{answer}: {e}\n{}", reply.text()));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_that_stay_invalid_without_a_fallback_are_an_invalid_model_output_fault() {
    // ExtractInvoiceFields: repair_attempts 1, on_failure fault — run
    // synchronously here (the example maps it async).
    let mappings = mappings_support::edited(|text| {
        text.replace(
            "    mode: async\n    idempotency_key: documentId\n",
            "    mode: sync\n",
        )
    });
    let gateway = Gateway::start_with(
        Some("rules:\n  - text: \"Sorry, the scan is unreadable: {internal-note-42}\"\n"),
        mappings.path(),
    )
    .await;
    let (s, text) = sample("InvoiceService", "ExtractInvoiceFields");
    let reply = gateway
        .call(s.service, Version::V11, s.action, text.as_bytes())
        .await;
    assert_eq!(reply.status, 500, "{}", reply.text());
    let fault = reply.fault();
    assert_eq!(fault.code, "Server");
    assert_eq!(fault.sg_code, "INVALID_MODEL_OUTPUT");
    assert!(
        !reply.text().contains("internal-note-42"),
        "the model's text stays out of the fault:\n{}",
        reply.text()
    );
    assert!(reply.headers().iter().all(|h| !h.name.is(SG, "Degraded")));
    assert_eq!(gateway.total_calls().await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_failing_at_call_time_is_a_template_error_fault() {
    // `format` with "%.2f" takes a number; the subject is text. The check at
    // load cannot tell (a sample subject fails the same way), so the call
    // fails as it renders: a fault of the mapping, not of soapgate.
    let mappings = mappings_support::edited(|text| {
        text.replace(
            "      Subject: {{ ticket.Subject }}\n",
            "      Subject: {{ \"%.2f\"|format(ticket.Subject) }}\n",
        )
    });
    let gateway = Gateway::start_with(None, mappings.path()).await;
    let (s, text) = sample("SupportDesk", "TriageTicket");
    for version in [Version::V11, Version::V12] {
        let body = match version {
            Version::V11 => text.clone(),
            Version::V12 => as_soap12(&text),
        };
        let reply = gateway
            .call(s.service, version, s.action, body.as_bytes())
            .await;
        assert_eq!(reply.status, 500, "{}", reply.text());
        let fault = reply.fault();
        assert_eq!(fault.sg_code, "TEMPLATE_ERROR", "{}", reply.text());
        let expected = match version {
            Version::V11 => "Server",
            Version::V12 => "Receiver",
        };
        assert_eq!(fault.code, expected);
        // Where the mapping lives is the operator's business.
        assert!(!reply.text().contains(".yaml"), "{}", reply.text());
    }
    assert_eq!(gateway.total_calls().await, 0);
}

/// A test-only mapping folder: the fallback with `repair_attempts: 0`
/// comes after exactly one call, over SOAP 1.2 as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_repairs_the_fallback_follows_the_first_invalid_answer() {
    let dir = repo_root().join("tests/data/e2e/no-repair");
    let gateway = Gateway::start_with(
        Some("rules:\n  - tool: { TriageTicketResult: { Priority: Whenever } }\n"),
        Path::new(&dir),
    )
    .await;
    let (s, text) = sample("SupportDesk", "TriageTicket");
    let reply = gateway
        .call(
            s.service,
            Version::V12,
            s.action,
            as_soap12(&text).as_bytes(),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let payload = &reply.payload()[0];
    assert_eq!(text_of(payload, DESK, "Queue").as_deref(), Some("Accounts"));
    assert_eq!(text_of(payload, DESK, "Priority").as_deref(), Some("High"));
    assert!(
        reply.headers().iter().any(|h| h.name.is(SG, "Degraded")),
        "{}",
        reply.text()
    );
    assert_eq!(gateway.total_calls().await, 1);
    if let Some(v) = Validator::find("without_repairs_the_fallback_follows") {
        v.check(&wsdl(s.service), &reply.body)
            .unwrap_or_else(|e| panic!("{e}\n{}", reply.text()));
    }
}

/// A Latin-1 client gets its answer in Latin-1, and model text outside
/// Latin-1 (a euro sign, a check mark, an emoji) survives as character
/// references instead of being lost or garbling the envelope.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_latin1_client_gets_model_text_beyond_latin1_intact() {
    const ANSWER: &str = "Kunde Müller: Betrag 5 € doppelt abgebucht ✓ 🙂";
    let gateway = Gateway::start(Some(&format!("rules:\n  - text: \"{ANSWER}\"\n"))).await;
    let (s, text) = sample("SupportDesk", "SummarizeTicket");
    let text = text
        .replace("encoding=\"utf-8\"", "encoding=\"ISO-8859-1\"")
        .replace(
            "Duplicate charge on invoice 2024-10-5521",
            "Doppelte Abbuchung für Rechnung 2024-10-5521",
        );
    let (bytes, _, unmappable) = encoding_rs::WINDOWS_1252.encode(&text);
    assert!(!unmappable);
    let reply = e2e_support::post_raw(
        gateway.http(),
        &gateway.endpoint(s.service),
        "text/xml; charset=ISO-8859-1",
        Some(&format!("\"{}\"", s.action)),
        &bytes,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(
        reply
            .content_type
            .to_ascii_lowercase()
            .contains("iso-8859-1"),
        "{}",
        reply.content_type
    );
    assert!(
        std::str::from_utf8(&reply.body).is_err(),
        "a Latin-1 body (ü as one byte), not UTF-8"
    );
    let payload = &reply.payload()[0];
    assert_eq!(
        text_of(payload, DESK, "SummarizeTicketResult").as_deref(),
        Some(ANSWER)
    );
    // The model saw the subject decoded.
    let seen = gateway.model.requests();
    assert!(seen[0].1.prompt_text().contains("für Rechnung"));
    if let Some(v) = Validator::find("a_latin1_client_gets_model_text_beyond_latin1_intact") {
        v.check(&wsdl(s.service), &reply.body)
            .unwrap_or_else(|e| panic!("{e}\n{}", reply.text()));
    }
}

/// A model that hangs: the client's read timeout ends the attempt, the
/// chain tries the next target, and the caller gets MODEL_TIMEOUT, not a
/// hung connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_model_becomes_a_timeout_fault_after_the_chain() {
    let settings = soapgate::bedrock::BedrockSettings {
        read_timeout_ms: 300,
        ..e2e_support::bedrock_settings()
    };
    // With the example's static fallback the caller would get a degraded
    // answer; the fault is what this test is about.
    let mappings = mappings_support::with_fault_policy(
        "    on_failure:\n      static:\n        classification:",
        "    # Flat columns of soapgate_results",
    );
    let gateway = Gateway::start_full(
        Some("rules:\n  - delay_ms: 5000\n"),
        mappings.path(),
        settings,
    )
    .await;
    let (s, text) = sample("InvoiceService", "ClassifyInvoice");
    let started = std::time::Instant::now();
    let reply = gateway
        .call(s.service, Version::V11, s.action, text.as_bytes())
        .await;
    let elapsed = started.elapsed();
    assert_eq!(reply.status, 500, "{}", reply.text());
    let fault = reply.fault();
    assert_eq!(
        (fault.code.as_str(), fault.sg_code.as_str()),
        ("Server", "MODEL_TIMEOUT")
    );
    let counts = gateway.model_calls().await;
    assert_eq!(counts["models"], serde_json::json!({ SONNET: 1, HAIKU: 1 }));
    assert!(
        elapsed < std::time::Duration::from_secs(4),
        "two 300 ms attempts took {elapsed:?}"
    );
}
