//! XSD -> JSON Schema, for structured output: the response payload's schema
//! becomes the input schema of a tool the model is forced to call.
//!
//! The JSON follows the convention in [`super::shape`]. Facets carry over:
//! enumerations (`enum`; of arrays for a list type, each literal split
//! into typed items), patterns (anchored; XSD-only regex syntax such as
//! `\i`/`\c` or class subtraction is left to the XSD check), lengths
//! (`minLength`/`maxLength`, `minItems`/`maxItems` for lists; the octets
//! of `hexBinary` and `base64Binary` as characters, exactly: two per octet
//! in hex, and in base64 one `anyOf` branch per amount of padding, with its
//! character bounds and a pattern of the padded end), numeric
//! ranges (`minimum`, `exclusiveMinimum`, ...), `fractionDigits`
//! (`multipleOf`) and `totalDigits` (a bound on the size; without
//! `fractionDigits`, one `anyOf` branch per number of fraction digits, so
//! the digits after the point count too), occurrence limits
//! (`minItems`/`maxItems`, `required`), `fixed` values (`const`), nillable
//! elements (`null` allowed). `xs:dateTime` and `xs:time` get a pattern
//! of XSD's lexical form beside their `format` (RFC 3339 takes a lower-case
//! `t` and `z`, second 60 and a 30th of February; XSD none of them). A
//! `choice` becomes `oneOf` branches.
//! A complex type used in more than one place, or recursively, is emitted
//! once under `$defs` and referenced, so the schema grows with the number
//! of types, never with the number of paths through them (a chain of
//! types each using the next twice would otherwise double at every link).
//! Definitions are named by the type's local name, with `_2`, `_3`… for
//! types of the same local name in other namespaces (or anonymous ones).
//!
//! Whatever the JSON Schema cannot say is still enforced: the tool input is
//! validated against the XSD after conversion, and violations are fed back
//! to the model.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value, json};

use super::payload::PayloadShape;
use super::shape::{
    ATTR_PREFIX, Choice, Field, Scalar, Shape, SimpleKind, TEXT_KEY, scalar_of, shape, simple_kind,
    unfillable_types,
};
use crate::contract::Payload;
use crate::contract::xsd::{Builtin, MaxOccurs, SchemaSet, TypeDef, TypeId};
use crate::xml::QName;

/// The JSON Schema of the value of global element `name` (an object for a
/// complex type, a scalar schema for a simple one). An unknown element gives
/// `{}` (anything).
pub fn for_element(set: &SchemaSet, name: &QName) -> Value {
    let Some((_, d)) = set.element(name) else {
        return json!({});
    };
    let field = Field::from_decl(d, 1, MaxOccurs::Bounded(1));
    let mut g = Gen::new(set, &[field.type_id]);
    let body = g.element_value(&field);
    g.finish(body)
}

/// The JSON Schema of the value of type `ty`.
pub fn for_type(set: &SchemaSet, ty: TypeId) -> Value {
    let mut g = Gen::new(set, &[ty]);
    let body = g.type_schema(ty);
    g.finish(body)
}

/// The JSON Schema of a whole payload (see [`super::payload`]): always an
/// object, as tool inputs must be. `None` when the payload names a
/// declaration the schemas lack.
pub fn for_payload(set: &SchemaSet, payload: &Payload) -> Option<Value> {
    let shape = PayloadShape::of(set, payload)?;
    Some(for_payload_shape(set, &shape))
}

pub(crate) fn for_payload_shape(set: &SchemaSet, shape: &PayloadShape) -> Value {
    let body_of = |g: &mut Gen<'_>| match shape {
        PayloadShape::Element(f) => g.element_value(f),
        PayloadShape::Fields { fields, .. } => g.object(&[], None, fields, &[]),
    };
    let roots: Vec<TypeId> = match shape {
        PayloadShape::Element(f) => vec![f.type_id],
        PayloadShape::Fields { fields, .. } => fields.iter().map(|f| f.type_id).collect(),
    };
    let mut g = Gen::new(set, &roots);
    let body = body_of(&mut g);
    g.finish(body)
}

/// One choice branch's properties and required keys.
type Branch = (Map<String, Value>, Vec<Value>);

