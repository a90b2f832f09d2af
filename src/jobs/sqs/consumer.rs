//! The consumers: long-poll the request queue, claim each message's job
//! (or admit a request from outside through the door), run it through the
//! process's [`JobExecutor`] with visibility and lease heartbeats, write its
//! end, send the reply and delete the message. The receive loops share
//! `pollers × batch_size` slots and receive only for free ones; each
//! message is handled in a task of its own, so a slow job holds one slot,
//! not its batch.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;

use super::{
    ATTR_CORRELATION_ID, ATTR_JOB_ID, ATTR_OPERATION, ATTR_REPLY_TO, ATTR_SERVICE, QueueError,
    SqsQueue, retry_pause,
};
use crate::backoff;
use crate::error::GatewayError;
use crate::jobs::payload::{declared_fault, request_version, result_elements};
use crate::jobs::{Execution, JobExecutor, ResultWriter, Route};
use crate::pipeline::Tries;
use crate::shutdown::Shutdown;
use crate::soap::{ErrorCode, Fault, response};
use crate::store::{
    Job, JobClaim, JobEnd, JobFailure, JobFinish, JobId, JobSource, JobStatus, NewJob, Store, keys,
};
use crate::xml::{self, Limits};

/// Receives messages from the request queue and runs their jobs.
pub struct Consumer {
    store: Store,
    queue: SqsQueue,
    executor: Arc<dyn JobExecutor>,
    worker_id: String,
    limits: Limits,
}

impl fmt::Debug for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("queue", &self.queue)
            .field("worker_id", &self.worker_id)
            .finish_non_exhaustive()
    }
}

/// What to do with a message once its job has been dealt with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Disposal {
    /// The job has its result: remove the message.
    Delete,
    /// Leave it: it reappears when its visibility ends (or is moved to the
    /// DLQ by the redrive policy).
    Leave,
}

impl Consumer {
    pub fn new(
        store: Store,
        queue: SqsQueue,
        executor: Arc<dyn JobExecutor>,
        limits: Limits,
    ) -> Consumer {
        Consumer {
            store,
            queue,
            executor,
            worker_id: format!(
                "sqs-{}-{}",
                std::process::id(),
                uuid::Uuid::new_v4().simple()
            ),
            limits,
        }
    }

    /// Runs `pollers` receive loops and the batch deleter until `shutdown`;
    /// jobs in flight finish first.
    ///
    /// The process runs at most `pollers × batch_size` jobs at once: the
    /// receive loops share that many slots, and a loop receives only as
    /// many messages as there are free slots (at most `batch_size`), so a
    /// message is never held invisible here while it waits for a slot.
    /// Each message is handled in a task of its own that frees its slot
    /// when it ends, so a slow job holds only its own slot, never the rest
    /// of the batch it came with.
    pub async fn run(self: Arc<Self>, shutdown: Shutdown) {
        let s = self.queue.settings();
        let slots = (s.pollers.max(1) as usize) * (s.batch_size.clamp(1, 10) as usize);
        let free = Arc::new(Semaphore::new(slots));
        let (delete_tx, delete_rx) = mpsc::unbounded_channel::<String>();
        let deleter = tokio::spawn(deleter(self.queue.clone(), delete_rx));
        // Replies whose send failed (or whose process died before it) are
        // sent from the reply outbox.
        let replies = tokio::spawn(self.clone().reply_relay(shutdown.clone()));
        // Jobs whose message is gone are sent again.
        let reconciler = tokio::spawn(self.clone().reconcile(shutdown.clone()));
        // Results of every job of the process share write transactions.
        let (writer, writing) = ResultWriter::new(self.store.clone(), slots);
        let writing = tokio::spawn(writing);
        // The loops hand each message over with its slot; one slot per
        // message in the channel, so a send never waits.
        let (work_tx, mut work_rx) = mpsc::channel::<(Message, OwnedSemaphorePermit)>(slots);
        let mut pollers = JoinSet::new();
        for _ in 0..s.pollers.max(1) {
            pollers.spawn(
                self.clone()
                    .poll_loop(free.clone(), work_tx.clone(), shutdown.clone()),
            );
        }
        drop(work_tx);
        let mut running = JoinSet::new();
        loop {
            tokio::select! {
                received = work_rx.recv() => match received {
                    Some((message, slot)) => {
                        let me = self.clone();
                        let deletes = delete_tx.clone();
                        let writer = writer.clone();
                        running.spawn(async move {
                            me.handle_message(message, &deletes, &writer).await;
                            drop(slot);
                        });
                    }
                    // Every loop has stopped (at shutdown).
                    None => break,
                },
                Some(_) = running.join_next(), if !running.is_empty() => {}
            }
        }
        while pollers.join_next().await.is_some() {}
        // The jobs in flight finish, write their results and queue their
        // deletes before the writer and the deleter stop.
        while running.join_next().await.is_some() {}
        drop(delete_tx);
        drop(writer);
        let _ = deleter.await;
        let _ = writing.await;
        let _ = replies.await;
        let _ = reconciler.await;
    }

