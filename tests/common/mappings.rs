//! Copies of the example mapping folder with one edit, for tests that need
//! an example operation to behave differently (a fault instead of its
//! static fallback, sync instead of async) without a fixture of their own.

use std::path::PathBuf;

fn mappings_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mappings")
}

/// The example mappings in a temporary folder, each file's text passed
/// through `edit`; panics unless `edit` changed at least one file.
pub(crate) fn edited(edit: impl Fn(&str) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut changed = false;
    for entry in std::fs::read_dir(mappings_dir()).expect("mappings/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|x| x == "yaml") {
            let text = std::fs::read_to_string(&path).expect("mapping");
            let new = edit(&text);
            changed |= new != text;
            std::fs::write(dir.path().join(path.file_name().expect("name")), new)
                .expect("writing a mapping");
        }
    }
    assert!(changed, "the edit changed no example mapping");
    dir
}

/// The example mappings with the static fallback that starts at `from`
/// (and ends where `to` starts) replaced by `on_failure: fault`.
pub(crate) fn with_fault_policy(from: &str, to: &str) -> tempfile::TempDir {
    edited(|text| match (text.find(from), text.find(to)) {
        (Some(start), Some(end)) if start < end => {
            let mut text = text.to_owned();
            text.replace_range(start..end, "    on_failure: fault\n");
            text
        }
        _ => text.to_owned(),
    })
}
