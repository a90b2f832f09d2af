//! Running one stored job, the same for every transport: the database
//! queue's [`WorkerPool`](super::WorkerPool) and the SQS consumers both
//! hand a claimed job to one [`JobRunner`], which gates it for its tenant,
//! runs it through the pipeline exactly as an HTTP call runs ([`execute`]),
//! and records its usage. What happens to the job afterwards (retry, fail,
//! reply) is the transport's business.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::payload::as_envelope;
use crate::converse::{self, Response};
use crate::error::GatewayError;
use crate::live::{Live, Snapshot};
use crate::models::Models;
use crate::pipeline::{self, CallContext, Inbound, Outcome, Reply, Tries};
use crate::soap::ErrorCode;
use crate::store::{Job, JobFailure, JobResult, Store, StoreError};
use crate::tenants::{CallRecord, CallSource, Tenants, sha256_hex};
use crate::xml::{self, Limits};

/// How one run of a job ended: its result, or why it failed; with what the
/// pipeline did either way (the model, tokens, attempts).
pub type Run = Result<(JobResult, Outcome), (RunFailure, Outcome)>;

/// Why a run of a job failed, and whether another run may succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFailure {
    /// The fault code and safe text, as `GatewayError::to_fault` gives them.
    pub failure: JobFailure,
    /// Another attempt may succeed (throttling, timeouts, an unavailable
    /// model): the job goes back to the queue with backoff.
    pub retryable: bool,
    /// The model service's own hint for when to try again.
    pub retry_after: Option<Duration>,
    /// The full error, for the log line (may name internals).
    pub detail: String,
}

impl RunFailure {
    pub fn from_error(err: &GatewayError, correlation_id: &str) -> RunFailure {
        let fault = err.to_fault(correlation_id);
        let (retryable, retry_after) = match err {
            GatewayError::Model(e) => (e.is_retryable(), e.retry_after()),
            GatewayError::Overloaded { retry_after } => (true, Some(*retry_after)),
            // The database failed under a multi-step job: its finished
            // steps are kept, the next run goes on from them.
            GatewayError::QueueUnavailable(_) => (true, None),
            _ => (false, None),
        };
        // A declared fault is the operation's answer: the job keeps it whole
        // (as SOAP 1.1 `soap:Fault` XML) under the fault's own name, so a
        // poll, a reply or a batch reader gets the fault the WSDL declares.
        let (fault_code, payload) = match &fault.declared {
            Some(d) => (d.name.clone(), Some(xml::write_element(&d.stored()))),
            None => (fault.code.as_str().to_owned(), None),
        };
        RunFailure {
            failure: JobFailure {
                fault_code,
                fault_text: fault.message,
                payload,
            },
            retryable,
            retry_after,
            detail: err.to_string(),
        }
    }
}

impl RunFailure {
    /// The outcome label of metrics, usage and audit rows: the fault code,
    /// `DECLARED_FAULT` for a declared fault (whose job's `fault_code` is
    /// the fault's name), as for the same call over HTTP.
    pub fn outcome(&self) -> &str {
        if self.failure.payload.is_some() {
            ErrorCode::DeclaredFault.as_str()
        } else {
            &self.failure.fault_code
        }
    }
}

/// Runs one stored job through the pipeline, as an HTTP call would run:
/// read under `limits`, dispatch, validate, render, call the model, repair,
/// failure policy. The dispatched operation must be the job's `operation`.
pub async fn execute(
    snapshot: &Snapshot,
    model: Option<&Arc<Models>>,
    limits: &Limits,
    job: &Job,
    tries: Tries,
) -> Run {
    execute_with(snapshot, model, limits, job, tries, None, None).await
}

/// A batch job's answer to one record: the response and the model it was
/// created for.
#[derive(Debug, Clone)]
pub struct BatchAnswer {
    pub response: Response,
    pub model: String,
}

