//! The commands of the `soapgate` binary, one file each; `main.rs` parses
//! the command line and calls the command's `run`. Commands that run a
//! process (`serve`, `worker`) build it with `soapgate::app::App`.

pub(crate) mod check;
pub(crate) mod emulator;
pub(crate) mod hash_secret;
pub(crate) mod migrate;
pub(crate) mod render;
pub(crate) mod replay;
pub(crate) mod serve;
pub(crate) mod usage;
pub(crate) mod worker;

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use soapgate::config::{Overrides, Settings};

/// The options every command that reads the settings takes.
#[derive(Debug, Args)]
pub(crate) struct Common {
    /// Config file (default: soapgate.toml when present).
    #[arg(long, env = "SOAPGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Folder of .wsdl files and the schemas they import [default: wsdl].
    #[arg(long)]
    wsdl_dir: Option<PathBuf>,
    /// Folder of mapping files [default: mappings].
    #[arg(long)]
    mappings_dir: Option<PathBuf>,
}

/// `--database-url`, for the commands that use the database.
#[derive(Debug, Args)]
pub(crate) struct Database {
    /// `sqlite://path`, `postgres://…` or `mysql://…` [default:
    /// sqlite://data/soapgate.db].
    #[arg(long = "database-url", env = "SOAPGATE_DATABASE_URL")]
    url: Option<String>,
}

/// The settings: defaults < file < environment < these flags.
pub(crate) fn settings(common: Common, overrides: Overrides) -> anyhow::Result<Settings> {
    Settings::load(
        common.config.as_deref(),
        Overrides {
            wsdl_dir: common.wsdl_dir,
            mappings_dir: common.mappings_dir,
            ..overrides
        },
    )
}

/// Log lines (and OTLP spans when configured); flushed when the returned
/// value is dropped, which must happen off the async runtime.
pub(crate) fn init_tracing(settings: &Settings) -> anyhow::Result<soapgate::telemetry::Telemetry> {
    let telemetry =
        soapgate::telemetry::init(settings.log_format, settings.otlp_endpoint.as_deref())
            .context("setting up the OTLP span exporter")?;
    if telemetry.exporting() {
        tracing::info!("exporting spans over OTLP/HTTP");
    }
    Ok(telemetry)
}

/// Builds the process for `role` and runs it until Ctrl-C or SIGTERM.
pub(crate) fn run_app(
    settings: Settings,
    role: soapgate::app::Role,
) -> anyhow::Result<std::process::ExitCode> {
    use soapgate::app::{App, Parts, shutdown_on_signals};
    // Declared before the runtime, so dropped after it: the final flush of
    // spans blocks and must not run on the runtime.
    let _telemetry = init_tracing(&settings)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let app = App::build(settings, role, Parts::default()).await?;
        app.run_until_stopped(shutdown_on_signals()).await?;
        tracing::info!("soapgate stopped");
        Ok(std::process::ExitCode::SUCCESS)
    })
}

/// `--since`: a UTC day `YYYY-MM-DD` (from its midnight) or an RFC 3339
/// time, as epoch milliseconds.
pub(crate) fn since_ms(since: &str) -> anyhow::Result<i64> {
    use time::format_description::well_known::Rfc3339;
    let at = match time::OffsetDateTime::parse(since, &Rfc3339) {
        Ok(t) => t,
        Err(_) => {
            let format = time::macros::format_description!("[year]-[month]-[day]");
            time::Date::parse(since, &format)
                .map_err(|_| {
                    anyhow::anyhow!("--since {since:?}: expected YYYY-MM-DD or an RFC 3339 time")
                })?
                .midnight()
                .assume_utc()
        }
    };
    Ok(i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0))
}
