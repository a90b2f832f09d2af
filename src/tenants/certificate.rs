//! Client certificates as credentials: what a `certificate` credential
//! names (subject, subjectAltName, SHA-256 fingerprint; [`CertMatch`],
//! checked at start) and what a presented certificate says
//! ([`PeerIdentity`], read from the DER the TLS handshake verified).
//!
//! The handshake has already checked the certificate against the CA
//! bundle, its validity and its signature; here it is only named. A
//! certificate whose subject or extensions x509-cert cannot read still has
//! its fingerprint, so a `sha256` credential works for it.

use std::net::IpAddr;
use std::str::FromStr;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};
use x509_cert::Certificate;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::der::asn1::Ia5StringRef;
use x509_cert::der::{Decode, Tag, Tagged};
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::{DirectoryString, GeneralName};

/// One attribute of a subject: its OID (dotted) and its value as compared
/// (see [`fold`]).
type Attribute = (String, String);

/// What a presented certificate says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PeerIdentity {
    sha256: [u8; 32],
    /// The subject's attributes, sorted; empty if it could not be read.
    subject: Vec<Attribute>,
    sans: Vec<San>,
}

/// A subjectAltName, as compared.
#[derive(Debug, Clone, PartialEq, Eq)]
enum San {
    /// Lower case.
    Dns(String),
    /// Lower case.
    Email(String),
    Uri(String),
    Ip(IpAddr),
}

impl PeerIdentity {
    /// Reads a certificate's DER. Never fails: what cannot be read is left
    /// out (and logged at debug), the fingerprint is always there.
    pub(super) fn from_der(der: &[u8]) -> PeerIdentity {
        let sha256: [u8; 32] = Sha256::digest(der).into();
        let mut id = PeerIdentity {
            sha256,
            subject: Vec::new(),
            sans: Vec::new(),
        };
        let cert = match Certificate::from_der(der) {
            Ok(cert) => cert,
            Err(e) => {
                tracing::debug!(error = %e, "client certificate not readable: its fingerprint only");
                return id;
            }
        };
        let tbs = cert.tbs_certificate();
        let subject: Option<Vec<Attribute>> = tbs.subject().iter().map(attribute).collect();
        id.subject = sorted(subject.unwrap_or_default());
        match tbs.get_extension::<SubjectAltName>() {
            Ok(Some((_, names))) => id.sans = names.0.iter().filter_map(san).collect(),
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(error = %e, "client certificate's subjectAltName not readable")
            }
        }
        id
    }

    /// How the audit trail names the holder: `cert:` and the first 12 hex
    /// digits of the fingerprint.
    pub(super) fn short(&self) -> String {
        let mut s = String::from("cert:");
        for b in &self.sha256[..6] {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }
}

/// What one `certificate` credential names: every part given must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CertMatch {
    subject: Option<Vec<Attribute>>,
    san: Option<SanMatch>,
    sha256: Option<[u8; 32]>,
}

/// A configured subjectAltName: of one kind when a prefix says so.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SanMatch {
    Exactly(San),
    /// No prefix: a DNS name, an e-mail address or a URI (lower case).
    Any(String),
}

impl CertMatch {
    /// The credential's parts, checked: at least one, each well-formed.
    pub(super) fn new(
        subject: Option<&str>,
        san: Option<&str>,
        sha256: Option<&str>,
    ) -> anyhow::Result<CertMatch> {
        if subject.is_none() && san.is_none() && sha256.is_none() {
            bail!("a certificate credential needs subject, san or sha256");
        }
        Ok(CertMatch {
            subject: subject
                .map(|s| parse_subject(s).with_context(|| format!("subject {s:?}")))
                .transpose()?,
            san: san
                .map(|s| parse_san(s).with_context(|| format!("san {s:?}")))
                .transpose()?,
            sha256: sha256
                .map(|s| parse_sha256(s).with_context(|| format!("sha256 {s:?}")))
                .transpose()?,
        })
    }

    pub(super) fn matches(&self, id: &PeerIdentity) -> bool {
        self.sha256.is_none_or(|f| f == id.sha256)
            && self
                .subject
                .as_ref()
                .is_none_or(|s| !id.subject.is_empty() && *s == id.subject)
            && self.san.as_ref().is_none_or(|m| {
                id.sans.iter().any(|have| match m {
                    SanMatch::Exactly(want) => want == have,
                    SanMatch::Any(want) => match have {
                        San::Dns(v) | San::Email(v) | San::Uri(v) => v.eq_ignore_ascii_case(want),
                        San::Ip(_) => false,
                    },
                })
            })
    }
}

