//! A step's declared output: a JSON Schema written in the mapping file,
//! checked at load ([`check_schema`]), used to validate the model's answer
//! ([`validate`]) and to make a stand-in answer for rendering templates at
//! load ([`sample`]).
//!
//! Only a subset of JSON Schema (2020-12 meaning) is taken, small enough to
//! check here without a schema library: `type` (a name or a list of them),
//! `enum`, `const`, `properties`, `required`, `additionalProperties` (true,
//! false or a schema), `items` (one schema for every item),
//! `minItems`/`maxItems`, `minimum`/`maximum`/`exclusiveMinimum`/
//! `exclusiveMaximum`, `minLength`/`maxLength` (counted in Unicode scalar
//! values), `pattern` (the `regex` crate's syntax, unanchored as in JSON
//! Schema) and the annotations `description`, `title`, `default` and
//! `$comment`. Anything else is refused at load rather than ignored.
//!
//! Numbers are compared exactly, on the digits serde_json keeps
//! (`arbitrary_precision`): `12345678901234567890123` and `3.0` are
//! integers, `1.5` is not, and `1` equals `1.0` in `enum` and `const`.

use std::cmp::Ordering;

use regex::Regex;
use serde_json::{Map, Number, Value};

use crate::contract::Violation;

/// The keywords taken, as listed in messages.
const KEYWORDS: &str = "type, enum, const, properties, required, additionalProperties, items, \
    minItems, maxItems, minimum, maximum, exclusiveMinimum, exclusiveMaximum, minLength, \
    maxLength, pattern, description, title, default";
const TYPES: &[&str] = &[
    "object", "array", "string", "number", "integer", "boolean", "null",
];
/// How deep schemas may nest (the root is level 0).
const MAX_DEPTH: usize = 32;
/// How large [`sample`]'s answer may be (nested `minItems` multiply).
const MAX_SAMPLE_SIZE: u64 = 100_000;

/// Checks that `schema` uses only the supported subset, is well-formed, and
/// can be satisfied: every `enum` member and `const` passes the rest of its
/// schema, and no range (of lengths, item counts or numbers) is empty. The
/// error starts with the JSON Pointer of the offending place in the schema.
pub(crate) fn check_schema(schema: &Value) -> Result<(), String> {
    check(schema, "", 0)?;
    if sample_size(schema) > MAX_SAMPLE_SIZE {
        return Err(format!(
            "/: the smallest answer this schema allows has over {MAX_SAMPLE_SIZE} values and characters"
        ));
    }
    Ok(())
}

/// Every way `value` breaks `schema`; empty when it is valid. Paths are JSON
/// Pointers into `value` (`/` for the value itself). A value with a wrong
/// `enum`, `const` or `type` gets that one message, not one per keyword.
/// Assumes [`check_schema`] passed (malformed keywords are skipped).
pub(crate) fn validate(schema: &Value, value: &Value) -> Vec<Violation> {
    let mut out = Vec::new();
    walk(schema, value, "", &mut out);
    out
}

/// A small value that passes `schema` once [`check_schema`] did, unless
/// `pattern` rules its strings out: the first `enum` member, the `const`, a
/// number within the bounds (0 when they allow it), `minLength` `x`s,
/// `minItems` items, an object with its required properties.
pub(crate) fn sample(schema: &Value) -> Value {
    let Some(s) = schema.as_object() else {
        return Value::Null;
    };
    if let Some(v) = s.get("const") {
        return v.clone();
    }
    if let Some(v) = s
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return v.clone();
    }
    match types_of(s).first().copied().unwrap_or("null") {
        "object" => {
            let props = s.get("properties").and_then(Value::as_object);
            let names = s
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten();
            let object = names
                .filter_map(Value::as_str)
                .map(|name| {
                    let sub = props.and_then(|p| p.get(name)).unwrap_or(&Value::Null);
                    (name.to_string(), sample(sub))
                })
                .collect();
            Value::Object(object)
        }
        "array" => {
            let item = s.get("items").map_or(Value::Null, sample);
            Value::Array(vec![item; count(s, "minItems").unwrap_or(0) as usize])
        }
        "string" => Value::String("x".repeat(count(s, "minLength").unwrap_or(0) as usize)),
        "number" => sample_number(s, false),
        "integer" => sample_number(s, true),
        "boolean" => Value::Bool(false),
        _ => Value::Null,
    }
}

/// The values and characters in [`sample`]'s answer, without making it.
fn sample_size(schema: &Value) -> u64 {
    let Some(s) = schema.as_object() else {
        return 1;
    };
    if s.contains_key("const") || s.contains_key("enum") {
        return 1;
    }
    let props = s.get("properties").and_then(Value::as_object);
    let names = s
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    match types_of(s).first().copied() {
        Some("object") => names
            .filter_map(|n| props.and_then(|p| p.get(n.as_str()?)))
            .fold(1, |size, sub| size.saturating_add(sample_size(sub))),
        Some("array") => {
            let item = s.get("items").map_or(1, sample_size);
            count(s, "minItems")
                .unwrap_or(0)
                .saturating_mul(item)
                .saturating_add(1)
        }
        Some("string") => count(s, "minLength").unwrap_or(0).saturating_add(1),
        _ => 1,
    }
}

