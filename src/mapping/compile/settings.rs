//! An operation's model settings: its targets (model id and region), the
//! inference configuration, the guardrail, and the call policy (retry,
//! deadline, cache TTL), each value checked against what Converse accepts.

use std::time::Duration;

use super::Cx;
use crate::converse::{GuardrailConfig, GuardrailTrace, InferenceConfig};
use crate::mapping::spec::OperationSpec;
use crate::mapping::{CallPolicy, ModelTarget};

/// Converse accepts at most four stop sequences.
const MAX_STOP_SEQUENCES: usize = 4;

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
}
