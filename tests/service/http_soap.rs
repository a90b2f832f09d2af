//! The HTTP edge end to end, in process: requests go through the real axum
//! router (no socket) against tests/data/http/helpdesk.wsdl, and responses
//! are read back as XML. Covers dispatch, SOAPAction/version checks,
//! validation faults, the XML safety net and charsets.

use std::path::Path;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use soapgate::config::Settings;
use soapgate::files::load_contracts;
use soapgate::http::{AppState, router};
use soapgate::xml::{self, Element, Limits, NsScope, QName};
use tower::ServiceExt;

const HD: &str = "http://example.test/helpdesk";
const S11: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const S12: &str = "http://www.w3.org/2003/05/soap-envelope";
const SG: &str = "urn:soapgate:v1";

fn state(max_body_bytes: usize) -> AppState {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/http");
    let contracts =
        load_contracts(&dir).unwrap_or_else(|e| panic!("fixture contract refused: {e:?}"));
    let settings = Settings {
        max_body_bytes,
        public_url: Some("https://gateway.example.test".into()),
        ..Settings::default()
    };
    AppState::new(
        contracts,
        soapgate::mapping::MappingSet::default(),
        settings,
    )
}

struct Reply {
    status: StatusCode,
    content_type: String,
    body: Vec<u8>,
}

impl Reply {
    fn root(&self) -> Element {
        let charset = self.content_type.split("charset=").nth(1);
        xml::read(&self.body, charset, &Limits::default())
            .unwrap_or_else(|e| {
                panic!(
                    "response is not XML ({e}): {}",
                    String::from_utf8_lossy(&self.body)
                )
            })
            .root
    }

    fn fault(&self) -> Element {
        let root = self.root();
        let ns = root.name.ns.clone();
        let body = root.child(&ns, "Body").expect("Body").clone();
        body.child(&ns, "Fault")
            .unwrap_or_else(|| panic!("no Fault in {}", xml::write_element(&root)))
            .clone()
    }

    /// The soapgate error code from the fault detail.
    fn code(&self) -> String {
        let fault = self.fault();
        let detail = fault
            .child("", "detail")
            .or_else(|| fault.child(S12, "Detail"))
            .expect("detail");
        detail
            .child(SG, "Error")
            .and_then(|e| e.child(SG, "Code"))
            .map(Element::text)
            .expect("sg:Code")
    }

    /// The reply's header blocks, each with the namespace declarations in
    /// scope on it (Envelope's, Header's and its own).
    fn header_blocks(&self) -> Vec<(Element, NsScope)> {
        let root = self.root();
        let ns = root.name.ns.clone();
        let mut scope = NsScope::new();
        scope.push(&root);
        let Some(header) = root.child(&ns, "Header") else {
            return Vec::new();
        };
        scope.push(header);
        header
            .elements()
            .map(|b| {
                let mut inner = scope.clone();
                inner.push(b);
                (b.clone(), inner)
            })
            .collect()
    }

    /// `faultcode` (1.1) or `Code/Value` (1.2) as written, e.g. `soap:Client`.
    fn soap_code(&self) -> String {
        let fault = self.fault();
        if let Some(c) = fault.child("", "faultcode") {
            return c.text();
        }
        fault
            .child(S12, "Code")
            .and_then(|c| c.child(S12, "Value"))
            .map(Element::text)
            .expect("Code/Value")
    }
}

async fn send(state: AppState, req: Request<Body>) -> Reply {
    let resp = router(state)
        .oneshot(req)
        .await
        .expect("router never errors");
    let status = resp.status();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or_default().to_string())
        .unwrap_or_default();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body")
        .to_vec();
    Reply {
        status,
        content_type,
        body,
    }
}

fn post(content_type: &str, action: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut b = Request::post("/soap/Helpdesk").header("content-type", content_type);
    if let Some(a) = action {
        b = b.header("SOAPAction", a);
    }
    b.body(body.into()).expect("request")
}

fn env11(payload: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{S11}"><soap:Body>{payload}</soap:Body></soap:Envelope>"#
    )
}

