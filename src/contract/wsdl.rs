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

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use super::model::{
    BoundVersion, Contract, ContractSet, ImportedDoc, Operation, PartKind, Payload, RpcPart,
    Service, Style,
};
use super::xsd::{SchemaSet, SchemaSetBuilder};
use super::{Files, LoadError};
use crate::soap::SoapVersion;
use crate::xml::{self, Element, Limits, NsScope, Pos, QName};

pub const WSDL_NS: &str = "http://schemas.xmlsoap.org/wsdl/";
pub const WSDL_SOAP11_NS: &str = "http://schemas.xmlsoap.org/wsdl/soap/";
pub const WSDL_SOAP12_NS: &str = "http://schemas.xmlsoap.org/wsdl/soap12/";
pub const WSDL_HTTP_NS: &str = "http://schemas.xmlsoap.org/wsdl/http/";
pub const WSDL_MIME_NS: &str = "http://schemas.xmlsoap.org/wsdl/mime/";
pub const WSDL20_NS: &str = "http://www.w3.org/ns/wsdl";
pub const XSD_NS: &str = "http://www.w3.org/2001/XMLSchema";

/// Transports a SOAP binding may name for us to serve it over HTTP. SOAP 1.2
/// bindings normally reuse the 1.1 URI; a few tools write the 1.2 one.
const HTTP_TRANSPORTS: &[&str] = &[
    "http://schemas.xmlsoap.org/soap/http",
    "http://www.w3.org/2003/05/soap/bindings/HTTP/",
];

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

fn read_doc(path: &Path, files: &dyn Files) -> Result<Element, LoadError> {
    let bytes = files
        .read(path)
        .map_err(|e| LoadError::new(path, Pos::default(), format!("cannot read the file: {e}")))?;
    xml::read(&bytes, None, &contract_limits())
        .map(|d| d.root)
        .map_err(|e| {
            LoadError::new(
                path,
                e.pos,
                format!("not a readable XML document: {}", e.kind),
            )
        })
}

/// Lexically resolve `.` and `..` so one file reached by two relative routes
/// gets one publish name (and `..` can never climb above a relative root's
/// start in a way that hides it).
pub(crate) fn normalize(p: &Path) -> PathBuf {
    let mut out: Vec<Component<'_>> = Vec::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.last() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir) | Some(Component::Prefix(_)) => {}
                _ => out.push(c),
            },
            _ => out.push(c),
        }
    }
    out.iter().collect()
}

/// The name an imported document is published under: its path relative to
/// the WSDL's folder, `/`-separated (`common/types.xsd`, `../shared/x.xsd`).
pub(crate) fn publish_name(folder: &Path, doc: &Path) -> String {
    let f: Vec<Component<'_>> = folder.components().collect();
    let d: Vec<Component<'_>> = doc.components().collect();
    let common = f.iter().zip(&d).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = Vec::new();
    for _ in common..f.len() {
        parts.push("..".to_string());
    }
    for c in &d[common..] {
        parts.push(c.as_os_str().to_string_lossy().into_owned());
    }
    parts.join("/")
}

/// A WSDL 1.1 document of the contract: the root file or one it imports.
struct WsdlDoc {
    path: PathBuf,
    root: Element,
    tns: String,
}

/// A schema document reached through `wsdl:import`.
struct SchemaDoc {
    path: PathBuf,
    root: Element,
}

