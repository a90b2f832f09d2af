//! Contract loading and publishing against WSDLs in every legacy style
//! (`tests/data/wsdl/<case>/`): what each style must load to, what must be
//! refused (with file, line:col, binding and reason), and what the published
//! WSDL and schemas look like.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use soapgate::contract::model::{PartKind, Payload, RpcPart};
use soapgate::contract::{
    Contract, ContractSet, Files, LoadError, Operation, Service, Style, publish, wsdl,
};
use soapgate::files::DiskFiles;
use soapgate::soap::SoapVersion;
use soapgate::xml::QName;

const XSD: &str = "http://www.w3.org/2001/XMLSchema";
const BASE: &str = "http://gw.example.com:8080/soap";

fn case_dir(case: &str) -> PathBuf {
    Path::new("tests/data/wsdl").join(case)
}

/// The `.wsdl` files of a case, sorted so results do not depend on the
/// directory order.
fn wsdl_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wsdl"))
        .collect();
    v.sort();
    v
}

fn load_case(case: &str) -> Result<ContractSet, Vec<LoadError>> {
    let files = wsdl_files(&case_dir(case));
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    wsdl::load_all(&refs, &DiskFiles)
}

fn loaded(case: &str) -> ContractSet {
    match load_case(case) {
        Ok(set) => set,
        Err(errs) => panic!("{case} did not load:\n{}", render(&errs)),
    }
}

fn refused(case: &str) -> Vec<String> {
    match load_case(case) {
        Ok(set) => panic!(
            "{case} loaded: {:?}",
            set.services().map(|s| &s.1.name).collect::<Vec<_>>()
        ),
        Err(errs) => errs.iter().map(ToString::to_string).collect(),
    }
}

fn render(errs: &[LoadError]) -> String {
    errs.iter().map(|e| format!("  {e}\n")).collect()
}

fn q(ns: &str, local: &str) -> QName {
    QName::new(ns, local)
}

fn service<'a>(set: &'a ContractSet, name: &str) -> &'a Service {
    match set.service(name) {
        Some((_, s)) => s,
        None => panic!("no service {name}"),
    }
}

fn op<'a>(s: &'a Service, name: &str) -> &'a Operation {
    match s.operation(name) {
        Some(o) => o,
        None => panic!("service {} has no operation {name}", s.name),
    }
}

fn doc(elements: &[QName]) -> Payload {
    Payload::Document {
        elements: elements.to_vec(),
    }
}

fn versions(o: &Operation) -> Vec<SoapVersion> {
    let mut v: Vec<SoapVersion> = o.bindings.iter().map(|b| b.version).collect();
    v.sort();
    v
}

fn action(o: &Operation, v: SoapVersion) -> Option<&str> {
    o.binding(v).and_then(|b| b.soap_action.as_deref())
}

/// Files held in memory, for cases written inline and for re-reading what we
/// publish.
#[derive(Default)]
struct MemFiles(HashMap<PathBuf, Vec<u8>>);

impl MemFiles {
    fn with(mut self, path: &str, text: &str) -> Self {
        self.0.insert(PathBuf::from(path), text.as_bytes().to_vec());
        self
    }
}

impl Files for MemFiles {
    fn read(&self, path: &Path) -> Result<Vec<u8>, String> {
        self.0
            .get(path)
            .cloned()
            .ok_or_else(|| "no such file".to_string())
    }
}

fn load_mem(files: &MemFiles, paths: &[&str]) -> Result<ContractSet, Vec<String>> {
    let refs: Vec<&Path> = paths.iter().map(Path::new).collect();
    wsdl::load_all(&refs, files).map_err(|e| e.iter().map(ToString::to_string).collect())
}

// ---------------------------------------------------------------------------
// Legacy styles that must load.

#[test]
fn asmx_soap11_and_soap12_bindings_merge_and_http_bindings_are_ignored() {
    let set = loaded("asmx");
    let s = service(&set, "CurrencyRates");
    let tempuri = "http://tempuri.org/";
    assert_eq!(s.operations.len(), 2);
    let get = op(s, "GetRate");
    assert_eq!(get.style, Style::Document);
    assert_eq!(versions(get), [SoapVersion::V11, SoapVersion::V12]);
    assert_eq!(
        action(get, SoapVersion::V11),
        Some("http://tempuri.org/GetRate")
    );
    assert_eq!(
        action(get, SoapVersion::V12),
        Some("http://tempuri.org/GetRate")
    );
    assert_eq!(
        get.binding(SoapVersion::V11).map(|b| &b.binding),
        Some(&q(tempuri, "CurrencyRatesSoap"))
    );
    assert_eq!(
        get.binding(SoapVersion::V12).map(|b| &b.binding),
        Some(&q(tempuri, "CurrencyRatesSoap12"))
    );
    // The AuthHeader travels in a header message, not in the body.
    assert_eq!(get.input, doc(&[q(tempuri, "GetRate")]));
    assert_eq!(get.output, Some(doc(&[q(tempuri, "GetRateResponse")])));
    let list = op(s, "ListCurrencies");
    assert_eq!(versions(list), [SoapVersion::V11, SoapVersion::V12]);
    for v in [SoapVersion::V11, SoapVersion::V12] {
        assert_eq!(
            s.operation_for(v, &q(tempuri, "ListCurrencies"))
                .map(|o| o.name.as_str()),
            Some("ListCurrencies")
        );
    }
    // Namespaces by URI: the same local name in another namespace is unknown.
    assert!(!s.knows_payload(&q("http://tempuri.org", "GetRate")));
}

