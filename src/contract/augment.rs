//! The published contract of async operations.
//!
//! An operation mapped `mode: async` answers at once with a ticket instead
//! of its response, and the result is fetched later. For a client generated
//! from `?wsdl` to do that, the contract itself must say so. For each async
//! request-response operation `Op` (document/literal only), this module edits
//! a copy of the admin's WSDL documents:
//!
//! - `wsdl:types` gains a schema in soapgate's namespace (`urn:soapgate:v1`)
//!   declaring `sg:{Op}Ticket` (type `sg:Ticket`: `jobId`, `status`),
//!   `sg:Get{Op}Result` (`jobId`) and `sg:Get{Op}ResultResponse` (`jobId`,
//!   `status`, then `result` holding the operation's original response
//!   element(s) by `ref` when DONE, or `faultCode` and `faultText` when
//!   FAILED). It imports the namespaces of those response elements.
//! - `Op`'s output message becomes one whose part is `sg:{Op}Ticket`; every
//!   SOAP 1.1/1.2 binding of `Op` answers it with a plain literal body.
//! - A new operation `Get{Op}Result` is added to the portType and to every
//!   SOAP binding that binds `Op` (with a soapAction derived from `Op`'s), so
//!   every port that offers `Op` offers its poll. It declares `Op`'s
//!   `wsdl:fault`s: a job whose answer was a declared fault is answered
//!   with that fault by the poll.
//!
//! Every prefix the additions use is bound on the edited document's root
//! (an existing binding, or a new declaration there), never only on the
//! added element: clients such as suds resolve QName-valued attributes
//! against the definitions.
//!
//! The edited documents are read again by the ordinary WSDL loader (through a
//! [`Files`] overlay), so the new elements are validated and dispatched
//! like any other, and the published WSDL is simply the edited tree. The
//! loaded operations are then marked: `Op` keeps its original response in
//! [`Operation::original_output`], `Get{Op}Result` names `Op` in
//! [`Operation::result_of`].

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use super::model::{Contract, Payload, Style};
use super::wsdl::{self, WSDL_NS, WSDL_SOAP11_NS, WSDL_SOAP12_NS, XSD_NS, normalize};
use super::{Files, LoadError};
use crate::soap::SOAPGATE_NS;
use crate::xml::{self, Element, Node, NsDecl, NsScope, Pos, QName, escape_attr};

/// The operation that polls the jobs of `operation`.
pub fn poll_operation_name(operation: &str) -> String {
    format!("Get{operation}Result")
}

/// The ticket element of an async operation (in [`SOAPGATE_NS`]).
pub fn ticket_element(operation: &str) -> QName {
    QName::new(SOAPGATE_NS, format!("{operation}Ticket"))
}

/// The poll request element of an async operation.
pub fn poll_request_element(operation: &str) -> QName {
    QName::new(SOAPGATE_NS, poll_operation_name(operation))
}

/// The poll response element of an async operation.
pub fn poll_response_element(operation: &str) -> QName {
    QName::new(
        SOAPGATE_NS,
        format!("{}Response", poll_operation_name(operation)),
    )
}

