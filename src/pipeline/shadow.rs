//! Shadow runs: on a call sampled for the operation's `shadow` variant, the
//! variant's request is rendered beside the served one, and once the served
//! answer — a response payload — is in, a background task asks the model
//! with the variant's plan and compares the two answers. The served call
//! never waits for it: the task takes a model permit of its own without
//! waiting (none free: the run is skipped), keeps its own deadline, and
//! neither reads nor fills the response cache. Each run ends in
//! `soapgate_shadow_calls_total{result}`: `agree`, `differ`, `failed` or
//! `skipped`.

use std::sync::Arc;

use tokio::time::Instant;

use super::chain::ChainPolicy;
use super::outcome::Outcome;
use crate::mapping::{Answer, CallMeta, OperationPlan, RenderError, RenderedCall, Variant};
use crate::models::Models;
use crate::xml::Element;

/// How a shadow run ended: the `result` label of its metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ShadowResult {
    /// The variant answered the same response.
    Agree,
    /// It answered another response, or a declared fault.
    Differ,
    /// No valid answer: the request did not render, the model failed, the
    /// answer stayed invalid, or the deadline passed.
    Failed,
    /// No model permit was free.
    Skipped,
}

impl ShadowResult {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            ShadowResult::Agree => "agree",
            ShadowResult::Differ => "differ",
            ShadowResult::Failed => "failed",
            ShadowResult::Skipped => "skipped",
        }
    }
}

/// A shadow run rendered and waiting for the served answer.
#[derive(Debug)]
pub(super) struct Shadow {
    service: String,
    operation: String,
    variant: String,
    correlation_id: String,
    plan: Arc<OperationPlan>,
    call: Result<RenderedCall, RenderError>,
}

impl Shadow {
    /// Render the variant's request from the call's payload.
    pub(super) fn render(variant: &Variant, payload: &[Element], meta: &CallMeta<'_>) -> Shadow {
        Shadow {
            service: meta.service.to_string(),
            operation: meta.operation.to_string(),
            variant: variant.name().to_string(),
            correlation_id: meta.correlation_id.to_string(),
            plan: variant.plan().clone(),
            call: variant.plan().render_request(payload, meta),
        }
    }

    /// Start the run in the background when the served answer is a
    /// response payload (a declared fault is not compared).
    pub(super) fn spawn(self, models: &Arc<Models>, served: &Arc<Answer>) {
        if !matches!(served.as_ref(), Answer::Response(_)) {
            return;
        }
        let models = models.clone();
        let served = served.clone();
        tokio::spawn(async move {
            let result = self.run(&models, &served).await;
            tracing::info!(
                correlation_id = %self.correlation_id,
                service = %self.service,
                operation = %self.operation,
                variant = %self.variant,
                result = result.as_str(),
                "shadow run"
            );
            models.metrics().shadow(
                &self.service,
                &self.operation,
                &self.variant,
                result.as_str(),
            );
        });
    }

    async fn run(&self, models: &Models, served: &Answer) -> ShadowResult {
        let Answer::Response(served) = served else {
            return ShadowResult::Skipped;
        };
        let call = match &self.call {
            Ok(call) => call,
            Err(e) => {
                tracing::warn!(correlation_id = %self.correlation_id, variant = %self.variant, error = %e, "shadow request does not render");
                return ShadowResult::Failed;
            }
        };
        // Never the served call's permit, and never a wait for one.
        let Ok(_permit) = models.try_enter() else {
            return ShadowResult::Skipped;
        };
        let settings = models.settings();
        let policy = self.plan.call_policy();
        let deadline = Instant::now() + policy.deadline.unwrap_or_else(|| settings.deadline());
        let chain = ChainPolicy {
            retry: policy.retry,
            attempts: settings.max_attempts.max(1),
            base: settings.initial_backoff(),
            cap: settings.max_backoff(),
            deadline,
        };
        let mut outcome = Outcome::default();
        let answered = tokio::time::timeout_at(
            deadline,
            super::run::answer(
                &self.plan,
                call,
                models,
                &chain,
                &self.correlation_id,
                &mut outcome,
                None,
            ),
        )
        .await;
        match answered {
            Ok(Ok((Answer::Response(payload), _))) => {
                if agreement(served, &payload) >= 1.0 {
                    ShadowResult::Agree
                } else {
                    ShadowResult::Differ
                }
            }
            Ok(Ok((Answer::Fault(_), _))) => ShadowResult::Differ,
            Ok(Err(_)) | Err(_) => ShadowResult::Failed,
        }
    }
}

/// How far two response payloads agree, 0 to 1: 1 when they are the same
/// document.
fn agreement(served: &[Element], shadow: &[Element]) -> f64 {
    let same = served.len() == shadow.len()
        && served
            .iter()
            .zip(shadow)
            .all(|(a, b)| crate::xml::write_element(a) == crate::xml::write_element(b));
    if same { 1.0 } else { 0.0 }
}