fn check(schema: &Value, ptr: &str, depth: usize) -> Result<(), String> {
    let here = at(ptr);
    if depth > MAX_DEPTH {
        return Err(format!(
            "{here}: schemas nested deeper than {MAX_DEPTH} levels are not supported"
        ));
    }
    let s = match schema {
        Value::Object(s) => s,
        Value::Bool(_) => {
            return Err(format!(
                "{here}: a schema must be a map (true and false are taken only as additionalProperties)"
            ));
        }
        other => {
            return Err(format!(
                "{here}: a schema must be a map, found {}",
                kind(other)
            ));
        }
    };
    for (key, v) in s {
        let err = |what: &str| Err(format!("{ptr}/{}: {key} must be {what}", escape(key)));
        match key.as_str() {
            "type" if types_of(s).is_empty() => {
                return err(&format!(
                    "one of {} or a non-empty list of them",
                    TYPES.join(", ")
                ));
            }
            "enum" if v.as_array().is_none_or(Vec::is_empty) => return err("a non-empty list"),
            "properties" => {
                let Some(props) = v.as_object() else {
                    return err("a map of property names to schemas");
                };
                for (name, sub) in props {
                    check(
                        sub,
                        &format!("{ptr}/properties/{}", escape(name)),
                        depth + 1,
                    )?;
                }
            }
            "required" => {
                let Some(names) = v.as_array().filter(|n| n.iter().all(Value::is_string)) else {
                    return err("a list of property names");
                };
                let props = s.get("properties").and_then(Value::as_object);
                if let Some(i) = names.iter().position(|n| {
                    props.is_none_or(|p| !p.contains_key(n.as_str().unwrap_or_default()))
                }) {
                    return Err(format!(
                        "{ptr}/required/{i}: required property {} is not described in properties",
                        names[i]
                    ));
                }
            }
            "additionalProperties" if !v.is_boolean() => {
                check(v, &format!("{ptr}/additionalProperties"), depth + 1)?;
            }
            "items" => check(v, &format!("{ptr}/items"), depth + 1)?,
            "minItems" | "maxItems" | "minLength" | "maxLength" if !v.is_u64() => {
                return err("a non-negative integer");
            }
            "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum" if !v.is_number() => {
                return err("a number");
            }
            "pattern" => match v.as_str().map(Regex::new) {
                None => return err("a string"),
                Some(Err(e)) => {
                    return Err(format!("{ptr}/pattern: pattern does not compile: {e}"));
                }
                Some(Ok(_)) => {}
            },
            "description" | "title" | "$comment" if !v.is_string() => return err("a string"),
            k if k != "$comment" && !KEYWORDS.split(", ").any(|w| w == k) => {
                return Err(format!(
                    "{here}: unsupported keyword `{k}` (supported: {KEYWORDS})"
                ));
            }
            _ => {}
        }
    }
    for (min, max) in [("minItems", "maxItems"), ("minLength", "maxLength")] {
        if let (Some(lo), Some(hi)) = (count(s, min), count(s, max))
            && lo > hi
        {
            return Err(format!(
                "{ptr}/{min}: {min} {lo} is greater than {max} {hi}"
            ));
        }
    }
    for t in types_of(s)
        .into_iter()
        .filter(|t| matches!(*t, "number" | "integer"))
    {
        let mut out = Vec::new();
        check_number(s, &sample_number(s, t == "integer"), "", &mut out);
        if !out.is_empty() {
            return Err(format!(
                "{here}: no {t} lies within minimum, maximum, exclusiveMinimum and exclusiveMaximum"
            ));
        }
    }
    let members = match (s.get("const"), s.get("enum")) {
        (Some(c), _) => vec![(format!("{ptr}/const"), c)],
        (None, Some(Value::Array(e))) => e
            .iter()
            .enumerate()
            .map(|(i, m)| (format!("{ptr}/enum/{i}"), m))
            .collect(),
        _ => Vec::new(),
    };
    for (p, member) in members {
        if let Some(v) = validate(schema, member).first() {
            let inside = if v.path == "/" {
                String::new()
            } else {
                format!(" at {}", v.path)
            };
            return Err(format!(
                "{p}: {member} can never be accepted{inside}: {}",
                v.rule
            ));
        }
    }
    Ok(())
}