/// The contract as published when the operations named in `async_ops` are
/// async: edited as the module documentation says and loaded again.
/// `files` reads the contract's other files (imported schemas) as the
/// first load did.
pub fn augment(
    contract: &Contract,
    async_ops: &BTreeSet<String>,
    files: &dyn Files,
) -> Result<Contract, Vec<LoadError>> {
    let mut docs = Docs::new(contract);
    let mut errors = Vec::new();
    let bindings = docs.served_bindings();

    // What each async operation answers today, and where to report.
    let mut outputs: BTreeMap<&str, Vec<QName>> = BTreeMap::new();
    for name in async_ops {
        let ops: Vec<_> = contract
            .services
            .iter()
            .flat_map(|s| s.operations.iter())
            .filter(|o| &o.name == name)
            .collect();
        let Some(first) = ops.first() else {
            continue;
        };
        let at = docs.op_pos(&bindings, name);
        let poll = poll_operation_name(name);
        let port_type_has_poll = bindings.iter().any(|b| {
            b.port_type
                .as_ref()
                .and_then(|pt| docs.find("portType", pt))
                .and_then(|loc| docs.child(loc))
                .is_some_and(|pt| {
                    pt.children_named(WSDL_NS, "operation")
                        .any(|o| o.attr("name") == Some(poll.as_str()))
                })
        });
        if port_type_has_poll
            || contract
                .services
                .iter()
                .any(|s| s.operations.iter().any(|o| o.name == poll))
        {
            errors.push(LoadError::new(
                &contract.path,
                at,
                format!(
                    "operation {name} is async, so soapgate adds {poll} to poll its results, \
                     but the contract already has an operation of that name"
                ),
            ));
            continue;
        }
        match (&first.style, &first.output) {
            (Style::Document, Some(Payload::Document { elements })) => {
                outputs.insert(name.as_str(), elements.clone());
            }
            (_, None) => {}
            _ => errors.push(LoadError::new(
                &contract.path,
                at,
                format!(
                    "operation {name} is rpc/literal; mode: async needs a document/literal \
                     operation (its response element is replaced by a ticket)"
                ),
            )),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if outputs.is_empty() {
        return wsdl::load(&contract.path, files);
    }

    docs.add_schema(contract, &outputs);
    let mut port_types_done: HashSet<(QName, &str)> = HashSet::new();
    for op in outputs.keys() {
        for b in &bindings {
            if !docs.has_op(&b.binding, op) {
                continue;
            }
            docs.edit_binding(b, op);
            if let Some(pt) = &b.port_type
                && port_types_done.insert((pt.clone(), op))
            {
                docs.edit_port_type(pt, op);
            }
        }
    }

    let overlay = Overlay {
        docs: docs
            .docs
            .iter()
            .filter(|d| d.dirty)
            .map(|d| {
                let text = format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}",
                    xml::write_element(&d.root)
                );
                (normalize(&d.path), text.into_bytes())
            })
            .collect(),
        base: files,
    };
    let mut out = wsdl::load(&contract.path, &overlay)?;
    for service in &mut out.services {
        let original = contract.services.iter().find(|s| s.name == service.name);
        for op in &mut service.operations {
            if outputs.contains_key(op.name.as_str()) {
                op.original_output = original
                    .and_then(|s| s.operation(&op.name))
                    .and_then(|o| o.output.clone());
            }
            for name in outputs.keys() {
                if op.name == poll_operation_name(name)
                    && op.input.dispatch_name() == Some(&poll_request_element(name))
                {
                    op.result_of = Some((*name).to_string());
                }
            }
        }
    }
    Ok(out)
}

/// Serves edited documents in place of the files they came from.
struct Overlay<'a> {
    docs: Vec<(PathBuf, Vec<u8>)>,
    base: &'a dyn Files,
}

impl Files for Overlay<'_> {
    fn read(&self, path: &Path) -> Result<Vec<u8>, String> {
        let key = normalize(path);
        match self.docs.iter().find(|(p, _)| *p == key) {
            Some((_, bytes)) => Ok(bytes.clone()),
            None => self.base.read(path),
        }
    }
}

struct Doc {
    path: PathBuf,
    tns: String,
    root: Element,
    dirty: bool,
}

/// Where a top-level WSDL component is: (document, child index).
type Loc = (usize, usize);

/// A SOAP binding some service port uses. Components are named, not
/// located: adding messages moves the ones after them.
struct ServedBinding {
    binding: QName,
    soap_ns: &'static str,
    port_type: Option<QName>,
}

struct Docs {
    docs: Vec<Doc>,
}

/// Parse a fragment written in code; its text is built from names that
/// went through the loader already, so a failure is a bug in this module.
fn fragment(text: &str) -> Element {
    match xml::read_str(text, &wsdl::contract_limits()) {
        Ok(doc) => doc.root,
        Err(e) => {
            tracing::error!(error = %e, text, "generated WSDL fragment does not parse");
            Element::default()
        }
    }
}

fn attr_text(v: &str) -> String {
    let mut s = String::new();
    escape_attr(v, &mut s);
    s
}

/// Every namespace declaration of the tree, the root's included.
fn all_decls(el: &Element, out: &mut Vec<NsDecl>) {
    out.extend(el.ns_decls.iter().cloned());
    for child in el.elements() {
        all_decls(child, out);
    }
}

