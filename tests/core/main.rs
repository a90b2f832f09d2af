//! Hermetic tests of the pure core: XML reading, WSDL and XSD loading and
//! validation, mapping compilation and rendering, hostile input, reload.
//! They need nothing but the code, except where the core is compared with
//! references: the W3C XML conformance suite (`conformance`, installed by
//! `.ci/run`), Python's xmlschema and lxml (`content_models`), and those
//! with libxml2's xmllint (`differential`, `ubl`), each required under
//! `SOAPGATE_REQUIRE_PEERS=1`.

#[path = "../common/mod.rs"]
mod common;

mod architecture;
mod attachments;
mod batch_records;
mod conformance;
mod content_models;
mod contracts;
mod declared_faults;
mod differential;
mod hardening;
mod hostile;
mod mapping;
mod reload;
mod steps;
mod tool_schema;
mod ubl;
mod variants;
mod xml_safety;
mod xsd;
