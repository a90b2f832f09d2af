//! From components to the served model: each service's ports, the SOAP
//! bindings they name (built once, shared by ports), and each bound
//! operation matched with its portType operation, with the checks that keep
//! one service one contract (same payload on every port, requests
//! dispatchable by their body payload).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::defs::{
    AbstractOp, BindingDef, BindingOpDef, Defs, PortTypeDef, ServiceDef, SoapBindingInfo,
};
use super::docs::WsdlDoc;
use crate::contract::LoadError;
use crate::contract::model::{
    BoundVersion, FaultDetail, Operation, OperationFault, PartKind, Payload, Service, Style,
};
use crate::contract::xsd::SchemaSet;
use crate::soap::SoapVersion;
use crate::xml::{Pos, QName};

/// Transports a SOAP binding may name for us to serve it over HTTP. SOAP 1.2
/// bindings normally reuse the 1.1 URI; a few tools write the 1.2 one.
const HTTP_TRANSPORTS: &[&str] = &[
    "http://schemas.xmlsoap.org/soap/http",
    "http://www.w3.org/2003/05/soap/bindings/HTTP/",
];

/// One operation as one SOAP binding exposes it.
#[derive(Clone)]
pub(super) struct BuiltOp {
    name: String,
    style: Style,
    bound: BoundVersion,
    input: Payload,
    output: Option<Payload>,
    faults: Vec<OperationFault>,
    path: PathBuf,
    pos: Pos,
}

pub(super) struct Builder<'a> {
    pub(super) defs: &'a Defs,
    pub(super) schemas: Option<&'a SchemaSet>,
    pub(super) errors: &'a mut Vec<LoadError>,
    /// Bindings already built (several ports may share one); `None` for a
    /// binding that is not served.
    pub(super) memo: HashMap<QName, Option<Vec<BuiltOp>>>,
}

impl Builder<'_> {
    pub(super) fn err(&mut self, path: &Path, pos: Pos, msg: impl Into<String>) {
        self.errors.push(LoadError::new(path, pos, msg));
    }

    pub(super) fn services(&mut self, doc: &WsdlDoc) -> Vec<Service> {
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
                            faults: b.faults,
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
        let faults = aop
            .faults
            .iter()
            .map(|(name, r)| OperationFault {
                name: name.clone(),
                message: r.message.clone(),
                detail: self.fault_detail(&r.message),
            })
            .collect();
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
            faults,
            path: b.path.clone(),
            pos: bop.pos,
        })
    }

    /// The detail element a fault message carries. A fault no mapping
    /// answers needs none, so an unusable one is recorded, not an error:
    /// the mapping loader reports it when a mapping names the fault.
    fn fault_detail(&self, message: &QName) -> FaultDetail {
        let Some(msg) = self.defs.messages.get(message) else {
            return FaultDetail::Unusable(format!("its message {message} is not defined"));
        };
        match msg.parts.as_slice() {
            [one] => match &one.kind {
                PartKind::Element(q) if self.schemas.is_none_or(|s| s.element(q).is_some()) => {
                    FaultDetail::Element(q.clone())
                }
                PartKind::Element(q) => FaultDetail::Unusable(format!(
                    "its message {message} names element {q}, which the schema does not declare"
                )),
                PartKind::Type(t) => FaultDetail::Unusable(format!(
                    "its message {message} has a typed part ({t}), not an element"
                )),
            },
            [] => FaultDetail::Unusable(format!("its message {message} has no part")),
            parts => FaultDetail::Unusable(format!(
                "its message {message} has {} parts; a fault's has one",
                parts.len()
            )),
        }
    }
}
