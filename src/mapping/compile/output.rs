//! The output of an operation: structured output (a tool whose input
//! schema is the response's) or text output (the model's text into one
//! simple element, the rest of the response from constant or templated
//! fills), checked so that every response the plan builds can be complete.

use std::collections::{BTreeSet, HashSet};

use serde_json::Value;
use serde_saphyr::{Location, Spanned};

use super::Cx;
use crate::contract::Operation;
use crate::contract::xsd::shape::{self, Shape, shape};
use crate::contract::xsd::{SchemaSet, TypeId};
use crate::converse::ToolSpec;
use crate::mapping::json_schema::for_payload_shape;
use crate::mapping::json_xml::payload_shape_from_json;
use crate::mapping::output::{Fill, FillValue, OutputPlan, insert_at};
use crate::mapping::path::{self, Target};
use crate::mapping::payload::PayloadShape;
use crate::mapping::render;
use crate::mapping::spec::{Entries, OutputSpec, YamlValue};

/// The most a tool's input schema may take, as JSON: a schema is sent
/// with every call and counted as input tokens, and 1 MiB (some 250,000
/// tokens) is more than a model's whole context. With types shared under
/// `$defs`, a schema of several thousand types stays well below it.
pub(crate) const MAX_TOOL_SCHEMA_BYTES: usize = 1 << 20;

