//! The legacy polling tables: batch jobs insert into `soapgate_requests`
//! and read `soapgate_results`. Their column names are a contract with code
//! we will never see (docs/polling-tables.md); change them only by adding.
//!
//! A request row is picked up and turned into a job in one transaction, so
//! a row is either still waiting or already a durable job: a worker that
//! dies between the two cannot lose it. The job's idempotency key is the
//! row id, so even a replayed pickup could not enqueue it twice. Results are
//! inserted once per correlation id; a second write is refused by the
//! unique key, never duplicated.
//!
//! Mappings may declare flat result columns (e.g. `category`,
//! `confidence`) for batch jobs that cannot parse XML: workers add them to
//! `soapgate_results` as nullable text columns at start
//! ([`Store::ensure_result_columns`]) and write them with the result row
//! (see `Store::complete`).

use sqlx::{ColumnIndex, Decode, Row, Type};

use super::jobs::check_result_column;
use super::jobs::{INSERT_JOB_DOLLAR, INSERT_JOB_QMARK, JobId, JobSource, NewJob, bind_new_job};
use super::outbox::{INSERT_OUTBOX_DOLLAR, INSERT_OUTBOX_QMARK};
use super::{Result, Store, StoreError, on_backend, on_backend_read};

/// A row to insert into `soapgate_requests`, as a batch job would; soapgate
/// itself uses this only in tests and demos.
#[derive(Debug, Clone)]
pub struct NewRequest {
    pub correlation_id: String,
    pub service: String,
    pub operation: String,
    /// Request payload XML, or a whole SOAP envelope.
    pub payload: String,
    pub tenant: Option<String>,
}

/// A picked-up row of `soapgate_requests`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRow {
    pub id: i64,
    pub correlation_id: String,
    pub service: String,
    pub operation: String,
    pub payload: String,
    pub tenant: Option<String>,
}

/// A request row and the job it became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedRequest {
    pub request: RequestRow,
    pub job_id: JobId,
    /// The job waits for a batch (`Store::with_batch_holds`): it is not
    /// due yet, so no worker need look for it now.
    pub held: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultStatus {
    Done,
    Failed,
}

impl ResultStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ResultStatus::Done => "DONE",
            ResultStatus::Failed => "FAILED",
        }
    }

    fn parse(s: &str) -> Result<ResultStatus> {
        match s {
            "DONE" => Ok(ResultStatus::Done),
            "FAILED" => Ok(ResultStatus::Failed),
            other => Err(StoreError::Corrupt {
                column: "status",
                value: other.to_owned(),
            }),
        }
    }
}

/// A row of `soapgate_results` (its timestamps are the database's own and
/// are read by batch jobs, not by soapgate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultRow {
    pub correlation_id: String,
    pub status: ResultStatus,
    /// The response payload XML, when DONE.
    pub payload: Option<String>,
    pub fault_code: Option<String>,
    pub fault_text: Option<String>,
    pub model: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
}

fn request_from_row<'r, R>(row: &'r R) -> Result<RequestRow>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(RequestRow {
        id: row.try_get("id")?,
        correlation_id: row.try_get("correlation_id")?,
        service: row.try_get("service")?,
        operation: row.try_get("operation")?,
        payload: row.try_get("payload")?,
        tenant: row.try_get("tenant")?,
    })
}

fn result_from_row<'r, R>(row: &'r R) -> Result<ResultRow>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    let status: String = row.try_get("status")?;
    Ok(ResultRow {
        correlation_id: row.try_get("correlation_id")?,
        status: ResultStatus::parse(&status)?,
        payload: row.try_get("payload")?,
        fault_code: row.try_get("fault_code")?,
        fault_text: row.try_get("fault_text")?,
        model: row.try_get("model")?,
        input_tokens: row.try_get("input_tokens")?,
        output_tokens: row.try_get("output_tokens")?,
    })
}

/// The job a request row becomes.
fn job_for(request: &RequestRow) -> NewJob {
    NewJob {
        service: request.service.clone(),
        operation: request.operation.clone(),
        correlation_id: request.correlation_id.clone(),
        payload: request.payload.clone(),
        idempotency_key: Some(super::keys::request_row(request.id)),
        source: JobSource::Requests,
        tenant: request.tenant.clone(),
    }
}

const REQUEST_COLUMNS_SELECT_SQLITE: &str = "UPDATE soapgate_requests \
     SET picked_up_at = strftime('%Y-%m-%d %H:%M:%f', 'now'), picked_up_by = $1, job_id = $2 \
     WHERE id = (SELECT id FROM soapgate_requests WHERE picked_up_at IS NULL \
                 ORDER BY id LIMIT 1) \
     RETURNING id, correlation_id, service, operation, payload, tenant";

