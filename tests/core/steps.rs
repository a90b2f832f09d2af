//! Multi-step operations (`steps:`): golden files of the DocumentIntake
//! fixture (`tests/data/steps/`: the WSDL and mapping, copied from the
//! example so that the goldens do not drift with it), each step's Converse
//! request rendered with the variables the executor gives it and the
//! response assembled from fixed step results; properties of the step
//! graph's topological order, on `topological` itself and through
//! generated mappings; and load errors with exact `file:line:col`.
//!
//! Set `UPDATE_GOLDEN=1` to rewrite the golden files (a reviewed change).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use soapgate::contract::{ContractSet, validate_payload};
use soapgate::converse::Response;
use soapgate::mapping::{
    AssembleError, CallMeta, ForEach, INDEX_VAR, ITEM_VAR, MappingError, MappingSet, OperationPlan,
    STEPS_VAR, StepPlan, topological,
};
use soapgate::soap::parse_envelope;
use soapgate::xml::{self, Element, Limits};

const DIR: &str = "tests/data/steps";
const SERVICE: &str = "DocumentIntake";
const OPERATION: &str = "ProcessDocument";
const CORRELATION_ID: &str = "urn:uuid:00000000-0000-4000-8000-000000000001";

fn contracts() -> &'static ContractSet {
    static SET: OnceLock<ContractSet> = OnceLock::new();
    SET.get_or_init(|| {
        soapgate::files::load_contracts(Path::new(DIR))
            .unwrap_or_else(|e| panic!("{DIR}: contracts: {e:?}"))
    })
}

fn intake() -> &'static MappingSet {
    static SET: OnceLock<MappingSet> = OnceLock::new();
    SET.get_or_init(|| {
        let path = Path::new(DIR).join("DocumentIntake.yaml");
        let text = fs::read_to_string(&path).expect("DocumentIntake.yaml");
        match MappingSet::load(&[(path, text)], contracts()) {
            Ok(s) => s,
            Err(errors) => panic!(
                "the fixture mapping does not load:\n{}",
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        }
    })
}

fn plan() -> &'static OperationPlan {
    intake()
        .plan(SERVICE, OPERATION)
        .expect("ProcessDocument is mapped")
}

fn meta() -> CallMeta<'static> {
    CallMeta {
        service: SERVICE,
        operation: OPERATION,
        correlation_id: CORRELATION_ID,
    }
}

fn case_dir() -> PathBuf {
    Path::new(DIR).join(OPERATION)
}

/// The validated Body children of the case's request.
fn request_payload() -> Vec<Element> {
    let text = fs::read_to_string(case_dir().join("request.xml")).expect("request.xml");
    let doc = xml::read(text.as_bytes(), None, &Limits::default()).expect("request XML");
    let env = parse_envelope(doc.root).expect("envelope");
    let (contract, svc) = contracts().service(SERVICE).expect("service");
    let op = svc.operation(OPERATION).expect("operation");
    let violations = validate_payload(&contract.schemas, &op.input, &env.body, &env.scope);
    assert!(violations.is_empty(), "request invalid: {violations:?}");
    env.body
}

fn updating() -> bool {
    std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1")
}

