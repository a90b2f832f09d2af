//! Multi-step operations (`steps:`): each step compiled by
//! [`Cx::operation`] as an operation of its own — the operation's spec with
//! the step's `model`, `system`, `prompt` and `repair_attempts` in place —
//! whose output is the step's result; then the step graph (what each step
//! reads of the others, from its templates, `when` and `for_each`; a cycle
//! or an unknown step is an error), the steps put in a topological order,
//! and the response's assembly (`output: { from, fill }`) checked to fill
//! every element the response requires.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Map, Value};
use serde_saphyr::{Location, Spanned};

use super::templates::{contains_word, sample_input, sample_type};
use super::{Cx, Role};
use crate::contract::xsd::shape::{Field, Shape, shape};
use crate::contract::xsd::{MaxOccurs, SchemaSet, TypeId};
use crate::contract::{Contract, Operation};
use crate::converse::ToolSpec;
use crate::mapping::OperationPlan;
use crate::mapping::json_check;
use crate::mapping::json_schema::for_type;
use crate::mapping::output::{OutputPlan, insert_at};
use crate::mapping::path::{self, Target};
use crate::mapping::payload::PayloadShape;
use crate::mapping::spec::{
    FailureSpec, InputSpec, OperationSpec, StepOutputSpec, StepSpec, YamlValue,
};
use crate::mapping::steps::{
    AssemblyFill, AssemblyValue, ForEach, INDEX_VAR, ITEM_VAR, STEPS_VAR, StepCheck, StepFailure,
    StepPlan, Workflow,
};

/// Items of one `for_each` step run at once unless it says otherwise.
const DEFAULT_MAX_CONCURRENCY: u32 = 4;
const MAX_CONCURRENCY: u32 = 64;

/// A step as the graph sees it while compiling.
struct Node {
    name: String,
    at: Location,
    plan: Option<OperationPlan>,
    when: Option<String>,
    for_each: Option<ForEach>,
    max_concurrency: usize,
    on_failure: StepFailure,
    default: Option<Value>,
    /// Each step it reads, with where.
    reads: Vec<(String, Pos)>,
    /// Skipped or continued past without a default: readers get nothing.
    maybe_absent: bool,
    sample: Value,
}

/// A place in the mapping file: line and column.
type Pos = (u64, u64);

fn pos(at: &Location) -> Pos {
    (at.line(), at.column())
}

/// `[a-z_][a-z0-9_]{0,63}`: readable as `steps.NAME` in templates.
fn is_step_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

/// The step names a set of (nested) variable names reads: `steps.NAME…`
/// gives NAME; `steps` alone is `Err`.
fn step_reads(vars: impl IntoIterator<Item = String>) -> Result<BTreeSet<String>, ()> {
    let mut out = BTreeSet::new();
    for v in vars {
        let mut parts = v.split('.');
        if parts.next() != Some(STEPS_VAR) {
            continue;
        }
        match parts.next() {
            Some(name) => {
                out.insert(name.to_string());
            }
            None => return Err(()),
        }
    }
    Ok(out)
}

/// An input sent as a document, image or file block.
fn is_attachment(input: &InputSpec) -> bool {
    matches!(input, InputSpec::Full(f)
        if f.as_.as_ref().is_some_and(|a| ["document", "image", "file"].contains(&a.value.trim())))
}

/// The operation's spec with a step's fields in its place: its own prompt
/// and output, nothing of the operation's that answers the call.
fn merged(base: &OperationSpec, step: &StepSpec) -> OperationSpec {
    let mut spec = base.clone();
    // The operation's inputs, but its attachments only where a step
    // declares them: a document sent to every step would cost its tokens
    // in each. A step's own input of the same name replaces the
    // operation's.
    let own: BTreeSet<&str> = step.input.0.iter().map(|(n, _)| n.value.as_str()).collect();
    spec.input = crate::mapping::spec::Entries(
        base.input
            .0
            .iter()
            .filter(|(n, i)| !own.contains(n.value.as_str()) && !is_attachment(&i.value))
            .chain(step.input.0.iter())
            .cloned()
            .collect(),
    );
    if let Some(model) = &step.model {
        spec.model = model.clone();
    }
    if let Some(system) = &step.system {
        spec.system = Some(system.clone());
    }
    spec.prompt = Some(step.prompt.clone());
    spec.output = None;
    if let Some(r) = &step.repair_attempts {
        spec.repair_attempts = Some(r.clone());
    }
    spec.mode = None;
    spec.idempotency_key = None;
    spec.on_failure = None;
    spec.cache = None;
    spec.results = None;
    spec.faults = Default::default();
    spec.variants = Default::default();
    spec.sticky_by = None;
    spec.shadow = None;
    spec.record = None;
    spec.batch = None;
    spec.steps = Default::default();
    spec
}

