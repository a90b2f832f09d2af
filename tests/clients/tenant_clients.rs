//! Real SOAP clients no one here wrote, authenticating as a tenant with a
//! WS-Security UsernameToken: zeep's `zeep.wsse.username.UsernameToken`
//! (PasswordText and `use_digest=True`) and PHP's SoapClient with a
//! SoapHeader carrying the wsse:Security XML (text and digest). Good
//! passwords get the response; wrong ones the AUTHENTICATION_FAILED fault,
//! and never a model call. The client programs are
//! `tests/clients/zeep_wsse.py` and `tests/clients/php_wsse.php`; a missing
//! client fails under `SOAPGATE_REQUIRE_PEERS=1` and is skipped otherwise.

use crate::common::app as support;
use crate::common::tenant_gateway as tenant_support;

use std::process::Command;
use std::time::Duration;

use soapgate::tenants::{CredentialSettings, TenancySettings, secret};
use support::{command_works, peer_missing, repo_root, run_with_timeout};
use tenant_support::{Gateway, tenant, token_user};

const TIMEOUT: Duration = Duration::from_secs(120);

/// A gateway whose tenant has `erp` (clear password: text and digest)
/// and `hashed` (Argon2id hash: text only).
async fn gateway(dir: &tempfile::TempDir) -> Gateway {
    let t = tenant(
        "acme",
        &["SupportDesk.TriageTicket"],
        vec![
            token_user("erp", "s3cret"),
            CredentialSettings::UsernameToken {
                username: "hashed".into(),
                password_hash: Some(secret::hash_password("h4shed").expect("hash")),
                password_env: None,
                password: None,
            },
        ],
    );
    let url = format!("sqlite://{}", dir.path().join("soapgate.db").display());
    Gateway::start(vec![t], TenancySettings::default(), &url).await
}

/// The cases every client runs, and how many of them reach the model.
const CASES: [&str; 6] = [
    "erp:s3cret:text:ok",
    "erp:s3cret:digest:ok",
    "hashed:h4shed:text:ok",
    "erp:wrong:text:AUTHENTICATION_FAILED",
    "erp:wrong:digest:AUTHENTICATION_FAILED",
    "hashed:h4shed:digest:AUTHENTICATION_FAILED",
];
const ANSWERED: u64 = 3;

async fn run_client(program: &str, args: Vec<String>) -> support::RunOutput {
    let program = program.to_string();
    tokio::task::spawn_blocking(move || run_with_timeout(Command::new(program).args(args), TIMEOUT))
        .await
        .expect("client task")
}

/// Runs a client script (`tests/clients/{script}`) through every case
/// against a fresh gateway: each case must print `ok ...`, and only the
/// answered cases may reach the model.
async fn run_cases(program: &str, script: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    let gw = gateway(&dir).await;
    let mut args = vec![
        repo_root()
            .join("tests/clients")
            .join(script)
            .display()
            .to_string(),
        gw.base_url.clone(),
    ];
    args.extend(CASES.iter().map(|c| c.to_string()));
    let out = run_client(program, args).await;
    println!("{out}");
    assert!(out.success(), "{out}");
    assert_eq!(
        out.stdout.lines().filter(|l| l.starts_with("ok ")).count(),
        CASES.len(),
        "{out}"
    );
    assert_eq!(gw.model_calls().await, ANSWERED, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zeep_username_tokens_text_and_digest() {
    const TEST: &str = "zeep wsse";
    if !command_works("python3", &["-c", "import zeep.wsse.username"]) {
        peer_missing(TEST, "python3 with zeep (pip install zeep)");
        return;
    }
    run_cases("python3", "zeep_wsse.py").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn php_soapclient_username_tokens_text_and_digest() {
    const TEST: &str = "php wsse";
    if !command_works("php", &["-r", "exit(class_exists('SoapClient') ? 0 : 1);"]) {
        peer_missing(
            TEST,
            "php with the soap extension (apt-get install php-cli php-soap)",
        );
        return;
    }
    run_cases("php", "php_wsse.php").await;
}