fn env12(payload: &str) -> String {
    format!(r#"<env:Envelope xmlns:env="{S12}"><env:Body>{payload}</env:Body></env:Envelope>"#)
}

fn triage(subject: &str) -> String {
    format!(
        r#"<Triage xmlns="{HD}"><TicketId>42</TicketId><Subject>{subject}</Subject><Body>Printer on fire</Body></Triage>"#
    )
}

#[tokio::test]
async fn valid_soap11_call_to_unmapped_operation_is_a_server_fault() {
    let r = send(
        state(1 << 20),
        post(
            "text/xml; charset=utf-8",
            Some("\"http://example.test/helpdesk/Triage\""),
            env11(&triage("Help")),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r.content_type.starts_with("text/xml"), "{}", r.content_type);
    assert_eq!(r.soap_code(), "soap:Server");
    assert_eq!(r.code(), "NOT_MAPPED");
}

#[tokio::test]
async fn soap12_call_answers_in_soap12() {
    let ct = r#"application/soap+xml; charset=utf-8; action="http://example.test/helpdesk/Triage""#;
    let r = send(state(1 << 20), post(ct, None, env12(&triage("Help")))).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        r.content_type.starts_with("application/soap+xml"),
        "{}",
        r.content_type
    );
    assert_eq!(r.root().name.ns, S12);
    assert_eq!(r.soap_code(), "env:Receiver");
    assert_eq!(r.code(), "NOT_MAPPED");
}

#[tokio::test]
async fn ws_addressing_message_id_becomes_the_correlation_id() {
    let body = format!(
        r#"<soap:Envelope xmlns:soap="{S11}" xmlns:wsa="http://www.w3.org/2005/08/addressing"><soap:Header><wsa:MessageID>urn:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427</wsa:MessageID></soap:Header><soap:Body>{}</soap:Body></soap:Envelope>"#,
        triage("Help")
    );
    let r = send(state(1 << 20), post("text/xml", None, body)).await;
    let fault = r.fault();
    let id = fault
        .child("", "detail")
        .and_then(|d| d.child(SG, "Error"))
        .and_then(|e| e.child(SG, "CorrelationId"))
        .map(Element::text);
    assert_eq!(
        id.as_deref(),
        Some("urn:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427")
    );
}

#[tokio::test]
async fn generated_correlation_ids_differ_per_call() {
    let id = |r: Reply| {
        r.fault()
            .child("", "detail")
            .and_then(|d| d.child(SG, "Error"))
            .and_then(|e| e.child(SG, "CorrelationId"))
            .map(Element::text)
            .unwrap_or_default()
    };
    let a = id(send(state(1 << 20), post("text/xml", None, env11(&triage("a")))).await);
    let b = id(send(state(1 << 20), post("text/xml", None, env11(&triage("a")))).await);
    assert!(
        a.starts_with("urn:uuid:") && b.starts_with("urn:uuid:") && a != b,
        "{a} {b}"
    );
}

#[tokio::test]
async fn soapaction_naming_another_operation_is_a_client_fault() {
    let r = send(
        state(1 << 20),
        post(
            "text/xml",
            Some("\"http://example.test/helpdesk/Close\""),
            env11(&triage("Help")),
        ),
    )
    .await;
    assert_eq!(r.soap_code(), "soap:Client");
    assert_eq!(r.code(), "ACTION_MISMATCH");
}

/// The fault text says in plain words which action was sent and which the
/// operation expects: no Rust debug notation (`Some("...")`, escaped
/// quotes).
#[tokio::test]
async fn a_wrong_soapaction_fault_names_the_expected_action_plainly() {
    let r = send(
        state(1 << 20),
        post(
            "text/xml",
            Some("\"http://example.test/helpdesk/Close\""),
            env11(&triage("Help")),
        ),
    )
    .await;
    let text = r
        .fault()
        .child("", "faultstring")
        .map(Element::text)
        .expect("faultstring");
    assert!(
        text.contains("http://example.test/helpdesk/Close")
            && text.contains("Triage")
            && text.contains("expects http://example.test/helpdesk/Triage"),
        "{text}"
    );
    for artefact in ["Some(", "None", "\""] {
        assert!(!text.contains(artefact), "{artefact} in {text}");
    }
}

#[tokio::test]
async fn empty_soapaction_is_accepted() {
    let r = send(
        state(1 << 20),
        post("text/xml", Some("\"\""), env11(&triage("Help"))),
    )
    .await;
    assert_eq!(r.code(), "NOT_MAPPED");
}

#[tokio::test]
async fn soap12_action_parameter_is_checked_too() {
    let ct = r#"application/soap+xml; action="http://example.test/helpdesk/Other""#;
    let r = send(state(1 << 20), post(ct, None, env12(&triage("Help")))).await;
    assert_eq!(r.soap_code(), "env:Sender");
    assert_eq!(r.code(), "ACTION_MISMATCH");
}

#[tokio::test]
async fn soap12_envelope_sent_as_text_xml_is_a_version_mismatch() {
    let r = send(
        state(1 << 20),
        post("text/xml", None, env12(&triage("Help"))),
    )
    .await;
    assert_eq!(
        r.root().name.ns,
        S11,
        "the fault speaks the transport's version"
    );
    assert_eq!(r.soap_code(), "soap:VersionMismatch");
    assert_eq!(r.code(), "VERSION_MISMATCH");
}

/// SOAP 1.2 Part 1, Appendix A: a SOAP 1.1 message gets its VersionMismatch
/// fault as a SOAP 1.1 envelope over the SOAP 1.1 binding, which its
/// client can read, with the Upgrade header block saying what is spoken.
#[tokio::test]
async fn soap11_envelope_sent_as_soap12_gets_a_soap11_version_mismatch() {
    let r = send(
        state(1 << 20),
        post("application/soap+xml", None, env11(&triage("Help"))),
    )
    .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        r.root().name.ns,
        S11,
        "the fault speaks the client's SOAP 1.1"
    );
    assert!(r.content_type.starts_with("text/xml"), "{}", r.content_type);
    assert_eq!(r.soap_code(), "soap:VersionMismatch");
    assert_eq!(r.code(), "VERSION_MISMATCH");
    assert_upgrade(&r);
    // Its mustUnderstand header is not judged: the version is wrong first.
    let body = format!(
        r#"<soap:Envelope xmlns:soap="{S11}"><soap:Header><t:Tx xmlns:t="urn:tx" soap:mustUnderstand="1">1</t:Tx></soap:Header><soap:Body>{}</soap:Body></soap:Envelope>"#,
        triage("x")
    );
    let r = send(state(1 << 20), post("application/soap+xml", None, body)).await;
    assert_eq!(r.soap_code(), "soap:VersionMismatch");
}

