//! Stored payloads, the one place that reads and writes them. A job's
//! request is stored as a whole SOAP envelope in UTF-8 ([`envelope_text`];
//! jobs put there by a legacy system may hold a bare payload instead,
//! which [`as_envelope`] wraps); its result as the response payload's
//! elements ([`result_elements`] reads them back, for polls and replies
//! alike), or, when its answer was a declared fault, that fault
//! ([`declared_fault`]).

use crate::error::GatewayError;
use crate::soap::{DeclaredFault, Envelope, SOAPGATE_NS, SoapVersion};
use crate::store::{Job, JobStatus};
use crate::xml::{self, Document, Element, Limits, Node, NsDecl, QName};

/// The request as a SOAP envelope of its own version, Body only, with the
/// Envelope's and Body's namespace declarations.
pub fn envelope_text(envelope: &Envelope) -> String {
    let env_ns = envelope.version.envelope_ns();
    let mut decls: Vec<NsDecl> = envelope.scope.decls();
    let prefix = match decls
        .iter()
        .find(|d| d.uri == env_ns && !d.prefix.is_empty())
    {
        Some(d) => d.prefix.clone(),
        None => {
            let mut p = "soapenv".to_string();
            while decls.iter().any(|d| d.prefix == p) {
                p.push('_');
            }
            decls.push(NsDecl {
                prefix: p.clone(),
                uri: env_ns.to_string(),
            });
            p
        }
    };
    let mut body = Element::new(QName::new(env_ns, "Body"));
    body.prefix = Some(prefix.clone());
    body.children = envelope.body.iter().cloned().map(Node::Element).collect();
    let mut root = Element::new(QName::new(env_ns, "Envelope"));
    root.prefix = Some(prefix);
    root.ns_decls = decls;
    root.push_child(body);
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>{}",
        xml::write_element(&root)
    )
}

/// The stored payload as envelope bytes: a SOAP envelope (1.1 or 1.2) as
/// is, anything else as the payload of a SOAP 1.1 envelope.
pub fn as_envelope(payload: &str, limits: &Limits) -> Result<Vec<u8>, GatewayError> {
    let doc = xml::read_str(payload, limits)?;
    Ok(envelope_bytes(doc, payload.as_bytes()))
}

/// A request as envelope bytes, given the document read from `bytes`:
/// `bytes` as they are when the document is a SOAP envelope (1.1 or 1.2),
/// else the document as the payload of a SOAP 1.1 envelope.
pub fn envelope_bytes(doc: Document, bytes: &[u8]) -> Vec<u8> {
    if doc.root.name.local == "Envelope"
        && SoapVersion::from_envelope_ns(&doc.root.name.ns).is_some()
    {
        return bytes.to_vec();
    }
    let envelope = crate::soap::response::envelope(SoapVersion::V11, Vec::new(), vec![doc.root]);
    xml::write_document(&envelope, xml::Charset::Utf8)
}

/// The SOAP version a stored request speaks: its envelope's, or 1.1 for a
/// bare payload (and for anything unreadable).
pub fn request_version(request: &str, limits: &Limits) -> SoapVersion {
    xml::read_with(request.as_bytes(), None, limits, &xml::TreeBudget::REQUEST)
        .ok()
        .filter(|doc| doc.root.name.local == "Envelope")
        .and_then(|doc| SoapVersion::from_envelope_ns(&doc.root.name.ns))
        .unwrap_or(SoapVersion::V11)
}

/// The first payload element of an envelope, or the element itself when it
/// is not an envelope.
pub fn payload_of(root: Element) -> Option<Element> {
    let Some(version) = SoapVersion::from_envelope_ns(&root.name.ns) else {
        return Some(root);
    };
    let body = root.child(version.envelope_ns(), "Body")?;
    body.elements().next().cloned()
}

/// A stored response payload: one or more elements (with or without an
/// XML declaration), or a whole SOAP envelope whose Body holds them.
pub fn result_elements(text: &str) -> Result<Vec<Element>, xml::XmlError> {
    let mut t = text.trim_start();
    if t.starts_with("<?xml")
        && let Some(end) = t.find("?>")
    {
        t = t[end + 2..].trim_start();
    }
    let wrapped = format!("<sg:r xmlns:sg=\"{SOAPGATE_NS}\">{t}</sg:r>");
    let doc = xml::read_str(&wrapped, &crate::contract::wsdl::contract_limits())?;
    let mut elements: Vec<Element> = doc
        .root
        .children
        .into_iter()
        .filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
        .collect();
    if let [only] = elements.as_slice()
        && only.name.local == "Envelope"
        && SoapVersion::from_envelope_ns(&only.name.ns).is_some()
        && let Some(body) = only.child(&only.name.ns, "Body")
    {
        elements = body.elements().cloned().collect();
    }
    Ok(elements)
}

/// The declared fault a FAILED job answered, kept in its result payload
/// as a SOAP 1.1 `soap:Fault` under the fault's name (its `fault_code`).
/// `None` for every other job.
pub fn declared_fault(job: &Job) -> Option<DeclaredFault> {
    if job.status != JobStatus::Failed {
        return None;
    }
    let name = job.fault_code.as_deref()?;
    let text = job
        .result_payload
        .as_deref()
        .filter(|t| !t.trim().is_empty())?;
    let elements = result_elements(text).ok()?;
    DeclaredFault::from_stored(name, elements.first()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_payloads_are_wrapped_and_envelopes_kept() {
        let limits = Limits::default();
        let bare = "<?xml version=\"1.0\"?><a:Ping xmlns:a=\"urn:a\">x</a:Ping>";
        let wrapped = as_envelope(bare, &limits).expect("wraps");
        let doc = xml::read(&wrapped, None, &limits).expect("reads back");
        assert_eq!(doc.root.name.local, "Envelope");
        assert_eq!(doc.root.name.ns, SoapVersion::V11.envelope_ns());
        let env = format!(
            "<e:Envelope xmlns:e=\"{}\"><e:Body><a:Ping xmlns:a=\"urn:a\"/></e:Body></e:Envelope>",
            SoapVersion::V12.envelope_ns()
        );
        assert_eq!(as_envelope(&env, &limits).expect("kept"), env.as_bytes());
        let err = as_envelope("<a:Ping xmlns:a=\"urn:a\">", &limits).expect_err("malformed");
        assert_eq!(err.code().as_str(), "MALFORMED_XML");
    }
}
