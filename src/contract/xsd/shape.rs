//! The JSON shape of XSD types: which properties a complex type has (child
//! elements, `@attributes`, `#text`), how often each may occur, and how a
//! simple type's values look in JSON. JSON Schema derivation, JSON -> XML
//! and XML -> JSON all read the schema through this one view, so the three
//! can never disagree about a name or an occurrence range.
//!
//! The convention (documented in `mappings/README.md`):
//! - an element of complex type is an object; its child elements are
//!   properties named by local name, its attributes `@name`, and simple
//!   content (text next to attributes) `#text`;
//! - an element that may occur more than once is an array;
//! - an element of simple type (or of simple content without attributes) is
//!   a scalar: integer, number, boolean or string by its built-in type;
//!   list types are arrays of their items;
//! - `null` is `xsi:nil="true"` on a nillable element.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use crate::contract::xsd::{
    AttributeUsage, Builtin, ComplexType, Content, ElementDecl, MaxOccurs, Particle, SchemaSet,
    Term, TypeDef, TypeId, Variety,
};
use crate::xml::QName;

/// The property name of simple content next to attributes.
pub const TEXT_KEY: &str = "#text";
/// The prefix of attribute property names.
pub const ATTR_PREFIX: char = '@';

/// One child element of a complex type, flattened out of its model groups.
#[derive(Debug, Clone)]
pub(crate) struct Field {
    pub(crate) name: QName,
    pub(crate) type_id: TypeId,
    pub(crate) nillable: bool,
    pub(crate) fixed: Option<String>,
    /// Effective occurrence range, enclosing groups' ranges applied.
    pub(crate) min: u32,
    pub(crate) max: MaxOccurs,
    /// For children of a `choice`: (choice index within the type, branch).
    pub(crate) choice: Option<(usize, usize)>,
}

impl Field {
    pub(crate) fn from_decl(d: &ElementDecl, min: u32, max: MaxOccurs) -> Self {
        Field {
            name: d.name.clone(),
            type_id: d.type_id,
            nillable: d.nillable,
            fixed: d.fixed.clone(),
            min,
            max,
            choice: None,
        }
    }

    /// True when the JSON side is an array.
    pub(crate) fn repeated(&self) -> bool {
        self.max != MaxOccurs::Bounded(1) && self.max != MaxOccurs::Bounded(0)
    }
}

/// One `choice` of a complex type: its occurrence minimum and branch count.
#[derive(Debug, Clone)]
pub(crate) struct Choice {
    pub(crate) min: u32,
    pub(crate) branches: usize,
}

/// An attribute as a property.
#[derive(Debug, Clone)]
pub(crate) struct Attr {
    pub(crate) name: QName,
    pub(crate) type_id: TypeId,
    pub(crate) required: bool,
    pub(crate) default: Option<String>,
    pub(crate) fixed: Option<String>,
}

/// How a type looks in JSON.
#[derive(Debug, Clone)]
pub(crate) enum Shape {
    /// A scalar (or a list of scalars) of this simple type.
    Simple(TypeId),
    /// An object: attributes, optional simple content, child elements.
    Object {
        attrs: Vec<Attr>,
        text: Option<TypeId>,
        fields: Vec<Field>,
        choices: Vec<Choice>,
        /// What the flattening could not represent (e.g. a repeated
        /// sequence of several elements, a wildcard that must occur).
        unsupported: Vec<String>,
    },
    /// `xsd:anyType` and wildcards: any text.
    Any,
}

/// The shapes of a set's types, one cell per type, each worked out once, on
/// first use: every call maps requests and answers through them.
pub(crate) struct Shapes(Box<[OnceLock<Shape>]>);

impl Shapes {
    pub(crate) fn new(types: usize) -> Self {
        Shapes((0..types).map(|_| OnceLock::new()).collect())
    }
}

impl Clone for Shapes {
    /// A copy starts empty: shapes are derived from the set, not part of it.
    fn clone(&self) -> Self {
        Shapes::new(self.0.len())
    }
}

