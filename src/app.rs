//! The one wiring of a process. [`App::build`] makes everything a process
//! runs from its settings — the live contracts and mappings, the model
//! layer (Amazon Bedrock, or the emulator in process), the job store, the
//! tenants, the job workers of the configured queue, and the HTTP state —
//! and [`App::run_until_stopped`] runs them until a [`Shutdown`] is
//! triggered, then stops them in order. `soapgate serve`, `soapgate worker`
//! and every test harness build the same `App` (tests on port 0, with
//! [`Parts`] for what a test brings itself, such as a model client).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::backoff;
use crate::bedrock::{BedrockBatch, BedrockClient, BedrockSettings};
use crate::config::{QueueKind, Settings};
use crate::contract::ContractSet;
use crate::converse::{BatchClient, ModelClient};
use crate::emulator::EmulatorHandle;
use crate::http::{AppState, ParseBudget};
use crate::jobs::sqs::{self, Consumer, SqsQueue};
use crate::jobs::{BatchDriver, JobRunner, WorkerPool};
use crate::listen::Tls;
use crate::live::Live;
use crate::mapping::MappingSet;
use crate::metrics::Metrics;
use crate::models::Models;
use crate::record::{RecordWriter, Recorder};
use crate::shutdown::Shutdown;
use crate::store::{Store, StoreError, StoreSlot};
use crate::tenants::Tenants;

/// What the process serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// HTTP, and the job workers unless `worker.enabled` is false
    /// (`soapgate serve`).
    Serve,
    /// The job workers only (`soapgate worker`): no HTTP; the workers
    /// start once the database answers.
    Worker,
}

/// What a caller brings instead of what [`App::build`] would make from the
/// settings.
#[derive(Default)]
pub struct Parts {
    /// The model client of the default region, instead of Amazon Bedrock
    /// from the standard AWS chain (or the emulator with `emulator = true`).
    pub model: Option<Arc<dyn ModelClient>>,
    /// Serve HTTP on this listener instead of binding `settings.listen`.
    pub listener: Option<TcpListener>,
    /// Batch inference through this client instead of S3 and Bedrock's
    /// control plane from the settings.
    pub batch: Option<Arc<dyn BatchClient>>,
}

impl std::fmt::Debug for Parts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parts")
            .field("model", &self.model.is_some())
            .field("listener", &self.listener)
            .field("batch", &self.batch.is_some())
            .finish()
    }
}

/// A process, built and not yet running.
#[derive(Debug)]
pub struct App {
    state: AppState,
    listener: Option<TcpListener>,
    /// `Some` when HTTP is served over TLS (`[tls]`).
    tls: Option<Tls>,
    workers: Option<Workers>,
    emulator: Option<EmulatorHandle>,
    /// Writes the calls operations record (`record:`) once the store is up.
    recordings: RecordWriter,
}

/// The job workers of the configured queue, everything but the store made;
/// they start once the store is connected.
#[derive(Debug)]
struct Workers {
    settings: Settings,
    live: Arc<Live>,
    models: Option<Arc<Models>>,
    tenants: Option<Arc<Tenants>>,
    /// `Some` for `queue.kind = "sqs"`.
    queue: Option<SqsQueue>,
    /// Handed to HTTP now and to the database pool when it starts.
    waker: Arc<Notify>,
    /// Batch inference, for operations with `batch:` (database queue only).
    batch: Option<Arc<dyn BatchClient>>,
    /// The instance's metrics, which the batch driver counts on.
    metrics: Arc<Metrics>,
}

/// The job workers with their store, about to run.
enum Running {
    /// `queue.kind = "database"`: the pool claims from the jobs table and
    /// takes in the polling table.
    Database {
        pool: WorkerPool,
        store: Store,
        batch: Option<BatchDriver>,
    },
    /// `queue.kind = "sqs"`: the outbox relay, the consumers, and the
    /// polling-table intake alone (whose jobs get outbox rows); nothing
    /// claims from the jobs table.
    Sqs {
        queue: SqsQueue,
        consumer: Arc<Consumer>,
        intake: WorkerPool,
        store: Store,
    },
}