struct Gen<'a> {
    set: &'a SchemaSet,
    /// Complex types being expanded, to spot recursion.
    stack: Vec<TypeId>,
    /// Complex types referenced from more than one place: always `$ref`s.
    shared: HashSet<TypeId>,
    /// Types emitted under `$defs`, by name, once generated.
    defs: Map<String, Value>,
    /// Types no JSON answer can build: optional elements of them are left
    /// out.
    unfillable: HashSet<TypeId>,
    /// Types given a definition, and their names.
    names: HashMap<TypeId, String>,
    /// Definitions named and not generated yet.
    pending: Vec<TypeId>,
}

impl<'a> Gen<'a> {
    /// A generator for a schema whose values start at `roots`.
    fn new(set: &'a SchemaSet, roots: &[TypeId]) -> Self {
        Gen {
            set,
            stack: Vec::new(),
            shared: shared_types(set, roots),
            unfillable: unfillable_types(set, roots),
            defs: Map::new(),
            names: HashMap::new(),
            pending: Vec::new(),
        }
    }

    /// `#/$defs/<name>` for `ty`, naming it (and queueing its definition)
    /// on first use.
    fn reference(&mut self, ty: TypeId) -> Value {
        let name = match self.names.get(&ty) {
            Some(name) => name.clone(),
            None => {
                let base = match self.set.type_def(ty).and_then(TypeDef::name) {
                    Some(q) => q.local.clone(),
                    None => "type".to_string(),
                };
                let taken: HashSet<&String> = self.names.values().collect();
                let name = std::iter::once(base.clone())
                    .chain((2..).map(|n| format!("{base}_{n}")))
                    .find(|n| !taken.contains(n))
                    .unwrap_or(base);
                self.names.insert(ty, name.clone());
                self.pending.push(ty);
                name
            }
        };
        json!({ "$ref": format!("#/$defs/{name}") })
    }

    fn finish(mut self, mut body: Value) -> Value {
        // Generating a definition may name further ones.
        while let Some(ty) = self.pending.pop() {
            self.stack.push(ty);
            let s = self.complex_body(ty);
            self.stack.pop();
            let name = self.names[&ty].clone();
            self.defs.insert(name, s);
        }
        if !self.defs.is_empty()
            && let Value::Object(map) = &mut body
        {
            let mut defs = std::mem::take(&mut self.defs);
            defs.sort_keys();
            map.insert("$defs".into(), Value::Object(defs));
        }
        body
    }

    /// The schema of one occurrence of an element (without array wrapping).
    fn element_value(&mut self, f: &Field) -> Value {
        let mut s = self.type_schema(f.type_id);
        if let Some(fixed) = &f.fixed
            && let Shape::Simple(st) = shape(self.set, f.type_id)
        {
            s = json!({ "const": typed_literal(self.set, *st, fixed) });
        }
        // A nil element keeps its attributes, and JSON null has none: a
        // type with a required attribute cannot be answered as null.
        if f.nillable && !required_attributes(self.set, f.type_id) {
            s = nullable(s);
        }
        s
    }

    /// The schema of a property for a field: an array when it repeats.
    fn field_schema(&mut self, f: &Field) -> Value {
        let one = self.element_value(f);
        if !f.repeated() {
            return one;
        }
        let mut a = json!({ "type": "array", "items": one });
        if f.min > 0 {
            a["minItems"] = json!(f.min);
        }
        if let MaxOccurs::Bounded(n) = f.max {
            a["maxItems"] = json!(n);
        }
        a
    }

    fn type_schema(&mut self, ty: TypeId) -> Value {
        match shape(self.set, ty) {
            Shape::Simple(st) => self.simple(*st),
            Shape::Any => json!({}),
            Shape::Object { .. } => {
                if self.shared.contains(&ty) || self.stack.contains(&ty) {
                    return self.reference(ty);
                }
                self.stack.push(ty);
                let s = self.complex_body(ty);
                self.stack.pop();
                s
            }
        }
    }

    fn complex_body(&mut self, ty: TypeId) -> Value {
        match shape(self.set, ty) {
            Shape::Object {
                attrs,
                text,
                fields,
                choices,
                ..
            } => self.object(attrs, *text, fields, choices),
            Shape::Simple(st) => self.simple(*st),
            Shape::Any => json!({}),
        }
    }