impl Docs {
    fn new(contract: &Contract) -> Docs {
        let mut docs = vec![Doc {
            path: contract.path.clone(),
            tns: contract
                .wsdl
                .attr("targetNamespace")
                .unwrap_or("")
                .to_string(),
            root: contract.wsdl.clone(),
            dirty: false,
        }];
        for imported in contract.imported.values() {
            if imported.root.name.is(WSDL_NS, "definitions") {
                docs.push(Doc {
                    path: imported.path.clone(),
                    tns: imported
                        .root
                        .attr("targetNamespace")
                        .unwrap_or("")
                        .to_string(),
                    root: imported.root.clone(),
                    dirty: false,
                });
            }
        }
        Docs { docs }
    }

    fn child(&self, loc: Loc) -> Option<&Element> {
        match self.docs.get(loc.0)?.root.children.get(loc.1)? {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        }
    }

    fn child_mut(&mut self, loc: Loc) -> Option<&mut Element> {
        let doc = self.docs.get_mut(loc.0)?;
        doc.dirty = true;
        match doc.root.children.get_mut(loc.1)? {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        }
    }

    /// A prefix the root of document `di` binds to `uri`, for the
    /// QName-valued attributes (`message=`, `element=`, `type=`, `ref=`)
    /// and element names the edits write: one the root already binds to it
    /// (and no element of the document binds to another namespace), or else
    /// `want` (then `want2`, …) declared on the root, a prefix no element of
    /// the document declares. Declarations on the root are what every
    /// client resolves against: suds looks a portType's `message=` up on the
    /// portType and the definitions, never on the element carrying it.
    fn root_prefix(&mut self, di: usize, uri: &str, want: &str) -> String {
        let mut decls = Vec::new();
        all_decls(&self.docs[di].root, &mut decls);
        let binds_only = |prefix: &str| {
            decls
                .iter()
                .filter(|d| d.prefix == prefix)
                .all(|d| d.uri == uri)
        };
        if let Some(d) = self.docs[di]
            .root
            .ns_decls
            .iter()
            .find(|d| !d.prefix.is_empty() && d.uri == uri && binds_only(&d.prefix))
        {
            return d.prefix.clone();
        }
        let mut prefix = want.to_string();
        let mut n = 1;
        while prefix == "xml" || decls.iter().any(|d| d.prefix == prefix) {
            n += 1;
            prefix = format!("{want}{n}");
        }
        let doc = &mut self.docs[di];
        doc.dirty = true;
        doc.root.ns_decls.push(NsDecl {
            prefix: prefix.clone(),
            uri: uri.to_string(),
        });
        prefix
    }

    /// A fragment for document `di`, without the declarations its root
    /// already makes: the text declares every prefix it uses so that it
    /// parses on its own, and the prefixes come from [`Docs::root_prefix`].
    fn fragment_for(&self, di: usize, text: &str) -> Element {
        let mut el = fragment(text);
        let root = &self.docs[di].root;
        el.ns_decls
            .retain(|d| d.prefix.is_empty() || root.declared_ns(&d.prefix) != Some(d.uri.as_str()));
        el
    }

    /// The top-level component `kind` named `name`, in any document.
    fn find(&self, kind: &str, name: &QName) -> Option<Loc> {
        self.docs.iter().enumerate().find_map(|(di, d)| {
            if d.tns != name.ns {
                return None;
            }
            d.root
                .children
                .iter()
                .enumerate()
                .find_map(|(ci, n)| match n {
                    Node::Element(e)
                        if e.name.is(WSDL_NS, kind)
                            && e.attr("name") == Some(name.local.as_str()) =>
                    {
                        Some((di, ci))
                    }
                    _ => None,
                })
        })
    }

    /// Every SOAP binding a port of the root document's services uses, once.
    fn served_bindings(&self) -> Vec<ServedBinding> {
        let mut out: Vec<ServedBinding> = Vec::new();
        let root = &self.docs[0].root;
        let mut scope = NsScope::new();
        scope.push(root);
        for service in root.children_named(WSDL_NS, "service") {
            scope.push(service);
            for port in service.children_named(WSDL_NS, "port") {
                scope.push(port);
                let q = port.attr("binding").and_then(|v| scope.resolve_qname(v));
                scope.pop();
                let Some(q) = q else { continue };
                let Some(loc) = self.find("binding", &q) else {
                    continue;
                };
                if out.iter().any(|b| b.binding == q) {
                    continue;
                }
                let Some(b) = self.child(loc) else { continue };
                let soap_ns = if b.child(WSDL_SOAP11_NS, "binding").is_some() {
                    WSDL_SOAP11_NS
                } else if b.child(WSDL_SOAP12_NS, "binding").is_some() {
                    WSDL_SOAP12_NS
                } else {
                    continue;
                };
                let mut bscope = NsScope::new();
                bscope.push(&self.docs[loc.0].root);
                bscope.push(b);
                let port_type = b
                    .attr("type")
                    .and_then(|v| bscope.resolve_qname(v))
                    .filter(|q| self.find("portType", q).is_some());
                out.push(ServedBinding {
                    binding: q,
                    soap_ns,
                    port_type,
                });
            }
            scope.pop();
        }
        out
    }

