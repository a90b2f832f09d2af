//! XSD -> JSON Schema, for structured output: the response payload's schema
//! becomes the input schema of a tool the model is forced to call.
//!
//! The JSON follows the convention in [`super::shape`]. Facets carry over:
//! enumerations (`enum`; of arrays for a list type, each literal split
//! into typed items), patterns (anchored, in ECMA 262's syntax with the
//! meaning XSD gives them: `\s`, `\d`, `\w`, `\i`, `\c`, `.`, `^`/`$` and
//! class subtraction are written as the classes they stand for; a pattern
//! with a block escape, or a class too large to write out, is left to the
//! XSD check, see [`ecma_regex`]), lengths
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
/// pattern, or `None` when one of them cannot be said there (see
/// [`ecma_regex`]). XSD patterns are implicitly anchored.
fn json_pattern(sources: &[String]) -> Option<String> {
    let alts = sources
        .iter()
        .map(|p| ecma_regex(p))
        .collect::<Option<Vec<String>>>()?;
    let pattern = format!("^(?:{})$", alts.join("|"));
    // The emulator and most validators read patterns with the `regex`
    // crate's parser: what it cannot read would be lost there.
    regex_syntax::Parser::new().parse(&pattern).ok()?;
    Some(pattern)
}

/// A set of characters: general categories, then ranges.
type CharSet = (&'static [&'static str], &'static [(char, char)]);

/// The characters `\i` allows: XML 1.0 (second edition) name start
/// characters as the XSD check reads them (categories, then single
/// characters and ranges).
const NAME_START: CharSet = (
    &["Lu", "Ll", "Lt", "Lo"],
    &[
        (':', ':'),
        ('_', '_'),
        ('\u{3007}', '\u{3007}'),
        ('\u{3021}', '\u{3029}'),
    ],
);
/// The further characters `\c` allows: digits, combining marks, `.`, `-`
/// and XML 1.0's extenders.
const NAME_EXTRA: CharSet = (
    &["Nd", "Mn", "Mc"],
    &[
        ('-', '-'),
        ('.', '.'),
        ('\u{B7}', '\u{B7}'),
        ('\u{2D0}', '\u{2D1}'),
        ('\u{387}', '\u{387}'),
        ('\u{640}', '\u{640}'),
        ('\u{E46}', '\u{E46}'),
        ('\u{EC6}', '\u{EC6}'),
        ('\u{3005}', '\u{3005}'),
        ('\u{3031}', '\u{3035}'),
        ('\u{309D}', '\u{309E}'),
        ('\u{30FC}', '\u{30FE}'),
    ],
);

/// The general categories XSD's `\p{..}` names (ECMA 262 knows them all).
const CATEGORIES: &[&str] = &[
    "L", "Lu", "Ll", "Lt", "Lm", "Lo", "M", "Mn", "Mc", "Me", "N", "Nd", "Nl", "No", "P", "Pc",
    "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Z", "Zs", "Zl", "Zp", "S", "Sm", "Sc", "Sk", "So", "C",
    "Cc", "Cf", "Co", "Cn",
];

/// A class written out as ranges is given up past this size: the tool
/// schema is read by a model, token by token.
const MAX_CLASS_TEXT: usize = 4096;

