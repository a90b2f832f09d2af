//! Reading simple types: `restriction` (with every facet checked and the
//! patterns compiled), `list` and `union`, and the check that a simple type
//! is never built from a complex one.

use super::{Cx, Resolver, XS, is_meta};
use crate::contract::xsd::builtin::{Builtin, Order, normalize_ws};
use crate::contract::xsd::model::*;
use crate::contract::xsd::regex::compile_step;
use crate::contract::xsd::{ANY_TYPE, builtin_id};
use crate::xml::{Element, Pos, QName};

impl<'a> Resolver<'a> {
    pub(super) fn simple_type(
        &mut self,
        cx: &mut Cx,
        el: &Element,
        name: Option<QName>,
    ) -> SimpleType {
        cx.scope.push(el);
        let st = self.simple_type_inner(cx, el, name);
        cx.scope.pop();
        st
    }

    fn simple_type_inner(&mut self, cx: &mut Cx, el: &Element, name: Option<QName>) -> SimpleType {
        let any_simple = builtin_id(Builtin::AnySimpleType);
        let Some(d) = el
            .elements()
            .filter(|e| !is_meta(e))
            .find(|e| matches!(e.name.local.as_str(), "restriction" | "list" | "union"))
        else {
            self.err(
                cx.doc,
                el.pos,
                "xsd:simpleType needs an xsd:restriction, xsd:list or xsd:union",
            );
            return SimpleType {
                name,
                base: Some(any_simple),
                variety: Variety::Atomic(Builtin::AnySimpleType),
                facets: Facets::new(WhiteSpace::Preserve),
            };
        };
        cx.scope.push(d);
        let mut st = match d.name.local.as_str() {
            "restriction" => {
                let base = match d.elements().find(|e| e.name.is(XS, "simpleType")) {
                    Some(t) if d.attr("base").is_none() => {
                        let s = self.simple_type(cx, t, None);
                        self.push_type(TypeDef::Simple(s))
                    }
                    _ => self.base_of(cx, d),
                };
                self.restriction(cx, d, base, None)
            }
            "list" => {
                let item = match self.qname_attr(cx, d, "itemType") {
                    Some(q) => self.type_ref(cx, d, &q),
                    None => match d.elements().find(|e| e.name.is(XS, "simpleType")) {
                        Some(t) => {
                            let s = self.simple_type(cx, t, None);
                            self.push_type(TypeDef::Simple(s))
                        }
                        None => {
                            self.err(
                                cx.doc,
                                d.pos,
                                "xsd:list needs an itemType or an inline xsd:simpleType",
                            );
                            any_simple
                        }
                    },
                };
                self.check_simple_ref(cx, d, item);
                SimpleType {
                    name: None,
                    base: Some(any_simple),
                    variety: Variety::List(item),
                    facets: Facets::new(WhiteSpace::Collapse),
                }
            }
            _ => {
                let mut members = Vec::new();
                if let Some(list) = d.attr("memberTypes") {
                    for m in list.split_ascii_whitespace() {
                        if let Some(q) = self.resolve_qname(cx, d, "memberTypes", m) {
                            let id = self.type_ref(cx, d, &q);
                            self.check_simple_ref(cx, d, id);
                            members.push(id);
                        }
                    }
                }
                for t in d.elements().filter(|e| e.name.is(XS, "simpleType")) {
                    let s = self.simple_type(cx, t, None);
                    members.push(self.push_type(TypeDef::Simple(s)));
                }
                if members.is_empty() {
                    self.err(cx.doc, d.pos, "xsd:union needs member types");
                }
                SimpleType {
                    name: None,
                    base: Some(any_simple),
                    variety: Variety::Union(members),
                    facets: Facets::new(WhiteSpace::Collapse),
                }
            }
        };
        cx.scope.pop();
        st.name = name;
        st
    }

    /// A list's item type or a union's member, built first (it may be
    /// declared later, or in another schema document), must be simple.
    fn check_simple_ref(&mut self, cx: &Cx, el: &Element, id: TypeId) {
        if !self.ensure_type(id) {
            self.err(
                cx.doc,
                el.pos,
                "circular definition: a list or union is built from itself",
            );
            return;
        }
        if matches!(self.types.get(id.index()), Some(TypeDef::Complex(_))) {
            self.err(
                cx.doc,
                el.pos,
                "a simple type cannot be built from a complex type",
            );
        }
    }

