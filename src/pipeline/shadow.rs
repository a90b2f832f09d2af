//! Shadow runs: on a call sampled for the operation's `shadow` variant, the
//! variant's request is rendered beside the served one, and once the served
//! answer — a response payload — is in, a background task asks the model
//! with the variant's plan and compares the two answers. The served call
//! never waits for it: the task takes a model permit of its own without
//! waiting (none free: the run is skipped), keeps its own deadline, and
//! neither reads nor fills the response cache. The two answers are
//! compared field by field as replay compares them (`record::compare`).
//! When the operation records (`record:`), every shadow run that asked its
//! model is kept as a `shadow` recording — the variant's request, answer,
//! response or fault, tokens, latency and agreement (the share of fields
//! agreeing) — redacted as the served call's. Each run ends in
//! `soapgate_shadow_calls_total{result}`: `agree`, `differ`, `failed` or
//! `skipped`.

use std::sync::Arc;

use tokio::time::Instant;

use super::chain::ChainPolicy;
use super::outcome::Outcome;
use crate::error::GatewayError;
use crate::mapping::{Answer, CallMeta, OperationPlan, RenderError, RenderedCall, Variant};
use crate::models::Models;
use crate::record::compare::{self, Comparison, Tolerances};
use crate::record::{Capture, Ended, Recorder, payload_xml};
use crate::soap::{DeclaredFault, ErrorCode};
use crate::xml::Element;

/// How a shadow run ended: the `result` label of its metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ShadowResult {
    /// The variant's response agrees with the served one field by field.
    Agree,
    /// A field differs, or the variant answered a declared fault.
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
    /// The run's recording, when the operation records.
    capture: Option<Capture>,
}

impl Shadow {
    /// Render the variant's request from the call's payload, and start
    /// its recording when the operation records (redacted as the served
    /// call's).
    pub(super) fn render(
        variant: &Variant,
        payload: &[Element],
        meta: &CallMeta<'_>,
        recorder: Option<&Recorder>,
    ) -> Shadow {
        let plan = variant.plan();
        let call = plan.render_request(payload, meta);
        let capture = call.as_ref().ok().and_then(|call| {
            Capture::start_shadow(recorder, plan, payload, &call.request, meta.correlation_id)
        });
        Shadow {
            service: meta.service.to_string(),
            operation: meta.operation.to_string(),
            variant: variant.name().to_string(),
            correlation_id: meta.correlation_id.to_string(),
            plan: plan.clone(),
            call,
            capture,
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
            let mut shadow = self;
            let result = shadow.run(&models, &served).await;
            tracing::info!(
                correlation_id = %shadow.correlation_id,
                service = %shadow.service,
                operation = %shadow.operation,
                variant = %shadow.variant,
                result = result.as_str(),
                "shadow run"
            );
            models.metrics().shadow(
                &shadow.service,
                &shadow.operation,
                &shadow.variant,
                result.as_str(),
            );
        });
    }

    async fn run(&mut self, models: &Models, served: &Answer) -> ShadowResult {
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
        let chain = ChainPolicy::starting_now(&self.plan.call_policy(), models);
        let deadline = chain.deadline;
        let mut outcome = Outcome::default();
        let started = Instant::now();
        let answered = tokio::time::timeout_at(
            deadline,
            super::run::answer(
                &self.plan,
                call,
                models,
                &chain,
                &self.correlation_id,
                &mut outcome,
                self.capture.as_mut(),
                None,
            ),
        )
        .await
        .unwrap_or_else(|_| Err(GatewayError::Model(super::run::deadline_passed())));
        let mut ended = Ended {
            variant: Some(self.variant.clone()),
            model: outcome.model.clone(),
            input_tokens: outcome.input_tokens,
            output_tokens: outcome.output_tokens,
            latency: started.elapsed(),
            ..Ended::default()
        };
        let result = match &answered {
            Ok((answer, _)) => {
                let comparison = agreement(served, answer);
                ended.agreement = Some(comparison.ratio());
                match answer {
                    Answer::Response(payload) => ended.response_xml = Some(payload_xml(payload)),
                    Answer::Fault(fault) => {
                        ended.response_xml = Some(crate::xml::write_element(&fault.detail));
                        ended.fault_code = Some(declared_code(fault));
                    }
                }
                if comparison.agrees() {
                    ShadowResult::Agree
                } else {
                    ShadowResult::Differ
                }
            }
            Err(e) => {
                ended.fault_code = Some(e.code().as_str().to_string());
                ShadowResult::Failed
            }
        };
        if let Some(capture) = self.capture.take() {
            capture.finish(ended);
        }
        result
    }
}

/// A declared fault's code as recordings and comparisons name it.
fn declared_code(fault: &DeclaredFault) -> String {
    format!("{}:{}", ErrorCode::DeclaredFault.as_str(), fault.name)
}

/// The shadow's answer against the served response, field by field
/// (`record::compare`, as replay compares; numbers by value, exact
/// otherwise); a declared fault disagrees as its code.
fn agreement(served: &[Element], shadow: &Answer) -> Comparison {
    let tolerances = Tolerances::new();
    match shadow {
        Answer::Response(payload) => compare::compare_payloads(served, payload, &tolerances),
        Answer::Fault(fault) => {
            let code = declared_code(fault);
            compare::compare(
                compare::Answer::Response(served),
                compare::Answer::Fault {
                    code: &code,
                    detail: Some(&fault.detail),
                },
                &tolerances,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soap::FaultCode;
    use crate::xml::{self, Limits};

    fn payload(text: &str) -> Vec<Element> {
        vec![
            xml::read(text.as_bytes(), None, &Limits::default())
                .expect("XML")
                .root,
        ]
    }

    #[test]
    fn answers_agree_field_by_field_not_as_text() {
        let served = payload("<r xmlns='urn:x'><amount>1.50</amount><code>A</code></r>");
        // Another prefix and another spelling of the same number agree.
        let same = payload("<p:r xmlns:p='urn:x'><amount>1.5</amount><code>A</code></p:r>");
        assert!(agreement(&served, &Answer::Response(same)).agrees());
        let other = payload("<r xmlns='urn:x'><amount>1.5</amount><code>B</code></r>");
        let comparison = agreement(&served, &Answer::Response(other));
        assert!(!comparison.agrees());
        assert_eq!(comparison.ratio(), 0.5);
        // A declared fault never agrees with a response.
        let fault = Answer::Fault(DeclaredFault {
            name: "Rejected".into(),
            code: FaultCode::Client,
            reason: "no".into(),
            detail: payload("<d xmlns='urn:x'/>").remove(0),
        });
        assert!(!agreement(&served, &fault).agrees());
    }
}
