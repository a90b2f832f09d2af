//! `soapgate replay` as an admin runs it, the binary against a SQLite
//! file of recordings: TriageTicket calls answered by the facade (in
//! process, over the emulator) are recorded by its recorder, then replayed
//! through the same mappings. Against the same answers every recording
//! agrees and the exit code is 0; against an emulator script that changes
//! one enumeration value for some tickets, the report names exactly those
//! recordings and that field, in the table, the JSON and the JUnit file
//! alike, and the exit code is 1; a declared fault compares by its code
//! and its detail.

use std::path::PathBuf;

use serde_json::Value;
use soapgate::xml::{self, Limits};

use crate::common::replay::{SUBJECTS, json_of, record, replay, script};

const PRIORITY: &str = "TriageTicketResponse/TriageTicketResult/Priority";
const REASON: &str = "fault/detail/TicketRejection/Reason";

/// `(recording id, [differing paths])` of the recordings that disagree.
fn disagreeing(report: &Value) -> Vec<(i64, Vec<String>)> {
    report["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|r| r["agrees"] == Value::Bool(false))
        .map(|r| {
            let paths = r["differences"]
                .as_array()
                .expect("differences")
                .iter()
                .map(|d| d["path"].as_str().expect("path").to_string())
                .collect();
            (r["id"].as_i64().expect("id"), paths)
        })
        .collect()
}

/// The JUnit file's test cases as `(name, failure message)`.
fn junit_cases(path: &PathBuf) -> Vec<(String, Option<String>)> {
    let text = std::fs::read_to_string(path).expect("JUnit report");
    let doc = xml::read_str(&text, &Limits::default()).expect("JUnit is XML");
    assert_eq!(doc.root.name.local, "testsuites");
    let suite = doc.root.child("", "testsuite").expect("a testsuite");
    suite
        .children_named("", "testcase")
        .map(|case| {
            (
                case.attr("name").expect("name").to_string(),
                case.child("", "failure")
                    .map(|f| f.attr("message").unwrap_or_default().to_string()),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_reports_exactly_the_records_and_field_a_changed_answer_changes() {
    let dir = tempfile::tempdir().expect("tmp");
    let url = format!("sqlite://{}", dir.path().join("soapgate.db").display());
    let same = script("High", "Spam");
    record(Some(&same), &SUBJECTS, &url).await;

    // The same answers: every recording agrees.
    let emulator = soapgate::emulator::spawn(Some(
        soapgate::emulator::Script::parse(&same, "same.yaml").expect("script"),
    ))
    .await
    .expect("emulator");
    let json = dir.path().join("same.json");
    let run = replay(
        &url,
        Some(emulator.base_url()),
        &["--json", json.to_str().expect("path")],
        dir.path(),
    )
    .await;
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("7 recordings, 7 agree (100.0%"),
        "{}",
        run.stdout
    );
    let report = json_of(&json);
    assert_eq!(report["agreement"], serde_json::json!(1.0));
    assert_eq!(report["valid"], serde_json::json!(7), "{report:#}");
    assert!(disagreeing(&report).is_empty(), "{report:#}");
    // The rejected ticket was recorded as its declared fault, detail and
    // all, and replayed as the same fault.
    let rejected = &report["results"][6];
    assert_eq!(
        rejected["before"]["fault"],
        serde_json::json!("DECLARED_FAULT:TicketRejected"),
        "{rejected:#}"
    );
    assert_eq!(rejected["after"]["fault"], rejected["before"]["fault"]);
    assert_eq!(
        rejected["fields"],
        serde_json::json!(4),
        "code and 3 detail fields"
    );
    // The same requests to the same emulator: the same tokens.
    assert_eq!(
        report["before"]["input_tokens"],
        report["after"]["input_tokens"]
    );
    assert_eq!(
        report["before"]["output_tokens"],
        report["after"]["output_tokens"]
    );
    assert!(report["after"]["input_tokens"].as_i64().expect("tokens") > 0);
    let _ = emulator.stop().await;

    // Printer tickets now get another priority: those two recordings, that
    // one field.
    let changed = script("Urgent", "Spam");
    let emulator = soapgate::emulator::spawn(Some(
        soapgate::emulator::Script::parse(&changed, "changed.yaml").expect("script"),
    ))
    .await
    .expect("emulator");
    let json = dir.path().join("changed.json");
    let junit = dir.path().join("changed.xml");
    let run = replay(
        &url,
        Some(emulator.base_url()),
        &[
            "--json",
            json.to_str().expect("path"),
            "--junit",
            junit.to_str().expect("path"),
            "--concurrency",
            "3",
        ],
        dir.path(),
    )
    .await;
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    let report = json_of(&json);
    // Results come oldest first: the printer tickets are the 2nd and 5th.
    let id = |i: usize| report["results"][i]["id"].as_i64().expect("id");
    assert_eq!(
        disagreeing(&report),
        vec![
            (id(1), vec![PRIORITY.to_string()]),
            (id(4), vec![PRIORITY.to_string()])
        ],
        "{report:#}"
    );
    for i in [1, 4] {
        let d = &report["results"][i]["differences"][0];
        assert_eq!(
            (
                d["status"].as_str(),
                d["recorded"].as_str(),
                d["candidate"].as_str()
            ),
            (Some("differ"), Some("High"), Some("Urgent")),
            "{d}"
        );
    }
    assert_eq!(report["agreeing"], serde_json::json!(5));
    assert_eq!(report["valid"], serde_json::json!(7));
    assert_eq!(report["passed"], Value::Bool(false));
    assert!(
        run.stdout
            .contains(&format!("{PRIORITY}: recorded \"High\", now \"Urgent\"")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("7 recordings, 5 agree (71.4%"),
        "{}",
        run.stdout
    );

    // JUnit says the same: seven cases, the two printer ones failed.
    let cases = junit_cases(&junit);
    assert_eq!(cases.len(), 7);
    let failed: Vec<&str> = cases
        .iter()
        .filter(|(_, f)| f.is_some())
        .map(|(name, _)| name.as_str())
        .collect();
    let expected: Vec<String> = [1, 4]
        .iter()
        .map(|&i| {
            format!(
                "recording {} ({})",
                report["results"][i]["id"],
                report["results"][i]["correlation_id"]
                    .as_str()
                    .expect("cid")
            )
        })
        .collect();
    assert_eq!(failed, expected);
    assert_eq!(cases[1].1.as_deref(), Some("1 of 5 fields differ"));

    // The same change under a lower bar passes.
    let run = replay(
        &url,
        Some(emulator.base_url()),
        &["--min-agreement", "0.6"],
        dir.path(),
    )
    .await;
    let _ = emulator.stop().await;
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("minimum 60.0%): PASS"),
        "{}",
        run.stdout
    );

    // A rejection for another reason: that recording, that detail field.
    let emulator = soapgate::emulator::spawn(Some(
        soapgate::emulator::Script::parse(&script("High", "Duplicate"), "reason.yaml")
            .expect("script"),
    ))
    .await
    .expect("emulator");
    let run = replay(
        &url,
        Some(emulator.base_url()),
        &["--json", json.to_str().expect("path")],
        dir.path(),
    )
    .await;
    let _ = emulator.stop().await;
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    let report = json_of(&json);
    let id = |i: usize| report["results"][i]["id"].as_i64().expect("id");
    assert_eq!(
        disagreeing(&report),
        vec![(id(6), vec![REASON.to_string()])],
        "{report:#}"
    );
    assert!(
        run.stdout
            .contains(&format!("{REASON}: recorded \"Spam\", now \"Duplicate\"")),
        "{}",
        run.stdout
    );

    // Nothing selected is not a pass.
    let run = replay(&url, None, &["--limit", "0"], dir.path()).await;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("no recordings"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_against_the_built_in_emulator_agrees_with_its_own_answers() {
    let dir = tempfile::tempdir().expect("tmp");
    let url = format!("sqlite://{}", dir.path().join("soapgate.db").display());
    record(None, &SUBJECTS[..3], &url).await;
    let json = dir.path().join("report.json");
    let run = replay(
        &url,
        None,
        &["--emulator", "--json", json.to_str().expect("path")],
        dir.path(),
    )
    .await;
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    let report = json_of(&json);
    assert_eq!(report["recordings"], serde_json::json!(3));
    assert_eq!(report["agreeing"], serde_json::json!(3));
    assert_eq!(report["emulator"], Value::Bool(true));
    // No terminal: no progress bar.
    assert!(!run.stderr.contains('\r'), "{}", run.stderr);
    // Without prices, tokens only.
    assert!(report["before"].get("cost_micros").is_none(), "{report:#}");

    // With the config's prices, cost before and now; --since and --limit
    // select recordings.
    let config = dir.path().join("soapgate.toml");
    std::fs::write(
        &config,
        "[tenancy.prices.\"anthropic.claude-3-haiku-20240307-v1:0\"]\n\
         input_per_million = 3.0\noutput_per_million = 15.0\n",
    )
    .expect("config");
    let config = config.to_str().expect("path");
    let run = replay(
        &url,
        None,
        &[
            "--emulator",
            "--config",
            config,
            "--since",
            "2026-05-28",
            "--limit",
            "2",
            "--json",
            json.to_str().expect("path"),
        ],
        dir.path(),
    )
    .await;
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    let report = json_of(&json);
    assert_eq!(report["recordings"], serde_json::json!(2), "{report:#}");
    // The recorded tokens at 3 (input) and 15 (output) per million, in
    // millionths.
    let (input, output) = (
        report["before"]["input_tokens"].as_i64().expect("tokens"),
        report["before"]["output_tokens"].as_i64().expect("tokens"),
    );
    let cost = input * 3 + output * 15;
    assert_eq!(report["before"]["cost_micros"], serde_json::json!(cost));
    assert_eq!(report["after"]["cost_micros"], serde_json::json!(cost));
    assert!(
        run.stdout.contains(&format!(
            "before tokens {input} in + {output} out, cost 0.{cost:06}"
        )),
        "{}",
        run.stdout
    );
    let run = replay(&url, None, &["--emulator", "--limit", "1"], dir.path()).await;
    assert!(
        run.stdout
            .contains("TriageTicket: 1 recording, 1 agree (100.0%"),
        "{}",
        run.stdout
    );
    let run = replay(
        &url,
        None,
        &["--emulator", "--since", "2099-01-01"],
        dir.path(),
    )
    .await;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("no recordings of SupportDesk.TriageTicket since 2099-01-01"),
        "{}",
        run.stderr
    );

    // Another model answers otherwise (the default answer is a function of
    // the model id too): every recording disagrees somewhere.
    let run = replay(
        &url,
        None,
        &[
            "--emulator",
            "--target",
            "amazon.nova-lite-v1:0",
            "--json",
            json.to_str().expect("path"),
        ],
        dir.path(),
    )
    .await;
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    let report = json_of(&json);
    assert_eq!(report["agreeing"], serde_json::json!(0), "{report:#}");
    assert_eq!(report["target"], serde_json::json!("amazon.nova-lite-v1:0"));
    assert_eq!(
        report["results"][0]["after"]["model"],
        serde_json::json!("amazon.nova-lite-v1:0")
    );

    // An operation with a canary at 50% replays its own settings on every
    // recording (no draw), or the variant's with --variant.
    let canary = crate::common::mappings::edited(|text| {
        text.replacen(
            "\n    repair_attempts: 2\n",
            "\n    variants:\n      canary:\n        weight: 50\n        model: { targets: [ { model: amazon.nova-lite-v1:0 } ], max_tokens: 512 }\n    repair_attempts: 2\n",
            1,
        )
    });
    let dir_arg = canary.path().to_str().expect("path");
    let run = replay(
        &url,
        None,
        &[
            "--emulator",
            "--mappings-dir",
            dir_arg,
            "--json",
            json.to_str().expect("path"),
        ],
        dir.path(),
    )
    .await;
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    let run = replay(
        &url,
        None,
        &[
            "--emulator",
            "--mappings-dir",
            dir_arg,
            "--variant",
            "canary",
            "--json",
            json.to_str().expect("path"),
        ],
        dir.path(),
    )
    .await;
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    let report = json_of(&json);
    assert_eq!(report["agreeing"], serde_json::json!(0), "{report:#}");
    assert_eq!(report["variant"], serde_json::json!("canary"));
    let run = replay(
        &url,
        None,
        &["--emulator", "--mappings-dir", dir_arg, "--variant", "nope"],
        dir.path(),
    )
    .await;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("no variant \"nope\" (it has canary)"),
        "{}",
        run.stderr
    );

    // A usage error is told apart from a disagreement.
    let run = replay(
        &url,
        None,
        &["--emulator", "--tolerance", "Priority"],
        dir.path(),
    )
    .await;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("PATH=ABS"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_progress_bar_runs_on_a_terminal() {
    const TEST: &str = "replay::the_progress_bar_runs_on_a_terminal";
    if !crate::common::app::command_works("script", &["--version"]) {
        crate::common::app::peer_missing(TEST, "script (util-linux), for a terminal");
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let url = format!("sqlite://{}", dir.path().join("soapgate.db").display());
    record(None, &SUBJECTS[..3], &url).await;
    let root = crate::common::gateway::repo_root();
    // `script` gives the command a terminal and copies what it writes.
    let command = format!(
        "{} replay --service SupportDesk --operation TriageTicket --emulator --wsdl-dir {} --mappings-dir {} --database-url {url}",
        env!("CARGO_BIN_EXE_soapgate"),
        root.join("wsdl").display(),
        root.join("mappings").display(),
    );
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-qefc", &command, "/dev/null"])
        .current_dir(dir.path());
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run script"))
        .await
        .expect("join");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("\r[..............................] 0/3"),
        "{text:?}"
    );
    assert!(
        text.contains("\r[##############################] 3/3"),
        "{text:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_bounds_the_calls_in_flight() {
    let dir = tempfile::tempdir().expect("tmp");
    let url = format!("sqlite://{}", dir.path().join("soapgate.db").display());
    record(None, &SUBJECTS[..3], &url).await;
    // Every call takes 300 ms at the model.
    let slow = "rules:\n  - name: slow\n    delay_ms: 300\n";
    let emulator = soapgate::emulator::spawn(Some(
        soapgate::emulator::Script::parse(slow, "slow.yaml").expect("script"),
    ))
    .await
    .expect("emulator");
    let json = dir.path().join("report.json");
    let started = std::time::Instant::now();
    let run = replay(
        &url,
        Some(emulator.base_url()),
        &["--concurrency", "1", "--json", json.to_str().expect("path")],
        dir.path(),
    )
    .await;
    let elapsed = started.elapsed();
    let _ = emulator.stop().await;
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    // One at a time: three calls of 300 ms take 900 ms at least.
    assert!(
        elapsed >= std::time::Duration::from_millis(900),
        "{elapsed:?}"
    );
    let report = json_of(&json);
    for r in report["results"].as_array().expect("results") {
        assert!(
            r["after"]["latency_ms"].as_i64().expect("ms") >= 300,
            "{r:#}"
        );
    }
}
