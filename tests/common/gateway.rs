//! Helpers for the end-to-end tests: [`Gateway`] runs the Converse
//! emulator and the facade in process, the facade's model client being the
//! real aws-sdk-bedrockruntime client talking HTTP to the emulator;
//! [`SoapReply`] reads what came back (payload or fault); [`Validator`]
//! checks a response payload against its WSDL's schema with Python
//! `xmlschema`, a validator soapgate did not write.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;
use soapgate::app::{App, Parts, Role};
use soapgate::bedrock::{BedrockClient, BedrockSettings};
use soapgate::config::Settings;
use soapgate::converse::{BoxFuture, ModelClient, ModelError, Request, Response};
use soapgate::emulator::{self, EmulatorHandle, Script};
use soapgate::http::AppState;
use soapgate::shutdown::Shutdown;
use soapgate::xml::{self, Element, Limits};
use tokio::task::JoinHandle;

pub(crate) const SOAP11_ENV: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub(crate) const SOAP12_ENV: &str = "http://www.w3.org/2003/05/soap-envelope";
pub(crate) const SG: &str = "urn:soapgate:v1";

/// The repository root (where `wsdl/`, `mappings/` and `examples/` live).
pub(crate) fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One attempt per model call: the SDK's own retries are tested elsewhere,
/// and here every counted call should be one the pipeline made.
pub(crate) fn bedrock_settings() -> BedrockSettings {
    BedrockSettings {
        connect_timeout_ms: 1_000,
        read_timeout_ms: 5_000,
        operation_timeout_ms: 10_000,
        max_attempts: 1,
        initial_backoff_ms: 10,
        ..BedrockSettings::default()
    }
}

/// A [`ModelClient`] that keeps every request it forwards, so a test can
/// read what the pipeline sent (the wire still goes through the SDK).
#[derive(Debug)]
pub(crate) struct Recording {
    inner: BedrockClient,
    seen: Mutex<Vec<(String, Request)>>,
}

impl Recording {
    /// `(model id, request)` of every call so far.
    pub(crate) fn requests(&self) -> Vec<(String, Request)> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl ModelClient for Recording {
    fn converse<'a>(
        &'a self,
        model_id: &'a str,
        request: &'a Request,
    ) -> BoxFuture<'a, Result<Response, ModelError>> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((model_id.to_string(), request.clone()));
        self.inner.converse(model_id, request)
    }
}

