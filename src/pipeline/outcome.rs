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
    /// The steps of a multi-step operation that ran (or were skipped), in
    /// the workflow's order; empty for a single-call operation.
    pub steps: Vec<StepRun>,
}

/// One step of a multi-step call, as the audit row names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRun {
    /// Its place in the workflow's order.
    pub index: usize,
    pub name: String,
    /// How many items a `for_each` step ran over; `None` for another step.
    pub items: Option<usize>,
    pub end: StepEnd,
}

/// How a step of a multi-step call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepEnd {
    /// Its model calls answered (or its failure policy let it go on).
    Ran,
    /// Its `when` did not hold.
    Skipped,
    /// Its result was kept by an earlier run of the job: not called again.
    Kept,
    /// It failed, and the call with it.
    Failed,
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
    /// The step of a multi-step operation the call was made for; `None`
    /// for a single-call operation.
    pub step: Option<String>,
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

    /// The steps of a multi-step call, for its audit row: those that ran
    /// in the workflow's order (`×N`: a `for_each` over N items; `(kept)`:
    /// taken from an earlier run of the job; `(failed)`), then those
    /// skipped, e.g. `classify, lines×2; skipped: extract`. `None` for a
    /// single-call operation.
    pub fn steps_summary(&self) -> Option<String> {
        if self.steps.is_empty() {
            return None;
        }
        let mut steps: Vec<&StepRun> = self.steps.iter().collect();
        steps.sort_by_key(|s| s.index);
        let ran: Vec<String> = steps
            .iter()
            .filter(|s| s.end != StepEnd::Skipped)
            .map(|s| {
                let mut text = s.name.clone();
                if let Some(n) = s.items {
                    text.push_str(&format!("\u{d7}{n}"));
                }
                match s.end {
                    StepEnd::Kept => text.push_str(" (kept)"),
                    StepEnd::Failed => text.push_str(" (failed)"),
                    StepEnd::Ran | StepEnd::Skipped => {}
                }
                text
            })
            .collect();
        let skipped: Vec<&str> = steps
            .iter()
            .filter(|s| s.end == StepEnd::Skipped)
            .map(|s| s.name.as_str())
            .collect();
        let mut text = ran.join(", ");
        if !skipped.is_empty() {
            if !text.is_empty() {
                text.push_str("; ");
            }
            text.push_str("skipped: ");
            text.push_str(&skipped.join(", "));
        }
        Some(text)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn step(index: usize, name: &str, items: Option<usize>, end: StepEnd) -> StepRun {
        StepRun {
            index,
            name: name.into(),
            items,
            end,
        }
    }

    #[test]
    fn the_steps_summary_names_steps_in_workflow_order_then_the_skipped() {
        assert_eq!(Outcome::default().steps_summary(), None);
        // Finished out of order (concurrent steps): listed in the
        // workflow's.
        let outcome = Outcome {
            steps: vec![
                step(2, "lines", Some(3), StepEnd::Ran),
                step(0, "classify", None, StepEnd::Ran),
                step(1, "extract", None, StepEnd::Ran),
            ],
            ..Outcome::default()
        };
        assert_eq!(
            outcome.steps_summary().as_deref(),
            Some("classify, extract, lines\u{d7}3")
        );
        let outcome = Outcome {
            steps: vec![
                step(0, "classify", None, StepEnd::Kept),
                step(3, "notify", None, StepEnd::Skipped),
                step(2, "lines", Some(2), StepEnd::Failed),
                step(1, "extract", None, StepEnd::Skipped),
            ],
            ..Outcome::default()
        };
        assert_eq!(
            outcome.steps_summary().as_deref(),
            Some("classify (kept), lines\u{d7}2 (failed); skipped: extract, notify")
        );
        let outcome = Outcome {
            steps: vec![step(0, "classify", None, StepEnd::Skipped)],
            ..Outcome::default()
        };
        assert_eq!(
            outcome.steps_summary().as_deref(),
            Some("skipped: classify")
        );
    }
}
