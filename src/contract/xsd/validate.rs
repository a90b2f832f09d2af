//! Instance validation against a resolved [`SchemaSet`].
//!
//! Content models are matched first in one greedy, left-to-right pass with
//! occurrence counters: linear in the number of children, no backtracking,
//! validating each child as it is claimed. That pass accepts only what the
//! content model allows, but it can refuse what it allows: a repeated
//! group whose iterations begin with the same element (`(Note | Tag)*` over
//! `Note Note`) looks to it like one particle repeated too often. So when
//! it reports anything, the exact matcher (`exact.rs`) judges the children
//! again; if they match, the greedy pass's messages are dropped and each
//! child is validated against what it matched there. Valid content costs
//! the one pass; the second runs only for content with something to say.
//! After the first content-model error in an element its remaining
//! children are not checked (to avoid cascades).
//!
//! The hot path does not allocate for valid input beyond the namespace
//! scope; paths and messages are only built when a violation is recorded.

use std::borrow::Cow;

use super::builtin::{Builtin, normalize_ws};
use super::exact::{Claim, Exact, Matched, emptiable, term_emptiable};
use super::facets::{check_atomic, check_enumeration, check_length, check_patterns, quote};
use super::model::*;
use super::{SchemaSet, Violation};
use crate::xml::{Element, Node, NsScope, QName, XSI_NS};

/// Stop collecting after this many; a caller needs the first few, and a
/// hostile payload must not make us build megabytes of messages.
const MAX_VIOLATIONS: usize = 50;

pub(super) struct Validator<'a> {
    set: &'a SchemaSet,
    out: Vec<Violation>,
    scope: NsScope,
    /// The element being validated and its ancestors, for paths.
    stack: Vec<&'a Element>,
    root_path: Option<&'a str>,
}

/// Result of matching a particle at a position in a child list.
enum M {
    /// Matched (possibly nothing, when the particle is emptiable); the
    /// position after it.
    Ok(usize),
    /// Nothing matched and the particle is not satisfied; nothing consumed,
    /// nothing reported.
    NoMatch,
    /// A violation was reported.
    Fail,
}

fn skip_text(ch: &[Node], mut i: usize) -> usize {
    while matches!(ch.get(i), Some(Node::Text(_))) {
        i += 1;
    }
    i
}

fn child_at(ch: &[Node], i: usize) -> Option<&Element> {
    match ch.get(i) {
        Some(Node::Element(e)) => Some(e),
        _ => None,
    }
}

fn is_ws(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

/// The element's character content, borrowed in the usual single-text case.
fn text_of(el: &Element) -> Cow<'_, str> {
    match el.children.as_slice() {
        [] => Cow::Borrowed(""),
        [Node::Text(t)] => Cow::Borrowed(t),
        _ => Cow::Owned(el.text()),
    }
}

impl<'a> Validator<'a> {
    pub(super) fn new(set: &'a SchemaSet, outer: &NsScope, root_path: Option<&'a str>) -> Self {
        Validator {
            set,
            out: Vec::new(),
            scope: outer.clone(),
            stack: Vec::new(),
            root_path,
        }
    }

    pub(super) fn root(mut self, instance: &'a Element, decl: &QName) -> Vec<Violation> {
        let Some((_, d)) = self.set.element(decl) else {
            self.stack.push(instance);
            self.violate(None, format!("no global element declaration {decl}"));
            return self.out;
        };
        if instance.name != *decl {
            self.stack.push(instance);
            self.violate(
                None,
                format!("expected element {decl}, got {}", instance.name),
            );
            return self.out;
        }
        self.element(instance, d);
        self.out
    }

    pub(super) fn typed(mut self, instance: &'a Element, ty: &QName) -> Vec<Violation> {
        let Some(id) = self.set.type_id(ty) else {
            self.stack.push(instance);
            self.violate(None, format!("unknown type {ty}"));
            return self.out;
        };
        let decl = ElementDecl {
            name: instance.name.clone(),
            type_id: id,
            nillable: true,
            default: None,
            fixed: None,
            is_abstract: false,
            global: false,
            substitutes: Vec::new(),
        };
        self.element(instance, &decl);
        self.out
    }

