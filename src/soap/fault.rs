//! SOAP faults in both versions, with a detail element in soapgate's own
//! namespace that carries a stable error code and the correlation id:
//!
//! ```xml
//! <sg:Error xmlns:sg="urn:soapgate:v1">
//!   <sg:Code>INVALID_REQUEST</sg:Code>
//!   <sg:Message>The request does not match the service's schema</sg:Message>
//!   <sg:CorrelationId>urn:uuid:...</sg:CorrelationId>
//!   <sg:Violation path="/Invoice/Total" rule="maxInclusive=100 (got 120)"/>
//!   <sg:RetryAfterSeconds>5</sg:RetryAfterSeconds>
//! </sg:Error>
//! ```
//!
//! Only what is safe to show a client goes in here; details for operators
//! go to the log line, which carries the same correlation id.
//!
//! A fault the operation's WSDL declares ([`DeclaredFault`]: a `wsdl:fault`
//! the model chose to answer) carries that fault's own detail element
//! instead, in its namespace, as clients generated from the WSDL expect.

use super::{SOAP11_ENV_NS, SOAP12_ENV_NS, SOAPGATE_NS, SoapVersion};
use crate::xml::{Attribute, Element, NsDecl, QName, XML_NS};

/// The SOAP-level fault code. Names follow SOAP 1.1; SOAP 1.2 renders
/// Client as `Sender` and Server as `Receiver`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultCode {
    VersionMismatch,
    MustUnderstand,
    Client,
    Server,
}

