//! Declared faults in the core: the contract loader reads each
//! operation's `wsdl:fault`s and their detail elements; the mapping loader
//! refuses a mapped fault the operation does not declare, one whose detail
//! no answer can fill, and keys of the other output mode, each at its
//! `file:line:col`; a plan offers the fault's tool beside the response's
//! (`toolChoice: any`) and reads a call of it, or a text answer its `when`
//! rule selects, as the fault with its detail validated.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::{Value, json};

use soapgate::contract::{ContractSet, FaultDetail, Files, validate_payload, wsdl};
use soapgate::converse::{
    self, ContentBlock, Message, Response, StopReason, ToolChoice, ToolResultContent,
};
use soapgate::mapping::{Answer, CallMeta, MappingError, MappingSet, OperationPlan, OutputError};
use soapgate::soap::{DeclaredFault, FaultCode, parse_envelope};
use soapgate::xml::{self, Element, Limits, QName};

const DESK: &str = "http://helpdesk.example.com/SupportDesk/";

fn contracts() -> &'static ContractSet {
    static SET: OnceLock<ContractSet> = OnceLock::new();
    SET.get_or_init(|| {
        soapgate::files::load_contracts(Path::new("wsdl"))
            .unwrap_or_else(|e| panic!("example contracts: {e:?}"))
    })
}

fn load(yaml: &str) -> Result<MappingSet, Vec<String>> {
    MappingSet::load(&[(PathBuf::from("m.yaml"), yaml.to_string())], contracts())
        .map_err(|e| e.iter().map(MappingError::to_string).collect())
}

fn load_errors(yaml: &str) -> Vec<String> {
    match load(yaml) {
        Ok(_) => panic!("expected load errors"),
        Err(e) => e,
    }
}

/// TriageTicket with `output` and `faults` as given.
fn triage(output_and_faults: &str) -> String {
    format!(
        "service: SupportDesk
operations:
  TriageTicket:
    model:
      targets: [ {{ model: m }} ]
    input:
      ticket: Ticket
    prompt: \"Ticket {{{{ ticket.TicketId }}}}\"
{output_and_faults}"
    )
}

fn example(service: &str, operation: &str) -> Vec<Element> {
    let text =
        fs::read_to_string(format!("examples/{service}/{operation}.xml")).expect("example request");
    let doc = xml::read(text.as_bytes(), None, &Limits::default()).expect("request XML");
    let env = parse_envelope(doc.root).expect("envelope");
    let (contract, svc) = contracts().service(service).expect("service");
    let op = svc.operation(operation).expect("operation");
    assert!(validate_payload(&contract.schemas, &op.input, &env.body, &env.scope).is_empty());
    env.body
}

fn meta<'a>(service: &'a str, operation: &'a str) -> CallMeta<'a> {
    CallMeta {
        service,
        operation,
        correlation_id: "urn:uuid:00000000-0000-4000-8000-000000000002",
    }
}

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

fn text_answer(text: &str) -> Response {
    answer(vec![ContentBlock::text(text)], StopReason::EndTurn)
}

// ---- the contract ---------------------------------------------------------

#[test]
fn operations_carry_their_declared_faults_and_detail_elements() {
    let (_, desk) = contracts().service("SupportDesk").expect("SupportDesk");
    let triage = desk.operation("TriageTicket").expect("TriageTicket");
    assert_eq!(triage.faults.len(), 1);
    assert_eq!(triage.faults[0].name, "TicketRejected");
    assert_eq!(
        triage.faults[0].detail,
        FaultDetail::Element(QName::new(DESK, "TicketRejection"))
    );
    assert!(
        desk.operation("DraftReply")
            .expect("DraftReply")
            .faults
            .is_empty()
    );
    let (_, invoices) = contracts()
        .service("InvoiceService")
        .expect("InvoiceService");
    let classify = invoices
        .operation("ClassifyInvoice")
        .expect("ClassifyInvoice");
    assert_eq!(classify.faults[0].name, "InvoiceServiceException");
    assert_eq!(
        classify.faults[0].detail,
        FaultDetail::Element(QName::new(
            "http://erp.example.com/ap/invoice/types/v1",
            "InvoiceServiceFault"
        ))
    );
}

#[derive(Default)]
struct MemFiles(HashMap<PathBuf, Vec<u8>>);

impl Files for MemFiles {
    fn read(&self, path: &Path) -> Result<Vec<u8>, String> {
        self.0
            .get(path)
            .cloned()
            .ok_or_else(|| "no such file".to_string())
    }
}

