//! Read-only figures for `/metrics` and `/readyz`, queried at scrape time:
//! jobs by status, the depth of the queue, and whether the database
//! answers at all.

use super::{Result, Store, on_backend, on_backend_read};

/// What the jobs table holds now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobStats {
    /// `(status, count)` for every status present.
    pub by_status: Vec<(String, i64)>,
    /// QUEUED jobs plus polling-table requests no worker picked up yet.
    pub queue_depth: i64,
}

impl Store {
    /// One round trip: does the database answer?
    pub async fn ping(&self) -> Result<()> {
        on_backend!(self, |pool, _dollar| {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    /// Jobs by status and the queue depth.
    pub async fn job_stats(&self) -> Result<JobStats> {
        on_backend_read!(self, |pool, _dollar| {
            let by_status: Vec<(String, i64)> = sqlx::query_as(
                "SELECT status, COUNT(*) FROM soapgate_jobs GROUP BY status ORDER BY status",
            )
            .fetch_all(pool)
            .await?;
            let waiting: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM soapgate_requests WHERE picked_up_at IS NULL",
            )
            .fetch_one(pool)
            .await?;
            let queued = by_status
                .iter()
                .find(|(s, _)| s == "QUEUED")
                .map_or(0, |(_, n)| *n);
            Ok(JobStats {
                by_status,
                queue_depth: queued + waiting,
            })
        })
    }
}
