//! Reading the SOAP-relevant parts of HTTP headers: the media type and its
//! `charset`/`action` parameters, and `SOAPAction`.

use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;

use crate::soap::SoapVersion;

/// A parsed `Content-Type`.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ContentType {
    /// Lower-cased `type/subtype`.
    pub(crate) essence: String,
    pub(crate) charset: Option<String>,
    pub(crate) action: Option<String>,
}

impl ContentType {
    pub(crate) fn from_headers(headers: &HeaderMap) -> Option<ContentType> {
        headers
            .get(CONTENT_TYPE)?
            .to_str()
            .ok()
            .map(ContentType::parse)
    }

    pub(crate) fn parse(value: &str) -> ContentType {
        let mut parts = value.split(';');
        let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let mut ct = ContentType {
            essence,
            ..ContentType::default()
        };
        for param in parts {
            let Some((k, v)) = param.split_once('=') else {
                continue;
            };
            let v = unquote(v.trim()).to_string();
            match k.trim().to_ascii_lowercase().as_str() {
                "charset" => ct.charset = Some(v),
                "action" => ct.action = Some(v),
                _ => {}
            }
        }
        ct
    }

    /// The SOAP version this media type stands for.
    pub(crate) fn soap_version(&self) -> Option<SoapVersion> {
        match self.essence.as_str() {
            "text/xml" => Some(SoapVersion::V11),
            "application/soap+xml" => Some(SoapVersion::V12),
            _ => None,
        }
    }
}

/// The `SOAPAction` header without its quotes (`""` means "no action").
pub(crate) fn soap_action(headers: &HeaderMap) -> Option<String> {
    let raw = headers.get("soapaction")?.to_str().ok()?;
    Some(unquote(raw.trim()).to_string())
}

fn unquote(s: &str) -> &str {
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_soap12_media_type_with_action_and_charset() {
        let ct = ContentType::parse(r#"Application/SOAP+XML; charset="UTF-16"; action="urn:x:Op""#);
        assert_eq!(ct.essence, "application/soap+xml");
        assert_eq!(ct.charset.as_deref(), Some("UTF-16"));
        assert_eq!(ct.action.as_deref(), Some("urn:x:Op"));
        assert_eq!(ct.soap_version(), Some(SoapVersion::V12));
    }

    #[test]
    fn plain_text_xml_is_soap11_and_other_types_are_not_soap() {
        assert_eq!(
            ContentType::parse("text/xml").soap_version(),
            Some(SoapVersion::V11)
        );
        assert_eq!(ContentType::parse("application/json").soap_version(), None);
    }
}
