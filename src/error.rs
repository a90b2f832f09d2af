//! The errors a SOAP call can end in, and the one place that turns them into
//! SOAP faults. The fault text is safe for the client; everything an
//! operator needs goes to the log line (see [`GatewayError::log_detail`]).

use crate::contract::Violation;
use crate::converse::ModelError;
use crate::soap::fault::FaultViolation;
use crate::soap::{DeclaredFault, EnvelopeError, ErrorCode, Fault, SoapVersion};
use crate::xml::{QName, XmlError, XmlErrorKind};

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("request body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{}", media_type_text(.0))]
    UnsupportedMediaType(String),
    #[error(transparent)]
    Xml(#[from] XmlError),
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error("{envelope} envelope sent with the {transport} media type")]
    VersionMismatch {
        transport: SoapVersion,
        envelope: SoapVersion,
    },
    #[error("no service named {0}")]
    UnknownService(String),
    #[error("the SOAP Body is empty")]
    EmptyBody,
    #[error("service {service} has no operation taking {payload}")]
    UnknownOperation { service: String, payload: QName },
    #[error("operation {operation} is not offered over {version}")]
    NotOffered {
        operation: String,
        version: SoapVersion,
    },
    /// A job names an operation its service does not have.
    #[error("service {service} has no operation named {operation}")]
    NoSuchOperation { service: String, operation: String },
    /// A job's payload is another operation's request than the one the job
    /// names.
    #[error("the payload is a {dispatched} request, but the job names operation {named}")]
    OperationMismatch { named: String, dispatched: String },
    #[error("{}", action_mismatch_text(action, operation, expected.as_deref()))]
    ActionMismatch {
        action: String,
        operation: String,
        expected: Option<String>,
    },
    #[error("the payload breaks {} schema rule(s)", .0.len())]
    Invalid(Vec<Violation>),
    #[error("operation {service}.{operation} is not mapped")]
    NotMapped { service: String, operation: String },
    /// The request is valid XML for the schema but its content cannot be
    /// sent to the model (a document in a format the model does not take).
    #[error("{0}")]
    BadInput(String),
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The model's answers broke the response schema on every attempt.
    #[error("the model's answer breaks {} response schema rule(s)", .0.len())]
    InvalidModelOutput(Vec<Violation>),
    #[error("internal error: {0}")]
    Internal(String),
    /// A template of the operation's mapping failed on a valid request;
    /// the detail (mapping file, line, why) is for the log.
    #[error("{0}")]
    Template(String),
    /// A poll for a job id this service's operation never issued.
    #[error("no job {ticket} of operation {operation}")]
    UnknownTicket { ticket: String, operation: String },
    /// The job store is missing or failing; the detail is for the log.
    #[error("job queue unavailable: {0}")]
    QueueUnavailable(String),
    /// Every model-call permit of this instance is taken.
    #[error("too many model calls in flight")]
    Overloaded { retry_after: std::time::Duration },
    /// As many large bodies as `max_parsing_bytes` allows are being
    /// parsed; this one was not (and, when refused by its Content-Length,
    /// not read either).
    #[error("the parse budget is full")]
    ParsingFull { retry_after: std::time::Duration },
    /// Tenants are configured and the call is not authenticated; the
    /// detail (which check failed) is for the log only.
    #[error("authentication failed: {0}")]
    Unauthenticated(String),
    #[error("tenant {tenant} may not call {service}.{operation}")]
    NotAuthorised {
        tenant: String,
        service: String,
        operation: String,
    },
    #[error("tenant {tenant} is over its request rate")]
    RateLimited {
        tenant: String,
        retry_after: std::time::Duration,
    },
    #[error("tenant {tenant} has used its tokens per minute")]
    TokenRateLimited {
        tenant: String,
        retry_after: std::time::Duration,
    },
    /// A limit kept across instances could not be checked (Redis does not
    /// answer) and is configured to refuse; `limit` names it for the log.
    #[error("the shared {limit} limit cannot be checked now")]
    LimitsUnavailable { limit: &'static str },
    /// Authentication refused before checking any password: too many
    /// failed attempts from this user name or source address, no password
    /// check free in time, or a user's nonce window full. The detail is for
    /// the log only.
    #[error("authentication refused unchecked: {detail}")]
    AuthThrottled {
        detail: String,
        retry_after: std::time::Duration,
    },
    /// Reading the body failed before its end: the connection closed or
    /// was cut for reading too slowly. The detail is for the log.
    #[error("the request body did not arrive whole: {0}")]
    RequestIncomplete(String),
    #[error(
        "tenant {tenant}'s {period} token budget cannot hold this call: the most it can use does not fit in what is left"
    )]
    BudgetExhausted {
        tenant: String,
        /// `day` or `month`.
        period: &'static str,
    },
    /// An async or one-way call's idempotency key names a job recorded for
    /// a different request. `key` says which key, as the client gave it:
    /// `MessageID urn:uuid:…` or `idempotency key DOC-1`.
    #[error("{key} was already used for a different request; a new request needs a key of its own")]
    IdempotencyMismatch { key: String },
    /// The model answered one of the faults the operation's WSDL declares
    /// (its detail validated): the call's answer, written as the WSDL says.
    #[error("the operation answered its declared fault {}", .0.name)]
    Declared(Box<DeclaredFault>),
}

