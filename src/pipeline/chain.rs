//! The fallback chain of one request: breakers skip open targets, our
//! retries (full jitter) of what the SDK does not retry, failover on
//! throttling, 5xx and timeouts, a stop on refused or denied requests.

use std::time::Duration;

use tokio::time::Instant;

use super::outcome::{Attempt, AttemptEnd, Outcome};
use super::run::deadline_passed;
use crate::backoff;
use crate::converse::{ModelError, Request, Response};
use crate::error::GatewayError;
use crate::mapping::ModelTarget;
use crate::models::{self, Models};

/// How the chain treats one request: our retries and the deadline.
#[derive(Debug, Clone, Copy)]
pub struct ChainPolicy {
    /// Retry errors the SDK does not retry ([`models::retried_by_us`]).
    pub retry: bool,
    /// Attempts per target for those errors (first call included).
    pub attempts: u32,
    /// Full-jitter backoff: base and cap.
    pub base: Duration,
    pub cap: Duration,
    /// No attempt starts at or after it; no backoff ends after it.
    pub deadline: Instant,
}

impl ChainPolicy {
    /// The chain of a call of an operation with `policy`, starting now: the
    /// instance's attempts and backoff, the operation's deadline (else the
    /// instance's).
    pub fn starting_now(policy: &crate::mapping::CallPolicy, models: &Models) -> ChainPolicy {
        let settings = models.settings();
        ChainPolicy {
            retry: policy.retry,
            attempts: settings.max_attempts.max(1),
            base: settings.initial_backoff(),
            cap: settings.max_backoff(),
            deadline: Instant::now() + policy.deadline.unwrap_or_else(|| settings.deadline()),
        }
    }
}

/// One request through the target chain: the first target that answers
/// wins. A target whose breaker is open is skipped without a call; errors
/// another target may not share (throttling after the SDK's retries, 5xx,
/// timeouts) move on; a refused request or denied access stops at once.
/// Errors the SDK does not retry are retried here first, on the same
/// target, with full jitter, while the policy and the deadline allow.
pub async fn call_chain<'t>(
    models: &Models,
    targets: &'t [ModelTarget],
    request: &Request,
    policy: &ChainPolicy,
    correlation_id: &str,
    outcome: &mut Outcome,
) -> Result<(Response, &'t ModelTarget), GatewayError> {
    let metrics = models.metrics().clone();
    let mut last = None;
    for target in targets {
        let label = models::target_label(target);
        let Ok(permit) = models.breaker(target).try_acquire() else {
            tracing::warn!(correlation_id, target = %label, "circuit open: target skipped");
            metrics.fallback(&label);
            last.get_or_insert(ModelError::ServiceUnavailable {
                message: format!("circuit breaker of {label} is open"),
            });
            continue;
        };
        let client = models.client(target.region.as_deref());
        let region = models.region_of(target);
        let mut tries = 0u32;
        let error = loop {
            if Instant::now() >= policy.deadline {
                return Err(GatewayError::Model(deadline_passed()));
            }
            tries += 1;
            outcome.model_calls += 1;
            let started = Instant::now();
            // Cut here rather than only by the caller's timeout, so a
            // target that never answers is recorded (attempt, breaker).
            let answer =
                tokio::time::timeout_at(policy.deadline, client.converse(&target.model, request))
                    .await
                    .unwrap_or_else(|_| Err(deadline_passed()));
            let latency = started.elapsed();
            let result = match &answer {
                Ok(_) => AttemptEnd::Answered,
                Err(e) => AttemptEnd::Failed(crate::error::model_code(e)),
            };
            metrics.attempt(&label, result.as_str(), latency);
            outcome.attempts.push(Attempt {
                model: target.model.clone(),
                region: region.clone(),
                input_tokens: answer
                    .as_ref()
                    .map_or(0, |r| u64::from(r.usage.input_tokens)),
                output_tokens: answer
                    .as_ref()
                    .map_or(0, |r| u64::from(r.usage.output_tokens)),
                latency,
                result,
                batch: false,
                step: None,
            });
            let e = match answer {
                Ok(response) => {
                    permit.success();
                    let (input, output) =
                        (response.usage.input_tokens, response.usage.output_tokens);
                    outcome.input_tokens += u64::from(input);
                    outcome.output_tokens += u64::from(output);
                    outcome.model = Some(target.model.clone());
                    outcome.stop_reason = Some(response.stop_reason.clone());
                    // Per call, the "soap call" and "job" lines say which
                    // model answered, its usage and stop reason.
                    tracing::debug!(
                        correlation_id,
                        model = %target.model,
                        input_tokens = input,
                        output_tokens = output,
                        stop_reason = ?response.stop_reason,
                        "model answered"
                    );
                    return Ok((response, target));
                }
                Err(e) => e,
            };
            tracing::warn!(correlation_id, model = %target.model, error = %e, tries, "model call failed");
            if !(policy.retry && models::retried_by_us(&e) && tries < policy.attempts) {
                break e;
            }
            let wait = backoff::full_jitter(tries, policy.base, policy.cap);
            if Instant::now() + wait >= policy.deadline {
                break e;
            }
            tokio::time::sleep(wait).await;
        };
        if models::counts_against_target(&error) {
            permit.failure();
        } else {
            permit.neutral();
        }
        let next = error.is_retryable();
        last = Some(error);
        if !next {
            break;
        }
        metrics.fallback(&label);
    }
    Err(GatewayError::Model(last.unwrap_or(ModelError::Other {
        message: "no model targets".into(),
    })))
}

