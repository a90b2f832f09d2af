//! Recording for replay, end to end: the example DraftReply operation
//! records every call (`record: { sample: 1.0, redact: [CustomerName] }`),
//! served through the real SDK by the emulator, into a SQLite file. Each
//! row keeps the request, the Converse request, the model's answer, the
//! response, model, tokens, latency and the mapping's hash; the redacted
//! name is in none of them, nor anywhere in the database's files.

use std::time::{Duration, Instant};

use crate::common::gateway::{Gateway, Version, bedrock_settings, repo_root};
use soapgate::store::{KIND_SERVED, Recording, RecordingQuery, Store};

const NAME: &str = "Tom Becker";

async fn recordings(store: &Store, want: usize) -> Vec<Recording> {
    let query = RecordingQuery {
        service: "SupportDesk".into(),
        operation: "DraftReply".into(),
        kind: KIND_SERVED,
        since_ms: None,
        limit: None,
    };
    let started = Instant::now();
    loop {
        let rows = store.recordings(&query).await.expect("reading recordings");
        if rows.len() >= want || started.elapsed() > Duration::from_secs(10) {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_calls_keep_what_replay_needs_and_never_a_redacted_value() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let db = dir.path().join("recordings.db");
    let gateway = Gateway::start_on(
        None,
        &repo_root().join("mappings"),
        bedrock_settings(),
        &format!("sqlite://{}", db.display()),
    )
    .await;
    let request = std::fs::read(repo_root().join("examples/SupportDesk/DraftReply.xml"))
        .expect("the example request");
    for _ in 0..5 {
        let reply = gateway
            .call(
                "SupportDesk",
                Version::V11,
                "http://helpdesk.example.com/SupportDesk/DraftReply",
                &request,
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        // The caller's answer is not redacted: only what is kept is.
        assert!(reply.text().contains(NAME), "{}", reply.text());
    }
    let rows = recordings(&gateway.store, 5).await;
    assert_eq!(rows.len(), 5, "every call is recorded at sample 1.0");
    let mapping = std::fs::read(repo_root().join("mappings/SupportDesk.yaml")).unwrap();
    for row in &rows {
        assert_eq!(row.kind, "served");
        assert_eq!(row.variant, None);
        assert_eq!(
            row.mapping_sha256,
            soapgate::tenants::sha256_hex(&mapping),
            "the hash of the mapping file that served the call"
        );
        assert!(
            row.request_xml.contains("INC0047790") && row.request_xml.contains("[redacted]"),
            "{}",
            row.request_xml
        );
        let converse: serde_json::Value =
            serde_json::from_str(&row.converse_request).expect("the Converse request as JSON");
        assert!(converse["messages"].is_array(), "{converse}");
        assert!(row.converse_request.contains("[redacted]"));
        let answer = row.model_answer.as_deref().expect("the model's answer");
        assert!(
            answer.contains("end_turn") || answer.contains("endTurn"),
            "{answer}"
        );
        let response = row.response_xml.as_deref().expect("the response payload");
        assert!(response.contains("DraftReplyResult"), "{response}");
        assert_eq!(row.fault_code, None);
        assert_eq!(
            row.model.as_deref(),
            Some("anthropic.claude-3-5-sonnet-20240620-v1:0")
        );
        assert!(row.input_tokens > 0 && row.output_tokens > 0, "{row:?}");
        assert!(row.latency_ms >= 0);
        for text in [
            row.request_xml.as_str(),
            &row.converse_request,
            answer,
            response,
        ] {
            assert!(!text.contains(NAME), "a redacted value was kept: {text}");
        }
    }
    // Stopping flushes the writer; then no file of the database holds the
    // name, while what was not redacted is there to be found.
    gateway.stop().await;
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir.path()).expect("the database folder") {
        match std::fs::read(entry.expect("an entry").path()) {
            Ok(b) => bytes.extend(b),
            // SQLite removes its -wal and -shm files as the last connection
            // closes, possibly between the listing and the read: what they
            // held is in the database file by then.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("a database file: {e}"),
        }
    }
    let holds = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(holds("INC0047790"), "the grep finds what is kept");
    assert!(!holds(NAME), "the database files hold a redacted value");
    assert!(
        !holds("Becker"),
        "the database files hold part of a redacted value"
    );
}
