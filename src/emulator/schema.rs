//! Sample JSON for a JSON Schema: what the emulator answers when a tool is
//! forced, so structured-output mappings can be exercised without a model.
//!
//! Covers the subset soapgate's XSD-derived schemas and hand-written tool
//! schemas use: `type` (also as an array, for nullable values), `properties`,
//! `required`, `additionalProperties`, `enum`, `const`, string lengths,
//! `pattern`, `format` (date, date-time, time, duration, email, uri, uuid;
//! a format's everyday value is preferred when the patterns take it too),
//! numeric ranges (inclusive and exclusive, draft 4 and 2020 styles),
//! `multipleOf`,
//! array `items`/`prefixItems`, `minItems`/`maxItems`/`uniqueItems`,
//! `allOf` (merged; every pattern of every part must match), `anyOf`/`oneOf`
//! (one branch, the seed's pick, so seeds between them take every branch),
//! and local `$ref`s into `$defs`/`definitions`. Generation is
//! deterministic for a seed.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};

use serde_json::{Map, Value, json};

use super::pattern::matching_string;

/// A small deterministic generator (splitmix64): answers must be the same
/// for the same request, and nothing here needs cryptographic randomness.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            usize::try_from(self.next() % n as u64).unwrap_or(0)
        }
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Past this depth objects get only their required properties and arrays
/// their minimum items, so recursive schemas end.
const SHALLOW_DEPTH: usize = 8;
/// Past this depth generation gives up with `null`.
const MAX_DEPTH: usize = 24;
/// Past this many schema nodes visited, the rest of the value is as small
/// as the schema allows (required properties, minimum items), as past
/// [`SHALLOW_DEPTH`]: a UBL invoice has some thirty optional parts per
/// aggregate, and every one of them filled, level after level, would run
/// into [`MAX_STEPS`] and answer `null`s the schema refuses.
const SOFT_STEPS: usize = 4_000;
/// Schema nodes visited per value at most: `allOf` of several `$ref`s to
/// the root would otherwise branch exponentially before the depth cap.
const MAX_STEPS: usize = 20_000;
/// Caps on what a schema can ask for, so a typo such as `minItems: 1e9`
/// costs an odd answer rather than the emulator's memory.
const MAX_ITEMS: usize = 1_000;
const MAX_STRING: usize = 4_096;

const WORDS: [&str; 16] = [
    "sample", "value", "invoice", "order", "alpha", "delta", "north", "green", "ledger", "account",
    "river", "stone", "amber", "quartz", "harbor", "maple",
];

/// A value that satisfies `schema`, as far as the subset above allows.
/// Different seeds give different (equally valid) values.
pub fn sample(schema: &Value, seed: u64) -> Value {
    let mut generator = Generator {
        root: schema,
        rng: Rng::new(seed),
        steps: 0,
    };
    generator.value(schema, 0)
}

struct Generator<'a> {
    root: &'a Value,
    rng: Rng,
    steps: usize,
}

