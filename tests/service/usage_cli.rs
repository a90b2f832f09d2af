//! `soapgate usage` and `soapgate hash-secret` as an admin runs them: usage
//! rows written through the store are totalled per tenant and model since
//! a date, optionally for one tenant; a hashed secret checks out against
//! the secret and no other.

use std::io::Write;
use std::process::{Command, Stdio};

use soapgate::store::{AuditRow, Charge, Store, UsageRow};

fn soapgate(args: &[&str], db_url: &str) -> (bool, String) {
    soapgate_with(args, db_url, None)
}

/// `soapgate` with `config` as its config file, when given.
fn soapgate_with(args: &[&str], db_url: &str, config: Option<&std::path::Path>) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_soapgate"));
    command.args(args).env("SOAPGATE_DATABASE_URL", db_url);
    if let Some(config) = config {
        command.env("SOAPGATE_CONFIG", config);
    }
    let out = command.output().expect("run soapgate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn row(
    at_ms: i64,
    tenant: Option<&str>,
    model: &str,
    input: i64,
    output: i64,
    cost: i64,
    batch: bool,
) -> UsageRow {
    UsageRow {
        at_ms,
        tenant: tenant.map(str::to_owned),
        service: "SupportDesk".into(),
        operation: "TriageTicket".into(),
        model: model.into(),
        input_tokens: input,
        output_tokens: output,
        cost_micros: cost,
        latency_ms: 12,
        outcome: "ok".into(),
        correlation_id: "c".into(),
        batch,
        step: None,
    }
}

/// 2026-03-01T00:00:00Z in epoch milliseconds.
const MARCH: i64 = 1_772_323_200_000;
const DAY: i64 = 86_400_000;

#[tokio::test]
async fn usage_prints_totals_per_tenant_and_model_since_a_date() {
    let dir = tempfile::tempdir().expect("tmp");
    let url = format!("sqlite://{}", dir.path().join("soapgate.db").display());
    let store = Store::connect(&url).await.expect("store");
    let rows = [
        row(MARCH - DAY, Some("acme"), "haiku", 1000, 1000, 5000, true),
        row(MARCH + DAY, Some("acme"), "haiku", 100, 20, 50, false),
        // Answered by a batch.
        row(MARCH + 2 * DAY, Some("acme"), "haiku", 200, 30, 75, true),
        row(
            MARCH + 2 * DAY,
            Some("acme"),
            "sonnet",
            10,
            5,
            1_250_000,
            false,
        ),
        row(MARCH + 3 * DAY, Some("globex"), "haiku", 7, 3, 9, false),
        row(MARCH + 3 * DAY, None, "haiku", 1, 1, 0, false),
    ];
    let audit = AuditRow {
        at_ms: MARCH,
        tenant: Some("acme".into()),
        principal: Some("erp".into()),
        source: "http".into(),
        service: "SupportDesk".into(),
        operation: Some("TriageTicket".into()),
        correlation_id: "c".into(),
        job_id: None,
        outcome: "ok".into(),
        payload_sha256: None,
        request_text: None,
        response_text: None,
        steps: None,
    };
    let charge = Charge {
        tenant: "acme".into(),
        day: "2026-03-02".into(),
        month: "2026-03".into(),
        tokens: 1,
        hold: None,
    };
    store
        .record_call(&rows, Some(&charge), &audit)
        .await
        .expect("record");
    store.close().await;

    // haiku has a price: what its batch tokens saved is known; sonnet has
    // none.
    let config = dir.path().join("soapgate.toml");
    std::fs::write(
        &config,
        "[tenancy.prices.haiku]\ninput_per_million = 0.5\noutput_per_million = 1.5\n",
    )
    .expect("write the config");
    let (ok, text) = soapgate_with(&["usage", "--since", "2026-03-01"], &url, Some(&config));
    assert!(ok, "{text}");
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    // The batch row's 200 + 30 tokens cost 75 micros; on demand
    // 200 x 0.5 + 30 x 1.5 = 145: 70 saved.
    assert_eq!(
        lines,
        vec![
            vec![
                "TENANT",
                "MODEL",
                "CALLS",
                "INPUT",
                "OUTPUT",
                "COST",
                "BATCH_CALLS",
                "BATCH_INPUT",
                "BATCH_OUTPUT",
                "BATCH_COST",
                "SAVED"
            ],
            vec![
                "-", "haiku", "1", "1", "1", "0.000000", "0", "0", "0", "0.000000", "0.000000"
            ],
            vec![
                "acme", "haiku", "2", "300", "50", "0.000125", "1", "200", "30", "0.000075",
                "0.000070"
            ],
            vec![
                "acme", "sonnet", "1", "10", "5", "1.250000", "0", "0", "0", "0.000000", "-"
            ],
            vec![
                "globex", "haiku", "1", "7", "3", "0.000009", "0", "0", "0", "0.000000", "0.000000"
            ],
            vec![
                "TOTAL", "5", "318", "59", "1.250134", "1", "200", "30", "0.000075", "0.000070"
            ],
        ],
        "{text}"
    );

    let (ok, text) = soapgate(
        &[
            "usage",
            "--since",
            "2026-03-02T12:00:00Z",
            "--tenant",
            "acme",
        ],
        &url,
    );
    assert!(ok, "{text}");
    assert!(text.contains("acme") && !text.contains("globex"), "{text}");
    let total: Vec<&str> = text
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    // No prices (the shipped config has none): what was saved is unknown.
    assert_eq!(
        total,
        vec![
            "TOTAL", "2", "210", "35", "1.250075", "1", "200", "30", "0.000075", "-"
        ],
        "{text}"
    );

    let (ok, text) = soapgate(&["usage", "--since", "last week"], &url);
    assert!(!ok && text.contains("YYYY-MM-DD"), "{text}");
}

fn hash_secret(args: &[&str], secret: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_soapgate"))
        .arg("hash-secret")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run soapgate");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{secret}\n").as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn hash_secret_prints_hashes_the_config_accepts() {
    let h = hash_secret(&[], "pa55 word");
    assert!(h.starts_with("$argon2id$"), "{h}");
    assert!(soapgate::tenants::secret::verify_password("pa55 word", &h));
    assert!(!soapgate::tenants::secret::verify_password("pa55 wor", &h));
    let k = hash_secret(&["--api-key"], "sg_key");
    assert_eq!(k, soapgate::tenants::secret::hash_api_key("sg_key"));
    let generated = hash_secret(&["--api-key", "--generate"], "");
    let key = generated
        .lines()
        .find_map(|l| l.strip_prefix("api key: "))
        .expect("a key");
    assert!(
        generated.contains(&soapgate::tenants::secret::hash_api_key(key)),
        "{generated}"
    );
}
