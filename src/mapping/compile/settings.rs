//! An operation's model settings: its targets (model id and region), the
//! inference configuration, the guardrail, the call policy (retry,
//! deadline, cache TTL) and the batch setting, each value checked against
//! what Converse and batch inference accept.

use std::time::Duration;

use super::Cx;
use crate::converse::{GuardrailConfig, GuardrailTrace, InferenceConfig};
use crate::mapping::spec::OperationSpec;
use crate::mapping::{BatchPlan, CallPolicy, ModelTarget};

/// Converse accepts at most four stop sequences.
const MAX_STOP_SEQUENCES: usize = 4;

/// Bedrock refuses a batch-inference job with fewer records.
const MIN_BATCH_RECORDS: u64 = 100;
/// Bedrock's most records per batch-inference job.
const MAX_BATCH_RECORDS: u64 = 50_000;
const DEFAULT_MAX_BATCH_RECORDS: u64 = 10_000;
const DEFAULT_BATCH_WAIT_SECS: u64 = 3600;

impl Cx<'_> {
    /// `model.retry`, `model.deadline_ms` and `cache.ttl_secs`.
    pub(super) fn call_policy(&mut self, spec: &OperationSpec) -> CallPolicy {
        let model = &spec.model.value;
        let deadline = match &model.deadline_ms {
            Some(d) if d.value == 0 => {
                self.error(&d.referenced, "deadline_ms must be at least 1");
                None
            }
            Some(d) => Some(Duration::from_millis(d.value)),
            None => None,
        };
        let cache_ttl = match &spec.cache {
            Some(c) if c.value.ttl_secs.value == 0 => {
                self.error(
                    &c.value.ttl_secs.referenced,
                    "ttl_secs must be at least 1 (leave `cache` out to disable caching)",
                );
                None
            }
            Some(c) => Some(Duration::from_secs(c.value.ttl_secs.value)),
            None => None,
        };
        CallPolicy {
            retry: model.retry.as_ref().is_none_or(|r| r.value),
            deadline,
            cache_ttl,
        }
    }

    pub(super) fn targets(&mut self, spec: &OperationSpec) -> Vec<ModelTarget> {
        let model = &spec.model.value;
        if model.targets.value.is_empty() {
            self.error(
                &model.targets.referenced,
                "at least one model target is required",
            );
        }
        let mut out = Vec::new();
        for t in &model.targets.value {
            let id = t.value.model.value.trim();
            if id.is_empty() || id.contains(char::is_whitespace) {
                self.error(
                    &t.value.model.referenced,
                    "model must be a model id, inference profile id or ARN (no spaces)",
                );
            }
            let region = t.value.region.as_ref().map(|r| r.value.trim().to_string());
            if let (Some(r), Some(rs)) = (&region, &t.value.region)
                && (r.is_empty()
                    || !r
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
            {
                self.error(&rs.referenced, format!("{r:?} is not a region name"));
            }
            out.push(ModelTarget {
                model: id.to_string(),
                region,
            });
        }
        out
    }

    pub(super) fn inference(&mut self, spec: &OperationSpec) -> Option<InferenceConfig> {
        let m = &spec.model.value;
        if let Some(t) = &m.max_tokens
            && t.value == 0
        {
            self.error(&t.referenced, "max_tokens must be at least 1");
        }
        for (name, v) in [("temperature", &m.temperature), ("top_p", &m.top_p)] {
            if let Some(v) = v
                && !(0.0..=1.0).contains(&v.value)
            {
                self.error(&v.referenced, format!("{name} must be between 0 and 1"));
            }
        }
        if let Some(s) = m.stop_sequences.get(MAX_STOP_SEQUENCES) {
            self.error(
                &s.referenced,
                format!("at most {MAX_STOP_SEQUENCES} stop sequences are allowed"),
            );
        }
        for s in &m.stop_sequences {
            if s.value.is_empty() {
                self.error(&s.referenced, "a stop sequence must not be empty");
            }
        }
        let c = InferenceConfig {
            max_tokens: m.max_tokens.as_ref().map(|v| v.value),
            temperature: m.temperature.as_ref().map(|v| v.value),
            top_p: m.top_p.as_ref().map(|v| v.value),
            stop_sequences: m.stop_sequences.iter().map(|s| s.value.clone()).collect(),
        };
        let empty = c.max_tokens.is_none()
            && c.temperature.is_none()
            && c.top_p.is_none()
            && c.stop_sequences.is_empty();
        (!empty).then_some(c)
    }

    pub(super) fn guardrail(&mut self, spec: &OperationSpec) -> Option<GuardrailConfig> {
        let g = spec.model.value.guardrail.as_ref()?;
        let trace = match g.value.trace.as_ref() {
            None => None,
            Some(t) => match t.value.as_str() {
                "enabled" => Some(GuardrailTrace::Enabled),
                "disabled" => Some(GuardrailTrace::Disabled),
                "enabled_full" => Some(GuardrailTrace::EnabledFull),
                other => {
                    self.error(
                        &t.referenced,
                        format!("trace must be enabled, disabled or enabled_full, not {other:?}"),
                    );
                    None
                }
            },
        };
        for v in [&g.value.id, &g.value.version] {
            if v.value.trim().is_empty() {
                self.error(&v.referenced, "must not be empty");
            }
        }
        Some(GuardrailConfig {
            guardrail_identifier: g.value.id.value.trim().to_string(),
            guardrail_version: g.value.version.value.trim().to_string(),
            trace,
        })
    }

    /// `batch:`. Batch records are built in Anthropic's native Messages
    /// format, which has no place for a guardrail, so the batch model must
    /// be an Anthropic one and the operation unguarded. Whether the
    /// operation is sync does not matter: its polling-table jobs may batch.
    pub(super) fn batch(&mut self, spec: &OperationSpec) -> Option<BatchPlan> {
        let batch = spec.batch.as_ref()?;
        let b = &batch.value;
        let before = self.errors.len();

        let min_records = match &b.min_records {
            Some(m) if m.value < MIN_BATCH_RECORDS => {
                self.error(
                    &m.referenced,
                    format!(
                        "batch: min_records must be at least {MIN_BATCH_RECORDS} \
                         (Bedrock's minimum records per batch-inference job)"
                    ),
                );
                MIN_BATCH_RECORDS
            }
            Some(m) => m.value,
            None => MIN_BATCH_RECORDS,
        };
        let max_records = match &b.max_records {
            Some(m) if m.value > MAX_BATCH_RECORDS => {
                self.error(
                    &m.referenced,
                    format!(
                        "batch: max_records must be at most {MAX_BATCH_RECORDS} \
                         (Bedrock's most records per batch-inference job)"
                    ),
                );
                MAX_BATCH_RECORDS
            }
            Some(m) if m.value < min_records => {
                self.error(
                    &m.referenced,
                    format!("batch: max_records must be at least min_records ({min_records})"),
                );
                min_records
            }
            Some(m) => m.value,
            None => {
                if let Some(m) = &b.min_records
                    && m.value > DEFAULT_MAX_BATCH_RECORDS
                {
                    self.error(
                        &m.referenced,
                        format!(
                            "batch: min_records is above max_records \
                             (default {DEFAULT_MAX_BATCH_RECORDS}): set max_records too"
                        ),
                    );
                }
                DEFAULT_MAX_BATCH_RECORDS
            }
        };
        let max_wait_secs = match &b.max_wait_secs {
            Some(w) if w.value == 0 => {
                self.error(&w.referenced, "batch: max_wait_secs must be at least 1");
                DEFAULT_BATCH_WAIT_SECS
            }
            Some(w) => w.value,
            None => DEFAULT_BATCH_WAIT_SECS,
        };

        let role_arn = b.role_arn.value.trim();
        if !role_arn.starts_with("arn:") || !role_arn.contains(":role/") {
            self.error(
                &b.role_arn.referenced,
                format!("batch: role_arn {role_arn:?} is not an IAM role ARN (arn:...:role/name)"),
            );
        }
        let written = b.s3_uri.value.trim();
        let bucket = written
            .strip_prefix("s3://")
            .map(|rest| rest.split('/').next().unwrap_or(""));
        if bucket.is_none_or(|name| name.is_empty() || name.contains(char::is_whitespace)) {
            self.error(
                &b.s3_uri.referenced,
                format!("batch: s3_uri {written:?} is not an S3 location (s3://bucket/prefix)"),
            );
        }
        // Batch folders go under `{s3_uri}/`: no doubled slash.
        let s3_uri = written.trim_end_matches('/');

        let model = match &b.model {
            Some(m) => {
                let id = m.value.trim();
                if id.is_empty() || id.contains(char::is_whitespace) {
                    self.error(
                        &m.referenced,
                        "batch: model must be a model id, inference profile id or ARN (no spaces)",
                    );
                } else if !id.contains("anthropic.") {
                    self.error(
                        &m.referenced,
                        format!(
                            "batch: model {id} is not an Anthropic model: batch records are \
                             built in Anthropic's native Messages format only"
                        ),
                    );
                }
                id.to_string()
            }
            None => {
                let first = spec
                    .model
                    .value
                    .targets
                    .value
                    .first()
                    .map(|t| t.value.model.value.trim().to_string())
                    .unwrap_or_default();
                // No target at all was reported by `targets`.
                if !first.is_empty() && !first.contains("anthropic.") {
                    self.error(
                        &batch.referenced,
                        format!(
                            "batch: the operation's first target {first} is not an Anthropic \
                             model: batch records are built in Anthropic's native Messages \
                             format only (set batch: model)"
                        ),
                    );
                }
                first
            }
        };
        if let Some(g) = &spec.model.value.guardrail {
            self.error(
                &batch.referenced,
                format!(
                    "batch: the operation has a guardrail (line {}), and a batch record has \
                     no place for a guardrail",
                    g.referenced.line()
                ),
            );
        }

        if self.errors.len() > before {
            return None;
        }
        Some(BatchPlan {
            min_records: usize::try_from(min_records).unwrap_or(usize::MAX),
            max_records: usize::try_from(max_records).unwrap_or(usize::MAX),
            max_wait: Duration::from_secs(max_wait_secs),
            role_arn: role_arn.to_string(),
            s3_uri: s3_uri.to_string(),
            model,
        })
    }
}