/// The root WSDL first, then every WSDL it imports (transitively, each once).
fn collect_docs(
    path: &Path,
    root: Element,
    files: &dyn Files,
    errors: &mut Vec<LoadError>,
) -> (Vec<WsdlDoc>, Vec<SchemaDoc>) {
    let mut docs = Vec::new();
    let mut schema_docs = Vec::new();
    let mut seen: HashSet<PathBuf> = HashSet::new();
    seen.insert(normalize(path));
    let tns = root.attr("targetNamespace").unwrap_or("").to_string();
    docs.push(WsdlDoc {
        path: path.to_path_buf(),
        root,
        tns,
    });
    let mut i = 0;
    while i < docs.len() {
        let mut found = Vec::new();
        for imp in docs[i].root.children_named(WSDL_NS, "import") {
            let Some(loc) = imp.attr("location") else {
                errors.push(LoadError::new(
                    &docs[i].path,
                    imp.pos,
                    "wsdl:import has no location, so the imported definitions cannot be found",
                ));
                continue;
            };
            let dir = docs[i].path.parent().unwrap_or(Path::new(""));
            found.push((normalize(&dir.join(loc)), imp.pos, docs[i].path.clone()));
        }
        for (target, pos, from) in found {
            if !seen.insert(target.clone()) {
                continue;
            }
            let root = match read_doc(&target, files) {
                Ok(r) => r,
                Err(e) => {
                    errors.push(LoadError::new(
                        &from,
                        pos,
                        format!("wsdl:import of {}: {}", target.display(), e),
                    ));
                    continue;
                }
            };
            if root.name.is(WSDL_NS, "definitions") {
                let tns = root.attr("targetNamespace").unwrap_or("").to_string();
                docs.push(WsdlDoc {
                    path: target,
                    root,
                    tns,
                });
            } else if root.name.is(XSD_NS, "schema") {
                schema_docs.push(SchemaDoc { path: target, root });
            } else {
                errors.push(LoadError::new(
                    &from,
                    pos,
                    format!(
                        "wsdl:import of {}: its root is {}, neither WSDL 1.1 definitions nor an \
                         XML Schema",
                        target.display(),
                        root.name
                    ),
                ));
            }
        }
        i += 1;
    }
    (docs, schema_docs)
}

// ---------------------------------------------------------------------------
// The WSDL components, read into plain structs with references resolved to
// QNames. Each remembers its file and position for error messages.

struct PartDef {
    name: String,
    pos: Pos,
    kind: PartKind,
}

struct MessageDef {
    path: PathBuf,
    parts: Vec<PartDef>,
}

struct MsgRef {
    message: QName,
    pos: Pos,
}

struct AbstractOp {
    name: String,
    pos: Pos,
    input: Option<MsgRef>,
    output: Option<MsgRef>,
    /// `output` is written before `input` (or alone): a notification or
    /// solicit-response operation.
    output_first: bool,
}

struct PortTypeDef {
    path: PathBuf,
    ops: Vec<AbstractOp>,
}

struct SoapBindingInfo {
    version: SoapVersion,
    ns: &'static str,
    style: Option<String>,
    transport: Option<String>,
    pos: Pos,
}

struct SoapBody {
    pos: Pos,
    parts: Option<Vec<String>>,
    use_: Option<String>,
    namespace: Option<String>,
}

struct HeaderRef {
    message: QName,
    part: String,
    pos: Pos,
}

/// The `wsdl:input` or `wsdl:output` of a binding operation.
#[derive(Default)]
struct BodyDef {
    body: Option<SoapBody>,
    headers: Vec<HeaderRef>,
    /// An extension we cannot serve (MIME multipart, DIME), with its position.
    unsupported: Option<(String, Pos)>,
}

struct BindingOpDef {
    name: String,
    pos: Pos,
    soap_action: Option<String>,
    style: Option<String>,
    input: BodyDef,
    output: BodyDef,
}

struct BindingDef {
    name: QName,
    path: PathBuf,
    pos: Pos,
    tns: String,
    port_type: Option<QName>,
    /// `None`: not a SOAP binding (HTTP GET/POST and others), never served.
    soap: Option<SoapBindingInfo>,
    ops: Vec<BindingOpDef>,
}

struct PortDef {
    name: String,
    pos: Pos,
    binding: QName,
}

struct ServiceDef {
    name: String,
    pos: Pos,
    ports: Vec<PortDef>,
}

