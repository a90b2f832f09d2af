//! `soapgate worker`: the job workers and the polling-table intake only,
//! no HTTP, until SIGTERM or Ctrl-C.

use std::process::ExitCode;

use clap::Args as ClapArgs;
use soapgate::app::Role;
use soapgate::config::Overrides;

use super::{Common, run_app, settings};

#[derive(Debug, ClapArgs)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) common: Common,
    /// `sqlite://path`, `postgres://…` or `mysql://…` [default:
    /// sqlite://data/soapgate.db].
    #[arg(long, env = "SOAPGATE_DATABASE_URL")]
    pub(crate) database_url: Option<String>,
    /// Start the built-in Converse emulator and send model calls to it
    /// instead of AWS.
    #[arg(long)]
    pub(crate) emulator: bool,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let overrides = Overrides {
        emulator: args.emulator,
        database_url: args.database_url,
        ..Overrides::default()
    };
    run_app(settings(args.common, overrides)?, Role::Worker)
}
