//! `queue.kind = sqs`: Amazon SQS as the delivery mechanism, the job row as
//! the source of truth. This is the only module that names aws-sdk-sqs types.
//!
//! - **Enqueue** writes the job and an outbox row in one transaction
//!   ([`Store::enqueue_with_outbox`]); [`relay`] sends outbox rows to the
//!   request queue with `SendMessageBatch` (the body and the `JobId`
//!   attribute are the job id; the row holds the payload) and deletes the
//!   rows SQS accepted. A crash between the send and the delete sends a job
//!   twice: delivery is at least once.
//! - **Consumers** ([`Consumer::run`]) long-poll `ReceiveMessage` and claim
//!   each message's job with the fenced claim. A job that already has its
//!   result gets its message deleted without a model call: that is how a
//!   duplicate delivery yields one result and one model call. A job held by
//!   another worker under a live lease is left alone (the message comes
//!   back). While the model works the message's visibility and the job's
//!   lease are extended together (the lease ends before the visibility, so
//!   a message that reappears after a crash finds its job claimable). After
//!   the fenced result write (and the result row for jobs without a
//!   ticket), the reply goes to the reply queue and the message is deleted
//!   in batches (`DeleteMessageBatch`).
//! - **Failures**: a retryable failure leaves the message, made visible
//!   again after a backoff; on the receive that reaches `max_attempts` the
//!   job ends FAILED and the message is left for the queue's redrive policy
//!   (`maxReceiveCount` = `max_attempts`) to move to the DLQ, so the job row
//!   and the DLQ agree. A failure no retry can fix ends FAILED at once.
//! - **The door**: a message without a `JobId` attribute is a request put
//!   on the queue by a legacy system: a SOAP envelope or bare payload XML,
//!   with optional `Service`, `Operation`, `CorrelationId` (default: the
//!   SQS MessageId) and `ReplyTo` (a queue URL) attributes. It becomes a job
//!   (source `queue`, idempotency key `sqs:<MessageId>`, so a redelivery is
//!   not a second job) and runs like any other; its result goes to
//!   `soapgate_results` and to the reply queue.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_sqs::config::{Credentials, Region};
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, MessageAttributeValue, MessageSystemAttributeName,
    SendMessageBatchRequestEntry,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::{Execution, JobExecutor, Route, request_version};
use crate::pipeline::Tries;
use crate::soap::{ErrorCode, Fault, response};
use crate::store::{
    Job, JobClaim, JobEnd, JobFailure, JobFinish, JobId, JobSource, JobStatus, NewJob, Store,
    StoreError,
};
use crate::worker::ResultWriter;
use crate::xml::{self, Limits};

/// Message attribute carrying the job id on messages soapgate sends; a
/// message without it is a request put on the queue from outside.
pub const ATTR_JOB_ID: &str = "JobId";
/// The door's attributes (all optional): the service, the operation, the
/// correlation id, and the queue URL the reply goes to.
pub const ATTR_SERVICE: &str = "Service";
pub const ATTR_OPERATION: &str = "Operation";
pub const ATTR_CORRELATION_ID: &str = "CorrelationId";
pub const ATTR_REPLY_TO: &str = "ReplyTo";
/// On replies: `DONE` or `FAILED`.
pub const ATTR_STATUS: &str = "Status";

/// `[queue.sqs]`: where the queues are and how to poll them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SqsSettings {
    /// The queue jobs are delivered on (required for `kind = "sqs"`).
    pub request_queue_url: Option<String>,
    /// Where result envelopes go for every job, unless a message names its
    /// own `ReplyTo`. Unset: results go only to the store.
    pub reply_queue_url: Option<String>,
    /// Long-poll wait per `ReceiveMessage`, 0 to 20 seconds.
    pub wait_time_seconds: u32,
    /// Seconds a received message stays hidden; extended while the model
    /// works, so it only needs to outlast a heartbeat.
    pub visibility_timeout: u32,
    /// Messages per receive, send and delete, 1 to 10.
    pub batch_size: u32,
    /// Receive loops per process; each runs its batch concurrently.
    pub pollers: u32,
    /// Receives before a job that keeps failing ends FAILED. Set the request
    /// queue's redrive `maxReceiveCount` to the same number, so the message
    /// lands in the DLQ as the job fails.
    pub max_attempts: u32,
    /// Overrides `AWS_REGION` / the profile's region.
    pub region: Option<String>,
    /// Overrides `AWS_ENDPOINT_URL_SQS` (an emulator, a VPC endpoint).
    pub endpoint_url: Option<String>,
}

