//! Declared faults (`faults:`): each names a `wsdl:fault` of the operation
//! whose message carries one detail element, and says how the model
//! answers it — with structured output a tool of its own whose input
//! schema is the detail's, with text output a `when` regex on the answer
//! and the detail filled like a text response. Whose fault it is (`code`)
//! and its text (`reason`, a constant or a template) are the same for
//! both.

use std::collections::BTreeSet;

use serde_json::Value;
use serde_saphyr::Spanned;

use super::Cx;
use super::output::{is_tool_name, tool_name};
use crate::contract::xsd::SchemaSet;
use crate::contract::{FaultDetail, Operation, Payload};
use crate::converse::ToolSpec;
use crate::mapping::output::{FaultAnswer, FaultPlan, FillValue, OutputPlan};
use crate::mapping::payload::PayloadShape;
use crate::mapping::render;
use crate::mapping::spec::{FaultSideSpec, FaultSpec, OperationSpec};
use crate::soap::FaultCode;

impl Cx<'_> {
    /// The plans of the faults `spec` maps, checked against the operation's
    /// declared faults and its output.
    pub(super) fn faults(
        &mut self,
        set: &SchemaSet,
        op: &Operation,
        spec: &OperationSpec,
        output: &OutputPlan,
        env: &mut minijinja::Environment<'static>,
        known: &BTreeSet<String>,
    ) -> Vec<FaultPlan> {
        let mut plans = Vec::new();
        let mut seen: Vec<&str> = Vec::new();
        // Tool names already taken: the response's first.
        let mut tools: Vec<String> = match output {
            OutputPlan::Structured { tool } => vec![tool.name.clone()],
            _ => Vec::new(),
        };
        for (name, fspec) in &spec.faults.0 {
            if seen.contains(&name.value.as_str()) {
                self.error(
                    &name.referenced,
                    format!("fault {} is mapped twice", name.value),
                );
                continue;
            }
            seen.push(&name.value);
            let Some(declared) = op.fault(&name.value) else {
                let declared: Vec<&str> = op.faults.iter().map(|f| f.name.as_str()).collect();
                let known = if declared.is_empty() {
                    "it declares none".to_string()
                } else {
                    format!("declared: {}", declared.join(", "))
                };
                self.error(
                    &name.referenced,
                    format!(
                        "operation {} declares no fault {} in its WSDL ({known})",
                        op.name, name.value
                    ),
                );
                continue;
            };
            let element = match &declared.detail {
                FaultDetail::Element(q) => q.clone(),
                FaultDetail::Unusable(why) => {
                    self.error(
                        &name.referenced,
                        format!(
                            "fault {} of {} has no detail element an answer can fill: {why}",
                            name.value, op.name
                        ),
                    );
                    continue;
                }
            };
            let payload = Payload::Document {
                elements: vec![element.clone()],
            };
            let Some(shape) = PayloadShape::of(set, &payload) else {
                self.error(
                    &name.referenced,
                    format!(
                        "fault {} of {} names detail element {element}, which the schema does not declare",
                        name.value, op.name
                    ),
                );
                continue;
            };
            if let Some(plan) = self.fault(
                set, op, name, fspec, element, shape, output, env, known, &mut tools,
            ) {
                plans.push(plan);
            }
        }
        plans
    }

    #[allow(clippy::too_many_arguments)]
    fn fault(
        &mut self,
        set: &SchemaSet,
        op: &Operation,
        name: &Spanned<String>,
        fspec: &Spanned<FaultSpec>,
        element: crate::xml::QName,
        shape: PayloadShape,
        output: &OutputPlan,
        env: &mut minijinja::Environment<'static>,
        known: &BTreeSet<String>,
        tools: &mut Vec<String>,
    ) -> Option<FaultPlan> {
        let f = &fspec.value;
        let fault = &name.value;
        let answer = match output {
            // A one-way operation declares no faults; an output that failed
            // to compile has been reported; a step's faults are refused
            // with the step.
            OutputPlan::Nothing | OutputPlan::Step { .. } => return None,
            OutputPlan::Structured { .. } => {
                for (key, at) in [
                    ("when", f.when.as_ref().map(|w| w.referenced)),
                    ("text", f.text.as_ref().map(|t| t.referenced)),
                    ("fill", f.fill.0.first().map(|(k, _)| k.referenced)),
                ] {
                    if let Some(at) = at {
                        self.error(
                            &at,
                            format!(
                                "{key} applies to a fault of a text-output operation; \
                                 with structured output the model calls the fault's tool"
                            ),
                        );
                    }
                }
                let tool = match &f.tool {
                    Some(t) => {
                        if !is_tool_name(&t.value) {
                            self.error(&t.referenced, "tool must be 1-64 letters, digits, _ or -");
                        }
                        t.value.clone()
                    }
                    None => tool_name(fault),
                };
                if tools.contains(&tool) {
                    let at = f.tool.as_ref().map_or(name.referenced, |t| t.referenced);
                    self.error(
                        &at,
                        format!(
                            "tool {tool} is already offered for this operation; give fault \
                             {fault} a `tool:` name of its own"
                        ),
                    );
                }
                tools.push(tool.clone());
                let description = f.description.as_ref().map(|d| d.value.clone()).unwrap_or_else(|| {
                    format!(
                        "Answer {} with its {fault} fault instead of a response. Call exactly one of the offered tools, once: this one only when the {fault} fault applies; its input is the fault's {} detail.",
                        op.name, element.local
                    )
                });
                let schema = self.tool_schema(
                    set,
                    &shape,
                    &name.referenced,
                    &format!("the {fault} detail of {}", op.name),
                    &format!("the {fault} detail"),
                );
                FaultAnswer::Tool(ToolSpec::new(tool, Some(description), schema))
            }
            OutputPlan::Text { .. } => {
                for (key, at) in [
                    ("tool", f.tool.as_ref().map(|t| t.referenced)),
                    ("description", f.description.as_ref().map(|d| d.referenced)),
                ] {
                    if let Some(at) = at {
                        self.error(
                            &at,
                            format!(
                                "{key} applies to a fault of a structured-output operation; \
                                 with text output `when` selects the fault"
                            ),
                        );
                    }
                }
                let Some(when) = &f.when else {
                    self.error(
                        &fspec.referenced,
                        format!(
                            "fault {fault} needs `when`: a regex that selects it from the \
                             model's text (e.g. \"^REJECTED:\")"
                        ),
                    );
                    return None;
                };
                let regex = match regex::Regex::new(&when.value) {
                    Ok(r) => r,
                    Err(e) => {
                        let reason = e.to_string();
                        let reason = reason
                            .lines()
                            .rev()
                            .find(|l| !l.trim().is_empty())
                            .unwrap_or(&reason)
                            .trim()
                            .trim_start_matches("error: ")
                            .to_string();
                        self.error(&when.referenced, format!("when: invalid regex: {reason}"));
                        return None;
                    }
                };
                let template = |path: &str| render::fault_fill_template(fault, path);
                let (target, fills) = self.text_output(
                    set,
                    &shape,
                    f.text.as_ref(),
                    &f.fill,
                    env,
                    known,
                    &fspec.referenced,
                    &format!("the {fault} detail"),
                    &template,
                )?;
                FaultAnswer::Text {
                    when: regex,
                    target,
                    fills,
                }
            }
        };
        let code = match f.code.as_ref().map(|c| c.value) {
            None | Some(FaultSideSpec::Client) => FaultCode::Client,
            Some(FaultSideSpec::Server) => FaultCode::Server,
        };
        let reason = match &f.reason {
            None => FillValue::Constant(Value::String(fault.clone())),
            Some(r) if r.value.contains("{{") || r.value.contains("{%") => {
                let template = render::fault_reason_template(fault);
                if !self.template(env, &template, r, known) {
                    return None;
                }
                FillValue::Template(template)
            }
            Some(r) if r.value.trim().is_empty() => {
                self.error(&r.referenced, "reason must not be empty");
                return None;
            }
            Some(r) => FillValue::Constant(Value::String(r.value.clone())),
        };
        Some(FaultPlan {
            name: fault.clone(),
            code,
            reason,
            element,
            shape,
            answer,
        })
    }
}