/// soapgate's stable error codes, carried in the fault detail. Clients may
/// branch on these; never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The payload does not match the schema.
    InvalidRequest,
    /// The body is not well-formed XML, or breaks the XML safety rules.
    MalformedXml,
    /// The bytes cannot be decoded in the declared or detected charset.
    InvalidEncoding,
    /// The document is well-formed but not a usable SOAP envelope.
    InvalidEnvelope,
    /// The envelope's SOAP version does not match the HTTP binding used.
    VersionMismatch,
    /// A mustUnderstand header block soapgate does not support.
    MustUnderstand,
    /// The Content-Type is not a SOAP media type.
    UnsupportedMediaType,
    /// No service of that name is served here.
    UnknownService,
    /// No operation of the service takes this payload.
    UnknownOperation,
    /// The SOAPAction / action names a different operation than the payload.
    ActionMismatch,
    /// The operation exists in the contract but no mapping serves it.
    NotMapped,
    /// The request body is larger than the configured cap.
    PayloadTooLarge,
    /// The model service refused the request as malformed (our mapping's
    /// doing, not the client's).
    ModelRejectedRequest,
    /// The facade's credentials may not call the configured model.
    ModelAccessDenied,
    /// The configured model does not exist in its region.
    ModelNotFound,
    /// The model did not answer in time.
    ModelTimeout,
    /// The model failed while processing the request.
    ModelError,
    /// The model service is throttling; the detail carries a retry hint.
    ModelThrottled,
    /// The model service is down or unreachable.
    ModelUnavailable,
    /// The model's answer did not fit the response schema, after repairs.
    InvalidModelOutput,
    /// Something went wrong on our side; the log has the details.
    InternalError,
    /// A template of the operation's mapping failed on this (valid)
    /// request; the log names the mapping file and line.
    TemplateError,
    /// `Get{Operation}Result` was asked about a job id this operation
    /// never issued.
    UnknownTicket,
    /// An async or one-way call could not be queued (no job store is
    /// configured, or it is unreachable); nothing was recorded.
    QueueUnavailable,
    /// This instance is at its cap of model calls in flight; the detail
    /// carries a retry hint. Nothing reached the model.
    Overloaded,
    /// Tenants are configured and the call carried no credentials, or
    /// credentials that do not check out (which part failed is logged,
    /// never said).
    AuthenticationFailed,
    /// The authenticated tenant may not call this operation.
    NotAuthorised,
    /// The tenant is over its request rate or tokens per minute; the
    /// detail carries a retry hint.
    RateLimited,
    /// A limit kept across instances (request rate, tokens per minute,
    /// nonces, failed logins) could not be checked, its shared store not
    /// answering, and it is configured to refuse rather than fall back.
    /// Nothing reached the model.
    LimitsUnavailable,
    /// The tenant's token budget for the day or month is used up.
    BudgetExhausted,
    /// The request body did not arrive whole: the client hung up, or sent
    /// it too slowly, before its end. Nothing was done with it.
    RequestIncomplete,
    /// An async or one-way call's idempotency key (its WS-Addressing
    /// MessageID, or the mapping's `idempotency_key`) names a job recorded
    /// for a different request. Nothing was recorded.
    IdempotencyMismatch,
    /// The operation answered one of the faults its WSDL declares (the
    /// model chose it). Never in an `sg:Error`: such a fault carries the
    /// declared detail element; the code labels metrics, usage and audit
    /// rows.
    DeclaredFault,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "INVALID_REQUEST",
            ErrorCode::MalformedXml => "MALFORMED_XML",
            ErrorCode::InvalidEncoding => "INVALID_ENCODING",
            ErrorCode::InvalidEnvelope => "INVALID_ENVELOPE",
            ErrorCode::VersionMismatch => "VERSION_MISMATCH",
            ErrorCode::MustUnderstand => "MUST_UNDERSTAND",
            ErrorCode::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            ErrorCode::UnknownService => "UNKNOWN_SERVICE",
            ErrorCode::UnknownOperation => "UNKNOWN_OPERATION",
            ErrorCode::ActionMismatch => "ACTION_MISMATCH",
            ErrorCode::NotMapped => "NOT_MAPPED",
            ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorCode::ModelRejectedRequest => "MODEL_REJECTED_REQUEST",
            ErrorCode::ModelAccessDenied => "MODEL_ACCESS_DENIED",
            ErrorCode::ModelNotFound => "MODEL_NOT_FOUND",
            ErrorCode::ModelTimeout => "MODEL_TIMEOUT",
            ErrorCode::ModelError => "MODEL_ERROR",
            ErrorCode::ModelThrottled => "MODEL_THROTTLED",
            ErrorCode::ModelUnavailable => "MODEL_UNAVAILABLE",
            ErrorCode::InvalidModelOutput => "INVALID_MODEL_OUTPUT",
            ErrorCode::InternalError => "INTERNAL_ERROR",
            ErrorCode::TemplateError => "TEMPLATE_ERROR",
            ErrorCode::UnknownTicket => "UNKNOWN_TICKET",
            ErrorCode::QueueUnavailable => "QUEUE_UNAVAILABLE",
            ErrorCode::Overloaded => "OVERLOADED",
            ErrorCode::AuthenticationFailed => "AUTHENTICATION_FAILED",
            ErrorCode::NotAuthorised => "NOT_AUTHORISED",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::LimitsUnavailable => "LIMITS_UNAVAILABLE",
            ErrorCode::BudgetExhausted => "BUDGET_EXHAUSTED",
            ErrorCode::RequestIncomplete => "REQUEST_INCOMPLETE",
            ErrorCode::IdempotencyMismatch => "IDEMPOTENCY_MISMATCH",
            ErrorCode::DeclaredFault => "DECLARED_FAULT",
        }
    }

    /// The code stored as text (a job's `fault_code`), back as a value.
    pub fn parse(code: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == code)
    }

    const ALL: [ErrorCode; 33] = [
        ErrorCode::InvalidRequest,
        ErrorCode::MalformedXml,
        ErrorCode::InvalidEncoding,
        ErrorCode::InvalidEnvelope,
        ErrorCode::VersionMismatch,
        ErrorCode::MustUnderstand,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::UnknownService,
        ErrorCode::UnknownOperation,
        ErrorCode::ActionMismatch,
        ErrorCode::NotMapped,
        ErrorCode::PayloadTooLarge,
        ErrorCode::ModelRejectedRequest,
        ErrorCode::ModelAccessDenied,
        ErrorCode::ModelNotFound,
        ErrorCode::ModelTimeout,
        ErrorCode::ModelError,
        ErrorCode::ModelThrottled,
        ErrorCode::ModelUnavailable,
        ErrorCode::InvalidModelOutput,
        ErrorCode::InternalError,
        ErrorCode::TemplateError,
        ErrorCode::UnknownTicket,
        ErrorCode::QueueUnavailable,
        ErrorCode::Overloaded,
        ErrorCode::AuthenticationFailed,
        ErrorCode::NotAuthorised,
        ErrorCode::RateLimited,
        ErrorCode::LimitsUnavailable,
        ErrorCode::BudgetExhausted,
        ErrorCode::RequestIncomplete,
        ErrorCode::IdempotencyMismatch,
        ErrorCode::DeclaredFault,
    ];

    /// Whose fault it is, in SOAP terms (a declared fault's own side is
    /// [`DeclaredFault::code`]; see [`Fault::fault_code`]).
    pub fn fault_code(self) -> FaultCode {
        match self {
            ErrorCode::VersionMismatch => FaultCode::VersionMismatch,
            ErrorCode::MustUnderstand => FaultCode::MustUnderstand,
            ErrorCode::NotMapped
            | ErrorCode::InternalError
            | ErrorCode::TemplateError
            | ErrorCode::QueueUnavailable
            | ErrorCode::LimitsUnavailable
            | ErrorCode::Overloaded
            | ErrorCode::ModelRejectedRequest
            | ErrorCode::ModelAccessDenied
            | ErrorCode::ModelNotFound
            | ErrorCode::ModelTimeout
            | ErrorCode::ModelError
            | ErrorCode::ModelThrottled
            | ErrorCode::ModelUnavailable
            | ErrorCode::InvalidModelOutput => FaultCode::Server,
            _ => FaultCode::Client,
        }
    }
}

