//! The bounded reader: bytes in, [`Document`] out, or an [`XmlError`] that
//! says what was refused and where.
//!
//! This is the first code that touches a caller's bytes, so it assumes the
//! worst. quick-xml splits the text into tags, text, references and the like;
//! everything quick-xml lets through is checked again here, because a
//! tokenizer alone accepts some malformed documents: names are checked against
//! the XML 1.0 (5th edition) `Name`/`QName` productions, every character of
//! text, attribute values, comments and CDATA against `Char`, references are
//! resolved here (only the five predefined entities and character references
//! exist; nothing is ever expanded from a DTD or fetched), and namespaces are
//! resolved and checked here. A DOCTYPE or a processing instruction is refused
//! outright. The [`Limits`] are enforced while streaming, before the tree
//! grows.
//!
//! Choices callers should know:
//! - Whitespace-only text between elements is kept as [`Node::Text`] so that
//!   a document re-serialises as it came; consumers that want element content
//!   only use [`Element::elements`]. Whitespace before and after the root
//!   element is dropped.
//! - Adjacent character data (text, references, CDATA sections, and text
//!   around a dropped comment) is merged into one [`Node::Text`].
//! - Line ends are normalised (CRLF and CR become LF) before parsing, as XML
//!   requires; attribute values are normalised (tab, LF become a space;
//!   character references are kept as written).
//! - [`Pos`] is the 1-based line and column (counted in characters, after line
//!   end normalisation) of an element's `<`; for an error, where the problem
//!   was found (the offending character, reference, tag or attribute value).
//!   Encoding errors point at the first undecodable byte.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;

use super::charset::{self, end_pos};
use super::{Attribute, Charset, Element, Node, NsDecl, Pos, QName, XML_NS, XMLNS_NS};

/// Caps on what a document may contain; defaults follow Apache CXF.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_depth: usize,
    pub max_attributes: usize,
    pub max_attribute_bytes: usize,
    pub max_namespace_decls: usize,
    pub max_children: usize,
    pub max_text_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 100,
            max_attributes: 500,
            max_attribute_bytes: 65_536,
            max_namespace_decls: 100,
            max_children: 50_000,
            max_text_bytes: 16 * 1024 * 1024,
        }
    }
}

#[derive(Debug)]
pub struct Document {
    pub root: Element,
    /// The charset the document came in, so the answer can go out in it.
    pub charset: Charset,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pos}: {kind}")]
pub struct XmlError {
    pub kind: XmlErrorKind,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlErrorKind {
    #[error("not well-formed: {0}")]
    Malformed(String),
    #[error("DOCTYPE is not allowed")]
    Doctype,
    #[error("processing instructions are not allowed")]
    ProcessingInstruction,
    #[error("nesting deeper than {0} elements")]
    TooDeep(usize),
    #[error("more than {0} attributes on one element")]
    TooManyAttributes(usize),
    #[error("an attribute value longer than {0} bytes")]
    AttributeTooLarge(usize),
    #[error("more than {0} namespace declarations on one element")]
    TooManyNamespaces(usize),
    #[error("more than {0} child nodes in one element")]
    TooManyChildren(usize),
    #[error("text longer than {0} bytes")]
    TextTooLarge(usize),
    #[error("the document needs more than {0} bytes of memory to read")]
    TreeTooLarge(usize),
    #[error("illegal character U+{0:04X}")]
    IllegalChar(u32),
    #[error("illegal name {0}")]
    BadName(String),
    #[error("undeclared namespace prefix {0}")]
    UnboundPrefix(String),
    #[error("cannot decode as {charset}: {detail}")]
    Encoding { charset: String, detail: String },
}

/// How much memory the tree of one document may take, in the estimated heap
/// bytes of [`Element::heap_size`]: `factor` times the document's size in
/// bytes, or `floor`, whichever is more. Checked while the tree grows, so a
/// document over budget is refused before it costs more.
///
/// The tree of a small document is many times its size whatever its shape
/// (an element is a 152-byte node before its name or text), hence the floor;
/// past the floor the factor holds, so memory stays proportional to what a
/// caller sent (a body cap and a budget of bodies in flight then bound the
/// whole). Kept apart from [`Limits`] because it is a property of the call
/// path (requests are budgeted; the admin's contracts are not), not of a
/// document's structure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeBudget {
    pub factor: usize,
    pub floor: usize,
}

impl TreeBudget {
    /// No budget: the tree is as large as the document makes it (contracts,
    /// stored job payloads).
    pub const UNLIMITED: TreeBudget = TreeBudget {
        factor: usize::MAX,
        floor: usize::MAX,
    };

    /// Requests: 8 times the body, at least 8 MiB. A pretty-printed
    /// request of short fields costs 12 to 18 times its size, so it is
    /// accepted up to about 500 KB, and a larger one when it carries text
    /// (documents, base64 attachments: 1 to 2 times); a 9 MB body of two
    /// million `<x/>` (40 times) is refused after some 72 MB.
    pub const REQUEST: TreeBudget = TreeBudget {
        factor: 8,
        floor: 8 << 20,
    };

    /// The most a document of `input_len` bytes may take.
    pub fn max_bytes(&self, input_len: usize) -> usize {
        self.factor.saturating_mul(input_len).max(self.floor)
    }
}

