//! Validating a message payload (the Body's children) against what an
//! operation's binding promises: the document/literal elements in order, or
//! the rpc/literal wrapper with its parts, none of them nil (WS-I Basic
//! Profile R2211).

use super::model::{PartKind, Payload};
use super::xsd::{SchemaSet, Violation};
use crate::xml::{Element, NsScope, XSI_NS};

/// Every rule the payload breaks; empty when it is valid. Used for requests
/// before anything else happens, and for responses before they are sent.
/// `outer` holds the namespace declarations in scope around the payload
/// (those of Envelope and Body).
pub fn validate_payload(
    schemas: &SchemaSet,
    expected: &Payload,
    body: &[Element],
    outer: &NsScope,
) -> Vec<Violation> {
    match expected {
        Payload::Document { elements } => {
            let mut out = Vec::new();
            for (i, decl) in elements.iter().enumerate() {
                match body.get(i) {
                    Some(el) => out.extend(schemas.validate_element_in(el, decl, outer)),
                    None => out.push(violation("/", format!("required element {decl} missing"))),
                }
            }
            for extra in body.iter().skip(elements.len()) {
                out.push(violation(
                    &format!("/{}", extra.name.local),
                    format!("unexpected element {}", extra.name),
                ));
            }
            out
        }
        Payload::Rpc { wrapper, parts } => {
            let [el] = body else {
                return vec![violation(
                    "/",
                    format!("expected exactly one element {wrapper} in Body"),
                )];
            };
            let root = format!("/{}", el.name.local);
            if &el.name != wrapper {
                return vec![violation(
                    &root,
                    format!("expected element {wrapper}, found {}", el.name),
                )];
            }
            let mut out = Vec::new();
            let mut scope = outer.clone();
            scope.push(el);
            let mut accessors = el.elements();
            for part in parts {
                let path = format!("{root}/{}", part.name);
                let Some(acc) = accessors.next() else {
                    out.push(violation(
                        &path,
                        format!("required part {} missing", part.name),
                    ));
                    continue;
                };
                // WS-I Basic Profile R2211: no part accessor is nil, whatever
                // its type or element would allow.
                if acc
                    .attr_ns(XSI_NS, "nil")
                    .is_some_and(|v| matches!(v.trim(), "true" | "1"))
                {
                    out.push(violation(
                        &path,
                        format!(
                            "part {} must not be nil (xsi:nil is not allowed on an rpc/literal \
                             part accessor)",
                            part.name
                        ),
                    ));
                    continue;
                }
                match &part.kind {
                    PartKind::Type(ty) => {
                        if !acc.name.ns.is_empty() || acc.name.local != part.name {
                            out.push(violation(
                                &path,
                                format!(
                                    "expected unqualified part accessor {}, found {}",
                                    part.name, acc.name
                                ),
                            ));
                            continue;
                        }
                        out.extend(schemas.validate_typed_in(acc, ty, &path, &scope));
                    }
                    PartKind::Element(decl) => {
                        out.extend(schemas.validate_element_in(acc, decl, &scope))
                    }
                }
            }
            for extra in accessors {
                out.push(violation(
                    &format!("{root}/{}", extra.name.local),
                    format!("unexpected element {}", extra.name),
                ));
            }
            if !el.text().trim().is_empty() {
                out.push(violation(
                    &root,
                    "text is not allowed in an rpc wrapper".to_string(),
                ));
            }
            out
        }
    }
}

fn violation(path: &str, rule: String) -> Violation {
    Violation {
        path: path.to_string(),
        rule,
    }
}
