//! Real SOAP clients written by others — zeep (Python), PHP's SoapClient and
//! JAX-WS RI's wsimport (Java) — against the facade serving every example
//! contract in `wsdl/` with the mappings in `mappings/`, its model being the
//! in-process Bedrock emulator. Each client loads `GET /soap/{Service}?wsdl`
//! (and the `?xsd=` imports it points to), calls every operation with its
//! sample request (`examples/{Service}/{Operation}.xml`) through its own
//! typed call path, over SOAP 1.1 and over 1.2 where the contract binds it,
//! and reads the response through its own object model (zeep objects, PHP
//! stdClass, JAXB beans). The fields it reads are checked against rules
//! derived here from the response schema (required fields, types,
//! enumerations, patterns, ranges, lengths; text outputs non-empty), never
//! against fixed values. One-way operations must be accepted without a
//! fault. Async operations must answer a ticket, and the client then calls
//! `Get{Operation}Result` (declared only by the published WSDL) until DONE
//! and checks the original response's rules on the result; the facade's job
//! store is in-memory SQLite, its jobs run by soapgate's own `WorkerPool`.
//! zeep and JAX-WS do the same once more against the real binary,
//! `soapgate serve --emulator`, with its workers and embedded SQLite. Each client also sends schema-invalid requests (INVALID_REQUEST
//! fault), and runs once more against a facade whose emulator throttles one
//! model (MODEL_THROTTLED fault for the operations that only call it).
//!
//! The client programs live in `tests/clients/`; this file starts the
//! facades, writes the manifest and the field rules they read, runs them
//! with a deadline and judges their exit status and output. A missing
//! client fails the test under `SOAPGATE_REQUIRE_PEERS=1` (set by
//! `.ci/run`) and is skipped with a message otherwise.

use crate::common::app as support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use soapgate::bedrock::BedrockSettings;
use soapgate::contract::Style;
use soapgate::emulator::Script;
use soapgate::mapping::json_schema;
use soapgate::soap::SoapVersion;
use support::{
    EmulatedModel, ServeProcess, TestApp, command_works, peer_missing, repo_root, run_with_timeout,
};

/// Deadline for one client run against one service.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(180);
/// Deadline for compiling every wsimport-generated source at once.
const JAVAC_TIMEOUT: Duration = Duration::from_secs(300);

/// What a client must see for an operation's sample request.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    /// A response whose fields pass the operation's rules.
    Response,
    /// A one-way operation accepted without a fault.
    Accepted,
    /// An async operation: a ticket, then `Get{Op}Result` polled until DONE,
    /// whose response passes the operation's rules.
    Ticket,
    /// A fault carrying this soapgate code.
    Fault(String),
}

impl Expect {
    fn manifest_word(&self) -> &str {
        match self {
            Expect::Response => "response",
            Expect::Accepted => "accepted",
            Expect::Ticket => "ticket",
            Expect::Fault(code) => code,
        }
    }
}

/// One operation of an example service, as the client programs need it.
#[derive(Debug, Clone)]
struct ExampleOp {
    service: String,
    operation: String,
    style: &'static str,
    versions: Vec<&'static str>,
    one_way: bool,
    sample: PathBuf,
    expect: Expect,
    /// Field rules for the response (empty for one-way operations).
    rules: Vec<Rule>,
    /// Every target model of the operation's mapping.
    models: Vec<String>,
    /// The mapping's failure policy is `fault`: a failing model is a fault
    /// (a static or cached fallback would answer instead, degraded).
    faults_on_failure: bool,
}

/// One check on the values a client reads at `path` (names of the response
/// payload root's children, then their children, `/`-separated; lists are
/// flattened at every step).
#[derive(Debug, Clone, PartialEq)]
struct Rule {
    path: String,
    kind: &'static str,
    arg: String,
}

