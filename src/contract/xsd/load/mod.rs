//! Building a [`SchemaSet`] from schema documents, in three passes:
//!
//! 1. *Gather*: follow `xsd:import`/`xsd:include` (relative `schemaLocation`
//!    only, through [`Files`](crate::contract::Files)), loading each file
//!    once; an include of a schema without `targetNamespace` takes the
//!    includer's (chameleon).
//! 2. *Index*: record every global component by QName, reporting duplicates.
//! 3. *Resolve*: reserve an id for every named type and global element, then
//!    build each definition, replacing references by ids. A type whose
//!    definition needs its base (extension, restriction) builds the base
//!    first, on demand; a cycle there is an error, while recursion through
//!    element references is fine because ids exist before definitions.
//!
//! Identity constraints (`key`, `unique`, `keyref`) are accepted and ignored;
//! `xsd:redefine` is refused. Errors are collected, not thrown: every
//! dangling reference is reported with the referencing element's position,
//! and a placeholder (`anyType`) keeps the pass going.
//!
//! The passes are spread by what they read: [`docs`] holds the schema
//! documents and pass 1; this module holds the [`Resolver`] and passes 2 and
//! 3's driver (index, build every component, substitution groups, QName and
//! type references); [`elements`], [`attributes`], [`complex`] and [`simple`]
//! read each kind of schema component into the model.

mod attributes;
mod complex;
mod docs;
mod elements;
mod simple;

use std::collections::{HashMap, HashSet};

use super::builtin::Builtin;
use super::model::*;
use super::shape::Shapes;
use super::{ANY_TYPE, SchemaSet, builtin_id};
use crate::contract::LoadError;
use crate::xml::{Element, NsScope, Pos, QName, XML_NS};

pub(super) use docs::{Doc, gather};

pub(crate) const XS: &str = "http://www.w3.org/2001/XMLSchema";

#[derive(Clone, Copy)]
struct Src<'a> {
    doc: usize,
    el: &'a Element,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Done,
    Pending,
    Building,
}

/// Per-document context while building: which document, and the namespace
/// declarations in scope at the element being read.
struct Cx {
    doc: usize,
    scope: NsScope,
}

struct Resolver<'a> {
    docs: &'a [Doc],
    errors: Vec<LoadError>,
    types: Vec<TypeDef>,
    type_src: Vec<Option<Src<'a>>>,
    type_state: Vec<State>,
    type_ix: HashMap<QName, TypeId>,
    elements: Vec<ElementDecl>,
    element_ix: HashMap<QName, ElementId>,
    element_src: HashMap<QName, Src<'a>>,
    groups: HashMap<QName, Src<'a>>,
    attr_groups: HashMap<QName, Src<'a>>,
    attributes: HashMap<QName, Src<'a>>,
    /// Named groups / attribute groups being expanded, to catch cycles.
    expanding: Vec<QName>,
    /// (member, head, position) for substitution groups.
    subst: Vec<(ElementId, QName, usize, Pos)>,
    /// Global elements whose type comes from their substitution head.
    type_from_head: Vec<ElementId>,
}

fn is_true(v: Option<&str>) -> bool {
    matches!(v.map(str::trim), Some("true" | "1"))
}

/// Schema children that carry no meaning for us.
fn is_meta(e: &Element) -> bool {
    e.name.ns != XS || e.name.local == "annotation"
}

/// Pass 2 and 3: index and resolve everything into a [`SchemaSet`].
pub(super) fn resolve(
    docs: &[Doc],
    mut errors: Vec<LoadError>,
) -> Result<SchemaSet, Vec<LoadError>> {
    let base = SchemaSet::builtins();
    let mut r = Resolver {
        docs,
        errors: Vec::new(),
        type_src: vec![None; base.types.len()],
        type_state: vec![State::Done; base.types.len()],
        types: base.types,
        type_ix: base.type_ix,
        elements: Vec::new(),
        element_ix: HashMap::new(),
        element_src: HashMap::new(),
        groups: HashMap::new(),
        attr_groups: HashMap::new(),
        attributes: HashMap::new(),
        expanding: Vec::new(),
        subst: Vec::new(),
        type_from_head: Vec::new(),
    };
    r.index();
    r.build_all();
    let set = r.finish_set();
    errors.append(&mut r.errors);
    let mut seen = HashSet::new();
    errors.retain(|e| seen.insert(e.to_string()));
    // Report in file order, as an admin reads them.
    errors.sort_by(|a, b| (&a.path, a.pos.line, a.pos.col).cmp(&(&b.path, b.pos.line, b.pos.col)));
    if errors.is_empty() {
        Ok(set)
    } else {
        Err(errors)
    }
}