    // ---- reporting -----------------------------------------------------

    fn path(&self, attr: Option<&QName>) -> String {
        let mut s = String::new();
        for (i, el) in self.stack.iter().enumerate() {
            if i == 0 {
                match self.root_path {
                    Some(p) => s.push_str(p),
                    None => {
                        s.push('/');
                        s.push_str(&el.name.local);
                    }
                }
                continue;
            }
            s.push('/');
            s.push_str(&el.name.local);
            let parent = self.stack[i - 1];
            let (mut total, mut idx) = (0, 0);
            for c in parent.elements().filter(|c| c.name == el.name) {
                total += 1;
                if std::ptr::eq(c, *el) {
                    idx = total;
                }
            }
            if total > 1 {
                s.push_str(&format!("[{idx}]"));
            }
        }
        if let Some(a) = attr {
            s.push_str("/@");
            s.push_str(&a.local);
        }
        s
    }

    fn violate(&mut self, attr: Option<&QName>, rule: String) {
        if self.out.len() < MAX_VIOLATIONS {
            let path = self.path(attr);
            self.out.push(Violation { path, rule });
        }
    }

    fn full(&self) -> bool {
        self.out.len() >= MAX_VIOLATIONS
    }

    /// Report at a child's path.
    fn violate_at(&mut self, child: &'a Element, rule: String) {
        self.stack.push(child);
        self.violate(None, rule);
        self.stack.pop();
    }

    fn decl_name(&self, id: ElementId) -> String {
        self.set
            .element_decl(id)
            .map(|d| d.name.local.clone())
            .unwrap_or_default()
    }

    /// Names of the elements a particle can start with, for messages.
    fn expected(&self, t: &Term, names: &mut Vec<String>) {
        match t {
            Term::Element(id) => names.push(self.decl_name(*id)),
            Term::Any(_) => names.push("any element".into()),
            Term::Sequence(ps) => {
                for p in ps {
                    self.expected(&p.term, names);
                    if !emptiable(p) {
                        break;
                    }
                }
            }
            Term::Choice(ps) | Term::All(ps) => {
                for p in ps {
                    self.expected(&p.term, names);
                }
            }
        }
    }

    fn expected_text(&self, t: &Term) -> String {
        let mut names = Vec::new();
        self.expected(t, &mut names);
        names.dedup();
        match names.len() {
            0 => "nothing".into(),
            1 => names.swap_remove(0),
            _ => format!("one of {}", names.join(", ")),
        }
    }

    /// A required particle did not match at `pos`.
    fn missing(&mut self, ch: &'a [Node], pos: usize, t: &Term) {
        let exp = self.expected_text(t);
        match child_at(ch, pos) {
            Some(c) => {
                self.violate_at(c, format!("unexpected element {} (expected {exp})", c.name))
            }
            None => self.violate(None, format!("required element {exp} missing")),
        }
    }

    // ---- elements ------------------------------------------------------

    fn element(&mut self, el: &'a Element, decl: &ElementDecl) {
        self.stack.push(el);
        self.scope.push(el);
        self.element_body(el, decl);
        self.scope.pop();
        self.stack.pop();
    }

