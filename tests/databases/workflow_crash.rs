//! A multi-step job survives its worker process dying mid-workflow, on
//! SQLite and PostgreSQL: no finished step is called again.
//!
//! The operation (`tests/data/workflow/`, StepIntake.QueueDocument) reads
//! a document in three steps: `classify`, then `extract` and `lines` (once
//! per line, two lines at a time). A few jobs are queued in the store. The
//! emulator answers `classify` and `extract` at once and each line after a
//! delay of its own: the first two quickly, the next two slowly, the rest
//! quickly. The real `soapgate worker` binary runs them and is killed with
//! SIGKILL once every job has its `classify` and `extract` kept and some,
//! not all, of its lines (watched through `Store::step_results`): the slow
//! lines are then in flight. A second worker takes the jobs over when
//! their short lease runs out and is stopped with SIGTERM. Then, counting
//! the emulator's calls per step (forced tool) and per line (script rule):
//! every job DONE with a response valid against the contract; `classify`
//! and `extract` called exactly once per job; each line kept before the
//! kill called exactly once; no more line calls than lines plus those in
//! flight at the kill; and a kept result for every step and line.
//!
//! A second case takes a job away from a live worker while one of its
//! steps is at the model (`stale_step_after_takeover`): the late answer is
//! refused by the fence and the job keeps the answer of the worker that
//! took it over.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use serde_json::Value;
use soapgate::emulator::{self, Script};
use soapgate::store::{JobId, JobSource, JobStatus, NewJob, Store};
use soapgate::xml::{self, Limits, QName};
use sqlx::Connection;

use crate::common::db::{Kind, TestDb};
use crate::common::worker_process::{
    Contracts, emulator_counts, log_tail, start_worker_on, wait_for,
};

const NS: &str = "urn:example:step-intake";
const JOBS: usize = 4;
const LINES: usize = 6;
/// Each line's answer delay: lines 0 and 1 answer well before lines 2 and
/// 3 (which start as 0 and 1 finish, two at a time) can, so the kill comes
/// with some lines kept and others in flight.
const LINE_DELAY_MS: [u64; LINES] = [50, 150, 4_000, 4_000, 50, 50];
const CATEGORIES: [&str; 3] = ["GOODS", "SERVICES", "FREIGHT"];
const LEASE_MS: u64 = 1_500;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/workflow")
}

/// Line `line` of job `job`: its description, unique among all lines.
fn description(job: usize, line: usize) -> String {
    format!("part D{job}-L{line}")
}

fn category(line: usize) -> &'static str {
    CATEGORIES[line % CATEGORIES.len()]
}

/// The rule that answers line `line` of job `job`, by its name.
fn line_rule(job: usize, line: usize) -> String {
    format!("D{job} line {line}")
}

/// The rules for classify and extract: both answer at once.
const HEAD: &str = "rules:
  - name: classify
    prompt: \"(?m)^Classify this document\"
    tool_name: step_classify
    tool: { kind: INVOICE }
  - name: extract
    prompt: \"(?m)^Name the supplier\"
    tool_name: step_extract
    tool: { supplier: Brandt Befestigungstechnik GmbH }
";

/// Classify and extract answer at once; every line has a rule of its own
/// (so its calls are counted on their own) with its line's delay.
fn script() -> Script {
    let mut text = String::from(HEAD);
    for job in 0..JOBS {
        for (line, delay) in LINE_DELAY_MS.iter().enumerate() {
            text.push_str(&format!(
                "  - name: {name}\n    prompt: \"{description}\\\\b\"\n    \
                 tool_name: step_lines\n    tool: {{ Category: {category} }}\n    \
                 delay_ms: {delay}\n",
                name = line_rule(job, line),
                description = description(job, line),
                category = category(line),
            ));
        }
    }
    Script::parse(&text, "workflow crash script").expect("the script parses")
}

fn payload(job: usize) -> String {
    let lines: Vec<String> = (0..LINES).map(|line| description(job, line)).collect();
    document(&format!("DOC-{job}"), &lines)
}

/// A QueueDocument request: an invoice with these lines.
fn document(id: &str, lines: &[String]) -> String {
    let lines: String = lines
        .iter()
        .enumerate()
        .map(|(n, description)| {
            format!(
                "<s:Line><s:Number>{}</s:Number><s:Description>{description}</s:Description></s:Line>",
                n + 1
            )
        })
        .collect();
    format!(
        "<s:QueueDocument xmlns:s=\"{NS}\"><s:DocumentId>{id}</s:DocumentId>\
         <s:Text>Invoice No 4711 for {id} from Brandt Befestigungstechnik GmbH</s:Text>\
         <s:Lines>{lines}</s:Lines></s:QueueDocument>"
    )
}

