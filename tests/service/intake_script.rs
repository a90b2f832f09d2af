//! `examples/DocumentIntake/emulator.yaml`, loaded with the emulator's own
//! loader and served by the emulator on a port-0 listener, answers each
//! step of the document-intake samples as its comments say: the real SDK
//! client sends each step's prompt with the step's tool, whose schema is
//! made from the contract's type as a mapping would make it, and every
//! answer must be the scripted one and satisfy that schema.

use serde_json::{Value, json};
use soapgate::bedrock::{BedrockClient, BedrockSettings};
use soapgate::contract::xsd::SchemaSet;
use soapgate::converse::{
    ContentBlock, ModelClient, ModelError, Request, StopReason, SystemBlock, ToolConfig, ToolSpec,
};
use soapgate::emulator::{self, Script};
use soapgate::mapping::json_schema;
use soapgate::xml::{self, Element, QName};

use crate::common::app::repo_root;

const HAIKU: &str = "anthropic.claude-3-haiku-20240307-v1:0";
const DI: &str = "urn:example:document-intake";
const SOAP11: &str = "http://schemas.xmlsoap.org/soap/envelope/";

/// A sample, what the script must make of it, and the invoice fields it
/// must extract (invoices only).
struct Case {
    file: &'static str,
    kind: &'static str,
    categories: &'static [&'static str],
    invoice: Option<Value>,
}

fn cases() -> Vec<Case> {
    let invoice = json!({
        "InvoiceNumber": "INV-2026-0815",
        "Supplier": "Brandt Befestigungstechnik GmbH",
        "IssueDate": "2026-11-30",
        "Total": 1660.05,
        "Currency": "EUR"
    });
    vec![
        Case {
            file: "ProcessDocument.xml",
            kind: "INVOICE",
            categories: &["GOODS", "SERVICES", "FREIGHT"],
            invoice: Some(invoice.clone()),
        },
        Case {
            file: "QueueDocument.xml",
            kind: "INVOICE",
            categories: &["GOODS", "SERVICES", "FREIGHT"],
            invoice: Some(invoice),
        },
        Case {
            file: "branches/ProcessDocument-receipt.xml",
            kind: "RECEIPT",
            categories: &["GOODS", "OTHER"],
            invoice: None,
        },
        Case {
            file: "branches/ProcessDocument-letter.xml",
            kind: "OTHER",
            categories: &[],
            invoice: None,
        },
    ]
}

/// The request payload of a sample envelope.
fn payload(file: &str) -> Element {
    let path = repo_root().join("examples/DocumentIntake").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc = xml::read_str(&text, &xml::Limits::default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    doc.root
        .child(SOAP11, "Body")
        .and_then(|b| b.elements().next())
        .cloned()
        .unwrap_or_else(|| panic!("{}: no payload", path.display()))
}

/// The JSON Schema of a named type of the DocumentIntake contract.
fn type_schema(schemas: &SchemaSet, name: &str) -> Value {
    let id = schemas
        .type_id(&QName::new(DI, name))
        .unwrap_or_else(|| panic!("the contract defines no type {name}"));
    json_schema::for_type(schemas, id)
}

/// An object with one required property of the given schema.
fn one_property(name: &str, schema: Value) -> Value {
    json!({
        "type": "object",
        "properties": { name: schema },
        "required": [name],
        "additionalProperties": false
    })
}

/// A step call: a system text (so prompts are not only the user's text),
/// the step's prompt and its tool, forced.
fn step(prompt: String, tool: &str, schema: &Value) -> Request {
    let mut request = Request::user_text(prompt);
    request.system.push(SystemBlock::Text(
        "You work in the mail room of a machine builder.".into(),
    ));
    request.tool_config = Some(ToolConfig::forced(ToolSpec::new(
        tool,
        None,
        schema.clone(),
    )));
    request
}

/// The tool input the model answered with, after checking it called
/// `tool` with input valid against `schema`.
async fn call(client: &BedrockClient, request: &Request, tool: &str, schema: &Value) -> Value {
    let response = client
        .converse(HAIKU, request)
        .await
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    assert_eq!(response.stop_reason, StopReason::ToolUse, "{tool}");
    let [ContentBlock::ToolUse(used)] = response.output.message.content.as_slice() else {
        panic!("{tool}: {:?}", response.output.message.content);
    };
    assert_eq!(used.name, tool);
    let validator = jsonschema::validator_for(schema).expect("the schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&used.input)
        .map(|e| e.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "{tool}: {} breaks {schema}: {errors:?}",
        used.input
    );
    used.input.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_intake_script_answers_every_step_as_the_document_says() {
    let script = Script::load(&repo_root().join("examples/DocumentIntake/emulator.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let contracts = soapgate::files::load_contracts(&repo_root().join("wsdl"))
        .unwrap_or_else(|e| panic!("wsdl/: {e:?}"));
    let (contract, _) = contracts
        .service("DocumentIntake")
        .expect("the DocumentIntake contract");
    let schemas = &contract.schemas;
    let classify = one_property("kind", type_schema(schemas, "DocumentKind"));
    let lines = one_property("Category", type_schema(schemas, "LineCategoryCode"));
    let extract = type_schema(schemas, "InvoiceFields");

    let emulator = emulator::spawn(Some(script)).await.expect("the emulator");
    let client = BedrockClient::for_endpoint(emulator.base_url(), &BedrockSettings::default());

    for case in cases() {
        let payload = payload(case.file);
        let text = payload.child(DI, "Text").expect("Text").text();
        // The instructions name every kind and category in capitals, as a
        // mapping's prompt may: the script must not mistake them for the
        // document's words.
        let answer = call(
            &client,
            &step(
                format!("Classify this document as INVOICE, RECEIPT, CONTRACT or OTHER.\n\n{text}"),
                "step_classify",
                &classify,
            ),
            "step_classify",
            &classify,
        )
        .await;
        assert_eq!(answer, json!({"kind": case.kind}), "{}", case.file);

        let descriptions: Vec<String> = payload
            .child(DI, "Lines")
            .map(|l| {
                l.children_named(DI, "Line")
                    .map(|line| line.child(DI, "Description").expect("Description").text())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(descriptions.len(), case.categories.len(), "{}", case.file);
        for (description, category) in descriptions.iter().zip(case.categories) {
            let answer = call(
                &client,
                &step(
                    format!(
                        "Categorise this line as GOODS, SERVICES, FREIGHT or OTHER.\n\n{description}"
                    ),
                    "step_lines",
                    &lines,
                ),
                "step_lines",
                &lines,
            )
            .await;
            assert_eq!(
                answer,
                json!({"Category": category}),
                "{}: {description}",
                case.file
            );
        }

        if let Some(fields) = &case.invoice {
            let answer = call(
                &client,
                &step(
                    format!("Read the header fields of this invoice.\n\n{text}"),
                    "step_extract",
                    &extract,
                ),
                "step_extract",
                &extract,
            )
            .await;
            assert_eq!(&answer, fields, "{}", case.file);
        }
    }

    // A step's rule names its tool: a classify prompt offering another
    // tool is refused, not answered with the classify step's input.
    let text = payload("ProcessDocument.xml")
        .child(DI, "Text")
        .expect("Text")
        .text();
    let refused = client
        .converse(
            HAIKU,
            &step(
                format!("Classify this document.\n\n{text}"),
                "step_lines",
                &lines,
            ),
        )
        .await
        .expect_err("a classify prompt without step_classify");
    assert!(
        matches!(&refused, ModelError::Validation { message } if message.contains("step_classify")),
        "{refused:?}"
    );
}
