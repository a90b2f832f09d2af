//! Mapping files against the example contracts: golden files per example
//! operation (`tests/data/mapping/<Service>.<Operation>/`: request.xml ->
//! converse-request.json; converse-response.json -> response.xml), load
//! errors with exact `file:line:col`, round trips in both output modes, the
//! repair request, and the property that XSD -> JSON Schema -> any
//! schema-valid JSON -> XML validates against the XSD.
//!
//! Set `UPDATE_GOLDEN=1` to rewrite the golden files (a reviewed change).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::{Value, json};

use soapgate::contract::{ContractSet, validate_payload};
use soapgate::converse::{self, ContentBlock, Message, Response, StopReason};
use soapgate::mapping::{
    CallMeta, Expect, MappingError, MappingSet, OperationPlan, OutputError, json_schema,
    json_to_xml, payload_from_json,
};
use soapgate::soap::parse_envelope;
use soapgate::xml::{self, Element, Limits, NsScope, QName};

const CORRELATION_ID: &str = "urn:uuid:00000000-0000-4000-8000-000000000001";

fn contracts() -> &'static ContractSet {
    static SET: OnceLock<ContractSet> = OnceLock::new();
    SET.get_or_init(|| {
        soapgate::files::load_contracts(Path::new("wsdl"))
            .unwrap_or_else(|e| panic!("example contracts: {e:?}"))
    })
}

fn mapping_files() -> Vec<(PathBuf, String)> {
    let mut paths: Vec<PathBuf> = fs::read_dir("mappings")
        .expect("mappings/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let text = fs::read_to_string(&p).expect("mapping file");
            (p, text)
        })
        .collect()
}

fn mappings() -> &'static MappingSet {
    static SET: OnceLock<MappingSet> = OnceLock::new();
    SET.get_or_init(|| match MappingSet::load(&mapping_files(), contracts()) {
        Ok(s) => s,
        Err(errors) => panic!(
            "example mappings do not load:\n{}",
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        ),
    })
}

fn plan(service: &str, operation: &str) -> &'static OperationPlan {
    mappings()
        .plan(service, operation)
        .unwrap_or_else(|| panic!("{service}.{operation} is not mapped"))
}

/// The validated Body children of a request envelope.
fn request_payload(service: &str, operation: &str, text: &str) -> Vec<Element> {
    let doc = xml::read(text.as_bytes(), None, &Limits::default()).expect("request XML");
    let env = parse_envelope(doc.root).expect("envelope");
    let (contract, svc) = contracts().service(service).expect("service");
    let op = svc.operation(operation).expect("operation");
    let violations = validate_payload(&contract.schemas, &op.input, &env.body, &env.scope);
    assert!(violations.is_empty(), "request invalid: {violations:?}");
    env.body
}

fn meta<'a>(service: &'a str, operation: &'a str) -> CallMeta<'a> {
    CallMeta {
        service,
        operation,
        correlation_id: CORRELATION_ID,
    }
}

fn updating() -> bool {
    std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1")
}

