//! The resolved, read-only schema model: every reference (`type=`, `ref=`,
//! `base=`, group and attributeGroup refs) is already replaced by an id into
//! the [`SchemaSet`](super::SchemaSet)'s arenas, groups are expanded in place,
//! and derived types carry their effective content, attributes and facets.
//! Validation, JSON Schema derivation and XML generation all read this model
//! and never look at schema documents again.

use std::fmt;

use regex::Regex;

use super::builtin::Builtin;
use crate::xml::QName;

/// Index of a type (simple or complex, named or anonymous, built-ins
/// included) in [`SchemaSet::type_def`](super::SchemaSet::type_def).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TypeId(pub(crate) u32);

impl TypeId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Index of an element declaration (global or local) in
/// [`SchemaSet::element_decl`](super::SchemaSet::element_decl).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ElementId(pub(crate) u32);

impl ElementId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

#[derive(Clone, Debug)]
pub enum TypeDef {
    Simple(SimpleType),
    Complex(ComplexType),
}

impl TypeDef {
    pub fn name(&self) -> Option<&QName> {
        match self {
            TypeDef::Simple(s) => s.name.as_ref(),
            TypeDef::Complex(c) => c.name.as_ref(),
        }
    }

    /// The type this one is derived from; `None` only for `xsd:anyType`.
    pub fn base(&self) -> Option<TypeId> {
        match self {
            TypeDef::Simple(s) => s.base,
            TypeDef::Complex(c) => c.base,
        }
    }
}

/// An element declaration. Its `name` already carries the namespace that
/// `form`/`elementFormDefault` give it (empty for unqualified locals).
#[derive(Clone, Debug)]
pub struct ElementDecl {
    pub name: QName,
    pub type_id: TypeId,
    pub nillable: bool,
    pub default: Option<String>,
    pub fixed: Option<String>,
    pub is_abstract: bool,
    /// True for top-level declarations.
    pub global: bool,
    /// Global elements that may appear in place of this one (its
    /// substitution group, transitively), excluding itself.
    pub substitutes: Vec<ElementId>,
}

/// `maxOccurs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaxOccurs {
    Bounded(u32),
    Unbounded,
}

impl MaxOccurs {
    pub(crate) fn allows(self, count: u32) -> bool {
        match self {
            MaxOccurs::Bounded(n) => count < n,
            MaxOccurs::Unbounded => true,
        }
    }
}

impl fmt::Display for MaxOccurs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaxOccurs::Bounded(n) => write!(f, "{n}"),
            MaxOccurs::Unbounded => f.write_str("unbounded"),
        }
    }
}

/// A term with its occurrence range.
#[derive(Clone, Debug)]
pub struct Particle {
    pub min: u32,
    pub max: MaxOccurs,
    pub term: Term,
}

/// What a particle matches. Named groups are already expanded into the
/// model group they name.
#[derive(Clone, Debug)]
pub enum Term {
    Element(ElementId),
    Any(Wildcard),
    Sequence(Vec<Particle>),
    Choice(Vec<Particle>),
    All(Vec<Particle>),
}

/// `xsd:any` / `xsd:anyAttribute`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wildcard {
    pub namespaces: NsConstraint,
    pub process: ProcessContents,
}

/// The `namespace` attribute of a wildcard, with `##targetNamespace` and
/// `##local` already replaced by URIs (`""` for no namespace).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NsConstraint {
    /// `##any`.
    Any,
    /// `##other`: any namespace except this target namespace and except no
    /// namespace.
    Other(String),
    /// An explicit list.
    Only(Vec<String>),
}