/// The `env:Upgrade` header block of a VersionMismatch fault (SOAP 1.2
/// Part 1, 5.4.7): the envelopes spoken here, SOAP 1.2 first.
fn assert_upgrade(r: &Reply) {
    let blocks = r.header_blocks();
    let (upgrade, scope) = blocks
        .iter()
        .find(|(b, _)| b.name.is(S12, "Upgrade"))
        .unwrap_or_else(|| {
            panic!(
                "no env:Upgrade header: {}",
                String::from_utf8_lossy(&r.body)
            )
        });
    let supported: Vec<QName> = upgrade
        .children_named(S12, "SupportedEnvelope")
        .map(|e| {
            let mut scope = scope.clone();
            scope.push(e);
            scope
                .resolve_qname(e.attr("qname").expect("qname"))
                .expect("the qname's prefix is declared")
        })
        .collect();
    assert_eq!(
        supported,
        vec![QName::new(S12, "Envelope"), QName::new(S11, "Envelope")]
    );
}

/// SOAP 1.2 Part 2, 7.5.1.2: a Sender fault is HTTP 400; a Receiver fault
/// stays 500, and so does every SOAP 1.1 fault (SOAP 1.1, 6.2).
#[tokio::test]
async fn soap12_sender_faults_are_400_and_receiver_faults_500() {
    let wrong_action = r#"application/soap+xml; action="http://example.test/helpdesk/Close""#;
    let r = send(
        state(1 << 20),
        post(wrong_action, None, env12(&triage("Help"))),
    )
    .await;
    assert_eq!(r.soap_code(), "env:Sender");
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let long = "x".repeat(41);
    let r = send(
        state(1 << 20),
        post("application/soap+xml", None, env12(&triage(&long))),
    )
    .await;
    assert_eq!(r.code(), "INVALID_REQUEST");
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = send(
        state(1 << 20),
        post("application/soap+xml", None, env12(&triage("Help"))),
    )
    .await;
    assert_eq!(r.soap_code(), "env:Receiver");
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    let r = send(
        state(1 << 20),
        post(
            "text/xml",
            Some("\"http://example.test/helpdesk/Close\""),
            env11(&triage("Help")),
        ),
    )
    .await;
    assert_eq!(r.soap_code(), "soap:Client");
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
}