/// Compare `actual` with the golden file, or rewrite it when updating.
fn golden(path: &Path, actual: &str) {
    if updating() {
        fs::write(path, actual).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    let expected = fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    assert_eq!(
        expected,
        actual,
        "{} differs (UPDATE_GOLDEN=1 rewrites it)",
        path.display()
    );
}

fn write_payload(payload: &[Element]) -> String {
    let mut out: String = payload
        .iter()
        .map(xml::write_element)
        .collect::<Vec<_>>()
        .join("\n");
    out.push('\n');
    out
}

/// One golden case: `tests/data/mapping/<Service>.<Operation>/`.
fn check(case: &str) {
    let dir = Path::new("tests/data/mapping").join(case);
    let (service, operation) = case.split_once('.').expect("case is Service.Operation");
    let plan = plan(service, operation);
    let request_xml = fs::read_to_string(dir.join("request.xml")).expect("request.xml");
    let payload = request_payload(service, operation, &request_xml);
    let call = plan
        .render_request(&payload, &meta(service, operation))
        .unwrap_or_else(|e| panic!("{case}: render: {e}"));
    let mut rendered = serde_json::to_string_pretty(&json!({
        "targets": call.targets.iter().map(|t| json!({"model": t.model, "region": t.region})).collect::<Vec<_>>(),
        "request": call.request,
    }))
    .expect("json");
    rendered.push('\n');
    golden(&dir.join("converse-request.json"), &rendered);

    let response_path = dir.join("converse-response.json");
    if plan.is_one_way() {
        assert_eq!(call.expect, Expect::Nothing);
        assert!(!response_path.exists(), "a one-way case has no response");
        return;
    }
    let response: Response =
        serde_json::from_str(&fs::read_to_string(&response_path).expect("converse-response.json"))
            .expect("converse response JSON");
    let out = plan
        .response_from(&call, &response)
        .unwrap_or_else(|e| panic!("{case}: response: {e}: {:?}", e.violations()));
    golden(&dir.join("response.xml"), &write_payload(&out));
}

#[test]
fn golden_invoice_classify() {
    check("InvoiceService.ClassifyInvoice");
}

#[test]
fn golden_invoice_extract_fields() {
    check("InvoiceService.ExtractInvoiceFields");
}

#[test]
fn golden_invoice_submit_batch() {
    check("InvoiceService.SubmitInvoiceBatch");
}

#[test]
fn golden_support_triage() {
    check("SupportDesk.TriageTicket");
}

#[test]
fn golden_support_summarize() {
    check("SupportDesk.SummarizeTicket");
}

#[test]
fn golden_support_draft_reply() {
    check("SupportDesk.DraftReply");
}

#[test]
fn golden_parts_suggest_substitute() {
    check("PartsCatalog.SuggestSubstitute");
}

#[test]
fn golden_parts_describe() {
    check("PartsCatalog.DescribePart");
}

#[test]
fn every_example_operation_is_mapped_with_each_feature_used() {
    for (_, svc) in contracts().services() {
        for op in &svc.operations {
            assert!(
                mappings().plan(&svc.name, &op.name).is_some(),
                "{}.{} has no mapping",
                svc.name,
                op.name
            );
        }
    }
    let plans: Vec<&OperationPlan> = mappings().plans().collect();
    assert!(plans.iter().any(|p| p.tool().is_some()), "structured");
    assert!(
        plans.iter().any(|p| p.tool().is_none() && !p.is_one_way()),
        "text"
    );
    assert!(
        plans.iter().any(|p| p.static_response().is_some()),
        "static"
    );
    // The base64 scan becomes a document block.
    let p = plan("InvoiceService", "ExtractInvoiceFields");
    let payload = request_payload(
        "InvoiceService",
        "ExtractInvoiceFields",
        &fs::read_to_string("examples/InvoiceService/ExtractInvoiceFields.xml").expect("example"),
    );
    let call = p
        .render_request(&payload, &meta("InvoiceService", "ExtractInvoiceFields"))
        .expect("render");
    let first = &call.request.messages[0].content[0];
    match first {
        ContentBlock::Document(d) => {
            assert_eq!(d.format, converse::DocumentFormat::Pdf);
            assert_eq!(d.name, "scan DOC-2024-00418861");
            match &d.source {
                converse::DocumentSource::Bytes(b) => assert!(b.starts_with(b"%PDF-1.4")),
                other => panic!("{other:?}"),
            }
        }
        other => panic!("expected a document block, got {other:?}"),
    }
}

// ---- helpers for the round trips ------------------------------------------

fn answer(content: Vec<ContentBlock>, stop: StopReason) -> Response {
    serde_json::from_value(json!({
        "output": {"message": Message::assistant(content)},
        "stopReason": stop.as_str(),
        "usage": {"inputTokens": 10, "outputTokens": 10, "totalTokens": 20},
        "metrics": {"latencyMs": 5}
    }))
    .expect("response")
}

fn tool_answer(tool: &str, input: Value) -> Response {
    answer(
        vec![ContentBlock::ToolUse(converse::ToolUseBlock {
            tool_use_id: "tooluse_1".into(),
            name: tool.into(),
            input,
        })],
        StopReason::ToolUse,
    )
}

fn example(service: &str, operation: &str) -> Vec<Element> {
    let path = format!("examples/{service}/{operation}.xml");
    request_payload(
        service,
        operation,
        &fs::read_to_string(&path).expect("example request"),
    )
}

#[test]
fn structured_round_trip_and_repair() {
    let p = plan("InvoiceService", "ClassifyInvoice");
    let call = p
        .render_request(
            &example("InvoiceService", "ClassifyInvoice"),
            &meta("InvoiceService", "ClassifyInvoice"),
        )
        .expect("render");
    let tool = match &call.expect {
        Expect::Structured { tool } => tool.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(tool, "classify_invoice");
    let schema = call.request.forced_tool().expect("forced tool").schema();
    assert_eq!(
        schema["properties"]["classification"]["properties"]["category"]["enum"][0],
        "RAW_MATERIALS"
    );

    // Valid answer, properties in any order: XML in XSD order.
    let good = tool_answer(
        &tool,
        json!({"classification": {
            "reasons": {"reason": ["Colocation and power are data-centre services"]},
            "requiresReview": false,
            "glAccount": "640100",
            "confidence": 0.92,
            "category": "IT_HARDWARE"
        }}),
    );
    let out = p.response_from(&call, &good).expect("valid answer");
    let xml_text = xml::write_element(&out[0]);
    assert_eq!(
        xml_text,
        "<ns1:ClassifyInvoiceResponse xmlns:ns1=\"http://erp.example.com/ap/invoice/types/v1\">\
         <classification><category>IT_HARDWARE</category><confidence>0.92</confidence>\
         <glAccount>640100</glAccount><requiresReview>false</requiresReview><reasons>\
         <reason>Colocation and power are data-centre services</reason></reasons>\
         </classification></ns1:ClassifyInvoiceResponse>"
    );

    // Invalid: bad enum value, bad pattern, unknown property, missing reasons.
    let bad = tool_answer(
        &tool,
        json!({"classification": {
            "category": "HARDWARE",
            "confidence": 0.5,
            "glAccount": "64010",
            "requiresReview": true,
            "colour": "blue"
        }}),
    );
    let err = p.response_from(&call, &bad).expect_err("invalid answer");
    let rules: Vec<String> = err.violations().iter().map(ToString::to_string).collect();
    assert!(err.is_repairable());
    assert!(
        rules
            .iter()
            .any(|r| r.contains("/classification/colour: unknown property")),
        "{rules:?}"
    );
    assert!(
        rules
            .iter()
            .any(|r| r.contains("required property reasons missing")),
        "{rules:?}"
    );

    let repair = p.repair_request(&call.request, &bad, &err);
    assert_eq!(repair.messages.len(), 3);
    assert_eq!(repair.messages[1].role, converse::Role::Assistant);
    let user = &repair.messages[2];
    assert_eq!(user.role, converse::Role::User);
    match &user.content[0] {
        ContentBlock::ToolResult(r) => {
            assert_eq!(r.tool_use_id, "tooluse_1");
            assert_eq!(r.status, Some(converse::ToolResultStatus::Error));
            let text = match &r.content[0] {
                converse::ToolResultContent::Text(t) => t.clone(),
                other => panic!("{other:?}"),
            };
            assert!(
                text.contains("/classification/colour: unknown property"),
                "{text}"
            );
            assert!(text.contains("reasons"), "{text}");
        }
        other => panic!("expected a tool result, got {other:?}"),
    }
    // The request is otherwise unchanged: same tools, same system prompt.
    assert_eq!(repair.tool_config, call.request.tool_config);
    assert_eq!(repair.system, call.request.system);

    // Schema-valid JSON that the XSD still refuses (fractionDigits=3 is in
    // the JSON Schema as multipleOf, but take a pattern the JSON Schema
    // states too): the XSD check reports XML paths.
    let xsd_bad = tool_answer(
        &tool,
        json!({"classification": {
            "category": "TRAVEL", "confidence": 0.5, "glAccount": "064010",
            "requiresReview": true, "reasons": {"reason": "x"}
        }}),
    );
    let err = p.response_from(&call, &xsd_bad).expect_err("pattern");
    assert_eq!(
        err.violations()[0].path,
        "/ClassifyInvoiceResponse/classification/glAccount"
    );

    // No tool call at all.
    let text = answer(vec![ContentBlock::text("IT_HARDWARE")], StopReason::EndTurn);
    let err = p.response_from(&call, &text).expect_err("no tool");
    assert!(matches!(err, OutputError::NoToolUse { .. }));
    let repair = p.repair_request(&call.request, &text, &err);
    let last = repair.messages.last().expect("message");
    assert!(last.texts().any(|t| t.contains("classify_invoice")));

    // Blocked answers are not repairable.
    let blocked = answer(
        vec![ContentBlock::text("...")],
        StopReason::GuardrailIntervened,
    );
    let err = p.response_from(&call, &blocked).expect_err("blocked");
    assert!(!err.is_repairable());

    // The static fallback validates.
    let fallback = p.static_response().expect("static");
    let (contract, svc) = contracts().service("InvoiceService").expect("svc");
    let op = svc.operation("ClassifyInvoice").expect("op");
    assert!(
        validate_payload(
            &contract.schemas,
            op.output.as_ref().expect("output"),
            &fallback,
            &NsScope::new()
        )
        .is_empty()
    );
}

#[test]
fn text_round_trip_with_fills_and_repair() {
    let p = plan("SupportDesk", "DraftReply");
    let call = p
        .render_request(
            &example("SupportDesk", "DraftReply"),
            &meta("SupportDesk", "DraftReply"),
        )
        .expect("render");
    assert_eq!(call.expect, Expect::Text);
    assert!(call.request.tool_config.is_none());
    let reply = answer(
        vec![ContentBlock::text(
            "  Dear Tom,\n\nthe credit note is on its way.  ",
        )],
        StopReason::EndTurn,
    );
    let out = p.response_from(&call, &reply).expect("valid");
    assert_eq!(
        xml::write_element(&out[0]),
        "<DraftReplyResponse xmlns=\"http://helpdesk.example.com/SupportDesk/\">\
         <DraftReplyResult><Subject>Re: Duplicate charge on invoice 2024-10-5521</Subject>\
         <Body>Dear Tom,\n\nthe credit note is on its way.</Body>\
         <NeedsAgentReview>true</NeedsAgentReview></DraftReplyResult></DraftReplyResponse>"
    );

    let empty = answer(vec![], StopReason::MaxTokens);
    let err = p.response_from(&call, &empty).expect_err("empty");
    assert!(matches!(err, OutputError::NoText { .. }));
    let repair = p.repair_request(&call.request, &empty, &err);
    // An empty assistant turn would be refused by Converse.
    assert!(!repair.messages[1].content.is_empty());

    // A summary longer than the element allows is refused with the rule.
    let p = plan("PartsCatalog", "DescribePart");
    let call = p
        .render_request(
            &example("PartsCatalog", "DescribePart"),
            &meta("PartsCatalog", "DescribePart"),
        )
        .expect("render");
    let out = p
        .response_from(
            &call,
            &answer(
                vec![ContentBlock::text("Magnetventil")],
                StopReason::EndTurn,
            ),
        )
        .expect("valid");
    assert_eq!(
        xml::write_element(&out[0]),
        "<ns1:DescribePartResponse xmlns:ns1=\"urn:example:mro:parts-catalog\">\
         <description>Magnetventil</description></ns1:DescribePartResponse>"
    );
}

#[test]
fn text_output_violation_is_fed_back() {
    let p = plan("SupportDesk", "TriageTicket");
    let call = p
        .render_request(
            &example("SupportDesk", "TriageTicket"),
            &meta("SupportDesk", "TriageTicket"),
        )
        .expect("render");
    let long = "x".repeat(501);
    let bad = tool_answer(
        "TriageTicketResponse",
        json!({"TriageTicketResult": {"Priority": "High", "Queue": "Billing",
            "Sentiment": "Neutral", "Rationale": long, "EscalateToHuman": false}}),
    );
    let err = p.response_from(&call, &bad).expect_err("too long");
    let v = &err.violations()[0];
    assert_eq!(v.path, "/TriageTicketResponse/TriageTicketResult/Rationale");
    assert!(v.rule.contains("maxLength=500"), "{}", v.rule);
    let repair = p.repair_request(&call.request, &bad, &err);
    let text: String = match &repair.messages[2].content[0] {
        ContentBlock::ToolResult(r) => format!("{:?}", r.content),
        other => panic!("{other:?}"),
    };
    assert!(text.contains("maxLength=500"), "{text}");
}

#[test]
fn inputs_are_typed_by_the_schema() {
    // A prompt that prints each variable's JSON shows the types.
    let yaml = r#"
service: InvoiceService
operations:
  ClassifyInvoice:
    model: { targets: [ { model: m } ] }
    input:
      total: invoice/totalAmount
      date: invoice/invoiceDate
      numbers: invoice/lines/line[]/lineNumber
      quantities: invoice/lines/line[]/quantity
      source: invoice/@source
      po: invoice/purchaseOrderNumber
      text_total: { path: invoice/totalAmount, as: text }
      vendor_xml: { path: invoice/vendor, as: xml }
      vendor_json: { path: invoice/vendor, as: json }
      codes: invoice/lines/line[]/taxCode
    prompt: "{{ total|tojson }} {{ date|tojson }} {{ numbers|tojson }} {{ quantities|tojson }} {{ source }} {{ po }} {{ text_total }}|{{ vendor_xml }}|{{ vendor_json }}|{{ codes|tojson }}|{{ payload.invoice.currency }}|{{ meta.correlation_id }}"
    output: { structured: true }
"#;
    let set = MappingSet::load(&[(PathBuf::from("t.yaml"), yaml.to_string())], contracts())
        .unwrap_or_else(|e| panic!("{e:?}"));
    let p = set.plan("InvoiceService", "ClassifyInvoice").expect("plan");
    let call = p
        .render_request(
            &example("InvoiceService", "ClassifyInvoice"),
            &meta("InvoiceService", "ClassifyInvoice"),
        )
        .expect("render");
    let prompt = call.request.last_user_text().expect("prompt");
    assert_eq!(
        prompt,
        "5795.3 \"2024-11-18\" [1, 2, 3] [2, 3140, 2.5] OCR 4500183342 5795.30|\
         <vendor>\n          <vendorId>V0042117</vendorId>\n          \
         <name>Nordlicht Rechenzentrum GmbH</name>\n          \
         <vatId>DE287451906</vatId>\n          <country>DE</country>\n        </vendor>|\
         {\"country\":\"DE\",\"name\":\"Nordlicht Rechenzentrum GmbH\",\"vatId\":\"DE287451906\",\"vendorId\":\"V0042117\"}|\
         [\"V1\", \"V1\", \"V1\"]|EUR|urn:uuid:00000000-0000-4000-8000-000000000001"
    );
    let meta_tags = call.request.request_metadata.expect("metadata");
    assert_eq!(meta_tags["service"], "InvoiceService");
    assert_eq!(meta_tags["correlation_id"], CORRELATION_ID);
}

#[test]
fn absent_optional_elements_are_none_and_defaults_apply() {
    let yaml = r#"
service: InvoiceService
operations:
  SubmitInvoiceBatch:
    model: { targets: [ { model: m } ] }
    input:
      pos: invoice[]/purchaseOrderNumber
      sources: invoice[]/@source
      notes: invoice[]/notes
    prompt: "{{ pos|tojson }} {{ sources|tojson }} {{ notes|tojson }} [{{ notes[0] }}]"
"#;
    let set = MappingSet::load(&[(PathBuf::from("t.yaml"), yaml.to_string())], contracts())
        .unwrap_or_else(|e| panic!("{e:?}"));
    let p = set
        .plan("InvoiceService", "SubmitInvoiceBatch")
        .expect("plan");
    let call = p
        .render_request(
            &example("InvoiceService", "SubmitInvoiceBatch"),
            &meta("InvoiceService", "SubmitInvoiceBatch"),
        )
        .expect("render");
    assert_eq!(
        call.request.last_user_text().expect("prompt"),
        "[null, \"4500190017\"] [\"EDI\", \"PORTAL\"] [null, null] []"
    );
}

// ---- load errors ------------------------------------------------------------

fn load_errors(yaml: &str) -> Vec<String> {
    match MappingSet::load(&[(PathBuf::from("m.yaml"), yaml.to_string())], contracts()) {
        Ok(_) => panic!("expected load errors"),
        Err(e) => e.iter().map(MappingError::to_string).collect(),
    }
}

const GOOD_HEAD: &str = "service: SupportDesk
operations:
  TriageTicket:
    model:
      targets: [ { model: m } ]
";

#[test]
fn load_error_bad_input_path() {
    let yaml = format!(
        "{GOOD_HEAD}    input:
      subject: Ticket/Subjekt
    prompt: \"{{{{ subject }}}}\"
    output: {{ structured: true }}
"
    );
    assert_eq!(
        load_errors(&yaml),
        vec![
            "m.yaml:7:16: no element Subjekt at Ticket (expected one of: TicketId, Channel, \
             CustomerTier, Product, Subject, Body, ReceivedAt)"
        ]
    );
}

#[test]
fn load_error_repeated_element_without_brackets_and_bad_attribute() {
    let yaml = "service: InvoiceService
operations:
  ClassifyInvoice:
    model: { targets: [ { model: m } ] }
    input:
      lines: invoice/lines/line/description
      origin: { path: invoice/@origin }
    prompt: x
    output: { structured: true }
";
    assert_eq!(
        load_errors(yaml),
        vec![
            "m.yaml:6:14: line may occur more than once; write line[] to take every occurrence as a list",
            "m.yaml:7:23: no attribute origin at invoice (expected one of: @source)",
        ]
    );
}

#[test]
fn load_error_unknown_output_element() {
    let yaml = "service: SupportDesk
operations:
  DraftReply:
    model: { targets: [ { model: m } ] }
    prompt: x
    output:
      text: DraftReplyResult/Text
      fill:
        DraftReplyResult/Subject: Re
";
    let errors = load_errors(yaml);
    assert_eq!(
        errors[0],
        "m.yaml:7:13: text: no element Text at DraftReplyResult (expected one of: Subject, \
         Body, NeedsAgentReview) in the response"
    );
}

#[test]
fn load_error_unknown_operation_and_service() {
    let yaml = "service: SupportDesk
operations:
  EscalateTicket:
    model: { targets: [ { model: m } ] }
    prompt: x
";
    assert_eq!(
        load_errors(yaml),
        vec![
            "m.yaml:3:3: service SupportDesk has no operation EscalateTicket (known: TriageTicket, \
             SummarizeTicket, DraftReply)"
        ]
    );
    let errors = load_errors("service: HelpDesk\noperations: {}\n");
    assert!(
        errors[0].starts_with("m.yaml:1:10: no service named HelpDesk"),
        "{errors:?}"
    );
}

#[test]
fn load_error_invalid_static_fallback() {
    let yaml = format!(
        "{GOOD_HEAD}    prompt: x
    output: {{ structured: true }}
    on_failure:
      static:
        TriageTicketResult:
          Priority: Whenever
          Queue: General
          Sentiment: Neutral
          Rationale: none
          EscalateToHuman: true
"
    );
    assert_eq!(
        load_errors(&yaml),
        vec![
            "m.yaml:11:21: static response /TriageTicketResult/Priority: enumeration \
             [Low, Normal, High, Urgent] (got \"Whenever\")"
        ]
    );
    // A structural mistake (missing element) points at the enclosing mapping.
    let yaml = format!(
        "{GOOD_HEAD}    prompt: x
    output: {{ structured: true }}
    on_failure:
      static:
        TriageTicketResult:
          Priority: Low
"
    );
    let errors = load_errors(&yaml);
    assert!(
        errors[0].starts_with(
            "m.yaml:11:11: static response /TriageTicketResult: required property Queue missing"
        ),
        "{errors:?}"
    );
}

#[test]
fn load_error_yaml_syntax() {
    // `key: value: more` is not YAML: a plain scalar cannot hold ": ".
    let yaml = format!(
        "{GOOD_HEAD}    prompt: Ticket: {{{{ subject }}}}\n    output: {{ structured: true }}\n"
    );
    let errors = load_errors(&yaml);
    assert_eq!(
        errors,
        vec!["m.yaml:6:19: mapping values are not allowed in this context"]
    );
}

#[test]
fn load_error_unknown_field() {
    let yaml = format!("{GOOD_HEAD}    promt: x\n    output: {{ structured: true }}\n");
    assert_eq!(
        load_errors(&yaml),
        vec![
            "m.yaml:6:5: unknown field `promt`, expected one of mode, idempotency_key, model, \
             input, system, prompt, output, repair_attempts, on_failure, cache, results, faults, \
             variants, sticky_by, shadow, record, batch, steps"
        ]
    );
}

#[test]
fn result_columns_are_checked_against_the_response_schema() {
    let yaml = format!(
        "{GOOD_HEAD}    prompt: x
    output: {{ structured: true }}
    results:
      columns:
        priority: TriageTicketResult/Priority
        status: TriageTicketResult/Queue
        Bad-Name: TriageTicketResult/Queue
        queue: TriageTicketResult/Qeue
        whole: TriageTicketResult
"
    );
    let errors = load_errors(&yaml);
    assert_eq!(errors.len(), 4, "{errors:?}");
    assert!(
        errors[0].starts_with("m.yaml:11:9: result column \"status\""),
        "{errors:?}"
    );
    assert!(
        errors[1].starts_with("m.yaml:12:9: result column \"Bad-Name\""),
        "{errors:?}"
    );
    assert!(
        errors[2].starts_with("m.yaml:13:16: result column queue: no element Qeue"),
        "{errors:?}"
    );
    assert!(
        errors[3].starts_with(
            "m.yaml:14:16: result column whole: TriageTicketResult has child elements"
        ),
        "{errors:?}"
    );

    let good = format!(
        "{GOOD_HEAD}    prompt: x
    output: {{ structured: true }}
    results:
      columns: {{ priority: TriageTicketResult/Priority, escalate: TriageTicketResult/EscalateToHuman }}
"
    );
    let set =
        MappingSet::load(&[(PathBuf::from("m.yaml"), good)], contracts()).unwrap_or_else(|e| {
            panic!(
                "{:?}",
                e.iter().map(MappingError::to_string).collect::<Vec<_>>()
            )
        });
    let plan = set.plan("SupportDesk", "TriageTicket").expect("plan");
    let names: Vec<&str> = plan
        .result_columns()
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["priority", "escalate"]);
}

#[test]
fn load_error_template_syntax_and_unknown_variable() {
    let yaml = format!(
        "{GOOD_HEAD}    input:
      subject: Ticket/Subject
    system: |
      Triage.
      {{{{ subjct }}}}
    prompt: \"{{{{ subject \"
    output: {{ structured: true }}
"
    );
    let errors = load_errors(&yaml);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with("m.yaml:11:13: template syntax error"),
        "{errors:?}"
    );
    assert!(
        errors[1].starts_with("m.yaml:10:7: unknown template variable subjct"),
        "{errors:?}"
    );
}

