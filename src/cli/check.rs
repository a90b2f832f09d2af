//! `soapgate check`: load every contract and mapping and print the
//! operations served, one line each (with the declared faults each mapping
//! lets the model answer, its variants and its batch setting); errors as
//! `path:line:col: message`.

use std::io::Write;
use std::process::ExitCode;

use clap::Args as ClapArgs;
use soapgate::config::Overrides;
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