impl NsConstraint {
    pub fn allows(&self, ns: &str) -> bool {
        match self {
            NsConstraint::Any => true,
            NsConstraint::Other(t) => !ns.is_empty() && ns != t,
            NsConstraint::Only(l) => l.iter().any(|u| u == ns),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessContents {
    Strict,
    Lax,
    Skip,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Derivation {
    Restriction,
    Extension,
}

#[derive(Clone, Debug)]
pub struct ComplexType {
    /// `None` for anonymous types.
    pub name: Option<QName>,
    /// `None` only for `xsd:anyType`.
    pub base: Option<TypeId>,
    pub derivation: Derivation,
    pub is_abstract: bool,
    /// The effective content: for an extension, the base's particle followed
    /// by the extension's.
    pub content: Content,
    /// The effective attribute uses, inherited ones included, prohibited
    /// ones kept (with [`AttributeUsage::Prohibited`]) so they can be refused.
    pub attributes: Vec<AttributeUse>,
    pub any_attribute: Option<Wildcard>,
}

#[derive(Clone, Debug)]
pub enum Content {
    /// Element-only, mixed or empty content. `particle: None` with
    /// `mixed: false` is empty content.
    Complex {
        particle: Option<Particle>,
        mixed: bool,
    },
    /// Simple content: the text must be valid for this simple type.
    Simple(TypeId),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttributeUsage {
    Required,
    Optional,
    Prohibited,
}

/// An attribute as used by a complex type. `name` carries the namespace
/// that `form`/`attributeFormDefault` give it.
#[derive(Clone, Debug)]
pub struct AttributeUse {
    pub name: QName,
    pub type_id: TypeId,
    pub usage: AttributeUsage,
    pub default: Option<String>,
    pub fixed: Option<String>,
}

/// A global `xsd:attribute` declaration (the target of `ref=` and of strict
/// attribute wildcards).
#[derive(Clone, Debug)]
pub struct AttributeDecl {
    pub name: QName,
    pub type_id: TypeId,
    pub default: Option<String>,
    pub fixed: Option<String>,
}

#[derive(Clone, Debug)]
pub struct SimpleType {
    pub name: Option<QName>,
    /// `None` only for `xsd:anySimpleType`... whose base is `xsd:anyType`,
    /// so in practice always `Some`.
    pub base: Option<TypeId>,
    pub variety: Variety,
    /// The effective facets: this type's own merged with all its bases'.
    pub facets: Facets,
}

#[derive(Clone, Debug)]
pub enum Variety {
    /// An atomic type; the built-in is the nearest built-in ancestor (e.g.
    /// `Int` for a restriction of `xsd:int`), whose lexical space and value
    /// range apply.
    Atomic(Builtin),
    /// A whitespace-separated list of the item type.
    List(TypeId),
    /// The first member type that accepts the value wins.
    Union(Vec<TypeId>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhiteSpace {
    Preserve,
    Replace,
    Collapse,
}

/// One derivation step's `xsd:pattern`s: the value must match one of them.
/// Steps (one per restriction in the chain) must all match.
#[derive(Clone, Debug)]
pub struct PatternStep {
    /// The patterns as written in the schema (XSD regex syntax).
    pub sources: Vec<String>,
    /// Compiled, anchored translation of `sources` OR-ed together.
    pub(crate) regex: Regex,
}

/// Effective facets of a simple type. Lengths count characters for strings,
/// octets for `hexBinary`/`base64Binary` and items for lists. Range bounds
/// are kept as lexical values of the type and compared by value.
#[derive(Clone, Debug)]
pub struct Facets {
    pub white_space: WhiteSpace,
    pub length: Option<u64>,
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    pub patterns: Vec<PatternStep>,
    /// The most derived enumeration, if any step has one.
    pub enumeration: Option<Vec<String>>,
    pub min_inclusive: Option<String>,
    pub max_inclusive: Option<String>,
    pub min_exclusive: Option<String>,
    pub max_exclusive: Option<String>,
    pub total_digits: Option<u32>,
    pub fraction_digits: Option<u32>,
}

impl Facets {
    pub(crate) fn new(white_space: WhiteSpace) -> Self {
        Facets {
            white_space,
            length: None,
            min_length: None,
            max_length: None,
            patterns: Vec::new(),
            enumeration: None,
            min_inclusive: None,
            max_inclusive: None,
            min_exclusive: None,
            max_exclusive: None,
            total_digits: None,
            fraction_digits: None,
        }
    }
}