/// What reading a document took: counters for tests and benchmarks, which
/// assert on work done rather than time taken.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Element and attribute names resolved to a namespace (prefixed or not).
    pub names_resolved: u64,
    /// Namespace bindings looked at while resolving them.
    pub bindings_examined: u64,
    /// Elements started.
    pub elements: u64,
    /// The tree's estimated heap bytes ([`Element::heap_size`]) when reading
    /// stopped, finished or refused.
    pub tree_bytes: usize,
    /// The largest `tree_bytes` reached.
    pub peak_tree_bytes: usize,
}

/// Read a whole document. `transport_charset` is the `charset` parameter of
/// the HTTP Content-Type, if any. The tree is not budgeted; see
/// [`read_with`].
pub fn read(
    bytes: &[u8],
    transport_charset: Option<&str>,
    limits: &Limits,
) -> Result<Document, XmlError> {
    read_with(bytes, transport_charset, limits, &TreeBudget::UNLIMITED)
}

/// [`read`], refusing a document whose tree would take more than `budget`
/// allows for its size ([`XmlErrorKind::TreeTooLarge`]).
pub fn read_with(
    bytes: &[u8],
    transport_charset: Option<&str>,
    limits: &Limits,
    budget: &TreeBudget,
) -> Result<Document, XmlError> {
    read_measured(bytes, transport_charset, limits, budget).0
}

/// [`read_with`], also saying what the reading took.
pub fn read_measured(
    bytes: &[u8],
    transport_charset: Option<&str>,
    limits: &Limits,
    budget: &TreeBudget,
) -> (Result<Document, XmlError>, ReadStats) {
    let (text, charset) = match charset::decode(bytes, transport_charset) {
        Ok(decoded) => decoded,
        Err(e) => return (Err(e), ReadStats::default()),
    };
    read_str_as(&text, charset, limits, budget.max_bytes(bytes.len()))
}

/// Read a document that is already a string (a file loaded as UTF-8, a
/// template's output). The charset recorded is UTF-8.
pub fn read_str(text: &str, limits: &Limits) -> Result<Document, XmlError> {
    read_str_as(
        text.strip_prefix('\u{FEFF}').unwrap_or(text),
        Charset::Utf8,
        limits,
        usize::MAX,
    )
    .0
}

fn read_str_as(
    text: &str,
    charset: Charset,
    limits: &Limits,
    max_tree: usize,
) -> (Result<Document, XmlError>, ReadStats) {
    // XML 1.0 section 2.11: line ends are normalised before parsing. Doing it
    // once up front keeps every later step (text, CDATA, attributes) simple,
    // and costs nothing for the usual document without CR.
    let normalized;
    let src = if text.as_bytes().contains(&b'\r') {
        normalized = text.replace("\r\n", "\n").replace('\r', "\n");
        normalized.as_str()
    } else {
        text
    };
    let mut builder = Builder::new(src, limits, max_tree);
    let root = builder.run();
    let stats = builder.stats;
    (root.map(|root| Document { root, charset }), stats)
}

fn err(kind: XmlErrorKind, pos: Pos) -> XmlError {
    XmlError { kind, pos }
}

fn malformed(msg: impl Into<String>, pos: Pos) -> XmlError {
    err(XmlErrorKind::Malformed(msg.into()), pos)
}

/// An element being built, with the mark to drop its namespace bindings.
struct Open {
    el: Element,
    ns_mark: usize,
}

/// The namespace bindings in scope while reading. A name resolves with one
/// hash lookup however many bindings are in scope: a document within every
/// cap may nest 100 elements of 100 declarations each, and comparing each
/// name with every binding made half a million names cost 9,500
/// comparisons each.
#[derive(Default)]
struct Bindings {
    /// Each prefix's URIs, innermost last (`""`: the default namespace).
    uris: HashMap<String, Vec<String>>,
    /// The prefixes bound, in order, so an element's end undoes exactly
    /// the bindings it made.
    declared: Vec<String>,
}

impl Bindings {
    /// Where the bindings of the element being started begin.
    fn mark(&self) -> usize {
        self.declared.len()
    }

    fn bind(&mut self, prefix: &str, uri: &str) {
        match self.uris.get_mut(prefix) {
            Some(stack) => stack.push(uri.to_string()),
            None => {
                self.uris.insert(prefix.to_string(), vec![uri.to_string()]);
            }
        }
        self.declared.push(prefix.to_string());
    }

    /// Drop the bindings made since `mark`, at the end of their element.
    fn unwind(&mut self, mark: usize) {
        for prefix in self.declared.drain(mark..) {
            if let Some(stack) = self.uris.get_mut(&prefix) {
                stack.pop();
                if stack.is_empty() {
                    self.uris.remove(&prefix);
                }
            }
        }
    }

    /// The URI bound to `prefix`, counting the bindings looked at in
    /// `examined`: the innermost one, if any.
    fn lookup(&self, prefix: &str, examined: &mut u64) -> Option<&str> {
        let uri = self.uris.get(prefix)?.last()?;
        *examined += 1;
        Some(uri)
    }
}

/// Turns quick-xml events into a checked tree.
struct Builder<'a, 'l> {
    src: &'a str,
    limits: &'l Limits,
    stack: Vec<Open>,
    bindings: Bindings,
    root: Option<Element>,
    /// Character data not yet attached to the current element.
    text: String,
    lines: Lines<'a>,
    /// The most `stats.tree_bytes` may reach.
    max_tree: usize,
    stats: ReadStats,
}

impl<'a, 'l> Builder<'a, 'l> {
    fn new(src: &'a str, limits: &'l Limits, max_tree: usize) -> Self {
        Builder {
            src,
            limits,
            stack: Vec::new(),
            bindings: Bindings::default(),
            root: None,
            text: String::new(),
            lines: Lines::new(src),
            max_tree,
            stats: ReadStats::default(),
        }
    }

