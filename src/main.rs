//! The `soapgate` command: `serve` runs the facade, `check` loads and
//! reports on the contracts an admin dropped in.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use soapgate::bedrock::{BedrockClient, BedrockSettings, Models};
use soapgate::config::{LogFormat, Overrides, QueueKind, Settings, WorkerSettings};
use soapgate::contract::ContractSet;
use soapgate::converse::ModelClient;
use soapgate::emulator::{EmulatorHandle, Script};
use soapgate::http::{self, AppState};
use soapgate::jobs::JobRunner;
use soapgate::jobs::WorkerPool;
use soapgate::jobs::sqs::{self, Consumer, SqsQueue};
use soapgate::live::{Live, Sources};
use soapgate::mapping::CallMeta;
use soapgate::pipeline::{self, CallContext, Inbound};
use soapgate::tenants::Tenants;

// Every call builds and drops a small tree of owned strings; mimalloc's
// thread-local free lists make that markedly cheaper than glibc malloc (see
// BENCHMARKS.md). Built without transparent huge pages (`no_thp`): backed
// by 2 MiB pages, its arenas kept about a fifth more resident per call in
// flight.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "soapgate",
    version,
    about = "A SOAP facade for Amazon Bedrock's Converse API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve every contract in the WSDL folder over HTTP.
    Serve(ServeArgs),
    /// Load every contract and mapping and print the operations served.
    Check(CheckArgs),
    /// Print the Converse request JSON a call would send, calling nothing.
    Render(RenderArgs),
    /// Create or update the database tables (jobs, polling tables).
    Migrate(MigrateArgs),
    /// Run job workers only (and the polling-table intake), no HTTP.
    Worker(WorkerArgs),
    /// Run a Bedrock Converse emulator (same wire protocol) for tests and demos.
    Emulator(EmulatorArgs),
    /// Hash a password (Argon2id) or API key (SHA-256) read from standard
    /// input, for the tenants' credentials in soapgate.toml.
    HashSecret(HashSecretArgs),
    /// Print token usage and cost per tenant and model since a date.
    Usage(UsageArgs),
}

#[derive(Debug, Args)]
struct HashSecretArgs {
    /// Hash an API key (`sha256:…`) instead of a password (`$argon2id$…`).
    #[arg(long)]
    api_key: bool,
    /// With --api-key: make a new random key, print it and its hash.
    #[arg(long, requires = "api_key")]
    generate: bool,
}

#[derive(Debug, Args)]
struct UsageArgs {
    #[command(flatten)]
    common: Common,
    /// `sqlite://path`, `postgres://…` or `mysql://…` [default:
    /// sqlite://data/soapgate.db].
    #[arg(long, env = "SOAPGATE_DATABASE_URL")]
    database_url: Option<String>,
    /// First day counted (UTC), `YYYY-MM-DD`, or an RFC 3339 time.
    #[arg(long)]
    since: String,
    /// Only this tenant.
    #[arg(long)]
    tenant: Option<String>,
}

#[derive(Debug, Args)]
struct Common {
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

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    common: Common,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long)]
    listen: Option<String>,
    /// URL clients use to reach this facade, for published WSDLs.
    #[arg(long)]
    public_url: Option<String>,
    /// Start the built-in Converse emulator and send model calls to it
    /// instead of AWS.
    #[arg(long)]
    emulator: bool,
    /// `sqlite://path`, `postgres://…` or `mysql://…` [default:
    /// sqlite://data/soapgate.db].
    #[arg(long, env = "SOAPGATE_DATABASE_URL")]
    database_url: Option<String>,
    /// Serve HTTP only; run no job workers in this process.
    #[arg(long)]
    no_workers: bool,
}

