//! From the model's answer to the response payload: structured output (the
//! forced tool's input, JSON -> XML), text output (the answer's text into
//! one element, the rest from `fill`), every result validated against the
//! XSD; or to one of the operation's declared faults (the fault's tool, or
//! the text rule that selects it, filling its detail element the same
//! way); and the repair request that feeds the violations back.

use minijinja::Value as JValue;
use serde_json::{Map, Value};

use super::json_xml::payload_shape_from_json;
use super::payload::PayloadShape;
use super::{Answer, OperationPlan, OutputError, RenderError, RenderedCall};
use crate::contract::{Payload, Violation, validate_payload};
use crate::converse::{
    ContentBlock, Message, Request, Response, StopReason, ToolResultBlock, ToolResultContent,
    ToolResultStatus, ToolSpec,
};
use crate::soap::{DeclaredFault, FaultCode, SOAPGATE_NS};
use crate::xml::{Element, NsDecl, NsScope, QName};

/// How the answer becomes the response.
#[derive(Debug, Clone)]
pub(crate) enum OutputPlan {
    Structured {
        tool: ToolSpec,
    },
    Text {
        /// JSON keys from the payload value to the text's place.
        target: Vec<String>,
        fills: Vec<Fill>,
    },
    /// One-way operation: no response.
    Nothing,
    /// A step of a multi-step operation: its result, the input of a forced
    /// tool (`check`ed) or (`tool: None`) the answer's text. `wrapped`:
    /// the tool's input is `{"value": result}`, since a tool's input is
    /// an object and the result is not.
    Step {
        tool: Option<ToolSpec>,
        check: super::steps::StepCheck,
        wrapped: bool,
    },
}

impl OutputPlan {
    /// The tool the answer must call: the response's, or a step's.
    pub(crate) fn tool(&self) -> Option<&ToolSpec> {
        match self {
            OutputPlan::Structured { tool } => Some(tool),
            OutputPlan::Step { tool, .. } => tool.as_ref(),
            OutputPlan::Text { .. } | OutputPlan::Nothing => None,
        }
    }
}

/// A declared fault the model may answer.
#[derive(Debug, Clone)]
pub(crate) struct FaultPlan {
    /// The `wsdl:fault` name.
    pub(crate) name: String,
    pub(crate) code: FaultCode,
    /// `faultstring`: a constant string or a template.
    pub(crate) reason: FillValue,
    /// The detail element, and its shape as JSON.
    pub(crate) element: QName,
    pub(crate) shape: PayloadShape,
    pub(crate) answer: FaultAnswer,
}

/// How the model answers a declared fault.
#[derive(Debug, Clone)]
pub(crate) enum FaultAnswer {
    /// Structured output: by calling this tool, whose input is the detail.
    Tool(ToolSpec),
    /// Text output: with text this regex matches; the text after the
    /// match goes into `target` (JSON keys below the detail), the rest of
    /// the detail comes from `fills`.
    Text {
        when: regex::Regex,
        target: Option<Vec<String>>,
        fills: Vec<Fill>,
    },
}

/// A fault's reason and text-output fills, rendered for one call.
#[derive(Debug, Clone)]
pub(crate) struct RenderedFault {
    pub(crate) reason: String,
    pub(crate) fills: Value,
}

/// One `fill` entry: a constant or a template for a response value.
#[derive(Debug, Clone)]
pub(crate) struct Fill {
    pub(crate) keys: Vec<String>,
    pub(crate) value: FillValue,
}

#[derive(Debug, Clone)]
pub(crate) enum FillValue {
    Constant(Value),
    /// The template's name in the plan's environment.
    Template(String),
}

