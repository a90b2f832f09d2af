//! Job delivery through an external queue. `sqs` is Amazon SQS (the
//! request queue carries job ids, or raw SOAP requests put there by a legacy
//! system; an optional reply queue gets result envelopes).
//!
//! The job row in the store stays the source of truth: a queue only
//! delivers. Running a job is behind [`JobExecutor`], the narrow seam to
//! the pipeline, so the queue code knows nothing of mappings or models.

pub mod sqs;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::bedrock::Models;
use crate::converse::BoxFuture;
use crate::error::GatewayError;
use crate::live::{Live, Snapshot};
use crate::pipeline::Tries;
use crate::soap::SoapVersion;
use crate::store::{Job, JobFailure, JobResult, Store, StoreError};
use crate::tenants::Tenants;
use crate::worker;
use crate::xml::{self, Element, Limits};

/// How one run of a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Execution {
    /// The response payload (empty for a one-way operation) and usage.
    Done(JobResult),
    /// The fault the caller will see; `retryable` when another attempt may
    /// succeed (throttling, a model outage), false when it cannot (the
    /// request is invalid, the operation is not mapped).
    Failed {
        failure: JobFailure,
        retryable: bool,
        /// The model service's own hint for when to try again.
        retry_after: Option<Duration>,
    },
}

/// Runs one stored job through the pipeline. The queue consumers call it
/// for every job they claim.
pub trait JobExecutor: Send + Sync {
    /// `tries` says whether the job has attempts left: the mapping's
    /// failure policy answers only on its last one.
    fn execute<'a>(&'a self, job: &'a Job, tries: Tries) -> BoxFuture<'a, Execution>;

    /// What a request put on a queue from outside is: the service and
    /// operation its message named, else those its payload's QName finds;
    /// and the failure to record at once when the request cannot be read.
    fn route(&self, request: &str, named: Route, correlation_id: &str) -> Admission;
}

/// A service and operation, each possibly unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Route {
    pub service: Option<String>,
    pub operation: Option<String>,
}

/// How a request from outside enters the job table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// Empty when unknown: the run then fails with the fault that says so.
    pub service: String,
    pub operation: String,
    /// Set when the request is not readable XML: the job ends FAILED with
    /// this fault without a run.
    pub failure: Option<JobFailure>,
}

/// The [`JobExecutor`] over the live contracts and mappings and a model
/// client: the same `prepare` and `run` as an HTTP call.
pub struct PipelineExecutor {
    live: Arc<Live>,
    model: Option<Arc<Models>>,
    limits: Limits,
    store: Store,
    /// The snapshot generation whose result columns exist in the store.
    columns_generation: AtomicU64,
    /// When tenants are configured: jobs run for their tenant, as on the
    /// database queue (`WorkerPool::with_tenants`).
    tenants: Option<Arc<Tenants>>,
}

impl PipelineExecutor {
    /// The same executor, running each job for its tenant (allow list,
    /// budgets, usage and audit rows).
    pub fn with_tenants(mut self, tenants: Option<Arc<Tenants>>) -> PipelineExecutor {
        self.tenants = tenants;
        self
    }

    pub fn new(
        store: Store,
        live: Arc<Live>,
        model: Option<Arc<Models>>,
        limits: Limits,
    ) -> PipelineExecutor {
        PipelineExecutor {
            live,
            model,
            limits,
            store,
            columns_generation: AtomicU64::new(0),
            tenants: None,
        }
    }

    /// Adds the flat result columns the mappings declare, once per snapshot
    /// generation (as the database-queue workers do).
    async fn ensure_columns(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
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
            self.store.ensure_result_columns(&columns).await?;
        }
        self.columns_generation
            .store(snapshot.generation, Ordering::Release);
        Ok(())
    }
}

impl std::fmt::Debug for PipelineExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineExecutor")
            .field("model", &self.model.is_some())
            .finish_non_exhaustive()
    }
}

