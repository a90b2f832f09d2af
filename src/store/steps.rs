//! The finished steps of jobs (`soapgate_job_steps`). An operation with
//! several model calls runs them as steps, some once per item of a list;
//! each finished step of an async job keeps its result beside the job, so
//! a job re-claimed after its worker died resumes at its first unfinished
//! step instead of calling the model again for the ones already answered.
//!
//! A step is written only while the job is RUNNING under the writer's
//! fencing token, in the same statement as the fence check, like
//! [`Store::complete`]; a (job, step, item) keeps the first result written.

use super::jobs::{JobId, numbered};
use super::{Backend, Result, Store, StoreError, on_backend, on_backend_read};

/// `item` of a step that is not per item.
const NO_ITEM: i64 = -1;

/// A finished step of a job (per item for a `for_each` step).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepResult {
    pub step: String,
    /// The item's index in its list; `None` for a step that is not per item.
    pub item: Option<u32>,
    /// The step's answer, as JSON.
    pub result: String,
}

impl Store {
    /// Every finished step of the job, in (step, item) order: step names
    /// byte by byte (the same on every backend), and within a step the
    /// whole-step result before the items, items by index. Empty for a job
    /// with no finished step, or no such job.
    pub async fn step_results(&self, job: &JobId) -> Result<Vec<StepResult>> {
        let rows: Vec<(String, i64, String)> = on_backend_read!(self, |pool, dollar| {
            sqlx::query_as(sqlx::AssertSqlSafe(numbered(
                dollar,
                "SELECT step, item, result FROM soapgate_job_steps WHERE job_id = ?",
            )))
            .bind(job.as_str())
            .fetch_all(pool)
            .await?
        });
        let mut steps = rows
            .into_iter()
            .map(|(step, item, result)| {
                let item = match item {
                    NO_ITEM => None,
                    n => Some(u32::try_from(n).map_err(|_| StoreError::Corrupt {
                        column: "item",
                        value: n.to_string(),
                    })?),
                };
                Ok(StepResult { step, item, result })
            })
            .collect::<Result<Vec<_>>>()?;
        steps.sort_by(|a, b| (a.step.as_str(), a.item).cmp(&(b.step.as_str(), b.item)));
        Ok(steps)
    }

    /// Keeps one finished step's result, only while the job is RUNNING
    /// under `token` (fenced like `complete`): false when the lease was
    /// lost (nothing written). Saving the same (step, item) again keeps the
    /// first result and returns true (idempotent; a step answered twice by
    /// two workers keeps one answer).
    ///
    /// The insert reads the job row under a share lock (on the servers), so
    /// it is ordered against a claim: either it commits before the claim
    /// changes the token, and the next holder's [`Store::step_results`]
    /// sees it, or it waits for the claim and then finds a stale token.
    pub async fn save_step(
        &self,
        job: &JobId,
        token: i64,
        step: &str,
        item: Option<u32>,
        result: &str,
    ) -> Result<bool> {
        let item = item.map_or(NO_ITEM, i64::from);
        let now = self.now_ms();
        let (lock, on_duplicate) = match self.backend() {
            Backend::Sqlite => ("", "ON CONFLICT DO NOTHING"),
            Backend::Postgres => ("FOR SHARE", "ON CONFLICT DO NOTHING"),
            Backend::MySql => (
                "LOCK IN SHARE MODE",
                "ON DUPLICATE KEY UPDATE job_id = job_id",
            ),
        };
        let inserted = on_backend!(self, |pool, dollar| {
            let sql = numbered(
                dollar,
                &format!(
                    "INSERT INTO soapgate_job_steps (job_id, step, item, result, created_at_ms) \
                     SELECT id, ?, ?, ?, ? FROM soapgate_jobs \
                     WHERE id = ? AND fencing_token = ? AND status = 'RUNNING' {lock} \
                     {on_duplicate}"
                ),
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(step)
                .bind(item)
                .bind(result)
                .bind(now)
                .bind(job.as_str())
                .bind(token)
                .execute(pool)
                .await?
                .rows_affected()
        });
        if inserted > 0 {
            return Ok(true);
        }
        // Nothing written: the fence failed, or the step was already kept.
        // A token that failed the fence never passes it again (claims only
        // raise it, and a job leaves RUNNING under a token for good), so a
        // fence that holds now held for the insert: the step was a
        // duplicate. (On MySQL sqlx asks for found rows, so a duplicate the
        // fence let through already counted one row and never gets here.)
        let held: Option<i64> = on_backend!(self, |pool, dollar| {
            sqlx::query_scalar(sqlx::AssertSqlSafe(numbered(
                dollar,
                "SELECT fencing_token FROM soapgate_jobs \
                 WHERE id = ? AND fencing_token = ? AND status = 'RUNNING'",
            )))
            .bind(job.as_str())
            .bind(token)
            .fetch_optional(pool)
            .await?
        });
        Ok(held.is_some())
    }
}
