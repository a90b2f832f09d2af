//! `soapgate replay`: runs an operation's recorded calls again through the
//! mappings and model given now (the configured ones, another mappings
//! folder, another model with `--target`, the emulator with `--emulator`)
//! and reports, per recording and in total, whether the answer is valid,
//! how far it agrees with the recorded answer field by field
//! (`record::compare`), and tokens, cost and latency before and after: a
//! table on stdout, `--json` and `--junit` files. The exit code gates a
//! change: 0 when the share of recordings agreeing whole reaches
//! `--min-agreement`, [`BELOW_MIN`] when it does not, [`CANNOT_RUN`] when
//! nothing could be replayed (usage, configuration, database).
//!
//! Each recording runs as a stored job runs (`jobs::run_stored`): its
//! request payload in an envelope, dispatched, validated, rendered and
//! sent to the model with the operation's retries, repairs and failure
//! policy, under the recorded correlation id. The model layer is built
//! without a recorder, so replaying records nothing.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Args as ClapArgs;
use serde::Serialize;
use soapgate::config::{Overrides, Settings};
use soapgate::error::GatewayError;
use soapgate::jobs::{StoredCall, run_stored};
use soapgate::live::Snapshot;
use soapgate::mapping::ModelTarget;
use soapgate::models::Models;
use soapgate::pipeline::{Outcome, Tries};
use soapgate::record::compare::{Answer, Comparison, Field, FieldStatus, Tolerances, compare};
use soapgate::store::{KIND_SERVED, Recording, RecordingQuery, Store};
use soapgate::tenants::Price;
use soapgate::xml::{self, Element, Limits};

use super::{Common, Database, settings};

/// Exit code: the share of recordings agreeing is below `--min-agreement`.
pub(crate) const BELOW_MIN: u8 = 1;
/// Exit code: nothing was replayed (a usage or configuration error, no
/// database, no recordings).
pub(crate) const CANNOT_RUN: u8 = 2;

#[derive(Debug, ClapArgs)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) common: Common,
    #[command(flatten)]
    pub(crate) database: Database,
    /// The service whose recordings are replayed.
    #[arg(long)]
    pub(crate) service: String,
    /// The operation whose recordings are replayed.
    #[arg(long)]
    pub(crate) operation: String,
    /// Send every call to this model (id, inference profile or ARN)
    /// instead of the mapping's targets.
    #[arg(long)]
    pub(crate) target: Option<String>,
    /// Run the calls with this variant of the operation (its `variants:`
    /// in the mapping) instead of the operation's own settings.
    #[arg(long)]
    pub(crate) variant: Option<String>,
    /// Only recordings made since then: `YYYY-MM-DD` (UTC) or an RFC 3339
    /// time.
    #[arg(long)]
    pub(crate) since: Option<String>,
    /// At most this many recordings (the oldest of those selected).
    #[arg(long)]
    pub(crate) limit: Option<u32>,
    /// Calls in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub(crate) concurrency: u32,
    /// Send model calls to the built-in Converse emulator instead of AWS.
    #[arg(long)]
    pub(crate) emulator: bool,
    /// The share of recordings (0 to 1) that must agree whole for the exit
    /// code to be 0.
    #[arg(long, default_value_t = 1.0)]
    pub(crate) min_agreement: f64,
    /// `PATH=ABS`: numbers at PATH agree within ABS (repeatable; a path
    /// without `[n]` covers every repetition).
    #[arg(long = "tolerance", value_name = "PATH=ABS")]
    pub(crate) tolerances: Vec<String>,
    /// Write the whole report as JSON to this file.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
    /// Write a JUnit XML report (a test case per recording) to this file.
    #[arg(long)]
    pub(crate) junit: Option<PathBuf>,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    match replay(args) {
        Ok(report) => Ok(if report.passed {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(BELOW_MIN)
        }),
        Err(e) => {
            eprintln!("soapgate replay: {e:#}");
            Ok(ExitCode::from(CANNOT_RUN))
        }
    }
}

