//! Job workers: claim jobs from the store, run each through the same
//! pipeline as an HTTP call, and record exactly one result.
//!
//! [`execute`] runs one stored job: its payload (a whole SOAP envelope, or
//! a bare request payload that is wrapped in a SOAP 1.1 envelope) is
//! prepared and run like a call, and the outcome becomes a [`JobResult`]
//! (the response payload XML) or a [`RunFailure`] carrying the fault code
//! the HTTP path would have answered.
//!
//! [`WorkerPool`] runs up to `concurrency` jobs at a time plus the
//! polling-table intake (new `soapgate_requests` rows become jobs, in id
//! order). One dispatcher claims as many jobs as there are free slots in one
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
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinSet;

use crate::bedrock::Models;
use crate::config::WorkerSettings;
use crate::error::GatewayError;
use crate::live::{Live, Snapshot};
use crate::pipeline::{self, CallContext, Inbound, Outcome, Reply, Tries};
use crate::soap::{self, SoapVersion};
use crate::store::{ClaimedJob, Job, JobEnd, JobFailure, JobFinish, JobResult, Store, StoreError};
use crate::tenants::{CallRecord, Tenants, sha256_hex};
use crate::xml::{self, Limits};

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
            _ => (false, None),
        };
        RunFailure {
            failure: JobFailure {
                fault_code: fault.code.as_str().to_owned(),
                fault_text: fault.message,
            },
            retryable,
            retry_after,
            detail: err.to_string(),
        }
    }
}

