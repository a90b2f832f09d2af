//! Amounts reach the XML digit for digit: a forced tool's JSON answer with
//! 30-digit decimals and integers, served by the emulator over the wire and
//! read by the real SDK client, becomes the response's `xs:decimal` and
//! `xs:integer` text exactly as the model wrote it (a 64-bit float would
//! keep 17 digits), and the response is valid by a validator soapgate did
//! not write.

use crate::common::app::{EmulatedModel, TestApp};
use crate::common::gateway::{SoapReply, Validator, Version, post_soap, text_of};
use soapgate::emulator::Script;

const LEDGER: &str = "urn:example:ledger";
const DIR: &str = "tests/data/exact_numbers";

/// The model's answer, as JSON text so the script keeps every digit.
const ANSWER: &str = r#"{"Balance": 12345678901234567890.5, "Rate": 0.1234567890123456789012345678, "Entries": 123456789012345678901234567890, "Debt": -987654321098765432109876543210, "Adjustment": [-0.000000000000000000000000000001, 1.5E+28, 12.50], "Ceiling": 99999999999999999999999999999.99}"#;

fn summarize(script: &str) -> (TestApp, SoapReply) {
    let script = Script::parse(script, "exact-numbers.yaml").expect("the test script");
    let app = TestApp::start_mapped(
        format!("{DIR}/wsdl"),
        format!("{DIR}/mappings"),
        EmulatedModel {
            script: Some(script),
            ..EmulatedModel::default()
        },
    );
    let envelope = format!(
        r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><l:Summarize xmlns:l="{LEDGER}"><l:Text>FY2026 closing</l:Text></l:Summarize></s:Body></s:Envelope>"#
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a client runtime");
    let reply = runtime.block_on(async {
        let http = reqwest::Client::new();
        post_soap(
            &http,
            &app.endpoint("Ledger"),
            Version::V11,
            "urn:example:ledger/Summarize",
            envelope.as_bytes(),
        )
        .await
    });
    (app, reply)
}

#[test]
fn thirty_digit_decimals_and_integers_reach_the_xml_exactly() {
    let script = format!("rules:\n  - tool: '{ANSWER}'\n");
    let (_app, reply) = summarize(&script);
    assert_eq!(reply.status, 200, "{}", reply.text());
    let payload = &reply.payload()[0];
    let field = |name: &str| text_of(payload, LEDGER, name).unwrap_or_default();
    assert_eq!(field("Balance"), "12345678901234567890.5");
    assert_eq!(field("Rate"), "0.1234567890123456789012345678");
    assert_eq!(field("Entries"), "123456789012345678901234567890");
    assert_eq!(field("Debt"), "-987654321098765432109876543210");
    assert_eq!(field("Ceiling"), "99999999999999999999999999999.99");
    let adjustments: Vec<String> = payload
        .elements()
        .filter(|c| c.name.local == "Adjustment")
        .map(|c| c.text())
        .collect();
    assert_eq!(
        adjustments,
        [
            "-0.000000000000000000000000000001",
            "15000000000000000000000000000",
            "12.50"
        ]
    );
    if let Some(validator) =
        Validator::find("thirty_digit_decimals_and_integers_reach_the_xml_exactly")
    {
        let wsdl = crate::common::app::repo_root()
            .join(DIR)
            .join("wsdl/Ledger.wsdl");
        validator
            .check(&wsdl, &reply.body)
            .unwrap_or_else(|e| panic!("the response is invalid: {e}"));
    }
}

/// The facets are judged on the exact value too: one hundredth above a
/// 31-digit maxInclusive is refused, where the same answer at the maximum
/// (the test above) is served — a double cannot tell the two apart.
#[test]
fn a_decimal_one_hundredth_above_its_maximum_is_refused() {
    let over = ANSWER.replace(
        "99999999999999999999999999999.99",
        "100000000000000000000000000000.00",
    );
    let (_app, reply) = summarize(&format!("rules:\n  - tool: '{over}'\n"));
    assert_eq!(reply.status, 500, "{}", reply.text());
    let fault = reply.fault();
    assert_eq!(fault.sg_code, "INVALID_MODEL_OUTPUT", "{}", reply.text());
}