/// [`execute`], with the first model answer given when `first` is set.
async fn execute_with(
    snapshot: &Snapshot,
    model: Option<&Arc<Models>>,
    limits: &Limits,
    job: &Job,
    tries: Tries,
    first: Option<BatchAnswer>,
    store: Option<&Store>,
) -> Run {
    let mut outcome = Outcome::default();
    let started = std::time::Instant::now();
    let span = tracing::info_span!(
        "job",
        job_id = %job.id,
        correlation_id = %job.correlation_id,
        service = %job.service,
        operation = %job.operation,
        tenant = job.tenant.as_deref().unwrap_or("-"),
    );
    let run = run_job(
        snapshot,
        model,
        limits,
        job,
        tries,
        first,
        store,
        &mut outcome,
    );
    let result = match tracing::Instrument::instrument(run, span).await {
        Ok(result) => Ok((result, outcome)),
        Err(err) => Err((RunFailure::from_error(&err, &job.correlation_id), outcome)),
    };
    if let Some(models) = model {
        let (label, outcome) = match &result {
            Ok((_, o)) => (pipeline::outcome_label(o, None), o),
            Err((f, o)) => (f.outcome().to_string(), o),
        };
        pipeline::record_metrics(
            models.metrics(),
            &job.service,
            &job.operation,
            job.tenant.as_deref(),
            &label,
            outcome,
            started.elapsed(),
        );
    }
    result
}

#[allow(clippy::too_many_arguments)]
async fn run_job(
    snapshot: &Snapshot,
    model: Option<&Arc<Models>>,
    limits: &Limits,
    job: &Job,
    tries: Tries,
    first: Option<BatchAnswer>,
    store: Option<&Store>,
    outcome: &mut Outcome,
) -> Result<JobResult, GatewayError> {
    let plan = snapshot.mappings.plan(&job.service, &job.operation);
    let columns = plan
        .map(|plan| plan.result_columns().to_vec())
        .unwrap_or_default();
    let call = StoredCall {
        service: &job.service,
        operation: &job.operation,
        correlation_id: &job.correlation_id,
        payload: &job.payload,
    };
    // A multi-step job keeps each finished step with the job, and starts
    // again from what earlier runs kept.
    let journal = match (store, plan.and_then(|p| p.workflow())) {
        (Some(store), Some(_)) => Some(super::steps::StoreJournal::new(store, job)),
        _ => None,
    };
    let durable = match &journal {
        Some(journal) => Some(journal.durable().await?),
        None => None,
    };
    let payload = run_stored_with(
        snapshot, model, limits, &call, tries, first, durable, outcome,
    )
    .await?;
    let values = columns
        .iter()
        .map(|c| (c.name.clone(), c.value_in(&payload)))
        .collect();
    Ok(JobResult {
        payload: payload.iter().map(xml::write_element).collect(),
        model: outcome.model.clone(),
        input_tokens: i64::try_from(outcome.input_tokens).ok(),
        output_tokens: i64::try_from(outcome.output_tokens).ok(),
        columns: values,
    })
}

/// A stored request: the payload text (an envelope, or a bare payload)
/// of a call to `service`'s `operation`.
#[derive(Debug, Clone, Copy)]
pub struct StoredCall<'a> {
    pub service: &'a str,
    pub operation: &'a str,
    pub correlation_id: &'a str,
    pub payload: &'a str,
}

/// Runs a stored request through the pipeline as an HTTP call runs (read
/// under `limits`, dispatch, validate, render, model, repair, failure
/// policy) and answers its response payload (empty for a one-way
/// operation). The request must dispatch to the operation it names. What
/// a job runs, and what `soapgate replay` runs each recorded call with.
pub async fn run_stored(
    snapshot: &Snapshot,
    model: Option<&Arc<Models>>,
    limits: &Limits,
    call: &StoredCall<'_>,
    tries: Tries,
    outcome: &mut Outcome,
) -> Result<Vec<xml::Element>, GatewayError> {
    run_stored_with(snapshot, model, limits, call, tries, None, None, outcome).await
}

