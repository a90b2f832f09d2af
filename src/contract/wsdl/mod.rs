//! The WSDL 1.1 loader: reads each `.wsdl` of the contract folder (with the
//! WSDLs it `wsdl:import`s and the schemas those import) and builds the
//! [`Contract`] model the facade serves. It accepts what legacy tools emit —
//! .NET ASMX, JAX-WS/CXF, Axis2, SAP, rpc/literal — and refuses everything it
//! cannot serve faithfully (rpc/encoded, WSDL 2.0, notification operations,
//! ambiguous dispatch) with a [`LoadError`] naming file, line, binding and
//! reason, so an admin learns at start-up rather than from a failing client.
//!
//! Every reference (`message=`, `binding=`, `element=`, ...) is resolved to a
//! namespace URI with the declarations in scope where it is written; prefixes
//! are never compared. All errors of all files are collected before giving up.
//!
//! This module holds the entry points and the order of the steps, each in a
//! file of its own: `docs.rs` reads the root WSDL and everything it
//! `wsdl:import`s (and names imported documents for publishing); `defs.rs`
//! reads each document's messages, portTypes, bindings and services into
//! plain structs with references resolved to QNames; `services.rs` turns
//! those into the served [`Service`](super::Service)s, with `payload.rs`
//! working out each bound message's body, every reference checked against
//! the schemas.

mod defs;
mod docs;
mod payload;
mod services;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::model::{Contract, ContractSet, ImportedDoc};
use super::xsd::{SchemaSet, SchemaSetBuilder};
use super::{Files, LoadError};
use crate::xml::{Element, Limits, NsScope, Pos};
use defs::Defs;
use docs::{collect_docs, read_doc};
use services::Builder;

pub(crate) use docs::{normalize, publish_name};

pub const WSDL_NS: &str = "http://schemas.xmlsoap.org/wsdl/";
pub const WSDL_SOAP11_NS: &str = "http://schemas.xmlsoap.org/wsdl/soap/";
pub const WSDL_SOAP12_NS: &str = "http://schemas.xmlsoap.org/wsdl/soap12/";
pub const WSDL_HTTP_NS: &str = "http://schemas.xmlsoap.org/wsdl/http/";
pub const WSDL_MIME_NS: &str = "http://schemas.xmlsoap.org/wsdl/mime/";
pub const WSDL20_NS: &str = "http://www.w3.org/ns/wsdl";
pub const XSD_NS: &str = "http://www.w3.org/2001/XMLSchema";

/// Contract files are written by the admin, not by callers: the limits only
/// guard against accidents, and generated WSDLs (SAP, .NET) can be large and
/// declare many namespaces.
pub fn contract_limits() -> Limits {
    Limits {
        max_depth: 200,
        max_attributes: 1_000,
        max_attribute_bytes: 1 << 20,
        max_namespace_decls: 1_000,
        max_children: 1_000_000,
        max_text_bytes: 64 << 20,
    }
}

