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
    /// The S3 that batch jobs read and write, with static test keys (an S3
    /// emulator such as moto's server). Unset: the standard AWS chain
    /// (`AWS_ENDPOINT_URL_S3`, the usual keys and region).
    #[arg(long)]
    pub(crate) s3_endpoint_url: Option<String>,
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
            s3 = args.s3_endpoint_url.as_deref().unwrap_or("the AWS chain"),
            "Bedrock Converse emulator listening; point the SDK at http://{addr}"
        );
        let options = soapgate::emulator::Options {
            script,
            s3_endpoint_url: args.s3_endpoint_url,
        };
        soapgate::emulator::serve_with(listener, options, soapgate::app::signal()).await?;
        Ok(ExitCode::SUCCESS)
    })
}
