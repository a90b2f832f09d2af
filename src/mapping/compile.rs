//! Loading: parse each mapping file and check it against the contract,
//! producing one [`OperationPlan`] per operation. Every mistake is found
//! here, not at call time, and reported with the position of the YAML
//! value that causes it: unknown services and operations, paths that name
//! no element or attribute of the request schema, output elements that do
//! not exist, template syntax errors and unknown template variables, model
//! settings out of range, and static fallbacks that do not validate.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use serde_saphyr::{Location, Spanned};

use super::json_schema::for_payload_shape;
use super::json_xml::payload_shape_from_json;
use super::output::{Fill, FillValue, OutputPlan};
use super::path::{self, Target};
use super::payload::PayloadShape;
use super::render::{
    self, Attach, AttachKind, Encoding, InputKind, InputPlan, encoding_of, format_fits,
    parse_format,
};
use super::shape::{Shape, shape};
use super::spec::{
    FailureSpec, InputSpec, MappingFile, ModeSpec, OperationSpec, OutputSpec, YamlValue, locate,
};
use super::{
    CallPolicy, FailurePolicy, MappingError, MappingSet, Mode, ModelTarget, OperationPlan,
};
use crate::contract::xsd::{SchemaSet, TypeId};
use crate::contract::{Contract, ContractSet, Operation, Style, validate_payload};
use crate::converse::{GuardrailConfig, GuardrailTrace, InferenceConfig, ToolSpec};
use crate::xml::NsScope;

