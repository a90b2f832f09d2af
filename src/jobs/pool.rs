//! The database queue: claim jobs from the store, run each through the
//! process's [`JobRunner`], and record exactly one result.
//!
//! [`WorkerPool`] runs up to `concurrency` jobs at a time plus the
//! polling-table intake (new `soapgate_requests` rows become jobs, in id
//! order). [`WorkerPool::intake_only`] runs the intake alone, for
//! `queue.kind = "sqs"`, where the queue is the only way a job reaches a
//! worker (the store gives each new job an outbox row). One dispatcher claims as many jobs as there are free slots in one
//! transaction, and one committer writes the results that have piled up in
//! one transaction, so under load jobs share their writes. A claimed
//! job is leased; a heartbeat extends the lease every `lease / 3` while the
//! model works and stops the work when the store says the fencing token is
//! stale (the job was re-claimed elsewhere). Retryable failures go back to
//! the queue with exponential backoff and jitter until `max_attempts`, then
//! end FAILED with the last error; others end FAILED at once. Shutdown stops
//! claiming, lets in-flight jobs finish within a grace period, and releases
//! the rest (fenced) so another worker takes them at once.
//!
//! The result write is the store's fenced `finish_all` (as `complete` and
//! `fail`, several jobs per transaction), which also
//! writes the `soapgate_results` row in the same transaction; a worker that
//! dies before it leaves the job RUNNING, to be claimed again after its
//! lease. See ARCHITECTURE.md, "Exactly one result".

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

use super::run::{JobRunner, RunFailure};
use super::writer::ResultWriter;
use crate::backoff::equal_jitter;
use crate::config::WorkerSettings;
use crate::live::Live;
use crate::models::Models;
use crate::pipeline::Tries;
use crate::shutdown::Shutdown;
use crate::store::{ClaimedJob, Job, JobEnd, JobFinish, Store, StoreError};
use crate::tenants::Tenants;
use crate::xml::Limits;

/// The workers of one process: up to `concurrency` jobs at a time and the
/// polling-table intake, over one store and the live contracts and mappings
/// (or, made by [`WorkerPool::intake_only`], the intake alone).
pub struct WorkerPool {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPool")
            .field("name", &self.inner.name)
            .field("mode", &self.inner.mode)
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

/// What a pool runs besides the polling-table intake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `queue.kind = "database"`: claim jobs from the jobs table and run
    /// them, up to `concurrency` at a time.
    Claim,
    /// `queue.kind = "sqs"`: no claims; the queue's consumers run the jobs.
    IntakeOnly,
}

struct Inner {
    runner: JobRunner,
    store: Store,
    settings: WorkerSettings,
    mode: Mode,
    wake: Arc<Notify>,
    name: String,
}

impl WorkerPool {
    /// The database queue: claims and runs jobs, up to
    /// `settings.concurrency` at a time, and runs the intake.
    pub fn new(
        store: Store,
        live: Arc<Live>,
        model: Option<Arc<Models>>,
        settings: WorkerSettings,
        limits: Limits,
    ) -> WorkerPool {
        WorkerPool::with_mode(store, live, model, settings, limits, Mode::Claim)
    }

    /// The polling-table intake alone: request rows become jobs (with
    /// their outbox rows when the store is made `with_outbox(true)`), and
    /// no job is claimed from the table. For `queue.kind = "sqs"`, where the
    /// queue's consumers are the only ones to run jobs, so that every job
    /// gets its reply and its DLQ handling. `settings.concurrency` is not
    /// used.
    pub fn intake_only(
        store: Store,
        live: Arc<Live>,
        settings: WorkerSettings,
        limits: Limits,
    ) -> WorkerPool {
        WorkerPool::with_mode(store, live, None, settings, limits, Mode::IntakeOnly)
    }

