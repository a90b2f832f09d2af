//! Running one SOAP call, transport-agnostic: the HTTP handler (and, later,
//! the queue and polling-table workers) hand in bytes plus what their
//! transport said, and get back a payload or a [`GatewayError`].
//!
//! [`prepare`] reads, dispatches and validates; [`run`] executes the
//! operation. Between the two a caller can check auth or enqueue a job.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::backoff;
use crate::contract::{Contract, ContractSet, Operation, Service, validate_payload};
use crate::converse::{ModelError, Request, Response};
use crate::error::GatewayError;
use crate::mapping::{
    CallMeta, FailurePolicy, MappingSet, ModelTarget, OperationPlan, RenderError, RenderedCall,
};
use crate::models::{self, Models, cache};
use crate::soap::{Envelope, SoapVersion, parse_envelope_with};
use crate::xml::{self, Charset, Element, Limits};

/// What the transport knows about a call before its body is read.
#[derive(Debug, Clone, Copy, Default)]
pub struct Inbound<'a> {
    /// The `charset` parameter of the Content-Type, if any.
    pub charset: Option<&'a str>,
    /// The SOAP version the transport implies (the HTTP media type); `None`
    /// accepts either.
    pub version: Option<SoapVersion>,
    /// `SOAPAction` (1.1) or the `action` media-type parameter (1.2);
    /// `None` or empty when the client sent none.
    pub action: Option<&'a str>,
}

/// Facts about a call gathered while it is prepared, needed to answer it
/// even when preparation fails halfway: which version and charset to reply
/// in, and the correlation id.
#[derive(Debug, Clone)]
pub struct CallContext {
    pub version: SoapVersion,
    pub charset: Charset,
    pub correlation_id: String,
    pub service: String,
    pub operation: Option<String>,
    /// The authenticated tenant, when tenants are configured.
    pub tenant: Option<String>,
}

impl CallContext {
    pub fn new(service: &str, transport_version: Option<SoapVersion>) -> Self {
        CallContext {
            version: transport_version.unwrap_or(SoapVersion::V11),
            charset: Charset::Utf8,
            correlation_id: new_correlation_id(),
            service: service.to_string(),
            operation: None,
            tenant: None,
        }
    }
}

/// A generated correlation id, for calls without a WS-Addressing MessageID.
pub fn new_correlation_id() -> String {
    format!("urn:uuid:{}", uuid::Uuid::new_v4())
}

/// A call that is well-formed, dispatched to one operation and valid against
/// the schema. Holds the contract it was prepared against, so a reload
/// cannot change the operation under a call in flight.
#[derive(Debug)]
pub struct Prepared {
    pub contract: Arc<Contract>,
    service: usize,
    operation: usize,
    pub envelope: Envelope,
}

impl Prepared {
    pub fn service(&self) -> &Service {
        &self.contract.services[self.service]
    }

    pub fn operation(&self) -> &Operation {
        &self.service().operations[self.operation]
    }
}

/// Read, dispatch and validate a request. Fills `ctx` as facts become known.
pub fn prepare(
    contracts: &ContractSet,
    inbound: &Inbound<'_>,
    body: &[u8],
    limits: &Limits,
    ctx: &mut CallContext,
) -> Result<Prepared, GatewayError> {
    let envelope = read_envelope(contracts, inbound, body, limits, &[], ctx)?;
    dispatch(contracts, inbound, envelope, ctx)
}

/// The first half of [`prepare`]: read the body and split the envelope,
/// taking header blocks in the namespaces `understood` as processed by the
/// caller (who authenticates between the two halves).
pub fn read_envelope(
    contracts: &ContractSet,
    inbound: &Inbound<'_>,
    body: &[u8],
    limits: &Limits,
    understood: &[&str],
    ctx: &mut CallContext,
) -> Result<Envelope, GatewayError> {
    if contracts.service(&ctx.service).is_none() {
        return Err(GatewayError::UnknownService(ctx.service.clone()));
    }
    let doc = xml::read(body, inbound.charset, limits)?;
    ctx.charset = doc.charset;
    let envelope = parse_envelope_with(doc.root, understood)?;
    if let Some(id) = &envelope.message_id {
        ctx.correlation_id.clone_from(id);
        tracing::Span::current().record("correlation_id", id.as_str());
    }
    if let Some(transport) = inbound.version
        && transport != envelope.version
    {
        return Err(GatewayError::VersionMismatch {
            transport,
            envelope: envelope.version,
        });
    }
    ctx.version = envelope.version;
    Ok(envelope)
}