    /// Every `reconcile_every`, gives an outbox row to the jobs QUEUED (or
    /// RUNNING under an ended lease) for `reconcile_after` with none: their
    /// message may be gone (a purged queue). Runs until `shutdown`.
    async fn reconcile(self: Arc<Self>, shutdown: Shutdown) {
        let s = self.queue.settings();
        let Some(after) = s.reconcile_after() else {
            return;
        };
        let every = s.reconcile_every();
        while !shutdown.is_triggered() {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = shutdown.wait() => break,
            }
            loop {
                match self.store.requeue_lost(after, RECONCILE_ROWS).await {
                    Ok(ids) if ids.is_empty() => break,
                    Ok(ids) => {
                        tracing::warn!(jobs = ids.len(), first = %ids[0], after_secs = after.as_secs(), "jobs without news sent again (their message may be gone)");
                        if ids.len() < RECONCILE_ROWS as usize {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "reconciling jobs failed");
                        break;
                    }
                }
            }
        }
    }

    /// Sends due rows of the reply outbox until `shutdown`.
    async fn reply_relay(self: Arc<Self>, shutdown: Shutdown) {
        const IDLE: Duration = Duration::from_millis(250);
        let mut failures: u32 = 0;
        while !shutdown.is_triggered() {
            let pause = match self.relay_replies_once().await {
                Ok(0) => IDLE,
                Ok(_) => {
                    failures = 0;
                    continue;
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let pause = retry_pause(failures);
                    tracing::warn!(error = %e, retry_in_ms = pause.as_millis(), "reply relay failed");
                    pause
                }
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = shutdown.wait() => {}
            }
        }
    }

    /// Sends the due reply rows, all at once, deletes those SQS accepted
    /// and makes the others due again after [`retry_pause`] of their
    /// attempts. Returns how many were sent.
    pub async fn relay_replies_once(&self) -> Result<usize, QueueError> {
        let entries = self
            .store
            .claim_replies(REPLY_RELAY_ROWS, REPLY_LEASE)
            .await?;
        if entries.is_empty() {
            return Ok(0);
        }
        let mut sends = JoinSet::new();
        for entry in entries {
            let queue = self.queue.clone();
            let store = self.store.clone();
            let limits = self.limits.clone();
            sends.spawn(async move {
                let sent = match store.get(&entry.job_id).await {
                    // The job is gone: nothing to reply with.
                    Ok(None) => Ok(()),
                    Ok(Some(job)) => {
                        let (body, status) = reply_envelope(&job, &limits);
                        queue
                            .send_reply(&entry.queue_url, body, &job.correlation_id, status)
                            .await
                    }
                    Err(e) => Err(e.into()),
                };
                (entry, sent)
            });
        }
        let mut sent = Vec::new();
        let mut failed: Vec<(i64, i64)> = Vec::new();
        while let Some(joined) = sends.join_next().await {
            match joined {
                Ok((entry, Ok(()))) => sent.push(entry.id),
                Ok((entry, Err(e))) => {
                    tracing::warn!(job = %entry.job_id, queue = %entry.queue_url, error = %e, "sending a reply failed; it is sent again");
                    failed.push((entry.id, entry.attempts));
                }
                Err(e) => tracing::warn!(error = %e, "a reply send task failed"),
            }
        }
        self.store.delete_replies(&sent).await?;
        for (id, attempts) in failed {
            let pause = retry_pause(u32::try_from(attempts).unwrap_or(u32::MAX));
            self.store.release_replies(&[id], pause).await?;
        }
        Ok(sent.len())
    }

    /// Waits for a free slot, takes every other free one up to
    /// `batch_size`, receives at most that many messages and hands each
    /// over with a slot; slots left over are freed at once.
    async fn poll_loop(
        self: Arc<Self>,
        free: Arc<Semaphore>,
        work: mpsc::Sender<(Message, OwnedSemaphorePermit)>,
        shutdown: Shutdown,
    ) {
        let batch = self.queue.settings().batch_size.clamp(1, 10) as usize;
        let mut failures: u32 = 0;
        while !shutdown.is_triggered() {
            let first = tokio::select! {
                slot = free.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => break,
                },
                () = shutdown.wait() => break,
            };
            let mut slots = vec![first];
            while slots.len() < batch {
                match free.clone().try_acquire_owned() {
                    Ok(slot) => slots.push(slot),
                    Err(_) => break,
                }
            }
            let max = u32::try_from(slots.len()).unwrap_or(1);
            let received = tokio::select! {
                r = self.queue.receive(max) => r,
                () = shutdown.wait() => break,
            };
            let messages = match received {
                Ok(m) => {
                    failures = 0;
                    m
                }
                Err(e) => {
                    drop(slots);
                    failures = failures.saturating_add(1);
                    let pause = retry_pause(failures);
                    tracing::warn!(error = %e, retry_in_ms = pause.as_millis(), "receiving from SQS failed");
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        () = shutdown.wait() => {}
                    }
                    continue;
                }
            };
            for message in messages {
                // SQS returns at most `max` messages; a slot each.
                let Some(slot) = slots.pop() else {
                    tracing::warn!(
                        message_id = message.message_id().unwrap_or(""),
                        "SQS returned more messages than asked for; this one comes back after its visibility"
                    );
                    continue;
                };
                if work.send((message, slot)).await.is_err() {
                    return;
                }
            }
        }
    }

    /// Handles one received message and queues its delete when its job is
    /// dealt with.
    async fn handle_message(
        &self,
        message: Message,
        deletes: &mpsc::UnboundedSender<String>,
        writer: &ResultWriter,
    ) {
        let Some(receipt) = message.receipt_handle().map(str::to_owned) else {
            return;
        };
        match self.handle(&message, &receipt, writer).await {
            Ok(Disposal::Delete) => {
                let _ = deletes.send(receipt);
            }
            Ok(Disposal::Leave) => {}
            Err(e) => {
                // The message comes back after its visibility; the fenced
                // claim sorts out what was done.
                tracing::warn!(
                    error = %e,
                    message_id = message.message_id().unwrap_or(""),
                    "handling an SQS message failed"
                );
            }
        }
    }

    /// Deals with one message: the job it names, or the request it carries.
    async fn handle(
        &self,
        message: &Message,
        receipt: &str,
        writer: &ResultWriter,
    ) -> Result<Disposal, QueueError> {
        let attrs = message.message_attributes();
        let attr = |name: &str| {
            attrs
                .and_then(|a| a.get(name))
                .and_then(|v| v.string_value())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let receive_count: u32 = message
            .attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let reply_to =
            attr(ATTR_REPLY_TO).or_else(|| self.queue.settings().reply_queue_url.clone());
        let (job_id, unreadable) = match attr(ATTR_JOB_ID) {
            Some(id) => (JobId::from_ticket(id), None),
            None => self.admit(message, &attr).await?,
        };
        let lease = self.queue.settings().lease();
        let claimed = match self
            .store
            .claim_job(&job_id, &self.worker_id, lease)
            .await?
        {
            JobClaim::Claimed(claimed) => claimed,
            JobClaim::Finished(_) => {
                // A duplicate delivery, or a redelivery after a crash between
                // the result write and the delete: no model call.
                return Ok(Disposal::Delete);
            }
            JobClaim::Busy(_) => return Ok(Disposal::Leave),
            JobClaim::Missing => {
                tracing::warn!(job = %job_id, "SQS message names no job; deleting it");
                return Ok(Disposal::Delete);
            }
        };
        let job = &claimed.job;
        let token = claimed.token;
        let execution = match unreadable {
            Some(failure) => Execution::Failed {
                failure,
                retryable: false,
                retry_after: None,
            },
            None => {
                let tries = if receive_count < self.queue.settings().max_attempts {
                    Tries::MoreLeft
                } else {
                    Tries::Last
                };
                self.execute_with_heartbeat(job, token, receipt, tries)
                    .await
            }
        };
        let s = self.queue.settings();
        // A final end writes the reply's outbox row with the result.
        let finish = |end| JobFinish {
            id: job.id.clone(),
            token,
            end,
            reply_to: reply_to.clone(),
        };
        match execution {
            Execution::Done(result) => {
                if !writer.write(finish(JobEnd::Done(result))).await? {
                    // Our lease ended and another worker has the job (and
                    // its own copy of the message): leave everything to it.
                    return Ok(Disposal::Leave);
                }
            }
            Execution::Failed {
                failure,
                retryable,
                retry_after,
            } => {
                let last = receive_count >= s.max_attempts;
                if retryable && !last {
                    let hint = retry_after.map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(900));
                    let backoff =
                        backoff_secs(receive_count, s.visibility_timeout).max(hint.min(900));
                    let delay = Duration::from_secs(u64::from(backoff));
                    if writer.write(finish(JobEnd::Retry(failure, delay))).await? {
                        self.queue.set_visibility(receipt, backoff).await?;
                    }
                    return Ok(Disposal::Leave);
                }
                if !writer.write(finish(JobEnd::Failed(failure))).await? {
                    return Ok(Disposal::Leave);
                }
                if retryable {
                    // Out of attempts: the job is FAILED, and the message is
                    // made visible at once so that the next receive moves it
                    // to the DLQ (maxReceiveCount = max_attempts).
                    let finished = self.finished(&job.id).await?;
                    self.deliver(&finished, reply_to.as_deref()).await?;
                    self.queue.set_visibility(receipt, 0).await?;
                    return Ok(Disposal::Leave);
                }
            }
        }
        let finished = self.finished(&job.id).await?;
        self.deliver(&finished, reply_to.as_deref()).await?;
        Ok(Disposal::Delete)
    }

    /// The door: a request put on the queue from outside becomes a job, once
    /// per SQS message however often it is delivered. Returns the job and,
    /// for a request that is not readable XML, the failure to record
    /// instead of running it.
    async fn admit(
        &self,
        message: &Message,
        attr: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<(JobId, Option<JobFailure>), QueueError> {
        let Some(message_id) = message.message_id() else {
            return Err(QueueError::Sqs {
                operation: "ReceiveMessage",
                message: "a message without a MessageId".into(),
            });
        };
        let body = message.body().unwrap_or_default().to_owned();
        let correlation_id = attr(ATTR_CORRELATION_ID).unwrap_or_else(|| message_id.to_owned());
        let named = Route {
            service: attr(ATTR_SERVICE),
            operation: attr(ATTR_OPERATION),
        };
        let admission = self.executor.route(&body, named, &correlation_id);
        let job = NewJob {
            service: admission.service,
            operation: admission.operation,
            correlation_id,
            payload: body,
            idempotency_key: Some(keys::sqs_message(message_id)),
            source: JobSource::Queue,
            tenant: None,
        };
        // The message is already on the queue: no outbox row for this job.
        let (id, _) = self.store.enqueue_delivered(&job).await?;
        Ok((id, admission.failure))
    }

    /// Runs the job while extending the message's visibility and the job's
    /// lease every third of the visibility timeout.
    async fn execute_with_heartbeat(
        &self,
        job: &Job,
        token: i64,
        receipt: &str,
        tries: Tries,
    ) -> Execution {
        let s = self.queue.settings();
        let run = self.executor.execute(job, tries);
        tokio::pin!(run);
        let mut ticks = tokio::time::interval(s.heartbeat_every());
        ticks.tick().await; // the first tick is immediate
        loop {
            tokio::select! {
                execution = &mut run => return execution,
                _ = ticks.tick() => {
                    if let Err(e) = self.queue.set_visibility(receipt, s.visibility_timeout).await {
                        tracing::warn!(job = %job.id, error = %e, "extending the message visibility failed");
                    }
                    match self.store.heartbeat(&job.id, token, s.lease()).await {
                        Ok(true) => {}
                        Ok(false) => tracing::warn!(job = %job.id, "lost the job's lease; its result will be refused"),
                        Err(e) => tracing::warn!(job = %job.id, error = %e, "extending the job lease failed"),
                    }
                }
            }
        }
    }

    async fn finished(&self, id: &JobId) -> Result<Job, QueueError> {
        self.store.get(id).await?.ok_or_else(|| QueueError::Sqs {
            operation: "result",
            message: format!("job {id} vanished after its result was written"),
        })
    }

    /// After the fenced result write, which wrote the reply's outbox row in
    /// the same transaction (and the `soapgate_results` row, for jobs whose
    /// caller has no ticket): the reply is sent at once; its row goes when
    /// SQS has it, and a reply whose send fails — or whose process dies
    /// first — is sent by the reply relay once the row is due.
    async fn deliver(&self, job: &Job, reply_to: Option<&str>) -> Result<(), QueueError> {
        let Some(url) = reply_to else {
            return Ok(());
        };
        let rows = self.store.replies_of(&job.id).await?;
        let (body, status) = reply_envelope(job, &self.limits);
        match self
            .queue
            .send_reply(url, body, &job.correlation_id, status)
            .await
        {
            Ok(()) => {
                if let Err(e) = self.store.delete_replies(&rows).await {
                    // Sent again after the lease: at least once.
                    tracing::warn!(job = %job.id, error = %e, "removing a sent reply's row failed");
                }
            }
            Err(e) => {
                tracing::warn!(job = %job.id, correlation_id = %job.correlation_id, error = %e, "sending the reply failed; the reply relay sends it again");
                if let Err(e) = self.store.release_replies(&rows, retry_pause(1)).await {
                    tracing::warn!(job = %job.id, error = %e, "releasing a reply for retry failed");
                }
            }
        }
        Ok(())
    }
}