#[cfg(test)]
mod tests {
    //! The chain's timing with a fake client and paused time: our backoff,
    //! the deadline, breakers skipping targets and probes closing them.

    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::converse::{BoxFuture, ModelClient};
    use crate::models::{BreakerSettings, BreakerState, ModelSettings};

    /// How the fake answers the `n`th call (1-based) to a model.
    type Behaviour = fn(&str, usize) -> Result<(), ModelError>;

    #[derive(Debug)]
    struct Fake {
        calls: Mutex<Vec<(String, Instant)>>,
        behave: Behaviour,
    }

    impl Fake {
        fn new(behave: Behaviour) -> Arc<Fake> {
            Arc::new(Fake {
                calls: Mutex::new(Vec::new()),
                behave,
            })
        }

        fn times(&self, model: &str) -> Vec<Instant> {
            let calls = self.calls.lock().unwrap();
            calls
                .iter()
                .filter(|(m, _)| m == model)
                .map(|(_, t)| *t)
                .collect()
        }
    }

    fn answer() -> Response {
        serde_json::from_value(serde_json::json!({
            "output": {"message": {"role": "assistant", "content": [{"text": "hi"}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 3, "outputTokens": 2, "totalTokens": 5}
        }))
        .unwrap()
    }

    impl ModelClient for Fake {
        fn converse<'a>(
            &'a self,
            model_id: &'a str,
            _request: &'a Request,
        ) -> BoxFuture<'a, Result<Response, ModelError>> {
            Box::pin(async move {
                let n = {
                    let mut calls = self.calls.lock().unwrap();
                    calls.push((model_id.to_string(), Instant::now()));
                    calls.iter().filter(|(m, _)| m == model_id).count()
                };
                // A model call takes a moment.
                tokio::time::sleep(Duration::from_millis(10)).await;
                (self.behave)(model_id, n).map(|()| answer())
            })
        }
    }

    fn models(fake: &Arc<Fake>, breaker: BreakerSettings) -> Models {
        let settings = ModelSettings {
            breaker,
            ..ModelSettings::default()
        };
        Models::new(fake.clone(), settings)
    }

    fn targets(ids: &[&str]) -> Vec<ModelTarget> {
        ids.iter()
            .map(|m| ModelTarget {
                model: (*m).to_string(),
                region: None,
            })
            .collect()
    }

