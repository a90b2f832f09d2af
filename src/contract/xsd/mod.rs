//! XSD 1.0 for contracts: the resolved schema model ([`model`]), its loader
//! ([`SchemaSetBuilder`]: inline and imported/included schemas, every
//! reference checked at load), and instance validation
//! ([`SchemaSet::validate_element`]), which runs on every request and so
//! does its work up front: types resolved, patterns compiled, lookups by
//! QName.
//!
//! Supported: named and anonymous types, element/attribute/group/
//! attributeGroup refs, sequence/choice/all with occurrence ranges, any and
//! anyAttribute, simple and complex content by extension and restriction,
//! mixed content, atomic/list/union simple types with all XSD 1.0 facets,
//! every built-in type, nillable, xsi:type, default/fixed, substitution
//! groups, elementFormDefault/attributeFormDefault/form, chameleon includes.
//! Refused at load: `xsd:redefine`, remote `schemaLocation`s. Accepted and
//! ignored: identity constraints (key/unique/keyref), `block`/`final`,
//! ID/IDREF uniqueness.

pub mod builtin;
mod exact;
mod facets;
mod load;
pub mod model;
mod regex;
pub(crate) mod shape;
mod validate;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{Files, LoadError};
use crate::xml::{Element, NsScope, QName};

pub use builtin::Builtin;
pub use model::{
    AttributeDecl, AttributeUsage, AttributeUse, ComplexType, Content, Derivation, ElementDecl,
    ElementId, Facets, MaxOccurs, NsConstraint, Particle, PatternStep, ProcessContents, SimpleType,
    Term, TypeDef, TypeId, Variety, WhiteSpace, Wildcard,
};

/// The XML Schema namespace.
pub const XSD_NS: &str = load::XS;

/// `xsd:anyType` is always the first type.
pub const ANY_TYPE: TypeId = TypeId(0);

/// The id of a built-in simple type (they follow `anyType`, in
/// [`Builtin::ALL`] order).
pub fn builtin_id(b: Builtin) -> TypeId {
    TypeId(1 + b as u32)
}

/// All schemas of one contract, with imports resolved: a read-only arena of
/// types and element declarations plus lookups by QName.
#[derive(Debug, Clone)]
pub struct SchemaSet {
    types: Vec<TypeDef>,
    elements: Vec<ElementDecl>,
    type_ix: HashMap<QName, TypeId>,
    element_ix: HashMap<QName, ElementId>,
    attribute_ix: HashMap<QName, AttributeDecl>,
    /// The JSON view of each type, worked out on first use.
    shapes: shape::Shapes,
}

impl Default for SchemaSet {
    /// A set with only the built-in types.
    fn default() -> Self {
        SchemaSet::builtins()
    }
}

/// One rule an instance broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Element path from the payload root, e.g. `/Order/Lines/Line[2]/Qty`
    /// (local names; an index only among same-named siblings; `/@name` for
    /// attributes).
    pub path: String,
    /// The rule, e.g. `maxLength=10 (got 12)`, `required element Total missing`.
    pub rule: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.rule)
    }
}

/// Schema documents reached through `xsd:import`/`xsd:include`, as
/// (path, root element), in the order they were first reached.
pub type ImportedDocs = Vec<(PathBuf, Element)>;

/// Collects schema documents (inline in a WSDL or top-level `.xsd`) and
/// resolves their imports and includes.
#[derive(Debug, Default)]
pub struct SchemaSetBuilder {
    docs: Vec<load::Doc>,
    errors: Vec<LoadError>,
}

impl SchemaSetBuilder {
    pub fn new() -> Self {
        SchemaSetBuilder::default()
    }

    /// Add an `xsd:schema` element found in `path` (for a WSDL, an element of
    /// `wsdl:types`); `outer` holds the namespace declarations in scope
    /// around it (those of `wsdl:definitions`).
    pub fn add_schema(&mut self, path: &Path, schema: &Element, outer: &NsScope) {
        match load::Doc::new(path, schema.clone(), outer, None) {
            Ok(d) => self.docs.push(d),
            Err(e) => self.errors.push(e),
        }
    }

    /// Resolve imports/includes (relative `schemaLocation`s through `files`)
    /// and check every reference. Returns the set and the imported documents
    /// (path, root element) in the order they were first reached.
    pub fn finish(
        mut self,
        files: &dyn Files,
    ) -> Result<(SchemaSet, ImportedDocs), Vec<LoadError>> {
        let imported = load::gather(&mut self.docs, &mut self.errors, files);
        let set = load::resolve(&self.docs, self.errors)?;
        Ok((set, imported))
    }
}

impl SchemaSet {
    /// A set holding only `anyType` and the built-in simple types.
    fn builtins() -> SchemaSet {
        let mut types = vec![TypeDef::Complex(SchemaSet::any_type_def())];
        let mut type_ix = HashMap::new();
        type_ix.insert(QName::new(XSD_NS, "anyType"), ANY_TYPE);
        for &b in Builtin::ALL {
            let name = QName::new(XSD_NS, b.name());
            let mut facets = Facets::new(b.white_space());
            let variety = match b.list_item() {
                Some(item) => {
                    facets.min_length = Some(1);
                    Variety::List(builtin_id(item))
                }
                None => Variety::Atomic(b),
            };
            type_ix.insert(name.clone(), builtin_id(b));
            types.push(TypeDef::Simple(SimpleType {
                name: Some(name),
                base: Some(b.base().map_or(ANY_TYPE, builtin_id)),
                variety,
                facets,
            }));
        }
        SchemaSet {
            shapes: shape::Shapes::new(types.len()),
            types,
            elements: Vec::new(),
            type_ix,
            element_ix: HashMap::new(),
            attribute_ix: HashMap::new(),
        }
    }

