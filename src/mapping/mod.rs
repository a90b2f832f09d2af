//! Mapping: how a SOAP operation becomes a Converse call and how the
//! model's answer becomes the response the WSDL promises.
//!
//! A mapping file (`mappings/*.yaml`, one per service, documented in
//! `mappings/README.md`) is parsed ([`spec`]) and checked against the
//! contract at load ([`compile`]): every path, element, template variable
//! and static fallback is resolved or validated then, so mistakes surface
//! as `file:line:col: message` before the first call. The result is one
//! [`OperationPlan`] per mapped operation, which at call time
//! - renders a [`converse::Request`] from a validated request payload
//!   ([`OperationPlan::render_request`]),
//! - turns a [`converse::Response`] into a validated response payload, or
//!   one of the operation's declared faults when the model chose one
//!   ([`OperationPlan::answer_from`], an [`Answer`]), or says what is
//!   wrong with it ([`OutputError`]), and
//! - builds the follow-up request that asks the model to fix its answer
//!   ([`OperationPlan::repair_request`]).
//!
//! Pure: no I/O (the caller reads the files), nothing async; it does not
//! call models, retry or fall back — the pipeline does, with what the plan
//! provides ([`OperationPlan::targets`], [`OperationPlan::repair_attempts`],
//! [`OperationPlan::on_failure`], [`OperationPlan::call_policy`]).

mod compile;
mod json_check;
pub mod json_schema;
mod json_xml;
mod output;
mod path;
mod payload;
mod render;
mod spec;
mod steps;
mod variants;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::contract::xsd::shape;
use crate::contract::{Contract, ContractSet, Payload, Violation};
use crate::converse;
use crate::soap::{DeclaredFault, FaultCode};
use crate::xml::{Element, QName};

pub use json_xml::{JsonViolations, json_to_xml, payload_from_json, payload_to_json, xml_to_json};
pub use shape::{ATTR_PREFIX, TEXT_KEY};
pub use steps::{
    AssembleError, ForEach, INDEX_VAR, ITEM_VAR, STEPS_VAR, StepFailure, StepOutput, StepPlan,
    Workflow, topological,
};
pub use variants::Variant;

/// A problem in a mapping file, displayed as `path:line:col: message`
/// (1-based; a problem with no better position points at 1:1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{}:{}: {message}", path.display(), line.max(&1), col.max(&1))]
pub struct MappingError {
    pub path: PathBuf,
    pub line: u32,
    pub col: u32,
    pub message: String,
}

/// Every mapped operation of every service.
#[derive(Debug, Default)]
pub struct MappingSet {
    plans: BTreeMap<(String, String), OperationPlan>,
}

impl MappingSet {
    /// Parse and check mapping files (path, text) against the contracts.
    /// All problems of all files are reported, not just the first.
    pub fn load(
        files: &[(PathBuf, String)],
        contracts: &ContractSet,
    ) -> Result<MappingSet, Vec<MappingError>> {
        compile::load(files, contracts)
    }

    /// The plan for one operation, if it is mapped.
    pub fn plan(&self, service: &str, operation: &str) -> Option<&OperationPlan> {
        self.plans
            .get(&(service.to_string(), operation.to_string()))
    }

