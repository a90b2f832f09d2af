//! What a call answers ([`Reply`]) and what went into answering it
//! ([`Outcome`]: model calls, tokens, attempts, degradation), with the
//! labels the log line and the metrics use.

use std::time::Duration;

use crate::soap::ErrorCode;
use crate::xml::Element;

/// What a successful call answers.
#[derive(Debug)]
pub enum Reply {
    /// The response payload: the Body's children.
    Payload(Vec<Element>),
    /// A one-way operation was accepted; nothing goes back but HTTP 202.
    Accepted,
}

/// What went into answering a call, for the log line and the response
/// headers.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    /// Model calls made (repairs and fallbacks included).
    pub model_calls: u32,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// The model id (target) whose answer was used, when one answered.
    pub model: Option<String>,
    /// Why the last model that answered stopped.
    pub stop_reason: Option<crate::converse::StopReason>,
    /// Why the answer is not the model's own, when it is not.
    pub degraded: Option<Degraded>,
    /// Every model call made, in order: for usage records and metrics.
    pub attempts: Vec<Attempt>,
    /// The tenant's budget hold for this call, settled with its usage.
    pub budget_hold: Option<String>,
    /// The variant of the operation that served the call; `None`: the
    /// operation's own settings (`primary`).
    pub variant: Option<String>,
}

/// An answer that is not the model's own: the failure policy that gave it
/// and the fault the call would otherwise have ended in. Shown as
/// `policy: CODE` (the `sg:Degraded` header's text and the log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Degraded {
    pub policy: DegradedBy,
    pub reason: ErrorCode,
}

/// The failure policy that answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DegradedBy {
    /// The mapping's static response.
    Static,
    /// The last good answer to the same request.
    Cache,
}

impl DegradedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            DegradedBy::Static => "static",
            DegradedBy::Cache => "cache",
        }
    }
}

impl std::fmt::Display for Degraded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.policy.as_str(), self.reason.as_str())
    }
}

/// How one model call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptEnd {
    Answered,
    /// The stable fault code of its error (e.g. `MODEL_THROTTLED`).
    Failed(ErrorCode),
}

impl AttemptEnd {
    /// `ok`, or the fault code: the `result` label of the attempt metrics
    /// and the usage rows.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptEnd::Answered => "ok",
            AttemptEnd::Failed(code) => code.as_str(),
        }
    }
}

/// One model call: which target, what it cost, how it ended.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub model: String,
    pub region: Option<String>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub latency: std::time::Duration,
    pub result: AttemptEnd,
    /// Answered by a batch-inference job, at its price.
    pub batch: bool,
}

impl Outcome {
    /// The model that answered, or `-`: for log lines.
    pub fn model_label(&self) -> &str {
        self.model.as_deref().unwrap_or("-")
    }

    /// Why the model that answered stopped, or `-`: for log lines.
    pub fn stop_reason_label(&self) -> &str {
        self.stop_reason.as_ref().map_or("-", |r| r.as_str())
    }

    /// The variant that served the call, `primary` for the operation's own
    /// settings: the `variant` label of the request metrics.
    pub fn variant_label(&self) -> &str {
        self.variant.as_deref().unwrap_or("primary")
    }
}

/// The `outcome` label of a finished call for `/metrics`: `ok`,
/// `degraded`, or the fault code.
pub fn outcome_label(outcome: &Outcome, fault: Option<&str>) -> String {
    match (fault, &outcome.degraded) {
        (Some(code), _) => code.to_string(),
        (None, Some(_)) => "degraded".to_string(),
        (None, None) => "ok".to_string(),
    }
}

/// Counts a finished call (HTTP or job), by the variant that served it,
/// and the tokens its model calls used, by tenant (`-` when none) and
/// model.
pub fn record_metrics(
    metrics: &crate::metrics::Metrics,
    service: &str,
    operation: &str,
    tenant: Option<&str>,
    outcome_label: &str,
    outcome: &Outcome,
    elapsed: Duration,
) {
    metrics.request(
        service,
        operation,
        outcome.variant_label(),
        outcome_label,
        elapsed,
    );
    for a in &outcome.attempts {
        if a.input_tokens + a.output_tokens > 0 {
            metrics.tokens(tenant, &a.model, a.input_tokens, a.output_tokens);
        }
    }
}
