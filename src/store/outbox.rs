//! The outbox for `queue.kind = sqs` (`soapgate_outbox`), and claiming one
//! job by id, which is how a queue consumer takes the job a message names.
//!
//! The job row stays the source of truth; the queue only delivers job ids.
//! [`Store::enqueue_with_outbox`] writes the job and its outbox row in one
//! transaction, so a job is never stored without being sent, nor sent
//! without being stored. A relay takes due rows with [`Store::claim_outbox`]
//! (which leases them: a relay that dies mid-send leaves them to be sent
//! again after the lease), sends them, and removes them with
//! [`Store::delete_outbox`]. A crash between the send and the delete sends a
//! row twice; consumers tolerate that because claims are fenced.

use std::time::Duration;

use sqlx::{ColumnIndex, Decode, Row, Type};

use super::jobs::{
    INSERT_JOB_DOLLAR, INSERT_JOB_QMARK, bind_new_job, is_unique_violation, job_columns,
    job_from_row,
};
use super::{
    ClaimedJob, Job, JobId, JobStatus, NewJob, Pool, Result, Store, StoreError, duration_ms,
    on_backend, on_backend_read,
};

/// A row of the outbox: one job id waiting to be sent to the request queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub id: i64,
    pub job_id: JobId,
    /// Sends tried so far, this one included.
    pub attempts: i64,
}

/// A row of the reply outbox: the reply of a finished job, waiting for its
/// reply queue to accept it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyEntry {
    pub id: i64,
    pub job_id: JobId,
    pub queue_url: String,
    /// Sends tried so far, this one included.
    pub attempts: i64,
}

/// What became of an attempt to claim one job by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobClaim {
    /// The job is now RUNNING under the caller's lease and token.
    Claimed(ClaimedJob),
    /// The job already has its result (DONE or FAILED): nothing to run.
    Finished(Job),
    /// Another worker holds the job under a live lease, or it is QUEUED
    /// but changed under us: try again later.
    Busy(Job),
    /// No job has this id.
    Missing,
}

pub(super) const INSERT_REPLY_DOLLAR: &str = "INSERT INTO soapgate_reply_outbox \
     (job_id, queue_url, available_at_ms, created_at_ms) VALUES ($1, $2, $3, $4)";
pub(super) const INSERT_REPLY_QMARK: &str = "INSERT INTO soapgate_reply_outbox \
     (job_id, queue_url, available_at_ms, created_at_ms) VALUES (?, ?, ?, ?)";
/// A reply row written with its job's result is the finishing process's to
/// send for this long (it sends at once); then the reply relay takes it.
pub(super) const REPLY_SENDER_WINDOW_MS: i64 = 10_000;

pub(super) const INSERT_OUTBOX_DOLLAR: &str =
    "INSERT INTO soapgate_outbox (job_id, available_at_ms, created_at_ms) VALUES ($1, $2, $3)";
pub(super) const INSERT_OUTBOX_QMARK: &str =
    "INSERT INTO soapgate_outbox (job_id, available_at_ms, created_at_ms) VALUES (?, ?, ?)";

/// Leases up to `$limit` due rows of `$table` (oldest first) for `$lease`
/// and returns them, read by `$from_row`.
macro_rules! claim_due {
    ($store:expr, $table:literal, $cols:literal, $from_row:ident, $limit:expr, $lease:expr) => {{
        let store = $store;
        let now = store.now_ms();
        let until = now.saturating_add(duration_ms($lease));
        let limit = i64::from($limit.max(1));
        let mut entries = match &store.pool {
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let rows = sqlx::query(concat!(
                    "UPDATE ",
                    $table,
                    " SET available_at_ms = $1, attempts = attempts + 1 \
                     WHERE id IN (SELECT id FROM ",
                    $table,
                    " WHERE available_at_ms <= $2 \
                                  ORDER BY id LIMIT $3) \
                     RETURNING ",
                    $cols
                ))
                .bind(until)
                .bind(now)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
                tx.commit().await?;
                rows.iter().map($from_row).collect::<Result<Vec<_>>>()?
            }
            Pool::Postgres(pool) => {
                let rows = sqlx::query(concat!(
                    "UPDATE ",
                    $table,
                    " SET available_at_ms = $1, attempts = attempts + 1 \
                     WHERE id IN (SELECT id FROM ",
                    $table,
                    " WHERE available_at_ms <= $2 \
                                  ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED) \
                     RETURNING ",
                    $cols
                ))
                .bind(until)
                .bind(now)
                .bind(limit)
                .fetch_all(pool)
                .await?;
                rows.iter().map($from_row).collect::<Result<Vec<_>>>()?
            }
            Pool::MySql(pool) => {
                // MySQL and MariaDB refuse LIMIT inside an IN subquery: lock
                // the rows first, then move each one's lease.
                let mut tx = pool.begin().await?;
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    $cols,
                    " FROM ",
                    $table,
                    " \
                     WHERE available_at_ms <= ? ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED"
                ))
                .bind(now)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
                let mut entries = rows.iter().map($from_row).collect::<Result<Vec<_>>>()?;
                for entry in &mut entries {
                    sqlx::query(concat!(
                        "UPDATE ",
                        $table,
                        " SET available_at_ms = ?, attempts = attempts + 1 \
                         WHERE id = ?"
                    ))
                    .bind(until)
                    .bind(entry.id)
                    .execute(&mut *tx)
                    .await?;
                    entry.attempts += 1;
                }
                tx.commit().await?;
                entries
            }
        };
        entries.sort_by_key(|e| e.id);
        Ok(entries)
    }};
}

