//! Operations endpoints: `/readyz` (is this instance able to serve: the
//! database is connected and answers; each target's breaker state and the
//! shared tenant limits' Redis, for information) and
//! `/metrics` (Prometheus text exposition of [`crate::metrics`], with the
//! scrape-time gauges filled first).

use std::time::Duration;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::AppState;
use crate::store::SlotState;

/// How long a scrape or readiness check waits for the database.
const DB_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Serialize)]
struct Readiness {
    ready: bool,
    /// `ok`, `connecting` (not connected since start), `down` (connected
    /// once, not answering now) or `none` (no job store: sync calls only).
    database: &'static str,
    /// Why the database is `connecting` or `down`.
    #[serde(skip_serializing_if = "Option::is_none")]
    database_error: Option<String>,
    /// Target (`region/model`) to `closed`, `open` or `half_open`.
    breakers: std::collections::BTreeMap<String, &'static str>,
    /// Calls doing model work now, and the cap (`bedrock.max_in_flight`).
    model_calls_in_flight: usize,
    max_in_flight: usize,
    /// With `[cluster] redis_url`: whether Redis answers, and what decides
    /// each limit meanwhile (`shared`, `local` or `refuse`).
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<crate::tenants::ClusterHealth>,
}

/// 200 when the database answers (or none is configured), 503 while it is
/// connecting or down. Open breakers do not make the instance unready: every
/// instance calls the same models, so taking this one out of a load balancer
/// would not help, and fallbacks and failure policies still answer; they are
/// reported so an operator sees them. Nor does Redis (the shared tenant
/// limits): every instance shares it, and while it is away each limit
/// falls back as configured; its state is reported.
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    let (database, database_error) = match state.store.state() {
        SlotState::None => ("none", None),
        SlotState::Connecting(error) => ("connecting", error),
        SlotState::Connected => database_answers(&state).await,
    };
    let breakers = state
        .model
        .as_ref()
        .map(|m| {
            m.breaker_states()
                .into_iter()
                .map(|(target, s)| (target, s.as_str()))
                .collect()
        })
        .unwrap_or_default();
    let ready = matches!(database, "ok" | "none");
    let body = Readiness {
        ready,
        database,
        database_error,
        breakers,
        model_calls_in_flight: state.model.as_ref().map_or(0, |m| m.in_flight()),
        max_in_flight: state
            .model
            .as_ref()
            .map_or(0, |m| m.settings().max_in_flight),
        cluster: state.tenants.as_ref().and_then(|t| t.cluster_health()),
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

/// `ok`, or `down` with why, for a connected store.
async fn database_answers(state: &AppState) -> (&'static str, Option<String>) {
    let Some(store) = state.store.get() else {
        return ("none", None);
    };
    match tokio::time::timeout(DB_CHECK_TIMEOUT, store.ping()).await {
        Ok(Ok(())) => ("ok", None),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: the database does not answer");
            ("down", Some(e.to_string()))
        }
        Err(_) => {
            tracing::warn!("readiness: the database did not answer in time");
            (
                "down",
                Some(format!("no answer within {DB_CHECK_TIMEOUT:?}")),
            )
        }
    }
}

/// The metrics, in the OpenMetrics text format (which Prometheus reads).
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    if let Some(models) = &state.model {
        let breakers: Vec<(String, i64)> = models
            .breaker_states()
            .into_iter()
            .map(|(t, s)| (t, s.as_gauge()))
            .collect();
        state.metrics.set_model_state(&breakers, models.in_flight());
    }
    if let Some(store) = state.store.get() {
        match tokio::time::timeout(DB_CHECK_TIMEOUT, store.job_stats()).await {
            Ok(Ok(stats)) => state.metrics.set_jobs(&stats.by_status, stats.queue_depth),
            Ok(Err(e)) => tracing::warn!(error = %e, "metrics: reading job counts failed"),
            Err(_) => tracing::warn!("metrics: reading job counts timed out"),
        }
    }
    let mut response = state.metrics.render().into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}