impl std::fmt::Debug for Shapes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shapes")
    }
}

const ANY: Shape = Shape::Any;

/// The shape of a type. `anyType` and unknown ids are [`Shape::Any`].
pub(crate) fn shape(set: &SchemaSet, ty: TypeId) -> &Shape {
    match set.shapes.0.get(ty.index()) {
        // Working out a shape never asks for another one, so a cell is
        // never initialised from inside its own initialisation.
        Some(cell) => cell.get_or_init(|| compute(set, ty)),
        None => &ANY,
    }
}

fn compute(set: &SchemaSet, ty: TypeId) -> Shape {
    match set.type_def(ty) {
        Some(TypeDef::Simple(_)) => Shape::Simple(ty),
        Some(TypeDef::Complex(c)) if c.base.is_none() => Shape::Any,
        Some(TypeDef::Complex(c)) => complex_shape(set, c),
        None => Shape::Any,
    }
}

fn complex_shape(set: &SchemaSet, c: &ComplexType) -> Shape {
    let attrs: Vec<Attr> = c
        .attributes
        .iter()
        .filter(|a| a.usage != AttributeUsage::Prohibited)
        .map(|a| Attr {
            name: a.name.clone(),
            type_id: a.type_id,
            required: a.usage == AttributeUsage::Required,
            default: a.default.clone(),
            fixed: a.fixed.clone(),
        })
        .collect();
    match &c.content {
        Content::Simple(st) if attrs.is_empty() => Shape::Simple(*st),
        Content::Simple(st) => Shape::Object {
            attrs,
            text: Some(*st),
            fields: Vec::new(),
            choices: Vec::new(),
            unsupported: Vec::new(),
        },
        Content::Complex { particle, .. } => {
            let mut flat = Flattener {
                set,
                fields: Vec::new(),
                choices: Vec::new(),
                unsupported: Vec::new(),
            };
            if let Some(p) = particle {
                flat.particle(p, 1, MaxOccurs::Bounded(1), None);
            }
            if c.is_abstract {
                // Only a derived type, named by xsi:type, can appear.
                flat.unsupported.push(
                    "an abstract type (abstract=\"true\"; its derived types are not offered)"
                        .to_string(),
                );
            }
            Shape::Object {
                attrs,
                text: None,
                fields: flat.fields,
                choices: flat.choices,
                unsupported: flat.unsupported,
            }
        }
    }
}

struct Flattener<'a> {
    set: &'a SchemaSet,
    fields: Vec<Field>,
    choices: Vec<Choice>,
    unsupported: Vec<String>,
}

fn mul_max(a: MaxOccurs, b: MaxOccurs) -> MaxOccurs {
    match (a, b) {
        (MaxOccurs::Bounded(x), MaxOccurs::Bounded(y)) => MaxOccurs::Bounded(x.saturating_mul(y)),
        _ => MaxOccurs::Unbounded,
    }
}

impl Flattener<'_> {
    /// Flatten `p` occurring `outer_min..outer_max` times, inside `choice`.
    fn particle(
        &mut self,
        p: &Particle,
        outer_min: u32,
        outer_max: MaxOccurs,
        choice: Option<(usize, usize)>,
    ) {
        let min = p.min.saturating_mul(outer_min);
        let max = mul_max(p.max, outer_max);
        match &p.term {
            Term::Element(id) => {
                let Some(d) = self.set.element_decl(*id) else {
                    return;
                };
                if d.is_abstract {
                    // Only a member of its substitution group can appear:
                    // an optional one is left out, a required one cannot
                    // be built.
                    if min > 0 {
                        self.unsupported.push(format!(
                            "an abstract element {} (its substitution group is not offered)",
                            d.name.local
                        ));
                    }
                    return;
                }
                let mut f = Field::from_decl(d, min, max);
                f.choice = choice;
                self.fields.push(f);
            }
            Term::Any(_) => {
                if min > 0 {
                    self.unsupported
                        .push("a wildcard (xsd:any) that must occur".to_string());
                }
            }
            Term::Sequence(ps) | Term::All(ps) => {
                let elements = ps.len();
                if max != MaxOccurs::Bounded(1) && elements > 1 {
                    self.unsupported.push(format!(
                        "a repeated group of {elements} particles (maxOccurs={})",
                        p.max
                    ));
                }
                for q in ps {
                    self.particle(q, min, max, choice);
                }
            }
            Term::Choice(ps) => {
                let index = self.choices.len();
                self.choices.push(Choice {
                    min,
                    branches: ps.len(),
                });
                for (b, q) in ps.iter().enumerate() {
                    // Within a choice nothing is required on its own: the
                    // choice's own minimum is checked separately.
                    self.particle(q, 0, max, Some((index, b)));
                }
            }
        }
    }
}

