//! The HTTP edge: the axum router for `/soap/{service}` (calls, `?wsdl`,
//! `?xsd=`), `/healthz`, `/readyz` and `/metrics` (`ops.rs`). The only module that knows HTTP: it turns
//! requests into [`crate::pipeline`] calls and results into responses.

mod budget;
mod media;
mod ops;
mod publish;
mod soap;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::header::CONNECTION;
use axum::http::{HeaderValue, StatusCode, Version};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use tokio::net::TcpListener;

pub(crate) use self::budget::ParseBudget;
use crate::config::Settings;
use crate::contract::ContractSet;
use crate::converse::ModelClient;
use crate::listen::{self, ConnLimits, ConnSettings, Tls};
use crate::live::Live;
use crate::mapping::MappingSet;
use crate::metrics::Metrics;
use crate::models::Models;
use crate::store::{Store, StoreSlot};
use crate::tenants::Tenants;

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The contracts being served; each call takes one snapshot.
    pub live: Arc<Live>,
    pub settings: Arc<Settings>,
    /// Where model calls go (clients per region, breakers, caches, the
    /// in-flight cap); `None` when no model is configured (calls to mapped
    /// operations then fault with MODEL_UNAVAILABLE).
    pub model: Option<Arc<Models>>,
    /// What `/metrics` shows; the model layer reports into the same one.
    pub metrics: Arc<Metrics>,
    /// The job store async and one-way calls are queued in; while it is
    /// empty (none configured, or not connected yet) they fault with
    /// QUEUE_UNAVAILABLE.
    pub store: StoreSlot,
    /// Notified after each new job, so an idle worker of this process
    /// claims it at once instead of at its next poll.
    pub job_waker: Option<Arc<tokio::sync::Notify>>,
    /// The configured tenants; `None`: calls are anonymous and unlimited.
    pub tenants: Option<Arc<Tenants>>,
    /// The bytes of large bodies being parsed now (`max_parsing_bytes`).
    pub(crate) parse_budget: Arc<ParseBudget>,
}

impl AppState {
    /// State serving an already loaded set (the folders in `settings` are
    /// where a reload would look).
    pub fn new(contracts: ContractSet, mappings: MappingSet, settings: Settings) -> AppState {
        let max_parsing_bytes = settings.max_parsing_bytes;
        AppState {
            live: Arc::new(Live::from_set(contracts, mappings, settings.sources())),
            settings: Arc::new(settings),
            model: None,
            metrics: Arc::new(Metrics::new()),
            store: StoreSlot::none(),
            job_waker: None,
            tenants: None,
            parse_budget: Arc::new(ParseBudget::new(max_parsing_bytes)),
        }
    }

    /// The same state, sending model calls to `model` (the client of the
    /// default region) through a model layer built from the settings.
    pub fn with_model(mut self, model: Arc<dyn ModelClient>) -> AppState {
        let models = Models::with_metrics(
            model,
            self.settings.bedrock.model_settings(),
            self.metrics.clone(),
        );
        self.model = Some(Arc::new(models));
        self
    }

    /// [`AppState::with_model`], handing the calls of operations that
    /// record (`record:`) to `recorder`.
    pub fn with_recorded_model(
        mut self,
        model: Arc<dyn ModelClient>,
        recorder: crate::record::Recorder,
    ) -> AppState {
        let models = Models::with_metrics(
            model,
            self.settings.bedrock.model_settings(),
            self.metrics.clone(),
        )
        .with_recorder(recorder);
        self.model = Some(Arc::new(models));
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
        self.store = StoreSlot::ready(store);
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
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .with_state(state)
        .layer(middleware::from_fn(close_after_early_answer))
}

/// Marks a response given without reading the whole request body (a call
/// refused before its body was read, such as `OVERLOADED` by its
/// Content-Length).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyUnread;

/// Answers given without reading the request body: no such path or
/// service (404), method (405), a body too large (413, by Content-Length or
/// part way through), of the wrong media type (415), or marked
/// [`BodyUnread`]. hyper closes an
/// HTTP/1.1 connection whose request body was not read once the response is
/// written; unless the response says so, a pooled client takes the
/// connection as kept alive and sends its next call into a closed socket.
/// `Connection: close` tells it, and hyper then closes the connection
/// itself. (HTTP/2 has no such header, and a stream ends alone.)
async fn close_after_early_answer(request: Request, next: Next) -> Response {
    let http1 = request.version() <= Version::HTTP_11;
    let mut response = next.run(request).await;
    let unread = response.extensions().get::<BodyUnread>().is_some()
        || matches!(
            response.status(),
            StatusCode::NOT_FOUND
                | StatusCode::METHOD_NOT_ALLOWED
                | StatusCode::PAYLOAD_TOO_LARGE
                | StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
    if http1 && unread {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Serve until `shutdown` completes, then finish in-flight requests. At
/// most `max_connections` connections at once, each closed when idle for
/// `idle_timeout_ms` or slow to send a request (`request_read_timeout_ms`).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, None, shutdown).await
}

/// [`serve`], over TLS when `tls` is given (the same limits apply; the
/// handshake is within them).
pub async fn serve_with(
    listener: TcpListener,
    state: AppState,
    tls: Option<Tls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let s = &state.settings;
    let settings = ConnSettings {
        max_head_bytes: s.max_header_bytes,
        // SOAP clients speak HTTP/1.1; an h2c client gets hyper's default.
        max_concurrent_streams: 200,
    };
    let limits = ConnLimits {
        max_connections: s.max_connections,
        idle_timeout: Some(Duration::from_millis(s.idle_timeout_ms)),
        request_read_timeout: Some(Duration::from_millis(s.request_read_timeout_ms)),
    };
    match tls {
        Some(tls) => {
            listen::serve_tls(listener, router(state), settings, limits, tls, shutdown).await
        }
        None => {
            listen::serve_with_limits(listener, router(state), settings, limits, shutdown).await
        }
    }
}