#[test]
fn cxf_wrapped_with_imported_schema() {
    let set = loaded("cxf");
    let (contract, s) = set.service("OrderService").expect("OrderService");
    let types = "http://types.orders.example.com/";
    assert_eq!(contract.target_ns, "http://service.orders.example.com/");
    let place = op(s, "placeOrder");
    assert_eq!(place.style, Style::Document);
    assert_eq!(versions(place), [SoapVersion::V11]);
    // CXF writes soapAction="": no action to check.
    assert_eq!(action(place, SoapVersion::V11), None);
    assert_eq!(place.input, doc(&[q(types, "placeOrder")]));
    assert_eq!(place.output, Some(doc(&[q(types, "placeOrderResponse")])));
    assert_eq!(
        op(s, "getOrderStatus").input,
        doc(&[q(types, "getOrderStatus")])
    );
    assert_eq!(
        contract
            .imported
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        ["common/party.xsd", "order-types.xsd"]
    );
}

#[test]
fn wsdl_import_splits_abstract_and_concrete_parts() {
    let set = loaded("cxf_split");
    let (contract, s) = set.service("ShipmentService").expect("ShipmentService");
    let o = op(s, "bookShipment");
    assert_eq!(
        o.input,
        doc(&[q("http://api.shipping.example.com/", "bookShipment")])
    );
    assert_eq!(
        o.binding(SoapVersion::V11).map(|b| &b.binding),
        Some(&q(
            "http://impl.shipping.example.com/",
            "ShipmentServiceSoapBinding"
        ))
    );
    assert_eq!(action(o, SoapVersion::V11), Some("urn:bookShipment"));
    assert!(contract.imported.contains_key("ShipmentPort.wsdl"));
    // The abstract file alone loads too, as a contract without services.
    assert_eq!(set.services().count(), 1);
    assert_eq!(set.contracts.len(), 2);
}

#[test]
fn axis2_soap12_binding_with_http_binding_ignored_and_one_way() {
    let set = loaded("axis2");
    let s = service(&set, "TrackingService");
    let ns = "http://tracking.logistics.example.com";
    let track = op(s, "trackParcel");
    assert_eq!(versions(track), [SoapVersion::V11, SoapVersion::V12]);
    assert_eq!(action(track, SoapVersion::V12), Some("urn:trackParcel"));
    assert_eq!(track.input, doc(&[q(ns, "trackParcel")]));
    assert!(!track.is_one_way());
    let damage = op(s, "reportDamage");
    assert!(damage.is_one_way());
    assert_eq!(versions(damage), [SoapVersion::V11, SoapVersion::V12]);
    assert_eq!(s.operations.len(), 2);
}

#[test]
fn sap_rfc_functions_namespace() {
    let set = loaded("sap");
    let s = service(&set, "ZMATERIAL_AVAILABILITY");
    let rfc = "urn:sap-com:document:sap:rfc:functions";
    let o = op(s, "BAPI_MATERIAL_AVAILABILITY");
    assert_eq!(versions(o), [SoapVersion::V11, SoapVersion::V12]);
    assert_eq!(
        action(o, SoapVersion::V11),
        Some(
            "urn:sap-com:document:sap:rfc:functions:ZMATERIAL_AVAILABILITY:BAPI_MATERIAL_AVAILABILITYRequest"
        )
    );
    assert_eq!(o.input, doc(&[q(rfc, "BAPI_MATERIAL_AVAILABILITY")]));
    assert_eq!(
        o.output,
        Some(doc(&[q(rfc, "BAPI_MATERIAL_AVAILABILITYResponse")]))
    );
    // Two different prefixes bind the SOAP 1.2 namespace in this file; only
    // the URI counts.
    assert!(o.binding(SoapVersion::V12).is_some());
}

