//! Declared faults end to end: SupportDesk.TriageTicket declares
//! `TicketRejected` (detail `TicketRejection`), and its example mapping
//! offers the model that fault's tool beside the response's. Through the
//! real AWS SDK against the emulator: unscripted, the response; scripted
//! to call the fault's tool (as `examples/SupportDesk/emulator.yaml` does),
//! the fault — `soap:Client` with HTTP 500 in SOAP 1.1, `env:Sender` with
//! HTTP 400 in SOAP 1.2 (Server/Receiver and 500 when the mapping says
//! `code: server`), the detail element in its namespace and valid against
//! the WSDL's schema (Python xmlschema). zeep raises `zeep.exceptions.Fault`
//! with that detail. Also: a detail that breaks the schema is repaired, a
//! fault answer is cached like a response and remembered as the last good
//! answer, an async job's fault is what its poll answers, and text output
//! selects a fault by its `when` rule.

use std::time::Duration;

use crate::common::app::{peer_missing, run_with_timeout};
use crate::common::gateway::{
    Gateway, SG, SoapReply, Validator, Version, as_soap12, find, repo_root, run_one_job, text_of,
};
use crate::common::mappings::edited;
use soapgate::converse::{ContentBlock, ToolChoice, ToolResultContent, ToolResultStatus};
use soapgate::xml::{self, Element};

const DESK: &str = "http://helpdesk.example.com/SupportDesk/";
const ACTION: &str = "http://helpdesk.example.com/SupportDesk/TriageTicket";
const POLL_ACTION: &str = "http://helpdesk.example.com/SupportDesk/GetTriageTicketResult";

/// Calls the fault's tool, with the emulator's schema-made input.
const REJECT: &str = "rules:\n  - tool_name: TicketRejected\n";

/// The example TriageTicket request (SOAP 1.1), or its spam variant: the
/// ticket `INC0000001` whose body the example script rejects.
fn triage(spam: bool) -> String {
    let text = std::fs::read_to_string(repo_root().join("examples/SupportDesk/TriageTicket.xml"))
        .expect("the example request");
    if !spam {
        return text;
    }
    let mut text = text.replace("INC0048213", "INC0000001");
    let start = text.find("<Body>").expect("a ticket Body") + "<Body>".len();
    let end = text.find("</Body>").expect("a ticket Body end");
    text.replace_range(
        start..end,
        "Congratulations, you have won the lottery! Click here to claim your prize.",
    );
    text
}

fn in_version(envelope: &str, version: Version) -> String {
    match version {
        Version::V11 => envelope.to_string(),
        Version::V12 => as_soap12(envelope),
    }
}

/// The declared fault a reply carries: (code's local name, reason, the
/// detail element).
fn declared(reply: &SoapReply, version: Version) -> (String, String, Element) {
    let env = version.envelope_ns();
    let payload = reply.payload();
    let fault = payload
        .iter()
        .find(|e| e.name.is(env, "Fault"))
        .unwrap_or_else(|| panic!("expected a fault, got:\n{}", reply.text()));
    let (code, reason, detail) = match version {
        Version::V11 => (
            fault.child("", "faultcode").map(Element::text),
            fault.child("", "faultstring").map(Element::text),
            fault.child("", "detail"),
        ),
        Version::V12 => (
            fault
                .child(env, "Code")
                .and_then(|c| c.child(env, "Value"))
                .map(Element::text),
            fault
                .child(env, "Reason")
                .and_then(|r| r.child(env, "Text"))
                .map(Element::text),
            fault.child(env, "Detail"),
        ),
    };
    let code = code.unwrap_or_else(|| panic!("no fault code:\n{}", reply.text()));
    let detail = detail.unwrap_or_else(|| panic!("no detail:\n{}", reply.text()));
    let children: Vec<&Element> = detail.elements().collect();
    assert_eq!(children.len(), 1, "one detail element:\n{}", reply.text());
    assert!(
        find(detail, SG, "Error").is_none(),
        "a declared fault carries no sg:Error:\n{}",
        reply.text()
    );
    let local = code.rsplit(':').next().unwrap_or_default().to_string();
    (local, reason.unwrap_or_default(), children[0].clone())
}