    fn object(
        &mut self,
        attrs: &[super::shape::Attr],
        text: Option<TypeId>,
        fields: &[Field],
        choices: &[Choice],
    ) -> Value {
        let mut props = Map::new();
        let mut required = Vec::new();
        for a in attrs {
            let key = format!("{ATTR_PREFIX}{}", a.name.local);
            let s = match &a.fixed {
                Some(v) => json!({ "const": typed_literal(self.set, a.type_id, v) }),
                None => self.simple(a.type_id),
            };
            props.insert(key.clone(), s);
            if a.required {
                required.push(Value::String(key));
            }
        }
        if let Some(st) = text {
            props.insert(TEXT_KEY.into(), self.simple(st));
            required.push(Value::String(TEXT_KEY.into()));
        }
        // Choice branches go into `oneOf`, not the base properties: a
        // generator (or a model) then fills one branch only.
        let mut branches: Vec<Vec<Branch>> = choices
            .iter()
            .map(|c| vec![(Map::new(), Vec::new()); c.branches])
            .collect();
        for f in fields {
            // An optional element no answer can build (an extension point
            // whose content is a required wildcard) is left out.
            if f.min == 0 && self.unfillable.contains(&f.type_id) {
                continue;
            }
            let s = self.field_schema(f);
            let key = f.name.local.clone();
            match f.choice {
                None => {
                    props.insert(key.clone(), s);
                    if f.min > 0 {
                        required.push(Value::String(key));
                    }
                }
                Some((c, b)) => {
                    if let Some((bp, br)) = branches.get_mut(c).and_then(|bs| bs.get_mut(b)) {
                        bp.insert(key.clone(), s);
                        // A branch that is chosen needs its own first
                        // element: that is what choosing it means.
                        if br.is_empty() {
                            br.push(Value::String(key));
                        }
                    }
                }
            }
        }
        let mut o = Map::new();
        o.insert("type".into(), json!("object"));
        o.insert("properties".into(), Value::Object(props));
        if !required.is_empty() {
            o.insert("required".into(), Value::Array(required));
        }
        let mut all_of = Vec::new();
        for (c, bs) in choices.iter().zip(branches) {
            let mut one_of: Vec<Value> = bs
                .into_iter()
                .filter(|(p, _)| !p.is_empty())
                .map(|(p, r)| json!({ "properties": p, "required": r }))
                .collect();
            if c.min == 0 {
                // Nothing chosen is allowed too: none of the branch keys.
                let keys: Vec<Value> = one_of
                    .iter()
                    .filter_map(|b| b["required"].get(0).cloned())
                    .collect();
                one_of.push(json!({ "not": { "anyOf": keys.iter().map(|k| json!({ "required": [k] })).collect::<Vec<_>>() } }));
            }
            if !one_of.is_empty() {
                all_of.push(json!({ "oneOf": one_of }));
            }
        }
        match all_of.len() {
            0 => {
                o.insert("additionalProperties".into(), json!(false));
            }
            1 => {
                if let Some(Value::Object(first)) = all_of.pop() {
                    o.extend(first);
                }
            }
            _ => {
                o.insert("allOf".into(), Value::Array(all_of));
            }
        }
        Value::Object(o)
    }

    fn simple(&mut self, st: TypeId) -> Value {
        let facets = match self.set.type_def(st) {
            Some(TypeDef::Simple(s)) => s.facets.clone(),
            _ => return json!({ "type": "string" }),
        };
        match simple_kind(self.set, st) {
            SimpleKind::List(item) => {
                let mut s = json!({ "type": "array", "items": self.simple(item) });
                if let Some(n) = facets.length {
                    s["minItems"] = json!(n);
                    s["maxItems"] = json!(n);
                }
                if let Some(n) = facets.min_length {
                    s["minItems"] = json!(n);
                }
                if let Some(n) = facets.max_length {
                    s["maxItems"] = json!(n);
                }
                // An enumerated list is one of whole lists: each literal
                // split on whitespace into items typed as the item type.
                if let Some(e) = &facets.enumeration {
                    let lists: Vec<Value> = e
                        .iter()
                        .map(|v| {
                            let items = v.split_whitespace();
                            Value::Array(items.map(|i| typed_literal(self.set, item, i)).collect())
                        })
                        .collect();
                    s = json!({ "type": "array", "enum": lists });
                }
                s
            }
            SimpleKind::Union(members) => {
                let any: Vec<Value> = members.iter().map(|m| self.simple(*m)).collect();
                let mut s = json!({ "anyOf": any });
                if let Some(e) = &facets.enumeration {
                    s = json!({ "enum": e });
                }
                s
            }
            SimpleKind::Atomic(b) => atomic(self.set, st, b, &facets),
        }
    }
}