impl App {
    /// Builds a process from `settings`: every error a configuration can
    /// cause (contracts or mappings that do not load, tenants, a database
    /// URL that cannot be right, the SQS queue) is reported here, before
    /// anything runs. A database that does not answer is not such an error:
    /// the process serves without it and connects when it can.
    pub async fn build(settings: Settings, role: Role, parts: Parts) -> anyhow::Result<App> {
        let mut settings = settings;
        if role == Role::Worker {
            settings.worker.enabled = true;
        }
        let live = Arc::new(load_live(&settings)?);
        settings.check_tls().context("invalid settings")?;
        let tenants = tenants_of(&settings).await?;
        let tls = match (&settings.tls, role) {
            (Some(s), Role::Serve) => Some(Tls::load(s).context("invalid [tls] settings")?),
            _ => None,
        };
        let listener = match (role, parts.listener) {
            (Role::Worker, _) => None,
            (Role::Serve, Some(listener)) => Some(listener),
            (Role::Serve, None) => Some(
                crate::listen::bind(&settings.listen, settings.listen_backlog)
                    .await
                    .with_context(|| format!("binding {}", settings.listen))?,
            ),
        };
        let metrics = Arc::new(Metrics::new());
        let (recorder, recordings) = Recorder::new(&settings.record, metrics.clone());
        let (models, emulator) =
            model_layer(&settings, parts.model, &metrics, Some(recorder)).await?;
        // HTTP does not wait for the database: sync calls need none, and
        // while it does not answer async and one-way calls fault with
        // QUEUE_UNAVAILABLE, `/readyz` says why, and the workers wait.
        // `run_until_stopped` keeps connecting. Only a wrong URL stops here.
        let store = StoreSlot::connecting();
        match tokio::time::timeout(FIRST_CONNECT, connect_store(&settings, &live)).await {
            Ok(Ok(connected)) => store.fill(connected),
            Ok(Err(e)) if e.is_permanent() => {
                return Err(e).context("connecting to the database");
            }
            Ok(Err(e)) => not_connected(&store, &e.to_string()),
            Err(_) => not_connected(&store, &format!("no answer within {FIRST_CONNECT:?}")),
        }
        let workers = if settings.worker.enabled {
            let batch = match parts.batch {
                Some(client) => Some(client),
                None => batch_client(&settings, emulator.as_ref()).await,
            };
            Some(Workers::build(&settings, &live, &models, &tenants, batch, &metrics).await?)
        } else {
            tracing::info!("job workers disabled in this process");
            None
        };
        let job_waker = workers
            .as_ref()
            .filter(|w| w.queue.is_none())
            .map(|w| w.waker.clone());
        let max_parsing_bytes = settings.max_parsing_bytes;
        let state = AppState {
            live,
            settings: Arc::new(settings),
            model: models,
            metrics,
            store,
            job_waker,
            tenants,
            parse_budget: Arc::new(ParseBudget::new(max_parsing_bytes)),
        };
        Ok(App {
            state,
            listener,
            tls,
            workers,
            emulator,
            recordings,
        })
    }

    /// What the HTTP handlers share: the live set, the model layer, the
    /// store, the tenants.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The address HTTP is served on (`None` for [`Role::Worker`]).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Runs HTTP, the workers and the reload watcher until `shutdown` is
    /// triggered (or the server or the workers fail, which triggers it),
    /// then lets requests in flight finish, stops the workers (within their
    /// grace period) and the emulator.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let App {
            state,
            listener,
            tls,
            workers,
            emulator,
            recordings,
        } = self;
        // Stops after HTTP and the workers, so their last calls' rows are
        // written.
        let recordings_stop = Shutdown::new();
        let recorder = tokio::spawn(recordings.run(state.store.clone(), recordings_stop.wait()));
        let watcher = tokio::spawn(state.live.clone().watch(shutdown.wait()));
        let tls_watcher = tls
            .clone()
            .map(|tls| tokio::spawn(tls.watch(shutdown.wait())));
        let connector = (state.store.get().is_none()).then(|| {
            tokio::spawn(keep_connecting(
                state.settings.clone(),
                state.live.clone(),
                state.store.clone(),
                shutdown.clone(),
            ))
        });
        let workers = workers.map(|w| tokio::spawn(w.run(state.store.clone(), shutdown.clone())));
        let served = match listener {
            Some(listener) => {
                let addr = listener.local_addr()?;
                match &tls {
                    Some(t) => {
                        tracing::info!(%addr, client_auth = ?t.client_auth(), "soapgate listening (HTTPS)")
                    }
                    None => tracing::info!(%addr, "soapgate listening"),
                }
                crate::http::serve_with(listener, state, tls, shutdown.wait())
                    .await
                    .context("serving HTTP")
            }
            None => {
                shutdown.wait().await;
                Ok(())
            }
        };
        shutdown.trigger();
        let worked = match workers {
            Some(task) => task.await.context("worker task").and_then(|r| r),
            None => Ok(()),
        };
        let _ = watcher.await;
        if let Some(tls_watcher) = tls_watcher {
            let _ = tls_watcher.await;
        }
        if let Some(connector) = connector {
            let _ = connector.await;
        }
        recordings_stop.trigger();
        let _ = recorder.await;
        if let Some(emulator) = emulator {
            let _ = emulator.stop().await;
        }
        served.and(worked)
    }
}

