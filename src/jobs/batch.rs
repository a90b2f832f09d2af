//! Batch inference for queued work: jobs of operations with `batch:` wait
//! together and go to the model as one batch-inference job, at about half
//! the on-demand price, answered within hours instead of seconds.
//!
//! New jobs of such an operation are enqueued due only after its
//! `max_wait_secs` ([`Store::with_batch_holds`]), so no worker runs them
//! before. The [`BatchDriver`] of a worker process, every `[batch]
//! tick_ms`:
//!
//! 1. cuts a batch of up to `max_records` of an operation's waiting jobs as
//!    soon as `min_records` wait — the batch row and the jobs' lease to it
//!    in one transaction, before anything is sent. Jobs still waiting below
//!    the minimum become due at their deadline and run on demand, as any
//!    job;
//! 2. takes every batch whose next step is due (its own, or one a dead
//!    process left when its lease ran out) and moves it on, each step a
//!    fenced write of the batch row:
//!    - CUT → UPLOADED: each job's request rendered as a record (a job that
//!      cannot be one goes back on demand), the JSONL written to S3;
//!    - UPLOADED → SUBMITTED: the service's job created with the batch id
//!      as its `clientRequestToken`, so a create repeated after a crash
//!      makes no second job; its ARN kept;
//!    - SUBMITTED: polled with backoff; when it completes, every output
//!      line is matched to its job by `recordId` and run through the same
//!      answer path as an on-demand call (checked, repaired on demand,
//!      failure policy; [`JobRunner::run_answered`]); the result written
//!      fenced, as any job's. A record that failed or is missing, and every
//!      job of a batch the service failed, go back to the on-demand queue.
//!      DONE (or FAILED) when no job is left in the batch.
//!
//! A process killed at any point leaves the batch row where its last step
//! put it; whoever claims it next repeats at most that step: an upload
//! writes the same key, a create finds the first job by its token, answers
//! already written are fenced off (each is written as soon as it is ready,
//! so at most `[batch] concurrency` answers are redone), and the row's
//! counts of answered and returned jobs are taken from the jobs when the
//! batch ends.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::run::{BatchAnswer, JobRunner, Run, StoredCall, render_stored};
use crate::backoff::equal_jitter;
use crate::config::BatchSettings;
use crate::converse::{BatchClient, BatchError, BatchJobState, NewBatchJob, Response};
use crate::mapping::BatchPlan;
use crate::metrics::{BatchJobResult, Metrics};
use crate::shutdown::Shutdown;
use crate::store::{
    Batch, BatchCut, BatchStatus, BatchStep, ClaimedJob, JobEnd, JobFinish, JobId, Store,
    StoreError,
};

/// Answers written to the store in one transaction.
const WRITE_GROUP: usize = 64;

/// Cuts, sends, polls and answers the batches of one process.
pub struct BatchDriver {
    store: Store,
    runner: Arc<JobRunner>,
    client: Arc<dyn BatchClient>,
    settings: BatchSettings,
    /// This process, as batch leases name it.
    name: String,
    /// Woken when jobs go back to the on-demand queue, so an idle worker
    /// of this process takes them at once.
    waker: Option<Arc<Notify>>,
    /// Where batches ended, jobs answered or returned and jobs waiting are
    /// counted.
    metrics: Option<Arc<Metrics>>,
}

impl std::fmt::Debug for BatchDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchDriver")
            .field("name", &self.name)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

/// How a step ended: the batch as it is now (written), and whether its
/// next step is due at once.
type Stepped = Result<Batch, StepError>;

/// A step that could not be taken.
#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The batch was taken by another process (our lease ran out).
    #[error("the batch was taken over")]
    Lost,
}

impl BatchDriver {
    pub fn new(
        store: Store,
        runner: Arc<JobRunner>,
        client: Arc<dyn BatchClient>,
        settings: BatchSettings,
        name: String,
    ) -> BatchDriver {
        BatchDriver {
            store,
            runner,
            client,
            settings,
            name,
            waker: None,
            metrics: None,
        }
    }

