//! XML for the pure core: a bounded, hostile-input-safe reader that produces an
//! owned element tree ([`Element`]), charset detection and re-encoding, and a
//! writer. Nothing here does I/O; everything works on byte slices and strings.
//!
//! Namespaces are resolved while reading: every [`QName`] carries its
//! namespace URI, never a prefix. The prefix a document used is kept only so
//! the writer can reproduce a document (a published WSDL) faithfully.

pub mod charset;
pub mod read;
pub mod write;

use std::collections::HashMap;
use std::fmt;

pub use charset::Charset;
pub use read::{
    Document, Limits, ReadStats, TreeBudget, XmlError, XmlErrorKind, read, read_measured, read_str,
    read_with,
};
pub use write::{
    escape_attr, escape_text, write_document, write_document_as, write_element, write_element_with,
};

/// A namespace-qualified name. `ns` is empty for "no namespace".
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct QName {
    pub ns: String,
    pub local: String,
}

impl QName {
    pub fn new(ns: impl Into<String>, local: impl Into<String>) -> Self {
        QName {
            ns: ns.into(),
            local: local.into(),
        }
    }

    /// A name in no namespace.
    pub fn local(local: impl Into<String>) -> Self {
        QName {
            ns: String::new(),
            local: local.into(),
        }
    }

    pub fn is(&self, ns: &str, local: &str) -> bool {
        self.ns == ns && self.local == local
    }
}

impl fmt::Display for QName {
    /// Clark notation: `{urn:ns}Local`, or `Local` without a namespace.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ns.is_empty() {
            f.write_str(&self.local)
        } else {
            write!(f, "{{{}}}{}", self.ns, self.local)
        }
    }
}

/// Where something starts in its source document, 1-based.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// An attribute other than a namespace declaration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attribute {
    pub name: QName,
    /// The prefix used in the source, if any (attributes without a prefix are
    /// in no namespace).
    pub prefix: Option<String>,
    pub value: String,
}

/// A namespace declaration made on an element: prefix `""` is the default
/// namespace; uri `""` undeclares the default namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NsDecl {
    pub prefix: String,
    pub uri: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Element(Element),
    /// Character data with entities and CDATA already resolved. Comments are
    /// dropped by the reader.
    Text(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Element {
    pub name: QName,
    /// The prefix used in the source (`None`: default namespace or none).
    pub prefix: Option<String>,
    pub attrs: Vec<Attribute>,
    /// Declarations made on this element, in source order.
    pub ns_decls: Vec<NsDecl>,
    pub children: Vec<Node>,
    pub pos: Pos,
}

impl Element {
    pub fn new(name: QName) -> Self {
        Element {
            name,
            ..Element::default()
        }
    }

    /// Child elements, skipping text.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// The first child element with this name.
    pub fn child(&self, ns: &str, local: &str) -> Option<&Element> {
        self.elements().find(|e| e.name.is(ns, local))
    }

    /// All child elements with this name.
    pub fn children_named<'a>(
        &'a self,
        ns: &'a str,
        local: &'a str,
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.elements().filter(move |e| e.name.is(ns, local))
    }

    /// An attribute's value by namespace and local name.
    pub fn attr_ns(&self, ns: &str, local: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.name.is(ns, local))
            .map(|a| a.value.as_str())
    }

    /// An unqualified attribute's value (the usual case in WSDL and XSD).
    pub fn attr(&self, local: &str) -> Option<&str> {
        self.attr_ns("", local)
    }

    /// The concatenated text of the direct children (not descendants).
    pub fn text(&self) -> String {
        let mut out = String::new();
        for n in &self.children {
            if let Node::Text(t) = n {
                out.push_str(t);
            }
        }
        out
    }

    /// True when the element has child elements (not only text).
    pub fn has_element_children(&self) -> bool {
        self.elements().next().is_some()
    }

    /// The namespace a prefix maps to on this element, looking only at its own
    /// declarations. Use [`NsScope`] for the in-scope view.
    pub fn declared_ns(&self, prefix: &str) -> Option<&str> {
        self.ns_decls
            .iter()
            .find(|d| d.prefix == prefix)
            .map(|d| d.uri.as_str())
    }

    pub fn push_child(&mut self, e: Element) {
        self.children.push(Node::Element(e));
    }

    pub fn push_text(&mut self, t: impl Into<String>) {
        self.children.push(Node::Text(t.into()));
    }

    /// An estimate of the heap bytes this tree holds (not counting this
    /// element's own struct): every vector's capacity times its item's size,
    /// and every string's capacity, rounded up to the 8 bytes an allocator
    /// hands out at least. What [`TreeBudget`] budgets.
    pub fn heap_size(&self) -> usize {
        let mut total = 0usize;
        let mut todo = vec![self];
        while let Some(el) = todo.pop() {
            total += read::string_heap(&el.name.ns)
                + read::string_heap(&el.name.local)
                + el.prefix.as_ref().map_or(0, read::string_heap)
                + el.attrs.capacity() * size_of::<Attribute>()
                + el.ns_decls.capacity() * size_of::<NsDecl>()
                + el.children.capacity() * size_of::<Node>();
            total += el.attrs.iter().map(read::attribute_heap).sum::<usize>();
            total += el
                .ns_decls
                .iter()
                .map(|d| read::string_heap(&d.prefix) + read::string_heap(&d.uri))
                .sum::<usize>();
            for child in &el.children {
                match child {
                    Node::Element(e) => todo.push(e),
                    Node::Text(t) => total += read::string_heap(t),
                }
            }
        }
        total
    }
}