/// Runs `$dollar_sql` / `$qmark_sql` once per id, binding `$first` then the
/// id, in one transaction; returns the rows affected.
macro_rules! per_id {
    ($store:expr, $ids:expr, $dollar_sql:expr, $qmark_sql:expr, $first:expr) => {{
        let ids: &[i64] = $ids;
        if ids.is_empty() {
            return Ok(0);
        }
        // One statement per row keeps the SQL static on every backend; one
        // transaction keeps it one commit.
        let mut affected = 0;
        macro_rules! each_in {
            ($tx:expr, $sql:expr) => {{
                let mut tx = $tx;
                for id in ids {
                    let q = sqlx::query($sql);
                    let q = match $first {
                        Some(v) => q.bind(v),
                        None => q,
                    };
                    affected += q.bind(*id).execute(&mut *tx).await?.rows_affected();
                }
                tx.commit().await?;
            }};
        }
        match &$store.pool {
            Pool::Sqlite(pool) => each_in!(pool.begin_with("BEGIN IMMEDIATE").await?, $dollar_sql),
            Pool::Postgres(pool) => each_in!(pool.begin().await?, $dollar_sql),
            Pool::MySql(pool) => each_in!(pool.begin().await?, $qmark_sql),
        }
        Ok(affected)
    }};
}

macro_rules! delete_ids {
    ($store:expr, $table:literal, $ids:expr) => {
        per_id!(
            $store,
            $ids,
            concat!("DELETE FROM ", $table, " WHERE id = $1"),
            concat!("DELETE FROM ", $table, " WHERE id = ?"),
            None::<i64>
        )
    };
}

macro_rules! release_ids {
    ($store:expr, $table:literal, $ids:expr, $delay:expr) => {{
        let due = $store.now_ms().saturating_add(duration_ms($delay));
        per_id!(
            $store,
            $ids,
            concat!("UPDATE ", $table, " SET available_at_ms = $1 WHERE id = $2"),
            concat!("UPDATE ", $table, " SET available_at_ms = ? WHERE id = ?"),
            Some(due)
        )
    }};
}

impl Store {
    /// This store with every new job ([`Store::enqueue`], request rows
    /// picked up from `soapgate_requests`) also written to the outbox, in
    /// the same transaction: for `queue.kind = sqs`, where the outbox relay
    /// is what delivers jobs to workers.
    pub fn with_outbox(mut self, on: bool) -> Store {
        self.outbox = on;
        self
    }

    /// Whether new jobs go through the outbox.
    pub fn uses_outbox(&self) -> bool {
        self.outbox
    }

