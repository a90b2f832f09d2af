//! Bedrock's batch-inference control plane, as the emulator speaks it:
//! `CreateModelInvocationJob` (`POST /model-invocation-job`),
//! `GetModelInvocationJob` (`GET /model-invocation-job/{jobIdentifier}`, an
//! ARN or the id), `ListModelInvocationJobs` (`GET /model-invocation-jobs`)
//! and `StopModelInvocationJob` (`POST /model-invocation-job/{id}/stop`), in
//! the service's REST JSON, so the real aws-sdk-bedrock control-plane
//! client can drive it.
//!
//! A job reads its records from S3 when it is created (too few records, or
//! a record the service would refuse, is a ValidationException there), then
//! runs in the background (`run.rs`) and writes its output and manifest
//! back to S3 (`s3.rs`). Jobs live in memory, per emulator.
//!
//! Like the Converse routes it never names the SDK's types: the wire JSON
//! is read and written with serde here.

mod messages;
mod run;
mod s3;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::{Notify, OnceCell};

use super::{Emulator, with_request_id};
use s3::S3Uri;

/// The region and account in the ARNs the emulator makes.
pub(crate) const REGION: &str = "us-east-1";
const ACCOUNT: &str = "123456789012";

/// Bedrock's bounds for `timeoutDurationInHours`, and its default.
const MIN_TIMEOUT_HOURS: u32 = 24;
const MAX_TIMEOUT_HOURS: u32 = 168;

/// A job's status, with the service's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Status {
    Submitted,
    Validating,
    Scheduled,
    InProgress,
    Completed,
    PartiallyCompleted,
    Failed,
    Stopping,
    Stopped,
    Expired,
}

impl Status {
    fn is_running(self) -> bool {
        matches!(
            self,
            Status::Submitted | Status::Validating | Status::Scheduled | Status::InProgress
        )
    }
}

/// How each record's `modelInput` is read: the model's native InvokeModel
/// body (the default), or a Converse request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum InvocationType {
    InvokeModel,
    Converse,
}

/// The batch jobs of one emulator, and its S3 client (made on first use).
#[derive(Debug, Default)]
pub(crate) struct Batches {
    jobs: Mutex<BTreeMap<String, Job>>,
    s3: OnceCell<aws_sdk_s3::Client>,
    s3_endpoint_url: Option<String>,
}

impl Batches {
    pub(crate) fn new(s3_endpoint_url: Option<String>) -> Self {
        Batches {
            s3_endpoint_url,
            ..Batches::default()
        }
    }

    async fn s3(&self) -> &aws_sdk_s3::Client {
        self.s3
            .get_or_init(|| s3::client(self.s3_endpoint_url.as_deref()))
            .await
    }

    fn jobs(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Job>> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies `change` to the job `id` and stamps `lastModifiedTime`.
    pub(crate) fn update(&self, id: &str, change: impl FnOnce(&mut Job)) {
        if let Some(job) = self.jobs().get_mut(id) {
            change(job);
            job.last_modified_time = OffsetDateTime::now_utc();
        }
    }

    pub(crate) fn status(&self, id: &str) -> Option<Status> {
        self.jobs().get(id).map(|j| j.status)
    }
}

/// One job as the service describes it.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    id: String,
    arn: String,
    name: String,
    model_id: String,
    role_arn: String,
    client_request_token: Option<String>,
    invocation_type: InvocationType,
    input_data_config: Value,
    output_data_config: Value,
    timeout_hours: u32,
    pub(crate) status: Status,
    pub(crate) message: Option<String>,
    submit_time: OffsetDateTime,
    last_modified_time: OffsetDateTime,
    pub(crate) end_time: Option<OffsetDateTime>,
    pub(crate) counts: Counts,
    stop: Arc<Notify>,
}

/// The record counts Get and List report (and the manifest holds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Counts {
    pub(crate) total_record_count: u64,
    pub(crate) processed_record_count: u64,
    pub(crate) success_record_count: u64,
    pub(crate) error_record_count: u64,
}

