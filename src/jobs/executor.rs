//! The seam between a queue transport and the pipeline: a transport hands
//! a claimed job to a [`JobExecutor`] and gets an [`Execution`] back, so
//! the SQS code knows nothing of mappings, models or tenants. The one
//! implementation is the [`JobRunner`]; tests put their own behind it.

use std::time::Duration;

use super::payload::payload_of;
use super::run::{JobRunner, RunFailure};
use crate::converse::BoxFuture;
use crate::error::GatewayError;
use crate::pipeline::Tries;
use crate::store::{Job, JobFailure, JobResult};
use crate::xml;

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

/// The pipeline behind the seam: the same `prepare` and `run` as an HTTP
/// call, through the process's one [`JobRunner`].
impl JobExecutor for JobRunner {
    fn execute<'a>(&'a self, job: &'a Job, tries: Tries) -> BoxFuture<'a, Execution> {
        Box::pin(async move {
            let outcome = self.run(job, tries).await;
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
        // From outside (the SQS door): the same tree budget as an HTTP body.
        let doc = match xml::read_with(
            request.as_bytes(),
            Some("utf-8"),
            self.limits(),
            &xml::TreeBudget::REQUEST,
        ) {
            Ok(doc) => doc,
            Err(e) => {
                let failure = RunFailure::from_error(&GatewayError::Xml(e), correlation_id);
                admission.failure = Some(failure.failure);
                return admission;
            }
        };
        let Some(payload) = payload_of(doc.root) else {
            return admission;
        };
        let snapshot = self.live().snapshot();
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