    /// `xsd:anyType`: any attributes, any mixed content, processed laxly.
    fn any_type_def() -> ComplexType {
        let lax = Wildcard {
            namespaces: NsConstraint::Any,
            process: ProcessContents::Lax,
        };
        ComplexType {
            name: Some(QName::new(XSD_NS, "anyType")),
            base: None,
            derivation: Derivation::Restriction,
            is_abstract: false,
            content: Content::Complex {
                particle: Some(Particle {
                    min: 0,
                    max: MaxOccurs::Unbounded,
                    term: Term::Any(lax.clone()),
                }),
                mixed: true,
            },
            attributes: Vec::new(),
            any_attribute: Some(lax),
        }
    }

    /// True when a global element with this name is declared.
    pub fn has_element(&self, name: &QName) -> bool {
        self.element_ix.contains_key(name)
    }

    /// True when a global (named) type with this name exists, built-in XSD
    /// types included.
    pub fn has_type(&self, name: &QName) -> bool {
        self.type_ix.contains_key(name)
    }

    /// A global element declaration by name.
    pub fn element(&self, name: &QName) -> Option<(ElementId, &ElementDecl)> {
        let id = *self.element_ix.get(name)?;
        Some((id, self.element_decl(id)?))
    }

    /// Any element declaration (global or local) by id.
    pub fn element_decl(&self, id: ElementId) -> Option<&ElementDecl> {
        self.elements.get(id.index())
    }

    /// The declaration an element named `name` matches where declaration
    /// `id` stands: that declaration, or a member of its substitution group.
    pub(crate) fn decl_matching(&self, id: ElementId, name: &QName) -> Option<&ElementDecl> {
        let d = self.element_decl(id)?;
        if d.name == *name {
            return Some(d);
        }
        d.substitutes
            .iter()
            .filter_map(|s| self.element_decl(*s))
            .find(|s| s.name == *name)
    }

    /// A named type (built-ins included) by name.
    pub fn type_id(&self, name: &QName) -> Option<TypeId> {
        self.type_ix.get(name).copied()
    }

    /// Any type definition by id.
    pub fn type_def(&self, id: TypeId) -> Option<&TypeDef> {
        self.types.get(id.index())
    }

    /// A global attribute declaration by name (`xml:lang` and friends are
    /// always present).
    pub fn attribute(&self, name: &QName) -> Option<&AttributeDecl> {
        self.attribute_ix.get(name)
    }

    /// Global elements, sorted by name.
    pub fn global_elements(&self) -> Vec<(&QName, ElementId)> {
        let mut v: Vec<_> = self.element_ix.iter().map(|(q, &id)| (q, id)).collect();
        v.sort();
        v
    }

    /// Named user types (built-ins excluded), sorted by name.
    pub fn global_types(&self) -> Vec<(&QName, TypeId)> {
        let first_user = builtin_id(Builtin::ALL[Builtin::ALL.len() - 1]).index() + 1;
        let mut v: Vec<_> = self
            .type_ix
            .iter()
            .filter(|(_, id)| id.index() >= first_user)
            .map(|(q, &id)| (q, id))
            .collect();
        v.sort();
        v
    }

    /// True when `ty` is `base` or derives from it (by restriction or
    /// extension, through any number of steps).
    pub fn derives_from(&self, ty: TypeId, base: TypeId) -> bool {
        let mut t = Some(ty);
        // The chain is acyclic (checked at load); the bound is a guard.
        for _ in 0..=self.types.len() {
            match t {
                Some(x) if x == base => return true,
                Some(x) => t = self.type_def(x).and_then(TypeDef::base),
                None => return false,
            }
        }
        false
    }

    /// The nearest built-in ancestor of a simple type (its value space), or
    /// `None` for lists, unions and complex types.
    pub fn builtin_of(&self, ty: TypeId) -> Option<Builtin> {
        match self.type_def(ty)? {
            TypeDef::Simple(SimpleType {
                variety: Variety::Atomic(b),
                ..
            }) => Some(*b),
            _ => None,
        }
    }

    /// Validate `instance` as the global element `decl`.
    pub fn validate_element(&self, instance: &Element, decl: &QName) -> Vec<Violation> {
        self.validate_element_in(instance, decl, &NsScope::new())
    }

    /// Like [`validate_element`](Self::validate_element), with the namespace
    /// declarations in scope around `instance` (e.g. the SOAP envelope's),
    /// which `xsi:type` and QName values may use.
    pub fn validate_element_in(
        &self,
        instance: &Element,
        decl: &QName,
        outer: &NsScope,
    ) -> Vec<Violation> {
        validate::Validator::new(self, outer, None).root(instance, decl)
    }

    /// Validate `instance` (an rpc part accessor, whose own name is not
    /// checked) against the named type `ty`. `path` is the accessor's path.
    pub fn validate_typed(&self, instance: &Element, ty: &QName, path: &str) -> Vec<Violation> {
        self.validate_typed_in(instance, ty, path, &NsScope::new())
    }

    /// [`validate_typed`](Self::validate_typed) with an outer namespace scope.
    pub fn validate_typed_in(
        &self,
        instance: &Element,
        ty: &QName,
        path: &str,
        outer: &NsScope,
    ) -> Vec<Violation> {
        validate::Validator::new(self, outer, Some(path)).typed(instance, ty)
    }

    /// Check one value against a simple type, e.g. a mapping's static
    /// default. `Err` holds the rule it broke.
    pub fn check_simple_value(&self, ty: TypeId, value: &str) -> Result<(), String> {
        validate::Validator::new(self, &NsScope::new(), None).simple(ty, value)
    }
}