/// The contracts the clients are run against: `wsdl/`, `mappings/` and
/// `examples/`, or the folders named by `SOAPGATE_CLIENTS_WSDL_DIR`,
/// `SOAPGATE_CLIENTS_MAPPINGS_DIR` / `SOAPGATE_CLIENTS_EXAMPLES_DIR` (to
/// try the clients on other contracts).
fn contract_dirs() -> (PathBuf, PathBuf, PathBuf) {
    let root = repo_root();
    let pick = |var: &str, default: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join(default))
    };
    (
        pick("SOAPGATE_CLIENTS_WSDL_DIR", "wsdl"),
        pick("SOAPGATE_CLIENTS_MAPPINGS_DIR", "mappings"),
        pick("SOAPGATE_CLIENTS_EXAMPLES_DIR", "examples"),
    )
}

/// Every operation of every service the app serves, each with its sample
/// request and response rules. Panics when there is no service, or an
/// operation has no sample or no mapping: the clients would then prove
/// nothing about it.
fn example_ops(app: &TestApp, examples: &Path) -> Vec<ExampleOp> {
    let mut ops = Vec::new();
    let mut missing = Vec::new();
    let snapshot = app.state.live.snapshot();
    for (contract, service) in snapshot.contracts.services() {
        // A poll operation is exercised with the tickets of its async one.
        for op in service.operations.iter().filter(|o| o.result_of.is_none()) {
            let sample = examples
                .join(&service.name)
                .join(format!("{}.xml", op.name));
            if !sample.is_file() {
                missing.push(format!("no sample request {}", sample.display()));
            }
            let Some(plan) = snapshot.mappings.plan(&service.name, &op.name) else {
                missing.push(format!("no mapping for {}.{}", service.name, op.name));
                continue;
            };
            let mut versions: Vec<&'static str> = op
                .bindings
                .iter()
                .map(|b| match b.version {
                    SoapVersion::V11 => "1.1",
                    SoapVersion::V12 => "1.2",
                })
                .collect();
            versions.sort_unstable();
            versions.dedup();
            let mut rules = Vec::new();
            // An async operation's rules are those of its original response,
            // which the poll returns when DONE.
            if let Some(output) = op.result_payload() {
                let schema =
                    json_schema::for_payload(&contract.schemas, output).unwrap_or_else(|| {
                        panic!(
                            "{}.{}: no JSON Schema for the response",
                            service.name, op.name
                        )
                    });
                let text_output = plan.tool().is_none();
                derive_rules(&schema, &schema, "", true, text_output, &mut rules);
            }
            ops.push(ExampleOp {
                service: service.name.clone(),
                operation: op.name.clone(),
                style: match op.style {
                    Style::Document => "document",
                    Style::Rpc => "rpc",
                },
                versions,
                one_way: op.is_one_way(),
                sample,
                expect: if op.is_one_way() {
                    Expect::Accepted
                } else if op.is_ticketed() {
                    Expect::Ticket
                } else {
                    Expect::Response
                },
                rules,
                models: plan.targets().iter().map(|t| t.model.clone()).collect(),
                faults_on_failure: matches!(
                    plan.on_failure(),
                    soapgate::mapping::FailurePolicy::Fault
                ),
            });
        }
    }
    assert!(
        !ops.is_empty(),
        "no example service is served: the WSDL folder has no operations"
    );
    assert!(missing.is_empty(), "{}", missing.join("\n"));
    ops
}

