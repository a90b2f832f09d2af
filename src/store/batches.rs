//! Batches (`soapgate_batches`): jobs of an operation sent together to
//! batch inference. A batch is cut in one transaction that writes its row
//! and leases its jobs to it (`lease_owner = 'batch:{id}'`, a lease that
//! never expires), so no worker claims them and nothing has been sent yet.
//! Each step after that is a fenced update of the row, like a job's: the
//! driver holding the row's lease moves it on, and a driver that died
//! leaves it to the next whose claim finds the lease expired.
//!
//! Jobs leave a batch one by one: answered (their result written as any
//! job's, fenced by the token the cut gave them), or given back to the
//! on-demand queue ([`Store::return_batch_jobs`]). Their `batch_id` stays,
//! so a job is never batched twice.

use std::time::Duration;

use super::jobs::{ClaimedJob, JobId, job_columns, job_from_row, numbered};
use super::{Result, Store, StoreError, duration_ms, on_backend, on_backend_read};

/// The lease of a job in a batch: it ends when the batch gives the job
/// back or answers it, never by time.
const BATCH_LEASE_UNTIL_MS: i64 = i64::MAX / 2;

/// Where a batch stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchStatus {
    /// Its jobs are leased to it; nothing sent yet.
    Cut,
    /// Its records are in S3.
    Uploaded,
    /// The service's job exists (its ARN is kept); polled until it ends.
    Submitted,
    /// The service's job ended and every job left the batch.
    Done,
    /// Given up (the service refused or failed the job): every job went
    /// back to the on-demand queue.
    Failed,
}

impl BatchStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BatchStatus::Cut => "CUT",
            BatchStatus::Uploaded => "UPLOADED",
            BatchStatus::Submitted => "SUBMITTED",
            BatchStatus::Done => "DONE",
            BatchStatus::Failed => "FAILED",
        }
    }

    fn parse(s: &str) -> Result<BatchStatus> {
        Ok(match s {
            "CUT" => BatchStatus::Cut,
            "UPLOADED" => BatchStatus::Uploaded,
            "SUBMITTED" => BatchStatus::Submitted,
            "DONE" => BatchStatus::Done,
            "FAILED" => BatchStatus::Failed,
            other => {
                return Err(StoreError::Corrupt {
                    column: "status",
                    value: other.to_owned(),
                });
            }
        })
    }

    /// Whether the batch still has steps to take.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            BatchStatus::Cut | BatchStatus::Uploaded | BatchStatus::Submitted
        )
    }
}

/// A batch row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Also the service job's `clientRequestToken`.
    pub id: String,
    pub service: String,
    pub operation: String,
    pub model: String,
    pub status: BatchStatus,
    /// Jobs cut into the batch.
    pub records: i64,
    pub input_uri: Option<String>,
    pub output_uri: Option<String>,
    pub job_arn: Option<String>,
    /// Times the service's job was asked for its state.
    pub polls: i64,
    /// When the next step is due (epoch ms).
    pub next_step_ms: i64,
    /// Held with this token by whoever claimed the row last.
    pub fencing_token: i64,
    /// Jobs answered from the batch's output (counted from the jobs
    /// when the batch ends: [`Store::batch_tally`]).
    pub answered: i64,
    /// Jobs given back to the on-demand queue (the same).
    pub returned: i64,
    pub last_error: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// Which jobs a cut takes: those of one operation that wait for a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchCut<'a> {
    pub service: &'a str,
    pub operation: &'a str,
    pub model: &'a str,
    /// No batch is cut with fewer jobs waiting.
    pub min_records: usize,
    pub max_records: usize,
}

/// A step of a batch, written by [`Store::advance_batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchStep<'a> {
    pub status: BatchStatus,
    pub input_uri: Option<&'a str>,
    pub output_uri: Option<&'a str>,
    pub job_arn: Option<&'a str>,
    pub polls: i64,
    /// When the next step is due; the row's lease is let go so whoever
    /// claims it then takes the step.
    pub next_step_ms: i64,
    pub answered: i64,
    pub returned: i64,
    pub last_error: Option<&'a str>,
}