fn replay(args: Args) -> anyhow::Result<Report> {
    if !(0.0..=1.0).contains(&args.min_agreement) {
        anyhow::bail!(
            "--min-agreement {}: expected a share between 0 and 1",
            args.min_agreement
        );
    }
    let mut tolerances = Tolerances::new();
    for entry in &args.tolerances {
        let (path, abs) = Tolerances::parse_entry(entry).map_err(anyhow::Error::msg)?;
        tolerances.insert(path, abs);
    }
    let since_ms = args.since.as_deref().map(super::since_ms).transpose()?;
    let overrides = Overrides {
        emulator: args.emulator,
        database_url: args.database.url.clone(),
        ..Overrides::default()
    };
    let settings = settings(args.common, overrides)?;
    init_tracing();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let report = runtime.block_on(async {
        let (contracts, mut mappings) = soapgate::app::load_set(&settings)?;
        // The operation's own settings, or the variant asked for: no
        // canary draw and no shadow, so every recording runs the same plan.
        mappings
            .pin_variant(&args.service, &args.operation, args.variant.as_deref())
            .map_err(|e| {
                anyhow::anyhow!("{e} (mappings in {})", settings.mappings_dir.display())
            })?;
        if let Some(model) = &args.target {
            let target = ModelTarget {
                model: model.clone(),
                region: None,
            };
            mappings.retarget(&args.service, &args.operation, target);
        }
        let snapshot = Arc::new(Snapshot {
            contracts,
            mappings,
            generation: 1,
        });
        let store = Store::connect(&settings.database.url)
            .await
            .context("connecting to the database")?;
        let recordings = store
            .recordings(&RecordingQuery {
                service: args.service.clone(),
                operation: args.operation.clone(),
                kind: KIND_SERVED,
                since_ms,
                limit: args.limit,
            })
            .await
            .context("reading recordings");
        store.close().await;
        let recordings = recordings?;
        if recordings.is_empty() {
            anyhow::bail!(
                "no recordings of {}.{}{}",
                args.service,
                args.operation,
                args.since
                    .as_deref()
                    .map(|s| format!(" since {s}"))
                    .unwrap_or_default()
            );
        }
        let (models, emulator) = soapgate::app::model_layer_only(&settings).await?;
        let Some(models) = models else {
            anyhow::bail!(
                "no model client: configure AWS credentials and region, or use --emulator"
            );
        };
        let results = replay_all(
            &settings,
            snapshot,
            models,
            recordings,
            &tolerances,
            args.concurrency as usize,
        )
        .await;
        if let Some(emulator) = emulator {
            let _ = emulator.stop().await;
        }
        anyhow::Ok(results)
    })?;
    let asked = Asked {
        service: args.service,
        operation: args.operation,
        mappings_dir: settings.mappings_dir.display().to_string(),
        variant: args.variant,
        target: args.target,
        emulator: args.emulator || settings.emulator,
        min_agreement: args.min_agreement,
    };
    let report = Report::new(asked, report);
    print_table(&report, &mut std::io::stdout().lock());
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report).context("writing the JSON report")?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.junit {
        std::fs::write(path, junit(&report))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(report)
}

/// Warnings and errors only, to stderr: stdout carries the report.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Replays every recording, at most `concurrency` at once, with a progress
/// bar on a terminal; results in the recordings' order.
async fn replay_all(
    settings: &Settings,
    snapshot: Arc<Snapshot>,
    models: Arc<Models>,
    recordings: Vec<Recording>,
    tolerances: &Tolerances,
    concurrency: usize,
) -> Vec<RecordReport> {
    let total = recordings.len();
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let limits = Arc::new(settings.xml.clone());
    let prices = Arc::new(settings.tenancy.prices.clone());
    let tolerances = Arc::new(tolerances.clone());
    let mut tasks = tokio::task::JoinSet::new();
    for (i, recording) in recordings.into_iter().enumerate() {
        let (permits, snapshot, models) = (permits.clone(), snapshot.clone(), models.clone());
        let (limits, prices, tolerances) = (limits.clone(), prices.clone(), tolerances.clone());
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let report =
                replay_one(&snapshot, &models, &limits, &prices, &tolerances, recording).await;
            (i, report)
        });
    }
    let mut progress = Progress::new(total);
    let mut results: Vec<Option<RecordReport>> = (0..total).map(|_| None).collect();
    let mut done = 0;
    while let Some(joined) = tasks.join_next().await {
        done += 1;
        progress.show(done);
        match joined {
            Ok((i, report)) => results[i] = Some(report),
            // A replay task panicked: the report would be missing a row
            // without a word, so say so.
            Err(e) => eprintln!("soapgate replay: a replay task failed: {e}"),
        }
    }
    progress.finish();
    results.into_iter().flatten().collect()
}

