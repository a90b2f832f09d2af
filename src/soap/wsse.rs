//! WS-Security 1.0 `wsse:Security` header blocks: the UsernameToken
//! profile (PasswordText and PasswordDigest, `wsse:Nonce`,
//! `wsu:Created`). Pure: reads the parsed header elements and returns what
//! they say; checking the password, the clock and the nonce is the
//! caller's (`tenants::auth`).

use base64::Engine as _;

use crate::xml::Element;

/// The WS-Security 1.0 secext namespace (OASIS 2004).
pub const WSSE_NS: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
/// The WS-Security utility namespace (`wsu:Created`).
pub const WSU_NS: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
const TOKEN_PROFILE: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0";
const SOAP_MESSAGE_SECURITY: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0";

/// How the password of a UsernameToken is sent.
#[derive(Clone, PartialEq, Eq)]
pub enum Password {
    /// The password itself (`#PasswordText`, also the default).
    Text(String),
    /// `Base64(SHA-1(nonce + created + password))` (`#PasswordDigest`),
    /// base64-decoded.
    Digest(Vec<u8>),
}

impl std::fmt::Debug for Password {
    // Never print a password or its digest, not even in a debug log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Password::Text(_) => f.write_str("Text(***)"),
            Password::Digest(_) => f.write_str("Digest(***)"),
        }
    }
}

