//! The facade and the emulator as a service: in process on port 0, or the
//! `soapgate` binary as a child process; the real aws-sdk-bedrockruntime
//! client over HTTP. Responses are checked with Python xmlschema and
//! xmllint where those are installed (required under
//! `SOAPGATE_REQUIRE_PEERS=1`). The batch-inference control plane runs
//! against moto's S3 and the real aws-sdk-bedrock client (moto required
//! under the same rule).

#[path = "../common/mod.rs"]
mod common;

mod async_soap;
mod batch_control;
mod batch_emulator;
mod batch_jobs;
mod batch_records;
mod bedrock_emulator;
mod bedrock_env;
mod canary;
mod cli;
mod declared_faults;
mod e2e;
mod e2e_reload;
mod emulator_cli;
mod exact_numbers;
mod http_soap;
mod intake_script;
mod listen;
mod otlp;
mod record;
mod replay;
mod resilience;
mod startup;
mod tls;
mod usage_cli;
mod workflow;
