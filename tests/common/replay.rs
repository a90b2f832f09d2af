//! `soapgate replay` for tests: TriageTicket calls answered by the facade
//! in process (over the emulator, with an optional script) and recorded by
//! its recorder into a database (the example mappings, TriageTicket
//! recording every call), and the binary run against that database.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use soapgate::store::{KIND_SERVED, RecordingQuery};

use super::gateway::{Gateway, Version, bedrock_settings, repo_root};

pub(crate) const NS: &str = "http://helpdesk.example.com/SupportDesk/";

/// Printer tickets get this triage, and tickets about a lottery win the
/// declared fault TicketRejected for this reason; every other ticket the
/// emulator's default answer, a function of the request.
pub(crate) fn script(priority: &str, rejection: &str) -> String {
    format!(
        r#"rules:
  - name: printer tickets
    prompt: "(?i)printer"
    tool:
      TriageTicketResult:
        Priority: {priority}
        Queue: TechnicalSupport
        Sentiment: Frustrated
        Rationale: The printer fault stops the customer's work.
        EscalateToHuman: false
  - name: spam
    prompt: "(?i)lottery"
    tool_name: TicketRejected
    tool:
      TicketId: INC0000007
      Reason: {rejection}
      Explanation: The message is an advertisement, not a request for support.
"#
    )
}

/// The subjects of the recorded tickets: the printer ones are the 2nd and
/// the 5th, the 7th is rejected.
pub(crate) const SUBJECTS: [&str; 7] = [
    "Invoice total looks wrong",
    "Printer offline after the update",
    "Cannot reset my password",
    "Parcel never arrived",
    "Printer prints blank pages",
    "Please close my account",
    "You have won the lottery",
];

pub(crate) fn request_payload(i: usize, subject: &str) -> String {
    format!(
        "<TriageTicket xmlns=\"{NS}\"><Ticket><TicketId>INC00{:05}</TicketId><Channel>Email</Channel>\
         <CustomerTier>Business</CustomerTier><Subject>{subject}</Subject>\
         <Body>Ticket number {i}: {subject}. Please help.</Body>\
         <ReceivedAt>2026-11-26T08:14:52Z</ReceivedAt></Ticket></TriageTicket>",
        i + 1
    )
}

/// Each subject called through the facade, one after another, TriageTicket
/// recording every call (`record: { sample: 1.0 }`) into the database at
/// `url`; returns once they are all written.
pub(crate) async fn record(script: Option<&str>, subjects: &[&str], url: &str) {
    let mappings = super::mappings::edited(|text| {
        // TriageTicket's own line, indented as an operation's key (a
        // step's `repair_attempts` sits deeper).
        text.replacen(
            "\n    repair_attempts: 2\n",
            "\n    record: { sample: 1.0 }\n    repair_attempts: 2\n",
            1,
        )
    });
    let gateway = Gateway::start_on(script, mappings.path(), bedrock_settings(), url).await;
    for (i, subject) in subjects.iter().enumerate() {
        let payload = request_payload(i, subject);
        let envelope = format!(
            "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body>{payload}</soap:Body></soap:Envelope>"
        );
        let reply = gateway
            .call(
                "SupportDesk",
                Version::V11,
                &format!("{NS}TriageTicket"),
                envelope.as_bytes(),
            )
            .await;
        let rejected = subject.contains("lottery");
        assert_eq!(
            reply.status,
            if rejected { 500 } else { 200 },
            "{}",
            reply.text()
        );
    }
    // The recorder writes in the background: wait until every call's row
    // is in (stopping the facade would wait for its idle connections).
    let query = RecordingQuery {
        service: "SupportDesk".into(),
        operation: "TriageTicket".into(),
        kind: KIND_SERVED,
        since_ms: None,
        limit: None,
    };
    let started = Instant::now();
    loop {
        let rows = gateway.store.recordings(&query).await.expect("recordings");
        if rows.len() >= subjects.len() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{} of {} calls recorded",
            rows.len(),
            subjects.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) struct Run {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// `soapgate replay` for TriageTicket with `args`, its model calls sent to
/// `endpoint` (an emulator) unless `args` say `--emulator`.
pub(crate) async fn replay(url: &str, endpoint: Option<&str>, args: &[&str], dir: &Path) -> Run {
    let root = repo_root();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_soapgate"));
    cmd.current_dir(dir)
        .args([
            "replay",
            "--service",
            "SupportDesk",
            "--operation",
            "TriageTicket",
        ])
        .arg("--wsdl-dir")
        .arg(root.join("wsdl"))
        .args(args)
        .env("SOAPGATE_DATABASE_URL", url)
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_ACCESS_KEY_ID", "AKIDTESTONLY")
        .env("AWS_SECRET_ACCESS_KEY", "test-secret")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/soapgate-test-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/soapgate-test-credentials",
        );
    if !args.contains(&"--mappings-dir") {
        cmd.arg("--mappings-dir").arg(root.join("mappings"));
    }
    if let Some(endpoint) = endpoint {
        cmd.env("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", endpoint);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run soapgate replay"))
        .await
        .expect("join");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub(crate) fn json_of(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("JSON report")).expect("JSON")
}