    fn policy(attempts: u32, within: Duration) -> ChainPolicy {
        ChainPolicy {
            retry: true,
            attempts,
            base: Duration::from_secs(1),
            cap: Duration::from_secs(4),
            deadline: Instant::now() + within,
        }
    }

    fn failed() -> ModelError {
        ModelError::ModelFailed {
            message: "boom".into(),
            original_status_code: None,
        }
    }

    async fn chain(
        models: &Models,
        targets: &[ModelTarget],
        policy: &ChainPolicy,
    ) -> (Result<String, GatewayError>, Outcome) {
        let mut outcome = Outcome::default();
        let request = Request::user_text("x");
        let result = call_chain(models, targets, &request, policy, "c", &mut outcome)
            .await
            .map(|(_, t)| t.model.clone());
        (result, outcome)
    }

    #[tokio::test(start_paused = true)]
    async fn errors_the_sdk_leaves_alone_are_retried_with_capped_full_jitter() {
        let fake = Fake::new(|_, n| if n <= 3 { Err(failed()) } else { Ok(()) });
        let models = models(&fake, BreakerSettings::default());
        let (result, outcome) = chain(
            &models,
            &targets(&["a"]),
            &policy(4, Duration::from_secs(60)),
        )
        .await;
        assert_eq!(result.unwrap(), "a");
        let times = fake.times("a");
        assert_eq!(times.len(), 4);
        // Waits after the 1st, 2nd, 3rd failure: at most 1 s, 2 s, 4 s
        // (plus the 10 ms call).
        for (i, ceiling) in [1u64, 2, 4].into_iter().enumerate() {
            let gap = times[i + 1] - times[i];
            assert!(
                gap <= Duration::from_millis(ceiling * 1000 + 10),
                "retry {}: {gap:?}",
                i + 1
            );
        }
        let results: Vec<&str> = outcome.attempts.iter().map(|a| a.result.as_str()).collect();
        assert_eq!(results, ["MODEL_ERROR", "MODEL_ERROR", "MODEL_ERROR", "ok"]);
        assert_eq!(outcome.input_tokens, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn no_attempt_starts_past_the_deadline() {
        let fake = Fake::new(|_, _| {
            Err(ModelError::ModelTimeout {
                message: "slow".into(),
            })
        });
        let models = models(&fake, BreakerSettings::default());
        let policy = policy(1_000, Duration::from_secs(10));
        let started = Instant::now();
        let (result, _) = chain(&models, &targets(&["a"]), &policy).await;
        let err = result.unwrap_err();
        assert_eq!(err.code().as_str(), "MODEL_TIMEOUT");
        let times = fake.times("a");
        assert!(times.len() > 2, "{} calls", times.len());
        assert!(times.iter().all(|t| *t < policy.deadline));
        assert!(Instant::now() <= policy.deadline, "no wait ends past it");
        assert!(started.elapsed() <= Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_target_that_never_answers_is_cut_at_the_deadline_and_counts_as_failed() {
        let breaker = BreakerSettings {
            window: 1,
            min_calls: 1,
            ..BreakerSettings::default()
        };
        let hanging = Arc::new(Hanging);
        let models = Models::new(
            hanging,
            ModelSettings {
                breaker,
                ..ModelSettings::default()
            },
        );
        let policy = policy(3, Duration::from_secs(7));
        let started = Instant::now();
        let (result, outcome) = chain(&models, &targets(&["hang"]), &policy).await;
        assert_eq!(result.unwrap_err().code().as_str(), "MODEL_TIMEOUT");
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(7),
            "at the deadline, not later"
        );
        assert_eq!(outcome.attempts.len(), 1);
        assert_eq!(outcome.attempts[0].result.as_str(), "MODEL_TIMEOUT");
        assert_eq!(
            models.breaker(&targets(&["hang"])[0]).state(),
            BreakerState::Open,
            "the hang counted against the target"
        );
    }

    /// A client whose calls never end.
    #[derive(Debug)]
    struct Hanging;

    impl ModelClient for Hanging {
        fn converse<'a>(
            &'a self,
            _: &'a str,
            _: &'a Request,
        ) -> BoxFuture<'a, Result<Response, ModelError>> {
            Box::pin(std::future::pending())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn without_retry_the_chain_moves_on_at_once() {
        let fake = Fake::new(|m, _| if m == "a" { Err(failed()) } else { Ok(()) });
        let models = models(&fake, BreakerSettings::default());
        let mut policy = policy(5, Duration::from_secs(60));
        policy.retry = false;
        let (result, outcome) = chain(&models, &targets(&["a", "b"]), &policy).await;
        assert_eq!(result.unwrap(), "b");
        assert_eq!((fake.times("a").len(), fake.times("b").len()), (1, 1));
        assert_eq!(outcome.model_calls, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn refused_and_denied_requests_stop_the_chain() {
        let fake = Fake::new(|m, _| {
            if m == "a" {
                Err(ModelError::AccessDenied {
                    message: "no".into(),
                })
            } else {
                Ok(())
            }
        });
        let models = models(&fake, BreakerSettings::default());
        let (result, _) = chain(
            &models,
            &targets(&["a", "b"]),
            &policy(3, Duration::from_secs(60)),
        )
        .await;
        assert_eq!(result.unwrap_err().code().as_str(), "MODEL_ACCESS_DENIED");
        assert_eq!(fake.times("b").len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_breaker_skips_its_target_and_probes_close_it() {
        // "a" has a 5xx storm for its first 4 calls, then recovers.
        let fake = Fake::new(|m, n| {
            if m == "a" && n <= 4 {
                Err(ModelError::InternalServer {
                    message: "down".into(),
                })
            } else {
                Ok(())
            }
        });
        let breaker = BreakerSettings {
            window: 4,
            min_calls: 4,
            failure_rate_percent: 50,
            open_ms: 30_000,
            half_open_probes: 2,
        };
        let models = models(&fake, breaker);
        let chain_targets = targets(&["a", "b"]);
        let run = || async {
            let (result, _) =
                chain(&models, &chain_targets, &policy(1, Duration::from_secs(60))).await;
            result.unwrap()
        };
        for _ in 0..4 {
            assert_eq!(run().await, "b");
        }
        assert_eq!(
            models.breaker(&chain_targets[0]).state(),
            BreakerState::Open
        );
        for _ in 0..3 {
            assert_eq!(run().await, "b");
        }
        assert_eq!(fake.times("a").len(), 4, "not touched while open");
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(run().await, "a", "first probe");
        assert_eq!(
            models.breaker(&chain_targets[0]).state(),
            BreakerState::HalfOpen
        );
        assert_eq!(run().await, "a", "second probe");
        assert_eq!(
            models.breaker(&chain_targets[0]).state(),
            BreakerState::Closed
        );
        assert_eq!((fake.times("a").len(), fake.times("b").len()), (6, 7));
    }

    #[tokio::test(start_paused = true)]
    async fn when_every_breaker_is_open_the_call_fails_at_once_as_unavailable() {
        let fake = Fake::new(|_, _| {
            Err(ModelError::ServiceUnavailable {
                message: "down".into(),
            })
        });
        let breaker = BreakerSettings {
            window: 2,
            min_calls: 2,
            failure_rate_percent: 50,
            open_ms: 30_000,
            half_open_probes: 1,
        };
        let models = models(&fake, breaker);
        let t = targets(&["a"]);
        for _ in 0..2 {
            let _ = chain(&models, &t, &policy(1, Duration::from_secs(60))).await;
        }
        let started = Instant::now();
        let (result, outcome) = chain(&models, &t, &policy(1, Duration::from_secs(60))).await;
        assert_eq!(result.unwrap_err().code().as_str(), "MODEL_UNAVAILABLE");
        assert_eq!(outcome.model_calls, 0);
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}