    fn with_mode(
        store: Store,
        live: Arc<Live>,
        model: Option<Arc<Models>>,
        settings: WorkerSettings,
        limits: Limits,
        mode: Mode,
    ) -> WorkerPool {
        let host = std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.is_empty())
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "soapgate".to_owned());
        let name = format!("{host}:{}:{:04x}", std::process::id(), fastrand::u16(..));
        WorkerPool {
            inner: Arc::new(Inner {
                runner: JobRunner::new(store.clone(), live, model, limits),
                store,
                settings,
                mode,
                wake: Arc::new(Notify::new()),
                name,
            }),
        }
    }

    /// The same pool, running each job for its tenant: a job whose tenant
    /// is unknown, may not call the operation or is over its budget fails
    /// without a model call; every run leaves usage and audit rows. Call
    /// before [`WorkerPool::run`] (or [`WorkerPool::waker`]).
    pub fn with_tenants(mut self, tenants: Option<Arc<Tenants>>) -> WorkerPool {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.runner.tenants = tenants;
        }
        self
    }

    /// The same pool, woken by `wake` instead of a notifier of its own (one
    /// made before the pool, for HTTP to hold while the store connects).
    /// Call before [`WorkerPool::run`].
    pub fn with_waker(mut self, wake: Arc<Notify>) -> WorkerPool {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.wake = wake;
        }
        self
    }

    /// Notified after an enqueue in this process, an idle worker looks for
    /// work at once instead of at its next poll.
    pub fn waker(&self) -> Arc<Notify> {
        self.inner.wake.clone()
    }

    /// Runs until `shutdown` completes, then stops claiming, waits up to the
    /// grace period for jobs in flight and releases those still running.
    /// An intake-only pool stops taking in request rows and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), StoreError> {
        let inner = self.inner;
        inner
            .runner
            .ensure_columns(&inner.runner.live().snapshot())
            .await?;
        // `stop`: claim nothing more; `abort`: release what still runs.
        let (stop, abort) = (Shutdown::new(), Shutdown::new());
        let mut tasks = JoinSet::new();
        tasks.spawn(inner.clone().intake(stop.clone()));
        match inner.mode {
            Mode::Claim => {
                // Results go to one writer, which ends when the dispatcher
                // and every job it started have dropped their handles.
                let (writer, writing) =
                    ResultWriter::new(inner.store.clone(), inner.settings.concurrency);
                tasks.spawn(writing);
                tasks.spawn(inner.clone().dispatch(stop.clone(), abort.clone(), writer));
                tracing::info!(
                    worker = %inner.name,
                    concurrency = inner.settings.concurrency,
                    lease_ms = inner.settings.lease_ms,
                    backend = ?inner.store.backend(),
                    "workers started"
                );
            }
            Mode::IntakeOnly => tracing::info!(
                worker = %inner.name,
                backend = ?inner.store.backend(),
                "polling-table intake started (no claims from the jobs table: the queue delivers)"
            ),
        }
        shutdown.await;
        tracing::info!(worker = %inner.name, "workers stopping: no new claims");
        stop.trigger();
        let grace = inner.settings.shutdown_grace();
        let drained =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!(
                worker = %inner.name,
                grace_ms = inner.settings.shutdown_grace_ms,
                "jobs still running after the grace period: releasing them"
            );
            abort.trigger();
            while tasks.join_next().await.is_some() {}
        }
        tracing::info!(worker = %inner.name, "workers stopped");
        Ok(())
    }
}