impl GatewayError {
    pub fn code(&self) -> ErrorCode {
        match self {
            GatewayError::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            GatewayError::UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            GatewayError::Xml(e) => match e.kind {
                XmlErrorKind::Encoding { .. } => ErrorCode::InvalidEncoding,
                _ => ErrorCode::MalformedXml,
            },
            GatewayError::Envelope(EnvelopeError::UnknownEnvelopeNs(_)) => {
                ErrorCode::VersionMismatch
            }
            GatewayError::Envelope(EnvelopeError::MustUnderstand(_)) => ErrorCode::MustUnderstand,
            GatewayError::Envelope(_) | GatewayError::EmptyBody => ErrorCode::InvalidEnvelope,
            GatewayError::VersionMismatch { .. } => ErrorCode::VersionMismatch,
            GatewayError::UnknownService(_) => ErrorCode::UnknownService,
            GatewayError::UnknownOperation { .. }
            | GatewayError::NotOffered { .. }
            | GatewayError::NoSuchOperation { .. } => ErrorCode::UnknownOperation,
            GatewayError::OperationMismatch { .. } => ErrorCode::ActionMismatch,
            GatewayError::ActionMismatch { .. } => ErrorCode::ActionMismatch,
            GatewayError::Invalid(_) => ErrorCode::InvalidRequest,
            GatewayError::NotMapped { .. } => ErrorCode::NotMapped,
            GatewayError::BadInput(_) => ErrorCode::InvalidRequest,
            GatewayError::Model(e) => model_code(e),
            GatewayError::InvalidModelOutput(_) => ErrorCode::InvalidModelOutput,
            GatewayError::Internal(_) => ErrorCode::InternalError,
            GatewayError::Template(_) => ErrorCode::TemplateError,
            GatewayError::UnknownTicket { .. } => ErrorCode::UnknownTicket,
            GatewayError::QueueUnavailable(_) => ErrorCode::QueueUnavailable,
            GatewayError::Overloaded { .. } | GatewayError::ParsingFull { .. } => {
                ErrorCode::Overloaded
            }
            GatewayError::Unauthenticated(_) => ErrorCode::AuthenticationFailed,
            GatewayError::NotAuthorised { .. } => ErrorCode::NotAuthorised,
            GatewayError::RateLimited { .. }
            | GatewayError::TokenRateLimited { .. }
            | GatewayError::AuthThrottled { .. } => ErrorCode::RateLimited,
            GatewayError::LimitsUnavailable { .. } => ErrorCode::LimitsUnavailable,
            GatewayError::BudgetExhausted { .. } => ErrorCode::BudgetExhausted,
            GatewayError::RequestIncomplete(_) => ErrorCode::RequestIncomplete,
            GatewayError::IdempotencyMismatch { .. } => ErrorCode::IdempotencyMismatch,
            GatewayError::Declared(_) => ErrorCode::DeclaredFault,
        }
    }