/// The second half of [`prepare`]: find the operation, check the action,
/// validate the payload.
pub fn dispatch(
    contracts: &ContractSet,
    inbound: &Inbound<'_>,
    envelope: Envelope,
    ctx: &mut CallContext,
) -> Result<Prepared, GatewayError> {
    let Some((contract, service)) = contracts.service(&ctx.service) else {
        return Err(GatewayError::UnknownService(ctx.service.clone()));
    };
    let payload = envelope.body.first().ok_or(GatewayError::EmptyBody)?;
    let operation = match service.operation_for(envelope.version, &payload.name) {
        Some(op) => op,
        None if service.knows_payload(&payload.name) => {
            let op = service
                .operations
                .iter()
                .find(|o| o.input.dispatch_name() == Some(&payload.name));
            return Err(GatewayError::NotOffered {
                operation: op.map(|o| o.name.clone()).unwrap_or_default(),
                version: envelope.version,
            });
        }
        None => {
            return Err(GatewayError::UnknownOperation {
                service: service.name.clone(),
                payload: payload.name.clone(),
            });
        }
    };
    ctx.operation = Some(operation.name.clone());
    check_action(
        service_actions(service, envelope.version),
        operation,
        envelope.version,
        inbound.action,
    )?;

    let violations = validate_payload(
        &contract.schemas,
        &operation.input,
        &envelope.body,
        &envelope.scope,
    );
    if !violations.is_empty() {
        return Err(GatewayError::Invalid(violations));
    }
    // Indices, not clones: `service` and `operation` borrow from `contract`.
    let service_ix = contract
        .services
        .iter()
        .position(|s| std::ptr::eq(s, service));
    let operation_ix = service
        .operations
        .iter()
        .position(|o| std::ptr::eq(o, operation));
    let (Some(service), Some(operation)) = (service_ix, operation_ix) else {
        return Err(GatewayError::Internal(
            "dispatched operation not found in its contract".into(),
        ));
    };
    Ok(Prepared {
        contract: contract.clone(),
        service,
        operation,
        envelope,
    })
}

/// The soapActions of every operation bound for `version`.
fn service_actions(service: &Service, version: SoapVersion) -> impl Iterator<Item = (&str, &str)> {
    service.operations.iter().filter_map(move |o| {
        let action = o.binding(version)?.soap_action.as_deref()?;
        Some((o.name.as_str(), action))
    })
}

/// A non-empty action must not name another operation than the payload's.
/// An action the contract does not know at all is refused too when the
/// operation declares one, since the client then targets something else.
fn check_action<'a>(
    mut all: impl Iterator<Item = (&'a str, &'a str)>,
    op: &Operation,
    version: SoapVersion,
    action: Option<&str>,
) -> Result<(), GatewayError> {
    let Some(action) = action.map(str::trim).filter(|a| !a.is_empty()) else {
        return Ok(());
    };
    let expected = op.binding(version).and_then(|b| b.soap_action.clone());
    let contradicts = match &expected {
        Some(exp) => exp != action,
        None => all.any(|(name, a)| a == action && name != op.name),
    };
    if contradicts {
        return Err(GatewayError::ActionMismatch {
            action: action.to_string(),
            operation: op.name.clone(),
            expected,
        });
    }
    Ok(())
}

/// What a successful call answers.
#[derive(Debug)]
pub enum Reply {
    /// The response payload: the Body's children.
    Payload(Vec<Element>),
    /// A one-way operation was accepted; nothing goes back but HTTP 202.
    Accepted,
}