/// One recording replayed and compared.
async fn replay_one(
    snapshot: &Snapshot,
    models: &Arc<Models>,
    limits: &Limits,
    prices: &std::collections::BTreeMap<String, Price>,
    tolerances: &Tolerances,
    rec: Recording,
) -> RecordReport {
    let call = StoredCall {
        service: &rec.service,
        operation: &rec.operation,
        correlation_id: &rec.correlation_id,
        payload: &rec.request_xml,
    };
    let mut outcome = Outcome::default();
    let started = Instant::now();
    let result = run_stored(
        snapshot,
        Some(models),
        limits,
        &call,
        Tries::Last,
        &mut outcome,
    )
    .await;
    let latency = started.elapsed();

    let recorded = RecordedAnswer::of(&rec);
    let (candidate_fault, candidate_detail, payload) = match &result {
        Ok(payload) => (None, None, payload.as_slice()),
        // Coded as recordings code them: a declared fault as
        // `DECLARED_FAULT:<name>`, with its detail to compare.
        Err(err @ GatewayError::Declared(fault)) => (
            Some(format!("{}:{}", err.code().as_str(), fault.name)),
            Some(fault.detail.clone()),
            &[][..],
        ),
        Err(err) => (Some(err.code().as_str().to_owned()), None, &[][..]),
    };
    let candidate = match &candidate_fault {
        Some(code) => Answer::Fault {
            code,
            detail: candidate_detail.as_ref(),
        },
        None => Answer::Response(payload),
    };
    let comparison = match &recorded {
        Ok(answer) => compare(answer.as_answer(), candidate, tolerances),
        Err(why) => Comparison {
            fields: vec![Field {
                path: "recording".into(),
                status: FieldStatus::Missing {
                    recorded: why.clone(),
                },
            }],
        },
    };
    let degraded = outcome.degraded.map(|d| d.to_string());
    // Valid: the model's own answer passed the schema — a response, or a
    // declared fault (its detail validated too). A failure policy's answer
    // or any other fault is not.
    let valid = degraded.is_none() && matches!(&result, Ok(_) | Err(GatewayError::Declared(_)));
    let before = Side {
        model: rec.model.clone(),
        input_tokens: rec.input_tokens,
        output_tokens: rec.output_tokens,
        cost_micros: price(
            prices,
            rec.model.as_deref(),
            rec.input_tokens,
            rec.output_tokens,
        ),
        latency_ms: rec.latency_ms,
        fault: rec.fault_code.clone(),
    };
    let after_cost = (!prices.is_empty()).then(|| {
        outcome
            .attempts
            .iter()
            .map(|a| {
                prices
                    .get(&a.model)
                    .map_or(0, |p| p.cost_micros(a.input_tokens, a.output_tokens))
            })
            .sum()
    });
    let after = Side {
        model: outcome.model.clone(),
        input_tokens: i64::try_from(outcome.input_tokens).unwrap_or(i64::MAX),
        output_tokens: i64::try_from(outcome.output_tokens).unwrap_or(i64::MAX),
        cost_micros: after_cost,
        latency_ms: i64::try_from(latency.as_millis()).unwrap_or(i64::MAX),
        fault: candidate_fault.clone(),
    };
    RecordReport {
        id: rec.id,
        at_ms: rec.at_ms,
        correlation_id: rec.correlation_id.clone(),
        variant: rec.variant.clone(),
        valid,
        degraded,
        error: result.as_ref().err().map(|e| e.to_string()),
        agrees: comparison.agrees(),
        field_agreement: comparison.ratio(),
        fields: comparison.fields.len(),
        differences: comparison.differences().cloned().collect(),
        before,
        after,
    }
}

/// The cost of tokens at a model's price; `None` without prices.
fn price(
    prices: &std::collections::BTreeMap<String, Price>,
    model: Option<&str>,
    input: i64,
    output: i64,
) -> Option<i64> {
    if prices.is_empty() {
        return None;
    }
    let p = model.and_then(|m| prices.get(m));
    Some(p.map_or(0, |p| {
        p.cost_micros(
            u64::try_from(input).unwrap_or(0),
            u64::try_from(output).unwrap_or(0),
        )
    }))
}

/// A recording's answer, read back from its row.
enum RecordedAnswer {
    Response(Vec<Element>),
    Fault {
        code: String,
        detail: Option<Element>,
    },
}