    fn has_op(&self, binding: &QName, op: &str) -> bool {
        self.find("binding", binding)
            .and_then(|loc| self.child(loc))
            .is_some_and(|b| {
                b.children_named(WSDL_NS, "operation")
                    .any(|o| o.attr("name") == Some(op))
            })
    }

    /// Where the operation is bound, for error messages.
    fn op_pos(&self, bindings: &[ServedBinding], op: &str) -> Pos {
        bindings
            .iter()
            .filter_map(|b| self.find("binding", &b.binding))
            .filter_map(|loc| self.child(loc))
            .flat_map(|b| b.children_named(WSDL_NS, "operation"))
            .find(|o| o.attr("name") == Some(op))
            .map(|o| o.pos)
            .unwrap_or(self.docs[0].root.pos)
    }

    /// Adds the soapgate schema to the root document's `wsdl:types`.
    fn add_schema(&mut self, contract: &Contract, outputs: &BTreeMap<&str, Vec<QName>>) {
        let x = self.root_prefix(0, XSD_NS, "xsd");
        let g = self.root_prefix(0, SOAPGATE_NS, "sg");
        let mut namespaces: BTreeMap<String, String> = BTreeMap::new();
        for q in outputs.values().flatten() {
            if namespaces.contains_key(&q.ns) {
                continue;
            }
            let prefix = if q.ns.is_empty() {
                String::new()
            } else {
                self.root_prefix(0, &q.ns, "r")
            };
            namespaces.insert(q.ns.clone(), prefix);
        }
        // What the fragment declares so that it parses on its own; those the
        // root makes are dropped from it once parsed.
        let mut decls: BTreeMap<&str, &str> = BTreeMap::from([(x.as_str(), XSD_NS)]);
        decls.insert(g.as_str(), SOAPGATE_NS);
        for (ns, prefix) in &namespaces {
            if !ns.is_empty() {
                decls.insert(prefix.as_str(), ns.as_str());
            }
        }
        let mut s = format!("<{x}:schema");
        for (prefix, ns) in &decls {
            s.push_str(&format!(" xmlns:{prefix}=\"{}\"", attr_text(ns)));
        }
        if namespaces.contains_key("") {
            // An unprefixed `ref` means no namespace, whatever default
            // namespace the definitions declare.
            s.push_str(" xmlns=\"\"");
        }
        s.push_str(&format!(
            " targetNamespace=\"{SOAPGATE_NS}\" elementFormDefault=\"qualified\">"
        ));
        for ns in namespaces.keys() {
            if ns.is_empty() {
                s.push_str(&format!("<{x}:import/>"));
                continue;
            }
            // Point at the schema file when the namespace comes from one, so
            // clients that do not share schemas across a WSDL's inline
            // schemas find it; the publisher rewrites it to `?xsd=`.
            let location = contract
                .imported
                .iter()
                .find(|(_, d)| {
                    d.root.name.is(XSD_NS, "schema")
                        && d.root.attr("targetNamespace") == Some(ns.as_str())
                })
                .map(|(name, _)| format!(" schemaLocation=\"{}\"", attr_text(name)))
                .unwrap_or_default();
            s.push_str(&format!(
                "<{x}:import namespace=\"{}\"{location}/>",
                attr_text(ns)
            ));
        }
        s.push_str(&format!(
            "<{x}:simpleType name=\"JobStatus\"><{x}:restriction base=\"{x}:string\">\
             <{x}:enumeration value=\"QUEUED\"/><{x}:enumeration value=\"RUNNING\"/>\
             <{x}:enumeration value=\"DONE\"/><{x}:enumeration value=\"FAILED\"/>\
             </{x}:restriction></{x}:simpleType>\
             <{x}:complexType name=\"Ticket\"><{x}:sequence>\
             <{x}:element name=\"jobId\" type=\"{x}:string\"/>\
             <{x}:element name=\"status\" type=\"{g}:JobStatus\"/>\
             </{x}:sequence></{x}:complexType>"
        ));
        for (op, elements) in outputs {
            let ticket = ticket_element(op).local;
            let poll = poll_request_element(op).local;
            let poll_response = poll_response_element(op).local;
            s.push_str(&format!(
                "<{x}:element name=\"{ticket}\" type=\"{g}:Ticket\"/>\
                 <{x}:element name=\"{poll}\"><{x}:complexType><{x}:sequence>\
                 <{x}:element name=\"jobId\" type=\"{x}:string\"/>\
                 </{x}:sequence></{x}:complexType></{x}:element>\
                 <{x}:element name=\"{poll_response}\"><{x}:complexType><{x}:sequence>\
                 <{x}:element name=\"jobId\" type=\"{x}:string\"/>\
                 <{x}:element name=\"status\" type=\"{g}:JobStatus\"/>\
                 <{x}:element name=\"result\" minOccurs=\"0\"><{x}:complexType><{x}:sequence>"
            ));
            for q in elements {
                let r = if q.ns.is_empty() {
                    q.local.clone()
                } else {
                    format!("{}:{}", namespaces[&q.ns], q.local)
                };
                s.push_str(&format!("<{x}:element ref=\"{r}\"/>"));
            }
            s.push_str(&format!(
                "</{x}:sequence></{x}:complexType></{x}:element>\
                 <{x}:element name=\"faultCode\" type=\"{x}:string\" minOccurs=\"0\"/>\
                 <{x}:element name=\"faultText\" type=\"{x}:string\" minOccurs=\"0\"/>\
                 </{x}:sequence></{x}:complexType></{x}:element>"
            ));
        }
        s.push_str(&format!("</{x}:schema>"));
        let schema = self.fragment_for(0, &s);
        let w = self.root_prefix(0, WSDL_NS, "wsdl");
        let types = self.fragment_for(0, &format!("<{w}:types xmlns:{w}=\"{WSDL_NS}\"/>"));

        let doc = &mut self.docs[0];
        doc.dirty = true;
        let root = &mut doc.root;
        let types_ix = root
            .children
            .iter()
            .position(|n| matches!(n, Node::Element(e) if e.name.is(WSDL_NS, "types")));
        let types_ix = match types_ix {
            Some(i) => i,
            None => {
                // `types` follows `documentation` and `import`.
                let at = root
                    .children
                    .iter()
                    .position(|n| {
                        matches!(n, Node::Element(e) if e.name.ns != WSDL_NS
                            || !matches!(e.name.local.as_str(), "documentation" | "import"))
                    })
                    .unwrap_or(root.children.len());
                root.children.insert(at, Node::Element(types));
                at
            }
        };
        if let Some(Node::Element(types)) = root.children.get_mut(types_ix) {
            types.push_child(schema);
        }
    }

