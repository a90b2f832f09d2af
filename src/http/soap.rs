//! `POST /soap/{service}`: one SOAP call over HTTP. Reads the body under the
//! size cap, hands it to the pipeline, and writes the response envelope or
//! fault in the client's SOAP version and charset.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use axum::Extension;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tracing::Instrument;

use super::AppState;
use super::media::{ContentType, soap_action};
use crate::error::GatewayError;
use crate::jobs::call;
use crate::pipeline::{self, CallContext, Inbound, Outcome, Prepared, Reply};
use crate::soap::wsse::{self, WSSE_NS};
use crate::soap::{ErrorCode, SoapVersion, response};
use crate::tenants::{CallRecord, CallSource, Presented, Tenants, sha256_hex};
use crate::xml;

pub(crate) async fn post_call(
    State(state): State<AppState>,
    Path(service): Path<String>,
    headers: HeaderMap,
    // Present when the listener puts the peer's address in each request.
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    body: Body,
) -> Response {
    let started = Instant::now();
    let content_type = ContentType::from_headers(&headers).unwrap_or_default();
    let transport = content_type.soap_version();
    let mut ctx = CallContext::new(&service, transport);

    let mut outcome = Outcome::default();
    // The correlation id (the envelope's MessageID, else a generated one)
    // and the tenant are known once the envelope is read: recorded after
    // the call, once each (an exported span keeps every value recorded).
    // The call's own log lines name the correlation id themselves.
    let span = tracing::info_span!(
        "soap_call",
        service = %service,
        operation = tracing::field::Empty,
        correlation_id = tracing::field::Empty,
        tenant = tracing::field::Empty,
    );
    let mut seen = Seen::default();
    let result = call(
        &state,
        headers,
        peer.map(|Extension(ConnectInfo(addr))| addr.ip()),
        &content_type,
        body,
        &mut ctx,
        &mut outcome,
        &mut seen,
    )
    .instrument(span.clone())
    .await;
    if let Some(tenants) = &state.tenants {
        // Boxed, as every await of a call but the model's: the handler's
        // future is as large as its largest await, and it is held by every
        // call in flight.
        Box::pin(record(tenants, &state, &ctx, &outcome, &seen, &result)).await;
    }
    span.record("correlation_id", ctx.correlation_id.as_str());
    if let Some(operation) = &ctx.operation {
        span.record("operation", operation.as_str());
    }
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
                .map(|d| response::degraded_header(d.policy.as_str(), d.reason.as_str()))
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
        tenant = ctx.tenant.as_deref().unwrap_or("-"),
        model_calls = outcome.model_calls,
        model = outcome.model_label(),
        input_tokens = outcome.input_tokens,
        output_tokens = outcome.output_tokens,
        stop_reason = outcome.stop_reason_label(),
        degraded = %outcome.degraded.map_or_else(|| "-".to_string(), |d| d.to_string()),
        elapsed_ms,
        "soap call"
    );
    response
}

/// What the audit row needs from a call besides its context and outcome.
#[derive(Debug, Default)]
struct Seen {
    /// Hex SHA-256 of the body, once read.
    payload_sha256: Option<String>,
    /// The body, kept only when the audit trail keeps payloads.
    request: Option<String>,
    /// Who presented the credentials.
    principal: Option<String>,
    /// The job a queued call became.
    job_id: Option<String>,
}

/// The usage and audit rows of an HTTP call (tenants configured).
async fn record(
    tenants: &Tenants,
    state: &AppState,
    ctx: &CallContext,
    outcome: &Outcome,
    seen: &Seen,
    result: &Result<Reply, GatewayError>,
) {
    let (code, response) = match result {
        Ok(Reply::Payload(payload)) => {
            let text = tenants
                .audit_payloads()
                .then(|| payload.iter().map(xml::write_element).collect::<String>());
            let code = if seen.job_id.is_some() {
                "queued"
            } else {
                "ok"
            };
            (code, text)
        }
        Ok(Reply::Accepted) => ("accepted", None),
        Err(e) => (e.code().as_str(), None),
    };
    let call = CallRecord {
        tenant: ctx.tenant.as_deref(),
        principal: seen.principal.as_deref(),
        source: CallSource::Http,
        service: &ctx.service,
        operation: ctx.operation.as_deref(),
        correlation_id: &ctx.correlation_id,
        job_id: seen.job_id.as_deref(),
        outcome: code,
        payload_sha256: seen.payload_sha256.as_deref(),
        request: seen.request.as_deref(),
        response: response.as_deref(),
        attempts: &outcome.attempts,
    };
    tenants.record(state.store.as_ref(), &call).await;
}

