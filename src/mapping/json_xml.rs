//! JSON <-> XML by the schema, following the convention in
//! [`super::shape`].
//!
//! JSON -> XML ([`json_to_xml`], [`payload_from_json`]) writes elements in
//! XSD order with the namespaces the declarations give them (qualified or
//! not), attributes from `@name`, simple content from `#text`, and
//! `xsi:nil="true"` for `null` on a nillable element. It is strict about
//! structure (unknown properties, missing required ones, arrays where one
//! value is allowed) and reports every problem with a JSON path, so the
//! model can be told what to fix; values themselves are checked afterwards
//! by XSD validation. Scalars are accepted in their lexical form too (a
//! number as `"0.95"`), since the XSD check decides.
//!
//! XML -> JSON ([`xml_to_json`], [`payload_to_json`]) gives templates typed
//! values: integers and decimals as numbers, booleans as booleans, repeated
//! elements as arrays, absent optional elements omitted, attribute defaults
//! applied.

use serde_json::{Map, Number, Value};

use super::json_schema::{required_attributes, typed_literal};
use super::payload::PayloadShape;
use super::shape::{
    ATTR_PREFIX, Attr, Field, Scalar, Shape, SimpleKind, TEXT_KEY, scalar_of, shape, simple_kind,
};
use crate::contract::xsd::{MaxOccurs, SchemaSet, TypeId};
use crate::contract::{Payload, Violation};
use crate::xml::{Attribute, Element, NsDecl, QName, XSI_NS};

/// Problems converting JSON to XML: a JSON path (`/classification/reasons`)
/// and what is wrong there.
pub type JsonViolations = Vec<Violation>;

/// Build global element `name` from `value` (the element's value in the
/// convention: an object for complex types, a scalar for simple ones).
pub fn json_to_xml(
    set: &SchemaSet,
    name: &QName,
    value: &Value,
) -> Result<Element, JsonViolations> {
    let Some((_, d)) = set.element(name) else {
        return Err(vec![violation("", format!("no global element {name}"))]);
    };
    let field = Field::from_decl(d, 1, MaxOccurs::Bounded(1));
    let mut b = Builder::new(set);
    let el = b.element(&field, value, "");
    match (el, b.errors.is_empty()) {
        (Some(mut el), true) => {
            assign_prefixes(std::slice::from_mut(&mut el));
            Ok(el)
        }
        _ => Err(b.errors),
    }
}

/// Build a whole payload (the Body's children) from its JSON value (see
/// [`super::payload`]).
pub fn payload_from_json(
    set: &SchemaSet,
    payload: &Payload,
    value: &Value,
) -> Result<Vec<Element>, JsonViolations> {
    let Some(shape) = PayloadShape::of(set, payload) else {
        return Err(vec![violation(
            "",
            "the payload's declarations are missing",
        )]);
    };
    payload_shape_from_json(set, &shape, value)
}

pub(crate) fn payload_shape_from_json(
    set: &SchemaSet,
    shape: &PayloadShape,
    value: &Value,
) -> Result<Vec<Element>, JsonViolations> {
    let mut b = Builder::new(set);
    let mut out = match shape {
        PayloadShape::Element(f) => b.element(f, value, "").into_iter().collect(),
        PayloadShape::Fields { wrapper, fields } => {
            let mut holder = Element::new(wrapper.clone().unwrap_or_default());
            b.object_into(&mut holder, &[], None, fields, value, "");
            match wrapper {
                Some(_) => vec![holder],
                None => holder.elements().cloned().collect(),
            }
        }
    };
    if b.errors.is_empty() {
        assign_prefixes(&mut out);
        Ok(out)
    } else {
        Err(b.errors)
    }
}

fn violation(path: &str, rule: impl Into<String>) -> Violation {
    Violation {
        path: if path.is_empty() {
            "/".to_string()
        } else {
            path.to_string()
        },
        rule: rule.into(),
    }
}

