//! The writer: an [`Element`] tree back to text, and to bytes in a given
//! charset.
//!
//! A tree that came from the reader keeps its prefixes and declarations, so it
//! is written as it came (a published WSDL looks like the admin's file). A
//! tree built in code needs no declarations: the writer declares what is
//! missing (a default namespace for unprefixed namespaced elements, `xmlns=""`
//! for a no-namespace element under a default namespace, and a recorded or
//! generated `nsN` prefix for namespaced attributes), tracking what is in
//! scope so nothing is declared twice and the output always reads back to the
//! same names.
//!
//! Characters XML 1.0 cannot carry at all (C0 controls other than tab, LF and
//! CR, U+FFFE, U+FFFF) are written as U+FFFD: the output must stay
//! well-formed even when a model's answer contains such a character.

use super::charset::{self, Charset};
use super::read::is_xml_char;
use super::{Element, Node, NsDecl, XML_NS};

/// Serialize an element (and its subtree) to a UTF-8 string, with the
/// namespace declarations it needs and no XML declaration.
pub fn write_element(el: &Element) -> String {
    write_element_with(el, &[])
}

/// Serialize a subtree taken out of a larger document, re-declaring on its
/// root the bindings it inherited (`inherited`, outermost first, as collected
/// from its ancestors' `ns_decls`). Names alone need no help, but content such
/// as `xsi:type="tns:Order"` refers to prefixes the names may not use, and
/// must still resolve when the subtree is stored or sent on its own.
pub fn write_element_with(el: &Element, inherited: &[NsDecl]) -> String {
    let mut w = Writer::new(256);
    w.element(el, inherited);
    w.out
}

/// Serialize a whole document with an XML declaration, encoded in `charset`.
/// Characters the charset cannot represent are written as character
/// references; UTF-16 gets a byte order mark. See [`write_document_as`] for
/// names the charset cannot represent.
pub fn write_document(el: &Element, charset: Charset) -> Vec<u8> {
    write_document_as(el, charset).0
}

/// Like [`write_document`], and says which charset was used: a name (which
/// cannot be a character reference) that `charset` cannot represent makes the
/// document go out in UTF-8 instead. The HTTP layer uses the returned charset
/// for its `Content-Type`.
pub fn write_document_as(el: &Element, charset: Charset) -> (Vec<u8>, Charset) {
    let charset = if names_fit(el, charset) {
        charset
    } else {
        Charset::Utf8
    };
    let mut w = Writer::new(1024);
    w.out.push_str("<?xml version=\"1.0\" encoding=\"");
    w.out.push_str(charset.label());
    w.out.push_str("\"?>");
    w.element(el, &[]);
    let bytes = match charset {
        Charset::Utf8 => w.out.into_bytes(),
        other => charset::encode(&w.out, other),
    };
    (bytes, charset)
}

/// Whether every name and prefix in the tree can be encoded in `charset`.
fn names_fit(el: &Element, charset: Charset) -> bool {
    if charset.is_unicode() {
        return true;
    }
    let fits = |s: &str| s.chars().all(|c| charset.can_encode(c));
    fits(&el.name.local)
        && el.prefix.as_deref().is_none_or(fits)
        && el
            .attrs
            .iter()
            .all(|a| fits(&a.name.local) && a.prefix.as_deref().is_none_or(fits))
        && el.ns_decls.iter().all(|d| fits(&d.prefix))
        && el.elements().all(|e| names_fit(e, charset))
}

/// Escape character data for element content.
pub fn escape_text(s: &str, out: &mut String) {
    // Most text needs no escaping: one pass over the bytes finds out (a
    // fold without early exit, so it vectorises).
    if !s.bytes().fold(false, |acc, b| {
        acc | matches!(b, b'&' | b'<' | b'>' | b'\r' | 0xEF)
            | ((b < 0x20) & (b != b'\n') & (b != b'\t'))
    }) {
        out.push_str(s);
        return;
    }
    let mut last = 0;
    for (i, c) in s.char_indices() {
        let rep = match c {
            '&' => "&amp;",
            '<' => "&lt;",
            '>' => "&gt;",
            // A literal CR would read back as LF.
            '\r' => "&#xD;",
            c if c.is_ascii_graphic() || c == ' ' || c == '\n' || c == '\t' => continue,
            c if is_xml_char(c) => continue,
            _ => "\u{FFFD}",
        };
        out.push_str(&s[last..i]);
        out.push_str(rep);
        last = i + c.len_utf8();
    }
    out.push_str(&s[last..]);
}