#[derive(Default)]
struct Defs {
    messages: HashMap<QName, MessageDef>,
    port_types: HashMap<QName, PortTypeDef>,
    bindings: HashMap<QName, BindingDef>,
    /// Services of each document, by document path.
    services: HashMap<PathBuf, Vec<ServiceDef>>,
}

/// Resolve a QName-valued attribute, reporting a missing attribute or an
/// undeclared prefix at the element.
fn qattr(
    scope: &NsScope,
    el: &Element,
    attr: &str,
    path: &Path,
    errors: &mut Vec<LoadError>,
) -> Option<QName> {
    let Some(v) = el.attr(attr) else {
        errors.push(LoadError::new(
            path,
            el.pos,
            format!("{} has no {attr} attribute", el.name.local),
        ));
        return None;
    };
    let q = scope.resolve_qname(v);
    if q.is_none() {
        errors.push(LoadError::new(
            path,
            el.pos,
            format!("{attr}=\"{v}\" uses a namespace prefix that is not declared"),
        ));
    }
    q
}

impl Defs {
    fn parse_doc(&mut self, d: &WsdlDoc, errors: &mut Vec<LoadError>) {
        let mut scope = NsScope::new();
        scope.push(&d.root);
        let mut services = Vec::new();
        for el in d.root.elements() {
            if el.name.ns != WSDL_NS {
                continue;
            }
            let name = el.attr("name").unwrap_or("");
            let qname = QName::new(d.tns.as_str(), name);
            scope.push(el);
            match el.name.local.as_str() {
                "message" => {
                    let m = parse_message(&scope, el, &d.path, errors);
                    self.insert_unique("message", qname, m, &d.path, el.pos, errors, |s| {
                        &mut s.messages
                    });
                }
                "portType" => {
                    let pt = parse_port_type(&scope, el, &d.path, errors);
                    self.insert_unique("portType", qname, pt, &d.path, el.pos, errors, |s| {
                        &mut s.port_types
                    });
                }
                "binding" => {
                    let b = parse_binding(&mut scope, el, qname.clone(), d, errors);
                    self.insert_unique("binding", qname, b, &d.path, el.pos, errors, |s| {
                        &mut s.bindings
                    });
                }
                "service" => services.push(parse_service(&mut scope, el, &d.path, errors)),
                _ => {}
            }
            scope.pop();
        }
        self.services.insert(d.path.clone(), services);
    }

    #[allow(clippy::too_many_arguments)]
    fn insert_unique<T>(
        &mut self,
        kind: &str,
        name: QName,
        value: T,
        path: &Path,
        pos: Pos,
        errors: &mut Vec<LoadError>,
        map: impl FnOnce(&mut Self) -> &mut HashMap<QName, T>,
    ) {
        if name.local.is_empty() {
            errors.push(LoadError::new(
                path,
                pos,
                format!("{kind} has no name attribute"),
            ));
            return;
        }
        match map(self).entry(name) {
            Entry::Occupied(o) => errors.push(LoadError::new(
                path,
                pos,
                format!("{kind} {} is defined twice", o.key()),
            )),
            Entry::Vacant(v) => {
                v.insert(value);
            }
        }
    }
}

fn parse_message(
    scope: &NsScope,
    el: &Element,
    path: &Path,
    errors: &mut Vec<LoadError>,
) -> MessageDef {
    let mut parts = Vec::new();
    let mut scope = scope.clone();
    for p in el.children_named(WSDL_NS, "part") {
        scope.push(p);
        let name = p.attr("name").unwrap_or("").to_string();
        let kind = match (p.attr("element"), p.attr("type")) {
            (Some(_), None) => qattr(&scope, p, "element", path, errors).map(PartKind::Element),
            (None, Some(_)) => qattr(&scope, p, "type", path, errors).map(PartKind::Type),
            (Some(_), Some(_)) => {
                errors.push(LoadError::new(
                    path,
                    p.pos,
                    format!("part {name} has both element= and type=; it needs exactly one"),
                ));
                None
            }
            (None, None) => {
                errors.push(LoadError::new(
                    path,
                    p.pos,
                    format!("part {name} has neither element= nor type="),
                ));
                None
            }
        };
        scope.pop();
        if let Some(kind) = kind {
            parts.push(PartDef {
                name,
                pos: p.pos,
                kind,
            });
        }
    }
    MessageDef {
        path: path.to_path_buf(),
        parts,
    }
}