/// A job's kept steps: (step, item) pairs.
async fn kept(store: &Store, job: &JobId) -> BTreeSet<(String, Option<u32>)> {
    store
        .step_results(job)
        .await
        .expect("step results")
        .into_iter()
        .map(|s| (s.step, s.item))
        .collect()
}

/// The lines of a job kept so far.
fn kept_lines(steps: &BTreeSet<(String, Option<u32>)>) -> Vec<u32> {
    steps
        .iter()
        .filter(|(step, _)| step == "lines")
        .filter_map(|(_, item)| *item)
        .collect()
}

/// Every job has classify and extract kept and at least one line, none
/// has all of them.
async fn midway(store: &Store, jobs: &[JobId]) -> bool {
    for job in jobs {
        let steps = kept(store, job).await;
        let lines = kept_lines(&steps).len();
        if !steps.contains(&("classify".into(), None))
            || !steps.contains(&("extract".into(), None))
            || lines == 0
        {
            return false;
        }
        assert!(
            lines < LINES,
            "a job kept all its lines before the kill: the slow lines were not slow"
        );
    }
    true
}

/// A `soapgate worker` process, killed if the test ends while it runs.
struct Worker {
    child: Child,
    log: PathBuf,
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Worker {
    /// `soapgate worker` on the test's contract, with a lease of
    /// `lease_ms` (heartbeats every third of it).
    fn start(db: &TestDb, emulator_url: &str, log: &str, lease_ms: u64) -> Worker {
        let (wsdl, mappings) = (fixture().join("wsdl"), fixture().join("mappings"));
        let contracts = Contracts {
            wsdl: &wsdl,
            mappings: &mappings,
        };
        let log = db.dir.path().join(log);
        let env = [("RUST_LOG", "warn,soapgate::jobs=info".to_owned())];
        let child = start_worker_on(
            &db.url,
            db.dir.path(),
            &contracts,
            emulator_url,
            &log,
            lease_ms,
            &env,
        );
        Worker { child, log }
    }

    /// Waits for `done` while the worker runs (see [`wait_for`]).
    async fn wait_for<F, Fut>(&mut self, what: &str, done: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        wait_for(what, &mut self.child, &self.log, done).await;
    }

    /// Sends `signal` (`TERM`, `STOP`, `CONT`).
    fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success(), "kill -{signal}");
    }

    /// SIGKILL, and the process reaped.
    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaping the killed worker");
    }

    /// SIGTERM; the worker exits cleanly.
    fn stop(&mut self) {
        self.signal("TERM");
        let status = self.child.wait().expect("waiting for the worker");
        assert!(
            status.success(),
            "worker exit {status}:\n{}",
            log_tail(&self.log)
        );
    }
}

/// The test's contract, for checking responses.
fn contract_set() -> soapgate::contract::ContractSet {
    soapgate::files::load_contracts(&fixture().join("wsdl")).expect("the test contract")
}

/// A DONE job's response, checked against the contract: its line
/// categories in order.
fn response_lines(
    set: &soapgate::contract::ContractSet,
    job: &soapgate::store::Job,
    worker: &Worker,
) -> Vec<(String, String)> {
    assert_eq!(
        job.status,
        JobStatus::Done,
        "job {}: {:?} {:?}\n{}",
        job.correlation_id,
        job.fault_code,
        job.fault_text,
        log_tail(&worker.log)
    );
    let (contract, _) = set.service("StepIntake").expect("StepIntake");
    let text = job.result_payload.clone().expect("a DONE job's payload");
    let doc = xml::read(text.as_bytes(), None, &Limits::default()).expect("response XML");
    let violations = contract
        .schemas
        .validate_element(&doc.root, &QName::new(NS, "QueueDocumentResponse"));
    assert!(violations.is_empty(), "{violations:?}\n{text}");
    let field = |e: &soapgate::xml::Element, name| e.child(NS, name).map(|e| e.text());
    assert_eq!(
        field(&doc.root, "Kind").as_deref(),
        Some("INVOICE"),
        "{text}"
    );
    assert_eq!(
        field(&doc.root, "Supplier").as_deref(),
        Some("Brandt Befestigungstechnik GmbH"),
        "{text}"
    );
    doc.root
        .child(NS, "Lines")
        .expect("Lines")
        .elements()
        .map(|l| {
            (
                field(l, "Number").unwrap_or_default(),
                field(l, "Category").unwrap_or_default(),
            )
        })
        .collect()
}

