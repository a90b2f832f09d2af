//! The WSDL we publish: the contract exactly as written, except that every
//! `soap:address`/`soap12:address` points at this facade and every schema
//! (or WSDL) it imports is referenced as `?xsd={name}` on the same service,
//! so a client can be generated straight from the facade, that a prefix
//! declared only below the root is declared on the root too (when the
//! document binds it to one namespace throughout): clients such as suds
//! resolve `message=`, `element=` and `type=` against the definitions,
//! not the element that carries them, and that ports the facade does not
//! serve are left out.
//!
//! A port whose binding is not a SOAP 1.1 or 1.2 binding (the HTTP GET and
//! POST ports ASMX and Axis2 publish, for instance) would be answered 404
//! at the facade's address, and a client generated from `?wsdl` may pick
//! it. Such ports are dropped, with their bindings, and with the portTypes
//! and messages those bindings alone used; a component something served
//! still uses stays, and so does anything the contract left unused itself.
//!
//! Only documents the loader actually imported are ever served; a requested
//! name is looked up in [`Contract::imported`], never joined onto a path.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::Contract;
use super::wsdl::{WSDL_HTTP_NS, WSDL_NS, WSDL_SOAP11_NS, WSDL_SOAP12_NS, XSD_NS, normalize};
use crate::xml::{Element, Node, NsDecl, NsScope, QName, write_element};

const XML_DECL: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

/// The WSDL document for `GET {base_url}/{service}?wsdl`, UTF-8 with an XML
/// declaration. `base_url` is the facade's public SOAP root (for example
/// `http://host:8080/soap`); each port's address becomes
/// `{base_url}/{its service name}` and imports point at
/// `{base_url}/{service}?xsd={name}`.
pub fn wsdl(contract: &Contract, base_url: &str, service: &str) -> String {
    let links = Links::new(contract, base_url, service);
    let mut root = contract.wsdl.clone();
    Unserved::of(contract).prune(&mut root);
    let dir = normalize(contract.path.parent().unwrap_or(Path::new("")));
    rewrite(&mut root, &dir, &links, None);
    declare_at_root(&mut root);
    format!("{XML_DECL}{}", write_element(&root))
}

/// The imported document published as `name`, for
/// `GET {base_url}/{service}?xsd={name}`, rewritten like [`wsdl`]; `None`
/// when the contract imported no document of that name.
pub fn xsd(contract: &Contract, name: &str, base_url: &str, service: &str) -> Option<String> {
    let doc = contract.imported.get(name)?;
    let links = Links::new(contract, base_url, service);
    let mut root = doc.root.clone();
    if root.name.is(WSDL_NS, "definitions") {
        Unserved::of(contract).prune(&mut root);
    }
    let dir = normalize(doc.path.parent().unwrap_or(Path::new("")));
    rewrite(&mut root, &dir, &links, None);
    declare_at_root(&mut root);
    Some(format!("{XML_DECL}{}", write_element(&root)))
}

/// A top-level WSDL component: its kind (`binding`, `portType`, `message`)
/// and its name.
type Component = (&'static str, QName);

/// What the published documents of a contract leave out.
struct Unserved {
    /// Bindings that are not SOAP 1.1 or 1.2 bindings: every port naming one
    /// is dropped.
    bindings: HashSet<QName>,
    /// Components dropped: those bindings, and the portTypes and messages
    /// that nothing published uses once they are gone.
    components: HashSet<Component>,
}

/// The WSDL documents of a contract: its own, then every imported one.
fn wsdl_docs(contract: &Contract) -> Vec<&Element> {
    std::iter::once(&contract.wsdl)
        .chain(
            contract
                .imported
                .values()
                .map(|d| &d.root)
                .filter(|r| r.name.is(WSDL_NS, "definitions")),
        )
        .collect()
}

fn target_ns(root: &Element) -> &str {
    root.attr("targetNamespace").unwrap_or("")
}

/// The kind of a top-level component element, if it is one we may drop.
fn component_kind(el: &Element) -> Option<&'static str> {
    ["binding", "portType", "message"]
        .into_iter()
        .find(|k| el.name.is(WSDL_NS, k))
}

/// The binding each port of each service of `root` names, resolved.
fn port_bindings(root: &Element) -> Vec<QName> {
    let mut out = Vec::new();
    let mut scope = NsScope::new();
    scope.push(root);
    for service in root.children_named(WSDL_NS, "service") {
        scope.push(service);
        for port in service.children_named(WSDL_NS, "port") {
            scope.push(port);
            out.extend(port.attr("binding").and_then(|v| scope.resolve_qname(v)));
            scope.pop();
        }
        scope.pop();
    }
    out
}