    /// Serves every call of one operation with its own settings (`None`)
    /// or with one of its variants, without a draw and without a shadow:
    /// what `soapgate replay` runs. An error names what is not there.
    pub fn pin_variant(
        &mut self,
        service: &str,
        operation: &str,
        variant: Option<&str>,
    ) -> Result<(), String> {
        let key = (service.to_string(), operation.to_string());
        let Some(plan) = self.plans.get_mut(&key) else {
            return Err(format!("{service}.{operation} is not mapped"));
        };
        let mut variants = std::mem::take(&mut plan.variants);
        let Some(name) = variant else {
            return Ok(());
        };
        let Some(at) = variants.list.iter().position(|v| v.name == name) else {
            let known: Vec<&str> = variants.list.iter().map(|v| v.name.as_str()).collect();
            let known = if known.is_empty() {
                "it has none".to_string()
            } else {
                format!("it has {}", known.join(", "))
            };
            plan.variants = variants;
            return Err(format!(
                "{service}.{operation} has no variant {name:?} ({known})"
            ));
        };
        let chosen = variants.list.swap_remove(at);
        // The variant's plan is shared only with the list just taken apart.
        drop(variants);
        let mut pinned = Arc::try_unwrap(chosen.plan)
            .map_err(|_| format!("{service}.{operation}: variant {name:?} is in use elsewhere"))?;
        pinned.variants = variants::Variants::default();
        self.plans.insert(key, pinned);
        Ok(())
    }

    /// Sends one operation's calls to `target` alone instead of its
    /// mapping's chain (`soapgate replay --target`); false when the
    /// operation is not mapped.
    pub fn retarget(&mut self, service: &str, operation: &str, target: ModelTarget) -> bool {
        match self
            .plans
            .get_mut(&(service.to_string(), operation.to_string()))
        {
            Some(plan) => {
                plan.targets = vec![target];
                true
            }
            None => false,
        }
    }

    /// Every plan, sorted by service then operation.
    pub fn plans(&self) -> impl Iterator<Item = &OperationPlan> {
        self.plans.values()
    }

    pub fn len(&self) -> usize {
        self.plans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.plans.is_empty()
    }
}

/// Whether the caller waits for the model (`sync`) or gets a ticket now
/// (`async`). One-way operations are always `async`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Sync,
    Async,
}

/// One model of the fallback chain, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelTarget {
    /// A model id, inference profile id or ARN.
    pub model: String,
    /// The region to call it in; `None`: the configured default.
    pub region: Option<String>,
}

/// What happens when no valid answer comes back: every target failed, the
/// deadline passed, or the answer stayed invalid after the repair attempts.
#[derive(Debug, Clone)]
pub enum FailurePolicy {
    /// Answer the fault of the failure (`MODEL_*`, `INVALID_MODEL_OUTPUT`).
    Fault,
    /// Answer the last good response to the same request, kept by the
    /// model layer; a fault when there is none.
    Cache,
    /// Answer this response (validated at load).
    Static(Vec<Element>),
}

/// How the model layer treats an operation's calls: its own retries, the
/// deadline and the response cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallPolicy {
    /// Retry errors the SDK does not retry (`model.retry`, default true).
    pub retry: bool,
    /// `model.deadline_ms`; `None`: the configured default.
    pub deadline: Option<std::time::Duration>,
    /// `cache.ttl_secs`; `None`: answers are not cached.
    pub cache_ttl: Option<std::time::Duration>,
}

/// Facts about the call that templates and request metadata may use.
#[derive(Debug, Clone, Copy)]
pub struct CallMeta<'a> {
    pub service: &'a str,
    pub operation: &'a str,
    pub correlation_id: &'a str,
}

/// A rendered call: the request for the first target, the target chain,
/// and what [`OperationPlan::answer_from`] needs to read the answer.
#[derive(Debug, Clone)]
pub struct RenderedCall {
    pub request: converse::Request,
    pub targets: Vec<ModelTarget>,
    pub expect: Expect,
    /// Text output: the response with everything but the model's text
    /// already filled in (rendered from this call's variables).
    pub(crate) fills: serde_json::Value,
    /// Each mapped fault's reason and (text output) detail fills, rendered
    /// from this call's variables, in the plan's order.
    pub(crate) faults: Vec<output::RenderedFault>,
}

/// A valid answer of the model: the response payload, or one of the
/// operation's declared faults (its detail validated against the XSD).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The Body's children.
    Response(Vec<Element>),
    Fault(DeclaredFault),
}

