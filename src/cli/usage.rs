//! `soapgate usage`: token usage and cost per tenant and model (or per
//! step of each operation) since a date, with the part batches answered
//! and what batching saved.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args as ClapArgs;
use soapgate::config::Overrides;
use soapgate::store::{UsageBy, UsageTotal};
use soapgate::tenants::Price;

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
    /// `model`: a line per tenant and model; `step`: a line per tenant,
    /// operation, step and model (what each step of a multi-step
    /// operation cost; `-` for a single-call operation).
    #[arg(long, value_enum, default_value_t = By::Model)]
    pub(crate) by: By,
}

/// How `soapgate usage` groups its lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum By {
    Model,
    Step,
}

/// `soapgate usage --since DATE [--tenant T] [--by model|step]`: one line
/// per tenant and model (or per step), then a total ([`table`]).
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
        let by = match args.by {
            By::Model => UsageBy::Model,
            By::Step => UsageBy::Step,
        };
        let totals = store
            .usage_totals_by(since_ms, args.tenant.as_deref(), by)
            .await
            .context("reading usage")?;
        store.close().await;
        anyhow::Ok(totals)
    })?;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(table(&totals, &settings.tenancy.prices, args.by).as_bytes());
    Ok(ExitCode::SUCCESS)
}

/// What batching saved on `t`'s batch-answered tokens: what they cost on
/// demand at the model's price now, less what they cost; `None` when the
/// model has no price in `[tenancy.prices]`.
fn saved_micros(t: &UsageTotal, prices: &BTreeMap<String, Price>) -> Option<i64> {
    let price = prices.get(&t.model)?;
    let on_demand = price.cost_micros(
        u64::try_from(t.batch_input_tokens).unwrap_or(0),
        u64::try_from(t.batch_output_tokens).unwrap_or(0),
    );
    Some(on_demand - t.batch_cost_micros)
}

/// The columns that name a line: tenant and model, with
/// `--by step` the operation and step between them.
fn keys(by: By, tenant: &str, operation: &str, step: &str, model: &str) -> String {
    match by {
        By::Model => format!("{tenant:<20} {model:<44}"),
        By::Step => format!("{tenant:<20} {operation:<40} {step:<20} {model:<44}"),
    }
}

/// One line of the table: its naming columns ([`keys`]), then the numbers.
#[allow(clippy::too_many_arguments)]
fn line(
    keys: &str,
    calls: &dyn std::fmt::Display,
    input: &dyn std::fmt::Display,
    output: &dyn std::fmt::Display,
    cost: &dyn std::fmt::Display,
    batch: [&dyn std::fmt::Display; 4],
    saved: &dyn std::fmt::Display,
) -> String {
    let [batch_calls, batch_input, batch_output, batch_cost] = batch;
    format!(
        "{keys} {calls:>8} {input:>12} {output:>12} {cost:>14} \
         {batch_calls:>11} {batch_input:>12} {batch_output:>12} {batch_cost:>14} {saved:>14}\n"
    )
}