    /// The fault a client sees. Every variant but `Internal` describes the
    /// client's own input, so its text is safe to return.
    pub fn to_fault(&self, correlation_id: &str) -> Fault {
        // The mapping's text and the model's validated detail: the answer.
        if let GatewayError::Declared(fault) = self {
            return Fault::declared((**fault).clone(), correlation_id);
        }
        // No catch-all arm: a new variant must decide what its fault may say.
        let message = match self {
            GatewayError::Declared(fault) => fault.reason.clone(),
            GatewayError::Internal(_) => {
                "Internal error; quote the correlation id to the operator".to_string()
            }
            // Where the mapping lives, and what it holds, is the operator's.
            GatewayError::Template(_) => {
                "The operation's mapping could not build the model request for this request; \
                 quote the correlation id to the operator"
                    .to_string()
            }
            // The service's own text may name accounts and resources.
            GatewayError::Model(e) => e.safe_message().to_string(),
            // The store's error may name hosts and users.
            GatewayError::QueueUnavailable(_) => {
                "The job queue is unavailable; nothing was recorded, try again later".to_string()
            }
            GatewayError::InvalidModelOutput(_) => {
                "The model's answer did not fit the response the contract promises".to_string()
            }
            GatewayError::Overloaded { .. } => {
                "The facade is at its limit of model calls; retry later".to_string()
            }
            GatewayError::ParsingFull { .. } => {
                "The facade is parsing as many large requests as it may at once; retry later"
                    .to_string()
            }
            GatewayError::Xml(e) => format!("The request is not acceptable XML: {e}"),
            // Which check failed would help a guesser: the log says.
            GatewayError::Unauthenticated(_) => "Authentication failed".to_string(),
            GatewayError::NotAuthorised {
                service, operation, ..
            } => format!("Not authorised to call {service}.{operation}"),
            GatewayError::RateLimited { .. } => {
                "Request rate limit exceeded; retry later".to_string()
            }
            GatewayError::TokenRateLimited { .. } => {
                "Tokens-per-minute limit reached; retry later".to_string()
            }
            // Which limit, and why, is the operator's.
            GatewayError::LimitsUnavailable { .. } => {
                "The facade cannot check its limits right now; nothing was done, retry later"
                    .to_string()
            }
            // Says neither who nor why: that would help a guesser.
            GatewayError::AuthThrottled { .. } => {
                "Too many authentication attempts; retry later".to_string()
            }
            GatewayError::BudgetExhausted { period, .. } => {
                format!("The token budget for this {period} is used up")
            }
            // Rarely read: the client has usually gone.
            GatewayError::RequestIncomplete(_) => {
                "The request body did not arrive whole; nothing was done with it".to_string()
            }
            GatewayError::Invalid(v) => {
                format!(
                    "The request does not match the service's schema ({} violation(s))",
                    v.len()
                )
            }
            // These describe the client's own request: safe to say.
            GatewayError::PayloadTooLarge { .. }
            | GatewayError::UnsupportedMediaType(_)
            | GatewayError::Envelope(_)
            | GatewayError::VersionMismatch { .. }
            | GatewayError::UnknownService(_)
            | GatewayError::EmptyBody
            | GatewayError::UnknownOperation { .. }
            | GatewayError::NotOffered { .. }
            | GatewayError::NoSuchOperation { .. }
            | GatewayError::OperationMismatch { .. }
            | GatewayError::ActionMismatch { .. }
            | GatewayError::BadInput(_)
            | GatewayError::UnknownTicket { .. }
            | GatewayError::IdempotencyMismatch { .. }
            | GatewayError::NotMapped { .. } => capitalized(&self.to_string()),
        };
        let mut fault = Fault::new(self.code(), message, correlation_id);
        if let GatewayError::Model(e) = self {
            fault.retry_after_secs = e.retry_after().map(|d| d.as_secs().max(1));
        }
        if let GatewayError::Overloaded { retry_after }
        | GatewayError::ParsingFull { retry_after }
        | GatewayError::RateLimited { retry_after, .. }
        | GatewayError::TokenRateLimited { retry_after, .. }
        | GatewayError::AuthThrottled { retry_after, .. } = self
        {
            // Whole seconds, rounded up: retrying sooner is refused again.
            let ms = u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX);
            fault.retry_after_secs = Some(ms.div_ceil(1000).max(1));
        }
        if let GatewayError::Envelope(EnvelopeError::MustUnderstand(names)) = self {
            fault.not_understood.clone_from(names);
        }
        if let GatewayError::Invalid(violations) = self {
            fault.violations = violations
                .iter()
                .map(|v| FaultViolation {
                    path: v.path.clone(),
                    rule: v.rule.clone(),
                })
                .collect();
        }
        fault
    }
}

/// The text of [`GatewayError::UnsupportedMediaType`]: the media type as
/// sent, or that none was.
fn media_type_text(essence: &str) -> String {
    if essence.trim().is_empty() {
        "no media type given; a SOAP call is text/xml (SOAP 1.1) or application/soap+xml \
         (SOAP 1.2)"
            .to_string()
    } else {
        format!(
            "unsupported media type {essence}; a SOAP call is text/xml (SOAP 1.1) or \
             application/soap+xml (SOAP 1.2)"
        )
    }
}