/// A declared fault a mapping lets the model answer, as `soapgate check`
/// lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedFault {
    /// The `wsdl:fault` name.
    pub name: String,
    pub code: FaultCode,
    /// The detail element.
    pub element: QName,
    /// Structured output: the fault's tool. Text output: `None` (the
    /// answer's `when` rule selects it).
    pub tool: Option<String>,
}

/// What kind of answer the call expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// A call of this (forced) tool whose input is the response as JSON.
    Structured { tool: String },
    /// Text that goes into one response element.
    Text,
    /// Nothing: a one-way operation (the answer is kept, not returned).
    Nothing,
}

/// The request payload could not be turned into a Converse request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// A template failed (e.g. a filter given the wrong type). A mapping
    /// problem: the operator must fix the mapping. `at` is the mapping
    /// file and line (`path:line`) of the template's failing line.
    #[error("{at}: template {template} failed: {message}")]
    Template {
        at: String,
        template: String,
        message: String,
    },
    /// The request's content cannot be sent as asked (e.g. a base64 element
    /// that does not decode, an attachment format Converse does not take).
    /// The client's problem: safe to tell them.
    #[error("input {var}: {message}")]
    Input { var: String, message: String },
}

/// The model's answer cannot be turned into a valid response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputError {
    /// Structured output expected, but the model did not call the tool.
    #[error("the model did not call {tool} (stop reason {stop_reason})")]
    NoToolUse { tool: String, stop_reason: String },
    /// Text output expected, but the answer has no text.
    #[error("the model's answer has no text (stop reason {stop_reason})")]
    NoText { stop_reason: String },
    /// The answer does not fit the response schema.
    #[error("the model's answer breaks {} schema rule(s)", violations.len())]
    Invalid { violations: Vec<Violation> },
    /// The answer chose a declared fault whose detail does not fit its
    /// schema; `tool` is the fault's tool (structured output).
    #[error("the model's {fault} fault breaks {} schema rule(s)", violations.len())]
    InvalidFault {
        fault: String,
        tool: Option<String>,
        violations: Vec<Violation>,
    },
    /// A guardrail or content filter stopped the answer; asking again will
    /// not help.
    #[error("the model's answer was blocked (stop reason {stop_reason})")]
    Blocked { stop_reason: String },
}

impl OutputError {
    /// The violations to feed back (empty for the other kinds).
    pub fn violations(&self) -> &[Violation] {
        match self {
            OutputError::Invalid { violations } | OutputError::InvalidFault { violations, .. } => {
                violations
            }
            _ => &[],
        }
    }

    /// Whether asking the model again with the errors may help.
    pub fn is_repairable(&self) -> bool {
        !matches!(self, OutputError::Blocked { .. })
    }
}

/// One mapped operation, checked against its contract and ready to run.
pub struct OperationPlan {
    pub(crate) service: String,
    pub(crate) operation: String,
    pub(crate) source: PathBuf,
    pub(crate) contract: Arc<Contract>,
    pub(crate) request_shape: payload::PayloadShape,
    pub(crate) response_payload: Option<Payload>,
    pub(crate) response_shape: Option<payload::PayloadShape>,
    pub(crate) mode: Mode,
    pub(crate) idempotency_key: Option<path::Path>,
    pub(crate) targets: Vec<ModelTarget>,
    pub(crate) inference: Option<converse::InferenceConfig>,
    pub(crate) guardrail: Option<converse::GuardrailConfig>,
    pub(crate) additional_fields: Option<serde_json::Value>,
    pub(crate) inputs: Vec<render::InputPlan>,
    pub(crate) env: minijinja::Environment<'static>,
    /// Each template's first line in the mapping file, by template name.
    pub(crate) template_lines: BTreeMap<String, u32>,
    pub(crate) has_system: bool,
    /// Whether any template reads `payload` / `payload_xml`.
    pub(crate) needs_payload_json: bool,
    pub(crate) needs_payload_xml: bool,
    pub(crate) output: output::OutputPlan,
    /// The declared faults the model may answer, in mapping order.
    pub(crate) faults: Vec<output::FaultPlan>,
    pub(crate) repair_attempts: u32,
    pub(crate) on_failure: FailurePolicy,
    pub(crate) call_policy: CallPolicy,
    pub(crate) result_columns: Vec<ResultColumn>,
    /// What every call sends whatever the request: the templates' text and
    /// the tool schema, in bytes ([`OperationPlan::token_ceiling`]).
    pub(crate) static_input_bytes: usize,
    /// `record:`: which calls are kept for replay, and what of them not.
    pub(crate) record: Option<RecordPlan>,
    /// `batch:`: jobs of this operation wait to go to the model together
    /// in a batch-inference job.
    pub(crate) batch: Option<BatchPlan>,
    /// Hex SHA-256 of the mapping file's text: which version of the
    /// mapping served a recorded call.
    pub(crate) mapping_sha256: Arc<str>,
    /// Other settings serving a share of the calls, or run beside them.
    pub(crate) variants: variants::Variants,
    /// `steps:`: the operation is answered by several model calls.
    pub(crate) workflow: Option<Box<steps::Workflow>>,
}