#[test]
fn rpc_literal_wrappers_parts_and_header_exclusion() {
    let set = loaded("rpc_literal");
    let s = service(&set, "StockLedger");
    let types = "http://ledger.warehouse.example.net/types";
    let get = op(s, "GetPosition");
    assert_eq!(get.style, Style::Rpc);
    assert_eq!(
        action(get, SoapVersion::V11),
        Some("urn:StockLedger#GetPosition")
    );
    let part = |name: &str, kind: PartKind| RpcPart {
        name: name.to_string(),
        kind,
    };
    // parts= leaves the session header part out of the body.
    assert_eq!(
        get.input,
        Payload::Rpc {
            wrapper: q("urn:warehouse:ledger", "GetPosition"),
            parts: vec![
                part("itemCode", PartKind::Type(q(XSD, "string"))),
                part("warehouse", PartKind::Type(q(XSD, "int"))),
            ],
        }
    );
    assert_eq!(
        get.output,
        Some(Payload::Rpc {
            wrapper: q("urn:warehouse:ledger", "GetPositionResponse"),
            parts: vec![part("position", PartKind::Type(q(types, "StockPosition")))],
        })
    );
    // Without a namespace on soap:body the wrapper is in the target namespace.
    let adjust = op(s, "Adjust");
    let wsdl_ns = "http://ledger.warehouse.example.net/wsdl";
    assert_eq!(adjust.input.dispatch_name(), Some(&q(wsdl_ns, "Adjust")));
    match &adjust.output {
        Some(Payload::Rpc { wrapper, parts }) => {
            assert_eq!(wrapper, &q(wsdl_ns, "AdjustResponse"));
            assert_eq!(parts, &[part("newOnHand", PartKind::Type(q(XSD, "int")))]);
        }
        other => panic!("Adjust output: {other:?}"),
    }
    assert_eq!(
        s.operation_for(SoapVersion::V11, &q(wsdl_ns, "Adjust"))
            .map(|o| o.name.as_str()),
        Some("Adjust")
    );
    assert!(
        s.operation_for(SoapVersion::V12, &q(wsdl_ns, "Adjust"))
            .is_none()
    );
}

#[test]
fn document_literal_bare() {
    let set = loaded("doc_bare");
    let s = service(&set, "CustomerDirectory");
    let c = "urn:example:crm:customer:v2";
    let lookup = op(s, "Lookup");
    assert_eq!(lookup.style, Style::Document);
    assert_eq!(lookup.input, doc(&[q(c, "CustomerNumber")]));
    assert_eq!(lookup.output, Some(doc(&[q(c, "Customer")])));
    // The audit part is bound to a soap:header of the same message.
    let change = op(s, "Change");
    assert_eq!(change.input, doc(&[q(c, "CustomerChange")]));
    assert_eq!(change.output, Some(doc(&[q(c, "ChangeReceipt")])));
    assert_eq!(
        action(change, SoapVersion::V11),
        Some("urn:example:crm:directory:Change")
    );
}

#[test]
fn one_way_operations_have_no_output() {
    let set = loaded("one_way");
    let s = service(&set, "AuditTrail");
    let record = op(s, "RecordEvent");
    assert!(record.is_one_way());
    assert_eq!(
        record.input,
        doc(&[q("http://audit.example.com/trail/2011", "RecordEvent")])
    );
    assert!(!op(s, "Ping").is_one_way());
}

#[test]
fn all_loading_cases_load_together() {
    let cases = [
        "asmx",
        "cxf",
        "cxf_split",
        "axis2",
        "sap",
        "rpc_literal",
        "doc_bare",
        "one_way",
    ];
    let files: Vec<PathBuf> = cases
        .iter()
        .flat_map(|c| wsdl_files(&case_dir(c)))
        .collect();
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let set = match wsdl::load_all(&refs, &DiskFiles) {
        Ok(s) => s,
        Err(e) => panic!("{}", render(&e)),
    };
    let names: Vec<&str> = set.services().map(|(_, s)| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "AuditTrail",
            "CurrencyRates",
            "CustomerDirectory",
            "OrderService",
            "ShipmentService",
            "StockLedger",
            "TrackingService",
            "ZMATERIAL_AVAILABILITY"
        ]
    );
}

// ---------------------------------------------------------------------------
// Refusals: each names the file, where, the binding and why.

#[test]
fn rpc_encoded_is_refused_with_file_binding_and_reason() {
    let errs = refused("rpc_encoded");
    assert_eq!(
        errs[0],
        "tests/data/wsdl/rpc_encoded/PayrollBridge.wsdl:25:9: binding {urn:PayrollBridge}PayrollBridgeBinding \
         operation getNetPay: rpc/encoded is not supported (SOAP encoding; only literal use is)"
    );
    assert_eq!(errs.len(), 1, "{errs:?}");
}

#[test]
fn wsdl20_is_refused() {
    let errs = refused("wsdl20");
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("tests/data/wsdl/wsdl20/Greeter.wsdl:2:1: WSDL 2.0"),
        "{}",
        errs[0]
    );
    assert!(errs[0].contains("WSDL 1.1"), "{}", errs[0]);
}

#[test]
fn notification_operations_are_refused() {
    let errs = refused("notification");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with(
            "tests/data/wsdl/notification/PriceAlerts.wsdl:22:5: binding \
             {urn:example:pricing:alerts}PriceAlertsBinding operation PriceChanged: a notification \
             operation (output only) is not supported"
        ),
        "{}",
        errs[0]
    );
}

#[test]
fn missing_references_are_reported_where_they_are_written() {
    let errs = refused("missing_refs");
    let f = "tests/data/wsdl/missing_refs/Broken.wsdl";
    let expected = [
        format!(
            "{f}:18:7: binding {{urn:example:broken}}BrokenBinding operation Echo: message \
             {{urn:example:broken}}EchoOutMissing is not defined"
        ),
        format!(
            "{f}:36:5: port GhostPort of service Broken refers to binding \
             {{urn:example:broken}}GhostBinding, which is not defined"
        ),
        format!(
            "{f}:29:3: binding {{urn:example:broken}}OrphanBinding refers to portType \
             {{urn:example:broken}}NoSuchPortType, which is not defined"
        ),
    ];
    assert_eq!(errs, expected);
}

