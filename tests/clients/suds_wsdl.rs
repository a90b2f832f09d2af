//! suds (suds-community), a Python SOAP client that resolves a WSDL's
//! QName-valued attributes (`message=`, `element=`, `type=`) against the
//! component carrying them and the definitions, loads the published WSDL
//! of every example service, the async additions (`Get{Op}Result`, the
//! ticket messages) included. A missing suds fails the test under
//! `SOAPGATE_REQUIRE_PEERS=1` and skips it otherwise.

use crate::common::app as support;

use std::process::Command;
use std::time::Duration;

use support::{EmulatedModel, TestApp, command_works, peer_missing, repo_root, run_with_timeout};

#[test]
fn suds_loads_the_published_wsdl_of_every_service() {
    const TEST: &str = "suds";
    if !command_works("python3", &["-c", "import suds.client"]) {
        peer_missing(TEST, "python3 with suds (pip install suds-community)");
        return;
    }
    let app = TestApp::start_mapped("wsdl", "mappings", EmulatedModel::default());
    let mut services: Vec<String> = app
        .state
        .live
        .snapshot()
        .contracts
        .services()
        .map(|(_, s)| s.name.clone())
        .collect();
    services.sort();
    assert!(
        services.iter().any(|s| s == "InvoiceService"),
        "{services:?}"
    );
    let out = run_with_timeout(
        Command::new("python3")
            .arg(repo_root().join("tests/clients/suds_load.py"))
            .arg(&app.base_url)
            .args(&services),
        Duration::from_secs(120),
    );
    assert!(out.success(), "suds does not load every WSDL:\n{out}");
    // InvoiceService's ExtractInvoiceFields is async: suds offers its poll.
    let invoice = out
        .stdout
        .lines()
        .find(|l| l.starts_with("InvoiceService:"))
        .unwrap_or_else(|| panic!("no InvoiceService line:\n{out}"));
    for op in [
        "ClassifyInvoice",
        "ExtractInvoiceFields",
        "GetExtractInvoiceFieldsResult",
    ] {
        assert!(
            invoice.split_whitespace().any(|m| m == op),
            "suds offers no {op}:\n{out}"
        );
    }
}
