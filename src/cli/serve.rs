//! `soapgate serve`: the facade over HTTP, and the job workers unless
//! `--no-workers` (or `worker.enabled = false`).

use std::process::ExitCode;

use clap::Args as ClapArgs;
use soapgate::app::Role;
use soapgate::config::Overrides;

use super::{Common, Database, run_app, settings};

#[derive(Debug, ClapArgs)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) common: Common,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long)]
    pub(crate) listen: Option<String>,
    /// URL clients use to reach this facade, for published WSDLs.
    #[arg(long)]
    pub(crate) public_url: Option<String>,
    /// Start the built-in Converse emulator and send model calls to it
    /// instead of AWS.
    #[arg(long)]
    pub(crate) emulator: bool,
    #[command(flatten)]
    pub(crate) database: Database,
    /// Serve HTTP only; run no job workers in this process.
    #[arg(long)]
    pub(crate) no_workers: bool,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let overrides = Overrides {
        listen: args.listen,
        public_url: args.public_url,
        emulator: args.emulator,
        database_url: args.database.url,
        no_workers: args.no_workers,
        ..Overrides::default()
    };
    run_app(settings(args.common, overrides)?, Role::Serve)
}