/// The emulator (with an optional script) and the facade in front of it,
/// both on loopback port 0 in the test's runtime. Dropping it stops both.
#[derive(Debug)]
pub(crate) struct Gateway {
    pub(crate) emulator: EmulatorHandle,
    pub(crate) base_url: String,
    pub(crate) model: Arc<Recording>,
    /// The in-memory job store async and one-way calls are queued in.
    pub(crate) store: soapgate::store::Store,
    /// What the server serves (contracts as published, mappings, model).
    pub(crate) state: AppState,
    http: reqwest::Client,
    stop: Shutdown,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Gateway {
    /// The example contracts and mappings of the repository.
    pub(crate) async fn start(script: Option<&str>) -> Gateway {
        Gateway::start_with(script, &repo_root().join("mappings")).await
    }

    /// The example contracts with the mappings of `mappings_dir`.
    pub(crate) async fn start_with(script: Option<&str>, mappings_dir: &Path) -> Gateway {
        Gateway::start_full(script, mappings_dir, bedrock_settings()).await
    }

    /// The example contracts, the mappings of `mappings_dir`, and a model
    /// client with these settings.
    pub(crate) async fn start_full(
        script: Option<&str>,
        mappings_dir: &Path,
        bedrock: BedrockSettings,
    ) -> Gateway {
        Gateway::start_on(script, mappings_dir, bedrock, "sqlite::memory:").await
    }

    /// [`Gateway::start_full`] with its store at `database_url`.
    pub(crate) async fn start_on(
        script: Option<&str>,
        mappings_dir: &Path,
        bedrock: BedrockSettings,
        database_url: &str,
    ) -> Gateway {
        let script = script.map(|s| Script::parse(s, "e2e-script.yaml").expect("test script"));
        let emulator = emulator::spawn(script)
            .await
            .expect("starting the emulator");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a loopback port");
        let base_url = format!("http://{}", listener.local_addr().expect("local address"));
        let mut settings = Settings {
            public_url: Some(base_url.clone()),
            wsdl_dir: repo_root().join("wsdl"),
            mappings_dir: mappings_dir.to_path_buf(),
            bedrock,
            ..Settings::default()
        };
        // Jobs wait in the store (in memory unless told) until a test runs
        // them (`run_next_job`): no workers.
        settings.database.url = database_url.into();
        settings.worker.enabled = false;
        let model = Arc::new(Recording {
            inner: BedrockClient::for_endpoint(emulator.base_url(), &settings.bedrock),
            seen: Mutex::new(Vec::new()),
        });
        let parts = Parts {
            model: Some(model.clone()),
            listener: Some(listener),
            ..Parts::default()
        };
        let app = App::build(settings, Role::Serve, parts)
            .await
            .unwrap_or_else(|e| panic!("the gateway does not build: {e:#}"));
        let state = app.state().clone();
        let store = state.store.get().cloned().expect("an in-memory job store");
        let stop = Shutdown::new();
        let task = tokio::spawn(app.run_until_stopped(stop.clone()));
        Gateway {
            emulator,
            base_url,
            model,
            store,
            state,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
            stop,
            task: Some(task),
        }
    }

    /// The URL of `/soap/{service}`.
    /// `GET /soap/{service}?wsdl`, saved to a temporary file (its imports
    /// point back at this gateway).
    pub(crate) async fn published_wsdl(&self, service: &str) -> tempfile::NamedTempFile {
        let text = self
            .http
            .get(format!("{}?wsdl", self.endpoint(service)))
            .send()
            .await
            .expect("GET ?wsdl")
            .text()
            .await
            .expect("WSDL text");
        let mut file = tempfile::Builder::new()
            .suffix(".wsdl")
            .tempfile()
            .expect("temp file");
        file.write_all(text.as_bytes()).expect("writing the WSDL");
        file
    }

    pub(crate) fn endpoint(&self, service: &str) -> String {
        format!("{}/soap/{service}", self.base_url)
    }

    /// The facade's HTTP client.
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// POST an envelope to `/soap/{service}` (see [`post_soap`]).
    pub(crate) async fn call(
        &self,
        service: &str,
        version: Version,
        action: &str,
        envelope: &[u8],
    ) -> SoapReply {
        let url = format!("{}/soap/{service}", self.base_url);
        post_soap(&self.http, &url, version, action, envelope).await
    }

    /// `GET /_emulator/calls`: `{"total": n, "models": {id: n}}`.
    pub(crate) async fn model_calls(&self) -> Value {
        let text = self
            .http
            .get(format!("{}/_emulator/calls", self.emulator.base_url()))
            .send()
            .await
            .expect("asking the emulator for its counts")
            .text()
            .await
            .expect("reading the counts");
        serde_json::from_str(&text).expect("counts are JSON")
    }

    /// Total Converse calls the emulator saw.
    pub(crate) async fn total_calls(&self) -> u64 {
        self.model_calls().await["total"].as_u64().expect("a total")
    }

    /// `POST /_emulator/reset`: counts and `fail_first` counters to zero.
    pub(crate) async fn reset(&self) {
        let status = self
            .http
            .post(format!("{}/_emulator/reset", self.emulator.base_url()))
            .send()
            .await
            .expect("resetting the emulator")
            .status();
        assert_eq!(status.as_u16(), 204);
    }
}

impl Gateway {
    /// Stops the facade as a signal would, and waits until it has (its
    /// background writers flushed).
    pub(crate) async fn stop(mut self) {
        self.stop.trigger();
        if let Some(task) = self.task.take() {
            let stopped = task.await.expect("the facade's task");
            stopped.expect("the facade stops cleanly");
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop.trigger();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// POST an envelope to `url` the way a client of `version` does: SOAP 1.1
/// as `text/xml` with a `SOAPAction` header, SOAP 1.2 as
/// `application/soap+xml` with the `action` parameter.
pub(crate) async fn post_soap(
    http: &reqwest::Client,
    url: &str,
    version: Version,
    action: &str,
    envelope: &[u8],
) -> SoapReply {
    let (content_type, soap_action) = match version {
        Version::V11 => (
            "text/xml; charset=utf-8".to_string(),
            Some(format!("\"{action}\"")),
        ),
        Version::V12 => (
            format!("application/soap+xml; charset=utf-8; action=\"{action}\""),
            None,
        ),
    };
    post_raw(http, url, &content_type, soap_action.as_deref(), envelope).await
}

/// POST `body` with exactly this Content-Type (and SOAPAction, if any).
pub(crate) async fn post_raw(
    http: &reqwest::Client,
    url: &str,
    content_type: &str,
    soap_action: Option<&str>,
    body: &[u8],
) -> SoapReply {
    let mut request = http.post(url).header("content-type", content_type);
    if let Some(action) = soap_action {
        request = request.header("soapaction", action);
    }
    let response = request
        .body(body.to_vec())
        .send()
        .await
        .unwrap_or_else(|e| panic!("calling {url}: {e}"));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("reading the reply").to_vec();
    SoapReply {
        status,
        content_type: header(&headers, "content-type"),
        correlation_id: header(&headers, "x-correlation-id"),
        body,
    }
}

fn header(headers: &reqwest::header::HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    V11,
    V12,
}

impl Version {
    pub(crate) fn envelope_ns(self) -> &'static str {
        match self {
            Version::V11 => SOAP11_ENV,
            Version::V12 => SOAP12_ENV,
        }
    }
}

/// Rewrite a SOAP 1.1 sample envelope as SOAP 1.2 (same payload).
pub(crate) fn as_soap12(envelope: &str) -> String {
    envelope.replace(SOAP11_ENV, SOAP12_ENV)
}

/// What the facade answered.
#[derive(Debug)]
pub(crate) struct SoapReply {
    pub(crate) status: u16,
    pub(crate) content_type: String,
    pub(crate) correlation_id: String,
    pub(crate) body: Vec<u8>,
}

/// The parts of a SOAP fault a client branches on.
#[derive(Debug)]
pub(crate) struct FaultInfo {
    /// The SOAP fault code's local name: `Server`, `Receiver`, `Client`, ...
    pub(crate) code: String,
    /// `sg:Code` of the detail.
    pub(crate) sg_code: String,
    pub(crate) sg_message: String,
    pub(crate) retry_after: Option<String>,
}

impl SoapReply {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The envelope, parsed; panics with the body when it is not one.
    pub(crate) fn envelope(&self) -> Element {
        let doc = xml::read(&self.body, None, &Limits::default())
            .unwrap_or_else(|e| panic!("reply is not XML ({e}):\n{}", self.text()));
        let root = doc.root;
        assert_eq!(root.name.local, "Envelope", "{}", self.text());
        root
    }

    /// The Header's blocks (none when there is no Header).
    pub(crate) fn headers(&self) -> Vec<Element> {
        let env = self.envelope();
        let ns = env.name.ns.clone();
        env.child(&ns, "Header")
            .map(|h| h.elements().cloned().collect())
            .unwrap_or_default()
    }

    /// The Body's children.
    pub(crate) fn payload(&self) -> Vec<Element> {
        let env = self.envelope();
        let ns = env.name.ns.clone();
        let body = env
            .child(&ns, "Body")
            .unwrap_or_else(|| panic!("no Body:\n{}", self.text()));
        body.elements().cloned().collect()
    }

    /// The fault, or a panic showing what came back instead.
    pub(crate) fn fault(&self) -> FaultInfo {
        let env = self.envelope();
        let ns = env.name.ns.clone();
        let payload = self.payload();
        let fault = payload
            .iter()
            .find(|e| e.name.is(&ns, "Fault"))
            .unwrap_or_else(|| panic!("expected a fault, got:\n{}", self.text()));
        let code = if ns == SOAP12_ENV {
            fault
                .child(&ns, "Code")
                .and_then(|c| c.child(&ns, "Value"))
                .map(Element::text)
        } else {
            fault.child("", "faultcode").map(Element::text)
        }
        .unwrap_or_else(|| panic!("fault without a code:\n{}", self.text()));
        let local = code
            .rsplit(':')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        let error = find(fault, SG, "Error")
            .unwrap_or_else(|| panic!("fault without sg:Error:\n{}", self.text()));
        let field = |name: &str| error.child(SG, name).map(Element::text);
        FaultInfo {
            code: local,
            sg_code: field("Code").unwrap_or_default(),
            sg_message: field("Message").unwrap_or_default(),
            retry_after: field("RetryAfterSeconds"),
        }
    }
}

/// The first element named `{ns}local` at or below `el`, depth first.
pub(crate) fn find<'a>(el: &'a Element, ns: &str, local: &str) -> Option<&'a Element> {
    if el.name.is(ns, local) {
        return Some(el);
    }
    el.elements().find_map(|c| find(c, ns, local))
}

/// Text of the first `{ns}local` below `el`.
pub(crate) fn text_of(el: &Element, ns: &str, local: &str) -> Option<String> {
    find(el, ns, local).map(Element::text)
}

/// True when the run must have every external peer (`.ci/run` sets it).
pub(crate) fn peers_required() -> bool {
    std::env::var("SOAPGATE_REQUIRE_PEERS").is_ok_and(|v| v.trim() == "1")
}

/// The external schema validator: `tests/e2e/validate.py` under python3
/// with lxml and xmlschema.
#[derive(Debug)]
pub(crate) struct Validator {
    script: PathBuf,
}

impl Validator {
    /// The validator, or `None` (after printing a skip line) when python3,
    /// lxml or xmlschema is missing. Panics instead under
    /// `SOAPGATE_REQUIRE_PEERS=1`: a required peer never skips silently.
    pub(crate) fn find(test: &str) -> Option<Validator> {
        let script = repo_root().join("tests/e2e/validate.py");
        let probe = Command::new("python3").arg(&script).arg("--probe").output();
        let why = match probe {
            Ok(out) if out.status.success() => return Some(Validator { script }),
            Ok(out) => format!(
                "python3 lacks lxml or xmlschema ({})",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => format!("python3 ({e})"),
        };
        assert!(
            !peers_required(),
            "{test}: required peer missing: {why} (SOAPGATE_REQUIRE_PEERS=1)"
        );
        let _ = writeln!(
            std::io::stderr(),
            "{test}: schema check by xmlschema skipped: {why} (set SOAPGATE_REQUIRE_PEERS=1 to make this fail)"
        );
        None
    }

    /// Validate the reply's Body payload against `wsdl`; `Err` carries the
    /// validator's findings.
    pub(crate) fn check(&self, wsdl: &Path, reply: &[u8]) -> Result<(), String> {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(reply).expect("writing the reply");
        let out = Command::new("python3")
            .arg(&self.script)
            .arg(wsdl)
            .arg(file.path())
            .output()
            .expect("running validate.py");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        match out.status.code() {
            Some(0) => Ok(()),
            Some(1) => Err(stdout),
            _ => panic!(
                "validate.py could not check ({}):\n{stdout}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }
}

/// Runs the oldest queued job with the worker's own `jobs::execute` and
/// records its result (DONE with the response payload, or FAILED with the
/// fault's code and text), one job at a time so a test decides when.
/// Returns the job's id, or `None` when nothing was queued.
pub(crate) async fn run_one_job(
    state: &AppState,
    store: &soapgate::store::Store,
) -> Option<soapgate::store::JobId> {
    let claimed = store
        .claim("e2e-driver", Duration::from_secs(300))
        .await
        .expect("claiming a job")?;
    let job = &claimed.job;
    let snapshot = state.live.snapshot();
    let ran = soapgate::jobs::execute(
        &snapshot,
        state.model.as_ref(),
        &state.settings.xml,
        job,
        soapgate::pipeline::Tries::Last,
    )
    .await;
    let recorded = match ran {
        Ok((result, _)) => store.complete(&job.id, claimed.token, &result).await,
        Err((run, _)) => store.fail(&job.id, claimed.token, &run.failure, None).await,
    };
    assert!(
        recorded.expect("recording the result"),
        "job {} was not recorded",
        job.id
    );
    Some(job.id.clone())
}