/// What went into answering a call, for the log line and the response
/// headers.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    /// Model calls made (repairs and fallbacks included).
    pub model_calls: u32,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// The model id (target) whose answer was used, when one answered.
    pub model: Option<String>,
    /// Why the last model that answered stopped.
    pub stop_reason: Option<crate::converse::StopReason>,
    /// Why the answer is not the model's own, when it is not.
    pub degraded: Option<String>,
    /// Every model call made, in order: for usage records and metrics.
    pub attempts: Vec<Attempt>,
}

/// One model call: which target, what it cost, how it ended.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub model: String,
    pub region: Option<String>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub latency: std::time::Duration,
    /// `ok`, or the stable fault code of the error (e.g. `MODEL_THROTTLED`).
    pub result: &'static str,
}

impl Outcome {
    /// The model that answered, or `-`: for log lines.
    pub fn model_label(&self) -> &str {
        self.model.as_deref().unwrap_or("-")
    }

    /// Why the model that answered stopped, or `-`: for log lines.
    pub fn stop_reason_label(&self) -> &str {
        self.stop_reason.as_ref().map_or("-", |r| r.as_str())
    }
}

/// The `outcome` label of a finished call for `/metrics`: `ok`,
/// `degraded`, or the fault code.
pub fn outcome_label(outcome: &Outcome, fault: Option<&str>) -> String {
    match (fault, &outcome.degraded) {
        (Some(code), _) => code.to_string(),
        (None, Some(_)) => "degraded".to_string(),
        (None, None) => "ok".to_string(),
    }
}

/// Counts a finished call (HTTP or job) and the tokens its model calls
/// used, by tenant (`-` when none) and model.
pub fn record_metrics(
    metrics: &crate::metrics::Metrics,
    service: &str,
    operation: &str,
    tenant: Option<&str>,
    outcome_label: &str,
    outcome: &Outcome,
    elapsed: Duration,
) {
    metrics.request(service, operation, outcome_label, elapsed);
    for a in &outcome.attempts {
        if a.input_tokens + a.output_tokens > 0 {
            metrics.tokens(tenant, &a.model, a.input_tokens, a.output_tokens);
        }
    }
}