/// SOAP 1.2 Part 1, 5.4.8: a MustUnderstand fault names each header block
/// not understood in an `env:NotUnderstood` header block, its `qname`
/// resolvable where it stands.
#[tokio::test]
async fn soap12_must_understand_fault_names_every_header_not_understood() {
    let body = format!(
        r#"<env:Envelope xmlns:env="{S12}"><env:Header>
             <t:Tx xmlns:t="urn:tx" env:mustUnderstand="true">1</t:Tx>
             <q:Quota xmlns:q="urn:quota" env:mustUnderstand="1">5</q:Quota>
             <o:Optional xmlns:o="urn:optional">x</o:Optional>
           </env:Header><env:Body>{}</env:Body></env:Envelope>"#,
        triage("x")
    );
    let r = send(state(1 << 20), post("application/soap+xml", None, body)).await;
    assert_eq!(r.soap_code(), "env:MustUnderstand");
    assert_eq!(r.code(), "MUST_UNDERSTAND");
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    let named: Vec<QName> = r
        .header_blocks()
        .iter()
        .filter(|(b, _)| b.name.is(S12, "NotUnderstood"))
        .map(|(b, scope)| {
            scope
                .resolve_qname(b.attr("qname").expect("qname"))
                .expect("the qname's prefix is declared")
        })
        .collect();
    assert_eq!(
        named,
        vec![QName::new("urn:tx", "Tx"), QName::new("urn:quota", "Quota")],
        "{}",
        String::from_utf8_lossy(&r.body)
    );
}

/// An envelope in no SOAP namespace, posted as SOAP 1.2, is answered in
/// SOAP 1.2 with the Upgrade header block.
#[tokio::test]
async fn soap12_version_mismatch_carries_an_upgrade_header() {
    let body = format!(
        r#"<e:Envelope xmlns:e="urn:not-soap"><e:Body>{}</e:Body></e:Envelope>"#,
        triage("x")
    );
    let r = send(state(1 << 20), post("application/soap+xml", None, body)).await;
    assert_eq!(r.root().name.ns, S12);
    assert_eq!(r.soap_code(), "env:VersionMismatch");
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_upgrade(&r);
}

#[tokio::test]
async fn unknown_envelope_namespace_is_a_version_mismatch() {
    let body = format!(
        r#"<e:Envelope xmlns:e="urn:not-soap"><e:Body>{}</e:Body></e:Envelope>"#,
        triage("x")
    );
    let r = send(state(1 << 20), post("text/xml", None, body)).await;
    assert_eq!(r.code(), "VERSION_MISMATCH");
}

#[tokio::test]
async fn operation_bound_only_for_soap11_is_unknown_over_soap12() {
    let r = send(
        state(1 << 20),
        post(
            "application/soap+xml",
            None,
            env12(&format!(
                r#"<Close xmlns="{HD}"><TicketId>1</TicketId></Close>"#
            )),
        ),
    )
    .await;
    assert_eq!(r.code(), "UNKNOWN_OPERATION");
    let r = send(
        state(1 << 20),
        post(
            "text/xml",
            None,
            env11(&format!(
                r#"<Close xmlns="{HD}"><TicketId>1</TicketId></Close>"#
            )),
        ),
    )
    .await;
    assert_eq!(r.code(), "NOT_MAPPED");
}