/// The text of [`GatewayError::ActionMismatch`]: the action sent, and the
/// one the operation expects when it declares one.
fn action_mismatch_text(action: &str, operation: &str, expected: Option<&str>) -> String {
    match expected {
        Some(expected) => format!(
            "action {action} does not match operation {operation}, which expects {expected}"
        ),
        None => format!(
            "action {action} names another operation than {operation}, which declares no action"
        ),
    }
}

fn capitalized(s: &str) -> String {
    let mut s = s.to_string();
    if let Some(first) = s.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    s
}

/// The fault code of a model error (the same code
/// [`ModelError::fault_code`] names).
pub fn model_code(e: &ModelError) -> ErrorCode {
    match e {
        ModelError::Validation { .. } => ErrorCode::ModelRejectedRequest,
        ModelError::AccessDenied { .. } => ErrorCode::ModelAccessDenied,
        ModelError::ResourceNotFound { .. } => ErrorCode::ModelNotFound,
        ModelError::ModelTimeout { .. } | ModelError::Timeout { .. } => ErrorCode::ModelTimeout,
        ModelError::ModelFailed { .. } => ErrorCode::ModelError,
        ModelError::Throttling { .. } | ModelError::ServiceQuotaExceeded { .. } => {
            ErrorCode::ModelThrottled
        }
        ModelError::ModelNotReady { .. }
        | ModelError::InternalServer { .. }
        | ModelError::ServiceUnavailable { .. }
        | ModelError::Connection { .. }
        | ModelError::Other { .. } => ErrorCode::ModelUnavailable,
        ModelError::InvalidResponse { .. } => ErrorCode::InvalidModelOutput,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_codes_agree_with_the_converse_module() {
        let errors = [
            ModelError::Validation {
                message: "m".into(),
            },
            ModelError::AccessDenied {
                message: "m".into(),
            },
            ModelError::ResourceNotFound {
                message: "m".into(),
            },
            ModelError::ModelTimeout {
                message: "m".into(),
            },
            ModelError::ModelFailed {
                message: "m".into(),
                original_status_code: None,
            },
            ModelError::Throttling {
                message: "m".into(),
                retry_after: None,
            },
            ModelError::ModelNotReady {
                message: "m".into(),
            },
            ModelError::ServiceQuotaExceeded {
                message: "m".into(),
            },
            ModelError::InternalServer {
                message: "m".into(),
            },
            ModelError::ServiceUnavailable {
                message: "m".into(),
            },
            ModelError::Timeout {
                message: "m".into(),
            },
            ModelError::Connection {
                message: "m".into(),
            },
            ModelError::InvalidResponse {
                message: "m".into(),
            },
            ModelError::Other {
                message: "m".into(),
            },
        ];
        for e in errors {
            assert_eq!(model_code(&e).as_str(), e.fault_code(), "{e:?}");
        }
    }

    /// Every variant, with the details a client's own request would give
    /// it: its fault text and its Display (the log line's `detail`) are
    /// plain words, with no Rust debug notation.
    #[test]
    fn no_fault_text_carries_debug_notation() {
        use crate::xml::Pos;
        use std::time::Duration;
        let pos = Pos { line: 1, col: 7 };
        let xml = |kind| GatewayError::Xml(XmlError { kind, pos });
        let mut errors = vec![
            GatewayError::PayloadTooLarge { limit: 1024 },
            GatewayError::UnsupportedMediaType("application/json".into()),
            GatewayError::UnsupportedMediaType(String::new()),
            GatewayError::Envelope(EnvelopeError::UnknownEnvelopeNs("urn:not-soap".into())),
            GatewayError::Envelope(EnvelopeError::UnknownEnvelopeNs(String::new())),
            GatewayError::Envelope(EnvelopeError::NotAnEnvelope("{urn:x}Doc".into())),
            GatewayError::Envelope(EnvelopeError::Structure("the envelope has no Body".into())),
            GatewayError::Envelope(EnvelopeError::MustUnderstand(vec![
                QName::new("urn:tx", "Tx"),
                QName::local("Bare"),
            ])),
            GatewayError::VersionMismatch {
                transport: SoapVersion::V12,
                envelope: SoapVersion::V11,
            },
            GatewayError::UnknownService("Nope".into()),
            GatewayError::EmptyBody,
            GatewayError::UnknownOperation {
                service: "S".into(),
                payload: QName::new("urn:x", "Reboot"),
            },
            GatewayError::NotOffered {
                operation: "Close".into(),
                version: SoapVersion::V12,
            },
            GatewayError::NoSuchOperation {
                service: "S".into(),
                operation: "Gone".into(),
            },
            GatewayError::OperationMismatch {
                named: "A".into(),
                dispatched: "B".into(),
            },
            GatewayError::ActionMismatch {
                action: "urn:a#Close".into(),
                operation: "Triage".into(),
                expected: Some("urn:a#Triage".into()),
            },
            GatewayError::ActionMismatch {
                action: "urn:a#Close".into(),
                operation: "Triage".into(),
                expected: None,
            },
            GatewayError::Invalid(vec![Violation {
                path: "/a".into(),
                rule: "r".into(),
            }]),
            GatewayError::NotMapped {
                service: "S".into(),
                operation: "Op".into(),
            },
            GatewayError::BadInput("input scan: not valid base64".into()),
            GatewayError::Model(ModelError::Throttling {
                message: "m".into(),
                retry_after: None,
            }),
            GatewayError::InvalidModelOutput(Vec::new()),
            GatewayError::Internal("detail".into()),
            GatewayError::UnknownTicket {
                ticket: "no-such-job".into(),
                operation: "Op".into(),
            },
            GatewayError::QueueUnavailable("detail".into()),
            GatewayError::Overloaded {
                retry_after: Duration::from_millis(1500),
            },
            GatewayError::ParsingFull {
                retry_after: Duration::from_secs(1),
            },
            GatewayError::Unauthenticated("detail".into()),
            GatewayError::NotAuthorised {
                tenant: "t".into(),
                service: "S".into(),
                operation: "Op".into(),
            },
            GatewayError::RateLimited {
                tenant: "t".into(),
                retry_after: Duration::from_secs(2),
            },
            GatewayError::TokenRateLimited {
                tenant: "t".into(),
                retry_after: Duration::from_secs(2),
            },
            GatewayError::LimitsUnavailable { limit: "nonces" },
            GatewayError::AuthThrottled {
                detail: "detail".into(),
                retry_after: Duration::from_secs(2),
            },
            GatewayError::RequestIncomplete("detail".into()),
            GatewayError::BudgetExhausted {
                tenant: "t".into(),
                period: "day",
            },
            GatewayError::IdempotencyMismatch {
                key: "MessageID urn:uuid:1".into(),
            },
        ];
        for kind in [
            XmlErrorKind::Malformed("a second root element".into()),
            XmlErrorKind::Doctype,
            XmlErrorKind::TooDeep(64),
            XmlErrorKind::IllegalChar(0x1),
            XmlErrorKind::BadName("1abc".into()),
            XmlErrorKind::UnboundPrefix("tns".into()),
            XmlErrorKind::Encoding {
                charset: "utf-8".into(),
                detail: "invalid byte sequence at byte 3".into(),
            },
        ] {
            errors.push(xml(kind));
        }
        // What the reader itself says about names, declarations and
        // prefixes, as a client's document provokes it.
        let limits = crate::xml::Limits::default();
        for doc in [
            "<a xmlns:p='urn:1' xmlns:p='urn:2'/>",
            "<?xml version='2.0'?><a/>",
            "<?xml version='1.0' standalone='maybe'?><a/>",
            "<?xml version='1.0' flavour='x'?><a/>",
            "<a xmlns:p=''/>",
            "<p:a/>",
            "<a><b></a>",
        ] {
            match crate::xml::read_str(doc, &limits) {
                Err(e) => errors.push(GatewayError::Xml(e)),
                Ok(_) => panic!("{doc} was read"),
            }
        }
        for e in &errors {
            let fault = e.to_fault("c-1").message;
            for text in [fault, e.to_string()] {
                for artefact in ["Some(", "None", "\"", "\\"] {
                    assert!(
                        !text.contains(artefact),
                        "{artefact} in the text of {e:?}: {text}"
                    );
                }
            }
        }
    }

    #[test]
    fn throttling_faults_carry_a_retry_hint_and_no_service_text() {
        let e = GatewayError::Model(ModelError::Throttling {
            message: "account 123456789012 is over its quota".into(),
            retry_after: Some(std::time::Duration::from_secs(7)),
        });
        let fault = e.to_fault("c-1");
        assert_eq!(fault.retry_after_secs, Some(7));
        assert!(!fault.message.contains("123456789012"), "{}", fault.message);
    }
}
