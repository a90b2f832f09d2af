//! One batch job's life after it is created: Submitted, InProgress after
//! the script's batch delay, every record answered as a Converse call would
//! be (the same rules, echo and schema-satisfying tool input), then after
//! the delay again the output written — one `{file}.out` per input file,
//! its lines shuffled, since Bedrock does not keep their order either — and
//! `manifest.json.out`; Completed, PartiallyCompleted when a record failed,
//! Failed when a script rule fails the job or S3 refuses a write, Stopped
//! when stopped before the output is written.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::Notify;

use super::s3::{self, InputFile, Record, S3Uri};
use super::{Counts, InvocationType, Status, messages};
use crate::converse::Request;
use crate::emulator::Emulator;
use crate::emulator::answer;
use crate::emulator::script::Answer;

/// What a job's task needs, handed over when it is created.
#[derive(Debug)]
pub(crate) struct Work {
    pub(crate) id: String,
    pub(crate) model_id: String,
    pub(crate) invocation_type: InvocationType,
    pub(crate) output: S3Uri,
    pub(crate) files: Vec<InputFile>,
    pub(crate) stop: Arc<Notify>,
}

/// One line of an output file.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct OutputLine<'a> {
    record_id: &'a str,
    model_input: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_output: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<RecordError>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RecordError {
    error_code: u16,
    error_message: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    #[serde(flatten)]
    counts: Counts,
    input_token_count: u64,
    output_token_count: u64,
}

/// A record's answer: the model's output with its token counts, or the
/// record's error.
enum Answered {
    Output {
        body: Value,
        input_tokens: u64,
        output_tokens: u64,
    },
    Error(RecordError),
}

/// Runs the job to its end. Every outcome is recorded on the job; nothing
/// is returned.
pub(crate) async fn run(emulator: Arc<Emulator>, work: Work) {
    let delay = emulator.batch_script().delay;
    let batches = &emulator.batches;
    if !wait(delay, &work.stop).await {
        return finish(&emulator, &work.id, Status::Stopped, None, None);
    }
    batches.update(&work.id, |job| {
        if job.status == Status::Submitted {
            job.status = Status::InProgress;
        }
    });
    let mut files = Vec::with_capacity(work.files.len());
    let mut counts = Counts::default();
    let (mut input_tokens, mut output_tokens) = (0u64, 0u64);
    for file in &work.files {
        let mut lines = Vec::with_capacity(file.records.len());
        for record in &file.records {
            let answered = match answer_record(&emulator, &work, record) {
                Ok(a) => a,
                Err(message) => {
                    return finish(&emulator, &work.id, Status::Failed, Some(message), None);
                }
            };
            counts.processed_record_count += 1;
            let line = match answered {
                Answered::Output {
                    body,
                    input_tokens: i,
                    output_tokens: o,
                } => {
                    counts.success_record_count += 1;
                    input_tokens += i;
                    output_tokens += o;
                    OutputLine {
                        record_id: &record.record_id,
                        model_input: &record.model_input,
                        model_output: Some(body),
                        error: None,
                    }
                }
                Answered::Error(e) => {
                    counts.error_record_count += 1;
                    OutputLine {
                        record_id: &record.record_id,
                        model_input: &record.model_input,
                        model_output: None,
                        error: Some(e),
                    }
                }
            };
            match serde_json::to_string(&line) {
                Ok(text) => lines.push(text),
                Err(e) => {
                    let message = format!("Internal error writing the output: {e}");
                    return finish(&emulator, &work.id, Status::Failed, Some(message), None);
                }
            }
        }
        // Callers must match records by recordId, never by position.
        fastrand::shuffle(&mut lines);
        files.push((file.name.clone(), lines));
    }
    counts.total_record_count = counts.processed_record_count;
    if !wait(delay, &work.stop).await || batches.status(&work.id) == Some(Status::Stopping) {
        return finish(&emulator, &work.id, Status::Stopped, None, None);
    }
    let client = batches.s3().await;
    for (name, lines) in files {
        let key = work.output.join(&format!("{}/{name}.out", work.id));
        let mut body = lines.join("\n");
        body.push('\n');
        if let Err(message) = s3::put(client, &work.output.bucket, &key, body.into_bytes()).await {
            return finish(
                &emulator,
                &work.id,
                Status::Failed,
                Some(message),
                Some(counts),
            );
        }
    }
    let manifest = Manifest {
        counts,
        input_token_count: input_tokens,
        output_token_count: output_tokens,
    };
    let key = work.output.join(&format!("{}/manifest.json.out", work.id));
    let body = serde_json::to_vec(&manifest).unwrap_or_default();
    if let Err(message) = s3::put(client, &work.output.bucket, &key, body).await {
        return finish(
            &emulator,
            &work.id,
            Status::Failed,
            Some(message),
            Some(counts),
        );
    }
    let status = if counts.error_record_count > 0 {
        Status::PartiallyCompleted
    } else {
        Status::Completed
    };
    finish(&emulator, &work.id, status, None, Some(counts));
}

