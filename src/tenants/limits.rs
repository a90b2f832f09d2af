//! Per-tenant limits: the request rate and tokens per minute (checked
//! here, kept by the tenant state of `cluster/`: this process's governor
//! limiters, or Redis shared by every instance) and the token budgets per
//! UTC day and month (in the database, so every instance sees the same
//! counts).
//!
//! In this process, each tenant has its own direct governor limiter rather
//! than one keyed limiter: a keyed limiter applies a single quota to every
//! key, and tenants have quotas of their own. The set of tenants is fixed
//! at start, so the map never grows.
//!
//! Budgets are reserved, not overshot: before its model calls a call holds
//! the most tokens it can use against the tenant's day and month budgets
//! in the database (`Store::hold_budget`), and is refused when they do not
//! fit beside what is charged and held already; its usage rows settle the
//! hold with the tokens used. Calls admitted at the same moment, on any
//! number of instances, together never hold more than a budget.

use std::num::NonZeroU32;
use std::time::Duration;

use anyhow::bail;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use time::OffsetDateTime;

use super::Tenants;
use crate::error::GatewayError;
use crate::store::{BudgetHold, Store};

pub(super) struct Limiter {
    limiter: DefaultDirectRateLimiter,
    clock: DefaultClock,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter").finish_non_exhaustive()
    }
}

/// A tenant's request rate as configured: (per minute, burst), checked;
/// `None` when no rate is set.
pub(super) fn request_quota(
    per_minute: Option<u32>,
    burst: Option<u32>,
) -> anyhow::Result<Option<(u32, u32)>> {
    let Some(per_minute) = per_minute else {
        if burst.is_some() {
            bail!("burst is set without requests_per_minute");
        }
        return Ok(None);
    };
    if per_minute == 0 {
        bail!("requests_per_minute must be at least 1 (leave it out for no limit)");
    }
    // Default burst: one second's worth, at least one request.
    let burst = burst.unwrap_or(per_minute.div_ceil(60));
    if burst == 0 {
        bail!("burst must be at least 1");
    }
    Ok(Some((per_minute, burst)))
}

/// A tenant's tokens per minute as configured, checked.
pub(super) fn tokens_quota(per_minute: Option<u64>) -> anyhow::Result<Option<u64>> {
    if per_minute == Some(0) {
        bail!("tokens_per_minute must be at least 1 (leave it out for no limit)");
    }
    Ok(per_minute)
}

impl Limiter {
    /// A limiter of a quota [`request_quota`] checked (0 counts as 1).
    pub(super) fn new(per_minute: u32, burst: u32) -> Limiter {
        let rate = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        Limiter {
            limiter: RateLimiter::direct(Quota::per_minute(rate).allow_burst(burst)),
            clock: DefaultClock::default(),
        }
    }