    fn element_body(&mut self, el: &'a Element, decl: &ElementDecl) {
        let set = self.set;
        if decl.is_abstract {
            self.violate(
                None,
                format!(
                    "element {} is abstract; use a member of its substitution group",
                    decl.name.local
                ),
            );
        }
        let mut ty = decl.type_id;
        if let Some(xt) = el.attr_ns(XSI_NS, "type") {
            match self.scope.resolve_qname(xt).and_then(|q| set.type_id(&q)) {
                Some(t) if set.derives_from(t, ty) => ty = t,
                Some(_) => self.violate(
                    None,
                    format!("xsi:type {xt:?} is not derived from the declared type"),
                ),
                None => self.violate(None, format!("xsi:type {xt:?} is not a known type")),
            }
        }
        if let Some(nil) = el.attr_ns(XSI_NS, "nil") {
            // XSD 1.0, Element Locally Valid (Element) 3.1: on an element
            // that is not nillable, xsi:nil may not appear at all, "false"
            // included.
            if !decl.nillable {
                self.violate(None, format!("element {} is not nillable", decl.name.local));
                if matches!(nil.trim(), "true" | "1") {
                    return;
                }
            }
            match nil.trim() {
                "true" | "1" => {
                    if el.has_element_children() || !is_ws(&text_of(el)) {
                        self.violate(
                            None,
                            "an element with xsi:nil=\"true\" must be empty".into(),
                        );
                    }
                    // A nil element keeps its attributes, which its type
                    // still governs: a simple type allows none.
                    match set.type_def(ty) {
                        Some(TypeDef::Complex(ct)) => self.attributes(el, ct),
                        Some(TypeDef::Simple(_)) => self.no_attributes(el),
                        None => {}
                    }
                    return;
                }
                "false" | "0" => {}
                v => self.violate(
                    None,
                    format!("xsi:nil must be true or false (got {})", quote(v)),
                ),
            }
        }
        match set.type_def(ty) {
            None => {}
            Some(TypeDef::Simple(_)) => {
                self.no_attributes(el);
                self.simple_content(el, ty, decl);
            }
            Some(TypeDef::Complex(ct)) => {
                if ct.is_abstract {
                    let n = ct.name.as_ref().map(|n| n.to_string()).unwrap_or_default();
                    self.violate(
                        None,
                        format!("type {n} is abstract; name a derived type with xsi:type"),
                    );
                }
                self.attributes(el, ct);
                match &ct.content {
                    Content::Simple(st) => self.simple_content(el, *st, decl),
                    Content::Complex { particle, mixed } => {
                        if !mixed {
                            let bad = el.children.iter().find_map(|n| match n {
                                Node::Text(t) if !is_ws(t) => Some(t),
                                _ => None,
                            });
                            if let Some(t) = bad {
                                self.violate(
                                    None,
                                    format!(
                                        "text not allowed in element-only content (got {})",
                                        quote(t.trim())
                                    ),
                                );
                            }
                        }
                        self.content(el, particle.as_ref());
                    }
                }
            }
        }
    }

    fn simple_content(&mut self, el: &'a Element, ty: TypeId, decl: &ElementDecl) {
        if let Some(c) = el.elements().next() {
            self.violate_at(
                c,
                format!("unexpected element {} (the content must be text)", c.name),
            );
            return;
        }
        let text = text_of(el);
        let value: &str = match (&decl.default, &decl.fixed) {
            (_, Some(f)) | (Some(f), _) if text.is_empty() => f,
            _ => &text,
        };
        if let Err(rule) = self.simple(ty, value) {
            self.violate(None, rule);
            return;
        }
        if let Some(f) = &decl.fixed
            && !self.values_equal(ty, value, f)
        {
            self.violate(
                None,
                format!("fixed value {} (got {})", quote(f), quote(value)),
            );
        }
    }

    fn values_equal(&self, ty: TypeId, a: &str, b: &str) -> bool {
        match self.set.type_def(ty) {
            Some(TypeDef::Simple(st)) => {
                let (x, y) = (
                    normalize_ws(a, st.facets.white_space),
                    normalize_ws(b, st.facets.white_space),
                );
                match st.variety {
                    Variety::Atomic(bt) => super::builtin::equal(bt, &x, &y),
                    _ => x == y,
                }
            }
            _ => a == b,
        }
    }

