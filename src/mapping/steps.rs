//! Multi-step operations: an operation whose response is assembled from
//! the results of several model calls ("steps"), as checked at load
//! (`compile/steps.rs`). Each step is an [`OperationPlan`] of its own —
//! targets, inputs, templates, repairs, everything a single-call
//! operation has — whose answer is a JSON value (an XSD type of the
//! contract, an inline JSON Schema, or text) instead of a response. What
//! runs the steps, in which order and how concurrently, is `workflow`'s;
//! this module holds what the mapping says and what the templates see.
//!
//! Templates, `when` and `for_each` of a step, and the fills of the
//! response, read earlier results as `steps.NAME…`; a step run per item
//! reads its item as `item` and its position as `index`.

use serde_json::{Map, Value};

use super::output::{OutputPlan, insert_at};
use super::render::template_value;
use super::{CallMeta, OperationPlan, OutputError, RenderError, RenderedCall};
use crate::contract::{Violation, validate_payload};
use crate::converse::{ContentBlock, Response, StopReason};
use crate::xml::{Element, NsScope};

/// The template variable holding earlier steps' results.
pub const STEPS_VAR: &str = "steps";
/// The template variables of a step run per item.
pub const ITEM_VAR: &str = "item";
pub const INDEX_VAR: &str = "index";

/// The steps of a multi-step operation and how its response is assembled.
#[derive(Debug)]
pub struct Workflow {
    /// In an order where every step comes after the steps it reads.
    pub(crate) steps: Vec<StepPlan>,
    /// The step whose result the response starts from.
    pub(crate) from: Option<usize>,
    pub(crate) fills: Vec<AssemblyFill>,
}

/// One step.
#[derive(Debug)]
pub struct StepPlan {
    pub(crate) name: String,
    pub(crate) plan: OperationPlan,
    /// An expression; the step is skipped when it is false.
    pub(crate) when: Option<String>,
    pub(crate) for_each: Option<ForEach>,
    pub(crate) max_concurrency: usize,
    pub(crate) on_failure: StepFailure,
    /// The result when skipped or failed with `continue`; `None`: absent.
    pub(crate) default: Option<Value>,
    /// The steps it reads (indices into [`Workflow::steps`], all earlier).
    pub(crate) reads: Vec<usize>,
}

/// What a `for_each` step runs over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForEach {
    /// An input variable whose path is repeated (`[]`): one run per
    /// occurrence.
    Input(String),
    /// An expression over earlier results that gives a list.
    Expr(String),
}

/// What a step's failure does.
#[derive(Debug, Clone, PartialEq)]
pub enum StepFailure {
    /// Fails the operation (whose own `on_failure` then applies).
    Fault,
    /// The step's `default` stands for its result; the call goes on.
    Continue,
    /// This value stands for its result, and the call is marked degraded.
    Static(Value),
}

/// One `fill` of a multi-step operation's response.
#[derive(Debug, Clone)]
pub(crate) struct AssemblyFill {
    pub(crate) keys: Vec<String>,
    pub(crate) value: AssemblyValue,
}

#[derive(Debug, Clone)]
pub(crate) enum AssemblyValue {
    Constant(Value),
    /// A template rendered to text (its name in the operation's
    /// environment).
    Template(String),
    /// `{{ expression }}` alone: the expression's value, lists and
    /// objects included.
    Expr(String),
    /// A repeated element: one per item of a list, each filled by
    /// `fills` with `item` and `index`.
    Each {
        over: ForEach,
        fills: Vec<AssemblyFill>,
    },
}

/// How a step's answer is checked.
#[derive(Debug, Clone)]
pub(crate) enum StepCheck {
    /// The text of the answer.
    Text,
    /// A JSON Schema (the subset `json_check` knows).
    Schema(Value),
    /// An XSD type: the answer as an element of that type must validate.
    Type {
        field: crate::contract::xsd::shape::Field,
        name: crate::xml::QName,
    },
}

impl Workflow {
    /// The steps, each after the steps it reads.
    pub fn steps(&self) -> &[StepPlan] {
        &self.steps
    }

