//! Building a [`SchemaSet`] from schema documents, in three passes:
//!
//! 1. *Gather*: follow `xsd:import`/`xsd:include` (relative `schemaLocation`
//!    only, through [`Files`]), loading each file once; an include of a
//!    schema without `targetNamespace` takes the includer's (chameleon).
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

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path, PathBuf};

use super::builtin::{Builtin, normalize_ws};
use super::model::*;
use super::regex::compile_step;
use super::{ANY_TYPE, SchemaSet, builtin_id};
use crate::contract::{Files, LoadError};
use crate::xml::{self, Element, NsScope, Pos, QName, XML_NS};

pub(crate) const XS: &str = "http://www.w3.org/2001/XMLSchema";

/// One schema document with what its components need to know about it.
#[derive(Debug)]
pub(super) struct Doc {
    pub(super) path: PathBuf,
    pub(super) root: Element,
    /// The declarations in scope at the `xsd:schema` element (outer ones,
    /// e.g. `wsdl:definitions`', plus the schema's own).
    scope: NsScope,
    /// Effective target namespace (the includer's for a chameleon include).
    tns: String,
    chameleon: bool,
    elem_qualified: bool,
    attr_qualified: bool,
}

impl Doc {
    pub(super) fn new(
        path: &Path,
        root: Element,
        outer: &NsScope,
        chameleon_tns: Option<&str>,
    ) -> Result<Doc, LoadError> {
        if !root.name.is(XS, "schema") {
            return Err(LoadError::new(
                path,
                root.pos,
                format!("expected an xsd:schema element, found {}", root.name),
            ));
        }
        let mut scope = outer.clone();
        scope.push(&root);
        let own = root.attr("targetNamespace").unwrap_or("").to_string();
        let chameleon = own.is_empty() && chameleon_tns.is_some_and(|t| !t.is_empty());
        let tns = if chameleon {
            chameleon_tns.unwrap_or("").to_string()
        } else {
            own
        };
        let elem_qualified = root.attr("elementFormDefault") == Some("qualified");
        let attr_qualified = root.attr("attributeFormDefault") == Some("qualified");
        Ok(Doc {
            path: path.to_path_buf(),
            root,
            scope,
            tns,
            chameleon,
            elem_qualified,
            attr_qualified,
        })
    }
}

/// Limits for reading schema files: they come from the admin, not from
/// callers, so they are generous.
fn schema_limits() -> xml::Limits {
    xml::Limits {
        max_depth: 1_000,
        max_attributes: 10_000,
        max_attribute_bytes: 1 << 20,
        max_namespace_decls: 10_000,
        max_children: 1_000_000,
        max_text_bytes: 64 << 20,
    }
}

/// Resolve `.` and `..` lexically, so one file reached by two relative
/// paths is loaded once.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

struct Directive {
    kind: &'static str,
    namespace: Option<String>,
    location: Option<String>,
    pos: Pos,
}

