//! Reading element declarations and content models: global and local
//! `xsd:element` (form, nillable, default/fixed, substitution groups, named
//! or anonymous type), the particles `sequence`/`choice`/`all` with their
//! occurrence ranges, named `group` references, and `any` wildcards (also
//! used by `anyAttribute`).

use super::{Cx, Resolver, XS, is_meta, is_true, placeholder_element};
use crate::contract::xsd::ANY_TYPE;
use crate::contract::xsd::model::*;
use crate::xml::{Element, QName};

impl<'a> Resolver<'a> {
    pub(super) fn element_decl(
        &mut self,
        cx: &mut Cx,
        el: &Element,
        global: bool,
        self_id: ElementId,
    ) -> ElementDecl {
        cx.scope.push(el);
        let name = el.attr("name").map(str::trim).unwrap_or_default();
        if name.is_empty() {
            self.err(cx.doc, el.pos, "xsd:element needs a name or a ref");
        }
        let qualified = global
            || match el.attr("form") {
                Some(f) => f == "qualified",
                None => self.docs[cx.doc].elem_qualified,
            };
        let ns = if qualified { self.tns(cx.doc) } else { "" };
        let mut decl = placeholder_element(QName::new(ns, name));
        decl.global = global;
        decl.nillable = is_true(el.attr("nillable"));
        decl.is_abstract = is_true(el.attr("abstract"));
        decl.default = el.attr("default").map(str::to_string);
        decl.fixed = el.attr("fixed").map(str::to_string);
        if el.attr("substitutionGroup").is_some()
            && let Some(head) = self.qname_attr(cx, el, "substitutionGroup")
        {
            if global {
                self.subst.push((self_id, head, cx.doc, el.pos));
            } else {
                self.err(
                    cx.doc,
                    el.pos,
                    "substitutionGroup is only allowed on global elements",
                );
            }
        }
        let anon = el
            .elements()
            .find(|c| c.name.is(XS, "complexType") || c.name.is(XS, "simpleType"));
        decl.type_id = if let Some(q) = self.qname_attr(cx, el, "type") {
            if anon.is_some() {
                self.err(
                    cx.doc,
                    el.pos,
                    "an element cannot have both type= and an anonymous type",
                );
            }
            self.type_ref(cx, el, &q)
        } else if let Some(t) = anon {
            self.anonymous_type(cx, t)
        } else {
            if global && el.attr("substitutionGroup").is_some() {
                self.type_from_head.push(self_id);
            }
            ANY_TYPE
        };
        cx.scope.pop();
        decl
    }

    fn anonymous_type(&mut self, cx: &mut Cx, t: &Element) -> TypeId {
        let def = if t.name.local == "simpleType" {
            TypeDef::Simple(self.simple_type(cx, t, None))
        } else {
            TypeDef::Complex(self.complex_type(cx, t, None))
        };
        self.push_type(def)
    }

    /// The content particle among `parent`'s children, if any.
    pub(super) fn particle_of(&mut self, cx: &mut Cx, parent: &Element) -> Option<Particle> {
        let mg = parent.elements().filter(|e| !is_meta(e)).find(|e| {
            matches!(
                e.name.local.as_str(),
                "sequence" | "choice" | "all" | "group"
            )
        })?;
        self.particle(cx, mg)
    }

    pub(super) fn particle(&mut self, cx: &mut Cx, el: &Element) -> Option<Particle> {
        let (min, max) = self.occurs(cx, el);
        let term = match el.name.local.as_str() {
            "element" => {
                if let Some(q) = self.qname_attr(cx, el, "ref") {
                    match self.element_ix.get(&q) {
                        Some(&id) => Term::Element(id),
                        None => {
                            self.err(cx.doc, el.pos, format!("unknown element {q} in ref"));
                            return None;
                        }
                    }
                } else {
                    let id = ElementId(self.elements.len() as u32);
                    self.elements.push(placeholder_element(QName::default()));
                    let decl = self.element_decl(cx, el, false, id);
                    self.elements[id.index()] = decl;
                    Term::Element(id)
                }
            }
            "any" => Term::Any(self.wildcard(cx, el)),
            kind @ ("sequence" | "choice" | "all") => {
                let mut parts = Vec::new();
                for c in el.elements().filter(|e| !is_meta(e)) {
                    match c.name.local.as_str() {
                        "element" | "any" | "sequence" | "choice" | "group" if kind != "all" => {
                            parts.extend(self.particle(cx, c));
                        }
                        "element" => parts.extend(self.particle(cx, c)),
                        other => self.err(
                            cx.doc,
                            c.pos,
                            format!("xsd:{other} is not allowed in xsd:{kind}"),
                        ),
                    }
                }
                match kind {
                    "sequence" => Term::Sequence(parts),
                    "choice" => Term::Choice(parts),
                    _ => Term::All(parts),
                }
            }
            "group" => {
                let q = self.qname_attr(cx, el, "ref")?;
                let Some(&src) = self.groups.get(&q) else {
                    self.err(cx.doc, el.pos, format!("unknown group {q}"));
                    return None;
                };
                if self.expanding.contains(&q) {
                    self.err(cx.doc, el.pos, format!("group {q} refers to itself"));
                    return None;
                }
                self.expanding.push(q);
                let mut gcx = self.cx_for(src);
                let inner = src
                    .el
                    .elements()
                    .filter(|e| !is_meta(e))
                    .find(|e| matches!(e.name.local.as_str(), "sequence" | "choice" | "all"))
                    .and_then(|mg| self.particle(&mut gcx, mg));
                self.expanding.pop();
                inner?.term
            }
            other => {
                self.err(cx.doc, el.pos, format!("xsd:{other} is not a particle"));
                return None;
            }
        };
        if max == MaxOccurs::Bounded(0) {
            return None;
        }
        Some(Particle { min, max, term })
    }

    pub(super) fn wildcard(&mut self, cx: &Cx, el: &Element) -> Wildcard {
        let tns = self.tns(cx.doc).to_string();
        let namespaces = match el.attr("namespace").map(str::trim).unwrap_or("##any") {
            "##any" => NsConstraint::Any,
            "##other" => NsConstraint::Other(tns),
            list => NsConstraint::Only(
                list.split_ascii_whitespace()
                    .map(|u| match u {
                        "##targetNamespace" => tns.clone(),
                        "##local" => String::new(),
                        u => u.to_string(),
                    })
                    .collect(),
            ),
        };
        let process = match el.attr("processContents").map(str::trim) {
            Some("lax") => ProcessContents::Lax,
            Some("skip") => ProcessContents::Skip,
            None | Some("strict") => ProcessContents::Strict,
            Some(v) => {
                self.err(
                    cx.doc,
                    el.pos,
                    format!("processContents={v:?} must be strict, lax or skip"),
                );
                ProcessContents::Strict
            }
        };
        Wildcard {
            namespaces,
            process,
        }
    }
}
