//! Start-up checks of a process: a configuration that could only serve
//! faults is refused by `App::build` with a message naming what is wrong;
//! a database that does not answer yet is not such a configuration.

use std::time::{Duration, Instant};

use soapgate::app::{App, Parts, Role};
use soapgate::config::Settings;
use soapgate::shutdown::Shutdown;
use soapgate::store::{JobId, JobStatus, Store};

use crate::common::app::repo_root;
use crate::common::gateway::{SG, SoapReply, Version, post_soap, text_of};

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

/// A database that does not answer at start does not keep the process
/// from serving, nor from using it once it answers: HTTP listens at once,
/// `/readyz` is 503 naming the database and why, async calls fault with
/// QUEUE_UNAVAILABLE, the workers wait; then, with nothing restarted, the
/// store connects, `/readyz` turns 200 and an async call's job runs to
/// DONE. Here the SQLite file's directory cannot be made while a regular
/// file stands where it should be, until the test removes that file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_answers_only_after_start_is_used_without_a_restart() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let blocker = tmp.path().join("data");
    std::fs::write(&blocker, "a file where the database directory goes").expect("blocker");
    let mut settings = Settings {
        wsdl_dir: repo_root().join("wsdl"),
        mappings_dir: repo_root().join("mappings"),
        ..Settings::default()
    };
    settings.listen = "127.0.0.1:0".into();
    settings.emulator = true;
    settings.database.url = format!("sqlite://{}", blocker.join("soapgate.db").display());
    settings.worker.enabled = true;
    settings.worker.poll_interval_ms = 50;
    let app = App::build(settings, Role::Serve, Parts::default())
        .await
        .expect("a database that does not answer yet must not stop the process");
    let base = format!("http://{}", app.local_addr().expect("listening"));
    let shutdown = Shutdown::new();
    let running = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    let http = reqwest::Client::new();

    let (status, ready) = readyz(&http, &base).await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["database"], "connecting", "{ready}");
    let why = ready["database_error"].as_str().unwrap_or_default();
    assert!(why.contains("creating the database directory"), "{ready}");
    let refused = extract(&http, &base, "DOC-2026-00000001").await;
    assert_eq!(refused.status, 500, "{}", refused.text());
    assert!(
        refused.text().contains("QUEUE_UNAVAILABLE"),
        "{}",
        refused.text()
    );

    std::fs::remove_file(&blocker).expect("removing the blocker");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, ready) = readyz(&http, &base).await;
        if status == 200 {
            assert_eq!(ready["database"], "ok", "{ready}");
            break;
        }
        assert!(Instant::now() < deadline, "never connected: {ready}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ticket = extract(&http, &base, "DOC-2026-00000002").await;
    assert_eq!(ticket.status, 200, "{}", ticket.text());
    let job_id = ticket
        .payload()
        .first()
        .and_then(|p| text_of(p, SG, "jobId"))
        .unwrap_or_else(|| panic!("a ticket: {}", ticket.text()));
    // The workers, which waited for the store, run the job.
    let db_url = format!("sqlite://{}", blocker.join("soapgate.db").display());
    let store = Store::connect(&db_url).await.expect("the same database");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job = store
            .get(&JobId::from_ticket(job_id.clone()))
            .await
            .expect("get")
            .expect("the job");
        if job.status == JobStatus::Done {
            break;
        }
        assert!(Instant::now() < deadline, "the job never ran: {job:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    store.close().await;
    shutdown.trigger();
    running.await.expect("task").expect("a clean stop");
}

async fn readyz(http: &reqwest::Client, base: &str) -> (u16, serde_json::Value) {
    let response = http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .expect("GET /readyz");
    let status = response.status().as_u16();
    let body = response.text().await.expect("readiness body");
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    (status, json)
}

async fn extract(http: &reqwest::Client, base: &str, document_id: &str) -> SoapReply {
    let path = repo_root().join("examples/InvoiceService/ExtractInvoiceFields.xml");
    let envelope = std::fs::read_to_string(&path)
        .expect("sample")
        .replace("DOC-2024-00418861", document_id);
    post_soap(
        http,
        &format!("{base}/soap/InvoiceService"),
        Version::V11,
        "http://erp.example.com/ap/invoice/v1/ExtractInvoiceFields",
        envelope.as_bytes(),
    )
    .await
}
