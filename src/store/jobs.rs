//! The job queue in `soapgate_jobs`: idempotent enqueue (each job keeps
//! the digest of its request, so a reused key can be told from a retry),
//! leased claims with
//! a fencing token, heartbeats, and fenced, idempotent completion.
//!
//! Every state change after a claim is an `UPDATE ... WHERE id = ? AND
//! fencing_token = ? AND status = 'RUNNING'`: a worker whose lease expired
//! and was re-claimed holds a stale token and changes nothing, and a job
//! leaves RUNNING exactly once, so it gets exactly one result however many
//! workers race for it.

use std::fmt;
use std::time::Duration;

use sqlx::{ColumnIndex, Decode, Row, Type};

use super::{Result, Store, StoreError, duration_ms, on_backend, on_backend_read};

/// The columns of a job row, in the order `job_from_row` reads them by name.
macro_rules! job_columns {
    () => {
        "id, idempotency_key, source, service, operation, correlation_id, payload, status, \
         attempts, run_after_ms, lease_owner, lease_until_ms, fencing_token, last_error, \
         result_payload, fault_code, fault_text, model, input_tokens, output_tokens, \
         created_at_ms, updated_at_ms, tenant, request_digest"
    };
}
pub(super) use job_columns;

/// The jobs whose lease expired longest ago (their worker died), by
/// `(status, lease_until_ms)`; `$now` and `$limit` are the placeholders
/// (or literals) for the time and the number of rows.
macro_rules! expired_lease {
    ($now:literal, $limit:literal) => {
        concat!(
            "SELECT seq FROM soapgate_jobs WHERE status = 'RUNNING' AND lease_until_ms <= ",
            $now,
            " ORDER BY lease_until_ms LIMIT ",
            $limit
        )
    };
}

/// The queued jobs due first, by `(status, run_after_ms, seq)`.
macro_rules! next_queued {
    ($now:literal, $limit:literal) => {
        concat!(
            "SELECT seq FROM soapgate_jobs WHERE status = 'QUEUED' AND run_after_ms <= ",
            $now,
            " ORDER BY run_after_ms, seq LIMIT ",
            $limit
        )
    };
}

/// The fenced update of one job row and, for a final end, its
/// `soapgate_results` row, inside transaction `$tx` on SQLite or
/// PostgreSQL (both have `UPDATE ... RETURNING`); evaluates to whether the
/// end was recorded (false: stale token, or the job already left RUNNING).
macro_rules! finish_returning {
    ($tx:ident, $finish:expr, $now:expr, $id:expr, $token:expr, $reply_to:expr) => {{
        let finish: &Finish<'_> = $finish;
        let sql = format!(
            "{} RETURNING source, correlation_id",
            numbered(true, &finish_update(finish))
        );
        let row: Option<(String, String)> = bind_finish(
            sqlx::query_as(sqlx::AssertSqlSafe(sql)),
            finish,
            $now,
            $id,
            $token,
        )
        .fetch_optional(&mut *$tx)
        .await?;
        match row {
            None => false,
            Some((source, correlation_id)) => {
                if finish.is_final() && JobSource::parse(&source)?.writes_result_row() {
                    let sql = result_insert(true, finish);
                    let inserted =
                        bind_result_row(sqlx::query(sqlx::AssertSqlSafe(sql)), finish, $id)
                            .execute(&mut *$tx)
                            .await?
                            .rows_affected();
                    warn_if_duplicate(inserted, &correlation_id, $id);
                }
                let reply_to: Option<&str> = $reply_to;
                if let (true, Some(url)) = (finish.is_final(), reply_to) {
                    sqlx::query(super::outbox::INSERT_REPLY_DOLLAR)
                        .bind($id.as_str())
                        .bind(url)
                        .bind($now.saturating_add(super::outbox::REPLY_SENDER_WINDOW_MS))
                        .bind($now)
                        .execute(&mut *$tx)
                        .await?;
                }
                true
            }
        }
    }};
}

/// The `seq`s of up to `$limit` jobs to claim inside transaction `$tx`,
/// taken from each of `$picks` in turn (locked, skipping locked rows) until
/// the limit is reached.
macro_rules! pick_seqs {
    ($tx:ident, $picks:expr, $now:expr, $limit:expr) => {{
        let mut seqs: Vec<i64> = Vec::new();
        for pick in $picks {
            let left = $limit - i64::try_from(seqs.len()).unwrap_or($limit);
            if left <= 0 {
                break;
            }
            let picked: Vec<i64> = sqlx::query_scalar(pick)
                .bind($now)
                .bind(left)
                .fetch_all(&mut *$tx)
                .await?;
            seqs.extend(picked);
        }
        seqs
    }};
}

/// A job's ticket: an opaque random id, so a caller cannot guess another
/// caller's ticket or learn how many jobs exist.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub(super) String);

impl JobId {
    pub(crate) fn generate() -> JobId {
        JobId(uuid::Uuid::new_v4().to_string())
    }