/// Execute a prepared call: render the Converse request from the mapping,
/// answer from the response cache when the operation has one, call the
/// model (the next target of the chain when one fails in a way another may
/// not), turn the answer into the response payload, repair invalid answers
/// by telling the model what was wrong, and apply the mapping's failure
/// policy when nothing valid comes back before the deadline.
pub async fn run(
    prepared: Prepared,
    mappings: &MappingSet,
    model: Option<&Models>,
    correlation_id: &str,
    outcome: &mut Outcome,
    tries: Tries,
) -> Result<Reply, GatewayError> {
    let Prepared {
        contract,
        service,
        operation,
        envelope,
    } = prepared;
    let service = &contract.services[service];
    let op = &service.operations[operation];
    let Some(plan) = mappings.plan(&service.name, &op.name) else {
        return Err(GatewayError::NotMapped {
            service: service.name.clone(),
            operation: op.name.clone(),
        });
    };
    let Some(models) = model else {
        return Err(GatewayError::Model(ModelError::Other {
            message: "no model client configured".into(),
        }));
    };
    let meta = CallMeta {
        service: &service.name,
        operation: &op.name,
        correlation_id,
    };
    let call = plan
        .render_request(&envelope.body, &meta)
        .map_err(|e| match e {
            RenderError::Input { .. } => GatewayError::BadInput(e.to_string()),
            RenderError::Template { .. } => GatewayError::Internal(e.to_string()),
        })?;
    // Memory per call in flight matters: the request tree is not needed
    // while the model thinks.
    drop(envelope);

    let policy = plan.call_policy();
    let one_way = op.is_one_way();
    // The response cache and the last-good store key on the whole request:
    // hash it once per call, and only for operations that use either.
    let remember_last_good = matches!(plan.on_failure(), FailurePolicy::Cache);
    let digest = (policy.cache_ttl.is_some() || remember_last_good)
        .then(|| cache::RequestDigest::of(&call.request));
    if let (Some(digest), Some(_), false) = (&digest, policy.cache_ttl, one_way) {
        for target in &call.targets {
            // Boxed, as every await here but the model's: the future of a
            // call is as large as its largest await, and is held while the
            // model works.
            if let Some(payload) = Box::pin(models.cache.get(&digest.key(Some(target)))).await {
                models.metrics().cache_lookup("hit");
                outcome.model = Some(target.model.clone());
                tracing::info!(correlation_id, model = %target.model, "answered from the response cache");
                return Ok(Reply::Payload(Arc::unwrap_or_clone(payload)));
            }
        }
        models.metrics().cache_lookup("miss");
    }

    // Held until the answer is in: the cap counts calls doing model work.
    let _permit = models.try_enter().map_err(|o| {
        models.metrics().overloaded();
        GatewayError::Overloaded {
            retry_after: o.retry_after,
        }
    })?;
    let settings = models.settings();
    let deadline = Instant::now() + policy.deadline.unwrap_or_else(|| settings.deadline());
    let chain = ChainPolicy {
        retry: policy.retry,
        attempts: settings.max_attempts.max(1),
        base: settings.initial_backoff(),
        cap: settings.max_backoff(),
        deadline,
    };
    let answered = tokio::time::timeout_at(
        deadline,
        answer(plan, &call, models, &chain, correlation_id, outcome),
    )
    .await
    .unwrap_or_else(|_| {
        tracing::warn!(correlation_id, "model work cut at the operation's deadline");
        Err(GatewayError::Model(deadline_passed()))
    });
    match answered {
        Ok(_) if one_way => Ok(Reply::Accepted),
        Ok((payload, target)) => {
            let payload = Arc::new(payload);
            if let Some(digest) = &digest {
                if let Some(ttl) = policy.cache_ttl {
                    let key = digest.key(Some(&target));
                    Box::pin(models.cache.put(key, payload.clone(), ttl)).await;
                }
                if remember_last_good {
                    Box::pin(
                        models
                            .cache
                            .put_last_good(digest.key(None), payload.clone()),
                    )
                    .await;
                }
            }
            Ok(Reply::Payload(Arc::unwrap_or_clone(payload)))
        }
        Err(GatewayError::Model(e)) if tries == Tries::MoreLeft && e.is_retryable() => {
            Err(GatewayError::Model(e))
        }
        Err(error) => {
            Box::pin(degrade(
                plan,
                models,
                digest.as_ref(),
                error,
                correlation_id,
                outcome,
            ))
            .await
        }
    }
}

/// Whether a call that fails now can still be tried again later; decides
/// when the mapping's failure policy answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tries {
    /// A SOAP call, or a job's last attempt: the failure policy answers now.
    Last,
    /// A job with attempts left: a retryable model failure is returned as
    /// is, so the job runs again later; the policy answers on its last try.
    MoreLeft,
}

/// The error of a call cut at its deadline.
fn deadline_passed() -> ModelError {
    ModelError::Timeout {
        message: "the operation's deadline passed".into(),
    }
}

/// The valid response payload (and the target that gave it), repairing
/// invalid answers up to the mapping's limit.
async fn answer(
    plan: &OperationPlan,
    call: &RenderedCall,
    models: &Models,
    chain: &ChainPolicy,
    correlation_id: &str,
    outcome: &mut Outcome,
) -> Result<(Vec<Element>, ModelTarget), GatewayError> {
    // The rendered request is sent as is; only a repair builds a new one.
    let mut repaired: Option<Request> = None;
    let mut repairs = 0;
    loop {
        let request = repaired.as_ref().unwrap_or(&call.request);
        let (response, target) = call_chain(
            models,
            &call.targets,
            request,
            chain,
            correlation_id,
            outcome,
        )
        .await?;
        let error = match plan.response_from(call, &response) {
            Ok(payload) => return Ok((payload, target.clone())),
            Err(e) => e,
        };
        tracing::warn!(correlation_id, error = %error, repairs, "model answer does not fit the response schema");
        if error.is_repairable() && repairs < plan.repair_attempts() {
            repairs += 1;
            let next = plan.repair_request(request, &response, &error);
            repaired = Some(next);
            continue;
        }
        return Err(GatewayError::InvalidModelOutput(
            error.violations().to_vec(),
        ));
    }
}