impl Generator<'_> {
    /// Whether only what the schema requires is generated from here on.
    fn shallow(&self, depth: usize) -> bool {
        depth >= SHALLOW_DEPTH || self.steps >= SOFT_STEPS
    }

    fn value(&mut self, schema: &Value, depth: usize) -> Value {
        self.steps += 1;
        if depth > MAX_DEPTH || self.steps > MAX_STEPS {
            return Value::Null;
        }
        let schema = match schema {
            Value::Object(map) => map,
            Value::Bool(false) => return Value::Null,
            _ => return Value::String("value".to_string()),
        };
        let schema = self.flatten(schema, depth);
        if let Some(value) = schema.get("const") {
            return value.clone();
        }
        if let Some(Value::Array(options)) = schema.get("enum")
            && !options.is_empty()
        {
            return options[self.rng.below(options.len())].clone();
        }
        // A nullable value (`type: [.., "null"]`, a nillable element) is
        // null one time in eight, as an `anyOf` with a null branch is.
        if nullable(&schema) && self.rng.below(8) == 0 {
            return Value::Null;
        }
        match type_of(&schema) {
            "object" => self.object(&schema, depth),
            "array" => self.array(&schema, depth),
            "integer" => self.integer(&schema),
            "number" => self.number(&schema),
            "boolean" => Value::Bool(self.rng.below(2) == 0),
            "null" => Value::Null,
            _ => self.string(&schema),
        }
    }

    /// Resolves `$ref` and merges `allOf` and one `anyOf`/`oneOf` branch
    /// into one schema, so the rest of generation sees plain keywords. The
    /// branch is the seed's pick, so answers across seeds take every
    /// branch (a choice's elements, a union's members, each padding of a
    /// base64 length); a `null` branch (a nillable element) only one time
    /// in eight.
    fn flatten(&mut self, schema: &Map<String, Value>, depth: usize) -> Map<String, Value> {
        let mut base = schema.clone();
        self.steps += 1;
        if depth > MAX_DEPTH || self.steps > MAX_STEPS {
            return base;
        }
        let root = self.root;
        if let Some(Value::String(reference)) = base.remove("$ref")
            && let Some(Value::Object(target)) = resolve(root, &reference)
        {
            let target = self.flatten(target, depth + 1);
            merge_into(&mut base, &target);
        }
        let mut parts = Vec::new();
        if let Some(Value::Array(all)) = base.remove("allOf") {
            parts.extend(all);
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(Value::Array(branches)) = base.remove(key)
                && let Some(branch) = self.branch(branches)
            {
                parts.push(branch);
            }
        }
        for part in parts {
            if let Value::Object(part) = part {
                let part = self.flatten(&part, depth + 1);
                merge_into(&mut base, &part);
            }
        }
        base
    }

    /// One of `anyOf`/`oneOf`'s branches, `null` rarely (see
    /// [`flatten`](Self::flatten)).
    fn branch(&mut self, mut branches: Vec<Value>) -> Option<Value> {
        let is_null = |b: &Value| *b == json!({"type": "null"});
        if branches.len() > 1 && branches.iter().any(is_null) && self.rng.below(8) != 0 {
            branches.retain(|b| !is_null(b));
        }
        if branches.is_empty() {
            return None;
        }
        let pick = self.rng.below(branches.len());
        Some(branches.swap_remove(pick))
    }

    fn object(&mut self, schema: &Map<String, Value>, depth: usize) -> Value {
        let required: Vec<&str> = match schema.get("required") {
            Some(Value::Array(r)) => r.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let mut out = Map::new();
        if let Some(Value::Object(properties)) = schema.get("properties") {
            for (name, property) in properties {
                if self.shallow(depth) && !required.contains(&name.as_str()) {
                    continue;
                }
                let value = self.value(property, depth + 1);
                out.insert(name.clone(), value);
            }
        }
        let additional = schema.get("additionalProperties");
        for name in &required {
            if !out.contains_key(*name) {
                let value = match additional {
                    Some(extra @ Value::Object(_)) => self.value(extra, depth + 1),
                    _ => Value::String("value".to_string()),
                };
                out.insert((*name).to_string(), value);
            }
        }
        let min_properties = usize_of(schema, "minProperties")
            .unwrap_or(0)
            .min(MAX_ITEMS);
        let mut n = 0;
        while out.len() < min_properties && !matches!(additional, Some(Value::Bool(false))) {
            n += 1;
            let value = match additional {
                Some(extra @ Value::Object(_)) => self.value(extra, depth + 1),
                _ => Value::String("value".to_string()),
            };
            out.insert(format!("extra{n}"), value);
        }
        Value::Object(out)
    }

    fn array(&mut self, schema: &Map<String, Value>, depth: usize) -> Value {
        let min = usize_of(schema, "minItems").unwrap_or(0).min(MAX_ITEMS);
        let max = usize_of(schema, "maxItems");
        let mut count = (1 + self.rng.below(3)).max(min);
        if self.shallow(depth) {
            count = min;
        }
        if let Some(max) = max {
            count = count.min(max);
        }
        let prefix: Vec<Value> = match (schema.get("prefixItems"), schema.get("items")) {
            (Some(Value::Array(p)), _) | (None, Some(Value::Array(p))) => p.clone(),
            _ => Vec::new(),
        };
        let items = match schema.get("items") {
            Some(items @ (Value::Object(_) | Value::Bool(_))) => Some(items.clone()),
            _ => None,
        };
        let unique = schema.get("uniqueItems") == Some(&Value::Bool(true));
        let mut out: Vec<Value> = Vec::new();
        let mut tries = 0;
        while out.len() < count.max(prefix.len().min(max.unwrap_or(usize::MAX)))
            && tries < count * 16 + 16
        {
            tries += 1;
            let item_schema = prefix
                .get(out.len())
                .cloned()
                .or_else(|| items.clone())
                .unwrap_or_else(|| json!({"type": "string"}));
            let value = self.value(&item_schema, depth + 1);
            if unique && out.contains(&value) {
                continue;
            }
            out.push(value);
        }
        Value::Array(out)
    }

    fn integer(&mut self, schema: &Map<String, Value>) -> Value {
        let (lo, hi) = bounds(schema);
        let mut lo = lo.map_or(i64::MIN, |(v, exclusive)| {
            let c = v.ceil();
            let c = if exclusive && c == v { c + 1.0 } else { c };
            clamp_i64(c)
        });
        let mut hi = hi.map_or(i64::MAX, |(v, exclusive)| {
            let f = v.floor();
            let f = if exclusive && f == v { f - 1.0 } else { f };
            clamp_i64(f)
        });
        match (lo == i64::MIN, hi == i64::MAX) {
            (true, true) => {
                lo = 1;
                hi = 100;
            }
            (true, false) => {
                lo = if hi >= 1 {
                    1.min(hi)
                } else {
                    hi.saturating_sub(100)
                }
            }
            (false, true) => hi = lo.saturating_add(100),
            (false, false) => {}
        }
        // Prefer small, friendly numbers when the range allows them.
        if lo <= 1 && hi >= 100 && lo != hi {
            lo = lo.max(1);
            hi = hi.min(100);
        }
        if lo > hi {
            return Value::from(lo);
        }
        let step = match schema.get("multipleOf").and_then(Value::as_f64) {
            Some(m) if m >= 1.0 && m.fract() == 0.0 => clamp_i64(m),
            _ => 1,
        };
        let first = lo.div_euclid(step) + i64::from(lo.rem_euclid(step) != 0);
        let last = hi.div_euclid(step);
        if first > last {
            return Value::from(lo);
        }
        let span = usize::try_from(last.saturating_sub(first)).unwrap_or(usize::MAX);
        let k = first
            .saturating_add(i64::try_from(self.rng.below(span.saturating_add(1))).unwrap_or(0));
        Value::from(k.saturating_mul(step))
    }

    fn number(&mut self, schema: &Map<String, Value>) -> Value {
        let (lo, hi) = bounds(schema);
        let (lo_v, lo_x) = lo.unwrap_or((f64::NAN, false));
        let (hi_v, hi_x) = hi.unwrap_or((f64::NAN, false));
        let (lo_v, hi_v) = match (lo_v.is_nan(), hi_v.is_nan()) {
            (true, true) => (0.0, 1000.0),
            (true, false) => (hi_v.min(0.0) - if hi_v <= 0.0 { 100.0 } else { 0.0 }, hi_v),
            (false, true) => (lo_v, lo_v.max(0.0) + 1000.0),
            (false, false) => (lo_v, hi_v),
        };
        let inside = |v: f64| {
            (if lo_x { v > lo_v } else { v >= lo_v }) && (if hi_x { v < hi_v } else { v <= hi_v })
        };
        if let Some(m) = schema.get("multipleOf").and_then(Value::as_f64)
            && m > 0.0
        {
            let decimals = decimals_of(m);
            let first = (lo_v / m).ceil();
            let last = (hi_v / m).floor();
            for _ in 0..16 {
                if first > last {
                    break;
                }
                let span = (last - first).min(1e6) as usize;
                let k = first + self.rng.below(span + 1) as f64;
                let v = round_to(k * m, decimals);
                if inside(v) {
                    return json_number(v);
                }
            }
            return json_number(round_to(first * m, decimals));
        }
        for _ in 0..16 {
            let v = round_to(lo_v + (hi_v - lo_v) * self.rng.unit(), 2);
            if inside(v) {
                return json_number(v);
            }
        }
        json_number((lo_v + hi_v) / 2.0)
    }

    fn string(&mut self, schema: &Map<String, Value>) -> Value {
        let min = usize_of(schema, "minLength").unwrap_or(0).min(MAX_STRING);
        let max = usize_of(schema, "maxLength");
        // Every pattern must match: the type's own, those of the types it
        // restricts, and its format's lexical form (`allOf` parts).
        let patterns = patterns_of(schema);
        let fits_all = |s: &str| patterns.iter().all(|p| pattern_matches(p, s));
        // A format's everyday values first (2024-05-17T13:45:00Z, with or
        // without a zone), when the patterns take one: a pattern spelling
        // out a format's whole lexical space would otherwise give years
        // such as -48213.
        let formatted = self.formatted(schema, min, max);
        if let Some(s) = formatted.iter().find(|s| fits_all(s)) {
            return Value::String(s.clone());
        }
        // Then strings of each pattern in turn until one suits them all.
        for _ in 0..16 {
            for source in &patterns {
                if let Some(s) = matching_string(source, min, max, &mut self.rng)
                    && fits_all(&s)
                {
                    return Value::String(s);
                }
            }
        }
        if let Some(s) = formatted.into_iter().next() {
            return Value::String(s);
        }
        let target = (8 + self.rng.below(16))
            .max(min)
            .min(max.unwrap_or(usize::MAX));
        let mut text = String::new();
        while text.chars().count() < target {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(WORDS[self.rng.below(WORDS.len())]);
        }
        let mut text: String = text.chars().take(target).collect();
        // A trailing space reads badly and may break a whitespace facet.
        if text.ends_with(' ') {
            text.pop();
            text.push('x');
        }
        Value::String(text)
    }

    /// Values of the schema's `format`, if it names one we know, that fit
    /// the lengths: everyday ones, in the forms a pattern may narrow the
    /// format to (a date-time with `Z`, an offset or no zone).
    fn formatted(
        &mut self,
        schema: &Map<String, Value>,
        min: usize,
        max: Option<usize>,
    ) -> Vec<String> {
        let (month, day) = (1 + self.rng.below(12), 1 + self.rng.below(28));
        let (hour, minute) = (self.rng.below(24), self.rng.below(60));
        let date = format!("2024-{month:02}-{day:02}");
        let time = format!("{hour:02}:{minute:02}:00");
        let zones = ["Z", "", "+01:00"];
        let formatted: Vec<String> = match schema.get("format").and_then(Value::as_str) {
            Some("date") => zones.iter().map(|z| format!("{date}{z}")).collect(),
            Some("date-time") => zones.iter().map(|z| format!("{date}T{time}{z}")).collect(),
            Some("time") => zones.iter().map(|z| format!("{time}{z}")).collect(),
            // ISO 8601 durations that RFC 3339 (its appendix A) and
            // xs:duration both take: units in order, none skipped.
            Some("duration") => {
                let (n, m) = (1 + self.rng.below(30), 1 + self.rng.below(59));
                vec![
                    format!("P{n}D"),
                    format!("PT{n}H{m}M"),
                    format!("P{n}DT{m}H"),
                    format!("P{n}Y{}M", m % 12),
                    format!("PT{m}M{n}S"),
                    format!("P{}M{n}D", m % 12),
                ]
                .into_iter()
                .cycle()
                .skip(self.rng.below(6))
                .take(6)
                .collect()
            }
            Some("email") => vec!["someone@example.com".to_string()],
            Some("uri") => vec!["https://example.com/resource".to_string()],
            Some("uuid") => vec!["6f1c2a8e-3b4d-4e5f-8a9b-0c1d2e3f4a5b".to_string()],
            _ => Vec::new(),
        };
        formatted
            .into_iter()
            .filter(|s| {
                let n = s.chars().count();
                n >= min && max.is_none_or(|m| n <= m)
            })
            .collect()
    }
}