/// An operation's `batch:` setting: its jobs (async, one-way, polling
/// table; never a synchronous call) wait to be sent together as one
/// batch-inference job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchPlan {
    /// A batch is cut as soon as this many jobs wait (at least the
    /// service's minimum per job).
    pub min_records: usize,
    /// At most this many jobs go in one batch.
    pub max_records: usize,
    /// How long a job waits for a batch; past it, it runs on demand.
    pub max_wait: std::time::Duration,
    /// The service role the batch job reads and writes S3 with.
    pub role_arn: String,
    /// `s3://bucket/prefix`: each batch writes its input under
    /// `{s3_uri}/{batch}/` and the service its output under
    /// `{s3_uri}/{batch}/out/`.
    pub s3_uri: String,
    /// The model (or inference profile) the batch job is created for; the
    /// operation's first target when unset.
    pub model: String,
}

/// An operation's `record:` setting.
#[derive(Debug, Clone)]
pub struct RecordPlan {
    /// The share of calls recorded, 0 to 1.
    pub sample: f64,
    /// Request paths whose values are replaced before anything is kept.
    pub(crate) redact: Vec<path::Path>,
}

/// About the size of `payload` written as XML without namespace
/// declarations: text, attribute values and names, tag names. What a call
/// can send of its request is no larger (for
/// [`OperationPlan::token_ceiling`]); a stored job's payload is measured
/// by its own length instead.
pub fn request_bytes(payload: &[Element]) -> usize {
    fn size(el: &Element) -> usize {
        let tag = el.name.local.len() + el.prefix.as_ref().map_or(0, |p| p.len() + 1);
        let attrs: usize = el
            .attrs
            .iter()
            .map(|a| {
                a.name.local.len()
                    + a.prefix.as_ref().map_or(0, |p| p.len() + 1)
                    + a.value.len()
                    + 4
            })
            .sum();
        let children: usize = el
            .children
            .iter()
            .map(|c| match c {
                crate::xml::Node::Element(e) => size(e),
                crate::xml::Node::Text(t) => t.len(),
            })
            .sum();
        2 * tag + 5 + attrs + children
    }
    payload.iter().map(size).sum()
}

/// Output tokens a call is counted for when its mapping sets no
/// `max_tokens`.
pub const DEFAULT_MAX_TOKENS: u32 = 4_096;

/// What a repair request adds beyond the model's earlier answer: the list
/// of violations, at most.
const REPAIR_NOTE_BYTES: u64 = 4_096;

/// A flat column of `soapgate_results` a mapping declares: its name and
/// where its value is in the response payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultColumn {
    pub name: String,
    /// Element steps below the payload root (for rpc, the first is a part).
    pub(crate) steps: Vec<QName>,
    pub(crate) attr: Option<QName>,
}

