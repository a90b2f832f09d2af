//! Pass 1 of loading: the schema documents. A [`Doc`] is one `xsd:schema`
//! with what its components need to know about it (namespaces in scope,
//! effective target namespace, form defaults); [`gather`] follows
//! `xsd:import`/`xsd:include` from the documents given, reading each file
//! once through [`Files`].

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path, PathBuf};

use super::XS;
use crate::contract::{Files, LoadError};
use crate::xml::{self, Element, NsScope, Pos};

/// One schema document with what its components need to know about it.
#[derive(Debug)]
pub(in crate::contract::xsd) struct Doc {
    pub(in crate::contract::xsd) path: PathBuf,
    pub(in crate::contract::xsd) root: Element,
    /// The declarations in scope at the `xsd:schema` element (outer ones,
    /// e.g. `wsdl:definitions`', plus the schema's own).
    pub(super) scope: NsScope,
    /// Effective target namespace (the includer's for a chameleon include).
    pub(super) tns: String,
    pub(super) chameleon: bool,
    pub(super) elem_qualified: bool,
    pub(super) attr_qualified: bool,
}

impl Doc {
    pub(in crate::contract::xsd) fn new(
        path: &Path,
        root: Element,
        outer: &NsScope,
        chameleon_tns: Option<&str>,
    ) -> Result<Doc, LoadError> {
        if !root.name.is(XS, "schema") {
            return Err(LoadError::new(
                path,
                root.pos,
                format!("expected an xsd:schema element, found {}", root.name),
            ));
        }
        let mut scope = outer.clone();
        scope.push(&root);
        let own = root.attr("targetNamespace").unwrap_or("").to_string();
        let chameleon = own.is_empty() && chameleon_tns.is_some_and(|t| !t.is_empty());
        let tns = if chameleon {
            chameleon_tns.unwrap_or("").to_string()
        } else {
            own
        };
        let elem_qualified = root.attr("elementFormDefault") == Some("qualified");
        let attr_qualified = root.attr("attributeFormDefault") == Some("qualified");
        Ok(Doc {
            path: path.to_path_buf(),
            root,
            scope,
            tns,
            chameleon,
            elem_qualified,
            attr_qualified,
        })
    }
}

/// Limits for reading schema files: they come from the admin, not from
/// callers, so they are generous.
fn schema_limits() -> xml::Limits {
    xml::Limits {
        max_depth: 1_000,
        max_attributes: 10_000,
        max_attribute_bytes: 1 << 20,
        max_namespace_decls: 10_000,
        max_children: 1_000_000,
        max_text_bytes: 64 << 20,
    }
}

/// Resolve `.` and `..` lexically, so one file reached by two relative
/// paths is loaded once.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

struct Directive {
    kind: &'static str,
    namespace: Option<String>,
    location: Option<String>,
    pos: Pos,
}

/// Pass 1: follow imports and includes. Returns the documents reached by
/// them (path, root) in first-reached order.
pub(in crate::contract::xsd) fn gather(
    docs: &mut Vec<Doc>,
    errors: &mut Vec<LoadError>,
    files: &dyn Files,
) -> Vec<(PathBuf, Element)> {
    let mut loaded: HashSet<(PathBuf, String)> = docs
        .iter()
        .map(|d| (normalize(&d.path), d.tns.clone()))
        .collect();
    let mut parsed: HashMap<PathBuf, Option<Element>> = HashMap::new();
    let mut imported = Vec::new();
    let mut i = 0;
    while i < docs.len() {
        // The schema grammar puts include, import and redefine first, before
        // any declaration (annotations may come between); both reference
        // validators refuse a schema that does otherwise.
        let mut declared = false;
        for e in docs[i].root.elements().filter(|e| e.name.ns == XS) {
            match e.name.local.as_str() {
                "annotation" => {}
                "import" | "include" | "redefine" if declared => {
                    errors.push(LoadError::new(
                        &docs[i].path,
                        e.pos,
                        format!(
                            "xsd:{} must come before every declaration of the schema",
                            e.name.local
                        ),
                    ));
                }
                "import" | "include" | "redefine" => {}
                _ => declared = true,
            }
        }
        let directives: Vec<Directive> = docs[i]
            .root
            .elements()
            .filter(|e| e.name.ns == XS)
            .filter_map(|e| {
                let kind = match e.name.local.as_str() {
                    "import" => "import",
                    "include" => "include",
                    "redefine" => "redefine",
                    _ => return None,
                };
                Some(Directive {
                    kind,
                    namespace: e.attr("namespace").map(str::to_string),
                    location: e.attr("schemaLocation").map(|s| s.trim().to_string()),
                    pos: e.pos,
                })
            })
            .collect();
        for d in directives {
            let (from_path, from_tns) = (docs[i].path.clone(), docs[i].tns.clone());
            let err = |m: String| LoadError::new(&from_path, d.pos, m);
            if d.kind == "redefine" {
                errors.push(err("xsd:redefine is not supported; copy the redefined components into the schema instead".into()));
                continue;
            }
            let Some(loc) = d.location else {
                if d.kind == "include" {
                    errors.push(err("xsd:include needs a schemaLocation".into()));
                }
                // An import without a location names a namespace that some
                // other schema of the contract provides (or that is unused).
                continue;
            };
            if loc.contains("://") || loc.starts_with("urn:") {
                errors.push(err(format!(
                    "schemaLocation {loc:?} is not a relative path; soapgate never fetches schemas, \
                     save the file next to the contract and refer to it relatively"
                )));
                continue;
            }
            let base = from_path.parent().unwrap_or(Path::new(""));
            let path = normalize(&base.join(&loc));
            let root = parsed.entry(path.clone()).or_insert_with(|| {
                let bytes = match files.read(&path) {
                    Ok(b) => b,
                    Err(e) => {
                        errors.push(err(format!("cannot read {}: {e}", path.display())));
                        return None;
                    }
                };
                match xml::read(&bytes, None, &schema_limits()) {
                    Ok(doc) => Some(doc.root),
                    Err(e) => {
                        errors.push(LoadError::new(&path, e.pos, e.kind.to_string()));
                        None
                    }
                }
            });
            let Some(root) = root.as_ref() else { continue };
            let own_tns = root.attr("targetNamespace").unwrap_or("").to_string();
            let chameleon = if d.kind == "include" {
                if !own_tns.is_empty() && own_tns != from_tns {
                    errors.push(err(format!(
                        "included schema {} has targetNamespace {own_tns:?}, but the including schema's is {from_tns:?}",
                        path.display()
                    )));
                    continue;
                }
                Some(from_tns.as_str())
            } else {
                let want = d.namespace.clone().unwrap_or_default();
                if own_tns != want {
                    errors.push(err(format!(
                        "imported schema {} has targetNamespace {own_tns:?}, but the import names {want:?}",
                        path.display()
                    )));
                    continue;
                }
                None
            };
            let eff_tns = if own_tns.is_empty() {
                chameleon.unwrap_or("").to_string()
            } else {
                own_tns
            };
            if !loaded.insert((path.clone(), eff_tns)) {
                continue;
            }
            match Doc::new(&path, root.clone(), &NsScope::new(), chameleon) {
                Ok(doc) => {
                    if !imported
                        .iter()
                        .any(|(p, _): &(PathBuf, Element)| *p == path)
                    {
                        imported.push((path.clone(), root.clone()));
                    }
                    docs.push(doc);
                }
                Err(e) => errors.push(e),
            }
        }
        i += 1;
    }
    imported
}