    /// A job id as received from a caller (a ticket being polled). Any string
    /// is accepted: an unknown id is simply not found.
    pub fn from_ticket(ticket: impl Into<String>) -> JobId {
        JobId(ticket.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a job came from, so a worker knows where its result goes besides
/// the job row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobSource {
    /// An async SOAP call; the caller polls `Get{Operation}Result`.
    Api,
    /// A call to a WSDL one-way operation: the caller got HTTP 202 and
    /// nothing to poll with; the result goes to `soapgate_results` (and the
    /// reply queue, when there is one).
    OneWay,
    /// A row of `soapgate_requests`; the result also goes to
    /// `soapgate_results`.
    Requests,
    /// A message put straight on the request queue (the queue as a door of
    /// its own); the result goes to `soapgate_results` and the reply queue.
    Queue,
}

impl JobSource {
    /// Whether the job's result also goes to `soapgate_results`, keyed by
    /// its correlation id: for every job whose caller has no ticket to poll.
    pub fn writes_result_row(self) -> bool {
        !matches!(self, JobSource::Api)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobSource::Api => "api",
            JobSource::OneWay => "oneway",
            JobSource::Requests => "requests",
            JobSource::Queue => "queue",
        }
    }

    fn parse(s: &str) -> Result<JobSource> {
        match s {
            "api" => Ok(JobSource::Api),
            "oneway" => Ok(JobSource::OneWay),
            "requests" => Ok(JobSource::Requests),
            "queue" => Ok(JobSource::Queue),
            other => Err(StoreError::Corrupt {
                column: "source",
                value: other.to_owned(),
            }),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Queued,
    Running,
    Done,
    Failed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "QUEUED",
            JobStatus::Running => "RUNNING",
            JobStatus::Done => "DONE",
            JobStatus::Failed => "FAILED",
        }
    }

    fn parse(s: &str) -> Result<JobStatus> {
        match s {
            "QUEUED" => Ok(JobStatus::Queued),
            "RUNNING" => Ok(JobStatus::Running),
            "DONE" => Ok(JobStatus::Done),
            "FAILED" => Ok(JobStatus::Failed),
            other => Err(StoreError::Corrupt {
                column: "status",
                value: other.to_owned(),
            }),
        }
    }
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub service: String,
    pub operation: String,
    pub correlation_id: String,
    /// The request payload XML.
    pub payload: String,
    /// A second enqueue with the same key returns the first job's id (the
    /// WS-Addressing MessageID of a retried call, for instance). `None`: no
    /// deduplication.
    pub idempotency_key: Option<String>,
    pub source: JobSource,
    /// The tenant the job runs for (budgets, usage), when tenants are
    /// configured.
    pub tenant: Option<String>,
}

/// A job row as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: JobId,
    pub idempotency_key: Option<String>,
    pub source: JobSource,
    pub service: String,
    pub operation: String,
    pub correlation_id: String,
    pub payload: String,
    pub status: JobStatus,
    /// Claims so far, including the current one.
    pub attempts: i64,
    pub run_after_ms: i64,
    pub lease_owner: Option<String>,
    pub lease_until_ms: Option<i64>,
    pub fencing_token: i64,
    pub last_error: Option<String>,
    /// The response payload XML, when DONE.
    pub result_payload: Option<String>,
    /// Set when FAILED.
    pub fault_code: Option<String>,
    pub fault_text: Option<String>,
    pub model: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub tenant: Option<String>,
    /// [`request_digest`] of the payload; `None` for jobs recorded before
    /// the column existed.
    pub request_digest: Option<String>,
}

/// A job handed to one worker, with the token that fences its writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedJob {
    pub job: Job,
    pub token: i64,
}

/// What a successful run produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobResult {
    /// The response payload XML (empty for a one-way operation).
    pub payload: String,
    pub model: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    /// The mapping's flat result columns of `soapgate_results` (name,
    /// value), written with the result row; names must pass
    /// [`is_valid_result_column`].
    pub columns: Vec<(String, Option<String>)>,
}

/// Why a run failed: the fault the caller will eventually see.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JobFailure {
    pub fault_code: String,
    pub fault_text: String,
    /// What the fault carries beyond its code and text, kept as the job's
    /// `result_payload` (and its `soapgate_results.payload`) when the job
    /// ends FAILED: a declared fault, as XML. `None` for the others.
    pub payload: Option<String>,
}

