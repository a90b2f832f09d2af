//! `soapgate emulator`: the Converse emulator on its own, for tests and
//! demos (see docs/emulator.md).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args as ClapArgs;
use soapgate::config::LogFormat;
use soapgate::emulator::Script;

#[derive(Debug, ClapArgs)]
pub(crate) struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:4010")]
    pub(crate) listen: String,
    /// YAML script of answers per model and prompt (see docs/emulator.md).
    #[arg(long)]
    pub(crate) script: Option<PathBuf>,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let _telemetry =
        soapgate::telemetry::init(LogFormat::Text, None).context("setting up tracing")?;
    let script = args.script.as_deref().map(Script::load).transpose()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = soapgate::listen::bind(&args.listen, soapgate::listen::DEFAULT_BACKLOG)
            .await
            .with_context(|| format!("binding {}", args.listen))?;
        let addr = listener.local_addr()?;
        let rules = script.as_ref().map_or(0, Script::rule_count);
        tracing::info!(
            %addr,
            rules,
            "Bedrock Converse emulator listening; point the SDK at http://{addr}"
        );
        soapgate::emulator::serve(listener, script, soapgate::app::signal()).await?;
        Ok(ExitCode::SUCCESS)
    })
}