/// The mapping's failure policy, for model failures (every target failed,
/// the deadline passed, answers stayed invalid). Other errors pass.
async fn degrade(
    plan: &OperationPlan,
    models: &Models,
    digest: Option<&cache::RequestDigest>,
    error: GatewayError,
    correlation_id: &str,
    outcome: &mut Outcome,
) -> Result<Reply, GatewayError> {
    let code = match &error {
        GatewayError::Model(e) => e.fault_code(),
        GatewayError::InvalidModelOutput(_) => "INVALID_MODEL_OUTPUT",
        _ => return Err(error),
    };
    let (policy, payload) = match plan.on_failure() {
        FailurePolicy::Fault => return Err(error),
        FailurePolicy::Static(payload) => ("static", payload.clone()),
        FailurePolicy::Cache => match last_good(models, digest).await {
            Some(payload) => {
                models.metrics().cache_lookup("last_good");
                ("cache", Arc::unwrap_or_clone(payload))
            }
            None => return Err(error),
        },
    };
    tracing::warn!(correlation_id, policy, code, error = %error, "answering a degraded response");
    outcome.degraded = Some(format!("{policy}: {code}"));
    Ok(Reply::Payload(payload))
}

/// The last good answer to the request `digest` names (none without one).
async fn last_good(
    models: &Models,
    digest: Option<&cache::RequestDigest>,
) -> Option<Arc<Vec<Element>>> {
    match digest {
        Some(digest) => models.cache.last_good(&digest.key(None)).await,
        None => None,
    }
}

/// How the chain treats one request: our retries and the deadline.
#[derive(Debug, Clone, Copy)]
pub struct ChainPolicy {
    /// Retry errors the SDK does not retry ([`models::retried_by_us`]).
    pub retry: bool,
    /// Attempts per target for those errors (first call included).
    pub attempts: u32,
    /// Full-jitter backoff: base and cap.
    pub base: Duration,
    pub cap: Duration,
    /// No attempt starts at or after it; no backoff ends after it.
    pub deadline: Instant,
}