/// Jobs one reconciliation statement re-sends.
const RECONCILE_ROWS: u32 = 100;
/// Reply rows one reply relay pass takes.
const REPLY_RELAY_ROWS: u32 = 40;
/// How long a reply row is leased to the process sending it: a process
/// that dies mid-send leaves it to be sent again after this.
const REPLY_LEASE: Duration = Duration::from_secs(10);

/// Sends queued receipt handles to `DeleteMessageBatch`, up to ten at a
/// time, gathering for a few milliseconds so that jobs finishing together
/// share a call.
async fn deleter(queue: SqsQueue, mut rx: mpsc::UnboundedReceiver<String>) {
    let max = queue.settings().batch_size.clamp(1, 10) as usize;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + Duration::from_millis(5);
        while batch.len() < max {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(r)) => batch.push(r),
                _ => break,
            }
        }
        if let Err(e) = queue.delete_batch(&batch).await {
            // Those messages come back; their jobs are finished, so they are
            // deleted then without running again.
            tracing::warn!(error = %e, count = batch.len(), "deleting SQS messages failed");
        }
    }
}

/// Seconds before a retry: 1, 2, 4, … by receive, at most the visibility
/// timeout and 15 minutes (the shared exponential, without jitter: the
/// message's own visibility is the timer).
fn backoff_secs(receive_count: u32, visibility: u32) -> u32 {
    let cap = Duration::from_secs(u64::from(visibility.clamp(1, 900)));
    let wait = backoff::ceiling(receive_count, Duration::from_secs(1), cap);
    u32::try_from(wait.as_secs()).unwrap_or(900)
}