/// Whether values of `ty` must carry an attribute.
pub(crate) fn required_attributes(set: &SchemaSet, ty: TypeId) -> bool {
    matches!(shape(set, ty), Shape::Object { attrs, .. } if attrs.iter().any(|a| a.required))
}

/// The complex types reachable from `roots` that are referenced from more
/// than one place (two fields, two types, or a root and a field; a type's
/// fields of its own type do not count): one walk over the type graph,
/// each type's fields read once.
fn shared_types(set: &SchemaSet, roots: &[TypeId]) -> HashSet<TypeId> {
    let is_object = |ty: TypeId| matches!(shape(set, ty), Shape::Object { .. });
    let mut uses: HashMap<TypeId, u32> = HashMap::new();
    let mut todo: Vec<TypeId> = Vec::new();
    let mut count = |ty: TypeId, todo: &mut Vec<TypeId>| {
        let n = uses.entry(ty).or_insert(0);
        *n += 1;
        if *n == 1 {
            todo.push(ty);
        }
    };
    for &root in roots.iter().filter(|t| is_object(**t)) {
        count(root, &mut todo);
    }
    while let Some(ty) = todo.pop() {
        if let Shape::Object { fields, .. } = shape(set, ty) {
            // A type's use of itself is recursion, met on the stack.
            for f in fields
                .iter()
                .filter(|f| f.type_id != ty && is_object(f.type_id))
            {
                count(f.type_id, &mut todo);
            }
        }
    }
    uses.into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(ty, _)| ty)
        .collect()
}