/// Reads a job row on any backend; the bounds say "these Rust types decode
/// from this backend's rows".
pub(super) fn job_from_row<'r, R>(row: &'r R) -> Result<Job>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    let source: String = row.try_get("source")?;
    let status: String = row.try_get("status")?;
    Ok(Job {
        id: JobId(row.try_get("id")?),
        idempotency_key: row.try_get("idempotency_key")?,
        source: JobSource::parse(&source)?,
        service: row.try_get("service")?,
        operation: row.try_get("operation")?,
        correlation_id: row.try_get("correlation_id")?,
        payload: row.try_get("payload")?,
        status: JobStatus::parse(&status)?,
        attempts: row.try_get("attempts")?,
        run_after_ms: row.try_get("run_after_ms")?,
        lease_owner: row.try_get("lease_owner")?,
        lease_until_ms: row.try_get("lease_until_ms")?,
        fencing_token: row.try_get("fencing_token")?,
        last_error: row.try_get("last_error")?,
        result_payload: row.try_get("result_payload")?,
        fault_code: row.try_get("fault_code")?,
        fault_text: row.try_get("fault_text")?,
        model: row.try_get("model")?,
        input_tokens: row.try_get("input_tokens")?,
        output_tokens: row.try_get("output_tokens")?,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
        tenant: row.try_get("tenant")?,
        request_digest: row.try_get("request_digest")?,
    })
}

/// The digest of a job's request, stored with every new job
/// (`request_digest`): the hex SHA-256 of its payload. A caller whose
/// idempotency key names an existing job compares it with its own
/// request's, to tell a retry from a key reused for another request.
pub fn request_digest(payload: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(payload.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(super) fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|e| e.is_unique_violation())
}

pub(super) const INSERT_JOB_DOLLAR: &str = "INSERT INTO soapgate_jobs \
     (id, idempotency_key, source, service, operation, correlation_id, payload, \
      status, attempts, run_after_ms, fencing_token, created_at_ms, updated_at_ms, tenant, \
      request_digest) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, 'QUEUED', 0, $8, 0, $9, $10, $11, $12)";
pub(super) const INSERT_JOB_QMARK: &str = "INSERT INTO soapgate_jobs \
     (id, idempotency_key, source, service, operation, correlation_id, payload, \
      status, attempts, run_after_ms, fencing_token, created_at_ms, updated_at_ms, tenant, \
      request_digest) \
     VALUES (?, ?, ?, ?, ?, ?, ?, 'QUEUED', 0, ?, 0, ?, ?, ?, ?)";

/// Binds a `NewJob` to `INSERT_JOB_*` in column order (due when
/// [`Store::due_ms`] says), its payload's [`request_digest`] last.
macro_rules! bind_new_job {
    ($store:expr, $query:expr, $id:expr, $job:expr, $now:expr) => {
        $query
            .bind($id.as_str())
            .bind($job.idempotency_key.as_deref())
            .bind($job.source.as_str())
            .bind($job.service.as_str())
            .bind($job.operation.as_str())
            .bind($job.correlation_id.as_str())
            .bind($job.payload.as_str())
            .bind($store.due_ms(&$job, $now))
            .bind($now)
            .bind($now)
            .bind($job.tenant.as_deref())
            .bind($crate::store::request_digest(&$job.payload))
    };
}
pub(super) use bind_new_job;

impl Store {
    /// Adds a job, or returns the id of the job already enqueued under the
    /// same idempotency key.
    pub async fn enqueue(&self, job: &NewJob) -> Result<JobId> {
        if self.outbox {
            return self.enqueue_with_outbox(job).await.map(|(id, _)| id);
        }
        let id = JobId::generate();
        let now = self.now_ms();
        let inserted = on_backend!(self, |pool, dollar| {
            let sql = if dollar {
                INSERT_JOB_DOLLAR
            } else {
                INSERT_JOB_QMARK
            };
            bind_new_job!(self, sqlx::query(sql), id, job, now)
                .execute(pool)
                .await
                .map(|_| ())
        });
        match (inserted, &job.idempotency_key) {
            (Ok(()), _) => Ok(id),
            // A unique violation on the key means the job exists: the insert
            // raced another or the caller retried. Asking first would leave a
            // window between the check and the insert.
            (Err(e), Some(key)) if is_unique_violation(&e) => {
                let existing: Option<String> = on_backend!(self, |pool, dollar| {
                    let sql = if dollar {
                        "SELECT id FROM soapgate_jobs WHERE idempotency_key = $1"
                    } else {
                        "SELECT id FROM soapgate_jobs WHERE idempotency_key = ?"
                    };
                    sqlx::query_scalar(sql)
                        .bind(key.as_str())
                        .fetch_optional(pool)
                        .await?
                });
                // A unique violation on the random id (never in practice)
                // leaves no row under the key: report the original error.
                existing.map(JobId).ok_or(StoreError::Database(e))
            }
            (Err(e), _) => Err(e.into()),
        }
    }

    /// The job with this id, for polling.
    pub async fn get(&self, id: &JobId) -> Result<Option<Job>> {
        on_backend_read!(self, |pool, dollar| {
            let sql = if dollar {
                concat!(
                    "SELECT ",
                    job_columns!(),
                    " FROM soapgate_jobs WHERE id = $1"
                )
            } else {
                concat!(
                    "SELECT ",
                    job_columns!(),
                    " FROM soapgate_jobs WHERE id = ?"
                )
            };
            let row = sqlx::query(sql)
                .bind(id.as_str())
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(job_from_row).transpose()
        })
    }