/// Put `v` at `keys` inside `root`, creating objects on the way.
pub(crate) fn insert_at(root: &mut Value, keys: &[String], v: Value) {
    if !root.is_object() {
        *root = Value::Object(Map::new());
    }
    let mut at = root;
    for (i, k) in keys.iter().enumerate() {
        let Value::Object(map) = at else {
            return;
        };
        if i + 1 == keys.len() {
            map.insert(k.clone(), v);
            return;
        }
        let next = map
            .entry(k.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !next.is_object() {
            *next = Value::Object(Map::new());
        }
        at = next;
    }
}

impl OperationPlan {
    pub(crate) fn render_fills(&self, fills: &[Fill], ctx: &JValue) -> Result<Value, RenderError> {
        let mut root = Value::Object(Map::new());
        for f in fills {
            let v = match &f.value {
                FillValue::Constant(v) => v.clone(),
                FillValue::Template(name) => Value::String(self.render_template(name, ctx)?),
            };
            insert_at(&mut root, &f.keys, v);
        }
        Ok(root)
    }

    /// The response payload (the Body's children) for the model's answer,
    /// validated against the contract: [`answer_from`](Self::answer_from)
    /// for callers that expect a response. An answer that is a declared
    /// fault is not one: it is reported as [`OutputError::Invalid`].
    pub fn response_from(
        &self,
        call: &RenderedCall,
        response: &Response,
    ) -> Result<Vec<Element>, OutputError> {
        match self.answer_from(call, response)? {
            Answer::Response(payload) => Ok(payload),
            Answer::Fault(f) => Err(OutputError::Invalid {
                violations: vec![Violation {
                    path: "/".into(),
                    rule: format!(
                        "the model answered the declared fault {}, not the response",
                        f.name
                    ),
                }],
            }),
        }
    }

    /// The model's answer as the response payload (the Body's children) or
    /// as one of the operation's declared faults, validated against the
    /// contract. `call` is what [`render_request`](Self::render_request)
    /// returned for this call. With structured output the first call of an
    /// offered tool decides (the response's or a fault's); with text
    /// output the first fault whose `when` matches the text, else the
    /// response. A one-way operation's answer is the model's text as one
    /// `<sg:Answer xmlns:sg="urn:soapgate:v1">`, kept with its job.
    pub fn answer_from(
        &self,
        call: &RenderedCall,
        response: &Response,
    ) -> Result<Answer, OutputError> {
        let stop_reason = response.stop_reason.as_str().to_string();
        if matches!(
            response.stop_reason,
            StopReason::GuardrailIntervened | StopReason::ContentFiltered
        ) {
            return Err(OutputError::Blocked { stop_reason });
        }
        if self.is_one_way() {
            // Nothing goes back to the caller, but the answer is kept with
            // the job (and its results row): the model's text.
            return Ok(Answer::Response(vec![one_way_answer(
                response.text().trim(),
            )]));
        }
        let (Some(shape), Some(expected)) = (&self.response_shape, &self.response_payload) else {
            return Ok(Answer::Response(Vec::new()));
        };
        let set = &self.contract.schemas;
        let json = match &self.output {
            OutputPlan::Structured { tool } => {
                let fault_of = |name: &str| {
                    self.faults
                        .iter()
                        .position(|f| matches!(&f.answer, FaultAnswer::Tool(t) if t.name == name))
                };
                let used = response
                    .output
                    .message
                    .content
                    .iter()
                    .find_map(|b| match b {
                        ContentBlock::ToolUse(t)
                            if t.name == tool.name || fault_of(&t.name).is_some() =>
                        {
                            Some(t)
                        }
                        _ => None,
                    });
                let Some(used) = used else {
                    return Err(OutputError::NoToolUse {
                        tool: self.tool_names().join(" or "),
                        stop_reason,
                    });
                };
                if let Some(i) = fault_of(&used.name) {
                    return self.fault_answer(call, i, &used.input);
                }
                used.input.clone()
            }
            OutputPlan::Text { target, .. } => {
                let text = response.text();
                let text = text.trim();
                if text.is_empty() {
                    return Err(OutputError::NoText { stop_reason });
                }
                for (i, f) in self.faults.iter().enumerate() {
                    let FaultAnswer::Text {
                        when,
                        target: fault_target,
                        ..
                    } = &f.answer
                    else {
                        continue;
                    };
                    let Some(m) = when.find(text) else { continue };
                    let mut v = call.faults.get(i).map_or(Value::Null, |r| r.fills.clone());
                    if let Some(t) = fault_target {
                        let rest = text[m.end()..].trim();
                        insert_at(&mut v, t, Value::String(rest.to_string()));
                    }
                    return self.fault_answer(call, i, &v);
                }
                let mut v = call.fills.clone();
                insert_at(&mut v, target, Value::String(text.to_string()));
                v
            }
            OutputPlan::Nothing => return Ok(Answer::Response(Vec::new())),
            // A step's answer is read by `step_result`.
            OutputPlan::Step { .. } => return Ok(Answer::Response(Vec::new())),
        };
        let payload = payload_shape_from_json(set, shape, &json)
            .map_err(|violations| OutputError::Invalid { violations })?;
        let violations = validate_payload(set, expected, &payload, &NsScope::new());
        if violations.is_empty() {
            Ok(Answer::Response(payload))
        } else {
            Err(OutputError::Invalid { violations })
        }
    }

    /// The declared fault `self.faults[i]` with the detail `json`,
    /// converted and validated against the detail element's schema.
    fn fault_answer(
        &self,
        call: &RenderedCall,
        i: usize,
        json: &Value,
    ) -> Result<Answer, OutputError> {
        let set = &self.contract.schemas;
        let f = &self.faults[i];
        let invalid = |violations| OutputError::InvalidFault {
            fault: f.name.clone(),
            tool: match &f.answer {
                FaultAnswer::Tool(t) => Some(t.name.clone()),
                FaultAnswer::Text { .. } => None,
            },
            violations,
        };
        let payload = payload_shape_from_json(set, &f.shape, json).map_err(invalid)?;
        let declared = Payload::Document {
            elements: vec![f.element.clone()],
        };
        let violations = validate_payload(set, &declared, &payload, &NsScope::new());
        if !violations.is_empty() {
            return Err(invalid(violations));
        }
        let Some(detail) = payload.into_iter().next() else {
            return Err(invalid(vec![Violation {
                path: "/".into(),
                rule: format!("no {} element", f.element.local),
            }]));
        };
        let reason = call
            .faults
            .get(i)
            .map_or_else(|| f.name.clone(), |r| r.reason.clone());
        Ok(Answer::Fault(DeclaredFault {
            name: f.name.clone(),
            code: f.code,
            reason,
            detail,
        }))
    }

    /// The tools a structured operation offers: the response's, then each
    /// mapped fault's.
    fn tool_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .output
            .tool()
            .map(|t| t.name.clone())
            .into_iter()
            .collect();
        names.extend(self.faults.iter().filter_map(|f| match &f.answer {
            FaultAnswer::Tool(t) => Some(t.name.clone()),
            FaultAnswer::Text { .. } => None,
        }));
        names
    }

    /// The request that asks the model to fix its answer: `previous` with
    /// the model's answer appended as the assistant turn and a user turn
    /// stating what was wrong (as a failed tool result when the model
    /// called tools, so the conversation stays well-formed).
    pub fn repair_request(
        &self,
        previous: &Request,
        response: &Response,
        error: &OutputError,
    ) -> Request {
        let mut next = previous.clone();
        let mut answer = response.output.message.clone();
        if answer.content.is_empty() {
            // Converse refuses empty messages.
            answer.content.push(ContentBlock::text("(no answer)"));
        }
        let tool_uses: Vec<String> = answer
            .content
            .iter()
            .filter_map(|b| match b {
                ContentBlock::ToolUse(t) => Some(t.tool_use_id.clone()),
                _ => None,
            })
            .collect();
        next.messages.push(answer);
        let feedback = self.feedback(error);
        let mut content: Vec<ContentBlock> = tool_uses
            .into_iter()
            .map(|id| {
                ContentBlock::ToolResult(ToolResultBlock {
                    tool_use_id: id,
                    content: vec![ToolResultContent::Text(feedback.clone())],
                    status: Some(ToolResultStatus::Error),
                })
            })
            .collect();
        let again = match (error, self.output.tool()) {
            (
                OutputError::InvalidFault {
                    tool: Some(tool), ..
                },
                _,
            ) => format!("Call {tool} again with input that fixes every problem listed."),
            (OutputError::NoToolUse { .. }, Some(_)) if !self.faults.is_empty() => {
                format!("Call one of the tools {}.", self.tool_names().join(", "))
            }
            (_, Some(tool)) => {
                format!(
                    "Call {} again with input that fixes every problem listed.",
                    tool.name
                )
            }
            _ => "Answer again, fixing every problem listed.".to_string(),
        };
        if content.is_empty() {
            content.push(ContentBlock::text(format!("{feedback}\n\n{again}")));
        } else {
            content.push(ContentBlock::text(again));
        }
        next.messages.push(Message::user(content));
        next
    }

    /// The problems with an answer, worded for the model.
    fn feedback(&self, error: &OutputError) -> String {
        let list = |vs: &[Violation]| -> String {
            vs.iter()
                .map(|v| format!("- {}: {}", v.path, v.rule))
                .collect::<Vec<_>>()
                .join("\n")
        };
        match (error, self.output.tool()) {
            (OutputError::Invalid { violations }, Some(tool)) => format!(
                "The input for {} is invalid:\n{}",
                tool.name,
                list(violations)
            ),
            (OutputError::Invalid { violations }, _) => format!(
                "The answer cannot be used as the response:\n{}",
                list(violations)
            ),
            (
                OutputError::InvalidFault {
                    tool: Some(tool),
                    violations,
                    ..
                },
                _,
            ) => format!("The input for {tool} is invalid:\n{}", list(violations)),
            (
                OutputError::InvalidFault {
                    fault, violations, ..
                },
                _,
            ) => format!(
                "The answer cannot be used as the {fault} fault:\n{}",
                list(violations)
            ),
            (OutputError::NoToolUse { .. }, _) if !self.faults.is_empty() => format!(
                "You must answer by calling one of the tools {}; do not answer in text.",
                self.tool_names().join(", ")
            ),
            (OutputError::NoToolUse { tool, .. }, _) => {
                format!("You must answer by calling the tool {tool}; do not answer in text.")
            }
            (OutputError::NoText { .. }, _) => "The answer was empty.".to_string(),
            (OutputError::Blocked { .. }, _) => "The answer was blocked.".to_string(),
        }
    }
}

/// A one-way operation's answer as kept with its job: the model's text in
/// `<sg:Answer xmlns:sg="urn:soapgate:v1">`.
fn one_way_answer(text: &str) -> Element {
    let mut el = Element::new(QName::new(SOAPGATE_NS, "Answer"));
    el.prefix = Some("sg".into());
    el.ns_decls.push(NsDecl {
        prefix: "sg".into(),
        uri: SOAPGATE_NS.into(),
    });
    if !text.is_empty() {
        el.push_text(text);
    }
    el
}