/// The components `el` (a top-level component of `root`) refers to: a
/// binding's portType, and every `message=` below it (portType operations,
/// `soap:header` and `soap:headerfault`).
fn references(root: &Element, el: &Element) -> Vec<Component> {
    fn messages(el: &Element, scope: &mut NsScope, out: &mut Vec<Component>) {
        scope.push(el);
        if let Some(q) = el.attr("message").and_then(|v| scope.resolve_qname(v)) {
            out.push(("message", q));
        }
        for c in el.elements() {
            messages(c, scope, out);
        }
        scope.pop();
    }
    let mut out = Vec::new();
    let mut scope = NsScope::new();
    scope.push(root);
    if el.name.is(WSDL_NS, "binding") {
        scope.push(el);
        if let Some(q) = el.attr("type").and_then(|v| scope.resolve_qname(v)) {
            out.push(("portType", q));
        }
        scope.pop();
    }
    messages(el, &mut scope, &mut out);
    out
}

impl Unserved {
    fn of(contract: &Contract) -> Unserved {
        let docs = wsdl_docs(contract);
        // Every top-level component, by kind and name, with its document.
        let mut index: HashMap<Component, (&Element, &Element)> = HashMap::new();
        for root in &docs {
            let tns = target_ns(root);
            for el in root.elements() {
                if let (Some(kind), Some(name)) = (component_kind(el), el.attr("name")) {
                    index
                        .entry((kind, QName::new(tns, name)))
                        .or_insert((root, el));
                }
            }
        }
        let mut bindings = HashSet::new();
        for root in &docs {
            for q in port_bindings(root) {
                let Some((_, b)) = index.get(&("binding", q.clone())) else {
                    continue;
                };
                let soap = b.child(WSDL_SOAP11_NS, "binding").is_some()
                    || b.child(WSDL_SOAP12_NS, "binding").is_some();
                if !soap {
                    bindings.insert(q);
                }
            }
        }
        // Candidates: the unserved bindings and what they use, transitively.
        let mut components: HashSet<Component> = HashSet::new();
        let mut todo: Vec<Component> = bindings.iter().map(|q| ("binding", q.clone())).collect();
        while let Some(c) = todo.pop() {
            let Some((root, el)) = index.get(&c) else {
                continue;
            };
            if components.insert(c) {
                todo.extend(references(root, el));
            }
        }
        // Whatever a kept component uses is kept, until nothing changes.
        loop {
            let mut kept_now = Vec::new();
            for (c, (root, el)) in &index {
                if components.contains(c) {
                    continue;
                }
                kept_now.extend(
                    references(root, el)
                        .into_iter()
                        .filter(|r| components.contains(r)),
                );
            }
            if kept_now.is_empty() {
                break;
            }
            for r in kept_now {
                components.remove(&r);
            }
        }
        // No reference names a binding, so every unserved binding goes.
        Unserved {
            bindings,
            components,
        }
    }

    /// Drop the unserved ports of `root`'s services and its unserved
    /// components. (A service with no served port at all is refused at
    /// load, so none is left empty.)
    fn prune(&self, root: &mut Element) {
        if self.bindings.is_empty() {
            return;
        }
        let tns = target_ns(root).to_string();
        let mut scope = NsScope::new();
        scope.push(root);
        for node in &mut root.children {
            let Node::Element(service) = node else {
                continue;
            };
            if !service.name.is(WSDL_NS, "service") {
                continue;
            }
            scope.push(service);
            retain_elements(service, |port| {
                if !port.name.is(WSDL_NS, "port") {
                    return true;
                }
                scope.push(port);
                let binding = port.attr("binding").and_then(|v| scope.resolve_qname(v));
                scope.pop();
                !binding.is_some_and(|q| self.bindings.contains(&q))
            });
            scope.pop();
        }
        retain_elements(root, |el| match (component_kind(el), el.attr("name")) {
            (Some(kind), Some(name)) => !self
                .components
                .contains(&(kind, QName::new(tns.as_str(), name))),
            _ => true,
        });
    }
}

/// Keep the element children of `el` that `keep` accepts, in order, with
/// the whitespace before each dropped one, so the document stays indented
/// as written.
fn retain_elements(el: &mut Element, mut keep: impl FnMut(&Element) -> bool) {
    let mut out: Vec<Node> = Vec::with_capacity(el.children.len());
    for node in std::mem::take(&mut el.children) {
        match node {
            Node::Element(child) => {
                if keep(&child) {
                    out.push(Node::Element(child));
                } else if matches!(out.last(), Some(Node::Text(t)) if t.trim().is_empty()) {
                    out.pop();
                }
            }
            text => out.push(text),
        }
    }
    el.children = out;
}

