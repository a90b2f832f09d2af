//! Reading attributes: the attribute uses and attribute wildcard of a
//! complex type or attribute group (groups expanded, cycles refused),
//! `ref`s to global attributes and to the `xml:` ones, and attribute
//! declarations with their simple type.

use super::{Cx, Resolver, XS, is_meta};
use crate::contract::xsd::builtin::Builtin;
use crate::contract::xsd::model::*;
use crate::contract::xsd::{ANY_TYPE, builtin_id};
use crate::xml::{Element, QName, XML_NS};

impl<'a> Resolver<'a> {
    /// Attribute uses and the attribute wildcard among `parent`'s children,
    /// attribute groups expanded.
    pub(super) fn attributes_of(
        &mut self,
        cx: &mut Cx,
        parent: &Element,
    ) -> (Vec<AttributeUse>, Option<Wildcard>) {
        let mut uses: Vec<AttributeUse> = Vec::new();
        let mut wild = None;
        for c in parent.elements().filter(|e| !is_meta(e)) {
            match c.name.local.as_str() {
                "attribute" => {
                    if let Some(u) = self.attribute_use(cx, c) {
                        merge_attr(&mut uses, u);
                    }
                }
                "attributeGroup" => {
                    let Some(q) = self.qname_attr(cx, c, "ref") else {
                        self.err(cx.doc, c.pos, "a local xsd:attributeGroup needs a ref");
                        continue;
                    };
                    let Some(&src) = self.attr_groups.get(&q) else {
                        self.err(cx.doc, c.pos, format!("unknown attributeGroup {q}"));
                        continue;
                    };
                    if self.expanding.contains(&q) {
                        self.err(
                            cx.doc,
                            c.pos,
                            format!("attributeGroup {q} refers to itself"),
                        );
                        continue;
                    }
                    self.expanding.push(q);
                    let mut gcx = self.cx_for(src);
                    let (more, w) = self.attributes_of(&mut gcx, src.el);
                    self.expanding.pop();
                    for u in more {
                        merge_attr(&mut uses, u);
                    }
                    wild = wild.or(w);
                }
                "anyAttribute" => wild = Some(self.wildcard(cx, c)),
                _ => {}
            }
        }
        (uses, wild)
    }

    fn attribute_use(&mut self, cx: &mut Cx, el: &Element) -> Option<AttributeUse> {
        let usage = match el.attr("use").map(str::trim) {
            None | Some("optional") => AttributeUsage::Optional,
            Some("required") => AttributeUsage::Required,
            Some("prohibited") => AttributeUsage::Prohibited,
            Some(v) => {
                self.err(
                    cx.doc,
                    el.pos,
                    format!("use={v:?} must be optional, required or prohibited"),
                );
                AttributeUsage::Optional
            }
        };
        let decl = if el.attr("ref").is_some() {
            let q = self.qname_attr(cx, el, "ref")?;
            if q.ns == XML_NS {
                let b = match q.local.as_str() {
                    "lang" => Builtin::Language,
                    "id" => Builtin::Id,
                    "base" => Builtin::AnyUri,
                    _ => Builtin::NCName,
                };
                AttributeDecl {
                    name: q,
                    type_id: builtin_id(b),
                    default: None,
                    fixed: None,
                }
            } else {
                let Some(&src) = self.attributes.get(&q) else {
                    self.err(cx.doc, el.pos, format!("unknown attribute {q} in ref"));
                    return None;
                };
                let mut acx = self.cx_for(src);
                self.attribute_decl(&mut acx, src.el, true)?
            }
        } else {
            self.attribute_decl(cx, el, false)?
        };
        Some(AttributeUse {
            name: decl.name,
            type_id: decl.type_id,
            usage,
            default: el.attr("default").map(str::to_string).or(decl.default),
            fixed: el.attr("fixed").map(str::to_string).or(decl.fixed),
        })
    }

    pub(super) fn attribute_decl(
        &mut self,
        cx: &mut Cx,
        el: &Element,
        global: bool,
    ) -> Option<AttributeDecl> {
        cx.scope.push(el);
        let r = self.attribute_decl_inner(cx, el, global);
        cx.scope.pop();
        r
    }

    fn attribute_decl_inner(
        &mut self,
        cx: &mut Cx,
        el: &Element,
        global: bool,
    ) -> Option<AttributeDecl> {
        let Some(name) = el.attr("name").map(str::trim) else {
            self.err(cx.doc, el.pos, "xsd:attribute needs a name or a ref");
            return None;
        };
        let qualified = global
            || match el.attr("form") {
                Some(f) => f == "qualified",
                None => self.docs[cx.doc].attr_qualified,
            };
        let ns = if qualified { self.tns(cx.doc) } else { "" };
        let anon = el.elements().find(|c| c.name.is(XS, "simpleType"));
        let type_id = if let Some(q) = self.qname_attr(cx, el, "type") {
            let id = self.type_ref(cx, el, &q);
            // The type may be declared further down the schema: build it
            // before looking at its kind, or its placeholder is misread.
            self.ensure_type(id);
            if matches!(self.types.get(id.index()), Some(TypeDef::Complex(_))) && id != ANY_TYPE {
                self.err(
                    cx.doc,
                    el.pos,
                    format!("attribute type {q} is a complex type"),
                );
                return None;
            }
            id
        } else if let Some(t) = anon {
            let st = self.simple_type(cx, t, None);
            self.push_type(TypeDef::Simple(st))
        } else {
            builtin_id(Builtin::AnySimpleType)
        };
        // anyType as an attribute type means "any simple value".
        let type_id = if type_id == ANY_TYPE {
            builtin_id(Builtin::AnySimpleType)
        } else {
            type_id
        };
        Some(AttributeDecl {
            name: QName::new(ns, name),
            type_id,
            default: el.attr("default").map(str::to_string),
            fixed: el.attr("fixed").map(str::to_string),
        })
    }
}

/// Add an attribute use, replacing an inherited one of the same name.
pub(super) fn merge_attr(uses: &mut Vec<AttributeUse>, u: AttributeUse) {
    match uses.iter_mut().find(|x| x.name == u.name) {
        Some(x) => *x = u,
        None => uses.push(u),
    }
}