/// [`run_stored`], with the first model answer given when `first` is set
/// ([`pipeline::run_answered`]), and a job's finished steps kept in
/// `durable`.
#[allow(clippy::too_many_arguments)]
async fn run_stored_with(
    snapshot: &Snapshot,
    model: Option<&Arc<Models>>,
    limits: &Limits,
    call: &StoredCall<'_>,
    tries: Tries,
    first: Option<BatchAnswer>,
    durable: Option<crate::workflow::Durable<'_>>,
    outcome: &mut Outcome,
) -> Result<Vec<xml::Element>, GatewayError> {
    // The named operation must exist before its payload is looked at, so a
    // typo in the operation column reads as such, not as a schema error.
    let Some((_, service)) = snapshot.contracts.service(call.service) else {
        return Err(GatewayError::UnknownService(call.service.to_owned()));
    };
    if !service.operations.iter().any(|o| o.name == call.operation) {
        return Err(GatewayError::NoSuchOperation {
            service: call.service.to_owned(),
            operation: call.operation.to_owned(),
        });
    }
    let bytes = as_envelope(call.payload, limits)?;
    let mut ctx = CallContext::new(call.service, None);
    ctx.correlation_id = call.correlation_id.to_owned();
    // The payload is stored as text, so it is UTF-8 whatever an XML
    // declaration in it says.
    let inbound = Inbound {
        charset: Some("utf-8"),
        version: None,
        action: None,
    };
    let prepared = pipeline::prepare(&snapshot.contracts, &inbound, &bytes, limits, &mut ctx)?;
    let dispatched = prepared.operation().name.clone();
    if dispatched != call.operation {
        return Err(GatewayError::OperationMismatch {
            named: call.operation.to_owned(),
            dispatched,
        });
    }
    let reply = match (first, model) {
        (Some(first), Some(models)) => {
            Box::pin(pipeline::run_answered(
                prepared,
                &snapshot.mappings,
                models,
                call.correlation_id,
                outcome,
                tries,
                first.response,
                &first.model,
            ))
            .await?
        }
        _ => {
            Box::pin(crate::workflow::run(
                prepared,
                &snapshot.mappings,
                model,
                call.correlation_id,
                outcome,
                tries,
                durable,
            ))
            .await?
        }
    };
    Ok(match reply {
        Reply::Payload(elements) => elements,
        Reply::Accepted => Vec::new(),
    })
}

/// The Converse request a stored call renders with its operation's own
/// settings (no variant), read and checked as [`run_stored`] reads it: what
/// a batch record asks. An error says why the call cannot be a record; run
/// on demand, it gets the fault that error makes.
pub fn render_stored(
    snapshot: &Snapshot,
    limits: &Limits,
    call: &StoredCall<'_>,
) -> Result<converse::Request, GatewayError> {
    let bytes = as_envelope(call.payload, limits)?;
    let mut ctx = CallContext::new(call.service, None);
    ctx.correlation_id = call.correlation_id.to_owned();
    let inbound = Inbound {
        charset: Some("utf-8"),
        version: None,
        action: None,
    };
    let prepared = pipeline::prepare(&snapshot.contracts, &inbound, &bytes, limits, &mut ctx)?;
    let dispatched = prepared.operation().name.clone();
    if dispatched != call.operation || prepared.service().name != call.service {
        return Err(GatewayError::OperationMismatch {
            named: call.operation.to_owned(),
            dispatched,
        });
    }
    let Some(plan) = snapshot.mappings.plan(call.service, call.operation) else {
        return Err(GatewayError::NotMapped {
            service: call.service.to_owned(),
            operation: call.operation.to_owned(),
        });
    };
    let meta = crate::mapping::CallMeta {
        service: call.service,
        operation: call.operation,
        correlation_id: call.correlation_id,
    };
    plan.render_request(&prepared.envelope.body, &meta)
        .map(|rendered| rendered.request)
        .map_err(|e| GatewayError::BadInput(e.to_string()))
}

/// Whether a job may run for its tenant: a known tenant (polling-table rows
/// name theirs; an HTTP job carries its caller's), allowed the operation,
/// and its budgets able to hold what the run can use; the budget hold, if
/// the tenant has budgets.
async fn gate_job(
    tenants: &Tenants,
    store: &Store,
    snapshot: &Snapshot,
    job: &Job,
) -> Result<Option<String>, GatewayError> {
    let Some(tenant) = job.tenant.as_deref().filter(|t| tenants.knows(t)) else {
        return Err(GatewayError::Unauthenticated(format!(
            "job {} names no configured tenant ({:?})",
            job.id, job.tenant
        )));
    };
    tenants.authorize(tenant, &job.service, &job.operation, None)?;
    let ceiling = snapshot
        .mappings
        .plan(&job.service, &job.operation)
        .map_or(0, |plan| plan.token_ceiling(job.payload.len()));
    tenants.reserve_budget(Some(store), tenant, ceiling).await
}

/// The usage and audit rows of one run of a job, under its tenant.
async fn record_job(
    tenants: &Tenants,
    store: &Store,
    job: &Job,
    outcome: &Run,
    hold: Option<&str>,
) {
    let (code, o, response) = match outcome {
        Ok((result, o)) => ("ok", o, Some(result.payload.as_str())),
        Err((f, o)) => (f.outcome(), o, None),
    };
    let steps = o.steps_summary();
    let sha = sha256_hex(job.payload.as_bytes());
    let call = CallRecord {
        tenant: job.tenant.as_deref(),
        principal: None,
        source: CallSource::Job,
        service: &job.service,
        operation: Some(&job.operation),
        correlation_id: &job.correlation_id,
        job_id: Some(job.id.as_str()),
        outcome: code,
        payload_sha256: Some(&sha),
        request: Some(&job.payload),
        response,
        attempts: &o.attempts,
        hold,
        steps: steps.as_deref(),
    };
    tenants.record(Some(store), &call).await;
}

