//! The instance's Prometheus metrics, kept in a `prometheus-client`
//! registry owned by this value (not a process-global recorder), so each
//! app in a test process has its own and `/metrics` renders exactly one
//! instance. Counters and histograms are updated where things happen
//! (`pipeline`, `http`, the batch driver); gauges of state that lives
//! elsewhere (breakers, jobs, queue depth) are set by the scrape itself
//! just before encoding, but for the jobs waiting for a batch, which the
//! batch driver sets each tick.
//!
//! Metric names are part of the product (dashboards are built on them):
//! never rename one.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    service: String,
    operation: String,
    /// `primary` for the operation's own settings, else the variant's name.
    variant: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    service: String,
    operation: String,
    variant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShadowLabels {
    service: String,
    operation: String,
    variant: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    service: String,
    operation: String,
    step: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepTimeLabels {
    service: String,
    operation: String,
    step: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BatchLabels {
    service: String,
    operation: String,
    /// `DONE` or `FAILED`.
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BatchJobLabels {
    service: String,
    operation: String,
    /// `answered` or `returned`.
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceOperationLabels {
    service: String,
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabels {
    target: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    tenant: String,
    model: String,
    direction: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn seconds_histogram() -> Histogram {
    // 5 ms .. ~80 s
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

/// Everything `/metrics` shows.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: HistogramFamily<OperationLabels>,
    attempts: Family<AttemptLabels, Counter>,
    attempt_seconds: HistogramFamily<TargetLabels>,
    fallbacks: Family<TargetLabels, Counter>,
    breaker_state: Family<TargetLabels, Gauge>,
    cache: Family<KindLabels, Counter>,
    overloaded: Counter,
    in_flight: Gauge,
    tokens: Family<TokenLabels, Counter>,
    shadow_calls: Family<ShadowLabels, Counter>,
    steps: Family<StepLabels, Counter>,
    step_seconds: HistogramFamily<StepTimeLabels>,
    jobs: Family<StatusLabels, Gauge>,
    queue_depth: Gauge,
    recordings: Family<ResultLabels, Counter>,
    batches: Family<BatchLabels, Counter>,
    batch_jobs: Family<BatchJobLabels, Counter>,
    batch_jobs_waiting: Family<ServiceOperationLabels, Gauge>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// How a response cache lookup ended: the `kind` label of
/// `soapgate_cache_lookups_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheLookup {
    Hit,
    Miss,
    /// A degraded answer from the last-good store.
    LastGood,
}

impl CacheLookup {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheLookup::Hit => "hit",
            CacheLookup::Miss => "miss",
            CacheLookup::LastGood => "last_good",
        }
    }
}

/// What became of a job sent in a batch: the `result` label of
/// `soapgate_batch_jobs_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchJobResult {
    /// Answered from the batch's output.
    Answered,
    /// Back to the on-demand queue.
    Returned,
}

impl BatchJobResult {
    pub fn as_str(self) -> &'static str {
        match self {
            BatchJobResult::Answered => "answered",
            BatchJobResult::Returned => "returned",
        }
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("soapgate");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "SOAP calls and jobs answered, by service, operation and outcome (ok, degraded, or the fault code)",
            requests.clone(),
        );
        let request_seconds: HistogramFamily<OperationLabels> =
            Family::new_with_constructor(seconds_histogram);
        registry.register(
            "request_duration_seconds",
            "Time to answer a call, from the first byte read to the answer",
            request_seconds.clone(),
        );
        let attempts = Family::<AttemptLabels, Counter>::default();
        registry.register(
            "model_attempts",
            "Model calls, by target (region/model) and result (ok or the fault code)",
            attempts.clone(),
        );
        let attempt_seconds: HistogramFamily<TargetLabels> =
            Family::new_with_constructor(seconds_histogram);
        registry.register(
            "model_attempt_duration_seconds",
            "Time of one model call (the SDK's own retries included)",
            attempt_seconds.clone(),
        );
        let fallbacks = Family::<TargetLabels, Counter>::default();
        registry.register(
            "model_fallbacks",
            "Times the chain moved on from a target (failed or breaker open)",
            fallbacks.clone(),
        );
        let breaker_state = Family::<TargetLabels, Gauge>::default();
        registry.register(
            "breaker_state",
            "Circuit breaker per target: 0 closed, 1 open, 2 half-open",
            breaker_state.clone(),
        );
        let cache = Family::<KindLabels, Counter>::default();
        registry.register(
            "cache_lookups",
            "Response cache lookups: hit, miss, or last_good (a degraded answer from the last-good store)",
            cache.clone(),
        );
        let overloaded = Counter::default();
        registry.register(
            "overloaded",
            "Calls refused with OVERLOADED because the in-flight cap was reached",
            overloaded.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "model_in_flight",
            "Calls holding a model permit now",
            in_flight.clone(),
        );
        let tokens = Family::<TokenLabels, Counter>::default();
        registry.register(
            "tokens",
            "Model tokens by tenant (- when none), model and direction (input, output)",
            tokens.clone(),
        );
        let shadow_calls = Family::<ShadowLabels, Counter>::default();
        registry.register(
            "shadow_calls",
            "Shadow runs of a variant beside served calls, by service, operation, variant and result: \
             agree or differ (its answer against the served one), failed (no valid answer), \
             skipped (no model permit free)",
            shadow_calls.clone(),
        );
        let steps = Family::<StepLabels, Counter>::default();
        registry.register(
            "steps",
            "Steps of multi-step operations ended, by service, operation, step and result: \
             answered, degraded (a static result stood in), skipped (its when was false) or failed",
            steps.clone(),
        );
        let step_seconds: HistogramFamily<StepTimeLabels> =
            Family::new_with_constructor(seconds_histogram);
        registry.register(
            "step_duration_seconds",
            "Time a step of a multi-step operation took, all its items and calls included",
            step_seconds.clone(),
        );
        let jobs = Family::<StatusLabels, Gauge>::default();
        registry.register(
            "jobs",
            "Jobs in the store by status (at scrape time)",
            jobs.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "queue_depth",
            "Jobs waiting to run: QUEUED jobs plus unclaimed polling-table requests (at scrape time)",
            queue_depth.clone(),
        );
        let recordings = Family::<ResultLabels, Counter>::default();
        registry.register(
            "recordings",
            "Recorded calls (record: in the mapping) by result: written, dropped (the writer was behind), failed (the database refused)",
            recordings.clone(),
        );
        let batches = Family::<BatchLabels, Counter>::default();
        registry.register(
            "batches",
            "Batch-inference jobs ended, by service, operation and status: DONE (the output read) \
             or FAILED (given up: every job back on demand)",
            batches.clone(),
        );
        let batch_jobs = Family::<BatchJobLabels, Counter>::default();
        registry.register(
            "batch_jobs",
            "Jobs sent in a batch, by service, operation and result: answered (from the batch's \
             output) or returned (back to the on-demand queue)",
            batch_jobs.clone(),
        );
        let batch_jobs_waiting = Family::<ServiceOperationLabels, Gauge>::default();
        registry.register(
            "batch_jobs_waiting",
            "Jobs waiting for a batch, by service and operation (at the batch driver's last tick)",
            batch_jobs_waiting.clone(),
        );
        Metrics {
            registry,
            requests,
            request_seconds,
            attempts,
            attempt_seconds,
            fallbacks,
            breaker_state,
            cache,
            overloaded,
            in_flight,
            tokens,
            shadow_calls,
            steps,
            step_seconds,
            jobs,
            queue_depth,
            recordings,
            batches,
            batch_jobs,
            batch_jobs_waiting,
        }
    }

    /// A batch ended: `DONE` or `FAILED`.
    pub fn batch_ended(&self, service: &str, operation: &str, status: &str) {
        self.batches
            .get_or_create(&BatchLabels {
                service: service.to_string(),
                operation: operation.to_string(),
                status: status.to_string(),
            })
            .inc();
    }

    /// `n` jobs of a batch answered from its output or returned on demand.
    pub fn batch_jobs(&self, service: &str, operation: &str, result: BatchJobResult, n: u64) {
        self.batch_jobs
            .get_or_create(&BatchJobLabels {
                service: service.to_string(),
                operation: operation.to_string(),
                result: result.as_str().to_string(),
            })
            .inc_by(n);
    }

    /// Jobs of an operation waiting for a batch now.
    pub fn set_batch_waiting(&self, service: &str, operation: &str, waiting: i64) {
        self.batch_jobs_waiting
            .get_or_create(&ServiceOperationLabels {
                service: service.to_string(),
                operation: operation.to_string(),
            })
            .set(waiting);
    }

    /// `n` recordings written, dropped or failed.
    pub fn recording(&self, result: &str, n: u64) {
        self.recordings
            .get_or_create(&ResultLabels {
                result: result.to_string(),
            })
            .inc_by(n);
    }

    /// One call answered, by the operation's own settings (`variant`
    /// `primary`) or a variant.
    pub fn request(
        &self,
        service: &str,
        operation: &str,
        variant: &str,
        outcome: &str,
        elapsed: Duration,
    ) {
        self.requests
            .get_or_create(&RequestLabels {
                service: service.to_string(),
                operation: operation.to_string(),
                variant: variant.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        self.request_seconds
            .get_or_create(&OperationLabels {
                service: service.to_string(),
                operation: operation.to_string(),
                variant: variant.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// One shadow run ended: `agree`, `differ`, `failed` or `skipped`.
    pub fn shadow(&self, service: &str, operation: &str, variant: &str, result: &str) {
        self.shadow_calls
            .get_or_create(&ShadowLabels {
                service: service.to_string(),
                operation: operation.to_string(),
                variant: variant.to_string(),
                result: result.to_string(),
            })
            .inc();
    }

    /// One step of a multi-step operation ended.
    pub fn step(
        &self,
        service: &str,
        operation: &str,
        step: &str,
        result: &str,
        elapsed: Duration,
    ) {
        self.steps
            .get_or_create(&StepLabels {
                service: service.to_string(),
                operation: operation.to_string(),
                step: step.to_string(),
                result: result.to_string(),
            })
            .inc();
        self.step_seconds
            .get_or_create(&StepTimeLabels {
                service: service.to_string(),
                operation: operation.to_string(),
                step: step.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// One model call.
    pub fn attempt(&self, target: &str, result: &str, elapsed: Duration) {
        self.attempts
            .get_or_create(&AttemptLabels {
                target: target.to_string(),
                result: result.to_string(),
            })
            .inc();
        self.attempt_seconds
            .get_or_create(&TargetLabels {
                target: target.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// The chain moved on from `target`.
    pub fn fallback(&self, target: &str) {
        self.fallbacks
            .get_or_create(&TargetLabels {
                target: target.to_string(),
            })
            .inc();
    }

    /// `kind`: `hit`, `miss` or `last_good`.
    pub fn cache_lookup(&self, kind: CacheLookup) {
        self.cache
            .get_or_create(&KindLabels {
                kind: kind.as_str().to_string(),
            })
            .inc();
    }

    pub fn overloaded(&self) {
        self.overloaded.inc();
    }

    pub fn tokens(&self, tenant: Option<&str>, model: &str, input: u64, output: u64) {
        for (direction, n) in [("input", input), ("output", output)] {
            self.tokens
                .get_or_create(&TokenLabels {
                    tenant: tenant.unwrap_or("-").to_string(),
                    model: model.to_string(),
                    direction: direction.to_string(),
                })
                .inc_by(n);
        }
    }

    /// Scrape-time state: breakers, calls in flight.
    pub fn set_model_state(&self, breakers: &[(String, i64)], in_flight: usize) {
        for (target, state) in breakers {
            self.breaker_state
                .get_or_create(&TargetLabels {
                    target: target.clone(),
                })
                .set(*state);
        }
        self.in_flight
            .set(i64::try_from(in_flight).unwrap_or(i64::MAX));
    }

    /// Scrape-time state: jobs by status and the queue depth.
    pub fn set_jobs(&self, by_status: &[(String, i64)], queue_depth: i64) {
        self.jobs.clear();
        for (status, n) in by_status {
            self.jobs
                .get_or_create(&StatusLabels {
                    status: status.clone(),
                })
                .set(*n);
        }
        self.queue_depth.set(queue_depth);
    }

    /// The text exposition (OpenMetrics, which Prometheus reads).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_counters_and_the_waiting_gauge_render_by_operation() {
        let m = Metrics::new();
        m.batch_ended("InvoiceService", "ClassifyInvoice", "DONE");
        m.batch_ended("InvoiceService", "ClassifyInvoice", "DONE");
        m.batch_ended("InvoiceService", "ClassifyInvoice", "FAILED");
        m.batch_jobs(
            "InvoiceService",
            "ClassifyInvoice",
            BatchJobResult::Answered,
            95,
        );
        m.batch_jobs(
            "InvoiceService",
            "ClassifyInvoice",
            BatchJobResult::Returned,
            5,
        );
        m.set_batch_waiting("InvoiceService", "ClassifyInvoice", 40);
        m.set_batch_waiting("InvoiceService", "ClassifyInvoice", 30);
        let text = m.render();
        let op = "service=\"InvoiceService\",operation=\"ClassifyInvoice\"";
        for line in [
            format!("soapgate_batches_total{{{op},status=\"DONE\"}} 2"),
            format!("soapgate_batches_total{{{op},status=\"FAILED\"}} 1"),
            format!("soapgate_batch_jobs_total{{{op},result=\"answered\"}} 95"),
            format!("soapgate_batch_jobs_total{{{op},result=\"returned\"}} 5"),
            format!("soapgate_batch_jobs_waiting{{{op}}} 30"),
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
