//! Mapping mistakes as an admin meets them, with the real binary: for each
//! kind of mistake (a bad input path, an unknown output element, an
//! invalid static fallback, a YAML syntax error) `soapgate check` exits 1
//! and points at the mistake with `path:line:col`; the same mistake saved
//! into a running server's mappings folder is refused and the previous set
//! keeps answering; the fixed file is picked up.

use crate::common::gateway as e2e_support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use e2e_support::{SoapReply, Version, post_soap, repo_root, text_of};

const DESK: &str = "http://helpdesk.example.com/SupportDesk/";
const DRAFT_ACTION: &str = "http://helpdesk.example.com/SupportDesk/DraftReply";
/// The Subject fill of DraftReply in `mappings/SupportDesk.yaml`; each
/// good version of the file in this test gives it another prefix.
const SUBJECT_FILL: &str = "\"Re: {{ subject }}\"";
/// The sample's Subject element.
const SAMPLE_SUBJECT: &str = "Duplicate charge on invoice 2024-10-5521";

/// One mistake: `from` (found in the good file) becomes `to`; the error
/// must point at the line of the change and the column where `at` starts.
struct Mistake {
    name: &'static str,
    from: &'static str,
    to: &'static str,
    at: &'static str,
    /// A word the message must contain.
    says: &'static str,
}

const MISTAKES: &[Mistake] = &[
    Mistake {
        name: "bad input path",
        from: "      subject: Subject\n",
        to: "      subject: Subjekt\n",
        at: "Subjekt",
        says: "no element Subjekt",
    },
    Mistake {
        name: "unknown output element",
        from: "        DraftReplyResult/Subject: ",
        to: "        DraftReplyResult/Subjekt: ",
        at: "DraftReplyResult/Subjekt",
        says: "no element Subjekt",
    },
    Mistake {
        name: "invalid static fallback",
        from: "          Priority: Normal\n",
        to: "          Priority: Whenever\n",
        at: "Whenever",
        says: "enumeration",
    },
    Mistake {
        name: "YAML syntax error",
        from: "      temperature: 0.4\n",
        to: "     temperature: 0.4\n",
        at: "temperature",
        says: "",
    },
];

/// `mappings/SupportDesk.yaml` with the DraftReply Subject prefixed by
/// `prefix`.
fn good_text(prefix: &str) -> String {
    let text = std::fs::read_to_string(repo_root().join("mappings/SupportDesk.yaml"))
        .expect("mappings/SupportDesk.yaml");
    assert!(text.contains(SUBJECT_FILL), "the fill to vary is gone");
    text.replacen(SUBJECT_FILL, &format!("\"{prefix}: {{{{ subject }}}}\""), 1)
}

/// `text` with the mistake made, and the 1-based line and column it must
/// be reported at.
fn with_mistake(text: &str, m: &Mistake) -> (String, usize, usize) {
    let offset = text
        .find(m.from)
        .unwrap_or_else(|| panic!("{}: {:?} not in the file", m.name, m.from));
    let broken = text.replacen(m.from, m.to, 1);
    let line = broken[..offset].matches('\n').count() + 1;
    let line_start = broken[..offset].rfind('\n').map_or(0, |i| i + 1);
    let at = broken[offset..]
        .find(m.at)
        .unwrap_or_else(|| panic!("{}: {:?} not in {:?}", m.name, m.at, m.to));
    let col = broken[line_start..offset + at].chars().count() + 1;
    (broken, line, col)
}

/// A copy of the example contracts and mappings.
fn copy_of_examples() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for sub in ["wsdl", "mappings"] {
        let to = dir.path().join(sub);
        std::fs::create_dir_all(&to).expect("mkdir");
        for entry in std::fs::read_dir(repo_root().join(sub)).expect("read dir") {
            let path = entry.expect("entry").path();
            let keep = path
                .extension()
                .is_some_and(|x| x == "wsdl" || x == "xsd" || x == "yaml");
            if keep {
                std::fs::copy(&path, to.join(path.file_name().expect("name"))).expect("copy");
            }
        }
    }
    dir
}

