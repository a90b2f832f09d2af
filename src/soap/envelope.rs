//! Reading a request envelope: version, headers, body payload, and the few
//! header blocks soapgate understands (WS-Addressing today).

use super::SoapVersion;
use crate::xml::{Element, Node, NsScope, Pos, QName};

/// WS-Addressing namespaces seen in the wild (2005/08 is the W3C
/// recommendation, 2004/08 the member submission many older stacks send).
pub const WSA_NS: [&str; 2] = [
    "http://www.w3.org/2005/08/addressing",
    "http://schemas.xmlsoap.org/ws/2004/08/addressing",
];

/// A parsed SOAP envelope. The body's children are moved out of the tree so
/// the payload is never copied.
#[derive(Debug)]
pub struct Envelope {
    pub version: SoapVersion,
    pub headers: Vec<Element>,
    pub body: Vec<Element>,
    /// `wsa:MessageID`, when the client sent one.
    pub message_id: Option<String>,
    /// `wsa:Action`, when the client sent one.
    pub wsa_action: Option<String>,
    /// The namespace declarations of Envelope and Body, which the payload
    /// may rely on (`xsi:type="tns:X"` with `tns` declared on Envelope).
    pub scope: NsScope,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The root is an `Envelope` in a namespace that is not SOAP 1.1 or 1.2
    /// (SOAP's VersionMismatch case).
    #[error("{}", envelope_ns_text(.0))]
    UnknownEnvelopeNs(String),
    #[error("the document is not a SOAP envelope (root element {0})")]
    NotAnEnvelope(String),
    #[error("{0}")]
    Structure(String),
    /// Header blocks with mustUnderstand that we do not understand, every
    /// one of them (a SOAP 1.2 fault names each in a NotUnderstood block).
    #[error("{} must be understood but not supported here", header_list(.0))]
    MustUnderstand(Vec<QName>),
}

/// Split an envelope into its parts, checking its structure.
pub fn parse_envelope(root: Element) -> Result<Envelope, EnvelopeError> {
    parse_envelope_with(root, &[])
}

/// [`parse_envelope`], with header blocks in the namespaces `understood`
/// taken as understood besides WS-Addressing (a `mustUnderstand` block in
/// them is the caller's to process, not a fault): `wsse:Security` when
/// tenants are configured.
pub fn parse_envelope_with(root: Element, understood: &[&str]) -> Result<Envelope, EnvelopeError> {
    if root.name.local != "Envelope" {
        return Err(EnvelopeError::NotAnEnvelope(root.name.to_string()));
    }
    let version = SoapVersion::from_envelope_ns(&root.name.ns)
        .ok_or_else(|| EnvelopeError::UnknownEnvelopeNs(root.name.ns.clone()))?;
    let env_ns = version.envelope_ns();
    let mut scope = NsScope::new();
    scope.push(&root);

    let mut header: Option<Element> = None;
    let mut body: Option<Element> = None;
    for node in root.children {
        let el = match node {
            Node::Text(t) if t.trim().is_empty() => continue,
            Node::Text(_) => return Err(structure("text is not allowed directly in Envelope")),
            Node::Element(el) => el,
        };
        if el.name.ns != env_ns {
            // SOAP 1.1 allowed trailing blocks after Body; 1.2 forbids them.
            // Neither allows anything before Body that is not Header.
            if body.is_some() && version == SoapVersion::V11 {
                continue;
            }
            return Err(structure(&format!(
                "unexpected element {} in Envelope",
                el.name
            )));
        }
        match el.name.local.as_str() {
            "Header" if header.is_none() && body.is_none() => header = Some(el),
            "Body" if body.is_none() => body = Some(el),
            other => return Err(structure(&format!("unexpected {other} in Envelope"))),
        }
    }
    let body = body.ok_or_else(|| structure("the envelope has no Body"))?;
    scope.push(&body);

    let mut payload = Vec::new();
    for node in body.children {
        match node {
            Node::Element(el) => payload.push(el),
            Node::Text(t) if t.trim().is_empty() => {}
            Node::Text(_) => return Err(structure("text is not allowed directly in Body")),
        }
    }

    let mut env = Envelope {
        version,
        headers: Vec::new(),
        body: payload,
        message_id: None,
        wsa_action: None,
        scope,
    };
    if let Some(h) = header {
        let mut not_understood = Vec::new();
        for block in h.children {
            let Node::Element(block) = block else {
                continue;
            };
            if let Some(name) = env.read_header(block, understood) {
                not_understood.push(name);
            }
        }
        if !not_understood.is_empty() {
            return Err(EnvelopeError::MustUnderstand(not_understood));
        }
    }
    Ok(env)
}

/// The text of [`EnvelopeError::UnknownEnvelopeNs`].
fn envelope_ns_text(ns: &str) -> String {
    let expected = format!(
        "SOAP 1.1 ({}) or SOAP 1.2 ({})",
        super::SOAP11_ENV_NS,
        super::SOAP12_ENV_NS
    );
    if ns.is_empty() {
        format!("the Envelope element is in no namespace; expected {expected}")
    } else {
        format!("the envelope namespace {ns} is neither {expected}")
    }
}

/// `header block {urn:a}A`, or `header blocks {urn:a}A, {urn:b}B`.
fn header_list(names: &[QName]) -> String {
    let list = names
        .iter()
        .map(QName::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    match names.len() {
        1 => format!("header block {list}"),
        _ => format!("header blocks {list}"),
    }
}

impl Envelope {
    /// Takes one header block; its name when it must be understood and is
    /// not.
    fn read_header(&mut self, block: Element, extra: &[&str]) -> Option<QName> {
        let understood = WSA_NS.contains(&block.name.ns.as_str());
        if extra.contains(&block.name.ns.as_str()) {
            // The caller processes it.
        } else if understood {
            match block.name.local.as_str() {
                "MessageID" => self.message_id = non_empty(block.text()),
                "Action" => self.wsa_action = non_empty(block.text()),
                _ => {}
            }
        } else if must_understand(&block, self.version) && targets_us(&block, self.version) {
            return Some(block.name);
        }
        self.headers.push(block);
        None
    }

    /// Where the payload starts, for error messages.
    pub fn payload_pos(&self) -> Pos {
        self.body.first().map(|e| e.pos).unwrap_or_default()
    }
}

fn must_understand(block: &Element, version: SoapVersion) -> bool {
    matches!(
        block
            .attr_ns(version.envelope_ns(), "mustUnderstand")
            .map(str::trim),
        Some("1" | "true")
    )
}

/// Header blocks addressed to another node (SOAP 1.1 `actor`, SOAP 1.2
/// `role`) are not ours to understand, except the "next" and
/// "ultimateReceiver" roles, which every node plays.
fn targets_us(block: &Element, version: SoapVersion) -> bool {
    let ns = version.envelope_ns();
    let role = match version {
        SoapVersion::V11 => block.attr_ns(ns, "actor"),
        SoapVersion::V12 => block.attr_ns(ns, "role"),
    };
    match role.map(str::trim) {
        None | Some("") => true,
        Some("http://schemas.xmlsoap.org/soap/actor/next") => true,
        Some("http://www.w3.org/2003/05/soap-envelope/role/next") => true,
        Some("http://www.w3.org/2003/05/soap-envelope/role/ultimateReceiver") => true,
        Some(_) => false,
    }
}

fn non_empty(s: String) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

fn structure(msg: &str) -> EnvelopeError {
    EnvelopeError::Structure(msg.to_string())
}