impl Workers {
    /// Everything the workers need but the store; for SQS, the queue (so a
    /// wrong queue setting stops the process at start).
    async fn build(
        settings: &Settings,
        live: &Arc<Live>,
        models: &Option<Arc<Models>>,
        tenants: &Option<Arc<Tenants>>,
        batch: Option<Arc<dyn BatchClient>>,
        metrics: &Arc<Metrics>,
    ) -> anyhow::Result<Workers> {
        let queue = match settings.queue.kind {
            QueueKind::Database => None,
            QueueKind::Sqs => {
                let queue = SqsQueue::from_env(&settings.queue.sqs)
                    .await
                    .context("queue.kind = \"sqs\"")?;
                tracing::info!(?queue, "SQS queue");
                Some(queue)
            }
        };
        Ok(Workers {
            settings: settings.clone(),
            live: live.clone(),
            models: models.clone(),
            tenants: tenants.clone(),
            queue,
            waker: Arc::new(Notify::new()),
            batch,
            metrics: metrics.clone(),
        })
    }

    /// Waits for the store (or `shutdown`), then runs until `shutdown`; a
    /// pool that fails triggers it for the rest of the process.
    async fn run(self, store: StoreSlot, shutdown: Shutdown) -> anyhow::Result<()> {
        if store.get().is_none() {
            tracing::info!("job workers wait for the database");
        }
        let store = tokio::select! {
            store = store.connected() => store,
            () = shutdown.wait() => return Ok(()),
        };
        let result = self.with_store(store).run(shutdown.wait()).await;
        if let Err(e) = &result {
            tracing::error!(error = %e, "job workers stopped");
            shutdown.trigger();
        }
        result.context("job workers")
    }

    fn with_store(self, store: Store) -> Running {
        let Workers {
            settings,
            live,
            models,
            tenants,
            queue,
            waker,
            batch,
            metrics,
        } = self;
        let Some(queue) = queue else {
            let batch = batch.map(|client| {
                let runner = JobRunner::new(
                    store.clone(),
                    live.clone(),
                    models.clone(),
                    settings.xml.clone(),
                )
                .with_tenants(tenants.clone());
                BatchDriver::new(
                    store.clone(),
                    Arc::new(runner),
                    client,
                    settings.batch.clone(),
                    process_name("batch"),
                )
                .with_waker(waker.clone())
                .with_metrics(metrics)
            });
            let pool = WorkerPool::new(
                store.clone(),
                live,
                models,
                settings.worker.clone(),
                settings.xml.clone(),
            )
            .with_tenants(tenants)
            .with_waker(waker);
            return Running::Database { pool, store, batch };
        };
        if batch.is_some()
            && live
                .snapshot()
                .mappings
                .plans()
                .any(|p| p.batch().is_some())
        {
            tracing::warn!(
                "batch: is not used with queue.kind = \"sqs\": every job runs on demand"
            );
        }
        let runner = JobRunner::new(store.clone(), live.clone(), models, settings.xml.clone())
            .with_tenants(tenants);
        let consumer = Arc::new(Consumer::new(
            store.clone(),
            queue.clone(),
            Arc::new(runner),
            settings.xml.clone(),
        ));
        // The queue is the only way to a job: request rows become jobs with
        // outbox rows here, and nothing claims from the jobs table, so every
        // job gets its reply and its failures reach the DLQ.
        let intake = WorkerPool::intake_only(store.clone(), live, settings.worker, settings.xml);
        Running::Sqs {
            queue,
            consumer,
            intake,
            store,
        }
    }
}

impl Running {
    async fn run(self, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        match self {
            Running::Database { pool, store, batch } => {
                // The batch driver stops with the pool: on the process's
                // shutdown, or when the pool fails.
                let stop = Shutdown::new();
                let driver = batch.map(|driver| tokio::spawn(driver.run(stop.clone())));
                let result = pool.run(shutdown).await;
                stop.trigger();
                if let Some(driver) = driver {
                    let _ = driver.await;
                }
                store.close().await;
                Ok(result?)
            }
            Running::Sqs {
                queue,
                consumer,
                intake,
                store,
            } => {
                // The relay and the consumers stop with the intake: on the
                // process's shutdown, or when the intake fails.
                let inner = Shutdown::new();
                let relay: JoinHandle<()> =
                    tokio::spawn(sqs::relay(store.clone(), queue, inner.clone()));
                let consumers = tokio::spawn(consumer.run(inner.clone()));
                let result = intake.run(shutdown).await;
                inner.trigger();
                let _ = relay.await;
                let _ = consumers.await;
                store.close().await;
                Ok(result?)
            }
        }
    }
}

