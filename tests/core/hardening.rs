//! Hostile input that stays inside every documented cap and still costs too
//! much ("Hardening", items 1 and 2). Each test asserts the work or memory
//! a document takes, never the time: the reader's count of namespace
//! bindings examined, or the heap bytes of the tree it builds (what
//! `Element::heap_size` counts: every vector's and string's capacity, at
//! the allocator's 8-byte granularity; the package forbids `unsafe`, so no
//! counting allocator). The budget of bodies parsed at once is tested
//! where it lives, in `src/http/soap.rs`.
//!
//! 1. Namespace scan: resolving a name used to compare it with every
//!    binding in scope; 95 levels of 100 decoy declarations made each of
//!    half a million names cost 9,500 comparisons.
//! 2. Memory amplification: a body of two million `<x/>` used to grow the
//!    heap 48 times its size.

use std::path::Path;

use soapgate::contract::ContractSet;
use soapgate::error::GatewayError;
use soapgate::files::load_contracts;
use soapgate::pipeline::{CallContext, Inbound, prepare};
use soapgate::soap::{ErrorCode, SoapVersion};
use soapgate::xml::{self, Limits, NsScope, TreeBudget, XmlErrorKind};

// ---------------------------------------------------------------------------
// Documents.

const SOAP11: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const HELPDESK: &str = "http://example.test/helpdesk";

fn contracts() -> ContractSet {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/http");
    load_contracts(&dir).unwrap_or_else(|e| panic!("fixture refused: {e:?}"))
}

fn envelope(payload: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope xmlns:soap=\"{SOAP11}\"><soap:Body>{payload}</soap:Body></soap:Envelope>"
    )
}

/// The namespace-scan shape: `levels` nested elements declaring `decls`
/// prefixes each, none used, inside one that declares `p`; then `children`
/// elements with `attrs` attributes in `p` each. Every name resolved the
/// old way compared itself with all `levels × decls` decoys.
fn namespace_scan(levels: usize, decls: usize, children: usize, attrs: usize) -> String {
    let mut doc = format!("<t:Triage xmlns:t=\"{HELPDESK}\" xmlns:p=\"urn:p\">");
    for level in 0..levels {
        doc.push_str("<d");
        for j in 0..decls {
            doc.push_str(&format!(" xmlns:d{level}x{j}=\"urn:decoy:{level}:{j}\""));
        }
        doc.push('>');
    }
    for _ in 0..children {
        doc.push_str("<c");
        for a in 0..attrs {
            doc.push_str(&format!(" p:a{a}=\"\""));
        }
        doc.push_str("/>");
    }
    for _ in 0..levels {
        doc.push_str("</d>");
    }
    doc.push_str("</t:Triage>");
    envelope(&doc)
}

/// Two million `<x/>` in groups of 50,000 (the cap on children), in the
/// Helpdesk payload: 8 MB.
fn wide() -> String {
    let group = format!("<g>{}</g>", "<x/>".repeat(50_000));
    envelope(&format!(
        "<Triage xmlns=\"{HELPDESK}\">{}</Triage>",
        group.repeat(40)
    ))
}

fn prepare_bytes(contracts: &ContractSet, body: &[u8]) -> Result<(), GatewayError> {
    let inbound = Inbound {
        charset: None,
        version: Some(SoapVersion::V11),
        action: None,
    };
    let mut ctx = CallContext::new("Helpdesk", inbound.version);
    prepare(contracts, &inbound, body, &Limits::default(), &mut ctx).map(|_| ())
}

fn tree_too_large(e: &GatewayError) -> bool {
    matches!(e, GatewayError::Xml(x) if matches!(x.kind, XmlErrorKind::TreeTooLarge(_)))
}

// ---------------------------------------------------------------------------
// 1. Namespace resolution costs O(1) per name.

#[test]
fn resolving_a_name_looks_at_one_binding_however_many_are_in_scope() {
    // 95 × 100 decoys (every cap respected: depth 98, 100 declarations and
    // 499 attributes an element), 40 children of 499 attributes.
    let doc = namespace_scan(95, 100, 40, 499);
    let (read, stats) = xml::read_measured(
        doc.as_bytes(),
        None,
        &Limits::default(),
        &TreeBudget::UNLIMITED,
    );
    let root = read.expect("the document is well-formed and within the caps");
    assert_eq!(root.root.name.local, "Envelope");
    // Every element and attribute name is resolved once.
    let names = 2 + 1 + 95 + 40 * 500;
    assert_eq!(stats.names_resolved, names);
    assert!(
        stats.bindings_examined <= stats.names_resolved,
        "{} bindings examined to resolve {} names ({:.0} a name): resolution \
         scans the bindings in scope",
        stats.bindings_examined,
        stats.names_resolved,
        stats.bindings_examined as f64 / stats.names_resolved as f64,
    );

    // The same count with no decoys: the decoys cost nothing per name.
    let plain = namespace_scan(95, 0, 40, 499);
    let (_, plain_stats) = xml::read_measured(
        plain.as_bytes(),
        None,
        &Limits::default(),
        &TreeBudget::UNLIMITED,
    );
    assert_eq!(plain_stats.names_resolved, names);
    assert!(stats.bindings_examined <= plain_stats.bindings_examined + 95 * 100);
}