impl RecordedAnswer {
    fn of(rec: &Recording) -> Result<RecordedAnswer, String> {
        let elements = match &rec.response_xml {
            Some(text) => parse_payload(text)
                .map_err(|e| format!("the recorded response does not read: {e}"))?,
            None => Vec::new(),
        };
        Ok(match &rec.fault_code {
            Some(code) => RecordedAnswer::Fault {
                code: code.clone(),
                detail: declared_detail(elements),
            },
            None => RecordedAnswer::Response(elements),
        })
    }

    fn as_answer(&self) -> Answer<'_> {
        match self {
            RecordedAnswer::Response(elements) => Answer::Response(elements),
            RecordedAnswer::Fault { code, detail } => Answer::Fault {
                code,
                detail: detail.as_ref(),
            },
        }
    }
}

/// Payload elements written one after another, read back.
fn parse_payload(text: &str) -> Result<Vec<Element>, xml::XmlError> {
    let doc = xml::read_str(&format!("<recorded>{text}</recorded>"), &Limits::default())?;
    Ok(doc.root.elements().cloned().collect())
}

/// A declared fault's detail element: inside a stored `soap:Fault`, or the
/// element recorded on its own.
fn declared_detail(elements: Vec<Element>) -> Option<Element> {
    let first = elements.into_iter().next()?;
    if first.name.local != "Fault" {
        return Some(first);
    }
    first
        .elements()
        .find(|e| e.name.local == "detail" || e.name.local == "Detail")
        .and_then(|d| d.elements().next().cloned())
}

/// The replay of one recording.
#[derive(Debug, Serialize)]
struct RecordReport {
    /// The recording's id in `soapgate_recordings`.
    id: i64,
    at_ms: i64,
    correlation_id: String,
    variant: Option<String>,
    /// The model's own answer passed the schema (a response or a declared
    /// fault).
    valid: bool,
    /// The failure policy that answered instead of the model, if one did.
    degraded: Option<String>,
    /// Why the replay faulted, when it did.
    error: Option<String>,
    /// Every field agrees with the recorded answer.
    agrees: bool,
    /// The share of fields that agree.
    field_agreement: f64,
    fields: usize,
    differences: Vec<Field>,
    before: Side,
    after: Side,
}

/// What a call cost and answered, recorded or replayed.
#[derive(Debug, Serialize)]
struct Side {
    model: Option<String>,
    input_tokens: i64,
    output_tokens: i64,
    /// Millionths of the price unit (`[tenancy.prices]`); absent without
    /// prices.
    #[serde(skip_serializing_if = "Option::is_none")]
    cost_micros: Option<i64>,
    latency_ms: i64,
    fault: Option<String>,
}

/// Totals of one side over every recording.
#[derive(Debug, Default, Serialize)]
struct Totals {
    input_tokens: i64,
    output_tokens: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    cost_micros: Option<i64>,
    latency_ms_total: i64,
    latency_ms_p50: i64,
    latency_ms_p95: i64,
}

impl Totals {
    fn of<'a>(sides: impl Iterator<Item = &'a Side>) -> Totals {
        let sides: Vec<&Side> = sides.collect();
        let mut latencies: Vec<i64> = sides.iter().map(|s| s.latency_ms).collect();
        latencies.sort_unstable();
        let at = |q: f64| -> i64 {
            if latencies.is_empty() {
                return 0;
            }
            let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len());
            latencies[i - 1]
        };
        Totals {
            input_tokens: sides.iter().map(|s| s.input_tokens).sum(),
            output_tokens: sides.iter().map(|s| s.output_tokens).sum(),
            cost_micros: sides
                .iter()
                .map(|s| s.cost_micros)
                .try_fold(0i64, |sum, c| c.map(|c| sum + c)),
            latency_ms_total: latencies.iter().sum(),
            latency_ms_p50: at(0.5),
            latency_ms_p95: at(0.95),
        }
    }
}

/// What was replayed, and through what.
#[derive(Debug, Serialize)]
struct Asked {
    service: String,
    operation: String,
    mappings_dir: String,
    /// `--variant`, when the calls ran a variant's settings.
    variant: Option<String>,
    /// `--target`, when every call went to one model.
    target: Option<String>,
    emulator: bool,
    min_agreement: f64,
}

