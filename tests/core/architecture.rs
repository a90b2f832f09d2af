//! The architecture invariants of ARCHITECTURE.md, checked from the source:
//! every path a file of `src/` names (`use` lines and paths in code alike,
//! comments and string literals skipped) is sorted by the top-level module
//! it starts in, and each module may name only the modules below it in
//! [`LAYERS`] and only the outside crates [`ONLY_IN`] grants it.
//!
//! A module missing from [`LAYERS`] fails the test, so a new module takes
//! its place in the order on purpose.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every top-level module of the crate, lowest first, and the modules of
/// the crate it may name. The pure core comes first: it names nothing that
/// does I/O. `store` names no module of the crate at all.
const LAYERS: &[(&str, &[&str])] = &[
    ("xml", &[]),
    ("soap", &["xml"]),
    ("contract", &["xml", "soap"]),
    ("converse", &[]),
    ("mapping", &["xml", "soap", "contract", "converse"]),
    ("error", &["xml", "soap", "contract", "converse"]),
    ("store", &[]),
    ("listen", &[]),
    ("backoff", &[]),
    ("shutdown", &[]),
    ("files", &["xml", "contract", "mapping"]),
    ("live", &["xml", "contract", "mapping", "files"]),
    ("metrics", &[]),
    ("emulator", &["converse", "listen"]),
    (
        "record",
        &["xml", "converse", "mapping", "metrics", "store"],
    ),
    (
        "models",
        &["xml", "converse", "mapping", "metrics", "record"],
    ),
    ("bedrock", &["converse", "models"]),
    (
        "pipeline",
        &[
            "xml", "soap", "contract", "converse", "mapping", "error", "metrics", "backoff",
            "models", "record",
        ],
    ),
    (
        "workflow",
        &[
            "xml", "converse", "mapping", "error", "metrics", "models", "pipeline",
        ],
    ),
    ("tenants", &["xml", "soap", "error", "store", "pipeline"]),
    (
        "config",
        &[
            "xml", "listen", "live", "models", "bedrock", "tenants", "record",
        ],
    ),
    ("telemetry", &["config"]),
    (
        "jobs",
        &[
            "xml", "soap", "contract", "converse", "mapping", "error", "store", "live", "metrics",
            "backoff", "shutdown", "models", "pipeline", "workflow", "tenants", "config",
        ],
    ),
    (
        "http",
        &[
            "xml", "soap", "contract", "converse", "mapping", "error", "store", "listen", "live",
            "metrics", "models", "pipeline", "tenants", "config", "jobs", "record",
        ],
    ),
];

/// Outside crates only some modules may name. A crate not listed here may
/// be named anywhere the layer rules allow.
const ONLY_IN: &[(&str, &[&str])] = &[
    ("sqlx", &["store"]),
    ("aws_sdk_bedrockruntime", &["bedrock"]),
    ("aws_sdk_sqs", &["jobs::sqs"]),
    // The emulator's batch jobs read and write S3, as the production batch
    // client does; the emulator's control plane is wire JSON, never the
    // SDK's types.
    ("aws_sdk_s3", &["emulator::batch", "bedrock"]),
    ("aws_sdk_bedrock", &["bedrock"]),
    ("redis", &["tenants::cluster::redis_state"]),
    ("axum", &["http", "emulator", "listen"]),
];

/// Modules that do no I/O and are not async: they name no runtime, no
/// network, no file system.
const PURE: &[&str] = &["xml", "soap", "contract", "converse", "mapping"];
const IMPURE_ROOTS: &[&str] = &[
    "tokio",
    "sqlx",
    "axum",
    "hyper",
    "hyper_util",
    "reqwest",
    "h2",
    "notify",
    "aws_config",
    "aws_sdk_bedrockruntime",
    "aws_sdk_sqs",
    "aws_sdk_s3",
    "aws_sdk_bedrock",
    "aws_smithy_runtime_api",
];
const IMPURE_STD: &[&str] = &["std::fs", "std::net", "std::process", "std::thread"];