#[test]
fn two_operations_on_one_payload_are_refused() {
    let errs = refused("duplicate_dispatch");
    assert_eq!(
        errs,
        [
            "tests/data/wsdl/duplicate_dispatch/Quotes.wsdl:36:5: service Quotes: operations GetQuote \
          and GetIndicativeQuote both take {urn:example:quotes}QuoteRequest as the SOAP 1.1 body \
          payload, so requests cannot be dispatched to one of them"
        ]
    );
}

/// A small document/literal WSDL for the inline refusal cases; `extra_*` are
/// spliced into the portType and binding, `service` is the service name.
fn mini_wsdl(
    service: &str,
    schema: &str,
    messages: &str,
    port_type: &str,
    binding: &str,
) -> String {
    format!(
        r#"<?xml version="1.0"?>
<definitions xmlns="http://schemas.xmlsoap.org/wsdl/" xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
    xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:t="urn:mini" targetNamespace="urn:mini">
  <types>
    <xs:schema targetNamespace="urn:mini" elementFormDefault="qualified">
      <xs:element name="Ask" type="xs:string"/>
      <xs:element name="Answer" type="xs:string"/>
      {schema}
    </xs:schema>
  </types>
  <message name="AskIn"><part name="p" element="t:Ask"/></message>
  <message name="AnswerOut"><part name="p" element="t:Answer"/></message>
  {messages}
  <portType name="MiniPort">
    <operation name="Ask"><input message="t:AskIn"/><output message="t:AnswerOut"/></operation>
    {port_type}
  </portType>
  <binding name="MiniBinding" type="t:MiniPort">
    <soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
    <operation name="Ask">
      <soap:operation soapAction="urn:mini:Ask"/>
      <input><soap:body use="literal"/></input>
      <output><soap:body use="literal"/></output>
    </operation>
    {binding}
  </binding>
  <service name="{service}">
    <port name="MiniPort" binding="t:MiniBinding"><soap:address location="http://x/mini"/></port>
  </service>
</definitions>"#
    )
}

fn mini_errors(port_type: &str, binding: &str, messages: &str) -> Vec<String> {
    let files = MemFiles::default().with(
        "m/mini.wsdl",
        &mini_wsdl("Mini", "", messages, port_type, binding),
    );
    match load_mem(&files, &["m/mini.wsdl"]) {
        Ok(_) => panic!("mini WSDL loaded"),
        Err(e) => e,
    }
}

#[test]
fn mini_wsdl_loads_as_written() {
    let files = MemFiles::default().with("m/mini.wsdl", &mini_wsdl("Mini", "", "", "", ""));
    let set = load_mem(&files, &["m/mini.wsdl"]).expect("mini loads");
    assert_eq!(
        op(service(&set, "Mini"), "Ask").input,
        doc(&[q("urn:mini", "Ask")])
    );
}

#[test]
fn overloaded_operation_names_are_refused() {
    let errs = mini_errors(
        r#"<operation name="Ask"><input name="Ask2" message="t:AskIn"/><output name="A2" message="t:AnswerOut"/></operation>"#,
        "",
        "",
    );
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("m/mini.wsdl:"), "{}", errs[0]);
    assert!(
        errs[0].contains("binding {urn:mini}MiniBinding operation Ask"),
        "{}",
        errs[0]
    );
    assert!(
        errs[0].contains("overloads the operation name Ask"),
        "{}",
        errs[0]
    );
}

#[test]
fn document_style_type_parts_are_refused() {
    let errs = mini_errors(
        r#"<operation name="Typed"><input message="t:TypedIn"/></operation>"#,
        r#"<operation name="Typed"><input><soap:body use="literal"/></input></operation>"#,
        r#"<message name="TypedIn"><part name="text" type="xs:string"/></message>"#,
    );
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains(
            "binding {urn:mini}MiniBinding operation Typed: document style needs element= parts"
        ),
        "{}",
        errs[0]
    );
    assert!(errs[0].contains("part text"), "{}", errs[0]);
}

#[test]
fn document_input_without_body_parts_is_refused() {
    let errs = mini_errors(
        r#"<operation name="Empty"><input message="t:AskIn"/></operation>"#,
        r#"<operation name="Empty"><input><soap:body use="literal" parts=""/></input></operation>"#,
        "",
    );
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("operation Empty: the document-style input has no body part"),
        "{}",
        errs[0]
    );
}

#[test]
fn unknown_body_parts_and_header_parts_are_refused() {
    let errs = mini_errors(
        r#"<operation name="Odd"><input message="t:AskIn"/></operation>"#,
        r#"<operation name="Odd"><input><soap:body use="literal" parts="nope"/><soap:header message="t:AskIn" part="ghost" use="literal"/></input></operation>"#,
        "",
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("soap:header refers to part ghost")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("parts=\"nope\" names no part")),
        "{errs:?}"
    );
}

