//! Structured output on a UBL-size contract (`tests/data/ubl`, written by
//! its `generate.py`): an invoice in the style of UBL 2 over six
//! namespaces and some four hundred named types — aggregates and basic
//! components, code lists as enumerations, amounts with a required
//! `currencyID`, an optional `UBLExtensions` whose content is an `xs:any`.
//! It loads and `check`s, `render` reports a bounded tool schema sharing
//! its types through `$defs`, and the emulator's answers to that schema
//! become XML that soapgate, xmlschema and xmllint all accept.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use soapgate::contract::{ContractSet, Payload};
use soapgate::mapping::MappingSet;
use soapgate::xml::{self, QName};

use crate::common::app::run_with_timeout;
use crate::differential::{RefSet, Source, reference_peers, references, root_dir};

const INV: &str = "urn:soapgate:test:ubl:schema:xsd:Invoice-2";

fn ubl() -> PathBuf {
    root_dir().join("tests/data/ubl")
}

fn load() -> (ContractSet, MappingSet) {
    let contracts = soapgate::files::load_contracts(&ubl().join("wsdl"))
        .unwrap_or_else(|e| panic!("the UBL contract loads: {e:?}"));
    let mappings = soapgate::files::load_mappings(&ubl().join("mappings"), &contracts)
        .unwrap_or_else(|e| panic!("the UBL mapping loads: {e:?}"));
    (contracts, mappings)
}

#[test]
fn the_ubl_contract_is_ubl_sized_and_loads() {
    let (contracts, mappings) = load();
    let (contract, service) = contracts.service("UblInvoicing").expect("the service");
    let types = contract.schemas.global_types();
    let namespaces: std::collections::BTreeSet<&str> =
        types.iter().map(|(q, _)| q.ns.as_str()).collect();
    assert!(types.len() >= 300, "{} named types", types.len());
    assert!(namespaces.len() >= 5, "{namespaces:?}");
    assert!(
        contract.imported.len() >= 6,
        "{:?}",
        contract.imported.keys()
    );
    assert_eq!(service.operations.len(), 2);
    let plan = mappings
        .plan("UblInvoicing", "DraftInvoice")
        .expect("DraftInvoice is mapped");
    assert!(
        plan.tool().is_some(),
        "DraftInvoice answers with structured output"
    );
}

/// `soapgate check` on the folder, as an operator runs it.
#[test]
fn check_accepts_the_ubl_contract() {
    let out = run_with_timeout(
        Command::new(env!("CARGO_BIN_EXE_soapgate"))
            .arg("check")
            .arg("--wsdl-dir")
            .arg(ubl().join("wsdl"))
            .arg("--mappings-dir")
            .arg(ubl().join("mappings"))
            .env_remove("SOAPGATE_CONFIG")
            .current_dir(ubl()),
        Duration::from_secs(60),
    );
    assert!(out.success(), "{out}");
    assert!(
        out.stdout
            .contains("UblInvoicing.DraftInvoice\tSOAP 1.1\tdocument/literal\trequest-response\tmapped: structured"),
        "{out}"
    );
}

/// `render` says what the tool schema costs per call: bounded, its shared
/// types defined once.
#[test]
fn render_reports_a_bounded_tool_schema() {
    let out = run_with_timeout(
        Command::new(env!("CARGO_BIN_EXE_soapgate"))
            .arg("render")
            .arg("--wsdl-dir")
            .arg(ubl().join("wsdl"))
            .arg("--mappings-dir")
            .arg(ubl().join("mappings"))
            .args(["--service", "UblInvoicing", "--operation", "DraftInvoice"])
            .arg("--request")
            .arg(ubl().join("request.xml"))
            .env_remove("SOAPGATE_CONFIG")
            .current_dir(ubl()),
        Duration::from_secs(60),
    );
    assert!(out.success(), "{out}");
    let line = out
        .stderr
        .lines()
        .find(|l| l.starts_with("tool draft_invoice: input schema "))
        .unwrap_or_else(|| panic!("no tool schema size reported: {out}"));
    let numbers: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    let [bytes, defs] = numbers[..] else {
        panic!("{line}");
    };
    eprintln!("{line}");
    // Some 95 KB today; every path through the aggregates inlined would
    // be megabytes (Party alone is reached from a dozen places).
    assert!(bytes < 256 * 1024, "{line}");
    assert!(defs >= 30, "{line}");
    let request: serde_json::Value = serde_json::from_str(&out.stdout).expect("the request");
    let schema = &request["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"];
    assert_eq!(
        serde_json::to_vec(schema).map(|v| v.len()).ok(),
        Some(bytes),
        "the size reported is the schema's"
    );
}