/// Walk a response's JSON Schema (as the mapping derives it from the XSD)
/// and collect the rules a client can check on the values it reads.
/// `required` says whether every step down to `path` must be present;
/// `text_output` adds `nonempty` to the required strings of a text-output
/// operation (the model's text, and what `fill` puts beside it).
fn derive_rules(
    root: &Value,
    schema: &Value,
    path: &str,
    required: bool,
    text_output: bool,
    out: &mut Vec<Rule>,
) {
    let mut push = |kind: &'static str, arg: String| {
        out.push(Rule {
            path: path.to_string(),
            kind,
            arg,
        })
    };
    if let Some(r) = schema["$ref"].as_str() {
        let target = r
            .strip_prefix("#/")
            .map(|p| p.split('/').fold(root, |v, step| &v[step]))
            .unwrap_or(&Value::Null);
        derive_rules(root, target, path, required, text_output, out);
        return;
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let mut types: Vec<&str> = types.into_iter().filter(|t| *t != "null").collect();
    // An enumeration (or fixed value) may come without a `type`: its
    // values say which.
    let fixed = schema["enum"]
        .as_array()
        .cloned()
        .or_else(|| schema.get("const").map(|v| vec![v.clone()]));
    let first_fixed = fixed.as_ref().and_then(|v| v.iter().find(|v| !v.is_null()));
    if let (true, Some(first)) = (types.is_empty(), first_fixed) {
        types.push(match first {
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "number",
            _ => "string",
        });
    }

    if !path.is_empty() && required {
        push("required", String::new());
    }
    match types.as_slice() {
        ["object"] => {
            if let Some(props) = schema["properties"].as_object() {
                let names: Vec<Value> = props.keys().cloned().map(Value::String).collect();
                push("children", join_values(&names));
            }
            let needed: Vec<&str> = schema["required"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if let Some(props) = schema["properties"].as_object() {
                for (name, sub) in props {
                    let child = if path.is_empty() {
                        name.clone()
                    } else {
                        format!("{path}/{name}")
                    };
                    let req = required && needed.contains(&name.as_str());
                    derive_rules(root, sub, &child, req, text_output, out);
                }
            }
            // Choices (`oneOf`) are left out: which branch applies depends
            // on the answer.
        }
        ["array"] => {
            if let Some(max) = schema["maxItems"].as_u64() {
                push("maxItems", max.to_string());
            }
            let items_required = required && schema["minItems"].as_u64().is_some_and(|n| n > 0);
            // The required rule for the list itself is already pushed;
            // its items take the remaining rules at the same path.
            let mut item_rules = Vec::new();
            derive_rules(
                root,
                &schema["items"],
                path,
                items_required,
                text_output,
                &mut item_rules,
            );
            out.extend(item_rules.into_iter().filter(|r| r.kind != "required"));
        }
        [scalar @ ("string" | "number" | "integer" | "boolean")] => {
            push("type", (*scalar).to_string());
            if let Some(values) = &fixed {
                let values: Vec<Value> = values.iter().filter(|v| !v.is_null()).cloned().collect();
                push("enum", join_values(&values));
            }
            if let Some(p) = schema["pattern"].as_str() {
                push("pattern", p.to_string());
            }
            // Lexical forms of the XSD date and time types, as patterns.
            let tz = r"(Z|[+-][0-9]{2}:[0-9]{2})?";
            let format = match schema["format"].as_str() {
                Some("date") => Some(format!(r"^-?[0-9]{{4,}}-[0-9]{{2}}-[0-9]{{2}}{tz}$")),
                Some("date-time") => Some(format!(
                    r"^-?[0-9]{{4,}}-[0-9]{{2}}-[0-9]{{2}}T[0-9]{{2}}:[0-9]{{2}}:[0-9]{{2}}(\.[0-9]+)?{tz}$"
                )),
                Some("time") => Some(format!(
                    r"^[0-9]{{2}}:[0-9]{{2}}:[0-9]{{2}}(\.[0-9]+)?{tz}$"
                )),
                _ => None,
            };
            if let Some(p) = format {
                push("pattern", p);
            }
            for key in [
                "minimum",
                "maximum",
                "exclusiveMinimum",
                "exclusiveMaximum",
                "minLength",
                "maxLength",
            ] {
                if let Some(n) = schema[key].as_number() {
                    push(key, n.to_string());
                }
            }
            if text_output && required && *scalar == "string" {
                push("nonempty", String::new());
            }
        }
        _ => {}
    }
}

fn join_values(values: &[Value]) -> String {
    let words: Vec<String> = values
        .iter()
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    assert!(
        words.iter().all(|w| !w.contains('|') && !w.contains('\t')),
        "an enumeration value holds | or a tab: {words:?}"
    );
    words.join("|")
}

/// Tab-separated, one operation a line: service, operation, style,
/// versions ("1.1,1.2"), one-way (0/1), sample path, and what the sample
/// must get: `response`, `accepted` or a soapgate fault code. Beside it,
/// `rules.tsv`: service, operation, path, rule, argument — `children` (an
/// object's only fields, `|`-separated; the empty path is the payload root,
/// whose fields are the root element's children or the rpc parts, so a
/// client that unwraps a lone child can wrap it back), `required`, `type`
/// (string, number, integer, boolean), `enum` (`|`-separated), `pattern`,
/// `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`,
/// `minLength`, `maxLength`, `maxItems`, `nonempty`. Read by every client
/// program.
fn write_manifest(ops: &[ExampleOp], dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).expect("creating the manifest folder");
    let mut text = String::from("# service\toperation\tstyle\tversions\tone_way\tsample\texpect\n");
    let mut rules = String::from("# service\toperation\tpath\trule\targument\n");
    for op in ops {
        let _ = writeln!(
            text,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            op.service,
            op.operation,
            op.style,
            op.versions.join(","),
            u8::from(op.one_way),
            op.sample.display(),
            op.expect.manifest_word(),
        );
        for r in &op.rules {
            let _ = writeln!(
                rules,
                "{}\t{}\t{}\t{}\t{}",
                op.service, op.operation, r.path, r.kind, r.arg
            );
        }
    }
    std::fs::write(dir.join("rules.tsv"), rules).expect("writing the client rules");
    let path = dir.join("manifest.tsv");
    std::fs::write(&path, text).expect("writing the client manifest");
    path
}

