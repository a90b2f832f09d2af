//! The example contracts as the client programs see them: every
//! operation of every contract in `wsdl/`, with its mapping in `mappings/`
//! and its sample request (`examples/{Service}/{Operation}.xml`), what the
//! sample must get — a response, an accepted one-way call, a ticket polled
//! until DONE (`Get{Operation}Result`, declared only by the published WSDL),
//! or a fault — and rules on the response's fields derived here from its
//! schema (required fields, types, enumerations, patterns, ranges, lengths;
//! text outputs non-empty), never fixed values. The manifest and rules
//! files the client programs read are written from them.
//!
//! A [`Fixture`] is the facade serving them in process, its model the
//! Bedrock emulator, its job store in-memory SQLite run by soapgate's own
//! `WorkerPool`, beside a second facade whose emulator throttles one model
//! (MODEL_THROTTLED for the operations that only call it). [`Verdict`]
//! judges a client program's run: its exit status and the checks its
//! output reports as passed (`read` lines resolved by `reads.rs`). The
//! stacks and the matrix that drives them are in `stacks.rs` and
//! `matrix.rs`.

use crate::common::app as support;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use soapgate::bedrock::BedrockSettings;
use soapgate::contract::Style;
use soapgate::emulator::Script;
use soapgate::mapping::json_schema;
use soapgate::soap::{FaultCode, SoapVersion};
use soapgate::xml::QName;
use support::{EmulatedModel, TestApp, repo_root};

use crate::matrix::Judged;
use crate::reads;
use crate::stacks::Stack;

/// Deadline for one client run against one service.
pub(crate) const CLIENT_TIMEOUT: Duration = Duration::from_secs(180);

/// What a client must see for an operation's sample request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expect {
    /// A response whose fields pass the operation's rules.
    Response,
    /// A one-way operation accepted without a fault.
    Accepted,
    /// An async operation: a ticket, then `Get{Op}Result` polled until DONE,
    /// whose response passes the operation's rules.
    Ticket,
    /// A fault carrying this soapgate code.
    Fault(String),
    /// The declared fault of this name (`wsdl:fault`): the stack's own
    /// fault type for it, its detail element read and passing the fault's
    /// rules.
    Declared(String),
}

impl Expect {
    fn manifest_word(&self, op: &ExampleOp) -> String {
        match self {
            Expect::Response => "response".into(),
            Expect::Accepted => "accepted".into(),
            Expect::Ticket => "ticket".into(),
            Expect::Fault(code) => code.clone(),
            // declared:NAME:CODE:LOCAL:NS (the namespace last: it holds
            // colons).
            Expect::Declared(name) => {
                let d = op
                    .declared
                    .as_ref()
                    .filter(|d| &d.name == name)
                    .unwrap_or_else(|| panic!("{}: no declared fault {name}", op.operation));
                format!(
                    "declared:{name}:{}:{}:{}",
                    d.code, d.element.local, d.element.ns
                )
            }
        }
    }
}

/// The declared fault a mapping lets the model answer for an operation (its
/// first), as the client programs check it.
#[derive(Debug, Clone)]
pub(crate) struct Declared {
    /// The `wsdl:fault` name.
    pub(crate) name: String,
    /// `Client` or `Server` (SOAP 1.1's names; Sender and Receiver in 1.2).
    pub(crate) code: &'static str,
    /// The detail element.
    pub(crate) element: QName,
    /// Rules on the detail element's content.
    pub(crate) rules: Vec<Rule>,
}

/// One operation of an example service, as the client programs need it.
#[derive(Debug, Clone)]
pub(crate) struct ExampleOp {
    pub(crate) service: String,
    pub(crate) operation: String,
    pub(crate) style: &'static str,
    pub(crate) versions: Vec<&'static str>,
    pub(crate) one_way: bool,
    pub(crate) sample: PathBuf,
    pub(crate) expect: Expect,
    /// Field rules for the response (empty for one-way operations).
    pub(crate) rules: Vec<Rule>,
    /// Every target model of the operation's mapping.
    pub(crate) models: Vec<String>,
    /// The mapping's failure policy is `fault`: a failing model is a fault
    /// (a static or cached fallback would answer instead, degraded).
    pub(crate) faults_on_failure: bool,
    /// Why the stack under test cannot write this sample request (its
    /// expectation is then the facade's INVALID_REQUEST); see
    /// `Stack::limit`.
    pub(crate) limited: Option<&'static str>,
    /// The declared fault the model may answer instead, if any.
    pub(crate) declared: Option<Declared>,
}