/// A one-operation contract whose fault message is `fault_message`.
const TYPED_FAULT_WSDL: &str = r#"<definitions xmlns="http://schemas.xmlsoap.org/wsdl/"
    xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/" xmlns:xs="http://www.w3.org/2001/XMLSchema"
    xmlns:t="urn:t" targetNamespace="urn:t">
  <types>
    <xs:schema targetNamespace="urn:t" elementFormDefault="qualified">
      <xs:element name="Ping"><xs:complexType><xs:sequence>
        <xs:element name="x" type="xs:string"/></xs:sequence></xs:complexType></xs:element>
      <xs:element name="PingResponse"><xs:complexType><xs:sequence>
        <xs:element name="y" type="xs:string"/></xs:sequence></xs:complexType></xs:element>
    </xs:schema>
  </types>
  <message name="In"><part name="p" element="t:Ping"/></message>
  <message name="Out"><part name="p" element="t:PingResponse"/></message>
  <message name="Typed"><part name="reason" type="xs:string"/></message>
  <portType name="P">
    <operation name="Ping">
      <input message="t:In"/><output message="t:Out"/>
      <fault name="Refused" message="t:Typed"/>
      <fault name="Lost" message="t:Nowhere"/>
    </operation>
  </portType>
  <binding name="B" type="t:P">
    <soap:binding transport="http://schemas.xmlsoap.org/soap/http"/>
    <operation name="Ping">
      <soap:operation soapAction="urn:t#Ping"/>
      <input><soap:body use="literal"/></input>
      <output><soap:body use="literal"/></output>
    </operation>
  </binding>
  <service name="Pinger"><port name="P" binding="t:B">
    <soap:address location="http://localhost/ping"/></port></service>
</definitions>"#;

#[test]
fn a_fault_without_a_detail_element_loads_and_cannot_be_mapped() {
    let mut files = MemFiles::default();
    files.0.insert(
        PathBuf::from("p.wsdl"),
        TYPED_FAULT_WSDL.as_bytes().to_vec(),
    );
    let set = wsdl::load_all(&[Path::new("p.wsdl")], &files)
        .unwrap_or_else(|e| panic!("an unmapped unusable fault is no load error: {e:?}"));
    let (_, svc) = set.service("Pinger").expect("Pinger");
    let ping = svc.operation("Ping").expect("Ping");
    assert!(
        matches!(&ping.faults[0].detail, FaultDetail::Unusable(why) if why.contains("typed part")),
        "{:?}",
        ping.faults[0]
    );
    assert!(
        matches!(&ping.faults[1].detail, FaultDetail::Unusable(why) if why.contains("not defined")),
        "{:?}",
        ping.faults[1]
    );
    let yaml = "service: Pinger
operations:
  Ping:
    model: { targets: [ { model: m } ] }
    prompt: x
    output: { structured: true }
    faults:
      Refused: {}
      Lost: {}
";
    let errors = match MappingSet::load(&[(PathBuf::from("m.yaml"), yaml.to_string())], &set) {
        Ok(_) => panic!("expected load errors"),
        Err(e) => e.iter().map(MappingError::to_string).collect::<Vec<_>>(),
    };
    assert_eq!(
        errors,
        [
            "m.yaml:8:7: fault Refused of Ping has no detail element an answer can fill: its \
             message {urn:t}Typed has a typed part ({http://www.w3.org/2001/XMLSchema}string), \
             not an element",
            "m.yaml:9:7: fault Lost of Ping has no detail element an answer can fill: its \
             message {urn:t}Nowhere is not defined",
        ]
    );
}

// ---- mapping load errors --------------------------------------------------

#[test]
fn a_fault_the_operation_does_not_declare_is_a_load_error() {
    let errors = load_errors(&triage(
        "    output: { structured: true }
    faults:
      TicketLost: {}
",
    ));
    assert_eq!(
        errors,
        [
            "m.yaml:11:7: operation TriageTicket declares no fault TicketLost in its WSDL \
          (declared: TicketRejected)"
        ]
    );
    let errors = load_errors(
        "service: SupportDesk
operations:
  DraftReply:
    model: { targets: [ { model: m } ] }
    prompt: x
    output: { text: DraftReplyResult/Body, fill: { DraftReplyResult/Subject: Re, DraftReplyResult/NeedsAgentReview: true } }
    faults:
      TicketRejected: { when: x }
",
    );
    assert_eq!(
        errors,
        [
            "m.yaml:8:7: operation DraftReply declares no fault TicketRejected in its WSDL \
          (it declares none)"
        ]
    );
}