impl Cx<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn output(
        &mut self,
        set: &SchemaSet,
        op: &Operation,
        shape: Option<&PayloadShape>,
        spec: Option<&Spanned<OutputSpec>>,
        env: &mut minijinja::Environment<'static>,
        known: &BTreeSet<String>,
        op_at: &Location,
        with_faults: bool,
    ) -> OutputPlan {
        let Some(shape) = shape else {
            if let Some(s) = spec {
                self.error(
                    &s.referenced,
                    format!("{} is one-way (no response): remove `output`", op.name),
                );
            }
            return OutputPlan::Nothing;
        };
        let Some(spec) = spec else {
            self.error(
                op_at,
                format!(
                    "{} needs an `output` (structured: true, or text: <element>)",
                    op.name
                ),
            );
            return OutputPlan::Nothing;
        };
        let o = &spec.value;
        let structured = o.structured.as_ref().is_some_and(|s| s.value);
        match (structured, &o.text) {
            (true, Some(t)) => {
                self.error(
                    &t.referenced,
                    "choose one of structured: true and text: <element>",
                );
                OutputPlan::Nothing
            }
            (false, None) => {
                self.error(
                    &spec.referenced,
                    "output needs structured: true or text: <element>",
                );
                OutputPlan::Nothing
            }
            (true, None) => {
                for (k, _) in &o.fill.0 {
                    self.error(&k.referenced, "fill applies to text output only");
                }
                let name = match &o.tool {
                    Some(t) => {
                        if !is_tool_name(&t.value) {
                            self.error(&t.referenced, "tool must be 1-64 letters, digits, _ or -");
                        }
                        t.value.clone()
                    }
                    None => tool_name(&shape.root_name()),
                };
                let description = o.description.as_ref().map(|d| d.value.clone()).unwrap_or_else(|| {
                    if with_faults {
                        format!(
                            "Return the result of {} as the {} response. Call exactly one of the offered tools, once: this one unless one of the fault tools applies; its input is the response.",
                            op.name,
                            shape.root_name()
                        )
                    } else {
                        format!(
                            "Return the result of {} as the {} response. Call this tool exactly once; its input is the response.",
                            op.name,
                            shape.root_name()
                        )
                    }
                });
                let schema = self.tool_schema(
                    set,
                    shape,
                    &spec.referenced,
                    &format!("the response of {}", op.name),
                    &format!("the {} response", shape.root_name()),
                );
                OutputPlan::Structured {
                    tool: ToolSpec::new(name, Some(description), schema),
                }
            }
            (false, Some(t)) => {
                if let Some(tool) = &o.tool {
                    self.error(&tool.referenced, "tool applies to structured output only");
                }
                let Some((target, fills)) = self.text_output(
                    set,
                    shape,
                    Some(t),
                    &o.fill,
                    env,
                    known,
                    &spec.referenced,
                    "the response",
                    &render::fill_template,
                ) else {
                    return OutputPlan::Nothing;
                };
                OutputPlan::Text {
                    target: target.unwrap_or_default(),
                    fills,
                }
            }
        }
    }

    /// The tool input schema of a payload, with a load error at `at` when
    /// the payload cannot be structured output (`whose`: "the response of
    /// Op") or its schema is too large (`what`: "the X response").
    pub(super) fn tool_schema(
        &mut self,
        set: &SchemaSet,
        shape: &PayloadShape,
        at: &Location,
        whose: &str,
        what: &str,
    ) -> Value {
        let mut unsupported = Vec::new();
        let mut seen = BTreeSet::new();
        let top: Vec<&shape::Field> = match shape {
            PayloadShape::Element(f) => vec![f],
            PayloadShape::Fields { fields, .. } => fields.iter().collect(),
        };
        let roots: Vec<TypeId> = top.iter().map(|f| f.type_id).collect();
        let unfillable = shape::unfillable_types(set, &roots);
        for f in top {
            if f.min == 0
                && !matches!(shape, PayloadShape::Element(_))
                && unfillable.contains(&f.type_id)
            {
                continue;
            }
            unsupported_in(
                set,
                f,
                &f.name.local,
                &unfillable,
                &mut seen,
                &mut unsupported,
            );
        }
        if let Some(u) = unsupported.first() {
            self.error(
                at,
                format!("{whose} cannot be structured output: it has {u}; use text output"),
            );
        }
        let schema = for_payload_shape(set, shape);
        let bytes = serde_json::to_vec(&schema).map_or(0, |v| v.len());
        if bytes > MAX_TOOL_SCHEMA_BYTES {
            self.error(
                at,
                format!(
                    "the tool schema of {what} would take {} KiB, more than the {} KiB a tool schema may (about as many tokens as a model's whole context); use text output, or answer a smaller part of the response",
                    bytes / 1024,
                    MAX_TOOL_SCHEMA_BYTES / 1024
                ),
            );
        }
        schema
    }

    /// Text output into a payload: the element (or attribute) `text` names,
    /// and `fill` for the other values (templates named by `template`),
    /// checked so that every value the payload requires is covered.
    /// `place` names the payload in messages ("the response"). `None` when
    /// `text` cannot be resolved.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn text_output(
        &mut self,
        set: &SchemaSet,
        shape: &PayloadShape,
        text: Option<&Spanned<String>>,
        fill: &Entries<Spanned<YamlValue>>,
        env: &mut minijinja::Environment<'static>,
        known: &BTreeSet<String>,
        at: &Location,
        place: &str,
        template: &dyn Fn(&str) -> String,
    ) -> Option<(Option<Vec<String>>, Vec<Fill>)> {
        let top = shape.top_fields(set);
        let root_type = match shape {
            PayloadShape::Element(f) => Some(f.type_id),
            PayloadShape::Fields { .. } => None,
        };
        let mut placeholder = Value::Object(Default::default());
        let target = match text {
            None => None,
            Some(t) => {
                let target = match path::resolve(set, top, root_type, &t.value, false) {
                    Ok(p) => p,
                    Err(m) => {
                        self.error(&t.referenced, format!("text: {m} in {place}"));
                        return None;
                    }
                };
                let simple = target.ends_at_simple_value(set);
                if !simple {
                    self.error(
                        &t.referenced,
                        format!(
                            "text: {} has child elements; text goes into an element of simple type",
                            t.value
                        ),
                    );
                }
                insert_at(
                    &mut placeholder,
                    &keys(&target),
                    Value::String("text".into()),
                );
                Some(keys(&target))
            }
        };
        let mut fills = Vec::new();
        for (k, v) in &fill.0 {
            let p = match path::resolve(set, top, root_type, &k.value, false) {
                Ok(p) => p,
                Err(m) => {
                    self.error(&k.referenced, format!("fill: {m} in {place}"));
                    continue;
                }
            };
            let ty = match p.target() {
                Some(Target::Attribute(ty)) => Some(ty),
                Some(Target::Element(ty)) => match shape::shape(set, ty) {
                    Shape::Simple(st) => Some(*st),
                    _ => None,
                },
                None => None,
            };
            let Some(ty) = ty else {
                self.error(
                    &k.referenced,
                    format!(
                        "fill: {} has child elements; fill its simple elements one by one",
                        k.value
                    ),
                );
                continue;
            };
            // Counted as filled even when its value is refused below, so the
            // dry run does not report it twice.
            insert_at(&mut placeholder, &keys(&p), Value::String("x".into()));
            let Some(text) = v.value.scalar_text() else {
                self.error(
                    &v.referenced,
                    "a fill value must be a constant or a template string",
                );
                continue;
            };
            let value = if text.contains("{{") || text.contains("{%") {
                let name = template(&k.value);
                let src = Spanned::new(text, v.referenced, v.defined);
                if !self.template(env, &name, &src, known) {
                    continue;
                }
                FillValue::Template(name)
            } else {
                if let Err(rule) = set.check_simple_value(ty, &text) {
                    self.error(
                        &v.referenced,
                        format!("fill {}: {text:?} breaks {rule}", k.value),
                    );
                    continue;
                }
                FillValue::Constant(Value::String(text))
            };
            fills.push(Fill {
                keys: keys(&p),
                value,
            });
        }
        // Everything the payload requires must come from the text or a
        // fill: a dry run with placeholders finds what is missing (values
        // are checked per call).
        if let Err(vs) = payload_shape_from_json(set, shape, &placeholder) {
            let what = if text.is_some() {
                "text output"
            } else {
                "the fault"
            };
            for v in vs.iter().filter(|v| v.rule.starts_with("required")) {
                let at_path = if v.path == "/" {
                    String::new()
                } else {
                    format!(" at {}", v.path)
                };
                self.error(
                    at,
                    format!(
                        "{what} leaves {}{at_path} unfilled; add it to fill",
                        v.rule
                            .trim_start_matches("required property ")
                            .trim_end_matches(" missing")
                    ),
                );
            }
        }
        Some((target, fills))
    }
}

