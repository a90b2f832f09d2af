//! The documents of one contract: reading a WSDL file, following its
//! `wsdl:import`s (to more WSDLs or to schemas) each once, and the lexical
//! path handling that gives every imported document one publish name.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

use super::{WSDL_NS, XSD_NS, contract_limits};
use crate::contract::{Files, LoadError};
use crate::xml::{self, Element, Pos};

pub(super) fn read_doc(path: &Path, files: &dyn Files) -> Result<Element, LoadError> {
    let bytes = files
        .read(path)
        .map_err(|e| LoadError::new(path, Pos::default(), format!("cannot read the file: {e}")))?;
    xml::read(&bytes, None, &contract_limits())
        .map(|d| d.root)
        .map_err(|e| {
            LoadError::new(
                path,
                e.pos,
                format!("not a readable XML document: {}", e.kind),
            )
        })
}

/// Lexically resolve `.` and `..` so one file reached by two relative routes
/// gets one publish name (and `..` can never climb above a relative root's
/// start in a way that hides it).
pub(crate) fn normalize(p: &Path) -> PathBuf {
    let mut out: Vec<Component<'_>> = Vec::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.last() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir) | Some(Component::Prefix(_)) => {}
                _ => out.push(c),
            },
            _ => out.push(c),
        }
    }
    out.iter().collect()
}

/// The name an imported document is published under: its path relative to
/// the WSDL's folder, `/`-separated (`common/types.xsd`, `../shared/x.xsd`).
pub(crate) fn publish_name(folder: &Path, doc: &Path) -> String {
    let f: Vec<Component<'_>> = folder.components().collect();
    let d: Vec<Component<'_>> = doc.components().collect();
    let common = f.iter().zip(&d).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = Vec::new();
    for _ in common..f.len() {
        parts.push("..".to_string());
    }
    for c in &d[common..] {
        parts.push(c.as_os_str().to_string_lossy().into_owned());
    }
    parts.join("/")
}

/// A WSDL 1.1 document of the contract: the root file or one it imports.
pub(super) struct WsdlDoc {
    pub(super) path: PathBuf,
    pub(super) root: Element,
    pub(super) tns: String,
}

/// A schema document reached through `wsdl:import`.
pub(super) struct SchemaDoc {
    pub(super) path: PathBuf,
    pub(super) root: Element,
}

/// The root WSDL first, then every WSDL it imports (transitively, each once).
pub(super) fn collect_docs(
    path: &Path,
    root: Element,
    files: &dyn Files,
    errors: &mut Vec<LoadError>,
) -> (Vec<WsdlDoc>, Vec<SchemaDoc>) {
    let mut docs = Vec::new();
    let mut schema_docs = Vec::new();
    let mut seen: HashSet<PathBuf> = HashSet::new();
    seen.insert(normalize(path));
    let tns = root.attr("targetNamespace").unwrap_or("").to_string();
    docs.push(WsdlDoc {
        path: path.to_path_buf(),
        root,
        tns,
    });
    let mut i = 0;
    while i < docs.len() {
        let mut found = Vec::new();
        for imp in docs[i].root.children_named(WSDL_NS, "import") {
            let Some(loc) = imp.attr("location") else {
                errors.push(LoadError::new(
                    &docs[i].path,
                    imp.pos,
                    "wsdl:import has no location, so the imported definitions cannot be found",
                ));
                continue;
            };
            let dir = docs[i].path.parent().unwrap_or(Path::new(""));
            found.push((normalize(&dir.join(loc)), imp.pos, docs[i].path.clone()));
        }
        for (target, pos, from) in found {
            if !seen.insert(target.clone()) {
                continue;
            }
            let root = match read_doc(&target, files) {
                Ok(r) => r,
                Err(e) => {
                    errors.push(LoadError::new(
                        &from,
                        pos,
                        format!("wsdl:import of {}: {}", target.display(), e),
                    ));
                    continue;
                }
            };
            if root.name.is(WSDL_NS, "definitions") {
                let tns = root.attr("targetNamespace").unwrap_or("").to_string();
                docs.push(WsdlDoc {
                    path: target,
                    root,
                    tns,
                });
            } else if root.name.is(XSD_NS, "schema") {
                schema_docs.push(SchemaDoc { path: target, root });
            } else {
                errors.push(LoadError::new(
                    &from,
                    pos,
                    format!(
                        "wsdl:import of {}: its root is {}, neither WSDL 1.1 definitions nor an \
                         XML Schema",
                        target.display(),
                        root.name
                    ),
                ));
            }
        }
        i += 1;
    }
    (docs, schema_docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_folds_dots() {
        assert_eq!(
            normalize(Path::new("a/./b/../c.xsd")),
            PathBuf::from("a/c.xsd")
        );
        assert_eq!(
            normalize(Path::new("../x/../y.xsd")),
            PathBuf::from("../y.xsd")
        );
        assert_eq!(normalize(Path::new("/a/../../b")), PathBuf::from("/b"));
    }

    #[test]
    fn publish_names_are_relative_to_the_wsdl_folder() {
        let f = Path::new("wsdl/erp");
        assert_eq!(
            publish_name(f, Path::new("wsdl/erp/types.xsd")),
            "types.xsd"
        );
        assert_eq!(
            publish_name(f, Path::new("wsdl/erp/common/a.xsd")),
            "common/a.xsd"
        );
        assert_eq!(
            publish_name(f, Path::new("wsdl/shared/b.xsd")),
            "../shared/b.xsd"
        );
        assert_eq!(publish_name(Path::new(""), Path::new("c.xsd")), "c.xsd");
    }
}
