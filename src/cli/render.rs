//! `soapgate render`: the Converse request a call would send, calling
//! nothing; for a multi-step operation, every step's request in the order
//! the steps run, earlier results being placeholders (or, with
//! `--results-from-emulator`, the answers of a Converse emulator).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args as ClapArgs;
use serde_json::{Map, Value};
use soapgate::bedrock::BedrockClient;
use soapgate::config::Overrides;
use soapgate::config::Settings;
use soapgate::error::GatewayError;
use soapgate::mapping::{
    CallMeta, INDEX_VAR, ITEM_VAR, OperationPlan, RenderedCall, STEPS_VAR, StepFailure, StepPlan,
};
use soapgate::models::Models;
use soapgate::pipeline::{self, CallContext, Inbound, Outcome};
use soapgate::xml::Element;

use super::{Common, settings};

#[derive(Debug, ClapArgs)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) common: Common,
    /// The wsdl:service name.
    #[arg(long)]
    pub(crate) service: String,
    /// The operation name.
    #[arg(long)]
    pub(crate) operation: String,
    /// A request: a SOAP envelope or just its payload.
    #[arg(long)]
    pub(crate) request: PathBuf,
    /// For a multi-step operation: call the Converse emulator at this URL
    /// (`soapgate emulator`) for each step and give later steps its
    /// answers, instead of placeholder results.
    #[arg(long, value_name = "URL")]
    pub(crate) results_from_emulator: Option<String>,
}

/// Print the Converse request a call would send, without calling anything.
pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let settings = settings(args.common, Overrides::default())?;
    let (contracts, mappings) = match settings.sources().load() {
        Ok(set) => set,
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    let bytes = std::fs::read(&args.request)
        .with_context(|| format!("reading {}", args.request.display()))?;
    // A request file may hold a whole SOAP envelope or just the payload.
    let doc = soapgate::xml::read(&bytes, None, &settings.xml)
        .map_err(|e| anyhow::anyhow!("{}:{}: {}", args.request.display(), e.pos, e.kind))?;
    let bytes = soapgate::jobs::payload::envelope_bytes(doc, &bytes);
    let inbound = Inbound::default();
    let mut ctx = CallContext::new(&args.service, None);
    let prepared = pipeline::prepare(&contracts, &inbound, &bytes, &settings.xml, &mut ctx)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.request.display()))?;
    let op = prepared.operation();
    if op.name != args.operation {
        anyhow::bail!(
            "{}: the payload is a {} request, not {}",
            args.request.display(),
            op.name,
            args.operation
        );
    }
    let Some(plan) = mappings.plan(&args.service, &args.operation) else {
        anyhow::bail!("{}.{} is not mapped", args.service, args.operation);
    };
    let meta = CallMeta {
        service: &args.service,
        operation: &args.operation,
        correlation_id: &ctx.correlation_id,
    };
    if plan.workflow().is_some() {
        return steps(
            plan,
            &prepared.envelope.body,
            &meta,
            args.results_from_emulator.as_deref(),
            &settings,
        );
    }
    if args.results_from_emulator.is_some() {
        anyhow::bail!(
            "--results-from-emulator is for operations with steps; {}.{} makes one call",
            args.service,
            args.operation
        );
    }
    let call = plan
        .render_request(&prepared.envelope.body, &meta)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for line in describe(plan, &call) {
        eprintln!("{line}");
    }
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = writeln!(
        std::io::stdout().lock(),
        "{}",
        serde_json::to_string_pretty(&call.request)?
    );
    Ok(ExitCode::SUCCESS)
}

/// What a rendered call goes to and costs: the model route, the tools
/// offered (the response's, then each declared fault's), the faults chosen
/// by a text rule, and each tool schema's size (every tool schema rides
/// along with every request).
fn describe(plan: &OperationPlan, call: &RenderedCall) -> Vec<String> {
    let mut lines = Vec::new();
    let targets: Vec<&str> = call.targets.iter().map(|t| t.model.as_str()).collect();
    let mut route = format!(
        "POST /model/{}/converse",
        targets.first().copied().unwrap_or("-")
    );
    if targets.len() > 1 {
        route.push_str(&format!(" (then {})", targets[1..].join(", ")));
    }
    lines.push(route);
    if let Some(config) = &call.request.tool_config {
        let names: Vec<&str> = config
            .tools
            .iter()
            .map(|soapgate::converse::Tool::ToolSpec(s)| s.name.as_str())
            .collect();
        let choice = match &config.tool_choice {
            Some(soapgate::converse::ToolChoice::Any(_)) => "the model calls one of them",
            Some(soapgate::converse::ToolChoice::Tool(_)) => "the model must call it",
            _ => "the model may call them",
        };
        lines.push(format!("tools offered: {} ({choice})", names.join(", ")));
    }
    for fault in plan.faults().iter().filter(|f| f.tool.is_none()) {
        lines.push(format!(
            "fault {}: chosen by the text answer (its `when` rule), detail {}",
            fault.name, fault.element
        ));
    }
    for tool in call.request.tool_config.iter().flat_map(|c| &c.tools) {
        let soapgate::converse::Tool::ToolSpec(spec) = tool;
        let schema = spec.schema();
        let bytes = serde_json::to_vec(schema).map_or(0, |v| v.len());
        let defs = schema
            .get("$defs")
            .and_then(serde_json::Value::as_object)
            .map_or(0, serde_json::Map::len);
        lines.push(format!(
            "tool {}: input schema {bytes} bytes, {defs} shared definition(s)",
            spec.name
        ));
    }
    lines
}

