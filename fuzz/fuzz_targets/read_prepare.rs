//! Whatever bytes arrive, `xml::read` and `pipeline::prepare` answer with a
//! value (a document, a prepared call or an error) and never panic.
//!
//! Each input is read once by `xml::read` (no transport charset, default
//! limits, no tree budget), then prepared against every service of the
//! repository's example contracts (`wsdl/`, published with `mappings/`, so
//! async operations have their tickets and `Get{Op}Result`) with an inbound
//! that accepts anything, and once more against one service chosen by the
//! input's length with a transport charset, SOAP version and action also
//! chosen by the length, so that mismatches and the action check are reached.

#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use soapgate::contract::ContractSet;
use soapgate::files::{load_contracts, load_mappings, publish_contracts};
use soapgate::pipeline::{CallContext, Inbound, prepare};
use soapgate::soap::SoapVersion;
use soapgate::xml::{self, Limits};

struct Fixture {
    contracts: ContractSet,
    /// Service names, sorted.
    services: Vec<String>,
    /// Per service (same order): every soapAction its operations declare.
    actions: Vec<Vec<String>>,
    limits: Limits,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let contracts = load_contracts(&root.join("wsdl"))
            .unwrap_or_else(|e| panic!("example contracts refused: {e:?}"));
        let mappings = load_mappings(&root.join("mappings"), &contracts)
            .unwrap_or_else(|e| panic!("example mappings refused: {e:?}"));
        let contracts = publish_contracts(contracts, &mappings)
            .unwrap_or_else(|e| panic!("contracts not published: {e:?}"));
        let mut services = Vec::new();
        let mut actions = Vec::new();
        for (_, service) in contracts.services() {
            services.push(service.name.clone());
            let mut a: Vec<String> = service
                .operations
                .iter()
                .flat_map(|o| o.bindings.iter())
                .filter_map(|b| b.soap_action.clone())
                .collect();
            a.sort();
            a.dedup();
            actions.push(a);
        }
        assert!(!services.is_empty(), "no service in wsdl/");
        Fixture {
            contracts,
            services,
            actions,
            limits: Limits::default(),
        }
    })
}

const CHARSETS: [Option<&str>; 6] = [
    None,
    Some("utf-8"),
    Some("UTF-16"),
    Some("iso-8859-1"),
    Some("windows-1252"),
    Some("bogus"),
];
const VERSIONS: [Option<SoapVersion>; 3] = [None, Some(SoapVersion::V11), Some(SoapVersion::V12)];

fuzz_target!(|data: &[u8]| {
    let f = fixture();

    let _ = xml::read(data, None, &f.limits);

    for service in &f.services {
        let mut ctx = CallContext::new(service, None);
        let _ = prepare(&f.contracts, &Inbound::default(), data, &f.limits, &mut ctx);
    }

    // One more call whose transport facts vary with the input's length.
    let n = data.len();
    let ix = n % f.services.len();
    let k = n / f.services.len();
    let actions = &f.actions[ix];
    let action = match k % 4 {
        0 => None,
        1 => Some(" "),
        2 => Some("urn:not-an-action"),
        _ if actions.is_empty() => None,
        _ => Some(actions[(k / 4) % actions.len()].as_str()),
    };
    let inbound = Inbound {
        charset: CHARSETS[(k / 4) % CHARSETS.len()],
        version: VERSIONS[(k / 24) % VERSIONS.len()],
        action,
    };
    let mut ctx = CallContext::new(&f.services[ix], inbound.version);
    let _ = prepare(&f.contracts, &inbound, data, &f.limits, &mut ctx);
});
