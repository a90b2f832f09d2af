//! From the model's answer to the response payload: structured output (the
//! forced tool's input, JSON -> XML), text output (the answer's text into
//! one element, the rest from `fill`), every result validated against the
//! XSD; and the repair request that feeds the violations back.

use minijinja::Value as JValue;
use serde_json::{Map, Value};

use super::json_xml::payload_shape_from_json;
use super::{OperationPlan, OutputError, RenderError, RenderedCall};
use crate::contract::{Violation, validate_payload};
use crate::converse::{
    ContentBlock, Message, Request, Response, StopReason, ToolResultBlock, ToolResultContent,
    ToolResultStatus, ToolSpec,
};
use crate::soap::SOAPGATE_NS;
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
    /// validated against the contract. `call` is what
    /// [`render_request`](Self::render_request) returned for this call. A
    /// one-way operation's answer is the model's text as one
    /// `<sg:Answer xmlns:sg="urn:soapgate:v1">`, kept with its job.
    pub fn response_from(
        &self,
        call: &RenderedCall,
        response: &Response,
    ) -> Result<Vec<Element>, OutputError> {
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
            return Ok(vec![one_way_answer(response.text().trim())]);
        }
        let (Some(shape), Some(expected)) = (&self.response_shape, &self.response_payload) else {
            return Ok(Vec::new());
        };
        let set = &self.contract.schemas;
        let json = match &self.output {
            OutputPlan::Structured { tool } => {
                let used = response
                    .output
                    .message
                    .content
                    .iter()
                    .find_map(|b| match b {
                        ContentBlock::ToolUse(t) if t.name == tool.name => Some(t),
                        _ => None,
                    });
                let Some(used) = used else {
                    return Err(OutputError::NoToolUse {
                        tool: tool.name.clone(),
                        stop_reason,
                    });
                };
                used.input.clone()
            }
            OutputPlan::Text { target, .. } => {
                let text = response.text();
                let text = text.trim();
                if text.is_empty() {
                    return Err(OutputError::NoText { stop_reason });
                }
                let mut v = call.fills.clone();
                insert_at(&mut v, target, Value::String(text.to_string()));
                v
            }
            OutputPlan::Nothing => return Ok(Vec::new()),
        };
        let payload = payload_shape_from_json(set, shape, &json)
            .map_err(|violations| OutputError::Invalid { violations })?;
        let violations = validate_payload(set, expected, &payload, &NsScope::new());
        if violations.is_empty() {
            Ok(payload)
        } else {
            Err(OutputError::Invalid { violations })
        }
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
        let again = match &self.output {
            OutputPlan::Structured { tool } => {
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
        match (error, &self.output) {
            (OutputError::Invalid { violations }, OutputPlan::Structured { tool }) => format!(
                "The input for {} is invalid:\n{}",
                tool.name,
                list(violations)
            ),
            (OutputError::Invalid { violations }, _) => format!(
                "The answer cannot be used as the response:\n{}",
                list(violations)
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
