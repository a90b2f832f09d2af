//! Everything async: a call that does not wait for its answer becomes a job
//! in the store, and a worker runs it later through the same pipeline as a
//! synchronous call. The job row is the source of truth; a queue only
//! delivers.
//!
//! - [`call`]: what a prepared call gets — answered now through the
//!   pipeline, queued as a job, or (a poll) answered from its job.
//! - [`tickets`]: the HTTP side of async calls — record the job, answer a
//!   ticket, answer `Get{Op}Result` from the job row.
//! - [`payload`]: stored requests and results, read and written in one
//!   place.
//! - [`run`]: one run of a claimed job, the same for every transport —
//!   gate for its tenant, execute through the pipeline, record usage
//!   ([`JobRunner`]).
//! - [`executor`]: the seam a queue transport calls ([`JobExecutor`]), so
//!   transports know nothing of mappings or models.
//! - [`writer`]: the fenced result writer every transport of a process
//!   shares ([`ResultWriter`]).
//! - [`pool`]: `queue.kind = "database"` — the jobs table is the queue
//!   ([`WorkerPool`]), and the polling-table intake.
//! - [`sqs`]: `queue.kind = "sqs"` — the outbox relay and the consumers.
//! - [`batch`]: jobs of operations with `batch:` cut into batches and
//!   sent to batch inference ([`BatchDriver`]), with `queue.kind =
//!   "database"`.
//!
//! The job layer's settings are `config::{QueueSettings, WorkerSettings,
//! SqsSettings}`. It talks to the store, the live snapshot and the
//! pipeline; it knows no SQL and no HTTP.

pub mod batch;
pub mod call;
pub mod executor;
pub mod payload;
pub mod pool;
pub mod run;
pub mod sqs;
mod steps;
pub mod tickets;
pub mod writer;

pub use batch::BatchDriver;
pub use executor::{Admission, Execution, JobExecutor, Route};
pub use pool::WorkerPool;
pub use run::{
    BatchAnswer, JobRunner, Run, RunFailure, StoredCall, execute, render_stored, run_stored,
};
pub use writer::ResultWriter;