impl ResultColumn {
    /// The column's value in a response payload (the Body's children): the
    /// text of the element (or attribute) at the column's path, `None` when
    /// absent.
    pub fn value_in(&self, payload: &[Element]) -> Option<String> {
        let mut el = payload.first()?;
        for step in &self.steps {
            el = el.child(&step.ns, &step.local)?;
        }
        match &self.attr {
            Some(a) => el.attr_ns(&a.ns, &a.local).map(str::to_owned),
            None => Some(el.text()),
        }
    }
}

/// The columns of `soapgate_results` that are part of the batch contract
/// (docs/polling-tables.md); a flat result column may not reuse them.
pub const RESULT_CONTRACT_COLUMNS: &[&str] = &[
    "id",
    "correlation_id",
    "status",
    "payload",
    "fault_code",
    "fault_text",
    "model",
    "input_tokens",
    "output_tokens",
    "created_at",
    "completed_at",
];

/// `[a-z_][a-z0-9_]{0,62}` and not a contract column: a name every backend
/// takes unquoted, safe to write into SQL.
pub fn is_result_column_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && (bytes[0].is_ascii_lowercase() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
        && !RESULT_CONTRACT_COLUMNS.contains(&name)
}

impl fmt::Debug for OperationPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OperationPlan")
            .field("service", &self.service)
            .field("operation", &self.operation)
            .field("source", &self.source)
            .field("mode", &self.mode)
            .field("targets", &self.targets)
            .field("output", &self.output)
            .field("repair_attempts", &self.repair_attempts)
            .field("variants", &self.variants)
            .finish_non_exhaustive()
    }
}

impl OperationPlan {
    pub fn service(&self) -> &str {
        &self.service
    }

    pub fn operation(&self) -> &str {
        &self.operation
    }