    /// [`Store::enqueue`] plus an outbox row, in one transaction. Returns the
    /// job id and whether this call created it; a job already enqueued
    /// under the same idempotency key gets no second outbox row (its first
    /// one was written with it).
    pub async fn enqueue_with_outbox(&self, job: &NewJob) -> Result<(JobId, bool)> {
        let id = JobId::generate();
        let now = self.now_ms();
        let inserted: std::result::Result<(), sqlx::Error> = on_backend!(self, |pool, dollar| {
            async {
                let mut tx = pool.begin().await?;
                let (insert_job, insert_outbox) = if dollar {
                    (INSERT_JOB_DOLLAR, INSERT_OUTBOX_DOLLAR)
                } else {
                    (INSERT_JOB_QMARK, INSERT_OUTBOX_QMARK)
                };
                bind_new_job!(self, sqlx::query(insert_job), id, job, now)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(insert_outbox)
                    .bind(id.as_str())
                    .bind(now)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await
            }
            .await
        });
        match (inserted, &job.idempotency_key) {
            (Ok(()), _) => Ok((id, true)),
            (Err(e), Some(key)) if is_unique_violation(&e) => {
                match self.job_id_for_key(key).await? {
                    Some(existing) => Ok((existing, false)),
                    None => Err(StoreError::Database(e)),
                }
            }
            (Err(e), _) => Err(e.into()),
        }
    }

    /// [`Store::enqueue`] without an outbox row, whatever the store's mode:
    /// for a job whose message is already on the queue (a request put there
    /// from outside). Returns the job id and whether this call created it.
    pub async fn enqueue_delivered(&self, job: &NewJob) -> Result<(JobId, bool)> {
        let direct = self.clone().with_outbox(false);
        if let Some(key) = &job.idempotency_key
            && let Some(existing) = direct.job_id_for_key(key).await?
        {
            return Ok((existing, false));
        }
        let id = direct.enqueue(job).await?;
        Ok((id, true))
    }

    /// The id of the job enqueued under an idempotency key, if any.
    pub async fn job_id_for_key(&self, key: &str) -> Result<Option<JobId>> {
        let existing: Option<String> = on_backend_read!(self, |pool, dollar| {
            let sql = if dollar {
                "SELECT id FROM soapgate_jobs WHERE idempotency_key = $1"
            } else {
                "SELECT id FROM soapgate_jobs WHERE idempotency_key = ?"
            };
            sqlx::query_scalar(sql)
                .bind(key)
                .fetch_optional(pool)
                .await?
        });
        Ok(existing.map(JobId))
    }

    /// Takes up to `limit` due outbox rows, oldest first, and leases them for
    /// `lease`: until then no other relay takes them. Rows are removed with
    /// [`Store::delete_outbox`] once sent; a row not removed is due again
    /// when its lease ends (or earlier, after [`Store::release_outbox`]).
    pub async fn claim_outbox(&self, limit: u32, lease: Duration) -> Result<Vec<OutboxEntry>> {
        claim_due!(
            self,
            "soapgate_outbox",
            "id, job_id, attempts",
            entry_from_row,
            limit,
            lease
        )
    }

    /// Removes sent outbox rows, in one transaction. Ids no longer there
    /// are ignored.
    pub async fn delete_outbox(&self, ids: &[i64]) -> Result<u64> {
        delete_ids!(self, "soapgate_outbox", ids)
    }

    /// Makes leased outbox rows whose send failed due again after `delay`
    /// instead of at the end of their lease.
    pub async fn release_outbox(&self, ids: &[i64], delay: Duration) -> Result<u64> {
        release_ids!(self, "soapgate_outbox", ids, delay)
    }

    /// The ids of the reply rows of job `job_id` (written with its result).
    pub async fn replies_of(&self, job_id: &JobId) -> Result<Vec<i64>> {
        let ids: Vec<i64> = on_backend!(self, |pool, dollar| {
            let sql = if dollar {
                "SELECT id FROM soapgate_reply_outbox WHERE job_id = $1"
            } else {
                "SELECT id FROM soapgate_reply_outbox WHERE job_id = ?"
            };
            sqlx::query_scalar(sql)
                .bind(job_id.as_str())
                .fetch_all(pool)
                .await?
        });
        Ok(ids)
    }

    /// Takes up to `limit` due reply rows, oldest first, leased for `lease`.
    pub async fn claim_replies(&self, limit: u32, lease: Duration) -> Result<Vec<ReplyEntry>> {
        claim_due!(
            self,
            "soapgate_reply_outbox",
            "id, job_id, queue_url, attempts",
            reply_from_row,
            limit,
            lease
        )
    }

    /// Removes reply rows SQS accepted.
    pub async fn delete_replies(&self, ids: &[i64]) -> Result<u64> {
        delete_ids!(self, "soapgate_reply_outbox", ids)
    }

    /// Makes leased reply rows whose send failed due again after `delay`.
    pub async fn release_replies(&self, ids: &[i64], delay: Duration) -> Result<u64> {
        release_ids!(self, "soapgate_reply_outbox", ids, delay)
    }