/// Pass 1: follow imports and includes. Returns the documents reached by
/// them (path, root) in first-reached order.
pub(super) fn gather(
    docs: &mut Vec<Doc>,
    errors: &mut Vec<LoadError>,
    files: &dyn Files,
) -> Vec<(PathBuf, Element)> {
    let mut loaded: HashSet<(PathBuf, String)> = docs
        .iter()
        .map(|d| (normalize(&d.path), d.tns.clone()))
        .collect();
    let mut parsed: HashMap<PathBuf, Option<Element>> = HashMap::new();
    let mut imported = Vec::new();
    let mut i = 0;
    while i < docs.len() {
        let directives: Vec<Directive> = docs[i]
            .root
            .elements()
            .filter(|e| e.name.ns == XS)
            .filter_map(|e| {
                let kind = match e.name.local.as_str() {
                    "import" => "import",
                    "include" => "include",
                    "redefine" => "redefine",
                    _ => return None,
                };
                Some(Directive {
                    kind,
                    namespace: e.attr("namespace").map(str::to_string),
                    location: e.attr("schemaLocation").map(|s| s.trim().to_string()),
                    pos: e.pos,
                })
            })
            .collect();
        for d in directives {
            let (from_path, from_tns) = (docs[i].path.clone(), docs[i].tns.clone());
            let err = |m: String| LoadError::new(&from_path, d.pos, m);
            if d.kind == "redefine" {
                errors.push(err("xsd:redefine is not supported; copy the redefined components into the schema instead".into()));
                continue;
            }
            let Some(loc) = d.location else {
                if d.kind == "include" {
                    errors.push(err("xsd:include needs a schemaLocation".into()));
                }
                // An import without a location names a namespace that some
                // other schema of the contract provides (or that is unused).
                continue;
            };
            if loc.contains("://") || loc.starts_with("urn:") {
                errors.push(err(format!(
                    "schemaLocation {loc:?} is not a relative path; soapgate never fetches schemas, \
                     save the file next to the contract and refer to it relatively"
                )));
                continue;
            }
            let base = from_path.parent().unwrap_or(Path::new(""));
            let path = normalize(&base.join(&loc));
            let root = parsed.entry(path.clone()).or_insert_with(|| {
                let bytes = match files.read(&path) {
                    Ok(b) => b,
                    Err(e) => {
                        errors.push(err(format!("cannot read {}: {e}", path.display())));
                        return None;
                    }
                };
                match xml::read(&bytes, None, &schema_limits()) {
                    Ok(doc) => Some(doc.root),
                    Err(e) => {
                        errors.push(LoadError::new(&path, e.pos, e.kind.to_string()));
                        None
                    }
                }
            });
            let Some(root) = root.as_ref() else { continue };
            let own_tns = root.attr("targetNamespace").unwrap_or("").to_string();
            let chameleon = if d.kind == "include" {
                if !own_tns.is_empty() && own_tns != from_tns {
                    errors.push(err(format!(
                        "included schema {} has targetNamespace {own_tns:?}, but the including schema's is {from_tns:?}",
                        path.display()
                    )));
                    continue;
                }
                Some(from_tns.as_str())
            } else {
                let want = d.namespace.clone().unwrap_or_default();
                if own_tns != want {
                    errors.push(err(format!(
                        "imported schema {} has targetNamespace {own_tns:?}, but the import names {want:?}",
                        path.display()
                    )));
                    continue;
                }
                None
            };
            let eff_tns = if own_tns.is_empty() {
                chameleon.unwrap_or("").to_string()
            } else {
                own_tns
            };
            if !loaded.insert((path.clone(), eff_tns)) {
                continue;
            }
            match Doc::new(&path, root.clone(), &NsScope::new(), chameleon) {
                Ok(doc) => {
                    if !imported
                        .iter()
                        .any(|(p, _): &(PathBuf, Element)| *p == path)
                    {
                        imported.push((path.clone(), root.clone()));
                    }
                    docs.push(doc);
                }
                Err(e) => errors.push(e),
            }
        }
        i += 1;
    }
    imported
}

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
            shapes: super::shape::Shapes::new(self.types.len()),
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

    // ---- elements ------------------------------------------------------

    fn element_decl(
        &mut self,
        cx: &mut Cx,
        el: &Element,
        global: bool,
        self_id: ElementId,
    ) -> ElementDecl {
        cx.scope.push(el);
        let name = el.attr("name").map(str::trim).unwrap_or_default();
        if name.is_empty() {
            self.err(cx.doc, el.pos, "xsd:element needs a name or a ref");
        }
        let qualified = global
            || match el.attr("form") {
                Some(f) => f == "qualified",
                None => self.docs[cx.doc].elem_qualified,
            };
        let ns = if qualified { self.tns(cx.doc) } else { "" };
        let mut decl = placeholder_element(QName::new(ns, name));
        decl.global = global;
        decl.nillable = is_true(el.attr("nillable"));
        decl.is_abstract = is_true(el.attr("abstract"));
        decl.default = el.attr("default").map(str::to_string);
        decl.fixed = el.attr("fixed").map(str::to_string);
        if el.attr("substitutionGroup").is_some()
            && let Some(head) = self.qname_attr(cx, el, "substitutionGroup")
        {
            if global {
                self.subst.push((self_id, head, cx.doc, el.pos));
            } else {
                self.err(
                    cx.doc,
                    el.pos,
                    "substitutionGroup is only allowed on global elements",
                );
            }
        }
        let anon = el
            .elements()
            .find(|c| c.name.is(XS, "complexType") || c.name.is(XS, "simpleType"));
        decl.type_id = if let Some(q) = self.qname_attr(cx, el, "type") {
            if anon.is_some() {
                self.err(
                    cx.doc,
                    el.pos,
                    "an element cannot have both type= and an anonymous type",
                );
            }
            self.type_ref(cx, el, &q)
        } else if let Some(t) = anon {
            self.anonymous_type(cx, t)
        } else {
            if global && el.attr("substitutionGroup").is_some() {
                self.type_from_head.push(self_id);
            }
            ANY_TYPE
        };
        cx.scope.pop();
        decl
    }

    fn anonymous_type(&mut self, cx: &mut Cx, t: &Element) -> TypeId {
        let def = if t.name.local == "simpleType" {
            TypeDef::Simple(self.simple_type(cx, t, None))
        } else {
            TypeDef::Complex(self.complex_type(cx, t, None))
        };
        self.push_type(def)
    }

    fn push_type(&mut self, def: TypeDef) -> TypeId {
        let id = TypeId(self.types.len() as u32);
        self.types.push(def);
        self.type_src.push(None);
        self.type_state.push(State::Done);
        id
    }

    // ---- particles -----------------------------------------------------

    /// The content particle among `parent`'s children, if any.
    fn particle_of(&mut self, cx: &mut Cx, parent: &Element) -> Option<Particle> {
        let mg = parent.elements().filter(|e| !is_meta(e)).find(|e| {
            matches!(
                e.name.local.as_str(),
                "sequence" | "choice" | "all" | "group"
            )
        })?;
        self.particle(cx, mg)
    }

    fn particle(&mut self, cx: &mut Cx, el: &Element) -> Option<Particle> {
        let (min, max) = self.occurs(cx, el);
        let term = match el.name.local.as_str() {
            "element" => {
                if let Some(q) = self.qname_attr(cx, el, "ref") {
                    match self.element_ix.get(&q) {
                        Some(&id) => Term::Element(id),
                        None => {
                            self.err(cx.doc, el.pos, format!("unknown element {q} in ref"));
                            return None;
                        }
                    }
                } else {
                    let id = ElementId(self.elements.len() as u32);
                    self.elements.push(placeholder_element(QName::default()));
                    let decl = self.element_decl(cx, el, false, id);
                    self.elements[id.index()] = decl;
                    Term::Element(id)
                }
            }
            "any" => Term::Any(self.wildcard(cx, el)),
            kind @ ("sequence" | "choice" | "all") => {
                let mut parts = Vec::new();
                for c in el.elements().filter(|e| !is_meta(e)) {
                    match c.name.local.as_str() {
                        "element" | "any" | "sequence" | "choice" | "group" if kind != "all" => {
                            parts.extend(self.particle(cx, c));
                        }
                        "element" => parts.extend(self.particle(cx, c)),
                        other => self.err(
                            cx.doc,
                            c.pos,
                            format!("xsd:{other} is not allowed in xsd:{kind}"),
                        ),
                    }
                }
                match kind {
                    "sequence" => Term::Sequence(parts),
                    "choice" => Term::Choice(parts),
                    _ => Term::All(parts),
                }
            }
            "group" => {
                let q = self.qname_attr(cx, el, "ref")?;
                let Some(&src) = self.groups.get(&q) else {
                    self.err(cx.doc, el.pos, format!("unknown group {q}"));
                    return None;
                };
                if self.expanding.contains(&q) {
                    self.err(cx.doc, el.pos, format!("group {q} refers to itself"));
                    return None;
                }
                self.expanding.push(q);
                let mut gcx = self.cx_for(src);
                let inner = src
                    .el
                    .elements()
                    .filter(|e| !is_meta(e))
                    .find(|e| matches!(e.name.local.as_str(), "sequence" | "choice" | "all"))
                    .and_then(|mg| self.particle(&mut gcx, mg));
                self.expanding.pop();
                inner?.term
            }
            other => {
                self.err(cx.doc, el.pos, format!("xsd:{other} is not a particle"));
                return None;
            }
        };
        if max == MaxOccurs::Bounded(0) {
            return None;
        }
        Some(Particle { min, max, term })
    }

    fn wildcard(&mut self, cx: &Cx, el: &Element) -> Wildcard {
        let tns = self.tns(cx.doc).to_string();
        let namespaces = match el.attr("namespace").map(str::trim).unwrap_or("##any") {
            "##any" => NsConstraint::Any,
            "##other" => NsConstraint::Other(tns),
            list => NsConstraint::Only(
                list.split_ascii_whitespace()
                    .map(|u| match u {
                        "##targetNamespace" => tns.clone(),
                        "##local" => String::new(),
                        u => u.to_string(),
                    })
                    .collect(),
            ),
        };
        let process = match el.attr("processContents").map(str::trim) {
            Some("lax") => ProcessContents::Lax,
            Some("skip") => ProcessContents::Skip,
            None | Some("strict") => ProcessContents::Strict,
            Some(v) => {
                self.err(
                    cx.doc,
                    el.pos,
                    format!("processContents={v:?} must be strict, lax or skip"),
                );
                ProcessContents::Strict
            }
        };
        Wildcard {
            namespaces,
            process,
        }
    }

    // ---- attributes ----------------------------------------------------

    /// Attribute uses and the attribute wildcard among `parent`'s children,
    /// attribute groups expanded.
    fn attributes_of(
        &mut self,
        cx: &mut Cx,
        parent: &Element,
    ) -> (Vec<AttributeUse>, Option<Wildcard>) {
        let mut uses: Vec<AttributeUse> = Vec::new();
        let mut wild = None;
        for c in parent.elements().filter(|e| !is_meta(e)) {
            match c.name.local.as_str() {
                "attribute" => {
                    if let Some(u) = self.attribute_use(cx, c) {
                        merge_attr(&mut uses, u);
                    }
                }
                "attributeGroup" => {
                    let Some(q) = self.qname_attr(cx, c, "ref") else {
                        self.err(cx.doc, c.pos, "a local xsd:attributeGroup needs a ref");
                        continue;
                    };
                    let Some(&src) = self.attr_groups.get(&q) else {
                        self.err(cx.doc, c.pos, format!("unknown attributeGroup {q}"));
                        continue;
                    };
                    if self.expanding.contains(&q) {
                        self.err(
                            cx.doc,
                            c.pos,
                            format!("attributeGroup {q} refers to itself"),
                        );
                        continue;
                    }
                    self.expanding.push(q);
                    let mut gcx = self.cx_for(src);
                    let (more, w) = self.attributes_of(&mut gcx, src.el);
                    self.expanding.pop();
                    for u in more {
                        merge_attr(&mut uses, u);
                    }
                    wild = wild.or(w);
                }
                "anyAttribute" => wild = Some(self.wildcard(cx, c)),
                _ => {}
            }
        }
        (uses, wild)
    }

    fn attribute_use(&mut self, cx: &mut Cx, el: &Element) -> Option<AttributeUse> {
        let usage = match el.attr("use").map(str::trim) {
            None | Some("optional") => AttributeUsage::Optional,
            Some("required") => AttributeUsage::Required,
            Some("prohibited") => AttributeUsage::Prohibited,
            Some(v) => {
                self.err(
                    cx.doc,
                    el.pos,
                    format!("use={v:?} must be optional, required or prohibited"),
                );
                AttributeUsage::Optional
            }
        };
        let decl = if el.attr("ref").is_some() {
            let q = self.qname_attr(cx, el, "ref")?;
            if q.ns == XML_NS {
                let b = match q.local.as_str() {
                    "lang" => Builtin::Language,
                    "id" => Builtin::Id,
                    "base" => Builtin::AnyUri,
                    _ => Builtin::NCName,
                };
                AttributeDecl {
                    name: q,
                    type_id: builtin_id(b),
                    default: None,
                    fixed: None,
                }
            } else {
                let Some(&src) = self.attributes.get(&q) else {
                    self.err(cx.doc, el.pos, format!("unknown attribute {q} in ref"));
                    return None;
                };
                let mut acx = self.cx_for(src);
                self.attribute_decl(&mut acx, src.el, true)?
            }
        } else {
            self.attribute_decl(cx, el, false)?
        };
        Some(AttributeUse {
            name: decl.name,
            type_id: decl.type_id,
            usage,
            default: el.attr("default").map(str::to_string).or(decl.default),
            fixed: el.attr("fixed").map(str::to_string).or(decl.fixed),
        })
    }

    fn attribute_decl(&mut self, cx: &mut Cx, el: &Element, global: bool) -> Option<AttributeDecl> {
        cx.scope.push(el);
        let r = self.attribute_decl_inner(cx, el, global);
        cx.scope.pop();
        r
    }

    fn attribute_decl_inner(
        &mut self,
        cx: &mut Cx,
        el: &Element,
        global: bool,
    ) -> Option<AttributeDecl> {
        let Some(name) = el.attr("name").map(str::trim) else {
            self.err(cx.doc, el.pos, "xsd:attribute needs a name or a ref");
            return None;
        };
        let qualified = global
            || match el.attr("form") {
                Some(f) => f == "qualified",
                None => self.docs[cx.doc].attr_qualified,
            };
        let ns = if qualified { self.tns(cx.doc) } else { "" };
        let anon = el.elements().find(|c| c.name.is(XS, "simpleType"));
        let type_id = if let Some(q) = self.qname_attr(cx, el, "type") {
            let id = self.type_ref(cx, el, &q);
            // The type may be declared further down the schema: build it
            // before looking at its kind, or its placeholder is misread.
            self.ensure_type(id);
            if matches!(self.types.get(id.index()), Some(TypeDef::Complex(_))) && id != ANY_TYPE {
                self.err(
                    cx.doc,
                    el.pos,
                    format!("attribute type {q} is a complex type"),
                );
                return None;
            }
            id
        } else if let Some(t) = anon {
            let st = self.simple_type(cx, t, None);
            self.push_type(TypeDef::Simple(st))
        } else {
            builtin_id(Builtin::AnySimpleType)
        };
        // anyType as an attribute type means "any simple value".
        let type_id = if type_id == ANY_TYPE {
            builtin_id(Builtin::AnySimpleType)
        } else {
            type_id
        };
        Some(AttributeDecl {
            name: QName::new(ns, name),
            type_id,
            default: el.attr("default").map(str::to_string),
            fixed: el.attr("fixed").map(str::to_string),
        })
    }

    // ---- complex types -------------------------------------------------

    fn complex_type(&mut self, cx: &mut Cx, el: &Element, name: Option<QName>) -> ComplexType {
        cx.scope.push(el);
        let mixed = is_true(el.attr("mixed"));
        let is_abstract = is_true(el.attr("abstract"));
        let body = el
            .elements()
            .filter(|e| !is_meta(e))
            .find(|e| matches!(e.name.local.as_str(), "simpleContent" | "complexContent"));
        let mut ct = match body {
            Some(b) if b.name.local == "simpleContent" => self.simple_content(cx, b),
            Some(b) => self.complex_content(cx, b, mixed),
            None => {
                let particle = self.particle_of(cx, el);
                let (attributes, any_attribute) = self.attributes_of(cx, el);
                ComplexType {
                    name: None,
                    base: Some(ANY_TYPE),
                    derivation: Derivation::Restriction,
                    is_abstract: false,
                    content: Content::Complex { particle, mixed },
                    attributes,
                    any_attribute,
                }
            }
        };
        ct.name = name;
        ct.is_abstract = is_abstract;
        cx.scope.pop();
        ct
    }

    fn derivation_child<'e>(
        &mut self,
        cx: &Cx,
        el: &'e Element,
    ) -> Option<(&'e Element, Derivation)> {
        let d = el
            .elements()
            .filter(|e| !is_meta(e))
            .find_map(|e| match e.name.local.as_str() {
                "extension" => Some((e, Derivation::Extension)),
                "restriction" => Some((e, Derivation::Restriction)),
                _ => None,
            });
        if d.is_none() {
            self.err(
                cx.doc,
                el.pos,
                format!(
                    "xsd:{} needs an xsd:extension or xsd:restriction",
                    el.name.local
                ),
            );
        }
        d
    }

    fn complex_content(&mut self, cx: &mut Cx, cc: &Element, outer_mixed: bool) -> ComplexType {
        let mixed = match cc.attr("mixed") {
            Some(_) => is_true(cc.attr("mixed")),
            None => outer_mixed,
        };
        let Some((d, derivation)) = self.derivation_child(cx, cc) else {
            return SchemaSet::any_type_def();
        };
        cx.scope.push(d);
        let base = self.base_of(cx, d);
        let own_particle = self.particle_of(cx, d);
        let (own_attrs, own_wild) = self.attributes_of(cx, d);
        cx.scope.pop();
        let base_ct = match self.types.get(base.index()) {
            Some(TypeDef::Complex(c)) => c.clone(),
            _ => {
                let q = d.attr("base").unwrap_or_default();
                self.err(
                    cx.doc,
                    d.pos,
                    format!("complexContent base {q} is a simple type; use simpleContent"),
                );
                SchemaSet::any_type_def()
            }
        };
        let (content, attributes, any_attribute) = match derivation {
            Derivation::Extension => {
                let content = match base_ct.content {
                    Content::Simple(st) if own_particle.is_none() => Content::Simple(st),
                    Content::Simple(_) => {
                        self.err(
                            cx.doc,
                            d.pos,
                            "cannot add elements to a type with simple content",
                        );
                        Content::Complex {
                            particle: own_particle,
                            mixed,
                        }
                    }
                    Content::Complex {
                        particle: bp,
                        mixed: bm,
                    } => {
                        let particle = match (bp, own_particle) {
                            (None, p) | (p, None) => p,
                            (Some(b), Some(o)) => Some(Particle {
                                min: 1,
                                max: MaxOccurs::Bounded(1),
                                term: Term::Sequence(vec![b, o]),
                            }),
                        };
                        Content::Complex {
                            particle,
                            mixed: mixed || bm,
                        }
                    }
                };
                let mut attrs = base_ct.attributes;
                for u in own_attrs {
                    merge_attr(&mut attrs, u);
                }
                (content, attrs, own_wild.or(base_ct.any_attribute))
            }
            Derivation::Restriction => {
                let mut attrs = base_ct.attributes;
                for u in own_attrs {
                    merge_attr(&mut attrs, u);
                }
                (
                    Content::Complex {
                        particle: own_particle,
                        mixed,
                    },
                    attrs,
                    own_wild,
                )
            }
        };
        ComplexType {
            name: None,
            base: Some(base),
            derivation,
            is_abstract: false,
            content,
            attributes,
            any_attribute,
        }
    }

    fn simple_content(&mut self, cx: &mut Cx, sc: &Element) -> ComplexType {
        let Some((d, derivation)) = self.derivation_child(cx, sc) else {
            return SchemaSet::any_type_def();
        };
        cx.scope.push(d);
        let base = self.base_of(cx, d);
        let (own_attrs, own_wild) = self.attributes_of(cx, d);
        let (content_type, mut attrs, base_wild) = match self.types.get(base.index()).cloned() {
            Some(TypeDef::Simple(_)) => {
                if derivation == Derivation::Restriction {
                    let st = self.restriction(cx, d, base, None);
                    (self.push_type(TypeDef::Simple(st)), Vec::new(), None)
                } else {
                    (base, Vec::new(), None)
                }
            }
            Some(TypeDef::Complex(ComplexType {
                content: Content::Simple(st),
                attributes,
                any_attribute,
                ..
            })) => {
                if derivation == Derivation::Restriction {
                    // An inline simpleType replaces the base's content type
                    // before the facets apply.
                    let inner_base = match d.elements().find(|e| e.name.is(XS, "simpleType")) {
                        Some(t) => {
                            let s = self.simple_type(cx, t, None);
                            self.push_type(TypeDef::Simple(s))
                        }
                        None => st,
                    };
                    let r = self.restriction(cx, d, inner_base, None);
                    (
                        self.push_type(TypeDef::Simple(r)),
                        attributes,
                        any_attribute,
                    )
                } else {
                    (st, attributes, any_attribute)
                }
            }
            _ => {
                let q = d.attr("base").unwrap_or_default();
                self.err(
                    cx.doc,
                    d.pos,
                    format!("simpleContent base {q} has no simple content"),
                );
                (builtin_id(Builtin::String), Vec::new(), None)
            }
        };
        cx.scope.pop();
        for u in own_attrs {
            merge_attr(&mut attrs, u);
        }
        let any_attribute = match derivation {
            Derivation::Extension => own_wild.or(base_wild),
            Derivation::Restriction => own_wild,
        };
        ComplexType {
            name: None,
            base: Some(base),
            derivation,
            is_abstract: false,
            content: Content::Simple(content_type),
            attributes: attrs,
            any_attribute,
        }
    }

    // ---- simple types --------------------------------------------------

    fn simple_type(&mut self, cx: &mut Cx, el: &Element, name: Option<QName>) -> SimpleType {
        cx.scope.push(el);
        let st = self.simple_type_inner(cx, el, name);
        cx.scope.pop();
        st
    }

    fn simple_type_inner(&mut self, cx: &mut Cx, el: &Element, name: Option<QName>) -> SimpleType {
        let any_simple = builtin_id(Builtin::AnySimpleType);
        let Some(d) = el
            .elements()
            .filter(|e| !is_meta(e))
            .find(|e| matches!(e.name.local.as_str(), "restriction" | "list" | "union"))
        else {
            self.err(
                cx.doc,
                el.pos,
                "xsd:simpleType needs an xsd:restriction, xsd:list or xsd:union",
            );
            return SimpleType {
                name,
                base: Some(any_simple),
                variety: Variety::Atomic(Builtin::AnySimpleType),
                facets: Facets::new(WhiteSpace::Preserve),
            };
        };
        cx.scope.push(d);
        let mut st = match d.name.local.as_str() {
            "restriction" => {
                let base = match d.elements().find(|e| e.name.is(XS, "simpleType")) {
                    Some(t) if d.attr("base").is_none() => {
                        let s = self.simple_type(cx, t, None);
                        self.push_type(TypeDef::Simple(s))
                    }
                    _ => self.base_of(cx, d),
                };
                self.restriction(cx, d, base, None)
            }
            "list" => {
                let item = match self.qname_attr(cx, d, "itemType") {
                    Some(q) => self.type_ref(cx, d, &q),
                    None => match d.elements().find(|e| e.name.is(XS, "simpleType")) {
                        Some(t) => {
                            let s = self.simple_type(cx, t, None);
                            self.push_type(TypeDef::Simple(s))
                        }
                        None => {
                            self.err(
                                cx.doc,
                                d.pos,
                                "xsd:list needs an itemType or an inline xsd:simpleType",
                            );
                            any_simple
                        }
                    },
                };
                self.check_simple_ref(cx, d, item);
                SimpleType {
                    name: None,
                    base: Some(any_simple),
                    variety: Variety::List(item),
                    facets: Facets::new(WhiteSpace::Collapse),
                }
            }
            _ => {
                let mut members = Vec::new();
                if let Some(list) = d.attr("memberTypes") {
                    for m in list.split_ascii_whitespace() {
                        if let Some(q) = self.resolve_qname(cx, d, "memberTypes", m) {
                            let id = self.type_ref(cx, d, &q);
                            self.check_simple_ref(cx, d, id);
                            members.push(id);
                        }
                    }
                }
                for t in d.elements().filter(|e| e.name.is(XS, "simpleType")) {
                    let s = self.simple_type(cx, t, None);
                    members.push(self.push_type(TypeDef::Simple(s)));
                }
                if members.is_empty() {
                    self.err(cx.doc, d.pos, "xsd:union needs member types");
                }
                SimpleType {
                    name: None,
                    base: Some(any_simple),
                    variety: Variety::Union(members),
                    facets: Facets::new(WhiteSpace::Collapse),
                }
            }
        };
        cx.scope.pop();
        st.name = name;
        st
    }

    fn check_simple_ref(&mut self, cx: &Cx, el: &Element, id: TypeId) {
        if matches!(self.types.get(id.index()), Some(TypeDef::Complex(_))) {
            self.err(
                cx.doc,
                el.pos,
                "a simple type cannot be built from a complex type",
            );
        }
    }

    /// A restriction step of a simple type: the base's variety and facets,
    /// tightened by the facets among `d`'s children.
    fn restriction(
        &mut self,
        cx: &mut Cx,
        d: &Element,
        base: TypeId,
        name: Option<QName>,
    ) -> SimpleType {
        let base_st = match self.types.get(base.index()) {
            Some(TypeDef::Simple(s)) => s.clone(),
            _ => {
                if base != ANY_TYPE {
                    self.err(
                        cx.doc,
                        d.pos,
                        "the base of a simple type must be a simple type",
                    );
                }
                match self.types.get(builtin_id(Builtin::AnySimpleType).index()) {
                    Some(TypeDef::Simple(s)) => s.clone(),
                    _ => return placeholder_simple(),
                }
            }
        };
        let mut f = base_st.facets.clone();
        let atomic = match base_st.variety {
            Variety::Atomic(b) => Some(b),
            _ => None,
        };
        let mut enumeration: Vec<String> = Vec::new();
        let mut patterns: Vec<(String, Pos)> = Vec::new();
        for c in d.elements().filter(|e| !is_meta(e)) {
            let facet = c.name.local.as_str();
            if matches!(
                facet,
                "simpleType" | "attribute" | "attributeGroup" | "anyAttribute"
            ) {
                continue;
            }
            let Some(value) = c.attr("value") else {
                self.err(cx.doc, c.pos, format!("xsd:{facet} needs a value"));
                continue;
            };
            let num = |r: &mut Self| -> Option<u64> {
                value.trim().parse::<u64>().ok().or_else(|| {
                    r.err(
                        cx.doc,
                        c.pos,
                        format!("{facet}={value:?} is not a non-negative integer"),
                    );
                    None
                })
            };
            match facet {
                "enumeration" => enumeration.push(value.to_string()),
                "pattern" => patterns.push((value.to_string(), c.pos)),
                "length" => f.length = num(self).or(f.length),
                "minLength" => f.min_length = num(self).or(f.min_length),
                "maxLength" => f.max_length = num(self).or(f.max_length),
                "totalDigits" => f.total_digits = num(self).map(|n| n as u32).or(f.total_digits),
                "fractionDigits" => {
                    f.fraction_digits = num(self).map(|n| n as u32).or(f.fraction_digits)
                }
                "whiteSpace" => match value.trim() {
                    "preserve" => f.white_space = WhiteSpace::Preserve,
                    "replace" => f.white_space = WhiteSpace::Replace,
                    "collapse" => f.white_space = WhiteSpace::Collapse,
                    v => self.err(
                        cx.doc,
                        c.pos,
                        format!("whiteSpace={v:?} must be preserve, replace or collapse"),
                    ),
                },
                "minInclusive" | "maxInclusive" | "minExclusive" | "maxExclusive" => {
                    let v = value.trim().to_string();
                    if let Some(b) = atomic {
                        if b.order() == super::builtin::Order::None {
                            self.err(
                                cx.doc,
                                c.pos,
                                format!("{facet} does not apply to xsd:{}", b.name()),
                            );
                        } else if !b.check(&v, &cx.scope) {
                            self.err(
                                cx.doc,
                                c.pos,
                                format!("{facet}={v:?} is not a valid xsd:{}", b.name()),
                            );
                        }
                    }
                    let slot = match facet {
                        "minInclusive" => &mut f.min_inclusive,
                        "maxInclusive" => &mut f.max_inclusive,
                        "minExclusive" => &mut f.min_exclusive,
                        _ => &mut f.max_exclusive,
                    };
                    *slot = Some(v);
                }
                other => self.err(cx.doc, c.pos, format!("unsupported facet xsd:{other}")),
            }
        }
        if !enumeration.is_empty() {
            let ws = f.white_space;
            f.enumeration = Some(
                enumeration
                    .iter()
                    .map(|v| normalize_ws(v, ws).into_owned())
                    .collect(),
            );
        }
        if let Some(&(_, pos)) = patterns.first() {
            let sources: Vec<String> = patterns.into_iter().map(|(s, _)| s).collect();
            match compile_step(&sources) {
                Ok(regex) => f.patterns.push(PatternStep { sources, regex }),
                Err(e) => self.err(cx.doc, pos, e),
            }
        }
        SimpleType {
            name,
            base: Some(base),
            variety: base_st.variety,
            facets: f,
        }
    }
}

/// Add an attribute use, replacing an inherited one of the same name.
fn merge_attr(uses: &mut Vec<AttributeUse>, u: AttributeUse) {
    match uses.iter_mut().find(|x| x.name == u.name) {
        Some(x) => *x = u,
        None => uses.push(u),
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

fn placeholder_simple() -> SimpleType {
    SimpleType {
        name: None,
        base: Some(ANY_TYPE),
        variety: Variety::Atomic(Builtin::AnySimpleType),
        facets: Facets::new(WhiteSpace::Preserve),
    }
}