    /// Check a value against a simple type. `Err` is the rule broken.
    pub(super) fn simple(&self, ty: TypeId, raw: &str) -> Result<(), String> {
        let Some(TypeDef::Simple(st)) = self.set.type_def(ty) else {
            // anyType (or a complex type in simple position): any text.
            return Ok(());
        };
        let f = &st.facets;
        match &st.variety {
            Variety::Atomic(b) => {
                let v = normalize_ws(raw, f.white_space);
                // NOTATION names a notation of the schema, and no value
                // can without an enumeration listing them (XSD 1.0,
                // 3.2.19): xs:NOTATION itself validates nothing.
                if *b == Builtin::Notation && f.enumeration.is_none() {
                    return Err(format!(
                        "xs:NOTATION takes a value only through an enumeration of notations \
                         (got {})",
                        quote(&v)
                    ));
                }
                if !b.check(&v, &self.scope) {
                    return Err(format!("not a valid xsd:{}: {}", b.name(), quote(&v)));
                }
                check_atomic(*b, f, &v)
            }
            Variety::List(item) => {
                let v = normalize_ws(raw, WhiteSpace::Collapse);
                let mut n = 0u64;
                for it in v.split(' ').filter(|s| !s.is_empty()) {
                    n += 1;
                    self.simple(*item, it)
                        .map_err(|e| format!("list item {n}: {e}"))?;
                }
                check_length(f, n)?;
                check_patterns(f, &v)?;
                check_enumeration(f, &v, |x, y| x == y)
            }
            Variety::Union(members) => {
                if !members.iter().any(|m| self.simple(*m, raw).is_ok()) {
                    let name = st
                        .name
                        .as_ref()
                        .map(|n| n.local.as_str())
                        .unwrap_or("the union");
                    return Err(format!(
                        "not a valid value of {name}: {}",
                        quote(raw.trim())
                    ));
                }
                let v = normalize_ws(raw, WhiteSpace::Collapse);
                check_patterns(f, &v)?;
                check_enumeration(f, &v, |x, y| x == y)
            }
        }
    }

    // ---- attributes ----------------------------------------------------

    /// An element of simple type takes no attributes but `xsi:`'s.
    fn no_attributes(&mut self, el: &Element) {
        for a in el.attrs.iter().filter(|a| a.name.ns != XSI_NS) {
            self.violate(Some(&a.name), format!("unexpected attribute {}", a.name));
        }
    }

    fn attributes(&mut self, el: &'a Element, ct: &ComplexType) {
        let set = self.set;
        for a in &el.attrs {
            if a.name.ns == XSI_NS {
                continue;
            }
            if let Some(u) = ct.attributes.iter().find(|u| u.name == a.name) {
                if u.usage == AttributeUsage::Prohibited {
                    self.violate(Some(&a.name), format!("attribute {} is prohibited", a.name));
                    continue;
                }
                if let Err(rule) = self.simple(u.type_id, &a.value) {
                    self.violate(Some(&a.name), rule);
                } else if let Some(f) = &u.fixed
                    && !self.values_equal(u.type_id, &a.value, f)
                {
                    self.violate(
                        Some(&a.name),
                        format!("fixed value {} (got {})", quote(f), quote(&a.value)),
                    );
                }
                continue;
            }
            match &ct.any_attribute {
                Some(w) if w.namespaces.allows(&a.name.ns) => {
                    if w.process == ProcessContents::Skip {
                        continue;
                    }
                    match set.attribute(&a.name) {
                        Some(d) => {
                            if let Err(rule) = self.simple(d.type_id, &a.value) {
                                self.violate(Some(&a.name), rule);
                            }
                        }
                        None if w.process == ProcessContents::Strict => self.violate(
                            Some(&a.name),
                            format!(
                                "no global declaration for attribute {} (strict anyAttribute)",
                                a.name
                            ),
                        ),
                        None => {}
                    }
                }
                _ => self.violate(Some(&a.name), format!("unexpected attribute {}", a.name)),
            }
        }
        for u in ct
            .attributes
            .iter()
            .filter(|u| u.usage == AttributeUsage::Required)
        {
            if !el.attrs.iter().any(|a| a.name == u.name) {
                self.violate(None, format!("required attribute {} missing", u.name));
            }
        }
    }