#[test]
fn binding_operation_missing_from_port_type_is_refused() {
    let errs = mini_errors(
        "",
        r#"<operation name="Extra"><input><soap:body use="literal"/></input></operation>"#,
        "",
    );
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0]
            .contains("operation Extra: portType {urn:mini}MiniPort has no operation of that name")
    );
}

#[test]
fn different_payloads_for_one_operation_across_ports_are_refused() {
    let text = mini_wsdl("Mini", "", "", "", "").replace(
        "</definitions>",
        r#"<portType name="OtherPort"><operation name="Ask"><input message="t:AnswerOut"/></operation></portType>
  <binding name="OtherBinding" type="t:OtherPort">
    <soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
    <operation name="Ask"><input><soap:body use="literal"/></input></operation>
  </binding>
  <service name="Mixed">
    <port name="A" binding="t:MiniBinding"><soap:address location="http://x/a"/></port>
    <port name="B" binding="t:OtherBinding"><soap:address location="http://x/b"/></port>
  </service>
</definitions>"#,
    );
    let files = MemFiles::default().with("m/mixed.wsdl", &text);
    let errs = load_mem(&files, &["m/mixed.wsdl"])
        .err()
        .unwrap_or_default();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].contains("binding {urn:mini}OtherBinding operation Ask: port B binds it with a different style or payload than port A of service Mixed"), "{}", errs[0]);
}

#[test]
fn duplicate_service_names_across_files_are_refused() {
    let a = mini_wsdl("Shared", "", "", "", "");
    let b = a.replace("urn:mini", "urn:other");
    let files = MemFiles::default()
        .with("m/a.wsdl", &a)
        .with("m/b.wsdl", &b);
    let errs = load_mem(&files, &["m/a.wsdl", "m/b.wsdl"])
        .err()
        .unwrap_or_default();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("m/b.wsdl:27:3: service Shared is already defined in m/a.wsdl"),
        "{}",
        errs[0]
    );
}

#[test]
fn non_http_soap_transport_and_serviceless_ports_are_refused() {
    let text = mini_wsdl("Mini", "", "", "", "").replace(
        "http://schemas.xmlsoap.org/soap/http",
        "http://www.openuri.org/2002/04/soap/jms/",
    );
    let files = MemFiles::default().with("m/jms.wsdl", &text);
    let errs = load_mem(&files, &["m/jms.wsdl"]).err().unwrap_or_default();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].contains("binding {urn:mini}MiniBinding: transport http://www.openuri.org/2002/04/soap/jms/ is not supported"), "{}", errs[0]);
}

#[test]
fn unreadable_and_foreign_documents_are_refused() {
    let files = MemFiles::default()
        .with("m/broken.wsdl", "<definitions xmlns='http://schemas.xmlsoap.org/wsdl/'><types>")
        .with("m/schema.wsdl", "<xs:schema xmlns:xs='http://www.w3.org/2001/XMLSchema'/>")
        .with(
            "m/import.wsdl",
            "<definitions xmlns='http://schemas.xmlsoap.org/wsdl/' targetNamespace='urn:i'>\n  <import namespace='urn:x' location='gone.wsdl'/>\n</definitions>",
        );
    let errs = load_mem(
        &files,
        &[
            "m/broken.wsdl",
            "m/schema.wsdl",
            "m/import.wsdl",
            "m/absent.wsdl",
        ],
    )
    .err()
    .unwrap_or_default();
    assert_eq!(errs.len(), 4, "{errs:?}");
    assert!(
        errs[0].starts_with("m/broken.wsdl:") && errs[0].contains("not a readable XML document"),
        "{}",
        errs[0]
    );
    assert!(
        errs[1].starts_with(
            "m/schema.wsdl:1:1: the root element is {http://www.w3.org/2001/XMLSchema}schema"
        ),
        "{}",
        errs[1]
    );
    assert!(
        errs[2].starts_with("m/import.wsdl:2:3: wsdl:import of m/gone.wsdl"),
        "{}",
        errs[2]
    );
    assert!(
        errs[3].starts_with("m/absent.wsdl:1:1: cannot read the file"),
        "{}",
        errs[3]
    );
}

#[test]
fn undeclared_prefixes_in_references_are_refused() {
    let text = mini_wsdl("Mini", "", "", "", "").replace(
        r#"binding="t:MiniBinding""#,
        r#"binding="nope:MiniBinding""#,
    );
    let files = MemFiles::default().with("m/p.wsdl", &text);
    let errs = load_mem(&files, &["m/p.wsdl"]).err().unwrap_or_default();
    assert!(
        errs.iter().any(|e| e
            .contains("binding=\"nope:MiniBinding\" uses a namespace prefix that is not declared")),
        "{errs:?}"
    );
}

// ---------------------------------------------------------------------------
// Publishing.

fn published(case: &str, service_name: &str) -> (ContractSet, String) {
    let set = loaded(case);
    let text = match set.service(service_name) {
        Some((c, _)) => publish::wsdl(c, BASE, service_name),
        None => panic!("no service {service_name}"),
    };
    (set, text)
}

