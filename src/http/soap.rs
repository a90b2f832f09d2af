//! `POST /soap/{service}`: one SOAP call over HTTP. Reads the body under the
//! size cap, hands it to the pipeline, and writes the response envelope or
//! fault in the client's SOAP version and charset.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Extension;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tracing::Instrument;

use super::AppState;
use super::budget::{Charge, ParseBudget};
use super::media::{ContentType, soap_action};
use crate::error::GatewayError;
use crate::jobs::call;
use crate::listen::ClientCertificate;
use crate::pipeline::{self, CallContext, Inbound, Outcome, Prepared, Reply};
use crate::soap::wsse::{self, WSSE_NS};
use crate::soap::{Envelope, ErrorCode, Fault, FaultCode, SoapVersion, response};
use crate::tenants::{CallRecord, CallSource, Presented, Tenants, sha256_hex};
use crate::xml;

pub(crate) async fn post_call(
    State(state): State<AppState>,
    Path(service): Path<String>,
    headers: HeaderMap,
    // Present when the listener puts the peer's address in each request.
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    // Present over TLS when the client presented a certificate.
    certificate: Option<Extension<ClientCertificate>>,
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
        certificate.as_ref().map(|Extension(c)| c.der()),
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
        Err(err) => {
            // A declared fault from the last-good store is marked as a
            // degraded response would be.
            let headers = outcome
                .degraded
                .filter(|_| matches!(err, GatewayError::Declared(_)))
                .map(|d| response::degraded_header(d.policy.as_str(), d.reason.as_str()))
                .into_iter()
                .collect();
            fault_response(&ctx, &err, headers)
        }
    };
    let mut response = response;
    if seen.body_unread {
        response.extensions_mut().insert(super::BodyUnread);
    }
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
    /// The body was refused before it was read, or not read to its end.
    body_unread: bool,
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
    let steps = outcome.steps_summary();
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
        hold: outcome.budget_hold.as_deref(),
        steps: steps.as_deref(),
    };
    tenants.record(state.store.get(), &call).await;
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
    certificate: Option<&[u8]>,
    inbound: &Inbound<'_>,
    envelope: Envelope,
    ctx: &mut CallContext,
    seen: &mut Seen,
) -> Result<Prepared, GatewayError> {
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
            certificate,
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
    tenants.admit(&principal.tenant).await?;
    Ok(prepared)
}

