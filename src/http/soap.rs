//! `POST /soap/{service}`: one SOAP call over HTTP. Reads the body under the
//! size cap, hands it to the pipeline, and writes the response envelope or
//! fault in the client's SOAP version and charset.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tracing::Instrument;

use super::AppState;
use super::media::{ContentType, soap_action};
use crate::error::GatewayError;
use crate::pipeline::{self, CallContext, Inbound, Outcome, Reply};
use crate::soap::{ErrorCode, SoapVersion, response};
use crate::store::JobSource;
use crate::tickets;
use crate::xml;

pub(crate) async fn post_call(
    State(state): State<AppState>,
    Path(service): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let content_type = ContentType::from_headers(&headers).unwrap_or_default();
    let transport = content_type.soap_version();
    let mut ctx = CallContext::new(&service, transport);

    let mut outcome = Outcome::default();
    // The correlation id is recorded as soon as it is known (the
    // envelope's MessageID, else the generated one); the tenant once
    // authenticated.
    let span = tracing::info_span!(
        "soap_call",
        service = %service,
        correlation_id = %ctx.correlation_id,
        tenant = tracing::field::Empty,
    );
    let result = call(
        &state,
        &headers,
        &content_type,
        body,
        &mut ctx,
        &mut outcome,
    )
    .instrument(span.clone())
    .await;
    if let Some(tenant) = &ctx.tenant {
        span.record("tenant", tenant.as_str());
    }
    let _entered = span.enter();
    let label = pipeline::outcome_label(&outcome, result.as_ref().err().map(|e| e.code().as_str()));
    pipeline::record_metrics(
        &state.metrics,
        &ctx.service,
        ctx.operation.as_deref().unwrap_or("-"),
        ctx.tenant.as_deref(),
        &label,
        &outcome,
        started.elapsed(),
    );
    let response = match result {
        Ok(Reply::Payload(payload)) => {
            let headers = outcome
                .degraded
                .as_deref()
                .map(response::degraded_header)
                .into_iter()
                .collect();
            soap_response(
                &ctx,
                StatusCode::OK,
                response::envelope(ctx.version, headers, payload),
            )
        }
        Ok(Reply::Accepted) => {
            // The job's result row in soapgate_results is keyed by it.
            let mut response = StatusCode::ACCEPTED.into_response();
            if let Ok(v) = HeaderValue::from_str(&ctx.correlation_id) {
                response.headers_mut().insert("x-correlation-id", v);
            }
            response
        }
        Err(err) => fault_response(&ctx, &err),
    };
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(
        correlation_id = %ctx.correlation_id,
        service = %ctx.service,
        operation = ctx.operation.as_deref().unwrap_or("-"),
        status = response.status().as_u16(),
        model_calls = outcome.model_calls,
        input_tokens = outcome.input_tokens,
        output_tokens = outcome.output_tokens,
        degraded = outcome.degraded.as_deref().unwrap_or("-"),
        elapsed_ms,
        "soap call"
    );
    response
}

async fn call(
    state: &AppState,
    headers: &HeaderMap,
    content_type: &ContentType,
    body: Body,
    ctx: &mut CallContext,
    outcome: &mut Outcome,
) -> Result<Reply, GatewayError> {
    if content_type.soap_version().is_none() {
        return Err(GatewayError::UnsupportedMediaType(
            content_type.essence.clone(),
        ));
    }
    let action = match ctx.version {
        SoapVersion::V11 => soap_action(headers),
        SoapVersion::V12 => content_type.action.clone(),
    };
    let inbound = Inbound {
        charset: content_type.charset.as_deref(),
        version: content_type.soap_version(),
        action: action.as_deref(),
    };
    let snapshot = state.live.snapshot();
    let prepared = {
        // The raw body is dropped once parsed: it is not needed while the
        // model works.
        let bytes = read_body(headers, body, state.settings.max_body_bytes).await?;
        pipeline::prepare(
            &snapshot.contracts,
            &inbound,
            &bytes,
            &state.settings.xml,
            ctx,
        )?
    };
    let operation = prepared.operation();
    if let Some(of) = operation.result_of.clone() {
        let payload = tickets::poll(&prepared, &of, state.store.as_ref()).await?;
        return Ok(Reply::Payload(vec![payload]));
    }
    if operation.is_ticketed() || operation.is_one_way() {
        // Queued, never run here: a worker runs the job.
        let service = &prepared.service().name;
        let Some(plan) = snapshot.mappings.plan(service, &operation.name) else {
            return Err(GatewayError::NotMapped {
                service: service.clone(),
                operation: operation.name.clone(),
            });
        };
        let source = if operation.is_one_way() {
            JobSource::OneWay
        } else {
            JobSource::Api
        };
        let job = tickets::submit(
            &prepared,
            plan,
            state.store.as_ref(),
            &ctx.correlation_id,
            source,
        )
        .await?;
        if let Some(waker) = &state.job_waker {
            waker.notify_one();
        }
        tracing::info!(
            correlation_id = %ctx.correlation_id,
            job_id = %job.id,
            status = job.status.as_str(),
            "job queued"
        );
        if operation.is_one_way() {
            return Ok(Reply::Accepted);
        }
        return Ok(Reply::Payload(vec![tickets::ticket_payload(
            &operation.name,
            &job,
        )]));
    }
    let model = state.model.as_deref();
    pipeline::run(
        prepared,
        &snapshot.mappings,
        model,
        &ctx.correlation_id,
        outcome,
    )
    .await
}

/// The body, refused before parsing when it is larger than `limit` — by
/// Content-Length when the client sent one, while streaming otherwise
/// (chunked bodies).
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Vec<u8>, GatewayError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(GatewayError::PayloadTooLarge { limit });
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes().to_vec()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(GatewayError::PayloadTooLarge { limit })
        }
        Err(e) => Err(GatewayError::Internal(format!("reading request body: {e}"))),
    }
}

fn soap_response(ctx: &CallContext, status: StatusCode, envelope: xml::Element) -> Response {
    let bytes = xml::write_document(&envelope, ctx.charset);
    let content_type = format!(
        "{}; charset={}",
        ctx.version.media_type(),
        ctx.charset.label()
    );
    let mut response = (status, bytes).into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&content_type) {
        headers.insert(CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&ctx.correlation_id) {
        headers.insert("x-correlation-id", v);
    }
    response
}

fn fault_response(ctx: &CallContext, err: &GatewayError) -> Response {
    let fault = err.to_fault(&ctx.correlation_id);
    let status = match fault.code {
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::UnknownService => StatusCode::NOT_FOUND,
        ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    match err {
        GatewayError::Internal(detail) => {
            tracing::error!(correlation_id = %ctx.correlation_id, service = %ctx.service, detail, "internal error");
        }
        other => tracing::info!(
            correlation_id = %ctx.correlation_id,
            service = %ctx.service,
            code = fault.code.as_str(),
            detail = %other,
            "fault"
        ),
    }
    let envelope = response::envelope(ctx.version, Vec::new(), vec![fault.to_element(ctx.version)]);
    soap_response(ctx, status, envelope)
}