    /// The step the response starts from, when one is named.
    pub fn from(&self) -> Option<&StepPlan> {
        self.from.map(|i| &self.steps[i])
    }
}

impl StepPlan {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The step's own call: targets, templates, output, repairs.
    pub fn plan(&self) -> &OperationPlan {
        &self.plan
    }

    pub fn when(&self) -> Option<&str> {
        self.when.as_deref()
    }

    pub fn for_each(&self) -> Option<&ForEach> {
        self.for_each.as_ref()
    }

    pub fn max_concurrency(&self) -> usize {
        self.max_concurrency
    }

    pub fn on_failure(&self) -> &StepFailure {
        &self.on_failure
    }

    /// The result when skipped or failed with `continue`.
    pub fn default(&self) -> Option<&Value> {
        self.default.as_ref()
    }

    /// Indices of the steps this one reads.
    pub fn reads(&self) -> &[usize] {
        &self.reads
    }

    /// What the step's answer is.
    pub fn output(&self) -> StepOutput<'_> {
        match &self.plan.output {
            OutputPlan::Step {
                check: StepCheck::Schema(schema),
                ..
            } => StepOutput::Schema(schema),
            OutputPlan::Step {
                check: StepCheck::Type { name, .. },
                ..
            } => StepOutput::Type(name),
            _ => StepOutput::Text,
        }
    }

    /// A result one call of the step could give (one item's, for a
    /// `for_each` step), as the mapping's templates are checked with at
    /// load: its schema's sample, a value of its XSD type, or "text".
    pub fn sample_result(&self) -> Value {
        let set = &self.plan.contract.schemas;
        match &self.plan.output {
            OutputPlan::Step { check, .. } => check.sample(set),
            _ => StepCheck::Text.sample(set),
        }
    }

    /// The step's result when its `when` is false: an empty list for a
    /// `for_each` step, else its `default` (null without one).
    pub fn skipped_result(&self) -> Value {
        match (&self.for_each, &self.default) {
            (Some(_), _) => Value::Array(Vec::new()),
            (None, Some(v)) => v.clone(),
            (None, None) => Value::Null,
        }
    }
}

