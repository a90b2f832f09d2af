//! Hostile and unusual input for the XML reader: every kind of document the
//! facade must refuse (and the limits just inside what it must accept), the
//! charsets it must read and answer in, and property tests that no input
//! panics the reader and that written trees read back unchanged.

use proptest::prelude::*;
use soapgate::xml::charset::{self, Charset};
use soapgate::xml::{
    Attribute, Element, Limits, Node, Pos, QName, XmlErrorKind, read, write_document,
    write_document_as, write_element,
};

fn parse(bytes: &[u8]) -> Result<Element, XmlErrorKind> {
    read(bytes, None, &Limits::default())
        .map(|d| d.root)
        .map_err(|e| e.kind)
}

fn refused(bytes: &[u8]) -> XmlErrorKind {
    match parse(bytes) {
        Ok(el) => panic!("accepted {:?}: {el:?}", String::from_utf8_lossy(bytes)),
        Err(k) => k,
    }
}

fn is_malformed(k: &XmlErrorKind) -> bool {
    matches!(k, XmlErrorKind::Malformed(_))
}

/// The tree without source positions, which differ between encodings of the
/// same document.
fn strip_pos(el: &Element) -> Element {
    let mut out = el.clone();
    out.pos = Pos::default();
    out.children = el
        .children
        .iter()
        .map(|n| match n {
            Node::Element(e) => Node::Element(strip_pos(e)),
            Node::Text(t) => Node::Text(t.clone()),
        })
        .collect();
    out
}

fn nested(depth: usize) -> String {
    let mut s = String::new();
    for _ in 0..depth {
        s.push_str("<d>");
    }
    for _ in 0..depth {
        s.push_str("</d>");
    }
    s
}

#[test]
fn depth_100_is_read_and_101_refused() {
    assert!(parse(nested(100).as_bytes()).is_ok());
    assert_eq!(refused(nested(101).as_bytes()), XmlErrorKind::TooDeep(100));
    // Unclosed deep nesting is refused for depth before the end is reached.
    assert_eq!(
        refused("<d>".repeat(10_000).as_bytes()),
        XmlErrorKind::TooDeep(100)
    );
}

#[test]
fn attribute_flood_is_refused() {
    let attrs = |n: usize| (0..n).map(|i| format!(" a{i}=\"v\"")).collect::<String>();
    assert!(parse(format!("<r{}/>", attrs(500)).as_bytes()).is_ok());
    assert_eq!(
        refused(format!("<r{}/>", attrs(501)).as_bytes()),
        XmlErrorKind::TooManyAttributes(500)
    );
}

#[test]
fn namespace_flood_is_refused() {
    let decls = |n: usize| {
        (0..n)
            .map(|i| format!(" xmlns:p{i}=\"urn:{i}\""))
            .collect::<String>()
    };
    assert!(parse(format!("<r{}/>", decls(100)).as_bytes()).is_ok());
    assert_eq!(
        refused(format!("<r{}/>", decls(101)).as_bytes()),
        XmlErrorKind::TooManyNamespaces(100)
    );
    // Declarations do not count as attributes.
    let limits = Limits {
        max_attributes: 1,
        ..Limits::default()
    };
    let doc = format!("<r a=\"1\"{}/>", decls(50));
    assert!(read(doc.as_bytes(), None, &limits).is_ok());
}

#[test]
fn huge_attribute_is_refused() {
    let ok = format!("<r a=\"{}\"/>", "x".repeat(65_536));
    assert!(parse(ok.as_bytes()).is_ok());
    let big = format!("<r a=\"{}\"/>", "x".repeat(65_537));
    assert_eq!(
        refused(big.as_bytes()),
        XmlErrorKind::AttributeTooLarge(65_536)
    );
    // A namespace URI is an attribute value too.
    let big = format!("<r xmlns:p=\"urn:{}\"/>", "x".repeat(65_537));
    assert_eq!(
        refused(big.as_bytes()),
        XmlErrorKind::AttributeTooLarge(65_536)
    );
}

