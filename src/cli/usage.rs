//! `soapgate usage`: token usage and cost per tenant and model since a
//! date.

use std::io::Write;
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
    /// First day counted (UTC), `YYYY-MM-DD`, or an RFC 3339 time.
    #[arg(long)]
    pub(crate) since: String,
    /// Only this tenant.
    #[arg(long)]
    pub(crate) tenant: Option<String>,
}

/// `soapgate usage --since DATE [--tenant T]`: one line per tenant and
/// model, then a total.
pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let since_ms = super::since_ms(&args.since)?;
    let overrides = Overrides {
        database_url: args.database.url,
        ..Overrides::default()
    };
    let settings = settings(args.common, overrides)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let totals = runtime.block_on(async {
        let store = soapgate::store::Store::connect(&settings.database.url)
            .await
            .context("connecting to the database")?;
        let totals = store
            .usage_totals(since_ms, args.tenant.as_deref())
            .await
            .context("reading usage")?;
        store.close().await;
        anyhow::Ok(totals)
    })?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{:<20} {:<44} {:>8} {:>12} {:>12} {:>14}",
        "TENANT", "MODEL", "CALLS", "INPUT", "OUTPUT", "COST"
    );
    let (mut calls, mut input, mut output, mut cost) = (0i64, 0i64, 0i64, 0i64);
    for t in &totals {
        let tenant = if t.tenant.is_empty() { "-" } else { &t.tenant };
        let _ = writeln!(
            out,
            "{:<20} {:<44} {:>8} {:>12} {:>12} {:>14}",
            tenant,
            t.model,
            t.calls,
            t.input_tokens,
            t.output_tokens,
            money(t.cost_micros)
        );
        calls += t.calls;
        input += t.input_tokens;
        output += t.output_tokens;
        cost += t.cost_micros;
    }
    let _ = writeln!(
        out,
        "{:<20} {:<44} {:>8} {:>12} {:>12} {:>14}",
        "TOTAL",
        "",
        calls,
        input,
        output,
        money(cost)
    );
    Ok(ExitCode::SUCCESS)
}

/// Millionths of the price unit, with six decimals.
fn money(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let m = micros.unsigned_abs();
    format!("{sign}{}.{:06}", m / 1_000_000, m % 1_000_000)
}