fn atomic(set: &SchemaSet, st: TypeId, b: Builtin, f: &crate::contract::xsd::Facets) -> Value {
    let scalar = scalar_of(b);
    let mut s = Map::new();
    if let Some(e) = &f.enumeration {
        let values: Vec<Value> = e.iter().map(|v| typed_literal(set, st, v)).collect();
        s.insert("enum".into(), Value::Array(values));
        if scalar != Scalar::String {
            s.insert("type".into(), json!(type_name(scalar)));
        }
        return Value::Object(s);
    }
    let scalar = if scalar == Scalar::Number && f.fraction_digits == Some(0) {
        Scalar::Integer
    } else {
        scalar
    };
    s.insert("type".into(), json!(type_name(scalar)));
    match scalar {
        Scalar::String => {
            if b == Builtin::HexBinary {
                // Octets, two hex digits each.
                if let Some(n) = f.length.or(f.min_length) {
                    s.insert("minLength".into(), json!(n.saturating_mul(2)));
                }
                if let Some(n) = f.length.or(f.max_length) {
                    s.insert("maxLength".into(), json!(n.saturating_mul(2)));
                }
            }
            if b != Builtin::Base64Binary && b != Builtin::HexBinary {
                if let Some(n) = f.length {
                    s.insert("minLength".into(), json!(n));
                    s.insert("maxLength".into(), json!(n));
                }
                if let Some(n) = f.min_length {
                    s.insert("minLength".into(), json!(n));
                }
                if let Some(n) = f.max_length {
                    s.insert("maxLength".into(), json!(n));
                }
            }
            let patterns: Vec<String> = f
                .patterns
                .iter()
                .filter_map(|step| json_pattern(&step.sources))
                .collect();
            match patterns.len() {
                0 => {}
                1 => {
                    s.insert("pattern".into(), json!(patterns[0]));
                }
                _ => {
                    let all: Vec<Value> =
                        patterns.iter().map(|p| json!({ "pattern": p })).collect();
                    s.insert("allOf".into(), Value::Array(all));
                }
            }
            if b == Builtin::Base64Binary {
                let lo = f.length.or(f.min_length);
                let hi = f.length.or(f.max_length);
                if lo.is_some() || hi.is_some() {
                    base64_lengths(&mut s, lo.unwrap_or(0), hi);
                }
            }
            if let Some(fmt) = format_of(b) {
                s.insert("format".into(), json!(fmt));
            }
            if b == Builtin::Base64Binary {
                s.insert("contentEncoding".into(), json!("base64"));
            }
            if f.patterns.is_empty()
                && f.enumeration.is_none()
                && !s.contains_key("anyOf")
                && !s.contains_key("pattern")
                && let Some(p) = builtin_pattern(b)
            {
                s.insert("pattern".into(), json!(p));
            } else if f.enumeration.is_none()
                && let Some(p) = lexical_pattern(b)
            {
                // Beside the type's own patterns: they narrow the lexical
                // space, they do not replace it.
                add_pattern(&mut s, p);
            }
            let mut notes = Vec::new();
            for (name, v) in [
                ("minInclusive", &f.min_inclusive),
                ("maxInclusive", &f.max_inclusive),
                ("minExclusive", &f.min_exclusive),
                ("maxExclusive", &f.max_exclusive),
            ] {
                if let Some(v) = v {
                    notes.push(format!("{name} {v}"));
                }
            }
            if !notes.is_empty() {
                s.insert("description".into(), json!(notes.join(", ")));
            }
        }
        Scalar::Integer | Scalar::Number => {
            for (key, v) in [
                ("minimum", &f.min_inclusive),
                ("maximum", &f.max_inclusive),
                ("exclusiveMinimum", &f.min_exclusive),
                ("exclusiveMaximum", &f.max_exclusive),
            ] {
                if let Some(n) = v.as_deref().and_then(number_literal) {
                    s.insert(key.into(), n);
                }
            }
            if let Some((lo, hi)) = builtin_range(b) {
                if !s.contains_key("minimum") && !s.contains_key("exclusiveMinimum") {
                    s.insert("minimum".into(), json!(lo));
                }
                if !s.contains_key("maximum") && !s.contains_key("exclusiveMaximum") {
                    s.insert("maximum".into(), json!(hi));
                }
            }
            if scalar == Scalar::Number
                && let Some(fd) = f.fraction_digits.filter(|&d| d > 0 && d <= 12)
            {
                s.insert("multipleOf".into(), decimal_step(fd));
            }
            if let Some(td) = f.total_digits.filter(|&td| td > 0)
                && scalar == Scalar::Number
                && f.fraction_digits.is_none()
            {
                total_digits_split(&mut s, td);
            } else if let Some(td) = f.total_digits {
                let fd = f.fraction_digits.unwrap_or(0).min(td);
                let int_digits = i32::try_from(td - fd).unwrap_or(i32::MAX).min(300);
                let bound = 10f64.powi(int_digits);
                if !s.contains_key("maximum") && !s.contains_key("exclusiveMaximum") {
                    s.insert("exclusiveMaximum".into(), float(bound));
                }
                if !s.contains_key("minimum") && !s.contains_key("exclusiveMinimum") {
                    s.insert("exclusiveMinimum".into(), float(-bound));
                }
            }
        }
        Scalar::Boolean => {}
    }
    Value::Object(s)
}

/// Fraction digits the branches of [`total_digits_split`] go up to: a
/// JSON number (an f64) carries about 16 significant digits, so a finer
/// step would not be read back as written.
const MAX_SPLIT_FRACTION: u32 = 15;

/// `totalDigits` of a decimal without `fractionDigits`: at most `td`
/// digits in all, wherever the point falls. A value with `k` fraction
/// digits (trailing zeros aside) is a multiple of `10^-k`, and then has
/// at most `td - k` integer digits exactly when it is below `10^(td-k)`
/// in size: one `anyOf` branch per `k`, which together hold exactly (up to
/// 15 fraction digits; finer values are refused, which the XSD need not
/// do). The branch of two fraction digits comes first: generators take
/// the first branch, and money-like values read best.
fn total_digits_split(s: &mut Map<String, Value>, td: u32) {
    let last = td.min(MAX_SPLIT_FRACTION);
    let first = last.min(2);
    let order = std::iter::once(first).chain((0..=last).filter(|&k| k != first));
    let branches: Vec<Value> = order
        .map(|k| {
            let int_digits = i32::try_from(td - k).unwrap_or(i32::MAX).min(300);
            let bound = 10f64.powi(int_digits);
            let step = if k == 0 { json!(1) } else { decimal_step(k) };
            json!({
                "multipleOf": step,
                "exclusiveMinimum": float(-bound),
                "exclusiveMaximum": float(bound),
            })
        })
        .collect();
    s.insert("anyOf".into(), Value::Array(branches));
}

