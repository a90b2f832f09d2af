//! The loaded contract: services, their operations and how each is bound to
//! SOAP 1.1 and/or 1.2. Built by [`super::wsdl`], read by the HTTP layer and
//! the pipeline.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::xsd::SchemaSet;
use crate::soap::SoapVersion;
use crate::xml::{Element, QName};

/// Every contract in the WSDL folder, indexed by service name.
#[derive(Debug, Default)]
pub struct ContractSet {
    pub contracts: Vec<Arc<Contract>>,
    /// Service name -> (index into `contracts`, index into its `services`).
    index: BTreeMap<String, (usize, usize)>,
}

impl ContractSet {
    /// Build the index. Service names must be unique across files; the loader
    /// reports duplicates before calling this.
    pub fn new(contracts: Vec<Arc<Contract>>) -> Self {
        let mut index = BTreeMap::new();
        for (ci, c) in contracts.iter().enumerate() {
            for (si, s) in c.services.iter().enumerate() {
                index.entry(s.name.clone()).or_insert((ci, si));
            }
        }
        ContractSet { contracts, index }
    }

    pub fn service(&self, name: &str) -> Option<(&Arc<Contract>, &Service)> {
        let &(ci, si) = self.index.get(name)?;
        let c = self.contracts.get(ci)?;
        Some((c, c.services.get(si)?))
    }

    /// Every service, sorted by name.
    pub fn services(&self) -> impl Iterator<Item = (&Arc<Contract>, &Service)> {
        self.index.values().filter_map(|&(ci, si)| {
            let c = self.contracts.get(ci)?;
            Some((c, c.services.get(si)?))
        })
    }
}

/// One `.wsdl` file with everything it imports.
#[derive(Debug)]
pub struct Contract {
    /// The `.wsdl` file.
    pub path: PathBuf,
    pub target_ns: String,
    pub schemas: SchemaSet,
    pub services: Vec<Service>,
    /// The WSDL document as read, for publishing.
    pub wsdl: Element,
    /// Schema documents pulled in by `xsd:import`/`xsd:include`, by the name
    /// they are published under (`?xsd={name}`).
    pub imported: BTreeMap<String, ImportedDoc>,
}

/// A schema file imported (directly or transitively) by a contract.
#[derive(Debug, Clone)]
pub struct ImportedDoc {
    pub path: PathBuf,
    pub root: Element,
}

/// A `wsdl:service` with the operations of all its SOAP ports merged: an
/// operation bound by both a SOAP 1.1 and a SOAP 1.2 port appears once, with
/// two [`BoundVersion`]s.
#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    pub operations: Vec<Operation>,
}

impl Service {
    pub fn operation(&self, name: &str) -> Option<&Operation> {
        self.operations.iter().find(|o| o.name == name)
    }

    /// Dispatch: the operation whose input payload starts with this element,
    /// bound for this SOAP version.
    pub fn operation_for(&self, version: SoapVersion, payload: &QName) -> Option<&Operation> {
        self.operations
            .iter()
            .find(|o| o.input.dispatch_name() == Some(payload) && o.binding(version).is_some())
    }

    /// True when some operation accepts this payload under any version.
    pub fn knows_payload(&self, payload: &QName) -> bool {
        self.operations
            .iter()
            .any(|o| o.input.dispatch_name() == Some(payload))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Document,
    Rpc,
}

impl Style {
    pub fn as_str(self) -> &'static str {
        match self {
            Style::Document => "document/literal",
            Style::Rpc => "rpc/literal",
        }
    }
}

/// How one SOAP binding exposes an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundVersion {
    pub version: SoapVersion,
    pub binding: QName,
    /// `soapAction` (1.1) or `soapAction` used as the 1.2 `action`; empty
    /// strings are normalised to `None`.
    pub soap_action: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Operation {
    pub name: String,
    pub style: Style,
    pub bindings: Vec<BoundVersion>,
    pub input: Payload,
    /// `None` for a one-way operation. For an async operation of a
    /// published contract, the ticket (see [`Operation::original_output`]).
    pub output: Option<Payload>,
    /// Async operations only: the caller gets a ticket (`sg:{Op}Ticket`,
    /// now in `output`) at once; this is the response as the admin's WSDL
    /// declares it, which the job produces and `Get{Op}Result` returns.
    /// Set by [`super::augment`]; `None` for every other operation.
    pub original_output: Option<Payload>,
    /// `Get{Op}Result`, added by [`super::augment`]: the name of the async
    /// operation whose jobs it polls. `None` for the contract's own
    /// operations.
    pub result_of: Option<String>,
    /// The faults the portType declares (`wsdl:fault`), in order.
    pub faults: Vec<OperationFault>,
}

/// A `wsdl:fault` of an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationFault {
    pub name: String,
    /// The fault message.
    pub message: QName,
    /// What the fault's `detail` carries.
    pub detail: FaultDetail,
}

/// The detail a declared fault carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultDetail {
    /// The message's one part names this global element (WS-I Basic
    /// Profile R2205): the detail's child.
    Element(QName),
    /// No element a fault can be answered with; why, in plain words (the
    /// message is not defined, has no or several parts, or a typed part).
    Unusable(String),
}

impl Operation {
    pub fn binding(&self, version: SoapVersion) -> Option<&BoundVersion> {
        self.bindings.iter().find(|b| b.version == version)
    }

    pub fn is_one_way(&self) -> bool {
        self.output.is_none()
    }

    /// True for an async request-response operation answered with a ticket.
    pub fn is_ticketed(&self) -> bool {
        self.original_output.is_some()
    }

    /// The declared fault of this name.
    pub fn fault(&self, name: &str) -> Option<&OperationFault> {
        self.faults.iter().find(|f| f.name == name)
    }

    /// The response payload a job of this operation produces: the
    /// original output of an async operation, else the output.
    pub fn result_payload(&self) -> Option<&Payload> {
        self.original_output.as_ref().or(self.output.as_ref())
    }
}

/// What goes in the SOAP Body for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// document/literal: the Body's children are these global elements, in
    /// order (one for wrapped style; bare style may have several or none).
    Document { elements: Vec<QName> },
    /// rpc/literal: one wrapper element in the binding's namespace, whose
    /// children are the parts, unqualified, each typed or referencing an
    /// element.
    Rpc { wrapper: QName, parts: Vec<RpcPart> },
}

impl Payload {
    /// The QName of the Body's first child, used for dispatch.
    pub fn dispatch_name(&self) -> Option<&QName> {
        match self {
            Payload::Document { elements } => elements.first(),
            Payload::Rpc { wrapper, .. } => Some(wrapper),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcPart {
    pub name: String,
    pub kind: PartKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartKind {
    /// `type="xsd:string"` or a named type of the schemas.
    Type(QName),
    /// `element="tns:Foo"`: the part is that global element.
    Element(QName),
}
