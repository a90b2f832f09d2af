//! What a client read, checked here: the client programs for suds, node
//! soap, SOAP::Lite, .NET and gSOAP print each response they read through
//! their own object model as JSON on a `read` line —
//! `read\tSERVICE\tOPERATION\tVERSION\tKIND\tLABEL\tJSON`, KIND `response`,
//! `ticket` (the result of a ticket polled to DONE) or `fault` (a declared
//! fault's detail element, checked against that fault's rules) — and this module
//! checks it against the operation's rules (derived from the contract in
//! `real_clients.rs`), turning the line into the `ok`/`FAIL` line the
//! verdict reads. zeep, PHP and JAX-WS check their rules themselves and
//! print no `read` line.
//!
//! Values may come typed (JSON numbers and booleans, from .NET and node
//! soap) or as the XML's text (SOAP::Lite and gSOAP hand back strings), so
//! a number, integer or boolean rule accepts either form.

use std::collections::BTreeMap;

use regex::Regex;
use serde_json::Value;

use crate::real_clients::{ExampleOp, Rule};

/// `stdout` with every `read` line replaced by the `ok` or `FAIL` line of
/// its checks. Lines naming no known operation become `FAIL` lines too.
pub(crate) fn resolve(stdout: &str, ops: &[ExampleOp]) -> String {
    let mut out = String::with_capacity(stdout.len());
    for line in stdout.lines() {
        match line.strip_prefix("read\t") {
            Some(rest) => out.push_str(&judge_read(rest, ops)),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

fn judge_read(rest: &str, ops: &[ExampleOp]) -> String {
    let fields: Vec<&str> = rest.splitn(6, '\t').collect();
    let [service, operation, _version, kind, label, json] = fields[..] else {
        return format!("FAIL malformed read line: {rest}");
    };
    let Some(op) = ops
        .iter()
        .find(|o| o.service == service && o.operation == operation)
    else {
        return format!(
            "FAIL {label}: read a response of {service}.{operation}, which the manifest does not list"
        );
    };
    let tree: Value = match serde_json::from_str(json) {
        Ok(v) => v,
        Err(e) => return format!("FAIL {label}: the client's JSON does not parse ({e}): {json}"),
    };
    // A declared fault's detail is checked against the fault's rules.
    let rules = match (kind, &op.declared) {
        ("fault", Some(declared)) => &declared.rules,
        ("fault", None) => {
            return format!(
                "FAIL {label}: read a declared fault of {service}.{operation}, which offers none"
            );
        }
        _ => &op.rules,
    };
    let tree = rewrap(tree, &field_names(rules));
    let problems = check(&tree, rules);
    let mut shown = tree.to_string();
    if shown.len() > 300 {
        let cut = (0..=300)
            .rev()
            .find(|&i| shown.is_char_boundary(i))
            .unwrap_or(0);
        shown.truncate(cut);
        shown.push_str("...");
    }
    if !problems.is_empty() {
        return format!("FAIL {label}: {} (read: {shown})", problems.join("; "));
    }
    let n = rules.len();
    match kind {
        "ticket" => format!("ok   {label}: ticket polled to DONE, {n} rule(s) checked: {shown}"),
        "fault" => format!("ok   {label}; detail read, {n} rule(s) checked: {shown}"),
        _ => format!("ok   {label}: response read, {n} rule(s) checked: {shown}"),
    }
}

/// `{object path: its field names}` from the `children` rules, attribute
/// names without their `@`.
fn field_names(rules: &[Rule]) -> BTreeMap<String, Vec<String>> {
    rules
        .iter()
        .filter(|r| r.kind == "children")
        .map(|r| {
            let names = r
                .arg
                .split('|')
                .map(|n| n.trim_start_matches('@').to_string())
                .collect();
            (r.path.clone(), names)
        })
        .collect()
}

fn join(path: &str, step: &str) -> String {
    if path.is_empty() {
        step.to_string()
    } else {
        format!("{path}/{step}")
    }
}

fn fits(tree: &Value, path: &str, fields: &BTreeMap<String, Vec<String>>) -> bool {
    if let Value::Array(items) = tree {
        return !items.is_empty() && items.iter().all(|i| fits(i, path, fields));
    }
    let Some(names) = fields.get(path) else {
        return !tree.is_object();
    };
    let Value::Object(map) = tree else {
        return false;
    };
    map.iter()
        .filter(|(_, v)| !v.is_null())
        .all(|(k, _)| names.iter().any(|n| n == k.trim_start_matches('@')))
}

/// A client may hand back the only child of a response wrapper (or the only
/// rpc part) unwrapped, even more than one level deep: wrap the value again
/// under the names the contract gives, until it fits.
fn rewrap(mut tree: Value, fields: &BTreeMap<String, Vec<String>>) -> Value {
    let mut chain = Vec::new();
    let mut path = String::new();
    while !fits(&tree, &path, fields) {
        match fields.get(&path).map(Vec::as_slice) {
            Some([only]) => {
                chain.push(only.clone());
                path = join(&path, only);
            }
            _ => break,
        }
    }
    for name in chain.into_iter().rev() {
        let mut map = serde_json::Map::new();
        map.insert(name, tree);
        tree = Value::Object(map);
    }
    tree
}

/// Every value at `path` (`/`-separated names; lists flattened at each
/// step; absent and null values left out). An attribute is found by its
/// name with or without `@`.
fn values_at<'a>(root: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut current: Vec<&Value> = match root {
        Value::Array(items) => items.iter().collect(),
        v => vec![v],
    };
    for step in path.split('/') {
        let bare = step.trim_start_matches('@');
        let mut found = Vec::new();
        for v in current {
            let Value::Object(map) = v else { continue };
            let hit = map
                .get(step)
                .or_else(|| map.get(bare))
                .or_else(|| map.get(&format!("@{bare}")));
            match hit {
                Some(Value::Array(items)) => found.extend(items.iter().filter(|i| !i.is_null())),
                Some(Value::Null) | None => {}
                Some(x) => found.push(x),
            }
        }
        current = found;
    }
    current
}

/// A scalar as the client read it: its text, and its number if it has one.
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn number_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) if is_decimal(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn is_decimal(s: &str) -> bool {
    let s = s.trim();
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exponent) = match digits.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e)),
        None => (digits, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |p: &str| p.chars().all(|c| c.is_ascii_digit());
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && all_digits(e)
    });
    !(int.is_empty() && frac.is_empty()) && all_digits(int) && all_digits(frac) && exponent_ok
}