    /// Replies not yet accepted by SQS, for tests.
    #[cfg(any(test, feature = "test-support"))]
    pub async fn reply_outbox_len(&self) -> Result<i64> {
        let n: i64 = on_backend_read!(self, |pool, _dollar| {
            sqlx::query_scalar("SELECT COUNT(*) FROM soapgate_reply_outbox")
                .fetch_one(pool)
                .await?
        });
        Ok(n)
    }

    /// Reconciliation: gives a new outbox row to up to `limit` jobs that
    /// are QUEUED and unchanged for `older_than`, or RUNNING under a lease
    /// that ended `older_than` ago, and have no outbox row — jobs whose
    /// message may be gone (a purged queue). Each job's `updated_at_ms`
    /// (and an ended lease's end) moves to now in the same transaction, so
    /// it is not picked again before another `older_than`. A job whose
    /// message was not gone gets a duplicate, which the fenced claim makes
    /// harmless. Returns the jobs re-sent.
    pub async fn requeue_lost(&self, older_than: Duration, limit: u32) -> Result<Vec<JobId>> {
        let now = self.now_ms();
        let cutoff = now.saturating_sub(duration_ms(older_than));
        let limit = i64::from(limit.max(1));
        let requeued: std::result::Result<Vec<JobId>, sqlx::Error> = on_backend!(
            self,
            |pool, dollar| {
                async {
                    let (find, touch, insert) = if dollar {
                        (
                            "SELECT j.id FROM soapgate_jobs j \
                             WHERE ((j.status = 'QUEUED' AND j.updated_at_ms <= $1) \
                                 OR (j.status = 'RUNNING' AND j.lease_until_ms <= $1)) \
                               AND NOT EXISTS (SELECT 1 FROM soapgate_outbox o WHERE o.job_id = j.id) \
                             ORDER BY j.updated_at_ms LIMIT $2",
                            "UPDATE soapgate_jobs SET updated_at_ms = $1, \
                                 lease_until_ms = CASE WHEN status = 'RUNNING' THEN $1 ELSE lease_until_ms END \
                             WHERE id = $2 AND ((status = 'QUEUED' AND updated_at_ms <= $3) \
                                 OR (status = 'RUNNING' AND lease_until_ms <= $3))",
                            INSERT_OUTBOX_DOLLAR,
                        )
                    } else {
                        (
                            "SELECT j.id FROM soapgate_jobs j \
                             WHERE ((j.status = 'QUEUED' AND j.updated_at_ms <= ?) \
                                 OR (j.status = 'RUNNING' AND j.lease_until_ms <= ?)) \
                               AND NOT EXISTS (SELECT 1 FROM soapgate_outbox o WHERE o.job_id = j.id) \
                             ORDER BY j.updated_at_ms LIMIT ?",
                            "UPDATE soapgate_jobs SET updated_at_ms = ?, \
                                 lease_until_ms = CASE WHEN status = 'RUNNING' THEN ? ELSE lease_until_ms END \
                             WHERE id = ? AND ((status = 'QUEUED' AND updated_at_ms <= ?) \
                                 OR (status = 'RUNNING' AND lease_until_ms <= ?))",
                            INSERT_OUTBOX_QMARK,
                        )
                    };
                    let mut find = sqlx::query_scalar::<_, String>(find).bind(cutoff);
                    if !dollar {
                        find = find.bind(cutoff);
                    }
                    let candidates = find.bind(limit).fetch_all(pool).await?;
                    let mut requeued = Vec::new();
                    for id in candidates {
                        let mut tx = pool.begin().await?;
                        let mut q = sqlx::query(touch).bind(now);
                        if !dollar {
                            q = q.bind(now);
                        }
                        q = q.bind(id.as_str()).bind(cutoff);
                        if !dollar {
                            q = q.bind(cutoff);
                        }
                        if q.execute(&mut *tx).await?.rows_affected() == 1 {
                            sqlx::query(insert)
                                .bind(id.as_str())
                                .bind(now)
                                .bind(now)
                                .execute(&mut *tx)
                                .await?;
                            requeued.push(JobId(id));
                        }
                        tx.commit().await?;
                    }
                    Ok(requeued)
                }
                .await
            }
        );
        Ok(requeued?)
    }

