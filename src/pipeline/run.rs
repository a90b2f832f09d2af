//! The second half of a call: render the Converse request, answer from the
//! cache, call the target chain under the operation's deadline, repair
//! invalid answers, and apply the failure policy. A valid answer is the
//! response or one of the operation's declared faults; the fault ends the
//! call as [`GatewayError::Declared`], cached like a response. The call is
//! served by the operation's own plan or the variant chosen for it; a call
//! sampled for the shadow variant starts it in the background once its own
//! answer is in (`shadow.rs`).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::chain::{ChainPolicy, call_chain};
use super::outcome::{Attempt, AttemptEnd, Degraded, DegradedBy, Outcome, Reply};
use super::prepare::Prepared;
use super::shadow::Shadow;
use crate::converse::{ModelError, Request, Response};
use crate::error::GatewayError;
use crate::mapping::{
    Answer, CallMeta, FailurePolicy, MappingSet, ModelTarget, OperationPlan, RenderError,
    RenderedCall,
};
use crate::metrics::CacheLookup;
use crate::models::{Models, cache};
use crate::record::{Capture, Ended};

/// Execute a prepared call: render the Converse request from the mapping,
/// answer from the response cache when the operation has one, call the
/// model (the next target of the chain when one fails in a way another may
/// not), turn the answer into the response payload, repair invalid answers
/// by telling the model what was wrong, and apply the mapping's failure
/// policy when nothing valid comes back before the deadline.
///
/// A call of an operation that records (`record:`) and is picked by its
/// sample is handed to the recorder once answered, whatever the answer.
pub async fn run(
    prepared: Prepared,
    mappings: &MappingSet,
    model: Option<&Arc<Models>>,
    correlation_id: &str,
    outcome: &mut Outcome,
    tries: Tries,
) -> Result<Reply, GatewayError> {
    let started = Instant::now();
    let mut capture = None;
    let result = execute(
        prepared,
        mappings,
        model,
        correlation_id,
        outcome,
        tries,
        &mut capture,
    )
    .await;
    // A job with tries left records its last try only.
    let retried = matches!(&result, Err(GatewayError::Model(e)) if tries == Tries::MoreLeft && e.is_retryable());
    if let Some(capture) = capture.filter(|_| !retried) {
        capture.finish(ended(&result, outcome, started.elapsed()));
    }
    result
}

/// How the call ended, as a recording keeps it.
fn ended(result: &Result<Reply, GatewayError>, outcome: &Outcome, latency: Duration) -> Ended {
    let (response_xml, fault_code) = match result {
        Ok(Reply::Payload(payload)) => (Some(crate::record::payload_xml(payload)), None),
        Ok(Reply::Accepted) => (None, None),
        // A declared fault keeps its detail, to compare on replay.
        Err(e @ GatewayError::Declared(fault)) => (
            Some(crate::xml::write_element(&fault.detail)),
            Some(format!("{}:{}", e.code().as_str(), fault.name)),
        ),
        Err(e) => (None, Some(e.code().as_str().to_string())),
    };
    Ended {
        response_xml,
        fault_code,
        variant: outcome.variant.clone(),
        model: outcome.model.clone(),
        input_tokens: outcome.input_tokens,
        output_tokens: outcome.output_tokens,
        latency,
        agreement: None,
    }
}

