//! The model layer's settings: our retries of what the SDK does not retry,
//! the deadline of an operation's model work, the in-flight cap, the
//! breakers and the caches. They are read from the `[bedrock]` section
//! (`BedrockSettings::model_settings`), where operators set them beside
//! the SDK's own retries and timeouts, which share some of them.

use std::time::Duration;

use super::breaker::BreakerSettings;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSettings {
    /// Attempts per target of our own retries (the SDK's setting too).
    pub max_attempts: u32,
    /// Base of the exponential backoff between our retries.
    pub initial_backoff_ms: u64,
    /// Longest backoff between two of our retries.
    pub max_backoff_ms: u64,
    /// The default deadline of an operation's model work.
    pub deadline_ms: u64,
    /// Model calls in flight per instance; beyond it, `OVERLOADED`.
    pub max_in_flight: usize,
    /// The `RetryAfterSeconds` hint of an `OVERLOADED` fault.
    pub overload_retry_after_secs: u64,
    /// The circuit breaker of each target.
    pub breaker: BreakerSettings,
    /// Entries of the response cache.
    pub cache_entries: u64,
    /// Entries of the last-good store.
    pub last_good_entries: u64,
}

impl Default for ModelSettings {
    fn default() -> Self {
        ModelSettings {
            max_attempts: 3,
            initial_backoff_ms: 1_000,
            max_backoff_ms: 20_000,
            deadline_ms: 120_000,
            max_in_flight: 256,
            overload_retry_after_secs: 1,
            breaker: BreakerSettings::default(),
            cache_entries: 10_000,
            last_good_entries: 10_000,
        }
    }
}

impl ModelSettings {
    /// Longest wait between two attempts (never below the initial backoff).
    pub fn max_backoff(&self) -> Duration {
        Duration::from_millis(self.max_backoff_ms.max(self.initial_backoff_ms))
    }

    pub fn initial_backoff(&self) -> Duration {
        Duration::from_millis(self.initial_backoff_ms)
    }

    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms.max(1))
    }
}