fn type_name(s: Scalar) -> &'static str {
    match s {
        Scalar::Integer => "integer",
        Scalar::Number => "number",
        Scalar::Boolean => "boolean",
        Scalar::String => "string",
    }
}

/// The lexical space of built-ins whose values are not free text, so a
/// model (or a generator) writes values the XSD check accepts. ASCII
/// subsets where XSD allows more (names): stricter is safe here.
fn builtin_pattern(b: Builtin) -> Option<&'static str> {
    Some(match b {
        Builtin::Language => "^[a-zA-Z]{1,8}(-[a-zA-Z0-9]{1,8})*$",
        Builtin::NCName | Builtin::Id | Builtin::IdRef | Builtin::Entity | Builtin::QName => {
            "^[A-Za-z_][A-Za-z0-9._-]*$"
        }
        Builtin::Name => "^[A-Za-z_:][A-Za-z0-9._:-]*$",
        Builtin::NmToken => "^[A-Za-z0-9._:-]+$",
        Builtin::GYear => "^[0-9]{4}$",
        Builtin::GYearMonth => "^[0-9]{4}-(0[1-9]|1[0-2])$",
        Builtin::GMonth => "^--(0[1-9]|1[0-2])$",
        Builtin::GDay => "^---(0[1-9]|1[0-9]|2[0-8])$",
        Builtin::GMonthDay => "^--(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])$",
        Builtin::DateTime | Builtin::Time => return lexical_pattern(b),
        Builtin::HexBinary => "^([0-9a-fA-F]{2})*$",
        Builtin::Base64Binary => {
            "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?$"
        }
        _ => return None,
    })
}

// Pieces of XSD 1.0's date and time forms, as the XSD check reads them.
/// A year: four digits or more (18 at most), no leading zero beyond four,
/// never 0000.
macro_rules! year {
    () => {
        "-?(?:[1-9][0-9]{3,17}|0(?:[1-9][0-9]{2}|0[1-9][0-9]|00[1-9]))"
    };
}
/// A leap year: divisible by 4 and not by 100, or by 400.
macro_rules! leap_year {
    () => {
        concat!(
            "-?(?:(?:[1-9][0-9]{1,15}|0[0-9])(?:0[48]|[2468][048]|[13579][26])",
            "|(?:[1-9][0-9]{0,13}(?:[02468][048]|[13579][26])|0[48]|[2468][048]|[13579][26])00)"
        )
    };
}
/// A date: the days each month has, the 29th of February in leap years.
macro_rules! date {
    () => {
        concat!(
            "(?:",
            year!(),
            "-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])",
            "|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))",
            "|",
            leap_year!(),
            "-02-29)"
        )
    };
}
/// A time of day: no leap second; 24:00:00 is the end of the day.
macro_rules! time {
    () => {
        "(?:(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]+)?|24:00:00(?:\\.0+)?)"
    };
}
/// An optional time zone: upper-case `Z`, or an offset up to 14:00.
macro_rules! zone {
    () => {
        "(?:Z|[+-](?:(?:0[0-9]|1[0-3]):[0-5][0-9]|14:00))?"
    };
}

/// The exact lexical form of date/time built-ins whose `format` is looser
/// than XSD: RFC 3339 (`date-time`, `time`) takes a lower-case `t` and
/// `z`, second 60 and any day up to 31, and formats are often not checked
/// at all. Applies beside the type's own patterns.
fn lexical_pattern(b: Builtin) -> Option<&'static str> {
    Some(match b {
        Builtin::DateTime => concat!("^", date!(), "T", time!(), zone!(), "$"),
        Builtin::Time => concat!("^", time!(), zone!(), "$"),
        _ => return None,
    })
}

/// Adds `p` to the patterns of `s`, which must all match.
fn add_pattern(s: &mut Map<String, Value>, p: &str) {
    let mine = json!({ "pattern": p });
    match (s.remove("pattern"), s.get_mut("allOf")) {
        (Some(old), _) => {
            s.insert("allOf".into(), json!([{ "pattern": old }, mine]));
        }
        (None, Some(Value::Array(all))) => all.push(mine),
        (None, _) => {
            s.insert("pattern".into(), json!(p));
        }
    }
}