/// One XSD pattern (XML Schema Part 2, appendix F) in ECMA 262's syntax as
/// JSON Schema reads it (Unicode-aware, the `u` flag), meaning the same:
///
/// - `^` and `$` are plain characters in XSD: `\^`, `\$`; `.` excludes
///   only `\n` and `\r`: `[^\n\r]`;
/// - `\s` is four characters, `[\t\n\r ]` (ECMA's `\s` is Unicode's
///   spaces); `\d` is any script's digit, `\p{Nd}` (ECMA's is ASCII);
///   `\w` is everything but punctuation, separators and others,
///   `[\p{L}\p{M}\p{N}\p{S}]` (ECMA's is `[A-Za-z0-9_]`);
/// - `\i` and `\c` are XML's name characters, written out as categories
///   and ranges;
/// - a class with a subtraction (`[a-z-[aeiou]]`), or holding a negated
///   escape (`[\S.]`), has no ECMA form without the `v` flag: its set is
///   worked out (with `regex-syntax`'s Unicode tables) and written as
///   ranges, when that stays under [`MAX_CLASS_TEXT`].
///
/// `None` for what is not said: block escapes (`\p{IsBasicLatin}`; the
/// block table lives with the XSD check), a class too large to write out,
/// or a pattern the XSD check would refuse anyway. Those types get no
/// pattern in the tool schema; the XSD check still runs.
fn ecma_regex(xsd: &str) -> Option<String> {
    let chars: Vec<char> = xsd.chars().collect();
    let mut out = String::with_capacity(xsd.len() + 8);
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        i += 1;
        match c {
            '\\' => {
                let e = *chars.get(i)?;
                i += 1;
                match e {
                    'n' | 'r' | 't' => {
                        out.push('\\');
                        out.push(e);
                    }
                    '-' => out.push('-'),
                    '\\' | '|' | '.' | '^' | '?' | '*' | '+' | '{' | '}' | '(' | ')' | '['
                    | ']' => {
                        out.push('\\');
                        out.push(e);
                    }
                    _ => {
                        let (esc, next) = class_escape(&chars, i - 1)?;
                        i = next;
                        out.push_str(&esc.standalone()?);
                    }
                }
            }
            '[' => {
                let (class, next) = parse_class(&chars, i)?;
                i = next;
                out.push_str(&class.ecma()?);
            }
            '.' => out.push_str("[^\\n\\r]"),
            '^' | '$' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push_str(&ecma_char(c)),
            // Everything else means the same: literals, groups, `|` and
            // quantifiers.
            c => out.push(c),
        }
    }
    Some(out)
}

/// A character class escape (`\s`, `\i`, `\p{Lu}`, ...) as items of a
/// class, in ECMA's syntax and the `regex` crate's.
struct Escape {
    /// The items inside an ECMA class, when a positive class can hold
    /// them.
    ecma: Option<String>,
    /// The same set as items of a `regex` crate class (which nests).
    rust: String,
    /// A negated escape outside a class: `[^items]` of `negated_items`.
    negated_items: Option<String>,
    /// A positive escape's items one by one, so a subtraction can cut
    /// just the ones it touches.
    parts: Vec<(String, String)>,
}

impl Escape {
    /// A positive escape of several items (categories, ranges), each
    /// in ECMA's syntax and the `regex` crate's.
    fn positive(parts: Vec<(String, String)>) -> Self {
        Escape {
            ecma: Some(parts.iter().map(|(e, _)| e.as_str()).collect()),
            rust: parts.iter().map(|(_, r)| r.as_str()).collect(),
            negated_items: None,
            parts,
        }
    }

    fn negative(parts: &[(String, String)]) -> Self {
        let ecma: String = parts.iter().map(|(e, _)| e.as_str()).collect();
        let rust: String = parts.iter().map(|(_, r)| r.as_str()).collect();
        Escape {
            ecma: None,
            rust: format!("[^{rust}]"),
            negated_items: Some(ecma),
            parts: Vec::new(),
        }
    }

    /// The escape on its own, outside a class.
    fn standalone(&self) -> Option<String> {
        match (&self.negated_items, &self.ecma) {
            (Some(items), _) => Some(format!("[^{items}]")),
            (None, Some(items)) if items.starts_with("\\p{") || items.starts_with("\\P{") => {
                // One category: no brackets needed.
                if items.matches('{').count() == 1 {
                    Some(items.clone())
                } else {
                    Some(format!("[{items}]"))
                }
            }
            (None, Some(items)) => Some(format!("[{items}]")),
            (None, None) => None,
        }
    }
}