/// Declares on `root` every prefix an element below it declares and the
/// root does not, when every declaration of that prefix in the document
/// names the same namespace. The declarations below stay as written; the
/// meaning of every name is unchanged, since each of them is shadowed where
/// it was declared by the same binding. A prefix bound to two namespaces
/// is left where it is: no one root declaration can mean both. The default
/// namespace is never moved: it would change unprefixed element names.
fn declare_at_root(root: &mut Element) {
    // Prefix -> its one namespace, or None once two are seen.
    let mut below: BTreeMap<String, Option<String>> = BTreeMap::new();
    fn collect(el: &Element, below: &mut BTreeMap<String, Option<String>>) {
        for d in &el.ns_decls {
            if d.prefix.is_empty() || d.uri.is_empty() {
                continue;
            }
            below
                .entry(d.prefix.clone())
                .and_modify(|uri| {
                    if uri.as_deref() != Some(d.uri.as_str()) {
                        *uri = None;
                    }
                })
                .or_insert_with(|| Some(d.uri.clone()));
        }
        for child in el.elements() {
            collect(child, below);
        }
    }
    for child in root.elements() {
        collect(child, &mut below);
    }
    for (prefix, uri) in below {
        let Some(uri) = uri else { continue };
        if prefix == "xml" || prefix == "xmlns" || root.declared_ns(&prefix).is_some() {
            continue;
        }
        root.ns_decls.push(NsDecl { prefix, uri });
    }
}

/// Percent-encode a query value (RFC 3986 unreserved characters stay).
pub fn encode_query_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

struct Links<'a> {
    base: &'a str,
    service: &'a str,
    /// Normalised path of each imported document -> its publish name.
    names: HashMap<PathBuf, &'a str>,
}

impl<'a> Links<'a> {
    fn new(contract: &'a Contract, base_url: &'a str, service: &'a str) -> Self {
        let names = contract
            .imported
            .iter()
            .map(|(name, doc)| (normalize(&doc.path), name.as_str()))
            .collect();
        Links {
            base: base_url.trim_end_matches('/'),
            service,
            names,
        }
    }

    /// The published URL for a location written in a document in `dir`, or
    /// `None` when it does not name an imported document (absolute URLs,
    /// unresolved locations): those are left as written.
    fn doc_url(&self, dir: &Path, location: &str) -> Option<String> {
        if location.contains("://") {
            return None;
        }
        let name = self.names.get(&normalize(&dir.join(location)))?;
        Some(format!(
            "{}/{}?xsd={}",
            self.base,
            self.service,
            encode_query_value(name)
        ))
    }
}

fn set_attr(el: &mut Element, local: &str, value: String) {
    if let Some(a) = el
        .attrs
        .iter_mut()
        .find(|a| a.name.ns.is_empty() && a.name.local == local)
    {
        a.value = value;
    }
}

fn rewrite(el: &mut Element, dir: &Path, links: &Links<'_>, service: Option<&str>) {
    let own_service;
    let mut service = service;
    let n = &el.name;
    if n.is(WSDL_NS, "service") {
        own_service = el.attr("name").map(str::to_string);
        service = own_service.as_deref();
    } else if n.is(WSDL_SOAP11_NS, "address")
        || n.is(WSDL_SOAP12_NS, "address")
        || n.is(WSDL_HTTP_NS, "address")
    {
        // An HTTP port left in (its binding could not be told apart) is
        // rewritten too: the legacy host behind the facade must not leak.
        if let Some(s) = service {
            set_attr(el, "location", format!("{}/{s}", links.base));
        }
    } else if n.is(XSD_NS, "import") || n.is(XSD_NS, "include") || n.is(XSD_NS, "redefine") {
        if let Some(url) = el
            .attr("schemaLocation")
            .and_then(|l| links.doc_url(dir, l))
        {
            set_attr(el, "schemaLocation", url);
        }
    } else if n.is(WSDL_NS, "import")
        && let Some(url) = el.attr("location").and_then(|l| links.doc_url(dir, l))
    {
        set_attr(el, "location", url);
    }
    for child in &mut el.children {
        if let Node::Element(c) = child {
            rewrite(c, dir, links, service);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::{Limits, read_str};

    fn root_decls(text: &str) -> Vec<(String, String)> {
        let mut root = read_str(text, &Limits::default()).expect("parses").root;
        declare_at_root(&mut root);
        root.ns_decls
            .into_iter()
            .map(|d| (d.prefix, d.uri))
            .collect()
    }

    #[test]
    fn prefixes_declared_below_the_root_are_declared_on_it_unless_they_clash() {
        let decls = root_decls(
            r#"<d xmlns="urn:default" xmlns:a="urn:a">
                 <x xmlns:m="urn:m" xmlns=""><y xmlns:m="urn:m"/></x>
                 <z xmlns:c="urn:c1"/><z xmlns:c="urn:c2"/>
                 <w xmlns:a="urn:other"/>
               </d>"#,
        );
        assert_eq!(
            decls,
            vec![
                ("".to_string(), "urn:default".to_string()),
                ("a".to_string(), "urn:a".to_string()),
                ("m".to_string(), "urn:m".to_string()),
            ]
        );
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            encode_query_value("common/types v2.xsd"),
            "common%2Ftypes%20v2.xsd"
        );
        assert_eq!(encode_query_value("a-b_c.~"), "a-b_c.~");
    }
}
