//! `queue.kind = sqs`: Amazon SQS as the delivery mechanism, the job row as
//! the source of truth. This is the only module that names aws-sdk-sqs
//! types. By role: the client ([`SqsQueue`], `client.rs`), the outbox
//! relay (`relay.rs`), the consumers (`consumer.rs`); the settings are
//! `config::SqsSettings`.
//!
//! - **Enqueue** writes the job and an outbox row in one transaction
//!   ([`Store::enqueue_with_outbox`]); [`relay`] sends outbox rows to the
//!   request queue with `SendMessageBatch` (the body and the `JobId`
//!   attribute are the job id; the row holds the payload) and deletes the
//!   rows SQS accepted. A crash between the send and the delete sends a job
//!   twice: delivery is at least once.
//! - **Consumers** ([`Consumer::run`]) long-poll `ReceiveMessage` (only for
//!   free slots: at most `pollers × batch_size` jobs run at once per
//!   process, each message on its own) and claim each message's job with
//!   the fenced claim. A job that already has its
//!   result gets its message deleted without a model call: that is how a
//!   duplicate delivery yields one result and one model call. A job held by
//!   another worker under a live lease is left alone (the message comes
//!   back). While the model works the message's visibility and the job's
//!   lease are extended together (the lease ends before the visibility, so
//!   a message that reappears after a crash finds its job claimable). After
//!   the fenced result write (and the result row for jobs without a
//!   ticket), the reply is written to the reply outbox and sent, and the
//!   message is deleted in batches (`DeleteMessageBatch`). A reply whose
//!   send fails stays in the reply outbox; each consumer's reply relay
//!   sends it again until SQS accepts it (at least once).
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

mod client;
mod consumer;
mod relay;

pub use client::SqsQueue;
pub use consumer::{Consumer, reply_envelope};
pub use relay::{relay, relay_once};

use std::time::Duration;

use crate::store::StoreError;

/// The longest pause between retries after SQS failed: a poller's receive,
/// a relay pass, a row whose send failed. Once SQS answers again, every
/// loop and every row is back within this (plus one pass).
pub const RETRY_CAP: Duration = Duration::from_secs(2);

/// The pause after `failures` failures in a row (1 for the first): 200 ms,
/// doubling, at most [`RETRY_CAP`].
pub fn retry_pause(failures: u32) -> Duration {
    crate::backoff::ceiling(failures.max(1), Duration::from_millis(200), RETRY_CAP)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_a_cap_of_a_few_seconds() {
        assert_eq!(retry_pause(0), Duration::from_millis(200));
        assert_eq!(retry_pause(1), Duration::from_millis(200));
        assert_eq!(retry_pause(2), Duration::from_millis(400));
        assert_eq!(retry_pause(4), Duration::from_millis(1600));
        for failures in 5..200 {
            assert_eq!(retry_pause(failures), RETRY_CAP, "{failures}");
        }
        assert!(RETRY_CAP <= Duration::from_secs(3));
    }
}
