//! Charsets: detect a document's encoding (BOM, transport charset, XML
//! declaration), decode it to UTF-8, and encode a response back into the
//! caller's charset.
//!
//! Decoding is strict: a byte sequence that is not valid in the detected
//! charset is an [`XmlErrorKind::Encoding`] error, never a replacement
//! character, because a silently altered request could be answered wrongly.
//! Detection order follows XML 1.0 appendix F and RFC 7303: a byte order mark
//! wins, then the transport's `charset` parameter, then the `encoding` of the
//! XML declaration, then UTF-8; an `encoding` in the declaration that
//! contradicts a BOM or the transport is ignored, since the bytes decoded
//! cleanly in the stronger signal. Latin-1 is decoded as real ISO-8859-1 (every
//! byte is the code point of the same value), not as the WHATWG alias for
//! windows-1252.

use std::borrow::Cow;

use super::Pos;
use super::read::{XmlError, XmlErrorKind};

/// The charsets soapgate reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Charset {
    #[default]
    Utf8,
    Utf16Le,
    Utf16Be,
    Latin1,
    Windows1252,
    /// 7-bit US-ASCII; anything else is written as character references.
    UsAscii,
}

/// A charset label as found in a Content-Type or XML declaration, before the
/// byte order of an unqualified "utf-16" is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Label {
    Known(Charset),
    /// "utf-16" without an endianness: the BOM or the first bytes decide.
    Utf16,
}

impl Charset {
    /// The IANA name, for `Content-Type` charset parameters and XML
    /// declarations.
    pub fn label(self) -> &'static str {
        match self {
            Charset::Utf8 => "utf-8",
            Charset::Utf16Le | Charset::Utf16Be => "utf-16",
            Charset::Latin1 => "iso-8859-1",
            Charset::Windows1252 => "windows-1252",
            Charset::UsAscii => "us-ascii",
        }
    }

    /// The charset a label names, case-insensitively. An unqualified
    /// "utf-16" means big-endian here (the XML default without a BOM); the
    /// reader sniffs the byte order itself before falling back to this.
    pub fn from_label(label: &str) -> Option<Charset> {
        match parse_label(label)? {
            Label::Known(c) => Some(c),
            Label::Utf16 => Some(Charset::Utf16Be),
        }
    }

    /// The charset announced by a byte order mark at the start of `bytes`,
    /// with the mark's length.
    pub fn from_bom(bytes: &[u8]) -> Option<(Charset, usize)> {
        match bytes {
            [0xEF, 0xBB, 0xBF, ..] => Some((Charset::Utf8, 3)),
            [0xFF, 0xFE, ..] => Some((Charset::Utf16Le, 2)),
            [0xFE, 0xFF, ..] => Some((Charset::Utf16Be, 2)),
            _ => None,
        }
    }

    /// UTF-8 or UTF-16: every character can be encoded.
    pub fn is_unicode(self) -> bool {
        matches!(self, Charset::Utf8 | Charset::Utf16Le | Charset::Utf16Be)
    }

    /// Whether the charset can encode `c` directly (otherwise the writer uses
    /// a character reference).
    pub fn can_encode(self, c: char) -> bool {
        match self {
            Charset::Utf8 | Charset::Utf16Le | Charset::Utf16Be => true,
            Charset::Latin1 => (c as u32) <= 0xFF,
            Charset::UsAscii => c.is_ascii(),
            Charset::Windows1252 => c.is_ascii() || windows1252_byte(c).is_some(),
        }
    }
}

fn parse_label(label: &str) -> Option<Label> {
    let l = label.trim().trim_matches('"').to_ascii_lowercase();
    let c = match l.as_str() {
        "utf-8" | "utf8" | "unicode-1-1-utf-8" => Charset::Utf8,
        "utf-16" | "utf16" => return Some(Label::Utf16),
        "utf-16le" | "utf16le" => Charset::Utf16Le,
        "utf-16be" | "utf16be" => Charset::Utf16Be,
        "iso-8859-1" | "iso8859-1" | "iso_8859-1" | "iso_8859-1:1987" | "latin1" | "latin-1"
        | "l1" | "iso-ir-100" | "cp819" | "ibm819" | "csisolatin1" => Charset::Latin1,
        "windows-1252" | "cp1252" | "x-cp1252" => Charset::Windows1252,
        "us-ascii" | "ascii" | "ansi_x3.4-1968" | "iso646-us" | "csascii" => Charset::UsAscii,
        _ => return None,
    };
    Some(Label::Known(c))
}

/// Where an error about the document as a whole (its charset) is reported.
const START: Pos = Pos { line: 1, col: 1 };

