//! Loading: parse each mapping file and check it against the contract,
//! producing one [`OperationPlan`] per operation. Every mistake is found
//! here, not at call time, and reported with the position of the YAML
//! value that causes it: unknown services and operations, paths that name
//! no element or attribute of the request schema, output elements that do
//! not exist, template syntax errors and unknown template variables, model
//! settings out of range, and static fallbacks that do not validate.
//!
//! This module holds the entry point and [`Cx`], the checking context of
//! one file, with the assembly of an operation's plan; the parts of a plan
//! are checked in files of their own: model settings, call policy and the
//! batch setting ([`settings`]), request inputs and attachments
//! ([`inputs`]), templates and their variables ([`templates`]), structured
//! or text output ([`output`]), the declared faults the model may answer
//! ([`faults`]), paths that must lead to one simple value ([`paths`]),
//! static fallback responses ([`fallback`]), and the variants of an
//! operation, each compiled as an operation of its own ([`variants`]).

mod fallback;
mod faults;
mod inputs;
mod output;
mod paths;
mod settings;
mod steps;
mod templates;
mod variants;

pub(crate) use templates::sample_type;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use serde_saphyr::{Location, Spanned};

use super::payload::PayloadShape;
use super::render;
use super::spec::{FailureSpec, InputSpec, MappingFile, ModeSpec, OperationSpec};
use super::{FailurePolicy, MappingError, MappingSet, Mode, OperationPlan};
use crate::contract::{Contract, ContractSet, Operation, Style};

/// More than this many repairs per call only burns tokens.
const MAX_REPAIR_ATTEMPTS: u32 = 5;
const DEFAULT_REPAIR_ATTEMPTS: u32 = 1;

pub(super) fn load(
    files: &[(PathBuf, String)],
    contracts: &ContractSet,
) -> Result<MappingSet, Vec<MappingError>> {
    let mut errors = Vec::new();
    let mut set = MappingSet::default();
    let mut seen_services: Vec<(String, PathBuf)> = Vec::new();
    for (path, text) in files {
        let mut cx = Cx {
            path,
            text,
            sha256: sha256_hex(text.as_bytes()).into(),
            errors: Vec::new(),
            templates: Vec::new(),
            role: Role::Operation,
            samples: serde_json::Map::new(),
        };
        let file: MappingFile = match serde_saphyr::from_str(text) {
            Ok(f) => f,
            Err(e) => {
                let (line, col) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
                cx.error_at(line, col, yaml_message(&e));
                errors.extend(cx.errors);
                continue;
            }
        };
        let service = &file.service;
        if let Some((_, first)) = seen_services.iter().find(|(s, _)| *s == service.value) {
            cx.error(
                &service.referenced,
                format!(
                    "service {} is already mapped by {}",
                    service.value,
                    first.display()
                ),
            );
        } else {
            seen_services.push((service.value.clone(), path.clone()));
        }
        match contracts.service(&service.value) {
            None => {
                let known: Vec<&str> = contracts.services().map(|(_, s)| s.name.as_str()).collect();
                cx.error(
                    &service.referenced,
                    format!(
                        "no service named {} in the contracts (known: {})",
                        service.value,
                        known.join(", ")
                    ),
                );
            }
            Some((contract, svc)) => {
                if let Some(w) = &file.wsdl {
                    let name = contract
                        .path
                        .file_name()
                        .and_then(|n| n.to_str())
                        .unwrap_or("");
                    if name != w.value && !contract.path.ends_with(&w.value) {
                        cx.error(
                            &w.referenced,
                            format!(
                                "service {} comes from {name}, not {}",
                                service.value, w.value
                            ),
                        );
                    }
                }
                for (name, spec) in &file.operations.0 {
                    let Some(op) = svc.operation(&name.value) else {
                        let known: Vec<&str> =
                            svc.operations.iter().map(|o| o.name.as_str()).collect();
                        cx.error(
                            &name.referenced,
                            format!(
                                "service {} has no operation {} (known: {})",
                                service.value,
                                name.value,
                                known.join(", ")
                            ),
                        );
                        continue;
                    };
                    if let Some(plan) = cx.operation(contract, &svc.name, op, spec) {
                        set.plans.insert((svc.name.clone(), op.name.clone()), plan);
                    }
                }
            }
        }
        errors.extend(cx.errors);
    }
    if errors.is_empty() {
        Ok(set)
    } else {
        Err(errors)
    }
}

/// serde-saphyr's message without its own " at line L, column C" suffix
/// (the position is ours to print).
fn yaml_message(e: &serde_saphyr::Error) -> String {
    let text = e.without_snippet().to_string();
    let first = text.lines().next().unwrap_or("").to_string();
    match first.rfind(" at line ") {
        Some(i) => first[..i].to_string(),
        None => first,
    }
}

