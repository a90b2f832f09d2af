//! The model layer of one instance: what the SDK does not do for a model
//! call, shared by every call of the instance (the HTTP handler and every
//! worker): [`Models`] holds the client of each region (built lazily from
//! the default one), a circuit breaker per target ([`breaker`]), the
//! response cache and the last-good store ([`cache`]), and the cap on
//! model calls in flight.
//!
//! The fallback chain that uses these runs in `pipeline::call_chain`; this
//! module knows targets, requests and answers, never SOAP or HTTP. Only
//! `converse` types cross it, so tests drive it with a fake
//! [`ModelClient`].

pub mod breaker;
pub mod cache;
mod settings;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use breaker::{Breaker, BreakerSettings, BreakerState, Open, Permit};
pub use cache::{CacheKey, ResponseCache};
pub use settings::ModelSettings;

/// The `max_tokens` a call without one is counted for (and a batch record
/// without one is sent with, since Anthropic's native body requires it).
pub use crate::mapping::DEFAULT_MAX_TOKENS;

use crate::converse::{ModelClient, ModelError};
use crate::mapping::ModelTarget;

/// A target as the breakers and metrics name it: `region/model` (`-` for
/// the default region).
pub fn target_label(target: &ModelTarget) -> String {
    format!(
        "{}/{}",
        target.region.as_deref().unwrap_or("-"),
        target.model
    )
}

/// The model layer of one instance. Cheap to share (`Arc<Models>`): the
/// HTTP handler and the workers of a process use the same one, so they
/// share breakers, caches and the in-flight cap.
pub struct Models {
    default: Arc<dyn ModelClient>,
    regions: Mutex<HashMap<String, Arc<dyn ModelClient>>>,
    breakers: Mutex<HashMap<String, Arc<Breaker>>>,
    pub cache: ResponseCache,
    in_flight: Arc<Semaphore>,
    settings: ModelSettings,
    metrics: Arc<crate::metrics::Metrics>,
    /// Where calls of operations that record go (`record:`); none in
    /// `soapgate replay`, which must not record what it replays.
    recorder: Option<crate::record::Recorder>,
}

impl fmt::Debug for Models {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Models")
            .field("default", &self.default)
            .field("in_flight_free", &self.in_flight.available_permits())
            .finish_non_exhaustive()
    }
}

/// Every model call permit is taken: the caller gets `OVERLOADED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overloaded {
    pub retry_after: Duration,
}

impl Models {
    /// The model layer around `default` (the client of the default region;
    /// other regions are derived from it with [`ModelClient::for_region`]).
    pub fn new(default: Arc<dyn ModelClient>, settings: ModelSettings) -> Models {
        Models::with_metrics(default, settings, Arc::new(crate::metrics::Metrics::new()))
    }

    /// Like [`Models::new`], reporting into `metrics`.
    pub fn with_metrics(
        default: Arc<dyn ModelClient>,
        settings: ModelSettings,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Models {
        Models {
            default,
            regions: Mutex::new(HashMap::new()),
            breakers: Mutex::new(HashMap::new()),
            cache: ResponseCache::new(settings.cache_entries, settings.last_good_entries),
            in_flight: Arc::new(Semaphore::new(settings.max_in_flight.max(1))),
            settings,
            metrics,
            recorder: None,
        }
    }

    /// The same layer, handing recorded calls to `recorder`.
    pub fn with_recorder(mut self, recorder: crate::record::Recorder) -> Models {
        self.recorder = Some(recorder);
        self
    }

    /// Where recorded calls go, when this layer records.
    pub fn recorder(&self) -> Option<&crate::record::Recorder> {
        self.recorder.as_ref()
    }

    pub fn settings(&self) -> &ModelSettings {
        &self.settings
    }

    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.metrics
    }

    /// The client for `region` (`None`: the default region), built on
    /// first use and kept.
    pub fn client(&self, region: Option<&str>) -> Arc<dyn ModelClient> {
        let Some(region) = region else {
            return self.default.clone();
        };
        if self.default.region() == Some(region) {
            return self.default.clone();
        }
        let mut regions = self.regions.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = regions.get(region) {
            return client.clone();
        }
        let client = self
            .default
            .for_region(region)
            .unwrap_or_else(|| self.default.clone());
        regions.insert(region.to_string(), client.clone());
        client
    }

