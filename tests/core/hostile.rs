//! Whatever bytes arrive, `pipeline::prepare` answers with a value — a
//! prepared call or an error that becomes a fault — and never panics.
//! Mutations of a valid envelope reach deep into the reader, the envelope
//! splitter, dispatch and validation.

use std::path::Path;

use proptest::prelude::*;
use soapgate::contract::ContractSet;
use soapgate::files::load_contracts;
use soapgate::pipeline::{CallContext, Inbound, prepare};
use soapgate::soap::SoapVersion;
use soapgate::xml::Limits;

const VALID: &str = r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:wsa="http://www.w3.org/2005/08/addressing"><soap:Header><wsa:MessageID>m-1</wsa:MessageID></soap:Header><soap:Body><Triage xmlns="http://example.test/helpdesk"><TicketId>42</TicketId><Subject>Printer</Subject><Body>On fire &amp; smoking</Body></Triage></soap:Body></soap:Envelope>"#;

fn contracts() -> ContractSet {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/http");
    load_contracts(&dir).unwrap_or_else(|e| panic!("fixture refused: {e:?}"))
}

fn run(contracts: &ContractSet, bytes: &[u8], charset: Option<&str>) {
    let inbound = Inbound {
        charset,
        version: Some(SoapVersion::V11),
        action: None,
    };
    let mut ctx = CallContext::new("Helpdesk", inbound.version);
    let _ = prepare(contracts, &inbound, bytes, &Limits::default(), &mut ctx);
}

#[test]
fn the_unmutated_envelope_is_prepared() {
    let contracts = contracts();
    let inbound = Inbound {
        charset: None,
        version: Some(SoapVersion::V11),
        action: None,
    };
    let mut ctx = CallContext::new("Helpdesk", inbound.version);
    let prepared = prepare(
        &contracts,
        &inbound,
        VALID.as_bytes(),
        &Limits::default(),
        &mut ctx,
    );
    assert!(prepared.is_ok(), "{prepared:?}");
    assert_eq!(ctx.correlation_id, "m-1");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn mutated_envelopes_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
        charset in prop::option::of(prop::sample::select(vec!["utf-8", "utf-16", "iso-8859-1", "windows-1252", "bogus"])),
    ) {
        let contracts = contracts();
        let mut bytes = VALID.as_bytes().to_vec();
        for (at, byte, kind) in edits {
            if bytes.is_empty() { break; }
            let i = at.index(bytes.len());
            match kind {
                0 => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ => { bytes.remove(i); }
            }
        }
        run(&contracts, &bytes, charset);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        run(&contracts(), &bytes, None);
    }
}