fn parse_port_type(
    scope: &NsScope,
    el: &Element,
    path: &Path,
    errors: &mut Vec<LoadError>,
) -> PortTypeDef {
    let mut scope = scope.clone();
    let mut ops = Vec::new();
    for op in el.children_named(WSDL_NS, "operation") {
        scope.push(op);
        let mut input = None;
        let mut output = None;
        let mut output_first = false;
        for io in op.elements().filter(|e| e.name.ns == WSDL_NS) {
            let is_input = match io.name.local.as_str() {
                "input" => true,
                "output" => false,
                _ => continue,
            };
            if !is_input && input.is_none() {
                output_first = true;
            }
            scope.push(io);
            let r = qattr(&scope, io, "message", path, errors).map(|message| MsgRef {
                message,
                pos: io.pos,
            });
            scope.pop();
            if is_input { input = r } else { output = r }
        }
        scope.pop();
        ops.push(AbstractOp {
            name: op.attr("name").unwrap_or("").to_string(),
            pos: op.pos,
            input,
            output,
            output_first,
        });
    }
    PortTypeDef {
        path: path.to_path_buf(),
        ops,
    }
}

fn parse_binding(
    scope: &mut NsScope,
    el: &Element,
    name: QName,
    d: &WsdlDoc,
    errors: &mut Vec<LoadError>,
) -> BindingDef {
    let path = &d.path;
    let port_type = qattr(scope, el, "type", path, errors);
    let soap = [
        (WSDL_SOAP11_NS, SoapVersion::V11),
        (WSDL_SOAP12_NS, SoapVersion::V12),
    ]
    .into_iter()
    .find_map(|(ns, version)| {
        el.child(ns, "binding").map(|b| SoapBindingInfo {
            version,
            ns,
            style: b.attr("style").map(str::to_string),
            transport: b.attr("transport").map(str::to_string),
            pos: b.pos,
        })
    });
    let mut ops = Vec::new();
    if let Some(info) = &soap {
        for op in el.children_named(WSDL_NS, "operation") {
            scope.push(op);
            let soap_op = op.child(info.ns, "operation");
            let mut input = BodyDef::default();
            let mut output = BodyDef::default();
            for io in op.elements().filter(|e| e.name.ns == WSDL_NS) {
                let target = match io.name.local.as_str() {
                    "input" => &mut input,
                    "output" => &mut output,
                    _ => continue,
                };
                scope.push(io);
                *target = parse_body(scope, io, info.ns, path, errors);
                scope.pop();
            }
            scope.pop();
            ops.push(BindingOpDef {
                name: op.attr("name").unwrap_or("").to_string(),
                pos: op.pos,
                soap_action: soap_op
                    .and_then(|o| o.attr("soapAction"))
                    .map(str::to_string),
                style: soap_op.and_then(|o| o.attr("style")).map(str::to_string),
                input,
                output,
            });
        }
    }
    BindingDef {
        name,
        path: path.clone(),
        pos: el.pos,
        tns: d.tns.clone(),
        port_type,
        soap,
        ops,
    }
}

