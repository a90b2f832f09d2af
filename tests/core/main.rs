//! Hermetic tests of the pure core: XML reading, WSDL and XSD loading and
//! validation, mapping compilation and rendering, hostile input, reload.
//! They need nothing but the code.

#[path = "../common/mod.rs"]
mod common;

mod architecture;
mod conformance;
mod content_models;
mod contracts;
mod hardening;
mod hostile;
mod mapping;
mod reload;
mod tool_schema;
mod xml_safety;
mod xsd;
