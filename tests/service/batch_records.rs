//! soapgate's batch records through the emulator's batch-inference control
//! plane, end to end: 120 InvoiceService.ClassifyInvoice requests (each
//! with its own vendor and notes) rendered by the example mapping, made
//! records by `bedrock::batch::record_for`, uploaded to moto's S3 with the
//! real aws-sdk-s3, run as a job created with the real aws-sdk-bedrock,
//! and every output line read back by `bedrock::batch::answer_from`,
//! matched to its request by `recordId` (the output is shuffled) and
//! turned into the operation's response by the plan's `answer_from`, as
//! an on-demand answer is. A scripted record error comes back as a
//! `RecordError` for that record alone.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use aws_sdk_bedrock::types::ModelInvocationJobStatus;
use serde_json::Value;
use soapgate::bedrock::batch::{RecordError, answer_from, record_for, record_id};
use soapgate::contract::{ContractSet, validate_payload};
use soapgate::mapping::{Answer, CallMeta, MappingSet, RenderedCall};
use soapgate::soap::parse_envelope;
use soapgate::xml::{self, Limits};

use super::batch_emulator::{Rig, job_id};

const RECORDS: usize = 120;

fn example_dir(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

/// The example ClassifyInvoice request with its vendor, notes and total
/// made the `i`th's own.
fn request_xml(i: usize) -> String {
    let text = std::fs::read_to_string(example_dir("examples/InvoiceService/ClassifyInvoice.xml"))
        .expect("the example request");
    let swap = |text: String, from: &str, to: &str| {
        assert!(text.contains(from), "the example request has {from}");
        text.replace(from, to)
    };
    let text = swap(
        text,
        "<name>Nordlicht Rechenzentrum GmbH</name>",
        &format!("<name>Vendor {i:04} GmbH</name>"),
    );
    let text = swap(
        text,
        "Recurring monthly invoice; contract DC-2021-009.",
        &format!("Batch item BATCH-{i:04}; contract DC-2021-{i:03}."),
    );
    swap(
        text,
        "<totalAmount>5795.30</totalAmount>",
        &format!("<totalAmount>{}.30</totalAmount>", 5000 + i),
    )
}

fn render(contracts: &ContractSet, mappings: &MappingSet, i: usize) -> RenderedCall {
    let text = request_xml(i);
    let doc = xml::read(text.as_bytes(), None, &Limits::default()).expect("request XML");
    let env = parse_envelope(doc.root).expect("envelope");
    let (contract, service) = contracts.service("InvoiceService").expect("service");
    let op = service.operation("ClassifyInvoice").expect("operation");
    let violations = validate_payload(&contract.schemas, &op.input, &env.body, &env.scope);
    assert!(violations.is_empty(), "request {i} invalid: {violations:?}");
    let correlation_id = format!("urn:uuid:00000000-0000-4000-8000-{i:012}");
    mappings
        .plan("InvoiceService", "ClassifyInvoice")
        .expect("ClassifyInvoice is mapped")
        .render_request(
            &env.body,
            &CallMeta {
                service: "InvoiceService",
                operation: "ClassifyInvoice",
                correlation_id: &correlation_id,
            },
        )
        .expect("the request renders")
}

#[tokio::test]
async fn records_of_an_example_operation_come_back_as_its_valid_responses() {
    let test = "records_of_an_example_operation_come_back_as_its_valid_responses";
    let script = r#"
rules:
  - prompt: "BATCH-0042"
    error: { kind: model_error, message: "The model could not answer item 42" }
batch: { delay_ms: 20 }
"#;
    let Some(rig) = Rig::start(test, script).await else {
        return;
    };
    let contracts = soapgate::files::load_contracts(&example_dir("wsdl")).expect("contracts");
    let mappings =
        soapgate::files::load_mappings(&example_dir("mappings"), &contracts).expect("mappings");
    let plan = mappings
        .plan("InvoiceService", "ClassifyInvoice")
        .expect("mapped");

    let calls: BTreeMap<String, RenderedCall> = (0..RECORDS)
        .map(|i| (format!("inv-{i:04}"), render(&contracts, &mappings, i)))
        .collect();
    let model = calls["inv-0000"].targets[0].model.clone();
    let lines: Vec<String> = calls
        .iter()
        .map(|(id, call)| {
            record_for(id, &model, &call.request)
                .expect("ClassifyInvoice makes a record")
                .to_string()
        })
        .collect();
    rig.upload("in/classify.jsonl", &lines).await;
    let arn = rig
        .create("classify", "in/classify.jsonl")
        .model_id(&model)
        .send()
        .await
        .expect("the job is created")
        .job_arn()
        .to_string();
    let (job, _) = rig.until_ended(&arn).await;
    assert_eq!(
        job.status(),
        Some(&ModelInvocationJobStatus::PartiallyCompleted)
    );

    let key = format!("out/{}/classify.jsonl.out", job_id(&arn));
    let output = rig.read(&key).await.unwrap_or_else(|| panic!("no {key}"));
    let mut order = Vec::new();
    let mut answered = BTreeSet::new();
    let mut failed = Vec::new();
    for text in output.lines().filter(|l| !l.trim().is_empty()) {
        let line: Value = serde_json::from_str(text).expect("an output line is JSON");
        let id = record_id(&line).expect("a recordId").to_string();
        order.push(id.clone());
        let call = calls
            .get(&id)
            .unwrap_or_else(|| panic!("{id} is no record of ours"));
        match answer_from(&line) {
            Ok(response) => {
                let answer = plan
                    .answer_from(call, &response)
                    .unwrap_or_else(|e| panic!("{id}: {e}: {:?}", e.violations()));
                let Answer::Response(payload) = answer else {
                    panic!("{id}: a fault, not the response");
                };
                let (contract, service) = contracts.service("InvoiceService").expect("service");
                let op = service.operation("ClassifyInvoice").expect("operation");
                let expected = op.output.as_ref().expect("a response message");
                let violations =
                    validate_payload(&contract.schemas, expected, &payload, &xml::NsScope::new());
                assert!(violations.is_empty(), "{id}: {violations:?}");
                assert!(answered.insert(id.clone()), "{id} answered twice");
            }
            Err(e) => failed.push(e),
        }
    }
    assert_eq!(
        failed,
        vec![RecordError::Failed {
            record_id: Some("inv-0042".into()),
            code: Some(424),
            message: "The model could not answer item 42".into(),
        }]
    );
    assert!(failed[0].is_transient());
    assert_eq!(answered.len(), RECORDS - 1);
    assert!(!answered.contains("inv-0042"));
    let sorted: Vec<String> = {
        let mut s = order.clone();
        s.sort();
        s
    };
    assert_ne!(
        order, sorted,
        "the output is shuffled, so matching by order would fail"
    );
}