fn walk(schema: &Value, value: &Value, path: &str, out: &mut Vec<Violation>) {
    let Some(s) = schema.as_object() else {
        return;
    };
    let fail = |out: &mut Vec<Violation>, rule: String| {
        out.push(Violation {
            path: at(path).to_string(),
            rule,
        })
    };
    if let Some(c) = s.get("const")
        && !same(c, value)
    {
        return fail(out, format!("expected {}, found {}", c, shown(value)));
    }
    if let Some(members) = s.get("enum").and_then(Value::as_array)
        && !members.iter().any(|m| same(m, value))
    {
        let list: Vec<String> = members
            .iter()
            .map(|m| m.as_str().map_or(m.to_string(), str::to_string))
            .collect();
        return fail(
            out,
            format!("{} is not one of {}", shown(value), list.join(", ")),
        );
    }
    let types = types_of(s);
    if s.contains_key("type") && !types.iter().any(|t| has_type(value, t)) {
        return fail(
            out,
            format!("expected {}, found {}", types.join(" or "), kind(value)),
        );
    }
    match value {
        Value::Object(fields) => {
            let props = s.get("properties").and_then(Value::as_object);
            for name in s
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !fields.contains_key(name) {
                    fail(out, format!("missing required property \"{name}\""));
                }
            }
            for (name, v) in fields {
                let sub = match props.and_then(|p| p.get(name)) {
                    Some(sub) => sub,
                    None => match s.get("additionalProperties") {
                        Some(Value::Bool(false)) => {
                            let names = props.map(|p| p.keys().cloned().collect::<Vec<_>>());
                            let allowed = names.filter(|n| !n.is_empty()).map(|n| n.join(", "));
                            let allowed = allowed.unwrap_or_else(|| "none".to_string());
                            fail(
                                out,
                                format!("property \"{name}\" is not allowed (allowed: {allowed})"),
                            );
                            continue;
                        }
                        Some(sub) => sub,
                        None => continue,
                    },
                };
                walk(sub, v, &format!("{path}/{}", escape(name)), out);
            }
        }
        Value::Array(items) => {
            let n = items.len() as u64;
            if let Some(min) = count(s, "minItems").filter(|min| n < *min) {
                fail(out, format!("expected at least {min} items, found {n}"));
            }
            if let Some(max) = count(s, "maxItems").filter(|max| n > *max) {
                fail(out, format!("expected at most {max} items, found {n}"));
            }
            if let Some(sub) = s.get("items") {
                for (i, item) in items.iter().enumerate() {
                    walk(sub, item, &format!("{path}/{i}"), out);
                }
            }
        }
        Value::String(text) => {
            let n = text.chars().count() as u64;
            if let Some(min) = count(s, "minLength").filter(|min| n < *min) {
                fail(
                    out,
                    format!("expected at least {min} characters, found {n}"),
                );
            }
            if let Some(max) = count(s, "maxLength").filter(|max| n > *max) {
                fail(out, format!("expected at most {max} characters, found {n}"));
            }
            let pattern = s.get("pattern").and_then(Value::as_str);
            if let Some(p) = pattern.filter(|p| Regex::new(p).is_ok_and(|re| !re.is_match(text))) {
                fail(
                    out,
                    format!("{} does not match the pattern {p}", shown(value)),
                );
            }
        }
        Value::Number(_) => check_number(s, value, path, out),
        _ => {}
    }
}

/// The bound checks of a number against `minimum` and the rest.
fn check_number(s: &Map<String, Value>, value: &Value, path: &str, out: &mut Vec<Violation>) {
    let Some(n) = value.as_number() else {
        return;
    };
    let rules = [
        ("minimum", "at least", Ordering::Less),
        ("exclusiveMinimum", "greater than", Ordering::Less),
        ("maximum", "at most", Ordering::Greater),
        ("exclusiveMaximum", "less than", Ordering::Greater),
    ];
    for (key, words, breaks) in rules {
        let Some(bound) = s.get(key).and_then(Value::as_number) else {
            continue;
        };
        let ord = compare(n, bound);
        if ord == breaks || (ord == Ordering::Equal && key.starts_with("exclusive")) {
            let rule = format!("expected a number {words} {bound}, found {n}");
            out.push(Violation {
                path: at(path).to_string(),
                rule,
            });
        }
    }
}