/// The whole replay.
#[derive(Debug, Serialize)]
struct Report {
    #[serde(flatten)]
    asked: Asked,
    recordings: usize,
    /// Recordings whose every field agrees.
    agreeing: usize,
    /// `agreeing / recordings`.
    agreement: f64,
    passed: bool,
    /// Recordings whose replay answered validly.
    valid: usize,
    before: Totals,
    after: Totals,
    results: Vec<RecordReport>,
}

impl Report {
    fn new(asked: Asked, results: Vec<RecordReport>) -> Report {
        let agreeing = results.iter().filter(|r| r.agrees).count();
        let agreement = if results.is_empty() {
            0.0
        } else {
            agreeing as f64 / results.len() as f64
        };
        let passed = !results.is_empty() && agreement >= asked.min_agreement;
        Report {
            asked,
            recordings: results.len(),
            agreeing,
            agreement,
            passed,
            valid: results.iter().filter(|r| r.valid).count(),
            before: Totals::of(results.iter().map(|r| &r.before)),
            after: Totals::of(results.iter().map(|r| &r.after)),
            results,
        }
    }
}

/// A progress bar on stderr, `\r[#####.....] 40/100`, only when stderr is
/// a terminal.
struct Progress {
    total: usize,
    shown: bool,
}

impl Progress {
    const WIDTH: usize = 30;

    fn new(total: usize) -> Progress {
        let mut p = Progress {
            total,
            shown: std::io::stderr().is_terminal(),
        };
        p.show(0);
        p
    }

    fn show(&mut self, done: usize) {
        if !self.shown {
            return;
        }
        let filled = (done * Self::WIDTH).checked_div(self.total).unwrap_or(0);
        let bar = format!("{}{}", "#".repeat(filled), ".".repeat(Self::WIDTH - filled));
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r[{bar}] {done}/{}", self.total);
        let _ = err.flush();
    }