#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
async fn call(
    state: &AppState,
    headers: HeaderMap,
    source: Option<IpAddr>,
    certificate: Option<&[u8]>,
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
        // model works. A large body's charge on the parse budget lasts while
        // it is parsed (and, without tenants, validated: with them,
        // authentication comes between).
        let bytes = read_body(&headers, body, state).await.inspect_err(|_| {
            // Unread (or cut short): the connection cannot carry another call.
            seen.body_unread = true;
        })?;
        let charge = charge(&state.parse_budget, bytes.len())?;
        let owned = OwnedInbound::from(&inbound);
        match &state.tenants {
            None => {
                let snapshot = snapshot.clone();
                let settings = state.settings.clone();
                let mut call_ctx = ctx.clone();
                let (result, call_ctx) = off_runtime(bytes.len(), charge, move || {
                    let result = pipeline::prepare(
                        &snapshot.contracts,
                        &owned.inbound(),
                        &bytes,
                        &settings.xml,
                        &mut call_ctx,
                    );
                    (result, call_ctx)
                })
                .await?;
                *ctx = call_ctx;
                result?
            }
            Some(tenants) => {
                seen.payload_sha256 = Some(sha256_hex(&bytes));
                if tenants.audit_payloads() {
                    seen.request = Some(String::from_utf8_lossy(&bytes).into_owned());
                }
                let parsing = snapshot.clone();
                let settings = state.settings.clone();
                let mut call_ctx = ctx.clone();
                let (envelope, call_ctx) = off_runtime(bytes.len(), charge, move || {
                    let envelope = pipeline::read_envelope(
                        &parsing.contracts,
                        &owned.inbound(),
                        &bytes,
                        &settings.xml,
                        &[WSSE_NS],
                        &mut call_ctx,
                    );
                    (envelope, call_ctx)
                })
                .await?;
                *ctx = call_ctx;
                // Boxed: a password check waits here (see post_call).
                Box::pin(prepare_for_tenant(
                    tenants,
                    &snapshot.contracts,
                    &headers,
                    source,
                    certificate,
                    &inbound,
                    envelope?,
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
        model: state.model.as_ref(),
        store: state.store.get(),
        tenants: state.tenants.as_deref(),
        waker: state.job_waker.as_deref(),
    };
    let answer = call::answer(prepared, with, ctx, outcome).await?;
    seen.job_id = answer.job.map(|id| id.to_string());
    Ok(answer.reply)
}

/// Bodies smaller than this are parsed on the runtime's worker thread in
/// passing and are not counted against `max_parsing_bytes`; larger ones are
/// counted, and parsed and validated on tokio's blocking pool.
///
/// Measured on the release build (2 cores; CPU time of the facade per call
/// from /proc, less the 0.24 ms an ordinary small call costs in all):
/// reading and parsing take about 12 ns a byte for a pretty-printed
/// invoice (0.2 ms for 16 KiB), 40 ns for the densest markup (`<x/>` after
/// `<x/>`: 0.7 ms for 16 KiB) and 1 ns for text. Under 16 KiB a body thus
/// holds a worker for well under a millisecond, and the examples (2 to
/// 3 KB) for some tens of microseconds, about what the hop to the
/// blocking pool and back (a thread handoff each way) costs.
///
/// Why the blocking pool and not a CPU budget: now that the reader's work
/// is linear in the body (at most 10 MiB), a document of any shape is
/// answered in a fraction of a second, and a budget would only cut off
/// legitimate large bodies, after holding a worker just as long. What a
/// large parse must not do is hold a worker thread, which every other call
/// on it waits for (with two workers, two such bodies stalled the whole
/// facade). On the blocking pool the kernel shares the cores between the
/// parses and the workers, so ordinary calls are still served while large
/// ones are parsed (`bench/attack_xml.sh`: a median under 1 ms, as alone,
/// while two 9 MB bodies are refused), and `max_parsing_bytes` bounds how many are parsed at once.
const SMALL_BODY: usize = 16 * 1024;

fn parsing_full(budget: &ParseBudget, len: usize) -> GatewayError {
    tracing::info!(
        body_bytes = len,
        parsing_bytes = budget.used(),
        "parse budget full"
    );
    GatewayError::ParsingFull {
        retry_after: Duration::from_secs(1),
    }
}

/// A large body's charge, or `OVERLOADED` (with a retry hint) when the
/// parse budget has no room for it; small bodies are not charged.
fn charge(budget: &Arc<ParseBudget>, len: usize) -> Result<Option<Charge>, GatewayError> {
    if len < SMALL_BODY {
        return Ok(None);
    }
    match budget.try_charge(len) {
        Some(charge) => Ok(Some(charge)),
        None => Err(parsing_full(budget, len)),
    }
}

/// The body, refused before it is read when its Content-Length is larger
/// than `max_body_bytes` (413) or when it is a large body and the parse
/// budget has no room for it now (`OVERLOADED`: reading it would only
/// hold its bytes for nothing); chunked bodies are held to the size cap
/// while they arrive.
async fn read_body(
    headers: &HeaderMap,
    body: Body,
    state: &AppState,
) -> Result<Vec<u8>, GatewayError> {
    let limit = state.settings.max_body_bytes;
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(GatewayError::PayloadTooLarge { limit });
    }
    // Within the cap, so it fits a usize.
    if let Some(len) = declared.and_then(|n| usize::try_from(n).ok())
        && len >= SMALL_BODY
        && !state.parse_budget.has_room(len)
    {
        return Err(parsing_full(&state.parse_budget, len));
    }
    match Limited::new(body, limit).collect().await {
        // Without a copy when the body came in one piece.
        Ok(collected) => Ok(Vec::from(collected.to_bytes())),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(GatewayError::PayloadTooLarge { limit })
        }
        // Whatever else stops a body (the client hung up, the connection
        // was cut for reading too slowly, a malformed chunk) is the
        // transport's, never ours.
        Err(e) => Err(GatewayError::RequestIncomplete(e.to_string())),
    }
}

/// What the transport said about a call, owned, to go with its body to
/// the blocking pool.
struct OwnedInbound {
    charset: Option<String>,
    version: Option<SoapVersion>,
    action: Option<String>,
}

impl OwnedInbound {
    fn from(inbound: &Inbound<'_>) -> Self {
        OwnedInbound {
            charset: inbound.charset.map(str::to_string),
            version: inbound.version,
            action: inbound.action.map(str::to_string),
        }
    }

    fn inbound(&self) -> Inbound<'_> {
        Inbound {
            charset: self.charset.as_deref(),
            version: self.version,
            action: self.action.as_deref(),
        }
    }
}