impl Default for SqsSettings {
    fn default() -> Self {
        SqsSettings {
            request_queue_url: None,
            reply_queue_url: None,
            wait_time_seconds: 20,
            visibility_timeout: 30,
            batch_size: 10,
            pollers: 4,
            max_attempts: 5,
            region: None,
            endpoint_url: None,
        }
    }
}

impl SqsSettings {
    /// Checks the values SQS would refuse, naming the key.
    pub fn validate(&self) -> Result<(), SqsSetupError> {
        let bad = |key: &'static str, why: &'static str| Err(SqsSetupError::Invalid { key, why });
        if self
            .request_queue_url
            .as_deref()
            .is_none_or(|u| u.trim().is_empty())
        {
            return bad(
                "queue.sqs.request_queue_url",
                "required when queue.kind = \"sqs\"",
            );
        }
        if self.wait_time_seconds > 20 {
            return bad("queue.sqs.wait_time_seconds", "must be 0 to 20");
        }
        if !(1..=43_200).contains(&self.visibility_timeout) {
            return bad("queue.sqs.visibility_timeout", "must be 1 to 43200 seconds");
        }
        if !(1..=10).contains(&self.batch_size) {
            return bad("queue.sqs.batch_size", "must be 1 to 10");
        }
        if self.pollers == 0 {
            return bad("queue.sqs.pollers", "must be at least 1");
        }
        if self.max_attempts == 0 {
            return bad("queue.sqs.max_attempts", "must be at least 1");
        }
        Ok(())
    }

    fn visibility(&self) -> Duration {
        Duration::from_secs(u64::from(self.visibility_timeout))
    }

    /// The job lease that goes with a visibility timeout: shorter, so that
    /// when a worker dies its job is claimable again by the time its
    /// message reappears.
    fn lease(&self) -> Duration {
        self.visibility().mul_f64(0.75)
    }

    /// How often a running job's visibility and lease are extended.
    fn heartbeat_every(&self) -> Duration {
        (self.visibility() / 3).max(Duration::from_millis(300))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SqsSetupError {
    #[error("{key}: {why}")]
    Invalid {
        key: &'static str,
        why: &'static str,
    },
    #[error("no AWS region for SQS: set queue.sqs.region, AWS_REGION, or a profile's region")]
    NoRegion,
}

/// Failures talking to SQS or the store while moving messages.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("SQS {operation}: {message}")]
    Sqs {
        operation: &'static str,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn sqs_error<E>(operation: &'static str, e: aws_sdk_sqs::error::SdkError<E>) -> QueueError
where
    E: std::error::Error + 'static,
{
    QueueError::Sqs {
        operation,
        message: aws_sdk_sqs::error::DisplayErrorContext(e).to_string(),
    }
}

/// An SQS client and the request queue. Cheap to clone.
#[derive(Clone)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    settings: Arc<SqsSettings>,
    request_url: String,
}

impl fmt::Debug for SqsQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqsQueue")
            .field("request_url", &self.request_url)
            .field("reply_url", &self.settings.reply_queue_url)
            .finish_non_exhaustive()
    }
}