/// JSON Pointer escaping of one key.
fn key_path(path: &str, key: &str) -> String {
    format!("{path}/{}", key.replace('~', "~0").replace('/', "~1"))
}

struct Builder<'a> {
    set: &'a SchemaSet,
    errors: JsonViolations,
}

/// Stop collecting after this many: the list goes back to a model.
const MAX_ERRORS: usize = 30;

impl<'a> Builder<'a> {
    fn new(set: &'a SchemaSet) -> Self {
        Builder {
            set,
            errors: Vec::new(),
        }
    }

    fn error(&mut self, path: &str, rule: impl Into<String>) {
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(violation(path, rule));
        }
    }

    /// One occurrence of an element.
    fn element(&mut self, f: &Field, value: &Value, path: &str) -> Option<Element> {
        let mut el = Element::new(f.name.clone());
        if value.is_null() {
            if f.nillable && required_attributes(self.set, f.type_id) {
                self.error(
                    path,
                    "null is not allowed here: the element keeps its required attributes when nil",
                );
                return None;
            }
            if f.nillable {
                el.attrs.push(Attribute {
                    name: QName::new(XSI_NS, "nil"),
                    prefix: Some("xsi".into()),
                    value: "true".into(),
                });
                return Some(el);
            }
            self.error(path, "null is not allowed here");
            return None;
        }
        match shape(self.set, f.type_id) {
            Shape::Simple(st) => {
                let text = self.simple_text(*st, value, path)?;
                let text = self.fixed_form(*st, f.fixed.as_deref(), text);
                if !text.is_empty() {
                    el.push_text(text);
                }
            }
            Shape::Any => match value {
                Value::Object(_) | Value::Array(_) => {
                    el.push_text(value.to_string());
                }
                other => {
                    if let Some(t) = scalar_text(other) {
                        el.push_text(t);
                    }
                }
            },
            Shape::Object {
                attrs,
                text,
                fields,
                unsupported,
                ..
            } => {
                if let Some(u) = unsupported.first() {
                    self.error(path, format!("cannot build {}: {u}", f.name.local));
                    return None;
                }
                if text.is_some() && !value.is_object() {
                    // Simple content given as a bare scalar: text only.
                    let t = self.simple_text((*text)?, value, path)?;
                    el.push_text(t);
                    let missing: Vec<&Attr> = attrs.iter().filter(|a| a.required).collect();
                    for a in missing {
                        self.error(
                            path,
                            format!("required property {ATTR_PREFIX}{} missing", a.name.local),
                        );
                    }
                    return Some(el);
                }
                self.object_into(&mut el, attrs, *text, fields, value, path);
            }
        }
        Some(el)
    }

    /// Fill `el` from an object value: attributes, text, then child
    /// elements in XSD order.
    fn object_into(
        &mut self,
        el: &mut Element,
        attrs: &[Attr],
        text: Option<TypeId>,
        fields: &[Field],
        value: &Value,
        path: &str,
    ) {
        let Value::Object(map) = value else {
            self.error(path, format!("expected an object, got {}", kind(value)));
            return;
        };
        for key in map.keys() {
            let known = if let Some(a) = key.strip_prefix(ATTR_PREFIX) {
                attrs.iter().any(|x| x.name.local == a)
            } else if key == TEXT_KEY {
                text.is_some()
            } else {
                fields.iter().any(|f| f.name.local == *key)
            };
            if !known {
                self.error(&key_path(path, key), "unknown property");
            }
        }
        for a in attrs {
            let key = format!("{ATTR_PREFIX}{}", a.name.local);
            match map.get(&key) {
                Some(Value::Null) | None => {
                    if a.required {
                        self.error(path, format!("required property {key} missing"));
                    }
                }
                Some(v) => {
                    let p = key_path(path, &key);
                    if let Some(t) = self.simple_text(a.type_id, v, &p) {
                        let t = self.fixed_form(a.type_id, a.fixed.as_deref(), t);
                        el.attrs.push(Attribute {
                            name: a.name.clone(),
                            prefix: None,
                            value: t,
                        });
                    }
                }
            }
        }
        if let Some(st) = text {
            match map.get(TEXT_KEY) {
                Some(v) => {
                    let p = key_path(path, TEXT_KEY);
                    if let Some(t) = self.simple_text(st, v, &p)
                        && !t.is_empty()
                    {
                        el.push_text(t);
                    }
                }
                None => self.error(path, format!("required property {TEXT_KEY} missing")),
            }
        }
        let mut chosen: Vec<Vec<usize>> = Vec::new();
        for f in fields {
            let key = &f.name.local;
            let p = key_path(path, key);
            let v = map.get(key.as_str());
            let present = matches!(v, Some(x) if !x.is_null() || f.nillable);
            if let (Some((c, b)), true) = (f.choice, present) {
                if chosen.len() <= c {
                    chosen.resize(c + 1, Vec::new());
                }
                if !chosen[c].contains(&b) {
                    chosen[c].push(b);
                }
            }
            let Some(v) = v.filter(|_| present) else {
                if f.min > 0 {
                    self.error(path, format!("required property {key} missing"));
                }
                continue;
            };
            if f.repeated() {
                // One value where a list is allowed is taken as a list of one:
                // friendlier for hand-written YAML and for models.
                let items: Vec<&Value> = match v {
                    Value::Array(a) => a.iter().collect(),
                    other => vec![other],
                };
                if (items.len() as u64) < u64::from(f.min) {
                    self.error(
                        &p,
                        format!("at least {} item(s) required, got {}", f.min, items.len()),
                    );
                }
                if let MaxOccurs::Bounded(n) = f.max
                    && items.len() as u64 > u64::from(n)
                {
                    self.error(
                        &p,
                        format!("at most {n} item(s) allowed, got {}", items.len()),
                    );
                }
                for (i, item) in items.into_iter().enumerate() {
                    let ip = if v.is_array() {
                        format!("{p}/{i}")
                    } else {
                        p.clone()
                    };
                    if let Some(child) = self.element(f, item, &ip) {
                        el.push_child(child);
                    }
                }
            } else {
                if v.is_array() && !self.is_list_type(f.type_id) {
                    self.error(&p, "expected one value, got an array");
                    continue;
                }
                if let Some(child) = self.element(f, v, &p) {
                    el.push_child(child);
                }
            }
        }
        for (c, branches) in chosen.iter().enumerate() {
            if branches.len() > 1 {
                let names: Vec<&str> = fields
                    .iter()
                    .filter(|f| f.choice.is_some_and(|(fc, _)| fc == c))
                    .map(|f| f.name.local.as_str())
                    .collect();
                self.error(
                    path,
                    format!("only one of {} may be given", names.join(", ")),
                );
            }
        }
    }

    /// A value equal to the schema's `fixed` value as JSON reads it, in
    /// the fixed value's own lexical form: `fixed="1.0"` stays `1.0` (a
    /// model's `1.0` is the number 1), which clients that compare fixed
    /// values as text require. Any other value is left for validation to
    /// refuse.
    fn fixed_form(&self, st: TypeId, fixed: Option<&str>, text: String) -> String {
        match fixed {
            Some(fixed)
                if scalar_text(&typed_literal(self.set, st, fixed)).as_deref()
                    == Some(text.as_str()) =>
            {
                fixed.to_string()
            }
            _ => text,
        }
    }

    fn is_list_type(&self, ty: TypeId) -> bool {
        match shape(self.set, ty) {
            Shape::Simple(st) => matches!(simple_kind(self.set, *st), SimpleKind::List(_)),
            _ => false,
        }
    }

    /// The lexical form of a simple value; lists join their items.
    fn simple_text(&mut self, st: TypeId, value: &Value, path: &str) -> Option<String> {
        match (simple_kind(self.set, st), value) {
            (SimpleKind::List(item), Value::Array(items)) => {
                let mut parts = Vec::new();
                for (i, v) in items.iter().enumerate() {
                    parts.push(self.simple_text(item, v, &format!("{path}/{i}"))?);
                }
                Some(parts.join(" "))
            }
            (_, v) => match scalar_text(v) {
                Some(t) => Some(t),
                None => {
                    self.error(path, format!("expected a value, got {}", kind(v)));
                    None
                }
            },
        }
    }
}