/// One schema rule an instance broke, as shown to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultViolation {
    pub path: String,
    pub rule: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub code: ErrorCode,
    /// A message safe to show the client (`faultstring` / `Reason`).
    pub message: String,
    pub correlation_id: String,
    pub violations: Vec<FaultViolation>,
    pub retry_after_secs: Option<u64>,
    /// The header blocks a MustUnderstand fault is about: SOAP 1.2 names
    /// each in an `env:NotUnderstood` header block.
    pub not_understood: Vec<QName>,
    /// A fault the operation's WSDL declares: written with its own code and
    /// detail element instead of soapgate's (`code` is then
    /// [`ErrorCode::DeclaredFault`]).
    pub declared: Option<Box<DeclaredFault>>,
}

/// A fault the operation's WSDL declares (`wsdl:fault`), as answered: its
/// name, whose fault it is, the text and the detail element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredFault {
    /// The `wsdl:fault` name.
    pub name: String,
    /// [`FaultCode::Client`] (`soap:Client`, `env:Sender`) or
    /// [`FaultCode::Server`] (`soap:Server`, `env:Receiver`).
    pub code: FaultCode,
    /// `faultstring` / `env:Reason`.
    pub reason: String,
    /// The declared detail element, validated against the XSD, in its own
    /// namespace.
    pub detail: Element,
}

impl DeclaredFault {
    /// The fault as one SOAP 1.1 `soap:Fault` element: how a job keeps it
    /// (its `result_payload` and `soapgate_results.payload`), whatever the
    /// version of the call that reads it back ([`DeclaredFault::from_stored`]).
    pub fn stored(&self) -> Element {
        let mut fault = Fault::new(ErrorCode::DeclaredFault, self.reason.clone(), "");
        fault.declared = Some(Box::new(self.clone()));
        fault.to_element(SoapVersion::V11)
    }

    /// A fault kept by [`DeclaredFault::stored`], named `name`; `None`
    /// when `el` is not such a fault.
    pub fn from_stored(name: &str, el: &Element) -> Option<DeclaredFault> {
        if !el.name.is(SOAP11_ENV_NS, "Fault") {
            return None;
        }
        let code = match el.child("", "faultcode")?.text().trim() {
            c if c.ends_with(":Client") || c == "Client" => FaultCode::Client,
            c if c.ends_with(":Server") || c == "Server" => FaultCode::Server,
            _ => return None,
        };
        let reason = el.child("", "faultstring").map(Element::text)?;
        let detail = el.child("", "detail")?.elements().next()?.clone();
        Some(DeclaredFault {
            name: name.to_string(),
            code,
            reason,
            detail,
        })
    }
}

impl Fault {
    pub fn new(
        code: ErrorCode,
        message: impl Into<String>,
        correlation_id: impl Into<String>,
    ) -> Self {
        Fault {
            code,
            message: message.into(),
            correlation_id: correlation_id.into(),
            violations: Vec::new(),
            retry_after_secs: None,
            not_understood: Vec::new(),
            declared: None,
        }
    }

    /// A declared fault, answered as the WSDL says.
    pub fn declared(fault: DeclaredFault, correlation_id: impl Into<String>) -> Self {
        let mut out = Fault::new(
            ErrorCode::DeclaredFault,
            fault.reason.clone(),
            correlation_id,
        );
        out.declared = Some(Box::new(fault));
        out
    }

    /// Whose fault it is: a declared fault's own side, else its code's.
    pub fn fault_code(&self) -> FaultCode {
        match &self.declared {
            Some(d) => d.code,
            None => self.code.fault_code(),
        }
    }