impl Store {
    /// Inserts a request row the way a batch job does.
    pub async fn insert_request(&self, request: &NewRequest) -> Result<()> {
        on_backend!(self, |pool, dollar| {
            let sql = if dollar {
                "INSERT INTO soapgate_requests (correlation_id, service, operation, payload, tenant) \
                 VALUES ($1, $2, $3, $4, $5)"
            } else {
                "INSERT INTO soapgate_requests (correlation_id, service, operation, payload, tenant) \
                 VALUES (?, ?, ?, ?, ?)"
            };
            sqlx::query(sql)
                .bind(request.correlation_id.as_str())
                .bind(request.service.as_str())
                .bind(request.operation.as_str())
                .bind(request.payload.as_str())
                .bind(request.tenant.as_deref())
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Picks up the oldest request row nobody has picked up, marks it with
    /// `worker_id`, and enqueues its job, all in one transaction. Each row is
    /// handed out exactly once, in insertion order.
    pub async fn claim_request(&self, worker_id: &str) -> Result<Option<ClaimedRequest>> {
        let now = self.now_ms();
        let job_id = JobId::generate();
        let request = match &self.pool {
            super::Pool::Sqlite(pool) => {
                // A read first, so polling an empty table never takes the
                // write lock the batch side needs for its inserts.
                let waiting: Option<i64> = sqlx::query_scalar(
                    "SELECT id FROM soapgate_requests WHERE picked_up_at IS NULL LIMIT 1",
                )
                .fetch_optional(pool)
                .await?;
                if waiting.is_none() {
                    return Ok(None);
                }
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let row = sqlx::query(REQUEST_COLUMNS_SELECT_SQLITE)
                    .bind(worker_id)
                    .bind(job_id.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                let request = row.as_ref().map(request_from_row).transpose()?;
                if let Some(request) = &request {
                    let job = job_for(request);
                    bind_new_job!(self, sqlx::query(INSERT_JOB_DOLLAR), job_id, job, now)
                        .execute(&mut *tx)
                        .await?;
                    if self.outbox {
                        sqlx::query(INSERT_OUTBOX_DOLLAR)
                            .bind(job_id.as_str())
                            .bind(now)
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                tx.commit().await?;
                request
            }
            super::Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let row = sqlx::query(
                    "SELECT id, correlation_id, service, operation, payload, tenant \
                     FROM soapgate_requests WHERE picked_up_at IS NULL \
                     ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
                )
                .fetch_optional(&mut *tx)
                .await?;
                let request = row.as_ref().map(request_from_row).transpose()?;
                if let Some(request) = &request {
                    sqlx::query(
                        "UPDATE soapgate_requests SET picked_up_at = now(), \
                         picked_up_by = $1, job_id = $2 WHERE id = $3",
                    )
                    .bind(worker_id)
                    .bind(job_id.as_str())
                    .bind(request.id)
                    .execute(&mut *tx)
                    .await?;
                    let job = job_for(request);
                    bind_new_job!(self, sqlx::query(INSERT_JOB_DOLLAR), job_id, job, now)
                        .execute(&mut *tx)
                        .await?;
                    if self.outbox {
                        sqlx::query(INSERT_OUTBOX_DOLLAR)
                            .bind(job_id.as_str())
                            .bind(now)
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                tx.commit().await?;
                request
            }
            super::Pool::MySql(pool) => {
                let mut tx = pool.begin().await?;
                let row = sqlx::query(
                    "SELECT id, correlation_id, service, operation, payload, tenant \
                     FROM soapgate_requests WHERE picked_up_at IS NULL \
                     ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
                )
                .fetch_optional(&mut *tx)
                .await?;
                let request = row.as_ref().map(request_from_row).transpose()?;
                if let Some(request) = &request {
                    sqlx::query(
                        "UPDATE soapgate_requests SET picked_up_at = CURRENT_TIMESTAMP(6), \
                         picked_up_by = ?, job_id = ? WHERE id = ?",
                    )
                    .bind(worker_id)
                    .bind(job_id.as_str())
                    .bind(request.id)
                    .execute(&mut *tx)
                    .await?;
                    let job = job_for(request);
                    bind_new_job!(self, sqlx::query(INSERT_JOB_QMARK), job_id, job, now)
                        .execute(&mut *tx)
                        .await?;
                    if self.outbox {
                        sqlx::query(INSERT_OUTBOX_QMARK)
                            .bind(job_id.as_str())
                            .bind(now)
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                tx.commit().await?;
                request
            }
        };
        Ok(request.map(|request| ClaimedRequest {
            held: self.holds_jobs_of(&request.service, &request.operation),
            request,
            job_id,
        }))
    }

    /// Writes the result for `result.correlation_id` unless one exists.
    /// True when this call inserted it; false when a result was already
    /// there (that one stands, unchanged). Unfenced: the workers write
    /// results only with the fenced end of their job (`finish_all`), so this
    /// exists for tests of the table's uniqueness alone.
    #[cfg(any(test, feature = "test-support"))]
    pub async fn write_result(&self, result: &ResultRow) -> Result<bool> {
        let inserted = on_backend!(self, |pool, dollar| {
            let sql = if dollar {
                "INSERT INTO soapgate_results (correlation_id, status, payload, fault_code, \
                 fault_text, model, input_tokens, output_tokens) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            } else {
                "INSERT INTO soapgate_results (correlation_id, status, payload, fault_code, \
                 fault_text, model, input_tokens, output_tokens) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            };
            sqlx::query(sql)
                .bind(result.correlation_id.as_str())
                .bind(result.status.as_str())
                .bind(result.payload.as_deref())
                .bind(result.fault_code.as_deref())
                .bind(result.fault_text.as_deref())
                .bind(result.model.as_deref())
                .bind(result.input_tokens)
                .bind(result.output_tokens)
                .execute(pool)
                .await
                .map(|_| ())
        });
        match inserted {
            Ok(_) => Ok(true),
            // The unique key on correlation_id is what makes the write
            // idempotent across racing workers; no check-then-insert window.
            Err(e)
                if e.as_database_error()
                    .is_some_and(|d| d.is_unique_violation()) =>
            {
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The result row for a correlation id.
    pub async fn get_result(&self, correlation_id: &str) -> Result<Option<ResultRow>> {
        on_backend_read!(self, |pool, dollar| {
            let sql = if dollar {
                "SELECT correlation_id, status, payload, fault_code, fault_text, model, \
                 input_tokens, output_tokens FROM soapgate_results WHERE correlation_id = $1"
            } else {
                "SELECT correlation_id, status, payload, fault_code, fault_text, model, \
                 input_tokens, output_tokens FROM soapgate_results WHERE correlation_id = ?"
            };
            let row = sqlx::query(sql)
                .bind(correlation_id)
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(result_from_row).transpose()
        })
    }

    /// How many result rows exist for a correlation id (tests assert it
    /// never exceeds one).
    #[cfg(any(test, feature = "test-support"))]
    pub async fn count_results(&self, correlation_id: &str) -> Result<i64> {
        let n: i64 = on_backend_read!(self, |pool, dollar| {
            let sql = if dollar {
                "SELECT COUNT(*) FROM soapgate_results WHERE correlation_id = $1"
            } else {
                "SELECT COUNT(*) FROM soapgate_results WHERE correlation_id = ?"
            };
            sqlx::query_scalar(sql)
                .bind(correlation_id)
                .fetch_one(pool)
                .await?
        });
        Ok(n)
    }

    /// Adds each of `columns` that `soapgate_results` lacks, as a nullable
    /// text column (the flat result columns mappings declare). Idempotent;
    /// a column added meanwhile by another worker is not an error. Returns
    /// the columns this call added.
    pub async fn ensure_result_columns(&self, columns: &[String]) -> Result<Vec<String>> {
        for column in columns {
            check_result_column(column)?;
        }
        let mut added = Vec::new();
        for column in columns {
            if self.result_columns().await?.iter().any(|c| c == column) {
                continue;
            }
            // The name passed `check_result_column`: `[a-z_][a-z0-9_]*`.
            let sql = format!("ALTER TABLE soapgate_results ADD COLUMN {column} TEXT");
            let altered = on_backend!(self, |pool, _dollar| {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(pool)
                    .await
                    .map(|_| ())
            });
            match altered {
                Ok(_) => added.push(column.clone()),
                // Another worker starting at the same time added it.
                Err(e) if self.result_columns().await?.iter().any(|c| c == column) => {
                    tracing::debug!(column, error = %e, "result column added concurrently");
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(added)
    }

    /// The column names of `soapgate_results`, lower-cased.
    pub async fn result_columns(&self) -> Result<Vec<String>> {
        let names: Vec<String> = match &self.pool {
            super::Pool::Sqlite(pool) => {
                sqlx::query_scalar("SELECT name FROM pragma_table_info('soapgate_results')")
                    .fetch_all(pool)
                    .await?
            }
            super::Pool::Postgres(pool) => {
                sqlx::query_scalar(
                    "SELECT column_name::text FROM information_schema.columns \
                     WHERE table_schema = current_schema() AND table_name = 'soapgate_results'",
                )
                .fetch_all(pool)
                .await?
            }
            super::Pool::MySql(pool) => {
                // CAST: information_schema columns may come back as binary.
                sqlx::query_scalar(
                    "SELECT CAST(column_name AS CHAR(64)) FROM information_schema.columns \
                     WHERE table_schema = DATABASE() AND table_name = 'soapgate_results'",
                )
                .fetch_all(pool)
                .await?
            }
        };
        Ok(names.into_iter().map(|n| n.to_ascii_lowercase()).collect())
    }
}