/// Runs stored jobs over the live contracts and mappings and the
/// instance's model layer; shared by every worker of a process.
pub struct JobRunner {
    store: Store,
    live: Arc<Live>,
    model: Option<Arc<Models>>,
    limits: Limits,
    /// The snapshot generation whose result columns exist in the store.
    columns_generation: AtomicU64,
    /// When tenants are configured: jobs run for their tenant (allow list,
    /// budgets) and leave usage and audit rows under it.
    pub(super) tenants: Option<Arc<Tenants>>,
}

impl std::fmt::Debug for JobRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobRunner")
            .field("model", &self.model.is_some())
            .field("tenants", &self.tenants.is_some())
            .finish_non_exhaustive()
    }
}

impl JobRunner {
    pub fn new(
        store: Store,
        live: Arc<Live>,
        model: Option<Arc<Models>>,
        limits: Limits,
    ) -> JobRunner {
        JobRunner {
            store,
            live,
            model,
            limits,
            columns_generation: AtomicU64::new(0),
            tenants: None,
        }
    }

    /// The same runner, running each job for its tenant: a job whose tenant
    /// is unknown, may not call the operation or is over its budget fails
    /// without a model call; every run leaves usage and audit rows.
    pub fn with_tenants(mut self, tenants: Option<Arc<Tenants>>) -> JobRunner {
        self.tenants = tenants;
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn live(&self) -> &Arc<Live> {
        &self.live
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Adds the flat result columns the snapshot's mappings declare, once
    /// per snapshot generation.
    pub async fn ensure_columns(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        if self.columns_generation.load(Ordering::Acquire) == snapshot.generation {
            return Ok(());
        }
        let mut columns: Vec<String> = snapshot
            .mappings
            .plans()
            .flat_map(|p| p.result_columns().iter().map(|c| c.name.clone()))
            .collect();
        columns.sort();
        columns.dedup();
        if !columns.is_empty() {
            let added = self.store.ensure_result_columns(&columns).await?;
            if !added.is_empty() {
                tracing::info!(columns = ?added, "added result columns to soapgate_results");
            }
        }
        self.columns_generation
            .store(snapshot.generation, Ordering::Release);
        Ok(())
    }

    /// One run of a claimed job: gate (tenants), execute on the current
    /// snapshot, record usage (tenants). `tries` says whether the job has
    /// attempts left: the mapping's failure policy answers only on its last.
    pub async fn run(&self, job: &Job, tries: Tries) -> Run {
        self.run_with(job, tries, None).await
    }

    /// A run of a job a batch answered: as [`JobRunner::run`] from the
    /// answer on (checked, repaired on demand, failure policy), as a try
    /// with more left: a failure another run may mend (throttled during a
    /// repair) comes back retryable, and the batch gives the job back to
    /// the on-demand queue.
    pub async fn run_answered(&self, job: &Job, answer: BatchAnswer) -> Run {
        self.run_with(job, Tries::MoreLeft, Some(answer)).await
    }

    async fn run_with(&self, job: &Job, tries: Tries, first: Option<BatchAnswer>) -> Run {
        let snapshot = self.live.snapshot();
        if let Err(e) = self.ensure_columns(&snapshot).await {
            tracing::warn!(error = %e, "adding result columns failed; retrying with the next job");
        }
        let gate = match &self.tenants {
            Some(tenants) => gate_job(tenants, &self.store, &snapshot, job).await,
            None => Ok(None),
        };
        let hold = gate.as_ref().ok().cloned().flatten();
        let outcome = match gate {
            Ok(_) => {
                execute_with(
                    &snapshot,
                    self.model.as_ref(),
                    &self.limits,
                    job,
                    tries,
                    first,
                    Some(&self.store),
                )
                .await
            }
            Err(e) => Err((
                RunFailure::from_error(&e, &job.correlation_id),
                Outcome::default(),
            )),
        };
        if let Some(tenants) = &self.tenants {
            record_job(tenants, &self.store, job, &outcome, hold.as_deref()).await;
        }
        outcome
    }
}