    /// Count `bytes` more of tree, or refuse the document when they would
    /// take it past its budget (the tree never holds them then).
    fn charge(&mut self, bytes: usize, offset: usize) -> Result<(), XmlError> {
        let next = self.stats.tree_bytes.saturating_add(bytes);
        if next > self.max_tree {
            return Err(err(
                XmlErrorKind::TreeTooLarge(self.max_tree),
                self.pos_at(offset),
            ));
        }
        self.stats.tree_bytes = next;
        self.stats.peak_tree_bytes = self.stats.peak_tree_bytes.max(next);
        Ok(())
    }

    /// Make room for one more child of the current element, counting (and
    /// refusing) a larger vector before it is allocated: growing one is the
    /// largest single step a tree takes.
    fn room_for_child(&mut self, offset: usize) -> Result<(), XmlError> {
        let Some(open) = self.stack.last() else {
            return Ok(());
        };
        let (len, cap) = (open.el.children.len(), open.el.children.capacity());
        if len < cap {
            return Ok(());
        }
        // Doubling, as a vector grows on its own, but not past the cap on
        // children.
        let extra = cap
            .max(4)
            .min(self.limits.max_children.saturating_sub(cap).max(1));
        self.charge(extra * size_of::<Node>(), offset)?;
        if let Some(open) = self.stack.last_mut() {
            open.el.children.reserve_exact(extra);
            let got = open.el.children.capacity() - cap;
            // Should the allocator have given more, the tree holds more.
            let more = got.saturating_sub(extra) * size_of::<Node>();
            self.stats.tree_bytes += more;
            self.stats.peak_tree_bytes = self.stats.peak_tree_bytes.max(self.stats.tree_bytes);
        }
        Ok(())
    }

    /// Count `bytes` less: a buffer given back.
    fn credit(&mut self, bytes: usize) {
        self.stats.tree_bytes = self.stats.tree_bytes.saturating_sub(bytes);
    }

    fn run(&mut self) -> Result<Element, XmlError> {
        let mut reader = Reader::from_str(self.src);
        {
            let cfg = reader.config_mut();
            cfg.check_end_names = true;
            cfg.check_comments = true;
            cfg.expand_empty_elements = false;
            cfg.trim_text(false);
            cfg.allow_dangling_amp = false;
            cfg.allow_unmatched_ends = false;
        }
        let mut first = true;
        loop {
            let before = offset_u(reader.buffer_position());
            let event = match reader.read_event() {
                Ok(e) => e,
                Err(e) => return Err(self.tokenizer_error(&e, offset_u(reader.error_position()))),
            };
            match event {
                Event::Decl(d) => {
                    if !first || before != 0 {
                        return Err(malformed(
                            "the XML declaration must be at the very start",
                            self.pos_at(before),
                        ));
                    }
                    if let Err(m) = check_decl(&d) {
                        return Err(malformed(m, self.pos_at(before)));
                    }
                }
                Event::PI(_) => {
                    return Err(err(
                        XmlErrorKind::ProcessingInstruction,
                        self.pos_at(before),
                    ));
                }
                Event::DocType(_) => return Err(err(XmlErrorKind::Doctype, self.pos_at(before))),
                Event::Comment(c) => {
                    self.check_chars(&c)?;
                    if c.ends_with('-') {
                        return Err(malformed(
                            "a comment may not end with '-'",
                            self.pos_at(before),
                        ));
                    }
                }
                Event::Start(e) => self.start(&e, before, false)?,
                Event::Empty(e) => self.start(&e, before, true)?,
                Event::End(_) => self.end(before)?,
                Event::Text(t) => self.text(&t, before)?,
                Event::CData(c) => {
                    if self.stack.is_empty() {
                        return Err(malformed(
                            "CDATA outside the root element",
                            self.pos_at(before),
                        ));
                    }
                    self.check_chars(&c)?;
                    self.push_text(&c, before)?;
                }
                Event::GeneralRef(r) => {
                    if self.stack.is_empty() {
                        return Err(malformed(
                            "a reference outside the root element",
                            self.pos_at(before),
                        ));
                    }
                    let c = resolve_ref(&r).map_err(|k| err(k, self.pos_at(before)))?;
                    let mut buf = [0u8; 4];
                    self.push_text(c.encode_utf8(&mut buf), before)?;
                }
                Event::Eof => break,
            }
            first = false;
        }
        let end = self.src.len();
        if let Some(open) = self.stack.last() {
            let name = open.el.name.local.clone();
            return Err(malformed(
                format!("element <{name}> is not closed"),
                self.pos_at(end),
            ));
        }
        self.root
            .take()
            .ok_or_else(|| malformed("no root element", end_pos(self.src)))
    }

    fn pos_at(&mut self, offset: usize) -> Pos {
        self.lines.pos(offset)
    }

    /// The offset of a slice borrowed from the source, if it is one.
    fn offset_of(&self, s: &str) -> Option<usize> {
        let base = self.src.as_ptr() as usize;
        let p = s.as_ptr() as usize;
        (p >= base && p <= base + self.src.len()).then(|| p - base)
    }