/// The escape starting at `chars[at]` (just after the backslash), and the
/// index after it. `None` for block escapes and unknown ones.
fn class_escape(chars: &[char], at: usize) -> Option<(Escape, usize)> {
    let e = *chars.get(at)?;
    let names = |set: &[CharSet]| {
        let mut parts = Vec::new();
        for (cats, ranges) in set {
            for cat in *cats {
                parts.push((format!("\\p{{{cat}}}"), format!("\\p{{{cat}}}")));
            }
            for &(lo, hi) in *ranges {
                parts.push((ecma_range(lo, hi), rust_range(lo, hi)));
            }
        }
        parts
    };
    let same = |items: &[&str]| -> Vec<(String, String)> {
        items
            .iter()
            .map(|i| (i.to_string(), i.to_string()))
            .collect()
    };
    let spaces = vec![
        ("\\t".to_string(), "\\t".to_string()),
        ("\\n".to_string(), "\\n".to_string()),
        ("\\r".to_string(), "\\r".to_string()),
        (" ".to_string(), "\\x{20}".to_string()),
    ];
    let esc = match e {
        's' => Escape::positive(spaces),
        'S' => Escape::negative(&spaces),
        'd' => Escape::positive(same(&["\\p{Nd}"])),
        'D' => Escape::positive(same(&["\\P{Nd}"])),
        'w' => Escape::positive(same(&["\\p{L}", "\\p{M}", "\\p{N}", "\\p{S}"])),
        'W' => Escape::positive(same(&["\\p{P}", "\\p{Z}", "\\p{C}"])),
        'i' => Escape::positive(names(&[NAME_START])),
        'I' => Escape::negative(&names(&[NAME_START])),
        'c' => Escape::positive(names(&[NAME_START, NAME_EXTRA])),
        'C' => Escape::negative(&names(&[NAME_START, NAME_EXTRA])),
        'p' | 'P' => {
            if chars.get(at + 1) != Some(&'{') {
                return None;
            }
            let end = at + 2 + chars[at + 2..].iter().position(|&x| x == '}')?;
            let name: String = chars[at + 2..end].iter().collect();
            // Block escapes (`IsBasicLatin`) are not said: see ecma_regex.
            if !CATEGORIES.contains(&name.as_str()) {
                return None;
            }
            let item = format!("\\{e}{{{name}}}");
            return Some((Escape::positive(vec![(item.clone(), item)]), end + 1));
        }
        _ => return None,
    };
    Some((esc, at + 1))
}

/// An XSD character class: `[^items-[subtracted]]`.
struct Class {
    negated: bool,
    /// Each item in ECMA's syntax (`None`: not expressible inside an ECMA
    /// class) and the `regex` crate's.
    items: Vec<(Option<String>, String)>,
    subtracted: Option<Box<Class>>,
}

impl Class {
    /// The class in ECMA's syntax: as written when ECMA can hold it; else
    /// with what ECMA cannot hold worked out and written as ranges: only
    /// the items a subtraction changes (`[\i-[:]]` stays four categories
    /// and three ranges, as no letter is a colon), or a negated class's
    /// subtraction added to what it negates (`[^a-z-[0-9]]` is
    /// `[^a-z0-9]`), or at last the whole set.
    fn ecma(&self) -> Option<String> {
        let own: Option<String> = self
            .items
            .iter()
            .map(|(e, _)| e.clone())
            .collect::<Option<Vec<String>>>()
            .map(|v| v.concat());
        match (&self.subtracted, self.negated, &own) {
            (None, negated, Some(items)) => {
                let neg = if negated { "^" } else { "" };
                return Some(format!("[{neg}{items}]"));
            }
            (Some(sub), true, Some(items)) => {
                if let Some(more) = sub.plain() {
                    return Some(format!("[^{items}{more}]"));
                }
            }
            (subtracted, false, _) => {
                let minus = match subtracted {
                    Some(sub) => char_set(&sub.rust())?,
                    None => regex_syntax::hir::ClassUnicode::empty(),
                };
                let mut out = String::from("[");
                let mut todo: Vec<(Option<String>, String)> = self.items.clone();
                todo.reverse();
                while let Some((ecma, rust)) = todo.pop() {
                    let set = char_set(&format!("[{rust}]"))?;
                    let mut left = set.clone();
                    left.difference(&minus);
                    match ecma {
                        Some(e) if left == set => out.push_str(&e),
                        _ if left.ranges().is_empty() => {}
                        // A major category the subtraction cuts into: its
                        // minor ones, some of which it may leave whole.
                        Some(e) if subcategories(&e).is_some() => {
                            for minor in subcategories(&e).unwrap_or_default().iter().rev() {
                                let item = format!("\\p{{{minor}}}");
                                todo.push((Some(item.clone()), item));
                            }
                        }
                        _ => out.push_str(&ranges_text(&left)),
                    }
                }
                out.push(']');
                return (out.len() > 2 && out.len() <= MAX_CLASS_TEXT).then_some(out);
            }
            _ => {}
        }
        let set = char_set(&self.rust())?;
        let out = format!("[{}]", ranges_text(&set));
        (out.len() > 2 && out.len() <= MAX_CLASS_TEXT).then_some(out)
    }

    /// The items of a positive class without a subtraction, when ECMA can
    /// hold each.
    fn plain(&self) -> Option<String> {
        if self.negated || self.subtracted.is_some() {
            return None;
        }
        self.items
            .iter()
            .map(|(e, _)| e.clone())
            .collect::<Option<Vec<String>>>()
            .map(|v| v.concat())
    }

