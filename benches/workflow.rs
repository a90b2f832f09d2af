//! What running steps costs in process: the three-step operation of
//! bench/workflow/ (`WorkflowBench.Analyse`: classify, then summarise and
//! tag at once) through `workflow::run`, against its three steps as
//! single-call operations (`Classify`, `Summarise`, `Tag`) through
//! `pipeline::run` one after another, in one run:
//! - `workflow`: one `workflow::run` of Analyse (three model calls);
//! - `three_calls`: `pipeline::run` of Classify, Summarise and Tag.
//!
//! The model is the in-process Converse emulator behind the real SDK
//! client, answering at once (no delay); each side's requests are read and
//! validated (`pipeline::prepare`) outside the timed part, so the
//! difference is what the steps add to the same three model calls: the
//! step graph, the variables each step sees, the response assembled and
//! validated from the results. Divided by three it is the overhead per
//! step, printed at the end (the emulator's and the SDK's work for each
//! model call is in both sides, so it cancels out, noise aside).
//! Reproduce: `cargo bench --bench workflow`.

use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use soapgate::bedrock::{BedrockClient, BedrockSettings};
use soapgate::contract::ContractSet;
use soapgate::models::{ModelSettings, Models};
use soapgate::pipeline::{self, CallContext, Inbound, Outcome, Prepared, Reply, Tries};

// The allocator the `soapgate` binary runs with.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const NS: &str = "urn:bench:workflow";
const TEXT: &str = "Invoice No 2026-0815 from Brandt Befestigungstechnik GmbH, 30 November 2026: \
                    200 steel bolts M8, installation labour 3 h, freight. Total due EUR 1,660.05.";

fn envelope(operation: &str, extra: &str) -> String {
    format!(
        r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:w="{NS}"><soapenv:Body><w:{operation}><w:Text>{TEXT}</w:Text>{extra}</w:{operation}></soapenv:Body></soapenv:Envelope>"#
    )
}

fn prepare(contracts: &ContractSet, operation: &str, body: &str) -> Prepared {
    let action = format!("{NS}/{operation}");
    let mut ctx = CallContext::new("WorkflowBench", None);
    let inbound = Inbound {
        charset: Some("utf-8"),
        version: None,
        action: Some(&action),
    };
    pipeline::prepare(
        contracts,
        &inbound,
        body.as_bytes(),
        &soapgate::xml::Limits::default(),
        &mut ctx,
    )
    .expect("the bench request prepares")
}

/// The reply must be the operation's own answer: not degraded, not an error.
fn check(result: Result<Reply, soapgate::error::GatewayError>, outcome: &Outcome, calls: u32) {
    assert!(
        matches!(result, Ok(Reply::Payload(_))),
        "the bench call must answer: {result:?}"
    );
    assert!(
        outcome.degraded.is_none(),
        "the bench call must not degrade"
    );
    assert_eq!(outcome.model_calls, calls, "model calls of the bench call");
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/workflow");
    let contracts = soapgate::files::load_contracts(&dir).expect("contracts");
    let mappings = soapgate::files::load_mappings(&dir, &contracts).expect("mappings");
    let contracts = soapgate::files::publish_contracts(contracts, &mappings).expect("published");
    let (_emulator, models) = rt.block_on(async {
        let emulator = soapgate::emulator::spawn(None).await.expect("emulator");
        let client = Arc::new(BedrockClient::for_endpoint(
            emulator.base_url(),
            &BedrockSettings::default(),
        ));
        let models = Arc::new(Models::new(client, ModelSettings::default()));
        (emulator, models)
    });
    let analyse = envelope("Analyse", "");
    let singles = [
        ("Classify", envelope("Classify", "")),
        (
            "Summarise",
            envelope("Summarise", "<w:Kind>INVOICE</w:Kind>"),
        ),
        ("Tag", envelope("Tag", "<w:Kind>INVOICE</w:Kind>")),
    ];

    let workflow = |prepared: Prepared| {
        rt.block_on(async {
            let mut outcome = Outcome::default();
            let result = soapgate::workflow::run(
                prepared,
                &mappings,
                Some(&models),
                "bench",
                &mut outcome,
                Tries::Last,
                None,
            )
            .await;
            check(result, &outcome, 3);
        })
    };
    let three_calls = |prepared: Vec<Prepared>| {
        rt.block_on(async {
            for prepared in prepared {
                let mut outcome = Outcome::default();
                let result = pipeline::run(
                    prepared,
                    &mappings,
                    Some(&models),
                    "bench",
                    &mut outcome,
                    Tries::Last,
                )
                .await;
                check(result, &outcome, 1);
            }
        })
    };
    let prepare_analyse = || prepare(&contracts, "Analyse", &analyse);
    let prepare_singles = || {
        singles
            .iter()
            .map(|(op, body)| prepare(&contracts, op, body))
            .collect::<Vec<_>>()
    };

    let mut group = c.benchmark_group("workflow");
    group.sample_size(100);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("workflow", |b| {
        b.iter_batched(prepare_analyse, workflow, BatchSize::SmallInput)
    });
    group.bench_function("three_calls", |b| {
        b.iter_batched(prepare_singles, three_calls, BatchSize::SmallInput)
    });
    group.finish();

    // The same two, alternated in rounds, in the process's own CPU time
    // (user + system, every thread: the emulator's included, the same on
    // both sides) with the requests prepared beforehand, for the overhead
    // per step beside criterion's wall times.
    let rounds = 5;
    let per_round = 2_000;
    let mut per_step = Vec::new();
    for _ in 0..rounds {
        let calls: Vec<Prepared> = (0..per_round).map(|_| prepare_analyse()).collect();
        let w = cpu(|| calls.into_iter().for_each(&workflow));
        let calls: Vec<Vec<Prepared>> = (0..per_round).map(|_| prepare_singles()).collect();
        let s = cpu(|| calls.into_iter().for_each(&three_calls));
        let (w, s) = (w / per_round as f64 * 1e6, s / per_round as f64 * 1e6);
        println!(
            "workflow/cpu: {w:.1} µs per workflow, {s:.1} µs per three calls, {:+.1} µs per step",
            (w - s) / 3.0
        );
        per_step.push((w - s) / 3.0);
    }
    per_step.sort_by(f64::total_cmp);
    println!(
        "workflow/cpu: median {:+.1} µs per step over {rounds} rounds of {per_round} calls each",
        per_step[rounds / 2]
    );
}

/// The CPU time (user + system) this process spends on `f`, in seconds.
fn cpu(f: impl FnOnce()) -> f64 {
    let before = process_cpu();
    f();
    process_cpu() - before
}

/// utime + stime of this process from /proc/self/stat, in seconds (clock
/// ticks of USER_HZ, 100 a second on Linux).
fn process_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // The fields after the command name (which may hold spaces): state is
    // the first, utime the 12th, stime the 13th.
    let rest = &stat[stat.rfind(')').expect("stat") + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks =
        fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    ticks / 100.0
}

criterion_group!(benches, bench);
criterion_main!(benches);
