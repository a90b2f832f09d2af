//! Differential validation over the project's own contracts: every payload
//! element of every contract in `wsdl/` and under `tests/data` (WSDL
//! inline schemas and the XSDs they import, the stand-alone test XSDs, the
//! UBL-size contract), instances generated from soapgate's resolved schema
//! model and mutated around it, judged by soapgate and by two reference
//! validators — Python's `xmlschema` and libxml2's `xmllint` — batched into
//! one Python process (which runs `xmllint` once per schema set over all
//! its instances).
//!
//! Mutations: a child dropped, duplicated, moved or unknown, values wrong
//! for their simple type or one of its facets (and edge cases of each
//! built-in's lexical space), an attribute added or dropped, `xsi:nil`
//! where it is allowed and where not, `xsi:type` to a type of the set,
//! text in element-only content, content emptied. Besides, sweeps: at one
//! place of every simple type of each contract, every edge value of its
//! built-in and every value breaking one of its facets; and every
//! built-in's everyday, edge and odd values through `xsi:type` on
//! `features.xsd`'s `Builtins/v` (of xs:anySimpleType).
//!
//! Any instance on which soapgate and a reference differ fails the test
//! unless it falls under [`ALLOWED`], the documented list of what soapgate
//! knowingly does not check (identity constraints, ID uniqueness) and where
//! the references themselves are at fault. Seeded (`SOAPGATE_DIFF_SEED`
//! overrides it) and reproducible; the counts are printed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use soapgate::contract::Payload;
use soapgate::contract::model::PartKind;
use soapgate::contract::xsd::{
    AttributeUsage, Builtin, ComplexType, Content, ElementDecl, MaxOccurs, NsConstraint, Particle,
    ProcessContents, SchemaSet, SchemaSetBuilder, Term, TypeDef, TypeId, Variety,
};
use soapgate::files::DiskFiles;
use soapgate::xml::{self, NsScope, QName, XSI_NS};

use crate::common::app::{peer_missing, peers_required};

const XS: &str = "http://www.w3.org/2001/XMLSchema";
const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";
/// The namespace of the elements the reference side declares for types
/// judged on their own (rpc/literal parts): `t0`, `t1`, ...
const DRIVER_NS: &str = "urn:soapgate:differential";
/// A namespace no contract uses: wildcard content and foreign attributes.
const ELSEWHERE: &str = "urn:soapgate:elsewhere";

pub(crate) fn root_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------------------
// The corpus: schema sets and what is validated against them.

/// What an instance is validated as.
#[derive(Clone, Debug)]
enum Root {
    /// A global element.
    Element(QName),
    /// A named type (an rpc/literal part): the instance's root is the
    /// reference side's `t{n}` of that type.
    Type(QName, usize),
}

/// How the reference side reads a schema set.
pub(crate) enum Source {
    Wsdl(Vec<PathBuf>),
    Xsd(Vec<PathBuf>),
}

struct Corpus {
    name: String,
    source: Source,
    set: SchemaSet,
    roots: Vec<Root>,
}

/// WSDL folders of `tests/data/wsdl` that are load-error fixtures: their
/// contracts are refused by design (and tested as such elsewhere).
const REFUSED_FIXTURES: &[&str] = &[
    "duplicate_dispatch",
    "missing_refs",
    "notification",
    "rpc_encoded",
    "wsdl20",
];