/// The table: a header, one line per tenant and model (with `--by step`
/// per tenant, operation, step and model), then a total. The BATCH_
/// columns are the part of the calls, tokens and cost batches answered;
/// SAVED what those tokens would have cost on demand less what they cost
/// (`-` for a model without a price; the total sums the others).
fn table(totals: &[UsageTotal], prices: &BTreeMap<String, Price>, by: By) -> String {
    let mut out = line(
        &keys(by, "TENANT", "OPERATION", "STEP", "MODEL"),
        &"CALLS",
        &"INPUT",
        &"OUTPUT",
        &"COST",
        [
            &"BATCH_CALLS",
            &"BATCH_INPUT",
            &"BATCH_OUTPUT",
            &"BATCH_COST",
        ],
        &"SAVED",
    );
    let mut sum = UsageTotal {
        tenant: String::new(),
        service: String::new(),
        operation: String::new(),
        step: String::new(),
        model: String::new(),
        calls: 0,
        input_tokens: 0,
        output_tokens: 0,
        cost_micros: 0,
        batch_calls: 0,
        batch_input_tokens: 0,
        batch_output_tokens: 0,
        batch_cost_micros: 0,
    };
    let mut saved_sum: Option<i64> = None;
    for t in totals {
        let tenant = if t.tenant.is_empty() { "-" } else { &t.tenant };
        let operation = format!("{}.{}", t.service, t.operation);
        let step = if t.step.is_empty() { "-" } else { &t.step };
        let saved = saved_micros(t, prices);
        out.push_str(&line(
            &keys(by, tenant, &operation, step, &t.model),
            &t.calls,
            &t.input_tokens,
            &t.output_tokens,
            &money(t.cost_micros),
            [
                &t.batch_calls,
                &t.batch_input_tokens,
                &t.batch_output_tokens,
                &money(t.batch_cost_micros),
            ],
            &saved.map_or_else(|| "-".to_owned(), money),
        ));
        sum.calls += t.calls;
        sum.input_tokens += t.input_tokens;
        sum.output_tokens += t.output_tokens;
        sum.cost_micros += t.cost_micros;
        sum.batch_calls += t.batch_calls;
        sum.batch_input_tokens += t.batch_input_tokens;
        sum.batch_output_tokens += t.batch_output_tokens;
        sum.batch_cost_micros += t.batch_cost_micros;
        if let Some(saved) = saved {
            saved_sum = Some(saved_sum.unwrap_or(0) + saved);
        }
    }
    out.push_str(&line(
        &keys(by, "TOTAL", "", "", ""),
        &sum.calls,
        &sum.input_tokens,
        &sum.output_tokens,
        &money(sum.cost_micros),
        [
            &sum.batch_calls,
            &sum.batch_input_tokens,
            &sum.batch_output_tokens,
            &money(sum.batch_cost_micros),
        ],
        &saved_sum.map_or_else(|| "-".to_owned(), money),
    ));
    out
}