/// `CreateModelInvocationJob`'s body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateBody {
    job_name: Option<String>,
    role_arn: Option<String>,
    model_id: Option<String>,
    client_request_token: Option<String>,
    input_data_config: Option<Value>,
    output_data_config: Option<Value>,
    timeout_duration_in_hours: Option<u32>,
    model_invocation_type: Option<InvocationType>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct S3InputDataConfig {
    s3_uri: String,
    s3_input_format: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct S3OutputDataConfig {
    s3_uri: String,
}

/// A job on the wire: Get's answer, and each summary of List's.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct JobView<'a> {
    job_arn: &'a str,
    job_name: &'a str,
    model_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_request_token: Option<&'a str>,
    role_arn: &'a str,
    status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    submit_time: String,
    last_modified_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_time: Option<String>,
    input_data_config: &'a Value,
    output_data_config: &'a Value,
    timeout_duration_in_hours: u32,
    job_expiration_time: String,
    model_invocation_type: InvocationType,
    #[serde(flatten)]
    counts: Counts,
}

impl Job {
    fn view(&self) -> JobView<'_> {
        let expiration = self.submit_time + time::Duration::hours(i64::from(self.timeout_hours));
        JobView {
            job_arn: &self.arn,
            job_name: &self.name,
            model_id: &self.model_id,
            client_request_token: self.client_request_token.as_deref(),
            role_arn: &self.role_arn,
            status: self.status,
            message: self.message.as_deref(),
            submit_time: timestamp(self.submit_time),
            last_modified_time: timestamp(self.last_modified_time),
            end_time: self.end_time.map(timestamp),
            input_data_config: &self.input_data_config,
            output_data_config: &self.output_data_config,
            timeout_duration_in_hours: self.timeout_hours,
            job_expiration_time: timestamp(expiration),
            model_invocation_type: self.invocation_type,
            counts: self.counts,
        }
    }
}

fn timestamp(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// `POST /model-invocation-job`.
pub(super) async fn create(State(emulator): State<Arc<Emulator>>, body: Bytes) -> Response {
    let body: CreateBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return validation(&format!("Malformed request body: {e}")),
    };
    let batches = &emulator.batches;
    // The same token is the same request: its job, and no second one.
    if let Some(token) = &body.client_request_token
        && let Some(job) = batches
            .jobs()
            .values()
            .find(|j| j.client_request_token.as_ref() == Some(token))
    {
        return created(&job.arn);
    }
    let checked = match check_create(&body) {
        Ok(c) => c,
        Err(message) => return validation(&message),
    };
    let files = match s3::read_input(batches.s3().await, &checked.input).await {
        Ok(f) => f,
        Err(message) => return validation(&message),
    };
    let total: usize = files.iter().map(|f| f.records.len()).sum();
    let min_records = emulator.batch_script().min_records;
    if total < min_records {
        return validation(&format!(
            "The input contains {total} records, fewer than the minimum of {min_records} records per batch inference job"
        ));
    }
    let now = OffsetDateTime::now_utc();
    let id = job_id();
    let arn = format!("arn:aws:bedrock:{REGION}:{ACCOUNT}:model-invocation-job/{id}");
    let job = Job {
        id: id.clone(),
        arn: arn.clone(),
        name: checked.name,
        model_id: checked.model_id,
        role_arn: checked.role_arn,
        client_request_token: body.client_request_token.clone(),
        invocation_type: body
            .model_invocation_type
            .unwrap_or(InvocationType::InvokeModel),
        input_data_config: body.input_data_config.clone().unwrap_or_default(),
        output_data_config: body.output_data_config.clone().unwrap_or_default(),
        timeout_hours: checked.timeout_hours,
        status: Status::Submitted,
        message: None,
        submit_time: now,
        last_modified_time: now,
        end_time: None,
        counts: Counts {
            total_record_count: total as u64,
            ..Counts::default()
        },
        stop: Arc::new(Notify::new()),
    };
    {
        let mut jobs = batches.jobs();
        // A request with the same token may have been created meanwhile.
        if let Some(token) = &body.client_request_token
            && let Some(existing) = jobs
                .values()
                .find(|j| j.client_request_token.as_ref() == Some(token))
        {
            return created(&existing.arn);
        }
        let work = run::Work {
            id: id.clone(),
            model_id: job.model_id.clone(),
            invocation_type: job.invocation_type,
            output: checked.output,
            files,
            stop: job.stop.clone(),
        };
        jobs.insert(id, job);
        tokio::spawn(run::run(emulator.clone(), work));
    }
    tracing::debug!(%arn, records = total, "emulator batch job created");
    created(&arn)
}