/// How long `App::build` waits for the database before listening anyway.
const FIRST_CONNECT: Duration = Duration::from_secs(2);
/// How long each later attempt to connect may take.
const CONNECT_ATTEMPT: Duration = Duration::from_secs(10);

fn not_connected(slot: &StoreSlot, error: &str) {
    tracing::warn!(
        error,
        "the database does not answer: serving sync calls; async and one-way calls fault with QUEUE_UNAVAILABLE until it does"
    );
    slot.failed(error.to_owned());
}

/// Connects until the store is in `slot` or `shutdown`, backing off from
/// half a second to 30 s between attempts.
async fn keep_connecting(
    settings: Arc<Settings>,
    live: Arc<Live>,
    slot: StoreSlot,
    shutdown: Shutdown,
) {
    let stop = shutdown.wait();
    tokio::pin!(stop);
    for retry in 0u32.. {
        let wait = backoff::full_jitter(retry, Duration::from_millis(500), Duration::from_secs(30));
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = &mut stop => return,
        }
        let error = tokio::select! {
            attempt = tokio::time::timeout(CONNECT_ATTEMPT, connect_store(&settings, &live)) => match attempt {
                Ok(Ok(store)) => {
                    slot.fill(store);
                    return;
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {CONNECT_ATTEMPT:?}"),
            },
            () = &mut stop => return,
        };
        tracing::warn!(error, retry, "the database still does not answer");
        slot.failed(error);
    }
}

/// The contracts and mappings of the settings' folders, or every error.
fn load_live(settings: &Settings) -> anyhow::Result<Live> {
    let (contracts, mappings) = load_set(settings)?;
    for (contract, service) in contracts.services() {
        tracing::info!(
            service = %service.name,
            operations = service.operations.len(),
            wsdl = %contract.path.display(),
            "serving"
        );
    }
    Ok(Live::from_set(contracts, mappings, settings.sources()))
}

/// The contracts and mappings of the settings' folders, checked as a
/// process checks them at start, or every error at its `path:line:col`.
pub fn load_set(settings: &Settings) -> anyhow::Result<(ContractSet, MappingSet)> {
    let sources = settings.sources();
    match sources.check_folders().and_then(|()| sources.load()) {
        Ok(set) => Ok(set),
        Err(errors) => {
            // The errors may be in either folder: name both, then each error
            // at its `path:line:col`.
            let mut text = format!(
                "{} error(s) loading the contracts in {} and the mappings in {}",
                errors.len(),
                settings.wsdl_dir.display(),
                settings.mappings_dir.display()
            );
            for e in &errors {
                text.push_str(&format!("\n  {e}"));
            }
            anyhow::bail!(text);
        }
    }
}

/// The model layer `settings` describe, on its own, for a command that
/// calls models without serving (`soapgate replay`): Amazon Bedrock, or the
/// emulator in process with `emulator = true` (stop it with its handle).
/// Nothing is recorded through it.
pub async fn model_layer_only(
    settings: &Settings,
) -> anyhow::Result<(Option<Arc<Models>>, Option<EmulatorHandle>)> {
    model_layer(settings, None, &Arc::new(Metrics::new()), None).await
}

/// The configured tenants, checked; `None` without `[[tenants]]`.
async fn tenants_of(settings: &Settings) -> anyhow::Result<Option<Arc<Tenants>>> {
    let tenants = Tenants::with_cluster(&settings.tenants, &settings.tenancy, &settings.cluster)
        .await
        .context("invalid [[tenants]] or [cluster] settings")?;
    match &tenants {
        Some(t) => tracing::info!(
            tenants = ?t,
            shared = t.cluster_health().is_some(),
            "tenants configured: every call must authenticate"
        ),
        None if settings.cluster.redis_url.is_some() => tracing::warn!(
            "cluster.redis_url is set but no tenant is configured: nothing is kept in Redis"
        ),
        None => {}
    }
    Ok(tenants.map(Arc::new))
}