    /// Hands the oldest runnable job to `worker_id` for `lease`: a QUEUED job
    /// whose `run_after` has passed, or a RUNNING job whose lease expired
    /// (its worker died). The fencing token goes up by one on every claim,
    /// so the previous holder's writes are refused from now on.
    pub async fn claim(&self, worker_id: &str, lease: Duration) -> Result<Option<ClaimedJob>> {
        Ok(self.claim_many(worker_id, lease, 1).await?.pop())
    }

    /// Up to `max` runnable jobs in one transaction, each claimed as by
    /// [`Store::claim`]: jobs whose lease expired first, then queued jobs in
    /// the order they became due. A worker with several free slots takes
    /// them in one write instead of one write each.
    pub async fn claim_many(
        &self,
        worker_id: &str,
        lease: Duration,
        max: usize,
    ) -> Result<Vec<ClaimedJob>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        // Claims racing on InnoDB's secondary indexes can deadlock; the
        // victim wrote nothing and simply tries again.
        let mut retries = 0;
        loop {
            match self.claim_many_once(worker_id, lease, max).await {
                Err(e) if e.is_deadlock() && retries < 3 => retries += 1,
                claimed => return claimed,
            }
        }
    }

    async fn claim_many_once(
        &self,
        worker_id: &str,
        lease: Duration,
        max: usize,
    ) -> Result<Vec<ClaimedJob>> {
        // Which jobs come next: jobs whose worker died (their lease expired)
        // first, then the queued jobs due earliest (enqueue order, as
        // `run_after_ms` is the enqueue time until a retry pushes it back).
        // Each is a range scan on an index ((status, lease_until_ms) and
        // (status, run_after_ms, seq)): an `OR` of the two with
        // `ORDER BY seq` sorts every queued row on each claim, which made
        // claims slower the deeper the queue.
        const PG_PICKS: [&str; 2] = [
            concat!(expired_lease!("$1", "$2"), " FOR UPDATE SKIP LOCKED"),
            concat!(next_queued!("$1", "$2"), " FOR UPDATE SKIP LOCKED"),
        ];
        const MYSQL_PICKS: [&str; 2] = [
            concat!(expired_lease!("?", "?"), " FOR UPDATE SKIP LOCKED"),
            concat!(next_queued!("?", "?"), " FOR UPDATE SKIP LOCKED"),
        ];
        let now = self.now_ms();
        let until = now.saturating_add(duration_ms(lease));
        let limit = i64::try_from(max).unwrap_or(i64::MAX);
        let jobs = match &self.pool {
            super::Pool::Sqlite(pool) => {
                // SQLite has one writer at a time, shared with batch jobs
                // inserting request rows: an idle worker must not take the
                // write lock just to find nothing, so a plain read looks
                // first. The claim below checks again under the lock.
                let runnable: Option<i64> = sqlx::query_scalar(concat!(
                    "SELECT COALESCE((",
                    expired_lease!("$1", "1"),
                    "), (",
                    next_queued!("$1", "1"),
                    "))"
                ))
                .bind(now)
                .fetch_one(self.readers.as_ref().unwrap_or(pool))
                .await?;
                if runnable.is_none() {
                    return Ok(Vec::new());
                }
                // One statement picks and claims: the compound's LIMIT takes
                // expired leases before queued jobs. IMMEDIATE takes the
                // write lock up front: a deferred transaction that reads and
                // then writes can fail with SQLITE_BUSY at the upgrade
                // instead of waiting its turn.
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let rows = sqlx::query(concat!(
                    "UPDATE soapgate_jobs SET status = 'RUNNING', lease_owner = $1, \
                     lease_until_ms = $2, fencing_token = fencing_token + 1, \
                     attempts = attempts + 1, updated_at_ms = $3 \
                     WHERE seq IN (SELECT seq FROM (",
                    expired_lease!("$3", "$4"),
                    ") UNION ALL SELECT seq FROM (",
                    next_queued!("$3", "$4"),
                    ") LIMIT $4) RETURNING ",
                    job_columns!()
                ))
                .bind(worker_id)
                .bind(until)
                .bind(now)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
                let jobs = rows.iter().map(job_from_row).collect::<Result<Vec<_>>>()?;
                tx.commit().await?;
                jobs
            }
            super::Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let seqs = pick_seqs!(tx, PG_PICKS, now, limit);
                let rows = if seqs.is_empty() {
                    Vec::new()
                } else {
                    sqlx::query(concat!(
                        "UPDATE soapgate_jobs SET status = 'RUNNING', lease_owner = $1, \
                         lease_until_ms = $2, fencing_token = fencing_token + 1, \
                         attempts = attempts + 1, updated_at_ms = $3 WHERE seq = ANY($4) \
                         RETURNING ",
                        job_columns!()
                    ))
                    .bind(worker_id)
                    .bind(until)
                    .bind(now)
                    .bind(&seqs)
                    .fetch_all(&mut *tx)
                    .await?
                };
                let jobs = rows.iter().map(job_from_row).collect::<Result<Vec<_>>>()?;
                tx.commit().await?;
                jobs
            }
            super::Pool::MySql(pool) => {
                let mut tx = pool.begin().await?;
                let seqs = pick_seqs!(tx, MYSQL_PICKS, now, limit);
                let jobs = if seqs.is_empty() {
                    Vec::new()
                } else {
                    // MariaDB has no UPDATE ... RETURNING: update, then read
                    // the rows back under the same locks.
                    let list = vec!["?"; seqs.len()].join(", ");
                    let update = format!(
                        "UPDATE soapgate_jobs SET status = 'RUNNING', lease_owner = ?, \
                         lease_until_ms = ?, fencing_token = fencing_token + 1, \
                         attempts = attempts + 1, updated_at_ms = ? WHERE seq IN ({list})"
                    );
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(update))
                        .bind(worker_id)
                        .bind(until)
                        .bind(now);
                    for seq in &seqs {
                        query = query.bind(seq);
                    }
                    query.execute(&mut *tx).await?;
                    let select = format!(
                        concat!(
                            "SELECT ",
                            job_columns!(),
                            " FROM soapgate_jobs WHERE seq IN ({})"
                        ),
                        list
                    );
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(select));
                    for seq in &seqs {
                        query = query.bind(seq);
                    }
                    let rows = query.fetch_all(&mut *tx).await?;
                    rows.iter().map(job_from_row).collect::<Result<Vec<_>>>()?
                };
                tx.commit().await?;
                jobs
            }
        };
        Ok(jobs
            .into_iter()
            .map(|job| ClaimedJob {
                token: job.fencing_token,
                job,
            })
            .collect())
    }

    /// Extends the lease of a job still held with `token`. False when the
    /// token is stale (the job was re-claimed) or the job already finished:
    /// the worker should stop working on it.
    pub async fn heartbeat(&self, id: &JobId, token: i64, lease: Duration) -> Result<bool> {
        let now = self.now_ms();
        let until = now.saturating_add(duration_ms(lease));
        let affected = on_backend!(self, |pool, dollar| {
            let sql = if dollar {
                "UPDATE soapgate_jobs SET lease_until_ms = $1, updated_at_ms = $2 \
                 WHERE id = $3 AND fencing_token = $4 AND status = 'RUNNING'"
            } else {
                "UPDATE soapgate_jobs SET lease_until_ms = ?, updated_at_ms = ? \
                 WHERE id = ? AND fencing_token = ? AND status = 'RUNNING'"
            };
            sqlx::query(sql)
                .bind(until)
                .bind(now)
                .bind(id.as_str())
                .bind(token)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(affected == 1)
    }

    /// Records the result of a job held with `token` and marks it DONE.
    /// True when this call recorded it; false when the token is stale or the
    /// job already left RUNNING (a repeat of this call, or another worker's
    /// result), in which case nothing changed.
    ///
    /// A job whose source [writes a result row](JobSource::writes_result_row)
    /// gets its `soapgate_results` row in the same transaction as the fenced
    /// update, so a worker dying between the two cannot leave a DONE job
    /// without its row (or a row for a job that is still RUNNING).
    pub async fn complete(&self, id: &JobId, token: i64, result: &JobResult) -> Result<bool> {
        self.finish(id, token, Finish::Done(result), None).await
    }

    /// Records a failed run of a job held with `token`. With `retry_after`
    /// the job goes back to QUEUED and becomes claimable after that delay;
    /// without, it ends FAILED with the failure as its fault (and its
    /// `soapgate_results` row, in the same transaction, as for
    /// [`Store::complete`]). Fenced and idempotent like `complete`.
    pub async fn fail(
        &self,
        id: &JobId,
        token: i64,
        failure: &JobFailure,
        retry_after: Option<Duration>,
    ) -> Result<bool> {
        let finish = match retry_after {
            Some(delay) => Finish::Retry(failure, delay),
            None => Finish::Failed(failure),
        };
        self.finish(id, token, finish, None).await
    }

    /// Gives a job held with `token` back to the queue at once, without
    /// counting the run as an attempt: a worker shutting down with work in
    /// flight. Fenced like [`Store::complete`]; false when the token is
    /// stale or the job already finished.
    pub async fn release(&self, id: &JobId, token: i64) -> Result<bool> {
        let now = self.now_ms();
        let affected = on_backend!(self, |pool, dollar| {
            let sql = numbered(
                dollar,
                "UPDATE soapgate_jobs SET status = 'QUEUED', run_after_ms = ?, \
                 attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, \
                 lease_owner = NULL, lease_until_ms = NULL, updated_at_ms = ? \
                 WHERE id = ? AND fencing_token = ? AND status = 'RUNNING'",
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(now)
                .bind(now)
                .bind(id.as_str())
                .bind(token)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(affected == 1)
    }

    /// How many jobs are in each status (QUEUED, RUNNING, DONE, FAILED),
    /// for logs, health checks and tests.
    pub async fn job_counts(&self) -> Result<JobCounts> {
        let rows: Vec<(String, i64)> = on_backend_read!(self, |pool, _dollar| {
            sqlx::query_as("SELECT status, COUNT(*) FROM soapgate_jobs GROUP BY status")
                .fetch_all(pool)
                .await?
        });
        let mut counts = JobCounts::default();
        for (status, n) in rows {
            match JobStatus::parse(&status)? {
                JobStatus::Queued => counts.queued = n,
                JobStatus::Running => counts.running = n,
                JobStatus::Done => counts.done = n,
                JobStatus::Failed => counts.failed = n,
            }
        }
        Ok(counts)
    }

    /// Records the ends of several runs in one transaction (one commit,
    /// and on SQLite one turn of the write lock, for the lot): each is
    /// fenced exactly as by [`Store::complete`] and [`Store::fail`], and
    /// the answer for each says whether it was recorded. When the
    /// transaction fails as a whole, each end is tried on its own, so one
    /// bad row costs only its own write.
    pub async fn finish_all(&self, ends: &[JobFinish]) -> Vec<Result<bool>> {
        if ends.len() > 1 {
            match self.finish_group(ends).await {
                Ok(recorded) => return recorded.into_iter().map(Ok).collect(),
                Err(e) => {
                    tracing::debug!(error = %e, jobs = ends.len(), "group result write failed; writing one by one");
                }
            }
        }
        let mut out = Vec::with_capacity(ends.len());
        for end in ends {
            out.push(
                self.finish(
                    &end.id,
                    end.token,
                    end.end.as_finish(),
                    end.reply_to.as_deref(),
                )
                .await,
            );
        }
        out
    }

    async fn finish_group(&self, ends: &[JobFinish]) -> Result<Vec<bool>> {
        for end in ends {
            for (column, _) in end.end.as_finish().columns() {
                check_result_column(column)?;
            }
        }
        let now = self.now_ms();
        let mut recorded = Vec::with_capacity(ends.len());
        match &self.pool {
            super::Pool::Sqlite(pool) => {
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                for end in ends {
                    let finish = end.end.as_finish();
                    recorded.push(finish_returning!(
                        tx,
                        &finish,
                        now,
                        &end.id,
                        end.token,
                        end.reply_to.as_deref()
                    ));
                }
                tx.commit().await?;
            }
            super::Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                for end in ends {
                    let finish = end.end.as_finish();
                    recorded.push(finish_returning!(
                        tx,
                        &finish,
                        now,
                        &end.id,
                        end.token,
                        end.reply_to.as_deref()
                    ));
                }
                tx.commit().await?;
            }
            super::Pool::MySql(pool) => {
                let mut tx = pool.begin().await?;
                for end in ends {
                    let finish = end.end.as_finish();
                    recorded.push(
                        finish_mysql_in(
                            &mut tx,
                            &finish,
                            now,
                            &end.id,
                            end.token,
                            end.reply_to.as_deref(),
                        )
                        .await?,
                    );
                }
                tx.commit().await?;
            }
        }
        Ok(recorded)
    }

    async fn finish(
        &self,
        id: &JobId,
        token: i64,
        finish: Finish<'_>,
        reply_to: Option<&str>,
    ) -> Result<bool> {
        for (column, _) in finish.columns() {
            check_result_column(column)?;
        }
        let now = self.now_ms();
        match &self.pool {
            super::Pool::Sqlite(pool) => {
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let recorded = finish_returning!(tx, &finish, now, id, token, reply_to);
                if recorded {
                    tx.commit().await?;
                }
                Ok(recorded)
            }
            super::Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let recorded = finish_returning!(tx, &finish, now, id, token, reply_to);
                if recorded {
                    tx.commit().await?;
                }
                Ok(recorded)
            }
            super::Pool::MySql(pool) => {
                // Two jobs with the same correlation id finishing at once can
                // both pass the NOT EXISTS check; the loser's unique violation
                // rolls its transaction back and the second try sees the row.
                let mut tries = 0;
                loop {
                    tries += 1;
                    let mut tx = pool.begin().await?;
                    match finish_mysql_in(&mut tx, &finish, now, id, token, reply_to).await {
                        Ok(true) => {
                            tx.commit().await?;
                            return Ok(true);
                        }
                        Err(StoreError::Database(e)) if is_unique_violation(&e) && tries < 3 => {
                            continue;
                        }
                        other => return other,
                    }
                }
            }
        }
    }
}

/// [`finish_returning!`] for MySQL/MariaDB, which has no `UPDATE ...
/// RETURNING`: update, then read back what the row lock keeps ours.
async fn finish_mysql_in(
    tx: &mut sqlx::Transaction<'_, sqlx::MySql>,
    finish: &Finish<'_>,
    now: i64,
    id: &JobId,
    token: i64,
    reply_to: Option<&str>,
) -> Result<bool> {
    let update = finish_update(finish);
    let affected = bind_finish(
        sqlx::query(sqlx::AssertSqlSafe(update)),
        finish,
        now,
        id,
        token,
    )
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if affected != 1 {
        return Ok(false);
    }
    if finish.is_final() {
        let (source, correlation_id): (String, String) =
            sqlx::query_as("SELECT source, correlation_id FROM soapgate_jobs WHERE id = ?")
                .bind(id.as_str())
                .fetch_one(&mut **tx)
                .await?;
        if JobSource::parse(&source)?.writes_result_row() {
            let sql = result_insert(false, finish);
            let inserted = bind_result_row(sqlx::query(sqlx::AssertSqlSafe(sql)), finish, id)
                .execute(&mut **tx)
                .await?
                .rows_affected();
            warn_if_duplicate(inserted, &correlation_id, id);
        }
        if let Some(url) = reply_to {
            sqlx::query(super::outbox::INSERT_REPLY_QMARK)
                .bind(id.as_str())
                .bind(url)
                .bind(now.saturating_add(super::outbox::REPLY_SENDER_WINDOW_MS))
                .bind(now)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(true)
}

/// How one run of a claimed job ended, owned, for [`Store::finish_all`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobEnd {
    /// As [`Store::complete`].
    Done(JobResult),
    /// As [`Store::fail`] without a retry: the job ends FAILED.
    Failed(JobFailure),
    /// As [`Store::fail`] with a retry after the delay.
    Retry(JobFailure, Duration),
}

impl JobEnd {
    /// `DONE`, `RETRY` or `FAILED`: for log lines.
    pub fn label(&self) -> &'static str {
        match self {
            JobEnd::Done(_) => "DONE",
            JobEnd::Retry(..) => "RETRY",
            JobEnd::Failed(_) => "FAILED",
        }
    }

    fn as_finish(&self) -> Finish<'_> {
        match self {
            JobEnd::Done(result) => Finish::Done(result),
            JobEnd::Failed(failure) => Finish::Failed(failure),
            JobEnd::Retry(failure, delay) => Finish::Retry(failure, *delay),
        }
    }
}

/// The end of a run of the job `id`, held with `token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFinish {
    pub id: JobId,
    pub token: i64,
    pub end: JobEnd,
    /// Where the job's reply goes (SQS): a final end writes the reply's
    /// outbox row in the same transaction as the result, so no crash can
    /// leave a result without its reply.
    pub reply_to: Option<String>,
}

