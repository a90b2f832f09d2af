//! What a call cost and who made it: one usage row per model call
//! (`pipeline::Outcome::attempts`), priced from `[tenancy.prices]` (a
//! batch's answer at the model's batch price); the
//! tenant's budgets charged with the tokens used; one audit row per SOAP
//! call or job, with the SHA-256 of its payload. A multi-step operation's
//! usage rows name the step each model call was made for, and its audit
//! row the steps that ran.

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::Tenants;
use super::limits::periods;
use super::secret::hex;
use crate::pipeline::Attempt;
use crate::store::{AuditRow, Charge, Store, UsageRow};

/// Lower-case hex SHA-256, for audit rows.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Where a recorded call came from: the `source` column of the audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallSource {
    /// A SOAP call over HTTP.
    Http,
    /// A run of a queued job.
    Job,
}

impl CallSource {
    pub fn as_str(self) -> &'static str {
        match self {
            CallSource::Http => "http",
            CallSource::Job => "job",
        }
    }
}

/// One SOAP call or job, for [`Tenants::record`].
#[derive(Debug, Clone, Copy)]
pub struct CallRecord<'a> {
    pub tenant: Option<&'a str>,
    pub principal: Option<&'a str>,
    pub source: CallSource,
    pub service: &'a str,
    pub operation: Option<&'a str>,
    pub correlation_id: &'a str,
    pub job_id: Option<&'a str>,
    /// `ok`, `queued`, `accepted`, or the fault code.
    pub outcome: &'a str,
    /// Hex SHA-256 of the request as received (HTTP body, or the job's
    /// payload): [`sha256_hex`].
    pub payload_sha256: Option<&'a str>,
    /// The request text, kept only with `tenancy.audit_payloads`.
    pub request: Option<&'a str>,
    /// The response payload XML, when there is one.
    pub response: Option<&'a str>,
    /// Every model call made.
    pub attempts: &'a [Attempt],
    /// The call's budget hold ([`Tenants::reserve_budget`]), settled here.
    pub hold: Option<&'a str>,
    /// Which steps of a multi-step operation ran
    /// ([`crate::pipeline::Outcome::steps_summary`]); `None` for a
    /// single-call operation.
    pub steps: Option<&'a str>,
}

impl Tenants {
    /// The cost of a model call in millionths of the price unit, at the
    /// model's batch price when a batch answered it; 0 for a model without
    /// a price.
    pub fn cost_micros(
        &self,
        model: &str,
        input_tokens: u64,
        output_tokens: u64,
        batch: bool,
    ) -> i64 {
        self.settings.prices.get(model).map_or(0, |p| {
            p.call_cost_micros(input_tokens, output_tokens, batch)
        })
    }

    /// Writes the call's usage rows, charges its tenant's budgets and
    /// appends its audit row, in one transaction. A failure is logged,
    /// not returned: the call has been answered already.
    pub async fn record(&self, store: Option<&Store>, call: &CallRecord<'_>) {
        self.count_tokens(call);
        let Some(store) = store else {
            return;
        };
        let now = OffsetDateTime::now_utc();
        let at_ms = i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
        let operation = call.operation.unwrap_or("");
        let usage: Vec<UsageRow> = call
            .attempts
            .iter()
            .map(|a| UsageRow {
                at_ms,
                tenant: call.tenant.map(str::to_owned),
                service: call.service.to_owned(),
                operation: operation.to_owned(),
                model: a.model.clone(),
                input_tokens: i64::try_from(a.input_tokens).unwrap_or(i64::MAX),
                output_tokens: i64::try_from(a.output_tokens).unwrap_or(i64::MAX),
                cost_micros: self.cost_micros(&a.model, a.input_tokens, a.output_tokens, a.batch),
                latency_ms: i64::try_from(a.latency.as_millis()).unwrap_or(i64::MAX),
                outcome: a.result.as_str().to_owned(),
                correlation_id: call.correlation_id.to_owned(),
                batch: a.batch,
                step: a.step.clone(),
            })
            .collect();
        let tokens: i64 = usage
            .iter()
            .map(|u| u.input_tokens.saturating_add(u.output_tokens))
            .sum();
        let charge = call.tenant.map(|tenant| {
            let (day, month) = periods(now);
            Charge {
                tenant: tenant.to_owned(),
                day,
                month,
                tokens,
                hold: call.hold.map(str::to_owned),
            }
        });
        let keep = self.settings.audit_payloads;
        let audit = AuditRow {
            at_ms,
            tenant: call.tenant.map(str::to_owned),
            principal: call.principal.map(str::to_owned),
            source: call.source.as_str().to_owned(),
            service: call.service.to_owned(),
            operation: call.operation.map(str::to_owned),
            correlation_id: call.correlation_id.to_owned(),
            job_id: call.job_id.map(str::to_owned),
            outcome: call.outcome.to_owned(),
            payload_sha256: call.payload_sha256.map(str::to_owned),
            request_text: call.request.filter(|_| keep).map(str::to_owned),
            response_text: call.response.filter(|_| keep).map(str::to_owned),
            steps: call.steps.map(str::to_owned),
        };
        if let Err(e) = store.record_call(&usage, charge.as_ref(), &audit).await {
            tracing::warn!(
                correlation_id = call.correlation_id,
                tenant = call.tenant.unwrap_or("-"),
                error = %e,
                "recording usage and audit failed; the budget may undercount this call"
            );
        }
    }
}