    /// Ok, or how long until a request would be let through.
    pub(super) fn check(&self) -> Result<(), Duration> {
        self.limiter
            .check()
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

/// The budget periods containing `now`: (`YYYY-MM-DD`, `YYYY-MM`), UTC.
pub(super) fn periods(now: OffsetDateTime) -> (String, String) {
    let d = now.to_offset(time::UtcOffset::UTC).date();
    let month = format!("{:04}-{:02}", d.year(), u8::from(d.month()));
    (format!("{month}-{:02}", d.day()), month)
}

impl Tenants {
    /// Refuses a tenant whose day or month budget is used up. A tenant
    /// without budgets passes without a database read.
    pub async fn check_budget(
        &self,
        store: Option<&Store>,
        tenant: &str,
    ) -> Result<(), GatewayError> {
        let Some(t) = self.by_name.get(tenant).map(|ix| &self.tenants[*ix]) else {
            return Ok(());
        };
        if t.tokens_per_day.is_none() && t.tokens_per_month.is_none() {
            return Ok(());
        }
        let Some(store) = store else {
            // Fail closed: a budget that cannot be read is not a free pass.
            return Err(GatewayError::Internal(format!(
                "tenant {tenant} has a token budget but no database is configured"
            )));
        };
        let (day, month) = periods(OffsetDateTime::now_utc());
        let used = store
            .budget_used(tenant, &[&day, &month])
            .await
            .map_err(|e| GatewayError::Internal(format!("reading the budget of {tenant}: {e}")))?;
        let over = |limit: Option<u64>, used: i64| {
            limit.is_some_and(|l| u64::try_from(used).unwrap_or(0) >= l)
        };
        if over(t.tokens_per_day, used[0]) {
            return Err(GatewayError::BudgetExhausted {
                tenant: tenant.to_string(),
                period: "day",
            });
        }
        if over(t.tokens_per_month, used[1]) {
            return Err(GatewayError::BudgetExhausted {
                tenant: tenant.to_string(),
                period: "month",
            });
        }
        Ok(())
    }
}

impl Tenants {
    /// Holds `tokens` (the most the call can use) against the tenant's
    /// budgets until [`Tenants::record`] settles them; refuses the call
    /// when they do not fit. `None`: the tenant has no budget, nothing is
    /// held (and nothing read).
    pub async fn reserve_budget(
        &self,
        store: Option<&Store>,
        tenant: &str,
        tokens: u64,
    ) -> Result<Option<String>, GatewayError> {
        let Some(t) = self.by_name.get(tenant).map(|ix| &self.tenants[*ix]) else {
            return Ok(None);
        };
        if t.tokens_per_day.is_none() && t.tokens_per_month.is_none() {
            return Ok(None);
        }
        let Some(store) = store else {
            return Err(GatewayError::Internal(format!(
                "tenant {tenant} has a token budget but no database is configured"
            )));
        };
        let (day, month) = periods(OffsetDateTime::now_utc());
        let hold = BudgetHold {
            id: uuid::Uuid::new_v4().to_string(),
            tenant: tenant.to_string(),
            day,
            month,
            tokens: i64::try_from(tokens).unwrap_or(i64::MAX),
            ttl_ms: i64::try_from(self.settings.budget_hold_secs.saturating_mul(1_000))
                .unwrap_or(i64::MAX),
        };
        let limit = |l: Option<u64>| l.map(|l| i64::try_from(l).unwrap_or(i64::MAX));
        match store
            .hold_budget(&hold, [limit(t.tokens_per_day), limit(t.tokens_per_month)])
            .await
        {
            Ok(Ok(())) => Ok(Some(hold.id)),
            Ok(Err(short)) => {
                tracing::info!(
                    tenant,
                    period = short.period,
                    limit = short.limit,
                    charged = short.charged,
                    held = short.held,
                    wanted = hold.tokens,
                    "budget cannot hold the call"
                );
                Err(GatewayError::BudgetExhausted {
                    tenant: tenant.to_string(),
                    period: short.period,
                })
            }
            Err(e) => Err(GatewayError::Internal(format!(
                "reserving the budget of {tenant}: {e}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_utc_day_and_month() {
        let t = OffsetDateTime::parse(
            "2026-03-01T00:30:00+02:00",
            &time::format_description::well_known::Rfc3339,
        )
        .expect("time");
        assert_eq!(periods(t), ("2026-02-28".into(), "2026-02".into()));
    }

    #[test]
    fn a_burst_is_let_through_then_refused_with_a_wait() {
        let (per_minute, burst) = request_quota(Some(60), Some(3))
            .expect("valid")
            .expect("some");
        let l = Limiter::new(per_minute, burst);
        for _ in 0..3 {
            assert!(l.check().is_ok());
        }
        let wait = l.check().expect_err("over");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(request_quota(Some(0), None).is_err());
        assert!(request_quota(None, Some(2)).is_err());
        assert_eq!(
            request_quota(Some(600), None).expect("valid"),
            Some((600, 10))
        );
        assert!(request_quota(None, None).expect("none").is_none());
        assert!(tokens_quota(Some(0)).is_err());
    }
}
