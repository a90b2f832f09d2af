//! Recording calls for replay: an operation whose mapping says `record:`
//! keeps a sample of its calls — the request payload, the Converse request
//! sent, the model's answer, the response or fault, model, tokens, latency
//! and the hash of the mapping file — in `soapgate_recordings`, so a
//! changed prompt or model can be replayed against real traffic
//! (`soapgate replay`, docs/replay.md).
//!
//! Recording stays off the response path: the call only serialises what it
//! already has and hands the row to a bounded channel ([`Recorder::submit`]
//! never waits; a full channel drops the row and counts it); a background
//! task ([`RecordWriter`]) writes rows in groups and prunes old ones. The
//! values a mapping redacts are replaced in every text of the row before
//! it leaves the call.
//!
//! `compare` is the field-by-field comparison of two answers that replay
//! and shadow variants share.

pub mod compare;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::store::{NewRecording, StoreSlot};
use crate::xml::Element;

/// `[record]`: the keeping of recorded calls (`soapgate_recordings`).
#[derive(Debug, Clone, serde::Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RecordSettings {
    /// Recordings older than this many days are deleted. Default 30.
    pub retention_days: u32,
    /// At most this many recordings are kept; the oldest go first.
    /// Default 100,000.
    pub max_rows: u64,
    /// Recordings waiting for the database at once; past it a new one is
    /// dropped (and counted), never waited for. Default 1,024.
    pub queue: usize,
}

impl Default for RecordSettings {
    fn default() -> Self {
        RecordSettings {
            retention_days: 30,
            max_rows: 100_000,
            queue: 1024,
        }
    }
}

/// What replaces a redacted value.
pub const REDACTED: &str = "[redacted]";

/// Rows written in one transaction at most.
const GROUP: usize = 64;

/// How often old recordings are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// The sending side: cheap to clone, never waits.
#[derive(Debug, Clone)]
pub struct Recorder {
    tx: mpsc::Sender<NewRecording>,
    metrics: Arc<Metrics>,
}

/// The receiving side, run by [`RecordWriter::run`] once the store is up.
#[derive(Debug)]
pub struct RecordWriter {
    rx: mpsc::Receiver<NewRecording>,
    settings: RecordSettings,
    metrics: Arc<Metrics>,
}

impl Recorder {
    /// A recorder and the writer that must run for its rows to be kept.
    pub fn new(settings: &RecordSettings, metrics: Arc<Metrics>) -> (Recorder, RecordWriter) {
        let (tx, rx) = mpsc::channel(settings.queue.max(1));
        (
            Recorder {
                tx,
                metrics: metrics.clone(),
            },
            RecordWriter {
                rx,
                settings: settings.clone(),
                metrics,
            },
        )
    }

    /// Hands a row to the writer; drops it (counted) when the writer is
    /// behind or gone. Never waits.
    pub fn submit(&self, row: NewRecording) {
        if self.tx.try_send(row).is_err() {
            self.metrics.recording("dropped", 1);
        }
    }
}

impl RecordWriter {
    /// Writes rows until `stop` resolves, then what is already queued;
    /// prunes by age and count at start and every ten minutes. Waits for
    /// the store first (rows queue meanwhile, up to the channel's bound).
    pub async fn run(
        mut self,
        store: StoreSlot,
        stop: impl std::future::Future<Output = ()> + Send,
    ) {
        tokio::pin!(stop);
        let store = tokio::select! {
            store = store.connected() => store,
            () = &mut stop => return,
        };
        let mut prune = tokio::time::interval(PRUNE_EVERY);
        let mut group = Vec::with_capacity(GROUP);
        loop {
            tokio::select! {
                n = self.rx.recv_many(&mut group, GROUP) => {
                    if n == 0 {
                        return;
                    }
                    self.write(&store, &mut group).await;
                }
                _ = prune.tick() => self.prune(&store).await,
                () = &mut stop => break,
            }
        }
        // Stopping: what calls already handed over is still written.
        while let Ok(row) = self.rx.try_recv() {
            group.push(row);
            if group.len() == GROUP {
                self.write(&store, &mut group).await;
            }
        }
        self.write(&store, &mut group).await;
    }