    /// The region a target's calls go to, for records.
    pub fn region_of(&self, target: &ModelTarget) -> Option<String> {
        target
            .region
            .clone()
            .or_else(|| self.default.region().map(str::to_owned))
    }

    /// The breaker of a target, created closed on first use.
    pub fn breaker(&self, target: &ModelTarget) -> Arc<Breaker> {
        let label = target_label(target);
        let mut breakers = self.breakers.lock().unwrap_or_else(PoisonError::into_inner);
        breakers
            .entry(label)
            .or_insert_with(|| Breaker::new(self.settings.breaker.clone()))
            .clone()
    }

    /// Every breaker created so far with its state, sorted by target.
    pub fn breaker_states(&self) -> Vec<(String, BreakerState)> {
        let breakers = self.breakers.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<_> = breakers
            .iter()
            .map(|(label, b)| (label.clone(), b.state()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// A permit to make model calls for one SOAP call, or [`Overloaded`]
    /// at once: calls never queue for a permit.
    pub fn try_enter(&self) -> Result<OwnedSemaphorePermit, Overloaded> {
        self.in_flight
            .clone()
            .try_acquire_owned()
            .map_err(|_| Overloaded {
                retry_after: Duration::from_secs(self.settings.overload_retry_after_secs.max(1)),
            })
    }

    /// Model calls in flight now.
    pub fn in_flight(&self) -> usize {
        self.settings
            .max_in_flight
            .max(1)
            .saturating_sub(self.in_flight.available_permits())
    }
}

/// Whether our own policy retries this error on the same target: the ones
/// the SDK leaves alone although they are often transient.
pub fn retried_by_us(error: &ModelError) -> bool {
    matches!(
        error,
        ModelError::ModelTimeout { .. }
            | ModelError::ModelFailed { .. }
            | ModelError::Connection { .. }
            | ModelError::Timeout { .. }
    )
}

/// Whether an error counts against the target's breaker: it speaks of the
/// target's health (throttling, 5xx, timeouts, unreachable), not of the
/// request or our permissions.
pub fn counts_against_target(error: &ModelError) -> bool {
    error.is_retryable()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::converse::{BoxFuture, Request, Response};

    #[derive(Debug)]
    struct Never;

    impl ModelClient for Never {
        fn converse<'a>(
            &'a self,
            _: &'a str,
            _: &'a Request,
        ) -> BoxFuture<'a, Result<Response, ModelError>> {
            Box::pin(std::future::pending())
        }
    }

    #[test]
    fn the_in_flight_cap_refuses_at_once_and_frees_on_drop() {
        let models = Models::new(
            Arc::new(Never),
            ModelSettings {
                max_in_flight: 2,
                overload_retry_after_secs: 3,
                ..ModelSettings::default()
            },
        );
        let a = models.try_enter().expect("first");
        let _b = models.try_enter().expect("second");
        assert_eq!(models.in_flight(), 2);
        assert_eq!(
            models.try_enter().unwrap_err(),
            Overloaded {
                retry_after: Duration::from_secs(3)
            }
        );
        drop(a);
        assert!(models.try_enter().is_ok());
    }

    #[test]
    fn clients_without_regions_serve_every_region_and_breakers_are_per_target() {
        let models = Models::new(Arc::new(Never), ModelSettings::default());
        let a = ModelTarget {
            model: "m".into(),
            region: Some("eu-west-1".into()),
        };
        let b = ModelTarget {
            model: "m".into(),
            region: None,
        };
        assert!(Arc::ptr_eq(
            &models.client(Some("eu-west-1")),
            &models.client(None)
        ));
        assert!(!Arc::ptr_eq(&models.breaker(&a), &models.breaker(&b)));
        assert!(Arc::ptr_eq(&models.breaker(&a), &models.breaker(&a)));
        let labels: Vec<String> = models
            .breaker_states()
            .into_iter()
            .map(|(l, _)| l)
            .collect();
        assert_eq!(labels, ["-/m", "eu-west-1/m"]);
    }
}