impl SqsQueue {
    /// A client configured by the standard AWS chain (credentials, region,
    /// `AWS_ENDPOINT_URL_SQS`), overridden by `settings`.
    pub async fn from_env(settings: &SqsSettings) -> Result<SqsQueue, SqsSetupError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = &settings.region {
            loader = loader.region(Region::new(region.clone()));
        }
        let sdk_config = loader.load().await;
        SqsQueue::from_sdk_config(&sdk_config, settings)
    }

    /// A client from an already loaded AWS configuration (shared with the
    /// Bedrock client). `AWS_ENDPOINT_URL_SQS` applies when the
    /// configuration was loaded from the environment.
    pub fn from_sdk_config(
        sdk_config: &SdkConfig,
        settings: &SqsSettings,
    ) -> Result<SqsQueue, SqsSetupError> {
        settings.validate()?;
        let mut builder = aws_sdk_sqs::config::Builder::from(sdk_config);
        if let Some(region) = &settings.region {
            builder = builder.region(Region::new(region.clone()));
        }
        if let Some(url) = &settings.endpoint_url {
            builder = builder.endpoint_url(url.clone());
        }
        let config = builder.build();
        if config.region().is_none() {
            return Err(SqsSetupError::NoRegion);
        }
        Ok(SqsQueue::with_client(
            aws_sdk_sqs::Client::from_conf(config),
            settings,
        ))
    }

    /// A client for an SQS emulator at `endpoint_url`, with static dummy
    /// credentials and region `us-east-1`, touching no environment variable
    /// or profile.
    pub fn for_endpoint(
        endpoint_url: &str,
        settings: &SqsSettings,
    ) -> Result<SqsQueue, SqsSetupError> {
        settings.validate()?;
        let credentials = Credentials::new("EMULATOR", "emulator-secret", None, None, "soapgate");
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(
                settings
                    .region
                    .clone()
                    .unwrap_or_else(|| "us-east-1".into()),
            ))
            .credentials_provider(credentials)
            .endpoint_url(endpoint_url)
            .build();
        Ok(SqsQueue::with_client(
            aws_sdk_sqs::Client::from_conf(config),
            settings,
        ))
    }

    fn with_client(client: aws_sdk_sqs::Client, settings: &SqsSettings) -> SqsQueue {
        SqsQueue {
            client,
            request_url: settings.request_queue_url.clone().unwrap_or_default(),
            settings: Arc::new(settings.clone()),
        }
    }

    pub fn settings(&self) -> &SqsSettings {
        &self.settings
    }

    /// Sends one batch of outbox rows; returns the outbox ids SQS accepted.
    async fn send_jobs(&self, entries: &[(i64, JobId)]) -> Result<Vec<i64>, QueueError> {
        let mut batch = Vec::with_capacity(entries.len());
        for (id, job) in entries {
            let entry = SendMessageBatchRequestEntry::builder()
                .id(id.to_string())
                .message_body(job.as_str())
                .message_attributes(ATTR_JOB_ID, string_attr(job.as_str())?)
                .build()
                .map_err(|e| QueueError::Sqs {
                    operation: "SendMessageBatch",
                    message: e.to_string(),
                })?;
            batch.push(entry);
        }
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.request_url)
            .set_entries(Some(batch))
            .send()
            .await
            .map_err(|e| sqs_error("SendMessageBatch", e))?;
        for failed in out.failed() {
            tracing::warn!(
                outbox_id = failed.id(),
                code = failed.code(),
                message = failed.message().unwrap_or(""),
                "SQS refused an outbox message; it will be sent again"
            );
        }
        Ok(out
            .successful()
            .iter()
            .filter_map(|s| s.id().parse().ok())
            .collect())
    }

    async fn receive(&self) -> Result<Vec<Message>, QueueError> {
        let s = &self.settings;
        let out = self
            .client
            .receive_message()
            .queue_url(&self.request_url)
            .max_number_of_messages(clamp_i32(s.batch_size))
            .wait_time_seconds(clamp_i32(s.wait_time_seconds))
            .visibility_timeout(clamp_i32(s.visibility_timeout))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| sqs_error("ReceiveMessage", e))?;
        Ok(out.messages.unwrap_or_default())
    }

    async fn set_visibility(&self, receipt: &str, seconds: u32) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.request_url)
            .receipt_handle(receipt)
            .visibility_timeout(clamp_i32(seconds))
            .send()
            .await
            .map_err(|e| sqs_error("ChangeMessageVisibility", e))?;
        Ok(())
    }

    async fn delete_batch(&self, receipts: &[String]) -> Result<(), QueueError> {
        let mut entries = Vec::with_capacity(receipts.len());
        for (i, receipt) in receipts.iter().enumerate() {
            entries.push(
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(receipt)
                    .build()
                    .map_err(|e| QueueError::Sqs {
                        operation: "DeleteMessageBatch",
                        message: e.to_string(),
                    })?,
            );
        }
        let out = self
            .client
            .delete_message_batch()
            .queue_url(&self.request_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| sqs_error("DeleteMessageBatch", e))?;
        for failed in out.failed() {
            // The message comes back; its job is finished, so it is then
            // deleted without running again.
            tracing::warn!(code = failed.code(), "SQS did not delete a message");
        }
        Ok(())
    }

    async fn send_reply(
        &self,
        queue_url: &str,
        body: String,
        correlation_id: &str,
        status: &str,
    ) -> Result<(), QueueError> {
        self.client
            .send_message()
            .queue_url(queue_url)
            .message_body(body)
            .message_attributes(ATTR_CORRELATION_ID, string_attr(correlation_id)?)
            .message_attributes(ATTR_STATUS, string_attr(status)?)
            .send()
            .await
            .map_err(|e| sqs_error("SendMessage", e))?;
        Ok(())
    }
}

fn clamp_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

fn string_attr(value: &str) -> Result<MessageAttributeValue, QueueError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| QueueError::Sqs {
            operation: "MessageAttributeValue",
            message: e.to_string(),
        })
}

