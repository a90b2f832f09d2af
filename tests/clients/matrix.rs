//! The client matrix: eight SOAP stacks no one here wrote (`stacks.rs`),
//! each generated from or loading the facade's `?wsdl`, call every example
//! operation over SOAP 1.1 and, where the stack and the contract allow,
//! 1.2; read the response fields; see soapgate's faults (a schema-invalid
//! request, a throttled model) and a fault the WSDL declares (answered by a
//! facade whose model calls that fault's tool) as the stack's own fault
//! type; and poll the async operations' tickets to DONE. zeep, JAX-WS and
//! .NET poll once more through the real binary, `soapgate serve
//! --emulator`, with the client they built against the in-process facade.
//!
//! Each stack gets a facade of its own (and a throttling one), so one
//! stack's async submissions never meet another's; the stacks run two at a
//! time (`SOAPGATE_CLIENT_JOBS`), and `SOAPGATE_CLIENT_STACKS=zeep,gsoap`
//! runs only the ones named. The matrix — stack × SOAP version ×
//! operations passed / faults seen / async polled — is printed to the test
//! output whether the test passes or fails; a missing stack fails the test
//! under `SOAPGATE_REQUIRE_PEERS=1` and is a row saying so otherwise.

use crate::common::app as support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::Path;
use std::sync::Mutex;

use support::{ServeProcess, peers_required, run_with_timeout};

use crate::real_clients::{
    CLIENT_TIMEOUT, Expect, Fixture, Verdict, async_ops_manifest, contract_dirs, services,
};
use crate::stacks::{Built, Stack};

/// What one stack showed, per SOAP version.
#[derive(Debug, Default)]
struct VersionRow {
    /// (service, operation) bound in this version.
    ops: BTreeSet<(String, String)>,
    /// Those whose sample request passed.
    passed: BTreeSet<(String, String)>,
    /// Those the stack cannot write (see `Stack::limit`), and the facade
    /// refused as expected.
    limited: BTreeSet<(String, String)>,
    /// soapgate fault codes (and declared faults) seen as the stack's own
    /// fault type.
    faults: BTreeSet<String>,
    /// Tickets polled to DONE: in-process, through the binary.
    polled: usize,
    polled_binary: usize,
}

#[derive(Debug)]
struct StackReport {
    stack: Stack,
    version: String,
    /// `Some(what)` when the stack is not installed.
    missing: Option<String>,
    rows: BTreeMap<&'static str, VersionRow>,
    problems: Vec<String>,
    limits: BTreeSet<&'static str>,
    /// Wall time of the stack's build and runs.
    elapsed: std::time::Duration,
}

#[test]
fn eight_client_stacks_call_every_example_operation() {
    let wanted = std::env::var("SOAPGATE_CLIENT_STACKS").ok();
    let stacks: Vec<Stack> = Stack::ALL
        .into_iter()
        .filter(|s| {
            wanted
                .as_deref()
                .is_none_or(|w| w.split(',').any(|k| k.trim() == s.key()))
        })
        .collect();
    assert!(
        !stacks.is_empty(),
        "SOAPGATE_CLIENT_STACKS names no stack of {:?}",
        Stack::ALL.map(Stack::key)
    );
    let jobs: usize = std::env::var("SOAPGATE_CLIENT_JOBS")
        .ok()
        .and_then(|j| j.parse().ok())
        .unwrap_or(2)
        .max(1);
    let queue = Mutex::new(stacks.clone());
    let reports = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(stacks.len()) {
            scope.spawn(|| {
                loop {
                    let next = {
                        let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
                        if q.is_empty() {
                            break;
                        }
                        q.remove(0)
                    };
                    let report = run_stack(next);
                    reports
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(report);
                }
            });
        }
    });
    let mut reports = reports.into_inner().unwrap_or_else(|e| e.into_inner());
    // In the stacks' own order (zeep first), not the order they ran in.
    reports.sort_by_key(|r| r.stack);

    let table = table(&reports);
    // Straight to the process's stderr, so the matrix shows in a passing
    // run too (the harness captures println!), and in the captured output.
    let _ = writeln!(std::io::stderr(), "\n{table}");
    println!("{table}");

    let mut problems = Vec::new();
    for r in &reports {
        if let Some(missing) = &r.missing {
            if peers_required() {
                problems.push(format!(
                    "{}: required peer missing: {missing} (SOAPGATE_REQUIRE_PEERS=1)",
                    r.stack.name()
                ));
            } else {
                let _ = writeln!(
                    std::io::stderr(),
                    "{}: skipped: {missing} missing (set SOAPGATE_REQUIRE_PEERS=1 to make this fail)",
                    r.stack.name()
                );
            }
        }
        for p in &r.problems {
            problems.push(format!("{}: {p}", r.stack.name()));
        }
    }
    assert!(
        problems.is_empty(),
        "{} problem(s):\n\n{}",
        problems.len(),
        problems.join("\n\n")
    );
}

