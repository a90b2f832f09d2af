//! The multi-step example, DocumentIntake.ProcessDocument, called by zeep
//! and by JAX-WS (wsimport's generated classes) from the facade's `?wsdl`
//! with the values of the invoice sample
//! (`examples/DocumentIntake/ProcessDocument.xml`), the emulator following
//! the example's script (`examples/DocumentIntake/emulator.yaml`): one SOAP
//! call, five model calls (classify, extract, one per line), and the typed
//! result each client hands its caller — the kind INVOICE, the invoice's
//! header fields, the three lines as GOODS, SERVICES and FREIGHT. The
//! client programs are `tests/clients/zeep_intake.py` and
//! `tests/clients/java/JaxwsIntake.java`; they print what they read as JSON,
//! with the type each value came as. A missing client fails under
//! `SOAPGATE_REQUIRE_PEERS=1` and is skipped otherwise.

use crate::common::app as support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use soapgate::emulator::Script;
use support::{EmulatedModel, TestApp, peer_missing, repo_root, run_with_timeout};

use crate::stacks::{Stack, jaxws_classpath};

const TIMEOUT: Duration = Duration::from_secs(240);

/// Both ports of the contract: SOAP 1.1 and SOAP 1.2.
const PORTS: [&str; 2] = ["DocumentIntakeSoapPort", "DocumentIntakeSoap12Port"];

/// Model calls one ProcessDocument of the invoice makes: classify, extract
/// and one per line.
const CALLS_PER_INVOICE: u64 = 5;

/// The facade over the example contracts, its emulator running the
/// DocumentIntake script.
fn intake_app() -> TestApp {
    let root = repo_root();
    let script = Script::load(&root.join("examples/DocumentIntake/emulator.yaml"))
        .unwrap_or_else(|e| panic!("the example script does not load: {e}"));
    TestApp::start_mapped(
        root.join("wsdl"),
        root.join("mappings"),
        EmulatedModel {
            script: Some(script),
            ..EmulatedModel::default()
        },
    )
}

fn invoice_sample() -> String {
    repo_root()
        .join("examples/DocumentIntake/ProcessDocument.xml")
        .display()
        .to_string()
}

/// The Java (or Python) type names a client gives the typed values.
struct Types {
    text: &'static str,
    kind: &'static str,
    date: &'static str,
    decimal: &'static str,
    integer: &'static str,
    category: &'static str,
}