#[test]
fn keys_of_the_other_output_mode_are_load_errors() {
    let errors = load_errors(&triage(
        "    output: { structured: true }
    faults:
      TicketRejected:
        when: \"^NO\"
        text: Explanation
",
    ));
    assert_eq!(
        errors,
        [
            "m.yaml:12:15: when applies to a fault of a text-output operation; with structured \
             output the model calls the fault's tool",
            "m.yaml:13:15: text applies to a fault of a text-output operation; with structured \
             output the model calls the fault's tool",
        ]
    );
    let text_output = "    output:
      text: TriageTicketResult/Rationale
      fill:
        TriageTicketResult/Priority: Normal
        TriageTicketResult/Queue: General
        TriageTicketResult/Sentiment: Neutral
        TriageTicketResult/EscalateToHuman: false
    faults:
      TicketRejected:
";
    let errors = load_errors(&triage(&format!(
        "{text_output}        tool: reject\n        text: Explanation\n"
    )));
    assert_eq!(
        errors,
        [
            "m.yaml:18:15: tool applies to a fault of a structured-output operation; with text \
             output `when` selects the fault",
            "m.yaml:18:9: fault TicketRejected needs `when`: a regex that selects it from the \
             model's text (e.g. \"^REJECTED:\")",
        ]
    );
    let errors = load_errors(&triage(&format!(
        "{text_output}        when: \"(unclosed\"\n"
    )));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("m.yaml:18:15: when: invalid regex:"),
        "{errors:?}"
    );
    // The detail must be complete: Reason and TicketId are required.
    let errors = load_errors(&triage(&format!(
        "{text_output}        when: \"^NO\"\n        text: Explanation\n"
    )));
    assert_eq!(
        errors,
        [
            "m.yaml:18:9: text output leaves TicketId unfilled; add it to fill",
            "m.yaml:18:9: text output leaves Reason unfilled; add it to fill",
        ]
    );
    let errors = load_errors(&triage(&format!(
        "{text_output}        when: \"^NO\"\n        text: Explanation\n        fill: {{ Reason: Boring, TicketId: \"{{{{ ticket.TicketId }}}}\" }}\n"
    )));
    assert_eq!(
        errors,
        [
            "m.yaml:20:25: fill Reason: \"Boring\" breaks enumeration [Spam, Duplicate, NotASupportRequest] (got \"Boring\")"
        ]
    );
}

#[test]
fn a_fault_tool_may_not_take_the_response_tools_name() {
    let errors = load_errors(&triage(
        "    output: { structured: true, tool: triage }
    faults:
      TicketRejected: { tool: triage }
",
    ));
    assert_eq!(
        errors,
        [
            "m.yaml:11:31: tool triage is already offered for this operation; give fault \
          TicketRejected a `tool:` name of its own"
        ]
    );
}

// ---- answering --------------------------------------------------------------

fn example_plan() -> &'static OperationPlan {
    static SET: OnceLock<MappingSet> = OnceLock::new();
    SET.get_or_init(|| {
        let text = fs::read_to_string("mappings/SupportDesk.yaml").expect("mapping");
        MappingSet::load(
            &[(PathBuf::from("mappings/SupportDesk.yaml"), text)],
            contracts(),
        )
        .unwrap_or_else(|e| panic!("{e:?}"))
    })
    .plan("SupportDesk", "TriageTicket")
    .expect("TriageTicket")
}

#[test]
fn the_model_is_offered_the_fault_tool_and_its_call_is_the_fault() {
    let p = example_plan();
    let faults = p.faults();
    assert_eq!(faults.len(), 1);
    assert_eq!(faults[0].code, FaultCode::Client);
    assert_eq!(faults[0].tool.as_deref(), Some("TicketRejected"));
    let call = p
        .render_request(
            &example("SupportDesk", "TriageTicket"),
            &meta("SupportDesk", "TriageTicket"),
        )
        .expect("render");
    let config = call.request.tool_config.as_ref().expect("tools");
    assert!(matches!(config.tool_choice, Some(ToolChoice::Any(_))));
    let schema = config
        .tool("TicketRejected")
        .expect("the fault's tool")
        .schema();
    assert_eq!(
        schema["required"],
        json!(["TicketId", "Reason", "Explanation"])
    );

    let reject = tool_answer(
        "TicketRejected",
        json!({"Explanation": "An advert.", "Reason": "Spam", "TicketId": "INC0048213"}),
    );
    let Answer::Fault(fault) = p.answer_from(&call, &reject).expect("a valid fault") else {
        panic!("expected the fault");
    };
    assert_eq!(fault.name, "TicketRejected");
    assert_eq!(fault.code, FaultCode::Client);
    assert_eq!(
        fault.reason,
        "Ticket INC0048213 was not triaged: it is not a support request"
    );
    assert_eq!(
        xml::write_element(&fault.detail),
        "<TicketRejection xmlns=\"http://helpdesk.example.com/SupportDesk/\">\
         <TicketId>INC0048213</TicketId><Reason>Spam</Reason>\
         <Explanation>An advert.</Explanation></TicketRejection>"
    );
    // As a job keeps it, and read back.
    let stored = fault.stored();
    assert_eq!(
        DeclaredFault::from_stored("TicketRejected", &stored).as_ref(),
        Some(&fault)
    );
    // response_from is for callers that expect a response.
    let err = p.response_from(&call, &reject).expect_err("not a response");
    assert!(
        err.violations()[0].rule.contains("TicketRejected"),
        "{err:?}"
    );

    // A detail breaking its schema is the fault's to repair.
    let bad = tool_answer(
        "TicketRejected",
        json!({"Explanation": "x", "Reason": "Boring", "TicketId": "INC0048213"}),
    );
    let err = p.answer_from(&call, &bad).expect_err("invalid detail");
    assert!(
        matches!(&err, OutputError::InvalidFault { fault, tool: Some(t), .. }
            if fault == "TicketRejected" && t == "TicketRejected"),
        "{err:?}"
    );
    let repair = p.repair_request(&call.request, &bad, &err);
    let last = repair.messages.last().expect("feedback");
    let ContentBlock::ToolResult(result) = &last.content[0] else {
        panic!("{last:?}");
    };
    let ToolResultContent::Text(text) = &result.content[0] else {
        panic!("{result:?}");
    };
    assert!(
        text.starts_with("The input for TicketRejected is invalid:\n- /TicketRejection/Reason"),
        "{text}"
    );

    // No tool call at all: the model is told it may call either.
    let none = text_answer("It is spam.");
    let err = p.answer_from(&call, &none).expect_err("no tool");
    let repair = p.repair_request(&call.request, &none, &err);
    let ContentBlock::Text(text) = &repair.messages.last().expect("feedback").content[0] else {
        panic!("text feedback");
    };
    assert!(
        text.contains(
            "You must answer by calling one of the tools TriageTicketResponse, TicketRejected"
        ),
        "{text}"
    );
}