    /// The mapping file the plan came from.
    pub fn source(&self) -> &std::path::Path {
        &self.source
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The value of the mapping's `idempotency_key` path in this request
    /// payload (trimmed; `None` when the mapping declares none or the
    /// request leaves it out or empty).
    pub fn idempotency_key(&self, payload: &[Element]) -> Option<String> {
        self.simple_value(self.idempotency_key.as_ref()?, payload)
    }

    /// The trimmed text at a path to one simple value of the request
    /// (`None` when absent or empty).
    fn simple_value(&self, at: &path::Path, payload: &[Element]) -> Option<String> {
        let (root, top) = self.roots(payload);
        let value = match path::find(at, root, &top) {
            path::Found::One(Some(path::Reached::Element(_, el))) => el.text(),
            path::Found::One(Some(path::Reached::Attribute(_, v))) => v.to_string(),
            _ => return None,
        };
        let value = value.trim();
        (!value.is_empty()).then(|| value.to_string())
    }

    /// The operation's `record:` setting, when it records.
    pub fn record(&self) -> Option<&RecordPlan> {
        self.record.as_ref()
    }

    /// `batch:`, when jobs of this operation go to batch inference.
    pub fn batch(&self) -> Option<&BatchPlan> {
        self.batch.as_ref()
    }

    /// Hex SHA-256 of the mapping file this plan was loaded from.
    pub fn mapping_sha256(&self) -> &str {
        &self.mapping_sha256
    }

    /// Every value the `record: redact` paths reach in this request: the
    /// attribute values, and each piece of text in a reached element's
    /// subtree (trimmed, non-empty).
    pub fn redacted_values(&self, payload: &[Element]) -> Vec<String> {
        fn texts(el: &Element, out: &mut Vec<String>) {
            for n in &el.children {
                match n {
                    crate::xml::Node::Element(child) => texts(child, out),
                    crate::xml::Node::Text(t) => {
                        let t = t.trim();
                        if !t.is_empty() {
                            out.push(t.to_string());
                        }
                    }
                }
            }
            for a in &el.attrs {
                if !a.value.trim().is_empty() {
                    out.push(a.value.trim().to_string());
                }
            }
        }
        let Some(record) = &self.record else {
            return Vec::new();
        };
        let (root, top) = self.roots(payload);
        let mut out = Vec::new();
        for p in &record.redact {
            for reached in path::find(p, root, &top).leaves() {
                match reached {
                    path::Reached::Element(_, el) => texts(el, &mut out),
                    path::Reached::Attribute(_, v) if !v.trim().is_empty() => {
                        out.push(v.trim().to_string());
                    }
                    path::Reached::Attribute(..) => {}
                }
            }
        }
        out
    }

    /// The fallback chain, first choice first (never empty).
    pub fn targets(&self) -> &[ModelTarget] {
        &self.targets
    }

    /// How many times an invalid answer is sent back for repair before the
    /// failure policy applies.
    pub fn repair_attempts(&self) -> u32 {
        self.repair_attempts
    }

    pub fn on_failure(&self) -> &FailurePolicy {
        &self.on_failure
    }

    /// The static fallback response, when the mapping declares one.
    pub fn static_response(&self) -> Option<Vec<Element>> {
        match &self.on_failure {
            FailurePolicy::Static(els) => Some(els.clone()),
            FailurePolicy::Fault | FailurePolicy::Cache => None,
        }
    }

    /// Retries, deadline and caching of this operation's model calls.
    pub fn call_policy(&self) -> CallPolicy {
        self.call_policy
    }

    /// True for a WSDL one-way operation (no response).
    pub fn is_one_way(&self) -> bool {
        self.response_payload.is_none()
    }

    /// The flat result columns the mapping declares (`results.columns`).
    pub fn result_columns(&self) -> &[ResultColumn] {
        &self.result_columns
    }

    /// The most tokens one call of this operation can use, for budget
    /// holds: each model call it may make (the first and every repair)
    /// answers with at most `max_tokens`, and reads at most one token per
    /// byte of what it sends — the request's text (`request_bytes`), the
    /// templates and tool schema, and for a repair the earlier answers and
    /// their violations. A template that repeats request values, and
    /// images (whose tokens follow their pixels), can go beyond it, as can
    /// a multi-step operation's `for_each` steps, counted once each.
    pub fn token_ceiling(&self, request_bytes: usize) -> u64 {
        // A multi-step operation: each step's ceiling, a `for_each` step's
        // counted once (its number of items is the request's).
        if let Some(workflow) = self.workflow() {
            return workflow
                .steps()
                .iter()
                .map(|s| s.plan().token_ceiling(request_bytes))
                .fold(0u64, u64::saturating_add);
        }
        let out = u64::from(
            self.inference
                .as_ref()
                .and_then(|c| c.max_tokens)
                .unwrap_or(DEFAULT_MAX_TOKENS),
        );
        let input = u64::try_from(request_bytes.saturating_add(self.static_input_bytes))
            .unwrap_or(u64::MAX);
        (0..=u64::from(self.repair_attempts)).fold(0u64, |total, k| {
            let resent = k.saturating_mul(out.saturating_add(REPAIR_NOTE_BYTES));
            total
                .saturating_add(input)
                .saturating_add(resent)
                .saturating_add(out)
        })
    }

    /// The response tool of a structured operation (name, description and
    /// JSON Schema), for `render` dry runs and docs.
    pub fn tool(&self) -> Option<&converse::ToolSpec> {
        match &self.output {
            output::OutputPlan::Structured { tool } => Some(tool),
            output::OutputPlan::Step { tool, .. } => tool.as_ref(),
            _ => None,
        }
    }

    /// The declared faults the mapping lets the model answer.
    pub fn faults(&self) -> Vec<MappedFault> {
        self.faults
            .iter()
            .map(|f| MappedFault {
                name: f.name.clone(),
                code: f.code,
                element: f.element.clone(),
                tool: match &f.answer {
                    output::FaultAnswer::Tool(t) => Some(t.name.clone()),
                    output::FaultAnswer::Text { .. } => None,
                },
            })
            .collect()
    }
}