/// A scalar's lexical form: strings as they are, numbers as written,
/// booleans as `true`/`false`.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(number_text(n)),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Numbers as an XSD decimal reads them, digit for digit as the JSON wrote
/// them, without an exponent (`1e-7` would be an invalid xsd:decimal) and
/// without a fraction of zeros (`5.0` is an invalid xsd:integer).
fn number_text(n: &Number) -> String {
    let literal = n.to_string();
    plain_decimal(&literal).unwrap_or(literal)
}

/// The longest text an exponent may expand a number to; past it the
/// number is written as given (and refused by the XSD check if the type
/// wants a decimal), so `1e999999999` cannot cost a gigabyte.
const MAX_PLAIN_DIGITS: usize = 1_100;

/// A JSON number literal (`-12.50`, `1.5E+3`, `2e-2`) as plain decimal text
/// (`-12.50`, `1500`, `0.02`), exactly; `None` when it is not a JSON number
/// or would be longer than [`MAX_PLAIN_DIGITS`].
fn plain_decimal(literal: &str) -> Option<String> {
    let (negative, rest) = match literal.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, literal),
    };
    let (mantissa, exponent) = match rest.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.trim_start_matches('+').parse::<i64>().ok()?),
        None => (rest, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    // The digits of int and frac, with the point `point` digits from the left.
    let digits = format!("{int}{frac}");
    let point = i64::try_from(int.len()).ok()?.checked_add(exponent)?;
    let width = usize::try_from(point.unsigned_abs()).ok()?;
    if width.max(digits.len()) > MAX_PLAIN_DIGITS {
        return None;
    }
    let (whole, fraction) = if point <= 0 {
        (String::from("0"), format!("{}{digits}", "0".repeat(width)))
    } else if width >= digits.len() {
        (
            format!("{digits}{}", "0".repeat(width - digits.len())),
            String::new(),
        )
    } else {
        (digits[..width].to_string(), digits[width..].to_string())
    };
    let whole = match whole.trim_start_matches('0') {
        "" => "0",
        w => w,
    };
    let mut text = String::with_capacity(whole.len() + fraction.len() + 2);
    if negative {
        text.push('-');
    }
    text.push_str(whole);
    // Trailing zeros the literal wrote stay (an amount of 12.50 is written
    // 12.50); a fraction that is only zeros goes.
    if fraction.bytes().any(|b| b != b'0') {
        text.push('.');
        text.push_str(&fraction);
    }
    Some(text)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Give namespaced elements prefixes declared on the roots when some
/// element is unqualified (so no `xmlns=""` is needed); when every element
/// is namespaced, leave them unprefixed and let the writer declare default
/// namespaces, the way .NET writes responses.
fn assign_prefixes(roots: &mut [Element]) {
    fn walk(el: &Element, nss: &mut Vec<String>, unqualified: &mut bool, nil: &mut bool) {
        if el.name.ns.is_empty() {
            *unqualified = true;
        } else if !nss.contains(&el.name.ns) {
            nss.push(el.name.ns.clone());
        }
        for a in &el.attrs {
            if a.name.ns == XSI_NS {
                *nil = true;
            }
        }
        for c in el.elements() {
            walk(c, nss, unqualified, nil);
        }
    }
    fn set(el: &mut Element, nss: &[String]) {
        if let Some(i) = nss.iter().position(|n| *n == el.name.ns) {
            el.prefix = Some(format!("ns{}", i + 1));
        }
        for c in el.children.iter_mut() {
            if let crate::xml::Node::Element(e) = c {
                set(e, nss);
            }
        }
    }
    for root in roots {
        let (mut nss, mut unqualified, mut nil) = (Vec::new(), false, false);
        walk(root, &mut nss, &mut unqualified, &mut nil);
        if unqualified {
            set(root, &nss);
            for (i, ns) in nss.iter().enumerate() {
                root.ns_decls.push(NsDecl {
                    prefix: format!("ns{}", i + 1),
                    uri: ns.clone(),
                });
            }
        }
        if nil {
            root.ns_decls.push(NsDecl {
                prefix: "xsi".into(),
                uri: XSI_NS.into(),
            });
        }
    }
}

// ---- XML -> JSON ----------------------------------------------------------

/// The typed JSON value of `el` as global element `name` (the element is
/// expected to be valid; what does not fit the schema is skipped).
pub fn xml_to_json(set: &SchemaSet, name: &QName, el: &Element) -> Value {
    match set.element(name) {
        Some((_, d)) => element_json(set, &Field::from_decl(d, 1, MaxOccurs::Bounded(1)), el),
        None => Value::String(el.text()),
    }
}

/// The JSON value of a whole (valid) payload (see [`super::payload`]).
pub fn payload_to_json(set: &SchemaSet, payload: &Payload, body: &[Element]) -> Value {
    match PayloadShape::of(set, payload) {
        Some(shape) => payload_shape_to_json(set, &shape, body),
        None => Value::Null,
    }
}

pub(crate) fn payload_shape_to_json(
    set: &SchemaSet,
    shape: &PayloadShape,
    body: &[Element],
) -> Value {
    match shape {
        PayloadShape::Element(f) => match body.first() {
            Some(el) => element_json(set, f, el),
            None => Value::Null,
        },
        PayloadShape::Fields { wrapper, fields } => {
            let children: Vec<&Element> = match wrapper {
                Some(_) => body
                    .first()
                    .map(|w| w.elements().collect())
                    .unwrap_or_default(),
                None => body.iter().collect(),
            };
            Value::Object(fields_json(set, fields, &children))
        }
    }
}

/// The value of one element occurrence.
pub(crate) fn element_json(set: &SchemaSet, f: &Field, el: &Element) -> Value {
    if el
        .attr_ns(XSI_NS, "nil")
        .is_some_and(|v| matches!(v.trim(), "true" | "1"))
    {
        return Value::Null;
    }
    match shape(set, f.type_id) {
        Shape::Simple(st) => simple_json(set, *st, &el.text()),
        Shape::Any => Value::String(el.text()),
        Shape::Object {
            attrs,
            text,
            fields,
            ..
        } => {
            let mut map = Map::new();
            for a in attrs {
                let v = el
                    .attr_ns(&a.name.ns, &a.name.local)
                    .or(a.fixed.as_deref())
                    .or(a.default.as_deref());
                if let Some(v) = v {
                    map.insert(
                        format!("{ATTR_PREFIX}{}", a.name.local),
                        simple_json(set, a.type_id, v),
                    );
                }
            }
            if let Some(st) = text {
                map.insert(TEXT_KEY.into(), simple_json(set, *st, &el.text()));
            }
            let children: Vec<&Element> = el.elements().collect();
            map.extend(fields_json(set, fields, &children));
            Value::Object(map)
        }
    }
}

fn fields_json(set: &SchemaSet, fields: &[Field], children: &[&Element]) -> Map<String, Value> {
    let mut map = Map::new();
    for f in fields {
        let mut matching = children.iter().filter(|c| c.name == f.name);
        if f.repeated() {
            map.insert(
                f.name.local.clone(),
                Value::Array(matching.map(|c| element_json(set, f, c)).collect()),
            );
        } else if let Some(c) = matching.next() {
            map.insert(f.name.local.clone(), element_json(set, f, c));
        }
    }
    map
}

/// A simple value typed for templates: numbers and booleans as such, lists
/// as arrays, everything else (dates included) as its text.
pub(crate) fn simple_json(set: &SchemaSet, st: TypeId, text: &str) -> Value {
    match simple_kind(set, st) {
        SimpleKind::List(item) => Value::Array(
            text.split_whitespace()
                .map(|t| simple_json(set, item, t))
                .collect(),
        ),
        SimpleKind::Union(_) => Value::String(text.to_string()),
        SimpleKind::Atomic(b) => {
            let t = text.trim();
            match scalar_of(b) {
                Scalar::Integer => t
                    .trim_start_matches('+')
                    .parse::<i64>()
                    .map(Value::from)
                    .unwrap_or_else(|_| Value::String(t.to_string())),
                // An integral decimal ("2", "4870.00") is an integer, so
                // templates print "2", not "2.0".
                Scalar::Number if integral(t) => t
                    .split('.')
                    .next()
                    .unwrap_or(t)
                    .trim_start_matches('+')
                    .parse::<i64>()
                    .map(Value::from)
                    .unwrap_or_else(|_| Value::String(t.to_string())),
                Scalar::Number => t
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .and_then(Number::from_f64)
                    .map(Value::Number)
                    .unwrap_or_else(|| Value::String(t.to_string())),
                Scalar::Boolean => match t {
                    "true" | "1" => Value::Bool(true),
                    "false" | "0" => Value::Bool(false),
                    _ => Value::String(t.to_string()),
                },
                Scalar::String => Value::String(text.to_string()),
            }
        }
    }
}

/// True for decimal text without a fractional value (`12`, `12.00`).
fn integral(t: &str) -> bool {
    let digits = t.trim_start_matches(['+', '-']);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    !int.is_empty() && int.bytes().all(|b| b.is_ascii_digit()) && frac.bytes().all(|b| b == b'0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_without_exponent() {
        let n = |v: Value| match v {
            Value::Number(n) => number_text(&n),
            _ => String::new(),
        };
        assert_eq!(n(serde_json::json!(0.0000001)), "0.0000001");
        assert_eq!(n(serde_json::json!(1e21)), "1000000000000000000000");
        assert_eq!(n(serde_json::json!(2.0)), "2");
        assert_eq!(n(serde_json::json!(-3)), "-3");
        assert_eq!(n(serde_json::json!(0.95)), "0.95");
    }

    #[test]
    fn numbers_keep_every_digit_the_json_wrote() {
        let n = |literal: &str| number_text(&literal.parse::<Number>().unwrap());
        for exact in [
            "12345678901234567890.5",
            "0.1234567890123456789",
            "123456789012345678901234567890",
            "-123456789012345.678901234567890",
            "12.50",
            "-0.000000000000000000000000000001",
        ] {
            assert_eq!(n(exact), exact);
        }
        assert_eq!(n("1.5E+3"), "1500");
        assert_eq!(n("2e-2"), "0.02");
        assert_eq!(n("-12.5e1"), "-125");
        assert_eq!(n("5.000"), "5");
        assert_eq!(n("0e10"), "0");
        // An exponent that would take more than MAX_PLAIN_DIGITS stays an
        // exponent, for the XSD check to refuse where a decimal is wanted.
        for huge in ["1e999999999", "1e-999999999"] {
            let text = n(huge);
            assert!(text.len() < 20 && text.contains('e'), "{huge}: {text}");
        }
    }

    #[test]
    fn integral_decimals() {
        assert!(integral("4870.00") && integral("-2") && integral("+7."));
        assert!(!integral("2.5") && !integral(".5") && !integral("1e3"));
    }
}
