//! The job side of multi-step operations: a job's finished steps kept in
//! the store (`soapgate_job_steps`) under the job's lease, and read back
//! when the job runs again, so a finished step is never called twice.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::GatewayError;
use crate::store::{Job, JobId, Store};
use crate::workflow::{Durable, Journal};

/// Keeps one job's finished steps, fenced by its lease's token.
pub(super) struct StoreJournal<'a> {
    store: &'a Store,
    job: &'a JobId,
    token: i64,
}

impl<'a> StoreJournal<'a> {
    pub(super) fn new(store: &'a Store, job: &'a Job) -> Self {
        StoreJournal {
            store,
            job: &job.id,
            token: job.fencing_token,
        }
    }

    /// The steps earlier runs of the job finished, and this journal for
    /// the ones this run finishes.
    pub(super) async fn durable(&self) -> Result<Durable<'_>, GatewayError> {
        let kept = self
            .store
            .step_results(self.job)
            .await
            .map_err(unavailable)?;
        let mut done = BTreeMap::new();
        for step in kept {
            // A result that does not read back is run again.
            if let Ok(value) = serde_json::from_str::<Value>(&step.result) {
                done.insert((step.step, step.item), value);
            }
        }
        if !done.is_empty() {
            tracing::info!(job_id = %self.job, steps = done.len(), "resuming after the steps already finished");
        }
        Ok(Durable {
            done,
            journal: self,
        })
    }
}

impl Journal for StoreJournal<'_> {
    fn save<'b>(
        &'b self,
        step: &'b str,
        item: Option<u32>,
        result: &'b Value,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), GatewayError>> + Send + 'b>>
    {
        Box::pin(async move {
            let text = result.to_string();
            match self
                .store
                .save_step(self.job, self.token, step, item, &text)
                .await
            {
                Ok(true) => Ok(()),
                // Another worker holds the job now: this run stops, and its
                // end is fenced out too.
                Ok(false) => Err(GatewayError::QueueUnavailable(format!(
                    "job {} is no longer held by this run",
                    self.job
                ))),
                Err(e) => Err(unavailable(e)),
            }
        })
    }
}

fn unavailable(e: crate::store::StoreError) -> GatewayError {
    GatewayError::QueueUnavailable(e.to_string())
}