    fn tokenizer_error(&mut self, e: &quick_xml::Error, offset: usize) -> XmlError {
        use quick_xml::errors::{IllFormedError, SyntaxError};
        let pos = self.pos_at(offset.min(self.src.len()));
        match e {
            quick_xml::Error::Syntax(SyntaxError::UnclosedDoctype)
            | quick_xml::Error::IllFormed(IllFormedError::MissingDoctypeName) => {
                err(XmlErrorKind::Doctype, pos)
            }
            other => malformed(other.to_string(), pos),
        }
    }

    /// Legal XML characters only, and no `]]>` outside CDATA (checked by the
    /// caller for text).
    fn check_chars(&mut self, s: &str) -> Result<(), XmlError> {
        if let Some((i, c)) = first_illegal(s) {
            let at = self.offset_of(s).map(|o| o + i).unwrap_or(0);
            return Err(err(XmlErrorKind::IllegalChar(c), self.pos_at(at)));
        }
        Ok(())
    }

    fn text(&mut self, t: &str, before: usize) -> Result<(), XmlError> {
        if self.stack.is_empty() {
            if !t.bytes().all(is_xml_space) {
                let what = if self.root.is_some() {
                    "after"
                } else {
                    "before"
                };
                return Err(malformed(
                    format!("text {what} the root element"),
                    self.pos_at(before),
                ));
            }
            return Ok(());
        }
        self.check_chars(t)?;
        if let Some(i) = t
            .as_bytes()
            .contains(&b'>')
            .then(|| t.find("]]>"))
            .flatten()
        {
            return Err(malformed("']]>' in text", self.pos_at(before + i)));
        }
        self.push_text(t, before)
    }

    fn push_text(&mut self, t: &str, before: usize) -> Result<(), XmlError> {
        if self.text.len() + t.len() > self.limits.max_text_bytes {
            return Err(err(
                XmlErrorKind::TextTooLarge(self.limits.max_text_bytes),
                self.pos_at(before),
            ));
        }
        self.text.push_str(t);
        Ok(())
    }

    /// Attach pending character data to the current element.
    fn flush_text(&mut self, at: usize) -> Result<(), XmlError> {
        if self.text.is_empty() {
            return Ok(());
        }
        let max = self.limits.max_children;
        let Some(open) = self.stack.last_mut() else {
            self.text.clear();
            return Ok(());
        };
        if open.el.children.len() >= max {
            return Err(err(XmlErrorKind::TooManyChildren(max), self.lines.pos(at)));
        }
        self.charge(super::heap_bytes(self.text.len()), at)?;
        self.room_for_child(at)?;
        if let Some(open) = self.stack.last_mut() {
            // Copy at the exact size and keep the buffer for the next text.
            open.el.children.push(Node::Text(self.text.clone()));
        }
        self.text.clear();
        Ok(())
    }

    fn start(&mut self, e: &BytesStart<'_>, before: usize, empty: bool) -> Result<(), XmlError> {
        let pos = self.pos_at(before);
        if self.stack.is_empty() && self.root.is_some() {
            return Err(malformed("a second root element", pos));
        }
        if self.stack.len() >= self.limits.max_depth {
            return Err(err(XmlErrorKind::TooDeep(self.limits.max_depth), pos));
        }
        self.flush_text(before)?;
        if self
            .stack
            .last()
            .is_some_and(|p| p.el.children.len() >= self.limits.max_children)
        {
            return Err(err(
                XmlErrorKind::TooManyChildren(self.limits.max_children),
                pos,
            ));
        }
        self.stats.elements += 1;

        let raw_name = e.name().0;
        let (prefix, local) = split_qname(raw_name).map_err(|k| err(k, pos))?;
        if prefix == Some("xmlns") {
            return Err(malformed("an element may not use the prefix xmlns", pos));
        }
        let ns_mark = self.bindings.mark();
        let mut el = Element {
            name: QName {
                ns: String::new(),
                local: local.to_string(),
            },
            prefix: prefix.map(str::to_string),
            pos,
            ..Element::default()
        };

        // Pass 1: syntax, limits and namespace declarations, which apply to
        // the element's own name and attributes wherever they appear.
        let mut n_attrs = 0usize;
        for a in e.attributes() {
            let a = a.map_err(|x| malformed(x.to_string(), pos))?;
            let key = a.key.0;
            let vpos = self.offset_of(&a.value).unwrap_or(before);
            if !space_after_value(self.src, &a.value) {
                return Err(malformed(
                    "attributes need whitespace between them",
                    self.pos_at(vpos),
                ));
            }
            if a.value.len() > self.limits.max_attribute_bytes {
                return Err(err(
                    XmlErrorKind::AttributeTooLarge(self.limits.max_attribute_bytes),
                    self.pos_at(vpos),
                ));
            }
            let (ap, al) = split_qname(key).map_err(|k| err(k, pos))?;
            let decl_prefix = match (ap, al) {
                (None, "xmlns") => Some(""),
                (Some("xmlns"), p) => Some(p),
                _ => None,
            };
            let Some(decl_prefix) = decl_prefix else {
                n_attrs += 1;
                if n_attrs > self.limits.max_attributes {
                    return Err(err(
                        XmlErrorKind::TooManyAttributes(self.limits.max_attributes),
                        pos,
                    ));
                }
                continue;
            };
            if el.ns_decls.len() >= self.limits.max_namespace_decls {
                return Err(err(
                    XmlErrorKind::TooManyNamespaces(self.limits.max_namespace_decls),
                    pos,
                ));
            }
            let uri = self.attr_value(&a.value, vpos)?;
            check_ns_decl(decl_prefix, &uri).map_err(|m| malformed(m, self.lines.pos(vpos)))?;
            if el.ns_decls.iter().any(|d| d.prefix == decl_prefix) {
                return Err(malformed(
                    format!("namespace prefix {decl_prefix} declared twice"),
                    pos,
                ));
            }
            self.bindings.bind(decl_prefix, &uri);
            let decl = NsDecl {
                prefix: decl_prefix.to_string(),
                uri: uri.into_owned(),
            };
            let bytes = string_heap(&decl.prefix) + string_heap(&decl.uri);
            el.ns_decls.push(decl);
            self.charge(bytes, before)?;
        }
        el.ns_decls.shrink_to_fit();

        el.name.ns = self.resolve(prefix, pos)?.to_string();
        // The element's node in its parent's children is counted when it is
        // pushed there; here what it owns.
        let own = string_heap(&el.name.ns)
            + string_heap(&el.name.local)
            + el.prefix.as_ref().map_or(0, string_heap)
            + el.ns_decls.capacity() * size_of::<NsDecl>();
        self.charge(own, before)?;

        // Pass 2: the attributes proper, now that every prefix is known.
        if n_attrs > 0 {
            el.attrs.reserve_exact(n_attrs);
            self.charge(el.attrs.capacity() * size_of::<Attribute>(), before)?;
            // Duplicates by raw name were checked in pass 1.
            for a in e.attributes().with_checks(false) {
                let a = a.map_err(|x| malformed(x.to_string(), pos))?;
                let (ap, al) = split_qname(a.key.0).map_err(|k| err(k, pos))?;
                if ap == Some("xmlns") || (ap.is_none() && al == "xmlns") {
                    continue;
                }
                let vpos = self.offset_of(&a.value).unwrap_or(before);
                let value = self.attr_value(&a.value, vpos)?.into_owned();
                // Unprefixed attributes are in no namespace, whatever the
                // default namespace is.
                let ns = match ap {
                    Some(p) => self.resolve(Some(p), pos)?.to_string(),
                    None => {
                        self.stats.names_resolved += 1;
                        String::new()
                    }
                };
                let attr = Attribute {
                    name: QName {
                        ns,
                        local: al.to_string(),
                    },
                    prefix: ap.map(str::to_string),
                    value,
                };
                let bytes = attribute_heap(&attr);
                el.attrs.push(attr);
                self.charge(bytes, vpos)?;
            }
            check_unique(&el.attrs).map_err(|m| malformed(m, pos))?;
        }

        if empty {
            self.bindings.unwind(ns_mark);
            self.close(el, before)
        } else {
            self.stack.push(Open { el, ns_mark });
            Ok(())
        }
    }