fn run_stack(stack: Stack) -> StackReport {
    let started = std::time::Instant::now();
    let mut report = run_stack_inner(stack);
    report.elapsed = started.elapsed();
    report
}

fn run_stack_inner(stack: Stack) -> StackReport {
    let mut report = StackReport {
        stack,
        version: String::new(),
        missing: None,
        rows: BTreeMap::new(),
        problems: Vec::new(),
        limits: BTreeSet::new(),
        elapsed: std::time::Duration::ZERO,
    };
    if let Err(missing) = stack.probe() {
        report.missing = Some(missing);
        return report;
    }
    report.version = stack.version();
    let fx = Fixture::start_for(stack);
    for op in &fx.ops {
        for v in &op.versions {
            let row = report.rows.entry(v).or_default();
            row.ops.insert((op.service.clone(), op.operation.clone()));
        }
        if let Some(why) = op.limited {
            report.limits.insert(why);
        }
    }
    // The example contracts have a declared fault (SupportDesk's
    // TriageTicket): without one the declared-fault run would prove
    // nothing. Other contracts (SOAPGATE_CLIENTS_*) may have none.
    let own_contracts = ["SOAPGATE_CLIENTS_WSDL_DIR", "SOAPGATE_CLIENTS_MAPPINGS_DIR"]
        .iter()
        .all(|v| std::env::var_os(v).is_none());
    if own_contracts && fx.declaring.is_none() {
        report
            .problems
            .push("no example mapping lets the model answer a declared fault (wsdl:fault)".into());
    }
    let all_services = services(&fx.ops);
    let built = match stack.build(&fx.app.base_url, &all_services, fx.tmp.path()) {
        Ok(b) => b,
        Err(e) => {
            report.problems.push(e);
            return report;
        }
    };
    let mut verdict = Verdict::default();
    let name = stack.name();
    for service in &all_services {
        let out = run_with_timeout(
            &mut stack.command(
                &built,
                &fx.app.base_url,
                &fx.manifest,
                service,
                &fx.app.base_url,
            ),
            CLIENT_TIMEOUT,
        );
        let judged = verdict.judge_run(name, service, &out, &fx.ops, stack);
        // An invalid request is sent with an operation that answers (one
        // the stack can write).
        let answers = fx
            .ops
            .iter()
            .any(|o| &o.service == service && o.expect == Expect::Response);
        if out.success() && answers {
            verdict.judge_invalid(name, service, &judged.stdout);
        }
        report.absorb(&judged, &fx.ops, false);
    }
    let throttled = &fx.throttled;
    for service in services(&throttled.ops) {
        let out = run_with_timeout(
            &mut stack.command(
                &built,
                &throttled.app.base_url,
                &throttled.manifest,
                &service,
                &fx.app.base_url,
            ),
            CLIENT_TIMEOUT,
        );
        let judged = verdict.judge_run(
            &format!("{name} (throttled)"),
            &service,
            &out,
            &throttled.ops,
            stack,
        );
        report.absorb(&judged, &throttled.ops, false);
    }
    if let Some(declaring) = &fx.declaring {
        for service in services(&declaring.ops) {
            let out = run_with_timeout(
                &mut stack.command(
                    &built,
                    &declaring.app.base_url,
                    &declaring.manifest,
                    &service,
                    &fx.app.base_url,
                ),
                CLIENT_TIMEOUT,
            );
            let judged = verdict.judge_run(
                &format!("{name} (declared fault)"),
                &service,
                &out,
                &declaring.ops,
                stack,
            );
            report.absorb(&judged, &declaring.ops, false);
        }
    }
    verdict.judge_model_calls(name, &fx);
    if stack.polls_through_binary() {
        poll_through_binary(stack, &built, &fx, &mut verdict, &mut report);
    }
    report.problems.extend(verdict.problems);
    report
}

/// The async operations once more, through `soapgate serve --emulator`
/// (its workers and embedded SQLite), with the client built against the
/// in-process facade.
fn poll_through_binary(
    stack: Stack,
    built: &Built,
    fx: &Fixture,
    verdict: &mut Verdict,
    report: &mut StackReport,
) {
    let tmp = fx.tmp.path().join("binary");
    let (ops, manifest) = async_ops_manifest(&tmp.join("manifest"));
    let (wsdl, mappings, _) = contract_dirs();
    let server = ServeProcess::start(&wsdl, &mappings, Path::new(&tmp));
    let label = format!("{} (binary)", stack.name());
    let before = verdict.problems.len();
    for service in services(&ops) {
        let out = run_with_timeout(
            &mut stack.command(
                built,
                &server.base_url,
                &manifest,
                &service,
                &fx.app.base_url,
            ),
            CLIENT_TIMEOUT,
        );
        let judged = verdict.judge_run(&label, &service, &out, &ops, stack);
        report.absorb(&judged, &ops, true);
    }
    if verdict.problems.len() > before {
        verdict.fail(format!("server log:\n{}", server.log()));
    }
}