struct CheckedCreate {
    name: String,
    model_id: String,
    role_arn: String,
    input: S3Uri,
    output: S3Uri,
    timeout_hours: u32,
}

/// The refusals Bedrock makes before it reads any record.
fn check_create(body: &CreateBody) -> Result<CheckedCreate, String> {
    let required = |value: &Option<String>, key: &str| {
        value
            .clone()
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| format!("1 validation error detected: Value null at '{key}' failed to satisfy constraint: Member must not be null"))
    };
    let name = required(&body.job_name, "jobName")?;
    let valid_name = name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '+' | '.'));
    if !valid_name {
        return Err(format!(
            "1 validation error detected: Value '{name}' at 'jobName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9]{{1,63}}(-*[a-zA-Z0-9\\+\\-\\.]){{0,63}}"
        ));
    }
    let role_arn = required(&body.role_arn, "roleArn")?;
    if !role_arn.starts_with("arn:aws") || !role_arn.contains(":role/") {
        return Err(format!(
            "1 validation error detected: Value '{role_arn}' at 'roleArn' failed to satisfy constraint: Member must be an IAM role ARN"
        ));
    }
    let model_id = required(&body.model_id, "modelId")?;
    let input: S3InputDataConfig = union_member(
        &body.input_data_config,
        "inputDataConfig",
        "s3InputDataConfig",
    )?;
    if let Some(format) = &input.s3_input_format
        && format != "JSONL"
    {
        return Err(format!(
            "The input format {format} is not supported: use JSONL"
        ));
    }
    let output: S3OutputDataConfig = union_member(
        &body.output_data_config,
        "outputDataConfig",
        "s3OutputDataConfig",
    )?;
    let timeout_hours = body.timeout_duration_in_hours.unwrap_or(MAX_TIMEOUT_HOURS);
    if !(MIN_TIMEOUT_HOURS..=MAX_TIMEOUT_HOURS).contains(&timeout_hours) {
        return Err(format!(
            "1 validation error detected: Value '{timeout_hours}' at 'timeoutDurationInHours' failed to satisfy constraint: Member must have value between {MIN_TIMEOUT_HOURS} and {MAX_TIMEOUT_HOURS}"
        ));
    }
    Ok(CheckedCreate {
        name,
        model_id,
        role_arn,
        input: S3Uri::parse(&input.s3_uri)?,
        output: S3Uri::parse(&output.s3_uri)?,
        timeout_hours,
    })
}

/// The one member of a union (`{"s3InputDataConfig": {...}}`).
fn union_member<T: serde::de::DeserializeOwned>(
    value: &Option<Value>,
    key: &str,
    member: &str,
) -> Result<T, String> {
    let Some(inner) = value.as_ref().and_then(|v| v.get(member)) else {
        return Err(format!(
            "1 validation error detected: Value null at '{key}.{member}' failed to satisfy constraint: Member must not be null"
        ));
    };
    serde_json::from_value(inner.clone()).map_err(|e| format!("Invalid {key}.{member}: {e}"))
}

/// Twelve lowercase letters and digits, like the service's job ids.
fn job_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..12)
        .map(|_| char::from(ALPHABET[fastrand::usize(..ALPHABET.len())]))
        .collect()
}

fn created(arn: &str) -> Response {
    json_response(&serde_json::json!({ "jobArn": arn }))
}

/// `GET /model-invocation-job/{jobIdentifier}`.
pub(super) async fn get(
    State(emulator): State<Arc<Emulator>>,
    Path(identifier): Path<String>,
) -> Response {
    let jobs = emulator.batches.jobs();
    match jobs.get(job_id_of(&identifier)) {
        Some(job) => json_response(&job.view()),
        None => not_found(&identifier),
    }
}

