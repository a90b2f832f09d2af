//! A Bedrock Converse emulator speaking the real wire protocol, for tests,
//! demos and users' own CI: `POST /model/{modelId}/converse` with the
//! Converse JSON body, answers in the same JSON, errors with the service's
//! HTTP statuses, `x-amzn-ErrorType` header and `{"message": ...}` body, so
//! the real aws-sdk-bedrockruntime (or any other SDK) can talk to it.
//!
//! By default it echoes the last user text; when a tool is forced it answers
//! with JSON satisfying the tool's input schema (`schema.rs`). A
//! [`Script`] changes answers per model and prompt (`script.rs`). Calls are
//! counted per model id, per forced tool and per script rule:
//! `GET /_emulator/calls`, `POST /_emulator/reset`.
//!
//! It also speaks Bedrock's batch-inference control plane (`batch/`):
//! model-invocation jobs that read JSONL records from S3 and write their
//! answers back there.
//!
//! It has its own axum router and never imports `bedrock`: the two meet
//! only on the wire.

mod answer;
mod batch;
mod delay;
mod pattern;
pub mod schema;
mod script;

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderValue, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::converse::{Request, ServiceErrorKind};
use crate::listen::{self, ConnSettings};
use script::{Answer, BatchScript, ScriptedError};
pub use script::{Script, ScriptError};

/// Bedrock accepts documents of several MB each; so must the emulator.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// The emulator's shared state: the script, and counters that tests read.
#[derive(Debug)]
struct Emulator {
    script: Option<Script>,
    counters: Mutex<Counters>,
    batches: batch::Batches,
}

#[derive(Debug, Default)]
struct Counters {
    /// Converse calls per model id, failed ones included.
    calls: BTreeMap<String, u64>,
    /// How often each script rule matched, for `fail_first`.
    rule_hits: Vec<u64>,
    /// Converse calls per HTTP version ("HTTP/1.1", "HTTP/2").
    protocols: BTreeMap<&'static str, u64>,
    /// Converse calls per forced tool name (a call that forces no tool is
    /// not counted here).
    tools: BTreeMap<String, u64>,
    /// Converse calls each script rule answered, by rule name.
    rules: BTreeMap<String, u64>,
}

/// `GET /_emulator/calls`.
#[derive(Debug, Serialize)]
struct CallCounts<'a> {
    total: u64,
    models: &'a BTreeMap<String, u64>,
    protocols: &'a BTreeMap<&'static str, u64>,
    tools: &'a BTreeMap<String, u64>,
    rules: &'a BTreeMap<String, u64>,
}

/// What an emulator is started with.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub script: Option<Script>,
    /// The S3 that batch jobs read and write, with static test keys
    /// (moto's server in tests). `None`: the standard AWS chain
    /// (`AWS_ENDPOINT_URL_S3`, the usual keys and region).
    pub s3_endpoint_url: Option<String>,
}

/// The emulator's routes, for embedding or for serving with [`serve`].
pub fn router(script: Option<Script>) -> Router {
    router_with(Options {
        script,
        s3_endpoint_url: None,
    })
}

