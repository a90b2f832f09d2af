//! SOAP 1.1 and 1.2: the envelope a client sent ([`envelope`]) and the
//! envelopes and faults we send back ([`fault`], [`response`]), and the
//! WS-Security UsernameToken a client may send ([`wsse`]). Pure: works
//! on [`crate::xml::Element`] trees, knows nothing of HTTP.

pub mod envelope;
pub mod fault;
pub mod response;
pub mod wsse;

pub use envelope::{Envelope, EnvelopeError, parse_envelope, parse_envelope_with};
pub use fault::{DeclaredFault, ErrorCode, Fault, FaultCode};

/// The two SOAP versions, told apart by the envelope namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SoapVersion {
    V11,
    V12,
}

pub const SOAP11_ENV_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub const SOAP12_ENV_NS: &str = "http://www.w3.org/2003/05/soap-envelope";
/// soapgate's own namespace for fault details and SOAP headers.
pub const SOAPGATE_NS: &str = "urn:soapgate:v1";

impl std::fmt::Display for SoapVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl SoapVersion {
    pub fn envelope_ns(self) -> &'static str {
        match self {
            SoapVersion::V11 => SOAP11_ENV_NS,
            SoapVersion::V12 => SOAP12_ENV_NS,
        }
    }

    pub fn from_envelope_ns(ns: &str) -> Option<SoapVersion> {
        match ns {
            SOAP11_ENV_NS => Some(SoapVersion::V11),
            SOAP12_ENV_NS => Some(SoapVersion::V12),
            _ => None,
        }
    }

    /// The media type of the HTTP binding: `text/xml` or
    /// `application/soap+xml`.
    pub fn media_type(self) -> &'static str {
        match self {
            SoapVersion::V11 => "text/xml",
            SoapVersion::V12 => "application/soap+xml",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SoapVersion::V11 => "SOAP 1.1",
            SoapVersion::V12 => "SOAP 1.2",
        }
    }
}