    fn end(&mut self, before: usize) -> Result<(), XmlError> {
        self.flush_text(before)?;
        let Some(mut open) = self.stack.pop() else {
            return Err(malformed(
                "an end tag without a start tag",
                self.pos_at(before),
            ));
        };
        self.bindings.unwind(open.ns_mark);
        // The children are final: give back what growing them reserved
        // (a leaf's one text node would otherwise hold room for four).
        let spare = open.el.children.capacity();
        open.el.children.shrink_to_fit();
        let spare = spare - open.el.children.capacity();
        self.credit(spare * size_of::<Node>());
        self.close(open.el, before)
    }

    /// A finished element goes to its parent, or becomes the root.
    fn close(&mut self, el: Element, before: usize) -> Result<(), XmlError> {
        match self.stack.last_mut() {
            Some(parent) => {
                if parent.el.children.len() >= self.limits.max_children {
                    let max = self.limits.max_children;
                    return Err(err(
                        XmlErrorKind::TooManyChildren(max),
                        self.lines.pos(before),
                    ));
                }
                self.room_for_child(before)?;
                if let Some(parent) = self.stack.last_mut() {
                    parent.el.children.push(Node::Element(el));
                }
            }
            None => self.root = Some(el),
        }
        Ok(())
    }

    /// The namespace of a name with this prefix (`None`: unprefixed, in
    /// the default namespace if one is declared).
    fn resolve(&mut self, prefix: Option<&str>, pos: Pos) -> Result<&str, XmlError> {
        self.stats.names_resolved += 1;
        let p = prefix.unwrap_or("");
        if p == "xml" {
            return Ok(XML_NS);
        }
        match self.bindings.lookup(p, &mut self.stats.bindings_examined) {
            Some(uri) => Ok(uri),
            None if p.is_empty() => Ok(""),
            None => Err(err(XmlErrorKind::UnboundPrefix(p.to_string()), pos)),
        }
    }

    /// Resolve references in an attribute value and normalise its
    /// whitespace (XML 1.0 section 3.3.3).
    fn attr_value<'v>(&mut self, raw: &'v str, at: usize) -> Result<Cow<'v, str>, XmlError> {
        self.check_chars(raw)?;
        let needs_work = raw
            .bytes()
            .any(|b| matches!(b, b'&' | b'<' | b'\t' | b'\n'));
        if !needs_work {
            return Ok(Cow::Borrowed(raw));
        }
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw;
        while let Some(i) = rest.find(['&', '<', '\t', '\n']) {
            out.push_str(&rest[..i]);
            let here = at + (raw.len() - rest.len()) + i;
            match rest.as_bytes()[i] {
                b'<' => return Err(malformed("'<' in an attribute value", self.pos_at(here))),
                b'&' => {
                    let tail = &rest[i + 1..];
                    let Some(semi) = tail.find(';') else {
                        return Err(malformed(
                            "'&' without ';' in an attribute value",
                            self.pos_at(here),
                        ));
                    };
                    let c = resolve_ref(&tail[..semi]).map_err(|k| err(k, self.lines.pos(here)))?;
                    out.push(c);
                    rest = &tail[semi + 1..];
                    continue;
                }
                _ => out.push(' '),
            }
            rest = &rest[i + 1..];
        }
        out.push_str(rest);
        Ok(Cow::Owned(out))
    }
}