#[test]
fn load_error_template_failing_on_an_optional_input() {
    // Product is minOccurs="0": `length` of an absent product fails.
    let yaml = format!(
        "{GOOD_HEAD}    input:
      ticket_id: Ticket/TicketId
      product: Ticket/Product
    prompt: |
      Ticket {{{{ ticket_id }}}}
      Product name of {{{{ product|length }}}} characters.
    output: {{ structured: true }}
"
    );
    let errors = load_errors(&yaml);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(
            "m.yaml:11:7: template prompt fails when product (Ticket/Product) is absent"
        ),
        "{errors:?}"
    );
    // Guarded, it loads.
    let guarded = yaml.replace(
        "      Product name of {{ product|length }} characters.",
        "      {% if product is not none %}Product name of {{ product|length }} characters.{% endif %}",
    );
    MappingSet::load(&[(PathBuf::from("m.yaml"), guarded)], contracts())
        .unwrap_or_else(|e| panic!("{e:?}"));
}

#[test]
fn a_template_failing_at_call_time_names_its_mapping_file_and_line() {
    let yaml = format!(
        "{GOOD_HEAD}    input:
      ticket: Ticket
    prompt: |
      Ticket {{{{ ticket.TicketId }}}}
      Subject {{{{ \"%.2f\"|format(ticket.Subject) }}}}
    output: {{ structured: true }}
"
    );
    let set = MappingSet::load(&[(PathBuf::from("m.yaml"), yaml)], contracts())
        .unwrap_or_else(|e| panic!("{e:?}"));
    let plan = set.plan("SupportDesk", "TriageTicket").expect("plan");
    let text = fs::read_to_string("examples/SupportDesk/TriageTicket.xml").expect("sample");
    let payload = request_payload("SupportDesk", "TriageTicket", &text);
    let Err(err) = plan.render_request(&payload, &meta("SupportDesk", "TriageTicket")) else {
        panic!("the template renders");
    };
    let text = err.to_string();
    assert!(
        text.starts_with("m.yaml:10: template prompt failed: "),
        "{text}"
    );
}

#[test]
fn load_error_settings_and_one_way_rules() {
    let yaml = "service: InvoiceService
operations:
  SubmitInvoiceBatch:
    mode: sync
    model:
      targets: []
      temperature: 1.5
    prompt: x
    output: { structured: true }
    on_failure: { static: {} }
";
    assert_eq!(
        load_errors(yaml),
        vec![
            "m.yaml:4:11: SubmitInvoiceBatch is one-way (no response): it can only be async",
            "m.yaml:6:16: at least one model target is required",
            "m.yaml:7:20: temperature must be between 0 and 1",
            "m.yaml:9:13: SubmitInvoiceBatch is one-way (no response): remove `output`",
            "m.yaml:10:17: SubmitInvoiceBatch is one-way: it has no response to fall back to",
        ]
    );
}

#[test]
fn load_error_resilience_settings() {
    let yaml = "service: InvoiceService
operations:
  SubmitInvoiceBatch:
    model:
      targets: [ { model: m, region: eu-west-1 } ]
      retry: false
      deadline_ms: 0
    prompt: x
    on_failure: cache
    cache: { ttl_secs: 0 }
";
    assert_eq!(
        load_errors(yaml),
        vec![
            "m.yaml:9:17: SubmitInvoiceBatch is one-way: it has no response to fall back to",
            "m.yaml:7:20: deadline_ms must be at least 1",
            "m.yaml:10:24: ttl_secs must be at least 1 (leave `cache` out to disable caching)",
        ]
    );
    let unknown =
        format!("{GOOD_HEAD}      retries: 3\n    prompt: x\n    output: {{ structured: true }}\n");
    let errors = load_errors(&unknown);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("m.yaml:6:7: unknown field `retries`"),
        "{errors:?}"
    );
    let policy = "fault, cache or static";
    let bad = format!(
        "{GOOD_HEAD}    prompt: x\n    output: {{ structured: true }}\n    on_failure: stale\n"
    );
    let errors = load_errors(&bad);
    assert!(
        errors.len() == 1 && errors[0].starts_with("m.yaml:8:17:") && errors[0].contains("`cache`"),
        "{policy}: {errors:?}"
    );
}

#[test]
fn load_error_text_output_leaves_required_elements_unfilled() {
    let yaml = "service: SupportDesk
operations:
  DraftReply:
    model: { targets: [ { model: m } ] }
    prompt: x
    output:
      text: DraftReplyResult/Body
      fill:
        DraftReplyResult/NeedsAgentReview: maybe
";
    assert_eq!(
        load_errors(yaml),
        vec![
            "m.yaml:9:44: fill DraftReplyResult/NeedsAgentReview: \"maybe\" breaks not a valid xsd:boolean: \"maybe\"",
            "m.yaml:7:7: text output leaves Subject at /DraftReplyResult unfilled; add it to fill",
        ]
    );
}

#[test]
fn errors_of_several_files_are_all_reported() {
    let a = (
        PathBuf::from("a.yaml"),
        "service: Nope\noperations: {}\n".to_string(),
    );
    let b = (PathBuf::from("b.yaml"), "service: [\n".to_string());
    let errors = MappingSet::load(&[a, b], contracts()).expect_err("errors");
    assert_eq!(errors.len(), 2);
    assert!(errors[0].to_string().starts_with("a.yaml:1:10:"));
    assert!(errors[1].to_string().starts_with("b.yaml:"));
}

// ---- XSD -> JSON Schema -> JSON -> XML ------------------------------------

const PROP_XSD: &str = r#"<?xml version="1.0"?>
<definitions name="Prop" targetNamespace="urn:prop"
    xmlns="http://schemas.xmlsoap.org/wsdl/"
    xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
    xmlns:tns="urn:prop" xmlns:t="urn:prop:types"
    xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <types>
    <xs:schema targetNamespace="urn:prop:types" elementFormDefault="qualified">
      <xs:element name="Everything">
        <xs:complexType>
          <xs:sequence>
            <xs:element name="code" type="t:Code"/>
            <xs:element name="count" type="t:Count"/>
            <xs:element name="amount" type="t:Amount"/>
            <xs:element name="ratio" type="xs:double" minOccurs="0"/>
            <xs:element name="flag" type="xs:boolean"/>
            <xs:element name="day" type="xs:date"/>
            <xs:element name="at" type="xs:dateTime" minOccurs="0"/>
            <xs:element name="kind" type="t:Kind"/>
            <xs:element name="note" type="t:Note" nillable="true"/>
            <xs:element name="tags" type="t:Tags" minOccurs="0"/>
            <xs:element name="item" type="t:Item" minOccurs="1" maxOccurs="4"/>
            <xs:choice>
              <xs:element name="email" type="t:Note"/>
              <xs:element name="phone" type="t:Phone"/>
            </xs:choice>
            <xs:element name="measure" minOccurs="0" maxOccurs="3">
              <xs:complexType>
                <xs:simpleContent>
                  <xs:extension base="t:Amount">
                    <xs:attribute name="unit" type="t:Kind" use="required"/>
                    <xs:attribute name="note" type="xs:string"/>
                  </xs:extension>
                </xs:simpleContent>
              </xs:complexType>
            </xs:element>
            <xs:element name="blob" type="xs:base64Binary" minOccurs="0"/>
            <xs:element name="node" type="t:Node" minOccurs="0"/>
          </xs:sequence>
          <xs:attribute name="version" type="t:Count" use="required"/>
        </xs:complexType>
      </xs:element>
      <xs:complexType name="Item">
        <xs:sequence>
          <xs:element name="sku" type="t:Code"/>
          <xs:element name="qty" type="xs:positiveInteger"/>
          <xs:element name="price" type="t:Amount" minOccurs="0"/>
        </xs:sequence>
        <xs:attribute name="line" type="xs:unsignedShort"/>
      </xs:complexType>
      <xs:complexType name="Node">
        <xs:sequence>
          <xs:element name="label" type="t:Note"/>
          <xs:element name="child" type="t:Node" minOccurs="0" maxOccurs="2"/>
        </xs:sequence>
      </xs:complexType>
      <xs:simpleType name="Code">
        <xs:restriction base="xs:string"><xs:pattern value="[A-Z]{2}-[0-9]{3,5}"/></xs:restriction>
      </xs:simpleType>
      <xs:simpleType name="Phone">
        <xs:restriction base="xs:string"><xs:pattern value="\+[0-9]{6,12}"/></xs:restriction>
      </xs:simpleType>
      <xs:simpleType name="Count">
        <xs:restriction base="xs:int"><xs:minInclusive value="1"/><xs:maxExclusive value="50"/></xs:restriction>
      </xs:simpleType>
      <xs:simpleType name="Amount">
        <xs:restriction base="xs:decimal"><xs:totalDigits value="9"/><xs:fractionDigits value="2"/><xs:minInclusive value="-1000"/></xs:restriction>
      </xs:simpleType>
      <xs:simpleType name="Kind">
        <xs:restriction base="xs:token"><xs:enumeration value="kg"/><xs:enumeration value="m"/><xs:enumeration value="pcs"/></xs:restriction>
      </xs:simpleType>
      <xs:simpleType name="Note">
        <xs:restriction base="xs:string"><xs:minLength value="2"/><xs:maxLength value="40"/></xs:restriction>
      </xs:simpleType>
      <xs:simpleType name="Tags">
        <xs:restriction>
          <xs:simpleType><xs:list itemType="t:Kind"/></xs:simpleType>
          <xs:maxLength value="3"/>
        </xs:restriction>
      </xs:simpleType>
    </xs:schema>
  </types>
  <message name="In"><part name="parameters" element="t:Everything"/></message>
  <message name="Out"><part name="parameters" element="t:Everything"/></message>
  <portType name="P"><operation name="Echo"><input message="tns:In"/><output message="tns:Out"/></operation></portType>
  <binding name="B" type="tns:P">
    <soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
    <operation name="Echo"><soap:operation soapAction="urn:echo"/>
      <input><soap:body use="literal"/></input><output><soap:body use="literal"/></output></operation>
  </binding>
  <service name="Prop"><port name="P" binding="tns:B"><soap:address location="http://x/"/></port></service>
</definitions>
"#;

fn prop_contracts() -> &'static ContractSet {
    static SET: OnceLock<ContractSet> = OnceLock::new();
    SET.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("soapgate-mapping-prop-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("temp dir");
        fs::write(dir.join("prop.wsdl"), PROP_XSD).expect("write wsdl");
        soapgate::files::load_contracts(&dir).unwrap_or_else(|e| panic!("prop contract: {e:?}"))
    })
}

/// Every response element of the examples plus the feature-rich one above.
fn schema_cases() -> Vec<(&'static ContractSet, String, String)> {
    let mut v = Vec::new();
    for set in [contracts(), prop_contracts()] {
        for (_, svc) in set.services() {
            for op in &svc.operations {
                v.push((set, svc.name.clone(), op.name.clone()));
            }
        }
    }
    v
}

fn assert_valid_json(schema: &Value, value: &Value) {
    let validator = jsonschema::validator_for(schema).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| e.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "{value} breaks its own schema: {errors:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// XSD -> JSON Schema -> a schema-valid JSON value (the emulator's
    /// generator, which is what `serve --emulator` answers with) -> XML,
    /// which the XSD accepts. Requests are covered too: any payload the
    /// schema describes must convert.
    #[test]
    fn schema_valid_json_becomes_valid_xml(case in 0usize..64, seed in any::<u64>()) {
        let cases = schema_cases();
        let (set, service, operation) = &cases[case % cases.len()];
        let (contract, svc) = set.service(service).expect("service");
        let op = svc.operation(operation).expect("operation");
        for payload in [Some(&op.input), op.output.as_ref()].into_iter().flatten() {
            let schema = json_schema::for_payload(&contract.schemas, payload).expect("schema");
            let value = soapgate::emulator::schema::sample(&schema, seed);
            assert_valid_json(&schema, &value);
            let xml = payload_from_json(&contract.schemas, payload, &value)
                .unwrap_or_else(|e| panic!("{service}.{operation}: {value} does not convert: {e:?}"));
            let violations = validate_payload(&contract.schemas, payload, &xml, &NsScope::new());
            prop_assert!(
                violations.is_empty(),
                "{}.{}: {} -> {} breaks {:?}",
                service, operation, value,
                xml.iter().map(xml::write_element).collect::<String>(),
                violations
            );
            // And back: XML -> JSON -> XML is stable.
            let again = soapgate::mapping::payload_to_json(&contract.schemas, payload, &xml);
            let xml2 = payload_from_json(&contract.schemas, payload, &again).expect("round trip");
            prop_assert_eq!(
                xml.iter().map(xml::write_element).collect::<String>(),
                xml2.iter().map(xml::write_element).collect::<String>()
            );
        }
    }
}

#[test]
fn json_schema_carries_facets_and_occurrences() {
    let (contract, _) = prop_contracts().service("Prop").expect("svc");
    let s = json_schema::for_element(
        &contract.schemas,
        &QName::new("urn:prop:types", "Everything"),
    );
    let p = &s["properties"];
    assert_eq!(p["code"]["pattern"], "^(?:[A-Z]{2}-[0-9]{3,5})$");
    assert_eq!(
        p["count"],
        json!({"type": "integer", "minimum": 1, "exclusiveMaximum": 50})
    );
    assert_eq!(p["amount"]["multipleOf"], json!(0.01));
    assert_eq!(p["amount"]["minimum"], json!(-1000));
    assert_eq!(p["kind"], json!({"enum": ["kg", "m", "pcs"]}));
    assert_eq!(p["note"]["type"], json!(["string", "null"]));
    assert_eq!(p["tags"]["type"], "array");
    assert_eq!(p["tags"]["maxItems"], 3);
    assert_eq!(p["item"]["minItems"], 1);
    assert_eq!(p["item"]["maxItems"], 4);
    assert_eq!(p["@version"]["type"], "integer");
    assert_eq!(p["measure"]["items"]["required"], json!(["@unit", "#text"]));
    assert_eq!(p["day"]["format"], "date");
    assert_eq!(
        p["node"]["properties"]["child"]["items"]["$ref"],
        "#/$defs/Node"
    );
    assert!(s["$defs"]["Node"].is_object());
    assert_eq!(s["oneOf"][0]["required"], json!(["email"]));
    let required = s["required"].as_array().expect("required");
    assert!(required.contains(&json!("@version")) && !required.contains(&json!("ratio")));

    // null on a nillable element is xsi:nil.
    let el = json_to_xml(
        &contract.schemas,
        &QName::new("urn:prop:types", "Everything"),
        &json!({"@version": 2, "code": "AB-123", "count": 3, "amount": 1.5, "flag": true,
            "day": "2024-01-02", "kind": "kg", "note": null, "item": [{"sku": "CD-4567", "qty": 2, "@line": 1}],
            "phone": "+49123456", "measure": {"#text": 2.25, "@unit": "kg"}}),
    )
    .expect("converts");
    assert_eq!(
        xml::write_element(&el),
        "<Everything xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns=\"urn:prop:types\" version=\"2\">\
         <code>AB-123</code><count>3</count><amount>1.5</amount><flag>true</flag><day>2024-01-02</day>\
         <kind>kg</kind><note xsi:nil=\"true\"/><item line=\"1\"><sku>CD-4567</sku><qty>2</qty></item>\
         <phone>+49123456</phone><measure unit=\"kg\">2.25</measure></Everything>"
    );
}

#[test]
fn payload_xml_is_available_to_templates_that_use_it() {
    let yaml = r#"
service: InvoiceService
operations:
  ClassifyInvoice:
    model: { targets: [ { model: m } ] }
    system: "{{ payload_xml }}"
    prompt: "Classify."
    output: { structured: true }
"#;
    let set = MappingSet::load(&[(PathBuf::from("t.yaml"), yaml.to_string())], contracts())
        .unwrap_or_else(|e| panic!("{e:?}"));
    let p = set.plan("InvoiceService", "ClassifyInvoice").expect("plan");
    let call = p
        .render_request(
            &example("InvoiceService", "ClassifyInvoice"),
            &meta("InvoiceService", "ClassifyInvoice"),
        )
        .expect("render");
    let system = serde_json::to_value(&call.request.system)
        .expect("json")
        .to_string();
    assert!(system.contains("ClassifyInvoice"), "{system}");
    assert!(system.contains("Nordlicht Rechenzentrum GmbH"), "{system}");
}

#[test]
fn load_error_record_sample_out_of_range_and_unknown_redact_path() {
    let yaml = format!(
        "{GOOD_HEAD}    prompt: x
    output: {{ structured: true }}
    record: {{ sample: 1.5 }}
  DraftReply:
    model: {{ targets: [ {{ model: m }} ] }}
    prompt: x
    output:
      text: DraftReplyResult/Body
      fill: {{ DraftReplyResult/Subject: x, DraftReplyResult/NeedsAgentReview: true }}
    record:
      redact: [CustomerName, Customer/Name]
"
    );
    assert_eq!(
        load_errors(&yaml),
        vec![
            "m.yaml:8:23: record: sample must be between 0 and 1",
            "m.yaml:16:30: record: redact: no element Customer at the payload root (expected \
             one of: TicketId, CustomerName, Subject, CustomerMessage, AgentNotes, Tone, Language)",
        ]
    );
}

#[test]
fn record_redacts_every_value_under_a_path_and_defaults_to_every_call() {
    let yaml = "service: SupportDesk
operations:
  TriageTicket:
    model: { targets: [ { model: m } ] }
    prompt: x
    output: { structured: true }
    record: { redact: [Ticket/Subject, Ticket/Body] }
  DraftReply:
    model: { targets: [ { model: m } ] }
    prompt: x
    output:
      text: DraftReplyResult/Body
      fill: { DraftReplyResult/Subject: x, DraftReplyResult/NeedsAgentReview: true }
";
    let set = MappingSet::load(&[(PathBuf::from("t.yaml"), yaml.to_string())], contracts())
        .unwrap_or_else(|e| panic!("{e:?}"));
    let triage = set.plan("SupportDesk", "TriageTicket").expect("plan");
    assert_eq!(triage.record().map(|r| r.sample), Some(1.0));
    let values = triage.redacted_values(&example("SupportDesk", "TriageTicket"));
    assert_eq!(values.len(), 2, "{values:?}");
    assert!(
        values[0].starts_with("Payroll export failing"),
        "{values:?}"
    );
    assert!(
        values[1].ends_with("Maria Jensen, HR operations"),
        "{values:?}"
    );
    assert_eq!(
        triage.mapping_sha256(),
        soapgate::tenants::sha256_hex(yaml.as_bytes())
    );
    let draft = set.plan("SupportDesk", "DraftReply").expect("plan");
    assert!(draft.record().is_none());
    assert!(
        draft
            .redacted_values(&example("SupportDesk", "DraftReply"))
            .is_empty()
    );
}

/// InvoiceService with ClassifyInvoice (sync, request-response) on
/// Anthropic model `first`, then `rest` under the operation
/// (four-space indent).
fn classify_with(first: &str, rest: &str) -> String {
    format!(
        "service: InvoiceService
operations:
  ClassifyInvoice:
    model: {{ targets: [ {{ model: {first} }}, {{ model: m2 }} ] }}
    prompt: x
    output: {{ structured: true }}
{rest}"
    )
}

const HAIKU: &str = "anthropic.claude-3-haiku-20240307-v1:0";

#[test]
fn batch_setting_is_read_with_its_defaults_on_a_sync_operation() {
    let full = classify_with(
        "m",
        "    batch:
      min_records: 200
      max_records: 50000
      max_wait_secs: 600
      role_arn: arn:aws:iam::123456789012:role/BedrockBatch
      s3_uri: s3://bucket/soapgate/batches/
      model: anthropic.claude-3-haiku-20240307-v1:0
",
    );
    let set = MappingSet::load(&[(PathBuf::from("t.yaml"), full)], contracts())
        .unwrap_or_else(|e| panic!("{e:?}"));
    let plan = set.plan("InvoiceService", "ClassifyInvoice").expect("plan");
    assert_eq!(
        plan.batch(),
        Some(&soapgate::mapping::BatchPlan {
            min_records: 200,
            max_records: 50_000,
            max_wait: std::time::Duration::from_secs(600),
            role_arn: "arn:aws:iam::123456789012:role/BedrockBatch".to_string(),
            s3_uri: "s3://bucket/soapgate/batches".to_string(),
            model: HAIKU.to_string(),
        })
    );

    // Defaults, and the model is the operation's first target. Variants are
    // allowed and have no batch of their own.
    let defaults = classify_with(
        HAIKU,
        "    variants:
      canary: { weight: 10, model: { targets: [ { model: m3 } ] } }
    batch: { role_arn: \"arn:aws:iam::1:role/b\", s3_uri: \"s3://b\" }
",
    );
    let set = MappingSet::load(&[(PathBuf::from("t.yaml"), defaults)], contracts())
        .unwrap_or_else(|e| panic!("{e:?}"));
    let plan = set.plan("InvoiceService", "ClassifyInvoice").expect("plan");
    let batch = plan.batch().expect("batch");
    assert_eq!(
        (
            batch.min_records,
            batch.max_records,
            batch.max_wait.as_secs()
        ),
        (100, 10_000, 3600)
    );
    assert_eq!(
        (
            batch.role_arn.as_str(),
            batch.s3_uri.as_str(),
            batch.model.as_str()
        ),
        ("arn:aws:iam::1:role/b", "s3://b", HAIKU)
    );
    assert_eq!(plan.variants().len(), 1);
    assert!(plan.variants()[0].plan().batch().is_none());

    // One-way (async) operations batch too; without `batch:` there is none.
    let yaml = format!(
        "service: InvoiceService
operations:
  SubmitInvoiceBatch:
    model: {{ targets: [ {{ model: eu.{HAIKU} }} ] }}
    prompt: x
    batch: {{ role_arn: \"arn:aws:iam::1:role/b\", s3_uri: \"s3://b/p\" }}
  ClassifyInvoice:
    model: {{ targets: [ {{ model: {HAIKU} }} ] }}
    prompt: x
    output: {{ structured: true }}
"
    );
    let set = MappingSet::load(&[(PathBuf::from("t.yaml"), yaml)], contracts())
        .unwrap_or_else(|e| panic!("{e:?}"));
    let submit = set
        .plan("InvoiceService", "SubmitInvoiceBatch")
        .expect("plan");
    assert_eq!(
        submit.batch().map(|b| b.model.as_str()),
        Some(format!("eu.{HAIKU}").as_str())
    );
    let classify = set.plan("InvoiceService", "ClassifyInvoice").expect("plan");
    assert!(classify.batch().is_none());
}

#[test]
fn load_error_batch_record_counts_and_wait() {
    let yaml = classify_with(
        HAIKU,
        "    batch:
      min_records: 99
      max_records: 50001
      max_wait_secs: 0
      role_arn: arn:aws:iam::1:role/b
      s3_uri: s3://b
",
    );
    assert_eq!(
        load_errors(&yaml),
        vec![
            "m.yaml:8:20: batch: min_records must be at least 100 (Bedrock's minimum records \
             per batch-inference job)",
            "m.yaml:9:20: batch: max_records must be at most 50000 (Bedrock's most records \
             per batch-inference job)",
            "m.yaml:10:22: batch: max_wait_secs must be at least 1",
        ]
    );
    let yaml = classify_with(
        HAIKU,
        "    batch: { min_records: 500, max_records: 499, role_arn: \"arn:aws:iam::1:role/b\", s3_uri: \"s3://b\" }
",
    );
    assert_eq!(
        load_errors(&yaml),
        vec!["m.yaml:7:45: batch: max_records must be at least min_records (500)"]
    );
    let yaml = classify_with(
        HAIKU,
        "    batch: { min_records: 20000, role_arn: \"arn:aws:iam::1:role/b\", s3_uri: \"s3://b\" }
",
    );
    assert_eq!(
        load_errors(&yaml),
        vec![
            "m.yaml:7:27: batch: min_records is above max_records (default 10000): \
             set max_records too"
        ]
    );
}

#[test]
fn load_error_batch_role_and_s3_location() {
    let yaml = classify_with(
        HAIKU,
        "    batch:
      role_arn: BedrockBatch
      s3_uri: https://bucket/prefix
",
    );
    assert_eq!(
        load_errors(&yaml),
        vec![
            "m.yaml:8:17: batch: role_arn \"BedrockBatch\" is not an IAM role ARN \
             (arn:...:role/name)",
            "m.yaml:9:15: batch: s3_uri \"https://bucket/prefix\" is not an S3 location \
             (s3://bucket/prefix)",
        ]
    );
    let yaml = classify_with(
        HAIKU,
        "    batch:
      role_arn: arn:aws:iam::1:user/b
      s3_uri: s3:///prefix
",
    );
    assert_eq!(
        load_errors(&yaml),
        vec![
            "m.yaml:8:17: batch: role_arn \"arn:aws:iam::1:user/b\" is not an IAM role ARN \
             (arn:...:role/name)",
            "m.yaml:9:15: batch: s3_uri \"s3:///prefix\" is not an S3 location \
             (s3://bucket/prefix)",
        ]
    );
}

#[test]
fn load_error_batch_missing_and_unknown_keys() {
    let yaml = classify_with(HAIKU, "    batch:\n      s3_uri: s3://b\n");
    let errors = load_errors(&yaml);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("m.yaml:8:") && errors[0].contains("missing field `role_arn`"),
        "{errors:?}"
    );
    let yaml = classify_with(HAIKU, "    batch:\n      role_arn: arn:aws:iam::1:role/b\n");
    let errors = load_errors(&yaml);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("m.yaml:8:") && errors[0].contains("missing field `s3_uri`"),
        "{errors:?}"
    );
    let yaml = classify_with(
        HAIKU,
        "    batch:
      role_arn: arn:aws:iam::1:role/b
      s3_uri: s3://b
      max_wait_ms: 5
",
    );
    assert_eq!(
        load_errors(&yaml),
        vec![
            "m.yaml:10:7: unknown field `max_wait_ms`, expected one of min_records, \
             max_records, max_wait_secs, role_arn, s3_uri, model"
        ]
    );
}

#[test]
fn load_error_batch_needs_an_anthropic_model_and_no_guardrail() {
    // The first target decides when `batch: model` is not set.
    let yaml = classify_with(
        "m",
        "    batch: { role_arn: \"arn:aws:iam::1:role/b\", s3_uri: \"s3://b\" }
",
    );
    assert_eq!(
        load_errors(&yaml),
        vec![
            "m.yaml:7:12: batch: the operation's first target m is not an Anthropic model: \
             batch records are built in Anthropic's native Messages format only \
             (set batch: model)"
        ]
    );
    let yaml = classify_with(
        HAIKU,
        "    batch:
      role_arn: arn:aws:iam::1:role/b
      s3_uri: s3://b
      model: amazon.nova-lite-v1:0
",
    );
    assert_eq!(
        load_errors(&yaml),
        vec![
            "m.yaml:10:14: batch: model amazon.nova-lite-v1:0 is not an Anthropic model: \
             batch records are built in Anthropic's native Messages format only"
        ]
    );
    let yaml = format!(
        "service: InvoiceService
operations:
  ClassifyInvoice:
    model:
      targets: [ {{ model: {HAIKU} }} ]
      guardrail: {{ id: g1, version: \"1\" }}
    prompt: x
    output: {{ structured: true }}
    batch:
      role_arn: arn:aws:iam::1:role/b
      s3_uri: s3://b
"
    );
    assert_eq!(
        load_errors(&yaml),
        vec![
            "m.yaml:10:7: batch: the operation has a guardrail (line 6), and a batch record \
             has no place for a guardrail"
        ]
    );
}

#[test]
fn load_error_batch_in_a_variant() {
    let yaml = classify_with(
        HAIKU,
        "    variants:
      canary:
        weight: 10
        batch: { role_arn: \"arn:aws:iam::1:role/b\", s3_uri: \"s3://b\" }
",
    );
    assert_eq!(
        load_errors(&yaml),
        vec![
            "m.yaml:10:9: unknown field `batch`, expected one of weight, model, system, \
             prompt, output, repair_attempts"
        ]
    );
}
