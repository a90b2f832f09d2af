//! `soapgate check`: load every contract and mapping and print the
//! operations served, one line each (with the declared faults each mapping
//! lets the model answer, its variants and its batch setting), a
//! multi-step operation's steps under it, one indented line each in the
//! order they run; errors as `path:line:col: message`.

use std::io::Write;
use std::process::ExitCode;

use clap::Args as ClapArgs;
use soapgate::config::Overrides;
use soapgate::mapping::{ForEach, OperationPlan, StepFailure, StepOutput, StepPlan, Workflow};
use soapgate::soap::FaultCode;

use super::{Common, settings};

#[derive(Debug, ClapArgs)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) common: Common,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let settings = settings(args.common, Overrides::default())?;
    // Errors writing to a closed pipe (`| head`) are ignored, not panics.
    let mut out = std::io::stdout().lock();
    let (contracts, mappings) = match settings.sources().load() {
        Ok(set) => set,
        Err(errors) => {
            for e in errors {
                let _ = writeln!(out, "{e}");
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut count = 0;
    for (_, service) in contracts.services() {
        for op in &service.operations {
            let versions: Vec<&str> = op.bindings.iter().map(|b| b.version.as_str()).collect();
            let shape = if op.is_one_way() {
                "one-way"
            } else {
                "request-response"
            };
            let mapped = match mappings.plan(&service.name, &op.name) {
                None if op.result_of.is_some() => format!(
                    "polls {}: added to the published WSDL",
                    op.result_of.as_deref().unwrap_or_default()
                ),
                None => "not mapped".to_string(),
                Some(plan) if plan.workflow().is_some() => {
                    let steps = plan.workflow().map_or(0, |w| w.steps().len());
                    let line = format!(
                        "mapped: {steps} steps, {} mode",
                        format!("{:?}", plan.mode()).to_lowercase(),
                    );
                    line + &suffixes(plan)
                }
                Some(plan) => {
                    let output = if plan.is_one_way() {
                        "no response"
                    } else if plan.tool().is_some() {
                        "structured"
                    } else {
                        "text"
                    };
                    let models: Vec<&str> =
                        plan.targets().iter().map(|t| t.model.as_str()).collect();
                    let mut line = format!(
                        "mapped: {output}, {} mode, models {}",
                        format!("{:?}", plan.mode()).to_lowercase(),
                        models.join(" > ")
                    );
                    line.push_str(&suffixes(plan));
                    line
                }
            };
            let _ = writeln!(
                out,
                "{}.{}\t{}\t{}\t{}\t{}",
                service.name,
                op.name,
                versions.join(", "),
                op.style.as_str(),
                shape,
                mapped
            );
            if let Some(workflow) = mappings
                .plan(&service.name, &op.name)
                .and_then(|p| p.workflow())
            {
                for step in workflow.steps() {
                    let _ = writeln!(out, "  {}", step_line(workflow, step));
                }
            }
            count += 1;
        }
    }
    if count == 0 {
        let _ = writeln!(
            out,
            "{}:1:1: no operations to serve (no .wsdl files with SOAP bindings)",
            settings.wsdl_dir.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// What follows an operation's mapping in its line: the declared faults
/// the model may answer, variants, the sticky path, the shadow and batch.
fn suffixes(plan: &OperationPlan) -> String {
    let mut line = String::new();
    // The declared faults the model may answer: name
    // (code, detail element, tool or text rule).
    let faults: Vec<String> = plan
        .faults()
        .iter()
        .map(|f| {
            let code = match f.code {
                FaultCode::Server => "server",
                _ => "client",
            };
            let how = match &f.tool {
                Some(tool) => format!("tool {tool}"),
                None => "text rule".to_string(),
            };
            format!("{} ({code}, detail {}, {how})", f.name, f.element)
        })
        .collect();
    if !faults.is_empty() {
        line.push_str(&format!(", faults {}", faults.join("; ")));
    }
    // Variants: name, share of calls, models.
    let variants: Vec<String> = plan
        .variants()
        .iter()
        .map(|v| {
            let models: Vec<&str> = v
                .plan()
                .targets()
                .iter()
                .map(|t| t.model.as_str())
                .collect();
            format!("{} {}% ({})", v.name(), v.weight(), models.join(" > "))
        })
        .collect();
    if !variants.is_empty() {
        line.push_str(&format!(", variants {}", variants.join("; ")));
    }
    if let Some(path) = plan.sticky_by() {
        line.push_str(&format!(", sticky by {path}"));
    }
    if let Some((sample, v)) = plan.shadow() {
        line.push_str(&format!(", shadow {} on {sample} of calls", v.name()));
    }
    if let Some(b) = plan.batch() {
        line.push_str(&format!(
            ", batch {} to {} records within {}s on {} via {}",
            b.min_records,
            b.max_records,
            b.max_wait.as_secs(),
            b.model,
            b.s3_uri
        ));
    }
    line
}

/// One step of a multi-step operation: its name, the steps it reads, its
/// `when`, `for_each`, output, models and failure policy (`on_failure`
/// only when it is not `fault`), `default`.
fn step_line(workflow: &Workflow, step: &StepPlan) -> String {
    let mut parts = Vec::new();
    let reads: Vec<&str> = step
        .reads()
        .iter()
        .map(|&i| workflow.steps()[i].name())
        .collect();
    if !reads.is_empty() {
        parts.push(format!("after {}", reads.join(", ")));
    }
    if let Some(when) = step.when() {
        parts.push(format!("when {when}"));
    }
    match step.for_each() {
        Some(ForEach::Input(name) | ForEach::Expr(name)) => {
            parts.push(format!("for_each {name} (max {})", step.max_concurrency()));
        }
        None => {}
    }
    parts.push(match step.output() {
        StepOutput::Text => "text".to_string(),
        StepOutput::Schema(_) => "schema".to_string(),
        StepOutput::Type(name) => format!("type {}", name.local),
    });
    let models: Vec<&str> = step
        .plan()
        .targets()
        .iter()
        .map(|t| t.model.as_str())
        .collect();
    parts.push(format!("models {}", models.join(" > ")));
    match step.on_failure() {
        StepFailure::Fault => {}
        StepFailure::Continue => parts.push("on_failure continue".to_string()),
        StepFailure::Static(v) => parts.push(format!("on_failure static {v}")),
    }
    if let Some(v) = step.default() {
        parts.push(format!("default {v}"));
    }
    format!("{}: {}", step.name(), parts.join(", "))
}