/// A number within the bounds: 0 when they allow it, else the inclusive
/// bound itself, the next integer past a bound, or the middle of two
/// exclusive ones. Arithmetic is in f64, so [`check_schema`] checks the
/// result rather than trusting it.
fn sample_number(s: &Map<String, Value>, integer: bool) -> Value {
    let zero = Value::from(0);
    let mut ok = Vec::new();
    check_number(s, &zero, "", &mut ok);
    if ok.is_empty() {
        return zero;
    }
    let bound = |key: &str| s.get(key).and_then(Value::as_number);
    // The tighter of each pair; on a tie the exclusive one.
    let lower = match (bound("minimum"), bound("exclusiveMinimum")) {
        (Some(m), Some(x)) if compare(x, m) == Ordering::Less => Some((m, false)),
        (m, x) => x.map(|x| (x, true)).or(m.map(|m| (m, false))),
    };
    let upper = match (bound("maximum"), bound("exclusiveMaximum")) {
        (Some(m), Some(x)) if compare(x, m) == Ordering::Greater => Some((m, false)),
        (m, x) => x.map(|x| (x, true)).or(m.map(|m| (m, false))),
    };
    let f = |n: &Number| n.as_f64().unwrap_or(0.0);
    match (lower, upper) {
        (Some((n, false)), _) if !integer || is_integer(n) => Value::Number(n.clone()),
        (Some((n, false)), _) => float(f(n).ceil()),
        (Some((n, true)), _) if integer => float(f(n).floor() + 1.0),
        (Some((n, true)), Some((h, _))) => float((f(n) + f(h)) / 2.0),
        (Some((n, true)), None) => float(f(n) + 1.0),
        (None, Some((n, false))) if !integer || is_integer(n) => Value::Number(n.clone()),
        (None, Some((n, false))) => float(f(n).floor()),
        (None, Some((n, true))) if integer => float(f(n).ceil() - 1.0),
        (None, Some((n, true))) => float(f(n) - 1.0),
        (None, None) => zero,
    }
}

fn float(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        Value::from(v as i64)
    } else {
        Number::from_f64(v).map_or(Value::Null, Value::Number)
    }
}

/// A number as written, split into sign, significant digits (no leading or
/// trailing zeros; empty for zero) and a power of ten: `-1.50e3` is
/// `(true, "15", 2)`.
fn decimal(n: &Number) -> (bool, String, i64) {
    let text = n.to_string();
    let (negative, text) = text
        .strip_prefix('-')
        .map_or((false, text.as_str()), |t| (true, t));
    let (mantissa, exp) = text.split_once(['e', 'E']).unwrap_or((text, "0"));
    // Past 2^40 an exponent changes no comparison made here.
    let exp = exp.parse::<i64>().unwrap_or(if exp.starts_with('-') {
        i64::MIN
    } else {
        i64::MAX
    });
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{int}{frac}");
    let digits = digits.trim_start_matches('0');
    let significant = digits.trim_end_matches('0');
    if significant.is_empty() {
        return (false, String::new(), 0);
    }
    let exp = exp.clamp(-(1 << 40), 1 << 40) - frac.len() as i64
        + (digits.len() - significant.len()) as i64;
    (negative, significant.to_string(), exp)
}

fn is_integer(n: &Number) -> bool {
    n.is_i64() || n.is_u64() || decimal(n).2 >= 0
}

/// Exact numeric order of two JSON numbers.
fn compare(a: &Number, b: &Number) -> Ordering {
    let sign = |(neg, digits, _): &(bool, String, i64)| {
        if digits.is_empty() {
            0
        } else if *neg {
            -1
        } else {
            1
        }
    };
    let (a, b) = (decimal(a), decimal(b));
    let by_sign = sign(&a).cmp(&sign(&b));
    if by_sign != Ordering::Equal || sign(&a) == 0 {
        return by_sign;
    }
    // Same sign: the larger magnitude has its leading digit further left,
    // or at the same place, the larger digits (no trailing zeros to pad).
    let magnitude = (a.1.len() as i64 + a.2)
        .cmp(&(b.1.len() as i64 + b.2))
        .then_with(|| a.1.cmp(&b.1));
    if a.0 { magnitude.reverse() } else { magnitude }
}

/// JSON equality with numbers compared by value.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare(x, y) == Ordering::Equal,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// The names in `type`, or the type the other keywords imply when it is
/// absent (what [`sample`] makes); empty when `type` is malformed.
fn types_of(s: &Map<String, Value>) -> Vec<&str> {
    let implied = |keys: &[&str]| keys.iter().any(|k| s.contains_key(*k));
    match s.get("type") {
        Some(Value::String(t)) if TYPES.contains(&t.as_str()) => vec![t.as_str()],
        Some(Value::Array(ts)) => {
            let names: Option<Vec<&str>> = ts
                .iter()
                .map(|t| t.as_str().filter(|t| TYPES.contains(t)))
                .collect();
            names.unwrap_or_default()
        }
        Some(_) => Vec::new(),
        None if implied(&["properties", "required", "additionalProperties"]) => vec!["object"],
        None if implied(&["items", "minItems", "maxItems"]) => vec!["array"],
        None if implied(&["minLength", "maxLength", "pattern"]) => vec!["string"],
        None if implied(&["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"]) => {
            vec!["number"]
        }
        None => vec!["null"],
    }
}