/// `POST /model-invocation-job/{jobIdentifier}/stop`.
pub(super) async fn stop(
    State(emulator): State<Arc<Emulator>>,
    Path(identifier): Path<String>,
) -> Response {
    let mut jobs = emulator.batches.jobs();
    let Some(job) = jobs.get_mut(job_id_of(&identifier)) else {
        return not_found(&identifier);
    };
    if !job.status.is_running() && job.status != Status::Stopping {
        return validation(&format!(
            "The job {} cannot be stopped: its status is {:?}",
            job.arn, job.status
        ));
    }
    job.status = Status::Stopping;
    job.last_modified_time = OffsetDateTime::now_utc();
    // A permit is kept if the job is not waiting at this moment.
    job.stop.notify_one();
    json_response(&serde_json::json!({}))
}

/// `ListModelInvocationJobs`' query.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ListQuery {
    status_equals: Option<Status>,
    name_contains: Option<String>,
    submit_time_after: Option<String>,
    submit_time_before: Option<String>,
    max_results: Option<usize>,
    next_token: Option<String>,
    sort_order: Option<String>,
}

/// `GET /model-invocation-jobs`: newest first unless `sortOrder=Ascending`,
/// `maxResults` (1-1000) per page.
pub(super) async fn list(
    State(emulator): State<Arc<Emulator>>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return validation("Invalid query parameters for ListModelInvocationJobs");
    };
    let parse_time = |t: &Option<String>| match t {
        None => Ok(None),
        Some(t) => OffsetDateTime::parse(t, &Rfc3339)
            .map(Some)
            .map_err(|_| format!("Invalid timestamp {t}")),
    };
    let (after, before) = match (
        parse_time(&query.submit_time_after),
        parse_time(&query.submit_time_before),
    ) {
        (Ok(after), Ok(before)) => (after, before),
        (Err(message), _) | (_, Err(message)) => return validation(&message),
    };
    let max = query.max_results.unwrap_or(1000);
    if !(1..=1000).contains(&max) {
        return validation("maxResults must be between 1 and 1000");
    }
    let start: usize = match query.next_token.as_deref().map(str::parse) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return validation("Invalid nextToken"),
    };
    let jobs = emulator.batches.jobs();
    let mut chosen: Vec<&Job> = jobs
        .values()
        .filter(|j| query.status_equals.is_none_or(|s| j.status == s))
        .filter(|j| {
            query
                .name_contains
                .as_deref()
                .is_none_or(|n| j.name.contains(n))
        })
        .filter(|j| after.is_none_or(|t| j.submit_time > t))
        .filter(|j| before.is_none_or(|t| j.submit_time < t))
        .collect();
    chosen.sort_by_key(|j| (j.submit_time, j.id.clone()));
    if query.sort_order.as_deref() != Some("Ascending") {
        chosen.reverse();
    }
    let page: Vec<JobView<'_>> = chosen
        .iter()
        .skip(start)
        .take(max)
        .map(|j| j.view())
        .collect();
    let next = start + page.len();
    let mut body = serde_json::json!({ "invocationJobSummaries": page });
    if next < chosen.len() {
        body["nextToken"] = Value::String(next.to_string());
    }
    json_response(&body)
}

/// A job is named by its ARN or its id.
fn job_id_of(identifier: &str) -> &str {
    identifier.rsplit('/').next().unwrap_or(identifier)
}

fn json_response<T: Serialize>(body: &T) -> Response {
    with_request_id(Json(body).into_response())
}

fn validation(message: &str) -> Response {
    control_error(StatusCode::BAD_REQUEST, "ValidationException", message)
}

fn not_found(identifier: &str) -> Response {
    control_error(
        StatusCode::NOT_FOUND,
        "ResourceNotFoundException",
        &format!("The model invocation job {identifier} was not found"),
    )
}

/// A control-plane error: its status, `x-amzn-ErrorType` and `{"message"}`.
fn control_error(status: StatusCode, kind: &'static str, message: &str) -> Response {
    let body = serde_json::json!({ "message": message }).to_string();
    let mut response = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    response
        .headers_mut()
        .insert("x-amzn-ErrorType", HeaderValue::from_static(kind));
    with_request_id(response)
}