/// More than this many repairs per call only burns tokens.
const MAX_REPAIR_ATTEMPTS: u32 = 5;
/// Converse accepts at most four stop sequences.
const MAX_STOP_SEQUENCES: usize = 4;
const DEFAULT_REPAIR_ATTEMPTS: u32 = 1;

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
            errors: Vec::new(),
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
    errors: Vec<MappingError>,
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
        let before = self.errors.len();
        let set = &contract.schemas;
        let Some(request_shape) = PayloadShape::of(set, &op.input) else {
            self.error(
                &spec.prompt.referenced,
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
        self.template(&mut env, render::PROMPT, &spec.prompt, &known);
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

        let output = self.output(
            set,
            op,
            response_shape.as_ref(),
            spec.output.as_ref(),
            &mut env,
            &known,
            &spec.prompt.referenced,
        );

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

        if self.errors.len() > before {
            return None;
        }
        // Building `payload` and `payload_xml` costs more than the rest of
        // rendering together; only do it for plans whose templates use them.
        let used: BTreeSet<String> = env
            .templates()
            .flat_map(|(_, t)| t.undeclared_variables(false))
            .collect();
        let needs_payload_json = used.contains("payload");
        let needs_payload_xml = used.contains("payload_xml");
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
            has_system,
            needs_payload_json,
            needs_payload_xml,
            output,
            repair_attempts,
            on_failure,
            call_policy,
            result_columns,
        })
    }

    /// `model.retry`, `model.deadline_ms` and `cache.ttl_secs`.
    fn call_policy(&mut self, spec: &OperationSpec) -> CallPolicy {
        let model = &spec.model.value;
        let deadline = match &model.deadline_ms {
            Some(d) if d.value == 0 => {
                self.error(&d.referenced, "deadline_ms must be at least 1");
                None
            }
            Some(d) => Some(Duration::from_millis(d.value)),
            None => None,
        };
        let cache_ttl = match &spec.cache {
            Some(c) if c.value.ttl_secs.value == 0 => {
                self.error(
                    &c.value.ttl_secs.referenced,
                    "ttl_secs must be at least 1 (leave `cache` out to disable caching)",
                );
                None
            }
            Some(c) => Some(Duration::from_secs(c.value.ttl_secs.value)),
            None => None,
        };
        CallPolicy {
            retry: model.retry.as_ref().is_none_or(|r| r.value),
            deadline,
            cache_ttl,
        }
    }

    /// Flat result columns: a name the store accepts and a path to a simple
    /// value of the response, resolved against the response schema.
    fn result_columns(
        &mut self,
        set: &SchemaSet,
        op: &Operation,
        shape: Option<&PayloadShape>,
        spec: &super::spec::ResultsSpec,
    ) -> Vec<super::ResultColumn> {
        let mut columns = Vec::new();
        for (name, path_text) in &spec.columns.0 {
            if !super::is_result_column_name(&name.value) {
                self.error(
                    &name.referenced,
                    format!(
                        "result column {:?}: names are [a-z_][a-z0-9_]{{0,62}} and may not be one of {}",
                        name.value,
                        super::RESULT_CONTRACT_COLUMNS.join(", ")
                    ),
                );
                continue;
            }
            if columns
                .iter()
                .any(|c: &super::ResultColumn| c.name == name.value)
            {
                self.error(
                    &name.referenced,
                    format!("result column {} given twice", name.value),
                );
                continue;
            }
            let Some(shape) = shape else {
                self.error(
                    &name.referenced,
                    format!(
                        "{} is one-way: it has no response to take columns from",
                        op.name
                    ),
                );
                continue;
            };
            let top = shape.top_fields(set);
            let root_type = match shape {
                PayloadShape::Element(f) => Some(f.type_id),
                PayloadShape::Fields { .. } => None,
            };
            let resolved = match path::resolve(set, top, root_type, &path_text.value, false) {
                Ok(p) => p,
                Err(m) => {
                    self.error(
                        &path_text.referenced,
                        format!("result column {}: {m} in the response", name.value),
                    );
                    continue;
                }
            };
            let simple = match resolved.target() {
                Some(Target::Attribute(_)) => true,
                Some(Target::Element(ty)) => {
                    matches!(super::shape::shape(set, ty), Shape::Simple(_))
                }
                None => false,
            };
            if !simple {
                self.error(
                    &path_text.referenced,
                    format!(
                        "result column {}: {} has child elements; a column holds one simple value",
                        name.value, path_text.value
                    ),
                );
                continue;
            }
            columns.push(super::ResultColumn {
                name: name.value.clone(),
                steps: resolved
                    .steps
                    .iter()
                    .map(|s| s.field.name.clone())
                    .collect(),
                attr: resolved.attr.as_ref().map(|a| a.name.clone()),
            });
        }
        columns
    }

    fn targets(&mut self, spec: &OperationSpec) -> Vec<ModelTarget> {
        let model = &spec.model.value;
        if model.targets.value.is_empty() {
            self.error(
                &model.targets.referenced,
                "at least one model target is required",
            );
        }
        let mut out = Vec::new();
        for t in &model.targets.value {
            let id = t.value.model.value.trim();
            if id.is_empty() || id.contains(char::is_whitespace) {
                self.error(
                    &t.value.model.referenced,
                    "model must be a model id, inference profile id or ARN (no spaces)",
                );
            }
            let region = t.value.region.as_ref().map(|r| r.value.trim().to_string());
            if let (Some(r), Some(rs)) = (&region, &t.value.region)
                && (r.is_empty()
                    || !r
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
            {
                self.error(&rs.referenced, format!("{r:?} is not a region name"));
            }
            out.push(ModelTarget {
                model: id.to_string(),
                region,
            });
        }
        out
    }

    fn inference(&mut self, spec: &OperationSpec) -> Option<InferenceConfig> {
        let m = &spec.model.value;
        if let Some(t) = &m.max_tokens
            && t.value == 0
        {
            self.error(&t.referenced, "max_tokens must be at least 1");
        }
        for (name, v) in [("temperature", &m.temperature), ("top_p", &m.top_p)] {
            if let Some(v) = v
                && !(0.0..=1.0).contains(&v.value)
            {
                self.error(&v.referenced, format!("{name} must be between 0 and 1"));
            }
        }
        if let Some(s) = m.stop_sequences.get(MAX_STOP_SEQUENCES) {
            self.error(
                &s.referenced,
                format!("at most {MAX_STOP_SEQUENCES} stop sequences are allowed"),
            );
        }
        for s in &m.stop_sequences {
            if s.value.is_empty() {
                self.error(&s.referenced, "a stop sequence must not be empty");
            }
        }
        let c = InferenceConfig {
            max_tokens: m.max_tokens.as_ref().map(|v| v.value),
            temperature: m.temperature.as_ref().map(|v| v.value),
            top_p: m.top_p.as_ref().map(|v| v.value),
            stop_sequences: m.stop_sequences.iter().map(|s| s.value.clone()).collect(),
        };
        let empty = c.max_tokens.is_none()
            && c.temperature.is_none()
            && c.top_p.is_none()
            && c.stop_sequences.is_empty();
        (!empty).then_some(c)
    }

    fn guardrail(&mut self, spec: &OperationSpec) -> Option<GuardrailConfig> {
        let g = spec.model.value.guardrail.as_ref()?;
        let trace = match g.value.trace.as_ref() {
            None => None,
            Some(t) => match t.value.as_str() {
                "enabled" => Some(GuardrailTrace::Enabled),
                "disabled" => Some(GuardrailTrace::Disabled),
                "enabled_full" => Some(GuardrailTrace::EnabledFull),
                other => {
                    self.error(
                        &t.referenced,
                        format!("trace must be enabled, disabled or enabled_full, not {other:?}"),
                    );
                    None
                }
            },
        };
        for v in [&g.value.id, &g.value.version] {
            if v.value.trim().is_empty() {
                self.error(&v.referenced, "must not be empty");
            }
        }
        Some(GuardrailConfig {
            guardrail_identifier: g.value.id.value.trim().to_string(),
            guardrail_version: g.value.version.value.trim().to_string(),
            trace,
        })
    }

    /// The `idempotency_key` path: async only, one simple value.
    fn idempotency_key(
        &mut self,
        set: &SchemaSet,
        request: &PayloadShape,
        spec: &OperationSpec,
        mode: Mode,
    ) -> Option<path::Path> {
        let key = spec.idempotency_key.as_ref()?;
        if mode != Mode::Async {
            self.error(
                &key.referenced,
                "idempotency_key applies only to async operations (mode: async or one-way)",
            );
            return None;
        }
        let top = request.top_fields(set);
        let root_type = match request {
            PayloadShape::Element(f) => Some(f.type_id),
            PayloadShape::Fields { .. } => None,
        };
        let resolved = match path::resolve(set, top, root_type, &key.value, false) {
            Ok(p) => p,
            Err(msg) => {
                self.error(&key.referenced, msg);
                return None;
            }
        };
        let simple = match resolved.target() {
            Some(Target::Attribute(_)) => true,
            Some(Target::Element(ty)) => matches!(shape(set, ty), Shape::Simple(_)),
            None => false,
        };
        if !simple {
            self.error(
                &key.referenced,
                format!(
                    "idempotency_key {} must lead to a simple value (text or an attribute)",
                    resolved.text
                ),
            );
            return None;
        }
        Some(resolved)
    }

    fn inputs(
        &mut self,
        set: &SchemaSet,
        shape: &PayloadShape,
        spec: &OperationSpec,
        env: &mut minijinja::Environment<'static>,
    ) -> Vec<InputPlan> {
        let top = shape.top_fields(set);
        let root_type = match shape {
            PayloadShape::Element(f) => Some(f.type_id),
            PayloadShape::Fields { .. } => None,
        };
        let mut out = Vec::new();
        for (name, spec) in &spec.input.0 {
            if !is_identifier(&name.value)
                || ["payload", "payload_xml", "meta"].contains(&name.value.as_str())
            {
                self.error(
                    &name.referenced,
                    format!(
                        "{:?} cannot be a variable name (letters, digits and _; not payload, payload_xml or meta)",
                        name.value
                    ),
                );
                continue;
            }
            let (path_text, path_at) = match &spec.value {
                InputSpec::Path(p) => (p.clone(), spec.referenced),
                InputSpec::Full(f) => (f.path.value.clone(), f.path.referenced),
            };
            let resolved = match path::resolve(set, top, root_type, &path_text, true) {
                Ok(p) => p,
                Err(msg) => {
                    self.error(&path_at, msg);
                    continue;
                }
            };
            let kind = match &spec.value {
                InputSpec::Path(_) => InputKind::Value,
                InputSpec::Full(f) => match self.input_kind(set, &name.value, &resolved, f, env) {
                    Some(k) => k,
                    None => continue,
                },
            };
            out.push(InputPlan {
                name: name.value.clone(),
                path: resolved,
                kind,
            });
        }
        out
    }

    fn input_kind(
        &mut self,
        set: &SchemaSet,
        var: &str,
        p: &path::Path,
        f: &super::spec::FullInput,
        env: &mut minijinja::Environment<'static>,
    ) -> Option<InputKind> {
        let as_ = f.as_.as_ref().map(|a| a.value.as_str()).unwrap_or("value");
        let simple_leaf = |set: &SchemaSet| match p.target() {
            Some(Target::Attribute(_)) => true,
            Some(Target::Element(ty)) => matches!(shape(set, ty), Shape::Simple(_)),
            None => false,
        };
        let at = f.as_.as_ref().map_or(f.path.referenced, |a| a.referenced);
        let what = match as_ {
            "value" => return self.no_attachment_keys(f).then_some(InputKind::Value),
            "json" => return self.no_attachment_keys(f).then_some(InputKind::Json),
            "xml" => {
                if p.attr.is_some() {
                    self.error(&at, "as: xml takes an element, not an attribute");
                    return None;
                }
                return self.no_attachment_keys(f).then_some(InputKind::Xml);
            }
            "text" => {
                if !simple_leaf(set) {
                    self.error(&at, format!("as: text needs an element of simple type; {} has child elements (use value, json or xml)", p.text));
                    return None;
                }
                return self.no_attachment_keys(f).then_some(InputKind::Text);
            }
            "document" => AttachKind::Document,
            "image" => AttachKind::Image,
            "file" => AttachKind::File,
            other => {
                self.error(
                    &at,
                    format!("unknown `as: {other}` (expected value, text, json, xml, document, image or file)"),
                );
                return None;
            }
        };
        if !simple_leaf(set) {
            self.error(&at, format!("an attachment needs an element of simple type (base64Binary, hexBinary or text); {} has child elements", p.text));
            return None;
        }
        let leaf_ty: TypeId = match p.target() {
            Some(Target::Attribute(t) | Target::Element(t)) => t,
            None => return None,
        };
        let encoding = encoding_of(set, leaf_ty);
        let mut format = None;
        match &f.format {
            None if what == AttachKind::File => {
                self.error(
                    &at,
                    "as: file needs a `format` (a format name, MIME type or template)",
                );
                return None;
            }
            None => {
                self.error(&at, format!("as: {as_} needs a `format`"));
                return None;
            }
            Some(fmt) if fmt.value.contains("{{") || fmt.value.contains("{%") => {
                let name = render::format_template(var);
                if let Err(e) = env.add_template_owned(name, fmt.value.clone()) {
                    self.template_error(fmt, &e);
                    return None;
                }
            }
            Some(fmt) => match parse_format(&fmt.value) {
                Some(parsed) if format_fits(what, parsed) => {
                    if encoding == Encoding::Text
                        && matches!(
                            parsed,
                            render::AttachFormat::Image(_)
                                | render::AttachFormat::Document(
                                    crate::converse::DocumentFormat::Pdf
                                        | crate::converse::DocumentFormat::Doc
                                        | crate::converse::DocumentFormat::Docx
                                        | crate::converse::DocumentFormat::Xls
                                        | crate::converse::DocumentFormat::Xlsx,
                                )
                        )
                    {
                        self.error(
                            &fmt.referenced,
                            format!("{} is text, not base64Binary: it can only be a txt, md, csv or html document", p.text),
                        );
                        return None;
                    }
                    format = Some(parsed);
                }
                Some(_) => {
                    self.error(
                        &fmt.referenced,
                        format!("format {} does not fit as: {as_}", fmt.value),
                    );
                    return None;
                }
                None => {
                    self.error(
                        &fmt.referenced,
                        format!("unknown format {:?} (document: pdf, csv, doc, docx, xls, xlsx, html, txt, md; image: png, jpeg, gif, webp; or a MIME type)", fmt.value),
                    );
                    return None;
                }
            },
        }
        let mut has_name_template = false;
        if let Some(n) = &f.name {
            if what == AttachKind::Image {
                self.error(
                    &n.referenced,
                    "images have no name; `name` is for documents",
                );
                return None;
            }
            if let Err(e) = env.add_template_owned(render::name_template(var), n.value.clone()) {
                self.template_error(n, &e);
                return None;
            }
            has_name_template = true;
        }
        Some(InputKind::Attach(Attach {
            what,
            format,
            has_name_template,
            encoding,
        }))
    }

    fn no_attachment_keys(&mut self, f: &super::spec::FullInput) -> bool {
        for (key, v) in [("format", &f.format), ("name", &f.name)] {
            if let Some(v) = v {
                self.error(
                    &v.referenced,
                    format!("`{key}` only applies to as: document, image or file"),
                );
                return false;
            }
        }
        true
    }

    /// Add a template and check it refers only to known variables.
    fn template(
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
        self.check_variables(env, name, src, known)
    }

    fn check_variables(
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

    fn template_error(&mut self, src: &Spanned<String>, e: &minijinja::Error) {
        let (l, c) = self.template_pos(src, e.line().unwrap_or(1));
        let message = match e.detail() {
            Some(d) => format!("template syntax error: {d}"),
            None => format!("template syntax error: {}", e.kind()),
        };
        self.error_at(l, c, message);
    }

    /// The file position of line `tline` (1-based) of a template whose value
    /// starts at `src`: a block scalar (`|`, `>`) starts on the next line.
    fn template_pos(&self, src: &Spanned<String>, tline: usize) -> (u64, u64) {
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

    #[allow(clippy::too_many_arguments)]
    fn output(
        &mut self,
        set: &SchemaSet,
        op: &Operation,
        shape: Option<&PayloadShape>,
        spec: Option<&Spanned<OutputSpec>>,
        env: &mut minijinja::Environment<'static>,
        known: &BTreeSet<String>,
        op_at: &Location,
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
                let mut unsupported = Vec::new();
                let mut seen = BTreeSet::new();
                let top_types: Vec<TypeId> = match shape {
                    PayloadShape::Element(f) => vec![f.type_id],
                    PayloadShape::Fields { fields, .. } => {
                        fields.iter().map(|f| f.type_id).collect()
                    }
                };
                for t in top_types {
                    unsupported_in(set, t, &mut seen, &mut unsupported);
                }
                if let Some(u) = unsupported.first() {
                    self.error(
                        &spec.referenced,
                        format!("the response of {} cannot be structured output: it has {u}; use text output", op.name),
                    );
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
                    format!(
                        "Return the result of {} as the {} response. Call this tool exactly once; its input is the response.",
                        op.name,
                        shape.root_name()
                    )
                });
                OutputPlan::Structured {
                    tool: ToolSpec::new(name, Some(description), for_payload_shape(set, shape)),
                }
            }
            (false, Some(t)) => {
                if let Some(tool) = &o.tool {
                    self.error(&tool.referenced, "tool applies to structured output only");
                }
                let top = shape.top_fields(set);
                let root_type = match shape {
                    PayloadShape::Element(f) => Some(f.type_id),
                    PayloadShape::Fields { .. } => None,
                };
                let target = match path::resolve(set, top, root_type, &t.value, false) {
                    Ok(p) => p,
                    Err(m) => {
                        self.error(&t.referenced, format!("text: {m} in the response"));
                        return OutputPlan::Nothing;
                    }
                };
                let simple = match target.target() {
                    Some(Target::Attribute(_)) => true,
                    Some(Target::Element(ty)) => {
                        matches!(super::shape::shape(set, ty), Shape::Simple(_))
                    }
                    None => false,
                };
                if !simple {
                    self.error(
                        &t.referenced,
                        format!(
                            "text: {} has child elements; text goes into an element of simple type",
                            t.value
                        ),
                    );
                }
                let mut fills = Vec::new();
                let mut placeholder = Value::Object(Default::default());
                super::output::insert_at(
                    &mut placeholder,
                    &keys(&target),
                    Value::String("text".into()),
                );
                for (k, v) in &o.fill.0 {
                    let p = match path::resolve(set, top, root_type, &k.value, false) {
                        Ok(p) => p,
                        Err(m) => {
                            self.error(&k.referenced, format!("fill: {m} in the response"));
                            continue;
                        }
                    };
                    let ty = match p.target() {
                        Some(Target::Attribute(ty)) => Some(ty),
                        Some(Target::Element(ty)) => match super::shape::shape(set, ty) {
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
                    // Counted as filled even when its value is refused
                    // below, so the dry run does not report it twice.
                    super::output::insert_at(
                        &mut placeholder,
                        &keys(&p),
                        Value::String("x".into()),
                    );
                    let Some(text) = v.value.scalar_text() else {
                        self.error(
                            &v.referenced,
                            "a fill value must be a constant or a template string",
                        );
                        continue;
                    };
                    let value = if text.contains("{{") || text.contains("{%") {
                        let name = render::fill_template(&k.value);
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
                // Everything the response requires must come from the text
                // or a fill: a dry run with placeholders finds what is
                // missing (values are checked per call).
                if let Err(vs) = payload_shape_from_json(set, shape, &placeholder) {
                    for v in vs.iter().filter(|v| v.rule.starts_with("required")) {
                        let at = if v.path == "/" {
                            String::new()
                        } else {
                            format!(" at {}", v.path)
                        };
                        self.error(
                            &spec.referenced,
                            format!(
                                "text output leaves {}{at} unfilled; add it to fill",
                                v.rule
                                    .trim_start_matches("required property ")
                                    .trim_end_matches(" missing")
                            ),
                        );
                    }
                }
                OutputPlan::Text {
                    target: keys(&target),
                    fills,
                }
            }
        }
    }

    fn static_response(
        &mut self,
        set: &SchemaSet,
        shape: &PayloadShape,
        expected: &crate::contract::Payload,
        v: &Spanned<YamlValue>,
    ) -> Option<Vec<crate::xml::Element>> {
        let json = v.value.to_json();
        let payload = match payload_shape_from_json(set, shape, &json) {
            Ok(p) => p,
            Err(vs) => {
                for x in vs {
                    let at = locate(v, &x.path);
                    self.error(&at, format!("static response {}: {}", x.path, x.rule));
                }
                return None;
            }
        };
        let violations = validate_payload(set, expected, &payload, &NsScope::new());
        if violations.is_empty() {
            return Some(payload);
        }
        for x in violations {
            let pointer = xml_path_to_pointer(&x.path, shape, &json);
            let at = locate(v, &pointer);
            self.error(&at, format!("static response {pointer}: {}", x.rule));
        }
        None
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

/// A validator path (`/Root/a/b[2]/c`, `/Root/@x`) as a JSON pointer into
/// the payload's JSON value (`/a/b/1/c`), so a static fallback's violation
/// can be located in the YAML.
fn xml_path_to_pointer(xml_path: &str, shape: &PayloadShape, json: &Value) -> String {
    let mut segs: Vec<&str> = xml_path.split('/').filter(|s| !s.is_empty()).collect();
    // The root element (or rpc wrapper) is the JSON value itself.
    if matches!(
        shape,
        PayloadShape::Element(_)
            | PayloadShape::Fields {
                wrapper: Some(_),
                ..
            }
    ) && !segs.is_empty()
    {
        segs.remove(0);
    }
    let mut out = String::new();
    let mut at = Some(json);
    for seg in segs {
        let (name, index) = match seg.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (seg, None),
        };
        out.push('/');
        out.push_str(name);
        at = at.and_then(|v| v.get(name));
        if let Some(Value::Array(items)) = at {
            let i = index.unwrap_or(1).saturating_sub(1);
            out.push_str(&format!("/{i}"));
            at = items.get(i);
        }
    }
    out
}

/// What structured output cannot represent anywhere in a type.
fn unsupported_in(set: &SchemaSet, ty: TypeId, seen: &mut BTreeSet<TypeId>, out: &mut Vec<String>) {
    if !seen.insert(ty) {
        return;
    }
    if let Shape::Object {
        fields,
        unsupported,
        ..
    } = shape(set, ty)
    {
        out.extend(unsupported.iter().cloned());
        for f in fields {
            unsupported_in(set, f.type_id, seen, out);
        }
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_tool_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A tool name from an element name: Converse allows `[a-zA-Z0-9_-]{1,64}`.
fn tool_name(root: &str) -> String {
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

/// True when `word` occurs in `line` as a whole identifier.
fn contains_word(line: &str, word: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    line.match_indices(word).any(|(i, _)| {
        let before = line[..i].chars().next_back();
        let after = line[i + word.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}