/// Heap bytes of a string as [`Element::heap_size`] counts them.
pub(crate) fn string_heap(s: &String) -> usize {
    super::heap_bytes(s.capacity())
}

/// Heap bytes owned by an attribute (not its slot in the vector).
pub(crate) fn attribute_heap(a: &Attribute) -> usize {
    string_heap(&a.name.ns)
        + string_heap(&a.name.local)
        + a.prefix.as_ref().map_or(0, string_heap)
        + string_heap(&a.value)
}

fn offset_u(o: u64) -> usize {
    usize::try_from(o).unwrap_or(usize::MAX)
}

/// The XML declaration (XML 1.0 section 2.8): `version`, then optionally
/// `encoding` and `standalone`, in that order and nothing else. `content` is
/// the text between `<?` and `?>`.
fn check_decl(content: &str) -> Result<(), String> {
    let mut attrs = quick_xml::events::attributes::Attributes::new(content, 3);
    let mut expected = ["version", "encoding", "standalone"].into_iter();
    let mut seen = false;
    for (i, a) in attrs.with_checks(true).enumerate() {
        let a = a.map_err(|e| format!("in the XML declaration: {e}"))?;
        let key = a.key.0;
        if !expected.any(|k| k == key) || (i == 0 && key != "version") {
            return Err(format!(
                "unexpected pseudo-attribute {key} in the XML declaration"
            ));
        }
        let v = a.value.as_ref();
        let ok = match key {
            "version" => is_xml1_version(v),
            "encoding" => {
                v.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            }
            _ => v == "yes" || v == "no",
        };
        if !ok {
            return Err(format!("bad {key} {v} in the XML declaration"));
        }
        if !space_after_value(content, &a.value) {
            return Err("pseudo-attributes need whitespace between them".into());
        }
        seen = true;
    }
    if !seen {
        return Err("the XML declaration needs a version".into());
    }
    Ok(())
}

/// Attributes must be separated by whitespace (XML 1.0 `STag`), which the
/// tokenizer does not insist on: the character after the closing quote of
/// `value` (a slice of `buf`) must be whitespace, `/`, `>` or the end.
fn space_after_value(buf: &str, value: &str) -> bool {
    let base = buf.as_ptr() as usize;
    let p = value.as_ptr() as usize;
    if p < base || p > base + buf.len() {
        // Not a slice of the input; nothing to check against.
        return true;
    }
    let after_quote = p - base + value.len() + 1;
    match buf.as_bytes().get(after_quote) {
        None => true,
        Some(&b) => is_xml_space(b) || b == b'/' || b == b'>',
    }
}