    /// The class in the `regex` crate's syntax (nested classes, `--`).
    fn rust(&self) -> String {
        let neg = if self.negated { "^" } else { "" };
        let items: String = self.items.iter().map(|(_, r)| r.as_str()).collect();
        match &self.subtracted {
            None => format!("[{neg}{items}]"),
            Some(sub) => format!("[[{neg}{items}]--{}]", sub.rust()),
        }
    }
}

/// The minor general categories of a major one written `\p{X}`.
fn subcategories(item: &str) -> Option<&'static [&'static str]> {
    Some(match item {
        "\\p{L}" => &["Lu", "Ll", "Lt", "Lm", "Lo"],
        "\\p{M}" => &["Mn", "Mc", "Me"],
        "\\p{N}" => &["Nd", "Nl", "No"],
        "\\p{P}" => &["Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po"],
        "\\p{Z}" => &["Zs", "Zl", "Zp"],
        "\\p{S}" => &["Sm", "Sc", "Sk", "So"],
        "\\p{C}" => &["Cc", "Cf", "Cs", "Co", "Cn"],
        _ => return None,
    })
}

/// The characters a `regex` crate class matches.
fn char_set(rust_class: &str) -> Option<regex_syntax::hir::ClassUnicode> {
    let hir = regex_syntax::Parser::new().parse(rust_class).ok()?;
    match hir.kind() {
        regex_syntax::hir::HirKind::Class(regex_syntax::hir::Class::Unicode(set)) => {
            Some(set.clone())
        }
        // A class of one character is read as that character.
        regex_syntax::hir::HirKind::Literal(lit) => {
            let mut chars = std::str::from_utf8(&lit.0).ok()?.chars();
            let c = chars.next()?;
            chars.next().is_none().then(|| {
                regex_syntax::hir::ClassUnicode::new([regex_syntax::hir::ClassUnicodeRange::new(
                    c, c,
                )])
            })
        }
        _ => None,
    }
}

/// A set of characters as the items of an ECMA class.
fn ranges_text(set: &regex_syntax::hir::ClassUnicode) -> String {
    set.ranges()
        .iter()
        .map(|r| ecma_range(r.start(), r.end()))
        .collect()
}

/// The class whose body starts at `chars[at]` (after its `[`), and the
/// index after its `]`.
fn parse_class(chars: &[char], mut at: usize) -> Option<(Class, usize)> {
    let negated = chars.get(at) == Some(&'^');
    if negated {
        at += 1;
    }
    let mut class = Class {
        negated,
        items: Vec::new(),
        subtracted: None,
    };
    loop {
        let c = *chars.get(at)?;
        match c {
            ']' if !class.items.is_empty() => return Some((class, at + 1)),
            '-' if chars.get(at + 1) == Some(&'[') && !class.items.is_empty() => {
                let (sub, next) = parse_class(chars, at + 2)?;
                if chars.get(next) != Some(&']') {
                    return None;
                }
                class.subtracted = Some(Box::new(sub));
                return Some((class, next + 1));
            }
            '[' | ']' => return None,
            _ => {}
        }
        let (lo, next) = class_char(chars, at)?;
        at = next;
        match lo {
            Err(esc) if esc.parts.is_empty() => class.items.push((esc.ecma, esc.rust)),
            Err(esc) => class
                .items
                .extend(esc.parts.into_iter().map(|(e, r)| (Some(e), r))),
            Ok(a) => {
                // A range, unless the `-` ends the class or starts a
                // subtraction.
                if chars.get(at) == Some(&'-')
                    && !matches!(chars.get(at + 1), Some(']' | '[') | None)
                {
                    let (hi, next) = class_char(chars, at + 1)?;
                    at = next;
                    let b = hi.ok()?;
                    if b < a {
                        return None;
                    }
                    class.items.push((Some(ecma_range(a, b)), rust_range(a, b)));
                } else {
                    class.items.push((Some(ecma_range(a, a)), rust_range(a, a)));
                }
            }
        }
    }
}

/// One character of a class (`Ok`) or a class escape (`Err`), and the
/// index after it.
fn class_char(chars: &[char], at: usize) -> Option<(Result<char, Escape>, usize)> {
    let c = *chars.get(at)?;
    if c != '\\' {
        return Some((Ok(c), at + 1));
    }
    let e = *chars.get(at + 1)?;
    let single = match e {
        'n' => Some('\n'),
        'r' => Some('\r'),
        't' => Some('\t'),
        '\\' | '|' | '.' | '-' | '^' | '?' | '*' | '+' | '{' | '}' | '(' | ')' | '[' | ']' => {
            Some(e)
        }
        _ => None,
    };
    match single {
        Some(c) => Some((Ok(c), at + 2)),
        None => {
            let (esc, next) = class_escape(chars, at + 1)?;
            Some((Err(esc), next))
        }
    }
}