/// Base64 of `lo..=hi` octets, exactly, in characters. Four characters
/// carry three octets, less one for each `=` of padding, and the bits a
/// padded quadruple leaves over must be zero (`QQ==`, never `QR==`). So
/// the octet count decides the length and the padding together: one
/// branch per remainder modulo 3 (none, `==`, `=`), each with its
/// character bounds and a pattern of its final quadruple. Counts of
/// quadruples up to 256 are also written into the pattern (`{2,5}`), which
/// a generator can meet directly; longer ones are left to the lengths, as
/// counted repetitions that large cost regex engines their size limits.
fn base64_lengths(s: &mut Map<String, Value>, lo: u64, hi: Option<u64>) {
    const QUAD: &str = "[A-Za-z0-9+/]{4}";
    // Remainder, padded tail: `r` octets more than a multiple of three.
    let tails = [
        (0u64, ""),
        (1, "[A-Za-z0-9+/][AQgw]=="),
        (2, "[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]="),
    ];
    let mut branches = Vec::new();
    for (r, tail) in tails {
        // Octets 3k + r within lo..=hi: k from ceil((lo - r) / 3).
        let first = lo.saturating_sub(r).div_ceil(3);
        let last = match hi {
            Some(hi) if hi < r => continue,
            Some(hi) => Some((hi - r) / 3),
            None => None,
        };
        if last.is_some_and(|last| last < first) {
            continue;
        }
        let quads = |k: u64| k.saturating_mul(4) + if r == 0 { 0 } else { 4 };
        let count = match (first, last) {
            (0, Some(0)) => String::new(),
            (1, Some(1)) => QUAD.to_string(),
            (a, Some(b)) if a == b && b <= 256 => format!("(?:{QUAD}){{{a}}}"),
            (a, Some(b)) if b <= 256 => format!("(?:{QUAD}){{{a},{b}}}"),
            (a, _) if a > 0 && a <= 256 => format!("(?:{QUAD}){{{a},}}"),
            _ => format!("(?:{QUAD})*"),
        };
        let mut b = Map::new();
        b.insert("minLength".into(), json!(quads(first)));
        if let Some(last) = last {
            b.insert("maxLength".into(), json!(quads(last)));
        }
        b.insert("pattern".into(), json!(format!("^{count}{tail}$")));
        branches.push(Value::Object(b));
    }
    match branches.len() {
        0 => {
            // No octet count fits (the facets contradict each other).
            s.insert("not".into(), json!({}));
        }
        1 if !s.contains_key("pattern") && !s.contains_key("allOf") => {
            if let Some(Value::Object(b)) = branches.pop() {
                s.extend(b);
            }
        }
        _ => {
            s.insert("anyOf".into(), Value::Array(branches));
        }
    }
}

fn format_of(b: Builtin) -> Option<&'static str> {
    match b {
        Builtin::Date => Some("date"),
        Builtin::DateTime => Some("date-time"),
        Builtin::Time => Some("time"),
        Builtin::Duration => Some("duration"),
        Builtin::AnyUri => Some("uri"),
        _ => None,
    }
}

/// The value range of the bounded integer built-ins.
fn builtin_range(b: Builtin) -> Option<(i64, i64)> {
    Some(match b {
        Builtin::Byte => (i8::MIN.into(), i8::MAX.into()),
        Builtin::Short => (i16::MIN.into(), i16::MAX.into()),
        Builtin::Int => (i32::MIN.into(), i32::MAX.into()),
        Builtin::UnsignedByte => (0, u8::MAX.into()),
        Builtin::UnsignedShort => (0, u16::MAX.into()),
        Builtin::UnsignedInt => (0, u32::MAX.into()),
        Builtin::PositiveInteger => (1, i64::MAX),
        Builtin::NonNegativeInteger | Builtin::UnsignedLong => (0, i64::MAX),
        Builtin::NegativeInteger => (i64::MIN, -1),
        Builtin::NonPositiveInteger => (i64::MIN, 0),
        _ => return None,
    })
}

fn float(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        json!(v as i64)
    } else {
        serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
    }
}