fn type_ok(kind: &str, v: &Value) -> bool {
    match kind {
        "string" => v.is_string(),
        "number" => number_of(v).is_some(),
        "integer" => match v {
            Value::Number(n) => {
                n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            Value::String(s) => {
                let s = s.trim();
                let d = s.strip_prefix(['+', '-']).unwrap_or(s);
                !d.is_empty() && d.chars().all(|c| c.is_ascii_digit())
            }
            _ => false,
        },
        "boolean" => match v {
            Value::Bool(_) => true,
            Value::String(s) => matches!(s.trim(), "true" | "false" | "1" | "0"),
            _ => false,
        },
        _ => false,
    }
}

/// The broken rules, as messages.
pub(crate) fn check(tree: &Value, rules: &[Rule]) -> Vec<String> {
    let mut problems = Vec::new();
    for Rule { path, kind, arg } in rules {
        let values = if path.is_empty() {
            vec![tree]
        } else {
            values_at(tree, path)
        };
        let shown_path = if path.is_empty() { "(root)" } else { path };
        match *kind {
            "children" => {
                let names: Vec<&str> = arg.split('|').map(|n| n.trim_start_matches('@')).collect();
                for v in &values {
                    let Value::Object(map) = v else {
                        problems.push(format!("{shown_path}: {v} is not an object"));
                        continue;
                    };
                    let extra: Vec<&String> = map
                        .iter()
                        .filter(|(k, x)| {
                            !x.is_null()
                                && *k != "#text"
                                && !names.contains(&k.trim_start_matches('@'))
                        })
                        .map(|(k, _)| k)
                        .collect();
                    if !extra.is_empty() {
                        problems.push(format!(
                            "{shown_path}: unexpected field(s) {extra:?}, expected {names:?}"
                        ));
                    }
                }
                continue;
            }
            "required" => {
                if values.is_empty() {
                    problems.push(format!("{path}: required, absent"));
                }
                continue;
            }
            "maxItems" => {
                let max: usize = arg.parse().unwrap_or(usize::MAX);
                if values.len() > max {
                    problems.push(format!(
                        "{path}: {} values, at most {arg} allowed",
                        values.len()
                    ));
                }
                continue;
            }
            _ => {}
        }
        for v in values {
            // An element with attributes and text: the rules on its value
            // apply to the text.
            let v = match v {
                Value::Object(map) if map.contains_key("#text") && *kind != "children" => {
                    &map["#text"]
                }
                v => v,
            };
            let bad = match *kind {
                "type" => (!type_ok(arg, v)).then(|| format!("not a {arg}")),
                "enum" => {
                    (!arg.split('|').any(|e| e == text_of(v))).then(|| format!("not one of {arg}"))
                }
                "pattern" => match Regex::new(arg) {
                    Ok(re) => (!re.is_match(&text_of(v))).then(|| format!("does not match {arg}")),
                    Err(e) => Some(format!("pattern {arg} does not compile here: {e}")),
                },
                "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum" => {
                    match (number_of(v), arg.parse::<f64>()) {
                        (Some(n), Ok(limit)) => {
                            let ok = match *kind {
                                "minimum" => n >= limit,
                                "maximum" => n <= limit,
                                "exclusiveMinimum" => n > limit,
                                _ => n < limit,
                            };
                            (!ok).then(|| format!("out of range ({kind} {arg})"))
                        }
                        _ => Some(format!("{kind} {arg} on a non-number")),
                    }
                }
                "minLength" => (text_of(v).chars().count() < arg.parse().unwrap_or(0))
                    .then(|| format!("shorter than {arg}")),
                "maxLength" => (text_of(v).chars().count() > arg.parse().unwrap_or(usize::MAX))
                    .then(|| format!("longer than {arg}")),
                "nonempty" => (!matches!(v, Value::String(s) if !s.trim().is_empty()))
                    .then(|| "empty text".to_string()),
                _ => None,
            };
            if let Some(bad) = bad {
                problems.push(format!("{path} = {v}: {bad}"));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(path: &str, kind: &'static str, arg: &str) -> Rule {
        Rule {
            path: path.into(),
            kind,
            arg: arg.into(),
        }
    }

    #[test]
    fn a_lone_child_is_wrapped_back_and_lexical_values_pass_typed_rules() {
        let rules = vec![
            rule("", "children", "Result"),
            rule("Result", "required", ""),
            rule("Result", "children", "Flag|Count|@unit"),
            rule("Result/Flag", "type", "boolean"),
            rule("Result/Count", "type", "integer"),
            rule("Result/Count", "maximum", "5"),
        ];
        let tree = rewrap(
            serde_json::json!({"Flag": "true", "Count": "4", "@unit": "mm"}),
            &field_names(&rules),
        );
        assert_eq!(check(&tree, &rules), Vec::<String>::new(), "{tree}");
        let bad = serde_json::json!({"Result": {"Flag": "yes", "Count": 6.5, "Other": 1}});
        let problems = check(&bad, &rules);
        assert_eq!(problems.len(), 4, "{problems:?}");
    }
}