/// What a step's answer is, as [`StepPlan::output`] tells it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StepOutput<'a> {
    /// The answer's text.
    Text,
    /// A value of an inline JSON Schema.
    Schema(&'a Value),
    /// A value of an XSD type of the contract.
    Type(&'a crate::xml::QName),
}

impl StepCheck {
    /// A small value this check accepts (see [`StepPlan::sample_result`]).
    pub(crate) fn sample(&self, set: &crate::contract::xsd::SchemaSet) -> Value {
        match self {
            StepCheck::Schema(schema) => super::json_check::sample(schema),
            StepCheck::Type { field, .. } => super::compile::sample_type(set, field.type_id, 0),
            StepCheck::Text => Value::String("text".into()),
        }
    }
}

impl OperationPlan {
    /// A multi-step operation's steps and assembly.
    pub fn workflow(&self) -> Option<&Workflow> {
        self.workflow.as_deref()
    }

    /// The variables every template of the call sees (inputs, `payload`,
    /// `meta`), attachments left out: what `when`, `for_each` and the
    /// response's fills are evaluated with, beside `steps`.
    pub fn variables(
        &self,
        payload: &[Element],
        meta: &CallMeta<'_>,
    ) -> Result<Map<String, Value>, RenderError> {
        self.context(payload, meta, &Default::default())
    }

    /// The value of an expression of the mapping (`when`, `for_each`, a
    /// fill) over `vars`, as JSON (none and undefined: `null`).
    pub fn eval(
        &self,
        what: &str,
        expr: &str,
        vars: &Map<String, Value>,
    ) -> Result<Value, RenderError> {
        let v = self.expression(what, expr, vars)?;
        if v.is_undefined() || v.is_none() {
            return Ok(Value::Null);
        }
        serde_json::to_value(&v).map_err(|e| self.expression_error(what, e.to_string()))
    }

    /// Whether `step` runs with `vars` (inputs and `steps` so far): it
    /// has no `when`, or its `when` holds.
    pub fn step_runs(
        &self,
        step: &StepPlan,
        vars: &Map<String, Value>,
    ) -> Result<bool, RenderError> {
        match step.when() {
            Some(when) => self.holds(&format!("step {} when", step.name()), when, vars),
            None => Ok(true),
        }
    }

    /// The items a `for_each` step runs over with `vars` (a single value is
    /// one item, null none); empty for a step without `for_each`.
    pub fn step_items(
        &self,
        step: &StepPlan,
        vars: &Map<String, Value>,
    ) -> Result<Vec<Value>, RenderError> {
        let items = match step.for_each() {
            None => return Ok(Vec::new()),
            Some(ForEach::Input(name)) => vars.get(name).cloned().unwrap_or(Value::Null),
            Some(ForEach::Expr(expr)) => {
                self.eval(&format!("step {} for_each", step.name()), expr, vars)?
            }
        };
        Ok(match items {
            Value::Array(items) => items,
            Value::Null => Vec::new(),
            other => vec![other],
        })
    }

    /// Whether an expression holds (minijinja's truth: false, none, 0, ""
    /// and empty lists do not).
    pub fn holds(
        &self,
        what: &str,
        expr: &str,
        vars: &Map<String, Value>,
    ) -> Result<bool, RenderError> {
        Ok(self.expression(what, expr, vars)?.is_true())
    }

    fn expression(
        &self,
        what: &str,
        expr: &str,
        vars: &Map<String, Value>,
    ) -> Result<minijinja::Value, RenderError> {
        let fail = |e: minijinja::Error| {
            self.expression_error(what, super::render::template_error_text(&e))
        };
        self.env
            .compile_expression(expr)
            .map_err(fail)?
            .eval(template_value(Value::Object(vars.clone())))
            .map_err(fail)
    }

    fn expression_error(&self, what: &str, message: String) -> RenderError {
        RenderError::Template {
            at: self.source.display().to_string(),
            template: what.to_string(),
            message,
        }
    }

    /// A step's answer as its result: the forced tool's input checked
    /// against the step's XSD type or JSON Schema, or the answer's text.
    /// Takes the rendered call as [`answer_from`](Self::answer_from) does,
    /// so the repair loop reads either the same way.
    pub fn step_result(
        &self,
        _call: &RenderedCall,
        response: &Response,
    ) -> Result<Value, OutputError> {
        let stop_reason = response.stop_reason.as_str().to_string();
        if matches!(
            response.stop_reason,
            StopReason::GuardrailIntervened | StopReason::ContentFiltered
        ) {
            return Err(OutputError::Blocked { stop_reason });
        }
        let OutputPlan::Step {
            tool,
            check,
            wrapped,
        } = &self.output
        else {
            return Err(OutputError::NoText { stop_reason });
        };
        let value = match tool {
            None => {
                let text = response.text();
                let text = text.trim();
                if text.is_empty() {
                    return Err(OutputError::NoText { stop_reason });
                }
                return Ok(Value::String(text.to_string()));
            }
            Some(tool) => {
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
                if *wrapped {
                    used.input.get("value").cloned().unwrap_or(Value::Null)
                } else {
                    used.input.clone()
                }
            }
        };
        let violations = self.check_step_value(check, &value);
        if violations.is_empty() {
            Ok(value)
        } else {
            Err(OutputError::Invalid { violations })
        }
    }

    /// Every way `value` breaks a step's output.
    pub(crate) fn check_step_value(&self, check: &StepCheck, value: &Value) -> Vec<Violation> {
        match check {
            StepCheck::Text => match value {
                Value::String(_) => Vec::new(),
                _ => vec![Violation {
                    path: "/".into(),
                    rule: "expected text".into(),
                }],
            },
            StepCheck::Schema(schema) => super::json_check::validate(schema, value),
            StepCheck::Type { field, name } => {
                let set = &self.contract.schemas;
                let shape = super::payload::PayloadShape::Element(field.clone());
                match super::json_xml::payload_shape_from_json(set, &shape, value) {
                    Err(violations) => violations,
                    Ok(els) => match els.first() {
                        Some(el) => set.validate_typed(el, name, ""),
                        None => vec![Violation {
                            path: "/".into(),
                            rule: "no value".into(),
                        }],
                    },
                }
            }
        }
    }

    /// A multi-step operation's response from its steps' results
    /// (`vars` with `steps`): the `from` step's result, each fill put in
    /// its place, converted to XML and validated against the contract.
    pub fn assemble(&self, vars: &Map<String, Value>) -> Result<Vec<Element>, AssembleError> {
        let Some(workflow) = self.workflow() else {
            return Ok(Vec::new());
        };
        let (Some(shape), Some(expected)) = (&self.response_shape, &self.response_payload) else {
            return Ok(Vec::new());
        };
        let mut json = match workflow.from() {
            Some(step) => vars
                .get(STEPS_VAR)
                .and_then(|s| s.get(&step.name))
                .cloned()
                .filter(Value::is_object)
                .unwrap_or_else(|| Value::Object(Map::new())),
            None => Value::Object(Map::new()),
        };
        self.fill_in(&mut json, &workflow.fills, vars)?;
        let set = &self.contract.schemas;
        let payload = super::json_xml::payload_shape_from_json(set, shape, &json)
            .map_err(|violations| AssembleError::Invalid(OutputError::Invalid { violations }))?;
        let violations = validate_payload(set, expected, &payload, &NsScope::new());
        if violations.is_empty() {
            Ok(payload)
        } else {
            Err(AssembleError::Invalid(OutputError::Invalid { violations }))
        }
    }
}

impl OperationPlan {
    /// Puts each fill's value in its place in `json`.
    fn fill_in(
        &self,
        json: &mut Value,
        fills: &[AssemblyFill],
        vars: &Map<String, Value>,
    ) -> Result<(), RenderError> {
        for fill in fills {
            let what = || format!("fill {}", fill.keys.join("/"));
            let v = match &fill.value {
                AssemblyValue::Constant(v) => v.clone(),
                AssemblyValue::Template(name) => Value::String(
                    self.render_template(name, &template_value(Value::Object(vars.clone())))?,
                ),
                AssemblyValue::Expr(expr) => self.eval(&what(), expr, vars)?,
                AssemblyValue::Each { over, fills } => {
                    let items = match over {
                        ForEach::Input(name) => vars.get(name).cloned().unwrap_or(Value::Null),
                        ForEach::Expr(expr) => self.eval(&what(), expr, vars)?,
                    };
                    let items = match items {
                        Value::Array(items) => items,
                        Value::Null => Vec::new(),
                        one => vec![one],
                    };
                    let mut out = Vec::with_capacity(items.len());
                    let mut each = vars.clone();
                    for (i, item) in items.into_iter().enumerate() {
                        each.insert(ITEM_VAR.into(), item);
                        each.insert(INDEX_VAR.into(), Value::from(i));
                        let mut one = Value::Object(Map::new());
                        self.fill_in(&mut one, fills, &each)?;
                        out.push(one);
                    }
                    Value::Array(out)
                }
            };
            // Nothing to put there: the element is left out.
            if !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()) {
                insert_at(json, &fill.keys, v);
            }
        }
        Ok(())
    }
}

/// An order of the steps `0..deps.len()` where each comes after every
/// step of its `deps`, ready steps taken lowest first; shorter than the
/// number of steps when some are in a cycle (those are left out).
pub fn topological(deps: &[std::collections::BTreeSet<usize>]) -> Vec<usize> {
    let mut done = vec![false; deps.len()];
    let mut order = Vec::with_capacity(deps.len());
    loop {
        let next = (0..deps.len())
            .find(|&i| !done[i] && deps[i].iter().all(|&d| d < deps.len() && done[d]));
        match next {
            Some(i) => {
                done[i] = true;
                order.push(i);
            }
            None => return order,
        }
    }
}

/// Why a multi-step operation's response could not be assembled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssembleError {
    /// A fill's template or expression failed.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// The assembled response breaks the contract.
    #[error(transparent)]
    Invalid(OutputError),
}