impl Cx<'_> {
    /// A multi-step operation's plan: the operation's own (inputs, mode,
    /// failure policy, result columns; no prompt) with its steps and the
    /// response's assembly.
    pub(super) fn workflow(
        &mut self,
        contract: &Arc<Contract>,
        service: &str,
        op: &Operation,
        spec: &OperationSpec,
    ) -> Option<OperationPlan> {
        let before = self.errors.len();
        let plan = self.workflow_plan(contract, service, op, spec);
        // The operation's inputs (and `model`, unless a step has its own)
        // are compiled with every step: a mistake in one is reported once.
        let mut seen = BTreeSet::new();
        let mut errors = self.errors.split_off(before);
        errors.retain(|e| seen.insert((e.line, e.col, e.message.clone())));
        self.errors.extend(errors);
        plan
    }

    fn workflow_plan(
        &mut self,
        contract: &Arc<Contract>,
        service: &str,
        op: &Operation,
        spec: &OperationSpec,
    ) -> Option<OperationPlan> {
        let before = self.errors.len();
        for (what, at) in [
            ("faults", spec.faults.0.first().map(|f| f.0.referenced)),
            ("variants", spec.variants.0.first().map(|f| f.0.referenced)),
            ("shadow", spec.shadow.as_ref().map(|s| s.referenced)),
            ("sticky_by", spec.sticky_by.as_ref().map(|s| s.referenced)),
            ("batch", spec.batch.as_ref().map(|s| s.referenced)),
            ("cache", spec.cache.as_ref().map(|s| s.referenced)),
            ("record", spec.record.as_ref().map(|s| s.referenced)),
        ] {
            if let Some(at) = at {
                self.error(
                    &at,
                    format!("{what} is not available for an operation with steps"),
                );
            }
        }
        if let Some(o) = &spec.output {
            let o = &o.value;
            for (what, at) in [
                ("structured", o.structured.as_ref().map(|s| s.referenced)),
                ("text", o.text.as_ref().map(|s| s.referenced)),
                ("tool", o.tool.as_ref().map(|s| s.referenced)),
                ("description", o.description.as_ref().map(|s| s.referenced)),
            ] {
                if let Some(at) = at {
                    self.error(
                        &at,
                        format!(
                            "output.{what} is for a single call; an operation with steps assembles its response with from and fill"
                        ),
                    );
                }
            }
        }
        let set = &contract.schemas;
        let request_shape = PayloadShape::of(set, &op.input)?;

        // Sample values of the inputs, for `for_each` over an input.
        let mut input_samples = Map::new();
        {
            let mut env = crate::mapping::render::new_env();
            let saved = std::mem::take(&mut self.errors);
            for input in self.inputs(set, &request_shape, spec, &mut env) {
                input_samples.insert(input.name.clone(), sample_input(set, &input));
            }
            self.errors = saved;
        }
        let input_names: BTreeSet<String> =
            spec.input.0.iter().map(|(n, _)| n.value.clone()).collect();

        let mut nodes: Vec<Node> = Vec::new();
        let mut seen_names: BTreeSet<String> = BTreeSet::new();
        for (name, step) in &spec.steps.0 {
            if !is_step_name(&name.value) {
                self.error(
                    &name.referenced,
                    format!(
                        "step name {:?}: use lower-case letters, digits and _ (it is read as steps.{})",
                        name.value, name.value
                    ),
                );
                continue;
            }
            seen_names.insert(name.value.clone());
            nodes.push(self.step_node(
                contract,
                service,
                op,
                spec,
                name,
                &step.value,
                &input_samples,
                &input_names,
            ));
        }
        let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
        for n in &nodes {
            self.unknown_reads(&names, &n.reads, &format!("step {}", n.name));
        }
        let order = self.step_order(&nodes);

        // The operation itself: its inputs, mode, failure policy; without
        // the settings refused above, which would only be reported again.
        let mut own = spec.clone();
        own.faults = Default::default();
        own.variants = Default::default();
        own.shadow = None;
        own.sticky_by = None;
        own.batch = None;
        own.cache = None;
        own.record = None;
        self.role = Role::Workflow;
        self.samples = Map::new();
        let plan = self.operation(contract, service, op, &own);
        self.role = Role::Operation;
        let mut plan = plan?;

        let (from, fills, reads) = self.assembly(&mut plan, op, spec, &nodes);
        self.unknown_reads(&names, &reads, "the response");
        self.absent_reads(&nodes, &reads, "the response");
        for n in &nodes {
            self.absent_reads(&nodes, &n.reads, &format!("step {}", n.name));
        }
        if self.errors.len() > before {
            return None;
        }
        let order = order?;
        let position: Vec<usize> = {
            let mut p = vec![0; nodes.len()];
            for (k, &i) in order.iter().enumerate() {
                p[i] = k;
            }
            p
        };
        let mut slots: Vec<Option<Node>> = nodes.into_iter().map(Some).collect();
        let mut steps = Vec::with_capacity(order.len());
        for &i in &order {
            let n = slots[i].take()?;
            let mut reads: Vec<usize> = n
                .reads
                .iter()
                .filter_map(|(r, _)| names.iter().position(|x| x == r))
                .map(|j| position[j])
                .collect();
            reads.sort_unstable();
            reads.dedup();
            steps.push(StepPlan {
                name: n.name,
                plan: n.plan?,
                when: n.when,
                for_each: n.for_each,
                max_concurrency: n.max_concurrency,
                on_failure: n.on_failure,
                default: n.default,
                reads,
            });
        }
        let from = from.and_then(|f| steps.iter().position(|s| s.name == f));
        // A workflow's calls are its steps': the operation's targets are
        // its first step's, for what reads one (budget ceilings).
        plan.static_input_bytes = steps.iter().map(|s| s.plan.static_input_bytes).sum();
        plan.workflow = Some(Box::new(Workflow { steps, from, fills }));
        Some(plan)
    }

    /// One step compiled, with what it reads and its sample result.
    #[allow(clippy::too_many_arguments)]
    fn step_node(
        &mut self,
        contract: &Arc<Contract>,
        service: &str,
        op: &Operation,
        spec: &OperationSpec,
        name: &Spanned<String>,
        step: &StepSpec,
        input_samples: &Map<String, Value>,
        input_names: &BTreeSet<String>,
    ) -> Node {
        let set = &contract.schemas;
        let mut reads: Vec<(String, Pos)> = Vec::new();
        let env = crate::mapping::render::new_env();
        // The expressions' variables: inputs, `steps`, and in a
        // `for_each` step's `when`, nothing per item.
        let mut expr_reads =
            |cx: &mut Cx<'_>, what: &str, src: &Spanned<String>| -> bool {
                match env.compile_expression(&src.value) {
                    Err(e) => {
                        cx.error(
                            &src.referenced,
                            format!(
                                "{what}: {}",
                                crate::mapping::render::template_error_text(&e)
                            ),
                        );
                        false
                    }
                    Ok(e) => {
                        let vars = e.undeclared_variables(true);
                        let top: BTreeSet<String> =
                            e.undeclared_variables(false).into_iter().collect();
                        for v in &top {
                            if v != STEPS_VAR
                                && !input_names.contains(v)
                                && !["payload", "meta"].contains(&v.as_str())
                            {
                                cx.error(
                                &src.referenced,
                                format!(
                                    "{what}: unknown variable {v} (known: steps, payload, meta{})",
                                    input_names.iter().map(|n| format!(", {n}")).collect::<String>()
                                ),
                            );
                            }
                        }
                        match step_reads(vars) {
                            Ok(r) => {
                                reads.extend(r.into_iter().map(|r| (r, pos(&src.referenced))));
                                true
                            }
                            Err(()) => {
                                cx.error(
                                    &src.referenced,
                                    format!("{what}: read a step's result by its name, steps.NAME"),
                                );
                                false
                            }
                        }
                    }
                }
            };
        let when = step
            .when
            .as_ref()
            .and_then(|w| expr_reads(self, "when", w).then(|| w.value.clone()));
        let mut item_sample = Value::Null;
        let for_each = match &step.for_each {
            None => None,
            Some(f) if input_names.contains(f.value.trim()) => {
                let var = f.value.trim().to_string();
                match input_samples.get(&var) {
                    Some(Value::Array(items)) => {
                        item_sample = items.first().cloned().unwrap_or(Value::Null);
                        Some(ForEach::Input(var))
                    }
                    Some(_) => {
                        self.error(
                            &f.referenced,
                            format!(
                                "for_each: input {var} is not repeated; give its path a [] to take every occurrence as a list"
                            ),
                        );
                        None
                    }
                    None => None,
                }
            }
            Some(f) => {
                if !f.value.trim_start().starts_with("steps.") {
                    self.error(
                        &f.referenced,
                        format!(
                            "for_each: {} is neither an input of the operation (declare it under input: with a [] path) nor an earlier step's list (steps.NAME…)",
                            f.value
                        ),
                    );
                    None
                } else if expr_reads(self, "for_each", f) {
                    Some(ForEach::Expr(f.value.clone()))
                } else {
                    None
                }
            }
        };
        let max_concurrency = match (&step.max_concurrency, &step.for_each) {
            (Some(m), None) => {
                self.error(&m.referenced, "max_concurrency applies to a for_each step");
                1
            }
            (Some(m), Some(_)) if m.value == 0 || m.value > MAX_CONCURRENCY => {
                self.error(
                    &m.referenced,
                    format!("max_concurrency must be 1 to {MAX_CONCURRENCY}"),
                );
                1
            }
            (Some(m), Some(_)) => m.value,
            (None, _) => DEFAULT_MAX_CONCURRENCY,
        };

        // The step's own call, checked like an operation.
        let merged = merged(spec, step);
        let per_item = for_each.is_some() || step.for_each.is_some();
        let mut samples = Map::new();
        samples.insert(STEPS_VAR.into(), Value::Object(Map::new()));
        if per_item {
            samples.insert(ITEM_VAR.into(), item_sample);
            samples.insert(INDEX_VAR.into(), Value::from(0));
        }
        self.role = Role::Step {
            name: name.value.clone(),
            output: step.output.clone().map(Box::new),
        };
        self.samples = samples;
        let plan = self.operation(contract, service, op, &merged);
        self.role = Role::Operation;
        self.samples = Map::new();
        if let Some(plan) = &plan {
            let templates: Vec<(String, Spanned<String>)> = self.templates.clone();
            for (tname, src) in &templates {
                let Ok(t) = plan.env.get_template(tname) else {
                    continue;
                };
                match step_reads(t.undeclared_variables(true)) {
                    Ok(r) => {
                        for r in r {
                            let line = src
                                .value
                                .lines()
                                .position(|l| contains_word(l, &format!("steps.{r}")))
                                .map_or(1, |i| i + 1);
                            let (l, c) = self.template_pos(src, line);
                            reads.push((r, (l, c)));
                        }
                    }
                    Err(()) => {
                        let (l, c) = self.template_pos(src, 1);
                        self.error_at(l, c, "read a step's result by its name, steps.NAME");
                    }
                }
            }
        }
        if reads.iter().any(|(r, _)| *r == name.value) {
            self.error(
                &name.referenced,
                format!("step {} reads its own result", name.value),
            );
        }

        let check = plan.as_ref().and_then(|p| match &p.output {
            OutputPlan::Step { check, .. } => Some(check.clone()),
            _ => None,
        });
        let value_of = |cx: &mut Cx<'_>, v: &Spanned<YamlValue>, what: &str| -> Option<Value> {
            let json = v.value.to_json();
            if json.is_null() {
                return Some(Value::Null);
            }
            if let (Some(check), Some(plan)) = (&check, &plan) {
                let violations = plan.check_step_value(check, &json);
                if let Some(first) = violations.first() {
                    cx.error(
                        &v.referenced,
                        format!(
                            "{what} does not fit the step's output at {}: {}",
                            first.path, first.rule
                        ),
                    );
                    return None;
                }
            }
            Some(json)
        };
        let default = step
            .default
            .as_ref()
            .and_then(|d| value_of(self, d, "default"));
        let on_failure = match &step.on_failure {
            None => StepFailure::Fault,
            Some(f) => match &f.value {
                FailureSpec::Fault => StepFailure::Fault,
                FailureSpec::Continue => StepFailure::Continue,
                FailureSpec::Static(v) => match value_of(self, v, "the static result") {
                    Some(v) => StepFailure::Static(v),
                    None => StepFailure::Fault,
                },
                FailureSpec::Cache => {
                    self.error(
                        &f.referenced,
                        "a step cannot fall back to the cache; use continue (with default) or static",
                    );
                    StepFailure::Fault
                }
            },
        };
        // A `for_each` step's default stands for a failed item; skipped,
        // its result is an empty list.
        let maybe_absent = !per_item
            && step.default.as_ref().is_none()
            && (step.when.is_some() || matches!(on_failure, StepFailure::Continue));
        let one = check.as_ref().unwrap_or(&StepCheck::Text).sample(set);
        let sample = if per_item {
            Value::Array(vec![one])
        } else {
            one
        };
        Node {
            name: name.value.clone(),
            at: name.referenced,
            plan,
            when,
            for_each,
            max_concurrency: usize::try_from(max_concurrency).unwrap_or(1),
            on_failure,
            default,
            reads,
            maybe_absent,
            sample,
        }
    }

    /// The steps in an order where each follows those it reads, earlier
    /// written first among the ready ones; a cycle is an error at each of
    /// its steps.
    fn step_order(&mut self, nodes: &[Node]) -> Option<Vec<usize>> {
        let index = |name: &str| nodes.iter().position(|n| n.name == name);
        // A step that reads itself is an error of its own, not a cycle.
        let deps: Vec<BTreeSet<usize>> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                n.reads
                    .iter()
                    .filter_map(|(r, _)| index(r))
                    .filter(|&j| j != i)
                    .collect()
            })
            .collect();
        let order = crate::mapping::steps::topological(&deps);
        if order.len() == nodes.len() {
            return Some(order);
        }
        // The steps on a cycle: each reaches itself through what it reads
        // (a step only after one is held up, not in it).
        let reaches_itself = |start: usize| {
            let mut stack: Vec<usize> = deps[start].iter().copied().collect();
            let mut seen = BTreeSet::new();
            while let Some(i) = stack.pop() {
                if i == start {
                    return true;
                }
                if seen.insert(i) {
                    stack.extend(deps[i].iter().copied());
                }
            }
            false
        };
        let stuck: Vec<&Node> = nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| reaches_itself(*i))
            .map(|(_, n)| n)
            .collect();
        let names: Vec<&str> = stuck.iter().map(|n| n.name.as_str()).collect();
        for n in &stuck {
            self.error(
                &n.at,
                format!(
                    "step {} is in a cycle of reads among steps {}: a step can read only steps that do not read it",
                    n.name,
                    names.join(", ")
                ),
            );
        }
        None
    }

    /// Each read of a step that does not exist is an error.
    fn unknown_reads(&mut self, names: &[String], reads: &[(String, Pos)], who: &str) {
        for (r, at) in reads.iter().filter(|(r, _)| !names.contains(r)) {
            self.error_at(
                at.0,
                at.1,
                format!(
                    "{who} reads steps.{r}, but there is no step {r} (steps: {})",
                    names.join(", ")
                ),
            );
        }
    }

    /// A reader of a step that may have no result (skipped by `when`, or
    /// continued past a failure, without a `default`) is an error.
    fn absent_reads(&mut self, nodes: &[Node], reads: &[(String, Pos)], who: &str) {
        let mut told = BTreeSet::new();
        for (r, at) in reads {
            let Some(n) = nodes.iter().find(|n| n.name == *r) else {
                continue;
            };
            if n.maybe_absent && told.insert(r.clone()) {
                let why = if n.when.is_some() {
                    "is skipped when its when is false"
                } else {
                    "continues past a failure"
                };
                self.error_at(
                    at.0,
                    at.1,
                    format!(
                        "{who} reads steps.{r}, which {why} and has no default; give {r} a default (default: null for none)"
                    ),
                );
            }
        }
    }

    /// A step's output: its tool (an XSD type's or a JSON Schema's) or
    /// text.
    pub(super) fn step_output(
        &mut self,
        set: &SchemaSet,
        step: &str,
        spec: Option<&Spanned<StepOutputSpec>>,
    ) -> OutputPlan {
        let text = OutputPlan::Step {
            tool: None,
            check: StepCheck::Text,
            wrapped: false,
        };
        let Some(spec) = spec else {
            return text;
        };
        let o = &spec.value;
        let (check, schema) = match (&o.type_, &o.schema) {
            (Some(t), Some(_)) => {
                self.error(&t.referenced, "choose one of type and schema");
                return text;
            }
            (None, None) => {
                if let Some(t) = &o.tool {
                    self.error(&t.referenced, "tool needs a type or a schema");
                }
                return text;
            }
            (Some(t), None) => {
                let Some((name, ty)) = self.xsd_type(set, t) else {
                    return text;
                };
                let field = Field {
                    name: name.clone(),
                    type_id: ty,
                    nillable: false,
                    fixed: None,
                    min: 1,
                    max: MaxOccurs::Bounded(1),
                    choice: None,
                };
                (StepCheck::Type { field, name }, for_type(set, ty))
            }
            (None, Some(s)) => {
                if let Err(e) = json_check::check_schema(&s.value) {
                    self.error(&s.referenced, format!("schema {e}"));
                    return text;
                }
                (StepCheck::Schema(s.value.clone()), s.value.clone())
            }
        };
        let wrapped = schema.get("type").and_then(Value::as_str) != Some("object");
        let input = if wrapped {
            serde_json::json!({
                "type": "object",
                "properties": { "value": schema },
                "required": ["value"],
            })
        } else {
            schema
        };
        let name = match &o.tool {
            Some(t) if super::output::is_tool_name(&t.value) => t.value.clone(),
            Some(t) => {
                self.error(&t.referenced, "tool must be 1-64 letters, digits, _ or -");
                t.value.clone()
            }
            None => format!("step_{step}"),
        };
        let description = o.description.as_ref().map_or_else(
            || {
                if wrapped {
                    format!("Return the result of step {step}: call this tool exactly once, its input's value is the result.")
                } else {
                    format!("Return the result of step {step}: call this tool exactly once; its input is the result.")
                }
            },
            |d| d.value.clone(),
        );
        OutputPlan::Step {
            tool: Some(ToolSpec::new(name, Some(description), input)),
            check,
            wrapped,
        }
    }

    /// A global type of the contract by local name (or `{ns}local`).
    fn xsd_type(
        &mut self,
        set: &SchemaSet,
        t: &Spanned<String>,
    ) -> Option<(crate::xml::QName, TypeId)> {
        let want = t.value.trim();
        let (ns, local) = match want.strip_prefix('{').and_then(|r| r.split_once('}')) {
            Some((ns, local)) => (Some(ns), local),
            None => (None, want),
        };
        let found: Vec<(crate::xml::QName, TypeId)> = set
            .global_types()
            .into_iter()
            .filter(|(q, _)| q.local == local && ns.is_none_or(|ns| q.ns == ns))
            .filter(|(q, _)| q.ns != crate::contract::xsd::XSD_NS)
            .map(|(q, id)| (q.clone(), id))
            .collect();
        match found.as_slice() {
            [one] => Some(one.clone()),
            [] => {
                self.error(
                    &t.referenced,
                    format!("type: the contract has no type {want}"),
                );
                None
            }
            many => {
                let list: Vec<String> = many
                    .iter()
                    .map(|(q, _)| format!("{{{}}}{}", q.ns, q.local))
                    .collect();
                self.error(
                    &t.referenced,
                    format!(
                        "type: {want} names several types ({}); write one as {{namespace}}name",
                        list.join(", ")
                    ),
                );
                None
            }
        }
    }

    /// The response's assembly: `from` (a step whose result is an object)
    /// and `fill` (paths of the response to a constant, a template, or
    /// `{{ expression }}` for any value). The steps it reads, and an
    /// error for each element the response requires that neither fills.
    fn assembly(
        &mut self,
        plan: &mut OperationPlan,
        op: &Operation,
        spec: &OperationSpec,
        nodes: &[Node],
    ) -> (Option<String>, Vec<AssemblyFill>, Vec<(String, Pos)>) {
        let mut reads = Vec::new();
        let mut fills = Vec::new();
        let Some(shape) = plan.response_shape.clone() else {
            if let Some(o) = &spec.output {
                self.error(
                    &o.referenced,
                    format!("{} is one-way (no response): remove `output`", op.name),
                );
            }
            return (None, fills, reads);
        };
        let Some(out) = &spec.output else {
            self.error(
                &spec.model.referenced,
                format!(
                    "{} needs an output: from: steps.NAME and/or fill, assembling the response from the steps' results",
                    op.name
                ),
            );
            return (None, fills, reads);
        };
        let contract = plan.contract.clone();
        let set = &contract.schemas;
        let mut placeholder = Value::Object(Map::new());
        let mut from = None;
        if let Some(f) = &out.value.from {
            let name = f.value.trim().strip_prefix("steps.").unwrap_or("");
            match nodes.iter().find(|n| n.name == name) {
                None => self.error(
                    &f.referenced,
                    format!(
                        "from: {} names no step (write steps.NAME; steps: {})",
                        f.value,
                        nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                ),
                Some(n) if !n.sample.is_object() => self.error(
                    &f.referenced,
                    format!("from: step {name}'s result is not an object (give it an XSD type or an object schema)"),
                ),
                Some(n) => {
                    placeholder = n.sample.clone();
                    reads.push((name.to_string(), pos(&f.referenced)));
                    from = Some(name.to_string());
                }
            }
        }
        let top = shape.top_fields(set).to_vec();
        let root_type = match &shape {
            PayloadShape::Element(f) => Some(f.type_id),
            PayloadShape::Fields { .. } => None,
        };
        let mut known: BTreeSet<String> =
            spec.input.0.iter().map(|(n, _)| n.value.clone()).collect();
        known.extend(["payload", "payload_xml", "meta", STEPS_VAR].map(String::from));
        let mut input_samples = Map::new();
        for input in &plan.inputs {
            input_samples.insert(input.name.clone(), sample_input(set, input));
        }
        let mut scope = FillScope {
            plan,
            set,
            known,
            input_samples,
            reads: &mut reads,
            counter: 0,
        };
        let (compiled, filled) = self.fills(&mut scope, &top, root_type, &out.value.fill, "");
        fills = compiled;
        merge_json(&mut placeholder, filled);
        // Everything the response requires must come from `from` or a
        // fill: a dry run with sample values finds what is missing.
        if let Err(vs) =
            crate::mapping::json_xml::payload_shape_from_json(set, &shape, &placeholder)
        {
            for v in vs.iter().filter(|v| v.rule.starts_with("required")) {
                let at_path = if v.path == "/" {
                    String::new()
                } else {
                    format!(" at {}", v.path)
                };
                self.error(
                    &out.referenced,
                    format!(
                        "the response's assembly leaves {}{at_path} unfilled; fill it or take it from a step",
                        v.rule
                            .trim_start_matches("required property ")
                            .trim_end_matches(" missing")
                    ),
                );
            }
        }
        (from, fills, reads)
    }
}

