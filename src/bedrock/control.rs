//! The production [`BatchClient`]: batch inference through Amazon S3
//! (aws-sdk-s3) for the records and Bedrock's control plane
//! (aws-sdk-bedrock) for the job.
//!
//! Records and answers are the plain JSON of [`super::batch`] (a Converse
//! request as one JSONL line of an InvokeModel-type job, an output line
//! back as a Converse response). The rest is one SDK call each: the input
//! object is a `PutObject`; a job is created with
//! `CreateModelInvocationJob` (JSONL input at one `s3://` URI, output
//! under another, the caller's client request token making creation
//! idempotent), followed with `GetModelInvocationJob` and stopped with
//! `StopModelInvocationJob` (stopping a job that has already ended
//! succeeds); its output is every `*.jsonl.out` object under
//! `{output_uri}/{job id}/`, listed page by page.
//!
//! SDK errors become [`BatchError`]s: throttling, 5xx answers, timeouts and
//! failures to reach the service are retryable; a refused request
//! (validation, access denied, not found, conflict, any other 4xx) or a
//! bad URI is not. The message is the SDK's whole error chain.
//!
//! [`BedrockBatch::from_sdk_config`] takes the standard AWS chain
//! (`AWS_ENDPOINT_URL_BEDROCK` and `AWS_ENDPOINT_URL_S3` apply there);
//! [`BedrockBatch::for_endpoints`] points both clients at an emulator with
//! static dummy credentials.

use std::error::Error as StdError;
use std::fmt;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_bedrock::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_bedrock::types::{
    ModelInvocationJobInputDataConfig, ModelInvocationJobOutputDataConfig,
    ModelInvocationJobS3InputDataConfig, ModelInvocationJobS3OutputDataConfig,
    ModelInvocationJobStatus, S3InputFormat,
};
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use serde_json::Value;

use super::SetupError;
use super::batch::{answer_from, record_for, record_id};
use crate::converse::{
    BatchClient, BatchError, BatchJobState, BoxFuture, NewBatchJob, RecordAnswer, Request,
};

/// The region [`BedrockBatch::for_endpoints`] names.
const EMULATOR_REGION: &str = "us-east-1";

/// Batch inference over aws-sdk-bedrock and aws-sdk-s3. Cheap to clone
/// (both SDK clients are reference-counted).
#[derive(Clone)]
pub struct BedrockBatch {
    bedrock: aws_sdk_bedrock::Client,
    s3: aws_sdk_s3::Client,
    /// For logs and Debug only; credentials are never kept here.
    region: Option<String>,
    bedrock_url: Option<String>,
    s3_url: Option<String>,
}

impl fmt::Debug for BedrockBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BedrockBatch")
            .field("region", &self.region)
            .field("bedrock_url", &self.bedrock_url)
            .field("s3_url", &self.s3_url)
            .finish_non_exhaustive()
    }
}

impl BedrockBatch {
    /// Clients from an already loaded AWS configuration (credentials,
    /// region, retries; `AWS_ENDPOINT_URL_BEDROCK` and `AWS_ENDPOINT_URL_S3`
    /// when it was loaded from the environment), `region`, `bedrock_url`
    /// and `s3_url` overriding it. S3 is addressed path-style when
    /// `s3_url` is given (S3-compatible stores expect it), virtual-hosted
    /// otherwise.
    pub fn from_sdk_config(
        sdk_config: &SdkConfig,
        region: Option<&str>,
        bedrock_url: Option<&str>,
        s3_url: Option<&str>,
    ) -> Result<Self, SetupError> {
        let mut bedrock = aws_sdk_bedrock::config::Builder::from(sdk_config);
        let mut s3 = aws_sdk_s3::config::Builder::from(sdk_config);
        if let Some(region) = region {
            bedrock = bedrock.region(aws_sdk_bedrock::config::Region::new(region.to_string()));
            s3 = s3.region(aws_sdk_s3::config::Region::new(region.to_string()));
        }
        if let Some(url) = bedrock_url {
            bedrock = bedrock.endpoint_url(url);
        }
        if let Some(url) = s3_url {
            s3 = s3.endpoint_url(url).force_path_style(true);
        }
        let bedrock = bedrock.build();
        let region = bedrock.region().map(|r| r.to_string());
        if region.is_none() {
            return Err(SetupError::NoRegion);
        }
        tracing::debug!(?region, ?bedrock_url, ?s3_url, "batch clients configured");
        Ok(BedrockBatch {
            bedrock: aws_sdk_bedrock::Client::from_conf(bedrock),
            s3: aws_sdk_s3::Client::from_conf(s3.build()),
            region,
            bedrock_url: bedrock_url.map(str::to_string),
            s3_url: s3_url.map(str::to_string),
        })
    }