fn services(ops: &[ExampleOp]) -> Vec<String> {
    let mut names: Vec<String> = ops.iter().map(|o| o.service.clone()).collect();
    names.dedup();
    names
}

/// The model whose throttling the second run shows: the one that is the
/// only target of the most request-response operations that answer a
/// failing model with a fault.
fn throttled_model(ops: &[ExampleOp]) -> Option<String> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for op in ops
        .iter()
        .filter(|o| o.expect == Expect::Response && o.faults_on_failure)
    {
        if let [only] = op.models.as_slice() {
            *counts.entry(only.as_str()).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .max_by_key(|&(model, n)| (n, std::cmp::Reverse(model)))
        .map(|(model, _)| model.to_string())
}

/// A facade whose emulator throttles one model, and the operations that
/// must then answer MODEL_THROTTLED (every target of theirs is that model).
#[derive(Debug)]
struct Throttled {
    app: TestApp,
    ops: Vec<ExampleOp>,
    manifest: PathBuf,
}

/// Everything a client test needs: the running app, its example
/// operations and the manifest describing them, and the throttled run.
#[derive(Debug)]
struct Fixture {
    app: TestApp,
    ops: Vec<ExampleOp>,
    manifest: PathBuf,
    throttled: Throttled,
    tmp: tempfile::TempDir,
}

impl Fixture {
    fn start() -> Fixture {
        let (wsdl, mappings, examples) = contract_dirs();
        let app = TestApp::start_mapped(&wsdl, &mappings, EmulatedModel::default());
        let ops = example_ops(&app, &examples);
        let tmp = tempfile::tempdir().expect("creating a temp dir");
        let manifest = write_manifest(&ops, tmp.path());
        let rules = std::fs::read_to_string(tmp.path().join("rules.tsv")).unwrap_or_default();
        println!(
            "=== response rules derived from the contracts\n{}",
            rules.trim_end()
        );

        let model = throttled_model(&ops).expect("no operation calls a single model");
        let script = format!(
            "rules:\n  - name: throttled\n    model: {}\n    error: {{ kind: throttling, message: \"slow down\" }}\n",
            serde_json::Value::String(model.clone())
        );
        let script = Script::parse(&script, "throttling script")
            .unwrap_or_else(|e| panic!("the throttling script does not parse: {e}"));
        let throttled_app = TestApp::start_mapped(
            &wsdl,
            &mappings,
            EmulatedModel {
                script: Some(script),
                // One attempt: the SDK's backoff would only slow the test.
                bedrock: BedrockSettings {
                    max_attempts: 1,
                    ..BedrockSettings::default()
                },
            },
        );
        let throttled_ops: Vec<ExampleOp> = ops
            .iter()
            .filter(|o| {
                o.expect == Expect::Response
                    && o.faults_on_failure
                    && o.models.iter().all(|m| *m == model)
            })
            .map(|o| ExampleOp {
                expect: Expect::Fault("MODEL_THROTTLED".into()),
                ..o.clone()
            })
            .collect();
        let throttled_manifest = write_manifest(&throttled_ops, &tmp.path().join("throttled"));
        Fixture {
            app,
            ops,
            manifest,
            throttled: Throttled {
                app: throttled_app,
                ops: throttled_ops,
                manifest: throttled_manifest,
            },
            tmp,
        }
    }
}

/// Collects client runs and what was wrong with them, and panics with all
/// of it at the end.
#[derive(Debug, Default)]
struct Verdict {
    problems: Vec<String>,
}

impl Verdict {
    fn fail(&mut self, what: impl Into<String>) {
        self.problems.push(what.into());
    }

    /// Judge one run of a client program against one service: it must exit
    /// 0, and its output must show each operation's sample request passed
    /// for each SOAP version bound — a response with every rule checked, an
    /// accepted one-way call, or the expected fault.
    fn judge_run(
        &mut self,
        client: &str,
        service: &str,
        out: &support::RunOutput,
        ops: &[ExampleOp],
    ) {
        println!("=== {client} / {service}\n{}", out.stdout.trim_end());
        if !out.success() {
            self.fail(format!("{client} failed for {service}:\n{out}"));
            return;
        }
        let mut missing = Vec::new();
        for op in ops.iter().filter(|o| o.service == service) {
            for v in &op.versions {
                let needle = format!("SOAP {v}] {}: sample request", op.operation);
                let proof = match &op.expect {
                    Expect::Response => format!("{} rule(s) checked", op.rules.len()),
                    Expect::Ticket => {
                        format!("ticket polled to DONE, {} rule(s) checked", op.rules.len())
                    }
                    Expect::Accepted => "accepted".to_string(),
                    Expect::Fault(code) => code.clone(),
                };
                let seen = out
                    .stdout
                    .lines()
                    .any(|l| l.starts_with("ok") && l.contains(&needle) && l.contains(&proof));
                if !seen {
                    missing.push(format!("{needle} ({proof})"));
                }
            }
        }
        if !missing.is_empty() {
            self.fail(format!(
                "{client} exited 0 for {service} but did not report these checks as passed: {}\n{out}",
                missing.join(", ")
            ));
        }
    }

    /// Count the invalid-request checks a client passed; at least one per
    /// service is required.
    fn judge_invalid(&mut self, client: &str, service: &str, out: &support::RunOutput) {
        let passed = out
            .stdout
            .lines()
            .filter(|l| {
                l.starts_with("ok")
                    && l.contains(": invalid request")
                    && l.contains("INVALID_REQUEST")
            })
            .count();
        if passed == 0 {
            self.fail(format!(
                "{client} passed no invalid-request check (INVALID_REQUEST fault) for {service}"
            ));
        }
    }

    /// The main app's model must really have been called.
    fn judge_model_calls(&mut self, client: &str, fx: &Fixture) {
        if fx.app.model_calls() == 0 {
            self.fail(format!("{client}: the emulator saw no model call"));
        }
        if !fx.throttled.ops.is_empty() && fx.throttled.app.model_calls() == 0 {
            self.fail(format!(
                "{client}: the throttling emulator saw no model call"
            ));
        }
    }

    fn finish(self, client: &str) {
        assert!(
            self.problems.is_empty(),
            "{client}: {} problem(s):\n\n{}",
            self.problems.len(),
            self.problems.join("\n\n")
        );
    }
}

/// Run a script-style client (zeep, PHP) for every service, then for the
/// services with throttled operations against the throttling facade.
fn run_script_client(test: &str, program: &str, script: &Path) {
    let fx = Fixture::start();
    let mut verdict = Verdict::default();
    for service in services(&fx.ops) {
        let out = run_with_timeout(
            Command::new(program)
                .arg(script)
                .arg(&fx.app.base_url)
                .arg(&fx.manifest)
                .arg(&service),
            CLIENT_TIMEOUT,
        );
        verdict.judge_run(test, &service, &out, &fx.ops);
        if out.success() {
            verdict.judge_invalid(test, &service, &out);
        }
    }
    let throttled = &fx.throttled;
    for service in services(&throttled.ops) {
        let out = run_with_timeout(
            Command::new(program)
                .arg(script)
                .arg(&throttled.app.base_url)
                .arg(&throttled.manifest)
                .arg(&service),
            CLIENT_TIMEOUT,
        );
        verdict.judge_run(
            &format!("{test} (throttled)"),
            &service,
            &out,
            &throttled.ops,
        );
    }
    verdict.judge_model_calls(test, &fx);
    verdict.finish(test);
}

#[test]
fn zeep_calls_every_example_operation_and_reads_the_response() {
    const TEST: &str = "zeep";
    if !command_works("python3", &["-c", "import zeep, lxml"]) {
        peer_missing(TEST, "python3 with zeep (pip install zeep)");
        return;
    }
    run_script_client(
        TEST,
        "python3",
        &repo_root().join("tests/clients/zeep_client.py"),
    );
}

#[test]
fn php_soapclient_calls_every_example_operation_and_reads_the_response() {
    const TEST: &str = "php";
    let probe = r#"exit(class_exists("SoapClient") && class_exists("DOMDocument") ? 0 : 1);"#;
    if !command_works("php", &["-r", probe]) {
        peer_missing(
            TEST,
            "php with the soap and dom extensions (php-cli php-soap php-xml)",
        );
        return;
    }
    run_script_client(
        TEST,
        "php",
        &repo_root().join("tests/clients/php_client.php"),
    );
}

/// The JAX-WS RI runtime classpath: `SOAPGATE_JAXWS_CLASSPATH`, or the
/// Debian jars (jaxws-rt.jar names its own dependencies in its manifest;
/// javax.activation is needed beside it on Java 11+).
fn jaxws_classpath() -> Option<String> {
    if let Ok(cp) = std::env::var("SOAPGATE_JAXWS_CLASSPATH") {
        return Some(cp);
    }
    let rt = Path::new("/usr/share/java/jaxws-rt.jar");
    if !rt.is_file() {
        return None;
    }
    let mut cp = vec![rt.display().to_string()];
    let activation = Path::new("/usr/share/java/javax.activation.jar");
    if activation.is_file() {
        cp.push(activation.display().to_string());
    }
    Some(cp.join(":"))
}

#[test]
fn jaxws_wsimport_calls_every_example_operation_and_reads_the_response() {
    const TEST: &str = "jax-ws";
    let tools = ["wsimport", "javac", "java"];
    if let Some(tool) = tools.iter().find(|t| !command_works(t, &["-version"])) {
        peer_missing(
            TEST,
            &format!("{tool} (apt-get install jaxws libjaxws-java default-jdk)"),
        );
        return;
    }
    let Some(classpath) = jaxws_classpath() else {
        peer_missing(
            TEST,
            "/usr/share/java/jaxws-rt.jar (apt-get install libjaxws-java)",
        );
        return;
    };
    let fx = Fixture::start();
    let gen_dir = fx.tmp.path().join("gen");
    let classes = fx.tmp.path().join("classes");
    for dir in [&gen_dir, &classes] {
        std::fs::create_dir_all(dir).expect("creating the Java build folders");
    }
    let mut verdict = Verdict::default();

    // wsimport every service into a package of its own.
    let mut imported = Vec::new();
    for (i, service) in services(&fx.ops).into_iter().enumerate() {
        let package = format!("soapgate.clients.gen.s{i}");
        let out = run_with_timeout(
            Command::new("wsimport")
                .args(["-keep", "-Xnocompile", "-extension", "-d"])
                .arg(&gen_dir)
                .arg("-p")
                .arg(&package)
                .arg(fx.app.wsdl_url(&service)),
            CLIENT_TIMEOUT,
        );
        println!("=== wsimport / {service}\n{}", out.stdout.trim_end());
        let errors = out.stdout.contains("[ERROR]") || out.stderr.contains("[ERROR]");
        if !out.success() || errors {
            verdict.fail(format!("wsimport failed for {service}:\n{out}"));
        } else {
            imported.push((service, package));
        }
    }

    // Compile the generated sources and the client in one javac run.
    let mut sources = vec![repo_root().join("tests/clients/java/SoapgateJaxwsClient.java")];
    collect_java_sources(&gen_dir, &mut sources);
    let out = run_with_timeout(
        Command::new("javac")
            .args(["-nowarn", "-encoding", "UTF-8", "-cp", &classpath, "-d"])
            .arg(&classes)
            .args(&sources),
        JAVAC_TIMEOUT,
    );
    if !out.success() {
        verdict.fail(format!("javac failed:\n{out}"));
        verdict.finish(TEST);
        return;
    }

    let run_cp = format!("{}:{classpath}", classes.display());
    for (service, package) in imported {
        let out = run_with_timeout(
            Command::new("java")
                .args(["-cp", &run_cp, "SoapgateJaxwsClient"])
                .arg(&fx.app.base_url)
                .arg(&fx.manifest)
                .arg(&service)
                .arg(&package)
                .arg(&classes),
            CLIENT_TIMEOUT,
        );
        verdict.judge_run(TEST, &service, &out, &fx.ops);
        if out.success() {
            verdict.judge_invalid(TEST, &service, &out);
        }
        let throttled = &fx.throttled;
        if throttled.ops.iter().any(|o| o.service == service) {
            let out = run_with_timeout(
                Command::new("java")
                    .args(["-cp", &run_cp, "SoapgateJaxwsClient"])
                    .arg(&throttled.app.base_url)
                    .arg(&throttled.manifest)
                    .arg(&service)
                    .arg(&package)
                    .arg(&classes),
                CLIENT_TIMEOUT,
            );
            verdict.judge_run(
                &format!("{TEST} (throttled)"),
                &service,
                &out,
                &throttled.ops,
            );
        }
    }
    verdict.judge_model_calls(TEST, &fx);
    verdict.finish(TEST);
}

fn collect_java_sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_java_sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "java") {
            out.push(path);
        }
    }
}

