//! The job layer's settings: `[queue]` (which queue carries jobs, and
//! `[queue.sqs]`) and `[worker]` (the database queue's workers). Plain
//! data with defaults and checks; the job layer reads them from here.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct QueueSettings {
    /// `database` (the jobs table is the queue) or `sqs`.
    pub kind: QueueKind,
    /// `[queue.sqs]`: the request and reply queues, for `kind = "sqs"`.
    pub sqs: SqsSettings,
}

/// The queue jobs travel on.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum QueueKind {
    /// The jobs table itself, claimed with `FOR UPDATE SKIP LOCKED`
    /// (PostgreSQL, MySQL/MariaDB) or inside `BEGIN IMMEDIATE` (SQLite).
    #[default]
    Database,
    /// Amazon SQS: the outbox relay sends job ids to the request queue and
    /// workers long-poll it (`[queue.sqs]`).
    Sqs,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerSettings {
    /// Run workers in this process (`serve` also takes `--no-workers`).
    pub enabled: bool,
    /// Jobs run at the same time per process.
    pub concurrency: usize,
    /// How long a claimed job is ours without a heartbeat; a job whose
    /// worker died is claimed again after it.
    pub lease_ms: u64,
    /// Heartbeat period while the model works; unset: a third of the lease.
    pub heartbeat_ms: Option<u64>,
    /// Runs per job (claims included) before a retryable failure is final.
    pub max_attempts: u32,
    /// Delay before the second attempt; doubled each time, with jitter.
    pub backoff_base_ms: u64,
    /// Longest delay between attempts.
    pub backoff_cap_ms: u64,
    /// How often an idle worker looks for runnable jobs.
    pub poll_interval_ms: u64,
    /// On shutdown, how long in-flight jobs may take to finish before they
    /// are released to other workers.
    pub shutdown_grace_ms: u64,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            enabled: true,
            concurrency: 8,
            lease_ms: 60_000,
            heartbeat_ms: None,
            max_attempts: 5,
            backoff_base_ms: 1_000,
            backoff_cap_ms: 60_000,
            poll_interval_ms: 250,
            shutdown_grace_ms: 10_000,
        }
    }
}

impl WorkerSettings {
    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms.max(1))
    }

    pub fn heartbeat(&self) -> Duration {
        let ms = self.heartbeat_ms.unwrap_or(self.lease_ms / 3);
        Duration::from_millis(ms.clamp(1, self.lease_ms.max(1)))
    }

    pub fn backoff_base(&self) -> Duration {
        Duration::from_millis(self.backoff_base_ms)
    }

    pub fn backoff_cap(&self) -> Duration {
        Duration::from_millis(self.backoff_cap_ms.max(self.backoff_base_ms))
    }

    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms.max(1))
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}

/// `[queue.sqs]`: where the queues are and how to poll them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SqsSettings {
    /// The queue jobs are delivered on (required for `kind = "sqs"`).
    pub request_queue_url: Option<String>,
    /// Where result envelopes go for every job, unless a message names its
    /// own `ReplyTo`. Unset: results go only to the store.
    pub reply_queue_url: Option<String>,
    /// Long-poll wait per `ReceiveMessage`, 0 to 20 seconds.
    pub wait_time_seconds: u32,
    /// Seconds a received message stays hidden; extended while the model
    /// works, so it only needs to outlast a heartbeat.
    pub visibility_timeout: u32,
    /// Messages per receive, send and delete, 1 to 10.
    pub batch_size: u32,
    /// Receive loops per process. They share `pollers × batch_size` job
    /// slots, and each receives only as many messages as there are free
    /// slots: a slow job holds its own slot, not its batch.
    pub pollers: u32,
    /// Receives before a job that keeps failing ends FAILED. Set the request
    /// queue's redrive `maxReceiveCount` to the same number, so the message
    /// lands in the DLQ as the job fails.
    pub max_attempts: u32,
    /// Reconciliation: a job QUEUED (or RUNNING under an ended lease) this
    /// many seconds without news and with no message on its way is sent
    /// again (its message may be gone: a purged queue, a message past its
    /// retention). 0 turns it off. Default 300, ten default visibility
    /// timeouts.
    pub reconcile_after_secs: u32,
    /// Overrides `AWS_REGION` / the profile's region.
    pub region: Option<String>,
    /// Overrides `AWS_ENDPOINT_URL_SQS` (an emulator, a VPC endpoint).
    pub endpoint_url: Option<String>,
}

impl Default for SqsSettings {
    fn default() -> Self {
        SqsSettings {
            request_queue_url: None,
            reply_queue_url: None,
            wait_time_seconds: 20,
            visibility_timeout: 30,
            batch_size: 10,
            pollers: 4,
            max_attempts: 5,
            reconcile_after_secs: 300,
            region: None,
            endpoint_url: None,
        }
    }
}

impl SqsSettings {
    /// Checks the values SQS would refuse, naming the key.
    pub fn validate(&self) -> Result<(), SqsSetupError> {
        let bad = |key: &'static str, why: &'static str| Err(SqsSetupError::Invalid { key, why });
        if self
            .request_queue_url
            .as_deref()
            .is_none_or(|u| u.trim().is_empty())
        {
            return bad(
                "queue.sqs.request_queue_url",
                "required when queue.kind = \"sqs\"",
            );
        }
        if self.wait_time_seconds > 20 {
            return bad("queue.sqs.wait_time_seconds", "must be 0 to 20");
        }
        if !(1..=43_200).contains(&self.visibility_timeout) {
            return bad("queue.sqs.visibility_timeout", "must be 1 to 43200 seconds");
        }
        if !(1..=10).contains(&self.batch_size) {
            return bad("queue.sqs.batch_size", "must be 1 to 10");
        }
        if self.pollers == 0 {
            return bad("queue.sqs.pollers", "must be at least 1");
        }
        if self.max_attempts == 0 {
            return bad("queue.sqs.max_attempts", "must be at least 1");
        }
        Ok(())
    }