/// One check on the values a client reads at `path` (names of the response
/// payload root's children, then their children, `/`-separated; lists are
/// flattened at every step).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rule {
    pub(crate) path: String,
    pub(crate) kind: &'static str,
    pub(crate) arg: String,
}

/// The contracts the clients are run against: `wsdl/`, `mappings/` and
/// `examples/`, or the folders named by `SOAPGATE_CLIENTS_WSDL_DIR`,
/// `SOAPGATE_CLIENTS_MAPPINGS_DIR` / `SOAPGATE_CLIENTS_EXAMPLES_DIR` (to
/// try the clients on other contracts).
pub(crate) fn contract_dirs() -> (PathBuf, PathBuf, PathBuf) {
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
                // A multi-step operation has no tool of its own either, but
                // its response is assembled from its steps, not model text.
                let text_output = plan.tool().is_none() && plan.workflow().is_none();
                derive_rules(&schema, &schema, "", true, text_output, &mut rules);
            }
            let declared = plan.faults().into_iter().next().map(|f| {
                let schema = json_schema::for_element(&contract.schemas, &f.element);
                let mut rules = Vec::new();
                derive_rules(&schema, &schema, "", true, false, &mut rules);
                Declared {
                    name: f.name,
                    code: if f.code == FaultCode::Server {
                        "Server"
                    } else {
                        "Client"
                    },
                    element: f.element,
                    rules,
                }
            });
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
                limited: None,
                declared,
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
/// must get: `response`, `accepted`, `ticket`, a soapgate fault code, or
/// `declared:NAME:CODE:LOCAL:NS` — the declared fault NAME, SOAP code
/// `Client` or `Server` (Sender or Receiver in 1.2), its detail element
/// `{NS}LOCAL`, whose content the client prints on a `read` line. Beside it,
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
            op.expect.manifest_word(op),
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

pub(crate) fn services(ops: &[ExampleOp]) -> Vec<String> {
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

/// A facade whose emulator follows a script, and the operations that must
/// then answer otherwise: MODEL_THROTTLED when it throttles one model (for
/// the operations whose every target is that model), or a declared fault
/// when the model calls that fault's tool.
#[derive(Debug)]
pub(crate) struct Scripted {
    pub(crate) app: TestApp,
    pub(crate) ops: Vec<ExampleOp>,
    pub(crate) manifest: PathBuf,
}

/// Everything a client test needs: the running app, its example
/// operations and the manifest describing them, the throttled run, and the
/// run whose model answers a declared fault (when a mapping lets it).
#[derive(Debug)]
pub(crate) struct Fixture {
    pub(crate) app: TestApp,
    pub(crate) ops: Vec<ExampleOp>,
    pub(crate) manifest: PathBuf,
    pub(crate) throttled: Scripted,
    pub(crate) declaring: Option<Scripted>,
    pub(crate) tmp: tempfile::TempDir,
}

impl Fixture {
    /// The fixture for one stack: what it cannot write (`Stack::limit`)
    /// must get the facade's INVALID_REQUEST instead.
    pub(crate) fn start_for(stack: Stack) -> Fixture {
        let mut fx = Fixture::start();
        let limit = |ops: &mut Vec<ExampleOp>| {
            for op in ops.iter_mut() {
                if let Some(why) = stack.limit(op) {
                    op.limited = Some(why);
                    op.expect = Expect::Fault("INVALID_REQUEST".into());
                }
            }
        };
        limit(&mut fx.ops);
        limit(&mut fx.throttled.ops);
        if let Some(d) = fx.declaring.as_mut() {
            limit(&mut d.ops);
        }
        if fx.ops.iter().any(|o| o.limited.is_some()) {
            fx.manifest = write_manifest(&fx.ops, fx.tmp.path());
            fx.throttled.manifest =
                write_manifest(&fx.throttled.ops, &fx.tmp.path().join("throttled"));
            if let Some(d) = fx.declaring.as_mut() {
                d.manifest = write_manifest(&d.ops, &fx.tmp.path().join("declaring"));
            }
        }
        fx
    }

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
                ..EmulatedModel::default()
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
        let declaring = Fixture::declaring(&ops, &wsdl, &mappings, tmp.path());
        Fixture {
            app,
            ops,
            manifest,
            throttled: Scripted {
                app: throttled_app,
                ops: throttled_ops,
                manifest: throttled_manifest,
            },
            declaring,
            tmp,
        }
    }

    /// A facade whose model calls the tool of the first declared fault a
    /// mapping offers, and the operations that offer it: each must answer
    /// that fault. `None` when no mapping offers one.
    fn declaring(ops: &[ExampleOp], wsdl: &Path, mappings: &Path, dir: &Path) -> Option<Scripted> {
        let name = ops
            .iter()
            .filter(|o| o.expect == Expect::Response)
            .find_map(|o| o.declared.as_ref())?
            .name
            .clone();
        let script = format!(
            "rules:\n  - name: declared\n    tool_name: {}\n",
            serde_json::Value::String(name.clone())
        );
        let script = Script::parse(&script, "declared-fault script")
            .unwrap_or_else(|e| panic!("the declared-fault script does not parse: {e}"));
        let app = TestApp::start_mapped(
            wsdl,
            mappings,
            EmulatedModel {
                script: Some(script),
                ..EmulatedModel::default()
            },
        );
        let ops: Vec<ExampleOp> = ops
            .iter()
            .filter(|o| {
                o.expect == Expect::Response && o.declared.as_ref().is_some_and(|d| d.name == name)
            })
            .map(|o| ExampleOp {
                expect: Expect::Declared(name.clone()),
                ..o.clone()
            })
            .collect();
        let manifest = write_manifest(&ops, &dir.join("declaring"));
        Some(Scripted { app, ops, manifest })
    }
}

