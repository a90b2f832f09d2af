//! `queue.kind = "sqs"` against moto's SQS, one moto server per test, on
//! each of the three databases.

#[path = "../common/mod.rs"]
mod common;

mod sqs;