    // ---- content models ------------------------------------------------

    fn content(&mut self, el: &'a Element, particle: Option<&'a Particle>) {
        let ch = el.children.as_slice();
        let start = skip_text(ch, 0);
        let Some(p) = particle else {
            if let Some(c) = child_at(ch, start) {
                self.violate_at(
                    c,
                    format!("unexpected element {} (the content must be empty)", c.name),
                );
            }
            return;
        };
        let mark = self.out.len();
        match self.particle(p, ch, start) {
            M::Ok(n) => {
                if let Some(c) = child_at(ch, n) {
                    self.violate_at(c, format!("unexpected element {}", c.name));
                }
            }
            M::NoMatch => self.missing(ch, start, &p.term),
            M::Fail => {}
        }
        if self.out.len() > mark {
            self.judge_again(el, p, mark);
        }
    }

    /// The greedy pass reported something for `el`: the children, or the
    /// content model, which that pass misjudges when a repeated group's
    /// iterations begin with the same element. When the exact matcher finds
    /// the children match, what the greedy pass said is dropped and each
    /// child is validated against what it matched; otherwise the greedy
    /// pass's messages stand (they say where and what was expected).
    fn judge_again(&mut self, el: &'a Element, p: &'a Particle, mark: usize) {
        let kids: Vec<&'a Element> = el
            .children
            .iter()
            .filter_map(|n| match n {
                Node::Element(e) => Some(e),
                Node::Text(_) => None,
            })
            .collect();
        let Matched::Valid(claims) = Exact::new(self.set, &kids).run(p) else {
            return;
        };
        self.out.truncate(mark);
        for (kid, claim) in kids.into_iter().zip(claims) {
            match claim {
                Claim::Decl(d) => self.element(kid, d),
                Claim::Wildcard(w) => self.wildcard_child(kid, w),
            }
        }
    }

    fn particle(&mut self, p: &Particle, ch: &'a [Node], pos: usize) -> M {
        let mut count = 0u32;
        let mut cur = pos;
        while p.max.allows(count) && !self.full() {
            match self.term(&p.term, ch, cur) {
                M::Ok(n) if n > cur => {
                    cur = n;
                    count += 1;
                }
                M::Ok(_) | M::NoMatch => break,
                M::Fail => return M::Fail,
            }
        }
        // One more of the same element than allowed: say so, rather than
        // "unexpected element" further on.
        if !p.max.allows(count)
            && let (Term::Element(id), Some(c)) = (&p.term, child_at(ch, cur))
            && self.set.element_decl(*id).is_some_and(|d| d.name == c.name)
        {
            let rule = format!("maxOccurs={} for element {} exceeded", p.max, c.name.local);
            self.violate_at(c, rule);
            return M::Fail;
        }
        if count >= p.min || term_emptiable(&p.term) {
            return M::Ok(cur);
        }
        if cur == pos {
            return M::NoMatch;
        }
        match (&p.term, child_at(ch, cur)) {
            (Term::Element(id), None) => {
                let rule = format!(
                    "minOccurs={} for element {} (got {count})",
                    p.min,
                    self.decl_name(*id)
                );
                self.violate(None, rule);
            }
            _ => self.missing(ch, cur, &p.term),
        }
        M::Fail
    }