/// Heap bytes of an allocation of `capacity` bytes: none when empty,
/// otherwise rounded up to 8.
fn heap_bytes(capacity: usize) -> usize {
    capacity.next_multiple_of(8)
}

/// The in-scope namespace declarations while walking a tree, for resolving
/// QName-valued content such as `type="tns:Order"` or `xsi:type`.
///
/// A prefix resolves with one hash lookup however many declarations are in
/// scope (a hostile document may nest thousands): `index` keeps, per
/// prefix, the positions in `stack` of its declarations, innermost last.
#[derive(Clone, Debug, Default)]
pub struct NsScope {
    stack: Vec<NsDecl>,
    marks: Vec<usize>,
    index: HashMap<String, Vec<usize>>,
}

impl NsScope {
    pub fn new() -> Self {
        NsScope::default()
    }

    /// Enter an element: its declarations shadow outer ones until [`pop`].
    ///
    /// [`pop`]: NsScope::pop
    pub fn push(&mut self, el: &Element) {
        self.marks.push(self.stack.len());
        for d in &el.ns_decls {
            let at = self.stack.len();
            match self.index.get_mut(d.prefix.as_str()) {
                Some(positions) => positions.push(at),
                None => {
                    self.index.insert(d.prefix.clone(), vec![at]);
                }
            }
            self.stack.push(d.clone());
        }
    }

    /// The declarations in scope, outermost first, one per prefix (the
    /// innermost binding of a redeclared prefix).
    pub fn decls(&self) -> Vec<NsDecl> {
        self.stack
            .iter()
            .enumerate()
            .filter(|(i, d)| {
                self.index
                    .get(d.prefix.as_str())
                    .and_then(|p| p.last())
                    .is_some_and(|last| last == i)
            })
            .map(|(_, d)| d.clone())
            .collect()
    }

    pub fn pop(&mut self) {
        let Some(m) = self.marks.pop() else {
            return;
        };
        for d in self.stack.drain(m..) {
            if let Some(positions) = self.index.get_mut(d.prefix.as_str()) {
                positions.pop();
                if positions.is_empty() {
                    self.index.remove(d.prefix.as_str());
                }
            }
        }
    }

    /// The URI bound to a prefix (`""` for the default namespace). The `xml`
    /// prefix is always bound.
    pub fn resolve(&self, prefix: &str) -> Option<&str> {
        if prefix == "xml" {
            return Some(XML_NS);
        }
        let at = *self.index.get(prefix)?.last()?;
        self.stack.get(at).map(|d| d.uri.as_str())
    }

    /// Resolve `prefix:local` (or `local`, in the default namespace) to a
    /// [`QName`]. `None` when the prefix is not declared.
    pub fn resolve_qname(&self, lexical: &str) -> Option<QName> {
        let lexical = lexical.trim();
        match lexical.split_once(':') {
            Some((p, l)) => self.resolve(p).map(|ns| QName::new(ns, l)),
            None => Some(QName::new(self.resolve("").unwrap_or(""), lexical)),
        }
    }
}

pub const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";
pub const XMLNS_NS: &str = "http://www.w3.org/2000/xmlns/";
pub const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";
