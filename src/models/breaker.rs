//! A circuit breaker per model target, count-based: the outcomes of the
//! last `window` calls are kept; once at least `min_calls` are known and
//! the share of failures reaches `failure_rate_percent`, the breaker opens
//! and calls skip the target for `open_ms`. Then up to `half_open_probes`
//! calls are let through; the first failure opens it again, that many
//! successes close it with a fresh window.
//!
//! Time is tokio's clock, so tests drive it with `tokio::time::pause`.
//! Only failures that say something about the target's health count
//! (throttling, 5xx, timeouts); a refused request or denied access are
//! neither success nor failure.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// `[bedrock.breaker]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerSettings {
    /// Outcomes kept (the sliding window, in calls).
    pub window: usize,
    /// Calls in the window before the failure rate is judged.
    pub min_calls: usize,
    /// Failure share (percent) of the window that opens the breaker.
    pub failure_rate_percent: u8,
    /// How long an open breaker skips its target.
    pub open_ms: u64,
    /// Trial calls let through after the open period; that many successes
    /// close the breaker.
    pub half_open_probes: u32,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            window: 20,
            min_calls: 10,
            failure_rate_percent: 50,
            open_ms: 30_000,
            half_open_probes: 3,
        }
    }
}

/// What a breaker is doing, as reported by `/readyz` and `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    /// 0 closed, 1 open, 2 half-open: the gauge value.
    pub fn as_gauge(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::Open => 1,
            BreakerState::HalfOpen => 2,
        }
    }
}

#[derive(Debug)]
enum State {
    Closed { outcomes: VecDeque<bool> },
    Open { until: Instant },
    HalfOpen { started: u32, succeeded: u32 },
}

/// One target's breaker. Shared (`Arc`) by every call to the target.
#[derive(Debug)]
pub struct Breaker {
    settings: BreakerSettings,
    state: Mutex<State>,
}

/// The target's breaker is open: the call must skip it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Open;

/// Leave to call the target once. Say how it went with
/// [`Permit::success`], [`Permit::failure`] or [`Permit::neutral`];
/// dropped unsaid (the call was cut), it frees its probe slot and counts
/// for nothing.
#[derive(Debug)]
#[must_use]
pub struct Permit {
    breaker: Arc<Breaker>,
    probe: bool,
    done: bool,
}