/// Every pattern a (flattened) string schema holds: `pattern`, and those
/// merged from `allOf` parts (see [`merge_into`]).
fn patterns_of(schema: &Map<String, Value>) -> Vec<String> {
    let mut out: Vec<String> = schema
        .get("pattern")
        .and_then(Value::as_str)
        .map(str::to_string)
        .into_iter()
        .collect();
    if let Some(Value::Array(more)) = schema.get(MORE_PATTERNS) {
        out.extend(more.iter().filter_map(Value::as_str).map(str::to_string));
    }
    out
}

/// Where [`merge_into`] keeps the patterns beyond the first: a key no
/// schema has, in the generator's own copy.
const MORE_PATTERNS: &str = "\u{0}patterns";

/// Whether `s` matches the JSON Schema pattern `pattern` (unanchored, as
/// JSON Schema reads it); false when the pattern does not compile. Each
/// pattern is compiled once: building a matcher costs far more than
/// using it.
fn pattern_matches(pattern: &str, s: &str) -> bool {
    static CACHE: OnceLock<Mutex<HashMap<String, Option<regex::Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    let mut cache = cache.lock().unwrap_or_else(PoisonError::into_inner);
    if !cache.contains_key(pattern) {
        if cache.len() >= 256 {
            cache.clear();
        }
        cache.insert(pattern.to_owned(), regex::Regex::new(pattern).ok());
    }
    cache
        .get(pattern)
        .and_then(Option::as_ref)
        .is_some_and(|re| re.is_match(s))
}