#[test]
fn oversize_text_is_refused() {
    let limits = Limits {
        max_text_bytes: 1000,
        ..Limits::default()
    };
    let ok = format!("<r>{}</r>", "x".repeat(1000));
    assert!(read(ok.as_bytes(), None, &limits).is_ok());
    // Text, references and CDATA add up to one text node.
    for doc in [
        format!("<r>{}</r>", "x".repeat(1001)),
        format!("<r>{}&amp;</r>", "x".repeat(1000)),
        format!("<r>{}<![CDATA[y]]></r>", "x".repeat(1000)),
        format!("<r>{}<!-- -->y</r>", "x".repeat(1000)),
    ] {
        let e = read(doc.as_bytes(), None, &limits).unwrap_err();
        assert_eq!(e.kind, XmlErrorKind::TextTooLarge(1000), "{doc}");
    }
}

#[test]
fn child_flood_is_refused() {
    let limits = Limits {
        max_children: 100,
        ..Limits::default()
    };
    let ok = format!("<r>{}</r>", "<c/>".repeat(100));
    assert!(read(ok.as_bytes(), None, &limits).is_ok());
    let doc = format!("<r>{}</r>", "<c/>".repeat(101));
    let e = read(doc.as_bytes(), None, &limits).unwrap_err();
    assert_eq!(e.kind, XmlErrorKind::TooManyChildren(100));
}

#[test]
fn doctype_and_external_entities_are_refused() {
    let xxe = br#"<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>
<x>&e;</x>"#;
    let e = read(xxe, None, &Limits::default()).unwrap_err();
    assert_eq!(e.kind, XmlErrorKind::Doctype);
    assert_eq!(e.pos, Pos { line: 2, col: 1 });
    assert_eq!(
        refused(b"<!DOCTYPE x SYSTEM \"http://example.com/x.dtd\"><x/>"),
        XmlErrorKind::Doctype
    );
    assert_eq!(
        refused(b"<!DOCTYPE x [<!ELEMENT x ANY>"),
        XmlErrorKind::Doctype
    );
    assert_eq!(refused(b"<x><!DOCTYPE x></x>"), XmlErrorKind::Doctype);
}

#[test]
fn billion_laughs_is_refused() {
    let mut doc =
        String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n<!ENTITY lol \"lol\">\n");
    doc.push_str("<!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n");
    for i in 2..10 {
        let prev = format!("&lol{};", i - 1).repeat(10);
        doc.push_str(&format!("<!ENTITY lol{i} \"{prev}\">\n"));
    }
    doc.push_str("]>\n<lolz>&lol9;</lolz>");
    assert_eq!(refused(doc.as_bytes()), XmlErrorKind::Doctype);
    // Without the DOCTYPE the reference is simply undefined.
    assert!(is_malformed(&refused(b"<lolz>&lol9;</lolz>")));
}

#[test]
fn undefined_entities_are_refused() {
    for doc in [
        &b"<a>&foo;</a>"[..],
        b"<a b='&foo;'/>",
        b"<a>&nbsp;</a>",
        b"<a>&amp</a>",
    ] {
        assert!(
            is_malformed(&refused(doc)),
            "{}",
            String::from_utf8_lossy(doc)
        );
    }
    assert_eq!(
        parse(b"<a b='&lt;&gt;&amp;&apos;&quot;'>&lt;&gt;&amp;&apos;&quot;</a>")
            .unwrap()
            .text(),
        "<>&'\""
    );
}

#[test]
fn processing_instructions_are_refused() {
    assert_eq!(
        refused(b"<?xml-stylesheet href='x'?><a/>"),
        XmlErrorKind::ProcessingInstruction
    );
    assert_eq!(
        refused(b"<a><?php echo 1; ?></a>"),
        XmlErrorKind::ProcessingInstruction
    );
    assert_eq!(refused(b"<a/><?pi?>"), XmlErrorKind::ProcessingInstruction);
    // A declaration anywhere but the very start is refused too.
    assert!(is_malformed(&refused(b"\n<?xml version='1.0'?><a/>")));
    assert!(is_malformed(&refused(b"<a><?xml version='1.0'?></a>")));
    assert!(parse(b"<?xml version='1.0' encoding='UTF-8' standalone='yes'?>\n<a/>\n").is_ok());
}