fn encoding_error(charset: &str, detail: impl Into<String>, pos: Pos) -> XmlError {
    XmlError {
        kind: XmlErrorKind::Encoding {
            charset: charset.to_string(),
            detail: detail.into(),
        },
        pos,
    }
}

/// Detect the charset of a document and decode it to UTF-8, without the
/// byte order mark. Valid UTF-8 input is borrowed, not copied.
pub fn decode<'a>(
    bytes: &'a [u8],
    transport_charset: Option<&str>,
) -> Result<(Cow<'a, str>, Charset), XmlError> {
    let (charset, body) = if let Some((cs, len)) = Charset::from_bom(bytes) {
        let body = &bytes[len..];
        // A declaration that names another encoding than the byte order
        // mark is a fatal error (XML 1.0, 4.3.3): which one would be right?
        let agrees = match declared_label(body)? {
            None => true,
            Some(Label::Utf16) => matches!(cs, Charset::Utf16Le | Charset::Utf16Be),
            Some(Label::Known(declared)) => declared == cs,
        };
        if !agrees {
            return Err(encoding_error(
                cs.label(),
                "the XML declaration names another encoding than the byte order mark",
                START,
            ));
        }
        (cs, body)
    } else {
        let label = match transport_charset.map(str::trim).filter(|s| !s.is_empty()) {
            Some(t) => {
                Some(parse_label(t).ok_or_else(|| encoding_error(t, "unknown charset", START))?)
            }
            None => declared_label(bytes)?,
        };
        let cs = match label {
            Some(Label::Known(c)) => c,
            Some(Label::Utf16) => sniff_utf16(bytes).unwrap_or(Charset::Utf16Be),
            None => sniff_utf16(bytes).unwrap_or(Charset::Utf8),
        };
        (cs, bytes)
    };
    let text = decode_as(body, charset)?;
    Ok((text, charset))
}

/// Decode bytes (without BOM) in a known charset, strictly.
pub fn decode_as(bytes: &[u8], charset: Charset) -> Result<Cow<'_, str>, XmlError> {
    match charset {
        Charset::Utf8 => match std::str::from_utf8(bytes) {
            Ok(s) => Ok(Cow::Borrowed(s)),
            Err(e) => {
                let ok = &bytes[..e.valid_up_to()];
                // The valid prefix is UTF-8, so the position can be counted.
                let pos = std::str::from_utf8(ok).map(end_pos).unwrap_or_default();
                Err(encoding_error(
                    "utf-8",
                    format!("invalid byte sequence at byte {}", e.valid_up_to()),
                    pos,
                ))
            }
        },
        Charset::UsAscii => match bytes.iter().position(|b| !b.is_ascii()) {
            None => Ok(Cow::Borrowed(
                std::str::from_utf8(bytes).unwrap_or_default(),
            )),
            Some(i) => {
                let pos = std::str::from_utf8(&bytes[..i])
                    .map(end_pos)
                    .unwrap_or_default();
                Err(encoding_error(
                    "us-ascii",
                    format!("non-ASCII byte at byte {i}"),
                    pos,
                ))
            }
        },
        Charset::Latin1 => Ok(encoding_rs::mem::decode_latin1(bytes)),
        Charset::Windows1252 => {
            // Every byte maps to a character in the WHATWG table, so this
            // cannot fail; keep the check so a future table change is an
            // error rather than a silent replacement.
            encoding_rs::WINDOWS_1252
                .decode_without_bom_handling_and_without_replacement(bytes)
                .ok_or_else(|| encoding_error("windows-1252", "unmappable byte", START))
        }
        Charset::Utf16Le | Charset::Utf16Be => decode_utf16(bytes, charset == Charset::Utf16Le),
    }
}

fn decode_utf16(bytes: &[u8], le: bool) -> Result<Cow<'static, str>, XmlError> {
    let name = if le { "utf-16le" } else { "utf-16be" };
    let units = bytes.chunks_exact(2).map(|p| {
        if le {
            u16::from_le_bytes([p[0], p[1]])
        } else {
            u16::from_be_bytes([p[0], p[1]])
        }
    });
    let mut out = String::with_capacity(bytes.len() / 2 + bytes.len() / 8);
    for (i, r) in char::decode_utf16(units).enumerate() {
        match r {
            Ok(c) => out.push(c),
            Err(e) => {
                return Err(encoding_error(
                    name,
                    format!(
                        "unpaired surrogate {:04X} near code unit {i}",
                        e.unpaired_surrogate()
                    ),
                    end_pos(&out),
                ));
            }
        }
    }
    if !bytes.len().is_multiple_of(2) {
        return Err(encoding_error(name, "odd number of bytes", end_pos(&out)));
    }
    Ok(Cow::Owned(out))
}