/// Load every `.wsdl` named in `wsdl_files` (paths as `files` understands
/// them, usually inside the contract folder), with the WSDLs and schemas they
/// import. Service names must be unique across all files.
pub fn load_all(wsdl_files: &[&Path], files: &dyn Files) -> Result<ContractSet, Vec<LoadError>> {
    let mut errors = Vec::new();
    let mut contracts = Vec::new();
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    for path in wsdl_files {
        match load(path, files) {
            Ok(c) => {
                for s in &c.services {
                    if let Some(first) = seen.get(&s.name) {
                        errors.push(LoadError::new(
                            &c.path,
                            service_pos(&c.wsdl, &s.name),
                            format!(
                                "service {} is already defined in {}; service names must be \
                                 unique because each is served at /soap/{{ServiceName}}",
                                s.name,
                                first.display()
                            ),
                        ));
                    } else {
                        seen.insert(s.name.clone(), c.path.clone());
                    }
                }
                contracts.push(Arc::new(c));
            }
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(ContractSet::new(contracts))
    } else {
        Err(errors)
    }
}

/// Load one `.wsdl` file and everything it imports. Messages, portTypes and
/// bindings of `wsdl:import`ed WSDLs are usable; only the services of the file
/// itself are served, so a split abstract/concrete pair that both sit in the
/// folder does not serve its services twice.
pub fn load(path: &Path, files: &dyn Files) -> Result<Contract, Vec<LoadError>> {
    let mut errors = Vec::new();
    let root = match read_doc(path, files) {
        Ok(r) => r,
        Err(e) => return Err(vec![e]),
    };
    if root.name.ns == WSDL20_NS {
        return Err(vec![LoadError::new(
            path,
            root.pos,
            format!(
                "WSDL 2.0 ({} in {WSDL20_NS}) is not supported; soapgate serves WSDL 1.1 \
                 (definitions in {WSDL_NS})",
                root.name.local
            ),
        )]);
    }
    if !root.name.is(WSDL_NS, "definitions") {
        return Err(vec![LoadError::new(
            path,
            root.pos,
            format!(
                "the root element is {}, not a WSDL 1.1 definitions element ({{{WSDL_NS}}}definitions)",
                root.name
            ),
        )]);
    }

    let folder = normalize(path.parent().unwrap_or(Path::new("")));
    let (docs, schema_docs) = collect_docs(path, root, files, &mut errors);

    // Schemas: inline ones of every WSDL, then any `.xsd` pulled in by a
    // `wsdl:import` (an old but legal way to reference a schema).
    let mut builder = SchemaSetBuilder::new();
    for d in &docs {
        let mut scope = NsScope::new();
        scope.push(&d.root);
        for types in d.root.children_named(WSDL_NS, "types") {
            scope.push(types);
            for schema in types.children_named(XSD_NS, "schema") {
                builder.add_schema(&d.path, schema, &scope);
            }
            scope.pop();
        }
    }
    for d in &schema_docs {
        builder.add_schema(&d.path, &d.root, &NsScope::new());
    }
    let (schemas, schema_ok, imported_schemas) = match builder.finish(files) {
        Ok((set, imported)) => (set, true, imported),
        Err(mut e) => {
            errors.append(&mut e);
            (SchemaSet::default(), false, Vec::new())
        }
    };

    let mut defs = Defs::default();
    for d in &docs {
        defs.parse_doc(d, &mut errors);
    }
    let root_doc = &docs[0];
    let services = {
        let mut b = Builder {
            defs: &defs,
            // Without a usable schema set every reference would look
            // dangling; the schema errors already say what is wrong.
            schemas: schema_ok.then_some(&schemas),
            errors: &mut errors,
            memo: HashMap::new(),
        };
        b.services(root_doc)
    };

    let mut imported = BTreeMap::new();
    for (p, r) in docs
        .iter()
        .skip(1)
        .map(|d| (d.path.clone(), d.root.clone()))
        .chain(schema_docs.iter().map(|d| (d.path.clone(), d.root.clone())))
        .chain(imported_schemas)
    {
        let p = normalize(&p);
        imported
            .entry(publish_name(&folder, &p))
            .or_insert_with(|| ImportedDoc { path: p, root: r });
    }

    if !errors.is_empty() {
        return Err(errors);
    }
    let target_ns = root_doc.tns.clone();
    let wsdl = docs.into_iter().next().map(|d| d.root).unwrap_or_default();
    Ok(Contract {
        path: path.to_path_buf(),
        target_ns,
        schemas,
        services,
        wsdl,
        imported,
    })
}

fn service_pos(root: &Element, name: &str) -> Pos {
    root.children_named(WSDL_NS, "service")
        .find(|s| s.attr("name") == Some(name))
        .map(|s| s.pos)
        .unwrap_or(root.pos)
}