/// The detail element checked by Python xmlschema against the WSDL's
/// schema, as the payload of an envelope of its own.
fn assert_detail_valid(validator: &Option<Validator>, detail: &Element) {
    let Some(v) = validator else { return };
    let envelope = format!(
        "<e:Envelope xmlns:e=\"http://schemas.xmlsoap.org/soap/envelope/\"><e:Body>{}</e:Body></e:Envelope>",
        xml::write_element(detail)
    );
    v.check(
        &repo_root().join("wsdl/SupportDesk.wsdl"),
        envelope.as_bytes(),
    )
    .unwrap_or_else(|e| panic!("xmlschema refuses the detail:\n{e}\n{envelope}"));
}

fn assert_rejection(detail: &Element) {
    assert!(
        detail.name.is(DESK, "TicketRejection"),
        "detail {:?}",
        detail.name
    );
    for child in ["TicketId", "Reason", "Explanation"] {
        assert!(
            detail.child(DESK, child).is_some(),
            "TicketRejection/{child} missing"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triage_answers_the_response_or_the_declared_fault_in_both_versions() {
    let validator =
        Validator::find("triage_answers_the_response_or_the_declared_fault_in_both_versions");
    // Unscripted: the response's tool is the first offered, and `any`
    // lets the emulator call it.
    let plain = Gateway::start(None).await;
    let faulty = Gateway::start(Some(REJECT)).await;
    for version in [Version::V11, Version::V12] {
        let request = in_version(&triage(false), version);
        let reply = plain
            .call("SupportDesk", version, ACTION, request.as_bytes())
            .await;
        assert_eq!(reply.status, 200, "{version:?}: {}", reply.text());
        let payload = reply.payload();
        assert!(
            payload[0].name.is(DESK, "TriageTicketResponse"),
            "{}",
            reply.text()
        );
        if let Some(v) = &validator {
            v.check(&repo_root().join("wsdl/SupportDesk.wsdl"), &reply.body)
                .unwrap_or_else(|e| panic!("xmlschema refuses:\n{e}\n{}", reply.text()));
        }

        let reply = faulty
            .call("SupportDesk", version, ACTION, request.as_bytes())
            .await;
        let (code, reason, detail) = declared(&reply, version);
        let (status, expected_code, media) = match version {
            Version::V11 => (500, "Client", "text/xml"),
            Version::V12 => (400, "Sender", "application/soap+xml"),
        };
        assert_eq!(reply.status, status, "{version:?}: {}", reply.text());
        assert!(
            reply.content_type.starts_with(media),
            "{}",
            reply.content_type
        );
        assert_eq!(code, expected_code, "{}", reply.text());
        assert_eq!(
            reason,
            "Ticket INC0048213 was not triaged: it is not a support request"
        );
        assert_rejection(&detail);
        assert_detail_valid(&validator, &detail);
    }
    // What was offered: both tools, the model to call one of them.
    let requests = faulty.model.requests();
    let config = requests[0].1.tool_config.as_ref().expect("tools");
    let names: Vec<&str> = config
        .tools
        .iter()
        .map(|soapgate::converse::Tool::ToolSpec(s)| s.name.as_str())
        .collect();
    assert_eq!(names, ["TriageTicketResponse", "TicketRejected"]);
    assert!(matches!(config.tool_choice, Some(ToolChoice::Any(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_script_rejects_a_spam_ticket_and_triages_the_others() {
    let validator =
        Validator::find("the_example_script_rejects_a_spam_ticket_and_triages_the_others");
    let script = std::fs::read_to_string(repo_root().join("examples/SupportDesk/emulator.yaml"))
        .expect("the example script");
    let gateway = Gateway::start(Some(&script)).await;
    let reply = gateway
        .call(
            "SupportDesk",
            Version::V11,
            ACTION,
            triage(false).as_bytes(),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let reply = gateway
        .call("SupportDesk", Version::V11, ACTION, triage(true).as_bytes())
        .await;
    let (code, reason, detail) = declared(&reply, Version::V11);
    assert_eq!((reply.status, code.as_str()), (500, "Client"));
    assert_eq!(
        reason,
        "Ticket INC0000001 was not triaged: it is not a support request"
    );
    assert_eq!(text_of(&detail, DESK, "Reason").as_deref(), Some("Spam"));
    assert_detail_valid(&validator, &detail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_fault_is_receiver_and_500_in_soap12() {
    let dir = edited(|t| t.replace("        code: client\n", "        code: server\n"));
    let gateway = Gateway::start_with(Some(REJECT), dir.path()).await;
    for (version, code) in [(Version::V11, "Server"), (Version::V12, "Receiver")] {
        let request = in_version(&triage(false), version);
        let reply = gateway
            .call("SupportDesk", version, ACTION, request.as_bytes())
            .await;
        let (got, _, detail) = declared(&reply, version);
        assert_eq!(
            (reply.status, got.as_str()),
            (500, code),
            "{}",
            reply.text()
        );
        assert_rejection(&detail);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_detail_breaking_the_schema_is_repaired() {
    // The first call gets a Reason outside the enumeration; the repair
    // (the second matching call) the fault as the schema wants it.
    let script = "rules:
  - after: 1
    tool_name: TicketRejected
    tool: { TicketId: INC0048213, Reason: Duplicate, Explanation: Same as INC0048200. }
  - tool_name: TicketRejected
    tool: { TicketId: INC0048213, Reason: Boring, Explanation: x }
";
    let gateway = Gateway::start(Some(script)).await;
    let reply = gateway
        .call(
            "SupportDesk",
            Version::V11,
            ACTION,
            triage(false).as_bytes(),
        )
        .await;
    let (_, _, detail) = declared(&reply, Version::V11);
    assert_eq!(
        text_of(&detail, DESK, "Reason").as_deref(),
        Some("Duplicate")
    );
    assert_eq!(gateway.total_calls().await, 2);
    let requests = gateway.model.requests();
    let repair = &requests[1].1;
    let feedback = repair.messages.last().expect("the repair turn");
    let result = feedback
        .content
        .iter()
        .find_map(|b| match b {
            ContentBlock::ToolResult(r) => Some(r),
            _ => None,
        })
        .expect("an error toolResult for the fault's call");
    assert_eq!(result.status, Some(ToolResultStatus::Error));
    let ToolResultContent::Text(text) = &result.content[0] else {
        panic!("text feedback: {result:?}");
    };
    assert!(
        text.starts_with("The input for TicketRejected is invalid:") && text.contains("Boring"),
        "{text}"
    );
    let again = feedback
        .content
        .iter()
        .find_map(|b| match b {
            ContentBlock::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .expect("the instruction");
    assert!(again.contains("Call TicketRejected again"), "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_answer_is_cached_and_remembered_like_a_response() {
    // Cached: the second identical call is answered without the model.
    let dir = edited(|t| {
        t.replace(
            "    repair_attempts: 2\n    on_failure:\n      static:\n        TriageTicketResult:",
            "    cache: { ttl_secs: 300 }\n    repair_attempts: 2\n    on_failure:\n      static:\n        TriageTicketResult:",
        )
    });
    let gateway = Gateway::start_with(Some(REJECT), dir.path()).await;
    for _ in 0..2 {
        let reply = gateway
            .call(
                "SupportDesk",
                Version::V12,
                ACTION,
                as_soap12(&triage(false)).as_bytes(),
            )
            .await;
        let (code, _, detail) = declared(&reply, Version::V12);
        assert_eq!((reply.status, code.as_str()), (400, "Sender"));
        assert_rejection(&detail);
    }
    assert_eq!(
        gateway.total_calls().await,
        1,
        "the second call hit the cache"
    );

    // Remembered: with `on_failure: cache`, a failing model gets the last
    // good answer — the fault — marked degraded.
    let dir = edited(|t| {
        let start = t.find("    on_failure:\n      static:\n        TriageTicketResult:");
        let end = t.find("  # Text output: the model's text");
        match (start, end) {
            (Some(s), Some(e)) => {
                let mut t = t.to_string();
                t.replace_range(s..e, "    on_failure: cache\n\n");
                t
            }
            _ => t.to_string(),
        }
    });
    let script = "rules:
  - after: 1
    error: { kind: model_error }
  - tool_name: TicketRejected
";
    let gateway = Gateway::start_with(Some(script), dir.path()).await;
    let first = gateway
        .call(
            "SupportDesk",
            Version::V11,
            ACTION,
            triage(false).as_bytes(),
        )
        .await;
    let (_, _, remembered) = declared(&first, Version::V11);
    let second = gateway
        .call(
            "SupportDesk",
            Version::V11,
            ACTION,
            triage(false).as_bytes(),
        )
        .await;
    let (code, _, detail) = declared(&second, Version::V11);
    assert_eq!((second.status, code.as_str()), (500, "Client"));
    assert_eq!(xml::write_element(&detail), xml::write_element(&remembered));
    let degraded = second
        .headers()
        .into_iter()
        .find(|h| h.name.is(SG, "Degraded"))
        .unwrap_or_else(|| panic!("no sg:Degraded:\n{}", second.text()));
    assert_eq!(degraded.attr("policy"), Some("cache"));
    assert_eq!(degraded.attr("reason"), Some("MODEL_ERROR"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_jobs_fault_is_what_its_poll_answers() {
    let dir = edited(|t| {
        t.replace(
            "  TriageTicket:\n    model:",
            "  TriageTicket:\n    mode: async\n    model:",
        )
    });
    let gateway = Gateway::start_with(Some(REJECT), dir.path()).await;
    // The published poll declares the operation's fault, in both bindings.
    let published = std::fs::read_to_string(gateway.published_wsdl("SupportDesk").await.path())
        .expect("published WSDL");
    let doc = xml::read_str(&published, &xml::Limits::default()).expect("WSDL");
    const WSDL: &str = "http://schemas.xmlsoap.org/wsdl/";
    let poll_ops: Vec<&Element> = doc
        .root
        .elements()
        .filter(|e| e.name.is(WSDL, "portType") || e.name.is(WSDL, "binding"))
        .flat_map(|e| e.children_named(WSDL, "operation"))
        .filter(|o| o.attr("name") == Some("GetTriageTicketResult"))
        .collect();
    assert_eq!(poll_ops.len(), 3, "portType and two bindings:\n{published}");
    for op in poll_ops {
        let fault = op
            .child(WSDL, "fault")
            .unwrap_or_else(|| panic!("GetTriageTicketResult without wsdl:fault:\n{published}"));
        assert_eq!(fault.attr("name"), Some("TicketRejected"));
    }

    for version in [Version::V11, Version::V12] {
        let submit = gateway
            .call(
                "SupportDesk",
                version,
                ACTION,
                in_version(&triage(false), version).as_bytes(),
            )
            .await;
        assert_eq!(submit.status, 200, "{}", submit.text());
        let job_id = text_of(&submit.payload()[0], SG, "jobId").expect("a ticket");
        let ran = run_one_job(&gateway.state, &gateway.store).await;
        assert_eq!(ran.map(|j| j.to_string()), Some(job_id.clone()));
        let job = gateway
            .store
            .get(&soapgate::store::JobId::from_ticket(job_id.clone()))
            .await
            .expect("store")
            .expect("the job");
        assert_eq!(job.status, soapgate::store::JobStatus::Failed);
        assert_eq!(job.fault_code.as_deref(), Some("TicketRejected"));
        assert!(
            job.result_payload
                .as_deref()
                .is_some_and(|p| p.contains("TicketRejection")),
            "{:?}",
            job.result_payload
        );

        let poll = format!(
            "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body>\
             <sg:GetTriageTicketResult xmlns:sg=\"{SG}\"><sg:jobId>{job_id}</sg:jobId>\
             </sg:GetTriageTicketResult></s:Body></s:Envelope>"
        );
        let reply = gateway
            .call(
                "SupportDesk",
                version,
                POLL_ACTION,
                in_version(&poll, version).as_bytes(),
            )
            .await;
        let (code, reason, detail) = declared(&reply, version);
        let expected = match version {
            Version::V11 => (500, "Client"),
            Version::V12 => (400, "Sender"),
        };
        assert_eq!((reply.status, code.as_str()), expected, "{}", reply.text());
        assert_eq!(
            reason,
            "Ticket INC0048213 was not triaged: it is not a support request"
        );
        assert_rejection(&detail);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_text_output_a_when_rule_selects_the_fault() {
    let dir = edited(|t| {
        let start = t.find("    output:\n      structured: true\n    # The WSDL declares");
        let end = t.find(
            "    repair_attempts: 2\n    on_failure:\n      static:\n        TriageTicketResult:",
        );
        match (start, end) {
            (Some(s), Some(e)) => {
                let mut t = t.to_string();
                t.replace_range(
                    s..e,
                    "    output:
      text: TriageTicketResult/Rationale
      fill:
        TriageTicketResult/Priority: Normal
        TriageTicketResult/Queue: General
        TriageTicketResult/Sentiment: Neutral
        TriageTicketResult/EscalateToHuman: false
    faults:
      TicketRejected:
        when: \"^(?i)rejected( as)? *:\"
        text: Explanation
        fill:
          TicketId: \"{{ ticket.TicketId }}\"
          Reason: NotASupportRequest
        reason: Not a support request
",
                );
                t
            }
            _ => t.to_string(),
        }
    });
    let script = "rules:
  - prompt: INC0000001
    text: \"Rejected: an advertisement for a lottery.\"
  - text: A routine question about payroll exports.
";
    let validator = Validator::find("with_text_output_a_when_rule_selects_the_fault");
    let gateway = Gateway::start_with(Some(script), dir.path()).await;
    let reply = gateway
        .call(
            "SupportDesk",
            Version::V12,
            ACTION,
            as_soap12(&triage(false)).as_bytes(),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        text_of(&reply.payload()[0], DESK, "Rationale").as_deref(),
        Some("A routine question about payroll exports.")
    );
    let reply = gateway
        .call(
            "SupportDesk",
            Version::V12,
            ACTION,
            as_soap12(&triage(true)).as_bytes(),
        )
        .await;
    let (code, reason, detail) = declared(&reply, Version::V12);
    assert_eq!((reply.status, code.as_str()), (400, "Sender"));
    assert_eq!(reason, "Not a support request");
    assert_eq!(
        text_of(&detail, DESK, "Explanation").as_deref(),
        Some("an advertisement for a lottery.")
    );
    assert_eq!(
        text_of(&detail, DESK, "TicketId").as_deref(),
        Some("INC0000001")
    );
    assert_detail_valid(&validator, &detail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zeep_raises_its_fault_with_the_declared_detail() {
    const TEST: &str = "zeep_raises_its_fault_with_the_declared_detail";
    let probe = std::process::Command::new("python3")
        .args(["-c", "import zeep, lxml"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        peer_missing(TEST, "python3 with zeep and lxml");
        return;
    }
    let script = std::fs::read_to_string(repo_root().join("examples/SupportDesk/emulator.yaml"))
        .expect("the example script");
    let gateway = Gateway::start(Some(&script)).await;
    let wsdl = format!("{}?wsdl", gateway.endpoint("SupportDesk"));
    for port in ["SupportDeskSoap", "SupportDeskSoap12"] {
        let mut cmd = std::process::Command::new("python3");
        cmd.arg(repo_root().join("tests/service/zeep_declared_fault.py"))
            .arg(&wsdl)
            .arg(port);
        let out = tokio::task::spawn_blocking(move || {
            run_with_timeout(&mut cmd, Duration::from_secs(60))
        })
        .await
        .expect("zeep ran");
        assert!(out.success(), "{port}: {}\n{}", out.stdout, out.stderr);
        let lines: Vec<serde_json::Value> = out
            .stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(lines.len(), 2, "{}", out.stdout);
        assert_eq!(lines[0]["outcome"], "response", "{port}: {}", out.stdout);
        let fault = &lines[1];
        assert_eq!(fault["outcome"], "fault", "{port}: {}", out.stdout);
        assert_eq!(fault["exception"], "zeep.exceptions.Fault");
        assert_eq!(
            fault["message"],
            "Ticket INC0000001 was not triaged: it is not a support request"
        );
        assert_eq!(
            fault["detail"],
            format!("{{{DESK}}}TicketRejection"),
            "{port}: {}",
            out.stdout
        );
        assert_eq!(fault["fields"]["Reason"], "Spam");
        assert_eq!(fault["fields"]["TicketId"], "INC0000001");
    }
}