/// Escape an attribute value for a double-quoted attribute. Whitespace other
/// than space becomes a character reference, which survives attribute value
/// normalisation.
pub fn escape_attr(s: &str, out: &mut String) {
    if !s.bytes().fold(false, |acc, b| {
        acc | matches!(b, b'&' | b'<' | b'"' | 0xEF) | (b < 0x20)
    }) {
        out.push_str(s);
        return;
    }
    let mut last = 0;
    for (i, c) in s.char_indices() {
        let rep = match c {
            '&' => "&amp;",
            '<' => "&lt;",
            '"' => "&quot;",
            '\t' => "&#x9;",
            '\n' => "&#xA;",
            '\r' => "&#xD;",
            c if c.is_ascii_graphic() || c == ' ' => continue,
            c if is_xml_char(c) => continue,
            _ => "\u{FFFD}",
        };
        out.push_str(&s[last..i]);
        out.push_str(rep);
        last = i + c.len_utf8();
    }
    out.push_str(&s[last..]);
}

struct Writer {
    out: String,
    /// Bindings in scope, innermost last.
    scope: Vec<NsDecl>,
    generated: usize,
}

impl Writer {
    fn new(capacity: usize) -> Self {
        Writer {
            out: String::with_capacity(capacity),
            scope: Vec::new(),
            generated: 0,
        }
    }

    fn lookup(&self, prefix: &str) -> Option<&str> {
        if prefix == "xml" {
            return Some(XML_NS);
        }
        self.scope
            .iter()
            .rev()
            .find(|d| d.prefix == prefix)
            .map(|d| d.uri.as_str())
    }

    /// A non-empty prefix currently bound to `ns` (and not shadowed).
    fn prefix_for(&self, ns: &str) -> Option<String> {
        self.scope
            .iter()
            .rev()
            .filter(|d| !d.prefix.is_empty() && d.uri == ns)
            .find(|d| self.lookup(&d.prefix) == Some(ns))
            .map(|d| d.prefix.clone())
    }

    /// Bind `prefix` to `ns` on the element being opened, unless a prefix
    /// this element already relies on would change meaning.
    fn declare(&mut self, prefix: &str, ns: &str, fixed: &[String], new: &mut Vec<NsDecl>) -> bool {
        if fixed.iter().any(|p| p == prefix) {
            return false;
        }
        let d = NsDecl {
            prefix: prefix.to_string(),
            uri: ns.to_string(),
        };
        self.scope.push(d.clone());
        new.push(d);
        true
    }

    fn fresh_prefix(&mut self, fixed: &[String]) -> String {
        loop {
            self.generated += 1;
            let p = format!("ns{}", self.generated);
            if self.lookup(&p).is_none() && !fixed.contains(&p) {
                return p;
            }
        }
    }