/// Ends the job's lease now, as if its worker had stopped heartbeating.
async fn expire_lease(db: &TestDb, job: &JobId) {
    let sql = "UPDATE soapgate_jobs SET lease_until_ms = 0 WHERE id = ";
    let done = match db.kind {
        Kind::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url)
                .await
                .expect("sqlite");
            sqlx::query(sqlx::AssertSqlSafe(format!("{sql}?")))
                .bind(job.as_str())
                .execute(&mut conn)
                .await
                .map(|r| r.rows_affected())
        }
        Kind::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url)
                .await
                .expect("postgres");
            sqlx::query(sqlx::AssertSqlSafe(format!("{sql}$1")))
                .bind(job.as_str())
                .execute(&mut conn)
                .await
                .map(|r| r.rows_affected())
        }
        Kind::MariaDb => unreachable!("run on SQLite and PostgreSQL"),
    };
    assert_eq!(done.expect("expiring the lease"), 1);
}

fn count(counts: &Value, key: &str, name: &str) -> i64 {
    counts[key][name].as_i64().unwrap_or(0)
}

async fn crash_mid_workflow(kind: Kind) {
    let Some(db) = TestDb::create(kind, "workflow_crash").await else {
        return;
    };
    let emulator = emulator::spawn(Some(script())).await.expect("emulator");
    let url = emulator.base_url().to_owned();
    let store = Store::connect(&db.url).await.expect("store");
    let mut jobs = Vec::new();
    for job in 0..JOBS {
        let id = store
            .enqueue(&NewJob {
                service: "StepIntake".into(),
                operation: "QueueDocument".into(),
                correlation_id: format!("workflow-crash-{job}"),
                payload: payload(job),
                idempotency_key: None,
                source: JobSource::Queue,
                tenant: None,
            })
            .await
            .expect("enqueue");
        jobs.push(id);
    }

    let mut first = Worker::start(&db, &url, "worker-1.log", LEASE_MS);
    first
        .wait_for("every job midway through its lines", || {
            midway(&store, &jobs)
        })
        .await;
    first.kill();

    // What the dead worker kept, and the calls it made.
    let mut kept_at_kill = Vec::new();
    for job in &jobs {
        let steps = kept(&store, job).await;
        let lines = kept_lines(&steps);
        assert!(
            !lines.is_empty() && lines.len() < LINES,
            "job {job}: lines {lines:?} kept at the kill"
        );
        kept_at_kill.push(lines);
    }
    let at_kill = emulator_counts(&url).await;
    let lines_kept: i64 = kept_at_kill.iter().map(|l| l.len() as i64).sum();
    let in_flight = count(&at_kill, "tools", "step_lines") - lines_kept;
    assert!(
        in_flight > 0,
        "the kill must come with lines in flight: {at_kill}"
    );

    let mut second = Worker::start(&db, &url, "worker-2.log", LEASE_MS);
    second
        .wait_for("every job to finish", || async {
            for job in &jobs {
                let job = store.get(job).await.expect("get").expect("the job");
                if !matches!(job.status, JobStatus::Done | JobStatus::Failed) {
                    return false;
                }
            }
            true
        })
        .await;
    second.stop();

    // Every job DONE, its response valid against the contract and made of
    // every step's answer.
    let set = contract_set();
    for (n, id) in jobs.iter().enumerate() {
        let job = store.get(id).await.expect("get").expect("the job");
        let expected: Vec<(String, String)> = (0..LINES)
            .map(|line| ((line + 1).to_string(), category(line).to_owned()))
            .collect();
        assert_eq!(response_lines(&set, &job, &second), expected, "job {n}");

        // A kept result for every step and every line.
        let steps = kept(&store, id).await;
        let mut all: BTreeSet<(String, Option<u32>)> = (0..LINES as u32)
            .map(|line| ("lines".to_owned(), Some(line)))
            .collect();
        all.insert(("classify".into(), None));
        all.insert(("extract".into(), None));
        assert_eq!(steps, all, "job {n}");
    }

    // Calls: classify and extract once per job; each line kept before the
    // kill once; no more line calls than lines plus those in flight.
    let counts = emulator_counts(&url).await;
    let jobs_n = JOBS as i64;
    assert_eq!(count(&counts, "tools", "step_classify"), jobs_n, "{counts}");
    assert_eq!(count(&counts, "tools", "step_extract"), jobs_n, "{counts}");
    for (job, lines) in kept_at_kill.iter().enumerate() {
        for &line in lines {
            let rule = line_rule(job, line as usize);
            assert_eq!(
                count(&counts, "rules", &rule),
                1,
                "{rule} was kept before the kill and called again: {counts}"
            );
        }
    }
    let line_calls = count(&counts, "tools", "step_lines");
    let lines_n = (JOBS * LINES) as i64;
    assert!(
        line_calls >= lines_n && line_calls <= lines_n + in_flight,
        "{line_calls} line calls for {lines_n} lines with {in_flight} in flight at the kill: {counts}"
    );
    assert_eq!(
        count(&counts, "tools", "step_classify")
            + count(&counts, "tools", "step_extract")
            + line_calls,
        counts["total"].as_i64().expect("total"),
        "every call is one of a step: {counts}"
    );
    eprintln!(
        "{kind:?}: lines kept at the kill {kept_at_kill:?}, {in_flight} in flight, \
         {line_calls} line calls for {lines_n} lines"
    );
    store.close().await;
}

