//! Tenant accounting: token budgets per tenant and period
//! (`soapgate_budgets`), one usage row per model call (`soapgate_usage`)
//! and the append-only audit trail (`soapgate_audit`).
//!
//! Budgets live here, not in memory, so every instance sharing the
//! database sees the same counts. A charge is one atomic upsert that adds
//! to the counter (`ON CONFLICT ... DO UPDATE SET tokens = tokens + ?` on
//! SQLite and PostgreSQL, `ON DUPLICATE KEY UPDATE` on MySQL/MariaDB), never
//! a read-modify-write, so concurrent charges from many instances all
//! count. A call's usage rows, its charge and its audit row are written in
//! one transaction.
//!
//! Before its model calls a call holds the most tokens it can use
//! (`soapgate_budget_holds`, [`Store::hold_budget`]): one transaction locks
//! the tenant's day and month rows (an upsert that changes nothing: the
//! same row lock a charge takes, so holds and charges of a tenant queue
//! behind each other on every backend, always day before month), reads
//! what is charged and held, and inserts the hold only if it fits. Its
//! usage rows settle it: the same transaction that charges the tokens used
//! deletes the hold. A hold whose call never settled stops counting when it
//! expires.

use super::{Result, Store, on_backend_read};

/// One model call, as `soapgate_usage` keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    pub at_ms: i64,
    pub tenant: Option<String>,
    pub service: String,
    pub operation: String,
    pub model: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    /// Millionths of the price table's currency unit.
    pub cost_micros: i64,
    pub latency_ms: i64,
    /// `ok`, or the fault code the call ended in.
    pub outcome: String,
    pub correlation_id: String,
    /// Answered by a batch-inference job (and priced at batch price), not
    /// on demand.
    pub batch: bool,
    /// The step of a multi-step operation the call was made for; `None`
    /// for a single-call operation.
    pub step: Option<String>,
}

/// One SOAP call or job, as `soapgate_audit` keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub at_ms: i64,
    pub tenant: Option<String>,
    /// Who presented the credentials (user name, or `api-key:` and the
    /// first characters of the key's hash), when any were presented.
    pub principal: Option<String>,
    /// `http` or `job`.
    pub source: String,
    pub service: String,
    pub operation: Option<String>,
    pub correlation_id: String,
    pub job_id: Option<String>,
    /// `ok`, `queued`, or the fault code.
    pub outcome: String,
    /// Hex SHA-256 of the request body (HTTP) or the job payload.
    pub payload_sha256: Option<String>,
    /// The request and response payloads, only when configured.
    pub request_text: Option<String>,
    pub response_text: Option<String>,
    /// The steps a multi-step call ran, e.g. `classify, lines×2; skipped:
    /// extract`; `None` for a single-call operation.
    pub steps: Option<String>,
}

/// Tokens to add to a tenant's day and month counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub tenant: String,
    /// `YYYY-MM-DD`.
    pub day: String,
    /// `YYYY-MM`.
    pub month: String,
    pub tokens: i64,
    /// The call's [`BudgetHold`], settled by this charge.
    pub hold: Option<String>,
}

/// Tokens set aside for one call, until its usage rows settle it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetHold {
    pub id: String,
    pub tenant: String,
    /// `YYYY-MM-DD`.
    pub day: String,
    /// `YYYY-MM`.
    pub month: String,
    pub tokens: i64,
    /// How long the hold counts if its call never settles it.
    pub ttl_ms: i64,
}

/// Why a hold did not fit: the period, its limit, and what is charged and
/// held against it already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetShort {
    /// `day` or `month`.
    pub period: &'static str,
    pub limit: i64,
    pub charged: i64,
    pub held: i64,
}

/// How [`Store::usage_totals_by`] groups usage rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UsageBy {
    /// Per tenant and model.
    #[default]
    Model,
    /// Per tenant, service, operation, step and model: what each step of
    /// a multi-step operation cost.
    Step,
}

/// `soapgate usage`: totals per tenant and model (or per step too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageTotal {
    /// Empty for calls made without a tenant.
    pub tenant: String,
    /// The service, operation and step totalled, with [`UsageBy::Step`];
    /// empty otherwise (and the step empty for a single-call operation).
    pub service: String,
    pub operation: String,
    pub step: String,
    pub model: String,
    pub calls: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_micros: i64,
    /// Of those, the calls a batch answered, their tokens and cost.
    pub batch_calls: i64,
    pub batch_input_tokens: i64,
    pub batch_output_tokens: i64,
    pub batch_cost_micros: i64,
}

/// A row of [`Store::usage_totals_by`]' query: tenant, service,
/// operation, step, model, then calls, input and output tokens and cost,
/// all and answered by batches.
type TotalRow = (
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
);