/// A `wsse:UsernameToken`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsernameToken {
    pub username: String,
    pub password: Option<Password>,
    /// The decoded `wsse:Nonce`.
    pub nonce: Option<Vec<u8>>,
    /// `wsu:Created` (in the token, or the Security header's
    /// `wsu:Timestamp`), as sent: the digest covers these exact characters.
    pub created: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WsseError {
    #[error("more than one WS-Security header addressed to this node")]
    DuplicateSecurity,
    #[error("the WS-Security header holds more than one UsernameToken")]
    DuplicateToken,
    #[error("the UsernameToken has no Username")]
    NoUsername,
    #[error("unsupported password type {0:?}")]
    PasswordType(String),
    #[error("unsupported nonce encoding {0:?}")]
    NonceEncoding(String),
    #[error("the {0} is not valid base64")]
    Base64(&'static str),
}

/// The UsernameToken of the `wsse:Security` header blocks among `headers`,
/// if any. Blocks addressed to another role are the caller's to filter
/// (SOAP envelope parsing already did).
pub fn username_token(headers: &[Element]) -> Result<Option<UsernameToken>, WsseError> {
    let mut securities = headers
        .iter()
        .filter(|h| h.name.ns == WSSE_NS && h.name.local == "Security");
    let Some(security) = securities.next() else {
        return Ok(None);
    };
    if securities.next().is_some() {
        return Err(WsseError::DuplicateSecurity);
    }
    let mut tokens = security.children_named(WSSE_NS, "UsernameToken");
    let Some(token) = tokens.next() else {
        return Ok(None);
    };
    if tokens.next().is_some() {
        return Err(WsseError::DuplicateToken);
    }
    let username = token
        .child(WSSE_NS, "Username")
        .map(|u| u.text().trim().to_string())
        .filter(|u| !u.is_empty())
        .ok_or(WsseError::NoUsername)?;
    let password = match token.child(WSSE_NS, "Password") {
        None => None,
        Some(p) => Some(password(p)?),
    };
    let nonce = match token.child(WSSE_NS, "Nonce") {
        None => None,
        Some(n) => Some(nonce(n)?),
    };
    // Some stacks put Created only in a wsu:Timestamp beside the token.
    let created = token
        .child(WSU_NS, "Created")
        .or_else(|| {
            security
                .child(WSU_NS, "Timestamp")
                .and_then(|t| t.child(WSU_NS, "Created"))
        })
        .map(|c| c.text().trim().to_string());
    Ok(Some(UsernameToken {
        username,
        password,
        nonce,
        created,
    }))
}

fn password(el: &Element) -> Result<Password, WsseError> {
    let text = el.text();
    let kind = el.attr("Type").map(str::trim).unwrap_or("");
    let suffix = kind.rsplit_once('#').map_or(kind, |(base, s)| {
        if base == TOKEN_PROFILE || base.is_empty() {
            s
        } else {
            kind
        }
    });
    match suffix {
        "" | "PasswordText" => Ok(Password::Text(text)),
        "PasswordDigest" => base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map(Password::Digest)
            .map_err(|_| WsseError::Base64("password digest")),
        _ => Err(WsseError::PasswordType(kind.to_string())),
    }
}

fn nonce(el: &Element) -> Result<Vec<u8>, WsseError> {
    let encoding = el.attr("EncodingType").map(str::trim).unwrap_or("");
    let base64 = format!("{SOAP_MESSAGE_SECURITY}#Base64Binary");
    if !encoding.is_empty() && encoding != base64 {
        return Err(WsseError::NonceEncoding(encoding.to_string()));
    }
    base64::engine::general_purpose::STANDARD
        .decode(el.text().trim())
        .map_err(|_| WsseError::Base64("nonce"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::{Limits, Node};

    fn headers(xml: &str) -> Vec<Element> {
        let doc = crate::xml::read_str(
            &format!("<h xmlns:wsse=\"{WSSE_NS}\" xmlns:wsu=\"{WSU_NS}\">{xml}</h>"),
            &Limits::default(),
        )
        .expect("xml");
        doc.root
            .children
            .into_iter()
            .filter_map(|n| match n {
                Node::Element(e) => Some(e),
                Node::Text(_) => None,
            })
            .collect()
    }

    #[test]
    fn a_digest_token_is_read_with_its_nonce_and_created() {
        let h = headers(&format!(
            "<wsse:Security><wsse:UsernameToken><wsse:Username> erp </wsse:Username>\
             <wsse:Password Type=\"{TOKEN_PROFILE}#PasswordDigest\">AAEC</wsse:Password>\
             <wsse:Nonce EncodingType=\"{SOAP_MESSAGE_SECURITY}#Base64Binary\">AQID</wsse:Nonce>\
             <wsu:Created>2026-01-01T00:00:00Z</wsu:Created></wsse:UsernameToken></wsse:Security>"
        ));
        let t = username_token(&h).expect("valid").expect("token");
        assert_eq!(t.username, "erp");
        assert_eq!(t.password, Some(Password::Digest(vec![0, 1, 2])));
        assert_eq!(t.nonce, Some(vec![1, 2, 3]));
        assert_eq!(t.created.as_deref(), Some("2026-01-01T00:00:00Z"));
        assert!(!format!("{t:?}").contains("AAEC"));
    }

    #[test]
    fn a_text_password_without_type_is_text_and_unknown_types_are_refused() {
        let h = headers(
            "<wsse:Security><wsse:UsernameToken><wsse:Username>u</wsse:Username>\
             <wsse:Password> p w </wsse:Password></wsse:UsernameToken></wsse:Security>",
        );
        let t = username_token(&h).expect("valid").expect("token");
        assert_eq!(t.password, Some(Password::Text(" p w ".into())));
        let h = headers(
            "<wsse:Security><wsse:UsernameToken><wsse:Username>u</wsse:Username>\
             <wsse:Password Type=\"urn:x#Kerberos\">p</wsse:Password></wsse:UsernameToken></wsse:Security>",
        );
        assert!(matches!(
            username_token(&h),
            Err(WsseError::PasswordType(_))
        ));
    }

    #[test]
    fn no_security_header_is_no_token_and_bad_tokens_are_errors() {
        assert_eq!(username_token(&headers("<x/>")), Ok(None));
        let h = headers("<wsse:Security><wsse:UsernameToken/></wsse:Security>");
        assert_eq!(username_token(&h), Err(WsseError::NoUsername));
        let h = headers(
            "<wsse:Security><wsse:UsernameToken><wsse:Username>u</wsse:Username>\
             <wsse:Nonce>!!</wsse:Nonce></wsse:UsernameToken></wsse:Security>",
        );
        assert_eq!(username_token(&h), Err(WsseError::Base64("nonce")));
        let h = headers("<wsse:Security/><wsse:Security/>");
        assert_eq!(username_token(&h), Err(WsseError::DuplicateSecurity));
    }
}
