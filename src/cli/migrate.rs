//! `soapgate migrate`: create or update the database tables.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args as ClapArgs;
use soapgate::config::Overrides;

use super::{Common, Database, settings};

#[derive(Debug, ClapArgs)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) common: Common,
    #[command(flatten)]
    pub(crate) database: Database,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let overrides = Overrides {
        database_url: args.database.url,
        ..Overrides::default()
    };
    let settings = settings(args.common, overrides)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        // connect() applies the migrations; say which backend, never the URL
        // (it may carry a password).
        let store = soapgate::store::Store::connect(&settings.database.url)
            .await
            .context("connecting to the database")?;
        println!("migrations applied ({:?})", store.backend());
        store.close().await;
        Ok(ExitCode::SUCCESS)
    })
}