#[test]
fn illegal_characters_are_refused() {
    assert_eq!(refused(b"<a>\x01</a>"), XmlErrorKind::IllegalChar(1));
    assert_eq!(refused(b"<a>&#1;</a>"), XmlErrorKind::IllegalChar(1));
    assert_eq!(
        refused(b"<a>&#xFFFE;</a>"),
        XmlErrorKind::IllegalChar(0xFFFE)
    );
    assert_eq!(
        refused(b"<a>&#xD800;</a>"),
        XmlErrorKind::IllegalChar(0xD800)
    );
    assert_eq!(refused(b"<a b='\x1b'/>"), XmlErrorKind::IllegalChar(0x1B));
    assert_eq!(
        refused(b"<a><![CDATA[\x00]]></a>"),
        XmlErrorKind::IllegalChar(0)
    );
    assert_eq!(
        refused(b"<a><!-- \x08 --></a>"),
        XmlErrorKind::IllegalChar(8)
    );
    assert_eq!(
        refused("<a>\u{FFFF}</a>".as_bytes()),
        XmlErrorKind::IllegalChar(0xFFFF)
    );
    assert_eq!(
        refused(b"<a>&#x110000;</a>"),
        XmlErrorKind::IllegalChar(0x110000)
    );
    // Tab, LF, CR and everything from U+0020 up are fine, including C1.
    assert!(
        parse("<a>\t\n\r \u{85}\u{D7FF}\u{E000}\u{10FFFF}&#9;&#x10000;</a>".as_bytes()).is_ok()
    );
}

#[test]
fn bad_names_are_refused() {
    for doc in [
        "<1a/>",
        "<a:b:c/>",
        "<-a/>",
        "<:a/>",
        "<a:/>",
        "<a 1b='x'/>",
        "<a b:c:d='x'/>",
    ] {
        assert!(
            matches!(refused(doc.as_bytes()), XmlErrorKind::BadName(_)),
            "{doc}"
        );
    }
    assert!(parse("<\u{C0}l\u{E9}ment \u{3B1}\u{B7}='x' _a.b-c='y'/>".as_bytes()).is_ok());
}

#[test]
fn unbound_prefixes_are_refused() {
    assert_eq!(refused(b"<p:a/>"), XmlErrorKind::UnboundPrefix("p".into()));
    assert_eq!(
        refused(b"<a p:b='x'/>"),
        XmlErrorKind::UnboundPrefix("p".into())
    );
    assert_eq!(
        refused(b"<a xmlns:p='u'/><!-- --><b/>").to_string(),
        "not well-formed: a second root element"
    );
    // Scope ends with the element.
    assert_eq!(
        refused(b"<r><a xmlns:p='u'/><p:b/></r>"),
        XmlErrorKind::UnboundPrefix("p".into())
    );
    assert!(parse(b"<a xml:lang='en'/>").is_ok());
}

#[test]
fn namespace_misuse_is_refused() {
    for doc in [
        "<a xmlns:p=''/>",
        "<a xmlns:xml='urn:x'/>",
        "<a xmlns:xmlns='urn:x'/>",
        "<a xmlns:p='http://www.w3.org/XML/1998/namespace'/>",
        "<a xmlns='http://www.w3.org/2000/xmlns/'/>",
        "<xmlns:a/>",
        "<a xmlns:p='u' xmlns:q='u' p:b='1' q:b='2'/>",
        "<a b='1' b='2'/>",
    ] {
        assert!(is_malformed(&refused(doc.as_bytes())), "{doc}");
    }
    let root = parse(b"<a xmlns='urn:d'><b xmlns=''/></a>").unwrap();
    assert_eq!(root.elements().next().unwrap().name, QName::local("b"));
}

#[test]
fn structure_errors_are_refused() {
    for doc in [
        "",
        "  ",
        "<a>",
        "<a></b>",
        "<a/><b/>",
        "<a/>x",
        "x<a/>",
        "</a>",
        "<a/></a>",
        "<a b='1'c='2'/>",
        "<a b=1/>",
        "<a b/>",
        "<a><b></a></b>",
        "<a>]]></a>",
        "<!-- only a comment -->",
    ] {
        assert!(is_malformed(&refused(doc.as_bytes())), "{doc:?}");
    }
}