    /// Clients for a control-plane emulator at `bedrock_url` and an S3
    /// emulator at `s3_url` (path-style), with static dummy credentials
    /// and region `us-east-1`, touching no environment variable or
    /// profile.
    pub fn for_endpoints(bedrock_url: &str, s3_url: &str) -> Self {
        let bedrock = aws_sdk_bedrock::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(aws_sdk_bedrock::config::Region::new(EMULATOR_REGION))
            .credentials_provider(aws_sdk_bedrock::config::Credentials::new(
                "EMULATOR",
                "emulator-secret",
                None,
                None,
                "soapgate",
            ))
            .endpoint_url(bedrock_url)
            .build();
        let s3 = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new(EMULATOR_REGION))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "EMULATOR",
                "emulator-secret",
                None,
                None,
                "soapgate",
            ))
            .endpoint_url(s3_url)
            .force_path_style(true)
            .build();
        BedrockBatch {
            bedrock: aws_sdk_bedrock::Client::from_conf(bedrock),
            s3: aws_sdk_s3::Client::from_conf(s3),
            region: Some(EMULATOR_REGION.to_string()),
            bedrock_url: Some(bedrock_url.to_string()),
            s3_url: Some(s3_url.to_string()),
        }
    }

    async fn put(&self, uri: &str, body: Vec<u8>) -> Result<(), BatchError> {
        let target = S3Uri::parse(uri)?;
        if target.key.is_empty() || target.key.ends_with('/') {
            return Err(refused(format!("{uri} names no object")));
        }
        self.s3
            .put_object()
            .bucket(&target.bucket)
            .key(&target.key)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| from_sdk(&format!("PutObject {uri}"), e))?;
        Ok(())
    }

    async fn create_job(&self, job: &NewBatchJob) -> Result<String, BatchError> {
        let input = ModelInvocationJobS3InputDataConfig::builder()
            .s3_uri(&job.input_uri)
            .s3_input_format(S3InputFormat::Jsonl)
            .build()
            .map_err(|e| refused(format!("job {}: input: {e}", job.name)))?;
        let output = ModelInvocationJobS3OutputDataConfig::builder()
            .s3_uri(&job.output_uri)
            .build()
            .map_err(|e| refused(format!("job {}: output: {e}", job.name)))?;
        let timeout_hours = i32::try_from(job.timeout_hours).map_err(|_| {
            refused(format!(
                "job {}: timeout of {} hours",
                job.name, job.timeout_hours
            ))
        })?;
        let created = self
            .bedrock
            .create_model_invocation_job()
            .job_name(&job.name)
            .role_arn(&job.role_arn)
            .model_id(&job.model_id)
            .client_request_token(&job.client_request_token)
            .input_data_config(ModelInvocationJobInputDataConfig::S3InputDataConfig(input))
            .output_data_config(ModelInvocationJobOutputDataConfig::S3OutputDataConfig(
                output,
            ))
            .timeout_duration_in_hours(timeout_hours)
            .send()
            .await
            .map_err(|e| from_sdk(&format!("CreateModelInvocationJob {}", job.name), e))?;
        Ok(created.job_arn().to_string())
    }

    async fn job_state(&self, arn: &str) -> Result<BatchJobState, BatchError> {
        let job = self
            .bedrock
            .get_model_invocation_job()
            .job_identifier(arn)
            .send()
            .await
            .map_err(|e| from_sdk(&format!("GetModelInvocationJob {arn}"), e))?;
        let Some(status) = job.status() else {
            return Err(refused(format!(
                "GetModelInvocationJob {arn}: no status in the answer"
            )));
        };
        use ModelInvocationJobStatus as S;
        match status {
            S::Submitted | S::Validating | S::Scheduled | S::InProgress | S::Stopping => {
                Ok(BatchJobState::Running)
            }
            S::Completed | S::PartiallyCompleted => Ok(BatchJobState::Completed),
            S::Failed | S::Stopped | S::Expired => Ok(BatchJobState::Ended {
                status: status.as_str().to_string(),
                message: job.message().unwrap_or_default().to_string(),
            }),
            // A status this version does not know cannot be waited on.
            other => Err(refused(format!(
                "GetModelInvocationJob {arn}: unknown status {}",
                other.as_str()
            ))),
        }
    }

    async fn read_output(&self, output_uri: &str, arn: &str) -> Result<Vec<String>, BatchError> {
        let folder = S3Uri::parse(output_uri)?;
        let job_id = arn.rsplit('/').next().unwrap_or(arn);
        if job_id.is_empty() {
            return Err(refused(format!("{arn} names no job")));
        }
        let prefix = folder.join(&format!("{job_id}/"));
        let mut keys = Vec::new();
        let mut pages = self
            .s3
            .list_objects_v2()
            .bucket(&folder.bucket)
            .prefix(&prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                from_sdk(&format!("ListObjectsV2 s3://{}/{prefix}", folder.bucket), e)
            })?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key())
                    .filter(|k| k.ends_with(".jsonl.out"))
                    .map(str::to_string),
            );
        }
        let mut lines = Vec::new();
        for key in keys {
            let what = format!("GetObject s3://{}/{key}", folder.bucket);
            let object = self
                .s3
                .get_object()
                .bucket(&folder.bucket)
                .key(&key)
                .send()
                .await
                .map_err(|e| from_sdk(&what, e))?;
            // A body cut off on the way is a dropped connection.
            let bytes = object.body.collect().await.map_err(|e| BatchError {
                retryable: true,
                message: format!("{what}: {}", DisplayErrorContext(&e)),
            })?;
            let text = String::from_utf8(bytes.to_vec())
                .map_err(|e| refused(format!("{what}: not UTF-8: {e}")))?;
            lines.extend(
                text.lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(str::to_string),
            );
        }
        Ok(lines)
    }

    async fn stop_job(&self, arn: &str) -> Result<(), BatchError> {
        let stopped = self
            .bedrock
            .stop_model_invocation_job()
            .job_identifier(arn)
            .send()
            .await;
        let Err(e) = stopped else {
            return Ok(());
        };
        let error = from_sdk(&format!("StopModelInvocationJob {arn}"), e);
        if error.retryable {
            return Err(error);
        }
        // Bedrock refuses to stop a job that has ended (as a validation
        // error or a conflict); that job is as stopped as it gets.
        match self.job_state(arn).await {
            Ok(BatchJobState::Completed | BatchJobState::Ended { .. }) => Ok(()),
            _ => Err(error),
        }
    }
}