    /// A message name not yet used in document `di`, starting from `want`.
    fn free_message_name(&self, di: usize, want: &str) -> String {
        let used: HashSet<&str> = self.docs[di]
            .root
            .children_named(WSDL_NS, "message")
            .filter_map(|m| m.attr("name"))
            .collect();
        let mut name = want.to_string();
        let mut n = 1;
        while used.contains(name.as_str()) {
            n += 1;
            name = format!("{want}_sg{n}");
        }
        name
    }

    /// Adds a one-part message carrying `element` (in soapgate's namespace)
    /// to document `di`, after its last message; returns its name.
    fn add_message(&mut self, di: usize, want: &str, element: &str) -> String {
        let name = self.free_message_name(di, want);
        let w = self.root_prefix(di, WSDL_NS, "wsdl");
        let g = self.root_prefix(di, SOAPGATE_NS, "sg");
        let msg = self.fragment_for(
            di,
            &format!(
                "<{w}:message xmlns:{w}=\"{WSDL_NS}\" xmlns:{g}=\"{SOAPGATE_NS}\" name=\"{}\">\
                 <{w}:part name=\"parameters\" element=\"{g}:{element}\"/></{w}:message>",
                attr_text(&name)
            ),
        );
        let doc = &mut self.docs[di];
        doc.dirty = true;
        let children = &mut doc.root.children;
        let at = children
            .iter()
            .rposition(|n| matches!(n, Node::Element(e) if e.name.is(WSDL_NS, "message")))
            .map(|i| i + 1)
            .or_else(|| {
                children.iter().position(|n| {
                    matches!(n, Node::Element(e) if e.name.ns == WSDL_NS
                        && matches!(e.name.local.as_str(), "portType" | "binding" | "service"))
                })
            })
            .unwrap_or(children.len());
        children.insert(at, Node::Element(msg));
        name
    }