/// Compare `actual` with the golden file, or rewrite it when updating.
fn golden(path: &Path, actual: &str) {
    if updating() {
        fs::write(path, actual).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    let expected = fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    assert_eq!(
        expected,
        actual,
        "{} differs (UPDATE_GOLDEN=1 rewrites it)",
        path.display()
    );
}

fn read_json(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The items a `for_each` step runs over, as the executor takes them.
fn items(plan: &OperationPlan, step: &StepPlan, seen: &Map<String, Value>) -> Vec<Value> {
    let items = match step.for_each().expect("a for_each step") {
        ForEach::Input(name) => seen.get(name).cloned().unwrap_or(Value::Null),
        ForEach::Expr(expr) => plan.eval("for_each", expr, seen).expect("for_each"),
    };
    match items {
        Value::Array(items) => items,
        Value::Null => Vec::new(),
        one => vec![one],
    }
}

/// A Converse answer that calls `tool` with `input`.
fn tool_answer(tool: &str, input: &Value) -> Response {
    serde_json::from_value(json!({
        "output": {"message": {"role": "assistant", "content": [
            {"toolUse": {"toolUseId": "tooluse_1", "name": tool, "input": input}}
        ]}},
        "stopReason": "tool_use",
        "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
        "metrics": {"latencyMs": 1}
    }))
    .expect("converse response")
}

/// A step's result, given as `result`, through the step's own output
/// check: the answer of a model that called its tool with it.
fn checked_result(
    step: &StepPlan,
    call: &soapgate::mapping::RenderedCall,
    result: &Value,
) -> Value {
    let soapgate::mapping::Expect::Structured { tool } = &call.expect else {
        panic!("step {} has a tool", step.name());
    };
    // A result that is not an object is the tool input's `value`.
    let input = if result.is_object() {
        result.clone()
    } else {
        json!({ "value": result })
    };
    step.plan()
        .step_result(call, &tool_answer(tool, &input))
        .unwrap_or_else(|e| panic!("step {}: {e}: {:?}", step.name(), e.violations()))
}

/// The golden of one rendered step call.
fn render_golden(name: &str, item: Option<&Value>, call: &soapgate::mapping::RenderedCall) {
    let mut doc = Map::new();
    doc.insert(
        "targets".into(),
        call.targets
            .iter()
            .map(|t| json!({"model": t.model, "region": t.region}))
            .collect(),
    );
    if let Some(item) = item {
        doc.insert("item".into(), item.clone());
    }
    doc.insert(
        "request".into(),
        serde_json::to_value(&call.request).expect("request JSON"),
    );
    let mut text = serde_json::to_string_pretty(&Value::Object(doc)).expect("json");
    text.push('\n');
    golden(&case_dir().join(format!("{name}.json")), &text);
}

/// Every step of the invoice run as the executor runs them (in their
/// order, each seeing the inputs and the results before it, a `for_each`
/// step once per item with `item` and `index`): each call's Converse
/// request against `step-<name>[-<index>].json`, each fixed result of
/// `step-results.json` taken through the step's output check, and the
/// response assembled from them against `response.xml`.
#[test]
fn golden_document_intake_invoice() {
    let plan = plan();
    let workflow = plan.workflow().expect("ProcessDocument has steps");
    let names: Vec<&str> = workflow.steps().iter().map(StepPlan::name).collect();
    assert_eq!(names, ["classify", "extract", "lines"]);

    let payload = request_payload();
    let vars = plan.variables(&payload, &meta()).expect("variables");
    let fixed = read_json(&case_dir().join("step-results.json"));
    let mut results = Map::new();
    for step in workflow.steps() {
        let mut seen = vars.clone();
        seen.insert(STEPS_VAR.into(), Value::Object(results.clone()));
        if let Some(when) = step.when() {
            assert!(
                plan.holds("when", when, &seen).expect("when"),
                "step {} runs for an invoice",
                step.name()
            );
        }
        let want = &fixed[step.name()];
        let result = match step.for_each() {
            None => {
                let call = step
                    .plan()
                    .render_request_with(&payload, &meta(), &seen)
                    .unwrap_or_else(|e| panic!("step {}: render: {e}", step.name()));
                render_golden(&format!("step-{}", step.name()), None, &call);
                checked_result(step, &call, want)
            }
            Some(_) => {
                let items = items(plan, step, &seen);
                assert_eq!(items.len(), 3, "one call per request line");
                seen.insert(ITEM_VAR.into(), Value::Null);
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let mut vars = seen.clone();
                    vars.insert(ITEM_VAR.into(), item.clone());
                    vars.insert(INDEX_VAR.into(), Value::from(i));
                    let call = step
                        .plan()
                        .render_request_with(&payload, &meta(), &vars)
                        .unwrap_or_else(|e| panic!("step {} item {i}: render: {e}", step.name()));
                    render_golden(&format!("step-{}-{i}", step.name()), Some(item), &call);
                    out.push(checked_result(step, &call, &want[i]));
                }
                Value::Array(out)
            }
        };
        assert_eq!(&result, want, "step {}", step.name());
        results.insert(step.name().to_string(), result);
    }
    let mut all = vars;
    all.insert(STEPS_VAR.into(), Value::Object(results));
    let response = plan
        .assemble(&all)
        .unwrap_or_else(|e| panic!("assemble: {e}"));
    golden(&case_dir().join("response.xml"), &write_payload(&response));
}

/// A receipt: `extract` skipped (its default, null, leaves `Invoice`
/// out), the lines categorised: `step-results-receipt.json` assembled
/// against `response-receipt.xml`.
#[test]
fn golden_document_intake_receipt_assembly() {
    let plan = plan();
    let workflow = plan.workflow().expect("ProcessDocument has steps");
    let payload = request_payload();
    let mut vars = plan.variables(&payload, &meta()).expect("variables");
    let results = read_json(&case_dir().join("step-results-receipt.json"));
    let extract = &workflow.steps()[1];
    assert_eq!(extract.name(), "extract");
    let mut seen = vars.clone();
    seen.insert(
        STEPS_VAR.into(),
        json!({ "classify": results["classify"].clone() }),
    );
    assert!(
        !plan
            .holds("when", extract.when().expect("when"), &seen)
            .expect("when"),
        "extract is skipped for a receipt"
    );
    assert_eq!(extract.default(), Some(&Value::Null));
    vars.insert(STEPS_VAR.into(), results);
    let response = plan
        .assemble(&vars)
        .unwrap_or_else(|e| panic!("assemble: {e}"));
    let xml = write_payload(&response);
    assert!(!xml.contains("Invoice"), "{xml}");
    golden(&case_dir().join("response-receipt.xml"), &xml);
}

/// A result the response cannot take is the assembly's error, not a
/// response: a category the contract's enumeration lacks.
#[test]
fn assembly_of_a_result_the_contract_refuses_fails() {
    let plan = plan();
    let payload = request_payload();
    let mut vars = plan.variables(&payload, &meta()).expect("variables");
    let mut results = read_json(&case_dir().join("step-results.json"));
    results["lines"][1]["Category"] = json!("LABOUR");
    vars.insert(STEPS_VAR.into(), results);
    let err = plan.assemble(&vars).expect_err("LABOUR is no category");
    let AssembleError::Invalid(e) = &err else {
        panic!("{err}");
    };
    let rules: Vec<String> = e
        .violations()
        .iter()
        .map(|v| format!("{}: {}", v.path, v.rule))
        .collect();
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert!(rules[0].contains("LABOUR"), "{rules:?}");
}

fn write_payload(payload: &[Element]) -> String {
    let mut out: String = payload
        .iter()
        .map(xml::write_element)
        .collect::<Vec<_>>()
        .join("\n");
    out.push('\n');
    out
}

// ---- the step graph's order ------------------------------------------------

/// `reach[i][j]`: `j` is reached from `i` through one or more `deps`.
fn reach(deps: &[BTreeSet<usize>]) -> Vec<Vec<bool>> {
    let n = deps.len();
    (0..n)
        .map(|i| {
            let mut seen = vec![false; n];
            let mut stack: Vec<usize> = deps[i].iter().copied().collect();
            while let Some(j) = stack.pop() {
                if !seen[j] {
                    seen[j] = true;
                    stack.extend(deps[j].iter().copied());
                }
            }
            seen
        })
        .collect()
}

/// The nodes that are on a cycle or depend, directly or not, on one.
fn stuck(deps: &[BTreeSet<usize>]) -> BTreeSet<usize> {
    let r = reach(deps);
    let n = deps.len();
    (0..n)
        .filter(|&i| r[i][i] || (0..n).any(|j| r[i][j] && r[j][j]))
        .collect()
}

/// Each node of `order` once, after all its deps.
fn assert_topological(deps: &[BTreeSet<usize>], order: &[usize]) -> Result<(), TestCaseError> {
    let mut position = vec![None; deps.len()];
    for (k, &i) in order.iter().enumerate() {
        prop_assert!(i < deps.len(), "{i} is no node");
        prop_assert!(position[i].is_none(), "{i} twice in {order:?}");
        position[i] = Some(k);
    }
    for (k, &i) in order.iter().enumerate() {
        for &d in &deps[i] {
            prop_assert!(
                position[d].is_some_and(|p| p < k),
                "{i} before its dep {d} in {order:?} ({deps:?})"
            );
        }
    }
    Ok(())
}

/// A random DAG of `n` nodes: a hidden rank order, each node depending on
/// some of the nodes ranked before it.
fn dag() -> impl Strategy<Value = Vec<BTreeSet<usize>>> {
    (0usize..12)
        .prop_flat_map(|n| {
            (
                Just((0..n).collect::<Vec<usize>>()).prop_shuffle(),
                proptest::collection::vec(proptest::collection::vec(any::<bool>(), n), n),
            )
        })
        .prop_map(|(rank, edges)| ranked(&rank, &edges))
}

/// Node `i` depends on each `j` ranked before it where `edges[i][j]`.
fn ranked(rank: &[usize], edges: &[Vec<bool>]) -> Vec<BTreeSet<usize>> {
    let n = rank.len();
    (0..n)
        .map(|i| {
            (0..n)
                .filter(|&j| rank[j] < rank[i] && edges[i][j])
                .collect()
        })
        .collect()
}

/// Any directed graph of up to 10 nodes, self-loops included.
fn graph() -> impl Strategy<Value = Vec<BTreeSet<usize>>> {
    (1usize..10).prop_flat_map(|n| {
        proptest::collection::vec(proptest::collection::btree_set(0..n, 0..=n.min(3)), n)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// On a DAG: every node once, each after all its deps.
    #[test]
    fn topological_orders_every_node_of_a_dag(deps in dag()) {
        let order = topological(&deps);
        prop_assert_eq!(order.len(), deps.len());
        assert_topological(&deps, &order)?;
    }

    /// On any graph: exactly the nodes neither on a cycle nor after one,
    /// each once and after its deps; fewer than all when there is a cycle.
    #[test]
    fn topological_leaves_out_the_nodes_on_or_after_a_cycle(deps in graph()) {
        let order = topological(&deps);
        assert_topological(&deps, &order)?;
        let stuck = stuck(&deps);
        let got: BTreeSet<usize> = order.iter().copied().collect();
        let want: BTreeSet<usize> = (0..deps.len()).filter(|i| !stuck.contains(i)).collect();
        prop_assert_eq!(&got, &want);
        if !stuck.is_empty() {
            prop_assert!(order.len() < deps.len());
        }
    }
}

// ---- generated mappings -----------------------------------------------------

/// A DocumentIntake mapping whose steps `s0..` (written in `written`
/// order) read each other as `reads` says, in their prompts or `when`, and the
/// response reads `assembly`; with the line of each step's name.
fn generated_mapping(
    reads: &[BTreeSet<usize>],
    written: &[usize],
    in_when: &[bool],
    assembly: &BTreeSet<usize>,
) -> (String, Vec<u64>) {
    let mut yaml = String::from(
        "service: DocumentIntake
operations:
  ProcessDocument:
    model: { targets: [ { model: m } ] }
    input:
      document_id: DocumentId
      text: Text
    steps:
",
    );
    let mut lines = vec![0; reads.len()];
    for &i in written {
        lines[i] = yaml.lines().count() as u64 + 1;
        yaml.push_str(&format!("      s{i}:\n"));
        let read = |r: &usize| format!(" {{{{ steps.s{r} }}}}");
        if in_when[i] && !reads[i].is_empty() {
            // The reads in `when`, the prompt reading the inputs only.
            let cond: Vec<String> = reads[i]
                .iter()
                .map(|r| format!("steps.s{r} != \"\""))
                .collect();
            yaml.push_str(&format!("        when: '{}'\n", cond.join(" and ")));
            yaml.push_str("        default: skipped\n");
            yaml.push_str("        prompt: \"step {{ document_id }}\"\n");
        } else {
            let prompt: String = reads[i].iter().map(read).collect();
            yaml.push_str(&format!(
                "        prompt: \"step{prompt} {{{{ text }}}}\"\n"
            ));
        }
    }
    let id: String = assembly
        .iter()
        .map(|r| format!("{{{{ steps.s{r} }}}}"))
        .collect();
    yaml.push_str(&format!(
        "    output:
      fill:
        DocumentId: \"id {id}\"
        Kind: OTHER
"
    ));
    (yaml, lines)
}

fn load(yaml: &str) -> Result<MappingSet, Vec<String>> {
    MappingSet::load(&[(PathBuf::from("m.yaml"), yaml.to_string())], contracts())
        .map_err(|e| e.iter().map(MappingError::to_string).collect())
}

/// Random step graphs without a cycle: `reads[i]` among the steps ranked
/// before `i`; the steps written in a random order; some reads in `when`.
fn step_graph()
-> impl Strategy<Value = (Vec<BTreeSet<usize>>, Vec<usize>, Vec<bool>, BTreeSet<usize>)> {
    (1usize..7).prop_flat_map(|n| {
        (
            Just((0..n).collect::<Vec<usize>>()).prop_shuffle(),
            Just((0..n).collect::<Vec<usize>>()).prop_shuffle(),
            proptest::collection::vec(proptest::collection::vec(any::<bool>(), n), n),
            proptest::collection::vec(any::<bool>(), n),
            proptest::collection::btree_set(0..n, 0..=n),
        )
            .prop_map(|(rank, written, edges, in_when, assembly)| {
                (ranked(&rank, &edges), written, in_when, assembly)
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// A mapping with a random acyclic step graph loads; its steps come in
    /// an order where each follows what it reads, and each step's
    /// `reads()` are the steps its prompt or `when` names.
    #[test]
    fn generated_step_graphs_load_in_topological_order(
        (reads, written, in_when, assembly) in step_graph()
    ) {
        let (yaml, _) = generated_mapping(&reads, &written, &in_when, &assembly);
        let set = load(&yaml).map_err(|e| TestCaseError::fail(format!("{yaml}\n{e:?}")))?;
        let plan = set.plan(SERVICE, OPERATION).expect("mapped");
        let steps = plan.workflow().expect("steps").steps();
        prop_assert_eq!(steps.len(), reads.len());
        let index = |name: &str| -> usize { name[1..].parse().expect("s<n>") };
        let mut seen = BTreeSet::new();
        for (k, step) in steps.iter().enumerate() {
            let i = index(step.name());
            prop_assert!(seen.insert(i), "{} twice", step.name());
            let got: BTreeSet<usize> = step
                .reads()
                .iter()
                .map(|&r| {
                    assert!(r < k, "step {} reads a later step {r}", step.name());
                    index(steps[r].name())
                })
                .collect();
            prop_assert_eq!(&got, &reads[i], "reads of {}\n{}", step.name(), yaml);
        }
    }

    /// Reads that close a cycle are a load error at the name of every step
    /// on a cycle (not those only held up after one), naming them all.
    #[test]
    fn a_generated_cycle_is_a_load_error_naming_its_steps(
        (mut reads, written, in_when, assembly) in step_graph(),
        cycle in proptest::collection::vec(0usize..6, 2..5),
    ) {
        let n = reads.len();
        let cycle: Vec<usize> = {
            let mut c: Vec<usize> = Vec::new();
            for s in cycle.into_iter().map(|s| s % n) {
                if !c.contains(&s) {
                    c.push(s);
                }
            }
            c
        };
        prop_assume!(cycle.len() >= 2);
        for (k, &s) in cycle.iter().enumerate() {
            reads[s].insert(cycle[(k + 1) % cycle.len()]);
        }
        let (yaml, lines) = generated_mapping(&reads, &written, &in_when, &assembly);
        let errors = match load(&yaml) {
            Ok(_) => return Err(TestCaseError::fail(format!("a cycle loaded:\n{yaml}"))),
            Err(e) => e,
        };
        let on = on_cycle(&reads);
        for s in &cycle {
            prop_assert!(on.contains(s));
        }
        let names: Vec<String> = written
            .iter()
            .filter(|i| on.contains(i))
            .map(|i| format!("s{i}"))
            .collect();
        let want: Vec<String> = written
            .iter()
            .filter(|i| on.contains(i))
            .map(|i| {
                format!(
                    "m.yaml:{}:7: step s{i} is in a cycle of reads among steps {}: a step can read only steps that do not read it",
                    lines[*i],
                    names.join(", ")
                )
            })
            .collect();
        prop_assert_eq!(errors, want, "{}", yaml);
    }
}

/// The steps on a cycle of `reads`: each reaches itself through what it
/// reads.
fn on_cycle(reads: &[BTreeSet<usize>]) -> BTreeSet<usize> {
    (0..reads.len())
        .filter(|&start| {
            let mut stack: Vec<usize> = reads[start].iter().copied().collect();
            let mut seen = BTreeSet::new();
            while let Some(i) = stack.pop() {
                if i == start {
                    return true;
                }
                if seen.insert(i) {
                    stack.extend(reads[i].iter().copied());
                }
            }
            false
        })
        .collect()
}

// ---- load errors ------------------------------------------------------------

fn load_errors(yaml: &str) -> Vec<String> {
    match load(yaml) {
        Ok(_) => panic!("expected load errors:\n{yaml}"),
        Err(e) => e,
    }
}

/// The head of a DocumentIntake mapping, up to its `steps:` (line 9).
const HEAD: &str = "service: DocumentIntake
operations:
  ProcessDocument:
    model: { targets: [ { model: m } ] }
    input:
      document_id: DocumentId
      text: Text
      lines: Lines/Line[]
    steps:
";

/// A step `classify` (lines 10-16) whose result is `{kind}`.
const CLASSIFY: &str = "      classify:
        prompt: \"Classify {{ text }}\"
        output:
          schema:
            type: object
            properties: { kind: { type: string, enum: [INVOICE, RECEIPT, OTHER] } }
            required: [kind]
";

/// A response filled from `classify` (lines after the steps).
const FILL: &str = "    output:
      fill:
        DocumentId: \"{{ document_id }}\"
        Kind: \"{{ steps.classify.kind }}\"
";

#[test]
fn the_load_error_fixture_loads() {
    let yaml = format!("{HEAD}{CLASSIFY}{FILL}");
    let set = load(&yaml).unwrap_or_else(|e| panic!("{e:?}"));
    let plan = set.plan(SERVICE, OPERATION).expect("mapped");
    assert_eq!(plan.workflow().expect("steps").steps().len(), 1);
}

/// A step that categorises each line (to put after `CLASSIFY`).
fn lines_step(extra: &str, prompt: &str) -> String {
    format!(
        "      lines:
        for_each: lines
{extra}        prompt: \"{prompt}\"
"
    )
}

#[test]
fn load_error_unknown_step_in_a_prompt() {
    let yaml = format!(
        "{HEAD}{CLASSIFY}{}{FILL}",
        lines_step("", "{{ steps.clasify.kind }} {{ item.Description }}")
    );
    assert_eq!(
        load_errors(&yaml),
        vec![
            "m.yaml:19:17: step lines reads steps.clasify, but there is no step clasify \
             (steps: classify, lines)"
        ]
    );
}

#[test]
fn load_error_unknown_step_in_a_multi_line_prompt() {
    let yaml = format!(
        "{HEAD}{CLASSIFY}      lines:
        for_each: lines
        prompt: |
          Categorise this line of a {{{{ steps.classify.kind }}}}:
            {{{{ item.Description }}}} ({{{{ steps.class }}}})
{FILL}"
    );
    assert_eq!(
        load_errors(&yaml),
        vec![
            "m.yaml:21:13: step lines reads steps.class, but there is no step class \
             (steps: classify, lines)"
        ]
    );
}

#[test]
fn load_error_unknown_step_in_a_when() {
    let yaml = format!(
        "{HEAD}{CLASSIFY}{}{FILL}",
        lines_step(
            "        when: steps.clasify.kind == \"INVOICE\"\n",
            "{{ item.Description }}"
        )
    );
    assert_eq!(
        load_errors(&yaml),
        vec![
            "m.yaml:19:15: step lines reads steps.clasify, but there is no step clasify \
             (steps: classify, lines)"
        ]
    );
}

#[test]
fn load_error_unknown_step_in_a_fill() {
    let yaml = format!(
        "{HEAD}{CLASSIFY}    output:
      fill:
        DocumentId: \"{{{{ document_id }}}}\"
        Kind: \"{{{{ steps.clasify.kind }}}}\"
"
    );
    assert_eq!(
        load_errors(&yaml),
        vec![
            "m.yaml:20:15: the response reads steps.clasify, but there is no step clasify \
             (steps: classify)"
        ]
    );
}

#[test]
fn load_error_unknown_step_in_a_per_item_fill() {
    let yaml = format!(
        "{HEAD}{CLASSIFY}{}{FILL}        Lines/Line[]:
          for_each: steps.line
          fill:
            Number: \"{{{{ index + 1 }}}}\"
            Category: OTHER
",
        lines_step("", "{{ item.Description }}")
    );
    assert_eq!(
        load_errors(&yaml),
        vec![
            "m.yaml:25:21: the response reads steps.line, but there is no step line \
             (steps: classify, lines)"
        ]
    );
}

#[test]
fn load_error_a_step_read_while_it_may_be_skipped() {
    let yaml = format!(
        "{HEAD}      classify:
        when: text != \"\"
        prompt: \"Classify {{{{ text }}}}\"
        output:
          schema: {{ type: object, properties: {{ kind: {{ type: string }} }}, required: [kind] }}
      extract:
        prompt: \"Extract from a {{{{ steps.classify.kind }}}}\"
        output: {{ type: InvoiceFields }}
{FILL}"
    );
    assert_eq!(
        load_errors(&yaml),
        vec![
            "m.yaml:21:15: the response reads steps.classify, which is skipped when its when \
             is false and has no default; give classify a default (default: null for none)",
            "m.yaml:16:17: step extract reads steps.classify, which is skipped when its when \
             is false and has no default; give classify a default (default: null for none)",
        ]
    );
}

#[test]
fn load_error_a_step_read_while_it_may_fail_and_continue() {
    let yaml = format!(
        "{HEAD}      classify:
        prompt: \"Classify {{{{ text }}}}\"
        on_failure: continue
{FILL}"
    );
    assert_eq!(
        load_errors(&yaml),
        vec![
            "m.yaml:16:15: the response reads steps.classify, which continues past a failure \
             and has no default; give classify a default (default: null for none)"
        ]
    );
}

#[test]
fn load_error_for_each_over_an_input_that_is_not_repeated() {
    let yaml = format!(
        "{HEAD}{CLASSIFY}      lines:
        for_each: text
        prompt: \"{{{{ item }}}}\"
{FILL}"
    );
    assert_eq!(
        load_errors(&yaml),
        vec![
            "m.yaml:18:19: for_each: input text is not repeated; give its path a [] to take \
             every occurrence as a list"
        ]
    );
}

#[test]
fn load_error_for_each_over_neither_an_input_nor_a_step() {
    let yaml = format!(
        "{HEAD}{CLASSIFY}      lines:
        for_each: payload.Lines
        prompt: \"{{{{ item }}}}\"
{FILL}"
    );
    assert_eq!(
        load_errors(&yaml),
        vec![
            "m.yaml:18:19: for_each: payload.Lines is neither an input of the operation \
             (declare it under input: with a [] path) nor an earlier step's list (steps.NAME…)"
        ]
    );
}

#[test]
fn load_error_assembly_leaves_a_required_element_unfilled() {
    let yaml = format!(
        "{HEAD}{CLASSIFY}    output:
      fill:
        DocumentId: \"{{{{ document_id }}}}\"
"
    );
    assert_eq!(
        load_errors(&yaml),
        vec![
            "m.yaml:18:7: the response's assembly leaves Kind unfilled; fill it or take it \
             from a step"
        ]
    );
}

#[test]
fn load_error_a_cycle() {
    let yaml = format!(
        "{HEAD}{CLASSIFY}      first:
        prompt: \"{{{{ steps.second }}}}\"
      second:
        prompt: \"{{{{ steps.first }}}} {{{{ steps.classify.kind }}}}\"
      third:
        prompt: \"{{{{ steps.second }}}}\"
{FILL}"
    );
    assert_eq!(
        load_errors(&yaml),
        vec![
            "m.yaml:17:7: step first is in a cycle of reads among steps first, second: \
             a step can read only steps that do not read it",
            "m.yaml:19:7: step second is in a cycle of reads among steps first, second: \
             a step can read only steps that do not read it",
        ]
    );
}

#[test]
fn load_error_a_step_reads_itself() {
    let yaml = format!(
        "{HEAD}{CLASSIFY}      again:
        prompt: \"{{{{ steps.again }}}}\"
{FILL}"
    );
    assert_eq!(
        load_errors(&yaml),
        vec!["m.yaml:17:7: step again reads its own result"]
    );
}

#[test]
fn load_error_a_step_name_with_upper_case() {
    let yaml = format!(
        "{HEAD}{CLASSIFY}      Extract:
        prompt: \"{{{{ text }}}}\"
{FILL}"
    );
    assert_eq!(
        load_errors(&yaml),
        vec![
            "m.yaml:17:7: step name \"Extract\": use lower-case letters, digits and _ (it is \
             read as steps.Extract)"
        ]
    );
}

#[test]
fn load_error_a_prompt_beside_steps() {
    let yaml = format!("{HEAD}{CLASSIFY}    prompt: \"{{{{ text }}}}\"\n{FILL}");
    assert_eq!(
        load_errors(&yaml),
        vec!["m.yaml:17:13: an operation with steps has no prompt of its own: each step has one"]
    );
}

/// What answers a single call has no place in an operation with steps.
#[test]
fn load_error_single_call_settings_beside_steps() {
    let yaml = format!(
        "{HEAD}{CLASSIFY}{FILL}    faults:
      Refused: {{}}
    variants:
      big: {{ weight: 1 }}
    batch: {{ role_arn: \"arn:aws:iam::1:role/b\", s3_uri: \"s3://b\" }}
    cache: {{ ttl_secs: 60 }}
    record: {{ sample: 0.5 }}
"
    );
    assert_eq!(
        load_errors(&yaml),
        vec![
            "m.yaml:22:7: faults is not available for an operation with steps",
            "m.yaml:24:7: variants is not available for an operation with steps",
            "m.yaml:25:12: batch is not available for an operation with steps",
            "m.yaml:26:12: cache is not available for an operation with steps",
            "m.yaml:27:13: record is not available for an operation with steps",
        ]
    );
}

#[test]
fn load_error_continue_on_a_single_call_operation() {
    let yaml = "service: DocumentIntake
operations:
  ProcessDocument:
    model: { targets: [ { model: m } ] }
    prompt: x
    output: { structured: true }
    on_failure: continue
";
    assert_eq!(
        load_errors(yaml),
        vec!["m.yaml:7:17: on_failure: continue is for a step of a multi-step operation"]
    );
}

#[test]
fn load_error_a_default_that_does_not_fit_the_output() {
    let yaml = format!(
        "{HEAD}      classify:
        when: text != \"\"
        prompt: \"Classify {{{{ text }}}}\"
        output:
          schema: {{ type: object, properties: {{ kind: {{ type: string, enum: [INVOICE, OTHER] }} }}, required: [kind] }}
        default: {{ kind: LETTER }}
      extract:
        when: text != \"\"
        prompt: \"{{{{ text }}}}\"
        output: {{ type: InvoiceFields }}
        default: {{ InvoiceNumber: X }}
{FILL}"
    );
    assert_eq!(
        load_errors(&yaml),
        vec![
            "m.yaml:15:18: default does not fit the step's output at /kind: \"LETTER\" is not \
             one of INVOICE, OTHER",
            "m.yaml:20:18: default does not fit the step's output at /: required property \
             Supplier missing",
        ]
    );
}

#[test]
fn load_error_max_concurrency_without_for_each() {
    let yaml = format!(
        "{HEAD}{CLASSIFY}      sum:
        max_concurrency: 2
        prompt: \"{{{{ text }}}}\"
      lines:
        for_each: lines
        max_concurrency: 0
        prompt: \"{{{{ item }}}}\"
{FILL}"
    );
    assert_eq!(
        load_errors(&yaml),
        vec![
            "m.yaml:18:26: max_concurrency applies to a for_each step",
            "m.yaml:22:26: max_concurrency must be 1 to 64",
        ]
    );
}

#[test]
fn load_error_an_inline_schema_with_an_unsupported_keyword() {
    let yaml = format!(
        "{HEAD}{CLASSIFY}      lines:
        for_each: lines
        prompt: \"{{{{ item }}}}\"
        output:
          schema:
            type: object
            properties:
              Category: {{ oneOf: [ {{ type: string }}, {{ type: integer }} ] }}
{FILL}"
    );
    assert_eq!(
        load_errors(&yaml),
        vec![
            "m.yaml:22:13: schema /properties/Category: unsupported keyword `oneOf` (supported: \
             type, enum, const, properties, required, additionalProperties, items, minItems, \
             maxItems, minimum, maximum, exclusiveMinimum, exclusiveMaximum, minLength, \
             maxLength, pattern, description, title, default)"
        ]
    );
}

#[test]
fn load_error_a_type_the_contract_lacks() {
    let yaml = format!(
        "{HEAD}{CLASSIFY}      extract:
        prompt: \"{{{{ text }}}}\"
        output: {{ type: InvoiceHeader }}
{FILL}"
    );
    assert_eq!(
        load_errors(&yaml),
        vec!["m.yaml:19:25: type: the contract has no type InvoiceHeader"]
    );
}

// ---- attachments --------------------------------------------------------------

/// The operation's attachment (`as: file`) reaches only the step that
/// declares it in its own `input`; the other step sends no document block,
/// and a step reading the attachment without declaring it is a load error.
#[test]
fn an_attachment_reaches_only_the_steps_that_declare_it() {
    let contracts = soapgate::files::load_contracts(Path::new("wsdl")).expect("example contracts");
    let mapping = |read_input: &str| {
        format!(
            "service: InvoiceService
operations:
  ExtractInvoiceFields:
    mode: async
    model: {{ targets: [ {{ model: m }} ] }}
    input:
      document_id: documentId
      mime_type: mimeType
      scan: {{ path: scan, as: file, format: \"{{{{ mime_type }}}}\", name: \"scan {{{{ document_id }}}}\" }}
    steps:
      read:
{read_input}        prompt: \"Read the invoice {{{{ scan }}}}.\"
        output: {{ type: ExtractedFields }}
      check:
        prompt: \"Check {{{{ document_id }}}}: {{{{ steps.read }}}}\"
    output:
      fill:
        documentId: \"{{{{ document_id }}}}\"
        fields: \"{{{{ steps.read }}}}\"
"
        )
    };
    let declared = "        input:\n          scan: { path: scan, as: file, format: \"{{ mime_type }}\", name: \"scan {{ document_id }}\" }\n";
    let text = mapping(declared);
    let set = MappingSet::load(&[(PathBuf::from("m.yaml"), text.clone())], &contracts)
        .unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    let plan = set
        .plan("InvoiceService", "ExtractInvoiceFields")
        .expect("mapped");
    let request =
        fs::read_to_string("examples/InvoiceService/ExtractInvoiceFields.xml").expect("sample");
    let doc = xml::read(request.as_bytes(), None, &Limits::default()).expect("sample XML");
    let payload = parse_envelope(doc.root).expect("envelope").body;
    let meta = CallMeta {
        service: "InvoiceService",
        operation: "ExtractInvoiceFields",
        correlation_id: "urn:uuid:1",
    };
    let documents = |step: &str| {
        let step = plan
            .workflow()
            .expect("steps")
            .steps()
            .iter()
            .find(|s| s.name() == step)
            .expect("step");
        let mut vars = Map::new();
        vars.insert("steps".into(), json!({ "read": { "invoiceNumber": "X" } }));
        let call = step
            .plan()
            .render_request_with(&payload, &meta, &vars)
            .expect("renders");
        serde_json::to_value(&call.request).expect("JSON")["messages"][0]["content"]
            .as_array()
            .expect("content")
            .iter()
            .filter(|b| b.get("document").is_some())
            .count()
    };
    assert_eq!(
        documents("read"),
        1,
        "the step that declares the scan sends it"
    );
    assert_eq!(documents("check"), 0, "the other step does not");

    let errors = MappingSet::load(&[(PathBuf::from("m.yaml"), mapping(""))], &contracts)
        .expect_err("a step reading an attachment it does not declare");
    assert!(
        errors
            .iter()
            .any(|e| e.to_string().contains("unknown template variable scan")),
        "{errors:?}"
    );
}