    async fn write(&self, store: &crate::store::Store, group: &mut Vec<NewRecording>) {
        if group.is_empty() {
            return;
        }
        let n = group.len() as u64;
        match store.insert_recordings(group).await {
            Ok(()) => self.metrics.recording("written", n),
            Err(e) => {
                self.metrics.recording("failed", n);
                tracing::warn!(error = %e, rows = n, "writing recordings failed; they are lost");
            }
        }
        group.clear();
    }

    async fn prune(&self, store: &crate::store::Store) {
        let keep_ms = i64::from(self.settings.retention_days) * 86_400_000;
        let before = store.now_ms().saturating_sub(keep_ms);
        match store.prune_recordings(before, self.settings.max_rows).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "old recordings deleted"),
            Err(e) => tracing::warn!(error = %e, "pruning recordings failed"),
        }
    }
}

/// What a recorded call has kept so far: taken while its request is at
/// hand (the request tree is dropped before the model is called), finished
/// with the answer.
#[derive(Debug)]
pub struct Capture {
    recorder: Recorder,
    /// [`KIND_SERVED`](crate::store::KIND_SERVED) or
    /// [`KIND_SHADOW`](crate::store::KIND_SHADOW).
    kind: &'static str,
    service: String,
    operation: String,
    correlation_id: String,
    mapping_sha256: String,
    forms: Vec<String>,
    request_xml: String,
    converse_request: String,
    /// The model's last answer, as JSON; set by the call as it goes.
    pub model_answer: Option<String>,
}

impl Capture {
    /// Starts a recording of this call when its plan records and the
    /// sample picks it (`None` otherwise: nothing is serialised).
    pub fn start(
        recorder: Option<&Recorder>,
        plan: &crate::mapping::OperationPlan,
        payload: &[Element],
        request: &crate::converse::Request,
        correlation_id: &str,
    ) -> Option<Capture> {
        let record = plan.record()?;
        if record.sample < 1.0 && fastrand::f64() >= record.sample {
            return None;
        }
        Capture::begin(
            crate::store::KIND_SERVED,
            recorder?,
            plan,
            payload,
            request,
            correlation_id,
        )
    }

    /// Starts the recording of a shadow run (a variant run beside a served
    /// call, `plan` being the variant's) when the operation records: every
    /// shadow run is kept, the shadow's own sample having picked it.
    pub fn start_shadow(
        recorder: Option<&Recorder>,
        plan: &crate::mapping::OperationPlan,
        payload: &[Element],
        request: &crate::converse::Request,
        correlation_id: &str,
    ) -> Option<Capture> {
        plan.record()?;
        Capture::begin(
            crate::store::KIND_SHADOW,
            recorder?,
            plan,
            payload,
            request,
            correlation_id,
        )
    }

    fn begin(
        kind: &'static str,
        recorder: &Recorder,
        plan: &crate::mapping::OperationPlan,
        payload: &[Element],
        request: &crate::converse::Request,
        correlation_id: &str,
    ) -> Option<Capture> {
        let forms = redaction_forms(&plan.redacted_values(payload));
        Some(Capture {
            recorder: recorder.clone(),
            kind,
            service: plan.service().to_string(),
            operation: plan.operation().to_string(),
            correlation_id: correlation_id.to_string(),
            mapping_sha256: plan.mapping_sha256().to_string(),
            request_xml: redact(&payload_xml(payload), &forms),
            converse_request: redact(&serde_json::to_string(request).unwrap_or_default(), &forms),
            forms,
            model_answer: None,
        })
    }

    /// Keeps the model's answer (the last one, when repairs were made).
    pub fn answered(&mut self, response: &crate::converse::Response) {
        self.model_answer = serde_json::to_string(response).ok();
    }