/// A character inside an ECMA class (`u` flag), read literally there and
/// by the `regex` crate alike (whose classes give `&&`, `--` and `~~` a
/// meaning).
fn ecma_char(c: char) -> String {
    match c {
        '\\' | ']' | '[' | '^' | '-' => format!("\\{c}"),
        '&' | '~' => format!("\\u{:04X}", c as u32),
        c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
            if (c as u32) <= 0xFFFF {
                format!("\\u{:04X}", c as u32)
            } else {
                format!("\\u{{{:X}}}", c as u32)
            }
        }
        c if (c as u32) > 0xFFFF && !c.is_alphanumeric() => format!("\\u{{{:X}}}", c as u32),
        c => c.to_string(),
    }
}

fn ecma_range(lo: char, hi: char) -> String {
    if lo == hi {
        ecma_char(lo)
    } else {
        format!("{}-{}", ecma_char(lo), ecma_char(hi))
    }
}

/// A character the `regex` crate reads literally, in or out of a class.
fn rust_char(c: char) -> String {
    if c.is_ascii_alphanumeric() || !c.is_ascii() && !c.is_control() {
        c.to_string()
    } else {
        format!("\\x{{{:X}}}", c as u32)
    }
}

fn rust_range(lo: char, hi: char) -> String {
    if lo == hi {
        rust_char(lo)
    } else {
        format!("{}-{}", rust_char(lo), rust_char(hi))
    }
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
    fn xsd_patterns_are_written_in_ecma_syntax() {
        let p = |s: &str| json_pattern(&[s.to_string()]);
        assert_eq!(p("CC-[0-9]{4}"), Some("^(?:CC-[0-9]{4})$".into()));
        assert_eq!(p("[^,]+"), Some("^(?:[^,]+)$".into()));
        assert_eq!(p("a(b|c)?"), Some("^(?:a(b|c)?)$".into()));
        assert_eq!(p("\\p{Lu}+"), Some("^(?:\\p{Lu}+)$".into()));
        assert_eq!(p("a$b^"), Some("^(?:a\\$b\\^)$".into()));
        assert_eq!(
            p("\\d\\s\\.\\-"),
            Some("^(?:\\p{Nd}[\\t\\n\\r ]\\.-)$".into())
        );
        assert_eq!(p("\\w"), Some("^(?:[\\p{L}\\p{M}\\p{N}\\p{S}])$".into()));
        assert_eq!(
            p("[\\w-]"),
            Some("^(?:[\\p{L}\\p{M}\\p{N}\\p{S}\\-])$".into())
        );
        assert_eq!(p("[a-z-[aeiou]]"), Some("^(?:[b-df-hj-np-tv-z])$".into()));
        assert_eq!(p("[^a-z-[b]]"), Some("^(?:[^a-zb])$".into()));
        assert_eq!(
            p("[\\S-[ab]]").map(|s| s.starts_with("^(?:[\\u0000-\\u0008")),
            Some(true)
        );
        assert_eq!(
            p("[&&a~~]"),
            Some("^(?:[\\u0026\\u0026a\\u007E\\u007E])$".into())
        );
        assert_eq!(p("x."), Some("^(?:x[^\\n\\r])$".into()));
        assert!(p("\\i\\c*").is_some_and(|s| s.starts_with("^(?:[\\p{Lu}\\p{Ll}\\p{Lt}\\p{Lo}:_")));
        assert!(p("\\I").is_some_and(|s| s.starts_with("^(?:[^\\p{Lu}")));
        assert_eq!(
            p("[\\i-[:]]"),
            Some("^(?:[\\p{Lu}\\p{Ll}\\p{Lt}\\p{Lo}_\u{3007}\u{3021}-\u{3029}])$".into())
        );
        assert_eq!(
            p("[\\p{L}-[\\p{Lu}]]"),
            Some("^(?:[\\p{Ll}\\p{Lt}\\p{Lm}\\p{Lo}])$".into())
        );
        // Blocks are not said, nor sets too large to write out; the XSD
        // check still runs.
        assert_eq!(p("[\\I\\C]"), None);
        assert_eq!(p("\\p{IsBasicLatin}+"), None);
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
