//! Helpers for the tests that run `soapgate worker` as a separate process:
//! a request payload, starting the binary against a database and the
//! Converse emulator, reading the emulator's call count, and waiting on a
//! condition while the worker lives.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub(crate) const INV_NS: &str = "http://erp.example.com/ap/invoice/types/v1";

pub(crate) fn payload(n: usize) -> String {
    format!(
        r#"<inv:ClassifyInvoice xmlns:inv="{INV_NS}"><companyCode>1000</companyCode><invoice source="EDI"><invoiceNumber>RE-{n}</invoiceNumber><invoiceDate>2024-11-18</invoiceDate><vendor><vendorId>V{n:07}</vendorId><name>Vendor {n}</name><country>DE</country></vendor><currency>EUR</currency><netAmount>100.00</netAmount><taxAmount>19.00</taxAmount><totalAmount>119.00</totalAmount><lines><line><lineNumber>1</lineNumber><description>Item {n}</description><quantity>1</quantity><unitPrice>100.00</unitPrice><amount>100.00</amount></line></lines></invoice></inv:ClassifyInvoice>"#
    )
}

/// `soapgate worker` on `db`, with its model calls going to `emulator_url`.
pub(crate) fn start_worker(
    database_url: &str,
    dir: &Path,
    emulator_url: &str,
    log: &Path,
    lease_ms: u64,
) -> Child {
    let mappings = Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings");
    start_worker_with(
        database_url,
        dir,
        &mappings,
        emulator_url,
        log,
        lease_ms,
        &[],
    )
}

/// [`start_worker`] with the mappings in `mappings_dir` and `env` set on
/// top (a name given twice takes the later value).
pub(crate) fn start_worker_with(
    database_url: &str,
    dir: &Path,
    mappings_dir: &Path,
    emulator_url: &str,
    log: &Path,
    lease_ms: u64,
    env: &[(&str, String)],
) -> Child {
    let wsdl = Path::new(env!("CARGO_MANIFEST_DIR")).join("wsdl");
    let contracts = Contracts {
        wsdl: &wsdl,
        mappings: mappings_dir,
    };
    start_worker_on(
        database_url,
        dir,
        &contracts,
        emulator_url,
        log,
        lease_ms,
        env,
    )
}

/// The folders a worker loads its WSDLs and mappings from.
pub(crate) struct Contracts<'a> {
    pub(crate) wsdl: &'a Path,
    pub(crate) mappings: &'a Path,
}

/// [`start_worker_with`] on contracts of the test's own.
pub(crate) fn start_worker_on(
    database_url: &str,
    dir: &Path,
    contracts: &Contracts<'_>,
    emulator_url: &str,
    log: &Path,
    lease_ms: u64,
    env: &[(&str, String)],
) -> Child {
    let log = std::fs::File::create(log).expect("log file");
    // Log lines go to stdout; stderr carries what fails before logging
    // starts (a contract that does not load). Both go to the log file.
    let stdout = log.try_clone().expect("log file");
    Command::new(env!("CARGO_BIN_EXE_soapgate"))
        .args(["worker", "--database-url", database_url])
        .arg("--wsdl-dir")
        .arg(contracts.wsdl)
        .arg("--mappings-dir")
        .arg(contracts.mappings)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .env("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", emulator_url)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "AKIDTESTONLY")
        .env("AWS_SECRET_ACCESS_KEY", "test-secret")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/soapgate-test-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/soapgate-test-credentials",
        )
        // Every counted call is one the pipeline made.
        .env("SOAPGATE_BEDROCK__MAX_ATTEMPTS", "1")
        .env("SOAPGATE_WORKER__CONCURRENCY", "16")
        .env("SOAPGATE_WORKER__LEASE_MS", lease_ms.to_string())
        .env("SOAPGATE_WORKER__POLL_INTERVAL_MS", "20")
        .env("SOAPGATE_WORKER__SHUTDOWN_GRACE_MS", "5000")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(stdout)
        .stderr(log)
        .spawn()
        .expect("starting soapgate worker")
}

pub(crate) fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

pub(crate) async fn emulator_calls(url: &str) -> i64 {
    emulator_counts(url).await["total"].as_i64().expect("total")
}

/// `GET /_emulator/calls` whole: the total, and the calls per model, per
/// forced tool and per script rule.
pub(crate) async fn emulator_counts(url: &str) -> serde_json::Value {
    let body = reqwest::get(format!("{url}/_emulator/calls"))
        .await
        .expect("emulator calls")
        .text()
        .await
        .expect("emulator calls body");
    serde_json::from_str(&body).expect("calls json")
}

/// Waits for `done` (checked every 50 ms) while `child` runs; a dead child
/// or two minutes without `done` fail the test with the worker's log.
pub(crate) async fn wait_for<F, Fut>(what: &str, child: &mut Child, log: &Path, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !done().await {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "the worker exited ({status}) before {what}:\n{}",
                log_tail(log)
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "timed out waiting for {what}:\n{}",
            log_tail(log)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
