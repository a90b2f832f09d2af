//! Helpers shared by the integration-test binaries. Each binary compiles
//! this module on its own and uses a part of it.
//!
//! - [`app`]: the facade in process on a loopback port, `soapgate serve` as
//!   a child process, external programs run with a deadline, and
//!   [`app::peer_missing`], the rule for tests whose peer no one here wrote
//!   (fail under `SOAPGATE_REQUIRE_PEERS=1`, otherwise say so and skip).
//! - [`gateway`]: the emulator and the facade in process, the real
//!   aws-sdk-bedrockruntime client between them; replies read back.
//! - [`tenant_gateway`]: the same with tenants and a store at a given URL.
//! - [`db`]: a fresh database per test on SQLite, PostgreSQL or MariaDB.
//! - [`mappings`]: the example mappings with one edit.
//! - [`moto`]: moto's server (S3, SQS) of a test's own.
//! - [`worker_process`]: `soapgate worker` as a child process.
//! - [`replay`]: calls recorded into a database, and `soapgate replay` run
//!   against it.
//! - [`redis_peer`]: the machine's Redis, and a `redis-server` of a test's
//!   own to stop and restart.
#![allow(dead_code, unused_imports)]

pub(crate) mod app;
pub(crate) mod db;
pub(crate) mod gateway;
pub(crate) mod mappings;
pub(crate) mod moto;
pub(crate) mod redis_peer;
pub(crate) mod replay;
pub(crate) mod tenant_gateway;
pub(crate) mod worker_process;