fn is_xml1_version(v: &str) -> bool {
    v.strip_prefix("1.")
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

fn is_xml_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Namespaces in XML 1.0, section 3: what may and may not be declared.
fn check_ns_decl(prefix: &str, uri: &str) -> Result<(), String> {
    if prefix == "xmlns" {
        return Err("the prefix xmlns may not be declared".into());
    }
    if prefix == "xml" && uri != XML_NS {
        return Err("the prefix xml may only be bound to its own namespace".into());
    }
    if prefix != "xml" && uri == XML_NS {
        return Err("the XML namespace may only be bound to the prefix xml".into());
    }
    if uri == XMLNS_NS {
        return Err("the xmlns namespace may not be declared".into());
    }
    if !prefix.is_empty() && uri.is_empty() {
        return Err(format!("the prefix {prefix} may not be undeclared"));
    }
    Ok(())
}

/// No two attributes with the same expanded name (Namespaces in XML 1.0,
/// section 6.3).
fn check_unique(attrs: &[Attribute]) -> Result<(), String> {
    let dup = |a: &Attribute| format!("attribute {} appears twice", a.name);
    if attrs.len() <= 16 {
        for (i, a) in attrs.iter().enumerate() {
            if attrs[..i].iter().any(|b| b.name == a.name) {
                return Err(dup(a));
            }
        }
    } else {
        let mut seen = HashSet::with_capacity(attrs.len());
        for a in attrs {
            if !seen.insert((&a.name.ns, &a.name.local)) {
                return Err(dup(a));
            }
        }
    }
    Ok(())
}

/// The character a reference (the text between `&` and `;`) stands for.
fn resolve_ref(name: &str) -> Result<char, XmlErrorKind> {
    let (digits, radix) = match name {
        "lt" => return Ok('<'),
        "gt" => return Ok('>'),
        "amp" => return Ok('&'),
        "apos" => return Ok('\''),
        "quot" => return Ok('"'),
        _ => match name.strip_prefix("#x") {
            Some(h) => (h, 16),
            None => match name.strip_prefix('#') {
                Some(d) => (d, 10),
                None => {
                    return Err(XmlErrorKind::Malformed(format!(
                        "undefined entity &{};",
                        truncate(name, 40)
                    )));
                }
            },
        },
    };
    let bad =
        || XmlErrorKind::Malformed(format!("bad character reference &{};", truncate(name, 40)));
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    // Leading zeros are legal and unbounded in number; the value is not.
    let trimmed = digits.trim_start_matches('0');
    if trimmed.len() > 8 {
        return Err(bad());
    }
    let v = u32::from_str_radix(if trimmed.is_empty() { "0" } else { trimmed }, radix)
        .map_err(|_| bad())?;
    match char::from_u32(v) {
        Some(c) if is_xml_char(c) => Ok(c),
        _ => Err(XmlErrorKind::IllegalChar(v)),
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// XML 1.0 `Char`.
pub(crate) fn is_xml_char(c: char) -> bool {
    matches!(c as u32, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
}

/// The first character of `s` that is not an XML 1.0 `Char`, with its byte
/// offset. Works on bytes: in a Rust string the only illegal characters are
/// the C0 controls other than tab/LF/CR, and U+FFFE/U+FFFF (surrogates
/// cannot occur).
fn first_illegal(s: &str) -> Option<(usize, u32)> {
    let b = s.as_bytes();
    // Fast path without early exit, so it vectorises: is there any control
    // character other than tab/LF/CR, or any 0xEF lead byte at all?
    let suspect = b.iter().fold(false, |acc, &c| {
        acc | ((c < 0x20) & (c != b'\t') & (c != b'\n') & (c != b'\r')) | (c == 0xEF)
    });
    if !suspect {
        return None;
    }
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c < 0x20 {
            if !matches!(c, b'\t' | b'\n' | b'\r') {
                return Some((i, u32::from(c)));
            }
        } else if c == 0xEF && b.get(i + 1) == Some(&0xBF) {
            match b.get(i + 2) {
                Some(0xBE) => return Some((i, 0xFFFE)),
                Some(0xBF) => return Some((i, 0xFFFF)),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// Split a lexical QName into prefix and local part, checking both are
/// NCNames (Namespaces in XML 1.0, section 4).
pub(crate) fn split_qname(name: &str) -> Result<(Option<&str>, &str), XmlErrorKind> {
    let bad = || XmlErrorKind::BadName(truncate(name, 80).to_string());
    let (prefix, local) = match name.split_once(':') {
        Some((p, l)) => (Some(p), l),
        None => (None, name),
    };
    if prefix.is_some_and(|p| !is_ncname(p)) || !is_ncname(local) {
        return Err(bad());
    }
    Ok((prefix, local))
}

/// XML 1.0 5th edition `Name` without colons.
pub(crate) fn is_ncname(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if is_name_start(c) => {}
        _ => return false,
    }
    chars.all(is_name_char)
}

fn is_name_start(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphabetic() || c == '_';
    }
    matches!(c as u32,
        0xC0..=0xD6 | 0xD8..=0xF6 | 0xF8..=0x2FF | 0x370..=0x37D | 0x37F..=0x1FFF
        | 0x200C..=0x200D | 0x2070..=0x218F | 0x2C00..=0x2FEF | 0x3001..=0xD7FF
        | 0xF900..=0xFDCF | 0xFDF0..=0xFFFD | 0x10000..=0xEFFFF)
}

fn is_name_char(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    }
    is_name_start(c) || matches!(c as u32, 0xB7 | 0x300..=0x36F | 0x203F..=0x2040)
}

/// Byte offsets to line and column, moving forward through the source so
/// that positions of successive elements cost linear time in total.
struct Lines<'a> {
    src: &'a [u8],
    offset: usize,
    line: u32,
    col: u32,
}

impl<'a> Lines<'a> {
    fn new(src: &'a str) -> Self {
        Lines {
            src: src.as_bytes(),
            offset: 0,
            line: 1,
            col: 1,
        }
    }

    fn pos(&mut self, offset: usize) -> Pos {
        let offset = offset.min(self.src.len());
        if offset < self.offset {
            // Only errors look backwards; restart from the top.
            self.offset = 0;
            self.line = 1;
            self.col = 1;
        }
        let span = &self.src[self.offset..offset];
        // Every element asks, so the scans are memchr's vectorised ones.
        let tail = match memchr::memrchr(b'\n', span) {
            Some(i) => {
                let newlines = memchr::memchr_iter(b'\n', &span[..=i]).count();
                self.line = self
                    .line
                    .saturating_add(u32::try_from(newlines).unwrap_or(u32::MAX));
                self.col = 1;
                &span[i + 1..]
            }
            None => span,
        };
        // Columns count characters: every byte that does not continue one.
        let chars = tail.iter().filter(|&&b| b & 0xC0 != 0x80).count();
        self.col = self
            .col
            .saturating_add(u32::try_from(chars).unwrap_or(u32::MAX));
        self.offset = offset;
        Pos {
            line: self.line,
            col: self.col,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Element, XmlError> {
        read(s.as_bytes(), None, &Limits::default()).map(|d| d.root)
    }

    fn kind(s: &str) -> XmlErrorKind {
        match parse(s) {
            Ok(el) => panic!("accepted {s:?}: {el:?}"),
            Err(e) => e.kind,
        }
    }

    fn is_malformed(s: &str) -> bool {
        matches!(kind(s), XmlErrorKind::Malformed(_))
    }

    #[test]
    fn reads_namespaces_attributes_and_text() {
        let doc = r#"<?xml version="1.0" encoding="UTF-8"?>
<s:Envelope xmlns:s="urn:soap" xmlns="urn:app">
  <Body a="1" s:b="x &amp; y"><![CDATA[<raw>]]> &lt;ok&gt; &#65;&#x42;<!-- gone -->!</Body>
  <x:Other xmlns:x="urn:x" xmlns=""><Plain/></x:Other>
</s:Envelope>"#;
        let root = parse(doc).unwrap();
        assert_eq!(root.name, QName::new("urn:soap", "Envelope"));
        assert_eq!(root.prefix.as_deref(), Some("s"));
        assert_eq!(root.ns_decls.len(), 2);
        assert_eq!(root.pos, Pos { line: 2, col: 1 });
        let body = root.child("urn:app", "Body").unwrap();
        assert_eq!(body.pos, Pos { line: 3, col: 3 });
        assert_eq!(body.attr("a"), Some("1"));
        assert_eq!(body.attr_ns("urn:soap", "b"), Some("x & y"));
        assert_eq!(body.children, vec![Node::Text("<raw> <ok> AB!".into())]);
        let other = root.child("urn:x", "Other").unwrap();
        assert_eq!(
            other.child("", "Plain").map(|e| e.name.clone()),
            Some(QName::local("Plain"))
        );
        // Whitespace between elements is kept.
        assert_eq!(root.children.len(), 5);
    }

    #[test]
    fn attribute_values_are_normalised() {
        let root = parse("<a b=\"x\ty\r\nz&#10;w\"/>").unwrap();
        assert_eq!(root.attr("b"), Some("x y z\nw"));
        let root = parse("<a>x\r\ny\rz</a>").unwrap();
        assert_eq!(root.text(), "x\ny\nz");
    }

    #[test]
    fn refuses_dangerous_constructs() {
        assert_eq!(kind("<!DOCTYPE a><a/>"), XmlErrorKind::Doctype);
        assert_eq!(kind("<?pi x?><a/>"), XmlErrorKind::ProcessingInstruction);
        assert_eq!(kind("<a><?pi x?></a>"), XmlErrorKind::ProcessingInstruction);
        assert!(is_malformed(" <?xml version='1.0'?><a/>"));
        assert!(is_malformed("<a>&foo;</a>"));
        assert!(is_malformed("<a b='&foo;'/>"));
    }

    #[test]
    fn refuses_malformed_structure() {
        for s in [
            "",
            "   ",
            "<a>",
            "<a></b>",
            "<a/><b/>",
            "<a/>x",
            "x<a/>",
            "<a b='1' b='2'/>",
            "<a xmlns:p='u' xmlns:q='u' p:b='1' q:b='2'/>",
            "<a xmlns:p=''/>",
            "<a xmlns:xml='urn:other'/>",
            "<a xmlns:xmlns='urn:x'/>",
            "<a xmlns:p='http://www.w3.org/XML/1998/namespace'/>",
            "<xmlns:a/>",
            "<a b='<'/>",
            "<a>]]></a>",
            "<a><!-- x -- y --></a>",
            "<a b></a>",
            "</a>",
            "<a><![CDATA[x]]></a><![CDATA[y]]>",
            "<a>&#;</a>",
            "<a>&#xZZ;</a>",
        ] {
            assert!(parse(s).is_err(), "accepted {s:?}");
        }
    }

    #[test]
    fn refuses_bad_names_and_prefixes() {
        assert!(matches!(kind("<1a/>"), XmlErrorKind::BadName(_)));
        assert!(matches!(kind("<a:b:c/>"), XmlErrorKind::BadName(_)));
        assert!(matches!(kind("<:a/>"), XmlErrorKind::BadName(_)));
        assert!(matches!(kind("<a 1b='x'/>"), XmlErrorKind::BadName(_)));
        assert_eq!(kind("<p:a/>"), XmlErrorKind::UnboundPrefix("p".into()));
        assert_eq!(
            kind("<a p:b='1'/>"),
            XmlErrorKind::UnboundPrefix("p".into())
        );
        assert!(parse("<élan xml:lang='fr' _x.y-z='1'/>").is_ok());
    }

    #[test]
    fn refuses_illegal_characters() {
        assert_eq!(kind("<a>\u{1}</a>"), XmlErrorKind::IllegalChar(1));
        assert_eq!(kind("<a>&#1;</a>"), XmlErrorKind::IllegalChar(1));
        assert_eq!(kind("<a>&#xFFFE;</a>"), XmlErrorKind::IllegalChar(0xFFFE));
        assert_eq!(kind("<a>&#xD800;</a>"), XmlErrorKind::IllegalChar(0xD800));
        assert_eq!(kind("<a b='&#0;'/>"), XmlErrorKind::IllegalChar(0));
        assert_eq!(kind("<a>\u{FFFF}</a>"), XmlErrorKind::IllegalChar(0xFFFF));
    }

    #[test]
    fn error_positions_point_at_the_problem() {
        let e = parse("<a>\n  <b>\u{1}</b></a>").unwrap_err();
        assert_eq!(e.pos, Pos { line: 2, col: 6 });
        let e = parse("<a>\n <p:b/></a>").unwrap_err();
        assert_eq!(e.pos, Pos { line: 2, col: 2 });
    }

    #[test]
    fn limits_apply() {
        let limits = Limits {
            max_depth: 2,
            ..Limits::default()
        };
        assert!(read(b"<a><b/></a>", None, &limits).is_ok());
        let e = read(b"<a><b><c/></b></a>", None, &limits).unwrap_err();
        assert_eq!(e.kind, XmlErrorKind::TooDeep(2));
        let limits = Limits {
            max_children: 2,
            ..Limits::default()
        };
        assert!(read(b"<a><b/>t</a>", None, &limits).is_ok());
        let e = read(b"<a><b/>t<c/></a>", None, &limits).unwrap_err();
        assert_eq!(e.kind, XmlErrorKind::TooManyChildren(2));
    }
}