async fn execute(
    prepared: Prepared,
    mappings: &MappingSet,
    model: Option<&Arc<Models>>,
    correlation_id: &str,
    outcome: &mut Outcome,
    tries: Tries,
    capture: &mut Option<Capture>,
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
    // The variant serving the call; everything after uses its plan.
    let variant = plan.choose_variant(&envelope.body);
    outcome.variant = variant.map(|v| v.name().to_string());
    let shadow_of = plan.shadow_for(variant);
    let plan: &OperationPlan = variant.map_or(plan, |v| v.plan());
    let meta = CallMeta {
        service: &service.name,
        operation: &op.name,
        correlation_id,
    };
    let call = plan
        .render_request(&envelope.body, &meta)
        .map_err(render_error)?;
    *capture = Capture::start(
        models.recorder(),
        plan,
        &envelope.body,
        &call.request,
        correlation_id,
    );
    // A sampled call renders the shadow variant's request now, while the
    // request tree is here.
    let shadow = shadow_of.map(|v| Shadow::render(v, &envelope.body, &meta, models.recorder()));
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
            if let Some(answer) = Box::pin(models.cache.get(&digest.key(Some(target)))).await {
                models.metrics().cache_lookup(CacheLookup::Hit);
                outcome.model = Some(target.model.clone());
                tracing::info!(correlation_id, model = %target.model, "answered from the response cache");
                if let Some(shadow) = shadow {
                    shadow.spawn(models, &answer);
                }
                return reply(Arc::unwrap_or_clone(answer));
            }
        }
        models.metrics().cache_lookup(CacheLookup::Miss);
    }

    // Held until the answer is in: the cap counts calls doing model work.
    let permit = models.try_enter().map_err(|o| {
        models.metrics().overloaded();
        GatewayError::Overloaded {
            retry_after: o.retry_after,
        }
    })?;
    let chain = ChainPolicy::starting_now(&policy, models);
    let answered = tokio::time::timeout_at(
        chain.deadline,
        answer(
            plan,
            &call,
            models,
            &chain,
            correlation_id,
            outcome,
            capture.as_mut(),
            None,
        ),
    )
    .await
    .unwrap_or_else(|_| {
        tracing::warn!(correlation_id, "model work cut at the operation's deadline");
        Err(GatewayError::Model(deadline_passed()))
    });
    // The model work is done; freed before a shadow run may want one.
    drop(permit);
    match answered {
        // Run by a worker: nothing goes back, the answer stays with the job.
        Ok((answer, _)) if one_way => reply(answer),
        Ok((answer, target)) => {
            let answer = Arc::new(answer);
            if let Some(digest) = &digest {
                if let Some(ttl) = policy.cache_ttl {
                    let key = digest.key(Some(&target));
                    Box::pin(models.cache.put(key, answer.clone(), ttl)).await;
                }
                if remember_last_good {
                    Box::pin(models.cache.put_last_good(digest.key(None), answer.clone())).await;
                }
            }
            if let Some(shadow) = shadow {
                shadow.spawn(models, &answer);
            }
            reply(Arc::unwrap_or_clone(answer))
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

/// A prepared call whose first answer is given — a batch job's answer to
/// the request the operation's own settings render (no variant, no cache)
/// — and which takes from there the path of an on-demand call: the answer
/// checked, repairs called on demand through the target chain under the
/// operation's deadline, the failure policy. The answer counts as an
/// attempt of `model` at batch price.
#[allow(clippy::too_many_arguments)]
pub async fn run_answered(
    prepared: Prepared,
    mappings: &MappingSet,
    models: &Models,
    correlation_id: &str,
    outcome: &mut Outcome,
    tries: Tries,
    first: Response,
    model: &str,
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
    let meta = CallMeta {
        service: &service.name,
        operation: &op.name,
        correlation_id,
    };
    let call = plan
        .render_request(&envelope.body, &meta)
        .map_err(render_error)?;
    drop(envelope);
    let (input, output) = (first.usage.input_tokens, first.usage.output_tokens);
    outcome.attempts.push(Attempt {
        model: model.to_owned(),
        region: models.client(None).region().map(str::to_owned),
        input_tokens: u64::from(input),
        output_tokens: u64::from(output),
        latency: Duration::ZERO,
        result: AttemptEnd::Answered,
        batch: true,
        step: None,
    });
    outcome.input_tokens += u64::from(input);
    outcome.output_tokens += u64::from(output);
    outcome.model = Some(model.to_owned());
    outcome.stop_reason = Some(first.stop_reason.clone());
    let chain = ChainPolicy::starting_now(&plan.call_policy(), models);
    let answered = tokio::time::timeout_at(
        chain.deadline,
        answer(
            plan,
            &call,
            models,
            &chain,
            correlation_id,
            outcome,
            None,
            Some(first),
        ),
    )
    .await
    .unwrap_or_else(|_| Err(GatewayError::Model(deadline_passed())));
    match answered {
        Ok((answer, _)) => reply(answer),
        Err(GatewayError::Model(e)) if tries == Tries::MoreLeft && e.is_retryable() => {
            Err(GatewayError::Model(e))
        }
        Err(error) => Box::pin(degrade(plan, models, None, error, correlation_id, outcome)).await,
    }
}

/// A request that cannot be rendered: the caller's input, or the mapping's
/// template.
fn render_error(e: RenderError) -> GatewayError {
    match e {
        RenderError::Input { .. } => GatewayError::BadInput(e.to_string()),
        RenderError::Template { .. } => GatewayError::Template(e.to_string()),
    }
}

/// What a valid answer ends the call in: the response payload, or the
/// declared fault.
fn reply(answer: Answer) -> Result<Reply, GatewayError> {
    match answer {
        Answer::Response(payload) => Ok(Reply::Payload(payload)),
        Answer::Fault(fault) => Err(GatewayError::Declared(Box::new(fault))),
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

/// A plan without targets (a mapping always has one).
fn no_targets() -> GatewayError {
    GatewayError::Model(ModelError::Other {
        message: "no model targets".into(),
    })
}

/// The error of a call cut at its deadline.
pub fn deadline_passed() -> ModelError {
    ModelError::Timeout {
        message: "the operation's deadline passed".into(),
    }
}

/// The valid answer — the response payload or a declared fault — and the
/// target that gave it, repairing invalid answers up to the mapping's
/// limit.
#[allow(clippy::too_many_arguments)]
pub(super) async fn answer(
    plan: &OperationPlan,
    call: &RenderedCall,
    models: &Models,
    chain: &ChainPolicy,
    correlation_id: &str,
    outcome: &mut Outcome,
    capture: Option<&mut Capture>,
    first: Option<Response>,
) -> Result<(Answer, ModelTarget), GatewayError> {
    answer_with(
        plan,
        call,
        models,
        chain,
        correlation_id,
        outcome,
        capture,
        first,
        &|call, response| plan.answer_from(call, response),
    )
    .await
}

/// One step of a multi-step operation: its rendered call down the step's
/// target chain, repaired like any call's answer, within the step's own
/// deadline and never past the operation's `deadline`; the step's result.
/// Its failure policy is the caller's (`workflow`).
pub async fn call_step(
    plan: &OperationPlan,
    call: &RenderedCall,
    models: &Models,
    deadline: Instant,
    correlation_id: &str,
    outcome: &mut Outcome,
) -> Result<serde_json::Value, GatewayError> {
    let mut chain = ChainPolicy::starting_now(&plan.call_policy(), models);
    chain.deadline = chain.deadline.min(deadline);
    let read = |call: &RenderedCall, response: &Response| plan.step_result(call, response);
    let answered = answer_with(
        plan,
        call,
        models,
        &chain,
        correlation_id,
        outcome,
        None,
        None,
        &read,
    );
    match tokio::time::timeout_at(chain.deadline, answered).await {
        Ok(answered) => answered.map(|(value, _)| value),
        Err(_) => Err(GatewayError::Model(deadline_passed())),
    }
}

/// [`answer`] with the answer read by `read`: a response, or a step's
/// result.
#[allow(clippy::too_many_arguments)]
async fn answer_with<T>(
    plan: &OperationPlan,
    call: &RenderedCall,
    models: &Models,
    chain: &ChainPolicy,
    correlation_id: &str,
    outcome: &mut Outcome,
    mut capture: Option<&mut Capture>,
    mut first: Option<Response>,
    read: &(dyn Fn(&RenderedCall, &Response) -> Result<T, crate::mapping::OutputError> + Sync),
) -> Result<(T, ModelTarget), GatewayError> {
    // The rendered request is sent as is; only a repair builds a new one.
    let mut repaired: Option<Request> = None;
    let mut repairs = 0;
    loop {
        let request = repaired.as_ref().unwrap_or(&call.request);
        // A first answer given (a batch job's) stands for the first call;
        // every repair is a call of the chain.
        let (response, target) = match first.take() {
            Some(response) => (response, call.targets.first().ok_or_else(no_targets)?),
            None => {
                call_chain(
                    models,
                    &call.targets,
                    request,
                    chain,
                    correlation_id,
                    outcome,
                )
                .await?
            }
        };
        if let Some(capture) = capture.as_deref_mut() {
            capture.answered(&response);
        }
        let error = match read(call, &response) {
            Ok(answer) => return Ok((answer, target.clone())),
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
pub async fn degrade(
    plan: &OperationPlan,
    models: &Models,
    digest: Option<&cache::RequestDigest>,
    error: GatewayError,
    correlation_id: &str,
    outcome: &mut Outcome,
) -> Result<Reply, GatewayError> {
    // Only model failures and invalid answers are degraded; the rest are
    // the caller's own faults.
    if !matches!(
        error,
        GatewayError::Model(_) | GatewayError::InvalidModelOutput(_)
    ) {
        return Err(error);
    }
    let (policy, answer) = match plan.on_failure() {
        FailurePolicy::Fault => return Err(error),
        FailurePolicy::Static(payload) => (DegradedBy::Static, Answer::Response(payload.clone())),
        FailurePolicy::Cache => match last_good(models, digest).await {
            Some(answer) => {
                models.metrics().cache_lookup(CacheLookup::LastGood);
                (DegradedBy::Cache, Arc::unwrap_or_clone(answer))
            }
            None => return Err(error),
        },
    };
    let degraded = Degraded {
        policy,
        reason: error.code(),
    };
    tracing::warn!(correlation_id, %degraded, error = %error, "answering a degraded response");
    outcome.degraded = Some(degraded);
    // A remembered declared fault is answered as the fault, marked too.
    reply(answer)
}

/// The last good answer to the request `digest` names (none without one).
async fn last_good(models: &Models, digest: Option<&cache::RequestDigest>) -> Option<Arc<Answer>> {
    match digest {
        Some(digest) => models.cache.last_good(&digest.key(None)).await,
        None => None,
    }
}