impl Inner {
    /// Turns new `soapgate_requests` rows into jobs, oldest first.
    async fn intake(self: Arc<Self>, stop: Shutdown) {
        let id = format!("{}/intake", self.name);
        let mut failures = 0u32;
        while !stop.is_triggered() {
            let wait = match self.store.claim_request(&id).await {
                Ok(Some(picked)) => {
                    failures = 0;
                    tracing::debug!(
                        request_id = picked.request.id,
                        job_id = %picked.job_id,
                        correlation_id = %picked.request.correlation_id,
                        "request row queued"
                    );
                    // A job waiting for a batch is not due: no worker
                    // would find it now.
                    if !picked.held {
                        self.wake.notify_one();
                    }
                    continue;
                }
                Ok(None) => self.settings.poll_interval(),
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, "picking up request rows failed");
                    self.db_backoff(failures)
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = stop.wait() => {}
            }
        }
    }

    /// After `failures` store errors in a row: a growing pause, at most 5 s.
    fn db_backoff(&self, failures: u32) -> Duration {
        equal_jitter(
            failures,
            self.settings.poll_interval(),
            Duration::from_secs(5).max(self.settings.poll_interval()),
            None,
        )
    }

    /// Claims jobs for the free slots, as many as are free in one claim,
    /// and runs each in a task of its own; stops claiming when `stop` is
    /// raised and returns when the jobs it started have ended.
    async fn dispatch(self: Arc<Self>, stop: Shutdown, abort: Shutdown, writer: ResultWriter) {
        // The settings refuse 0; a pool that claims has at least one slot.
        let concurrency = self.settings.concurrency.max(1);
        let slots = Arc::new(Semaphore::new(concurrency));
        let lease = self.settings.lease();
        let mut running = JoinSet::new();
        let mut failures = 0u32;
        while !stop.is_triggered() {
            // Wait for one free slot, then take every other free one.
            let first = tokio::select! {
                permit = slots.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
                () = stop.wait() => break,
            };
            let mut permits = vec![first];
            while let Ok(permit) = slots.clone().try_acquire_owned() {
                permits.push(permit);
            }
            while running.try_join_next().is_some() {}
            let wait = match self
                .store
                .claim_many(&self.name, lease, permits.len())
                .await
            {
                Ok(claimed) if !claimed.is_empty() => {
                    failures = 0;
                    for (job, permit) in claimed.into_iter().zip(permits.drain(..)) {
                        let inner = self.clone();
                        let abort = abort.clone();
                        let writer = writer.clone();
                        running.spawn(async move {
                            inner.process(job, abort, &writer).await;
                            drop(permit);
                        });
                    }
                    continue;
                }
                Ok(_) => self.settings.poll_interval(),
                Err(e) => {
                    failures += 1;
                    tracing::warn!(worker = %self.name, error = %e, "claiming jobs failed");
                    self.db_backoff(failures)
                }
            };
            drop(permits);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.wake.notified() => {}
                () = stop.wait() => {}
            }
        }
        while running.join_next().await.is_some() {}
    }

    /// Runs one claimed job to its recorded end (or to its release).
    async fn process(&self, claimed: ClaimedJob, abort: Shutdown, writer: &ResultWriter) {
        let ClaimedJob { job, token } = claimed;
        let started = Instant::now();
        let lease = self.settings.lease();
        // Matches the retry rule in `record`: attempts left means a
        // retryable failure is retried, not degraded.
        let tries = if job.attempts < i64::from(self.settings.max_attempts) {
            Tries::MoreLeft
        } else {
            Tries::Last
        };
        let run = self.runner.run(&job, tries);
        let outcome = tokio::select! {
            outcome = run => outcome,
            () = self.keep_leased(&job, token) => {
                tracing::warn!(
                    job_id = %job.id,
                    correlation_id = %job.correlation_id,
                    "lease lost (the job was claimed again elsewhere): work abandoned"
                );
                return;
            }
            () = abort.wait() => {
                match self.store.release(&job.id, token).await {
                    Ok(released) => tracing::info!(job_id = %job.id, released, "job released at shutdown"),
                    Err(e) => tracing::warn!(job_id = %job.id, error = %e, "releasing the job failed; it is claimed again after its lease"),
                }
                return;
            }
        };
        let (end, used, detail) = match outcome {
            Ok((result, used)) => (JobEnd::Done(result), used, String::new()),
            Err((failure, used)) => {
                let detail = failure.detail.clone();
                (self.end_of_failure(&job, failure), used, detail)
            }
        };
        let status = end.label();
        let recorded = self.record(&job, token, end, lease, writer).await;
        tracing::info!(
            job_id = %job.id,
            correlation_id = %job.correlation_id,
            service = %job.service,
            operation = %job.operation,
            attempt = job.attempts,
            status,
            recorded,
            model_calls = used.model_calls,
            model = used.model_label(),
            input_tokens = used.input_tokens,
            output_tokens = used.output_tokens,
            stop_reason = used.stop_reason_label(),
            detail,
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            "job"
        );
    }

    /// Heartbeats every `heartbeat` period; resolves only when the store
    /// says the token is stale (store errors are logged and tried again:
    /// the lease may still be ours).
    async fn keep_leased(&self, job: &Job, token: i64) {
        let period = self.settings.heartbeat();
        let lease = self.settings.lease();
        loop {
            tokio::time::sleep(period).await;
            match self.store.heartbeat(&job.id, token, lease).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!(job_id = %job.id, error = %e, "heartbeat failed");
                }
            }
        }
    }

    /// How a failed run ends: back to the queue after a backoff while a
    /// retry may help and attempts are left, else FAILED.
    fn end_of_failure(&self, job: &Job, failure: RunFailure) -> JobEnd {
        if failure.retryable && job.attempts < i64::from(self.settings.max_attempts) {
            let delay = equal_jitter(
                u32::try_from(job.attempts).unwrap_or(u32::MAX),
                self.settings.backoff_base(),
                self.settings.backoff_cap(),
                failure.retry_after,
            );
            JobEnd::Retry(failure.failure, delay)
        } else {
            JobEnd::Failed(failure.failure)
        }
    }

    /// Writes the run's end, retrying store errors for up to one lease (by
    /// then another worker may own the job, and the fence refuses us).
    /// True when this worker's write was the one recorded.
    async fn record(
        &self,
        job: &Job,
        token: i64,
        end: JobEnd,
        lease: Duration,
        writer: &ResultWriter,
    ) -> bool {
        let deadline = Instant::now() + lease;
        let finish = JobFinish {
            id: job.id.clone(),
            token,
            end,
            reply_to: None,
        };
        let mut failures = 0u32;
        loop {
            let written = writer.write(finish.clone()).await;
            match written {
                Ok(true) => return true,
                Ok(false) => {
                    tracing::warn!(
                        job_id = %job.id,
                        correlation_id = %job.correlation_id,
                        "result refused: the job was claimed again elsewhere (stale token)"
                    );
                    return false;
                }
                Err(e) => {
                    failures += 1;
                    let pause = equal_jitter(
                        failures,
                        Duration::from_millis(50),
                        Duration::from_secs(2),
                        None,
                    );
                    if Instant::now() + pause > deadline {
                        tracing::error!(
                            job_id = %job.id,
                            error = %e,
                            "recording the result failed for a whole lease; the job runs again elsewhere"
                        );
                        return false;
                    }
                    tracing::warn!(job_id = %job.id, error = %e, "recording the result failed; retrying");
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }
}