    fn element(&mut self, el: &Element, inherited: &[NsDecl]) {
        let mark = self.scope.len();
        // Prefixes whose meaning on this element is settled: declared here or
        // used by its name or an attribute already.
        let mut fixed: Vec<String> = Vec::new();
        for d in &el.ns_decls {
            self.scope.push(d.clone());
            fixed.push(d.prefix.clone());
        }
        let mut new: Vec<NsDecl> = Vec::new();
        for (i, d) in inherited.iter().enumerate() {
            let shadowed = inherited[i + 1..].iter().any(|l| l.prefix == d.prefix);
            let names_element = el.prefix.as_deref().unwrap_or("") == d.prefix;
            if shadowed
                || fixed.contains(&d.prefix)
                || (names_element && d.uri != el.name.ns)
                || d.uri.is_empty()
                || d.prefix == "xml"
                || d.prefix == "xmlns"
            {
                continue;
            }
            self.scope.push(d.clone());
            new.push(d.clone());
            fixed.push(d.prefix.clone());
        }

        let ns = el.name.ns.as_str();
        let prefix: Option<String> = if ns.is_empty() {
            // If the element's own declarations set a default namespace it is
            // not in, a tree built that way cannot be written faithfully; the
            // declarations it carries win (declare() refuses).
            if self.lookup("").is_some_and(|u| !u.is_empty()) {
                self.declare("", "", &fixed, &mut new);
            }
            None
        } else if ns == XML_NS {
            Some("xml".to_string())
        } else {
            match el.prefix.as_deref().filter(|p| !p.is_empty()) {
                Some(p) if self.lookup(p) == Some(ns) => Some(p.to_string()),
                Some(p) if p != "xml" && p != "xmlns" && self.declare(p, ns, &fixed, &mut new) => {
                    Some(p.to_string())
                }
                Some(_) => Some(self.any_prefix(ns, &fixed, &mut new)),
                None if self.lookup("") == Some(ns) => None,
                None if self.declare("", ns, &fixed, &mut new) => None,
                None => Some(self.any_prefix(ns, &fixed, &mut new)),
            }
        };
        fixed.push(prefix.clone().unwrap_or_default());

        let mut attr_prefixes: Vec<Option<String>> = Vec::with_capacity(el.attrs.len());
        for a in &el.attrs {
            let ans = a.name.ns.as_str();
            let p = if ans.is_empty() {
                None
            } else if ans == XML_NS {
                Some("xml".to_string())
            } else {
                match a.prefix.as_deref().filter(|p| !p.is_empty()) {
                    Some(p) if self.lookup(p) == Some(ans) => Some(p.to_string()),
                    recorded => match self.prefix_for(ans) {
                        Some(p) => Some(p),
                        None => match recorded {
                            Some(p)
                                if p != "xml"
                                    && p != "xmlns"
                                    && self.declare(p, ans, &fixed, &mut new) =>
                            {
                                Some(p.to_string())
                            }
                            _ => Some(self.any_prefix(ans, &fixed, &mut new)),
                        },
                    },
                }
            };
            if let Some(p) = &p {
                fixed.push(p.clone());
            }
            attr_prefixes.push(p);
        }

        self.out.push('<');
        push_qname(&mut self.out, prefix.as_deref(), &el.name.local);
        for d in el.ns_decls.iter().chain(new.iter()) {
            self.out.push_str(" xmlns");
            if !d.prefix.is_empty() {
                self.out.push(':');
                self.out.push_str(&d.prefix);
            }
            self.out.push_str("=\"");
            escape_attr(&d.uri, &mut self.out);
            self.out.push('"');
        }
        for (a, p) in el.attrs.iter().zip(&attr_prefixes) {
            self.out.push(' ');
            push_qname(&mut self.out, p.as_deref(), &a.name.local);
            self.out.push_str("=\"");
            escape_attr(&a.value, &mut self.out);
            self.out.push('"');
        }
        if el.children.is_empty() {
            self.out.push_str("/>");
        } else {
            self.out.push('>');
            for child in &el.children {
                match child {
                    Node::Element(e) => self.element(e, &[]),
                    Node::Text(t) => escape_text(t, &mut self.out),
                }
            }
            self.out.push_str("</");
            push_qname(&mut self.out, prefix.as_deref(), &el.name.local);
            self.out.push('>');
        }
        self.scope.truncate(mark);
    }

    /// Some prefix bound to `ns`: one in scope, else a generated one declared
    /// here.
    fn any_prefix(&mut self, ns: &str, fixed: &[String], new: &mut Vec<NsDecl>) -> String {
        if let Some(p) = self.prefix_for(ns) {
            return p;
        }
        let p = self.fresh_prefix(fixed);
        // A fresh prefix is never in `fixed`, so this always declares.
        self.declare(&p, ns, fixed, new);
        p
    }
}

