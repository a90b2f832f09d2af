//! Reading complex types: plain content models, and `complexContent` and
//! `simpleContent` derived by extension or restriction from their base
//! (built first), merging the base's particle, attributes and wildcard.

use super::attributes::merge_attr;
use super::{Cx, Resolver, XS, is_meta, is_true};
use crate::contract::xsd::builtin::Builtin;
use crate::contract::xsd::model::*;
use crate::contract::xsd::{ANY_TYPE, SchemaSet, builtin_id};
use crate::xml::{Element, QName};

impl<'a> Resolver<'a> {
    pub(super) fn complex_type(
        &mut self,
        cx: &mut Cx,
        el: &Element,
        name: Option<QName>,
    ) -> ComplexType {
        cx.scope.push(el);
        let mixed = is_true(el.attr("mixed"));
        let is_abstract = is_true(el.attr("abstract"));
        let body = el
            .elements()
            .filter(|e| !is_meta(e))
            .find(|e| matches!(e.name.local.as_str(), "simpleContent" | "complexContent"));
        let mut ct = match body {
            Some(b) if b.name.local == "simpleContent" => self.simple_content(cx, b),
            Some(b) => self.complex_content(cx, b, mixed),
            None => {
                let particle = self.particle_of(cx, el);
                let (attributes, any_attribute) = self.attributes_of(cx, el);
                ComplexType {
                    name: None,
                    base: Some(ANY_TYPE),
                    derivation: Derivation::Restriction,
                    is_abstract: false,
                    content: Content::Complex { particle, mixed },
                    attributes,
                    any_attribute,
                }
            }
        };
        ct.name = name;
        ct.is_abstract = is_abstract;
        cx.scope.pop();
        if let Content::Complex {
            particle: Some(p), ..
        } = &ct.content
        {
            self.check_declarations_consistent(cx, el, p);
        }
        ct
    }

    /// XSD 1.0's Element Declarations Consistent: within one content model,
    /// elements of the same name have the same type. Checked for the local
    /// declarations (references to global ones name one declaration each).
    fn check_declarations_consistent(&mut self, cx: &Cx, el: &Element, p: &Particle) {
        fn walk(p: &Particle, out: &mut Vec<ElementId>) {
            match &p.term {
                Term::Element(id) => out.push(*id),
                Term::Any(_) => {}
                Term::Sequence(ps) | Term::Choice(ps) | Term::All(ps) => {
                    for q in ps {
                        walk(q, out);
                    }
                }
            }
        }
        let mut ids = Vec::new();
        walk(p, &mut ids);
        let mut seen: Vec<(&QName, TypeId)> = Vec::new();
        let mut clash = None;
        for id in &ids {
            let Some(d) = self.elements.get(id.index()).filter(|d| !d.global) else {
                continue;
            };
            match seen.iter().find(|(name, _)| **name == d.name) {
                Some((_, ty)) if *ty != d.type_id => {
                    clash = Some(d.name.clone());
                    break;
                }
                Some(_) => {}
                None => seen.push((&d.name, d.type_id)),
            }
        }
        if let Some(name) = clash {
            self.err(
                cx.doc,
                el.pos,
                format!(
                    "two elements named {} in one content model have different types \
                     (Element Declarations Consistent)",
                    name.local
                ),
            );
        }
    }