/// A subject in RFC 4514 form, or OpenSSL's with spaces around `=` and
/// after `,`: attributes separated by unescaped `,` or `+`.
fn parse_subject(s: &str) -> anyhow::Result<Vec<Attribute>> {
    let mut attrs = Vec::new();
    for part in split_unescaped(s) {
        let part = trim_unescaped(part);
        let Some((key, value)) = part.split_once('=') else {
            bail!("{part:?} is not TYPE=value");
        };
        let text = format!("{}={}", key.trim(), value.trim_start());
        let atv = AttributeTypeAndValue::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{part:?}: not an attribute (CN, O, OU, C, L, ST, DC, emailAddress, … or a dotted OID): {e}"))?;
        attrs.push(attribute(&atv).with_context(|| format!("{part:?}: not a text value"))?);
    }
    if attrs.is_empty() {
        bail!("no attribute");
    }
    Ok(sorted(attrs))
}

/// `s` split at each `,` or `+` not escaped by a backslash.
fn split_unescaped(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' | '+' => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// `s` without leading spaces, nor trailing ones unless the last is
/// escaped (`CN=a\ `).
fn trim_unescaped(s: &str) -> &str {
    let s = s.trim_start();
    let trimmed = s.trim_end();
    if trimmed.ends_with('\\') && trimmed.len() < s.len() {
        &s[..trimmed.len() + 1]
    } else {
        trimmed
    }
}

/// An attribute's OID and text value, folded; `None` for a value that is
/// not a string.
fn attribute(atv: &AttributeTypeAndValue) -> Option<Attribute> {
    let value = match atv.value.tag() {
        Tag::Ia5String => Ia5StringRef::try_from(&atv.value)
            .ok()?
            .as_str()
            .to_string(),
        Tag::PrintableString | Tag::TeletexString | Tag::Utf8String | Tag::BmpString => {
            DirectoryString::try_from(&atv.value)
                .ok()?
                .value()
                .into_owned()
        }
        _ => return None,
    };
    Some((atv.oid.to_string(), fold(&value)))
}

/// A value as compared: without regard to case, and with runs of spaces
/// as one (X.500's caseIgnoreMatch, roughly).
fn fold(value: &str) -> String {
    value
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

fn sorted(mut attrs: Vec<Attribute>) -> Vec<Attribute> {
    attrs.sort();
    attrs
}

fn san(name: &GeneralName) -> Option<San> {
    Some(match name {
        GeneralName::DnsName(v) => San::Dns(v.as_str().to_ascii_lowercase()),
        GeneralName::Rfc822Name(v) => San::Email(v.as_str().to_ascii_lowercase()),
        GeneralName::UniformResourceIdentifier(v) => San::Uri(v.as_str().to_string()),
        GeneralName::IpAddress(v) => {
            let bytes = v.as_bytes();
            San::Ip(match bytes.len() {
                4 => IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?),
                16 => IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?),
                _ => return None,
            })
        }
        _ => return None,
    })
}

fn parse_san(s: &str) -> anyhow::Result<SanMatch> {
    let s = s.trim();
    if s.is_empty() {
        bail!("empty");
    }
    let prefixed = |prefix: &str| {
        s.get(..prefix.len())
            .filter(|p| p.eq_ignore_ascii_case(prefix))
            .map(|_| s[prefix.len()..].trim())
    };
    if let Some(v) = prefixed("DNS:") {
        return Ok(SanMatch::Exactly(San::Dns(v.to_ascii_lowercase())));
    }
    if let Some(v) = prefixed("email:") {
        return Ok(SanMatch::Exactly(San::Email(v.to_ascii_lowercase())));
    }
    if let Some(v) = prefixed("URI:") {
        return Ok(SanMatch::Exactly(San::Uri(v.to_string())));
    }
    if let Some(v) = prefixed("IP Address:").or_else(|| prefixed("IP:")) {
        let ip = v
            .parse::<IpAddr>()
            .map_err(|_| anyhow::anyhow!("{v:?} is not an IP address"))?;
        return Ok(SanMatch::Exactly(San::Ip(ip)));
    }
    Ok(match s.parse::<IpAddr>() {
        Ok(ip) => SanMatch::Exactly(San::Ip(ip)),
        Err(_) => SanMatch::Any(s.to_ascii_lowercase()),
    })
}

