//! Paths into a payload, as mapping files write them: local names
//! separated by `/`, relative to the payload root element (for rpc/literal,
//! the wrapper, so the first step names a part), `[]` after a step that
//! may repeat (the value becomes a list), and a final `@name` for an
//! attribute. Namespaces are not written; each step is resolved against the
//! schema at load, so a typo is an error with the mapping file's position,
//! and at run time steps match by the declared (namespace-qualified) name.

use serde_json::Value;

use super::json_xml::{element_json, simple_json};
use super::shape::{Field, attrs_of, fields_of};
use crate::contract::xsd::{SchemaSet, TypeId};
use crate::xml::{Element, QName};

/// A resolved path.
#[derive(Debug, Clone)]
pub(crate) struct Path {
    pub(crate) text: String,
    pub(crate) steps: Vec<Step>,
    pub(crate) attr: Option<AttrStep>,
}

#[derive(Debug, Clone)]
pub(crate) struct Step {
    pub(crate) field: Field,
    /// Written with `[]`: every occurrence, as a list.
    pub(crate) each: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct AttrStep {
    pub(crate) name: QName,
    pub(crate) type_id: TypeId,
    pub(crate) default: Option<String>,
}

/// What a resolved path ends at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// An element of this type.
    Element(TypeId),
    /// An attribute of this simple type.
    Attribute(TypeId),
}

impl Path {
    pub(crate) fn target(&self) -> Option<Target> {
        match (&self.attr, self.steps.last()) {
            (Some(a), _) => Some(Target::Attribute(a.type_id)),
            (None, Some(s)) => Some(Target::Element(s.field.type_id)),
            (None, None) => None,
        }
    }

    /// True when the value is a list (some step has `[]`).
    pub(crate) fn is_list(&self) -> bool {
        self.steps.iter().any(|s| s.each)
    }

    /// True when the path ends at text: an attribute, or an element of
    /// simple type.
    pub(crate) fn ends_at_simple_value(&self, set: &SchemaSet) -> bool {
        match self.target() {
            Some(Target::Attribute(_)) => true,
            Some(Target::Element(ty)) => matches!(
                crate::contract::xsd::shape::shape(set, ty),
                crate::contract::xsd::shape::Shape::Simple(_)
            ),
            None => false,
        }
    }
}

/// Resolve `text` starting from `top` (the root's child elements or the
/// rpc parts). `Err` holds the message; `allow_each` is false where lists
/// make no sense (output paths).
pub(crate) fn resolve(
    set: &SchemaSet,
    top: &[Field],
    root_type: Option<TypeId>,
    text: &str,
    allow_each: bool,
) -> Result<Path, String> {
    let trimmed = text.trim().trim_start_matches("./");
    if trimmed.is_empty() {
        return Err("empty path".to_string());
    }
    let raw: Vec<&str> = trimmed.split('/').collect();
    let mut steps = Vec::new();
    let mut attr = None;
    let mut here: &[Field] = top;
    let mut here_type: Option<TypeId> = root_type;
    for (i, seg) in raw.iter().enumerate() {
        let seg = seg.trim();
        if let Some(a) = seg.strip_prefix('@') {
            if i + 1 != raw.len() {
                return Err(format!("attribute step @{a} must be the last step"));
            }
            let Some(ty) = here_type else {
                return Err(format!("@{a}: the payload root has no attributes to take"));
            };
            let attrs = attrs_of(set, ty);
            let Some(found) = attrs.iter().find(|x| x.name.local == a) else {
                let known: Vec<String> =
                    attrs.iter().map(|x| format!("@{}", x.name.local)).collect();
                return Err(format!(
                    "no attribute {a} at {}{}",
                    shown(&raw[..i]),
                    choices(&known)
                ));
            };
            attr = Some(AttrStep {
                name: found.name.clone(),
                type_id: found.type_id,
                default: found.default.clone().or_else(|| found.fixed.clone()),
            });
            continue;
        }
        let (name, each) = match seg.strip_suffix("[]") {
            Some(n) => (n.trim(), true),
            None => (seg, false),
        };
        if name.is_empty() || name.contains(['[', ']', ':', '*']) {
            return Err(format!("invalid path step {seg:?}"));
        }
        let Some(field) = here.iter().find(|f| f.name.local == name).cloned() else {
            let known: Vec<String> = here.iter().map(|f| f.name.local.clone()).collect();
            return Err(format!(
                "no element {name} at {}{}",
                shown(&raw[..i]),
                choices(&known)
            ));
        };
        if field.repeated() && !each {
            return Err(if allow_each {
                format!(
                    "{name} may occur more than once; write {name}[] to take every occurrence as a list"
                )
            } else {
                format!("{name} may occur more than once; a single value cannot go there")
            });
        }
        if each && !allow_each {
            return Err(format!("{name}[]: lists are not allowed in this path"));
        }
        if each && !field.repeated() {
            return Err(format!("{name} occurs at most once; remove the []"));
        }
        here = fields_of(set, field.type_id);
        here_type = Some(field.type_id);
        steps.push(Step { field, each });
    }
    Ok(Path {
        text: trimmed.to_string(),
        steps,
        attr,
    })
}