#[tokio::test]
async fn unknown_payload_is_unknown_operation() {
    let r = send(
        state(1 << 20),
        post("text/xml", None, env11(r#"<Reboot xmlns="urn:x"/>"#)),
    )
    .await;
    assert_eq!(r.soap_code(), "soap:Client");
    assert_eq!(r.code(), "UNKNOWN_OPERATION");
}

#[tokio::test]
async fn namespaces_are_matched_by_uri_not_prefix() {
    let payload = format!(
        r#"<hd:Triage xmlns:hd="{HD}"><hd:TicketId>7</hd:TicketId><hd:Subject>s</hd:Subject><hd:Body>b</hd:Body></hd:Triage>"#
    );
    let r = send(state(1 << 20), post("text/xml", None, env11(&payload))).await;
    assert_eq!(r.code(), "NOT_MAPPED");
    let wrong_ns = triage("s").replace(HD, "http://example.test/other");
    let r = send(state(1 << 20), post("text/xml", None, env11(&wrong_ns))).await;
    assert_eq!(r.code(), "UNKNOWN_OPERATION");
}

#[tokio::test]
async fn schema_violation_names_the_path_and_rule() {
    let long = "x".repeat(41);
    let payload = format!(
        r#"<Triage xmlns="{HD}"><TicketId>forty-two</TicketId><Subject>{long}</Subject><Body>b</Body></Triage>"#
    );
    let r = send(state(1 << 20), post("text/xml", None, env11(&payload))).await;
    assert_eq!(r.soap_code(), "soap:Client");
    assert_eq!(r.code(), "INVALID_REQUEST");
    let text = String::from_utf8_lossy(&r.body).to_string();
    assert!(text.contains(r#"path="/Triage/TicketId""#), "{text}");
    assert!(text.contains(r#"path="/Triage/Subject""#), "{text}");
    assert!(text.contains("maxLength"), "{text}");
}

#[tokio::test]
async fn missing_required_element_is_invalid() {
    let payload = format!(r#"<Triage xmlns="{HD}"><TicketId>1</TicketId><Body>b</Body></Triage>"#);
    let r = send(state(1 << 20), post("text/xml", None, env11(&payload))).await;
    assert_eq!(r.code(), "INVALID_REQUEST");
}

#[tokio::test]
async fn rpc_literal_dispatches_on_the_wrapper_in_the_binding_namespace() {
    let ok = r#"<e:Echo xmlns:e="urn:echo"><text>hi</text><times>3</times></e:Echo>"#;
    let req = Request::post("/soap/Echo")
        .header("content-type", "text/xml")
        .body(Body::from(env11(ok)))
        .expect("req");
    assert_eq!(send(state(1 << 20), req).await.code(), "NOT_MAPPED");
    let bad = r#"<e:Echo xmlns:e="urn:echo"><text>hi</text><times>three</times></e:Echo>"#;
    let req = Request::post("/soap/Echo")
        .header("content-type", "text/xml")
        .body(Body::from(env11(bad)))
        .expect("req");
    assert_eq!(send(state(1 << 20), req).await.code(), "INVALID_REQUEST");
}

/// WS-I Basic Profile R2211: an rpc/literal part accessor is never nil.
/// It is refused as a document/literal element that is not nillable is,
/// with a violation naming the part, instead of reaching the model as an
/// empty value.
#[tokio::test]
async fn rpc_literal_part_accessor_with_xsi_nil_is_invalid() {
    const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";
    for nil in ["true", "1", " true "] {
        let payload = format!(
            r#"<e:Echo xmlns:e="urn:echo" xmlns:xsi="{XSI}"><text xsi:nil="{nil}"/><times>3</times></e:Echo>"#
        );
        let req = Request::post("/soap/Echo")
            .header("content-type", "text/xml")
            .body(Body::from(env11(&payload)))
            .expect("req");
        let r = send(state(1 << 20), req).await;
        assert_eq!(r.soap_code(), "soap:Client", "xsi:nil={nil:?}");
        assert_eq!(r.code(), "INVALID_REQUEST", "xsi:nil={nil:?}");
        let fault = r.fault();
        let violations: Vec<(String, String)> = fault
            .child("", "detail")
            .and_then(|d| d.child(SG, "Error"))
            .map(|e| {
                e.children_named(SG, "Violation")
                    .map(|v| {
                        (
                            v.attr("path").unwrap_or_default().to_string(),
                            v.attr("rule").unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(violations.len(), 1, "{violations:?}");
        let (path, rule) = &violations[0];
        assert_eq!(path, "/Echo/text");
        assert!(rule.contains("part text") && rule.contains("nil"), "{rule}");
    }
    // xsi:nil="false" says nothing: the part is read as usual.
    let payload = format!(
        r#"<e:Echo xmlns:e="urn:echo" xmlns:xsi="{XSI}"><text xsi:nil="false">hi</text><times>3</times></e:Echo>"#
    );
    let req = Request::post("/soap/Echo")
        .header("content-type", "text/xml")
        .body(Body::from(env11(&payload)))
        .expect("req");
    assert_eq!(send(state(1 << 20), req).await.code(), "NOT_MAPPED");
}

#[tokio::test]
async fn oversize_body_with_content_length_gets_413_before_parsing() {
    let body = env11(&triage(&"y".repeat(5000)));
    let r = send(state(4096), post("text/xml", None, body)).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.code(), "PAYLOAD_TOO_LARGE");
}

#[tokio::test]
async fn oversize_chunked_body_gets_413() {
    // A streamed body has no Content-Length, as with chunked encoding.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..100).map(|_| Ok(vec![b' '; 100])).collect();
    let body = Body::from_stream(futures_stream(chunks));
    let r = send(state(4096), post("text/xml", None, body)).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.code(), "PAYLOAD_TOO_LARGE");
}

fn futures_stream(
    items: Vec<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    tokio_stream::iter(items)
}

#[tokio::test]
async fn doctype_is_refused_and_no_entity_is_expanded() {
    let body = format!(
        r#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><soap:Envelope xmlns:soap="{S11}"><soap:Body><Triage xmlns="{HD}"><TicketId>1</TicketId><Subject>&xxe;</Subject><Body>b</Body></Triage></soap:Body></soap:Envelope>"#
    );
    let r = send(state(1 << 20), post("text/xml", None, body)).await;
    assert_eq!(r.code(), "MALFORMED_XML");
    assert!(
        !String::from_utf8_lossy(&r.body).contains("root:"),
        "no file content may leak"
    );
}

#[tokio::test]
async fn invalid_utf8_is_an_encoding_fault() {
    let mut body = env11(&triage("Help")).into_bytes();
    let at = body.len() - 60;
    body[at] = 0xFF;
    let r = send(state(1 << 20), post("text/xml; charset=utf-8", None, body)).await;
    assert_eq!(r.code(), "INVALID_ENCODING");
}

#[tokio::test]
async fn latin1_request_gets_a_latin1_response() {
    let text = env11(&triage("Müller")).replace("utf-8", "iso-8859-1");
    let bytes: Vec<u8> = text
        .chars()
        .map(|c| u8::try_from(u32::from(c)).expect("latin-1"))
        .collect();
    let r = send(
        state(1 << 20),
        post("text/xml; charset=iso-8859-1", None, bytes),
    )
    .await;
    assert!(
        r.content_type.to_ascii_lowercase().contains("iso-8859-1"),
        "{}",
        r.content_type
    );
    assert_eq!(r.code(), "NOT_MAPPED");
}

#[tokio::test]
async fn utf16_request_gets_a_utf16_response() {
    let text = env11(&triage("Grüße")).replace("utf-8", "utf-16");
    let mut bytes = vec![0xFF, 0xFE];
    for u in text.encode_utf16() {
        bytes.extend_from_slice(&u.to_le_bytes());
    }
    let r = send(state(1 << 20), post("text/xml", None, bytes)).await;
    assert!(
        r.content_type.to_ascii_lowercase().contains("utf-16"),
        "{}",
        r.content_type
    );
    assert!(
        r.body.starts_with(&[0xFF, 0xFE]) || r.body.starts_with(&[0xFE, 0xFF]),
        "BOM expected"
    );
    assert_eq!(r.code(), "NOT_MAPPED");
}

#[tokio::test]
async fn unknown_must_understand_header_is_refused() {
    let body = format!(
        r#"<soap:Envelope xmlns:soap="{S11}"><soap:Header><t:Tx xmlns:t="urn:tx" soap:mustUnderstand="1">1</t:Tx></soap:Header><soap:Body>{}</soap:Body></soap:Envelope>"#,
        triage("x")
    );
    let r = send(state(1 << 20), post("text/xml", None, body)).await;
    assert_eq!(r.soap_code(), "soap:MustUnderstand");
}

#[tokio::test]
async fn non_soap_media_type_is_refused() {
    let r = send(state(1 << 20), post("application/json", None, "{}")).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(r.code(), "UNSUPPORTED_MEDIA_TYPE");
}

#[tokio::test]
async fn empty_body_element_is_an_envelope_fault() {
    let r = send(state(1 << 20), post("text/xml", None, env11(""))).await;
    assert_eq!(r.code(), "INVALID_ENVELOPE");
}

#[tokio::test]
async fn unknown_service_is_404() {
    let req = Request::post("/soap/Nope")
        .header("content-type", "text/xml")
        .body(Body::from(env11(&triage("x"))))
        .expect("req");
    let r = send(state(1 << 20), req).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "UNKNOWN_SERVICE");
}

#[tokio::test]
async fn wsdl_is_published_with_the_public_address() {
    let req = Request::get("/soap/Helpdesk?wsdl")
        .body(Body::empty())
        .expect("req");
    let r = send(state(1 << 20), req).await;
    assert_eq!(r.status, StatusCode::OK);
    let text = String::from_utf8_lossy(&r.body).to_string();
    assert!(
        text.contains("https://gateway.example.test/soap/Helpdesk"),
        "{text}"
    );
    assert!(!text.contains("legacy.example.test"), "{text}");
    let req = Request::get("/soap/Nope?wsdl")
        .body(Body::empty())
        .expect("req");
    assert_eq!(
        send(state(1 << 20), req).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn healthz_answers() {
    let req = Request::get("/healthz").body(Body::empty()).expect("req");
    assert_eq!(send(state(1 << 20), req).await.status, StatusCode::OK);
}
