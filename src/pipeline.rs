//! Running one SOAP call, transport-agnostic: the HTTP handler (and, later,
//! the queue and polling-table workers) hand in bytes plus what their
//! transport said, and get back a payload or a [`GatewayError`].
//!
//! [`prepare`] reads, dispatches and validates; [`run`] executes the
//! operation. Between the two a caller can check auth or enqueue a job.

use std::sync::Arc;

use crate::contract::{Contract, ContractSet, Operation, Service, validate_payload};
use crate::converse::{ModelClient, ModelError, Request, Response};
use crate::error::GatewayError;
use crate::mapping::{CallMeta, MappingSet, ModelTarget, RenderError};
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

/// Execute a prepared call: render the Converse request from the mapping,
/// call the model (the next target of the chain when one fails in a way
/// another may not), turn the answer into the response payload, repair
/// invalid answers by telling the model what was wrong, and apply the
/// mapping's failure policy when nothing valid comes back.
pub async fn run(
    prepared: Prepared,
    mappings: &MappingSet,
    model: Option<&dyn ModelClient>,
    correlation_id: &str,
    outcome: &mut Outcome,
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
    let Some(model) = model else {
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

    // The rendered request is sent as is; only a repair builds a new one.
    let mut repaired: Option<Request> = None;
    let mut repairs = 0;
    loop {
        let request = repaired.as_ref().unwrap_or(&call.request);
        let response = call_chain(model, &call.targets, request, correlation_id, outcome).await?;
        let error = match plan.response_from(&call, &response) {
            Ok(_) if op.is_one_way() => return Ok(Reply::Accepted),
            Ok(payload) => return Ok(Reply::Payload(payload)),
            Err(e) => e,
        };
        tracing::warn!(correlation_id, error = %error, repairs, "model answer does not fit the response schema");
        if error.is_repairable() && repairs < plan.repair_attempts() {
            repairs += 1;
            let next = plan.repair_request(request, &response, &error);
            repaired = Some(next);
            continue;
        }
        if let Some(fallback) = plan.static_response() {
            outcome.degraded = Some(format!("static: {error}"));
            return Ok(Reply::Payload(fallback));
        }
        return Err(GatewayError::InvalidModelOutput(
            error.violations().to_vec(),
        ));
    }
}

/// One request through the target chain: the first target that answers
/// wins; errors another target may not share (throttling, timeouts, 5xx)
/// move on, others stop at once.
async fn call_chain(
    model: &dyn ModelClient,
    targets: &[ModelTarget],
    request: &Request,
    correlation_id: &str,
    outcome: &mut Outcome,
) -> Result<Response, GatewayError> {
    let mut last = None;
    for target in targets {
        outcome.model_calls += 1;
        let started = std::time::Instant::now();
        let answer = model.converse(&target.model, request).await;
        outcome.attempts.push(Attempt {
            model: target.model.clone(),
            region: None,
            input_tokens: answer
                .as_ref()
                .map_or(0, |r| u64::from(r.usage.input_tokens)),
            output_tokens: answer
                .as_ref()
                .map_or(0, |r| u64::from(r.usage.output_tokens)),
            latency: started.elapsed(),
            result: match &answer {
                Ok(_) => "ok",
                Err(e) => e.fault_code(),
            },
        });
        match answer {
            Ok(response) => {
                let (input, output) = (response.usage.input_tokens, response.usage.output_tokens);
                outcome.input_tokens += u64::from(input);
                outcome.output_tokens += u64::from(output);
                outcome.model = Some(target.model.clone());
                tracing::info!(
                    correlation_id,
                    model = %target.model,
                    input_tokens = input,
                    output_tokens = output,
                    stop_reason = ?response.stop_reason,
                    "model answered"
                );
                return Ok(response);
            }
            Err(e) => {
                tracing::warn!(correlation_id, model = %target.model, error = %e, "model call failed");
                let next = e.is_retryable();
                last = Some(e);
                if !next {
                    break;
                }
            }
        }
    }
    Err(GatewayError::Model(last.unwrap_or(ModelError::Other {
        message: "no model targets".into(),
    })))
}