    /// The same driver, counting on `metrics`: batches ended
    /// (`soapgate_batches_total`), jobs answered or returned
    /// (`soapgate_batch_jobs_total`), jobs waiting for a batch
    /// (`soapgate_batch_jobs_waiting`, set each tick).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> BatchDriver {
        self.metrics = Some(metrics);
        self
    }

    fn count_jobs(&self, batch: &Batch, result: BatchJobResult, n: u64) {
        if let Some(metrics) = self.metrics.as_ref().filter(|_| n > 0) {
            metrics.batch_jobs(&batch.service, &batch.operation, result, n);
        }
    }

    /// The same driver, waking `waker` when jobs go back on demand.
    pub fn with_waker(mut self, waker: Arc<Notify>) -> BatchDriver {
        self.waker = Some(waker);
        self
    }

    fn wake(&self) {
        if let Some(waker) = &self.waker {
            waker.notify_one();
        }
    }

    /// Ticks until `stop`. A batch in the middle of a step when the process
    /// stops is left to its lease: whoever claims it next repeats the step.
    pub async fn run(self, stop: Shutdown) {
        tracing::info!(driver = %self.name, tick_ms = self.settings.tick_ms, "batch driver started");
        let mut failures = 0u32;
        while !stop.is_triggered() {
            let wait = match tokio::select! {
                ticked = self.tick() => ticked,
                () = stop.wait() => break,
            } {
                Ok(()) => {
                    failures = 0;
                    self.settings.tick()
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, "batch driver: store error");
                    equal_jitter(
                        failures,
                        self.settings.tick(),
                        Duration::from_secs(30),
                        None,
                    )
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = stop.wait() => break,
            }
        }
        tracing::info!(driver = %self.name, "batch driver stopped");
    }

    /// One round: holds, cuts, and every due step.
    pub async fn tick(&self) -> Result<(), StoreError> {
        let snapshot = self.runner.live().snapshot();
        let plans: Vec<(String, String, BatchPlan)> = snapshot
            .mappings
            .plans()
            .filter_map(|p| {
                p.batch()
                    .map(|b| (p.service.clone(), p.operation.clone(), b.clone()))
            })
            .collect();
        for (service, operation, plan) in &plans {
            let cut = BatchCut {
                service,
                operation,
                model: &plan.model,
                min_records: plan.min_records,
                max_records: plan.max_records,
            };
            while let Some(batch) = self
                .store
                .cut_batch(&cut, &self.name, self.settings.lease())
                .await?
            {
                tracing::info!(
                    batch = %batch.id,
                    service = %batch.service,
                    operation = %batch.operation,
                    records = batch.records,
                    "batch cut"
                );
                self.drive(batch).await;
            }
            if let Some(metrics) = &self.metrics {
                let waiting = self.store.batch_waiting(service, operation).await?;
                metrics.set_batch_waiting(service, operation, waiting);
            }
        }
        while let Some(batch) = self
            .store
            .claim_batch(&self.name, self.settings.lease())
            .await?
        {
            self.drive(batch).await;
        }
        Ok(())
    }

    /// Takes the steps of a batch this process holds until it must wait,
    /// heartbeating its lease meanwhile; then lets the lease go.
    async fn drive(&self, batch: Batch) {
        let (id, token) = (batch.id.clone(), batch.fencing_token);
        let steps = async {
            let mut batch = batch;
            loop {
                let stepped = match batch.status {
                    BatchStatus::Cut => self.upload(batch).await,
                    BatchStatus::Uploaded => self.create(batch).await,
                    BatchStatus::Submitted => self.poll(batch).await,
                    BatchStatus::Done | BatchStatus::Failed => return Ok(()),
                };
                batch = stepped?;
                if !batch.status.is_open() || batch.next_step_ms > self.store.now_ms() {
                    return Ok::<(), StepError>(());
                }
            }
        };
        let ended = tokio::select! {
            ended = steps => ended,
            () = self.keep_leased(&id, token) => Err(StepError::Lost),
        };
        match ended {
            Ok(()) => {
                if let Err(e) = self.store.let_go_batch(&id, token).await {
                    tracing::warn!(batch = %id, error = %e, "letting the batch go failed; it is taken again after its lease");
                }
            }
            Err(e) => tracing::warn!(batch = %id, error = %e, "batch step not taken"),
        }
    }

    /// Heartbeats the batch's lease; resolves when the store says another
    /// process took the batch.
    async fn keep_leased(&self, id: &str, token: i64) {
        let lease = self.settings.lease();
        loop {
            tokio::time::sleep(lease / 3).await;
            match self.store.heartbeat_batch(id, token, lease).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => tracing::warn!(batch = %id, error = %e, "batch heartbeat failed"),
            }
        }
    }

    /// Writes `batch` as its next step; `Lost` when the token is stale.
    async fn write(&self, batch: Batch) -> Stepped {
        let written = self
            .store
            .advance_batch(&batch.id, batch.fencing_token, &BatchStep::of(&batch))
            .await?;
        if !written {
            return Err(StepError::Lost);
        }
        if let Some(metrics) = self.metrics.as_ref().filter(|_| !batch.status.is_open()) {
            metrics.batch_ended(&batch.service, &batch.operation, batch.status.as_str());
        }
        tracing::info!(
            batch = %batch.id,
            status = batch.status.as_str(),
            job_arn = batch.job_arn.as_deref().unwrap_or("-"),
            answered = batch.answered,
            returned = batch.returned,
            error = batch.last_error.as_deref().unwrap_or(""),
            "batch step"
        );
        Ok(batch)
    }

    /// A call to S3 or the control plane failed: try the step again later,
    /// or — refused for good — give every job back and end the batch.
    async fn failed_call(&self, mut batch: Batch, e: BatchError, what: &str) -> Stepped {
        if e.retryable {
            batch.polls += 1;
            let wait = equal_jitter(
                u32::try_from(batch.polls).unwrap_or(u32::MAX),
                Duration::from_secs(1),
                Duration::from_millis(self.settings.poll_max_ms.max(1000)),
                None,
            );
            batch.next_step_ms = self.store.now_ms().saturating_add(ms(wait));
            batch.last_error = Some(format!("{what}: {}", e.message));
            return self.write(batch).await;
        }
        self.give_up(batch, format!("{what}: {}", e.message)).await
    }

    /// Every job still in the batch back to the on-demand queue; FAILED.
    async fn give_up(&self, mut batch: Batch, why: String) -> Stepped {
        tracing::warn!(batch = %batch.id, error = %why, "batch given up: its jobs run on demand");
        let jobs = self.store.batch_jobs(&batch.id).await?;
        let ids: Vec<JobId> = jobs.into_iter().map(|c| c.job.id).collect();
        let returned = self.store.return_batch_jobs(&batch.id, &ids).await?;
        self.count_jobs(&batch, BatchJobResult::Returned, returned);
        (batch.answered, batch.returned) = self.store.batch_tally(&batch.id).await?;
        batch.status = BatchStatus::Failed;
        batch.last_error = Some(why);
        self.wake();
        self.write(batch).await
    }

    /// The operation's `batch:` now; `None` when it no longer batches.
    fn plan_of(&self, batch: &Batch) -> Option<BatchPlan> {
        let snapshot = self.runner.live().snapshot();
        snapshot
            .mappings
            .plan(&batch.service, &batch.operation)
            .and_then(|p| p.batch().cloned())
    }

    /// CUT: the records to S3.
    async fn upload(&self, mut batch: Batch) -> Stepped {
        let Some(plan) = self.plan_of(&batch) else {
            return self
                .give_up(batch, "the operation no longer batches".into())
                .await;
        };
        let jobs = self.store.batch_jobs(&batch.id).await?;
        let snapshot = self.runner.live().snapshot();
        let mut lines = String::new();
        let mut refused = Vec::new();
        for ClaimedJob { job, .. } in &jobs {
            let call = StoredCall {
                service: &job.service,
                operation: &job.operation,
                correlation_id: &job.correlation_id,
                payload: &job.payload,
            };
            let record = render_stored(&snapshot, self.runner.limits(), &call)
                .map_err(|e| e.to_string())
                .and_then(|request| self.client.record(job.id.as_str(), &batch.model, &request));
            match record {
                Ok(line) => {
                    lines.push_str(&line);
                    lines.push('\n');
                }
                Err(why) => {
                    tracing::info!(job_id = %job.id, batch = %batch.id, reason = %why, "job cannot be a batch record: it runs on demand");
                    refused.push(job.id.clone());
                }
            }
        }
        if !refused.is_empty() {
            let returned = self.store.return_batch_jobs(&batch.id, &refused).await?;
            self.count_jobs(&batch, BatchJobResult::Returned, returned);
            batch.returned += i64::try_from(returned).unwrap_or(i64::MAX);
            self.wake();
        }
        let records = jobs.len() - refused.len();
        if records < plan.min_records {
            return self
                .give_up(
                    batch,
                    format!(
                        "{records} of the batch's jobs can be records, fewer than min_records ({})",
                        plan.min_records
                    ),
                )
                .await;
        }
        let folder = format!("{}/{}", plan.s3_uri.trim_end_matches('/'), batch.id);
        let input_uri = format!("{folder}/records.jsonl");
        if let Err(e) = self.client.upload(&input_uri, lines.into_bytes()).await {
            return self.failed_call(batch, e, "uploading the records").await;
        }
        batch.status = BatchStatus::Uploaded;
        batch.input_uri = Some(input_uri);
        batch.output_uri = Some(format!("{folder}/out/"));
        batch.polls = 0;
        batch.last_error = None;
        batch.next_step_ms = self.store.now_ms();
        self.write(batch).await
    }

    /// UPLOADED: the service's job, created idempotently.
    async fn create(&self, mut batch: Batch) -> Stepped {
        let Some(plan) = self.plan_of(&batch) else {
            return self
                .give_up(batch, "the operation no longer batches".into())
                .await;
        };
        let (Some(input_uri), Some(output_uri)) = (&batch.input_uri, &batch.output_uri) else {
            return self
                .give_up(batch, "the batch row has no S3 locations".into())
                .await;
        };
        let job = NewBatchJob {
            name: format!("soapgate-{}", batch.id),
            client_request_token: batch.id.clone(),
            model_id: batch.model.clone(),
            role_arn: plan.role_arn.clone(),
            input_uri: input_uri.clone(),
            output_uri: output_uri.clone(),
            timeout_hours: self.settings.timeout_hours,
        };
        match self.client.create(&job).await {
            Ok(arn) => {
                batch.status = BatchStatus::Submitted;
                batch.job_arn = Some(arn);
                batch.polls = 0;
                batch.last_error = None;
                batch.next_step_ms = self
                    .store
                    .now_ms()
                    .saturating_add(ms(self.settings.poll_after(0)));
                self.write(batch).await
            }
            Err(e) => self.failed_call(batch, e, "creating the batch job").await,
        }
    }

    /// SUBMITTED: where the service's job stands; its answers once done.
    async fn poll(&self, mut batch: Batch) -> Stepped {
        let Some(arn) = batch.job_arn.clone() else {
            return self
                .give_up(batch, "the batch row has no job ARN".into())
                .await;
        };
        match self.client.state(&arn).await {
            Ok(BatchJobState::Running) => {
                batch.polls += 1;
                batch.last_error = None;
                batch.next_step_ms = self
                    .store
                    .now_ms()
                    .saturating_add(ms(self.settings.poll_after(batch.polls)));
                self.write(batch).await
            }
            Ok(BatchJobState::Ended { status, message }) => {
                self.give_up(batch, format!("the batch job ended {status}: {message}"))
                    .await
            }
            Ok(BatchJobState::Completed) => self.answer(batch, &arn).await,
            Err(e) => self.failed_call(batch, e, "polling the batch job").await,
        }
    }

    /// The job completed: every job still in the batch answered from its
    /// record, or given back.
    async fn answer(&self, mut batch: Batch, arn: &str) -> Stepped {
        let Some(output_uri) = batch.output_uri.clone() else {
            return self
                .give_up(batch, "the batch row has no output URI".into())
                .await;
        };
        let lines = match self.client.output(&output_uri, arn).await {
            Ok(lines) => lines,
            Err(e) => return self.failed_call(batch, e, "reading the batch output").await,
        };
        let mut answers: HashMap<String, Result<Response, String>> = HashMap::new();
        for line in &lines {
            let read = self.client.answer(line);
            match read.record_id {
                Some(id) => {
                    answers.insert(id, read.answer);
                }
                None => tracing::warn!(batch = %batch.id, "an output line names no record"),
            }
        }
        let jobs = self.store.batch_jobs(&batch.id).await?;
        let mut back = Vec::new();
        let mut running = JoinSet::new();
        let concurrency = self.settings.concurrency.max(1);
        for claimed in jobs {
            match answers.remove(claimed.job.id.as_str()) {
                Some(Ok(response)) => {
                    // Answers finished meanwhile are written before another
                    // starts: no more than `concurrency` are ever worked on
                    // and not yet written, all a crash can make redo.
                    while running.len() >= concurrency {
                        self.settle(&batch, &mut running, &mut back).await?;
                    }
                    let runner = self.runner.clone();
                    let model = batch.model.clone();
                    running.spawn(async move {
                        let run = runner
                            .run_answered(&claimed.job, BatchAnswer { response, model })
                            .await;
                        (claimed, run)
                    });
                }
                Some(Err(why)) => {
                    tracing::info!(job_id = %claimed.job.id, batch = %batch.id, reason = %why, "batch record failed: the job runs on demand");
                    back.push(claimed.job.id);
                }
                None => {
                    tracing::info!(job_id = %claimed.job.id, batch = %batch.id, "no answer in the batch output: the job runs on demand");
                    back.push(claimed.job.id);
                }
            }
        }
        while !running.is_empty() {
            self.settle(&batch, &mut running, &mut back).await?;
        }
        if !back.is_empty() {
            let returned = self.store.return_batch_jobs(&batch.id, &back).await?;
            self.count_jobs(&batch, BatchJobResult::Returned, returned);
            self.wake();
        }
        (batch.answered, batch.returned) = self.store.batch_tally(&batch.id).await?;
        batch.status = BatchStatus::Done;
        batch.last_error = None;
        self.write(batch).await
    }

    /// Waits for the next answer to finish, takes every other finished
    /// by then, and writes their results; retryable failures go to `back`.
    async fn settle(
        &self,
        batch: &Batch,
        running: &mut JoinSet<(ClaimedJob, Run)>,
        back: &mut Vec<JobId>,
    ) -> Result<(), StoreError> {
        let mut ends = Vec::new();
        let mut next = running.join_next().await;
        while let Some(joined) = next {
            if let Ok((claimed, run)) = joined {
                let end = match run {
                    Ok((result, _)) => Some(JobEnd::Done(result)),
                    Err((failure, _)) if failure.retryable => {
                        back.push(claimed.job.id.clone());
                        None
                    }
                    Err((failure, _)) => Some(JobEnd::Failed(failure.failure)),
                };
                if let Some(end) = end {
                    ends.push(JobFinish {
                        id: claimed.job.id,
                        token: claimed.token,
                        end,
                        reply_to: None,
                    });
                }
            }
            if ends.len() >= WRITE_GROUP {
                self.finish(batch, &mut ends).await?;
            }
            next = running.try_join_next();
        }
        self.finish(batch, &mut ends).await
    }

    /// Writes the answers gathered (a result refused for a stale token is
    /// another process's to write), counting those recorded.
    async fn finish(&self, batch: &Batch, ends: &mut Vec<JobFinish>) -> Result<(), StoreError> {
        if ends.is_empty() {
            return Ok(());
        }
        let mut recorded = 0u64;
        for written in self.store.finish_all(ends).await {
            if written? {
                recorded += 1;
            }
        }
        ends.clear();
        self.count_jobs(batch, BatchJobResult::Answered, recorded);
        Ok(())
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