impl<'a> BatchStep<'a> {
    /// The batch as it is, due again at `next_step_ms`.
    pub fn of(batch: &'a Batch) -> BatchStep<'a> {
        BatchStep {
            status: batch.status,
            input_uri: batch.input_uri.as_deref(),
            output_uri: batch.output_uri.as_deref(),
            job_arn: batch.job_arn.as_deref(),
            polls: batch.polls,
            next_step_ms: batch.next_step_ms,
            answered: batch.answered,
            returned: batch.returned,
            last_error: batch.last_error.as_deref(),
        }
    }
}

const BATCH_COLUMNS: &str = "id, service, operation, model, status, records, input_uri, \
     output_uri, job_arn, polls, next_step_ms, fencing_token, answered, returned, last_error, \
     created_at_ms, updated_at_ms";

/// The cut's pick: the oldest jobs of the operation still held for a batch
/// (`run_after_ms` ahead: held at enqueue until their wait ends), never run
/// and never batched. Placeholders: service, operation, now, limit.
const PICK: &str = "SELECT seq FROM soapgate_jobs WHERE status = 'QUEUED' AND service = ? \
     AND operation = ? AND run_after_ms > ? AND attempts = 0 AND batch_id IS NULL \
     ORDER BY seq LIMIT ?";

fn batch_from_row<'r, R>(row: &'r R) -> Result<Batch>
where
    R: sqlx::Row,
    &'static str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let status: String = row.try_get("status")?;
    Ok(Batch {
        id: row.try_get("id")?,
        service: row.try_get("service")?,
        operation: row.try_get("operation")?,
        model: row.try_get("model")?,
        status: BatchStatus::parse(&status)?,
        records: row.try_get("records")?,
        input_uri: row.try_get("input_uri")?,
        output_uri: row.try_get("output_uri")?,
        job_arn: row.try_get("job_arn")?,
        polls: row.try_get("polls")?,
        next_step_ms: row.try_get("next_step_ms")?,
        fencing_token: row.try_get("fencing_token")?,
        answered: row.try_get("answered")?,
        returned: row.try_get("returned")?,
        last_error: row.try_get("last_error")?,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

/// The lease owner a batch's jobs carry.
fn owner_of(batch_id: &str) -> String {
    format!("batch:{batch_id}")
}

/// `seq IN (?, ?, ...)` for `n` values.
fn seq_list(n: usize) -> String {
    vec!["?"; n].join(", ")
}

impl Store {
    /// Cuts a batch of the operation's waiting jobs, oldest first, when at
    /// least `min_records` wait: in one transaction the batch row (status
    /// CUT, leased to `owner` for `lease`, due now) is written and up to
    /// `max_records` jobs are leased to it. `None` (and nothing written)
    /// when fewer wait.
    pub async fn cut_batch(
        &self,
        cut: &BatchCut<'_>,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<Batch>> {
        let now = self.now_ms();
        let id = uuid::Uuid::new_v4().to_string();
        let limit = i64::try_from(cut.max_records).unwrap_or(i64::MAX);
        let min = cut.min_records.max(1);
        let jobs_owner = owner_of(&id);
        let insert = "INSERT INTO soapgate_batches (id, service, operation, model, status, \
             records, polls, next_step_ms, lease_owner, lease_until_ms, fencing_token, answered, \
             returned, created_at_ms, updated_at_ms) \
             VALUES (?, ?, ?, ?, 'CUT', ?, 0, ?, ?, ?, 1, 0, 0, ?, ?)";
        let lease_until = now.saturating_add(duration_ms(lease));
        macro_rules! write_cut {
            ($tx:ident, $dollar:expr, $seqs:expr) => {{
                let seqs: Vec<i64> = $seqs;
                if seqs.len() < min {
                    return Ok(None);
                }
                let records = i64::try_from(seqs.len()).unwrap_or(i64::MAX);
                sqlx::query(sqlx::AssertSqlSafe(numbered($dollar, insert)))
                    .bind(id.as_str())
                    .bind(cut.service)
                    .bind(cut.operation)
                    .bind(cut.model)
                    .bind(records)
                    .bind(now)
                    .bind(owner)
                    .bind(lease_until)
                    .bind(now)
                    .bind(now)
                    .execute(&mut *$tx)
                    .await?;
                for chunk in seqs.chunks(500) {
                    let update = format!(
                        "UPDATE soapgate_jobs SET status = 'RUNNING', lease_owner = ?, \
                         lease_until_ms = ?, fencing_token = fencing_token + 1, batch_id = ?, \
                         updated_at_ms = ? WHERE status = 'QUEUED' AND seq IN ({})",
                        seq_list(chunk.len())
                    );
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(numbered($dollar, &update)))
                        .bind(jobs_owner.as_str())
                        .bind(BATCH_LEASE_UNTIL_MS)
                        .bind(id.as_str())
                        .bind(now);
                    for seq in chunk {
                        query = query.bind(seq);
                    }
                    query.execute(&mut *$tx).await?;
                }
            }};
        }
        match &self.pool {
            super::Pool::Sqlite(pool) => {
                // A read first: an operation with nothing waiting must not
                // take SQLite's one write lock on every tick.
                let waiting: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT COUNT(*) FROM ({})",
                    numbered(true, PICK)
                )))
                .bind(cut.service)
                .bind(cut.operation)
                .bind(now)
                .bind(limit)
                .fetch_one(self.readers.as_ref().unwrap_or(pool))
                .await?;
                if usize::try_from(waiting).unwrap_or(0) < min {
                    return Ok(None);
                }
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let seqs = sqlx::query_scalar(sqlx::AssertSqlSafe(numbered(true, PICK)))
                    .bind(cut.service)
                    .bind(cut.operation)
                    .bind(now)
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await?;
                write_cut!(tx, true, seqs);
                tx.commit().await?;
            }
            super::Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let pick = format!("{} FOR UPDATE SKIP LOCKED", numbered(true, PICK));
                let seqs = sqlx::query_scalar(sqlx::AssertSqlSafe(pick))
                    .bind(cut.service)
                    .bind(cut.operation)
                    .bind(now)
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await?;
                write_cut!(tx, true, seqs);
                tx.commit().await?;
            }
            super::Pool::MySql(pool) => {
                let mut tx = pool.begin().await?;
                let pick = format!("{PICK} FOR UPDATE SKIP LOCKED");
                let seqs = sqlx::query_scalar(sqlx::AssertSqlSafe(pick))
                    .bind(cut.service)
                    .bind(cut.operation)
                    .bind(now)
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await?;
                write_cut!(tx, false, seqs);
                tx.commit().await?;
            }
        }
        self.batch(&id).await
    }

    /// The batch `id`.
    pub async fn batch(&self, id: &str) -> Result<Option<Batch>> {
        let sql = format!("SELECT {BATCH_COLUMNS} FROM soapgate_batches WHERE id = ?");
        on_backend_read!(self, |pool, dollar| {
            let row = sqlx::query(sqlx::AssertSqlSafe(numbered(dollar, &sql)))
                .bind(id)
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(batch_from_row).transpose()
        })
    }

    /// Every batch, newest first, at most `limit`.
    pub async fn batches(&self, limit: i64) -> Result<Vec<Batch>> {
        let sql = format!(
            "SELECT {BATCH_COLUMNS} FROM soapgate_batches ORDER BY created_at_ms DESC, id LIMIT ?"
        );
        on_backend_read!(self, |pool, dollar| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(numbered(dollar, &sql)))
                .bind(limit)
                .fetch_all(pool)
                .await?;
            rows.iter().map(batch_from_row).collect()
        })
    }

    /// Takes the open batch whose step is due first and whose lease is
    /// free or expired (its driver died): leased to `owner` for `lease`,
    /// its token one up, so the previous holder's writes are refused.
    pub async fn claim_batch(&self, owner: &str, lease: Duration) -> Result<Option<Batch>> {
        let now = self.now_ms();
        let until = now.saturating_add(duration_ms(lease));
        let pick = "SELECT id FROM soapgate_batches WHERE status IN ('CUT', 'UPLOADED', \
             'SUBMITTED') AND next_step_ms <= ? AND (lease_until_ms IS NULL OR lease_until_ms <= ?) \
             ORDER BY next_step_ms LIMIT 1";
        let take = "UPDATE soapgate_batches SET lease_owner = ?, lease_until_ms = ?, \
             fencing_token = fencing_token + 1, updated_at_ms = ? WHERE id = ? \
             AND (lease_until_ms IS NULL OR lease_until_ms <= ?)";
        let id: Option<String> = match &self.pool {
            super::Pool::Sqlite(pool) => {
                let due: Option<String> =
                    sqlx::query_scalar(sqlx::AssertSqlSafe(numbered(true, pick)))
                        .bind(now)
                        .bind(now)
                        .fetch_optional(self.readers.as_ref().unwrap_or(pool))
                        .await?;
                let Some(id) = due else {
                    return Ok(None);
                };
                let taken = sqlx::query(sqlx::AssertSqlSafe(numbered(true, take)))
                    .bind(owner)
                    .bind(until)
                    .bind(now)
                    .bind(id.as_str())
                    .bind(now)
                    .execute(pool)
                    .await?
                    .rows_affected();
                (taken == 1).then_some(id)
            }
            super::Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let pick = format!("{} FOR UPDATE SKIP LOCKED", numbered(true, pick));
                let due: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(pick))
                    .bind(now)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                if let Some(id) = &due {
                    sqlx::query(sqlx::AssertSqlSafe(numbered(true, take)))
                        .bind(owner)
                        .bind(until)
                        .bind(now)
                        .bind(id.as_str())
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                due
            }
            super::Pool::MySql(pool) => {
                let mut tx = pool.begin().await?;
                let pick = format!("{pick} FOR UPDATE SKIP LOCKED");
                let due: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(pick))
                    .bind(now)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                if let Some(id) = &due {
                    sqlx::query(take)
                        .bind(owner)
                        .bind(until)
                        .bind(now)
                        .bind(id.as_str())
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                due
            }
        };
        match id {
            Some(id) => self.batch(&id).await,
            None => Ok(None),
        }
    }

    /// Extends the lease of a batch held with `token`; false when the token
    /// is stale (another driver took the batch): stop working on it.
    pub async fn heartbeat_batch(&self, id: &str, token: i64, lease: Duration) -> Result<bool> {
        let now = self.now_ms();
        let until = now.saturating_add(duration_ms(lease));
        let sql = "UPDATE soapgate_batches SET lease_until_ms = ?, updated_at_ms = ? \
             WHERE id = ? AND fencing_token = ?";
        let affected = on_backend!(self, |pool, dollar| {
            sqlx::query(sqlx::AssertSqlSafe(numbered(dollar, sql)))
                .bind(until)
                .bind(now)
                .bind(id)
                .bind(token)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(affected == 1)
    }

    /// Writes a step of the batch held with `token`. False when the token
    /// is stale: nothing changed.
    pub async fn advance_batch(&self, id: &str, token: i64, step: &BatchStep<'_>) -> Result<bool> {
        let now = self.now_ms();
        let sql = "UPDATE soapgate_batches SET status = ?, input_uri = ?, output_uri = ?, \
             job_arn = ?, polls = ?, next_step_ms = ?, answered = ?, returned = ?, last_error = ?, \
             updated_at_ms = ? WHERE id = ? AND fencing_token = ?";
        let affected = on_backend!(self, |pool, dollar| {
            sqlx::query(sqlx::AssertSqlSafe(numbered(dollar, sql)))
                .bind(step.status.as_str())
                .bind(step.input_uri)
                .bind(step.output_uri)
                .bind(step.job_arn)
                .bind(step.polls)
                .bind(step.next_step_ms)
                .bind(step.answered)
                .bind(step.returned)
                .bind(step.last_error)
                .bind(now)
                .bind(id)
                .bind(token)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(affected == 1)
    }

    /// Lets the lease of a batch held with `token` go: whoever claims it
    /// when its next step is due takes the step.
    pub async fn let_go_batch(&self, id: &str, token: i64) -> Result<bool> {
        let sql = "UPDATE soapgate_batches SET lease_owner = NULL, lease_until_ms = NULL \
             WHERE id = ? AND fencing_token = ?";
        let affected = on_backend!(self, |pool, dollar| {
            sqlx::query(sqlx::AssertSqlSafe(numbered(dollar, sql)))
                .bind(id)
                .bind(token)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(affected == 1)
    }

    /// The jobs still in the batch (leased to it, not yet answered or
    /// given back), each with the token its result is written with.
    pub async fn batch_jobs(&self, id: &str) -> Result<Vec<ClaimedJob>> {
        let sql = format!(
            "SELECT {} FROM soapgate_jobs WHERE batch_id = ? AND status = 'RUNNING' \
             AND lease_owner = ? ORDER BY seq",
            job_columns!()
        );
        let owner = owner_of(id);
        let jobs = on_backend!(self, |pool, dollar| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(numbered(dollar, &sql)))
                .bind(id)
                .bind(owner.as_str())
                .fetch_all(pool)
                .await?;
            rows.iter().map(job_from_row).collect::<Result<Vec<_>>>()?
        });
        Ok(jobs
            .into_iter()
            .map(|job| ClaimedJob {
                token: job.fencing_token,
                job,
            })
            .collect())
    }

    /// Gives jobs of the batch back to the on-demand queue, due at once;
    /// jobs no longer in the batch are left alone. How many went back.
    pub async fn return_batch_jobs(&self, id: &str, jobs: &[JobId]) -> Result<u64> {
        let now = self.now_ms();
        let owner = owner_of(id);
        let mut returned = 0;
        for chunk in jobs.chunks(500) {
            let sql = format!(
                "UPDATE soapgate_jobs SET status = 'QUEUED', run_after_ms = ?, \
                 lease_owner = NULL, lease_until_ms = NULL, updated_at_ms = ? \
                 WHERE status = 'RUNNING' AND lease_owner = ? AND id IN ({})",
                seq_list(chunk.len())
            );
            returned += on_backend!(self, |pool, dollar| {
                let mut query = sqlx::query(sqlx::AssertSqlSafe(numbered(dollar, &sql)))
                    .bind(now)
                    .bind(now)
                    .bind(owner.as_str());
                for job in chunk {
                    query = query.bind(job.as_str());
                }
                query.execute(pool).await?.rows_affected()
            });
        }
        Ok(returned)
    }

    /// The batch's jobs as counted from their rows: `(answered, returned)`.
    /// Answered: ended (DONE or FAILED) without ever being claimed, which
    /// only an answer from the batch does; returned: every other job no
    /// longer in the batch (given back, whether run on demand since or
    /// not). Right after a crash, where counters kept by the driver would
    /// have lost the steps it took since its last write of the row.
    pub async fn batch_tally(&self, id: &str) -> Result<(i64, i64)> {
        let answered_sql = "SELECT COUNT(*) FROM soapgate_jobs WHERE batch_id = ? \
             AND attempts = 0 AND status IN ('DONE', 'FAILED')";
        let in_batch_sql = "SELECT COUNT(*) FROM soapgate_jobs WHERE batch_id = ? \
             AND status = 'RUNNING' AND lease_owner = ?";
        let all_sql = "SELECT COUNT(*) FROM soapgate_jobs WHERE batch_id = ?";
        let owner = owner_of(id);
        let (answered, in_batch, all): (i64, i64, i64) = on_backend!(self, |pool, dollar| {
            let answered: i64 =
                sqlx::query_scalar(sqlx::AssertSqlSafe(numbered(dollar, answered_sql)))
                    .bind(id)
                    .fetch_one(pool)
                    .await?;
            let in_batch: i64 =
                sqlx::query_scalar(sqlx::AssertSqlSafe(numbered(dollar, in_batch_sql)))
                    .bind(id)
                    .bind(owner.as_str())
                    .fetch_one(pool)
                    .await?;
            let all: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(numbered(dollar, all_sql)))
                .bind(id)
                .fetch_one(pool)
                .await?;
            (answered, in_batch, all)
        });
        Ok((answered, all - answered - in_batch))
    }

    /// How many jobs of the operation wait for a batch now.
    pub async fn batch_waiting(&self, service: &str, operation: &str) -> Result<i64> {
        let now = self.now_ms();
        let sql = "SELECT COUNT(*) FROM soapgate_jobs WHERE status = 'QUEUED' AND service = ? \
             AND operation = ? AND run_after_ms > ? AND attempts = 0 AND batch_id IS NULL";
        on_backend_read!(self, |pool, dollar| {
            Ok(
                sqlx::query_scalar(sqlx::AssertSqlSafe(numbered(dollar, sql)))
                    .bind(service)
                    .bind(operation)
                    .bind(now)
                    .fetch_one(pool)
                    .await?,
            )
        })
    }
}
