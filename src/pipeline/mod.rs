//! Running one SOAP call, transport-agnostic: the HTTP handler and the job
//! workers hand in bytes plus what their transport said, and get back a
//! payload or a [`GatewayError`](crate::error::GatewayError). By stage:
//!
//! - [`prepare`] (`prepare.rs`) reads, dispatches and validates; as its two
//!   halves [`read_envelope`] and [`dispatch`], between which HTTP
//!   authenticates a tenant.
//! - [`run`] (`run.rs`) executes the operation: choose the variant, render,
//!   cache, the target chain under the deadline, repair, failure policy;
//!   `shadow.rs` runs a sampled call's shadow variant in the background.
//! - [`call_chain`] (`chain.rs`) is one request down the mapping's targets.
//! - [`Outcome`] (`outcome.rs`) is what went into the answer, for the log
//!   line, the metrics and usage records.
//!
//! Between `prepare` and `run` a caller can check auth or queue a job
//! instead (`jobs::call`).

mod chain;
mod outcome;
mod prepare;
mod run;
mod shadow;

pub use chain::{ChainPolicy, call_chain};
pub use outcome::{
    Attempt, AttemptEnd, Degraded, DegradedBy, Outcome, Reply, StepEnd, StepRun, outcome_label,
    record_metrics,
};
pub use prepare::{
    CallContext, Inbound, Prepared, dispatch, new_correlation_id, prepare, read_envelope,
};
pub use run::{Tries, call_step, deadline_passed, degrade, run, run_answered};
