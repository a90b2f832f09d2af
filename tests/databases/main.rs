//! The store, the job queue, the workers and tenants on SQLite, PostgreSQL
//! and MariaDB (a fresh database per test; a missing server skips, or fails
//! under `SOAPGATE_REQUIRE_PEERS=1`), crashes of worker processes included,
//! and tenant limits shared by several instances through Redis.

#[path = "../common/mod.rs"]
mod common;

mod batch_crash;
mod cluster;
mod db_tls;
mod deadlock;
mod replay;
mod store;
mod tenants;
mod worker;
mod worker_crash;
mod worker_pg_restart;
mod workflow_crash;