/// The roots of every path named in `code`: `crate::a::b` gives `crate::a`,
/// `crate::{a, b::c}` gives `crate::a` and `crate::b`, `tokio::spawn`
/// gives `tokio`, `std::fs::read` gives `std::fs`.
fn named_paths(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        if is_ident_start(bytes[i]) && (i == 0 || !is_path_byte(bytes[i - 1])) {
            while i < bytes.len() && is_ident(bytes[i]) {
                i += 1;
            }
            let root = &code[start..i];
            if code[i..].starts_with("::") {
                let rest = &code[i + 2..];
                match root {
                    "crate" | "soapgate" | "std" => {
                        for seg in first_segments(rest) {
                            let root = if root == "soapgate" { "crate" } else { root };
                            out.insert(format!("{root}::{seg}"));
                        }
                        // A group's members are not roots of their own.
                        if rest.starts_with('{') {
                            i += 2 + group_len(rest);
                        }
                    }
                    _ => {
                        out.insert(root.to_string());
                    }
                }
            }
        } else {
            i += 1;
        }
    }
    out
}

/// The length of the brace group `rest` starts with, braces included.
fn group_len(rest: &str) -> usize {
    let mut depth = 0;
    for (i, c) in rest.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
    }
    rest.len()
}

/// The first segment after `a::`, or each group member's first segment
/// after `a::{`.
fn first_segments(rest: &str) -> Vec<&str> {
    if let Some(group) = rest.strip_prefix('{') {
        let mut depth = 1;
        let mut end = group.len();
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i;
                        break;
                    }
                }
                _ => {}
            }
        }
        // Top-level members only: split on commas outside braces.
        let mut members = Vec::new();
        let (mut depth, mut from) = (0, 0);
        let group = &group[..end];
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    members.push(&group[from..i]);
                    from = i + 1;
                }
                _ => {}
            }
        }
        members.push(&group[from..]);
        members
            .into_iter()
            .map(|m| ident_prefix(m.trim()))
            .filter(|s| !s.is_empty() && *s != "self")
            .collect()
    } else {
        vec![ident_prefix(rest)]
    }
}

