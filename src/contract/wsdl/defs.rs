//! The WSDL components of each document — messages, portTypes, bindings
//! (with their SOAP extensions) and services — read into plain structs with
//! references resolved to QNames. Each remembers its file and position for
//! error messages; nothing here checks that a reference leads anywhere.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::{Path, PathBuf};

use super::docs::WsdlDoc;
use super::{WSDL_MIME_NS, WSDL_NS, WSDL_SOAP11_NS, WSDL_SOAP12_NS};
use crate::contract::LoadError;
use crate::contract::model::PartKind;
use crate::soap::SoapVersion;
use crate::xml::{Element, NsScope, Pos, QName};

pub(super) struct PartDef {
    pub(super) name: String,
    pub(super) pos: Pos,
    pub(super) kind: PartKind,
}

pub(super) struct MessageDef {
    pub(super) path: PathBuf,
    pub(super) parts: Vec<PartDef>,
}

pub(super) struct MsgRef {
    pub(super) message: QName,
    pub(super) pos: Pos,
}

pub(super) struct AbstractOp {
    pub(super) name: String,
    pub(super) pos: Pos,
    pub(super) input: Option<MsgRef>,
    pub(super) output: Option<MsgRef>,
    /// `output` is written before `input` (or alone): a notification or
    /// solicit-response operation.
    pub(super) output_first: bool,
    /// The `wsdl:fault`s: name and message.
    pub(super) faults: Vec<(String, MsgRef)>,
}

pub(super) struct PortTypeDef {
    pub(super) path: PathBuf,
    pub(super) ops: Vec<AbstractOp>,
}

pub(super) struct SoapBindingInfo {
    pub(super) version: SoapVersion,
    pub(super) ns: &'static str,
    pub(super) style: Option<String>,
    pub(super) transport: Option<String>,
    pub(super) pos: Pos,
}

pub(super) struct SoapBody {
    pub(super) pos: Pos,
    pub(super) parts: Option<Vec<String>>,
    pub(super) use_: Option<String>,
    pub(super) namespace: Option<String>,
}

pub(super) struct HeaderRef {
    pub(super) message: QName,
    pub(super) part: String,
    pub(super) pos: Pos,
}

/// The `wsdl:input` or `wsdl:output` of a binding operation.
#[derive(Default)]
pub(super) struct BodyDef {
    pub(super) body: Option<SoapBody>,
    pub(super) headers: Vec<HeaderRef>,
    /// An extension we cannot serve (MIME multipart, DIME), with its position.
    pub(super) unsupported: Option<(String, Pos)>,
}

pub(super) struct BindingOpDef {
    pub(super) name: String,
    pub(super) pos: Pos,
    pub(super) soap_action: Option<String>,
    pub(super) style: Option<String>,
    pub(super) input: BodyDef,
    pub(super) output: BodyDef,
}

pub(super) struct BindingDef {
    pub(super) name: QName,
    pub(super) path: PathBuf,
    pub(super) pos: Pos,
    pub(super) tns: String,
    pub(super) port_type: Option<QName>,
    /// `None`: not a SOAP binding (HTTP GET/POST and others), never served.
    pub(super) soap: Option<SoapBindingInfo>,
    pub(super) ops: Vec<BindingOpDef>,
}

pub(super) struct PortDef {
    pub(super) name: String,
    pub(super) pos: Pos,
    pub(super) binding: QName,
}

pub(super) struct ServiceDef {
    pub(super) name: String,
    pub(super) pos: Pos,
    pub(super) ports: Vec<PortDef>,
}

#[derive(Default)]
pub(super) struct Defs {
    pub(super) messages: HashMap<QName, MessageDef>,
    pub(super) port_types: HashMap<QName, PortTypeDef>,
    pub(super) bindings: HashMap<QName, BindingDef>,
    /// Services of each document, by document path.
    pub(super) services: HashMap<PathBuf, Vec<ServiceDef>>,
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
    pub(super) fn parse_doc(&mut self, d: &WsdlDoc, errors: &mut Vec<LoadError>) {
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
        let mut faults = Vec::new();
        for io in op.elements().filter(|e| e.name.ns == WSDL_NS) {
            let is_input = match io.name.local.as_str() {
                "input" => true,
                "output" => false,
                "fault" => {
                    scope.push(io);
                    if let Some(message) = qattr(&scope, io, "message", path, errors) {
                        let name = io.attr("name").unwrap_or("").to_string();
                        faults.push((
                            name,
                            MsgRef {
                                message,
                                pos: io.pos,
                            },
                        ));
                    }
                    scope.pop();
                    continue;
                }
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
            faults,
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