#[test]
fn two_roots_are_refused() {
    assert!(is_malformed(&refused(b"<a/><b/>")));
    assert!(is_malformed(&refused(b"<a></a>\n<a></a>")));
}

#[test]
fn invalid_utf8_is_an_encoding_error() {
    for doc in [
        &b"<a>\xFF</a>"[..],
        b"<a>\xC3</a>",
        b"<a>\xED\xA0\x80</a>",
        b"<a>\xF8\x88\x80\x80\x80</a>",
    ] {
        assert!(matches!(refused(doc), XmlErrorKind::Encoding { .. }));
    }
    let e = read(b"<a>\n  \xC0\xAF</a>", None, &Limits::default()).unwrap_err();
    assert_eq!(e.pos, Pos { line: 2, col: 3 });
    // A declared charset that does not match the bytes is still an error.
    assert!(read(b"<a>\xE9</a>", Some("utf-8"), &Limits::default()).is_err());
    assert!(read(b"<a>\xE9</a>", Some("us-ascii"), &Limits::default()).is_err());
    assert!(read(b"<a/>", Some("x-unknown"), &Limits::default()).is_err());
    assert!(
        read(
            b"<?xml version='1.0' encoding='EBCDIC'?><a/>",
            None,
            &Limits::default()
        )
        .is_err()
    );
}

#[test]
fn truncated_and_broken_utf16_are_encoding_errors() {
    let mut le = vec![0xFF, 0xFE];
    le.extend("<a>x</a>".encode_utf16().flat_map(u16::to_le_bytes));
    assert!(parse(&le).is_ok());
    let odd = &le[..le.len() - 1];
    assert!(matches!(refused(odd), XmlErrorKind::Encoding { .. }));
    // A lone high surrogate, then 'b'.
    let mut lone = vec![
        0xFE, 0xFF, 0x00, b'<', 0x00, b'a', 0x00, b'>', 0xD8, 0x00, 0x00, b'b',
    ];
    lone.extend([0x00, b'<', 0x00, b'/', 0x00, b'a', 0x00, b'>']);
    assert!(matches!(refused(&lone), XmlErrorKind::Encoding { .. }));
    // A lone low surrogate.
    let bad = [
        0xFF, 0xFE, b'<', 0, b'a', 0, b'>', 0, 0x00, 0xDC, b'<', 0, b'/', 0, b'a', 0, b'>', 0,
    ];
    assert!(matches!(refused(&bad), XmlErrorKind::Encoding { .. }));
}

#[test]
fn byte_order_marks_decide_the_charset() {
    let cases: [(&[u8], Charset); 3] = [
        (&[0xEF, 0xBB, 0xBF], Charset::Utf8),
        (&[0xFF, 0xFE], Charset::Utf16Le),
        (&[0xFE, 0xFF], Charset::Utf16Be),
    ];
    for (bom, cs) in cases {
        let body = "<a>\u{FC}\u{20AC}</a>";
        let mut bytes = bom.to_vec();
        match cs {
            Charset::Utf16Le => bytes.extend(body.encode_utf16().flat_map(u16::to_le_bytes)),
            Charset::Utf16Be => bytes.extend(body.encode_utf16().flat_map(u16::to_be_bytes)),
            _ => bytes.extend(body.as_bytes()),
        }
        // The BOM wins over a contradicting transport charset.
        let doc = read(&bytes, Some("iso-8859-1"), &Limits::default()).unwrap();
        assert_eq!(doc.charset, cs);
        assert_eq!(doc.root.text(), "\u{FC}\u{20AC}");
    }
    // A BOM anywhere but the start is a character like any other, and not
    // allowed before the root element.
    assert!(parse("<a/>\u{FEFF}".as_bytes()).is_err());
}