fn binary() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_soapgate"));
    // No soapgate.toml from the repository, no colours in the log.
    cmd.env("NO_COLOR", "1").env("RUST_LOG", "info");
    cmd
}

/// `soapgate check` on `dir`: exit code and stdout.
fn check(dir: &Path) -> (Option<i32>, String) {
    let mut child = binary()
        .current_dir(dir)
        .args(["check", "--wsdl-dir"])
        .arg(dir.join("wsdl"))
        .arg("--mappings-dir")
        .arg(dir.join("mappings"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting soapgate check");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for check") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("soapgate check did not finish in 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        stdout.read_to_string(&mut out).expect("check's stdout");
    }
    let mut err = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        stderr.read_to_string(&mut err).expect("check's stderr");
    }
    (status.code(), out + &err)
}

/// `soapgate serve --emulator` on a folder, its log collected as it comes.
struct Server {
    child: Child,
    base_url: String,
    log: Arc<Mutex<String>>,
    http: reqwest::Client,
}

impl Server {
    async fn start(dir: &Path) -> Server {
        let mut child = binary()
            .current_dir(dir)
            // Port 0: the server logs the address it bound.
            .args(["serve", "--emulator", "--listen", "127.0.0.1:0"])
            .arg("--wsdl-dir")
            .arg(dir.join("wsdl"))
            .arg("--mappings-dir")
            .arg(dir.join("mappings"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting soapgate serve");
        let log = Arc::new(Mutex::new(String::new()));
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = log.clone();
            std::thread::spawn(move || collect(pipe, &log));
        }
        let addr = listening_address(&log).await;
        let server = Server {
            child,
            base_url: format!("http://{addr}"),
            log,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
        };
        server.wait_healthy().await;
        server
    }

    async fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let url = format!("{}/healthz", self.base_url);
            if let Ok(r) = self.http.get(url).send().await
                && r.status().is_success()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "soapgate serve did not come up:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn count(&self, needle: &str) -> usize {
        self.log().matches(needle).count()
    }