impl BatchClient for BedrockBatch {
    fn record(&self, record_id: &str, model_id: &str, request: &Request) -> Result<String, String> {
        let record = record_for(record_id, model_id, request).map_err(|e| e.0)?;
        serde_json::to_string(&record).map_err(|e| format!("record {record_id}: {e}"))
    }

    fn answer(&self, line: &str) -> RecordAnswer {
        match serde_json::from_str::<Value>(line) {
            Ok(value) => RecordAnswer {
                record_id: record_id(&value).map(str::to_string),
                answer: answer_from(&value).map_err(|e| e.to_string()),
            },
            Err(e) => RecordAnswer {
                record_id: None,
                answer: Err(format!("an output line that is not JSON: {e}")),
            },
        }
    }

    fn upload<'a>(&'a self, uri: &'a str, body: Vec<u8>) -> BoxFuture<'a, Result<(), BatchError>> {
        Box::pin(self.put(uri, body))
    }

    fn create<'a>(&'a self, job: &'a NewBatchJob) -> BoxFuture<'a, Result<String, BatchError>> {
        Box::pin(self.create_job(job))
    }

    fn state<'a>(&'a self, arn: &'a str) -> BoxFuture<'a, Result<BatchJobState, BatchError>> {
        Box::pin(self.job_state(arn))
    }