/// Services of a set, in a form that compares whole operations.
fn shape(set: &ContractSet) -> String {
    set.services().map(|(_, s)| format!("{s:?}\n")).collect()
}

#[test]
fn published_asmx_points_both_soap_addresses_at_the_facade() {
    let (set, text) = published("asmx", "CurrencyRates");
    assert!(text.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"));
    let url = format!("location=\"{BASE}/CurrencyRates\"");
    assert_eq!(text.matches(&url).count(), 2, "{text}");
    assert!(!text.contains("treasury-app01"), "{text}");
    assert!(
        text.contains("<soap12:address "),
        "prefixes are kept: {text}"
    );
    // The published WSDL loads to the same contract.
    let files = MemFiles::default().with("p/CurrencyRates.wsdl", &text);
    let again = load_mem(&files, &["p/CurrencyRates.wsdl"]).expect("published WSDL loads");
    assert_eq!(shape(&again), shape(&set));
}

#[test]
fn published_wsdl_leaves_out_ports_the_facade_does_not_serve() {
    // ASMX: HTTP GET and POST ports, each with a binding, a portType and
    // messages of its own; all of it goes, the SOAP 1.1 and 1.2 ports stay.
    let (set, text) = published("asmx", "CurrencyRates");
    for gone in [
        "CurrencyRatesHttpGet",
        "CurrencyRatesHttpPost",
        "HttpGetIn",
        "HttpPostOut",
        "<http:binding",
        "<http:address",
        "<http:operation",
    ] {
        assert!(!text.contains(gone), "{gone} is published: {text}");
    }
    for kept in [
        r#"<wsdl:port name="CurrencyRatesSoap" binding="tns:CurrencyRatesSoap">"#,
        r#"<wsdl:port name="CurrencyRatesSoap12" binding="tns:CurrencyRatesSoap12">"#,
        r#"<wsdl:binding name="CurrencyRatesSoap" "#,
        r#"<wsdl:binding name="CurrencyRatesSoap12" "#,
        r#"<wsdl:portType name="CurrencyRatesSoap">"#,
        r#"<wsdl:message name="GetRateSoapIn">"#,
    ] {
        assert!(text.contains(kept), "{kept} is missing: {text}");
    }
    let files = MemFiles::default().with("p/CurrencyRates.wsdl", &text);
    let again = load_mem(&files, &["p/CurrencyRates.wsdl"]).expect("published WSDL loads");
    assert_eq!(shape(&again), shape(&set));

    // Axis2: the HTTP binding shares its portType (and so its messages)
    // with the SOAP bindings; only the port and its binding go.
    let (_, text) = published("axis2", "TrackingService");
    for gone in [
        "TrackingServiceHttpEndpoint",
        "TrackingServiceHttpBinding",
        "<http:",
    ] {
        assert!(!text.contains(gone), "{gone} is published: {text}");
    }
    for kept in [
        r#"<wsdl:portType name="TrackingServicePortType">"#,
        r#"<wsdl:message name="trackParcelRequest">"#,
        r#"<wsdl:port name="TrackingServiceHttpSoap11Endpoint" "#,
        r#"<wsdl:port name="TrackingServiceHttpSoap12Endpoint" "#,
    ] {
        assert!(text.contains(kept), "{kept} is missing: {text}");
    }
}

#[test]
fn published_inline_schema_contracts_reload_equivalently() {
    for (case, name) in [
        ("sap", "ZMATERIAL_AVAILABILITY"),
        ("rpc_literal", "StockLedger"),
        ("doc_bare", "CustomerDirectory"),
        ("axis2", "TrackingService"),
        ("one_way", "AuditTrail"),
    ] {
        let (set, text) = published(case, name);
        assert!(
            text.contains(&format!("location=\"{BASE}/{name}\"")),
            "{case}: {text}"
        );
        let files = MemFiles::default().with("p/x.wsdl", &text);
        let again = match load_mem(&files, &["p/x.wsdl"]) {
            Ok(s) => s,
            Err(e) => panic!("{case}: {e:?}"),
        };
        assert_eq!(shape(&again), shape(&set), "{case}");
    }
}

#[test]
fn published_cxf_references_schemas_through_the_facade() {
    let (set, text) = published("cxf", "OrderService");
    let (contract, _) = set.service("OrderService").expect("OrderService");
    assert!(
        text.contains(&format!(
            "schemaLocation=\"{BASE}/OrderService?xsd=order-types.xsd\""
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("location=\"{BASE}/OrderService\"")),
        "{text}"
    );
    let types =
        publish::xsd(contract, "order-types.xsd", BASE, "OrderService").expect("order-types.xsd");
    assert!(types.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"));
    assert!(
        types.contains(&format!(
            "schemaLocation=\"{BASE}/OrderService?xsd=common%2Fparty.xsd\""
        )),
        "{types}"
    );
    let party = publish::xsd(contract, "common/party.xsd", BASE, "OrderService").expect("party");
    assert!(party.contains("name=\"vatNumber\""));
    for bad in [
        "../cxf/order-types.xsd",
        "OrderService.wsdl",
        "/etc/passwd",
        "common/../order-types.xsd",
        "",
    ] {
        assert_eq!(
            publish::xsd(contract, bad, BASE, "OrderService"),
            None,
            "{bad}"
        );
    }

    // A client that fetches every ?xsd= link gets the same contract: store
    // each document where its link points, relative to the WSDL.
    let link = format!("{BASE}/OrderService?xsd=");
    let local = |s: &str| s.replace(&link, "").replace("%2F", "/");
    let mut files = MemFiles::default().with("p/OrderService.wsdl", &local(&text));
    for name in contract.imported.keys() {
        let body = publish::xsd(contract, name, BASE, "OrderService").unwrap_or_default();
        files = files.with(&format!("p/{name}"), &local(&body));
    }
    let again = load_mem(&files, &["p/OrderService.wsdl"]).expect("published contract loads");
    assert_eq!(shape(&again), shape(&set));
}

#[test]
fn published_wsdl_import_is_served_as_an_imported_document() {
    let (set, text) = published("cxf_split", "ShipmentService");
    let (contract, _) = set.service("ShipmentService").expect("ShipmentService");
    assert!(
        text.contains(&format!(
            "location=\"{BASE}/ShipmentService?xsd=ShipmentPort.wsdl\""
        )),
        "{text}"
    );
    let port =
        publish::xsd(contract, "ShipmentPort.wsdl", BASE, "ShipmentService").expect("port wsdl");
    assert!(port.contains("name=\"bookShipment\""));
}

// ---------------------------------------------------------------------------
// Schema cross-checks (need the XSD engine).

#[test]
fn parts_naming_undeclared_elements_or_types_are_refused() {
    let text = mini_wsdl(
        "Mini",
        "",
        r#"<message name="GhostIn"><part name="g" element="t:Ghost"/></message>
  <message name="RpcIn"><part name="n" type="t:NoSuchType"/></message>"#,
        r#"<operation name="Ghost"><input message="t:GhostIn"/></operation>"#,
        r#"<operation name="Ghost"><input><soap:body use="literal"/></input></operation>"#,
    )
    .replace(
        "</definitions>",
        r#"<portType name="RpcPort"><operation name="Num"><input message="t:RpcIn"/></operation></portType>
  <binding name="RpcBinding" type="t:RpcPort">
    <soap:binding style="rpc" transport="http://schemas.xmlsoap.org/soap/http"/>
    <operation name="Num"><input><soap:body use="literal" namespace="urn:mini:rpc"/></input></operation>
  </binding>
  <service name="MiniRpc">
    <port name="R" binding="t:RpcBinding"><soap:address location="http://x/r"/></port>
  </service>
</definitions>"#,
    );
    let files = MemFiles::default().with("m/ghost.wsdl", &text);
    let errs = load_mem(&files, &["m/ghost.wsdl"])
        .err()
        .unwrap_or_default();
    assert_eq!(
        errs,
        [
            "m/ghost.wsdl:13:27: part g of message {urn:mini}GhostIn references element \
             {urn:mini}Ghost, which no schema declares",
            "m/ghost.wsdl:14:25: part n of message {urn:mini}RpcIn has type \
             {urn:mini}NoSuchType, which no schema defines",
        ]
    );
}

// ---------------------------------------------------------------------------
// The example contracts in wsdl/ and their sample envelopes in examples/.

fn examples() -> ContractSet {
    let files = wsdl_files(Path::new("wsdl"));
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    match wsdl::load_all(&refs, &DiskFiles) {
        Ok(s) => s,
        Err(e) => panic!("wsdl/ did not load:\n{}", render(&e)),
    }
}

#[test]
fn example_contracts_load() {
    let set = examples();
    let ops = |name: &str| -> Vec<String> {
        service(&set, name)
            .operations
            .iter()
            .map(|o| o.name.clone())
            .collect()
    };
    assert_eq!(
        ops("InvoiceService"),
        [
            "ClassifyInvoice",
            "ExtractInvoiceFields",
            "SubmitInvoiceBatch"
        ]
    );
    assert_eq!(
        ops("SupportDesk"),
        ["TriageTicket", "SummarizeTicket", "DraftReply"]
    );
    assert_eq!(ops("PartsCatalog"), ["SuggestSubstitute", "DescribePart"]);
    assert_eq!(ops("DocumentIntake"), ["ProcessDocument", "QueueDocument"]);
    let invoice = service(&set, "InvoiceService");
    assert!(op(invoice, "SubmitInvoiceBatch").is_one_way());
    assert!(!op(invoice, "ClassifyInvoice").is_one_way());
    let both = service(&set, "SupportDesk")
        .operations
        .iter()
        .chain(&service(&set, "DocumentIntake").operations);
    for o in both {
        assert_eq!(
            versions(o),
            [SoapVersion::V11, SoapVersion::V12],
            "{}",
            o.name
        );
    }
    assert_eq!(
        op(service(&set, "PartsCatalog"), "DescribePart").style,
        Style::Rpc
    );
    let (contract, _) = set.service("InvoiceService").expect("InvoiceService");
    assert_eq!(
        contract.imported.keys().collect::<Vec<_>>(),
        ["invoice-types.xsd"]
    );
}

/// Reads the sample request at `path`, a SOAP 1.1 envelope, and checks
/// that its payload dispatches to an operation of `s` and is valid against
/// the contract's schema; returns that operation's name.
fn check_sample(contract: &Contract, s: &Service, path: &Path) -> String {
    let limits = wsdl::contract_limits();
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let envelope = soapgate::xml::read(&bytes, None, &limits)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .root;
    // Services with a SOAP 1.1 binding get a SOAP 1.1 sample.
    assert!(
        envelope.name.is(SoapVersion::V11.envelope_ns(), "Envelope"),
        "{}",
        path.display()
    );
    let body = envelope
        .child(SoapVersion::V11.envelope_ns(), "Body")
        .unwrap_or_else(|| panic!("{}: no Body", path.display()));
    let payload = body
        .elements()
        .next()
        .unwrap_or_else(|| panic!("{}: empty Body", path.display()));
    let o = s
        .operation_for(SoapVersion::V11, &payload.name)
        .unwrap_or_else(|| panic!("{}: no operation takes {}", path.display(), payload.name));
    let violations = match &o.input {
        Payload::Document { elements } => contract.schemas.validate_element(payload, &elements[0]),
        Payload::Rpc { parts, .. } => {
            let accessors: Vec<_> = payload.elements().collect();
            assert_eq!(accessors.len(), parts.len(), "{}", path.display());
            let mut v = Vec::new();
            for (a, p) in accessors.iter().zip(parts) {
                assert_eq!(a.name, QName::local(p.name.as_str()), "{}", path.display());
                match &p.kind {
                    PartKind::Type(t) => v.extend(contract.schemas.validate_typed(
                        a,
                        t,
                        &format!("/{}", p.name),
                    )),
                    PartKind::Element(e) => v.extend(contract.schemas.validate_element(a, e)),
                }
            }
            v
        }
    };
    assert!(violations.is_empty(), "{}: {violations:?}", path.display());
    o.name.clone()
}

/// Every operation of every example service has a sample request at
/// `examples/{Service}/{Operation}.xml` that dispatches to it and is valid
/// against the contract's schema.
#[test]
fn example_envelopes_dispatch_and_validate() {
    let set = examples();
    let mut checked = 0;
    for (contract, s) in set.services() {
        for o in &s.operations {
            let path = Path::new("examples")
                .join(&s.name)
                .join(format!("{}.xml", o.name));
            assert_eq!(
                check_sample(contract, s, &path),
                o.name,
                "{}",
                path.display()
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 10);
    let classify = fs::metadata("examples/InvoiceService/ClassifyInvoice.xml")
        .map(|m| m.len())
        .unwrap_or(0);
    assert!(
        (1024..=2048).contains(&classify),
        "benchmark sample is {classify} bytes"
    );
}

/// Further samples of an example service, one per path through an
/// operation, live in `examples/{Service}/branches/{Operation}-{case}.xml`:
/// each dispatches to the operation its name starts with and is valid
/// against the contract's schema.
#[test]
fn branch_samples_dispatch_and_validate() {
    let set = examples();
    let mut checked = Vec::new();
    for (contract, s) in set.services() {
        let dir = Path::new("examples").join(&s.name).join("branches");
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("an entry").path();
            assert_eq!(
                path.extension().and_then(|x| x.to_str()),
                Some("xml"),
                "{}: only sample requests belong here",
                path.display()
            );
            let stem = path
                .file_stem()
                .and_then(|x| x.to_str())
                .expect("a file name");
            let (named, _case) = stem
                .split_once('-')
                .unwrap_or_else(|| panic!("{}: not {{Operation}}-{{case}}.xml", path.display()));
            assert_eq!(
                check_sample(contract, s, &path),
                named,
                "{}",
                path.display()
            );
            checked.push(format!("{}/{stem}", s.name));
        }
    }
    checked.sort();
    assert_eq!(
        checked,
        [
            "DocumentIntake/ProcessDocument-letter",
            "DocumentIntake/ProcessDocument-receipt"
        ]
    );
}

#[test]
fn example_samples_break_validation_when_tampered() {
    // Guards the test above: a wrong enum value must be reported.
    let set = examples();
    let (contract, _) = set.service("SupportDesk").expect("SupportDesk");
    let text = fs::read_to_string("examples/SupportDesk/DraftReply.xml")
        .unwrap_or_default()
        .replace("<Tone>Apologetic</Tone>", "<Tone>Sarcastic</Tone>");
    let envelope = soapgate::xml::read(text.as_bytes(), None, &wsdl::contract_limits())
        .expect("xml")
        .root;
    let payload = envelope
        .child(SoapVersion::V11.envelope_ns(), "Body")
        .and_then(|b| b.elements().next())
        .expect("payload");
    let v = contract.schemas.validate_element(
        payload,
        &q("http://helpdesk.example.com/SupportDesk/", "DraftReply"),
    );
    assert_eq!(v.len(), 1, "{v:?}");
}