/// One request through the target chain: the first target that answers
/// wins. A target whose breaker is open is skipped without a call; errors
/// another target may not share (throttling after the SDK's retries, 5xx,
/// timeouts) move on; a refused request or denied access stops at once.
/// Errors the SDK does not retry are retried here first, on the same
/// target, with full jitter, while the policy and the deadline allow.
pub async fn call_chain<'t>(
    models: &Models,
    targets: &'t [ModelTarget],
    request: &Request,
    policy: &ChainPolicy,
    correlation_id: &str,
    outcome: &mut Outcome,
) -> Result<(Response, &'t ModelTarget), GatewayError> {
    let metrics = models.metrics().clone();
    let mut last = None;
    for target in targets {
        let label = models::target_label(target);
        let Ok(permit) = models.breaker(target).try_acquire() else {
            tracing::warn!(correlation_id, target = %label, "circuit open: target skipped");
            metrics.fallback(&label);
            last.get_or_insert(ModelError::ServiceUnavailable {
                message: format!("circuit breaker of {label} is open"),
            });
            continue;
        };
        let client = models.client(target.region.as_deref());
        let region = models.region_of(target);
        let mut tries = 0u32;
        let error = loop {
            if Instant::now() >= policy.deadline {
                return Err(GatewayError::Model(deadline_passed()));
            }
            tries += 1;
            outcome.model_calls += 1;
            let started = Instant::now();
            // Cut here rather than only by the caller's timeout, so a
            // target that never answers is recorded (attempt, breaker).
            let answer =
                tokio::time::timeout_at(policy.deadline, client.converse(&target.model, request))
                    .await
                    .unwrap_or_else(|_| Err(deadline_passed()));
            let latency = started.elapsed();
            let result = match &answer {
                Ok(_) => "ok",
                Err(e) => e.fault_code(),
            };
            metrics.attempt(&label, result, latency);
            outcome.attempts.push(Attempt {
                model: target.model.clone(),
                region: region.clone(),
                input_tokens: answer
                    .as_ref()
                    .map_or(0, |r| u64::from(r.usage.input_tokens)),
                output_tokens: answer
                    .as_ref()
                    .map_or(0, |r| u64::from(r.usage.output_tokens)),
                latency,
                result,
            });
            let e = match answer {
                Ok(response) => {
                    permit.success();
                    let (input, output) =
                        (response.usage.input_tokens, response.usage.output_tokens);
                    outcome.input_tokens += u64::from(input);
                    outcome.output_tokens += u64::from(output);
                    outcome.model = Some(target.model.clone());
                    outcome.stop_reason = Some(response.stop_reason.clone());
                    // Per call, the "soap call" and "job" lines say which
                    // model answered, its usage and stop reason.
                    tracing::debug!(
                        correlation_id,
                        model = %target.model,
                        input_tokens = input,
                        output_tokens = output,
                        stop_reason = ?response.stop_reason,
                        "model answered"
                    );
                    return Ok((response, target));
                }
                Err(e) => e,
            };
            tracing::warn!(correlation_id, model = %target.model, error = %e, tries, "model call failed");
            if !(policy.retry && models::retried_by_us(&e) && tries < policy.attempts) {
                break e;
            }
            let wait = backoff::full_jitter(tries, policy.base, policy.cap);
            if Instant::now() + wait >= policy.deadline {
                break e;
            }
            tokio::time::sleep(wait).await;
        };
        if models::counts_against_target(&error) {
            permit.failure();
        } else {
            permit.neutral();
        }
        let next = error.is_retryable();
        last = Some(error);
        if !next {
            break;
        }
        metrics.fallback(&label);
    }
    Err(GatewayError::Model(last.unwrap_or(ModelError::Other {
        message: "no model targets".into(),
    })))
}

#[cfg(test)]
mod tests {
    //! The chain's timing with a fake client and paused time: our backoff,
    //! the deadline, breakers skipping targets and probes closing them.

    use std::sync::Mutex;

    use super::*;
    use crate::converse::{BoxFuture, ModelClient};
    use crate::models::{BreakerSettings, BreakerState, ModelSettings};

    /// How the fake answers the `n`th call (1-based) to a model.
    type Behaviour = fn(&str, usize) -> Result<(), ModelError>;

    #[derive(Debug)]
    struct Fake {
        calls: Mutex<Vec<(String, Instant)>>,
        behave: Behaviour,
    }

    impl Fake {
        fn new(behave: Behaviour) -> Arc<Fake> {
            Arc::new(Fake {
                calls: Mutex::new(Vec::new()),
                behave,
            })
        }

        fn times(&self, model: &str) -> Vec<Instant> {
            let calls = self.calls.lock().unwrap();
            calls
                .iter()
                .filter(|(m, _)| m == model)
                .map(|(_, t)| *t)
                .collect()
        }
    }

    fn answer() -> Response {
        serde_json::from_value(serde_json::json!({
            "output": {"message": {"role": "assistant", "content": [{"text": "hi"}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 3, "outputTokens": 2, "totalTokens": 5}
        }))
        .unwrap()
    }

    impl ModelClient for Fake {
        fn converse<'a>(
            &'a self,
            model_id: &'a str,
            _request: &'a Request,
        ) -> BoxFuture<'a, Result<Response, ModelError>> {
            Box::pin(async move {
                let n = {
                    let mut calls = self.calls.lock().unwrap();
                    calls.push((model_id.to_string(), Instant::now()));
                    calls.iter().filter(|(m, _)| m == model_id).count()
                };
                // A model call takes a moment.
                tokio::time::sleep(Duration::from_millis(10)).await;
                (self.behave)(model_id, n).map(|()| answer())
            })
        }
    }

    fn models(fake: &Arc<Fake>, breaker: BreakerSettings) -> Models {
        let settings = ModelSettings {
            breaker,
            ..ModelSettings::default()
        };
        Models::new(fake.clone(), settings)
    }