#[test]
fn without_mapped_faults_the_response_tool_is_forced_as_before() {
    let set = load(&triage("    output: { structured: true }\n")).expect("loads");
    let p = set.plan("SupportDesk", "TriageTicket").expect("plan");
    assert!(p.faults().is_empty());
    let call = p
        .render_request(
            &example("SupportDesk", "TriageTicket"),
            &meta("SupportDesk", "TriageTicket"),
        )
        .expect("render");
    let config = call.request.tool_config.as_ref().expect("tools");
    assert_eq!(config.tools.len(), 1);
    assert!(
        matches!(&config.tool_choice, Some(ToolChoice::Tool(t)) if t.name == "TriageTicketResponse")
    );
}

#[test]
fn with_text_output_the_first_matching_rule_selects_the_fault() {
    let set = load(&triage(
        "    output:
      text: TriageTicketResult/Rationale
      fill:
        TriageTicketResult/Priority: Normal
        TriageTicketResult/Queue: General
        TriageTicketResult/Sentiment: Neutral
        TriageTicketResult/EscalateToHuman: false
    faults:
      TicketRejected:
        code: server
        when: \"(?i)^rejected:\"
        text: Explanation
        fill:
          TicketId: \"{{ ticket.TicketId }}\"
          Reason: Duplicate
",
    ))
    .expect("loads");
    let p = set.plan("SupportDesk", "TriageTicket").expect("plan");
    assert_eq!(p.faults()[0].tool, None);
    let call = p
        .render_request(
            &example("SupportDesk", "TriageTicket"),
            &meta("SupportDesk", "TriageTicket"),
        )
        .expect("render");
    assert!(call.request.tool_config.is_none());
    let Answer::Fault(fault) = p
        .answer_from(&call, &text_answer("REJECTED:  same as INC0048200 "))
        .expect("the fault")
    else {
        panic!("expected the fault");
    };
    assert_eq!(fault.code, FaultCode::Server);
    assert_eq!(fault.reason, "TicketRejected");
    assert_eq!(
        xml::write_element(&fault.detail),
        "<TicketRejection xmlns=\"http://helpdesk.example.com/SupportDesk/\">\
         <TicketId>INC0048213</TicketId><Reason>Duplicate</Reason>\
         <Explanation>same as INC0048200</Explanation></TicketRejection>"
    );
    let Answer::Response(payload) = p
        .answer_from(&call, &text_answer("Not rejected: a routine question."))
        .expect("the response")
    else {
        panic!("expected the response");
    };
    assert!(payload[0].name.is(DESK, "TriageTicketResponse"));
    // Text too long for Explanation (maxLength 500): repaired as the fault.
    let long = format!("Rejected: {}", "x".repeat(501));
    let err = p
        .answer_from(&call, &text_answer(&long))
        .expect_err("too long");
    assert!(
        matches!(&err, OutputError::InvalidFault { tool: None, .. }),
        "{err:?}"
    );
    let repair = p.repair_request(&call.request, &text_answer(&long), &err);
    let ContentBlock::Text(text) = &repair.messages.last().expect("feedback").content[0] else {
        panic!("text feedback");
    };
    assert!(
        text.starts_with("The answer cannot be used as the TicketRejected fault:"),
        "{text}"
    );
}