fn ident_prefix(s: &str) -> &str {
    let end = s.bytes().position(|b| !is_ident(b)).unwrap_or(s.len());
    &s[..end]
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// A byte that continues a path before an identifier: a path that starts
/// after `::` is not a root.
fn is_path_byte(b: u8) -> bool {
    is_ident(b) || b == b':'
}

/// `src` with comments, string and character literals blanked out, so a
/// path in a doc comment or a message is not a dependency.
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if b[i] == b'r'
            && (i == 0 || !is_ident(b[i - 1]))
            && matches!(b.get(i + 1), Some(b'#') | Some(b'"'))
        {
            // A raw string: r"…" or r#"…"#.
            let mut j = i + 1;
            while j < b.len() && b[j] == b'#' {
                j += 1;
            }
            if b.get(j) == Some(&b'"') {
                let hashes = j - i - 1;
                let mut close = vec![b'"'];
                close.extend(std::iter::repeat_n(b'#', hashes));
                let mut k = j + 1;
                while k < b.len() && !b[k..].starts_with(&close) {
                    k += 1;
                }
                i = k + close.len();
                out.push(b' ');
            } else {
                out.push(b[i]);
                i += 1;
            }
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push(b' ');
        } else if b[i] == b'\'' {
            // A character literal ('x', '\n', '\u{..}'), or a lifetime.
            if b.get(i + 1) == Some(&b'\\') {
                let mut j = i + 2;
                while j < b.len() && b[j] != b'\'' {
                    j += 1;
                }
                i = j + 1;
                out.push(b' ');
            } else if let Some(len) = std::str::from_utf8(&b[i + 1..])
                .ok()
                .and_then(|s| s.chars().next())
                .map(char::len_utf8)
                .filter(|len| b.get(i + 1 + len) == Some(&b'\''))
            {
                i += len + 2;
                out.push(b' ');
            } else {
                out.push(b[i]);
                i += 1;
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file under `src/`, as `a::b` (`src/a/b/mod.rs`
/// and `src/a/b.rs` are both `a::b`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts.join("::")
}

/// What each file of `src` names that the rules forbid, one line each.
fn violations(src: &Path) -> Vec<String> {
    let layers: BTreeMap<&str, (usize, &[&str])> = LAYERS
        .iter()
        .enumerate()
        .map(|(i, (name, allowed))| (*name, (i, *allowed)))
        .collect();
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut found = Vec::new();
    for file in &files {
        let module = module_of(src, file);
        let top = module.split("::").next().unwrap_or_default();
        if matches!(top, "lib" | "main" | "app" | "cli") {
            continue; // the crate root and the wiring may name every module
        }
        let shown = file.strip_prefix(src.parent().unwrap()).unwrap().display();
        let Some((_, allowed)) = layers.get(top) else {
            found.push(format!("{shown}: module `{top}` has no place in LAYERS"));
            continue;
        };
        let code = code_only(&std::fs::read_to_string(file).unwrap());
        for path in named_paths(&code) {
            if let Some(target) = path.strip_prefix("crate::") {
                if target != top && layers.contains_key(target) && !allowed.contains(&target) {
                    found.push(format!("{shown}: `{top}` names `crate::{target}`"));
                }
                continue;
            }
            if let Some((_, owners)) = ONLY_IN.iter().find(|(krate, _)| *krate == path) {
                let owned = owners
                    .iter()
                    .any(|o| module == *o || module.starts_with(&format!("{o}::")));
                if !owned {
                    found.push(format!("{shown}: `{module}` names `{path}`"));
                }
            }
            if PURE.contains(&top)
                && (IMPURE_ROOTS.contains(&path.as_str()) || IMPURE_STD.contains(&path.as_str()))
            {
                found.push(format!("{shown}: pure `{top}` names `{path}`"));
            }
        }
    }
    found
}

#[test]
fn every_module_names_only_what_its_layer_allows() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = violations(&src);
    assert!(
        found.is_empty(),
        "architecture invariants broken (see ARCHITECTURE.md):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_layers_have_no_cycle_and_name_only_lower_layers() {
    for (i, (name, allowed)) in LAYERS.iter().enumerate() {
        for dep in *allowed {
            let j = LAYERS.iter().position(|(n, _)| n == dep);
            assert!(
                j.is_some_and(|j| j < i),
                "`{name}` may name `{dep}`, which is not a layer below it"
            );
        }
    }
}

/// The check can fail: a pure module that imports `store`, a file outside
/// `store` that names sqlx, a string that only mentions a path, and a
/// module the table does not know.
#[test]
fn a_pure_module_that_imports_the_store_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("xml")).unwrap();
    std::fs::create_dir_all(src.join("jobs")).unwrap();
    std::fs::write(
        src.join("xml/read.rs"),
        "//! Reads.\nuse crate::store::Store;\nconst A: &str = \"crate::http::x\";\n",
    )
    .unwrap();
    std::fs::write(
        src.join("jobs/mod.rs"),
        "use crate::{store, xml::{self, Limits}};\nfn f() { let _ = sqlx::query(\"\"); }\n",
    )
    .unwrap();
    std::fs::write(src.join("gadgets.rs"), "").unwrap();
    let found = violations(&src);
    assert_eq!(
        found,
        [
            "src/gadgets.rs: module `gadgets` has no place in LAYERS",
            "src/jobs/mod.rs: `jobs` names `sqlx`",
            "src/xml/read.rs: `xml` names `crate::store`",
        ],
    );
}

#[test]
fn paths_are_read_from_code_not_from_comments_or_strings() {
    let code = code_only(
        "use crate::{a::{b, c}, d};\n// crate::e\nlet s = \"crate::f\"; let c = '\"'; fn g<'a>() {}\nlet r = r#\"crate::h\"#; tokio::spawn(x); std::fs::read(p);\n",
    );
    let paths: Vec<String> = named_paths(&code).into_iter().collect();
    assert_eq!(paths, ["crate::a", "crate::d", "std::fs", "tokio"]);
}
