//! `soapgate worker`: the job workers and the polling-table intake only,
//! no HTTP, until SIGTERM or Ctrl-C.

use std::process::ExitCode;

use clap::Args as ClapArgs;
use soapgate::app::Role;
use soapgate::config::Overrides;

use super::{Common, Database, run_app, settings};

#[derive(Debug, ClapArgs)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) common: Common,
    #[command(flatten)]
    pub(crate) database: Database,
    /// Start the built-in Converse emulator and send model calls to it
    /// instead of AWS.
    #[arg(long)]
    pub(crate) emulator: bool,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let overrides = Overrides {
        emulator: args.emulator,
        database_url: args.database.url,
        ..Overrides::default()
    };
    run_app(settings(args.common, overrides)?, Role::Worker)
}