/// Jobs per status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobCounts {
    pub queued: i64,
    pub running: i64,
    pub done: i64,
    pub failed: i64,
}

/// How a run ends.
#[derive(Debug, Clone, Copy)]
enum Finish<'a> {
    Done(&'a JobResult),
    Failed(&'a JobFailure),
    Retry(&'a JobFailure, Duration),
}

impl Finish<'_> {
    /// Whether the job leaves the queue for good (and gets its result row).
    fn is_final(&self) -> bool {
        !matches!(self, Finish::Retry(..))
    }

    fn columns(&self) -> &[(String, Option<String>)] {
        match self {
            Finish::Done(result) => &result.columns,
            Finish::Failed(_) | Finish::Retry(..) => &[],
        }
    }
}

/// The fenced UPDATE of the job row, with `?` placeholders bound by
/// [`bind_finish`] in order: the values, then `updated_at_ms`, `id`, token.
fn finish_update(finish: &Finish<'_>) -> String {
    let set = match finish {
        Finish::Done(_) => {
            "status = 'DONE', result_payload = ?, model = ?, input_tokens = ?, \
             output_tokens = ?"
        }
        Finish::Failed(_) => {
            "status = 'FAILED', fault_code = ?, fault_text = ?, last_error = ?, \
             result_payload = ?"
        }
        Finish::Retry(..) => "status = 'QUEUED', run_after_ms = ?, last_error = ?",
    };
    format!(
        "UPDATE soapgate_jobs SET {set}, lease_owner = NULL, lease_until_ms = NULL, \
         updated_at_ms = ? WHERE id = ? AND fencing_token = ? AND status = 'RUNNING'"
    )
}

fn bind_finish<'q, DB, Q>(query: Q, finish: &Finish<'q>, now: i64, id: &'q JobId, token: i64) -> Q
where
    DB: sqlx::Database,
    Q: Bindable<'q, DB>,
    i64: sqlx::Encode<'q, DB> + Type<DB>,
    Option<i64>: sqlx::Encode<'q, DB> + Type<DB>,
    &'q str: sqlx::Encode<'q, DB> + Type<DB>,
    Option<&'q str>: sqlx::Encode<'q, DB> + Type<DB>,
{
    let query = match *finish {
        Finish::Done(result) => query
            .bind_value(result.payload.as_str())
            .bind_value(result.model.as_deref())
            .bind_value(result.input_tokens)
            .bind_value(result.output_tokens),
        Finish::Failed(failure) => query
            .bind_value(failure.fault_code.as_str())
            .bind_value(failure.fault_text.as_str())
            .bind_value(failure.fault_text.as_str())
            .bind_value(failure.payload.as_deref()),
        Finish::Retry(failure, delay) => query
            .bind_value(now.saturating_add(duration_ms(delay)))
            .bind_value(failure.fault_text.as_str()),
    };
    query
        .bind_value(now)
        .bind_value(id.as_str())
        .bind_value(token)
}

/// The insert-if-absent of the job's `soapgate_results` row, copied from
/// the job row just updated (same transaction), plus the mapping's flat
/// result columns. Placeholders: the flat values, then the job id.
fn result_insert(dollar: bool, finish: &Finish<'_>) -> String {
    let mut columns = String::from(
        "correlation_id, status, payload, fault_code, fault_text, model, input_tokens, \
         output_tokens",
    );
    let mut values = String::from(
        "j.correlation_id, j.status, NULLIF(j.result_payload, ''), j.fault_code, \
         j.fault_text, j.model, j.input_tokens, j.output_tokens",
    );
    for (name, _) in finish.columns() {
        columns.push_str(", ");
        columns.push_str(name);
        values.push_str(", ?");
    }
    let sql = if dollar {
        // SQLite and PostgreSQL: the unique key decides, atomically.
        format!(
            "INSERT INTO soapgate_results ({columns}) SELECT {values} \
             FROM soapgate_jobs j WHERE j.id = ? ON CONFLICT (correlation_id) DO NOTHING"
        )
    } else {
        format!(
            "INSERT INTO soapgate_results ({columns}) SELECT {values} \
             FROM soapgate_jobs j WHERE j.id = ? AND NOT EXISTS \
             (SELECT 1 FROM soapgate_results r WHERE r.correlation_id = j.correlation_id)"
        )
    };
    numbered(dollar, &sql)
}

fn bind_result_row<'q, DB, Q>(query: Q, finish: &'q Finish<'q>, id: &'q JobId) -> Q
where
    DB: sqlx::Database,
    Q: Bindable<'q, DB>,
    &'q str: sqlx::Encode<'q, DB> + Type<DB>,
    Option<&'q str>: sqlx::Encode<'q, DB> + Type<DB>,
{
    let mut query = query;
    for (_, value) in finish.columns() {
        query = query.bind_value(value.as_deref());
    }
    query.bind_value(id.as_str())
}