/// The user and password of an `Authorization: Basic` header; a malformed
/// one is presented as an empty user (which no tenant has), so it fails
/// rather than being ignored.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    use base64::Engine as _;
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok());
    Some(match decoded.as_deref().and_then(|d| d.split_once(':')) {
        Some((user, password)) => (user.to_string(), password.to_string()),
        None => (String::new(), String::new()),
    })
}

/// Read, authenticate, dispatch and validate, authorise and admit: the
/// tenant checks sit between reading the envelope (where the
/// UsernameToken is) and dispatching it. `source` is the client's
/// address, when known: failed authentications are throttled by it too.
#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
async fn prepare_for_tenant(
    tenants: &Tenants,
    contracts: &crate::contract::ContractSet,
    headers: &HeaderMap,
    source: Option<IpAddr>,
    inbound: &Inbound<'_>,
    bytes: &[u8],
    limits: &xml::Limits,
    ctx: &mut CallContext,
    seen: &mut Seen,
) -> Result<Prepared, GatewayError> {
    let envelope = pipeline::read_envelope(contracts, inbound, bytes, limits, &[WSSE_NS], ctx)?;
    let token = wsse::username_token(&envelope.headers)
        .map_err(|e| GatewayError::Unauthenticated(format!("WS-Security header: {e}")))?;
    let basic = basic_credentials(headers);
    let api_key = headers
        .get(tenants.api_key_header())
        .and_then(|v| v.to_str().ok());
    let principal = tenants
        .authenticate(&Presented {
            token: token.as_ref(),
            basic: basic.as_ref().map(|(u, p)| (u.as_str(), p.as_str())),
            api_key,
            source,
        })
        .await?;
    seen.principal = Some(principal.who);
    ctx.tenant = Some(principal.tenant.clone());
    let prepared = pipeline::dispatch(contracts, inbound, envelope, ctx)?;
    let op = prepared.operation();
    tenants.authorize(
        &principal.tenant,
        &prepared.service().name,
        &op.name,
        op.result_of.as_deref(),
    )?;
    tenants.admit(&principal.tenant)?;
    Ok(prepared)
}

#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
async fn call(
    state: &AppState,
    headers: HeaderMap,
    source: Option<IpAddr>,
    content_type: &ContentType,
    body: Body,
    ctx: &mut CallContext,
    outcome: &mut Outcome,
    seen: &mut Seen,
) -> Result<Reply, GatewayError> {
    if content_type.soap_version().is_none() {
        return Err(GatewayError::UnsupportedMediaType(
            content_type.essence.clone(),
        ));
    }
    let action = match ctx.version {
        SoapVersion::V11 => soap_action(&headers),
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
        let bytes = read_body(&headers, body, state.settings.max_body_bytes).await?;
        match &state.tenants {
            None => pipeline::prepare(
                &snapshot.contracts,
                &inbound,
                &bytes,
                &state.settings.xml,
                ctx,
            )?,
            Some(tenants) => {
                seen.payload_sha256 = Some(sha256_hex(&bytes));
                if tenants.audit_payloads() {
                    seen.request = Some(String::from_utf8_lossy(&bytes).into_owned());
                }
                // Boxed: a password check waits here (see post_call).
                Box::pin(prepare_for_tenant(
                    tenants,
                    &snapshot.contracts,
                    &headers,
                    source,
                    &inbound,
                    &bytes,
                    &state.settings.xml,
                    ctx,
                    seen,
                ))
                .await?
            }
        }
    };
    // The header values are slices of the connection's first read buffer:
    // held, they would keep it alive while the model works, beside the
    // buffer the connection reads its next request into.
    drop(headers);
    let with = call::Services {
        mappings: &snapshot.mappings,
        model: state.model.as_deref(),
        store: state.store.as_ref(),
        tenants: state.tenants.as_deref(),
        waker: state.job_waker.as_deref(),
    };
    let answer = call::answer(prepared, with, ctx, outcome).await?;
    seen.job_id = answer.job.map(|id| id.to_string());
    Ok(answer.reply)
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