#[test]
fn names_resolve_to_the_innermost_binding() {
    let doc = r#"<a xmlns="urn:d" xmlns:p="urn:1"><p:b xmlns:p="urn:2" p:x="1"><c xmlns=""/><p:d/></p:b><p:e p:y="2"/></a>"#;
    let root = xml::read(doc.as_bytes(), None, &Limits::default())
        .expect("reads")
        .root;
    assert_eq!(root.name.ns, "urn:d");
    let b = root.child("urn:2", "b").expect("b in the inner p");
    assert_eq!(b.attr_ns("urn:2", "x"), Some("1"));
    assert!(b.child("", "c").is_some(), "the default undeclared");
    assert!(b.child("urn:2", "d").is_some());
    let e = root.child("urn:1", "e").expect("e back in the outer p");
    assert_eq!(e.attr_ns("urn:1", "y"), Some("2"));
    // An element's end takes its bindings away.
    assert_eq!(
        xml::read(
            b"<a><p:b xmlns:p='urn:1'/><p:c/></a>",
            None,
            &Limits::default()
        )
        .expect_err("p is out of scope")
        .kind,
        XmlErrorKind::UnboundPrefix("p".into())
    );

    // The same rules for NsScope, which validation uses for QName values.
    let mut scope = NsScope::new();
    scope.push(&root);
    assert_eq!(scope.resolve("p"), Some("urn:1"));
    scope.push(b);
    assert_eq!(scope.resolve("p"), Some("urn:2"));
    assert_eq!(scope.resolve(""), Some("urn:d"));
    let decls = scope.decls();
    assert_eq!(
        decls
            .iter()
            .map(|d| (d.prefix.as_str(), d.uri.as_str()))
            .collect::<Vec<_>>(),
        [("", "urn:d"), ("p", "urn:2")]
    );
    scope.pop();
    assert_eq!(scope.resolve("p"), Some("urn:1"));
    scope.pop();
    assert_eq!(scope.resolve("p"), None);
    assert_eq!(scope.resolve("xml"), Some(xml::XML_NS));
}

#[test]
fn the_namespace_scan_document_is_answered() {
    // The issue's whole document is 9 MB; a tenth of the attributes keeps
    // a debug build quick and the shape the same.
    let doc = namespace_scan(95, 100, 100, 499);
    let contracts = contracts();
    let answer = prepare_bytes(&contracts, doc.as_bytes());
    assert!(
        matches!(&answer, Err(e) if e.code() == ErrorCode::InvalidRequest),
        "{answer:?}"
    );
}

// ---------------------------------------------------------------------------
// 2. Memory: the tree costs at most 8 times the body.

/// Read `body` as a request is read, returning the most its tree took.
fn request_tree(body: &str) -> (Result<xml::Document, xml::XmlError>, usize) {
    let (read, stats) = xml::read_measured(
        body.as_bytes(),
        None,
        &Limits::default(),
        &TreeBudget::REQUEST,
    );
    (read, stats.peak_tree_bytes)
}

#[test]
fn a_wide_document_takes_at_most_8_times_its_size() {
    let body = wide();
    // A call refuses it, as too large a tree...
    let err = prepare_bytes(&contracts(), body.as_bytes()).expect_err("refused");
    assert!(tree_too_large(&err), "{err}");
    assert_eq!(err.code(), ErrorCode::MalformedXml);
    // ...having built at most 8 times the body.
    let (read, peak) = request_tree(&body);
    assert!(
        peak <= 8 * body.len(),
        "reading a {} byte body took {} bytes of tree ({:.1} times)",
        body.len(),
        peak,
        peak as f64 / body.len() as f64
    );
    assert!(
        matches!(&read, Err(e) if matches!(e.kind, XmlErrorKind::TreeTooLarge(_))),
        "{read:?}"
    );
    // Unbudgeted (as every request was read before), the same tree.
    let (_, stats) = xml::read_measured(
        body.as_bytes(),
        None,
        &Limits::default(),
        &TreeBudget::UNLIMITED,
    );
    assert!(stats.tree_bytes > 20 * body.len(), "{stats:?}");
}