/// Runs one stored job through the pipeline, as an HTTP call would run:
/// read under `limits`, dispatch, validate, render, call the model, repair,
/// failure policy. The dispatched operation must be the job's `operation`.
pub async fn execute(
    snapshot: &Snapshot,
    model: Option<&Models>,
    limits: &Limits,
    job: &Job,
    tries: Tries,
) -> Result<(JobResult, Outcome), (RunFailure, Outcome)> {
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
    let run = run_job(snapshot, model, limits, job, tries, &mut outcome);
    let result = match tracing::Instrument::instrument(run, span).await {
        Ok(result) => Ok((result, outcome)),
        Err(err) => Err((RunFailure::from_error(&err, &job.correlation_id), outcome)),
    };
    if let Some(models) = model {
        let (label, outcome) = match &result {
            Ok((_, o)) => (pipeline::outcome_label(o, None), o),
            Err((f, o)) => (f.failure.fault_code.clone(), o),
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

async fn run_job(
    snapshot: &Snapshot,
    model: Option<&Models>,
    limits: &Limits,
    job: &Job,
    tries: Tries,
    outcome: &mut Outcome,
) -> Result<JobResult, GatewayError> {
    // The named operation must exist before its payload is looked at, so a
    // typo in the operation column reads as such, not as a schema error.
    let Some((_, service)) = snapshot.contracts.service(&job.service) else {
        return Err(GatewayError::UnknownService(job.service.clone()));
    };
    if !service.operations.iter().any(|o| o.name == job.operation) {
        return Err(GatewayError::NoSuchOperation {
            service: job.service.clone(),
            operation: job.operation.clone(),
        });
    }
    let bytes = as_envelope(&job.payload, limits)?;
    let mut ctx = CallContext::new(&job.service, None);
    ctx.correlation_id.clone_from(&job.correlation_id);
    // The payload is stored as text, so it is UTF-8 whatever an XML
    // declaration in it says.
    let inbound = Inbound {
        charset: Some("utf-8"),
        version: None,
        action: None,
    };
    let prepared = pipeline::prepare(&snapshot.contracts, &inbound, &bytes, limits, &mut ctx)?;
    let dispatched = prepared.operation().name.clone();
    if dispatched != job.operation {
        return Err(GatewayError::OperationMismatch {
            named: job.operation.clone(),
            dispatched,
        });
    }
    let columns = snapshot
        .mappings
        .plan(&job.service, &job.operation)
        .map(|plan| plan.result_columns().to_vec())
        .unwrap_or_default();
    let reply = pipeline::run(
        prepared,
        &snapshot.mappings,
        model,
        &job.correlation_id,
        outcome,
        tries,
    )
    .await?;
    let payload = match reply {
        Reply::Payload(elements) => elements,
        Reply::Accepted => Vec::new(),
    };
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

/// The stored payload as envelope bytes: a SOAP envelope (1.1 or 1.2) as
/// is, anything else as the payload of a SOAP 1.1 envelope.
fn as_envelope(payload: &str, limits: &Limits) -> Result<Vec<u8>, GatewayError> {
    let doc = xml::read_str(payload, limits)?;
    if doc.root.name.local == "Envelope"
        && SoapVersion::from_envelope_ns(&doc.root.name.ns).is_some()
    {
        return Ok(payload.as_bytes().to_vec());
    }
    let envelope = soap::response::envelope(SoapVersion::V11, Vec::new(), vec![doc.root]);
    Ok(xml::write_document(&envelope, xml::Charset::Utf8))
}

/// The delay before attempt `attempt + 1` after `attempt` failed runs:
/// `base * 2^(attempt-1)` capped at `cap`, of which a random half is taken
/// off (so workers that failed together do not retry together), and never
/// less than the service's own hint.
pub fn backoff(attempt: u32, base: Duration, cap: Duration, hint: Option<Duration>) -> Duration {
    let exp = attempt.saturating_sub(1).min(30);
    let full = base.saturating_mul(1u32 << exp).min(cap);
    let half = full / 2;
    let jitter_ms = fastrand::u64(0..=u64::try_from(half.as_millis()).unwrap_or(u64::MAX));
    let delay = half + Duration::from_millis(jitter_ms);
    hint.map_or(delay, |h| delay.max(h.min(cap)))
}

/// Whether a job may run for its tenant: a known tenant (polling-table rows
/// name theirs; an HTTP job carries its caller's), allowed the operation,
/// within its budgets.
pub async fn gate_job(tenants: &Tenants, store: &Store, job: &Job) -> Result<(), GatewayError> {
    let Some(tenant) = job.tenant.as_deref().filter(|t| tenants.knows(t)) else {
        return Err(GatewayError::Unauthenticated(format!(
            "job {} names no configured tenant ({:?})",
            job.id, job.tenant
        )));
    };
    tenants.authorize(tenant, &job.service, &job.operation, None)?;
    tenants.check_budget(Some(store), tenant).await
}

/// The usage and audit rows of one run of a job, under its tenant.
pub async fn record_job(
    tenants: &Tenants,
    store: &Store,
    job: &Job,
    outcome: &Result<(JobResult, Outcome), (RunFailure, Outcome)>,
) {
    let (code, attempts, response) = match outcome {
        Ok((result, o)) => ("ok", &o.attempts, Some(result.payload.as_str())),
        Err((f, o)) => (f.failure.fault_code.as_str(), &o.attempts, None),
    };
    let sha = sha256_hex(job.payload.as_bytes());
    let call = CallRecord {
        tenant: job.tenant.as_deref(),
        principal: None,
        source: "job",
        service: &job.service,
        operation: Some(&job.operation),
        correlation_id: &job.correlation_id,
        job_id: Some(job.id.as_str()),
        outcome: code,
        payload_sha256: Some(&sha),
        request: Some(&job.payload),
        response,
        attempts,
    };
    tenants.record(Some(store), &call).await;
}

/// The workers of one process: up to `concurrency` jobs at a time and the
/// polling-table intake, over one store and the live contracts and mappings.
pub struct WorkerPool {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPool")
            .field("name", &self.inner.name)
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

struct Inner {
    store: Store,
    live: Arc<Live>,
    model: Option<Arc<Models>>,
    settings: WorkerSettings,
    limits: Limits,
    wake: Arc<Notify>,
    name: String,
    /// The snapshot generation whose result columns exist in the store.
    columns_generation: AtomicU64,
    /// When tenants are configured: jobs run for their tenant (allow list,
    /// budgets) and leave usage and audit rows under it.
    tenants: Option<Arc<Tenants>>,
}

impl WorkerPool {
    pub fn new(
        store: Store,
        live: Arc<Live>,
        model: Option<Arc<Models>>,
        settings: WorkerSettings,
        limits: Limits,
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
                store,
                live,
                model,
                settings,
                limits,
                wake: Arc::new(Notify::new()),
                name,
                columns_generation: AtomicU64::new(0),
                tenants: None,
            }),
        }
    }

    /// The same pool, running each job for its tenant: a job whose tenant
    /// is unknown, may not call the operation or is over its budget fails
    /// without a model call; every run leaves usage and audit rows. Call
    /// before [`WorkerPool::run`] (or [`WorkerPool::waker`]).
    pub fn with_tenants(mut self, tenants: Option<Arc<Tenants>>) -> WorkerPool {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.tenants = tenants;
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
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), StoreError> {
        let inner = self.inner;
        inner.ensure_columns(&inner.live.snapshot()).await?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let (abort_tx, abort_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        tasks.spawn(inner.clone().intake(stop_rx.clone()));
        // Results go to one writer, which ends when the dispatcher and
        // every job it started have dropped their handles.
        let (writer, writing) = ResultWriter::new(inner.store.clone(), inner.settings.concurrency);
        tasks.spawn(writing);
        tasks.spawn(inner.clone().dispatch(stop_rx.clone(), abort_rx, writer));
        tracing::info!(
            worker = %inner.name,
            concurrency = inner.settings.concurrency,
            lease_ms = inner.settings.lease_ms,
            backend = ?inner.store.backend(),
            "workers started"
        );
        shutdown.await;
        tracing::info!(worker = %inner.name, "workers stopping: no new claims");
        let _ = stop_tx.send(true);
        let grace = inner.settings.shutdown_grace();
        let drained =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!(
                worker = %inner.name,
                grace_ms = inner.settings.shutdown_grace_ms,
                "jobs still running after the grace period: releasing them"
            );
            let _ = abort_tx.send(true);
            while tasks.join_next().await.is_some() {}
        }
        tracing::info!(worker = %inner.name, "workers stopped");
        Ok(())
    }
}

/// Writes the ends of runs in groups, for every task of a process that
/// finishes jobs: whatever arrived while one group was being written goes
/// in the next transaction ([`Store::finish_all`]), so under load many jobs
/// share one commit, and a lone job waits for nobody. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ResultWriter {
    tx: mpsc::Sender<Commit>,
}

/// One end on its way to the writer, and where its answer goes.
#[derive(Debug)]
struct Commit {
    end: JobFinish,
    reply: oneshot::Sender<Result<bool, StoreError>>,
}

impl ResultWriter {
    /// Most ends written in one transaction.
    const MAX_GROUP: usize = 64;

    /// A writer for `store`, about `capacity` writes deep, and the future
    /// that does the writing; it ends once every handle is dropped. Two
    /// groups are in progress at a time: while one commits, the next is
    /// gathered and sent, so a job that ends during a commit does not wait
    /// for that commit and then its own in turn.
    pub fn new(store: Store, capacity: usize) -> (ResultWriter, impl Future<Output = ()>) {
        let (tx, rx) = mpsc::channel::<Commit>(capacity.max(1));
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let write_groups = |store: Store, rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Commit>>>| async move {
            let mut group = Vec::with_capacity(Self::MAX_GROUP);
            loop {
                // The lock is held only while gathering, not while writing.
                let gathered = rx.lock().await.recv_many(&mut group, Self::MAX_GROUP).await;
                if gathered == 0 {
                    return;
                }
                let (ends, replies): (Vec<JobFinish>, Vec<_>) =
                    group.drain(..).map(|c| (c.end, c.reply)).unzip();
                let written = store.finish_all(&ends).await;
                for (reply, result) in replies.into_iter().zip(written) {
                    let _ = reply.send(result);
                }
            }
        };
        let one = write_groups(store.clone(), rx.clone());
        let two = write_groups(store, rx);
        let writing = async move {
            tokio::join!(one, two);
        };
        (ResultWriter { tx }, writing)
    }

    /// Records one end, fenced (see [`Store::finish_all`]): true when this
    /// write was the one recorded, false when the token was stale or the
    /// job had already ended.
    pub async fn write(&self, end: JobFinish) -> Result<bool, StoreError> {
        let (reply, answer) = oneshot::channel();
        // The writer lives as long as any handle, so it is gone only if it
        // died.
        self.tx
            .send(Commit { end, reply })
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        answer.await.map_err(|_| StoreError::WriterStopped)?
    }
}

/// Resolves when the flag becomes true (or its sender is gone).
async fn raised(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

impl Inner {
    /// Adds the result columns the snapshot's mappings declare, once per
    /// snapshot generation.
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
            let added = self.store.ensure_result_columns(&columns).await?;
            if !added.is_empty() {
                tracing::info!(columns = ?added, "added result columns to soapgate_results");
            }
        }
        self.columns_generation
            .store(snapshot.generation, Ordering::Release);
        Ok(())
    }

    /// Turns new `soapgate_requests` rows into jobs, oldest first.
    async fn intake(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let id = format!("{}/intake", self.name);
        let mut failures = 0u32;
        while !*stop.borrow() {
            let wait = match self.store.claim_request(&id).await {
                Ok(Some(picked)) => {
                    failures = 0;
                    tracing::debug!(
                        request_id = picked.request.id,
                        job_id = %picked.job_id,
                        correlation_id = %picked.request.correlation_id,
                        "request row queued"
                    );
                    self.wake.notify_one();
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
                () = raised(&mut stop) => {}
            }
        }
    }

    /// After `failures` store errors in a row: a growing pause, at most 5 s.
    fn db_backoff(&self, failures: u32) -> Duration {
        backoff(
            failures,
            self.settings.poll_interval(),
            Duration::from_secs(5).max(self.settings.poll_interval()),
            None,
        )
    }

    /// Claims jobs for the free slots, as many as are free in one claim,
    /// and runs each in a task of its own; stops claiming when `stop` is
    /// raised and returns when the jobs it started have ended.
    async fn dispatch(
        self: Arc<Self>,
        mut stop: watch::Receiver<bool>,
        abort: watch::Receiver<bool>,
        writer: ResultWriter,
    ) {
        let concurrency = self.settings.concurrency.max(1);
        let slots = Arc::new(Semaphore::new(concurrency));
        let lease = self.settings.lease();
        let mut running = JoinSet::new();
        let mut failures = 0u32;
        while !*stop.borrow() {
            // Wait for one free slot, then take every other free one.
            let first = tokio::select! {
                permit = slots.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
                () = raised(&mut stop) => break,
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
                () = raised(&mut stop) => {}
            }
        }
        while running.join_next().await.is_some() {}
    }

    /// Runs one claimed job to its recorded end (or to its release).
    async fn process(
        &self,
        claimed: ClaimedJob,
        mut abort: watch::Receiver<bool>,
        writer: &ResultWriter,
    ) {
        let ClaimedJob { job, token } = claimed;
        let started = Instant::now();
        let snapshot = self.live.snapshot();
        if let Err(e) = self.ensure_columns(&snapshot).await {
            tracing::warn!(error = %e, "adding result columns failed; retrying with the next job");
        }
        let lease = self.settings.lease();
        let gate = match &self.tenants {
            Some(tenants) => gate_job(tenants, &self.store, &job).await,
            None => Ok(()),
        };
        let run = async {
            match gate {
                Ok(()) => {
                    // Matches the RETRY rule below: attempts left means a
                    // retryable failure is retried, not degraded.
                    let tries = if job.attempts < i64::from(self.settings.max_attempts) {
                        Tries::MoreLeft
                    } else {
                        Tries::Last
                    };
                    execute(&snapshot, self.model.as_deref(), &self.limits, &job, tries).await
                }
                Err(e) => Err((
                    RunFailure::from_error(&e, &job.correlation_id),
                    Outcome::default(),
                )),
            }
        };
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
            () = raised(&mut abort) => {
                match self.store.release(&job.id, token).await {
                    Ok(released) => tracing::info!(job_id = %job.id, released, "job released at shutdown"),
                    Err(e) => tracing::warn!(job_id = %job.id, error = %e, "releasing the job failed; it is claimed again after its lease"),
                }
                return;
            }
        };
        let (status, used, detail) = match &outcome {
            Ok((_, o)) => ("DONE", o, String::new()),
            Err((f, o)) if f.retryable && job.attempts < i64::from(self.settings.max_attempts) => {
                ("RETRY", o, f.detail.clone())
            }
            Err((f, o)) => ("FAILED", o, f.detail.clone()),
        };
        let calls = used.model_calls;
        // Taken before `record` takes the outcome.
        let model = used.model_label().to_string();
        let (input_tokens, output_tokens) = (used.input_tokens, used.output_tokens);
        let stop_reason = used.stop_reason_label().to_string();
        if let Some(tenants) = &self.tenants {
            record_job(tenants, &self.store, &job, &outcome).await;
        }
        let recorded = self.record(&job, token, outcome, lease, writer).await;
        tracing::info!(
            job_id = %job.id,
            correlation_id = %job.correlation_id,
            service = %job.service,
            operation = %job.operation,
            attempt = job.attempts,
            status,
            recorded,
            model_calls = calls,
            model,
            input_tokens,
            output_tokens,
            stop_reason,
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

    /// Writes the run's end, retrying store errors for up to one lease (by
    /// then another worker may own the job, and the fence refuses us).
    /// True when this worker's write was the one recorded.
    async fn record(
        &self,
        job: &Job,
        token: i64,
        outcome: Result<(JobResult, Outcome), (RunFailure, Outcome)>,
        lease: Duration,
        writer: &ResultWriter,
    ) -> bool {
        let deadline = Instant::now() + lease;
        let max_attempts = i64::from(self.settings.max_attempts);
        let retry = match &outcome {
            Err((f, _)) if f.retryable && job.attempts < max_attempts => Some(backoff(
                u32::try_from(job.attempts).unwrap_or(u32::MAX),
                self.settings.backoff_base(),
                self.settings.backoff_cap(),
                f.retry_after,
            )),
            _ => None,
        };
        let end = match outcome {
            Ok((result, _)) => JobEnd::Done(result),
            Err((f, _)) => match retry {
                Some(delay) => JobEnd::Retry(f.failure, delay),
                None => JobEnd::Failed(f.failure),
            },
        };
        let finish = JobFinish {
            id: job.id.clone(),
            token,
            end,
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
                    let pause = backoff(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_result_writer_answers_every_end_and_stops_with_its_last_handle() {
        use crate::store::{JobSource, NewJob};
        let store = Store::connect("sqlite::memory:").await.expect("store");
        for n in 0..40 {
            store
                .enqueue(&NewJob {
                    service: "S".into(),
                    operation: "O".into(),
                    correlation_id: format!("c-{n}"),
                    payload: "<a/>".into(),
                    idempotency_key: None,
                    source: JobSource::Requests,
                    tenant: None,
                })
                .await
                .expect("enqueue");
        }
        let claimed = store
            .claim_many("w", Duration::from_secs(60), 40)
            .await
            .expect("claim");
        assert_eq!(claimed.len(), 40);
        let (writer, writing) = ResultWriter::new(store.clone(), 4);
        let writing = tokio::spawn(writing);
        let mut ends = JoinSet::new();
        for (n, c) in claimed.into_iter().enumerate() {
            let writer = writer.clone();
            // Every fifth end carries a stale token and must be refused.
            let stale = n % 5 == 0;
            ends.spawn(async move {
                let end = JobFinish {
                    id: c.job.id,
                    token: if stale { c.token - 1 } else { c.token },
                    end: JobEnd::Done(JobResult {
                        payload: format!("<r>{n}</r>"),
                        model: None,
                        input_tokens: None,
                        output_tokens: None,
                        columns: Vec::new(),
                    }),
                };
                (stale, writer.write(end).await.expect("written"))
            });
        }
        while let Some(joined) = ends.join_next().await {
            let (stale, recorded) = joined.expect("task");
            assert_eq!(recorded, !stale);
        }
        let counts = store.job_counts().await.expect("counts");
        assert_eq!((counts.done, counts.running), (32, 8));
        drop(writer);
        tokio::time::timeout(Duration::from_secs(5), writing)
            .await
            .expect("the writer stops once its handles are gone")
            .expect("writer task");
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_keeps_half() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(1);
        for _ in 0..100 {
            let d1 = backoff(1, base, cap, None);
            assert!(d1 >= Duration::from_millis(50) && d1 <= base, "{d1:?}");
            let d3 = backoff(3, base, cap, None);
            assert!(d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400));
            let d10 = backoff(10, base, cap, None);
            assert!(d10 >= cap / 2 && d10 <= cap, "{d10:?}");
            let hinted = backoff(1, base, cap, Some(Duration::from_millis(700)));
            assert!(hinted >= Duration::from_millis(700), "{hinted:?}");
        }
    }

    #[test]
    fn bare_payloads_are_wrapped_and_envelopes_kept() {
        let limits = Limits::default();
        let bare = "<?xml version=\"1.0\"?><a:Ping xmlns:a=\"urn:a\">x</a:Ping>";
        let wrapped = as_envelope(bare, &limits).expect("wraps");
        let doc = xml::read(&wrapped, None, &limits).expect("reads back");
        assert_eq!(doc.root.name.local, "Envelope");
        assert_eq!(doc.root.name.ns, SoapVersion::V11.envelope_ns());
        let env = format!(
            "<e:Envelope xmlns:e=\"{}\"><e:Body><a:Ping xmlns:a=\"urn:a\"/></e:Body></e:Envelope>",
            SoapVersion::V12.envelope_ns()
        );
        assert_eq!(as_envelope(&env, &limits).expect("kept"), env.as_bytes());
        let err = as_envelope("<a:Ping xmlns:a=\"urn:a\">", &limits).expect_err("malformed");
        assert_eq!(err.code().as_str(), "MALFORMED_XML");
    }
}