impl JobExecutor for PipelineExecutor {
    fn execute<'a>(&'a self, job: &'a Job, tries: Tries) -> BoxFuture<'a, Execution> {
        Box::pin(async move {
            let snapshot = self.live.snapshot();
            if let Err(e) = self.ensure_columns(&snapshot).await {
                tracing::warn!(error = %e, "adding result columns failed; retrying with the next job");
            }
            let gate = match &self.tenants {
                Some(tenants) => worker::gate_job(tenants, &self.store, job).await,
                None => Ok(()),
            };
            let outcome = match gate {
                Ok(()) => {
                    worker::execute(&snapshot, self.model.as_deref(), &self.limits, job, tries)
                        .await
                }
                Err(e) => Err((
                    worker::RunFailure::from_error(&e, &job.correlation_id),
                    crate::pipeline::Outcome::default(),
                )),
            };
            if let Some(tenants) = &self.tenants {
                worker::record_job(tenants, &self.store, job, &outcome).await;
            }
            match outcome {
                Ok((result, _)) => Execution::Done(result),
                Err((failure, _)) => {
                    tracing::warn!(
                        job_id = %job.id,
                        correlation_id = %job.correlation_id,
                        error = %failure.detail,
                        retryable = failure.retryable,
                        "job run failed"
                    );
                    Execution::Failed {
                        failure: failure.failure,
                        retryable: failure.retryable,
                        retry_after: failure.retry_after,
                    }
                }
            }
        })
    }

    fn route(&self, request: &str, named: Route, correlation_id: &str) -> Admission {
        let mut admission = Admission {
            service: named.service.clone().unwrap_or_default(),
            operation: named.operation.clone().unwrap_or_default(),
            failure: None,
        };
        let doc = match xml::read(request.as_bytes(), Some("utf-8"), &self.limits) {
            Ok(doc) => doc,
            Err(e) => {
                let fault = GatewayError::Xml(e).to_fault(correlation_id);
                admission.failure = Some(JobFailure {
                    fault_code: fault.code.as_str().to_owned(),
                    fault_text: fault.message,
                });
                return admission;
            }
        };
        let Some(payload) = payload_of(doc.root) else {
            return admission;
        };
        let snapshot = self.live.snapshot();
        let candidates: Vec<(String, String)> = snapshot
            .contracts
            .services()
            .filter(|(_, s)| named.service.as_deref().is_none_or(|n| n == s.name))
            .flat_map(|(_, s)| {
                s.operations
                    .iter()
                    .filter(|o| o.input.dispatch_name() == Some(&payload.name))
                    .map(|o| (s.name.clone(), o.name.clone()))
            })
            .filter(|(_, o)| named.operation.as_deref().is_none_or(|n| n == o))
            .collect();
        // Exactly one match decides; none or several leave the names as the
        // message gave them, and the run says what is wrong.
        if let [(service, operation)] = candidates.as_slice() {
            admission.service.clone_from(service);
            admission.operation.clone_from(operation);
        }
        admission
    }
}

/// The SOAP version a stored request speaks: its envelope's, or 1.1 for a
/// bare payload (and for anything unreadable).
pub fn request_version(request: &str, limits: &Limits) -> SoapVersion {
    xml::read(request.as_bytes(), None, limits)
        .ok()
        .filter(|doc| doc.root.name.local == "Envelope")
        .and_then(|doc| SoapVersion::from_envelope_ns(&doc.root.name.ns))
        .unwrap_or(SoapVersion::V11)
}

/// The first payload element of an envelope, or the element itself when it
/// is not an envelope.
fn payload_of(root: Element) -> Option<Element> {
    let Some(version) = SoapVersion::from_envelope_ns(&root.name.ns) else {
        return Some(root);
    };
    let body = root.child(version.envelope_ns(), "Body")?;
    body.elements().next().cloned()
}