/// A local `$ref` (`#`, `#/$defs/x`, `#/definitions/x`); remote ones are
/// not fetched.
fn resolve<'a>(root: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    if pointer.is_empty() {
        Some(root)
    } else {
        root.pointer(pointer)
    }
}

/// Adds `extra`'s keywords to `base`: properties and required lists are
/// unioned, patterns kept side by side, the tighter of two length or count
/// bounds kept; other keywords are kept from `base` when both set them.
fn merge_into(base: &mut Map<String, Value>, extra: &Map<String, Value>) {
    for (key, value) in extra {
        match (key.as_str(), base.get_mut(key), value) {
            // Both patterns must match: keep the second beside the first.
            ("pattern", Some(mine), theirs) if mine != theirs => {
                let theirs = theirs.clone();
                match base.get_mut(MORE_PATTERNS) {
                    Some(Value::Array(more)) => more.push(theirs),
                    _ => {
                        base.insert(MORE_PATTERNS.into(), json!([theirs]));
                    }
                }
            }
            (MORE_PATTERNS, Some(Value::Array(mine)), Value::Array(theirs)) => {
                mine.extend(theirs.iter().cloned());
            }
            // Lengths and counts: the tighter bound holds.
            ("minLength" | "minItems", Some(mine), theirs) => {
                if theirs.as_u64() > mine.as_u64() {
                    *mine = theirs.clone();
                }
            }
            ("maxLength" | "maxItems", Some(mine), theirs) => {
                if theirs
                    .as_u64()
                    .is_some_and(|t| mine.as_u64().is_none_or(|m| t < m))
                {
                    *mine = theirs.clone();
                }
            }
            ("properties", Some(Value::Object(mine)), Value::Object(theirs)) => {
                for (k, v) in theirs {
                    mine.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            ("required", Some(Value::Array(mine)), Value::Array(theirs)) => {
                for v in theirs {
                    if !mine.contains(v) {
                        mine.push(v.clone());
                    }
                }
            }
            (_, Some(_), _) => {}
            (_, None, _) => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

/// Whether `type` lists `null` beside another type.
fn nullable(schema: &Map<String, Value>) -> bool {
    match schema.get("type") {
        Some(Value::Array(types)) => {
            types.iter().any(|t| t == "null") && types.iter().any(|t| t != "null")
        }
        _ => false,
    }
}

/// The type to generate: the first non-null one when `type` lists several,
/// else inferred from the keywords present.
fn type_of(schema: &Map<String, Value>) -> &str {
    match schema.get("type") {
        Some(Value::String(t)) => return t,
        Some(Value::Array(types)) => {
            let names: Vec<&str> = types.iter().filter_map(Value::as_str).collect();
            if let Some(t) = names.iter().find(|t| **t != "null") {
                return t;
            }
            if !names.is_empty() {
                return "null";
            }
        }
        _ => {}
    }
    let has = |k: &str| schema.contains_key(k);
    if has("properties") || has("required") || has("additionalProperties") {
        "object"
    } else if has("items") || has("prefixItems") || has("minItems") || has("maxItems") {
        "array"
    } else if has("minimum")
        || has("maximum")
        || has("exclusiveMinimum")
        || has("exclusiveMaximum")
        || has("multipleOf")
    {
        "number"
    } else {
        "string"
    }
}

/// A numeric bound and whether it is exclusive.
type Bound = Option<(f64, bool)>;

/// The lower and upper bounds, each with whether it is exclusive. Handles
/// both the draft-4 boolean `exclusiveMinimum` and the numeric form.
fn bounds(schema: &Map<String, Value>) -> (Bound, Bound) {
    let side = |inclusive: &str, exclusive: &str| {
        let inc = schema.get(inclusive).and_then(Value::as_f64);
        match schema.get(exclusive) {
            Some(Value::Bool(true)) => inc.map(|v| (v, true)),
            Some(Value::Number(n)) => {
                let x = n.as_f64().unwrap_or(0.0);
                match inc {
                    // Both set: the tighter one wins.
                    Some(v)
                        if (inclusive == "minimum" && v > x)
                            || (inclusive == "maximum" && v < x) =>
                    {
                        Some((v, false))
                    }
                    _ => Some((x, true)),
                }
            }
            _ => inc.map(|v| (v, false)),
        }
    };
    (
        side("minimum", "exclusiveMinimum"),
        side("maximum", "exclusiveMaximum"),
    )
}

fn usize_of(schema: &Map<String, Value>, key: &str) -> Option<usize> {
    schema
        .get(key)
        .and_then(Value::as_u64)
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
}

fn clamp_i64(v: f64) -> i64 {
    if v.is_nan() {
        0
    } else if v >= i64::MAX as f64 {
        i64::MAX
    } else if v <= i64::MIN as f64 {
        i64::MIN
    } else {
        v as i64
    }
}

/// Decimal places of a `multipleOf` such as 0.01, so products can be rounded
/// back to what a person would write (0.07, not 0.07000000000000001).
fn decimals_of(m: f64) -> i32 {
    let text = format!("{m}");
    text.split_once('.')
        .map_or(0, |(_, frac)| i32::try_from(frac.len()).unwrap_or(0))
}

fn round_to(v: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals.min(12));
    (v * scale).round() / scale
}

/// An integral float as a JSON integer (what a model writes for 42.0).
fn json_number(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        Value::from(v as i64)
    } else {
        serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn assert_valid(schema: &Value, seed: u64) {
        let value = sample(schema, seed);
        let validator = jsonschema::validator_for(schema).expect("schema compiles");
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{value} breaks {schema}: {errors:?}");
    }

    #[test]
    fn invoice_schema_with_every_keyword() {
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "required": ["category", "confidence", "code", "lines", "vendor"],
            "additionalProperties": false,
            "properties": {
                "category": {"enum": ["GOODS", "SERVICES", "MIXED"]},
                "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                "code": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"},
                "note": {"type": ["string", "null"], "maxLength": 5},
                "amount": {"type": "number", "exclusiveMinimum": 0, "maximum": 1000, "multipleOf": 0.01},
                "count": {"type": "integer", "minimum": 3, "maximum": 7},
                "step": {"type": "integer", "multipleOf": 5, "minimum": 11, "maximum": 29},
                "due": {"type": "string", "format": "date"},
                "at": {"type": "string", "format": "date-time"},
                "flag": {"type": "boolean"},
                "kind": {"const": "invoice"},
                "vendor": {"$ref": "#/$defs/party"},
                "lines": {
                    "type": "array", "minItems": 2, "maxItems": 4, "uniqueItems": true,
                    "items": {
                        "type": "object",
                        "required": ["sku", "qty"],
                        "properties": {
                            "sku": {"type": "string", "minLength": 4, "maxLength": 8},
                            "qty": {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 10}
                        }
                    }
                },
                "either": {"oneOf": [{"type": "string", "maxLength": 3}, {"type": "integer"}]},
                "both": {"allOf": [
                    {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                    {"properties": {"b": {"type": "integer"}}, "required": ["b"]}
                ]}
            },
            "$defs": {
                "party": {
                    "type": "object",
                    "required": ["name", "country"],
                    "properties": {
                        "name": {"type": "string", "minLength": 30},
                        "country": {"type": "string", "pattern": "^[A-Z]{2}$"}
                    }
                }
            }
        });
        for seed in 0..50 {
            assert_valid(&schema, seed);
        }
        let value = sample(&schema, 3);
        assert!(value["both"]["a"].is_string() && value["both"]["b"].is_i64());
        // The validator has teeth: a value missing required fields fails.
        let validator = jsonschema::validator_for(&schema).unwrap();
        assert!(!validator.is_valid(&json!({"category": "GOODS"})));
    }

    #[test]
    fn draft4_exclusive_bounds_and_definitions() {
        let schema = json!({
            "$schema": "http://json-schema.org/draft-04/schema#",
            "type": "object",
            "required": ["n", "items"],
            "properties": {
                "n": {"type": "integer", "minimum": 0, "exclusiveMinimum": true, "maximum": 2, "exclusiveMaximum": true},
                "items": {"type": "array", "items": {"$ref": "#/definitions/item"}, "minItems": 1}
            },
            "definitions": {"item": {"type": "string", "enum": ["a", "b"]}}
        });
        for seed in 0..20 {
            assert_valid(&schema, seed);
        }
        assert_eq!(sample(&schema, 0)["n"], json!(1));
    }

    /// A schema as wide and deep as UBL's: every level has thirty optional
    /// parts of the next. Filling them all would take millions of values;
    /// the answer still satisfies the schema, smaller past a budget.
    #[test]
    fn wide_deep_schemas_get_valid_answers_not_nulls() {
        let mut defs = Map::new();
        for level in 0..8 {
            let mut properties = Map::new();
            properties.insert("id".into(), json!({"type": "string", "minLength": 1}));
            if level < 7 {
                for part in 0..30 {
                    properties.insert(
                        format!("part{part}"),
                        json!({"$ref": format!("#/$defs/L{}", level + 1)}),
                    );
                }
            }
            defs.insert(
                format!("L{level}"),
                json!({"type": "object", "properties": properties, "required": ["id"],
                       "additionalProperties": false}),
            );
        }
        let schema = json!({"$defs": defs, "$ref": "#/$defs/L0"});
        for seed in 0..4 {
            assert_valid(&schema, seed);
        }
    }

    #[test]
    fn recursive_schemas_end() {
        let schema = json!({
            "$defs": {"node": {"type": "object", "properties": {
                "name": {"type": "string"},
                "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}
            }, "required": ["name"]}},
            "$ref": "#/$defs/node"
        });
        assert_valid(&schema, 1);
    }

    #[test]
    fn extreme_integer_ranges_do_not_overflow() {
        for (lo, hi) in [(i64::MIN + 1, 50), (-50, i64::MAX), (i64::MIN, i64::MIN)] {
            let schema = json!({"type": "integer", "minimum": lo, "maximum": hi, "multipleOf": 3});
            for seed in 0..20 {
                let _ = sample(&schema, seed);
            }
        }
    }

    #[test]
    fn explosive_schemas_end_quickly() {
        let schema = json!({"allOf": [{"$ref": "#"}, {"$ref": "#"}, {"$ref": "#"}]});
        let started = std::time::Instant::now();
        let _ = sample(&schema, 1);
        let huge = json!({"type": "array", "minItems": 4_000_000_000u64, "items": {"type": "string", "minLength": 4_000_000_000u64}});
        let _ = sample(&huge, 1);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn the_same_seed_gives_the_same_value() {
        let schema = json!({"type": "object", "properties": {"x": {"type": "string"}, "y": {"type": "number"}}});
        assert_eq!(sample(&schema, 9), sample(&schema, 9));
    }

    /// Random schemas from the supported subset.
    fn schema_strategy() -> impl Strategy<Value = Value> {
        let patterns = prop::sample::select(vec![
            r"^[A-Z]{2,4}$",
            r"^\d{3}-\d{2}$",
            r"^(red|green|blue)$",
            r"^[a-z]+(-[a-z]+)*$",
            r"[0-9]",
        ]);
        let string = (0usize..6, 0usize..20, prop::option::of(patterns)).prop_map(
            |(min, extra, pattern)| {
                let mut s =
                    json!({"type": "string", "minLength": min, "maxLength": min + extra + 4});
                if let Some(p) = pattern {
                    s = json!({"type": "string", "pattern": p});
                }
                s
            },
        );
        let integer = (-1000i64..1000, 0i64..500, 1i64..6, any::<bool>()).prop_map(|(lo, span, step, excl)| {
            if excl {
                json!({"type": "integer", "exclusiveMinimum": lo, "exclusiveMaximum": lo + span + 2 * step + 2, "multipleOf": step})
            } else {
                json!({"type": "integer", "minimum": lo, "maximum": lo + span})
            }
        });
        let number = (-1e4f64..1e4, 0.5f64..1e3, prop::sample::select(vec![0.5, 0.25, 0.01, 0.1])).prop_map(|(lo, span, step)| {
            json!({"type": "number", "minimum": lo, "maximum": lo + span + 1.0, "multipleOf": step})
        });
        let enumeration =
            prop::collection::vec("[a-z]{1,6}", 1..5).prop_map(|v| json!({"enum": v}));
        let leaf = prop_oneof![
            string,
            integer,
            number,
            enumeration,
            Just(json!({"type": "boolean"})),
            Just(json!({"type": ["integer", "null"], "minimum": 5})),
            Just(json!({"type": "string", "format": "date-time"})),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                (prop::collection::btree_map("[a-z]{1,5}", inner.clone(), 0..4), any::<bool>()).prop_map(|(props, all_required)| {
                    let required: Vec<&String> = if all_required { props.keys().collect() } else { Vec::new() };
                    json!({"type": "object", "properties": props, "required": required, "additionalProperties": false})
                }),
                (inner.clone(), 0usize..3, 0usize..3).prop_map(|(items, min, extra)| {
                    json!({"type": "array", "items": items, "minItems": min, "maxItems": min + extra})
                }),
                (inner.clone(), inner).prop_map(|(a, b)| json!({"anyOf": [a, b]})),
            ]
        })
    }

    /// Arbitrary JSON built from schema keywords: what a careless or
    /// hostile tool definition can hold.
    fn hostile_schema() -> impl Strategy<Value = Value> {
        let key = prop::sample::select(vec![
            "type",
            "properties",
            "required",
            "enum",
            "const",
            "items",
            "prefixItems",
            "minItems",
            "maxItems",
            "minLength",
            "maxLength",
            "pattern",
            "minimum",
            "maximum",
            "exclusiveMinimum",
            "exclusiveMaximum",
            "multipleOf",
            "anyOf",
            "oneOf",
            "allOf",
            "$ref",
            "$defs",
            "format",
            "uniqueItems",
            "additionalProperties",
            "minProperties",
            "x",
        ]);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            prop::sample::select(vec![
                "string",
                "object",
                "array",
                "integer",
                "number",
                "null",
                "#",
                "#/$defs/a",
                "(",
                "^[a-z]{2,}$",
                "date"
            ])
            .prop_map(|s| Value::String(s.to_string())),
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(key.clone().prop_map(str::to_string), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_schema_gives_a_value_without_panicking(schema in hostile_schema(), seed in any::<u64>()) {
            let _ = sample(&schema, seed);
        }

        #[test]
        fn generated_values_validate_against_their_schema(schema in schema_strategy(), seed in any::<u64>()) {
            let value = sample(&schema, seed);
            let validator = jsonschema::validator_for(&schema).expect("schema compiles");
            let errors: Vec<String> = validator.iter_errors(&value).map(|e| e.to_string()).collect();
            prop_assert!(errors.is_empty(), "{} breaks {}: {:?}", value, schema, errors);
        }
    }
}