/// Millionths of the price unit, with six decimals.
fn money(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let m = micros.unsigned_abs();
    format!("{sign}{}.{:06}", m / 1_000_000, m % 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total(tenant: &str, model: &str, all: [i64; 4], batch: [i64; 4]) -> UsageTotal {
        UsageTotal {
            tenant: tenant.into(),
            service: String::new(),
            operation: String::new(),
            step: String::new(),
            model: model.into(),
            calls: all[0],
            input_tokens: all[1],
            output_tokens: all[2],
            cost_micros: all[3],
            batch_calls: batch[0],
            batch_input_tokens: batch[1],
            batch_output_tokens: batch[2],
            batch_cost_micros: batch[3],
        }
    }

    fn words(text: &str) -> Vec<Vec<&str>> {
        text.lines()
            .map(|l| l.split_whitespace().collect())
            .collect()
    }

    #[test]
    fn saved_is_the_on_demand_cost_of_the_batch_tokens_less_their_cost() {
        let prices = BTreeMap::from([("sonnet".to_owned(), Price::on_demand(3.0, 15.0))]);
        // 1000 in, 200 out in batches at half price: 3000 micros; 6000 on
        // demand.
        let t = total("acme", "sonnet", [3, 1500, 300, 7500], [2, 1000, 200, 3000]);
        assert_eq!(saved_micros(&t, &prices), Some(3000));
        // No batch calls: nothing saved. No price: not known.
        let t = total("acme", "sonnet", [1, 10, 10, 180], [0, 0, 0, 0]);
        assert_eq!(saved_micros(&t, &prices), Some(0));
        let t = total("acme", "haiku", [1, 10, 10, 0], [1, 10, 10, 0]);
        assert_eq!(saved_micros(&t, &prices), None);
    }

    #[test]
    fn the_table_shows_batch_usage_and_savings_per_line_and_in_total() {
        let prices = BTreeMap::from([
            ("sonnet".to_owned(), Price::on_demand(3.0, 15.0)),
            (
                "opus".to_owned(),
                Price {
                    batch_input_per_million: Some(1.0),
                    ..Price::on_demand(15.0, 75.0)
                },
            ),
        ]);
        let totals = [
            total("", "haiku", [1, 1, 1, 0], [1, 1, 1, 0]),
            total(
                "acme",
                "opus",
                [2, 2000, 200, 45_000],
                [1, 1000, 100, 4_750],
            ),
            total(
                "acme",
                "sonnet",
                [3, 1500, 300, 7500],
                [2, 1000, 200, 1_503_000],
            ),
        ];
        let text = table(&totals, &prices, By::Model);
        assert_eq!(
            words(&text),
            vec![
                vec![
                    "TENANT",
                    "MODEL",
                    "CALLS",
                    "INPUT",
                    "OUTPUT",
                    "COST",
                    "BATCH_CALLS",
                    "BATCH_INPUT",
                    "BATCH_OUTPUT",
                    "BATCH_COST",
                    "SAVED"
                ],
                vec![
                    "-", "haiku", "1", "1", "1", "0.000000", "1", "1", "1", "0.000000", "-"
                ],
                // On demand 1000 x 15 + 100 x 75 = 22500; cost 4750.
                vec![
                    "acme", "opus", "2", "2000", "200", "0.045000", "1", "1000", "100", "0.004750",
                    "0.017750"
                ],
                // A cost above the on-demand price saved less than nothing.
                vec![
                    "acme",
                    "sonnet",
                    "3",
                    "1500",
                    "300",
                    "0.007500",
                    "2",
                    "1000",
                    "200",
                    "1.503000",
                    "-1.497000"
                ],
                vec![
                    "TOTAL",
                    "6",
                    "3501",
                    "501",
                    "0.052500",
                    "4",
                    "2001",
                    "301",
                    "1.507750",
                    "-1.479250"
                ],
            ],
            "{text}"
        );
        // The columns line up: every line is as long as the header.
        let widths: Vec<usize> = text.lines().map(str::len).collect();
        assert!(widths.iter().all(|w| *w == widths[0]), "{text}");
        // No prices at all: nothing is known saved.
        let text = table(&totals, &BTreeMap::new(), By::Model);
        assert_eq!(
            words(&text).last().and_then(|l| l.last()).copied(),
            Some("-"),
            "{text}"
        );
    }

    #[test]
    fn by_step_the_table_names_the_operation_and_step_of_each_line() {
        let mut classify = total("acme", "haiku", [2, 100, 10, 120], [0, 0, 0, 0]);
        classify.service = "DocumentIntake".into();
        classify.operation = "ProcessDocument".into();
        classify.step = "classify".into();
        let mut single = total("acme", "sonnet", [1, 50, 5, 60], [0, 0, 0, 0]);
        single.service = "SupportDesk".into();
        single.operation = "TriageTicket".into();
        let text = table(&[classify, single], &BTreeMap::new(), By::Step);
        assert_eq!(
            words(&text),
            vec![
                vec![
                    "TENANT",
                    "OPERATION",
                    "STEP",
                    "MODEL",
                    "CALLS",
                    "INPUT",
                    "OUTPUT",
                    "COST",
                    "BATCH_CALLS",
                    "BATCH_INPUT",
                    "BATCH_OUTPUT",
                    "BATCH_COST",
                    "SAVED"
                ],
                vec![
                    "acme",
                    "DocumentIntake.ProcessDocument",
                    "classify",
                    "haiku",
                    "2",
                    "100",
                    "10",
                    "0.000120",
                    "0",
                    "0",
                    "0",
                    "0.000000",
                    "-"
                ],
                // A single-call operation's calls have no step.
                vec![
                    "acme",
                    "SupportDesk.TriageTicket",
                    "-",
                    "sonnet",
                    "1",
                    "50",
                    "5",
                    "0.000060",
                    "0",
                    "0",
                    "0",
                    "0.000000",
                    "-"
                ],
                vec![
                    "TOTAL", "3", "150", "15", "0.000180", "0", "0", "0", "0.000000", "-"
                ],
            ],
            "{text}"
        );
        let widths: Vec<usize> = text.lines().map(str::len).collect();
        assert!(widths.iter().all(|w| *w == widths[0]), "{text}");
    }
}
