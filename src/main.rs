//! The `soapgate` command: parse the command line and run the command
//! (`src/cli/`, one file each).

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

// Every call builds and drops a small tree of owned strings; mimalloc's
// thread-local free lists make that markedly cheaper than glibc malloc (see
// BENCHMARKS.md). Built without transparent huge pages (`no_thp`): backed
// by 2 MiB pages, its arenas kept about a fifth more resident per call in
// flight.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "soapgate",
    version,
    about = "A SOAP facade for Amazon Bedrock's Converse API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve every contract in the WSDL folder over HTTP.
    Serve(cli::serve::Args),
    /// Load every contract and mapping and print the operations served.
    Check(cli::check::Args),
    /// Print the Converse request JSON a call would send, calling nothing.
    Render(cli::render::Args),
    /// Create or update the database tables (jobs, polling tables).
    Migrate(cli::migrate::Args),
    /// Run job workers only (and the polling-table intake), no HTTP.
    Worker(cli::worker::Args),
    /// Run a Bedrock Converse emulator (same wire protocol) for tests and demos.
    Emulator(cli::emulator::Args),
    /// Hash a password (Argon2id) or API key (SHA-256) read from standard
    /// input, for the tenants' credentials in soapgate.toml.
    HashSecret(cli::hash_secret::Args),
    /// Print token usage and cost per tenant and model since a date.
    Usage(cli::usage::Args),
    /// Run an operation's recorded calls again through the current (or
    /// given) mappings and model, and report how far the answers agree.
    Replay(cli::replay::Args),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Serve(args) => cli::serve::run(args),
        Command::Check(args) => cli::check::run(args),
        Command::Render(args) => cli::render::run(args),
        Command::Migrate(args) => cli::migrate::run(args),
        Command::Worker(args) => cli::worker::run(args),
        Command::Emulator(args) => cli::emulator::run(args),
        Command::HashSecret(args) => cli::hash_secret::run(args),
        Command::Usage(args) => cli::usage::run(args),
        Command::Replay(args) => cli::replay::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("soapgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}