    /// The header blocks of the envelope that carries the fault in
    /// `version` (SOAP 1.2 Part 1, 5.4.7 and 5.4.8):
    ///
    /// - a VersionMismatch fault carries `Upgrade`, in the SOAP 1.2
    ///   namespace whatever the envelope's version (Appendix A: a SOAP 1.1
    ///   fault has it too), listing the envelopes spoken here, preferred
    ///   first: `<SupportedEnvelope qname="ns1:Envelope"/>` for SOAP 1.2,
    ///   then SOAP 1.1;
    /// - a SOAP 1.2 MustUnderstand fault carries one
    ///   `<env:NotUnderstood qname="ns1:Block"/>` per header block not
    ///   understood (SOAP 1.1 has no such block).
    ///
    /// Each `qname` prefix is declared on the element carrying it.
    pub fn header_blocks(&self, version: SoapVersion) -> Vec<Element> {
        // In a SOAP 1.2 envelope `env` is the envelope's own prefix; in a
        // SOAP 1.1 one the block declares a prefix of its own.
        let (prefix, own_decl) = match version {
            SoapVersion::V12 => ("env", false),
            SoapVersion::V11 => ("upg", true),
        };
        let block = |local: &str| {
            let mut el = Element::new(QName::new(SOAP12_ENV_NS, local));
            el.prefix = Some(prefix.into());
            el
        };
        let with_qname = |mut el: Element, name: &QName| {
            let value = if name.ns.is_empty() {
                name.local.clone()
            } else {
                el.ns_decls.push(NsDecl {
                    prefix: "ns1".into(),
                    uri: name.ns.clone(),
                });
                format!("ns1:{}", name.local)
            };
            el.attrs.push(Attribute {
                name: QName::local("qname"),
                prefix: None,
                value,
            });
            el
        };
        match self.code.fault_code() {
            FaultCode::VersionMismatch => {
                let mut upgrade = block("Upgrade");
                if own_decl {
                    upgrade.ns_decls.push(NsDecl {
                        prefix: prefix.into(),
                        uri: SOAP12_ENV_NS.into(),
                    });
                }
                for ns in [SOAP12_ENV_NS, SOAP11_ENV_NS] {
                    upgrade.push_child(with_qname(
                        block("SupportedEnvelope"),
                        &QName::new(ns, "Envelope"),
                    ));
                }
                vec![upgrade]
            }
            FaultCode::MustUnderstand if version == SoapVersion::V12 => self
                .not_understood
                .iter()
                .map(|name| with_qname(block("NotUnderstood"), name))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The whole envelope of the fault in `version`: its header blocks
    /// ([`Fault::header_blocks`]) and the fault as the Body's child.
    pub fn envelope(&self, version: SoapVersion) -> Element {
        super::response::envelope(
            version,
            self.header_blocks(version),
            vec![self.to_element(version)],
        )
    }

    /// The fault as the single child of a SOAP Body, in `version`.
    pub fn to_element(&self, version: SoapVersion) -> Element {
        let env = version.envelope_ns();
        let mut fault = Element::new(QName::new(env, "Fault"));
        match version {
            SoapVersion::V11 => {
                // faultcode is a QName: bind a prefix for the envelope
                // namespace right here so the value resolves wherever the
                // fault is embedded.
                fault.prefix = Some("soap".into());
                fault.ns_decls.push(NsDecl {
                    prefix: "soap".into(),
                    uri: env.into(),
                });
                let code = match self.fault_code() {
                    FaultCode::VersionMismatch => "soap:VersionMismatch",
                    FaultCode::MustUnderstand => "soap:MustUnderstand",
                    FaultCode::Client => "soap:Client",
                    FaultCode::Server => "soap:Server",
                };
                fault.push_child(text_el(QName::local("faultcode"), code));
                fault.push_child(text_el(QName::local("faultstring"), &self.message));
                let mut detail = Element::new(QName::local("detail"));
                detail.push_child(self.detail());
                fault.push_child(detail);
            }
            SoapVersion::V12 => {
                fault.prefix = Some("env".into());
                fault.ns_decls.push(NsDecl {
                    prefix: "env".into(),
                    uri: env.into(),
                });
                let value = match self.fault_code() {
                    FaultCode::VersionMismatch => "env:VersionMismatch",
                    FaultCode::MustUnderstand => "env:MustUnderstand",
                    FaultCode::Client => "env:Sender",
                    FaultCode::Server => "env:Receiver",
                };
                let mut code = env_el(env, "Code");
                let mut code_value = text_el(env_q(env, "Value"), value);
                code_value.prefix = Some("env".into());
                code.push_child(code_value);
                fault.push_child(code);
                let mut reason = env_el(env, "Reason");
                let mut text = text_el(env_q(env, "Text"), &self.message);
                text.prefix = Some("env".into());
                text.attrs.push(Attribute {
                    name: QName::new(XML_NS, "lang"),
                    prefix: Some("xml".into()),
                    value: "en".into(),
                });
                reason.push_child(text);
                fault.push_child(reason);
                let mut detail = env_el(env, "Detail");
                detail.push_child(self.detail());
                fault.push_child(detail);
            }
        }
        fault
    }

    /// The detail element: a declared fault's own, else soapgate's
    /// (documented in the module docs).
    fn detail(&self) -> Element {
        if let Some(d) = &self.declared {
            return d.detail.clone();
        }
        let sg = |local: &str| QName::new(SOAPGATE_NS, local);
        let mut err = Element::new(sg("Error"));
        err.prefix = Some("sg".into());
        err.ns_decls.push(NsDecl {
            prefix: "sg".into(),
            uri: SOAPGATE_NS.into(),
        });
        let push = |el: &mut Element, local: &str, text: &str| {
            let mut child = text_el(sg(local), text);
            child.prefix = Some("sg".into());
            el.push_child(child);
        };
        push(&mut err, "Code", self.code.as_str());
        push(&mut err, "Message", &self.message);
        push(&mut err, "CorrelationId", &self.correlation_id);
        for v in &self.violations {
            let mut el = Element::new(sg("Violation"));
            el.prefix = Some("sg".into());
            for (name, value) in [("path", &v.path), ("rule", &v.rule)] {
                el.attrs.push(Attribute {
                    name: QName::local(name),
                    prefix: None,
                    value: value.clone(),
                });
            }
            err.push_child(el);
        }
        if let Some(secs) = self.retry_after_secs {
            push(&mut err, "RetryAfterSeconds", &secs.to_string());
        }
        err
    }
}

fn env_q(env: &str, local: &str) -> QName {
    QName::new(env, local)
}

fn env_el(env: &str, local: &str) -> Element {
    let mut el = Element::new(env_q(env, local));
    el.prefix = Some("env".into());
    el
}

fn text_el(name: QName, text: &str) -> Element {
    let mut el = Element::new(name);
    el.push_text(text);
    el
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_soap11_version_mismatch_carries_the_soap12_upgrade_block() {
        let fault = Fault::new(ErrorCode::VersionMismatch, "Version mismatch", "c-1");
        let text = crate::xml::write_element(&fault.envelope(SoapVersion::V11));
        assert!(
            text.starts_with(
                "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\">\
                 <soap:Header><upg:Upgrade xmlns:upg=\"http://www.w3.org/2003/05/soap-envelope\">\
                 <upg:SupportedEnvelope xmlns:ns1=\"http://www.w3.org/2003/05/soap-envelope\" \
                 qname=\"ns1:Envelope\"/>\
                 <upg:SupportedEnvelope xmlns:ns1=\"http://schemas.xmlsoap.org/soap/envelope/\" \
                 qname=\"ns1:Envelope\"/></upg:Upgrade></soap:Header><soap:Body>\
                 <soap:Fault xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\">\
                 <faultcode>soap:VersionMismatch</faultcode>"
            ),
            "{text}"
        );
    }

    #[test]
    fn only_soap12_must_understand_faults_name_the_blocks() {
        let mut fault = Fault::new(ErrorCode::MustUnderstand, "m", "c-1");
        fault.not_understood = vec![QName::new("urn:tx", "Tx"), QName::local("Bare")];
        let text = crate::xml::write_element(&fault.envelope(SoapVersion::V12));
        assert!(
            text.contains(
                "<env:Header><env:NotUnderstood xmlns:ns1=\"urn:tx\" qname=\"ns1:Tx\"/>\
                 <env:NotUnderstood qname=\"Bare\"/></env:Header>"
            ),
            "{text}"
        );
        assert!(fault.header_blocks(SoapVersion::V11).is_empty());
        let other = Fault::new(ErrorCode::InvalidRequest, "m", "c-1");
        assert!(other.header_blocks(SoapVersion::V12).is_empty());
    }

    #[test]
    fn every_code_parses_back_from_its_text() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        }
        assert_eq!(ErrorCode::parse("NO_SUCH_CODE"), None);
    }
}
