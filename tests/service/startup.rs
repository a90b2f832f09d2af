//! Start-up checks of a process: a configuration that could only serve
//! faults is refused by `App::build` with a message naming what is wrong.

use soapgate::app::{App, Parts, Role};
use soapgate::config::Settings;

use crate::common::app::repo_root;

#[tokio::test]
async fn a_missing_mappings_folder_stops_the_process_at_start() {
    let mut settings = Settings {
        wsdl_dir: repo_root().join("wsdl"),
        mappings_dir: repo_root().join("no-such-mappings-folder"),
        ..Settings::default()
    };
    settings.listen = "127.0.0.1:0".into();
    settings.database.url = "sqlite::memory:".into();
    settings.worker.enabled = false;
    let err = App::build(settings, Role::Serve, Parts::default())
        .await
        .expect_err("a typo in mappings_dir must not serve every operation as NOT_MAPPED");
    let text = format!("{err:#}");
    assert!(
        text.contains("no-such-mappings-folder") && text.contains("mappings folder does not exist"),
        "{text}"
    );
}

#[tokio::test]
async fn an_empty_mappings_folder_serves_unmapped_operations() {
    let empty = tempfile::tempdir().expect("temp dir");
    let mut settings = Settings {
        wsdl_dir: repo_root().join("wsdl"),
        mappings_dir: empty.path().to_path_buf(),
        ..Settings::default()
    };
    settings.listen = "127.0.0.1:0".into();
    settings.database.url = "sqlite::memory:".into();
    settings.worker.enabled = false;
    let app = App::build(settings, Role::Serve, Parts::default())
        .await
        .expect("an empty folder is a deliberate choice");
    assert!(app.local_addr().is_some());
}