    /// Outbox rows not yet sent (or sent but not yet removed), for tests.
    #[cfg(any(test, feature = "test-support"))]
    pub async fn outbox_len(&self) -> Result<i64> {
        let n: i64 = on_backend_read!(self, |pool, _dollar| {
            sqlx::query_scalar("SELECT COUNT(*) FROM soapgate_outbox")
                .fetch_one(pool)
                .await?
        });
        Ok(n)
    }

    /// Claims the job `id` for `worker_id` for `lease`, if it is QUEUED
    /// (whatever its `run_after`: the queue's visibility timeout does the
    /// delaying) or RUNNING under an expired lease. Like [`Store::claim`],
    /// the fencing token goes up by one, so the previous holder's writes are
    /// refused from now on.
    pub async fn claim_job(
        &self,
        id: &JobId,
        worker_id: &str,
        lease: Duration,
    ) -> Result<JobClaim> {
        let now = self.now_ms();
        let until = now.saturating_add(duration_ms(lease));
        let claimed = match &self.pool {
            Pool::Sqlite(pool) => {
                let row = sqlx::query(concat!(
                    "UPDATE soapgate_jobs SET status = 'RUNNING', lease_owner = $1, \
                     lease_until_ms = $2, fencing_token = fencing_token + 1, \
                     attempts = attempts + 1, updated_at_ms = $3 \
                     WHERE id = $4 AND (status = 'QUEUED' \
                        OR (status = 'RUNNING' AND lease_until_ms <= $3)) \
                     RETURNING ",
                    job_columns!()
                ))
                .bind(worker_id)
                .bind(until)
                .bind(now)
                .bind(id.as_str())
                .fetch_optional(pool)
                .await?;
                row.as_ref().map(job_from_row).transpose()?
            }
            Pool::Postgres(pool) => {
                let row = sqlx::query(concat!(
                    "UPDATE soapgate_jobs SET status = 'RUNNING', lease_owner = $1, \
                     lease_until_ms = $2, fencing_token = fencing_token + 1, \
                     attempts = attempts + 1, updated_at_ms = $3 \
                     WHERE id = $4 AND (status = 'QUEUED' \
                        OR (status = 'RUNNING' AND lease_until_ms <= $3)) \
                     RETURNING ",
                    job_columns!()
                ))
                .bind(worker_id)
                .bind(until)
                .bind(now)
                .bind(id.as_str())
                .fetch_optional(pool)
                .await?;
                row.as_ref().map(job_from_row).transpose()?
            }
            Pool::MySql(pool) => {
                // No UPDATE ... RETURNING: update, then read the row back in
                // the same transaction (the row lock keeps it ours).
                let mut tx = pool.begin().await?;
                let affected = sqlx::query(
                    "UPDATE soapgate_jobs SET status = 'RUNNING', lease_owner = ?, \
                     lease_until_ms = ?, fencing_token = fencing_token + 1, \
                     attempts = attempts + 1, updated_at_ms = ? \
                     WHERE id = ? AND (status = 'QUEUED' \
                        OR (status = 'RUNNING' AND lease_until_ms <= ?))",
                )
                .bind(worker_id)
                .bind(until)
                .bind(now)
                .bind(id.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                let job = if affected == 1 {
                    let row = sqlx::query(concat!(
                        "SELECT ",
                        job_columns!(),
                        " FROM soapgate_jobs WHERE id = ?"
                    ))
                    .bind(id.as_str())
                    .fetch_one(&mut *tx)
                    .await?;
                    Some(job_from_row(&row)?)
                } else {
                    None
                };
                tx.commit().await?;
                job
            }
        };
        if let Some(job) = claimed {
            return Ok(JobClaim::Claimed(ClaimedJob {
                token: job.fencing_token,
                job,
            }));
        }
        Ok(match self.get(id).await? {
            None => JobClaim::Missing,
            Some(job) if matches!(job.status, JobStatus::Done | JobStatus::Failed) => {
                JobClaim::Finished(job)
            }
            Some(job) => JobClaim::Busy(job),
        })
    }
}

fn entry_from_row<'r, R>(row: &'r R) -> Result<OutboxEntry>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(OutboxEntry {
        id: row.try_get("id")?,
        job_id: JobId(row.try_get("job_id")?),
        attempts: row.try_get("attempts")?,
    })
}

fn reply_from_row<'r, R>(row: &'r R) -> Result<ReplyEntry>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(ReplyEntry {
        id: row.try_get("id")?,
        job_id: JobId(row.try_get("job_id")?),
        queue_url: row.try_get("queue_url")?,
        attempts: row.try_get("attempts")?,
    })
}
