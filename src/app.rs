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

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::bedrock::{BedrockClient, BedrockSettings};
use crate::config::{QueueKind, Settings};
use crate::converse::ModelClient;
use crate::emulator::EmulatorHandle;
use crate::http::AppState;
use crate::jobs::sqs::{self, Consumer, SqsQueue};
use crate::jobs::{JobRunner, WorkerPool};
use crate::live::Live;
use crate::metrics::Metrics;
use crate::models::Models;
use crate::shutdown::Shutdown;
use crate::store::Store;
use crate::tenants::Tenants;

/// What the process serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// HTTP, and the job workers unless `worker.enabled` is false
    /// (`soapgate serve`).
    Serve,
    /// The job workers only (`soapgate worker`): no HTTP, and a store is
    /// required.
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
}

impl std::fmt::Debug for Parts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parts")
            .field("model", &self.model.is_some())
            .field("listener", &self.listener)
            .finish()
    }
}

/// A process, built and not yet running.
#[derive(Debug)]
pub struct App {
    state: AppState,
    listener: Option<TcpListener>,
    workers: Option<Workers>,
    emulator: Option<EmulatorHandle>,
}

/// The job workers of the configured queue, built and not yet running.
#[derive(Debug)]
enum Workers {
    /// `queue.kind = "database"`: the pool claims from the jobs table and
    /// takes in the polling table.
    Database { pool: WorkerPool, store: Store },
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
    /// the workers need, the SQS queue) is reported here, before anything
    /// runs.
    pub async fn build(settings: Settings, role: Role, parts: Parts) -> anyhow::Result<App> {
        let mut settings = settings;
        if role == Role::Worker {
            settings.worker.enabled = true;
        }
        let live = Arc::new(load_live(&settings)?);
        let tenants = tenants_of(&settings)?;
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
        let (models, emulator) = model_layer(&settings, parts.model, &metrics).await?;
        // Sync calls need no database: without one, async and one-way calls
        // fault with QUEUE_UNAVAILABLE and the rest serve. Workers do need
        // one: connecting again then says why it failed.
        let store = match connect_store(&settings).await {
            Ok(store) => Some(store),
            Err(e) if role == Role::Serve => {
                tracing::error!(error = %format!("{e:#}"), "no job store: async and one-way calls will fault with QUEUE_UNAVAILABLE");
                None
            }
            Err(e) => return Err(e),
        };
        let workers = if settings.worker.enabled {
            let store = match &store {
                Some(store) => store.clone(),
                None => connect_store(&settings).await?,
            };
            Some(Workers::build(&settings, &live, &models, store, &tenants).await?)
        } else {
            tracing::info!("job workers disabled in this process");
            None
        };
        let job_waker = workers.as_ref().and_then(Workers::waker);
        let state = AppState {
            live,
            settings: Arc::new(settings),
            model: models,
            metrics,
            store,
            job_waker,
            tenants,
        };
        Ok(App {
            state,
            listener,
            workers,
            emulator,
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
            workers,
            emulator,
        } = self;
        let watcher = tokio::spawn(state.live.clone().watch(shutdown.wait()));
        let workers = workers.map(|w| tokio::spawn(w.run(shutdown.clone())));
        let served = match listener {
            Some(listener) => {
                let addr = listener.local_addr()?;
                tracing::info!(%addr, "soapgate listening");
                crate::http::serve(listener, state, shutdown.wait())
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
        if let Some(emulator) = emulator {
            let _ = emulator.stop().await;
        }
        served.and(worked)
    }
}

impl Workers {
    async fn build(
        settings: &Settings,
        live: &Arc<Live>,
        models: &Option<Arc<Models>>,
        store: Store,
        tenants: &Option<Arc<Tenants>>,
    ) -> anyhow::Result<Workers> {
        if settings.queue.kind == QueueKind::Database {
            let pool = WorkerPool::new(
                store.clone(),
                live.clone(),
                models.clone(),
                settings.worker.clone(),
                settings.xml.clone(),
            )
            .with_tenants(tenants.clone());
            return Ok(Workers::Database { pool, store });
        }
        let queue = SqsQueue::from_env(&settings.queue.sqs)
            .await
            .context("queue.kind = \"sqs\"")?;
        tracing::info!(?queue, "SQS queue");
        let runner = JobRunner::new(
            store.clone(),
            live.clone(),
            models.clone(),
            settings.xml.clone(),
        )
        .with_tenants(tenants.clone());
        let consumer = Arc::new(Consumer::new(
            store.clone(),
            queue.clone(),
            Arc::new(runner),
            settings.xml.clone(),
        ));
        // The queue is the only way to a job: request rows become jobs with
        // outbox rows here, and nothing claims from the jobs table, so every
        // job gets its reply and its failures reach the DLQ.
        let intake = WorkerPool::intake_only(
            store.clone(),
            live.clone(),
            settings.worker.clone(),
            settings.xml.clone(),
        );
        Ok(Workers::Sqs {
            queue,
            consumer,
            intake,
            store,
        })
    }

    /// Notified by HTTP after each enqueue, so an idle worker of this
    /// process claims at once (the database queue only: SQS delivers).
    fn waker(&self) -> Option<Arc<Notify>> {
        match self {
            Workers::Database { pool, .. } => Some(pool.waker()),
            Workers::Sqs { .. } => None,
        }
    }

    /// Runs until `shutdown`; a pool that fails triggers it for the rest of
    /// the process.
    async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let result = match self {
            Workers::Database { pool, store } => {
                let result = pool.run(shutdown.wait()).await;
                store.close().await;
                result
            }
            Workers::Sqs {
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
                let result = intake.run(shutdown.wait()).await;
                inner.trigger();
                let _ = relay.await;
                let _ = consumers.await;
                store.close().await;
                result
            }
        };
        if let Err(e) = &result {
            tracing::error!(error = %e, "job workers stopped");
            shutdown.trigger();
        }
        result.context("job workers")
    }
}

/// The contracts and mappings of the settings' folders, or every error.
fn load_live(settings: &Settings) -> anyhow::Result<Live> {
    let sources = settings.sources();
    match sources.check_folders().and_then(|()| Live::load(sources)) {
        Ok(live) => {
            for (contract, service) in live.snapshot().contracts.services() {
                tracing::info!(
                    service = %service.name,
                    operations = service.operations.len(),
                    wsdl = %contract.path.display(),
                    "serving"
                );
            }
            Ok(live)
        }
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

/// The configured tenants, checked; `None` without `[[tenants]]`.
fn tenants_of(settings: &Settings) -> anyhow::Result<Option<Arc<Tenants>>> {
    let tenants = Tenants::from_settings(&settings.tenants, &settings.tenancy)
        .context("invalid [[tenants]] settings")?;
    if let Some(t) = &tenants {
        tracing::info!(tenants = ?t, "tenants configured: every call must authenticate");
    }
    Ok(tenants.map(Arc::new))
}

/// The store named by `database.url` (migrations applied); with SQS, every
/// new job also gets an outbox row for the relay.
async fn connect_store(settings: &Settings) -> anyhow::Result<Store> {
    let store = Store::connect(&settings.database.url)
        .await
        .context("connecting to the database")?
        .with_outbox(settings.queue.kind == QueueKind::Sqs);
    // The backend only: the URL may carry a password.
    tracing::info!(backend = ?store.backend(), "database connected");
    Ok(store)
}

/// The instance's model layer: over `model` when the caller brings one,
/// the in-process emulator with `emulator = true`, else Amazon Bedrock
/// through the standard AWS chain. Without AWS configuration the facade
/// still serves contracts; mapped calls then fault.
async fn model_layer(
    settings: &Settings,
    model: Option<Arc<dyn ModelClient>>,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<(Option<Arc<Models>>, Option<EmulatorHandle>)> {
    let layer = |client: Arc<dyn ModelClient>, bedrock: BedrockSettings| {
        Some(Arc::new(Models::with_metrics(
            client,
            bedrock.model_settings(),
            metrics.clone(),
        )))
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