/// A Converse emulator the steps are called on.
struct Emulator {
    url: String,
    runtime: tokio::runtime::Runtime,
    models: Models,
}

/// A multi-step operation's steps, in the order they run: for each, a
/// header, its Converse request (one per item for a `for_each` step, none
/// when its `when` is false), and the result later steps see.
fn steps(
    plan: &OperationPlan,
    payload: &[Element],
    meta: &CallMeta<'_>,
    emulator: Option<&str>,
    settings: &Settings,
) -> anyhow::Result<ExitCode> {
    let Some(workflow) = plan.workflow() else {
        return Ok(ExitCode::FAILURE);
    };
    let results_from = match emulator {
        None => None,
        Some(url) => {
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            let client = {
                let _in = runtime.enter();
                BedrockClient::for_endpoint(url, &settings.bedrock)
            };
            Some(Emulator {
                url: url.to_string(),
                runtime,
                models: Models::new(Arc::new(client), settings.bedrock.model_settings()),
            })
        }
    };
    let fail = |e: soapgate::mapping::RenderError| anyhow::anyhow!("{e}");
    let vars = plan.variables(payload, meta).map_err(fail)?;
    let mut results = Map::new();
    let mut out = std::io::stdout().lock();
    let total = workflow.steps().len();
    match &results_from {
        None => {
            let _ = writeln!(
                out,
                "# {total} steps; each result later steps read is a placeholder \
                 (a sample of the step's output), not a model's answer"
            );
        }
        Some(Emulator { url, .. }) => {
            let _ = writeln!(
                out,
                "# {total} steps; each step is called on the emulator at {url} \
                 and later steps read its answer"
            );
        }
    }
    for (n, step) in workflow.steps().iter().enumerate() {
        let header = format!("== step {} ({} of {total})", step.name(), n + 1);
        let mut seen = vars.clone();
        seen.insert(STEPS_VAR.into(), Value::Object(results.clone()));
        if !plan.step_runs(step, &seen).map_err(fail)? {
            let _ = writeln!(
                out,
                "{header}: skipped, when {} is false ==",
                step.when().unwrap_or_default()
            );
            let value = step.skipped_result();
            let _ = writeln!(out, "steps.{} = {value} (skipped)", step.name());
            results.insert(step.name().to_string(), value);
            continue;
        }
        let value = if step.for_each().is_some() {
            let items = plan.step_items(step, &seen).map_err(fail)?;
            let _ = writeln!(out, "{header}: {} item(s) ==", items.len());
            let mut list = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                let _ = writeln!(out, "-- item {i} --");
                let mut vars = seen.clone();
                vars.insert(ITEM_VAR.into(), item);
                vars.insert(INDEX_VAR.into(), Value::from(i));
                list.push(one_call(
                    plan,
                    step,
                    payload,
                    meta,
                    &vars,
                    results_from.as_ref(),
                    &mut out,
                )?);
            }
            Value::Array(list)
        } else {
            let _ = writeln!(out, "{header} ==");
            one_call(
                plan,
                step,
                payload,
                meta,
                &seen,
                results_from.as_ref(),
                &mut out,
            )?
        };
        let from = match &results_from {
            None => "placeholder".to_string(),
            Some(Emulator { url, .. }) => format!("from the emulator at {url}"),
        };
        let _ = writeln!(out, "steps.{} = {value} ({from})", step.name());
        results.insert(step.name().to_string(), value);
    }
    Ok(ExitCode::SUCCESS)
}

/// One call of a step: its route, tools and request printed; its result
/// (a placeholder, or the emulator's answer with the step's failure
/// policy applied).
fn one_call(
    plan: &OperationPlan,
    step: &StepPlan,
    payload: &[Element],
    meta: &CallMeta<'_>,
    vars: &Map<String, Value>,
    results_from: Option<&Emulator>,
    out: &mut impl Write,
) -> anyhow::Result<Value> {
    let call = step
        .plan()
        .render_request_with(payload, meta, vars)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for line in describe(step.plan(), &call) {
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out, "{}", serde_json::to_string_pretty(&call.request)?);
    let Some(Emulator {
        runtime, models, ..
    }) = results_from
    else {
        return Ok(step.sample_result());
    };
    let deadline = tokio::time::Instant::now()
        + plan
            .call_policy()
            .deadline
            .unwrap_or_else(|| models.settings().deadline());
    let answered = runtime.block_on(pipeline::call_step(
        step.plan(),
        &call,
        models,
        deadline,
        meta.correlation_id,
        &mut Outcome::default(),
    ));
    // As when serving: the step's failure policy covers the model's
    // failures and invalid answers, nothing else.
    let error = match answered {
        Ok(value) => return Ok(value),
        Err(e @ (GatewayError::Model(_) | GatewayError::InvalidModelOutput(_))) => e,
        Err(e) => anyhow::bail!("step {}: {e}", step.name()),
    };
    match step.on_failure() {
        StepFailure::Fault => anyhow::bail!("step {}: {error}", step.name()),
        StepFailure::Continue => {
            let _ = writeln!(
                out,
                "# step {} failed ({error}); its default stands in",
                step.name()
            );
            Ok(step.default().cloned().unwrap_or(Value::Null))
        }
        StepFailure::Static(v) => {
            let _ = writeln!(
                out,
                "# step {} failed ({error}); its static result stands in",
                step.name()
            );
            Ok(v.clone())
        }
    }
}