/// Sleeps `delay` unless the job is stopped first: false when stopped.
async fn wait(delay: Duration, stop: &Notify) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        () = stop.notified() => false,
    }
}

fn finish(
    emulator: &Emulator,
    id: &str,
    status: Status,
    message: Option<String>,
    counts: Option<Counts>,
) {
    tracing::debug!(job = id, ?status, ?message, "emulator batch job ended");
    emulator.batches.update(id, |job| {
        job.status = status;
        job.message = message;
        job.end_time = Some(OffsetDateTime::now_utc());
        if let Some(counts) = counts {
            job.counts = counts;
        }
    });
}

/// Answers one record; `Err` is a scripted failure of the whole job.
fn answer_record(emulator: &Emulator, work: &Work, record: &Record) -> Result<Answered, String> {
    let refused = |code: u16, message: String| {
        Ok(Answered::Error(RecordError {
            error_code: code,
            error_message: message,
        }))
    };
    let request = match work.invocation_type {
        InvocationType::InvokeModel => messages::request(&record.model_input),
        InvocationType::Converse => converse_request(&record.model_input),
    };
    let request = match request {
        Ok(r) => r,
        Err(message) => return refused(400, message),
    };
    let plan = emulator.plan_record(&work.model_id, &request);
    if let Answer::FailJob(message) = &plan.answer {
        return Err(message.clone());
    }
    if let Err(e) = answer::validate(&request) {
        return refused(e.kind.http_status(), e.message);
    }
    let response = match answer::respond(&work.model_id, &request, &plan.answer, 0) {
        Ok(r) => r,
        Err(e) => return refused(e.kind.http_status(), e.message),
    };
    let body = match work.invocation_type {
        InvocationType::InvokeModel => {
            let seed = uuid::Uuid::new_v4().simple().to_string();
            messages::response(&work.model_id, &seed[..24], &response)
        }
        InvocationType::Converse => match serde_json::to_value(&response) {
            Ok(v) => v,
            Err(e) => return refused(500, format!("cannot encode the answer: {e}")),
        },
    };
    Ok(Answered::Output {
        body,
        input_tokens: u64::from(response.usage.input_tokens),
        output_tokens: u64::from(response.usage.output_tokens),
    })
}

/// A Converse-type record's `modelInput`: a Converse request body, without
/// `toolConfig`, which Bedrock refuses in batch (a 400 for the record).
fn converse_request(input: &Value) -> Result<Request, String> {
    if input.get("toolConfig").is_some() {
        return Err(
            "Malformed input request: toolConfig is not supported for batch inference jobs of the Converse invocation type"
                .to_string(),
        );
    }
    serde_json::from_value(input.clone()).map_err(|e| format!("Malformed input request: {e}"))
}