    fn output<'a>(
        &'a self,
        output_uri: &'a str,
        arn: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, BatchError>> {
        Box::pin(self.read_output(output_uri, arn))
    }

    fn stop<'a>(&'a self, arn: &'a str) -> BoxFuture<'a, Result<(), BatchError>> {
        Box::pin(self.stop_job(arn))
    }
}

/// A request refused before or by the service: trying again will not help.
fn refused(message: String) -> BatchError {
    BatchError {
        retryable: false,
        message,
    }
}

/// Error codes that mean "not now" whatever the status says.
const RETRYABLE_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "SlowDown",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalServerException",
    "InternalError",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// An SDK error of either client as a [`BatchError`]; `what` names the
/// call.
fn from_sdk<E>(what: &str, err: SdkError<E, HttpResponse>) -> BatchError
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    let message = format!("{what}: {}", DisplayErrorContext(&err));
    let retryable = match &err {
        SdkError::ServiceError(context) => {
            let status = context.raw().status().as_u16();
            status == 429
                || status >= 500
                || context
                    .err()
                    .code()
                    .is_some_and(|c| RETRYABLE_CODES.contains(&c))
        }
        // No answer in time, no connection, or an answer cut off or
        // unreadable on the way.
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        // The request could not be built: it never will be.
        _ => false,
    };
    BatchError { retryable, message }
}

/// `s3://bucket/key`: a bucket and a key or key prefix (maybe empty).
#[derive(Debug, Clone, PartialEq, Eq)]
struct S3Uri {
    bucket: String,
    key: String,
}

impl S3Uri {
    fn parse(uri: &str) -> Result<S3Uri, BatchError> {
        let Some(rest) = uri.strip_prefix("s3://") else {
            return Err(refused(format!("{uri} is not an s3:// URI")));
        };
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !valid_bucket {
            return Err(refused(format!("{uri}: invalid bucket name")));
        }
        Ok(S3Uri {
            bucket: bucket.to_string(),
            key: key.to_string(),
        })
    }

    /// The key of `name` under this URI taken as a folder.
    fn join(&self, name: &str) -> String {
        let prefix = self.key.trim_end_matches('/');
        if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}/{name}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_uris_are_parsed_and_bad_ones_refused() {
        let uri = S3Uri::parse("s3://batch-test/out/").unwrap();
        assert_eq!(uri.bucket, "batch-test");
        assert_eq!(uri.join("job1/"), "out/job1/");
        assert_eq!(S3Uri::parse("s3://batch-test").unwrap().join("j/"), "j/");
        for bad in ["https://example.com/x", "s3://", "s3://UPPER/x", "batch/x"] {
            let err = S3Uri::parse(bad).unwrap_err();
            assert!(!err.retryable, "{bad}");
        }
    }

    #[test]
    fn a_line_that_is_not_json_answers_no_record() {
        let client = BedrockBatch::for_endpoints("http://127.0.0.1:9", "http://127.0.0.1:9");
        let answer = client.answer("{\"recordId\": ");
        assert_eq!(answer.record_id, None);
        assert!(answer.answer.is_err());
        let failed = client.answer(
            r#"{"recordId":"r1","modelInput":{},"error":{"errorCode":429,"errorMessage":"slow"}}"#,
        );
        assert_eq!(failed.record_id.as_deref(), Some("r1"));
        assert!(failed.answer.unwrap_err().contains("slow"));
    }

    #[tokio::test]
    async fn an_unreachable_service_is_retryable_and_a_bad_uri_is_not() {
        let client = BedrockBatch::for_endpoints("http://127.0.0.1:9", "http://127.0.0.1:9");
        let err = client.upload("s3://batch-test/in.jsonl", vec![]).await;
        assert!(err.unwrap_err().retryable);
        let err = client.upload("file:///tmp/in.jsonl", vec![]).await;
        assert!(!err.unwrap_err().retryable);
        let err = client.upload("s3://batch-test/", vec![]).await;
        assert!(!err.unwrap_err().retryable);
    }
}