    pub fn visibility(&self) -> Duration {
        Duration::from_secs(u64::from(self.visibility_timeout))
    }

    /// The job lease that goes with a visibility timeout: shorter, so that
    /// when a worker dies its job is claimable again by the time its
    /// message reappears.
    pub fn lease(&self) -> Duration {
        self.visibility().mul_f64(0.75)
    }

    /// How long a job may go without news before it is sent again; `None`
    /// when reconciliation is off.
    pub fn reconcile_after(&self) -> Option<Duration> {
        (self.reconcile_after_secs > 0)
            .then(|| Duration::from_secs(u64::from(self.reconcile_after_secs)))
    }

    /// How often the reconciler looks: a quarter of `reconcile_after`,
    /// between 1 and 60 seconds.
    pub fn reconcile_every(&self) -> Duration {
        self.reconcile_after()
            .map_or(Duration::from_secs(60), |after| {
                (after / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
            })
    }

    /// How often a running job's visibility and lease are extended.
    pub fn heartbeat_every(&self) -> Duration {
        (self.visibility() / 3).max(Duration::from_millis(300))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SqsSetupError {
    #[error("{key}: {why}")]
    Invalid {
        key: &'static str,
        why: &'static str,
    },
    #[error("no AWS region for SQS: set queue.sqs.region, AWS_REGION, or a profile's region")]
    NoRegion,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_before_any_call() {
        let mut s = SqsSettings::default();
        assert!(s.validate().is_err(), "a request queue URL is required");
        s.request_queue_url = Some("http://localhost:4566/000000000000/requests".into());
        assert!(s.validate().is_ok());
        s.wait_time_seconds = 21;
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("wait_time_seconds"), "{err}");
        s.wait_time_seconds = 20;
        s.batch_size = 11;
        assert!(s.validate().unwrap_err().to_string().contains("batch_size"));
    }

    #[test]
    fn the_lease_ends_before_the_visibility() {
        let s = SqsSettings {
            visibility_timeout: 2,
            ..SqsSettings::default()
        };
        assert!(s.lease() < s.visibility());
        assert!(s.heartbeat_every() < s.lease());
    }

    #[test]
    fn reconciliation_is_on_by_default_and_looks_often_enough() {
        let s = SqsSettings::default();
        assert_eq!(s.reconcile_after(), Some(Duration::from_secs(300)));
        assert!(s.reconcile_after() > Some(s.visibility() * 3));
        assert_eq!(s.reconcile_every(), Duration::from_secs(60));
        let short = SqsSettings {
            reconcile_after_secs: 2,
            ..SqsSettings::default()
        };
        assert_eq!(short.reconcile_every(), Duration::from_secs(1));
        let off = SqsSettings {
            reconcile_after_secs: 0,
            ..SqsSettings::default()
        };
        assert_eq!(off.reconcile_after(), None);
    }
}

/// `[batch]`: how jobs of operations with `batch:` reach Bedrock's batch
/// inference (S3 and the control plane), and how often their batches are
/// cut and looked after. Only with `queue.kind = "database"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchSettings {
    /// Overrides `AWS_ENDPOINT_URL_BEDROCK` (the control plane; with
    /// `emulator = true`, the emulator serves it).
    pub endpoint_url: Option<String>,
    /// Overrides `AWS_ENDPOINT_URL_S3`; an S3 reached this way is addressed
    /// path-style.
    pub s3_endpoint_url: Option<String>,
    /// How often waiting jobs are counted for a cut and batches whose next
    /// step is due are taken.
    pub tick_ms: u64,
    /// First wait between two looks at a batch job in progress; doubled
    /// after each, up to `poll_max_ms`.
    pub poll_initial_ms: u64,
    pub poll_max_ms: u64,
    /// How long a batch step is one process's; a batch whose process died
    /// is taken up by another after it.
    pub lease_ms: u64,
    /// The service's time limit for a batch job, 24 to 168 hours.
    pub timeout_hours: u32,
    /// Batch answers checked and written at the same time (repairs go on
    /// demand).
    pub concurrency: usize,
}

impl Default for BatchSettings {
    fn default() -> Self {
        BatchSettings {
            endpoint_url: None,
            s3_endpoint_url: None,
            tick_ms: 5_000,
            poll_initial_ms: 30_000,
            poll_max_ms: 300_000,
            lease_ms: 120_000,
            timeout_hours: 24,
            concurrency: 16,
        }
    }
}

impl BatchSettings {
    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.tick_ms.max(1))
    }

    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms.max(1))
    }

    /// The wait before the next look at a batch job looked at `polls`
    /// times.
    pub fn poll_after(&self, polls: i64) -> Duration {
        let shift = u32::try_from(polls.clamp(0, 20)).unwrap_or(20);
        let ms = self.poll_initial_ms.max(1).saturating_mul(1u64 << shift);
        Duration::from_millis(ms.min(self.poll_max_ms.max(self.poll_initial_ms.max(1))))
    }
}