fn round_trip(text: &str, charset: Charset) {
    let mut root = Element::new(QName::new("urn:t", "Name"));
    root.prefix = Some("t".into());
    root.ns_decls.push(soapgate::xml::NsDecl {
        prefix: "t".into(),
        uri: "urn:t".into(),
    });
    root.attrs.push(Attribute {
        name: QName::local("who"),
        prefix: None,
        value: text.into(),
    });
    root.push_text(text);
    let bytes = write_document(&root, charset);
    let first = read(&bytes, None, &Limits::default()).unwrap();
    assert_eq!(first.charset, charset, "{charset:?}");
    assert_eq!(strip_pos(&first.root), root, "{charset:?}");
    // And again, from what was read.
    let again = write_document(&first.root, first.charset);
    assert_eq!(again, bytes, "{charset:?}");
    let second = read(&again, None, &Limits::default()).unwrap();
    assert_eq!(strip_pos(&second.root), strip_pos(&first.root));
}

#[test]
fn charsets_round_trip() {
    for cs in [
        Charset::Utf8,
        Charset::Utf16Le,
        Charset::Utf16Be,
        Charset::Latin1,
        Charset::Windows1252,
        Charset::UsAscii,
    ] {
        round_trip("M\u{FC}ller \u{20AC} \u{3B1} \u{1F600} <&>", cs);
    }
}

#[test]
fn latin1_and_windows1252_bytes_decode_as_declared() {
    let doc = read(
        b"<?xml version='1.0' encoding='ISO-8859-1'?><n>M\xFCller</n>",
        None,
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(doc.charset, Charset::Latin1);
    assert_eq!(doc.root.text(), "M\u{FC}ller");
    let doc = read(
        b"<n>\x80 M\xFCller</n>",
        Some("Windows-1252"),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(doc.charset, Charset::Windows1252);
    assert_eq!(doc.root.text(), "\u{20AC} M\u{FC}ller");
    assert_eq!(
        write_document(&doc.root, doc.charset),
        b"<?xml version=\"1.0\" encoding=\"windows-1252\"?><n>\x80 M\xFCller</n>"
    );
    assert_eq!(charset::encode("\u{20AC}", Charset::Latin1), b"&#x20AC;");
}

#[test]
fn positions_are_reported() {
    let doc = b"<?xml version='1.0'?>\n<r>\n  <a>\n    <b x='&bad;'/>\n  </a>\n</r>";
    let e = read(doc, None, &Limits::default()).unwrap_err();
    assert!(is_malformed(&e.kind));
    assert_eq!(e.pos, Pos { line: 4, col: 11 });
    let ok = read(b"<r>\r\n  <a/>\r\n</r>", None, &Limits::default()).unwrap();
    assert_eq!(
        ok.root.elements().next().unwrap().pos,
        Pos { line: 2, col: 3 }
    );
}

// ---- property tests ----

/// A valid document to mutate, so random changes reach deep into the reader.
const SEED: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:x">
 <s:Header><h a="1" s:mustUnderstand="0">&amp;&#x41;<![CDATA[<c>]]></h></s:Header>
 <s:Body><Op><In xml:lang="de">M&#252;ller</In><!-- note --></Op></s:Body>
</s:Envelope>"#;

fn labels() -> impl Strategy<Value = Option<&'static str>> {
    prop::sample::select(vec![
        None,
        Some("utf-8"),
        Some("utf-16"),
        Some("utf-16le"),
        Some("iso-8859-1"),
        Some("windows-1252"),
        Some("us-ascii"),
        Some("bogus"),
    ])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512), label in labels()) {
        let _ = read(&bytes, label, &Limits::default());
    }

    #[test]
    fn mutated_documents_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
        label in labels(),
    ) {
        let mut bytes = SEED.as_bytes().to_vec();
        for (at, b, op) in edits {
            let i = at.index(bytes.len() + 1);
            match op {
                0 => bytes.insert(i, b),
                1 if i < bytes.len() => { bytes.remove(i); }
                _ if i < bytes.len() => bytes[i] = b,
                _ => {}
            }
        }
        let small = Limits { max_depth: 3, max_attributes: 2, max_attribute_bytes: 8,
            max_namespace_decls: 2, max_children: 4, max_text_bytes: 16 };
        let _ = read(&bytes, label, &Limits::default());
        let _ = read(&bytes, label, &small);
    }

    #[test]
    fn written_trees_read_back_unchanged(root in tree(), cs in prop::sample::select(vec![
        Charset::Utf8, Charset::Utf16Le, Charset::Utf16Be, Charset::Latin1, Charset::Windows1252, Charset::UsAscii,
    ])) {
        let text = write_element(&root);
        let back = read(text.as_bytes(), None, &Limits::default())
            .map_err(|e| TestCaseError::fail(format!("{e} in {text}")))?.root;
        prop_assert_eq!(names_and_content(&back), names_and_content(&root), "{}", text);
        // Once read, a tree is written the same way every time, in any charset.
        let (bytes, used) = write_document_as(&back, cs);
        prop_assert!(used == cs || used == Charset::Utf8);
        let again = read(&bytes, None, &Limits::default())
            .map_err(|e| TestCaseError::fail(format!("{e} in {cs:?}")))?;
        prop_assert_eq!(again.charset, used);
        prop_assert_eq!(strip_pos(&again.root), strip_pos(&back));
        prop_assert_eq!(write_element(&again.root), write_element(&back));
    }
}

