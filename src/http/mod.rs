//! The HTTP edge: the axum router for `/soap/{service}` (calls, `?wsdl`,
//! `?xsd=`) and `/healthz`. The only module that knows HTTP: it turns
//! requests into [`crate::pipeline`] calls and results into responses.

mod media;
mod publish;
mod soap;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::config::Settings;
use crate::contract::ContractSet;
use crate::converse::ModelClient;
use crate::live::{Live, Sources};
use crate::mapping::MappingSet;
use crate::store::Store;
use crate::tenants::Tenants;

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The contracts being served; each call takes one snapshot.
    pub live: Arc<Live>,
    pub settings: Arc<Settings>,
    /// Where model calls go; `None` when no model is configured (calls to
    /// mapped operations then fault with MODEL_UNAVAILABLE).
    pub model: Option<Arc<dyn ModelClient>>,
    /// The job store async and one-way calls are queued in; `None`: they
    /// fault with QUEUE_UNAVAILABLE.
    pub store: Option<Store>,
    /// Notified after each new job, so an idle worker of this process
    /// claims it at once instead of at its next poll.
    pub job_waker: Option<Arc<tokio::sync::Notify>>,
    /// The configured tenants; `None`: calls are anonymous and unlimited.
    pub tenants: Option<Arc<Tenants>>,
}

impl AppState {
    /// State serving an already loaded set (the folders in `settings` are
    /// where a reload would look).
    pub fn new(contracts: ContractSet, mappings: MappingSet, settings: Settings) -> AppState {
        let sources = Sources {
            wsdl_dir: settings.wsdl_dir.clone(),
            mappings_dir: settings.mappings_dir.clone(),
        };
        AppState {
            live: Arc::new(Live::from_set(contracts, mappings, sources)),
            settings: Arc::new(settings),
            model: None,
            store: None,
            job_waker: None,
            tenants: None,
        }
    }

    /// The same state, sending model calls to `model`.
    pub fn with_model(mut self, model: Arc<dyn ModelClient>) -> AppState {
        self.model = Some(model);
        self
    }

    /// The same state, waking this process's workers after each enqueue.
    pub fn with_job_waker(mut self, waker: Arc<tokio::sync::Notify>) -> AppState {
        self.job_waker = Some(waker);
        self
    }

    /// The same state, authenticating, limiting and recording calls per
    /// tenant.
    pub fn with_tenants(mut self, tenants: Arc<Tenants>) -> AppState {
        self.tenants = Some(tenants);
        self
    }

    /// The same state, queueing async and one-way calls in `store`.
    pub fn with_store(mut self, store: Store) -> AppState {
        self.store = Some(store);
        self
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/soap/{service}",
            get(publish::get_service).post(soap::post_call),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(state)
}

/// Serve until `shutdown` completes, then finish in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