/// What compiling the response's fills needs at every level.
struct FillScope<'p, 's> {
    plan: &'p mut OperationPlan,
    set: &'s SchemaSet,
    /// The variables fills may read (`item` and `index` added inside a
    /// per-item fill).
    known: BTreeSet<String>,
    input_samples: Map<String, Value>,
    reads: &'p mut Vec<(String, Pos)>,
    /// Numbers the templates of per-item fills.
    counter: usize,
}

impl Cx<'_> {
    /// The fills of one level of the response (`fields`, of `root_type`):
    /// each path to a constant, a template (simple values), an
    /// `{{ expression }}` (any value), or for a repeated element a
    /// per-item fill `{ for_each, fill }`; with the sample value they give
    /// for the dry run.
    fn fills(
        &mut self,
        scope: &mut FillScope<'_, '_>,
        fields: &[Field],
        root_type: Option<TypeId>,
        entries: &crate::mapping::spec::Entries<Spanned<YamlValue>>,
        prefix: &str,
    ) -> (Vec<AssemblyFill>, Value) {
        let set = scope.set;
        let mut fills = Vec::new();
        let mut placeholder = Value::Object(Map::new());
        for (k, v) in &entries.0 {
            let shown = format!("{prefix}{}", k.value);
            let p = match path::resolve(set, fields, root_type, &k.value, true) {
                Ok(p) => p,
                Err(m) => {
                    self.error(&k.referenced, format!("fill: {m} in the response"));
                    continue;
                }
            };
            if p.steps.iter().rev().skip(1).any(|s| s.each) {
                self.error(
                    &k.referenced,
                    "fill: only the last element of a path may take a list ([])",
                );
                continue;
            }
            let keys: Vec<String> = p
                .steps
                .iter()
                .map(|s| s.field.name.local.clone())
                .chain(p.attr.iter().map(|a| format!("@{}", a.name.local)))
                .collect();
            let list = p.steps.last().is_some_and(|s| s.each);
            let simple = p.ends_at_simple_value(set) && !list;
            let target = p.target();
            let (value, sample) = if let YamlValue::Map(_) = &v.value {
                let Some(Target::Element(ty)) = target.filter(|_| list) else {
                    self.error(
                        &v.referenced,
                        format!("fill {shown}: a per-item fill (for_each, fill) goes on a repeated element written with []"),
                    );
                    continue;
                };
                match self.each_fill(scope, ty, v, &shown) {
                    Some(x) => x,
                    None => continue,
                }
            } else {
                let Some(text) = v.value.scalar_text() else {
                    self.error(
                        &v.referenced,
                        "a fill value must be a constant, a template string, {{ expression }} or a per-item fill",
                    );
                    continue;
                };
                let value = if let Some(expr) = lone_expression(&text) {
                    if !self.expression_reads(scope, expr, v, &shown) {
                        continue;
                    }
                    AssemblyValue::Expr(expr.to_string())
                } else if !simple {
                    self.error(
                        &v.referenced,
                        format!(
                            "fill {shown}: has child elements or is a list; give it {{{{ expression }}}} alone (e.g. {{{{ steps.NAME }}}}), a per-item fill, or fill its simple elements one by one"
                        ),
                    );
                    continue;
                } else if text.contains("{{") || text.contains("{%") {
                    scope.counter += 1;
                    let name = format!(
                        "{}#{}",
                        crate::mapping::render::fill_template(&shown),
                        scope.counter
                    );
                    if let Err(e) = scope
                        .plan
                        .env
                        .add_template_owned(name.clone(), text.clone())
                    {
                        let src = Spanned::new(text, v.referenced, v.defined);
                        self.template_error(&src, &e);
                        continue;
                    }
                    if let Ok(t) = scope.plan.env.get_template(&name) {
                        let vars: Vec<String> = t.undeclared_variables(false).into_iter().collect();
                        let nested: Vec<String> =
                            t.undeclared_variables(true).into_iter().collect();
                        self.check_reads(scope, vars, nested, v, &shown);
                    }
                    scope.plan.template_lines.insert(
                        name.clone(),
                        u32::try_from(v.referenced.line()).unwrap_or(1),
                    );
                    AssemblyValue::Template(name)
                } else {
                    let ty = match target {
                        Some(Target::Attribute(ty)) => Some(ty),
                        Some(Target::Element(ty)) => shape_of(set, ty),
                        None => None,
                    };
                    if let Some(ty) = ty
                        && let Err(rule) = set.check_simple_value(ty, &text)
                    {
                        self.error(
                            &v.referenced,
                            format!("fill {shown}: {text:?} breaks {rule}"),
                        );
                        continue;
                    }
                    AssemblyValue::Constant(Value::String(text))
                };
                // The dry run's value for this place.
                let sample = match (&value, target) {
                    (AssemblyValue::Expr(_), Some(Target::Element(ty))) => {
                        let one = sample_type(set, ty, 0);
                        if list { Value::Array(vec![one]) } else { one }
                    }
                    _ => Value::String("x".into()),
                };
                (value, sample)
            };
            insert_at(&mut placeholder, &keys, sample);
            fills.push(AssemblyFill { keys, value });
        }
        (fills, placeholder)
    }

    /// A per-item fill: `{ for_each: <input or steps.…>, fill: {…} }`,
    /// one element per item, its fills reading `item` and `index`.
    fn each_fill(
        &mut self,
        scope: &mut FillScope<'_, '_>,
        ty: TypeId,
        v: &Spanned<YamlValue>,
        shown: &str,
    ) -> Option<(AssemblyValue, Value)> {
        let YamlValue::Map(entries) = &v.value else {
            return None;
        };
        let mut over = None;
        let mut inner = None;
        for (key, value) in entries {
            match key.value.as_str() {
                "for_each" => over = Some(value),
                "fill" => inner = Some(value),
                other => {
                    self.error(
                        &key.referenced,
                        format!("fill {shown}: unknown key {other} (a per-item fill has for_each and fill)"),
                    );
                    return None;
                }
            }
        }
        let (Some(over), Some(inner)) = (over, inner) else {
            self.error(
                &v.referenced,
                format!("fill {shown}: a per-item fill needs for_each and fill"),
            );
            return None;
        };
        let Some(over_text) = over.value.scalar_text() else {
            self.error(&over.referenced, "for_each: an input name or steps.NAME…");
            return None;
        };
        let over_text = over_text.trim().to_string();
        if scope.known.contains(&over_text) && !over_text.starts_with("steps") {
            match scope.input_samples.get(&over_text) {
                Some(Value::Array(_)) => {}
                _ => {
                    self.error(
                        &over.referenced,
                        format!("for_each: input {over_text} is not repeated; give its path a []"),
                    );
                    return None;
                }
            }
        } else if over_text.starts_with("steps.") {
            if !self.expression_reads(scope, &over_text, over, shown) {
                return None;
            }
        } else {
            self.error(
                &over.referenced,
                format!(
                    "for_each: {over_text} is neither an input of the operation nor steps.NAME…"
                ),
            );
            return None;
        }
        let YamlValue::Map(inner_entries) = &inner.value else {
            self.error(&inner.referenced, "fill: a mapping of paths to values");
            return None;
        };
        let entries = crate::mapping::spec::Entries(inner_entries.clone());
        let fields = crate::contract::xsd::shape::fields_of(scope.set, ty).to_vec();
        let added: Vec<String> = [ITEM_VAR, INDEX_VAR]
            .into_iter()
            .filter(|v| scope.known.insert(v.to_string()))
            .map(String::from)
            .collect();
        let (fills, sample) = self.fills(scope, &fields, Some(ty), &entries, &format!("{shown}/"));
        for a in added {
            scope.known.remove(&a);
        }
        Some((
            AssemblyValue::Each {
                over: if over_text.starts_with("steps.") {
                    ForEach::Expr(over_text)
                } else {
                    ForEach::Input(over_text)
                },
                fills,
            },
            Value::Array(vec![sample]),
        ))
    }

    /// Checks an expression of a fill (its variables, the steps it
    /// reads); false when it does not compile.
    fn expression_reads(
        &mut self,
        scope: &mut FillScope<'_, '_>,
        expr: &str,
        v: &Spanned<YamlValue>,
        shown: &str,
    ) -> bool {
        match scope.plan.env.compile_expression(expr) {
            Err(e) => {
                self.error(
                    &v.referenced,
                    format!(
                        "fill {shown}: {}",
                        crate::mapping::render::template_error_text(&e)
                    ),
                );
                false
            }
            Ok(e) => {
                let vars: Vec<String> = e.undeclared_variables(false).into_iter().collect();
                let nested: Vec<String> = e.undeclared_variables(true).into_iter().collect();
                self.check_reads(scope, vars, nested, v, shown);
                true
            }
        }
    }

    fn check_reads(
        &mut self,
        scope: &mut FillScope<'_, '_>,
        vars: Vec<String>,
        nested: Vec<String>,
        v: &Spanned<YamlValue>,
        shown: &str,
    ) {
        for top in vars {
            if !scope.known.contains(&top) && !super::templates::is_template_global(&top) {
                self.error(
                    &v.referenced,
                    format!(
                        "fill {shown}: unknown variable {top} (known: {})",
                        scope.known.iter().cloned().collect::<Vec<_>>().join(", ")
                    ),
                );
            }
        }
        match step_reads(nested) {
            Ok(r) => scope
                .reads
                .extend(r.into_iter().map(|r| (r, pos(&v.referenced)))),
            Err(()) => self.error(
                &v.referenced,
                format!("fill {shown}: read a step's result by its name, steps.NAME"),
            ),
        }
    }
}

/// `extra`'s properties put into `into` (objects merged, the rest
/// replaced).
fn merge_json(into: &mut Value, extra: Value) {
    match (into, extra) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(&k) {
                    Some(slot) => merge_json(slot, v),
                    None => {
                        a.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// The simple type of an element's content, when it is simple.
fn shape_of(set: &SchemaSet, ty: TypeId) -> Option<TypeId> {
    match shape(set, ty) {
        Shape::Simple(st) => Some(*st),
        _ => None,
    }
}

/// The expression of a value that is `{{ expression }}` and nothing else.
fn lone_expression(text: &str) -> Option<&str> {
    let inner = text.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("{{") && !inner.contains("}}") && !inner.contains("{%")).then(|| inner.trim())
}
