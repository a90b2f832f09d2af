//! Templates: adding each to the operation's environment, reporting syntax
//! errors and unknown variables at their position in the mapping file
//! (block scalars included), and templates that fail when an input the
//! schema lets be absent or nil is.

use std::collections::BTreeSet;

use serde_json::{Map, Value};
use serde_saphyr::Spanned;

use super::Cx;
use crate::contract::xsd::shape::{Shape, attrs_of, shape};
use crate::contract::xsd::{SchemaSet, TypeId};
use crate::mapping::json_xml::simple_json;
use crate::mapping::path::{Path, Target};
use crate::mapping::payload::PayloadShape;
use crate::mapping::render::{InputKind, InputPlan, template_error_text, template_value};

/// Names minijinja provides itself; a template may use them without an
/// input declaring them.
const TEMPLATE_GLOBALS: &[&str] = &[
    "range",
    "dict",
    "namespace",
    "debug",
    "loop",
    "self",
    "super",
];

/// A name minijinja provides itself (`loop`, `range`, ...), not a variable.
pub(super) fn is_template_global(name: &str) -> bool {
    TEMPLATE_GLOBALS.contains(&name)
}

impl Cx<'_> {
    /// Add a template and check it refers only to known variables.
    pub(super) fn template(
        &mut self,
        env: &mut minijinja::Environment<'static>,
        name: &str,
        src: &Spanned<String>,
        known: &BTreeSet<String>,
    ) -> bool {
        if let Err(e) = env.add_template_owned(name.to_string(), src.value.clone()) {
            self.template_error(src, &e);
            return false;
        }
        self.templates.push((name.to_string(), src.clone()));
        self.check_variables(env, name, src, known)
    }

    pub(super) fn check_variables(
        &mut self,
        env: &minijinja::Environment<'static>,
        name: &str,
        src: &Spanned<String>,
        known: &BTreeSet<String>,
    ) -> bool {
        let Ok(t) = env.get_template(name) else {
            return false;
        };
        let mut unknown: Vec<String> = t
            .undeclared_variables(false)
            .into_iter()
            .filter(|v| !known.contains(v) && !TEMPLATE_GLOBALS.contains(&v.as_str()))
            .collect();
        unknown.sort();
        for v in &unknown {
            let line = src
                .value
                .lines()
                .position(|l| contains_word(l, v))
                .map_or(1, |i| i + 1);
            let (l, c) = self.template_pos(src, line);
            let known_list: Vec<&str> = known.iter().map(String::as_str).collect();
            self.error_at(
                l,
                c,
                format!(
                    "unknown template variable {v} (known: {})",
                    known_list.join(", ")
                ),
            );
        }
        unknown.is_empty()
    }

    pub(super) fn template_error(&mut self, src: &Spanned<String>, e: &minijinja::Error) {
        let (l, c) = self.template_pos(src, e.line().unwrap_or(1));
        let message = match e.detail() {
            Some(d) => format!("template syntax error: {d}"),
            None => format!("template syntax error: {}", e.kind()),
        };
        self.error_at(l, c, message);
    }

    /// Report each template that fails when an input the schema lets be
    /// absent (`minOccurs="0"`, a choice branch, an optional attribute) or
    /// nil (`nillable`) is, while it renders with every input given: a
    /// filter such as `format` or `length` applied to it without a guard
    /// would fail every such call. The other inputs get sample values of
    /// their types; a template that fails even so is left alone, since the
    /// samples may be what it refuses.
    pub(super) fn absent_inputs(
        &mut self,
        set: &SchemaSet,
        request: &PayloadShape,
        inputs: &[InputPlan],
        env: &minijinja::Environment<'static>,
    ) {
        let root_type = match request {
            PayloadShape::Element(f) => Some(f.type_id),
            PayloadShape::Fields { .. } => None,
        };
        let mut full = Map::new();
        for input in inputs {
            full.insert(input.name.clone(), sample_input(set, input));
        }
        full.insert("payload".into(), Value::Object(Map::new()));
        full.insert("payload_xml".into(), Value::String(String::new()));
        full.insert(
            "meta".into(),
            serde_json::json!({"service": "S", "operation": "O", "correlation_id": "urn:uuid:0"}),
        );
        full.extend(self.samples.clone());
        let absent: Vec<(&InputPlan, &'static str)> = inputs
            .iter()
            .filter(|i| !matches!(i.kind, InputKind::Json))
            .filter_map(|i| absence(set, root_type, &i.path).map(|why| (i, why)))
            .collect();
        if absent.is_empty() {
            return;
        }
        let templates = self.templates.clone();
        for (name, src) in &templates {
            let Ok(t) = env.get_template(name) else {
                continue;
            };
            if t.render(template_value(Value::Object(full.clone())))
                .is_err()
            {
                continue;
            }
            let used = t.undeclared_variables(false);
            for (input, why) in &absent {
                if !used.contains(&input.name) {
                    continue;
                }
                let mut ctx = full.clone();
                ctx.insert(input.name.clone(), Value::Null);
                let Err(e) = t.render(template_value(Value::Object(ctx))) else {
                    continue;
                };
                let line = src
                    .value
                    .lines()
                    .position(|l| contains_word(l, &input.name))
                    .map_or(1, |i| i + 1);
                let (l, c) = self.template_pos(src, line);
                let var = &input.name;
                self.error_at(
                    l,
                    c,
                    format!(
                        "template {name} fails when {var} ({}) is {why}, which the schema \
                         allows: {}; use it only under {{% if {var} is not none %}}",
                        input.path.text,
                        template_error_text(&e)
                    ),
                );
            }
        }
    }

    /// The file position of line `tline` (1-based) of a template whose value
    /// starts at `src`: a block scalar (`|`, `>`) starts on the next line.
    pub(super) fn template_pos(&self, src: &Spanned<String>, tline: usize) -> (u64, u64) {
        let at = src.referenced;
        let first_line = self
            .text
            .lines()
            .nth(usize::try_from(at.line()).unwrap_or(1).saturating_sub(1))
            .unwrap_or("");
        let col0 = usize::try_from(at.column()).unwrap_or(1).saturating_sub(1);
        let block = first_line
            .chars()
            .nth(col0)
            .is_some_and(|c| c == '|' || c == '>');
        let offset = u64::try_from(tline.saturating_sub(1)).unwrap_or(0);
        if !block && offset == 0 {
            return (at.line(), at.column());
        }
        let line = at.line() + offset + u64::from(block);
        let indent = self
            .text
            .lines()
            .nth(usize::try_from(line).unwrap_or(1).saturating_sub(1))
            .map_or(0, |l| l.len() - l.trim_start().len());
        (line, indent as u64 + 1)
    }
}