/// Collects client runs and what was wrong with them, and panics with all
/// of it at the end.
#[derive(Debug, Default)]
pub(crate) struct Verdict {
    pub(crate) problems: Vec<String>,
}

impl Verdict {
    pub(crate) fn fail(&mut self, what: impl Into<String>) {
        self.problems.push(what.into());
    }

    /// Judge one run of a client program against one service: it must exit
    /// 0 with no failed check, and its output (its `read` lines checked
    /// against the rules) must show each operation's sample request passed
    /// for each SOAP version bound that the stack speaks — a response with
    /// every rule checked, an accepted one-way call, a ticket polled to
    /// DONE, or the expected fault.
    pub(crate) fn judge_run(
        &mut self,
        client: &str,
        service: &str,
        out: &support::RunOutput,
        ops: &[ExampleOp],
        stack: Stack,
    ) -> Judged {
        let stdout = reads::resolve(&out.stdout, ops);
        println!("=== {client} / {service}\n{}", stdout.trim_end());
        let mut judged = Judged {
            stdout,
            passed: BTreeSet::new(),
        };
        let failed_checks: Vec<&str> = judged
            .stdout
            .lines()
            .filter(|l| l.starts_with("FAIL"))
            .collect();
        if !out.success() || !failed_checks.is_empty() {
            self.fail(format!(
                "{client} failed for {service}:\n{}\n{out}",
                failed_checks.join("\n")
            ));
            return judged;
        }
        let mut missing = Vec::new();
        for op in ops.iter().filter(|o| o.service == service) {
            for v in &op.versions {
                if *v == "1.2" && stack.no_soap12().is_some() {
                    continue;
                }
                let needle = format!("SOAP {v}] {}: sample request", op.operation);
                let proof = match &op.expect {
                    Expect::Response => format!("{} rule(s) checked", op.rules.len()),
                    Expect::Ticket => {
                        format!("ticket polled to DONE, {} rule(s) checked", op.rules.len())
                    }
                    Expect::Accepted => "accepted".to_string(),
                    Expect::Fault(code) => code.clone(),
                    Expect::Declared(name) => format!("declared fault {name} as"),
                };
                let seen = judged
                    .stdout
                    .lines()
                    .any(|l| l.starts_with("ok") && l.contains(&needle) && l.contains(&proof));
                if seen {
                    judged.passed.insert((
                        op.service.clone(),
                        op.operation.clone(),
                        (*v).to_string(),
                    ));
                } else {
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
        judged
    }

    /// Count the invalid-request checks a client passed; at least one per
    /// service is required.
    pub(crate) fn judge_invalid(&mut self, client: &str, service: &str, stdout: &str) {
        let passed = stdout
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
    pub(crate) fn judge_model_calls(&mut self, client: &str, fx: &Fixture) {
        if fx.app.model_calls() == 0 {
            self.fail(format!("{client}: the emulator saw no model call"));
        }
        if !fx.throttled.ops.is_empty() && fx.throttled.app.model_calls() == 0 {
            self.fail(format!(
                "{client}: the throttling emulator saw no model call"
            ));
        }
    }
}

/// The async example operations with their rules, and a manifest of them.
pub(crate) fn async_ops_manifest(dir: &Path) -> (Vec<ExampleOp>, PathBuf) {
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
