//! The `soapgate check` command as an admin runs it: one line per operation
//! for a good folder, `path:line:col: message` and exit 1 for a bad one.

use std::path::Path;
use std::process::Command;

/// `soapgate check` on a WSDL folder, with the mappings folder beside it
/// (`mappings/` next to `wsdl/`; a folder that does not exist maps nothing).
fn check(dir: &Path) -> (bool, String) {
    let mappings = dir.parent().map(|p| p.join("mappings")).unwrap_or_default();
    let out = Command::new(env!("CARGO_BIN_EXE_soapgate"))
        .args(["check", "--wsdl-dir"])
        .arg(dir)
        .arg("--mappings-dir")
        .arg(if dir.ends_with("wsdl") {
            mappings
        } else {
            dir.join("no-mappings")
        })
        .env_remove("SOAPGATE_WSDL_DIR")
        .output()
        .expect("run soapgate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn data(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

#[test]
fn check_lists_every_operation_with_versions_and_style() {
    let (ok, text) = check(&data("tests/data/http"));
    assert!(ok, "{text}");
    let lines: Vec<&str> = text.lines().collect();
    let triage = lines
        .iter()
        .find(|l| l.starts_with("Helpdesk.Triage"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        triage.contains("SOAP 1.1") && triage.contains("SOAP 1.2"),
        "{triage}"
    );
    assert!(triage.contains("document/literal"), "{triage}");
    let close = lines
        .iter()
        .find(|l| l.starts_with("Helpdesk.Close"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(!close.contains("SOAP 1.2"), "{close}");
    let echo = lines
        .iter()
        .find(|l| l.starts_with("Echo.Echo"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(echo.contains("rpc/literal"), "{echo}");
}

#[test]
fn check_reports_path_line_col_and_fails() {
    let (ok, text) = check(&data("tests/data/cli/bad"));
    assert!(!ok, "{text}");
    let line = text
        .lines()
        .find(|l| l.contains("broken.wsdl:"))
        .unwrap_or_else(|| panic!("{text}"));
    // path:line:col: message, pointing at the <wsdl:input> that names the
    // missing message.
    let after = line.split("broken.wsdl:").nth(1).unwrap_or_default();
    let mut parts = after.splitn(3, ':');
    assert_eq!(parts.next(), Some("6"), "{line}");
    assert!(
        parts.next().is_some_and(|c| c.parse::<u32>().is_ok()),
        "{line}"
    );
    assert!(line.contains("Missing"), "{line}");
}

#[test]
fn check_fails_on_a_missing_folder() {
    let (ok, text) = check(&data("tests/data/cli/does-not-exist"));
    assert!(!ok, "{text}");
    assert!(text.contains("does-not-exist"), "{text}");
}

#[test]
fn the_example_contracts_and_mappings_pass_check() {
    let (ok, text) = check(&data("wsdl"));
    assert!(ok, "{text}");
    assert!(text.lines().count() >= 8, "{text}");
    // Lines starting with spaces are a multi-step operation's steps.
    for line in text.lines().filter(|l| !l.starts_with(' ')) {
        // Get{Op}Result operations are added for async ones and say which
        // operation they poll; every other operation must be mapped.
        assert!(
            line.contains("mapped: ") || line.contains("\tpolls "),
            "every example operation is mapped: {line}"
        );
    }
    assert!(
        text.lines().any(|l| l.contains("\tpolls ")),
        "the async example gains a Get...Result operation: {text}"
    );
    let classify = text
        .lines()
        .find(|l| l.starts_with("InvoiceService.ClassifyInvoice"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(classify.contains("structured"), "{classify}");
    // The declared faults a mapping lets the model answer are listed.
    let triage = text
        .lines()
        .find(|l| l.starts_with("SupportDesk.TriageTicket"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        triage.ends_with(
            ", faults TicketRejected (client, detail \
             {http://helpdesk.example.com/SupportDesk/}TicketRejection, tool TicketRejected)"
        ),
        "{triage}"
    );
}

#[test]
fn render_prints_the_converse_request_without_calling_anything() {
    let out = Command::new(env!("CARGO_BIN_EXE_soapgate"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "render",
            "--service",
            "SupportDesk",
            "--operation",
            "TriageTicket",
            "--request",
        ])
        .arg("examples/SupportDesk/TriageTicket.xml")
        .output()
        .expect("run soapgate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    // The response's tool and the declared fault's; the model calls one.
    assert_eq!(
        json["toolConfig"]["toolChoice"],
        serde_json::json!({"any": {}}),
        "{json}"
    );
    assert_eq!(
        json["toolConfig"]["tools"][1]["toolSpec"]["name"], "TicketRejected",
        "{json}"
    );
    assert_eq!(
        json["requestMetadata"]["operation"], "TriageTicket",
        "{json}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("POST /model/"), "{stderr}");
    assert!(
        stderr.contains(
            "tools offered: TriageTicketResponse, TicketRejected (the model calls one of them)"
        ),
        "{stderr}"
    );
    // And what the tool schema costs each call.
    let size =
        serde_json::to_vec(&json["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"])
            .expect("schema")
            .len();
    assert!(
        stderr.contains(&format!(
            "tool TriageTicketResponse: input schema {size} bytes, 0 shared definition(s)"
        )),
        "{stderr}"
    );
}

#[test]
fn render_refuses_a_request_for_another_operation() {
    let out = Command::new(env!("CARGO_BIN_EXE_soapgate"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "render",
            "--service",
            "SupportDesk",
            "--operation",
            "DraftReply",
            "--request",
        ])
        .arg("examples/SupportDesk/TriageTicket.xml")
        .output()
        .expect("run soapgate");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("TriageTicket"));
}

#[test]
fn migrate_creates_the_embedded_database_from_the_environment() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("nested/soapgate.db");
    let url = format!("sqlite://{}", db.display());
    for _ in 0..2 {
        let out = Command::new(env!("CARGO_BIN_EXE_soapgate"))
            .current_dir(dir.path())
            .arg("migrate")
            .env("SOAPGATE_DATABASE_URL", &url)
            .output()
            .expect("run soapgate");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("Sqlite"), "{text}");
        assert!(!text.contains(&url), "the URL is not echoed: {text}");
    }
    assert!(db.is_file(), "the database file exists");
}

#[test]
fn migrate_refuses_an_unknown_scheme_without_echoing_the_url() {
    let out = Command::new(env!("CARGO_BIN_EXE_soapgate"))
        .args(["migrate", "--database-url", "oracle://scott:tiger@db/x"])
        .output()
        .expect("run soapgate");
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{text}");
    assert!(!text.contains("tiger"), "no password in errors: {text}");
}

#[test]
fn check_lists_an_operations_variants_sticky_path_shadow_and_batch() {
    let root = tempfile::tempdir().expect("temp dir");
    let wsdl = root.path().join("wsdl");
    std::fs::create_dir_all(&wsdl).expect("wsdl/");
    for name in ["InvoiceService.wsdl", "invoice-types.xsd"] {
        std::fs::copy(data("wsdl").join(name), wsdl.join(name)).expect("copying the contract");
    }
    let mappings = root.path().join("mappings");
    std::fs::create_dir_all(&mappings).expect("mappings/");
    std::fs::write(
        mappings.join("InvoiceService.yaml"),
        "service: InvoiceService
operations:
  ClassifyInvoice:
    model: { targets: [ { model: m1 } ] }
    prompt: x
    output: { structured: true }
    variants:
      canary: { weight: 10, model: { targets: [ { model: m2 } ] } }
      quiet: { prompt: y }
    sticky_by: invoice/vendor/vendorId
    shadow: { sample: 0.2, variant: quiet }
    batch:
      max_records: 500
      role_arn: arn:aws:iam::123456789012:role/BedrockBatch
      s3_uri: s3://bucket/soapgate/batches
      model: anthropic.claude-3-haiku-20240307-v1:0
",
    )
    .expect("writing the mapping");
    let (ok, text) = check(&wsdl);
    assert!(ok, "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("InvoiceService.ClassifyInvoice"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.ends_with(
            "models m1, variants canary 10% (m2); quiet 0% (m1), \
             sticky by invoice/vendor/vendorId, shadow quiet on 0.2 of calls, \
             batch 100 to 500 records within 3600s on anthropic.claude-3-haiku-20240307-v1:0 \
             via s3://bucket/soapgate/batches"
        ),
        "{line}"
    );
}

#[test]
fn check_prints_a_multi_step_operations_steps_in_the_order_they_run() {
    let (ok, text) = check(&data("wsdl"));
    assert!(ok, "{text}");
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("DocumentIntake.ProcessDocument\t"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        lines[at].ends_with("\tmapped: 3 steps, sync mode"),
        "{}",
        lines[at]
    );
    let sonnet = "anthropic.claude-3-5-sonnet-20240620-v1:0";
    let haiku = "anthropic.claude-3-haiku-20240307-v1:0";
    assert_eq!(
        lines[at + 1..at + 4],
        [
            format!("  classify: schema, models {haiku}"),
            format!(
                "  extract: after classify, when steps.classify.kind == \"INVOICE\", \
                 type InvoiceFields, models {sonnet} > {haiku}, default null"
            ),
            format!(
                "  lines: after classify, when steps.classify.kind in [\"INVOICE\", \"RECEIPT\"], \
                 for_each lines (max 4), schema, models {sonnet} > {haiku}, \
                 on_failure continue, default {{\"Category\":\"OTHER\"}}"
            ),
        ],
        "{text}"
    );
    // The next operation's line follows the steps.
    assert!(!lines[at + 4].starts_with(' '), "{text}");
}

/// `soapgate render` run from the repository's root with these arguments.
fn render(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_soapgate"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("render")
        .args(args)
        .output()
        .expect("run soapgate");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// The Converse requests in render's output: the lines from each `{` at
/// the start of a line to the matching `}`.
fn requests(stdout: &str) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let mut json: Option<String> = None;
    for line in stdout.lines() {
        if line == "{" {
            json = Some(String::new());
        }
        if let Some(j) = &mut json {
            j.push_str(line);
            j.push('\n');
            if line == "}" {
                out.push(serde_json::from_str(j).expect("a request is JSON"));
                json = None;
            }
        }
    }
    out
}

fn prompt(request: &serde_json::Value) -> &str {
    request["messages"][0]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
}

#[test]
fn render_prints_every_steps_request_with_placeholder_results() {
    let (ok, stdout, stderr) = render(&[
        "--service",
        "DocumentIntake",
        "--operation",
        "ProcessDocument",
        "--request",
        "examples/DocumentIntake/ProcessDocument.xml",
    ]);
    assert!(ok, "{stderr}");
    let headers: Vec<&str> = stdout.lines().filter(|l| l.starts_with("== ")).collect();
    assert_eq!(
        headers,
        [
            "== step classify (1 of 3) ==",
            "== step extract (2 of 3) ==",
            "== step lines (3 of 3): 3 item(s) ==",
        ],
        "{stdout}"
    );
    // Later steps read a sample of classify's schema, said to be one.
    assert!(
        stdout
            .lines()
            .any(|l| l == r#"steps.classify = {"kind":"INVOICE"} (placeholder)"#),
        "{stdout}"
    );
    let requests = requests(&stdout);
    // classify, extract, and one request per line of the sample request.
    assert_eq!(requests.len(), 5, "{stdout}");
    assert!(
        prompt(&requests[0]).starts_with("Classify this document"),
        "{stdout}"
    );
    assert_eq!(
        requests[1]["toolConfig"]["tools"][0]["toolSpec"]["name"], "step_extract",
        "{stdout}"
    );
    for (request, line) in requests[2..].iter().zip([
        "Line 1: Steel hex bolts M12x80, zinc plated, 500 pcs",
        "Line 2: Installation labour, 6 h at 85.00",
        "Line 3: Delivery to site, Drammen",
    ]) {
        let prompt = prompt(request);
        // The placeholder classify result reaches the line's prompt.
        assert!(prompt.contains("line of invoice"), "{prompt}");
        assert!(prompt.contains(line), "{prompt}");
    }
    let items: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("-- item"))
        .collect();
    assert_eq!(
        items,
        ["-- item 0 --", "-- item 1 --", "-- item 2 --"],
        "{stdout}"
    );
}

#[test]
fn render_takes_earlier_results_from_the_emulator_when_asked() {
    let script = std::fs::read_to_string(data("examples/DocumentIntake/emulator.yaml"))
        .expect("the example's emulator script");
    let script = soapgate::emulator::Script::parse(&script, "emulator.yaml").expect("script");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let emulator = runtime
        .block_on(soapgate::emulator::spawn(Some(script)))
        .expect("emulator");
    let url = emulator.base_url().to_string();
    let (ok, stdout, stderr) = render(&[
        "--service",
        "DocumentIntake",
        "--operation",
        "ProcessDocument",
        "--request",
        "examples/DocumentIntake/branches/ProcessDocument-receipt.xml",
        "--results-from-emulator",
        &url,
    ]);
    let _ = runtime.block_on(emulator.stop());
    assert!(ok, "{stderr}");
    // The emulator's answer (a receipt), not the placeholder (INVOICE).
    let classified =
        format!(r#"steps.classify = {{"kind":"RECEIPT"}} (from the emulator at {url})"#);
    assert!(stdout.lines().any(|l| l == classified), "{stdout}");
    assert!(
        stdout.contains(
            "== step extract (2 of 3): skipped, when steps.classify.kind == \"INVOICE\" is false =="
        ),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l == "steps.extract = null (skipped)"),
        "{stdout}"
    );
    let requests = requests(&stdout);
    assert_eq!(requests.len(), 3, "classify and two lines: {stdout}");
    assert!(prompt(&requests[1]).contains("line of receipt"), "{stdout}");
    assert!(
        stdout.lines().any(|l| l.starts_with("steps.lines = [")
            && l.ends_with(&format!("(from the emulator at {url})"))),
        "{stdout}"
    );
}

#[test]
fn render_refuses_emulator_results_for_a_single_call() {
    let (ok, _, stderr) = render(&[
        "--service",
        "SupportDesk",
        "--operation",
        "TriageTicket",
        "--request",
        "examples/SupportDesk/TriageTicket.xml",
        "--results-from-emulator",
        "http://127.0.0.1:9",
    ]);
    assert!(!ok);
    assert!(stderr.contains("makes one call"), "{stderr}");
}