impl<'a> Resolver<'a> {
    fn err(&mut self, doc: usize, pos: Pos, msg: impl Into<String>) {
        let path = self
            .docs
            .get(doc)
            .map(|d| d.path.clone())
            .unwrap_or_default();
        self.errors.push(LoadError::new(path, pos, msg));
    }

    fn tns(&self, doc: usize) -> &'a str {
        self.docs.get(doc).map(|d| d.tns.as_str()).unwrap_or("")
    }

    fn cx_for(&self, src: Src<'a>) -> Cx {
        let mut scope = self.docs[src.doc].scope.clone();
        scope.push(src.el);
        Cx {
            doc: src.doc,
            scope,
        }
    }

    // ---- pass 2: index -------------------------------------------------

    fn index(&mut self) {
        let docs = self.docs;
        for (di, doc) in docs.iter().enumerate() {
            for el in doc.root.elements().filter(|e| !is_meta(e)) {
                let kind = el.name.local.as_str();
                if !matches!(
                    kind,
                    "element"
                        | "complexType"
                        | "simpleType"
                        | "group"
                        | "attributeGroup"
                        | "attribute"
                ) {
                    continue;
                }
                let Some(name) = el.attr("name") else {
                    self.err(di, el.pos, format!("a global xsd:{kind} needs a name"));
                    continue;
                };
                let q = QName::new(doc.tns.clone(), name.trim());
                let src = Src { doc: di, el };
                let first = match kind {
                    "complexType" | "simpleType" => match self.type_ix.get(&q) {
                        Some(&id) => Some(self.type_src[id.index()]),
                        None => {
                            let id = TypeId(self.types.len() as u32);
                            self.types.push(TypeDef::Complex(SchemaSet::any_type_def()));
                            self.type_src.push(Some(src));
                            self.type_state.push(State::Pending);
                            self.type_ix.insert(q.clone(), id);
                            None
                        }
                    },
                    "element" => match self.element_src.get(&q) {
                        Some(&s) => Some(Some(s)),
                        None => {
                            let id = ElementId(self.elements.len() as u32);
                            self.elements.push(placeholder_element(q.clone()));
                            self.element_ix.insert(q.clone(), id);
                            self.element_src.insert(q.clone(), src);
                            None
                        }
                    },
                    "group" => self.groups.insert(q.clone(), src).map(Some),
                    "attributeGroup" => self.attr_groups.insert(q.clone(), src).map(Some),
                    _ => self.attributes.insert(q.clone(), src).map(Some),
                };
                if let Some(prev) = first {
                    let at = match prev {
                        Some(p) => {
                            let d = &docs[p.doc];
                            format!("; first defined at {}:{}", d.path.display(), p.el.pos)
                        }
                        None => " (a built-in type)".to_string(),
                    };
                    self.err(di, el.pos, format!("duplicate global {kind} {q}{at}"));
                }
            }
        }
    }

    // ---- pass 3: build -------------------------------------------------

    fn build_all(&mut self) {
        for i in 0..self.types.len() {
            self.ensure_type(TypeId(i as u32));
        }
        let globals: Vec<(QName, Src<'a>)> = {
            let mut v: Vec<_> = self
                .element_src
                .iter()
                .map(|(q, s)| (q.clone(), *s))
                .collect();
            v.sort_by_key(|(q, _)| self.element_ix.get(q).copied());
            v
        };
        for (q, src) in globals {
            let Some(&id) = self.element_ix.get(&q) else {
                continue;
            };
            let mut cx = self.cx_for(src);
            let decl = self.element_decl(&mut cx, src.el, true, id);
            self.elements[id.index()] = decl;
        }
        // Check components nobody references, so their dangling references
        // are reported too.
        let unreferenced: Vec<Src<'a>> = self
            .groups
            .values()
            .chain(self.attr_groups.values())
            .chain(self.attributes.values())
            .copied()
            .collect();
        for src in unreferenced {
            let mut cx = self.cx_for(src);
            match src.el.name.local.as_str() {
                "group" => {
                    if let Some(mg) = src.el.elements().find(|e| !is_meta(e)) {
                        let _ = self.particle(&mut cx, mg);
                    }
                }
                "attributeGroup" => {
                    let _ = self.attributes_of(&mut cx, src.el);
                }
                _ => {
                    let _ = self.attribute_decl(&mut cx, src.el, true);
                }
            }
        }
        self.link_substitution_groups();
    }

    fn link_substitution_groups(&mut self) {
        let subst = std::mem::take(&mut self.subst);
        let mut direct: Vec<(ElementId, ElementId)> = Vec::new();
        for (member, head, doc, pos) in &subst {
            match self.element_ix.get(head) {
                Some(&h) => direct.push((h, *member)),
                None => self.err(
                    *doc,
                    *pos,
                    format!("unknown substitution group head element {head}"),
                ),
            }
        }
        // Members without a type of their own take their head's, heads
        // first (repeat for chains of heads).
        for _ in 0..direct.len().max(1) {
            let mut changed = false;
            for &(h, m) in &direct {
                if self.type_from_head.contains(&m) && !self.type_from_head.contains(&h) {
                    self.elements[m.index()].type_id = self.elements[h.index()].type_id;
                    self.type_from_head.retain(|&x| x != m);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        // Transitive closure: a member of a member may stand in for the head.
        for &(h, _) in &direct {
            let mut stack = vec![h];
            let mut all = Vec::new();
            while let Some(x) = stack.pop() {
                for &(hh, m) in &direct {
                    if hh == x && !all.contains(&m) && m != h {
                        all.push(m);
                        stack.push(m);
                    }
                }
            }
            self.elements[h.index()].substitutes = all;
        }
    }

    fn finish_set(&mut self) -> SchemaSet {
        let mut attribute_ix = HashMap::new();
        let attrs: Vec<(QName, Src<'a>)> = self
            .attributes
            .iter()
            .map(|(q, s)| (q.clone(), *s))
            .collect();
        for (q, src) in attrs {
            let mut cx = self.cx_for(src);
            if let Some(d) = self.attribute_decl(&mut cx, src.el, true) {
                attribute_ix.insert(q, d);
            }
        }
        for (local, b) in [
            ("lang", Builtin::Language),
            ("space", Builtin::NCName),
            ("base", Builtin::AnyUri),
            ("id", Builtin::Id),
        ] {
            let name = QName::new(XML_NS, local);
            attribute_ix.insert(
                name.clone(),
                AttributeDecl {
                    name,
                    type_id: builtin_id(b),
                    default: None,
                    fixed: None,
                },
            );
        }
        SchemaSet {
            shapes: Shapes::new(self.types.len()),
            types: std::mem::take(&mut self.types),
            elements: std::mem::take(&mut self.elements),
            type_ix: std::mem::take(&mut self.type_ix),
            element_ix: std::mem::take(&mut self.element_ix),
            attribute_ix,
        }
    }

    /// Build a named type if it is still pending. False when it is being
    /// built right now (a derivation cycle).
    fn ensure_type(&mut self, id: TypeId) -> bool {
        match self.type_state.get(id.index()) {
            Some(State::Done) | None => true,
            Some(State::Building) => false,
            Some(State::Pending) => {
                let Some(src) = self.type_src[id.index()] else {
                    return true;
                };
                self.type_state[id.index()] = State::Building;
                let mut cx = self.cx_for(src);
                let name = src
                    .el
                    .attr("name")
                    .map(|n| QName::new(self.tns(src.doc), n.trim()));
                let def = if src.el.name.local == "simpleType" {
                    TypeDef::Simple(self.simple_type(&mut cx, src.el, name))
                } else {
                    TypeDef::Complex(self.complex_type(&mut cx, src.el, name))
                };
                self.types[id.index()] = def;
                self.type_state[id.index()] = State::Done;
                true
            }
        }
    }

    /// Resolve a QName-valued attribute. Unprefixed names in a chameleon
    /// schema belong to the includer's namespace.
    fn qname_attr(&mut self, cx: &Cx, el: &Element, attr: &str) -> Option<QName> {
        let v = el.attr(attr)?;
        self.resolve_qname(cx, el, attr, v)
    }

    fn resolve_qname(&mut self, cx: &Cx, el: &Element, attr: &str, v: &str) -> Option<QName> {
        match cx.scope.resolve_qname(v) {
            Some(mut q) => {
                if q.ns.is_empty() && self.docs[cx.doc].chameleon {
                    q.ns = self.tns(cx.doc).to_string();
                }
                Some(q)
            }
            None => {
                self.err(
                    cx.doc,
                    el.pos,
                    format!("{attr}={v:?} uses an undeclared namespace prefix"),
                );
                None
            }
        }
    }

    fn type_ref(&mut self, cx: &Cx, el: &Element, q: &QName) -> TypeId {
        match self.type_ix.get(q) {
            Some(&id) => id,
            None => {
                let hint = if q.ns.is_empty() {
                    " (no namespace: is a prefix or default namespace missing?)"
                } else {
                    ""
                };
                self.err(cx.doc, el.pos, format!("unknown type {q}{hint}"));
                ANY_TYPE
            }
        }
    }

    /// The base named by `base=`, built first. Falls back to anyType after
    /// reporting a dangling or circular reference.
    fn base_of(&mut self, cx: &Cx, el: &Element) -> TypeId {
        let Some(q) = self.qname_attr(cx, el, "base") else {
            if el.attr("base").is_none() && !el.elements().any(|c| c.name.is(XS, "simpleType")) {
                self.err(
                    cx.doc,
                    el.pos,
                    format!("xsd:{} needs a base", el.name.local),
                );
            }
            return ANY_TYPE;
        };
        let id = self.type_ref(cx, el, &q);
        if !self.ensure_type(id) {
            self.err(
                cx.doc,
                el.pos,
                format!("circular derivation: {q} derives from itself"),
            );
            return ANY_TYPE;
        }
        id
    }

    fn occurs(&mut self, cx: &Cx, el: &Element) -> (u32, MaxOccurs) {
        let min = match el.attr("minOccurs").map(str::trim) {
            None => 1,
            Some(v) => v.parse().unwrap_or_else(|_| {
                self.err(
                    cx.doc,
                    el.pos,
                    format!("minOccurs={v:?} is not a non-negative integer"),
                );
                1
            }),
        };
        let max = match el.attr("maxOccurs").map(str::trim) {
            None => MaxOccurs::Bounded(1),
            Some("unbounded") => MaxOccurs::Unbounded,
            Some(v) => MaxOccurs::Bounded(v.parse().unwrap_or_else(|_| {
                self.err(
                    cx.doc,
                    el.pos,
                    format!("maxOccurs={v:?} is not a non-negative integer or \"unbounded\""),
                );
                1
            })),
        };
        if let MaxOccurs::Bounded(m) = max
            && min > m
        {
            self.err(
                cx.doc,
                el.pos,
                format!("minOccurs={min} is greater than maxOccurs={m}"),
            );
        }
        (min, max)
    }

    fn push_type(&mut self, def: TypeDef) -> TypeId {
        let id = TypeId(self.types.len() as u32);
        self.types.push(def);
        self.type_src.push(None);
        self.type_state.push(State::Done);
        id
    }
}

fn placeholder_element(name: QName) -> ElementDecl {
    ElementDecl {
        name,
        type_id: ANY_TYPE,
        nillable: false,
        default: None,
        fixed: None,
        is_abstract: false,
        global: false,
        substitutes: Vec::new(),
    }
}
