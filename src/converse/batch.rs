//! Batch inference, as the rest of soapgate sees it: the [`BatchClient`]
//! trait a batch driver writes records, creates jobs and reads answers
//! through, beside [`super::ModelClient`] for on-demand calls. The one
//! production implementation speaks Amazon S3 and Bedrock's batch
//! control plane (`bedrock::control`); tests point it at the emulator and
//! moto. Only converse types cross it, so the driver knows no SDK and no
//! record format.

use std::fmt;

use super::{BoxFuture, Request, Response};

/// A model-invocation job to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBatchJob {
    /// The job's name (unique per account while it exists).
    pub name: String,
    /// Makes creation idempotent: a second create with the same token
    /// answers the first job's ARN.
    pub client_request_token: String,
    pub model_id: String,
    /// The service role Bedrock reads and writes S3 with.
    pub role_arn: String,
    /// `s3://` URI of the JSONL input object.
    pub input_uri: String,
    /// `s3://` URI (a folder) the output goes under.
    pub output_uri: String,
    /// How long the service may take (24 to 168 hours).
    pub timeout_hours: u32,
}

/// Where a job stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchJobState {
    /// Submitted, validating, scheduled, in progress or stopping.
    Running,
    /// Completed or partially completed: the output is there to read.
    Completed,
    /// Failed, stopped or expired, with the service's message: no record
    /// of it will be answered.
    Ended { status: String, message: String },
}

/// A control-plane or S3 call that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BatchError {
    /// Trying again later may succeed (throttling, 5xx, a timeout, a
    /// dropped connection); false when the request itself is refused.
    pub retryable: bool,
    pub message: String,
}

/// One output line read back: the record it answers (`None` when the line
/// names none) and the answer, or why the record has none.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordAnswer {
    pub record_id: Option<String>,
    pub answer: Result<Response, String>,
}

/// Something that runs batch inference: S3 for the records, Bedrock's
/// control plane for the job.
pub trait BatchClient: Send + Sync + fmt::Debug {
    /// The JSONL line (without its newline) asking `model_id` `request`
    /// under `record_id`, or why no record can carry this request (it is
    /// then called on demand).
    fn record(&self, record_id: &str, model_id: &str, request: &Request) -> Result<String, String>;

    /// Reads one line of a job's output.
    fn answer(&self, line: &str) -> RecordAnswer;

    /// Writes `body` as the object at `uri` (`s3://bucket/key`), replacing
    /// any object there.
    fn upload<'a>(&'a self, uri: &'a str, body: Vec<u8>) -> BoxFuture<'a, Result<(), BatchError>>;

    /// Creates the job; its ARN.
    fn create<'a>(&'a self, job: &'a NewBatchJob) -> BoxFuture<'a, Result<String, BatchError>>;

    /// Where the job `arn` stands.
    fn state<'a>(&'a self, arn: &'a str) -> BoxFuture<'a, Result<BatchJobState, BatchError>>;

    /// Every line of the job's output files (`*.jsonl.out` under
    /// `{output_uri}/{job id}/`), in no particular order.
    fn output<'a>(
        &'a self,
        output_uri: &'a str,
        arn: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, BatchError>>;

    /// Asks the service to stop the job (a batch given up on).
    fn stop<'a>(&'a self, arn: &'a str) -> BoxFuture<'a, Result<(), BatchError>>;
}