/// `10^-digits` as a JSON number written the way a person would (0.01).
fn decimal_step(digits: u32) -> Value {
    let text = format!("0.{}1", "0".repeat(digits.saturating_sub(1) as usize));
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// A numeric facet value as a JSON number, if it is one.
fn number_literal(v: &str) -> Option<Value> {
    let v = v.trim();
    if let Ok(i) = v.parse::<i64>() {
        return Some(json!(i));
    }
    let f: f64 = v.parse().ok()?;
    f.is_finite().then(|| float(f))
}

/// An enumeration or fixed value typed as the JSON side would carry it.
pub(crate) fn typed_literal(set: &SchemaSet, st: TypeId, v: &str) -> Value {
    let b = match simple_kind(set, st) {
        SimpleKind::Atomic(b) => b,
        _ => return json!(v),
    };
    match scalar_of(b) {
        Scalar::Integer | Scalar::Number => number_literal(v).unwrap_or_else(|| json!(v)),
        Scalar::Boolean => match v.trim() {
            "true" | "1" => json!(true),
            "false" | "0" => json!(false),
            _ => json!(v),
        },
        Scalar::String => json!(v),
    }
}

/// One derivation step's XSD patterns (OR-ed) as an anchored JSON Schema
/// (ECMA 262) pattern, or `None` when they use XSD-only syntax. XSD
/// patterns are implicitly anchored and treat `^`/`$` as plain characters.
fn json_pattern(sources: &[String]) -> Option<String> {
    if !sources.iter().all(|p| ecma_compatible(p)) {
        return None;
    }
    let alts: Vec<&str> = sources.iter().map(String::as_str).collect();
    Some(format!("^(?:{})$", alts.join("|")))
}

/// True when an XSD regex means the same in ECMA 262 once anchored: no
/// XSD-only escapes (`\i`, `\c`, `\p{IsBlock}`), no class subtraction
/// (`[a-z-[aeiou]]`), and no `^`/`$` outside classes (plain characters in
/// XSD, anchors in ECMA).
fn ecma_compatible(p: &str) -> bool {
    let mut chars = p.chars().peekable();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('i' | 'I' | 'c' | 'C') => return false,
                Some('p' | 'P') if chars.peek() == Some(&'{') => {
                    let name: String = chars.by_ref().take_while(|&c| c != '}').collect();
                    if name.starts_with("{Is") {
                        return false;
                    }
                }
                Some(_) => {}
                None => return false,
            },
            '[' if !in_class => {
                in_class = true;
                if chars.peek() == Some(&'^') {
                    chars.next();
                }
            }
            '-' if in_class && chars.peek() == Some(&'[') => return false,
            ']' if in_class => in_class = false,
            '^' | '$' if !in_class => return false,
            _ => {}
        }
    }
    true
}

/// Wrap a schema so that `null` is accepted too.
fn nullable(s: Value) -> Value {
    match s {
        Value::Object(mut m)
            if matches!(m.get("type"), Some(Value::String(_)))
                && !m.contains_key("enum")
                && !m.contains_key("const") =>
        {
            let t = m.remove("type").unwrap_or(Value::Null);
            m.insert("type".into(), json!([t, "null"]));
            Value::Object(m)
        }
        other => json!({ "anyOf": [other, { "type": "null" }] }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xsd_patterns_that_differ_in_ecma_are_left_out() {
        let p = |s: &str| json_pattern(&[s.to_string()]);
        assert_eq!(p("CC-[0-9]{4}"), Some("^(?:CC-[0-9]{4})$".into()));
        assert_eq!(p("[^,]+"), Some("^(?:[^,]+)$".into()));
        assert_eq!(p("[a-z-[aeiou]]+"), None);
        assert_eq!(p("\\i\\c*"), None);
        assert_eq!(p("\\p{IsBasicLatin}+"), None);
        assert_eq!(p("\\p{Lu}+"), Some("^(?:\\p{Lu}+)$".into()));
        assert_eq!(p("a$b"), None);
        assert_eq!(
            json_pattern(&["a".to_string(), "b+".to_string()]),
            Some("^(?:a|b+)$".into())
        );
    }

    #[test]
    fn decimal_steps_read_like_people_write_them() {
        assert_eq!(decimal_step(2), json!(0.01));
        assert_eq!(decimal_step(3), json!(0.001));
    }
}
