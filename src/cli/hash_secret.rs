//! `soapgate hash-secret`: the stored form of a tenant credential.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args as ClapArgs;

#[derive(Debug, ClapArgs)]
pub(crate) struct Args {
    /// Hash an API key (`sha256:…`) instead of a password (`$argon2id$…`).
    #[arg(long)]
    pub(crate) api_key: bool,
    /// With --api-key: make a new random key, print it and its hash.
    #[arg(long, requires = "api_key")]
    pub(crate) generate: bool,
}

/// `soapgate hash-secret`: the secret comes from standard input (first
/// line), never from the command line, where `ps` and shell history see it.
pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    use soapgate::tenants::secret;
    if args.generate {
        let key = secret::generate_api_key();
        println!("api key: {key}");
        println!("key_hash = \"{}\"", secret::hash_api_key(&key));
        return Ok(ExitCode::SUCCESS);
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the secret from standard input")?;
    let secret_text = line.trim_end_matches(['\r', '\n']);
    if secret_text.is_empty() {
        anyhow::bail!("no secret on standard input (echo -n SECRET | soapgate hash-secret)");
    }
    if args.api_key {
        println!("{}", secret::hash_api_key(secret_text));
    } else {
        println!(
            "{}",
            secret::hash_password(secret_text).map_err(|e| anyhow::anyhow!("hashing: {e}"))?
        );
    }
    Ok(ExitCode::SUCCESS)
}