    fn targets(ids: &[&str]) -> Vec<ModelTarget> {
        ids.iter()
            .map(|m| ModelTarget {
                model: (*m).to_string(),
                region: None,
            })
            .collect()
    }

    fn policy(attempts: u32, within: Duration) -> ChainPolicy {
        ChainPolicy {
            retry: true,
            attempts,
            base: Duration::from_secs(1),
            cap: Duration::from_secs(4),
            deadline: Instant::now() + within,
        }
    }

    fn failed() -> ModelError {
        ModelError::ModelFailed {
            message: "boom".into(),
            original_status_code: None,
        }
    }

    async fn chain(
        models: &Models,
        targets: &[ModelTarget],
        policy: &ChainPolicy,
    ) -> (Result<String, GatewayError>, Outcome) {
        let mut outcome = Outcome::default();
        let request = Request::user_text("x");
        let result = call_chain(models, targets, &request, policy, "c", &mut outcome)
            .await
            .map(|(_, t)| t.model.clone());
        (result, outcome)
    }

    #[tokio::test(start_paused = true)]
    async fn errors_the_sdk_leaves_alone_are_retried_with_capped_full_jitter() {
        let fake = Fake::new(|_, n| if n <= 3 { Err(failed()) } else { Ok(()) });
        let models = models(&fake, BreakerSettings::default());
        let (result, outcome) = chain(
            &models,
            &targets(&["a"]),
            &policy(4, Duration::from_secs(60)),
        )
        .await;
        assert_eq!(result.unwrap(), "a");
        let times = fake.times("a");
        assert_eq!(times.len(), 4);
        // Waits after the 1st, 2nd, 3rd failure: at most 1 s, 2 s, 4 s
        // (plus the 10 ms call).
        for (i, ceiling) in [1u64, 2, 4].into_iter().enumerate() {
            let gap = times[i + 1] - times[i];
            assert!(
                gap <= Duration::from_millis(ceiling * 1000 + 10),
                "retry {}: {gap:?}",
                i + 1
            );
        }
        let results: Vec<&str> = outcome.attempts.iter().map(|a| a.result).collect();
        assert_eq!(results, ["MODEL_ERROR", "MODEL_ERROR", "MODEL_ERROR", "ok"]);
        assert_eq!(outcome.input_tokens, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn no_attempt_starts_past_the_deadline() {
        let fake = Fake::new(|_, _| {
            Err(ModelError::ModelTimeout {
                message: "slow".into(),
            })
        });
        let models = models(&fake, BreakerSettings::default());
        let policy = policy(1_000, Duration::from_secs(10));
        let started = Instant::now();
        let (result, _) = chain(&models, &targets(&["a"]), &policy).await;
        let err = result.unwrap_err();
        assert_eq!(err.code().as_str(), "MODEL_TIMEOUT");
        let times = fake.times("a");
        assert!(times.len() > 2, "{} calls", times.len());
        assert!(times.iter().all(|t| *t < policy.deadline));
        assert!(Instant::now() <= policy.deadline, "no wait ends past it");
        assert!(started.elapsed() <= Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_target_that_never_answers_is_cut_at_the_deadline_and_counts_as_failed() {
        let breaker = BreakerSettings {
            window: 1,
            min_calls: 1,
            ..BreakerSettings::default()
        };
        let hanging = Arc::new(Hanging);
        let models = Models::new(
            hanging,
            ModelSettings {
                breaker,
                ..ModelSettings::default()
            },
        );
        let policy = policy(3, Duration::from_secs(7));
        let started = Instant::now();
        let (result, outcome) = chain(&models, &targets(&["hang"]), &policy).await;
        assert_eq!(result.unwrap_err().code().as_str(), "MODEL_TIMEOUT");
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(7),
            "at the deadline, not later"
        );
        assert_eq!(outcome.attempts.len(), 1);
        assert_eq!(outcome.attempts[0].result, "MODEL_TIMEOUT");
        assert_eq!(
            models.breaker(&targets(&["hang"])[0]).state(),
            BreakerState::Open,
            "the hang counted against the target"
        );
    }

    /// A client whose calls never end.
    #[derive(Debug)]
    struct Hanging;

    impl ModelClient for Hanging {
        fn converse<'a>(
            &'a self,
            _: &'a str,
            _: &'a Request,
        ) -> BoxFuture<'a, Result<Response, ModelError>> {
            Box::pin(std::future::pending())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn without_retry_the_chain_moves_on_at_once() {
        let fake = Fake::new(|m, _| if m == "a" { Err(failed()) } else { Ok(()) });
        let models = models(&fake, BreakerSettings::default());
        let mut policy = policy(5, Duration::from_secs(60));
        policy.retry = false;
        let (result, outcome) = chain(&models, &targets(&["a", "b"]), &policy).await;
        assert_eq!(result.unwrap(), "b");
        assert_eq!((fake.times("a").len(), fake.times("b").len()), (1, 1));
        assert_eq!(outcome.model_calls, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn refused_and_denied_requests_stop_the_chain() {
        let fake = Fake::new(|m, _| {
            if m == "a" {
                Err(ModelError::AccessDenied {
                    message: "no".into(),
                })
            } else {
                Ok(())
            }
        });
        let models = models(&fake, BreakerSettings::default());
        let (result, _) = chain(
            &models,
            &targets(&["a", "b"]),
            &policy(3, Duration::from_secs(60)),
        )
        .await;
        assert_eq!(result.unwrap_err().code().as_str(), "MODEL_ACCESS_DENIED");
        assert_eq!(fake.times("b").len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_breaker_skips_its_target_and_probes_close_it() {
        // "a" has a 5xx storm for its first 4 calls, then recovers.
        let fake = Fake::new(|m, n| {
            if m == "a" && n <= 4 {
                Err(ModelError::InternalServer {
                    message: "down".into(),
                })
            } else {
                Ok(())
            }
        });
        let breaker = BreakerSettings {
            window: 4,
            min_calls: 4,
            failure_rate_percent: 50,
            open_ms: 30_000,
            half_open_probes: 2,
        };
        let models = models(&fake, breaker);
        let chain_targets = targets(&["a", "b"]);
        let run = || async {
            let (result, _) =
                chain(&models, &chain_targets, &policy(1, Duration::from_secs(60))).await;
            result.unwrap()
        };
        for _ in 0..4 {
            assert_eq!(run().await, "b");
        }
        assert_eq!(
            models.breaker(&chain_targets[0]).state(),
            BreakerState::Open
        );
        for _ in 0..3 {
            assert_eq!(run().await, "b");
        }
        assert_eq!(fake.times("a").len(), 4, "not touched while open");
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(run().await, "a", "first probe");
        assert_eq!(
            models.breaker(&chain_targets[0]).state(),
            BreakerState::HalfOpen
        );
        assert_eq!(run().await, "a", "second probe");
        assert_eq!(
            models.breaker(&chain_targets[0]).state(),
            BreakerState::Closed
        );
        assert_eq!((fake.times("a").len(), fake.times("b").len()), (6, 7));
    }

    #[tokio::test(start_paused = true)]
    async fn when_every_breaker_is_open_the_call_fails_at_once_as_unavailable() {
        let fake = Fake::new(|_, _| {
            Err(ModelError::ServiceUnavailable {
                message: "down".into(),
            })
        });
        let breaker = BreakerSettings {
            window: 2,
            min_calls: 2,
            failure_rate_percent: 50,
            open_ms: 30_000,
            half_open_probes: 1,
        };
        let models = models(&fake, breaker);
        let t = targets(&["a"]);
        for _ in 0..2 {
            let _ = chain(&models, &t, &policy(1, Duration::from_secs(60))).await;
        }
        let started = Instant::now();
        let (result, outcome) = chain(&models, &t, &policy(1, Duration::from_secs(60))).await;
        assert_eq!(result.unwrap_err().code().as_str(), "MODEL_UNAVAILABLE");
        assert_eq!(outcome.model_calls, 0);
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}