/// The types reachable from `roots` whose values no JSON answer can build:
/// the type has a construct the flattening cannot represent (see
/// [`Shape::Object`]'s `unsupported`), or a required child of such a type.
/// An optional element of one of them is simply left out of structured
/// output; a required one makes the response unfit for it. One walk over
/// the type graph; a type met again while it is being judged counts as
/// buildable (recursion adds nothing new).
pub(crate) fn unfillable_types(set: &SchemaSet, roots: &[TypeId]) -> HashSet<TypeId> {
    fn judge(set: &SchemaSet, ty: TypeId, state: &mut HashMap<TypeId, bool>) -> bool {
        if let Some(known) = state.get(&ty) {
            return *known;
        }
        state.insert(ty, false);
        let unfillable = match shape(set, ty) {
            Shape::Object {
                fields,
                unsupported,
                ..
            } => {
                let mut bad = !unsupported.is_empty();
                for f in fields {
                    // Every reachable type is judged, the optional ones too.
                    let child = judge(set, f.type_id, state);
                    bad |= child && f.min > 0 && f.choice.is_none();
                }
                bad
            }
            _ => false,
        };
        state.insert(ty, unfillable);
        unfillable
    }
    let mut state = HashMap::new();
    for &root in roots {
        judge(set, root, &mut state);
    }
    state
        .into_iter()
        .filter(|(_, bad)| *bad)
        .map(|(ty, _)| ty)
        .collect()
}

/// The JSON kind of a simple type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scalar {
    Integer,
    Number,
    Boolean,
    String,
}

/// What a simple type is in JSON: a scalar, a list of a simple type, or a
/// union of simple types.
#[derive(Debug, Clone)]
pub(crate) enum SimpleKind {
    Atomic(Builtin),
    List(TypeId),
    Union(Vec<TypeId>),
}

pub(crate) fn simple_kind(set: &SchemaSet, ty: TypeId) -> SimpleKind {
    match set.type_def(ty) {
        Some(TypeDef::Simple(s)) => match &s.variety {
            Variety::Atomic(b) => SimpleKind::Atomic(*b),
            Variety::List(item) => SimpleKind::List(*item),
            Variety::Union(members) => SimpleKind::Union(members.clone()),
        },
        // Complex types never reach here through `Shape::Simple`.
        _ => SimpleKind::Atomic(Builtin::String),
    }
}

pub(crate) fn scalar_of(b: Builtin) -> Scalar {
    if b.derives_from(Builtin::Integer) {
        Scalar::Integer
    } else if matches!(b, Builtin::Decimal | Builtin::Float | Builtin::Double) {
        Scalar::Number
    } else if b == Builtin::Boolean {
        Scalar::Boolean
    } else {
        Scalar::String
    }
}

/// The element declarations a path step may name below `ty`: its fields
/// (child elements) when it has element content.
pub(crate) fn fields_of(set: &SchemaSet, ty: TypeId) -> &[Field] {
    match shape(set, ty) {
        Shape::Object { fields, .. } => fields,
        _ => &[],
    }
}

/// The attributes of `ty` (empty for simple types).
pub(crate) fn attrs_of(set: &SchemaSet, ty: TypeId) -> &[Attr] {
    match shape(set, ty) {
        Shape::Object { attrs, .. } => attrs,
        _ => &[],
    }
}