    /// The portType: `op` answers the ticket message; `Get{op}Result` added.
    fn edit_port_type(&mut self, pt: &QName, op: &str) {
        let Some((di, _)) = self.find("portType", pt) else {
            return;
        };
        let tns = self.docs[di].tns.clone();
        let ticket_msg = self.add_message(di, &format!("{op}Ticket"), &ticket_element(op).local);
        let poll = poll_operation_name(op);
        let poll_in = self.add_message(di, &poll, &poll_request_element(op).local);
        let poll_out = self.add_message(
            di,
            &format!("{poll}Response"),
            &poll_response_element(op).local,
        );
        // A document without a targetNamespace names its messages in no
        // namespace: referred to without a prefix, as its own references do.
        let p = if tns.is_empty() {
            None
        } else {
            Some(self.root_prefix(di, &tns, "tns"))
        };
        let message_ref = |name: &str| match &p {
            Some(p) => format!("{p}:{name}"),
            None => name.to_string(),
        };
        let w = self.root_prefix(di, WSDL_NS, "wsdl");
        let tns_decl = match &p {
            Some(p) => format!(" xmlns:{p}=\"{}\"", attr_text(&tns)),
            None => String::new(),
        };
        let poll_op = self.fragment_for(
            di,
            &format!(
                "<{w}:operation xmlns:{w}=\"{WSDL_NS}\"{tns_decl} name=\"{poll}\">\
                 <{w}:input message=\"{}\"/><{w}:output message=\"{}\"/>\
                 </{w}:operation>",
                attr_text(&message_ref(&poll_in)),
                attr_text(&message_ref(&poll_out))
            ),
        );
        let ticket_ref = message_ref(&ticket_msg);
        let mut poll_op = poll_op;
        // Found again: adding messages moved the components after them.
        let Some(loc) = self.find("portType", pt) else {
            return;
        };
        let Some(el) = self.child_mut(loc) else {
            return;
        };
        for node in &mut el.children {
            let Node::Element(o) = node else { continue };
            if !o.name.is(WSDL_NS, "operation") || o.attr("name") != Some(op) {
                continue;
            }
            // The poll answers the operation's declared faults.
            poll_op.children.extend(declared_faults(o));
            for io in &mut o.children {
                let Node::Element(io) = io else { continue };
                if !io.name.is(WSDL_NS, "output") {
                    continue;
                }
                for a in &mut io.attrs {
                    if a.name.ns.is_empty() && a.name.local == "message" {
                        a.value.clone_from(&ticket_ref);
                    }
                }
            }
        }
        el.push_child(poll_op);
    }

    /// A binding: `op` answers a plain literal body (the ticket);
    /// `Get{op}Result` added with its own soapAction.
    fn edit_binding(&mut self, b: &ServedBinding, op: &str) {
        let soap_ns = b.soap_ns;
        let Some((di, _)) = self.find("binding", &b.binding) else {
            return;
        };
        let w = self.root_prefix(di, WSDL_NS, "wsdl");
        let sp = self.root_prefix(
            di,
            soap_ns,
            if soap_ns == WSDL_SOAP12_NS {
                "soap12"
            } else {
                "soap"
            },
        );
        let body = self.fragment_for(
            di,
            &format!("<{sp}:body xmlns:{sp}=\"{soap_ns}\" use=\"literal\"/>"),
        );
        // Found again: declaring prefixes on the root may have marked it.
        let Some(loc) = self.find("binding", &b.binding) else {
            return;
        };
        let Some(el) = self.child_mut(loc) else {
            return;
        };
        let mut action = None;
        let mut faults = Vec::new();
        for node in &mut el.children {
            let Node::Element(o) = node else { continue };
            if !o.name.is(WSDL_NS, "operation") || o.attr("name") != Some(op) {
                continue;
            }
            faults.extend(declared_faults(o));
            action = o
                .child(soap_ns, "operation")
                .and_then(|s| s.attr("soapAction"))
                .map(str::to_string);
            for io in &mut o.children {
                let Node::Element(io) = io else { continue };
                if io.name.is(WSDL_NS, "output") {
                    io.children = vec![Node::Element(body.clone())];
                }
            }
        }
        let poll = poll_operation_name(op);
        let poll_action = match action.as_deref().map(str::trim) {
            Some(a) if !a.is_empty() => match a.strip_suffix(op) {
                Some(base) => format!("{base}{poll}"),
                None => format!("{a}/{poll}"),
            },
            _ => format!("{SOAPGATE_NS}:{poll}"),
        };
        let poll_op = self.fragment_for(
            di,
            &format!(
                "<{w}:operation xmlns:{w}=\"{WSDL_NS}\" xmlns:{sp}=\"{soap_ns}\" name=\"{poll}\">\
                 <{sp}:operation soapAction=\"{}\" style=\"document\"/>\
                 <{w}:input><{sp}:body use=\"literal\"/></{w}:input>\
                 <{w}:output><{sp}:body use=\"literal\"/></{w}:output>\
                 </{w}:operation>",
                attr_text(&poll_action)
            ),
        );
        let mut poll_op = poll_op;
        poll_op.children.extend(faults);
        if let Some(el) = self.child_mut(loc) {
            el.push_child(poll_op);
        }
    }
}