/// The emulator's routes, with every option.
pub fn router_with(options: Options) -> Router {
    let state = Arc::new(Emulator {
        script: options.script,
        counters: Mutex::new(Counters::default()),
        batches: batch::Batches::new(options.s3_endpoint_url),
    });
    Router::new()
        .route("/model/{model_id}/converse", post(converse))
        .route("/model-invocation-job", post(batch::create))
        .route("/model-invocation-job/{job_identifier}", get(batch::get))
        .route(
            "/model-invocation-job/{job_identifier}/stop",
            post(batch::stop),
        )
        .route("/model-invocation-jobs", get(batch::list))
        .route("/_emulator/calls", get(calls))
        .route("/_emulator/reset", post(reset))
        .fallback(unknown_operation)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Streams one HTTP/2 connection may carry at once. hyper's default (200)
/// would queue a facade's calls behind each other: a facade sends all its
/// calls in flight over one h2c connection.
const MAX_CONCURRENT_STREAMS: u32 = 16_384;

/// Serves the emulator on `listener` until `shutdown` completes, then lets
/// the calls in progress finish. Speaks HTTP/1.1 and, by prior knowledge,
/// HTTP/2 (h2c).
pub async fn serve(
    listener: TcpListener,
    script: Option<Script>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    serve_with(
        listener,
        Options {
            script,
            s3_endpoint_url: None,
        },
        shutdown,
    )
    .await
}

/// [`serve`] with every option.
pub async fn serve_with(
    listener: TcpListener,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let settings = ConnSettings {
        max_head_bytes: 64 * 1024,
        max_concurrent_streams: MAX_CONCURRENT_STREAMS,
    };
    listen::serve(listener, router_with(options), settings, shutdown).await
}

/// A running in-process emulator. Dropping it stops the server.
#[derive(Debug)]
pub struct EmulatorHandle {
    addr: SocketAddr,
    base_url: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl EmulatorHandle {
    /// `http://127.0.0.1:PORT`: the endpoint URL to give the SDK.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the server and waits for it to finish.
    pub async fn stop(mut self) -> io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.unwrap_or_else(|e| Err(io::Error::other(e))),
            None => Ok(()),
        }
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Binds 127.0.0.1 on a free port and runs the emulator on the current
/// tokio runtime: what `serve --emulator` and tests use.
pub async fn spawn(script: Option<Script>) -> io::Result<EmulatorHandle> {
    spawn_with(Options {
        script,
        s3_endpoint_url: None,
    })
    .await
}

/// [`spawn`] with every option.
pub async fn spawn_with(options: Options) -> io::Result<EmulatorHandle> {
    let listener = crate::listen::bind("127.0.0.1:0", crate::listen::DEFAULT_BACKLOG).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_with(listener, options, async move {
        // A dropped sender also means stop.
        let _ = stopped.await;
    }));
    Ok(EmulatorHandle {
        addr,
        base_url: format!("http://{addr}"),
        stop: Some(stop),
        task: Some(task),
    })
}

/// What to do with one call, decided under the counters' lock.
struct Plan {
    delay: Option<Duration>,
    rule: Option<String>,
    answer: Answer,
}

impl Emulator {
    /// The plan of a Converse call, counted as a call.
    fn plan(&self, model_id: &str, version: Version, request: &Request) -> Plan {
        let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        *counters.calls.entry(model_id.to_string()).or_default() += 1;
        let protocol = match version {
            Version::HTTP_2 => "HTTP/2",
            Version::HTTP_11 => "HTTP/1.1",
            _ => "other",
        };
        *counters.protocols.entry(protocol).or_default() += 1;
        if let Some(tool) = request.forced_tool() {
            *counters.tools.entry(tool.name.clone()).or_default() += 1;
        }
        let plan = self.choose(&mut counters, model_id, request);
        if let Some(rule) = &plan.rule {
            *counters.rules.entry(rule.clone()).or_default() += 1;
        }
        plan
    }

    /// The plan of one batch record: the rules decide as for a call, but
    /// it is not a Converse call, so `/_emulator/calls` does not count it.
    fn plan_record(&self, model_id: &str, request: &Request) -> Plan {
        let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        self.choose(&mut counters, model_id, request)
    }

    fn batch_script(&self) -> BatchScript {
        self.script
            .as_ref()
            .map_or_else(BatchScript::default, |s| s.batch.clone())
    }

    fn choose(&self, counters: &mut Counters, model_id: &str, request: &Request) -> Plan {
        let Some(script) = &self.script else {
            return Plan {
                delay: None,
                rule: None,
                answer: Answer::Default,
            };
        };
        if counters.rule_hits.len() < script.rules.len() {
            counters.rule_hits.resize(script.rules.len(), 0);
        }
        // The first matching rule decides, except that a rule with `after:
        // N` lets its first N matching calls fall through to later rules.
        let prompt = request.prompt_text();
        let mut chosen = None;
        for (index, rule) in script.rules.iter().enumerate() {
            if !rule.matches(model_id, &prompt) {
                continue;
            }
            counters.rule_hits[index] += 1;
            if rule.after.is_some_and(|n| counters.rule_hits[index] <= n) {
                continue;
            }
            chosen = Some(index);
            break;
        }
        let Some(index) = chosen else {
            return Plan {
                delay: None,
                rule: None,
                answer: Answer::Default,
            };
        };
        let rule = &script.rules[index];
        let hit = counters.rule_hits[index];
        let answer = match &rule.fail_first {
            Some(fail) if hit <= fail.times => Answer::Error(fail.error.clone()),
            _ => rule.answer.clone(),
        };
        Plan {
            delay: rule.delay,
            rule: Some(rule.name.clone()),
            answer,
        }
    }
}

async fn converse(
    State(emulator): State<Arc<Emulator>>,
    Path(model_id): Path<String>,
    version: Version,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let request: Request = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            // Counted too: a test counting calls wants every attempt.
            emulator.plan(&model_id, version, &Request::default());
            return error_response(&answer::scripted(
                ServiceErrorKind::Validation,
                Some(&format!("Malformed input request: {e}")),
            ));
        }
    };
    let plan = emulator.plan(&model_id, version, &request);
    tracing::debug!(model_id, rule = ?plan.rule, "emulator call");
    if let Some(delay) = plan.delay {
        delay::sleep(delay).await;
    }
    if let Err(e) = answer::validate(&request) {
        return error_response(&e);
    }
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match answer::respond(&model_id, &request, &plan.answer, latency_ms) {
        Ok(response) => match serde_json::to_vec(&response) {
            Ok(json) => with_request_id(
                (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    json,
                )
                    .into_response(),
            ),
            Err(e) => error_response(&answer::scripted(
                ServiceErrorKind::InternalServer,
                Some(&format!("cannot encode the answer: {e}")),
            )),
        },
        Err(e) => error_response(&e),
    }
}

async fn calls(State(emulator): State<Arc<Emulator>>) -> Response {
    let counters = emulator
        .counters
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let body = CallCounts {
        total: counters.calls.values().sum(),
        models: &counters.calls,
        protocols: &counters.protocols,
        tools: &counters.tools,
        rules: &counters.rules,
    };
    axum::Json(body).into_response()
}

async fn reset(State(emulator): State<Arc<Emulator>>) -> StatusCode {
    let mut counters = emulator
        .counters
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    *counters = Counters::default();
    StatusCode::NO_CONTENT
}

async fn unknown_operation() -> Response {
    let mut response = (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"message":"Unknown operation"}"#,
    )
        .into_response();
    response.headers_mut().insert(
        "x-amzn-ErrorType",
        HeaderValue::from_static("UnknownOperationException"),
    );
    with_request_id(response)
}

/// An error as the service sends it: its status, the error type header
/// (what SDKs read the error code from) and `{"message": ...}`.
fn error_response(error: &ScriptedError) -> Response {
    let status =
        StatusCode::from_u16(error.kind.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::json!({ "message": error.message }).to_string();
    let mut response = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    response.headers_mut().insert(
        "x-amzn-ErrorType",
        HeaderValue::from_static(error.kind.exception_name()),
    );
    if let Some(secs) = error.retry_after_secs {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    with_request_id(response)
}

fn with_request_id(mut response: Response) -> Response {
    if let Ok(id) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        response.headers_mut().insert("x-amzn-RequestId", id);
    }
    response
}