/// The emulator's answers to the tool schema, for several seeds, are valid
/// for the schema and become Invoices that soapgate accepts and both
/// reference validators accept.
#[test]
fn emulated_invoices_are_valid_for_soapgate_xmlschema_and_xmllint() {
    let test = "emulated_invoices_are_valid_for_soapgate_xmlschema_and_xmllint";
    let (contracts, mappings) = load();
    let (contract, service) = contracts.service("UblInvoicing").expect("the service");
    let op = service.operation("DraftInvoice").expect("DraftInvoice");
    let payload: &Payload = op.output.as_ref().expect("a response");
    let tool = mappings
        .plan("UblInvoicing", "DraftInvoice")
        .and_then(|p| p.tool())
        .expect("the tool");
    let schema = tool.schema();
    let validator = jsonschema::validator_for(schema).expect("the tool schema compiles");
    let invoice = QName::new(INV, "Invoice");
    let mut texts = Vec::new();
    for seed in 0..12 {
        let answer = soapgate::emulator::schema::sample(schema, seed);
        let errors: Vec<String> = validator
            .iter_errors(&answer)
            .take(5)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "seed {seed}: {errors:?}");
        let elements = soapgate::mapping::payload_from_json(&contract.schemas, payload, &answer)
            .unwrap_or_else(|e| panic!("seed {seed}: the answer does not convert: {e:?}"));
        let [el] = &elements[..] else {
            panic!("seed {seed}: {} elements", elements.len());
        };
        let violations = contract.schemas.validate_element(el, &invoice);
        let text = xml::write_element(el);
        assert!(violations.is_empty(), "seed {seed}: {violations:?}\n{text}");
        texts.push(text);
    }
    let sizes: Vec<usize> = texts.iter().map(String::len).collect();
    eprintln!(
        "emulated invoices: {} bytes of XML each",
        format_sizes(&sizes)
    );
    let Some(use_xmllint) = reference_peers(test) else {
        return;
    };
    let source = Source::Wsdl(vec![ubl().join("wsdl/UblInvoicing.wsdl")]);
    let sets = [RefSet {
        name: "ubl",
        source: &source,
        typed: Vec::new(),
    }];
    let instances: Vec<(usize, &str)> = texts.iter().map(|t| (0, t.as_str())).collect();
    let out = references(&sets, &instances, use_xmllint);
    assert_eq!(out.sets, [None], "the references read the UBL schemas");
    for (seed, (text, (xs, lint, xs_why, lint_why))) in texts.iter().zip(&out.verdicts).enumerate()
    {
        assert_eq!(*xs, Some(true), "seed {seed}: xmlschema: {xs_why}\n{text}");
        if use_xmllint {
            assert_eq!(
                *lint,
                Some(true),
                "seed {seed}: xmllint: {lint_why}\n{text}"
            );
        }
    }
}

fn format_sizes(sizes: &[usize]) -> String {
    let (lo, hi) = (
        sizes.iter().min().copied().unwrap_or(0),
        sizes.iter().max().copied().unwrap_or(0),
    );
    format!("{lo}-{hi}")
}

/// The committed files are what `generate.py` writes: regenerating them
/// in a scratch copy changes nothing.
#[test]
fn the_ubl_files_are_what_the_script_writes() {
    let test = "the_ubl_files_are_what_the_script_writes";
    if Command::new("python3").arg("--version").output().is_err() {
        crate::common::app::peer_missing(test, "python3");
        return;
    }
    let scratch = tempfile::tempdir().expect("temp dir");
    std::fs::copy(
        ubl().join("generate.py"),
        scratch.path().join("generate.py"),
    )
    .expect("copy the script");
    let out = Command::new("python3")
        .arg(scratch.path().join("generate.py"))
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut files = Vec::new();
    collect(scratch.path(), scratch.path(), &mut files);
    assert!(files.len() >= 9, "{files:?}");
    for rel in files {
        let fresh = std::fs::read(scratch.path().join(&rel)).expect("generated");
        let committed =
            std::fs::read(ubl().join(&rel)).unwrap_or_else(|e| panic!("{}: {e}", rel.display()));
        assert!(
            fresh == committed,
            "{} differs from what generate.py writes: run python3 tests/data/ubl/generate.py",
            rel.display()
        );
    }
}

fn collect(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(base, &path, out);
        } else if path.extension().is_some_and(|x| x != "py") {
            out.push(path.strip_prefix(base).expect("below").to_path_buf());
        }
    }
}