fn push_qname(out: &mut String, prefix: Option<&str>, local: &str) {
    if let Some(p) = prefix.filter(|p| !p.is_empty()) {
        out.push_str(p);
        out.push(':');
    }
    out.push_str(local);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::{Attribute, Limits, QName, read};

    fn reparse(s: &str) -> Element {
        read(s.as_bytes(), None, &Limits::default()).unwrap().root
    }

    #[test]
    fn read_document_is_written_as_it_came() {
        let src = r#"<s:Envelope xmlns:s="urn:soap"><s:Body><m:Op xmlns:m="urn:m" m:at="1" b="&lt;&amp;&quot;">t &lt; u &gt; v</m:Op></s:Body></s:Envelope>"#;
        let el = reparse(src);
        assert_eq!(write_element(&el), src);
    }

    #[test]
    fn built_trees_get_their_declarations() {
        let mut root = Element::new(QName::new("urn:a", "Root"));
        let mut child = Element::new(QName::local("Plain"));
        child.attrs.push(Attribute {
            name: QName::new("urn:b", "flag"),
            prefix: None,
            value: "a\tb\nc".into(),
        });
        let mut again = Element::new(QName::new("urn:a", "Again"));
        again.attrs.push(Attribute {
            name: QName::new("urn:b", "flag"),
            prefix: None,
            value: "1".into(),
        });
        child.push_child(again);
        root.push_child(child);
        root.push_text("x & y");
        let s = write_element(&root);
        assert_eq!(
            s,
            "<Root xmlns=\"urn:a\"><Plain xmlns=\"\" xmlns:ns1=\"urn:b\" ns1:flag=\"a&#x9;b&#xA;c\">\
             <Again xmlns=\"urn:a\" ns1:flag=\"1\"/></Plain>x &amp; y</Root>"
        );
        let back = reparse(&s);
        assert_eq!(back.name, root.name);
        let plain = back.child("", "Plain").unwrap();
        assert_eq!(plain.attr_ns("urn:b", "flag"), Some("a\tb\nc"));
        assert_eq!(
            plain
                .child("urn:a", "Again")
                .unwrap()
                .attr_ns("urn:b", "flag"),
            Some("1")
        );
    }

    #[test]
    fn conflicting_recorded_prefix_is_replaced() {
        // p is bound to urn:one by the element; the attribute claims p for
        // urn:two, which must not re-bind the element's prefix.
        let mut el = Element::new(QName::new("urn:one", "e"));
        el.prefix = Some("p".into());
        el.attrs.push(Attribute {
            name: QName::new("urn:two", "x"),
            prefix: Some("p".into()),
            value: String::new(),
        });
        let back = reparse(&write_element(&el));
        assert_eq!(back.name, el.name);
        assert_eq!(back.attr_ns("urn:two", "x"), Some(""));
    }

    #[test]
    fn document_in_latin1_uses_char_refs() {
        let mut el = Element::new(QName::local("n"));
        el.push_text("M\u{FC}ller \u{20AC}");
        let bytes = write_document(&el, Charset::Latin1);
        assert_eq!(
            bytes,
            b"<?xml version=\"1.0\" encoding=\"iso-8859-1\"?><n>M\xFCller &#x20AC;</n>".to_vec()
        );
        let doc = read(&bytes, None, &Limits::default()).unwrap();
        assert_eq!(doc.charset, Charset::Latin1);
        assert_eq!(doc.root.text(), "M\u{FC}ller \u{20AC}");
    }

    #[test]
    fn unrepresentable_characters_are_replaced() {
        let mut el = Element::new(QName::local("n"));
        el.push_text("a\u{1}b\rc");
        assert_eq!(write_element(&el), "<n>a\u{FFFD}b&#xD;c</n>");
    }

    proptest::proptest! {
        /// Escaping has a fast path for text with nothing to escape; either
        /// way, what is written reads back as it was (characters XML cannot
        /// carry become U+FFFD), in elements and attributes alike.
        #[test]
        fn any_text_reads_back(text in "[a-z &<>\"'\\t\\r\\n\\x01\\u{7f}\\u{e9}\\u{20ac}\\u{fffe}\\u{ffff}\\u{1f600}]{0,24}") {
            let mut el = Element::new(QName::local("n"));
            el.attrs.push(Attribute {
                name: QName::local("a"),
                prefix: None,
                value: text.clone(),
            });
            el.push_text(text.clone());
            let back = reparse(&write_element(&el));
            let expected: String = text
                .chars()
                .map(|c| if is_xml_char(c) { c } else { '\u{FFFD}' })
                .collect();
            proptest::prop_assert_eq!(back.attr("a"), Some(expected.as_str()));
            proptest::prop_assert_eq!(back.text(), expected);
        }
    }

    #[test]
    fn subtree_keeps_inherited_bindings() {
        let doc = reparse(
            r#"<s:E xmlns:s="urn:s" xmlns:t="urn:t" xmlns="urn:d"><s:B><Op xmlns:x="urn:x" a="t:Q"/></s:B></s:E>"#,
        );
        let body = doc.child("urn:s", "B").unwrap();
        let op = body.child("urn:d", "Op").unwrap();
        let mut inherited = doc.ns_decls.clone();
        inherited.extend(body.ns_decls.iter().cloned());
        let s = write_element_with(op, &inherited);
        assert_eq!(
            s,
            r#"<Op xmlns:x="urn:x" xmlns:s="urn:s" xmlns:t="urn:t" xmlns="urn:d" a="t:Q"/>"#
        );
        // The default namespace inherited would contradict a no-namespace
        // root, so it is left out there.
        let plain = Element::new(QName::local("p"));
        assert_eq!(
            write_element_with(&plain, &inherited),
            r#"<p xmlns:s="urn:s" xmlns:t="urn:t"/>"#
        );
    }

    #[test]
    fn names_outside_the_charset_switch_to_utf8() {
        let mut el = Element::new(QName::local("\u{20AC}"));
        el.push_text("\u{20AC}");
        let (bytes, cs) = write_document_as(&el, Charset::Latin1);
        assert_eq!(cs, Charset::Utf8);
        assert_eq!(
            read(&bytes, None, &Limits::default())
                .unwrap()
                .root
                .name
                .local,
            "\u{20AC}"
        );
        assert_eq!(
            write_document_as(&el, Charset::Windows1252).1,
            Charset::Windows1252
        );
    }
}
