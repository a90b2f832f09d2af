//! `soapgate render`: the Converse request a call would send, calling
//! nothing.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args as ClapArgs;
use soapgate::config::Overrides;
use soapgate::mapping::CallMeta;
use soapgate::pipeline::{self, CallContext, Inbound};

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
    let call = plan
        .render_request(&prepared.envelope.body, &meta)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let targets: Vec<&str> = call.targets.iter().map(|t| t.model.as_str()).collect();
    let mut route = format!(
        "POST /model/{}/converse",
        targets.first().copied().unwrap_or("-")
    );
    if targets.len() > 1 {
        route.push_str(&format!(" (then {})", targets[1..].join(", ")));
    }
    eprintln!("{route}");
    // The tools offered (the response's, then each declared fault's) and
    // what structured output costs per call: every tool schema rides along
    // with every request.
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
        eprintln!("tools offered: {} ({choice})", names.join(", "));
    }
    for fault in plan.faults().iter().filter(|f| f.tool.is_none()) {
        eprintln!(
            "fault {}: chosen by the text answer (its `when` rule), detail {}",
            fault.name, fault.element
        );
    }
    for tool in call.request.tool_config.iter().flat_map(|c| &c.tools) {
        let soapgate::converse::Tool::ToolSpec(spec) = tool;
        let schema = spec.schema();
        let bytes = serde_json::to_vec(schema).map_or(0, |v| v.len());
        let defs = schema
            .get("$defs")
            .and_then(serde_json::Value::as_object)
            .map_or(0, serde_json::Map::len);
        eprintln!(
            "tool {}: input schema {bytes} bytes, {defs} shared definition(s)",
            spec.name
        );
    }
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = writeln!(
        std::io::stdout().lock(),
        "{}",
        serde_json::to_string_pretty(&call.request)?
    );
    Ok(ExitCode::SUCCESS)
}