fn has_type(value: &Value, t: &str) -> bool {
    match (t, value) {
        ("integer", Value::Number(n)) => is_integer(n),
        _ => kind(value) == t,
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A value for a message: scalars as JSON (long strings cut), containers
/// by their kind.
fn shown(value: &Value) -> String {
    match value {
        Value::String(text) if text.chars().count() > 60 => {
            let start: String = text.chars().take(57).collect();
            format!("{}...", Value::String(start))
        }
        Value::Array(_) => "an array".to_string(),
        Value::Object(_) => "an object".to_string(),
        other => other.to_string(),
    }
}

fn count(s: &Map<String, Value>, key: &str) -> Option<u64> {
    s.get(key).and_then(Value::as_u64)
}

/// A JSON Pointer reference token (RFC 6901).
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// The pointer to show: `/` for the root.
fn at(ptr: &str) -> &str {
    if ptr.is_empty() { "/" } else { ptr }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// JSON as written, so numbers keep their digits.
    fn j(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    /// `path: rule` of every violation.
    fn errors(schema: &Value, value: &Value) -> Vec<String> {
        check_schema(schema).unwrap();
        validate(schema, value)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn type_names_and_lists() {
        let cases = [
            ("string", json!("a"), json!(1)),
            ("number", j("1.5"), json!("1.5")),
            ("integer", j("3"), j("1.5")),
            ("boolean", json!(false), json!(0)),
            ("null", json!(null), json!(false)),
            ("object", json!({}), json!([])),
            ("array", json!([]), json!({})),
        ];
        for (t, good, bad) in cases {
            let schema = json!({"type": t});
            assert_eq!(errors(&schema, &good), Vec::<String>::new(), "{t}");
            let expected = format!("/: expected {t}, found {}", kind(&bad));
            assert_eq!(errors(&schema, &bad), [expected], "{t}");
        }
        let nullable = json!({"type": ["string", "null"]});
        assert!(errors(&nullable, &json!(null)).is_empty());
        assert_eq!(
            errors(&nullable, &json!(2)),
            ["/: expected string or null, found number"]
        );
        assert_eq!(
            errors(&json!({"type": "integer"}), &json!("7")),
            ["/: expected integer, found string"]
        );
    }

    #[test]
    fn integers_are_numbers_without_a_fraction_whatever_their_size() {
        let integer = json!({"type": "integer"});
        for text in [
            "12345678901234567890123",
            "-12345678901234567890123",
            "3.0",
            "1e3",
            "1.5e1",
            "-0",
            "0.0e0",
            "100e-2",
        ] {
            assert!(errors(&integer, &j(text)).is_empty(), "{text}");
        }
        for text in [
            "1.5",
            "12345678901234567890123.5",
            "1.25e1",
            "1e-3",
            "123e-2",
        ] {
            assert_eq!(
                errors(&integer, &j(text)),
                ["/: expected integer, found number"],
                "{text}"
            );
        }
    }

    #[test]
    fn numbers_compare_exactly() {
        let bounded = j(r#"{"type": "number", "minimum": -1e25, "exclusiveMaximum": 0.1}"#);
        assert!(errors(&bounded, &j("0.09999999999999999999")).is_empty());
        assert!(errors(&bounded, &j("-10000000000000000000000000")).is_empty());
        assert_eq!(
            errors(&bounded, &j("0.10000000000000000001")),
            ["/: expected a number less than 0.1, found 0.10000000000000000001"]
        );
        assert_eq!(
            errors(&bounded, &j("1.0e-1")),
            ["/: expected a number less than 0.1, found 1.0e-1"]
        );
        assert_eq!(
            errors(&bounded, &j("-10000000000000000000000001")),
            ["/: expected a number at least -1e+25, found -10000000000000000000000001"]
        );
        let big = j(r#"{"maximum": 12345678901234567890123}"#);
        assert!(errors(&big, &j("12345678901234567890123")).is_empty());
        assert_eq!(errors(&big, &j("12345678901234567890124")).len(), 1);
    }

    #[test]
    fn numeric_bounds() {
        let s = json!({"type": "number", "minimum": 0, "maximum": 1});
        for ok in ["0", "1", "0.5", "1.0"] {
            assert!(errors(&s, &j(ok)).is_empty(), "{ok}");
        }
        assert_eq!(
            errors(&s, &j("-0.5")),
            ["/: expected a number at least 0, found -0.5"]
        );
        assert_eq!(
            errors(&s, &j("1.01")),
            ["/: expected a number at most 1, found 1.01"]
        );
        let s = json!({"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 10});
        assert!(errors(&s, &json!(1)).is_empty() && errors(&s, &json!(9)).is_empty());
        assert_eq!(
            errors(&s, &json!(0)),
            ["/: expected a number greater than 0, found 0"]
        );
        assert_eq!(
            errors(&s, &json!(10)),
            ["/: expected a number less than 10, found 10"]
        );
    }

    #[test]
    fn enum_and_const() {
        let kind = json!({"enum": ["INVOICE", "RECEIPT", "OTHER"]});
        assert!(errors(&kind, &json!("RECEIPT")).is_empty());
        assert_eq!(
            errors(&kind, &json!("FOO")),
            [r#"/: "FOO" is not one of INVOICE, RECEIPT, OTHER"#]
        );
        assert_eq!(
            errors(&kind, &json!({"a": 1})),
            ["/: an object is not one of INVOICE, RECEIPT, OTHER"]
        );
        // Numbers compare by value, containers member by member.
        let mixed = json!({"enum": [1, [2, {"a": null}], true]});
        assert!(errors(&mixed, &j("1.0")).is_empty());
        assert!(errors(&mixed, &j(r#"[2.0, {"a": null}]"#)).is_empty());
        assert_eq!(
            errors(&mixed, &json!("1")),
            [r#"/: "1" is not one of 1, [2,{"a":null}], true"#]
        );
        let fixed = json!({"const": "invoice"});
        assert!(errors(&fixed, &json!("invoice")).is_empty());
        assert_eq!(
            errors(&fixed, &json!("bill")),
            [r#"/: expected "invoice", found "bill""#]
        );
        let long = "y".repeat(100);
        let rule = &errors(&fixed, &json!(long))[0];
        assert!(
            rule.ends_with(&format!("found \"{}\"...", "y".repeat(57))),
            "{rule}"
        );
    }

    #[test]
    fn strings_count_scalar_values_and_search_patterns() {
        let s = json!({"type": "string", "minLength": 2, "maxLength": 3, "pattern": "[0-9]"});
        assert!(errors(&s, &json!("é🙂1")).is_empty());
        assert_eq!(
            errors(&s, &json!("1")),
            ["/: expected at least 2 characters, found 1"]
        );
        assert_eq!(
            errors(&s, &json!("é🙂12")),
            ["/: expected at most 3 characters, found 4"]
        );
        assert_eq!(
            errors(&s, &json!("ab")),
            [r#"/: "ab" does not match the pattern [0-9]"#]
        );
        let anchored = json!({"pattern": "^[A-Z]{2}$"});
        assert!(errors(&anchored, &json!("DE")).is_empty());
        assert_eq!(errors(&anchored, &json!("DEU")).len(), 1);
        // String keywords leave other types alone.
        assert!(errors(&anchored, &json!(12)).is_empty());
    }

    #[test]
    fn objects_and_arrays_with_pointers_to_nested_violations() {
        let schema = json!({
            "type": "object",
            "required": ["kind", "lines"],
            "additionalProperties": false,
            "properties": {
                "kind": {"enum": ["INVOICE", "RECEIPT"]},
                "lines": {
                    "type": "array", "minItems": 1, "maxItems": 3,
                    "items": {
                        "type": "object",
                        "required": ["category"],
                        "properties": {"category": {"enum": ["GOODS", "SERVICES"]}},
                        "additionalProperties": {"type": "number"}
                    }
                },
                "a/b~c": {"type": "string"}
            }
        });
        let good = json!({"kind": "INVOICE", "lines": [{"category": "GOODS", "qty": 2}]});
        assert!(errors(&schema, &good).is_empty());
        let bad = json!({
            "lines": [{"category": "GOODS"}, {"category": "FOOD", "qty": "2"}, {}],
            "extra": 1,
            "a/b~c": 5
        });
        assert_eq!(
            errors(&schema, &bad),
            [
                r#"/: missing required property "kind""#,
                "/a~1b~0c: expected string, found number",
                r#"/: property "extra" is not allowed (allowed: a/b~c, kind, lines)"#,
                r#"/lines/1/category: "FOOD" is not one of GOODS, SERVICES"#,
                "/lines/1/qty: expected number, found string",
                r#"/lines/2: missing required property "category""#,
            ]
        );
        assert_eq!(
            errors(&schema, &json!({"kind": "RECEIPT", "lines": []})),
            ["/lines: expected at least 1 items, found 0"]
        );
        let four = json!({"kind": "RECEIPT", "lines": vec![json!({"category": "GOODS"}); 4]});
        assert_eq!(
            errors(&schema, &four),
            ["/lines: expected at most 3 items, found 4"]
        );
        let closed = json!({"type": "object", "additionalProperties": false});
        assert_eq!(
            errors(&closed, &json!({"x": 1})),
            [r#"/: property "x" is not allowed (allowed: none)"#]
        );
        // Without additionalProperties, undescribed properties pass.
        let open = json!({"properties": {"a": {"type": "string"}}});
        assert!(errors(&open, &json!({"b": 1})).is_empty());
    }

    #[test]
    fn schema_errors_name_where_and_what() {
        let cases = [
            (
                json!({"properties": {"kind": {"enum": []}}}),
                "/properties/kind/enum: enum must be a non-empty list",
            ),
            (
                json!({"properties": {"x": {"oneOf": []}}}),
                "/properties/x: unsupported keyword `oneOf` (supported: type, enum, const, properties, required, additionalProperties, items, minItems, maxItems, minimum, maximum, exclusiveMinimum, exclusiveMaximum, minLength, maxLength, pattern, description, title, default)",
            ),
            (
                json!({"type": "text"}),
                "/type: type must be one of object, array, string, number, integer, boolean, null or a non-empty list of them",
            ),
            (
                json!({"type": []}),
                "/type: type must be one of object, array, string, number, integer, boolean, null or a non-empty list of them",
            ),
            (
                json!({"properties": []}),
                "/properties: properties must be a map of property names to schemas",
            ),
            (
                json!({"required": "a"}),
                "/required: required must be a list of property names",
            ),
            (
                json!({"properties": {"a": {}}, "required": ["a", "b"]}),
                r#"/required/1: required property "b" is not described in properties"#,
            ),
            (
                json!({"items": true}),
                "/items: a schema must be a map (true and false are taken only as additionalProperties)",
            ),
            (
                json!(false),
                "/: a schema must be a map (true and false are taken only as additionalProperties)",
            ),
            (
                json!({"items": "string"}),
                "/items: a schema must be a map, found string",
            ),
            (
                json!({"additionalProperties": {"type": 1}}),
                "/additionalProperties/type: type must be one of object, array, string, number, integer, boolean, null or a non-empty list of them",
            ),
            (
                json!({"minItems": -1}),
                "/minItems: minItems must be a non-negative integer",
            ),
            (
                json!({"maxLength": 1.5}),
                "/maxLength: maxLength must be a non-negative integer",
            ),
            (
                json!({"exclusiveMinimum": true}),
                "/exclusiveMinimum: exclusiveMinimum must be a number",
            ),
            (json!({"title": 3}), "/title: title must be a string"),
            (
                json!({"minItems": 3, "maxItems": 2}),
                "/minItems: minItems 3 is greater than maxItems 2",
            ),
            (
                json!({"minLength": 3, "maxLength": 2}),
                "/minLength: minLength 3 is greater than maxLength 2",
            ),
            (
                json!({"properties": {"n": {"minimum": 2, "maximum": 1}}}),
                "/properties/n: no number lies within minimum, maximum, exclusiveMinimum and exclusiveMaximum",
            ),
            (
                json!({"type": "number", "minimum": 1, "exclusiveMaximum": 1}),
                "/: no number lies within minimum, maximum, exclusiveMinimum and exclusiveMaximum",
            ),
            (
                json!({"type": ["string", "integer"], "minimum": 1.2, "maximum": 1.8}),
                "/: no integer lies within minimum, maximum, exclusiveMinimum and exclusiveMaximum",
            ),
            (
                json!({"type": "string", "enum": ["A", 1]}),
                "/enum/1: 1 can never be accepted: expected string, found number",
            ),
            (
                json!({"properties": {"a": {"type": "string"}}, "const": {"a": 1}}),
                "/const: {\"a\":1} can never be accepted at /a: expected string, found number",
            ),
            (
                json!({"type": "array", "minItems": 1000, "items": {"type": "array", "minItems": 1000}}),
                "/: the smallest answer this schema allows has over 100000 values and characters",
            ),
        ];
        for (schema, expected) in cases {
            assert_eq!(check_schema(&schema), Err(expected.to_string()), "{schema}");
        }
        let bad_pattern =
            check_schema(&json!({"properties": {"a": {"pattern": "(["}}})).unwrap_err();
        assert!(
            bad_pattern.starts_with("/properties/a/pattern: pattern does not compile: "),
            "{bad_pattern}"
        );
        // Annotations and satisfiable ranges pass.
        let fine = json!({"title": "t", "description": "d", "$comment": "c", "default": [1], "type": "integer", "minimum": 1.2, "maximum": 2});
        assert_eq!(check_schema(&fine), Ok(()));
    }

    #[test]
    fn nesting_is_limited_to_32_levels() {
        let nest = |levels: usize| {
            (0..levels).fold(
                json!({"type": "string"}),
                |inner, _| json!({"items": inner}),
            )
        };
        assert_eq!(check_schema(&nest(32)), Ok(()));
        let deep = check_schema(&nest(33)).unwrap_err();
        assert_eq!(
            deep,
            format!(
                "{}: schemas nested deeper than 32 levels are not supported",
                "/items".repeat(33)
            )
        );
    }

    #[test]
    fn samples() {
        let cases = [
            (
                json!({"type": "object", "properties": {"kind": {"enum": ["INVOICE", "RECEIPT"]}, "confidence": {"type": "number", "minimum": 0, "maximum": 1}}, "required": ["kind"]}),
                json!({"kind": "INVOICE"}),
            ),
            (
                json!({"type": "string", "enum": ["GOODS", "SERVICES", "FREIGHT"]}),
                json!("GOODS"),
            ),
            (json!({"const": {"a": 1}}), json!({"a": 1})),
            (json!({"type": "string", "minLength": 3}), json!("xxx")),
            (
                json!({"type": "array", "minItems": 2, "items": {"type": "boolean"}}),
                json!([false, false]),
            ),
            (json!({"type": "number", "minimum": 2.5}), j("2.5")),
            (json!({"type": "integer", "minimum": 2.5}), json!(3)),
            (json!({"type": "integer", "exclusiveMinimum": 2}), json!(3)),
            (
                json!({"type": "number", "exclusiveMinimum": 2, "maximum": 3}),
                j("2.5"),
            ),
            (json!({"type": "number", "exclusiveMaximum": -2}), json!(-3)),
            (json!({"type": "integer", "maximum": -2.5}), json!(-3)),
            (json!({"type": ["null", "string"]}), json!(null)),
            (json!({"description": "anything"}), json!(null)),
        ];
        for (schema, expected) in cases {
            assert_eq!(check_schema(&schema), Ok(()), "{schema}");
            assert_eq!(sample(&schema), expected, "{schema}");
            assert!(validate(&schema, &sample(&schema)).is_empty(), "{schema}");
        }
    }

    /// Schemas from the supported subset, often contradictory, over a few
    /// property names and values so that answers and enums meet.
    fn schema_strategy(patterns: bool) -> impl Strategy<Value = Value> {
        let bound = prop_oneof![
            Just(json!(-1)),
            Just(json!(0)),
            Just(j("0.5")),
            Just(json!(1)),
            Just(json!(2))
        ];
        let size = 0u64..4;
        let key = prop::sample::select(vec!["a", "b", "c"]);
        let constant = prop_oneof![
            Just(json!("x")),
            Just(json!("")),
            Just(json!(1)),
            Just(j("1.0")),
            Just(json!(null)),
            Just(json!(true))
        ];
        let pattern = if patterns {
            prop::sample::select(vec!["x", "^x$", "^$"]).boxed()
        } else {
            Just("").boxed()
        };
        let keyword = (
            prop::sample::select(vec![
                "type",
                "enum",
                "const",
                "minItems",
                "maxItems",
                "minLength",
                "maxLength",
                "pattern",
                "minimum",
                "maximum",
                "exclusiveMinimum",
                "exclusiveMaximum",
            ]),
            prop::sample::subsequence(TYPES.to_vec(), 1..3),
            prop::collection::vec(constant.clone(), 1..3),
            constant,
            bound,
            size,
            pattern,
        )
            .prop_filter_map("patterns left out", |(k, types, members, c, b, n, p)| {
                let v = match k {
                    "type" if types.len() == 1 => json!(types[0]),
                    "type" => json!(types),
                    "enum" => Value::Array(members),
                    "const" => c,
                    "pattern" if p.is_empty() => return None,
                    "pattern" => json!(p),
                    "minItems" | "maxItems" | "minLength" | "maxLength" => json!(n),
                    _ => b,
                };
                Some((k.to_string(), v))
            });
        let leaf = prop::collection::vec(keyword, 0..4)
            .prop_map(|kv| Value::Object(kv.into_iter().collect()));
        leaf.prop_recursive(3, 24, 4, move |inner| {
            prop_oneof![
                (
                    prop::collection::btree_map(key.clone(), inner.clone(), 0..3),
                    prop::sample::subsequence(vec!["a", "b", "c"], 0..3),
                    any::<Option<bool>>()
                )
                    .prop_map(|(props, required, closed)| {
                        let required: Vec<&str> = required
                            .into_iter()
                            .filter(|r| props.contains_key(r))
                            .collect();
                        let mut s =
                            json!({"type": "object", "properties": props, "required": required});
                        if let Some(closed) = closed {
                            s["additionalProperties"] = json!(!closed);
                        }
                        s
                    }),
                (inner, 0u64..3).prop_map(
                    |(items, min)| json!({"type": "array", "items": items, "minItems": min})
                ),
            ]
        })
    }

    /// Answers of the kinds the schemas above describe.
    fn value_strategy() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(json!(null)),
            Just(json!(true)),
            Just(json!(-1)),
            Just(json!(0)),
            Just(j("0.5")),
            Just(json!(1)),
            Just(j("1.0")),
            Just(json!(2)),
            Just(json!("")),
            Just(json!("x")),
            Just(json!("xx")),
            Just(json!("ab")),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop::sample::select(vec!["a", "b", "c", "d"]),
                    inner,
                    0..4
                )
                .prop_map(|m| Value::Object(
                    m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
                )),
            ]
        })
    }

    proptest! {
        #[test]
        fn a_sample_passes_every_schema_check_schema_takes(schema in schema_strategy(false)) {
            if check_schema(&schema).is_ok() {
                let value = sample(&schema);
                let broken = validate(&schema, &value);
                prop_assert!(broken.is_empty(), "{} breaks {}: {:?}", value, schema, broken);
            }
        }

        #[test]
        fn validation_agrees_with_a_full_json_schema_validator(schema in schema_strategy(true), value in value_strategy()) {
            if check_schema(&schema).is_ok() {
                let full = jsonschema::validator_for(&schema).expect("schema compiles");
                let ours = validate(&schema, &value);
                prop_assert_eq!(ours.is_empty(), full.is_valid(&value), "{} against {}: {:?}", value, schema, ours);
            }
        }
    }
}
