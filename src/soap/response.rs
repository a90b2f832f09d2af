//! Building the response envelope around a payload (or a fault).

use super::{SOAPGATE_NS, SoapVersion};
use crate::xml::{Element, NsDecl, QName};

/// `Envelope(Header?, Body(payload...))` in `version`, with the envelope
/// namespace bound to a conventional prefix.
pub fn envelope(version: SoapVersion, headers: Vec<Element>, payload: Vec<Element>) -> Element {
    let ns = version.envelope_ns();
    let prefix = match version {
        SoapVersion::V11 => "soap",
        SoapVersion::V12 => "env",
    };
    let el = |local: &str| {
        let mut e = Element::new(QName::new(ns, local));
        e.prefix = Some(prefix.into());
        e
    };
    let mut env = el("Envelope");
    env.ns_decls.push(NsDecl {
        prefix: prefix.into(),
        uri: ns.into(),
    });
    if !headers.is_empty() {
        let mut header = el("Header");
        for h in headers {
            header.push_child(h);
        }
        env.push_child(header);
    }
    let mut body = el("Body");
    for p in payload {
        body.push_child(p);
    }
    env.push_child(body);
    env
}

/// The header block on a degraded response: the answer is not the model's
/// own (a static fallback, a cached answer), and why.
///
/// `policy` is the failure policy that answered and `reason` the fault
/// code the call would otherwise have ended in; the text is `policy:
/// reason`, and both are also given as attributes, for clients that read
/// attributes more easily than text.
///
/// ```xml
/// <sg:Degraded xmlns:sg="urn:soapgate:v1" policy="static" reason="MODEL_THROTTLED">static: MODEL_THROTTLED</sg:Degraded>
/// ```
pub fn degraded_header(policy: &str, reason: &str) -> Element {
    let mut el = Element::new(QName::new(SOAPGATE_NS, "Degraded"));
    el.prefix = Some("sg".into());
    el.ns_decls.push(NsDecl {
        prefix: "sg".into(),
        uri: SOAPGATE_NS.into(),
    });
    for (name, value) in [("policy", policy), ("reason", reason)] {
        el.attrs.push(crate::xml::Attribute {
            name: QName::local(name),
            prefix: None,
            value: value.to_string(),
        });
    }
    el.push_text(format!("{policy}: {reason}"));
    el
}