/// The async example operations with their rules, and a manifest of them.
fn async_ops_manifest(dir: &Path) -> (Vec<ExampleOp>, PathBuf) {
    let (wsdl, mappings, examples) = contract_dirs();
    // In-process, only to derive the operations and rules from the contract.
    let app = TestApp::start_mapped(&wsdl, &mappings, EmulatedModel::default());
    let ops: Vec<ExampleOp> = example_ops(&app, &examples)
        .into_iter()
        .filter(|o| o.expect == Expect::Ticket)
        .collect();
    assert!(!ops.is_empty(), "no example operation is mode: async");
    let manifest = write_manifest(&ops, dir);
    (ops, manifest)
}

/// The real binary on the example contracts, working in `dir` (its SQLite
/// file goes to `dir/data/`).
fn binary(dir: &Path) -> ServeProcess {
    let (wsdl, mappings, _) = contract_dirs();
    ServeProcess::start(&wsdl, &mappings, dir)
}

#[test]
fn zeep_polls_async_operations_to_done_through_the_binary() {
    const TEST: &str = "zeep (binary)";
    if !command_works("python3", &["-c", "import zeep, lxml"]) {
        peer_missing(TEST, "python3 with zeep (pip install zeep)");
        return;
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    let (ops, manifest) = async_ops_manifest(&tmp.path().join("manifest"));
    let server = binary(tmp.path());
    let mut verdict = Verdict::default();
    for service in services(&ops) {
        let out = run_with_timeout(
            Command::new("python3")
                .arg(repo_root().join("tests/clients/zeep_client.py"))
                .arg(&server.base_url)
                .arg(&manifest)
                .arg(&service),
            CLIENT_TIMEOUT,
        );
        verdict.judge_run(TEST, &service, &out, &ops);
    }
    if !verdict.problems.is_empty() {
        verdict.fail(format!("server log:\n{}", server.log()));
    }
    verdict.finish(TEST);
}

#[test]
fn jaxws_polls_async_operations_to_done_through_the_binary() {
    const TEST: &str = "jax-ws (binary)";
    let tools = ["wsimport", "javac", "java"];
    if let Some(tool) = tools.iter().find(|t| !command_works(t, &["-version"])) {
        peer_missing(
            TEST,
            &format!("{tool} (apt-get install jaxws libjaxws-java default-jdk)"),
        );
        return;
    }
    let Some(classpath) = jaxws_classpath() else {
        peer_missing(
            TEST,
            "/usr/share/java/jaxws-rt.jar (apt-get install libjaxws-java)",
        );
        return;
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let (ops, manifest) = async_ops_manifest(&tmp.path().join("manifest"));
    let server = binary(tmp.path());
    let gen_dir = tmp.path().join("gen");
    let classes = tmp.path().join("classes");
    for dir in [&gen_dir, &classes] {
        std::fs::create_dir_all(dir).expect("creating the Java build folders");
    }
    let mut verdict = Verdict::default();
    let mut imported = Vec::new();
    for (i, service) in services(&ops).into_iter().enumerate() {
        let package = format!("soapgate.clients.gen.a{i}");
        let out = run_with_timeout(
            Command::new("wsimport")
                .args(["-keep", "-Xnocompile", "-extension", "-d"])
                .arg(&gen_dir)
                .arg("-p")
                .arg(&package)
                .arg(server.wsdl_url(&service)),
            CLIENT_TIMEOUT,
        );
        let errors = out.stdout.contains("[ERROR]") || out.stderr.contains("[ERROR]");
        if !out.success() || errors {
            verdict.fail(format!("wsimport failed for {service}:\n{out}"));
        } else {
            imported.push((service, package));
        }
    }
    let mut sources = vec![repo_root().join("tests/clients/java/SoapgateJaxwsClient.java")];
    collect_java_sources(&gen_dir, &mut sources);
    let out = run_with_timeout(
        Command::new("javac")
            .args(["-nowarn", "-encoding", "UTF-8", "-cp", &classpath, "-d"])
            .arg(&classes)
            .args(&sources),
        JAVAC_TIMEOUT,
    );
    if !out.success() {
        verdict.fail(format!("javac failed:\n{out}"));
        verdict.finish(TEST);
        return;
    }
    let run_cp = format!("{}:{classpath}", classes.display());
    for (service, package) in imported {
        let out = run_with_timeout(
            Command::new("java")
                .args(["-cp", &run_cp, "SoapgateJaxwsClient"])
                .arg(&server.base_url)
                .arg(&manifest)
                .arg(&service)
                .arg(&package)
                .arg(&classes),
            CLIENT_TIMEOUT,
        );
        verdict.judge_run(TEST, &service, &out, &ops);
    }
    if !verdict.problems.is_empty() {
        verdict.fail(format!("server log:\n{}", server.log()));
    }
    verdict.finish(TEST);
}
