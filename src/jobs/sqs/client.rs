//! The SQS client and the request queue: the only file of the crate that
//! calls SQS. Sends, receives, visibility changes and deletes, each turned
//! into a [`QueueError`] naming the operation.

use std::fmt;
use std::sync::Arc;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_sqs::config::{Credentials, Region};
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, MessageAttributeValue, MessageSystemAttributeName,
    SendMessageBatchRequestEntry,
};

use super::{ATTR_CORRELATION_ID, ATTR_JOB_ID, ATTR_STATUS, QueueError};
use crate::config::{SqsSettings, SqsSetupError};
use crate::store::JobId;

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
    pub(super) async fn send_jobs(&self, entries: &[(i64, JobId)]) -> Result<Vec<i64>, QueueError> {
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

    /// Long-polls for up to `max` messages (1 to 10).
    pub(super) async fn receive(&self, max: u32) -> Result<Vec<Message>, QueueError> {
        let s = &self.settings;
        let out = self
            .client
            .receive_message()
            .queue_url(&self.request_url)
            .max_number_of_messages(clamp_i32(max.clamp(1, 10)))
            .wait_time_seconds(clamp_i32(s.wait_time_seconds))
            .visibility_timeout(clamp_i32(s.visibility_timeout))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| sqs_error("ReceiveMessage", e))?;
        Ok(out.messages.unwrap_or_default())
    }

    pub(super) async fn set_visibility(
        &self,
        receipt: &str,
        seconds: u32,
    ) -> Result<(), QueueError> {
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

    pub(super) async fn delete_batch(&self, receipts: &[String]) -> Result<(), QueueError> {
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

    pub(super) async fn send_reply(
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
