//! `soapgate emulator`: refuses a broken script with file:line:col, and
//! serves the Converse wire protocol with a good one.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_soapgate");

#[test]
fn a_broken_script_is_refused_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("bad.yaml");
    std::fs::write(&script, "rules:\n  - prompt: hi\n    answer: oops\n").unwrap();
    let output = Command::new(BIN)
        .args(["emulator", "--listen", "127.0.0.1:0", "--script"])
        .arg(&script)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("{}:3:5:", script.display())),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subcommand_serves_scripted_answers() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("script.yaml");
    std::fs::write(&script, "rules:\n  - prompt: ping\n    text: pong\n").unwrap();
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut child = Command::new(BIN)
        .args([
            "emulator",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--script",
        ])
        .arg(&script)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/model/any-model/converse");
    let body = r#"{"messages":[{"role":"user","content":[{"text":"ping"}]}]}"#;
    let started = Instant::now();
    let answer = loop {
        match reqwest::Client::new().post(&url).body(body).send().await {
            Ok(response) => break response.text().await.unwrap(),
            Err(_) if started.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => {
                let _ = child.kill();
                panic!("the emulator never answered: {e}");
            }
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(
        answer["output"]["message"]["content"][0]["text"],
        serde_json::json!("pong")
    );
    assert_eq!(answer["stopReason"], serde_json::json!("end_turn"));
}