fn parse_body(
    scope: &mut NsScope,
    io: &Element,
    soap_ns: &str,
    path: &Path,
    errors: &mut Vec<LoadError>,
) -> BodyDef {
    let mut def = BodyDef::default();
    for ext in io.elements() {
        if ext.name.ns == soap_ns && ext.name.local == "body" {
            def.body = Some(SoapBody {
                pos: ext.pos,
                parts: ext
                    .attr("parts")
                    .map(|p| p.split_whitespace().map(str::to_string).collect()),
                use_: ext.attr("use").map(str::to_string),
                namespace: ext.attr("namespace").map(str::to_string),
            });
        } else if ext.name.ns == soap_ns && ext.name.local == "header" {
            scope.push(ext);
            if let Some(message) = qattr(scope, ext, "message", path, errors) {
                def.headers.push(HeaderRef {
                    message,
                    part: ext.attr("part").unwrap_or("").to_string(),
                    pos: ext.pos,
                });
            }
            scope.pop();
        } else if ext.name.ns == WSDL_MIME_NS {
            def.unsupported = Some((
                "MIME multipart bodies (SOAP with attachments) are not supported".to_string(),
                ext.pos,
            ));
        }
    }
    def
}

fn parse_service(
    scope: &mut NsScope,
    el: &Element,
    path: &Path,
    errors: &mut Vec<LoadError>,
) -> ServiceDef {
    let mut ports = Vec::new();
    for p in el.children_named(WSDL_NS, "port") {
        scope.push(p);
        if let Some(binding) = qattr(scope, p, "binding", path, errors) {
            ports.push(PortDef {
                name: p.attr("name").unwrap_or("").to_string(),
                pos: p.pos,
                binding,
            });
        }
        scope.pop();
    }
    ServiceDef {
        name: el.attr("name").unwrap_or("").to_string(),
        pos: el.pos,
        ports,
    }
}

// ---------------------------------------------------------------------------
// From components to the served model.

/// One operation as one SOAP binding exposes it.
#[derive(Clone)]
struct BuiltOp {
    name: String,
    style: Style,
    bound: BoundVersion,
    input: Payload,
    output: Option<Payload>,
    path: PathBuf,
    pos: Pos,
}

struct Builder<'a> {
    defs: &'a Defs,
    schemas: Option<&'a SchemaSet>,
    errors: &'a mut Vec<LoadError>,
    /// Bindings already built (several ports may share one); `None` for a
    /// binding that is not served.
    memo: HashMap<QName, Option<Vec<BuiltOp>>>,
}