/// The JSON keys of a resolved output path.
fn keys(p: &path::Path) -> Vec<String> {
    let mut k: Vec<String> = p.steps.iter().map(|s| s.field.name.local.clone()).collect();
    if let Some(a) = &p.attr {
        k.push(format!("@{}", a.name.local));
    }
    k
}

/// What structured output cannot represent anywhere in a type.
/// What keeps the response from being structured output: each construct
/// the flattening cannot represent, with the element path where it sits and
/// its type, found below `f` (at `path`) along required elements. Optional
/// elements no answer can build are left out of the tool schema instead.
fn unsupported_in(
    set: &SchemaSet,
    f: &shape::Field,
    path: &str,
    unfillable: &HashSet<TypeId>,
    seen: &mut BTreeSet<TypeId>,
    out: &mut Vec<String>,
) {
    if !seen.insert(f.type_id) {
        return;
    }
    if let Shape::Object {
        fields,
        unsupported,
        ..
    } = shape(set, f.type_id)
    {
        let ty = match set.type_def(f.type_id).and_then(|t| t.name()) {
            Some(q) => format!("type {}", q.local),
            None => "an anonymous type".to_string(),
        };
        out.extend(unsupported.iter().map(|u| format!("{u} at {path} ({ty})")));
        for child in fields {
            if child.min == 0 && unfillable.contains(&child.type_id) {
                continue;
            }
            let child_path = format!("{path}/{}", child.name.local);
            unsupported_in(set, child, &child_path, unfillable, seen, out);
        }
    }
}

pub(super) fn is_tool_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A tool name from an element name: Converse allows `[a-zA-Z0-9_-]{1,64}`.
pub(super) fn tool_name(root: &str) -> String {
    let mut s: String = root
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if s.is_empty() {
        s.push_str("respond");
    }
    s
}