/// True when `word` occurs in `line` as a whole identifier.
pub(super) fn contains_word(line: &str, word: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    line.match_indices(word).any(|(i, _)| {
        let before = line[..i].chars().next_back();
        let after = line[i + word.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

/// Whether the value at `p` may be missing from a valid request, and how
/// ("absent", "nil", "absent or nil"); `None` when it is always there. A
/// list (`[]`) is never missing: it is empty.
fn absence(set: &SchemaSet, root_type: Option<TypeId>, p: &Path) -> Option<&'static str> {
    if p.is_list() {
        return None;
    }
    let mut optional = p
        .steps
        .iter()
        .any(|s| s.field.min == 0 || s.field.choice.is_some());
    let nil = p.steps.iter().any(|s| s.field.nillable);
    if let Some(a) = &p.attr {
        let parent = p.steps.last().map(|s| s.field.type_id).or(root_type);
        let required = parent
            .and_then(|t| attrs_of(set, t).iter().find(|x| x.name == a.name))
            .is_some_and(|x| x.required);
        if !required && a.default.is_none() {
            optional = true;
        }
    }
    match (optional, nil) {
        (true, true) => Some("absent or nil"),
        (true, false) => Some("absent"),
        (false, true) => Some("nil"),
        (false, false) => None,
    }
}

/// A value an input could have: one of its type, in a list per `[]`.
pub(super) fn sample_input(set: &SchemaSet, input: &InputPlan) -> Value {
    let leaf = match (&input.kind, input.path.target()) {
        (InputKind::Value, Some(Target::Attribute(t))) => sample_simple(set, t),
        (InputKind::Value, Some(Target::Element(t))) => sample_type(set, t, 0),
        (InputKind::Xml, _) => Value::String("<x/>".into()),
        (InputKind::Json, _) => Value::String("{}".into()),
        _ => Value::String("text".into()),
    };
    input
        .path
        .steps
        .iter()
        .filter(|s| s.each)
        .fold(leaf, |v, _| Value::Array(vec![v]))
}

/// A value of simple type `st`: a fraction where it takes one, else 1
/// (a number, `true`, or the text "1").
fn sample_simple(set: &SchemaSet, st: TypeId) -> Value {
    match simple_json(set, st, "1.5") {
        v @ Value::Number(_) => v,
        _ => simple_json(set, st, "1"),
    }
}

/// A value of type `ty` as the request's JSON has it, every property
/// present, to a bounded depth (types may be recursive).
pub(crate) fn sample_type(set: &SchemaSet, ty: TypeId, depth: usize) -> Value {
    match shape(set, ty) {
        Shape::Simple(st) => sample_simple(set, *st),
        Shape::Any => Value::String("text".into()),
        Shape::Object { .. } if depth > 8 => Value::Object(Map::new()),
        Shape::Object {
            attrs,
            text,
            fields,
            ..
        } => {
            let mut map = Map::new();
            for a in attrs {
                map.insert(
                    format!("{}{}", crate::mapping::ATTR_PREFIX, a.name.local),
                    sample_simple(set, a.type_id),
                );
            }
            if let Some(st) = text {
                map.insert(crate::mapping::TEXT_KEY.into(), sample_simple(set, *st));
            }
            for f in fields {
                let v = sample_type(set, f.type_id, depth + 1);
                let v = if f.repeated() {
                    Value::Array(vec![v])
                } else {
                    v
                };
                map.insert(f.name.local.clone(), v);
            }
            Value::Object(map)
        }
    }
}