fn warn_if_duplicate(inserted: u64, correlation_id: &str, id: &JobId) {
    if inserted == 0 {
        tracing::warn!(
            correlation_id,
            job_id = %id,
            "a result row for this correlation id already exists; it stands and this job's result is kept only on the job"
        );
    }
}

/// `query` and `query_as` alike, so one binding function serves both.
trait Bindable<'q, DB: sqlx::Database>: Sized {
    fn bind_value<T: 'q + sqlx::Encode<'q, DB> + Type<DB>>(self, value: T) -> Self;
}

impl<'q, DB: sqlx::Database> Bindable<'q, DB>
    for sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>
{
    fn bind_value<T: 'q + sqlx::Encode<'q, DB> + Type<DB>>(self, value: T) -> Self {
        self.bind(value)
    }
}

impl<'q, DB: sqlx::Database, O> Bindable<'q, DB>
    for sqlx::query::QueryAs<'q, DB, O, <DB as sqlx::Database>::Arguments>
{
    fn bind_value<T: 'q + sqlx::Encode<'q, DB> + Type<DB>>(self, value: T) -> Self {
        self.bind(value)
    }
}

/// `sql` with its `?` placeholders numbered `$1, $2, ...` for SQLite and
/// PostgreSQL (`dollar`), or as is for MySQL. No statement passed here has
/// a `?` inside a literal.
pub(super) fn numbered(dollar: bool, sql: &str) -> String {
    if !dollar {
        return sql.to_owned();
    }
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// The columns of `soapgate_results` that are part of the batch contract;
/// a mapping's flat result columns may not reuse them.
pub const RESULT_CONTRACT_COLUMNS: &[&str] = &[
    "id",
    "correlation_id",
    "status",
    "payload",
    "fault_code",
    "fault_text",
    "model",
    "input_tokens",
    "output_tokens",
    "created_at",
    "completed_at",
];

/// Whether `name` may be a flat result column: `[a-z_][a-z0-9_]{0,62}` and
/// not a contract column. Column names are written into SQL, so this check
/// stands between a mapping file and the statement text.
pub fn is_valid_result_column(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && (bytes[0].is_ascii_lowercase() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
        && !RESULT_CONTRACT_COLUMNS.contains(&name)
}

pub(super) fn check_result_column(name: &str) -> Result<()> {
    if is_valid_result_column(name) {
        Ok(())
    } else {
        Err(StoreError::InvalidColumn(name.to_owned()))
    }
}