impl Breaker {
    pub fn new(settings: BreakerSettings) -> Arc<Breaker> {
        Arc::new(Breaker {
            settings,
            state: Mutex::new(State::Closed {
                outcomes: VecDeque::new(),
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The state now (an open breaker whose period is over reads as
    /// half-open: the next call will probe).
    pub fn state(&self) -> BreakerState {
        match &*self.lock() {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { until } if Instant::now() >= *until => BreakerState::HalfOpen,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Leave to call, or [`Open`] at once.
    pub fn try_acquire(self: &Arc<Self>) -> Result<Permit, Open> {
        let mut state = self.lock();
        let probe = match &mut *state {
            State::Closed { .. } => false,
            State::Open { until } => {
                if Instant::now() < *until {
                    return Err(Open);
                }
                *state = State::HalfOpen {
                    started: 1,
                    succeeded: 0,
                };
                true
            }
            State::HalfOpen { started, .. } => {
                if *started >= self.settings.half_open_probes.max(1) {
                    return Err(Open);
                }
                *started += 1;
                true
            }
        };
        Ok(Permit {
            breaker: self.clone(),
            probe,
            done: false,
        })
    }

    fn record(&self, probe: bool, outcome: Option<bool>) {
        let mut state = self.lock();
        let open = || State::Open {
            until: Instant::now() + Duration::from_millis(self.settings.open_ms),
        };
        match &mut *state {
            State::Closed { outcomes } => {
                let Some(failed) = outcome else { return };
                outcomes.push_back(failed);
                while outcomes.len() > self.settings.window.max(1) {
                    outcomes.pop_front();
                }
                let failures = outcomes.iter().filter(|f| **f).count();
                if outcomes.len() >= self.settings.min_calls.max(1)
                    && failures * 100
                        >= usize::from(self.settings.failure_rate_percent) * outcomes.len()
                {
                    tracing::warn!(failures, calls = outcomes.len(), "circuit breaker opens");
                    *state = open();
                }
            }
            State::HalfOpen { started, succeeded } if probe => match outcome {
                Some(true) => {
                    tracing::warn!("half-open probe failed: circuit breaker opens again");
                    *state = open();
                }
                Some(false) => {
                    *succeeded += 1;
                    if *succeeded >= self.settings.half_open_probes.max(1) {
                        tracing::info!("half-open probes succeeded: circuit breaker closes");
                        *state = State::Closed {
                            outcomes: VecDeque::new(),
                        };
                    }
                }
                // A probe that proved nothing frees its slot.
                None => *started = started.saturating_sub(1),
            },
            // Late outcomes of calls let through before the state changed.
            State::HalfOpen { .. } | State::Open { .. } => {}
        }
    }
}

impl Permit {
    /// The target answered.
    pub fn success(mut self) {
        self.done = true;
        self.breaker.record(self.probe, Some(false));
    }

    /// The target failed in a way that speaks of its health.
    pub fn failure(mut self) {
        self.done = true;
        self.breaker.record(self.probe, Some(true));
    }

    /// The call ended in a way that says nothing about the target.
    pub fn neutral(mut self) {
        self.done = true;
        self.breaker.record(self.probe, None);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.done {
            self.breaker.record(self.probe, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> BreakerSettings {
        BreakerSettings {
            window: 10,
            min_calls: 4,
            failure_rate_percent: 50,
            open_ms: 1_000,
            half_open_probes: 2,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn opens_at_the_failure_rate_and_only_after_min_calls() {
        let b = Breaker::new(settings());
        for _ in 0..3 {
            b.try_acquire().unwrap().failure();
        }
        // 3 of 3 failed, but fewer than min_calls are known.
        assert_eq!(b.state(), BreakerState::Closed);
        b.try_acquire().unwrap().success();
        // 3 of 4 failed: 75% >= 50%.
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.try_acquire().unwrap_err(), Open);
    }

    #[tokio::test(start_paused = true)]
    async fn a_healthy_rate_keeps_it_closed_and_old_failures_slide_out() {
        let b = Breaker::new(settings());
        for i in 0..40 {
            let p = b.try_acquire().unwrap();
            if i % 4 == 0 { p.failure() } else { p.success() }
        }
        assert_eq!(b.state(), BreakerState::Closed);
        // Neutral outcomes (a refused request) do not count.
        for _ in 0..20 {
            b.try_acquire().unwrap().neutral();
        }
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_probes_close_it_again() {
        let b = Breaker::new(settings());
        for _ in 0..4 {
            b.try_acquire().unwrap().failure();
        }
        assert_eq!(b.state(), BreakerState::Open);
        tokio::time::advance(Duration::from_millis(999)).await;
        assert!(
            b.try_acquire().is_err(),
            "still open before the period ends"
        );
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let p1 = b.try_acquire().expect("first probe");
        let p2 = b.try_acquire().expect("second probe");
        assert!(b.try_acquire().is_err(), "only two probes at a time");
        p1.success();
        assert_eq!(b.state(), BreakerState::HalfOpen);
        p2.success();
        assert_eq!(b.state(), BreakerState::Closed);
        // A fresh window: three failures alone do not reopen it.
        for _ in 0..3 {
            b.try_acquire().unwrap().failure();
        }
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_reopens_and_a_dropped_one_frees_its_slot() {
        let b = Breaker::new(settings());
        for _ in 0..4 {
            b.try_acquire().unwrap().failure();
        }
        tokio::time::advance(Duration::from_secs(1)).await;
        let p = b.try_acquire().unwrap();
        let q = b.try_acquire().unwrap();
        drop(q);
        // The dropped probe's slot is free again.
        let q = b.try_acquire().expect("slot freed");
        p.failure();
        assert_eq!(b.state(), BreakerState::Open);
        q.success(); // late: ignored while open
        assert_eq!(b.state(), BreakerState::Open);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);
    }
}