/// The `wsdl:fault` children of a portType or binding operation, copied
/// for its poll (which sits beside it, so only the operation's own
/// declarations need carrying over).
fn declared_faults(op: &Element) -> Vec<Node> {
    op.children_named(WSDL_NS, "fault")
        .map(|f| {
            let mut f = f.clone();
            for d in &op.ns_decls {
                if f.declared_ns(&d.prefix).is_none() {
                    f.ns_decls.push(d.clone());
                }
            }
            Node::Element(f)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    struct Mem(HashMap<PathBuf, String>);

    impl Files for Mem {
        fn read(&self, path: &Path) -> Result<Vec<u8>, String> {
            self.0
                .get(&normalize(path))
                .map(|s| s.clone().into_bytes())
                .ok_or_else(|| format!("no file {}", path.display()))
        }
    }

    /// A document/literal service bound over SOAP 1.1 and 1.2, with no
    /// `wsdl:types` of its own (its schema comes through `wsdl:import`),
    /// and `extra` spliced into the portType.
    fn contract(extra_message: &str, extra_op: &str) -> (Mem, PathBuf) {
        let xsd = r#"<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"
            targetNamespace="urn:t" xmlns:t="urn:t" elementFormDefault="qualified">
          <xs:element name="Op"><xs:complexType><xs:sequence>
            <xs:element name="a" type="xs:string"/></xs:sequence></xs:complexType></xs:element>
          <xs:element name="OpResponse"><xs:complexType><xs:sequence>
            <xs:element name="b" type="xs:string"/></xs:sequence></xs:complexType></xs:element>
        </xs:schema>"#;
        let wsdl = format!(
            r#"<definitions xmlns="http://schemas.xmlsoap.org/wsdl/"
              xmlns:s="http://schemas.xmlsoap.org/wsdl/soap/"
              xmlns:s12="http://schemas.xmlsoap.org/wsdl/soap12/"
              xmlns:t="urn:t" xmlns:w="urn:w" targetNamespace="urn:w">
          <import namespace="urn:t" location="t.xsd"/>
          <message name="In"><part name="p" element="t:Op"/></message>
          <message name="Out"><part name="p" element="t:OpResponse"/></message>
          {extra_message}
          <portType name="PT">
            <operation name="Op"><input message="w:In"/><output message="w:Out"/></operation>
            {extra_op}
          </portType>
          <binding name="B11" type="w:PT"><s:binding transport="http://schemas.xmlsoap.org/soap/http"/>
            <operation name="Op"><s:operation soapAction="urn:w#Op"/>
              <input><s:body use="literal"/></input><output><s:body use="literal"/></output></operation>
          </binding>
          <binding name="B12" type="w:PT"><s12:binding transport="http://schemas.xmlsoap.org/soap/http"/>
            <operation name="Op"><s12:operation soapAction="urn:w#Op"/>
              <input><s12:body use="literal"/></input><output><s12:body use="literal"/></output></operation>
          </binding>
          <service name="S">
            <port name="P11" binding="w:B11"><s:address location="http://x/"/></port>
            <port name="P12" binding="w:B12"><s12:address location="http://x/"/></port>
          </service>
        </definitions>"#
        );
        let files = Mem(HashMap::from([
            (PathBuf::from("c/s.wsdl"), wsdl),
            (PathBuf::from("c/t.xsd"), xsd.to_string()),
        ]));
        (files, PathBuf::from("c/s.wsdl"))
    }

    fn ops(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn every_binding_gains_the_poll_and_the_output_becomes_the_ticket() {
        // A message already named like the ticket's: the new one gets
        // another name.
        let (files, path) = contract(
            r#"<message name="OpTicket"><part name="x" element="t:Op"/></message>"#,
            "",
        );
        let original = wsdl::load(&path, &files).expect("the contract loads");
        let c = augment(&original, &ops(&["Op"]), &files).expect("augmented");
        let s = &c.services[0];
        let op = s.operation("Op").expect("Op");
        assert_eq!(
            op.output,
            Some(Payload::Document {
                elements: vec![ticket_element("Op")]
            })
        );
        assert_eq!(
            op.original_output,
            Some(Payload::Document {
                elements: vec![QName::new("urn:t", "OpResponse")]
            })
        );
        let poll = s.operation("GetOpResult").expect("the poll");
        assert_eq!(poll.result_of.as_deref(), Some("Op"));
        assert_eq!(poll.bindings.len(), 2);
        assert!(
            poll.bindings
                .iter()
                .all(|b| b.soap_action.as_deref() == Some("urn:w#GetOpResult"))
        );
        assert!(c.schemas.has_element(&poll_response_element("Op")));
        let text = xml::write_element(&c.wsdl);
        assert!(text.contains("name=\"OpTicket_sg2\""), "{text}");
        // The schema's import points at the file the namespace comes from.
        assert!(text.contains("schemaLocation=\"t.xsd\""), "{text}");
    }

    /// Each QName-valued attribute of the tree whose prefix the root does
    /// not bind to what it means where it is used.
    fn unresolved_at_root(
        el: &Element,
        root: &Element,
        scope: &mut NsScope,
        out: &mut Vec<String>,
    ) {
        scope.push(el);
        for a in &el.attrs {
            if let Some((p, _)) = a.value.split_once(':')
                && ["message", "element", "type", "ref", "base", "binding"]
                    .contains(&a.name.local.as_str())
                && (scope.resolve(p).is_none() || scope.resolve(p) != root.declared_ns(p))
            {
                out.push(format!("{}={}", a.name.local, a.value));
            }
        }
        for c in el.elements() {
            unresolved_at_root(c, root, scope, out);
        }
        scope.pop();
    }

    #[test]
    fn the_additions_use_prefixes_declared_on_the_root() {
        // The root binds `sg` to a namespace of its own and `tns` to nothing.
        let (mut files, path) = contract("", "");
        let key = normalize(&path);
        let text = files.0[&key].replace(
            r#"xmlns:w="urn:w""#,
            r#"xmlns:w="urn:w" xmlns:sg="urn:not-soapgate""#,
        );
        files.0.insert(key, text);
        let original = wsdl::load(&path, &files).expect("the contract loads");
        let c = augment(&original, &ops(&["Op"]), &files).expect("augmented");
        let mut missing = Vec::new();
        unresolved_at_root(&c.wsdl, &c.wsdl, &mut NsScope::new(), &mut missing);
        assert!(
            missing.is_empty(),
            "{missing:?}\n{}",
            xml::write_element(&c.wsdl)
        );
        assert_eq!(c.wsdl.declared_ns("sg"), Some("urn:not-soapgate"));
        assert_eq!(c.wsdl.declared_ns("sg2"), Some(SOAPGATE_NS));
        // Messages are named with the prefix the root already has.
        let text = xml::write_element(&c.wsdl);
        assert!(text.contains(r#"message="w:GetOpResult""#), "{text}");
        assert!(!text.contains("sgmsg"), "{text}");
    }

    #[test]
    fn an_existing_poll_name_is_refused() {
        let (files, path) = contract(
            "",
            r#"<operation name="GetOpResult"><input message="w:In"/><output message="w:Out"/></operation>"#,
        );
        let original = wsdl::load(&path, &files).expect("the contract loads");
        // Not bound, so not served: still a name the clients would see.
        let errors = augment(&original, &ops(&["Op"]), &files)
            .err()
            .unwrap_or_default();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].message.contains("already has an operation")
                && errors[0].to_string().starts_with("c/s.wsdl:"),
            "{errors:?}"
        );
    }
}
