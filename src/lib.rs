//! soapgate: a SOAP facade in front of Amazon Bedrock's Converse API.
//!
//! The pure core (`xml`, `soap`, `contract`, `converse`, `mapping`) does no
//! I/O and knows nothing of HTTP, storage or AWS; `http` is the only module
//! that speaks HTTP, `store` the only one that speaks SQL, `jobs` holds
//! everything async, and `app` wires a process together. ARCHITECTURE.md
//! is the map, and `tests/core/architecture.rs` checks its layers.

pub mod app;
pub mod backoff;
pub mod bedrock;
pub mod config;
pub mod contract;
pub mod converse;
pub mod emulator;
pub mod error;
pub mod files;
pub mod http;
pub mod jobs;
pub mod listen;
pub mod live;
pub mod mapping;
pub mod metrics;
pub mod models;
pub mod pipeline;
pub mod record;
pub mod shutdown;
pub mod soap;
pub mod store;
pub mod telemetry;
pub mod tenants;
pub mod workflow;
pub mod xml;