/// Parse (and validate) a body of `len` bytes: in passing when it is small,
/// on tokio's blocking pool otherwise (see [`SMALL_BODY`]), holding its
/// `charge` until the work is done even if the call is abandoned meanwhile.
async fn off_runtime<T: Send + 'static>(
    len: usize,
    charge: Option<Charge>,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, GatewayError> {
    if len < SMALL_BODY {
        let done = work();
        drop(charge);
        return Ok(done);
    }
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let done = span.in_scope(work);
        drop(charge);
        done
    })
    .await
    .map_err(|e| GatewayError::Internal(format!("preparing the request: {e}")))
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

/// The HTTP status of a fault in `version`: a few codes have one of their
/// own; otherwise SOAP 1.2's Sender faults are 400 (SOAP 1.2 Part 2,
/// 7.5.1.2), and every other fault, SOAP 1.1's Client faults included
/// (SOAP 1.1, 6.2), is 500. A declared fault is Sender or Receiver as its
/// mapping says.
fn fault_status(fault: &Fault, version: SoapVersion) -> StatusCode {
    match fault.code {
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::UnknownService => StatusCode::NOT_FOUND,
        ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::RequestIncomplete => StatusCode::BAD_REQUEST,
        _ if version == SoapVersion::V12 && fault.fault_code() == FaultCode::Client => {
            StatusCode::BAD_REQUEST
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The fault's envelope, with `headers` (a declared fault's `sg:Degraded`)
/// besides the fault's own header blocks.
fn fault_response(ctx: &CallContext, err: &GatewayError, headers: Vec<xml::Element>) -> Response {
    let fault = err.to_fault(&ctx.correlation_id);
    let status = fault_status(&fault, ctx.version);
    match err {
        GatewayError::Internal(detail) => {
            tracing::error!(correlation_id = %ctx.correlation_id, service = %ctx.service, detail, "internal error");
        }
        // The mapping must be fixed: the operator's log names its line.
        GatewayError::Template(detail) => {
            tracing::error!(correlation_id = %ctx.correlation_id, service = %ctx.service, code = fault.code.as_str(), detail, "mapping template failed");
        }
        other => tracing::info!(
            correlation_id = %ctx.correlation_id,
            service = %ctx.service,
            code = fault.code.as_str(),
            detail = %other,
            "fault"
        ),
    }
    let envelope = if headers.is_empty() {
        fault.envelope(ctx.version)
    } else {
        let mut blocks = fault.header_blocks(ctx.version);
        blocks.extend(headers);
        response::envelope(ctx.version, blocks, vec![fault.to_element(ctx.version)])
    };
    soap_response(ctx, status, envelope)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;
    use crate::config::Settings;
    use crate::http::router;
    use crate::mapping::MappingSet;

    struct Disk;

    impl crate::contract::Files for Disk {
        fn read(&self, path: &Path) -> Result<Vec<u8>, String> {
            std::fs::read(path).map_err(|e| e.to_string())
        }
    }

    pub(super) fn state(max_parsing_bytes: usize) -> AppState {
        let wsdl = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/http/helpdesk.wsdl");
        let contracts = crate::contract::wsdl::load_all(&[wsdl.as_path()], &Disk)
            .expect("the fixture contract");
        let settings = Settings {
            max_parsing_bytes,
            ..Settings::default()
        };
        AppState::new(contracts, MappingSet::default(), settings)
    }

    const TRIAGE: &str = "<?xml version=\"1.0\"?><soap:Envelope \
        xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body>\
        <Triage xmlns=\"http://example.test/helpdesk\"><TicketId>1</TicketId>\
        <Subject>s</Subject><Body>b</Body></Triage></soap:Body></soap:Envelope>";

    /// The Triage call, padded with whitespace after the root to `len`.
    pub(super) fn body_of(len: usize) -> String {
        let mut body = TRIAGE.to_string();
        body.push_str(&" ".repeat(len.saturating_sub(body.len())));
        body
    }

    /// POST `body` with its Content-Length, or without one (as a chunked
    /// body arrives); the status and the answer's fault code.
    async fn post(state: &AppState, body: String, declared: bool) -> (StatusCode, String) {
        let mut request = Request::post("/soap/Helpdesk").header(CONTENT_TYPE, "text/xml");
        if declared {
            request = request.header(CONTENT_LENGTH, body.len());
        }
        let request = request.body(Body::from(body)).expect("a request");
        let response = router(state.clone())
            .oneshot(request)
            .await
            .expect("an answer");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("the answer's body");
        let text = String::from_utf8_lossy(&bytes);
        let code = text
            .split_once("<sg:Code>")
            .and_then(|(_, rest)| rest.split_once('<'))
            .map_or_else(|| text.to_string(), |(code, _)| code.to_string());
        if code == "OVERLOADED" {
            assert!(text.contains("RetryAfterSeconds"), "{text}");
        }
        (status, code)
    }

    fn used(state: &AppState) -> usize {
        state.parse_budget.used()
    }

    #[tokio::test]
    async fn large_bodies_are_overloaded_while_the_parse_budget_is_full() {
        let state = state(4 << 20);
        let large = body_of(200_000);
        let not_mapped = (StatusCode::INTERNAL_SERVER_ERROR, "NOT_MAPPED".to_string());
        let overloaded = (StatusCode::INTERNAL_SERVER_ERROR, "OVERLOADED".to_string());
        // With room, a large body is read, parsed and answered.
        assert_eq!(post(&state, large.clone(), true).await, not_mapped);
        assert_eq!(used(&state), 0, "given back");

        // Full: refused by its Content-Length before it is read, or once
        // it has arrived when it has none.
        let budget = &state.parse_budget;
        let full = budget.try_charge(4 << 20).expect("room");
        assert_eq!(post(&state, large.clone(), true).await, overloaded);
        assert_eq!(post(&state, large.clone(), false).await, overloaded);
        // An ordinary call is not counted and goes through.
        assert_eq!(post(&state, TRIAGE.to_string(), true).await, not_mapped);
        assert_eq!(post(&state, TRIAGE.to_string(), false).await, not_mapped);
        drop(full);

        // A large body counts at least 1 MiB: 3.5 MiB taken leave no room
        // for a 200 KB one.
        let most = budget.try_charge(7 << 19).expect("room");
        assert_eq!(post(&state, large.clone(), false).await, overloaded);
        drop(most);
        assert_eq!(post(&state, large, false).await, not_mapped);
        assert_eq!(used(&state), 0, "given back");
    }

    #[tokio::test]
    async fn a_body_larger_than_the_budget_is_parsed_alone() {
        let state = state(1 << 20);
        let huge = body_of(3 << 20);
        let not_mapped = (StatusCode::INTERNAL_SERVER_ERROR, "NOT_MAPPED".to_string());
        assert_eq!(post(&state, huge.clone(), true).await, not_mapped);
        let other = state.parse_budget.try_charge(SMALL_BODY).expect("room");
        assert_eq!(
            post(&state, huge, false).await,
            (StatusCode::INTERNAL_SERVER_ERROR, "OVERLOADED".to_string())
        );
        drop(other);
        assert_eq!(used(&state), 0);
    }
}

#[cfg(test)]
mod unread_tests {
    use axum::http::Request;
    use axum::http::header::CONNECTION;
    use tower::ServiceExt;

    use super::tests::{body_of, state};
    use super::*;
    use crate::http::router;

    /// A large body refused by its Content-Length before it is read says
    /// why in words of its own (not the model-call limit's) and closes the
    /// connection, which could not carry another call; one refused after
    /// it was read keeps the connection.
    #[tokio::test]
    async fn a_body_refused_unread_closes_the_connection_and_names_the_parse_budget() {
        let state = state(1 << 20);
        let full = state.parse_budget.try_charge(1 << 20).expect("room");
        let answer = |declared: bool| {
            let state = state.clone();
            async move {
                let body = body_of(200_000);
                let mut request = Request::post("/soap/Helpdesk").header(CONTENT_TYPE, "text/xml");
                if declared {
                    request = request.header(CONTENT_LENGTH, body.len());
                }
                let response = router(state)
                    .oneshot(request.body(Body::from(body)).expect("request"))
                    .await
                    .expect("an answer");
                let close = response.headers().get(CONNECTION).cloned();
                let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                    .await
                    .expect("body");
                (close, String::from_utf8_lossy(&bytes).into_owned())
            }
        };
        let (close, text) = answer(true).await;
        assert!(text.contains("OVERLOADED"), "{text}");
        assert!(
            text.contains("parsing as many large requests"),
            "the parse budget's own words: {text}"
        );
        assert!(!text.contains("model calls"), "{text}");
        assert_eq!(close.as_ref().and_then(|v| v.to_str().ok()), Some("close"));
        let (close, text) = answer(false).await;
        assert!(text.contains("OVERLOADED"), "{text}");
        assert_eq!(close, None, "read whole: the connection goes on");
        drop(full);
    }
}