/// The reply for a finished job: a SOAP envelope (in the request's version)
/// with the response payload, or a fault with soapgate's detail; and the
/// `Status` attribute.
pub fn reply_envelope(job: &Job, limits: &Limits) -> (String, &'static str) {
    let version = request_version(&job.payload, limits);
    let (payload, status) = match job.status {
        JobStatus::Done => {
            let text = job.result_payload.as_deref().unwrap_or("");
            match result_elements(text).ok() {
                Some(elements) => (elements, "DONE"),
                None => {
                    let err = GatewayError::Internal(format!(
                        "job {}: the stored result is not readable XML",
                        job.id
                    ));
                    let fault = err.to_fault(&job.correlation_id);
                    (vec![fault.to_element(version)], "FAILED")
                }
            }
        }
        _ => {
            // A declared fault answered by the operation is sent as such.
            if let Some(fault) = declared_fault(job) {
                let fault = Fault::declared(fault, job.correlation_id.as_str());
                let envelope =
                    response::envelope(version, Vec::new(), vec![fault.to_element(version)]);
                let bytes = xml::write_document(&envelope, xml::Charset::Utf8);
                return (String::from_utf8_lossy(&bytes).into_owned(), "FAILED");
            }
            let code = job
                .fault_code
                .as_deref()
                .and_then(ErrorCode::parse)
                .unwrap_or(ErrorCode::InternalError);
            let text = job.fault_text.clone().unwrap_or_default();
            let fault = Fault::new(code, text, job.correlation_id.as_str());
            (vec![fault.to_element(version)], "FAILED")
        }
    };
    let envelope = response::envelope(version, Vec::new(), payload);
    let bytes = xml::write_document(&envelope, xml::Charset::Utf8);
    (String::from_utf8_lossy(&bytes).into_owned(), status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff_secs(1, 30), 1);
        assert_eq!(backoff_secs(2, 30), 2);
        assert_eq!(backoff_secs(3, 30), 4);
        assert_eq!(backoff_secs(9, 30), 30);
        assert_eq!(backoff_secs(40, 3600), 900);
    }

    fn job(status: JobStatus) -> Job {
        Job {
            id: JobId::from_ticket("j-1"),
            idempotency_key: None,
            source: JobSource::Queue,
            service: "S".into(),
            operation: "Op".into(),
            correlation_id: "c-1".into(),
            payload: "<e:Envelope xmlns:e=\"http://www.w3.org/2003/05/soap-envelope\"><e:Body><x/></e:Body></e:Envelope>".into(),
            status,
            attempts: 1,
            run_after_ms: 0,
            lease_owner: None,
            lease_until_ms: None,
            fencing_token: 1,
            last_error: None,
            result_payload: Some("<r:Answer xmlns:r=\"urn:r\">42</r:Answer>".into()),
            fault_code: Some("MODEL_THROTTLED".into()),
            fault_text: Some("The model service is throttling".into()),
            model: None,
            input_tokens: None,
            output_tokens: None,
            created_at_ms: 0,
            updated_at_ms: 0,
            tenant: None,
            request_digest: None,
        }
    }

    #[test]
    fn replies_speak_the_request_version() {
        let limits = Limits::default();
        let (body, status) = reply_envelope(&job(JobStatus::Done), &limits);
        assert_eq!(status, "DONE");
        assert!(
            body.contains("http://www.w3.org/2003/05/soap-envelope"),
            "{body}"
        );
        assert!(body.contains(">42</"), "{body}");
        let (body, status) = reply_envelope(&job(JobStatus::Failed), &limits);
        assert_eq!(status, "FAILED");
        assert!(body.contains("MODEL_THROTTLED"), "{body}");
        assert!(body.contains("Fault"), "{body}");
    }

    #[test]
    fn a_declared_fault_is_replied_as_the_wsdl_declares_it() {
        let mut failed = job(JobStatus::Failed);
        failed.fault_code = Some("Rejected".into());
        failed.fault_text = Some("Not for us".into());
        failed.result_payload = Some(
            "<soap:Fault xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\">\
             <faultcode>soap:Client</faultcode><faultstring>Not for us</faultstring>\
             <detail><r:Rejection xmlns:r=\"urn:r\">spam</r:Rejection></detail></soap:Fault>"
                .into(),
        );
        let (body, status) = reply_envelope(&failed, &Limits::default());
        assert_eq!(status, "FAILED");
        // In the request's version (1.2): Sender, the reason, the detail.
        assert!(body.contains("<env:Value>env:Sender</env:Value>"), "{body}");
        assert!(body.contains(">Not for us</env:Text>"), "{body}");
        assert!(
            body.contains(
                "<env:Detail><r:Rejection xmlns:r=\"urn:r\">spam</r:Rejection></env:Detail>"
            ),
            "{body}"
        );
        assert!(!body.contains("sg:Error"), "{body}");
    }
}