    /// Hands the finished recording to the writer.
    pub fn finish(self, ended: Ended) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let forms = &self.forms;
        self.recorder.submit(NewRecording {
            at_ms: now,
            service: self.service,
            operation: self.operation,
            kind: self.kind,
            variant: ended.variant,
            correlation_id: self.correlation_id,
            mapping_sha256: self.mapping_sha256,
            request_xml: self.request_xml,
            converse_request: self.converse_request,
            model_answer: self.model_answer.map(|a| redact(&a, forms)),
            response_xml: ended.response_xml.map(|r| redact(&r, forms)),
            fault_code: ended.fault_code,
            model: ended.model,
            input_tokens: i64::try_from(ended.input_tokens).unwrap_or(i64::MAX),
            output_tokens: i64::try_from(ended.output_tokens).unwrap_or(i64::MAX),
            latency_ms: i64::try_from(ended.latency.as_millis()).unwrap_or(i64::MAX),
            agreement: ended.agreement,
        });
    }
}

/// How a recorded call ended.
#[derive(Debug, Default)]
pub struct Ended {
    /// The response payload as XML; for a declared fault, its detail.
    pub response_xml: Option<String>,
    /// The fault code (`DECLARED_FAULT:<name>` for a declared fault).
    pub fault_code: Option<String>,
    /// The variant that served the call (`None`: the operation's own).
    pub variant: Option<String>,
    pub model: Option<String>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub latency: Duration,
    /// A shadow run: the share of its fields agreeing with the served
    /// answer (`None` when it has no answer to compare).
    pub agreement: Option<f64>,
}

/// The texts a call's redacted values may appear as, longest first: each
/// value as it is, escaped for XML text and attributes, and each of those
/// escaped inside a JSON string.
pub fn redaction_forms(values: &[String]) -> Vec<String> {
    let mut forms: Vec<String> = Vec::new();
    for v in values.iter().filter(|v| !v.is_empty()) {
        let mut text = String::new();
        crate::xml::escape_text(v, &mut text);
        let mut attr = String::new();
        crate::xml::escape_attr(v, &mut attr);
        for form in [v.clone(), text, attr] {
            let json = serde_json::to_string(&form).unwrap_or_default();
            let json = json[1..json.len().saturating_sub(1).max(1)].to_string();
            forms.push(form);
            forms.push(json);
        }
    }
    // Longest first, so a value containing another is replaced whole.
    forms.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    forms.dedup();
    forms.retain(|f| !f.is_empty());
    forms
}

/// `text` with every form replaced by [`REDACTED`].
pub fn redact(text: &str, forms: &[String]) -> String {
    let mut out = text.to_string();
    for form in forms {
        if out.contains(form.as_str()) {
            out = out.replace(form.as_str(), REDACTED);
        }
    }
    out
}

/// The request payload as recorded: the Body's children written out.
pub fn payload_xml(payload: &[Element]) -> String {
    payload.iter().map(crate::xml::write_element).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_written_form_of_a_value_is_replaced() {
        let forms = redaction_forms(&["Tom & \"Jerry\" <t>".to_string()]);
        let xml_text = "<n>Tom &amp; \"Jerry\" &lt;t&gt;</n>";
        let xml_attr = "<n v=\"Tom &amp; &quot;Jerry&quot; &lt;t>\"/>";
        let json = r#"{"text":"Tom & \"Jerry\" <t>"}"#;
        let json_of_xml = r#"{"text":"<n>Tom &amp; \"Jerry\" &lt;t&gt;</n>"}"#;
        for text in [xml_text, xml_attr, json, json_of_xml] {
            let out = redact(text, &forms);
            assert!(!out.contains("Jerry"), "{text} -> {out}");
            assert!(out.contains(REDACTED), "{text} -> {out}");
        }
    }

    #[test]
    fn a_value_inside_another_is_replaced_whole() {
        let forms = redaction_forms(&["4111".to_string(), "4111 1111 1111 1111".to_string()]);
        assert_eq!(
            redact("card 4111 1111 1111 1111 ok", &forms),
            "card [redacted] ok"
        );
        assert_eq!(redact("x", &redaction_forms(&[String::new()])), "x");
    }
}