/// `{"value": ..., "type": ...}` as the client printed it, checked.
fn typed(client: &str, what: &str, v: &Value, value: &str, ty: &str) {
    let shown = match &v["value"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    assert_eq!(shown, value, "{client}: {what}: {v}");
    assert_eq!(v["type"], ty, "{client}: {what}: {v}");
}

/// One port's answer to the invoice: every field as the script's answers
/// and the sample's lines make it, each as the client's own type.
fn check_invoice(client: &str, line: &Value, t: &Types) {
    let port = line["port"].as_str().unwrap_or("?");
    let at = format!("{client} [{port}]");
    typed(
        &at,
        "DocumentId",
        &line["DocumentId"],
        "MAIL-2026-12-07-0001",
        t.text,
    );
    typed(&at, "Kind", &line["Kind"], "INVOICE", t.kind);
    let inv = &line["Invoice"];
    assert!(inv.is_object(), "{at}: no Invoice: {line}");
    typed(
        &at,
        "InvoiceNumber",
        &inv["InvoiceNumber"],
        "INV-2026-0815",
        t.text,
    );
    typed(
        &at,
        "Supplier",
        &inv["Supplier"],
        "Brandt Befestigungstechnik GmbH",
        t.text,
    );
    typed(&at, "IssueDate", &inv["IssueDate"], "2026-11-30", t.date);
    typed(&at, "Total", &inv["Total"], "1660.05", t.decimal);
    typed(&at, "Currency", &inv["Currency"], "EUR", t.text);
    let lines = line["Lines"].as_array().cloned().unwrap_or_default();
    assert_eq!(lines.len(), 3, "{at}: Lines: {line}");
    for (i, (l, category)) in lines
        .iter()
        .zip(["GOODS", "SERVICES", "FREIGHT"])
        .enumerate()
    {
        let number = (i + 1).to_string();
        typed(&at, "Line/Number", &l["Number"], &number, t.integer);
        typed(&at, "Line/Category", &l["Category"], category, t.category);
    }
}

/// Run a client program; every port must print one JSON line, each
/// checked, and the emulator must have seen five calls per port.
fn run_and_check(client: &str, app: &TestApp, cmd: &mut Command, types: &Types) {
    let before = app.model_calls();
    let out = run_with_timeout(cmd, TIMEOUT);
    println!("{out}");
    assert!(out.success(), "{client}: {out}");
    let lines: Vec<Value> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{client}: {e}: {l}")))
        .collect();
    let ports: Vec<&str> = lines.iter().filter_map(|l| l["port"].as_str()).collect();
    assert_eq!(ports, PORTS, "{client}: {out}");
    for line in &lines {
        check_invoice(client, line, types);
    }
    assert_eq!(
        app.model_calls() - before,
        CALLS_PER_INVOICE * PORTS.len() as u64,
        "{client}: model calls for {} ProcessDocument call(s)",
        PORTS.len()
    );
}

#[test]
fn zeep_reads_the_typed_result_of_the_multi_step_invoice() {
    const TEST: &str = "zeep DocumentIntake";
    if let Err(what) = Stack::Zeep.probe() {
        peer_missing(TEST, &what);
        return;
    }
    let app = intake_app();
    let mut cmd = Command::new("python3");
    cmd.arg(repo_root().join("tests/clients/zeep_intake.py"))
        .arg(app.wsdl_url("DocumentIntake"))
        .arg(invoice_sample())
        .args(PORTS);
    run_and_check(
        "zeep",
        &app,
        &mut cmd,
        &Types {
            text: "str",
            kind: "str",
            date: "date",
            decimal: "Decimal",
            integer: "int",
            category: "str",
        },
    );
}

#[test]
fn jaxws_reads_the_typed_result_of_the_multi_step_invoice() {
    const TEST: &str = "JAX-WS DocumentIntake";
    if let Err(what) = Stack::Jaxws.probe() {
        peer_missing(TEST, &what);
        return;
    }
    let classpath = jaxws_classpath().expect("probed: the JAX-WS runtime");
    let app = intake_app();
    let dir = tempfile::tempdir().expect("tmp");
    let (gen_dir, classes) = (dir.path().join("gen"), dir.path().join("classes"));
    for d in [&gen_dir, &classes] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    let out = run_with_timeout(
        Command::new("wsimport")
            .args(["-keep", "-Xnocompile", "-extension", "-d"])
            .arg(&gen_dir)
            .args(["-p", "soapgate.clients.intake"])
            .arg(app.wsdl_url("DocumentIntake")),
        TIMEOUT,
    );
    assert!(
        out.success() && !out.stdout.contains("[ERROR]"),
        "wsimport: {out}"
    );
    let mut sources = vec![repo_root().join("tests/clients/java/JaxwsIntake.java")];
    java_sources(&gen_dir, &mut sources);
    let out = run_with_timeout(
        Command::new("javac")
            .args(["-nowarn", "-encoding", "UTF-8", "-cp", &classpath, "-d"])
            .arg(&classes)
            .args(&sources),
        TIMEOUT,
    );
    assert!(out.success(), "javac: {out}");
    let mut cmd = Command::new("java");
    cmd.arg("-cp")
        .arg(format!("{}:{classpath}", classes.display()))
        .arg("JaxwsIntake")
        .arg(app.wsdl_url("DocumentIntake"))
        .arg(invoice_sample())
        .args(PORTS);
    run_and_check(
        "JAX-WS",
        &app,
        &mut cmd,
        &Types {
            text: "String",
            kind: "DocumentKind",
            date: "XMLGregorianCalendarImpl",
            decimal: "BigDecimal",
            integer: "BigInteger",
            category: "LineCategoryCode",
        },
    );
}

fn java_sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir)
        .expect("the generated sources")
        .flatten()
    {
        let path = entry.path();
        if path.is_dir() {
            java_sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "java") {
            out.push(path);
        }
    }
}
