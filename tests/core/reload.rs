//! Hot reload: edits to the WSDL folder are picked up while serving (file
//! watch and SIGHUP); a broken set is refused whole and the last good set
//! keeps serving; a call holding a snapshot keeps the set it started with.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use soapgate::live::{Live, Sources};

const FIXTURE: &str = "tests/data/http/helpdesk.wsdl";

fn sources(dir: &Path) -> Sources {
    Sources {
        wsdl_dir: dir.join("wsdl"),
        mappings_dir: dir.join("mappings"),
    }
}

fn setup() -> (tempfile::TempDir, Arc<Live>) {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("wsdl")).expect("wsdl dir");
    std::fs::create_dir_all(dir.path().join("mappings")).expect("mappings dir");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE);
    std::fs::copy(&fixture, dir.path().join("wsdl/helpdesk.wsdl")).expect("copy fixture");
    let live = Live::load(sources(dir.path())).unwrap_or_else(|e| panic!("{e:?}"));
    (dir, Arc::new(live))
}

/// Wait until the generation moves past `from` (the watcher runs on its own
/// schedule); `None` if it does not within the deadline.
async fn next_generation(live: &Live, from: u64) -> Option<u64> {
    for _ in 0..100 {
        let g = live.snapshot().generation;
        if g > from {
            return Some(g);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

fn renamed_service(name: &str) -> String {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE))
        .expect("fixture");
    text.replace(
        "<wsdl:service name=\"Helpdesk\">",
        &format!("<wsdl:service name=\"{name}\">"),
    )
    .replace(
        "<wsdl:service name=\"Echo\">",
        &format!("<wsdl:service name=\"{name}Echo\">"),
    )
}

#[test]
fn a_broken_set_is_refused_whole_and_the_old_one_keeps_serving() {
    let (dir, live) = setup();
    // One good new file and one broken file: neither may be taken.
    std::fs::write(dir.path().join("wsdl/extra.wsdl"), renamed_service("Extra")).expect("write");
    std::fs::write(dir.path().join("wsdl/broken.wsdl"), "<wsdl:definitions").expect("write");
    let errors = live
        .reload()
        .expect_err("a broken file must refuse the set");
    assert!(
        errors
            .iter()
            .any(|e| e.to_string().contains("broken.wsdl:1:")),
        "{errors:?}"
    );
    let snap = live.snapshot();
    assert_eq!(snap.generation, 1);
    assert!(snap.contracts.service("Helpdesk").is_some());
    assert!(snap.contracts.service("Extra").is_none());

    std::fs::remove_file(dir.path().join("wsdl/broken.wsdl")).expect("remove");
    assert_eq!(live.reload().expect("fixed set loads"), 2);
    assert!(live.snapshot().contracts.service("Extra").is_some());
}

#[test]
fn a_call_keeps_the_snapshot_it_started_with() {
    let (dir, live) = setup();
    let in_flight = live.snapshot();
    std::fs::remove_file(dir.path().join("wsdl/helpdesk.wsdl")).expect("remove");
    std::fs::write(dir.path().join("wsdl/other.wsdl"), renamed_service("Other")).expect("write");
    live.reload().expect("reload");
    assert!(
        in_flight.contracts.service("Helpdesk").is_some(),
        "the old set lives on for its calls"
    );
    assert!(live.snapshot().contracts.service("Helpdesk").is_none());
    assert!(live.snapshot().contracts.service("Other").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_changes_are_picked_up_by_the_watcher() {
    let (dir, live) = setup();
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let watcher = tokio::spawn(live.clone().watch(async move {
        let _ = stop_rx.wait_for(|s| *s).await;
    }));
    // Give the watcher a moment to register before the first change.
    tokio::time::sleep(Duration::from_millis(200)).await;

    std::fs::write(dir.path().join("wsdl/broken.wsdl"), "<nope").expect("write");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        live.snapshot().generation,
        1,
        "a broken save must not replace the set"
    );

    std::fs::write(
        dir.path().join("wsdl/broken.wsdl"),
        renamed_service("Fixed"),
    )
    .expect("write");
    let g = next_generation(&live, 1)
        .await
        .expect("the fix is picked up");
    assert!(g >= 2);
    assert!(live.snapshot().contracts.service("Fixed").is_some());

    let _ = stop_tx.send(true);
    watcher.await.expect("watcher ends on shutdown");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads() {
    // Nothing changes on disk during this test: only SIGHUP can reload.
    let dir = tempfile::tempdir().expect("temp dir");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE);
    std::fs::copy(&fixture, dir.path().join("helpdesk.wsdl")).expect("copy");
    let sources = Sources {
        wsdl_dir: dir.path().to_path_buf(),
        mappings_dir: dir.path().join("m"),
    };
    let live = Arc::new(Live::load(sources).unwrap_or_else(|e| panic!("{e:?}")));
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let watcher = tokio::spawn(live.clone().watch(async move {
        let _ = stop_rx.wait_for(|s| *s).await;
    }));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    assert!(
        next_generation(&live, 1).await.is_some(),
        "SIGHUP must reload"
    );
    let _ = stop_tx.send(true);
    watcher.await.expect("watcher ends");
}