fn wsdl_corpora(dir: &Path, out: &mut Vec<Corpus>) {
    let contracts = soapgate::files::load_contracts(dir)
        .unwrap_or_else(|e| panic!("{} loads: {e:?}", dir.display()));
    assert!(
        !contracts.contracts.is_empty(),
        "{}: no contract",
        dir.display()
    );
    for contract in &contracts.contracts {
        let mut roots: Vec<Root> = Vec::new();
        let mut typed: Vec<QName> = Vec::new();
        let add_element = |q: &QName, roots: &mut Vec<Root>| {
            if !roots
                .iter()
                .any(|r| matches!(r, Root::Element(e) if e == q))
            {
                roots.push(Root::Element(q.clone()));
            }
        };
        for service in &contract.services {
            for op in &service.operations {
                for payload in std::iter::once(&op.input).chain(op.output.as_ref()) {
                    match payload {
                        Payload::Document { elements } => {
                            for e in elements {
                                add_element(e, &mut roots);
                            }
                        }
                        Payload::Rpc { parts, .. } => {
                            for part in parts {
                                match &part.kind {
                                    PartKind::Element(e) => add_element(e, &mut roots),
                                    PartKind::Type(t) => {
                                        if !typed.contains(t) {
                                            typed.push(t.clone());
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        for (i, t) in typed.into_iter().enumerate() {
            roots.push(Root::Type(t, i));
        }
        let rel = contract
            .path
            .strip_prefix(root_dir())
            .unwrap_or(&contract.path)
            .display()
            .to_string();
        out.push(Corpus {
            name: rel,
            source: Source::Wsdl(vec![contract.path.clone()]),
            set: contract.schemas.clone(),
            roots,
        });
    }
}

fn xsd_corpus(path: &Path) -> Corpus {
    let bytes = std::fs::read(path).expect("fixture exists");
    let root = xml::read(&bytes, None, &xml::Limits::default())
        .expect("fixture is XML")
        .root;
    let mut builder = SchemaSetBuilder::new();
    builder.add_schema(path, &root, &NsScope::new());
    let set = match builder.finish(&DiskFiles) {
        Ok((set, _)) => set,
        Err(e) => panic!("{} loads: {e:?}", path.display()),
    };
    let roots = set
        .global_elements()
        .into_iter()
        .map(|(q, _)| Root::Element(q.clone()))
        .collect();
    Corpus {
        name: path
            .strip_prefix(root_dir())
            .unwrap_or(path)
            .display()
            .to_string(),
        source: Source::Xsd(vec![path.to_path_buf()]),
        set,
        roots,
    }
}

fn corpora() -> Vec<Corpus> {
    let mut out = Vec::new();
    wsdl_corpora(&root_dir().join("wsdl"), &mut out);
    let fixtures = root_dir().join("tests/data/wsdl");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&fixtures)
        .expect("tests/data/wsdl")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if REFUSED_FIXTURES.contains(&name) {
            continue;
        }
        wsdl_corpora(&dir, &mut out);
    }
    wsdl_corpora(&root_dir().join("tests/data/ubl/wsdl"), &mut out);
    for xsd in ["features.xsd", "invoice.xsd", "sap.xsd"] {
        out.push(xsd_corpus(&root_dir().join("tests/data/xsd").join(xsd)));
    }
    out
}

// ---------------------------------------------------------------------------
// Instances: a small tree of our own, which knows the simple type of each
// value so a mutation can pick a wrong one.

#[derive(Clone, Debug)]
struct Node {
    name: QName,
    attrs: Vec<Attr>,
    kids: Vec<Kid>,
    /// The simple type of the text, for simple content.
    text_type: Option<TypeId>,
    /// `xsi:type`, written with the type namespace's prefix.
    xsi_type: Option<QName>,
    xsi_nil: Option<&'static str>,
}

#[derive(Clone, Debug)]
struct Attr {
    name: QName,
    value: String,
    ty: Option<TypeId>,
}

#[derive(Clone, Debug)]
enum Kid {
    El(Node),
    Text(String),
}

impl Node {
    fn new(name: QName) -> Self {
        Node {
            name,
            attrs: Vec::new(),
            kids: Vec::new(),
            text_type: None,
            xsi_type: None,
            xsi_nil: None,
        }
    }

    fn elements(&self) -> impl Iterator<Item = &Node> {
        self.kids.iter().filter_map(|k| match k {
            Kid::El(n) => Some(n),
            Kid::Text(_) => None,
        })
    }

    /// Indices (into `kids`) of the element children.
    fn element_slots(&self) -> Vec<usize> {
        (0..self.kids.len())
            .filter(|&i| matches!(self.kids[i], Kid::El(_)))
            .collect()
    }

    /// Paths (child element indices into `kids`) of every element.
    fn paths(&self, here: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        out.push(here.clone());
        for (i, k) in self.kids.iter().enumerate() {
            if let Kid::El(n) = k {
                here.push(i);
                n.paths(here, out);
                here.pop();
            }
        }
    }

    /// The element at `path` (from [`Node::paths`]).
    fn at(&mut self, path: &[usize]) -> &mut Node {
        let mut n = self;
        for &i in path {
            n = match &mut n.kids[i] {
                Kid::El(kid) => kid,
                Kid::Text(_) => unreachable!("paths name elements only"),
            };
        }
        n
    }
}

/// Where a simple value sits: an element's text or one of its attributes.
#[derive(Clone, Debug)]
struct Slot {
    path: Vec<usize>,
    attr: Option<usize>,
    ty: TypeId,
    value: String,
}

/// Every value of the tree with its simple type.
fn slots(root: &mut Node) -> Vec<Slot> {
    let mut paths = Vec::new();
    root.paths(&mut Vec::new(), &mut paths);
    let mut out = Vec::new();
    for path in paths {
        let n = root.at(&path);
        if let Some(ty) = n.text_type
            && n.xsi_nil.is_none()
            && n.xsi_type.is_none()
        {
            let value = n
                .kids
                .iter()
                .filter_map(|k| match k {
                    Kid::Text(t) => Some(t.as_str()),
                    Kid::El(_) => None,
                })
                .collect();
            out.push(Slot {
                path: path.clone(),
                attr: None,
                ty,
                value,
            });
        }
        for (i, a) in n.attrs.iter().enumerate() {
            if let Some(ty) = a.ty {
                out.push(Slot {
                    path: path.clone(),
                    attr: Some(i),
                    ty,
                    value: a.value.clone(),
                });
            }
        }
    }
    out
}

/// The tree with the value at `slot` replaced.
fn with_value(root: &Node, slot: &Slot, v: &str) -> Node {
    let mut copy = root.clone();
    let n = copy.at(&slot.path);
    match slot.attr {
        Some(i) => n.attrs[i].value = v.to_string(),
        None => {
            n.kids = if v.is_empty() {
                Vec::new()
            } else {
                vec![Kid::Text(v.to_string())]
            }
        }
    }
    copy
}

/// Writes a tree with every namespace declared on the root (`n0`, `n1`,
/// ...) and unqualified names unprefixed (there is no default namespace).
fn serialize(root: &Node) -> String {
    fn collect(n: &Node, out: &mut Vec<String>) {
        let mut add = |ns: &str| {
            if !ns.is_empty() && ns != XSI_NS && ns != XML_NS && !out.iter().any(|o| o == ns) {
                out.push(ns.to_string());
            }
        };
        add(&n.name.ns);
        for a in &n.attrs {
            add(&a.name.ns);
        }
        if let Some(t) = &n.xsi_type {
            add(&t.ns);
        }
        for k in n.elements() {
            collect(k, out);
        }
    }
    let mut nss = Vec::new();
    collect(root, &mut nss);
    let prefix: HashMap<&str, String> = nss
        .iter()
        .enumerate()
        .map(|(i, ns)| (ns.as_str(), format!("n{i}")))
        .collect();
    let name = |q: &QName| -> String {
        if q.ns == XSI_NS {
            format!("xsi:{}", q.local)
        } else if q.ns == XML_NS {
            format!("xml:{}", q.local)
        } else if q.ns.is_empty() {
            q.local.clone()
        } else {
            format!("{}:{}", prefix[q.ns.as_str()], q.local)
        }
    };
    fn write(n: &Node, name: &dyn Fn(&QName) -> String, decls: Option<&str>, out: &mut String) {
        let tag = name(&n.name);
        let _ = write!(out, "<{tag}");
        if let Some(d) = decls {
            out.push_str(d);
        }
        if let Some(t) = &n.xsi_type {
            let _ = write!(out, " xsi:type=\"{}\"", name(t));
        }
        if let Some(nil) = n.xsi_nil {
            let _ = write!(out, " xsi:nil=\"{nil}\"");
        }
        for a in &n.attrs {
            let _ = write!(out, " {}=\"{}\"", name(&a.name), escape(&a.value, true));
        }
        if n.kids.is_empty() {
            out.push_str("/>");
            return;
        }
        out.push('>');
        for k in &n.kids {
            match k {
                Kid::El(c) => write(c, name, None, out),
                Kid::Text(t) => out.push_str(&escape(t, false)),
            }
        }
        let _ = write!(out, "</{tag}>");
    }
    let mut decls = format!(" xmlns:xsi=\"{XSI_NS}\"");
    for (i, ns) in nss.iter().enumerate() {
        let _ = write!(decls, " xmlns:n{i}=\"{}\"", escape(ns, true));
    }
    let mut out = String::new();
    write(root, &name, Some(&decls), &mut out);
    out
}

fn escape(s: &str, attr: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attr => out.push_str("&quot;"),
            '\t' if attr => out.push_str("&#9;"),
            '\n' if attr => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Generation from the resolved schema model.

/// Valid instances generated per payload root, and mutants of each.
const BASES: usize = 8;
const MUTANTS: usize = 6;

/// Past this depth, particles occur their minimum number of times.
const SHALLOW: usize = 5;
/// Past this many elements in an instance, particles occur their minimum
/// number of times: a UBL invoice with every optional part is large.
const ELEMENT_BUDGET: usize = 120;
/// Past this depth, nothing more is generated.
const DEEP: usize = 12;

struct Gen<'a> {
    set: &'a SchemaSet,
    rng: fastrand::Rng,
    /// Named, non-abstract types deriving from each type (itself excluded).
    derived: HashMap<TypeId, Vec<TypeId>>,
    /// Values soapgate accepts for each simple type, and candidates it
    /// refuses (used when it accepts none): worked out once per type.
    values: HashMap<TypeId, (Vec<String>, Vec<String>)>,
    /// IDs written so far in the instance being generated.
    ids: u32,
    /// Elements generated so far in the instance.
    elements: usize,
}

impl<'a> Gen<'a> {
    fn new(set: &'a SchemaSet, seed: u64) -> Self {
        let mut derived: HashMap<TypeId, Vec<TypeId>> = HashMap::new();
        let named: Vec<TypeId> = set.global_types().into_iter().map(|(_, t)| t).collect();
        for &t in &named {
            let abstract_ = matches!(set.type_def(t), Some(TypeDef::Complex(c)) if c.is_abstract);
            if abstract_ {
                continue;
            }
            let mut b = set.type_def(t).and_then(TypeDef::base);
            while let Some(base) = b {
                derived.entry(base).or_default().push(t);
                b = set.type_def(base).and_then(TypeDef::base);
            }
        }
        Gen {
            set,
            rng: fastrand::Rng::with_seed(seed),
            derived,
            values: HashMap::new(),
            ids: 0,
            elements: 0,
        }
    }

    fn root(&mut self, root: &Root) -> Option<Node> {
        self.ids = 0;
        self.elements = 0;
        match root {
            Root::Element(q) => {
                let (_, d) = self.set.element(q)?;
                Some(self.element(d, 0))
            }
            Root::Type(t, i) => {
                let ty = self.set.type_id(t)?;
                let mut n = Node::new(QName::new(DRIVER_NS, format!("t{i}")));
                self.fill(&mut n, ty, None, 0);
                Some(n)
            }
        }
    }

    fn element(&mut self, decl: &ElementDecl, depth: usize) -> Node {
        let set = self.set;
        // A member of the substitution group, always for an abstract head.
        let members: Vec<&ElementDecl> = decl
            .substitutes
            .iter()
            .filter_map(|s| set.element_decl(*s))
            .filter(|d| !d.is_abstract)
            .collect();
        let decl = if !members.is_empty() && (decl.is_abstract || self.rng.usize(..3) == 0) {
            members[self.rng.usize(..members.len())]
        } else {
            decl
        };
        let mut n = Node::new(decl.name.clone());
        let mut ty = decl.type_id;
        let abstract_ = matches!(set.type_def(ty), Some(TypeDef::Complex(c)) if c.is_abstract);
        if let Some(derived) = self.derived.get(&ty).filter(|d| !d.is_empty())
            && (abstract_ || self.rng.usize(..5) == 0)
        {
            let t = derived[self.rng.usize(..derived.len())];
            n.xsi_type = set.type_def(t).and_then(TypeDef::name).cloned();
            ty = t;
        }
        if decl.nillable && self.rng.usize(..8) == 0 {
            n.xsi_nil = Some("true");
            if let Some(TypeDef::Complex(ct)) = set.type_def(ty) {
                self.attributes(&mut n, ct);
            }
            return n;
        }
        self.fill(&mut n, ty, decl.fixed.as_deref(), depth);
        n
    }

    /// Attributes and content of `n` as type `ty`.
    fn fill(&mut self, n: &mut Node, ty: TypeId, fixed: Option<&str>, depth: usize) {
        let set = self.set;
        match set.type_def(ty) {
            Some(TypeDef::Simple(_)) => {
                n.text_type = Some(ty);
                let v = match fixed {
                    Some(f) => f.to_string(),
                    None => self.value(ty),
                };
                if !v.is_empty() {
                    n.kids.push(Kid::Text(v));
                }
            }
            Some(TypeDef::Complex(ct)) => {
                self.attributes(n, ct);
                match &ct.content {
                    Content::Simple(st) => {
                        n.text_type = Some(*st);
                        let v = match fixed {
                            Some(f) => f.to_string(),
                            None => self.value(*st),
                        };
                        if !v.is_empty() {
                            n.kids.push(Kid::Text(v));
                        }
                    }
                    Content::Complex { particle, mixed } => {
                        if let Some(p) = particle
                            && depth < DEEP
                        {
                            self.particle(p, n, depth);
                        }
                        if *mixed {
                            let slots = n.kids.len();
                            let at = self.rng.usize(..=slots);
                            n.kids.insert(at, Kid::Text("mixed text".into()));
                        }
                    }
                }
            }
            None => {}
        }
    }

    fn attributes(&mut self, n: &mut Node, ct: &ComplexType) {
        for u in &ct.attributes {
            let keep = match u.usage {
                AttributeUsage::Required => true,
                AttributeUsage::Optional => self.rng.bool(),
                AttributeUsage::Prohibited => false,
            };
            if !keep {
                continue;
            }
            let value = match &u.fixed {
                Some(f) => f.clone(),
                None => self.value(u.type_id),
            };
            n.attrs.push(Attr {
                name: u.name.clone(),
                value,
                ty: Some(u.type_id),
            });
        }
        if let Some(w) = &ct.any_attribute
            && w.process != ProcessContents::Strict
            && w.namespaces.allows(ELSEWHERE)
            && self.rng.usize(..4) == 0
        {
            n.attrs.push(Attr {
                name: QName::new(ELSEWHERE, "note"),
                value: "open".into(),
                ty: None,
            });
        }
    }

    fn particle(&mut self, p: &Particle, n: &mut Node, depth: usize) {
        let cap = match p.max {
            MaxOccurs::Bounded(m) => m,
            MaxOccurs::Unbounded => u32::MAX,
        };
        // Past the depth or the element budget, only what must occur;
        // before, each optional occurrence about every other time.
        let times = if depth >= SHALLOW || self.elements >= ELEMENT_BUDGET {
            p.min
        } else {
            let span = cap.saturating_sub(p.min).min(2);
            p.min + (0..span).filter(|_| self.rng.bool()).count() as u32
        };
        for _ in 0..times {
            self.term(&p.term, n, depth);
        }
    }

    fn term(&mut self, t: &Term, n: &mut Node, depth: usize) {
        let set = self.set;
        match t {
            Term::Element(id) => {
                if let Some(d) = set.element_decl(*id) {
                    self.elements += 1;
                    let kid = self.element(d, depth + 1);
                    n.kids.push(Kid::El(kid));
                }
            }
            Term::Any(w) => {
                let globals: Vec<&ElementDecl> = set
                    .global_elements()
                    .into_iter()
                    .filter(|(q, _)| w.namespaces.allows(&q.ns))
                    .filter_map(|(_, id)| set.element_decl(id))
                    .filter(|d| !d.is_abstract)
                    .collect();
                if w.process != ProcessContents::Skip && !globals.is_empty() && self.rng.bool() {
                    let d = globals[self.rng.usize(..globals.len())];
                    let kid = self.element(d, depth + 1);
                    n.kids.push(Kid::El(kid));
                    return;
                }
                let ns = match &w.namespaces {
                    NsConstraint::Only(list) if !list.iter().any(|u| u == ELSEWHERE) => {
                        list.first().cloned().unwrap_or_default()
                    }
                    _ => ELSEWHERE.to_string(),
                };
                let mut kid = Node::new(QName::new(ns, "Extra"));
                kid.kids.push(Kid::Text("any content".into()));
                n.kids.push(Kid::El(kid));
            }
            Term::Sequence(ps) => {
                for p in ps {
                    self.particle(p, n, depth);
                }
            }
            Term::Choice(ps) => {
                if !ps.is_empty() {
                    let p = &ps[self.rng.usize(..ps.len())];
                    self.particle(p, n, depth);
                }
            }
            Term::All(ps) => {
                let mut order: Vec<&Particle> =
                    ps.iter().filter(|p| p.min > 0 || self.rng.bool()).collect();
                self.rng.shuffle(&mut order);
                for p in order {
                    self.term(&p.term, n, depth);
                }
            }
        }
    }

    /// A value of simple type `ty`, one soapgate accepts when it accepts
    /// any candidate (the references judge it all the same).
    fn value(&mut self, ty: TypeId) -> String {
        if matches!(
            self.set.type_def(ty),
            Some(TypeDef::Simple(st)) if matches!(st.variety, Variety::Atomic(Builtin::Id))
        ) {
            self.ids += 1;
            return format!("id{}", self.ids);
        }
        if !self.values.contains_key(&ty) {
            let candidates = self.candidates(ty, 0);
            let (ok, bad): (Vec<String>, Vec<String>) = candidates
                .into_iter()
                .partition(|c| self.set.check_simple_value(ty, c).is_ok());
            self.values.insert(ty, (ok, bad));
        }
        let (ok, bad) = &self.values[&ty];
        let pool = if ok.is_empty() { bad } else { ok };
        if pool.is_empty() {
            return String::new();
        }
        pool[self.rng.usize(..pool.len())].clone()
    }

    /// Candidate values of a simple type: its enumeration, or everyday
    /// values of its built-in, its range bounds, and the emulator's
    /// answers to the type's JSON Schema (which carries patterns, lengths
    /// and ranges).
    fn candidates(&mut self, ty: TypeId, depth: usize) -> Vec<String> {
        let set = self.set;
        let Some(TypeDef::Simple(st)) = set.type_def(ty) else {
            return vec!["text".into()];
        };
        if let Some(e) = &st.facets.enumeration {
            return e.clone();
        }
        let mut out = Vec::new();
        match &st.variety {
            Variety::List(item) if depth < 3 => {
                let items = self.candidates(*item, depth + 1);
                let items: Vec<String> = items
                    .into_iter()
                    .filter(|c| set.check_simple_value(*item, c).is_ok() && !c.contains(' '))
                    .collect();
                if !items.is_empty() {
                    let f = &st.facets;
                    let lo = f.length.or(f.min_length).unwrap_or(1);
                    let hi = f.length.or(f.max_length).unwrap_or(lo + 2).max(lo);
                    for n in lo..=hi.min(lo + 3) {
                        let list: Vec<&str> = (0..n)
                            .map(|i| items[(i as usize) % items.len()].as_str())
                            .collect();
                        out.push(list.join(" "));
                    }
                }
            }
            Variety::Union(members) if depth < 3 => {
                for m in members {
                    out.extend(self.candidates(*m, depth + 1));
                }
            }
            Variety::Atomic(b) => {
                out.extend(everyday(*b).iter().map(|s| s.to_string()));
                let f = &st.facets;
                for bound in [&f.min_inclusive, &f.max_inclusive].into_iter().flatten() {
                    out.push(bound.clone());
                }
                if let Some(n) = f.length.or(f.min_length).or(f.max_length)
                    && b.derives_from(Builtin::String)
                {
                    out.push("x".repeat(usize::try_from(n).unwrap_or(1).min(5000)));
                }
            }
            _ => {}
        }
        let schema = soapgate::mapping::json_schema::for_type(set, ty);
        for seed in 0..4 {
            if let Some(v) = lexical(&soapgate::emulator::schema::sample(&schema, seed)) {
                out.push(v);
            }
        }
        out.dedup();
        out
    }
}

/// A JSON scalar (or array of scalars) as an XSD lexical value.
fn lexical(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(items) => items
            .iter()
            .map(lexical)
            .collect::<Option<Vec<_>>>()
            .map(|v| v.join(" ")),
        _ => None,
    }
}

/// Valid everyday values of each built-in.
fn everyday(b: Builtin) -> &'static [&'static str] {
    use Builtin as B;
    match b {
        B::Boolean => &["true", "false", "1", "0"],
        B::Decimal => &["12.50", "-3", "0.001", "1000"],
        B::Float | B::Double => &["1.5", "-2E3", "INF", "0"],
        B::Integer | B::Long | B::Int | B::Short => &["42", "-7", "0"],
        B::Byte => &["12", "-12"],
        B::NonNegativeInteger | B::UnsignedLong | B::UnsignedInt => &["0", "17"],
        B::UnsignedShort | B::UnsignedByte => &["0", "200"],
        B::PositiveInteger => &["1", "99"],
        B::NonPositiveInteger => &["0", "-5"],
        B::NegativeInteger => &["-1", "-40"],
        B::Date => &["2024-05-17", "1999-12-31Z", "2024-02-29+02:00"],
        B::DateTime => &[
            "2024-05-17T13:45:00Z",
            "2024-05-17T13:45:00.25+01:00",
            "1999-12-31T23:59:59",
        ],
        B::Time => &["13:45:00", "00:00:00Z", "23:59:59.5-05:00"],
        B::Duration => &["P1Y2M3DT4H5M6S", "PT15M", "-P3D", "P0D", "PT0.5S"],
        B::GYear => &["2024", "1999Z"],
        B::GYearMonth => &["2024-05", "1999-12Z"],
        B::GMonth => &["--05", "--12"],
        B::GDay => &["---17", "---01"],
        B::GMonthDay => &["--05-17", "--02-29"],
        B::HexBinary => &["0A1b", "", "FFFF"],
        B::Base64Binary => &["QUJD", "QUI=", "QQ==", ""],
        B::AnyUri => &["https://example.com/a?b=c#d", "urn:x:y", "relative/path"],
        B::QName => &["xsi:type", "local"],
        B::Language => &["en", "en-GB", "de-CH-1901"],
        B::NCName | B::Id | B::IdRef | B::Entity => &["name", "n_1.x-y"],
        B::Name => &["name", "ns:name"],
        B::NmToken => &["token", "12-ab"],
        B::NmTokens | B::IdRefs | B::Entities => &["a b", "one"],
        B::Token => &["a token", "word"],
        B::NormalizedString => &["normal string", "x"],
        B::String | B::AnySimpleType => &["some text", "x"],
        B::Notation => &[],
    }
}

/// Lexical values that are wrong, or easily taken for wrong, for a
/// built-in: each references' lexical rules against soapgate's.
fn edges(b: Builtin) -> &'static [&'static str] {
    use Builtin as B;
    match b {
        B::Boolean => &["yes", "TRUE", " true ", "", "01"],
        B::Decimal => &[
            "1e3", "1.", ".5", "+1.0", "-0", "1,5", "", " 7 ", "0x10", "1.2.3", "+", "-.",
        ],
        B::Float | B::Double => &[
            "1e3", "1E+3", "-INF", "+INF", "NaN", "nan", "Infinity", "1.", ".e1", "1e", "",
        ],
        B::Integer
        | B::Long
        | B::Int
        | B::Short
        | B::Byte
        | B::NonNegativeInteger
        | B::UnsignedLong
        | B::UnsignedInt
        | B::UnsignedShort
        | B::UnsignedByte
        | B::PositiveInteger
        | B::NonPositiveInteger
        | B::NegativeInteger => &[
            "1.0",
            "+5",
            "-0",
            "007",
            "1e2",
            "",
            "128",
            "-129",
            "256",
            "32768",
            "65536",
            "2147483648",
            "-2147483649",
            "4294967296",
            "9223372036854775808",
            "18446744073709551616",
            "-1",
            "0",
        ],
        B::Date => &[
            "2024-02-30",
            "2023-02-29",
            "1900-02-29",
            "2000-02-29",
            "2024-13-01",
            "2024-1-1",
            "24-01-01",
            "0000-01-01",
            "-0001-01-01",
            "2024-01-01+14:00",
            "2024-01-01+14:01",
            "2024-01-01z",
            "2024-01-01T00:00:00",
            "12024-01-01",
        ],
        B::DateTime => &[
            "2024-01-01T24:00:00",
            "2024-01-01T24:00:01",
            "2024-01-01t10:00:00",
            "2024-01-01T10:00:60",
            "2024-01-01T10:00",
            "2024-01-01T10:00:00.",
            "2024-01-01T10:00:00.123456789Z",
            "2024-01-01 10:00:00",
            "2024-01-01T10:00:00+15:00",
            "2024-01-01T10:00:00-00:00",
            "2024-04-31T10:00:00Z",
        ],
        B::Time => &[
            "24:00:00",
            "24:00:00.5",
            "25:00:00",
            "10:00",
            "10:60:00",
            "10:00:00+14:00",
            "10:00:00-14:01",
            "1:00:00",
        ],
        B::Duration => &[
            "P",
            "PT",
            "P1W",
            "-P1D",
            "P-1D",
            "P1.5D",
            "PT1.5S",
            "PT36H",
            "P1DT",
            "1D",
            "P1Y1Y",
            "P1M1Y",
            "PT0S",
            "P0.5Y",
            "pT1H",
            "P1DT2H3M4.S",
            "PT.5S",
        ],
        B::GYear => &["99", "0000", "20245", "-0044", "2024-01", "2024+14:00"],
        B::GYearMonth => &["2024-13", "2024-00", "2024-5", "-0001-12"],
        B::GMonth => &["--13", "--00", "--5", "--05--", "05"],
        B::GDay => &["---32", "---00", "---1", "--01"],
        B::GMonthDay => &["--02-30", "--02-29", "--04-31", "--13-01", "--1-01"],
        B::HexBinary => &["0", "0g", "0A0b ", " 0a", "0x0A", "abc"],
        B::Base64Binary => &[
            "QR==", "Q===", "QUJ", "QU JD", "====", "QUI", "QUI=QUI=", "Q U I =", "QUJD\n",
        ],
        B::AnyUri => &[
            "http://example.com/a b",
            "%",
            "%zz",
            "::",
            "http://[x",
            "a#b#c",
            "",
            "é",
        ],
        B::QName => &["undeclared:x", "1abc", ":x", "a:b:c", "xsi:", "xsi:1"],
        B::NCName | B::Id | B::IdRef | B::Entity => &["1abc", "a:b", "a b", "", "_x", "é-ü", "-a"],
        B::Name => &["1abc", ":a", "a b", ""],
        B::NmToken => &["a b", "", "é", "a,b"],
        B::NmTokens | B::IdRefs | B::Entities => &["", "a 1b", " a  b "],
        B::Language => &["english-language", "e", "en_US", "x-klingon", "123", "en-"],
        B::Token | B::NormalizedString | B::String | B::AnySimpleType => {
            &[" a  b ", "a\tb", "", "line\nbreak", "\u{e9}\u{1F600}"]
        }
        B::Notation => &[],
    }
}

/// Values tried on every built-in: other scripts' digits and spaces,
/// signs, padding, the empty string.
const ODD_VALUES: &[&str] = &[
    "",
    " ",
    "\u{a0}1",
    "\u{663}",
    "\u{ff11}",
    "+",
    "-",
    "0",
    "1",
    " 1 ",
    "\t1\n",
    "00",
    "-1",
    "1.",
    "P1D",
    "2024-01-01",
    "--01",
    "true",
    "a",
    "a:b",
    "x y",
];

// ---------------------------------------------------------------------------
// Mutations.

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Mutation {
    None,
    DropChild,
    DuplicateChild,
    MoveChild,
    UnknownChild,
    WrongValue,
    EdgeValue,
    ExtraAttribute,
    DropAttribute,
    Nil,
    XsiType,
    StrayText,
    Emptied,
    /// Every edge value of a built-in, at one place of each simple type.
    EdgeSweep,
    /// Every facet breaker, at one place of each simple type.
    FacetSweep,
    /// Values of every built-in, through `xsi:type`.
    LexicalSweep,
}

const MUTATIONS: [Mutation; 12] = [
    Mutation::DropChild,
    Mutation::DuplicateChild,
    Mutation::MoveChild,
    Mutation::UnknownChild,
    Mutation::WrongValue,
    Mutation::EdgeValue,
    Mutation::ExtraAttribute,
    Mutation::DropAttribute,
    Mutation::Nil,
    Mutation::XsiType,
    Mutation::StrayText,
    Mutation::Emptied,
];

/// A value of `ty` made wrong for one of its facets (or its built-in):
/// one more or one fewer character, a bound stepped over, an extra digit,
/// a character the pattern will not take, a literal not enumerated.
fn facet_breakers(set: &SchemaSet, ty: TypeId, valid: &str) -> Vec<String> {
    let Some(TypeDef::Simple(st)) = set.type_def(ty) else {
        return vec![format!("{valid}!")];
    };
    let f = &st.facets;
    let mut options: Vec<String> = Vec::new();
    if let Some(e) = &f.enumeration {
        options.push("NOT_LISTED".into());
        if let Some(first) = e.first() {
            options.push(first.to_lowercase());
            options.push(first.to_uppercase());
            options.push(format!(" {first} "));
        }
    }
    if f.length.is_some() || f.min_length.is_some() || f.max_length.is_some() {
        let mut longer = valid.to_string();
        longer.push(valid.chars().last().unwrap_or('a'));
        options.push(longer);
        let mut shorter = valid.to_string();
        shorter.pop();
        options.push(shorter);
    }
    if !f.patterns.is_empty() {
        options.push(format!("{valid}!"));
        options.push(format!("#{valid}"));
        options.push(valid.to_uppercase());
        options.push(valid.to_lowercase());
    }
    for bound in [
        &f.min_inclusive,
        &f.max_inclusive,
        &f.min_exclusive,
        &f.max_exclusive,
    ]
    .into_iter()
    .flatten()
    {
        options.push(bound.clone());
        if let Ok(n) = bound.parse::<i128>() {
            options.push((n - 1).to_string());
            options.push((n + 1).to_string());
        } else if let Ok(x) = bound.parse::<f64>() {
            options.push(format!("{}", x - 0.001));
            options.push(format!("{}", x + 0.001));
        }
    }
    if let Some(td) = f.total_digits {
        options.push("9".repeat(td as usize + 1));
        options.push(format!("0.{}", "1".repeat(td as usize)));
    }
    if let Some(fd) = f.fraction_digits {
        options.push(format!("1.{}", "5".repeat(fd as usize + 1)));
        options.push(format!("1.{}0", "5".repeat(fd as usize)));
    }
    if let Variety::List(_) = st.variety {
        options.push(format!("{valid} {valid}"));
        options.push(String::new());
    }
    if options.is_empty() {
        options.push(format!("{valid}!"));
    }
    options
}

fn builtin_of_type(set: &SchemaSet, ty: TypeId, depth: usize) -> Option<Builtin> {
    match set.type_def(ty)? {
        TypeDef::Simple(st) => match &st.variety {
            Variety::Atomic(b) => Some(*b),
            Variety::List(item) if depth < 3 => builtin_of_type(set, *item, depth + 1),
            Variety::Union(m) if depth < 3 => builtin_of_type(set, *m.first()?, depth + 1),
            _ => None,
        },
        TypeDef::Complex(_) => None,
    }
}

/// Applies `m` somewhere in `root`; false when the instance offers no
/// place for it.
fn mutate(set: &SchemaSet, root: &mut Node, m: Mutation, rng: &mut fastrand::Rng) -> bool {
    let mut paths = Vec::new();
    root.paths(&mut Vec::new(), &mut paths);
    let pick = |rng: &mut fastrand::Rng, ok: &dyn Fn(&Node) -> bool, root: &mut Node| {
        let fits: Vec<&Vec<usize>> = paths.iter().filter(|p| ok(root.at(p))).collect();
        (!fits.is_empty()).then(|| fits[rng.usize(..fits.len())].clone())
    };
    match m {
        Mutation::None | Mutation::EdgeSweep | Mutation::FacetSweep | Mutation::LexicalSweep => {
            true
        }
        Mutation::DropChild | Mutation::DuplicateChild => {
            let Some(p) = pick(rng, &|n| n.elements().next().is_some(), root) else {
                return false;
            };
            let n = root.at(&p);
            let slots = n.element_slots();
            let i = slots[rng.usize(..slots.len())];
            if m == Mutation::DropChild {
                n.kids.remove(i);
            } else {
                let copy = n.kids[i].clone();
                n.kids.insert(i + 1, copy);
            }
            true
        }
        Mutation::MoveChild => {
            let Some(p) = pick(
                rng,
                &|n| {
                    let mut names = n.elements().map(|e| &e.name);
                    let first = names.next();
                    names.any(|x| Some(x) != first)
                },
                root,
            ) else {
                return false;
            };
            let n = root.at(&p);
            let slots = n.element_slots();
            let from = slots[rng.usize(..slots.len())];
            let kid = n.kids.remove(from);
            let to = rng.usize(..=n.kids.len());
            n.kids.insert(to, kid);
            true
        }
        Mutation::UnknownChild => {
            let Some(p) = pick(rng, &|n| n.text_type.is_none(), root) else {
                return false;
            };
            let n = root.at(&p);
            let ns = if rng.bool() {
                n.name.ns.clone()
            } else {
                String::new()
            };
            let at = rng.usize(..=n.kids.len());
            n.kids
                .insert(at, Kid::El(Node::new(QName::new(ns, "Unknown"))));
            true
        }
        Mutation::WrongValue | Mutation::EdgeValue => {
            // Text of simple content, or an attribute's value.
            let Some(p) = pick(
                rng,
                &|n| {
                    (n.text_type.is_some() && n.xsi_nil.is_none())
                        || n.attrs.iter().any(|a| a.ty.is_some())
                },
                root,
            ) else {
                return false;
            };
            let n = root.at(&p);
            let typed_attrs: Vec<usize> = (0..n.attrs.len())
                .filter(|&i| n.attrs[i].ty.is_some())
                .collect();
            let on_text = n.text_type.is_some()
                && n.xsi_nil.is_none()
                && (typed_attrs.is_empty() || rng.bool());
            let (ty, current) = if on_text {
                let text = n
                    .kids
                    .iter()
                    .filter_map(|k| match k {
                        Kid::Text(t) => Some(t.as_str()),
                        Kid::El(_) => None,
                    })
                    .collect::<String>();
                (
                    n.text_type.unwrap_or(soapgate::contract::xsd::ANY_TYPE),
                    text,
                )
            } else {
                let a = &n.attrs[typed_attrs[rng.usize(..typed_attrs.len())]];
                (
                    a.ty.unwrap_or(soapgate::contract::xsd::ANY_TYPE),
                    a.value.clone(),
                )
            };
            let wrong = if m == Mutation::EdgeValue {
                let edge = builtin_of_type(set, ty, 0).map(edges).unwrap_or(&[]);
                if edge.is_empty() {
                    return false;
                }
                edge[rng.usize(..edge.len())].to_string()
            } else {
                let options = facet_breakers(set, ty, &current);
                options[rng.usize(..options.len())].clone()
            };
            if on_text {
                n.kids = if wrong.is_empty() {
                    Vec::new()
                } else {
                    vec![Kid::Text(wrong)]
                };
            } else if let Some(a) = n
                .attrs
                .iter_mut()
                .find(|a| a.ty == Some(ty) && a.value == current)
            {
                a.value = wrong;
            }
            true
        }
        Mutation::ExtraAttribute => {
            let p = paths[rng.usize(..paths.len())].clone();
            let n = root.at(&p);
            let name = match rng.usize(..3) {
                0 => QName::new("", "extra"),
                1 => QName::new(ELSEWHERE, "extra"),
                _ => QName::new(XML_NS, "lang"),
            };
            if n.attrs.iter().any(|a| a.name == name) {
                return false;
            }
            n.attrs.push(Attr {
                name,
                value: "en".into(),
                ty: None,
            });
            true
        }
        Mutation::DropAttribute => {
            let Some(p) = pick(rng, &|n| !n.attrs.is_empty(), root) else {
                return false;
            };
            let n = root.at(&p);
            let i = rng.usize(..n.attrs.len());
            n.attrs.remove(i);
            true
        }
        Mutation::Nil => {
            let p = paths[rng.usize(..paths.len())].clone();
            let n = root.at(&p);
            match rng.usize(..4) {
                0 | 1 => {
                    n.xsi_nil = Some("true");
                    n.kids.clear();
                }
                2 => n.xsi_nil = Some("false"),
                _ => n.xsi_nil = Some(if rng.bool() { "true" } else { "1" }),
            }
            true
        }
        Mutation::XsiType => {
            let types = set.global_types();
            let p = paths[rng.usize(..paths.len())].clone();
            let n = root.at(&p);
            n.xsi_type = Some(if types.is_empty() || rng.usize(..4) == 0 {
                QName::new(XS, "string")
            } else {
                types[rng.usize(..types.len())].0.clone()
            });
            true
        }
        Mutation::StrayText => {
            let Some(p) = pick(
                rng,
                &|n| n.text_type.is_none() && n.elements().next().is_some(),
                root,
            ) else {
                return false;
            };
            let n = root.at(&p);
            let at = rng.usize(..=n.kids.len());
            n.kids.insert(at, Kid::Text("stray".into()));
            true
        }
        Mutation::Emptied => {
            let Some(p) = pick(rng, &|n| !n.kids.is_empty(), root) else {
                return false;
            };
            root.at(&p).kids.clear();
            true
        }
    }
}

// ---------------------------------------------------------------------------
// Judging.

struct Case {
    corpus: usize,
    root: usize,
    mutation: Mutation,
    text: String,
}

/// One reference's verdict and the first reason it gave.
#[derive(Clone, Debug)]
struct Verdict {
    valid: bool,
    reason: String,
}

/// What soapgate and the references said about one instance.
struct Judged<'a> {
    case: &'a Case,
    ours: Vec<String>,
    xmlschema: Verdict,
    xmllint: Option<Verdict>,
}

impl Judged<'_> {
    fn ours_valid(&self) -> bool {
        self.ours.is_empty()
    }

    fn verdict(&self, r: Ref) -> Option<&Verdict> {
        match r {
            Ref::Xmlschema => Some(&self.xmlschema),
            Ref::Xmllint => self.xmllint.as_ref(),
        }
    }

    /// What soapgate said, as one line.
    fn ours_text(&self) -> String {
        self.ours.join("; ")
    }
}

/// One of the two references.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ref {
    Xmlschema,
    Xmllint,
}

/// A reason a reference may differ from soapgate: either what soapgate
/// knowingly does not check, or where that reference departs from XSD 1.0
/// (and the other reference agrees with soapgate, or is excused on its
/// own account). An instance passes when every reference that differs
/// from soapgate is excused by one of these.
struct Allowance {
    name: &'static str,
    why: &'static str,
    /// The reference it excuses; `None` for either.
    whom: Option<Ref>,
    /// Whether it excuses this reference's verdict on this instance.
    excuses: fn(&Judged<'_>, &Verdict) -> bool,
}

/// The value soapgate quotes in its one violation (`...: "x"`).
fn our_value<'j>(j: &'j Judged<'_>) -> Option<&'j str> {
    let v = j.ours.first()?;
    let start = v.rfind(": \"")? + 3;
    v.get(start..v.len().checked_sub(1)?)
}

fn refused_for(v: &Verdict, needles: &[&str]) -> bool {
    !v.valid && needles.iter().any(|n| v.reason.contains(n))
}

/// The documented list of disagreements, each matched on the reasons given
/// (the reference's own, or soapgate's) so nothing else hides behind it.
const ALLOWED: &[Allowance] = &[
    Allowance {
        name: "identity constraints",
        why: "xs:key, xs:unique and xs:keyref are accepted and ignored (src/contract/xsd/mod.rs): \
              a request is not refused for a duplicated key, and the references check them",
        whom: None,
        excuses: |j, v| {
            j.ours_valid()
                && refused_for(
                    v,
                    &[
                        "duplicated value",
                        "Duplicate key-sequence",
                        "No match found for key-sequence",
                        "missing key",
                        "keyref",
                        "Not all fields of key identity-constraint",
                    ],
                )
        },
    },
    Allowance {
        name: "ID uniqueness and IDREF targets",
        why: "ID/IDREF uniqueness and references are accepted and ignored (src/contract/xsd/mod.rs): \
              a duplicated ID (a duplicated child) or an IDREF to no ID is valid to soapgate",
        whom: None,
        excuses: |j, v| {
            j.ours_valid()
                && refused_for(
                    v,
                    &[
                        "is not unique",
                        "duplicated xs:ID value",
                        "of the atomic type 'xs:ID'",
                        "Duplicate ID",
                        "duplicate ID",
                        "already defined",
                        "IDREF",
                        "no ID for",
                        "has no corresponding ID",
                    ],
                )
        },
    },
    Allowance {
        name: "libxml2 takes base64 with characters outside its alphabet",
        why: "xmllint accepts base64Binary values such as ! or QQ==! (libxml2 2.9 skips \
              what is not in the alphabet); xmlschema and soapgate refuse them, as the lexical \
              space has no such values",
        whom: Some(Ref::Xmllint),
        excuses: |j, v| {
            v.valid
                && j.ours.len() == 1
                && j.ours[0].contains("not a valid xsd:base64Binary")
                && our_value(j).is_some_and(|x| {
                    x.chars()
                        .any(|c| !c.is_ascii_alphanumeric() && !"+/= ".contains(c))
                })
        },
    },
    Allowance {
        name: "libxml2 takes a float without exponent digits",
        why: "xmllint accepts 1e and 1E as xs:float and xs:double; the lexical space needs \
              digits after the E, as xmlschema and soapgate read it",
        whom: Some(Ref::Xmllint),
        excuses: |j, v| {
            v.valid
                && j.ours.len() == 1
                && (j.ours[0].contains("not a valid xsd:double")
                    || j.ours[0].contains("not a valid xsd:float"))
                && (j.ours[0].ends_with("e\"") || j.ours[0].ends_with("E\""))
        },
    },
    Allowance {
        name: "a sign on an unsigned integer",
        why: "XSD 1.0's prose shows the unsigned types' lexical forms without a sign, while \
              they derive from xs:integer by restricting values only, which keeps +5 and -0; \
              libxml2 refuses the sign, xmlschema and soapgate keep the derivation's lexical \
              space",
        whom: Some(Ref::Xmllint),
        excuses: |j, v| {
            j.ours_valid()
                && refused_for(v, &["is not a valid value of the atomic type 'xs:unsigned"])
                && (v.reason.contains(": '+") || v.reason.contains(": '-"))
        },
    },
    Allowance {
        name: "libxml2 wants a declaration under a strict wildcard despite xsi:type",
        why: "a strict wildcard takes an element with a top-level declaration or with an \
              xsi:type (XSD 1.0, 3.10.1), which is then valid against that type; libxml2 \
              demands the declaration, xmlschema and soapgate take the xsi:type",
        whom: Some(Ref::Xmllint),
        excuses: |j, v| {
            j.ours_valid()
                && refused_for(v, &["but demanded by the strict wildcard"])
                && j.case.text.contains("xsi:type=")
        },
    },
    Allowance {
        name: "xmlschema takes text beside children a skip wildcard took",
        why: "text in element-only content is invalid wherever it stands (Element Locally \
              Valid (Complex Type) 2.3); xmlschema lets it pass in a content model whose \
              wildcard skips its children (UBL's ExtensionContent), libxml2 and soapgate refuse it",
        whom: Some(Ref::Xmlschema),
        excuses: |j, v| {
            v.valid
                && j.ours.len() == 1
                && j.ours[0].contains("text not allowed in element-only content")
        },
    },
    Allowance {
        name: "xmlschema takes a no-break space for whitespace",
        why: "XSD's whitespace is space, tab, CR and LF; xmlschema strips U+00A0 as well (Python's \
              str.strip), so it takes \\u{a0}1 as an integer or an NMTOKEN; libxml2 and soapgate \
              refuse",
        whom: Some(Ref::Xmlschema),
        excuses: |j, v| v.valid && !j.ours_valid() && j.ours_text().contains("\\u{a0}"),
    },
    Allowance {
        name: "xmlschema takes other scripts' digits in numbers",
        why: "the numeric types' lexical spaces have the digits 0-9 only; xmlschema parses with \
              Python's int(), which takes Arabic-Indic and fullwidth digits; libxml2 and soapgate \
              refuse them",
        whom: Some(Ref::Xmlschema),
        excuses: |j, v| {
            v.valid
                && !j.ours_valid()
                && our_value(j).is_some_and(|x| x.chars().any(|c| c.is_numeric() && !c.is_ascii()))
        },
    },
    Allowance {
        name: "names of XML 1.0's fifth edition",
        why: "soapgate and xmlschema read Name, NCName and NMTOKEN by XML 1.0's fifth edition, whose \
              name characters include U+0663 and U+FF11; libxml2 keeps the second edition's \
              tables. soapgate reads a QName's parts as NCNames, so it takes the same local names \
              there, where xmlschema's QName check follows the older tables too",
        whom: None,
        excuses: |j, v| {
            j.ours_valid()
                && (v.reason.contains("of the atomic type 'xs:N")
                    || v.reason.contains("of the atomic type 'xs:Name'")
                    || v.reason.contains("of the atomic type 'xs:QName'")
                    || v.reason.contains("value is not an xs:QName")
                    || v.reason.contains("of the atomic type 'xs:ENTITY'"))
                && j.case.text.contains(['\u{663}', '\u{ff11}'])
        },
    },
    Allowance {
        name: "ENTITY values name no declared entity",
        why: "an ENTITY value must name an unparsed entity of the document's DTD, and soapgate reads \
              no DTD (it refuses them); like xmlschema it checks ENTITY and ENTITIES as NCNames, \
              where libxml2 refuses every value",
        whom: Some(Ref::Xmllint),
        excuses: |j, v| {
            j.ours_valid()
                && refused_for(v, &["is not a valid value of the atomic type 'xs:ENTITY'"])
        },
    },
    Allowance {
        name: "libxml2 takes empty built-in lists",
        why: "IDREFS, ENTITIES and NMTOKENS have minLength 1 (XSD 1.0, 3.3); libxml2 takes an empty \
              value, xmlschema and soapgate refuse it",
        whom: Some(Ref::Xmllint),
        excuses: |j, v| v.valid && j.ours.len() == 1 && j.ours[0].ends_with("minLength=1 (got 0)"),
    },
    Allowance {
        name: "libxml2 refuses whitespace around integers of bounded types",
        why: "xs:int, xs:short and the other bounded integer types collapse whitespace like \
              xs:integer, so \" 1 \" is 1; libxml2 2.9 refuses it for them (not for xs:integer), \
              xmlschema and soapgate take it",
        whom: Some(Ref::Xmllint),
        excuses: |j, v| {
            j.ours_valid()
                && refused_for(v, &["Schemas validity error"])
                && (v.reason.contains(": ' ") || v.reason.contains(": '\t"))
        },
    },
    Allowance {
        name: "anyURI is not parsed",
        why: "XSD 1.0 leaves URI syntax unchecked (3.2.17: it is impractical for processors to check \
              that a value is a context-appropriate URI reference); xmlschema and soapgate take % and \
              :: as anyURI values, libxml2 parses them as RFC 2396 URIs. soapgate refuses only a \
              second '#' (a fragment holds none), as libxml2 does and xmlschema does not",
        whom: None,
        excuses: |j, v| {
            let uri = j.case.text.contains("xsi:type=\"n1:anyURI\"");
            (j.ours_valid() && uri && refused_for(v, &["'xs:anyURI'"]))
                || (v.valid
                    && !j.ours_valid()
                    && j.ours_text().contains("not a valid xsd:anyURI")
                    && our_value(j).is_some_and(|x| x.matches('#').count() > 1))
        },
    },
    Allowance {
        name: "libxml2 takes seconds without digits after the point",
        why: "a duration's seconds are digits with an optional point followed by digits \
              (P1DT4.S and PT.5S are not durations); libxml2 takes them, xmlschema and soapgate \
              refuse",
        whom: Some(Ref::Xmllint),
        excuses: |j, v| {
            v.valid
                && j.ours_text().contains("not a valid xsd:duration")
                && our_value(j).is_some_and(|x| x.contains(".S") || x.contains("T."))
        },
    },
    Allowance {
        name: "xsi:nil on an element no declaration governs",
        why: "an element a lax wildcard takes without a declaration is assessed against \
              xs:anyType, and nillable is a property of declarations (Element Locally Valid \
              (Element) 3.1): libxml2 and soapgate accept xsi:nil there, xmlschema reads it as \
              a non-nillable declaration",
        whom: Some(Ref::Xmlschema),
        excuses: |j, v| j.ours_valid() && refused_for(v, &["element is not nillable"]),
    },
];

// ---------------------------------------------------------------------------
// The reference side (differential_reference.py), shared with ubl.rs.

/// What the references said: per schema set, why it could not be read (if
/// so); per instance, xmlschema's and xmllint's verdicts (`None`: not
/// judged) and their first reasons.
#[derive(serde::Deserialize)]
pub(crate) struct ReferenceOut {
    pub(crate) sets: Vec<Option<String>>,
    pub(crate) verdicts: Vec<(Option<bool>, Option<bool>, String, String)>,
}

/// A schema set for the references: where its schemas are, and the types
/// judged through the driver's `t{n}` elements.
pub(crate) struct RefSet<'a> {
    pub(crate) name: &'a str,
    pub(crate) source: &'a Source,
    pub(crate) typed: Vec<QName>,
}

/// Whether the references can run: `None` when Python's xmlschema and lxml
/// are missing (the test is then skipped, or fails under
/// `SOAPGATE_REQUIRE_PEERS=1`), else whether xmllint is there too (its
/// absence fails the test under `SOAPGATE_REQUIRE_PEERS=1`).
pub(crate) fn reference_peers(test: &str) -> Option<bool> {
    let probe = Command::new("python3")
        .args(["-c", "import xmlschema, lxml.etree"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        peer_missing(test, "python3 with xmlschema and lxml");
        return None;
    }
    let xmllint = Command::new("xmllint")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !xmllint {
        peer_missing(test, "xmllint (libxml2-utils)");
        if peers_required() {
            return None;
        }
    }
    Some(xmllint)
}

/// Judges `instances` (schema set index, XML) with the references, in one
/// Python process.
pub(crate) fn references(
    sets: &[RefSet<'_>],
    instances: &[(usize, &str)],
    xmllint: bool,
) -> ReferenceOut {
    // xmllint reads files: on tmpfs where there is one.
    let dir = tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("temp dir");
    let sets: Vec<Value> = sets
        .iter()
        .map(|c| {
            let mut s = match c.source {
                Source::Wsdl(p) => serde_json::json!({ "wsdl": p }),
                Source::Xsd(p) => serde_json::json!({ "xsd": p }),
            };
            s["name"] = Value::from(c.name);
            s["typed"] = c
                .typed
                .iter()
                .map(|t| serde_json::json!([t.ns, t.local]))
                .collect();
            s
        })
        .collect();
    let manifest = serde_json::json!({
        "sets": sets,
        "instances": instances.iter().map(|(s, x)| serde_json::json!([s, x])).collect::<Vec<_>>(),
        "xmllint": xmllint,
    });
    let path = dir.path().join("manifest.json");
    std::fs::write(&path, serde_json::to_vec(&manifest).expect("json")).expect("manifest");
    let output = Command::new("python3")
        .arg(root_dir().join("tests/core/differential_reference.py"))
        .arg(&path)
        .arg(dir.path())
        .output()
        .expect("running python3");
    assert!(
        output.status.success(),
        "the reference side failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let out: ReferenceOut =
        serde_json::from_slice(&output.stdout).expect("the references' verdicts");
    assert_eq!(out.verdicts.len(), instances.len());
    out
}

#[test]
fn soapgate_agrees_with_the_reference_validators_on_the_projects_contracts() {
    let test = "soapgate_agrees_with_the_reference_validators_on_the_projects_contracts";
    let Some(use_xmllint) = reference_peers(test) else {
        return;
    };
    let seed: u64 = std::env::var("SOAPGATE_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_0023);
    let started = std::time::Instant::now();
    let corpora = corpora();
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut cases: Vec<Case> = Vec::new();
    for (ci, corpus) in corpora.iter().enumerate() {
        let mut generator = Gen::new(&corpus.set, seed ^ ci as u64);
        for (ri, root) in corpus.roots.iter().enumerate() {
            for _ in 0..BASES {
                let Some(valid) = generator.root(root) else {
                    panic!("{}: no declaration for {root:?}", corpus.name);
                };
                cases.push(Case {
                    corpus: ci,
                    root: ri,
                    mutation: Mutation::None,
                    text: serialize(&valid),
                });
                for _ in 0..MUTANTS {
                    let m = MUTATIONS[rng.usize(..MUTATIONS.len())];
                    let mut mutant = valid.clone();
                    if mutate(&corpus.set, &mut mutant, m, &mut rng) {
                        cases.push(Case {
                            corpus: ci,
                            root: ri,
                            mutation: m,
                            text: serialize(&mutant),
                        });
                    }
                }
            }
        }
    }
    // Sweeps: at one place of each simple type of each contract, every
    // edge value of its built-in and every facet breaker.
    for (ci, corpus) in corpora.iter().enumerate() {
        let mut generator = Gen::new(&corpus.set, seed ^ ci as u64 ^ 0x5eed);
        let mut swept: HashSet<TypeId> = HashSet::new();
        for (ri, root) in corpus.roots.iter().enumerate() {
            let Some(mut base) = generator.root(root) else {
                continue;
            };
            for slot in slots(&mut base) {
                if !swept.insert(slot.ty) {
                    continue;
                }
                let edge = builtin_of_type(&corpus.set, slot.ty, 0)
                    .map(edges)
                    .unwrap_or(&[]);
                let sweeps = edge
                    .iter()
                    .map(|v| (Mutation::EdgeSweep, v.to_string()))
                    .chain(
                        facet_breakers(&corpus.set, slot.ty, &slot.value)
                            .into_iter()
                            .map(|v| (Mutation::FacetSweep, v)),
                    );
                for (m, v) in sweeps {
                    cases.push(Case {
                        corpus: ci,
                        root: ri,
                        mutation: m,
                        text: serialize(&with_value(&base, &slot, &v)),
                    });
                }
            }
        }
    }
    // Every built-in's lexical space: features.xsd's `Builtins` holds `v`
    // elements of xs:anySimpleType, which `xsi:type` narrows to any
    // built-in; each gets its everyday values, its edges and the
    // characters other scripts and editors bring.
    let builtins = QName::new("urn:x:features", "Builtins");
    let (ci, ri) = corpora
        .iter()
        .enumerate()
        .find_map(|(ci, c)| {
            let ri = c
                .roots
                .iter()
                .position(|r| matches!(r, Root::Element(q) if *q == builtins))?;
            Some((ci, ri))
        })
        .expect("features.xsd's Builtins");
    for &b in Builtin::ALL {
        let values = everyday(b).iter().chain(edges(b)).chain(ODD_VALUES);
        for v in values {
            let mut root = Node::new(builtins.clone());
            let mut kid = Node::new(QName::new("", "v"));
            kid.xsi_type = Some(QName::new(XS, b.name()));
            if !v.is_empty() {
                kid.kids.push(Kid::Text(v.to_string()));
            }
            root.kids.push(Kid::El(kid));
            cases.push(Case {
                corpus: ci,
                root: ri,
                mutation: Mutation::LexicalSweep,
                text: serialize(&root),
            });
        }
    }
    cases.sort_by(|a, b| (a.corpus, &a.text).cmp(&(b.corpus, &b.text)));
    cases.dedup_by(|a, b| a.corpus == b.corpus && a.text == b.text);

    let sets: Vec<RefSet<'_>> = corpora
        .iter()
        .map(|c| RefSet {
            name: &c.name,
            source: &c.source,
            typed: c
                .roots
                .iter()
                .filter_map(|r| match r {
                    Root::Type(t, _) => Some(t.clone()),
                    Root::Element(_) => None,
                })
                .collect(),
        })
        .collect();
    let instances: Vec<(usize, &str)> = cases.iter().map(|c| (c.corpus, c.text.as_str())).collect();
    let reference = references(&sets, &instances, use_xmllint);
    let refused: Vec<String> = corpora
        .iter()
        .zip(&reference.sets)
        .filter_map(|(c, why)| Some(format!("{}: {}", c.name, why.as_ref()?)))
        .collect();
    assert!(
        refused.is_empty(),
        "schemas soapgate loads and a reference refuses:\n{}",
        refused.join("\n")
    );

    // Judge and compare.
    let limits = xml::Limits::default();
    let mut judged = Vec::new();
    for (case, (xs, lint, xs_why, lint_why)) in cases.iter().zip(reference.verdicts) {
        let corpus = &corpora[case.corpus];
        let Some(xs) = xs else { continue };
        let doc = xml::read(case.text.as_bytes(), None, &limits)
            .unwrap_or_else(|e| panic!("generated XML reads: {e}\n{}", case.text));
        let ours = match &corpus.roots[case.root] {
            Root::Element(q) => {
                // A member of the root's substitution group stands for it,
                // as to the references, which judge any global element.
                let name = if corpus.set.has_element(&doc.root.name) {
                    &doc.root.name
                } else {
                    q
                };
                corpus.set.validate_element(&doc.root, name)
            }
            Root::Type(t, i) => corpus.set.validate_typed(&doc.root, t, &format!("/t{i}")),
        };
        judged.push(Judged {
            case,
            ours: ours.iter().map(ToString::to_string).collect(),
            xmlschema: Verdict {
                valid: xs,
                reason: xs_why,
            },
            xmllint: lint.map(|valid| Verdict {
                valid,
                reason: lint_why,
            }),
        });
    }
    let mut agreements = 0usize;
    let mut allowed: BTreeMap<&str, usize> = BTreeMap::new();
    let mut split = 0usize;
    let mut valid = 0usize;
    let mut by_mutation: BTreeMap<Mutation, (usize, usize)> = BTreeMap::new();
    let mut failures: Vec<String> = Vec::new();
    for j in &judged {
        let ours = j.ours_valid();
        if j.xmllint
            .as_ref()
            .is_some_and(|v| v.valid != j.xmlschema.valid)
        {
            split += 1;
        }
        valid += usize::from(j.xmlschema.valid);
        let e = by_mutation.entry(j.case.mutation).or_default();
        e.0 += 1;
        e.1 += usize::from(j.xmlschema.valid);
        // Each reference that differs from soapgate must be excused.
        let mut excused: Vec<&str> = Vec::new();
        let mut unexcused = false;
        for r in [Ref::Xmlschema, Ref::Xmllint] {
            let Some(v) = j.verdict(r) else { continue };
            if v.valid == ours {
                continue;
            }
            match ALLOWED
                .iter()
                .find(|a| a.whom.is_none_or(|w| w == r) && (a.excuses)(j, v))
            {
                Some(a) => excused.push(a.name),
                None => unexcused = true,
            }
        }
        if excused.is_empty() && !unexcused {
            agreements += 1;
            continue;
        }
        if !unexcused {
            excused.dedup();
            for name in excused {
                *allowed.entry(name).or_default() += 1;
            }
            continue;
        }
        let corpus = &corpora[j.case.corpus];
        failures.push(format!(
            "{} {:?} ({:?}):\n  soapgate: {}\n  xmlschema: {}\n  xmllint: {}\n  {}",
            corpus.name,
            corpus.roots[j.case.root],
            j.case.mutation,
            if ours {
                "valid".to_string()
            } else {
                j.ours_text()
            },
            if j.xmlschema.valid {
                "valid"
            } else {
                &j.xmlschema.reason
            },
            match &j.xmllint {
                None => "not run",
                Some(v) if v.valid => "valid",
                Some(v) => &v.reason,
            },
            j.case.text
        ));
    }
    let roots: usize = corpora.iter().map(|c| c.roots.len()).sum();
    eprintln!(
        "differential (seed {seed:#x}, {:.1} s): {} contracts, {roots} payload roots, {} instances \
         ({valid} valid to xmlschema), {agreements} agreements, {} allowed disagreements {allowed:?}, \
         {split} on which xmlschema and xmllint differ, {} disagreements; by mutation \
         (instances, valid): {by_mutation:?}",
        started.elapsed().as_secs_f64(),
        corpora.len(),
        judged.len(),
        allowed.values().sum::<usize>(),
        failures.len()
    );
    for a in ALLOWED {
        eprintln!(
            "  allowed ({}): {}: {}",
            a.whom.map_or("either".to_string(), |w| format!("{w:?}")),
            a.name,
            a.why
        );
    }
    assert!(judged.len() >= 1000, "too few instances: {}", judged.len());
    assert!(
        valid >= judged.len() / 5,
        "too few valid instances: {valid} of {}",
        judged.len()
    );
    assert!(
        failures.is_empty(),
        "{} disagreements, the first:\n{}",
        failures.len(),
        failures
            .iter()
            .take(
                std::env::var("SOAPGATE_DIFF_SHOW")
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(8)
            )
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