/// The position just after `s`, as 1-based line and column.
pub(crate) fn end_pos(s: &str) -> Pos {
    let mut line = 1u32;
    let mut col = 1u32;
    for b in s.bytes() {
        if b == b'\n' {
            line = line.saturating_add(1);
            col = 1;
        } else if b & 0xC0 != 0x80 {
            col = col.saturating_add(1);
        }
    }
    Pos { line, col }
}

/// UTF-16 without a BOM, recognised by `<?` as 16-bit units (XML 1.0 F.1).
fn sniff_utf16(bytes: &[u8]) -> Option<Charset> {
    match bytes {
        [0x3C, 0x00, 0x3F, 0x00, ..] => Some(Charset::Utf16Le),
        [0x00, 0x3C, 0x00, 0x3F, ..] => Some(Charset::Utf16Be),
        _ => None,
    }
}

/// The `encoding` of the XML declaration, read without decoding the
/// document (the declaration itself is ASCII in every charset we support).
fn declared_label(bytes: &[u8]) -> Result<Option<Label>, XmlError> {
    // Only the declaration is looked at: at most its first few hundred bytes.
    let head: Vec<u8> = match sniff_utf16(bytes) {
        Some(cs) => {
            let off = usize::from(cs == Charset::Utf16Be);
            bytes
                .iter()
                .skip(off)
                .step_by(2)
                .take(512)
                .copied()
                .collect()
        }
        None => bytes.iter().take(512).copied().collect(),
    };
    if !head.starts_with(b"<?xml") || !head.get(5).is_some_and(|b| b.is_ascii_whitespace()) {
        return Ok(None);
    }
    let Some(end) = head.windows(2).position(|w| w == b"?>") else {
        return Ok(None);
    };
    let decl = &head[..end];
    let Some(i) = find(decl, b"encoding") else {
        return Ok(None);
    };
    let rest = &decl[i + 8..];
    let rest = trim_ascii_start(rest);
    let Some(rest) = rest.strip_prefix(b"=") else {
        return Ok(None);
    };
    let rest = trim_ascii_start(rest);
    let Some((&quote, rest)) = rest.split_first() else {
        return Ok(None);
    };
    if quote != b'"' && quote != b'\'' {
        return Ok(None);
    }
    let Some(close) = rest.iter().position(|&b| b == quote) else {
        return Ok(None);
    };
    let label = String::from_utf8_lossy(&rest[..close]);
    match parse_label(&label) {
        Some(l) => Ok(Some(l)),
        None => Err(encoding_error(
            &label,
            "unknown charset in XML declaration",
            START,
        )),
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn trim_ascii_start(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    &b[n..]
}

/// The windows-1252 byte for a non-ASCII character, if the charset has one.
fn windows1252_byte(c: char) -> Option<u8> {
    if c.is_ascii() {
        return Some(c as u8);
    }
    let mut buf = [0u8; 4];
    let s = c.encode_utf8(&mut buf);
    let mut enc = encoding_rs::WINDOWS_1252.new_encoder();
    let mut out = [0u8; 4];
    let (res, _read, written) = enc.encode_from_utf8_without_replacement(s, &mut out, true);
    match res {
        encoding_rs::EncoderResult::InputEmpty if written == 1 => Some(out[0]),
        _ => None,
    }
}

/// Encode serialised XML into `charset`. Characters the charset cannot
/// represent become `&#xHH;` character references, which is only correct
/// inside text and attribute values: element and attribute names must be
/// representable in the target charset.
///
/// UTF-16 output starts with a byte order mark, so a reader does not have to
/// guess the byte order.
pub fn encode(s: &str, charset: Charset) -> Vec<u8> {
    match charset {
        Charset::Utf8 => s.as_bytes().to_vec(),
        Charset::Utf16Le | Charset::Utf16Be => {
            let le = charset == Charset::Utf16Le;
            let mut out = Vec::with_capacity(2 + s.len() * 2);
            out.extend_from_slice(if le { &[0xFF, 0xFE] } else { &[0xFE, 0xFF] });
            for u in s.encode_utf16() {
                out.extend_from_slice(&if le { u.to_le_bytes() } else { u.to_be_bytes() });
            }
            out
        }
        Charset::Latin1 | Charset::UsAscii | Charset::Windows1252 => {
            let mut out = Vec::with_capacity(s.len());
            for c in s.chars() {
                let byte = match charset {
                    Charset::Latin1 => u8::try_from(c as u32).ok(),
                    Charset::UsAscii => c.is_ascii().then_some(c as u8),
                    _ => windows1252_byte(c),
                };
                match byte {
                    Some(b) => out.push(b),
                    None => out.extend_from_slice(format!("&#x{:X};", c as u32).as_bytes()),
                }
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_case_insensitive() {
        assert_eq!(Charset::from_label("UTF-8"), Some(Charset::Utf8));
        assert_eq!(Charset::from_label("Latin1"), Some(Charset::Latin1));
        assert_eq!(Charset::from_label("CP1252"), Some(Charset::Windows1252));
        assert_eq!(Charset::from_label("utf-16LE"), Some(Charset::Utf16Le));
        assert_eq!(Charset::from_label("ebcdic"), None);
    }

    #[test]
    fn latin1_is_not_windows1252() {
        let (s, cs) = decode(b"<a>\x80\xE9</a>", Some("iso-8859-1")).unwrap();
        assert_eq!(cs, Charset::Latin1);
        assert_eq!(s, "<a>\u{80}\u{E9}</a>");
        let (s, _) = decode(b"<a>\x80</a>", Some("windows-1252")).unwrap();
        assert_eq!(s, "<a>\u{20AC}</a>");
    }

    #[test]
    fn declaration_names_the_charset() {
        let (s, cs) = decode(
            b"<?xml version='1.0' encoding='ISO-8859-1'?><a>\xFC</a>",
            None,
        )
        .unwrap();
        assert_eq!(cs, Charset::Latin1);
        assert!(s.ends_with("<a>\u{FC}</a>"));
    }

    #[test]
    fn transport_charset_beats_declaration() {
        let (_, cs) = decode(
            b"<?xml version='1.0' encoding='ISO-8859-1'?><a/>",
            Some("utf-8"),
        )
        .unwrap();
        assert_eq!(cs, Charset::Utf8);
    }

    #[test]
    fn a_bom_and_a_declaration_of_another_encoding_are_refused() {
        let utf8 = b"\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"iso-8859-1\"?><a/>";
        assert!(decode(utf8, None).is_err());
        let agreeing = b"\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"UTF-8\"?><a/>";
        assert_eq!(decode(agreeing, None).expect("agrees").1, Charset::Utf8);
        let text = "<?xml version=\"1.0\" encoding=\"utf-8\"?><a/>";
        let mut utf16 = vec![0xFF, 0xFE];
        utf16.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        assert!(decode(&utf16, None).is_err());
        let text = "<?xml version=\"1.0\" encoding=\"UTF-16\"?><a/>";
        let mut utf16 = vec![0xFF, 0xFE];
        utf16.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        assert_eq!(decode(&utf16, None).expect("agrees").1, Charset::Utf16Le);
    }

    #[test]
    fn utf16_without_bom_is_sniffed() {
        let le: Vec<u8> = "<?xml version='1.0'?><a/>"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        let (s, cs) = decode(&le, None).unwrap();
        assert_eq!(cs, Charset::Utf16Le);
        assert_eq!(s, "<?xml version='1.0'?><a/>");
        let (_, cs) = decode(&le, Some("utf-16")).unwrap();
        assert_eq!(cs, Charset::Utf16Le);
    }

    #[test]
    fn invalid_bytes_are_errors() {
        let e = decode(b"<a>\n\xFF</a>", None).unwrap_err();
        assert!(matches!(e.kind, XmlErrorKind::Encoding { .. }));
        assert_eq!(e.pos, Pos { line: 2, col: 1 });
        assert!(decode(b"<a>\xC3</a>", Some("us-ascii")).is_err());
        assert!(decode(&[0xFF, 0xFE, 0x3C], None).is_err());
        assert!(decode(&[0xFF, 0xFE, 0x00, 0xD8, 0x41, 0x00], None).is_err());
        assert!(decode(b"<a/>", Some("klingon")).is_err());
    }

    #[test]
    fn encode_uses_char_refs_for_the_unrepresentable() {
        assert_eq!(
            encode("M\u{FC}ller \u{20AC}", Charset::Latin1),
            b"M\xFCller &#x20AC;"
        );
        assert_eq!(
            encode("\u{20AC}\u{3B1}", Charset::Windows1252),
            b"\x80&#x3B1;"
        );
        assert_eq!(encode("\u{E9}", Charset::UsAscii), b"&#xE9;");
        assert_eq!(encode("a", Charset::Utf16Be), [0xFE, 0xFF, 0, b'a']);
    }
}