impl Builder<'_> {
    fn err(&mut self, path: &Path, pos: Pos, msg: impl Into<String>) {
        self.errors.push(LoadError::new(path, pos, msg));
    }

    fn services(&mut self, doc: &WsdlDoc) -> Vec<Service> {
        let mut out: Vec<Service> = Vec::new();
        let Some(defs) = self.defs.services.get(&doc.path) else {
            return out;
        };
        for sdef in defs {
            if sdef.name.is_empty() {
                self.err(&doc.path, sdef.pos, "service has no name attribute");
                continue;
            }
            if out.iter().any(|s| s.name == sdef.name) {
                self.err(
                    &doc.path,
                    sdef.pos,
                    format!("service {} is defined twice", sdef.name),
                );
                continue;
            }
            if let Some(s) = self.service(&doc.path, sdef) {
                out.push(s);
            }
        }
        out
    }

    fn service(&mut self, path: &Path, sdef: &ServiceDef) -> Option<Service> {
        let mut ops: Vec<Operation> = Vec::new();
        // Where each operation was first bound, and by which port.
        let mut origin: Vec<(PathBuf, Pos, String)> = Vec::new();
        let mut soap_ports = 0;
        for port in &sdef.ports {
            if !self.defs.bindings.contains_key(&port.binding) {
                self.err(
                    path,
                    port.pos,
                    format!(
                        "port {} of service {} refers to binding {}, which is not defined",
                        port.name, sdef.name, port.binding
                    ),
                );
                continue;
            }
            if !self.memo.contains_key(&port.binding) {
                let built = self.binding(&port.binding);
                self.memo.insert(port.binding.clone(), built);
            }
            let Some(Some(built)) = self.memo.get(&port.binding).cloned() else {
                continue;
            };
            soap_ports += 1;
            for b in built {
                match ops.iter().position(|o| o.name == b.name) {
                    Some(i) => {
                        let o = &mut ops[i];
                        if o.style != b.style || o.input != b.input || o.output != b.output {
                            let first_port = origin[i].2.clone();
                            self.err(
                                &b.path,
                                b.pos,
                                format!(
                                    "binding {} operation {}: port {} binds it with a different \
                                     style or payload than port {} of service {}; one service \
                                     must expose one contract per operation",
                                    b.bound.binding, b.name, port.name, first_port, sdef.name
                                ),
                            );
                        } else if o.binding(b.bound.version).is_none() {
                            o.bindings.push(b.bound);
                        }
                    }
                    None => {
                        origin.push((b.path.clone(), b.pos, port.name.clone()));
                        ops.push(Operation {
                            name: b.name,
                            style: b.style,
                            bindings: vec![b.bound],
                            input: b.input,
                            output: b.output,
                            original_output: None,
                            result_of: None,
                        });
                    }
                }
            }
        }
        if soap_ports == 0 {
            self.err(
                path,
                sdef.pos,
                format!(
                    "service {} has no port with a SOAP 1.1 or SOAP 1.2 binding over HTTP, so \
                     there is nothing to serve",
                    sdef.name
                ),
            );
            return None;
        }
        for version in [SoapVersion::V11, SoapVersion::V12] {
            let mut by_payload: HashMap<&QName, &str> = HashMap::new();
            for (i, o) in ops.iter().enumerate() {
                if o.binding(version).is_none() {
                    continue;
                }
                let Some(q) = o.input.dispatch_name() else {
                    continue;
                };
                if let Some(other) = by_payload.get(q) {
                    self.errors.push(LoadError::new(
                        &origin[i].0,
                        origin[i].1,
                        format!(
                            "service {}: operations {} and {} both take {} as the {} body \
                             payload, so requests cannot be dispatched to one of them",
                            sdef.name,
                            other,
                            o.name,
                            q,
                            version.as_str()
                        ),
                    ));
                } else {
                    by_payload.insert(q, &o.name);
                }
            }
        }
        Some(Service {
            name: sdef.name.clone(),
            operations: ops,
        })
    }

    /// Build the operations of a SOAP-over-HTTP binding; `None` when the
    /// binding is of another kind and is not served.
    fn binding(&mut self, name: &QName) -> Option<Vec<BuiltOp>> {
        let defs = self.defs;
        let b = defs.bindings.get(name)?;
        let soap = b.soap.as_ref()?;
        if let Some(t) = &soap.transport
            && !HTTP_TRANSPORTS.contains(&t.as_str())
        {
            self.err(
                &b.path,
                soap.pos,
                format!(
                    "binding {}: transport {t} is not supported; soapgate serves SOAP over \
                         HTTP ({})",
                    b.name, HTTP_TRANSPORTS[0]
                ),
            );
            return Some(Vec::new());
        }
        let Some(pt_name) = &b.port_type else {
            return Some(Vec::new());
        };
        let Some(pt) = defs.port_types.get(pt_name) else {
            self.err(
                &b.path,
                b.pos,
                format!(
                    "binding {} refers to portType {pt_name}, which is not defined",
                    b.name
                ),
            );
            return Some(Vec::new());
        };
        let mut out = Vec::new();
        for bop in &b.ops {
            if let Some(op) = self.operation(b, soap, bop, pt, pt_name) {
                out.push(op);
            }
        }
        Some(out)
    }

    fn operation(
        &mut self,
        b: &BindingDef,
        soap: &SoapBindingInfo,
        bop: &BindingOpDef,
        pt: &PortTypeDef,
        pt_name: &QName,
    ) -> Option<BuiltOp> {
        let at = format!("binding {} operation {}", b.name, bop.name);
        let candidates: Vec<&AbstractOp> = pt.ops.iter().filter(|o| o.name == bop.name).collect();
        let aop = match candidates.as_slice() {
            [one] => *one,
            [] => {
                self.err(
                    &b.path,
                    bop.pos,
                    format!("{at}: portType {pt_name} has no operation of that name"),
                );
                return None;
            }
            [_, second, ..] => {
                self.err(
                    &pt.path,
                    second.pos,
                    format!(
                        "{at}: portType {pt_name} overloads the operation name {}; overloaded \
                         operations are not supported (requests could not be told apart)",
                        bop.name
                    ),
                );
                return None;
            }
        };
        if aop.output_first {
            let kind = if aop.input.is_some() {
                "a solicit-response operation (output before input)"
            } else {
                "a notification operation (output only)"
            };
            self.err(
                &b.path,
                bop.pos,
                format!("{at}: {kind} is not supported; only request-response and one-way are"),
            );
            return None;
        }
        let Some(input_ref) = &aop.input else {
            self.err(
                &pt.path,
                aop.pos,
                format!("{at}: the operation has no input"),
            );
            return None;
        };
        let style_text = bop
            .style
            .as_deref()
            .or(soap.style.as_deref())
            .unwrap_or("document");
        let style = match style_text {
            "document" => Style::Document,
            "rpc" => Style::Rpc,
            other => {
                self.err(
                    &b.path,
                    bop.pos,
                    format!("{at}: style \"{other}\" is neither document nor rpc"),
                );
                return None;
            }
        };
        let input = self.payload(b, bop, &at, style, style_text, input_ref, &bop.input, "")?;
        let output = match &aop.output {
            Some(r) => {
                Some(self.payload(b, bop, &at, style, style_text, r, &bop.output, "Response")?)
            }
            None => None,
        };
        if let Payload::Document { elements } = &input
            && elements.is_empty()
        {
            self.err(
                &b.path,
                bop.pos,
                format!(
                    "{at}: the document-style input has no body part, so a request for \
                         it cannot be recognised by its payload"
                ),
            );
            return None;
        }
        Some(BuiltOp {
            name: bop.name.clone(),
            style,
            bound: BoundVersion {
                version: soap.version,
                binding: b.name.clone(),
                soap_action: bop.soap_action.clone().filter(|a| !a.trim().is_empty()),
            },
            input,
            output,
            path: b.path.clone(),
            pos: bop.pos,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn payload(
        &mut self,
        b: &BindingDef,
        bop: &BindingOpDef,
        at: &str,
        style: Style,
        style_text: &str,
        msg_ref: &MsgRef,
        body: &BodyDef,
        wrapper_suffix: &str,
    ) -> Option<Payload> {
        let defs = self.defs;
        if let Some((why, pos)) = &body.unsupported {
            self.err(&b.path, *pos, format!("{at}: {why}"));
            return None;
        }
        let Some(msg) = defs.messages.get(&msg_ref.message) else {
            let pt_path = b
                .port_type
                .as_ref()
                .and_then(|p| defs.port_types.get(p))
                .map(|p| p.path.clone())
                .unwrap_or_else(|| b.path.clone());
            self.err(
                &pt_path,
                msg_ref.pos,
                format!("{at}: message {} is not defined", msg_ref.message),
            );
            return None;
        };
        if let Some(sb) = &body.body {
            match sb.use_.as_deref() {
                None | Some("literal") => {}
                Some("encoded") => {
                    self.err(
                        &b.path,
                        sb.pos,
                        format!(
                            "{at}: {style_text}/encoded is not supported (SOAP encoding; only \
                             literal use is)"
                        ),
                    );
                    return None;
                }
                Some(other) => {
                    self.err(
                        &b.path,
                        sb.pos,
                        format!("{at}: use=\"{other}\" is not supported; only literal use is"),
                    );
                    return None;
                }
            }
        }
        for h in &body.headers {
            let known = defs
                .messages
                .get(&h.message)
                .is_some_and(|m| m.parts.iter().any(|p| p.name == h.part));
            if !known {
                self.err(
                    &b.path,
                    h.pos,
                    format!(
                        "{at}: soap:header refers to part {} of message {}, which is not defined",
                        h.part, h.message
                    ),
                );
            }
        }
        let selected: Vec<&PartDef> = match body.body.as_ref().and_then(|sb| sb.parts.as_ref()) {
            Some(names) => {
                let mut v = Vec::new();
                for n in names {
                    match msg.parts.iter().find(|p| &p.name == n) {
                        Some(p) => v.push(p),
                        None => {
                            let pos = body.body.as_ref().map_or(bop.pos, |sb| sb.pos);
                            self.err(
                                &b.path,
                                pos,
                                format!(
                                    "{at}: soap:body parts=\"{n}\" names no part of message {}",
                                    msg_ref.message
                                ),
                            );
                            return None;
                        }
                    }
                }
                v
            }
            // Without `parts=`, the body carries every part that is not
            // already bound to a header.
            None => msg
                .parts
                .iter()
                .filter(|p| {
                    !body
                        .headers
                        .iter()
                        .any(|h| h.message == msg_ref.message && h.part == p.name)
                })
                .collect(),
        };
        match style {
            Style::Document => {
                let mut elements = Vec::new();
                for p in selected {
                    match &p.kind {
                        PartKind::Element(q) => {
                            self.check_element(&msg.path, p, q, &msg_ref.message);
                            elements.push(q.clone());
                        }
                        PartKind::Type(q) => {
                            self.err(
                                &b.path,
                                bop.pos,
                                format!(
                                    "{at}: document style needs element= parts, but part {} of \
                                     message {} has type=\"{q}\" (declare a global element, or \
                                     use rpc style)",
                                    p.name, msg_ref.message
                                ),
                            );
                            return None;
                        }
                    }
                }
                Some(Payload::Document { elements })
            }
            Style::Rpc => {
                let ns = body
                    .body
                    .as_ref()
                    .and_then(|sb| sb.namespace.clone())
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| b.tns.clone());
                let mut parts = Vec::new();
                for p in selected {
                    match &p.kind {
                        PartKind::Element(q) => {
                            self.check_element(&msg.path, p, q, &msg_ref.message)
                        }
                        PartKind::Type(q) => {
                            if let Some(s) = self.schemas
                                && !s.has_type(q)
                            {
                                self.err(
                                    &msg.path,
                                    p.pos,
                                    format!(
                                        "part {} of message {} has type {q}, which no schema \
                                             defines",
                                        p.name, msg_ref.message
                                    ),
                                );
                            }
                        }
                    }
                    parts.push(RpcPart {
                        name: p.name.clone(),
                        kind: p.kind.clone(),
                    });
                }
                Some(Payload::Rpc {
                    wrapper: QName::new(ns, format!("{}{wrapper_suffix}", bop.name)),
                    parts,
                })
            }
        }
    }

    fn check_element(&mut self, path: &Path, p: &PartDef, q: &QName, msg: &QName) {
        if let Some(s) = self.schemas
            && !s.has_element(q)
        {
            self.err(
                path,
                p.pos,
                format!(
                    "part {} of message {msg} references element {q}, which no schema \
                         declares",
                    p.name
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_folds_dots() {
        assert_eq!(
            normalize(Path::new("a/./b/../c.xsd")),
            PathBuf::from("a/c.xsd")
        );
        assert_eq!(
            normalize(Path::new("../x/../y.xsd")),
            PathBuf::from("../y.xsd")
        );
        assert_eq!(normalize(Path::new("/a/../../b")), PathBuf::from("/b"));
    }

    #[test]
    fn publish_names_are_relative_to_the_wsdl_folder() {
        let f = Path::new("wsdl/erp");
        assert_eq!(
            publish_name(f, Path::new("wsdl/erp/types.xsd")),
            "types.xsd"
        );
        assert_eq!(
            publish_name(f, Path::new("wsdl/erp/common/a.xsd")),
            "common/a.xsd"
        );
        assert_eq!(
            publish_name(f, Path::new("wsdl/shared/b.xsd")),
            "../shared/b.xsd"
        );
        assert_eq!(publish_name(Path::new(""), Path::new("c.xsd")), "c.xsd");
    }
}