#[test]
fn other_amplifying_shapes_are_refused_within_8_times_their_size() {
    // One long namespace name, copied into every element and attribute.
    let uri = format!("urn:{}", "u".repeat(60_000));
    let mut long_uri = format!("<p:Triage xmlns:p=\"{uri}\">");
    for _ in 0..100 {
        long_uri.push_str("<p:g>");
        long_uri.push_str(&"<p:x p:a=\"\"/>".repeat(1_000));
        long_uri.push_str("</p:g>");
    }
    long_uri.push_str("</p:Triage>");
    // Attributes: 2,000 elements of 499 short attributes.
    let attr_flood = {
        let attrs: String = (0..499).map(|i| format!(" a{i}=\"\"")).collect();
        format!(
            "<Triage xmlns=\"{HELPDESK}\">{}</Triage>",
            format!("<x{attrs}/>").repeat(2_000)
        )
    };
    for (name, payload) in [("long uri", long_uri), ("attributes", attr_flood)] {
        let body = envelope(&payload);
        let (read, peak) = request_tree(&body);
        assert!(
            peak <= 8 * body.len(),
            "{name}: a {} byte body took {peak} bytes of tree ({:.1} times)",
            body.len(),
            peak as f64 / body.len() as f64
        );
        assert!(
            matches!(&read, Err(e) if matches!(e.kind, XmlErrorKind::TreeTooLarge(_))),
            "{name}: {read:?}"
        );
    }
}

#[test]
fn the_estimate_is_the_tree_and_ordinary_documents_fit() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut seen = 0;
    for service in std::fs::read_dir(&examples).expect("examples/") {
        let service = service.expect("an entry").path();
        for file in std::fs::read_dir(&service).expect("a service folder") {
            let path = file.expect("an entry").path();
            // Sample requests only: an example folder may hold an emulator
            // script too.
            if path.extension().is_none_or(|x| x != "xml") {
                continue;
            }
            let bytes = std::fs::read(&path).expect("an example");
            let (read, stats) =
                xml::read_measured(&bytes, None, &Limits::default(), &TreeBudget::REQUEST);
            let doc = read.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(stats.tree_bytes, doc.root.heap_size(), "{}", path.display());
            seen += 1;
        }
    }
    assert!(seen >= 8, "{seen} examples");

    // A large request that carries text (an attachment, a long document)
    // costs little more than its size and is accepted.
    let text = "QUJD".repeat(2_000_000);
    let body = envelope(&format!(
        "<Triage xmlns=\"{HELPDESK}\"><TicketId>1</TicketId><Subject>s</Subject><Body>{text}</Body></Triage>"
    ));
    let (read, stats) = xml::read_measured(
        body.as_bytes(),
        None,
        &Limits::default(),
        &TreeBudget::REQUEST,
    );
    assert!(read.is_ok(), "{read:?}");
    assert!(stats.peak_tree_bytes <= 2 * body.len(), "{stats:?}");

    // A pretty-printed request of short fields costs more than 8 times
    // its size and is accepted up to the budget's floor.
    let item = "\n      <line><number>1</number><amount>1.00</amount><code>V1</code></line>";
    let body = envelope(&format!(
        "<Triage xmlns=\"{HELPDESK}\">{}\n</Triage>",
        item.repeat(5_000)
    ));
    let (read, stats) = xml::read_measured(
        body.as_bytes(),
        None,
        &Limits::default(),
        &TreeBudget::REQUEST,
    );
    assert!(read.is_ok(), "{read:?}");
    assert!(stats.tree_bytes > 8 * body.len(), "{stats:?}");
    assert!(stats.tree_bytes <= TreeBudget::REQUEST.floor, "{stats:?}");
}

// ---------------------------------------------------------------------------
// Requests that do not come over HTTP (the SQS door) are read under the
// same tree budget.

#[tokio::test]
async fn a_request_through_the_queue_door_is_read_within_the_tree_budget() {
    use std::sync::Arc;

    use soapgate::config::Settings;
    use soapgate::jobs::{JobExecutor, JobRunner, Route};
    use soapgate::live::Live;
    use soapgate::mapping::MappingSet;
    use soapgate::store::Store;

    let store = Store::connect("sqlite::memory:").await.expect("store");
    let live = Arc::new(Live::from_set(
        contracts(),
        MappingSet::default(),
        Settings::default().sources(),
    ));
    let runner = JobRunner::new(store.clone(), live, None, Limits::default());
    let route = Route {
        service: None,
        operation: None,
    };
    let admission = runner.route(&wide(), route, "door-1");
    let failure = admission
        .failure
        .expect("refused as a tree too large, before any run");
    assert_eq!(failure.fault_code, "MALFORMED_XML", "{failure:?}");
    assert!(
        failure.fault_text.contains("bytes of memory to read"),
        "{failure:?}"
    );
    store.close().await;
}