fn shown(steps: &[&str]) -> String {
    if steps.is_empty() {
        "the payload root".to_string()
    } else {
        steps.join("/")
    }
}

fn choices(known: &[String]) -> String {
    if known.is_empty() {
        " (it has none)".to_string()
    } else {
        format!(" (expected one of: {})", known.join(", "))
    }
}

/// A node a path reached at run time.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Reached<'a> {
    Element(&'a Field, &'a Element),
    /// An attribute value (given or defaulted).
    Attribute(&'a AttrStep, &'a str),
}

/// Every node the path reaches, in document order, shaped as nested lists
/// for `[]` steps: a tree of occurrences.
#[derive(Debug)]
pub(crate) enum Found<'a> {
    /// A path without `[]`: the node, or `None` when something optional on
    /// the way is absent.
    One(Option<Reached<'a>>),
    List(Vec<Found<'a>>),
}

/// Walk `path` from the root's children `top`; `root` is the root element
/// itself, for a path that is only `@attr`.
pub(crate) fn find<'a>(
    path: &'a Path,
    root: Option<&'a Element>,
    top: &[&'a Element],
) -> Found<'a> {
    if path.steps.is_empty() {
        return match (&path.attr, root) {
            (Some(a), Some(el)) => Found::One(
                el.attr_ns(&a.name.ns, &a.name.local)
                    .or(a.default.as_deref())
                    .map(|v| Reached::Attribute(a, v)),
            ),
            _ => Found::One(None),
        };
    }
    walk(path, 0, top)
}

fn walk<'a>(path: &'a Path, i: usize, here: &[&'a Element]) -> Found<'a> {
    let Some(step) = path.steps.get(i) else {
        return Found::One(None);
    };
    let matching: Vec<&'a Element> = here
        .iter()
        .copied()
        .filter(|e| e.name == step.field.name)
        .collect();
    let last = i + 1 == path.steps.len();
    let at = |el: &'a Element| -> Found<'a> {
        if last {
            match &path.attr {
                Some(a) => Found::One(
                    el.attr_ns(&a.name.ns, &a.name.local)
                        .or(a.default.as_deref())
                        .map(|v| Reached::Attribute(a, v)),
                ),
                None => Found::One(Some(Reached::Element(&step.field, el))),
            }
        } else {
            let children: Vec<&'a Element> = el.elements().collect();
            walk(path, i + 1, &children)
        }
    };
    if step.each {
        Found::List(matching.into_iter().map(at).collect())
    } else {
        match matching.first() {
            Some(el) => at(el),
            None => Found::One(None),
        }
    }
}

impl Found<'_> {
    /// The typed JSON value: lists for `[]`, `null` for absent.
    pub(crate) fn to_json(&self, set: &SchemaSet) -> Value {
        match self {
            Found::One(None) => Value::Null,
            Found::One(Some(Reached::Element(f, el))) => element_json(set, f, el),
            Found::One(Some(Reached::Attribute(a, v))) => simple_json(set, a.type_id, v),
            Found::List(items) => Value::Array(items.iter().map(|i| i.to_json(set)).collect()),
        }
    }

    /// Leaves in document order (absent ones skipped).
    pub(crate) fn leaves(&self) -> Vec<Reached<'_>> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect<'s>(&'s self, out: &mut Vec<Reached<'s>>) {
        match self {
            Found::One(Some(r)) => out.push(*r),
            Found::One(None) => {}
            Found::List(items) => items.iter().for_each(|i| i.collect(out)),
        }
    }

    /// Map every leaf, keeping the list structure.
    pub(crate) fn map_json(&self, f: &mut dyn FnMut(Reached<'_>) -> Value) -> Value {
        match self {
            Found::One(None) => Value::Null,
            Found::One(Some(r)) => f(*r),
            Found::List(items) => Value::Array(items.iter().map(|i| i.map_json(f)).collect()),
        }
    }
}