    fn term(&mut self, t: &Term, ch: &'a [Node], pos: usize) -> M {
        match t {
            Term::Element(id) => {
                let Some(c) = child_at(ch, pos) else {
                    return M::NoMatch;
                };
                match self.match_decl(*id, &c.name) {
                    Some(d) => {
                        self.element(c, d);
                        M::Ok(skip_text(ch, pos + 1))
                    }
                    None => M::NoMatch,
                }
            }
            Term::Any(w) => {
                let Some(c) = child_at(ch, pos) else {
                    return M::NoMatch;
                };
                if !w.namespaces.allows(&c.name.ns) {
                    return M::NoMatch;
                }
                self.wildcard_child(c, w);
                M::Ok(skip_text(ch, pos + 1))
            }
            Term::Sequence(ps) => {
                let mut cur = pos;
                for p in ps {
                    match self.particle(p, ch, cur) {
                        M::Ok(n) => cur = n,
                        M::NoMatch if cur == pos => return M::NoMatch,
                        M::NoMatch => {
                            self.missing(ch, cur, &p.term);
                            return M::Fail;
                        }
                        M::Fail => return M::Fail,
                    }
                }
                M::Ok(cur)
            }
            Term::Choice(ps) => {
                let mut empty_ok = false;
                for p in ps {
                    match self.particle(p, ch, pos) {
                        M::Ok(n) if n > pos => return M::Ok(n),
                        M::Ok(_) => empty_ok = true,
                        M::NoMatch => {}
                        M::Fail => return M::Fail,
                    }
                }
                if empty_ok { M::Ok(pos) } else { M::NoMatch }
            }
            Term::All(ps) => self.all(ps, ch, pos),
        }
    }

    /// `xsd:all`: each member at most once, in any order. Members beyond the
    /// 128th are matched but not tracked for repetition.
    fn all(&mut self, ps: &[Particle], ch: &'a [Node], pos: usize) -> M {
        let mut seen = 0u128;
        let mut cur = pos;
        while let Some(c) = child_at(ch, cur) {
            let hit = ps.iter().enumerate().find_map(|(i, p)| match &p.term {
                Term::Element(id) if i >= 128 || seen & (1 << i) == 0 => {
                    self.match_decl(*id, &c.name).map(|d| (i, d))
                }
                _ => None,
            });
            let Some((i, d)) = hit else { break };
            if i < 128 {
                seen |= 1 << i;
            }
            self.element(c, d);
            cur = skip_text(ch, cur + 1);
        }
        let missing: Vec<String> = ps
            .iter()
            .enumerate()
            .filter(|(i, p)| p.min > 0 && *i < 128 && seen & (1 << i) == 0)
            .map(|(_, p)| self.expected_text(&p.term))
            .collect();
        if missing.is_empty() {
            return M::Ok(cur);
        }
        if cur == pos {
            return M::NoMatch;
        }
        for m in missing {
            self.violate(None, format!("required element {m} missing"));
        }
        M::Fail
    }

    /// The declaration an element with this name matches (see
    /// [`SchemaSet::decl_matching`]).
    fn match_decl(&self, id: ElementId, name: &QName) -> Option<&'a ElementDecl> {
        self.set.decl_matching(id, name)
    }

    fn wildcard_child(&mut self, c: &'a Element, w: &Wildcard) {
        if w.process == ProcessContents::Skip {
            return;
        }
        match self.set.element(&c.name) {
            Some((_, d)) => self.element(c, d),
            // No declaration, but an `xsi:type`: the element is assessed
            // against that type, strictly or laxly alike (XSD 1.0,
            // Schema-Validity Assessment (Element) 1.2), whose content
            // rules then apply as they would under a declaration.
            None if c.attr_ns(XSI_NS, "type").is_some() => {
                let decl = ElementDecl {
                    name: c.name.clone(),
                    type_id: super::ANY_TYPE,
                    nillable: true,
                    default: None,
                    fixed: None,
                    is_abstract: false,
                    global: false,
                    substitutes: Vec::new(),
                };
                self.element(c, &decl);
            }
            None if w.process == ProcessContents::Strict => {
                self.violate_at(
                    c,
                    format!(
                        "no global declaration for element {} (strict wildcard)",
                        c.name
                    ),
                );
            }
            None => {}
        }
    }
}
