//! Batch records of the example operations: each golden case's request
//! (`tests/data/mapping/<Service>.<Operation>/request.xml`) rendered with
//! the example mappings, then made a batch record for the operation's first
//! target by `bedrock::batch::record_for`, compared with
//! `tests/data/batch/<Service>.<Operation>.json`; the operations a record
//! cannot carry are refused with their reason.
//!
//! Set `UPDATE_GOLDEN=1` to rewrite the golden files (a reviewed change).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use soapgate::bedrock::batch::{Unsupported, record_for};
use soapgate::contract::{ContractSet, validate_payload};
use soapgate::mapping::{CallMeta, MappingSet, RenderedCall};
use soapgate::soap::parse_envelope;
use soapgate::xml::{self, Limits};

fn contracts() -> &'static ContractSet {
    static SET: OnceLock<ContractSet> = OnceLock::new();
    SET.get_or_init(|| {
        soapgate::files::load_contracts(Path::new("wsdl"))
            .unwrap_or_else(|e| panic!("example contracts: {e:?}"))
    })
}

fn mappings() -> &'static MappingSet {
    static SET: OnceLock<MappingSet> = OnceLock::new();
    SET.get_or_init(|| {
        let mut paths: Vec<PathBuf> = fs::read_dir("mappings")
            .expect("mappings/")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        paths.sort();
        let files: Vec<(PathBuf, String)> = paths
            .into_iter()
            .map(|p| {
                let text = fs::read_to_string(&p).expect("mapping file");
                (p, text)
            })
            .collect();
        MappingSet::load(&files, contracts())
            .unwrap_or_else(|errors| panic!("example mappings do not load: {errors:?}"))
    })
}

/// The case's example request rendered with its operation's mapping.
fn rendered(case: &str) -> RenderedCall {
    let (service, operation) = case.split_once('.').expect("case is Service.Operation");
    let path = Path::new("tests/data/mapping")
        .join(case)
        .join("request.xml");
    let text = fs::read_to_string(&path).expect("request.xml");
    let doc = xml::read(text.as_bytes(), None, &Limits::default()).expect("request XML");
    let env = parse_envelope(doc.root).expect("envelope");
    let (contract, svc) = contracts().service(service).expect("service");
    let op = svc.operation(operation).expect("operation");
    let violations = validate_payload(&contract.schemas, &op.input, &env.body, &env.scope);
    assert!(
        violations.is_empty(),
        "{case}: request invalid: {violations:?}"
    );
    let plan = mappings()
        .plan(service, operation)
        .unwrap_or_else(|| panic!("{case} is not mapped"));
    plan.render_request(
        &env.body,
        &CallMeta {
            service,
            operation,
            correlation_id: "urn:uuid:00000000-0000-4000-8000-000000000001",
        },
    )
    .unwrap_or_else(|e| panic!("{case}: render: {e}"))
}

fn record(case: &str) -> Result<serde_json::Value, Unsupported> {
    let call = rendered(case);
    record_for(&format!("{case}-1"), &call.targets[0].model, &call.request)
}

fn check(case: &str) {
    let record = record(case).unwrap_or_else(|e| panic!("{case}: {e}"));
    let mut actual = serde_json::to_string_pretty(&record).expect("json");
    actual.push('\n');
    let path = Path::new("tests/data/batch").join(format!("{case}.json"));
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        fs::create_dir_all(path.parent().expect("folder")).expect("tests/data/batch");
        fs::write(&path, &actual).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    let expected = fs::read_to_string(&path).unwrap_or_else(|e| {
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

/// Structured output: the forced tool with the response's JSON Schema.
#[test]
fn batch_record_invoice_classify() {
    check("InvoiceService.ClassifyInvoice");
}

/// A PDF attachment as a base64 document source.
#[test]
fn batch_record_invoice_extract_fields() {
    check("InvoiceService.ExtractInvoiceFields");
}

/// Text output with a stop sequence and a temperature.
#[test]
fn batch_record_support_summarize() {
    check("SupportDesk.SummarizeTicket");
}

/// `additionalModelRequestFields` (`top_k`) merged into the body.
#[test]
fn batch_record_support_draft_reply() {
    check("SupportDesk.DraftReply");
}

/// A cross-region inference profile ARN is an Anthropic model.
#[test]
fn batch_record_parts_suggest_substitute() {
    check("PartsCatalog.SuggestSubstitute");
}

#[test]
fn a_guarded_operation_has_no_batch_record() {
    let err = record("SupportDesk.TriageTicket").unwrap_err();
    assert!(err.to_string().contains("guardrail"), "{err}");
}

#[test]
fn a_record_keeps_the_tool_schema_as_the_converse_request_sends_it() {
    let call = rendered("InvoiceService.ClassifyInvoice");
    let record = record_for("r", &call.targets[0].model, &call.request).expect("a record");
    let tool = call.request.forced_tool().expect("a forced tool");
    assert_eq!(
        record["modelInput"]["tools"][0]["input_schema"],
        *tool.schema()
    );
    assert_eq!(
        record["modelInput"]["tools"][0]["input_schema"].to_string(),
        tool.schema().to_string()
    );
}