    fn finish(&mut self) {
        if self.shown {
            let _ = writeln!(std::io::stderr().lock());
        }
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn time_of(at_ms: i64) -> String {
    let nanos = i128::from(at_ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            let format =
                time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
            t.format(&format).ok()
        })
        .unwrap_or_else(|| at_ms.to_string())
}

/// Millionths of the price unit, with six decimals.
fn money(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let m = micros.unsigned_abs();
    format!("{sign}{}.{:06}", m / 1_000_000, m % 1_000_000)
}

/// A value for the table: quoted, one line.
fn shown(value: &str) -> String {
    let one_line: String = value.split_whitespace().collect::<Vec<_>>().join(" ");
    format!("{one_line:?}")
}

/// How a differing field reads in the table and in JUnit.
fn describe(field: &Field) -> String {
    match &field.status {
        FieldStatus::Same => format!("{}: same", field.path),
        FieldStatus::Differ {
            diff: Some(diff), ..
        } => format!("{}: {diff}", field.path),
        FieldStatus::Differ {
            recorded,
            candidate,
            ..
        } => format!(
            "{}: recorded {}, now {}",
            field.path,
            shown(recorded),
            shown(candidate)
        ),
        FieldStatus::Missing { recorded } => {
            format!("{}: recorded {}, now absent", field.path, shown(recorded))
        }
        FieldStatus::Extra { candidate } => {
            format!("{}: not recorded, now {}", field.path, shown(candidate))
        }
    }
}

fn print_table(report: &Report, out: &mut impl Write) {
    let _ = writeln!(
        out,
        "{:>8}  {:<19}  {:<5}  {:<6}  {:>9}  {:>23}  {:>15}",
        "RECORD",
        "RECORDED AT",
        "VALID",
        "AGREES",
        "FIELDS",
        "TOKENS IN+OUT BEFORE>NOW",
        "MS BEFORE>NOW"
    );
    for r in &report.results {
        let tokens = format!(
            "{}+{}>{}+{}",
            r.before.input_tokens,
            r.before.output_tokens,
            r.after.input_tokens,
            r.after.output_tokens
        );
        let latency = format!("{}>{}", r.before.latency_ms, r.after.latency_ms);
        let fields = format!("{}/{}", r.fields - r.differences.len(), r.fields);
        let _ = writeln!(
            out,
            "{:>8}  {:<19}  {:<5}  {:<6}  {:>9}  {:>23}  {:>15}",
            r.id,
            time_of(r.at_ms),
            yes_no(r.valid),
            yes_no(r.agrees),
            fields,
            tokens,
            latency
        );
        if let Some(why) = r.degraded.as_deref().or(r.error.as_deref()) {
            let _ = writeln!(out, "          answered by: {why}");
        }
        for d in &r.differences {
            let _ = writeln!(out, "          {}", describe(d));
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{}.{}: {} recording{}, {} agree ({:.1}%, minimum {:.1}%): {}",
        report.asked.service,
        report.asked.operation,
        report.recordings,
        if report.recordings == 1 { "" } else { "s" },
        report.agreeing,
        report.agreement * 100.0,
        report.asked.min_agreement * 100.0,
        if report.passed { "PASS" } else { "FAIL" }
    );
    let _ = writeln!(out, "valid answers: {}/{}", report.valid, report.recordings);
    for (name, t) in [("before", &report.before), ("now", &report.after)] {
        let cost = t
            .cost_micros
            .map(|c| format!(", cost {}", money(c)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{name:<6} tokens {} in + {} out{cost}; latency p50 {} ms, p95 {} ms",
            t.input_tokens, t.output_tokens, t.latency_ms_p50, t.latency_ms_p95
        );
    }
}

/// The report as JUnit XML: one test case per recording, failed when it
/// does not agree or its answer is not valid.
fn junit(report: &Report) -> String {
    let suite = format!("{}.{}", report.asked.service, report.asked.operation);
    let failures = report
        .results
        .iter()
        .filter(|r| !r.agrees || !r.valid)
        .count();
    let total_secs = report.after.latency_ms_total as f64 / 1000.0;
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<testsuites name=\"soapgate replay\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" time=\"{total_secs:.3}\">\n",
        report.recordings
    ));
    out.push_str(&format!(
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" time=\"{total_secs:.3}\">\n",
        attr(&suite),
        report.recordings
    ));
    for r in &report.results {
        let name = format!("recording {} ({})", r.id, r.correlation_id);
        out.push_str(&format!(
            "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
            attr(&suite),
            attr(&name),
            r.after.latency_ms as f64 / 1000.0
        ));
        if r.agrees && r.valid {
            out.push_str("/>\n");
            continue;
        }
        let (kind, message) = if !r.valid {
            let why = r
                .degraded
                .as_deref()
                .or(r.after.fault.as_deref())
                .unwrap_or("invalid");
            ("invalid", format!("no valid answer: {why}"))
        } else {
            (
                "disagreement",
                format!("{} of {} fields differ", r.differences.len(), r.fields),
            )
        };
        let mut body = String::new();
        for d in &r.differences {
            body.push_str(&describe(d));
            body.push('\n');
        }
        if let Some(e) = &r.error {
            body.push_str(e);
            body.push('\n');
        }
        out.push_str(&format!(
            ">\n      <failure type=\"{kind}\" message=\"{}\">{}</failure>\n    </testcase>\n",
            attr(&message),
            text(&body)
        ));
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

fn attr(s: &str) -> String {
    let mut out = String::new();
    xml::escape_attr(s, &mut out);
    out
}

fn text(s: &str) -> String {
    let mut out = String::new();
    xml::escape_text(s, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_percentiles_take_the_nearest_rank() {
        let side = |ms| Side {
            model: None,
            input_tokens: 1,
            output_tokens: 2,
            cost_micros: None,
            latency_ms: ms,
            fault: None,
        };
        let sides: Vec<Side> = (1..=20).map(side).collect();
        let t = Totals::of(sides.iter());
        assert_eq!((t.latency_ms_p50, t.latency_ms_p95), (10, 19));
        assert_eq!(
            (t.input_tokens, t.output_tokens, t.cost_micros),
            (20, 40, None)
        );
    }

    #[test]
    fn a_stored_declared_fault_gives_its_detail() {
        let stored = "<soap:Fault xmlns:soap='http://schemas.xmlsoap.org/soap/envelope/'><faultcode>soap:Client</faultcode><faultstring>no</faultstring><detail><r:TicketRejection xmlns:r='urn:t'><Reason>Spam</Reason></r:TicketRejection></detail></soap:Fault>";
        let detail = declared_detail(parse_payload(stored).expect("reads")).expect("a detail");
        assert_eq!(detail.name.local, "TicketRejection");
        assert_eq!(
            declared_detail(parse_payload("<a/><b/>").expect("reads")).map(|e| e.name.local),
            Some("a".to_string())
        );
        assert!(declared_detail(Vec::new()).is_none());
    }
}