#[derive(Debug, Args)]
struct WorkerArgs {
    #[command(flatten)]
    common: Common,
    /// `sqlite://path`, `postgres://…` or `mysql://…` [default:
    /// sqlite://data/soapgate.db].
    #[arg(long, env = "SOAPGATE_DATABASE_URL")]
    database_url: Option<String>,
    /// Start the built-in Converse emulator and send model calls to it
    /// instead of AWS.
    #[arg(long)]
    emulator: bool,
}

#[derive(Debug, Args)]
struct RenderArgs {
    #[command(flatten)]
    common: Common,
    /// The wsdl:service name.
    #[arg(long)]
    service: String,
    /// The operation name.
    #[arg(long)]
    operation: String,
    /// A request: a SOAP envelope or just its payload.
    #[arg(long)]
    request: PathBuf,
}

#[derive(Debug, Args)]
struct MigrateArgs {
    #[command(flatten)]
    common: Common,
    /// `sqlite://path`, `postgres://…` or `mysql://…` [default:
    /// sqlite://data/soapgate.db].
    #[arg(long, env = "SOAPGATE_DATABASE_URL")]
    database_url: Option<String>,
}

#[derive(Debug, Args)]
struct CheckArgs {
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct EmulatorArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:4010")]
    listen: String,
    /// YAML script of answers per model and prompt (see docs/emulator.md).
    #[arg(long)]
    script: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Check(args) => check(args),
        Command::Render(args) => render(args),
        Command::Migrate(args) => migrate(args),
        Command::Worker(args) => worker(args),
        Command::Emulator(args) => emulator(args),
        Command::HashSecret(args) => hash_secret(args),
        Command::Usage(args) => usage(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("soapgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn settings(common: Common, overrides: Overrides) -> anyhow::Result<Settings> {
    Settings::load(
        common.config.as_deref(),
        Overrides {
            wsdl_dir: common.wsdl_dir,
            mappings_dir: common.mappings_dir,
            ..overrides
        },
    )
}

fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let settings = settings(args.common, Overrides::default())?;
    // Errors writing to a closed pipe (`| head`) are ignored, not panics.
    let mut out = std::io::stdout().lock();
    let sources = Sources {
        wsdl_dir: settings.wsdl_dir.clone(),
        mappings_dir: settings.mappings_dir.clone(),
    };
    let (contracts, mappings) = match sources.load() {
        Ok(set) => set,
        Err(errors) => {
            for e in errors {
                let _ = writeln!(out, "{e}");
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut count = 0;
    for (_, service) in contracts.services() {
        for op in &service.operations {
            let versions: Vec<&str> = op.bindings.iter().map(|b| b.version.as_str()).collect();
            let shape = if op.is_one_way() {
                "one-way"
            } else {
                "request-response"
            };
            let mapped = match mappings.plan(&service.name, &op.name) {
                None if op.result_of.is_some() => format!(
                    "polls {}: added to the published WSDL",
                    op.result_of.as_deref().unwrap_or_default()
                ),
                None => "not mapped".to_string(),
                Some(plan) => {
                    let output = if plan.is_one_way() {
                        "no response"
                    } else if plan.tool().is_some() {
                        "structured"
                    } else {
                        "text"
                    };
                    let models: Vec<&str> =
                        plan.targets().iter().map(|t| t.model.as_str()).collect();
                    format!(
                        "mapped: {output}, {} mode, models {}",
                        format!("{:?}", plan.mode()).to_lowercase(),
                        models.join(" > ")
                    )
                }
            };
            let _ = writeln!(
                out,
                "{}.{}\t{}\t{}\t{}\t{}",
                service.name,
                op.name,
                versions.join(", "),
                op.style.as_str(),
                shape,
                mapped
            );
            count += 1;
        }
    }
    if count == 0 {
        let _ = writeln!(
            out,
            "{}:1:1: no operations to serve (no .wsdl files with SOAP bindings)",
            settings.wsdl_dir.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Print the Converse request a call would send, without calling anything.
fn render(args: RenderArgs) -> anyhow::Result<ExitCode> {
    let settings = settings(args.common, Overrides::default())?;
    let sources = Sources {
        wsdl_dir: settings.wsdl_dir.clone(),
        mappings_dir: settings.mappings_dir.clone(),
    };
    let (contracts, mappings) = match sources.load() {
        Ok(set) => set,
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    let bytes = std::fs::read(&args.request)
        .with_context(|| format!("reading {}", args.request.display()))?;
    // A request file may hold a whole SOAP envelope or just the payload.
    let doc = soapgate::xml::read(&bytes, None, &settings.xml)
        .map_err(|e| anyhow::anyhow!("{}:{}: {}", args.request.display(), e.pos, e.kind))?;
    let bytes = soapgate::jobs::payload::envelope_bytes(doc, &bytes);
    let inbound = Inbound::default();
    let mut ctx = CallContext::new(&args.service, None);
    let prepared = pipeline::prepare(&contracts, &inbound, &bytes, &settings.xml, &mut ctx)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.request.display()))?;
    let op = prepared.operation();
    if op.name != args.operation {
        anyhow::bail!(
            "{}: the payload is a {} request, not {}",
            args.request.display(),
            op.name,
            args.operation
        );
    }
    let Some(plan) = mappings.plan(&args.service, &args.operation) else {
        anyhow::bail!("{}.{} is not mapped", args.service, args.operation);
    };
    let meta = CallMeta {
        service: &args.service,
        operation: &args.operation,
        correlation_id: &ctx.correlation_id,
    };
    let call = plan
        .render_request(&prepared.envelope.body, &meta)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let targets: Vec<&str> = call.targets.iter().map(|t| t.model.as_str()).collect();
    let mut route = format!(
        "POST /model/{}/converse",
        targets.first().copied().unwrap_or("-")
    );
    if targets.len() > 1 {
        route.push_str(&format!(" (then {})", targets[1..].join(", ")));
    }
    eprintln!("{route}");
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = writeln!(
        std::io::stdout().lock(),
        "{}",
        serde_json::to_string_pretty(&call.request)?
    );
    Ok(ExitCode::SUCCESS)
}

/// `soapgate hash-secret`: the secret comes from standard input (first
/// line), never from the command line, where `ps` and shell history see it.
fn hash_secret(args: HashSecretArgs) -> anyhow::Result<ExitCode> {
    use soapgate::tenants::secret;
    if args.generate {
        let key = secret::generate_api_key();
        println!("api key: {key}");
        println!("key_hash = \"{}\"", secret::hash_api_key(&key));
        return Ok(ExitCode::SUCCESS);
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the secret from standard input")?;
    let secret_text = line.trim_end_matches(['\r', '\n']);
    if secret_text.is_empty() {
        anyhow::bail!("no secret on standard input (echo -n SECRET | soapgate hash-secret)");
    }
    if args.api_key {
        println!("{}", secret::hash_api_key(secret_text));
    } else {
        println!(
            "{}",
            secret::hash_password(secret_text).map_err(|e| anyhow::anyhow!("hashing: {e}"))?
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `soapgate usage --since DATE [--tenant T]`: one line per tenant and
/// model, then a total.
fn usage(args: UsageArgs) -> anyhow::Result<ExitCode> {
    use time::format_description::well_known::Rfc3339;
    let since = match time::OffsetDateTime::parse(&args.since, &Rfc3339) {
        Ok(t) => t,
        Err(_) => {
            let format = time::macros::format_description!("[year]-[month]-[day]");
            time::Date::parse(&args.since, &format)
                .map_err(|_| {
                    anyhow::anyhow!(
                        "--since {:?}: expected YYYY-MM-DD or an RFC 3339 time",
                        args.since
                    )
                })?
                .midnight()
                .assume_utc()
        }
    };
    let since_ms = i64::try_from(since.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    let overrides = Overrides {
        database_url: args.database_url,
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

fn migrate(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let overrides = Overrides {
        database_url: args.database_url,
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

fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let overrides = Overrides {
        listen: args.listen,
        public_url: args.public_url,
        emulator: args.emulator,
        database_url: args.database_url,
        no_workers: args.no_workers,
        ..Overrides::default()
    };
    let settings = settings(args.common, overrides)?;
    // Declared before the runtime, so dropped after it: the final flush of
    // spans blocks and must not run on the runtime.
    let _telemetry = init_tracing(&settings)?;
    let sources = Sources {
        wsdl_dir: settings.wsdl_dir.clone(),
        mappings_dir: settings.mappings_dir.clone(),
    };
    let live = match Live::load(sources) {
        Ok(live) => Arc::new(live),
        Err(errors) => {
            for e in &errors {
                tracing::error!(error = %e, "refused");
            }
            // The errors may be in either folder: name both.
            anyhow::bail!(
                "{} error(s) loading the contracts in {} and the mappings in {}",
                errors.len(),
                settings.wsdl_dir.display(),
                settings.mappings_dir.display()
            );
        }
    };
    log_services(&live.snapshot().contracts);
    let tenants = tenants_of(&settings)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = soapgate::listen::bind(&settings.listen, settings.listen_backlog)
            .await
            .with_context(|| format!("binding {}", settings.listen))?;
        let addr = listener.local_addr()?;
        let (model, emulator) = model_client(&settings).await?;
        // Sync calls do not need the database: without it, async and
        // one-way calls fault with QUEUE_UNAVAILABLE and the rest serve.
        let store = match soapgate::store::Store::connect(&settings.database.url).await {
            // With SQS, every new job also gets an outbox row for the relay.
            Ok(store) => {
                let store = store.with_outbox(settings.queue.kind == QueueKind::Sqs);
                tracing::info!(backend = ?store.backend(), "job store ready");
                Some(store)
            }
            Err(e) => {
                tracing::error!(error = %e, "no job store: async and one-way calls will fault with QUEUE_UNAVAILABLE");
                None
            }
        };
        tracing::info!(%addr, "soapgate listening");
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let watcher = tokio::spawn(live.clone().watch(stopped(stop_rx.clone())));
        let (workers, waker) = start_workers(
            &settings,
            &live,
            &model,
            store.clone(),
            tenants.clone(),
            stopped(stop_rx.clone()),
        )
        .await?;
        let metrics = model
            .as_ref()
            .map_or_else(|| Arc::new(soapgate::metrics::Metrics::new()), |m| m.metrics().clone());
        let state = AppState {
            live,
            settings: Arc::new(settings),
            model,
            metrics,
            store,
            job_waker: waker,
            tenants,
        };
        let server = http::serve(listener, state, stopped(stop_rx));
        tokio::pin!(server);
        tokio::select! {
            result = &mut server => result?,
            () = shutdown_signal() => {
                let _ = stop_tx.send(true);
                server.await?;
            }
        }
        let _ = stop_tx.send(true);
        let _ = watcher.await;
        if let Some(workers) = workers {
            workers.await.context("worker task")??;
        }
        if let Some(emulator) = emulator {
            let _ = emulator.stop().await;
        }
        tracing::info!("soapgate stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// Connects the store named by `database.url` (applying migrations).
async fn connect_store(settings: &Settings) -> anyhow::Result<soapgate::store::Store> {
    let store = soapgate::store::Store::connect(&settings.database.url)
        .await
        .context("connecting to the database")?
        // With SQS, every new job also gets an outbox row for the relay.
        .with_outbox(settings.queue.kind == QueueKind::Sqs);
    // The backend only: the URL may carry a password.
    tracing::info!(backend = ?store.backend(), "database connected");
    Ok(store)
}

/// The job task of `serve` and the waker HTTP pings after each enqueue.
type Workers = (
    Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    Option<Arc<tokio::sync::Notify>>,
);

/// The job workers for `serve`, unless `worker.enabled = false` or
/// `--no-workers`: shares the HTTP side's store (workers need one: without
/// it, connecting again reports why) and runs the pool until `stopped`.
async fn start_workers(
    settings: &Settings,
    live: &Arc<Live>,
    model: &Option<Arc<Models>>,
    store: Option<soapgate::store::Store>,
    tenants: Option<Arc<Tenants>>,
    stopped: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Workers> {
    if !settings.worker.enabled {
        tracing::info!("job workers disabled in this process");
        return Ok((None, None));
    }
    let store = match store {
        Some(store) => store,
        None => connect_store(settings).await?,
    };
    if settings.queue.kind == QueueKind::Sqs {
        return start_sqs_workers(settings, live, model, store, tenants, stopped)
            .await
            .map(|task| (Some(task), None));
    }
    let pool = WorkerPool::new(
        store.clone(),
        live.clone(),
        model.clone(),
        settings.worker.clone(),
        settings.xml.clone(),
    )
    .with_tenants(tenants);
    let waker = pool.waker();
    let task = tokio::spawn(async move {
        let result = pool.run(stopped).await;
        if let Err(e) = &result {
            tracing::error!(error = %e, "job workers stopped");
        }
        store.close().await;
        result.context("job workers")
    });
    Ok((Some(task), Some(waker)))
}

/// The workers for `queue.kind = sqs`: the outbox relay, the SQS
/// consumers, and the polling-table intake (whose jobs get outbox rows);
/// no database claim loops, since SQS delivers the jobs.
async fn start_sqs_workers(
    settings: &Settings,
    live: &Arc<Live>,
    model: &Option<Arc<Models>>,
    store: soapgate::store::Store,
    tenants: Option<Arc<Tenants>>,
    stopped: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<()>>> {
    let queue = SqsQueue::from_env(&settings.queue.sqs)
        .await
        .context("queue.kind = \"sqs\"")?;
    tracing::info!(?queue, "SQS queue");
    let executor = Arc::new(
        JobRunner::new(
            store.clone(),
            live.clone(),
            model.clone(),
            settings.xml.clone(),
        )
        .with_tenants(tenants.clone()),
    );
    let consumer = Arc::new(Consumer::new(
        store.clone(),
        queue.clone(),
        executor,
        settings.xml.clone(),
    ));
    let intake = WorkerPool::new(
        store.clone(),
        live.clone(),
        model.clone(),
        WorkerSettings {
            concurrency: 0,
            ..settings.worker.clone()
        },
        settings.xml.clone(),
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    Ok(tokio::spawn(async move {
        let relay = tokio::spawn(sqs::relay(store.clone(), queue, stop_rx.clone()));
        let consumers = tokio::spawn(consumer.run(stop_rx));
        let result = intake.run(stopped).await;
        let _ = stop_tx.send(true);
        let _ = relay.await;
        let _ = consumers.await;
        store.close().await;
        result.context("job workers")
    }))
}

/// `soapgate worker`: job workers and the polling-table intake, no HTTP,
/// until SIGTERM or Ctrl-C.
fn worker(args: WorkerArgs) -> anyhow::Result<ExitCode> {
    let overrides = Overrides {
        emulator: args.emulator,
        database_url: args.database_url,
        ..Overrides::default()
    };
    let mut settings = settings(args.common, overrides)?;
    settings.worker.enabled = true;
    let _telemetry = init_tracing(&settings)?;
    let sources = Sources {
        wsdl_dir: settings.wsdl_dir.clone(),
        mappings_dir: settings.mappings_dir.clone(),
    };
    let live = match Live::load(sources) {
        Ok(live) => Arc::new(live),
        Err(errors) => {
            for e in &errors {
                tracing::error!(error = %e, "refused");
            }
            anyhow::bail!(
                "{} error(s) loading the contracts in {} and the mappings in {}",
                errors.len(),
                settings.wsdl_dir.display(),
                settings.mappings_dir.display()
            );
        }
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let (model, emulator) = model_client(&settings).await?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let watcher = tokio::spawn(live.clone().watch(stopped(stop_rx.clone())));
        let tenants = tenants_of(&settings)?;
        let workers = start_workers(&settings, &live, &model, None, tenants, stopped(stop_rx))
            .await?
            .0
            .context("workers are enabled")?;
        tokio::pin!(workers);
        tokio::select! {
            result = &mut workers => result.context("worker task")??,
            () = shutdown_signal() => {
                let _ = stop_tx.send(true);
                workers.await.context("worker task")??;
            }
        }
        let _ = stop_tx.send(true);
        let _ = watcher.await;
        if let Some(emulator) = emulator {
            let _ = emulator.stop().await;
        }
        tracing::info!("soapgate worker stopped");
        Ok(ExitCode::SUCCESS)
    })
}

fn emulator(args: EmulatorArgs) -> anyhow::Result<ExitCode> {
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
        soapgate::emulator::serve(listener, script, shutdown_signal()).await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// The model client: the in-process emulator with `--emulator`, else Amazon
/// Bedrock through the standard AWS chain. Without AWS configuration the
/// facade still serves contracts; mapped calls then fault.
async fn model_client(
    settings: &Settings,
) -> anyhow::Result<(Option<Arc<Models>>, Option<EmulatorHandle>)> {
    if settings.emulator {
        let emulator = soapgate::emulator::spawn(None)
            .await
            .context("starting the Converse emulator")?;
        tracing::warn!(
            url = emulator.base_url(),
            "EMULATOR MODE: model calls go to the built-in Converse emulator, not to Amazon Bedrock"
        );
        // The in-process emulator speaks h2c: calls share one connection,
        // as they do over HTTP/2 to Bedrock over https.
        let bedrock = BedrockSettings {
            http2_prior_knowledge: true,
            ..settings.bedrock.clone()
        };
        let client = BedrockClient::for_endpoint(emulator.base_url(), &bedrock);
        let models = Models::new(Arc::new(client), bedrock);
        return Ok((Some(Arc::new(models)), Some(emulator)));
    }
    match BedrockClient::from_env(&settings.bedrock).await {
        Ok(client) => {
            tracing::info!(
                region = client.region().unwrap_or("?"),
                "model calls go to Amazon Bedrock"
            );
            let models = Models::new(Arc::new(client), settings.bedrock.clone());
            Ok((Some(Arc::new(models)), None))
        }
        Err(e) => {
            tracing::warn!(error = %e, "no Bedrock client: mapped operations will fault until AWS is configured (or use --emulator)");
            Ok((None, None))
        }
    }
}

/// The configured tenants, checked; `None` without `[[tenants]]`.
fn tenants_of(settings: &Settings) -> anyhow::Result<Option<Arc<Tenants>>> {
    let tenants = Tenants::from_settings(&settings.tenants, &settings.tenancy)
        .context("invalid [[tenants]] settings")?;
    if let Some(t) = &tenants {
        tracing::info!(tenants = ?t, "tenants configured: every call must authenticate");
    }
    Ok(tenants.map(Arc::new))
}

fn log_services(contracts: &ContractSet) {
    for (contract, service) in contracts.services() {
        tracing::info!(
            service = %service.name,
            operations = service.operations.len(),
            wsdl = %contract.path.display(),
            "serving"
        );
    }
}

fn init_tracing(settings: &Settings) -> anyhow::Result<soapgate::telemetry::Telemetry> {
    let telemetry =
        soapgate::telemetry::init(settings.log_format, settings.otlp_endpoint.as_deref())
            .context("setting up the OTLP span exporter")?;
    if telemetry.exporting() {
        tracing::info!("exporting spans over OTLP/HTTP");
    }
    Ok(telemetry)
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