/// The checking context of one file.
struct Cx<'a> {
    path: &'a PathBuf,
    text: &'a str,
    /// Hex SHA-256 of `text`.
    sha256: Arc<str>,
    errors: Vec<MappingError>,
    /// The templates of the operation being checked, by name, with their
    /// source.
    templates: Vec<(String, Spanned<String>)>,
    /// What is being compiled: an operation, or a part of a multi-step one.
    role: Role,
    /// Sample values of the variables beyond the inputs (`steps`, `item`),
    /// for rendering templates at load.
    samples: serde_json::Map<String, serde_json::Value>,
}

/// What [`Cx::operation`] compiles.
#[derive(Debug, Clone)]
enum Role {
    /// A single-call operation.
    Operation,
    /// A multi-step operation itself: no prompt, no output (its response
    /// is assembled from its steps' results afterwards).
    Workflow,
    /// One step: its output is this step output; its templates may read
    /// `steps` (and in a `for_each`, `item` and `index`: [`Cx::samples`]).
    Step {
        name: String,
        output: Option<Box<Spanned<super::spec::StepOutputSpec>>>,
    },
}

/// Lower-case hex SHA-256.
fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn to_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

impl Cx<'_> {
    fn error_at(&mut self, line: u64, col: u64, message: impl Into<String>) {
        self.errors.push(MappingError {
            path: self.path.clone(),
            line: to_u32(line),
            col: to_u32(col),
            message: message.into(),
        });
    }

    fn error(&mut self, at: &Location, message: impl Into<String>) {
        self.error_at(at.line(), at.column(), message);
    }

    fn operation(
        &mut self,
        contract: &Arc<Contract>,
        service: &str,
        op: &Operation,
        spec: &OperationSpec,
    ) -> Option<OperationPlan> {
        if !spec.steps.0.is_empty() && matches!(self.role, Role::Operation) {
            return self.workflow(contract, service, op, spec);
        }
        let before = self.errors.len();
        self.templates.clear();
        let set = &contract.schemas;
        let at = spec
            .prompt
            .as_ref()
            .map_or(spec.model.referenced, |p| p.referenced);
        let Some(request_shape) = PayloadShape::of(set, &op.input) else {
            self.error(
                &at,
                format!(
                    "operation {} names request declarations the schema lacks",
                    op.name
                ),
            );
            return None;
        };
        let response_shape = op.output.as_ref().and_then(|p| PayloadShape::of(set, p));

        let mode = match (&spec.mode, op.is_one_way()) {
            (Some(m), true) if m.value == ModeSpec::Sync => {
                self.error(
                    &m.referenced,
                    format!("{} is one-way (no response): it can only be async", op.name),
                );
                Mode::Async
            }
            (_, true) => Mode::Async,
            (Some(m), false) if m.value == ModeSpec::Async => {
                if op.style == Style::Rpc {
                    self.error(
                        &m.referenced,
                        format!(
                            "{} is rpc/literal: mode: async needs a document/literal operation \
                             (its response element is replaced by a ticket in the published WSDL)",
                            op.name
                        ),
                    );
                }
                Mode::Async
            }
            _ => Mode::Sync,
        };
        let idempotency_key = self.idempotency_key(set, &request_shape, spec, mode);

        let targets = self.targets(spec);
        let inference = self.inference(spec);
        let guardrail = self.guardrail(spec);
        let additional_fields = spec.model.value.additional_fields.as_ref().and_then(|a| {
            if a.value.is_object() {
                Some(a.value.clone())
            } else {
                self.error(&a.referenced, "additional_fields must be a mapping");
                None
            }
        });

        let mut env = render::new_env();
        let inputs = self.inputs(set, &request_shape, spec, &mut env);
        // Declared names count as known even when their path failed, so a
        // bad path is reported once, not again in every template using it.
        let mut known: BTreeSet<String> =
            spec.input.0.iter().map(|(n, _)| n.value.clone()).collect();
        for k in ["payload", "payload_xml", "meta"] {
            known.insert(k.to_string());
        }
        known.extend(self.samples.keys().cloned());
        match (&spec.prompt, &self.role) {
            (Some(p), Role::Workflow) => {
                self.error(
                    &p.referenced,
                    "an operation with steps has no prompt of its own: each step has one",
                );
            }
            (Some(p), _) => {
                self.template(&mut env, render::PROMPT, p, &known);
            }
            (None, Role::Workflow) => {}
            (None, _) => self.error(
                &spec.model.referenced,
                format!("{} needs a prompt (or steps)", op.name),
            ),
        }
        let has_system = match &spec.system {
            Some(s) => {
                self.template(&mut env, render::SYSTEM, s, &known);
                true
            }
            None => false,
        };
        // Attachment formats and names were added by `inputs`; check their
        // variables now that the full list is known.
        for input in &spec.input.0 {
            if let InputSpec::Full(full) = &input.1.value {
                for (field, name) in [
                    (&full.format, render::format_template(&input.0.value)),
                    (&full.name, render::name_template(&input.0.value)),
                ] {
                    if let Some(f) = field
                        && env.get_template(&name).is_ok()
                    {
                        self.check_variables(&env, &name, f, &known);
                    }
                }
            }
        }

        let output = match self.role.clone() {
            Role::Operation => self.output(
                set,
                op,
                response_shape.as_ref(),
                spec.output.as_ref(),
                &mut env,
                &known,
                &at,
                !spec.faults.0.is_empty(),
            ),
            // The response is assembled from the steps' results.
            Role::Workflow => crate::mapping::output::OutputPlan::Nothing,
            Role::Step { name, output } => self.step_output(set, &name, output.as_deref()),
        };
        let faults = self.faults(set, op, spec, &output, &mut env, &known);

        let result_columns = match &spec.results {
            None => Vec::new(),
            Some(r) => self.result_columns(set, op, response_shape.as_ref(), &r.value),
        };

        let repair_attempts = match &spec.repair_attempts {
            Some(r) if r.value > MAX_REPAIR_ATTEMPTS => {
                self.error(
                    &r.referenced,
                    format!("repair_attempts may be at most {MAX_REPAIR_ATTEMPTS}"),
                );
                MAX_REPAIR_ATTEMPTS
            }
            Some(r) => r.value,
            None => DEFAULT_REPAIR_ATTEMPTS,
        };

        let on_failure = match &spec.on_failure {
            None => FailurePolicy::Fault,
            Some(f) => match &f.value {
                FailureSpec::Fault => FailurePolicy::Fault,
                FailureSpec::Continue => {
                    self.error(
                        &f.referenced,
                        "on_failure: continue is for a step of a multi-step operation",
                    );
                    FailurePolicy::Fault
                }
                FailureSpec::Cache if op.is_one_way() => {
                    self.error(
                        &f.referenced,
                        format!("{} is one-way: it has no response to fall back to", op.name),
                    );
                    FailurePolicy::Fault
                }
                FailureSpec::Cache => FailurePolicy::Cache,
                FailureSpec::Static(v) => match (&response_shape, &op.output) {
                    (Some(rs), Some(out)) => self
                        .static_response(set, rs, out, v)
                        .map_or(FailurePolicy::Fault, FailurePolicy::Static),
                    _ => {
                        self.error(
                            &f.referenced,
                            format!("{} is one-way: it has no response to fall back to", op.name),
                        );
                        FailurePolicy::Fault
                    }
                },
            },
        };

        let call_policy = self.call_policy(spec);
        let record = self.record(set, &request_shape, spec);
        let batch = self.batch(spec);

        if self.errors.len() > before {
            return None;
        }
        self.absent_inputs(set, &request_shape, &inputs, &env);
        if self.errors.len() > before {
            return None;
        }
        let template_lines = self
            .templates
            .iter()
            .map(|(name, src)| (name.clone(), to_u32(self.template_pos(src, 1).0)))
            .collect();
        // Building `payload` and `payload_xml` costs more than the rest of
        // rendering together; only do it for plans whose templates use them.
        let used: BTreeSet<String> = env
            .templates()
            .flat_map(|(_, t)| t.undeclared_variables(false))
            .collect();
        let needs_payload_json = used.contains("payload");
        let needs_payload_xml = used.contains("payload_xml");
        // Every call sends its templates' text and the tools it offers.
        let tool_bytes =
            |tool: &crate::converse::ToolSpec| serde_json::to_string(tool).map_or(0, |t| t.len());
        let static_input_bytes = env
            .templates()
            .map(|(_, t)| t.source().len())
            .sum::<usize>()
            + output.tool().map_or(0, tool_bytes)
            + faults
                .iter()
                .map(|f| match &f.answer {
                    crate::mapping::output::FaultAnswer::Tool(tool) => tool_bytes(tool),
                    crate::mapping::output::FaultAnswer::Text { .. } => 0,
                })
                .sum::<usize>();
        // Last: compiling a variant reuses this context's templates.
        let variants = self.variants(contract, service, op, spec, &request_shape);
        if self.errors.len() > before {
            return None;
        }
        Some(OperationPlan {
            service: service.to_string(),
            operation: op.name.clone(),
            source: self.path.clone(),
            contract: contract.clone(),
            request_shape,
            response_payload: op.output.clone(),
            response_shape,
            mode,
            idempotency_key,
            targets,
            inference,
            guardrail,
            additional_fields,
            inputs,
            env,
            template_lines,
            has_system,
            needs_payload_json,
            needs_payload_xml,
            output,
            faults,
            repair_attempts,
            on_failure,
            call_policy,
            result_columns,
            static_input_bytes,
            variants,
            record,
            batch,
            mapping_sha256: self.sha256.clone(),
            workflow: None,
        })
    }
}