    /// A restriction step of a simple type: the base's variety and facets,
    /// tightened by the facets among `d`'s children.
    pub(super) fn restriction(
        &mut self,
        cx: &mut Cx,
        d: &Element,
        base: TypeId,
        name: Option<QName>,
    ) -> SimpleType {
        let base_st = match self.types.get(base.index()) {
            Some(TypeDef::Simple(s)) => s.clone(),
            _ => {
                if base != ANY_TYPE {
                    self.err(
                        cx.doc,
                        d.pos,
                        "the base of a simple type must be a simple type",
                    );
                }
                match self.types.get(builtin_id(Builtin::AnySimpleType).index()) {
                    Some(TypeDef::Simple(s)) => s.clone(),
                    _ => return placeholder_simple(),
                }
            }
        };
        let mut f = base_st.facets.clone();
        let atomic = match base_st.variety {
            Variety::Atomic(b) => Some(b),
            _ => None,
        };
        let mut enumeration: Vec<String> = Vec::new();
        let mut patterns: Vec<(String, Pos)> = Vec::new();
        for c in d.elements().filter(|e| !is_meta(e)) {
            let facet = c.name.local.as_str();
            if matches!(
                facet,
                "simpleType" | "attribute" | "attributeGroup" | "anyAttribute"
            ) {
                continue;
            }
            let Some(value) = c.attr("value") else {
                self.err(cx.doc, c.pos, format!("xsd:{facet} needs a value"));
                continue;
            };
            let num = |r: &mut Self| -> Option<u64> {
                value.trim().parse::<u64>().ok().or_else(|| {
                    r.err(
                        cx.doc,
                        c.pos,
                        format!("{facet}={value:?} is not a non-negative integer"),
                    );
                    None
                })
            };
            match facet {
                "enumeration" => enumeration.push(value.to_string()),
                "pattern" => patterns.push((value.to_string(), c.pos)),
                "length" => f.length = num(self).or(f.length),
                "minLength" => f.min_length = num(self).or(f.min_length),
                "maxLength" => f.max_length = num(self).or(f.max_length),
                "totalDigits" => f.total_digits = num(self).map(|n| n as u32).or(f.total_digits),
                "fractionDigits" => {
                    f.fraction_digits = num(self).map(|n| n as u32).or(f.fraction_digits)
                }
                "whiteSpace" => match value.trim() {
                    "preserve" => f.white_space = WhiteSpace::Preserve,
                    "replace" => f.white_space = WhiteSpace::Replace,
                    "collapse" => f.white_space = WhiteSpace::Collapse,
                    v => self.err(
                        cx.doc,
                        c.pos,
                        format!("whiteSpace={v:?} must be preserve, replace or collapse"),
                    ),
                },
                "minInclusive" | "maxInclusive" | "minExclusive" | "maxExclusive" => {
                    let v = value.trim().to_string();
                    if let Some(b) = atomic {
                        if b.order() == Order::None {
                            self.err(
                                cx.doc,
                                c.pos,
                                format!("{facet} does not apply to xsd:{}", b.name()),
                            );
                        } else if !b.check(&v, &cx.scope) {
                            self.err(
                                cx.doc,
                                c.pos,
                                format!("{facet}={v:?} is not a valid xsd:{}", b.name()),
                            );
                        }
                    }
                    let slot = match facet {
                        "minInclusive" => &mut f.min_inclusive,
                        "maxInclusive" => &mut f.max_inclusive,
                        "minExclusive" => &mut f.min_exclusive,
                        _ => &mut f.max_exclusive,
                    };
                    *slot = Some(v);
                }
                other => self.err(cx.doc, c.pos, format!("unsupported facet xsd:{other}")),
            }
        }
        if !enumeration.is_empty() {
            let ws = f.white_space;
            f.enumeration = Some(
                enumeration
                    .iter()
                    .map(|v| normalize_ws(v, ws).into_owned())
                    .collect(),
            );
        }
        if let Some(&(_, pos)) = patterns.first() {
            let sources: Vec<String> = patterns.into_iter().map(|(s, _)| s).collect();
            match compile_step(&sources) {
                Ok(regex) => f.patterns.push(PatternStep { sources, regex }),
                Err(e) => self.err(cx.doc, pos, e),
            }
        }
        SimpleType {
            name,
            base: Some(base),
            variety: base_st.variety,
            facets: f,
        }
    }
}

fn placeholder_simple() -> SimpleType {
    SimpleType {
        name: None,
        base: Some(ANY_TYPE),
        variety: Variety::Atomic(Builtin::AnySimpleType),
        facets: Facets::new(WhiteSpace::Preserve),
    }
}