fn parse_sha256(s: &str) -> anyhow::Result<[u8; 32]> {
    let hex: String = s.chars().filter(|c| !matches!(c, ':' | ' ')).collect();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!("not 64 hex digits (colons and spaces allowed)");
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate for `CN=erp.acme.example, O=Acme, C=DE` with
    /// subjectAltNames DNS erp.acme.example, e-mail ops@acme.example, URI
    /// urn:acme:erp and IP 10.1.2.3, made by rcgen.
    fn cert() -> Vec<u8> {
        let mut params =
            rcgen::CertificateParams::new(vec!["erp.acme.example".to_string()]).expect("params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "erp.acme.example");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Acme,  Inc.");
        params
            .distinguished_name
            .push(rcgen::DnType::CountryName, "DE");
        params.subject_alt_names.extend([
            rcgen::SanType::Rfc822Name("Ops@acme.example".try_into().expect("ia5")),
            rcgen::SanType::URI("urn:acme:erp".try_into().expect("ia5")),
            rcgen::SanType::IpAddress("10.1.2.3".parse().expect("ip")),
        ]);
        let key = rcgen::KeyPair::generate().expect("key");
        params.self_signed(&key).expect("cert").der().to_vec()
    }

    fn id() -> PeerIdentity {
        PeerIdentity::from_der(&cert())
    }

    fn matches(subject: Option<&str>, san: Option<&str>, sha256: Option<&str>) -> bool {
        CertMatch::new(subject, san, sha256)
            .expect("valid")
            .matches(&id())
    }

    #[test]
    fn a_subject_matches_in_either_notation_any_order_and_any_case() {
        let id = id();
        assert_eq!(id.subject.len(), 3, "{id:?}");
        for subject in [
            r"CN=erp.acme.example,O=Acme\,  Inc.,C=DE",
            r"C=DE,O=Acme\, Inc.,CN=erp.acme.example",
            r"C = DE, O = acme\, inc., CN = ERP.acme.example",
            r"cn=erp.acme.example+o=Acme\, Inc.+c=DE",
            r"2.5.4.3=erp.acme.example,O=Acme\, Inc.,C=DE",
        ] {
            assert!(
                CertMatch::new(Some(subject), None, None)
                    .expect(subject)
                    .matches(&id),
                "{subject}"
            );
        }
        for subject in [
            "CN=erp.acme.example",
            r"CN=erp.acme.example,O=Acme\, Inc.,C=DE,OU=More",
            r"CN=other.acme.example,O=Acme\, Inc.,C=DE",
        ] {
            assert!(!matches(Some(subject), None, None), "{subject}");
        }
    }

    #[test]
    fn a_san_matches_any_of_the_certificates_by_kind_or_by_text() {
        for san in [
            "erp.acme.example",
            "DNS:ERP.acme.example",
            "ops@acme.example",
            "email:ops@ACME.example",
            "URI:urn:acme:erp",
            "urn:acme:erp",
            "10.1.2.3",
            "IP Address:10.1.2.3",
            "IP:10.1.2.3",
        ] {
            assert!(matches(None, Some(san), None), "{san}");
        }
        for san in [
            "other.acme.example",
            "DNS:ops@acme.example",
            "URI:erp.acme.example",
            "10.1.2.4",
        ] {
            assert!(!matches(None, Some(san), None), "{san}");
        }
    }

    #[test]
    fn a_fingerprint_matches_in_any_case_with_or_without_colons() {
        let der = cert();
        let id = PeerIdentity::from_der(&der);
        let hex: String = Sha256::digest(&der)
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        let colons = hex
            .as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).expect("hex"))
            .collect::<Vec<_>>()
            .join(":");
        for fp in [hex.clone(), hex.to_lowercase(), colons] {
            assert!(
                CertMatch::new(None, None, Some(&fp))
                    .expect("fp")
                    .matches(&id)
            );
        }
        let other = "00".repeat(32);
        assert!(
            !CertMatch::new(None, None, Some(&other))
                .expect("fp")
                .matches(&id)
        );
        assert_eq!(id.short(), format!("cert:{}", &hex[..12].to_lowercase()));
    }

    #[test]
    fn every_part_given_must_match() {
        assert!(matches(
            Some("CN=erp.acme.example,O=Acme\\, Inc.,C=DE"),
            Some("erp.acme.example"),
            None
        ));
        assert!(!matches(
            Some("CN=erp.acme.example,O=Acme\\, Inc.,C=DE"),
            Some("other.example"),
            None
        ));
    }

    #[test]
    fn malformed_credentials_are_refused_with_the_part_named() {
        for (subject, san, sha256, part) in [
            (None, None, None, "needs subject, san or sha256"),
            (Some("erp.acme.example"), None, None, "subject"),
            (Some("XYZ=1"), None, None, "subject"),
            (Some(""), None, None, "subject"),
            (None, Some(" "), None, "san"),
            (None, Some("IP:not-an-ip"), None, "san"),
            (None, None, Some("abcd"), "sha256"),
            (None, None, Some(&*"zz".repeat(32)), "sha256"),
        ] {
            let err = CertMatch::new(subject, san, sha256).expect_err(part);
            assert!(format!("{err:#}").contains(part), "{part}: {err:#}");
        }
    }

    #[test]
    fn garbage_has_a_fingerprint_and_nothing_else() {
        let id = PeerIdentity::from_der(b"not a certificate");
        assert!(id.subject.is_empty() && id.sans.is_empty());
        let m = CertMatch::new(Some("CN=x"), None, None).expect("valid");
        assert!(!m.matches(&id));
    }
}