/// One judged run: its output with `read` lines resolved, and which
/// (service, operation, version) sample checks passed.
#[derive(Debug)]
pub(crate) struct Judged {
    pub(crate) stdout: String,
    pub(crate) passed: BTreeSet<(String, String, String)>,
}

impl StackReport {
    fn absorb(&mut self, judged: &Judged, ops: &[crate::real_clients::ExampleOp], binary: bool) {
        for (service, op, v) in &judged.passed {
            let Some(example) = ops
                .iter()
                .find(|o| &o.service == service && &o.operation == op)
            else {
                continue;
            };
            let row = self.rows.entry(version_key(v)).or_default();
            let key = (service.clone(), op.clone());
            match &example.expect {
                Expect::Ticket => {
                    if binary {
                        row.polled_binary += 1;
                    } else {
                        row.polled += 1;
                        row.passed.insert(key);
                    }
                }
                Expect::Fault(_) if example.limited.is_some() => {
                    row.limited.insert(key);
                }
                Expect::Fault(_) | Expect::Declared(_) => {}
                _ => {
                    row.passed.insert(key);
                }
            }
        }
        // Faults seen: the soapgate code on every passed fault check.
        for line in judged.stdout.lines().filter(|l| l.starts_with("ok")) {
            for v in ["1.1", "1.2"] {
                if !line.contains(&format!("SOAP {v}]")) {
                    continue;
                }
                for code in fault_codes(ops) {
                    let answered = line.contains("response read") || line.contains("ticket polled");
                    if line.contains(&code) && !answered {
                        self.rows
                            .entry(version_key(v))
                            .or_default()
                            .faults
                            .insert(code.clone());
                    }
                }
            }
        }
    }
}

fn version_key(v: &str) -> &'static str {
    if v == "1.2" { "1.2" } else { "1.1" }
}

/// The fault codes a run may show: soapgate's and the declared faults of
/// the manifest's expectations.
fn fault_codes(ops: &[crate::real_clients::ExampleOp]) -> BTreeSet<String> {
    let mut codes: BTreeSet<String> = ["INVALID_REQUEST", "MODEL_THROTTLED"]
        .into_iter()
        .map(String::from)
        .collect();
    for op in ops {
        if let Expect::Fault(code) | Expect::Declared(code) = &op.expect {
            codes.insert(code.clone());
        }
    }
    codes
}

fn table(reports: &[StackReport]) -> String {
    let mut rows: Vec<[String; 7]> = vec![[
        "stack".into(),
        "version".into(),
        "SOAP".into(),
        "operations passed".into(),
        "faults seen (as the stack's fault type)".into(),
        "async polled to DONE".into(),
        "time".into(),
    ]];
    let mut notes = Vec::new();
    for r in reports {
        let name = r.stack.name().to_string();
        if let Some(missing) = &r.missing {
            rows.push([
                name,
                "-".into(),
                "-".into(),
                format!("not run: {missing} missing"),
                String::new(),
                String::new(),
                String::new(),
            ]);
            continue;
        }
        let time = format!("{:.0} s", r.elapsed.as_secs_f64());
        for (i, (v, row)) in r.rows.iter().enumerate() {
            let time = if i == 0 { time.clone() } else { String::new() };
            if let (true, Some(why)) = (*v == "1.2", r.stack.no_soap12()) {
                rows.push([
                    name.clone(),
                    r.version.clone(),
                    (*v).into(),
                    format!("- ({} bound; not spoken, see note)", row.ops.len()),
                    String::new(),
                    String::new(),
                    time,
                ]);
                notes.push(format!("{name}: {why}"));
                continue;
            }
            let mut passed = format!("{}/{}", row.passed.len(), row.ops.len());
            if !row.limited.is_empty() {
                let names: Vec<String> = row
                    .limited
                    .iter()
                    .map(|(s, o)| format!("{s}.{o}"))
                    .collect();
                passed.push_str(&format!(
                    " ({} refused as expected: {}, see note)",
                    row.limited.len(),
                    names.join(", ")
                ));
            }
            let polled = match (row.polled, row.polled_binary) {
                (0, 0) => "-".to_string(),
                (n, 0) => format!("{n} in-process"),
                (n, b) => format!("{n} in-process, {b} via the binary"),
            };
            rows.push([
                name.clone(),
                r.version.clone(),
                (*v).into(),
                passed,
                row.faults.iter().cloned().collect::<Vec<_>>().join(", "),
                polled,
                time,
            ]);
        }
        for why in &r.limits {
            notes.push(format!("{name}: {why}"));
        }
    }
    let mut out = String::from("=== client matrix\n");
    for (i, row) in rows.iter().enumerate() {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
        if i == 0 {
            out.push_str(&format!("|{}\n", "---|".repeat(row.len())));
        }
    }
    for n in notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out
}