/// The store named by `database.url` (migrations applied); with SQS, every
/// new job also gets an outbox row for the relay.
async fn connect_store(settings: &Settings, live: &Arc<Live>) -> Result<Store, StoreError> {
    let mut store = Store::connect(&settings.database.url)
        .await?
        .with_outbox(settings.queue.kind == QueueKind::Sqs);
    if settings.queue.kind == QueueKind::Database {
        // Jobs of operations with `batch:` wait for a batch, as the
        // mappings in force when each is enqueued say.
        let live = live.clone();
        store = store.with_batch_holds(Arc::new(move |service: &str, operation: &str| {
            let snapshot = live.snapshot();
            let plan = snapshot.mappings.plan(service, operation)?;
            plan.batch().map(|b| b.max_wait)
        }));
    }
    // The backend only: the URL may carry a password.
    tracing::info!(backend = ?store.backend(), "database connected");
    Ok(store)
}

/// The instance's model layer: over `model` when the caller brings one,
/// the in-process emulator with `emulator = true`, else Amazon Bedrock
/// through the standard AWS chain; recording through `recorder` when
/// given. Without AWS configuration the facade
/// still serves contracts; mapped calls then fault.
async fn model_layer(
    settings: &Settings,
    model: Option<Arc<dyn ModelClient>>,
    metrics: &Arc<Metrics>,
    recorder: Option<Recorder>,
) -> anyhow::Result<(Option<Arc<Models>>, Option<EmulatorHandle>)> {
    let layer = |client: Arc<dyn ModelClient>, bedrock: BedrockSettings| {
        let models = Models::with_metrics(client, bedrock.model_settings(), metrics.clone());
        Some(Arc::new(match recorder {
            Some(recorder) => models.with_recorder(recorder),
            None => models,
        }))
    };
    if let Some(client) = model {
        return Ok((layer(client, settings.bedrock.clone()), None));
    }
    if settings.emulator {
        let emulator = crate::emulator::spawn(None)
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
        return Ok((layer(Arc::new(client), bedrock), Some(emulator)));
    }
    match BedrockClient::from_env(&settings.bedrock).await {
        Ok(client) => {
            tracing::info!(
                region = client.region().unwrap_or("?"),
                "model calls go to Amazon Bedrock"
            );
            Ok((layer(Arc::new(client), settings.bedrock.clone()), None))
        }
        Err(e) => {
            tracing::warn!(error = %e, "no Bedrock client: mapped operations will fault until AWS is configured (or use --emulator)");
            Ok((None, None))
        }
    }
}

/// The batch-inference client: S3 and Bedrock's control plane from the
/// standard AWS chain and `[batch]`, or the in-process emulator's control
/// plane with `emulator = true` (and an S3 at `[batch] s3_endpoint_url`).
async fn batch_client(
    settings: &Settings,
    emulator: Option<&EmulatorHandle>,
) -> Option<Arc<dyn BatchClient>> {
    if settings.queue.kind != QueueKind::Database {
        return None;
    }
    let batching = || {
        load_set(settings)
            .map(|(_, mappings)| mappings.plans().any(|p| p.batch().is_some()))
            .unwrap_or(false)
    };
    if let Some(emulator) = emulator {
        let Some(s3) = &settings.batch.s3_endpoint_url else {
            if batching() {
                tracing::warn!(
                    "emulator mode without [batch] s3_endpoint_url: jobs of operations with batch: run on demand after their wait"
                );
            }
            return None;
        };
        return Some(Arc::new(BedrockBatch::for_endpoints(
            emulator.base_url(),
            s3,
        )));
    }
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(region) = &settings.bedrock.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    let sdk_config = loader.load().await;
    match BedrockBatch::from_sdk_config(
        &sdk_config,
        settings.bedrock.region.as_deref(),
        settings.batch.endpoint_url.as_deref(),
        settings.batch.s3_endpoint_url.as_deref(),
    ) {
        Ok(client) => Some(Arc::new(client)),
        Err(e) => {
            if batching() {
                tracing::warn!(error = %e, "no batch-inference client: jobs of operations with batch: run on demand after their wait");
            }
            None
        }
    }
}

/// A name for this process's `role` in leases and logs:
/// `host:pid:role:xxxx`.
fn process_name(role: &str) -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "soapgate".to_owned());
    format!(
        "{host}:{}:{role}:{:04x}",
        std::process::id(),
        fastrand::u16(..)
    )
}

/// A [`Shutdown`] triggered by Ctrl-C or SIGTERM.
pub fn shutdown_on_signals() -> Shutdown {
    let shutdown = Shutdown::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        signal().await;
        tracing::info!("shutting down");
        trigger.trigger();
    });
    shutdown
}

/// Ctrl-C or SIGTERM.
pub async fn signal() {
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
}