/// What a reader of the tree sees: names, attribute names and values, text;
/// not prefixes or where declarations were made.
fn names_and_content(el: &Element) -> String {
    let mut out = format!("<{}", el.name);
    for a in &el.attrs {
        out.push_str(&format!(" {}={:?}", a.name, a.value));
    }
    out.push('>');
    for n in &el.children {
        match n {
            Node::Element(e) => out.push_str(&names_and_content(e)),
            Node::Text(t) => out.push_str(&format!("{t:?}")),
        }
    }
    out.push_str("</>");
    out
}

fn xml_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => prop::sample::select(vec!['a', 'Z', ' ', '\t', '\n', '\r', '&', '<', '>', '"', '\'', ']', ';', '#']),
        1 => any::<char>().prop_filter("XML char", |c| {
            matches!(*c as u32, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
        }),
    ]
}

fn xml_string(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(xml_char(), 0..max).prop_map(|v| v.into_iter().collect())
}

fn qname() -> impl Strategy<Value = (QName, Option<String>)> {
    let ns = prop::sample::select(vec![
        "",
        "",
        "urn:a",
        "urn:b",
        "http://example.com/c?x=1&y=2",
    ]);
    let local = prop::sample::select(vec!["a", "b", "Item", "\u{E9}l\u{E9}ment", "x-y.z"]);
    let prefix = prop::sample::select(vec![None, Some("p"), Some("q"), Some("ns1")]);
    (ns, local, prefix).prop_map(|(ns, local, prefix)| {
        let prefix = if ns.is_empty() {
            None
        } else {
            prefix.map(str::to_string)
        };
        (QName::new(ns, local), prefix)
    })
}

fn leaf() -> impl Strategy<Value = Element> {
    let attrs = prop::collection::vec((qname(), xml_string(6)), 0..4);
    (qname(), attrs).prop_map(|((name, prefix), attrs)| {
        let mut el = Element::new(name);
        el.prefix = prefix;
        for ((an, ap), value) in attrs {
            if el.attrs.iter().all(|a| a.name != an) {
                el.attrs.push(Attribute {
                    name: an,
                    prefix: ap,
                    value,
                });
            }
        }
        el
    })
}

fn tree() -> impl Strategy<Value = Element> {
    leaf().prop_recursive(4, 32, 4, |inner| {
        let child = prop_oneof![
            inner.prop_map(Node::Element),
            xml_string(8).prop_map(Node::Text),
        ];
        (leaf(), prop::collection::vec(child, 0..4)).prop_map(|(mut el, children)| {
            // The reader merges adjacent text and has no empty text nodes.
            for c in children {
                match (c, el.children.last_mut()) {
                    (Node::Text(t), _) if t.is_empty() => {}
                    (Node::Text(t), Some(Node::Text(prev))) => prev.push_str(&t),
                    (c, _) => el.children.push(c),
                }
            }
            el
        })
    })
}