/// A worker that loses a job's lease while a step is at the model: its
/// answer, arriving after another worker took the job over and finished
/// it, is refused by the fence of `Store::save_step` and not kept; the job
/// keeps the other worker's answer.
///
/// One job with one line, whose first call answers GOODS after 5 s and
/// every later call FREIGHT at once. The first worker holds the job under
/// a long lease (its next heartbeat 10 s away); while its line call is at
/// the emulator the test expires the lease in the database, as if the
/// worker had missed its heartbeats. A second worker claims the job, calls
/// the line again (FREIGHT) and finishes it. Then the first worker's GOODS
/// answer comes back and its save is refused.
async fn stale_step_after_takeover(kind: Kind) {
    let Some(db) = TestDb::create(kind, "workflow_crash takeover").await else {
        return;
    };
    let line = "part T-L0";
    let script = format!(
        "{HEAD}  - name: line again\n    prompt: \"{line}\"\n    after: 1\n    \
         tool_name: step_lines\n    tool: {{ Category: FREIGHT }}\n  \
         - name: line first\n    prompt: \"{line}\"\n    delay_ms: 5000\n    \
         tool_name: step_lines\n    tool: {{ Category: GOODS }}\n"
    );
    let script = Script::parse(&script, "takeover script").expect("the script parses");
    let emulator = emulator::spawn(Some(script)).await.expect("emulator");
    let url = emulator.base_url().to_owned();
    let store = Store::connect(&db.url).await.expect("store");
    let id = store
        .enqueue(&NewJob {
            service: "StepIntake".into(),
            operation: "QueueDocument".into(),
            correlation_id: "workflow-takeover".into(),
            payload: document("DOC-T", &[line.to_owned()]),
            idempotency_key: None,
            source: JobSource::Queue,
            tenant: None,
        })
        .await
        .expect("enqueue");

    let mut first = Worker::start(&db, &url, "worker-1.log", 30_000);
    first
        .wait_for("the line's first call", || async {
            count(&emulator_counts(&url).await, "rules", "line first") == 1
        })
        .await;
    // The second worker polls for work before the lease is taken away, so
    // it claims the job as soon as it can.
    let mut second = Worker::start(&db, &url, "worker-2.log", LEASE_MS);
    let log = second.log.clone();
    second
        .wait_for("the second worker to start", || async {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("workers started")
        })
        .await;
    expire_lease(&db, &id).await;
    second
        .wait_for("the job to end", || async {
            let job = store.get(&id).await.expect("get").expect("the job");
            matches!(job.status, JobStatus::Done | JobStatus::Failed)
        })
        .await;
    second.stop();
    let kept_by_second = store.step_results(&id).await.expect("steps");
    assert_eq!(
        count(&emulator_counts(&url).await, "rules", "line first"),
        1,
        "the first worker's call is still at the emulator"
    );

    let log = first.log.clone();
    first
        .wait_for("the first worker's save refused", || async {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("is no longer held by this run")
        })
        .await;
    let counts = emulator_counts(&url).await;
    first.stop();

    let job = store.get(&id).await.expect("get").expect("the job");
    assert_eq!(
        response_lines(&contract_set(), &job, &second),
        vec![("1".to_owned(), "FREIGHT".to_owned())]
    );
    let steps = store.step_results(&id).await.expect("steps");
    assert_eq!(
        steps, kept_by_second,
        "the stale worker changed the kept steps"
    );
    let line_result = steps
        .iter()
        .find(|s| s.step == "lines" && s.item == Some(0))
        .expect("the line kept");
    let line_result: Value = serde_json::from_str(&line_result.result).expect("JSON");
    assert_eq!(line_result, serde_json::json!({"Category": "FREIGHT"}));
    // Each call where it belongs: classify and extract once (the second
    // worker found them kept), the line once per worker.
    assert_eq!(count(&counts, "tools", "step_classify"), 1, "{counts}");
    assert_eq!(count(&counts, "tools", "step_extract"), 1, "{counts}");
    assert_eq!(count(&counts, "rules", "line first"), 1, "{counts}");
    assert_eq!(count(&counts, "rules", "line again"), 1, "{counts}");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    crash_mid_workflow(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    crash_mid_workflow(Kind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_stale_step_after_takeover() {
    stale_step_after_takeover(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stale_step_after_takeover() {
    stale_step_after_takeover(Kind::Postgres).await;
}