/// Sends due outbox rows to the request queue until `shutdown` turns true.
/// Several relays (in several processes) may run at once: each takes its
/// own rows.
pub async fn relay(store: Store, queue: SqsQueue, mut shutdown: watch::Receiver<bool>) {
    const IDLE: Duration = Duration::from_millis(100);
    let mut failures: u32 = 0;
    while !*shutdown.borrow() {
        let pause = match relay_once(&store, &queue).await {
            Ok(0) => IDLE,
            Ok(_) => {
                failures = 0;
                continue;
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let pause = Duration::from_millis(200u64 << failures.min(6));
                tracing::warn!(error = %e, retry_in_ms = pause.as_millis(), "outbox relay failed");
                pause
            }
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Batches of ten sent at once by one relay pass.
const RELAY_BATCHES: u32 = 4;

/// Sends the due outbox rows, up to [`RELAY_BATCHES`] `SendMessageBatch`
/// calls at once, and removes the rows SQS accepted in one write; returns
/// how many were accepted.
pub async fn relay_once(store: &Store, queue: &SqsQueue) -> Result<usize, QueueError> {
    let s = queue.settings();
    // The lease covers the send; rows not deleted are sent again after it.
    let entries = store
        .claim_outbox(
            s.batch_size * RELAY_BATCHES,
            s.visibility().max(Duration::from_secs(5)),
        )
        .await?;
    if entries.is_empty() {
        return Ok(0);
    }
    let rows: Vec<(i64, JobId)> = entries.into_iter().map(|e| (e.id, e.job_id)).collect();
    let mut sends = JoinSet::new();
    for chunk in rows.chunks(s.batch_size.max(1) as usize) {
        let queue = queue.clone();
        let chunk = chunk.to_vec();
        sends.spawn(async move { queue.send_jobs(&chunk).await });
    }
    let mut sent = Vec::with_capacity(rows.len());
    let mut failed = None;
    while let Some(result) = sends.join_next().await {
        match result {
            Ok(Ok(ids)) => sent.extend(ids),
            Ok(Err(e)) => failed = Some(e),
            Err(e) => {
                failed = Some(QueueError::Sqs {
                    operation: "SendMessageBatch",
                    message: e.to_string(),
                });
            }
        }
    }
    // Rows that were sent are removed even when another batch failed; the
    // failed ones are sent again after their lease.
    store.delete_outbox(&sent).await?;
    match failed {
        Some(e) if sent.is_empty() => Err(e),
        Some(e) => {
            tracing::warn!(error = %e, sent = sent.len(), "some outbox batches were not sent; they are sent again after their lease");
            Ok(sent.len())
        }
        None => Ok(sent.len()),
    }
}

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

    /// Runs `pollers` receive loops and the batch deleter until `shutdown`
    /// turns true; jobs in flight finish first.
    pub async fn run(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        let (delete_tx, delete_rx) = mpsc::unbounded_channel::<String>();
        let deleter = tokio::spawn(deleter(self.queue.clone(), delete_rx));
        // Results of every poller's jobs share write transactions.
        let in_flight = self.queue.settings().pollers as usize * 10;
        let (writer, writing) = ResultWriter::new(self.store.clone(), in_flight);
        let writing = tokio::spawn(writing);
        let mut pollers = JoinSet::new();
        for _ in 0..self.queue.settings().pollers {
            let me = self.clone();
            let tx = delete_tx.clone();
            let writer = writer.clone();
            let stop = shutdown.clone();
            pollers.spawn(async move { me.poll_loop(tx, writer, stop).await });
        }
        drop(delete_tx);
        drop(writer);
        while pollers.join_next().await.is_some() {}
        let _ = deleter.await;
        let _ = writing.await;
    }

    async fn poll_loop(
        self: Arc<Self>,
        deletes: mpsc::UnboundedSender<String>,
        writer: ResultWriter,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut failures: u32 = 0;
        while !*shutdown.borrow() {
            let received = tokio::select! {
                r = self.queue.receive() => r,
                _ = shutdown.changed() => break,
            };
            let messages = match received {
                Ok(m) => {
                    failures = 0;
                    m
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let pause = Duration::from_millis(200u64 << failures.min(6));
                    tracing::warn!(error = %e, retry_in_ms = pause.as_millis(), "receiving from SQS failed");
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        _ = shutdown.changed() => {}
                    }
                    continue;
                }
            };
            let mut batch = JoinSet::new();
            for message in messages {
                let me = self.clone();
                let deletes = deletes.clone();
                let writer = writer.clone();
                batch.spawn(async move {
                    let Some(receipt) = message.receipt_handle().map(str::to_owned) else {
                        return;
                    };
                    match me.handle(&message, &receipt, &writer).await {
                        Ok(Disposal::Delete) => {
                            let _ = deletes.send(receipt);
                        }
                        Ok(Disposal::Leave) => {}
                        Err(e) => {
                            // The message comes back after its visibility;
                            // the fenced claim sorts out what was done.
                            tracing::warn!(
                                error = %e,
                                message_id = message.message_id().unwrap_or(""),
                                "handling an SQS message failed"
                            );
                        }
                    }
                });
            }
            while batch.join_next().await.is_some() {}
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
        let reply_to = attr(ATTR_REPLY_TO).or_else(|| self.queue.settings.reply_queue_url.clone());
        let (job_id, unreadable) = match attr(ATTR_JOB_ID) {
            Some(id) => (JobId::from_ticket(id), None),
            None => self.admit(message, &attr).await?,
        };
        let lease = self.queue.settings.lease();
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
                let tries = if receive_count < self.queue.settings.max_attempts {
                    Tries::MoreLeft
                } else {
                    Tries::Last
                };
                self.execute_with_heartbeat(job, token, receipt, tries)
                    .await
            }
        };
        let s = &self.queue.settings;
        let finish = |end| JobFinish {
            id: job.id.clone(),
            token,
            end,
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
            idempotency_key: Some(format!("sqs:{message_id}")),
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
        let s = &self.queue.settings;
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

    /// After the fenced result write (which wrote the `soapgate_results`
    /// row in the same transaction, for jobs whose caller has no ticket):
    /// the reply.
    async fn deliver(&self, job: &Job, reply_to: Option<&str>) -> Result<(), QueueError> {
        if let Some(url) = reply_to {
            let (body, status) = reply_envelope(job, &self.limits);
            if let Err(e) = self
                .queue
                .send_reply(url, body, &job.correlation_id, status)
                .await
            {
                // The result is stored; the reply is lost only for this
                // queue. Say so loudly rather than retry forever.
                tracing::error!(job = %job.id, correlation_id = %job.correlation_id, error = %e, "sending the reply failed");
            }
        }
        Ok(())
    }
}

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
/// timeout and 15 minutes.
fn backoff_secs(receive_count: u32, visibility: u32) -> u32 {
    let exp = receive_count.saturating_sub(1).min(10);
    (1u32 << exp).min(visibility.max(1)).min(900)
}

/// The reply for a finished job: a SOAP envelope (in the request's version)
/// with the response payload, or a fault with soapgate's detail; and the
/// `Status` attribute.
pub fn reply_envelope(job: &Job, limits: &Limits) -> (String, &'static str) {
    let version = request_version(&job.payload, limits);
    let (payload, status) = match job.status {
        JobStatus::Done => {
            let text = job.result_payload.as_deref().unwrap_or("");
            match payload_elements(text, limits) {
                Some(elements) => (elements, "DONE"),
                None => {
                    let fault = Fault::new(
                        ErrorCode::InternalError,
                        "Internal error; quote the correlation id to the operator",
                        job.correlation_id.as_str(),
                    );
                    (vec![fault.to_element(version)], "FAILED")
                }
            }
        }
        _ => {
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

/// A stored response payload (zero or more elements, as written by the
/// executor) back as elements.
fn payload_elements(text: &str, limits: &Limits) -> Option<Vec<xml::Element>> {
    if text.trim().is_empty() {
        return Some(Vec::new());
    }
    let wrapped = format!("<r>{text}</r>");
    let doc = xml::read(wrapped.as_bytes(), None, limits).ok()?;
    Some(doc.root.elements().cloned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_before_any_call() {
        let mut s = SqsSettings::default();
        assert!(s.validate().is_err(), "a request queue URL is required");
        s.request_queue_url = Some("http://localhost:4566/000000000000/requests".into());
        assert!(s.validate().is_ok());
        s.wait_time_seconds = 21;
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("wait_time_seconds"), "{err}");
        s.wait_time_seconds = 20;
        s.batch_size = 11;
        assert!(s.validate().unwrap_err().to_string().contains("batch_size"));
    }

    #[test]
    fn the_lease_ends_before_the_visibility() {
        let s = SqsSettings {
            visibility_timeout: 2,
            ..SqsSettings::default()
        };
        assert!(s.lease() < s.visibility());
        assert!(s.heartbeat_every() < s.lease());
    }

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
}