impl Store {
    /// Tokens a tenant has used in each of these periods (0 for a period
    /// not charged yet).
    pub async fn budget_used(&self, tenant: &str, periods: &[&str]) -> Result<Vec<i64>> {
        if periods.is_empty() {
            return Ok(Vec::new());
        }
        // One round trip for every period: this read is on the path of
        // each call of a tenant with a budget.
        let marks = vec!["?"; periods.len()].join(", ");
        let rows: Vec<(String, i64)> = on_backend_read!(self, |pool, dollar| {
            let sql = super::jobs::numbered(
                dollar,
                &format!(
                    "SELECT period, tokens FROM soapgate_budgets \
                     WHERE tenant = ? AND period IN ({marks})"
                ),
            );
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(tenant);
            for period in periods {
                query = query.bind(*period);
            }
            query.fetch_all(pool).await?
        });
        Ok(periods
            .iter()
            .map(|p| {
                rows.iter()
                    .find(|(period, _)| period == p)
                    .map_or(0, |(_, n)| *n)
            })
            .collect())
    }

    /// Holds `hold.tokens` against the tenant's day and month budgets
    /// (`limits`: day, month; `None` is no limit) if they fit beside what is
    /// charged and held already: `Ok(Err(short))` names the period they do
    /// not fit. Expired holds of the tenant are deleted on the way.
    pub async fn hold_budget(
        &self,
        hold: &BudgetHold,
        limits: [Option<i64>; 2],
    ) -> Result<std::result::Result<(), BudgetShort>> {
        let now = self.now_ms();
        // The upsert changes nothing but takes the row's write lock (and
        // creates the row for a tenant's first call of the period).
        const TOUCH_DOLLAR: &str = "INSERT INTO soapgate_budgets (tenant, period, tokens, \
             updated_at_ms) VALUES ($1, $2, 0, $3) ON CONFLICT (tenant, period) DO UPDATE \
             SET tokens = soapgate_budgets.tokens";
        const TOUCH_QMARK: &str = "INSERT INTO soapgate_budgets (tenant, period, tokens, \
             updated_at_ms) VALUES (?, ?, 0, ?) ON DUPLICATE KEY UPDATE tokens = tokens";
        macro_rules! hold_in {
            ($tx:expr, $dollar:expr, $touch:expr) => {{
                let periods = [("day", hold.day.as_str()), ("month", hold.month.as_str())];
                let mut short = None;
                for ((name, period), limit) in periods.into_iter().zip(limits) {
                    sqlx::query($touch)
                        .bind(hold.tenant.as_str())
                        .bind(period)
                        .bind(now)
                        .execute(&mut *$tx)
                        .await?;
                    let Some(limit) = limit else { continue };
                    let sql = super::jobs::numbered(
                        $dollar,
                        "SELECT tokens FROM soapgate_budgets WHERE tenant = ? AND period = ?",
                    );
                    let charged: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                        .bind(hold.tenant.as_str())
                        .bind(period)
                        .fetch_one(&mut *$tx)
                        .await?;
                    // `day` and `month` are column names too.
                    let sql = super::jobs::numbered(
                        $dollar,
                        &format!(
                            "SELECT CAST(COALESCE(SUM(tokens), 0) AS {}) FROM \
                             soapgate_budget_holds WHERE tenant = ? AND {name} = ? \
                             AND expires_at_ms > ?",
                            if $dollar { "BIGINT" } else { "SIGNED" }
                        ),
                    );
                    let held: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                        .bind(hold.tenant.as_str())
                        .bind(period)
                        .bind(now)
                        .fetch_one(&mut *$tx)
                        .await?;
                    if charged.saturating_add(held).saturating_add(hold.tokens) > limit {
                        short = Some(BudgetShort {
                            period: name,
                            limit,
                            charged,
                            held,
                        });
                        break;
                    }
                }
                if short.is_none() {
                    let sql = super::jobs::numbered(
                        $dollar,
                        "DELETE FROM soapgate_budget_holds WHERE tenant = ? AND expires_at_ms <= ?",
                    );
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(hold.tenant.as_str())
                        .bind(now)
                        .execute(&mut *$tx)
                        .await?;
                    let sql = super::jobs::numbered(
                        $dollar,
                        "INSERT INTO soapgate_budget_holds (id, tenant, day, month, tokens, \
                         expires_at_ms) VALUES (?, ?, ?, ?, ?, ?)",
                    );
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(hold.id.as_str())
                        .bind(hold.tenant.as_str())
                        .bind(hold.day.as_str())
                        .bind(hold.month.as_str())
                        .bind(hold.tokens)
                        .bind(now.saturating_add(hold.ttl_ms))
                        .execute(&mut *$tx)
                        .await?;
                }
                short
            }};
        }
        // A refused hold rolls back (its touch included) when `tx` drops.
        let short = match &self.pool {
            super::Pool::Sqlite(pool) => {
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let short = hold_in!(tx, true, TOUCH_DOLLAR);
                if short.is_none() {
                    tx.commit().await?;
                }
                short
            }
            super::Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let short = hold_in!(tx, true, TOUCH_DOLLAR);
                if short.is_none() {
                    tx.commit().await?;
                }
                short
            }
            super::Pool::MySql(pool) => {
                let mut tx = pool.begin().await?;
                let short = hold_in!(tx, false, TOUCH_QMARK);
                if short.is_none() {
                    tx.commit().await?;
                }
                short
            }
        };
        Ok(short.map_or(Ok(()), Err))
    }

    /// Tokens held for calls not settled yet, per period (tests and the
    /// admin side read them).
    pub async fn budget_held(&self, tenant: &str) -> Result<i64> {
        let now = self.now_ms();
        on_backend_read!(self, |pool, dollar| {
            let sql = super::jobs::numbered(
                dollar,
                &format!(
                    "SELECT CAST(COALESCE(SUM(tokens), 0) AS {}) FROM soapgate_budget_holds \
                     WHERE tenant = ? AND expires_at_ms > ?",
                    if dollar { "BIGINT" } else { "SIGNED" }
                ),
            );
            Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(tenant)
                .bind(now)
                .fetch_one(pool)
                .await?)
        })
    }

    /// Writes a call's usage rows, its budget charge and its audit row, in
    /// one transaction; the charge settles the call's hold, if it had one.
    pub async fn record_call(
        &self,
        usage: &[UsageRow],
        charge: Option<&Charge>,
        audit: &AuditRow,
    ) -> Result<()> {
        let now = self.now_ms();
        macro_rules! write_all {
            ($tx:expr, $dollar:expr, $upsert:expr) => {{
                for u in usage {
                    let sql = super::jobs::numbered(
                        $dollar,
                        "INSERT INTO soapgate_usage (at_ms, tenant, service, operation, model, \
                         input_tokens, output_tokens, cost_micros, latency_ms, outcome, \
                         correlation_id, batch, step) \
                         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    );
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(u.at_ms)
                        .bind(u.tenant.as_deref())
                        .bind(u.service.as_str())
                        .bind(u.operation.as_str())
                        .bind(u.model.as_str())
                        .bind(u.input_tokens)
                        .bind(u.output_tokens)
                        .bind(u.cost_micros)
                        .bind(u.latency_ms)
                        .bind(u.outcome.as_str())
                        .bind(u.correlation_id.as_str())
                        .bind(i16::from(u.batch))
                        .bind(u.step.as_deref())
                        .execute(&mut *$tx)
                        .await?;
                }
                if let Some(id) = charge.and_then(|c| c.hold.as_deref()) {
                    let sql = super::jobs::numbered(
                        $dollar,
                        "DELETE FROM soapgate_budget_holds WHERE id = ?",
                    );
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(id)
                        .execute(&mut *$tx)
                        .await?;
                }
                if let Some(c) = charge.filter(|c| c.tokens > 0) {
                    for period in [c.day.as_str(), c.month.as_str()] {
                        sqlx::query($upsert)
                            .bind(c.tenant.as_str())
                            .bind(period)
                            .bind(c.tokens)
                            .bind(now)
                            .execute(&mut *$tx)
                            .await?;
                    }
                }
                let sql = super::jobs::numbered(
                    $dollar,
                    "INSERT INTO soapgate_audit (at_ms, tenant, principal, source, service, \
                     operation, correlation_id, job_id, outcome, payload_sha256, request_text, \
                     response_text, steps) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(audit.at_ms)
                    .bind(audit.tenant.as_deref())
                    .bind(audit.principal.as_deref())
                    .bind(audit.source.as_str())
                    .bind(audit.service.as_str())
                    .bind(audit.operation.as_deref())
                    .bind(audit.correlation_id.as_str())
                    .bind(audit.job_id.as_deref())
                    .bind(audit.outcome.as_str())
                    .bind(audit.payload_sha256.as_deref())
                    .bind(audit.request_text.as_deref())
                    .bind(audit.response_text.as_deref())
                    .bind(audit.steps.as_deref())
                    .execute(&mut *$tx)
                    .await?;
            }};
        }
        // The upsert adds in the database: concurrent charges from any
        // number of instances all count.
        const UPSERT_DOLLAR: &str = "INSERT INTO soapgate_budgets (tenant, period, tokens, \
             updated_at_ms) VALUES ($1, $2, $3, $4) ON CONFLICT (tenant, period) DO UPDATE \
             SET tokens = soapgate_budgets.tokens + excluded.tokens, \
             updated_at_ms = excluded.updated_at_ms";
        const UPSERT_QMARK: &str = "INSERT INTO soapgate_budgets (tenant, period, tokens, \
             updated_at_ms) VALUES (?, ?, ?, ?) ON DUPLICATE KEY UPDATE \
             tokens = tokens + VALUES(tokens), updated_at_ms = VALUES(updated_at_ms)";
        match &self.pool {
            super::Pool::Sqlite(pool) => {
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                write_all!(tx, true, UPSERT_DOLLAR);
                tx.commit().await?;
            }
            super::Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                write_all!(tx, true, UPSERT_DOLLAR);
                tx.commit().await?;
            }
            super::Pool::MySql(pool) => {
                let mut tx = pool.begin().await?;
                write_all!(tx, false, UPSERT_QMARK);
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Usage since `since_ms`, totalled per tenant and model (and the part
    /// of it batches answered), optionally for one tenant; ordered by
    /// tenant, then model.
    pub async fn usage_totals(
        &self,
        since_ms: i64,
        tenant: Option<&str>,
    ) -> Result<Vec<UsageTotal>> {
        self.usage_totals_by(since_ms, tenant, UsageBy::Model).await
    }

    /// Usage since `since_ms`, totalled as `by` says (and the part of it
    /// batches answered), optionally for one tenant; ordered by the
    /// grouping's columns.
    pub async fn usage_totals_by(
        &self,
        since_ms: i64,
        tenant: Option<&str>,
        by: UsageBy,
    ) -> Result<Vec<UsageTotal>> {
        // PostgreSQL groups by no constant: the model grouping's empty
        // service, operation and step are selected only.
        let (keys, group) = match by {
            UsageBy::Model => ("'', '', ''", ""),
            UsageBy::Step => (
                "service, operation, COALESCE(step, '')",
                "service, operation, COALESCE(step, ''), ",
            ),
        };
        let rows: Vec<TotalRow> = on_backend_read!(self, |pool, dollar| {
            let sql = super::jobs::numbered(
                dollar,
                &format!(
                    "SELECT COALESCE(tenant, ''), {keys}, model, COUNT(*), \
                 CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT), \
                 CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT), \
                 CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT), \
                 CAST(COALESCE(SUM(batch), 0) AS BIGINT), \
                 CAST(COALESCE(SUM(CASE WHEN batch = 1 THEN input_tokens ELSE 0 END), 0) AS BIGINT), \
                 CAST(COALESCE(SUM(CASE WHEN batch = 1 THEN output_tokens ELSE 0 END), 0) AS BIGINT), \
                 CAST(COALESCE(SUM(CASE WHEN batch = 1 THEN cost_micros ELSE 0 END), 0) AS BIGINT) \
                 FROM soapgate_usage WHERE at_ms >= ? AND (? IS NULL OR tenant = ?) \
                 GROUP BY COALESCE(tenant, ''), {group}model ORDER BY 1, 2, 3, 4, 5"
                ),
            );
            let sql = if dollar {
                sql
            } else {
                // MySQL casts to SIGNED, not BIGINT.
                sql.replace("AS BIGINT", "AS SIGNED")
            };
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(since_ms)
                .bind(tenant)
                .bind(tenant)
                .fetch_all(pool)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(
                |(
                    tenant,
                    service,
                    operation,
                    step,
                    model,
                    calls,
                    input_tokens,
                    output_tokens,
                    cost_micros,
                    batch_calls,
                    batch_input_tokens,
                    batch_output_tokens,
                    batch_cost_micros,
                )| UsageTotal {
                    tenant,
                    service,
                    operation,
                    step,
                    model,
                    calls,
                    input_tokens,
                    output_tokens,
                    cost_micros,
                    batch_calls,
                    batch_input_tokens,
                    batch_output_tokens,
                    batch_cost_micros,
                },
            )
            .collect())
    }

    /// Audit rows, oldest first: each with the steps its call ran (tests
    /// and the admin side read them; nothing in soapgate changes them).
    pub async fn audit_steps(&self) -> Result<Vec<(String, Option<String>)>> {
        on_backend_read!(self, |pool, _dollar| {
            Ok(
                sqlx::query_as("SELECT correlation_id, steps FROM soapgate_audit ORDER BY id")
                    .fetch_all(pool)
                    .await?,
            )
        })
    }

    /// Audit rows, oldest first, with their outcome (tests and the admin
    /// side read them; nothing in soapgate changes them).
    pub async fn audit_outcomes(&self) -> Result<Vec<(Option<String>, String)>> {
        on_backend_read!(self, |pool, _dollar| {
            Ok(
                sqlx::query_as("SELECT tenant, outcome FROM soapgate_audit ORDER BY id")
                    .fetch_all(pool)
                    .await?,
            )
        })
    }
}