    fn derivation_child<'e>(
        &mut self,
        cx: &Cx,
        el: &'e Element,
    ) -> Option<(&'e Element, Derivation)> {
        let d = el
            .elements()
            .filter(|e| !is_meta(e))
            .find_map(|e| match e.name.local.as_str() {
                "extension" => Some((e, Derivation::Extension)),
                "restriction" => Some((e, Derivation::Restriction)),
                _ => None,
            });
        if d.is_none() {
            self.err(
                cx.doc,
                el.pos,
                format!(
                    "xsd:{} needs an xsd:extension or xsd:restriction",
                    el.name.local
                ),
            );
        }
        d
    }

    fn complex_content(&mut self, cx: &mut Cx, cc: &Element, outer_mixed: bool) -> ComplexType {
        let mixed = match cc.attr("mixed") {
            Some(_) => is_true(cc.attr("mixed")),
            None => outer_mixed,
        };
        let Some((d, derivation)) = self.derivation_child(cx, cc) else {
            return SchemaSet::any_type_def();
        };
        cx.scope.push(d);
        let base = self.base_of(cx, d);
        let own_particle = self.particle_of(cx, d);
        let (own_attrs, own_wild) = self.attributes_of(cx, d);
        cx.scope.pop();
        let base_ct = match self.types.get(base.index()) {
            Some(TypeDef::Complex(c)) => c.clone(),
            _ => {
                let q = d.attr("base").unwrap_or_default();
                self.err(
                    cx.doc,
                    d.pos,
                    format!("complexContent base {q} is a simple type; use simpleContent"),
                );
                SchemaSet::any_type_def()
            }
        };
        let (content, attributes, any_attribute) = match derivation {
            Derivation::Extension => {
                let content = match base_ct.content {
                    Content::Simple(st) if own_particle.is_none() => Content::Simple(st),
                    Content::Simple(_) => {
                        self.err(
                            cx.doc,
                            d.pos,
                            "cannot add elements to a type with simple content",
                        );
                        Content::Complex {
                            particle: own_particle,
                            mixed,
                        }
                    }
                    Content::Complex {
                        particle: bp,
                        mixed: bm,
                    } => {
                        let particle = match (bp, own_particle) {
                            (None, p) | (p, None) => p,
                            (Some(b), Some(o)) => Some(Particle {
                                min: 1,
                                max: MaxOccurs::Bounded(1),
                                term: Term::Sequence(vec![b, o]),
                            }),
                        };
                        Content::Complex {
                            particle,
                            mixed: mixed || bm,
                        }
                    }
                };
                let mut attrs = base_ct.attributes;
                for u in own_attrs {
                    merge_attr(&mut attrs, u);
                }
                (content, attrs, own_wild.or(base_ct.any_attribute))
            }
            Derivation::Restriction => {
                let mut attrs = base_ct.attributes;
                for u in own_attrs {
                    merge_attr(&mut attrs, u);
                }
                (
                    Content::Complex {
                        particle: own_particle,
                        mixed,
                    },
                    attrs,
                    own_wild,
                )
            }
        };
        ComplexType {
            name: None,
            base: Some(base),
            derivation,
            is_abstract: false,
            content,
            attributes,
            any_attribute,
        }
    }

    fn simple_content(&mut self, cx: &mut Cx, sc: &Element) -> ComplexType {
        let Some((d, derivation)) = self.derivation_child(cx, sc) else {
            return SchemaSet::any_type_def();
        };
        cx.scope.push(d);
        let base = self.base_of(cx, d);
        let (own_attrs, own_wild) = self.attributes_of(cx, d);
        let (content_type, mut attrs, base_wild) = match self.types.get(base.index()).cloned() {
            Some(TypeDef::Simple(_)) => {
                if derivation == Derivation::Restriction {
                    let st = self.restriction(cx, d, base, None);
                    (self.push_type(TypeDef::Simple(st)), Vec::new(), None)
                } else {
                    (base, Vec::new(), None)
                }
            }
            Some(TypeDef::Complex(ComplexType {
                content: Content::Simple(st),
                attributes,
                any_attribute,
                ..
            })) => {
                if derivation == Derivation::Restriction {
                    // An inline simpleType replaces the base's content type
                    // before the facets apply.
                    let inner_base = match d.elements().find(|e| e.name.is(XS, "simpleType")) {
                        Some(t) => {
                            let s = self.simple_type(cx, t, None);
                            self.push_type(TypeDef::Simple(s))
                        }
                        None => st,
                    };
                    let r = self.restriction(cx, d, inner_base, None);
                    (
                        self.push_type(TypeDef::Simple(r)),
                        attributes,
                        any_attribute,
                    )
                } else {
                    (st, attributes, any_attribute)
                }
            }
            _ => {
                let q = d.attr("base").unwrap_or_default();
                self.err(
                    cx.doc,
                    d.pos,
                    format!("simpleContent base {q} has no simple content"),
                );
                (builtin_id(Builtin::String), Vec::new(), None)
            }
        };
        cx.scope.pop();
        for u in own_attrs {
            merge_attr(&mut attrs, u);
        }
        let any_attribute = match derivation {
            Derivation::Extension => own_wild.or(base_wild),
            Derivation::Restriction => own_wild,
        };
        ComplexType {
            name: None,
            base: Some(base),
            derivation,
            is_abstract: false,
            content: Content::Simple(content_type),
            attributes: attrs,
            any_attribute,
        }
    }
}