    /// Wait until `needle` has been logged more than `before` times.
    async fn wait_for(&self, needle: &str, before: usize, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.count(needle) <= before {
            assert!(
                Instant::now() < deadline,
                "{what}: no {needle:?} logged within 30 s:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn draft_reply(&self) -> SoapReply {
        let envelope = std::fs::read(repo_root().join("examples/SupportDesk/DraftReply.xml"))
            .expect("the DraftReply sample");
        let url = format!("{}/soap/SupportDesk", self.base_url);
        post_soap(&self.http, &url, Version::V11, DRAFT_ACTION, &envelope).await
    }

    /// The Subject of a DraftReply answer; asserts the call succeeded.
    async fn subject(&self, what: &str) -> String {
        let reply = self.draft_reply().await;
        assert_eq!(reply.status, 200, "{what}: {}", reply.text());
        let payload = reply.payload();
        text_of(&payload[0], DESK, "Subject")
            .unwrap_or_else(|| panic!("{what}: no Subject:\n{}", reply.text()))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address in the server's "soapgate listening addr=..." log line.
async fn listening_address(log: &Mutex<String>) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = log.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let found = text
            .lines()
            .filter(|l| l.contains("soapgate listening"))
            .find_map(|l| l.split("addr=").nth(1))
            .and_then(|rest| rest.split_whitespace().next());
        if let Some(addr) = found {
            return addr.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no \"soapgate listening\" line:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn collect(mut pipe: Box<dyn Read + Send>, log: &Mutex<String>) {
    let mut buf = [0u8; 4096];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => log
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
}

const REFUSED: &str = "reload refused; the previous set keeps serving";
const RELOADED: &str = "reloaded contracts and mappings";

#[test]
fn the_example_copy_passes_check() {
    let dir = copy_of_examples();
    let (code, out) = check(dir.path());
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("SupportDesk.DraftReply"), "{out}");
}

#[test]
fn check_points_at_each_mistake_and_fails() {
    for m in MISTAKES {
        let dir = copy_of_examples();
        let (broken, line, col) = with_mistake(&good_text("Re"), m);
        let file: PathBuf = dir.path().join("mappings/SupportDesk.yaml");
        std::fs::write(&file, broken).expect("write");
        let (code, out) = check(dir.path());
        assert_eq!(code, Some(1), "{}: exit status\n{out}", m.name);
        let at = format!("{}:{line}:{col}: ", file.display());
        let reported = out
            .lines()
            .find(|l| l.starts_with(&at))
            .unwrap_or_else(|| panic!("{}: no line starting {at:?}:\n{out}", m.name));
        assert!(reported.contains(m.says), "{}: {reported}", m.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_server_refuses_each_mistake_and_takes_the_fix() {
    let dir = copy_of_examples();
    let file = dir.path().join("mappings/SupportDesk.yaml");
    std::fs::write(&file, good_text("Re (0)")).expect("write");
    let server = Server::start(dir.path()).await;
    assert_eq!(
        server.subject("first set").await,
        format!("Re (0): {SAMPLE_SUBJECT}")
    );

    for (round, m) in MISTAKES.iter().enumerate() {
        let current = format!("Re ({round})");
        let (broken, line, col) = with_mistake(&good_text(&current), m);
        let (refused, reloaded) = (server.count(REFUSED), server.count(RELOADED));
        std::fs::write(&file, broken).expect("write the mistake");
        server.wait_for(REFUSED, refused, m.name).await;
        let log = server.log();
        let at = format!("SupportDesk.yaml:{line}:{col}: ");
        assert!(
            log.contains(&at),
            "{}: the log names {at:?}:\n{log}",
            m.name
        );
        assert_eq!(
            server.count(RELOADED),
            reloaded,
            "{}: a broken set was taken:\n{log}",
            m.name
        );
        // Still serving, and still the previous set.
        assert_eq!(
            server.subject(m.name).await,
            format!("{current}: {SAMPLE_SUBJECT}"),
            "{}",
            m.name
        );

        let next = format!("Re ({})", round + 1);
        std::fs::write(&file, good_text(&next)).expect("write the fix");
        server.wait_for(RELOADED, reloaded, m.name).await;
        assert_eq!(
            server.subject(m.name).await,
            format!("{next}: {SAMPLE_SUBJECT}"),
            "{}: the fix was not picked up:\n{}",
            m.name,
            server.log()
        );
    }
}

/// At start there is no previous set to keep: a mistake stops the server,
/// naming the place and both folders.
#[test]
fn serve_refuses_to_start_on_a_mistake() {
    let dir = copy_of_examples();
    let m = &MISTAKES[2];
    let (broken, line, col) = with_mistake(&good_text("Re"), m);
    std::fs::write(dir.path().join("mappings/SupportDesk.yaml"), broken).expect("write");
    let output = binary()
        .current_dir(dir.path())
        .args(["serve", "--emulator", "--listen", "127.0.0.1:0"])
        .args(["--wsdl-dir", "wsdl", "--mappings-dir", "mappings"])
        .stdin(Stdio::null())
        .output()
        .expect("running soapgate serve");
    let out = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{out}");
    let at = format!("mappings/SupportDesk.yaml:{line}:{col}: ");
    assert!(out.contains(&at), "{at:?} not in:\n{out}");
    assert!(
        out.contains("error(s) loading the contracts in wsdl and the mappings in mappings"),
        "{out}"
    );
}

/// The real binary with its embedded SQLite store (`data/soapgate.db` under
/// the working folder) and its workers: the async example answers a ticket
/// whose job is in that file, and polls DONE with the original response
/// element once a worker ran it. A hot reload that makes
/// SupportDesk.SummarizeTicket async publishes its poll operation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_queues_async_calls_and_reload_publishes_new_polls() {
    const SG: &str = "urn:soapgate:v1";
    const INV: &str = "http://erp.example.com/ap/invoice/types/v1";
    let dir = copy_of_examples();
    let server = Server::start(dir.path()).await;
    let url = format!("{}/soap/InvoiceService", server.base_url);
    let sample =
        std::fs::read(repo_root().join("examples/InvoiceService/ExtractInvoiceFields.xml"))
            .expect("the ExtractInvoiceFields sample");
    let reply = post_soap(
        &server.http,
        &url,
        Version::V11,
        "http://erp.example.com/ap/invoice/v1/ExtractInvoiceFields",
        &sample,
    )
    .await;
    assert_eq!(reply.status, 200, "{}\n{}", reply.text(), server.log());
    let ticket = &reply.payload()[0];
    assert!(
        ticket.name.is(SG, "ExtractInvoiceFieldsTicket"),
        "{}",
        reply.text()
    );
    let job_id = text_of(ticket, SG, "jobId").expect("jobId");

    // The job is in the server's own database file...
    let db = dir.path().join("data/soapgate.db");
    let store = soapgate::store::Store::connect(&format!("sqlite://{}", db.display()))
        .await
        .expect("opening the server's database");
    let job = store
        .get(&soapgate::store::JobId::from_ticket(job_id.clone()))
        .await
        .expect("reading the job")
        .expect("the job row");
    assert_eq!(job.source, soapgate::store::JobSource::Api);
    assert!(job.payload.contains("DOC-2024-00418861"));
    // ...and the server's workers run it: poll until DONE.
    let poll = format!(
        "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body>\
         <sg:GetExtractInvoiceFieldsResult xmlns:sg=\"{SG}\"><sg:jobId>{job_id}</sg:jobId>\
         </sg:GetExtractInvoiceFieldsResult></s:Body></s:Envelope>"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = loop {
        let reply = post_soap(
            &server.http,
            &url,
            Version::V11,
            "http://erp.example.com/ap/invoice/v1/GetExtractInvoiceFieldsResult",
            poll.as_bytes(),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let status = text_of(&reply.payload()[0], SG, "status").unwrap_or_default();
        if status == "DONE" || status == "FAILED" {
            break reply;
        }
        assert!(
            Instant::now() < deadline,
            "still {status}:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let payload = done.payload();
    assert_eq!(
        text_of(&payload[0], SG, "status").as_deref(),
        Some("DONE"),
        "{}",
        done.text()
    );
    let result = e2e_support::find(&payload[0], SG, "result").expect("sg:result");
    assert!(
        result
            .elements()
            .next()
            .is_some_and(|e| e.name.is(INV, "ExtractInvoiceFieldsResponse")),
        "{}",
        done.text()
    );
    store.close().await;

    let wsdl_url = format!("{}/soap/SupportDesk?wsdl", server.base_url);
    let before = server.http.get(&wsdl_url).send().await.expect("?wsdl");
    assert!(
        !before
            .text()
            .await
            .expect("text")
            .contains("GetSummarizeTicketResult")
    );
    let file = dir.path().join("mappings/SupportDesk.yaml");
    let text = std::fs::read_to_string(&file).expect("mapping");
    let reloads = server.count(RELOADED);
    std::fs::write(
        &file,
        text.replace(
            "  SummarizeTicket:\n",
            "  SummarizeTicket:\n    mode: async\n",
        ),
    )
    .expect("write");
    server
        .wait_for(RELOADED, reloads, "async SummarizeTicket")
        .await;
    let after = server.http.get(&wsdl_url).send().await.expect("?wsdl");
    let after = after.text().await.expect("text");
    // Bound on the SOAP 1.1 and the SOAP 1.2 binding.
    assert_eq!(
        after
            .matches(
                "soapAction=\"http://helpdesk.example.com/SupportDesk/GetSummarizeTicketResult\""
            )
            .count(),
        2,
        "{after}"
    );
}
