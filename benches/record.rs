//! What recording costs a call: the same SOAP call (`SupportDesk.DraftReply`,
//! the example sample) through the facade's router, in one run,
//! - `off`: the example mappings with DraftReply's `record:` removed;
//! - `on`: the example mappings as shipped (`record: { sample: 1.0,
//!   redact: [CustomerName] }`): every call serialises its request, the
//!   Converse request, the answer and the response, replaces the redacted
//!   name in each, and hands the row to the recorder's channel; the
//!   writer task writes rows in groups into a SQLite file (WAL) on the same
//!   runtime meanwhile;
//! - `on_unwritten`: the same with no writer running, so after the
//!   channel's 1,024 rows every row is dropped: the recording's cost on
//!   the call's own path, without the writer's work on the same cores.
//!
//! The model is the in-process Converse emulator behind the real SDK
//! client, answering at once; the router is called in process (no socket
//! on the SOAP side), so the difference between the two is the recording
//! on the call's path plus what the writer takes from the same two cores.
//! After the run it prints how many rows were written and dropped.
//!
//! `path/render` and `path/capture` time, for the same DraftReply request,
//! the rendering of its Converse request (which every call does) and what
//! recording adds on the call's path (`Capture::start` and `finish`: the
//! request, the Converse request and the response written out, the
//! redacted name replaced in each, the row handed to a channel no writer
//! drains, so it is dropped), without a socket or a model: steadier than
//! the whole call on a shared machine.
//! Reproduce: `cargo bench --bench record`.

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use soapgate::bedrock::{BedrockClient, BedrockSettings};
use soapgate::config::Settings;
use soapgate::http::AppState;
use soapgate::record::{RecordSettings, Recorder};
use soapgate::store::{Store, StoreSlot};
use tower::ServiceExt;

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tmp");
    // The same mappings without DraftReply's record: line.
    let unrecorded = dir.path().join("mappings");
    std::fs::create_dir(&unrecorded).expect("mappings dir");
    for entry in std::fs::read_dir(root().join("mappings")).expect("mappings") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).expect("mapping");
            let text: String = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("record:"))
                .map(|l| format!("{l}\n"))
                .collect();
            std::fs::write(unrecorded.join(path.file_name().expect("name")), text).expect("copy");
        }
    }
    let contracts = soapgate::files::load_contracts(&root().join("wsdl")).expect("contracts");
    let recorded =
        soapgate::files::load_mappings(&root().join("mappings"), &contracts).expect("mappings");
    let plain = soapgate::files::load_mappings(&unrecorded, &contracts).expect("mappings");
    assert!(
        recorded
            .plan("SupportDesk", "DraftReply")
            .is_some_and(|p| p.record().is_some())
            && plain
                .plan("SupportDesk", "DraftReply")
                .is_some_and(|p| p.record().is_none()),
        "DraftReply records in the shipped mappings only"
    );
    let published_on = soapgate::files::publish_contracts(contracts, &recorded).expect("published");
    let contracts = soapgate::files::load_contracts(&root().join("wsdl")).expect("contracts");
    let published_off = soapgate::files::publish_contracts(contracts, &plain).expect("published");
    let (emulator, state_off, state_on, state_unwritten, _unwritten, store) = rt.block_on(async {
        let emulator = soapgate::emulator::spawn(None).await.expect("emulator");
        let client = Arc::new(BedrockClient::for_endpoint(
            emulator.base_url(),
            &BedrockSettings::default(),
        ));
        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
        let store = Store::connect(&url).await.expect("store");
        let off =
            AppState::new(published_off, plain, Settings::default()).with_model(client.clone());
        let settings = RecordSettings::default();
        let state = AppState::new(published_on, recorded, Settings::default());
        let (recorder, writer) = Recorder::new(&settings, state.metrics.clone());
        tokio::spawn(writer.run(StoreSlot::ready(store.clone()), std::future::pending()));
        let on = state.with_recorded_model(client.clone(), recorder);
        let contracts = soapgate::files::load_contracts(&root().join("wsdl")).expect("contracts");
        let mappings =
            soapgate::files::load_mappings(&root().join("mappings"), &contracts).expect("mappings");
        let published =
            soapgate::files::publish_contracts(contracts, &mappings).expect("published");
        let state = AppState::new(published, mappings, Settings::default());
        let (recorder, unwritten) = Recorder::new(&settings, state.metrics.clone());
        let on_unwritten = state.with_recorded_model(client, recorder);
        (emulator, off, on, on_unwritten, unwritten, store)
    });
    let envelope = std::fs::read_to_string(root().join("examples/SupportDesk/DraftReply.xml"))
        .expect("sample");
    let call = |state: &AppState| {
        let router = soapgate::http::router(state.clone());
        let envelope = envelope.clone();
        rt.block_on(async move {
            let req = axum::http::Request::post("/soap/SupportDesk")
                .header("content-type", "text/xml; charset=utf-8")
                .header(
                    "soapaction",
                    "\"http://helpdesk.example.com/SupportDesk/DraftReply\"",
                )
                .body(axum::body::Body::from(envelope))
                .expect("request");
            let resp = router.oneshot(req).await.expect("response");
            assert_eq!(resp.status(), 200, "the bench call must succeed");
        })
    };

    let mut group = c.benchmark_group("record");
    group.sample_size(50);
    group.bench_function("off", |b| b.iter(|| call(&state_off)));
    // Before `on`: the writer of `on` would still be draining its backlog.
    group.bench_function("on_unwritten", |b| b.iter(|| call(&state_unwritten)));
    group.bench_function("on", |b| b.iter(|| call(&state_on)));
    group.finish();

    // The recording's own work, beside the rendering every call does.
    let mappings = soapgate::files::load_mappings(&root().join("mappings"), &{
        soapgate::files::load_contracts(&root().join("wsdl")).expect("contracts")
    })
    .expect("mappings");
    let contracts = soapgate::files::load_contracts(&root().join("wsdl")).expect("contracts");
    let contracts = soapgate::files::publish_contracts(contracts, &mappings).expect("published");
    let plan = mappings.plan("SupportDesk", "DraftReply").expect("plan");
    let mut ctx = soapgate::pipeline::CallContext::new("SupportDesk", None);
    let inbound = soapgate::pipeline::Inbound {
        charset: Some("utf-8"),
        version: None,
        action: None,
    };
    let prepared = soapgate::pipeline::prepare(
        &contracts,
        &inbound,
        envelope.as_bytes(),
        &soapgate::xml::Limits::default(),
        &mut ctx,
    )
    .expect("the sample prepares");
    let body = &prepared.envelope.body;
    let meta = soapgate::mapping::CallMeta {
        service: "SupportDesk",
        operation: "DraftReply",
        correlation_id: "bench",
    };
    let rendered = plan.render_request(body, &meta).expect("renders");
    let (recorder, _undrained) = {
        let _entered = rt.enter();
        Recorder::new(
            &RecordSettings {
                queue: 1,
                ..RecordSettings::default()
            },
            state_off.metrics.clone(),
        )
    };
    let response = body.clone();
    let mut path = c.benchmark_group("path");
    path.bench_function("render", |b| {
        b.iter(|| plan.render_request(body, &meta).expect("renders"))
    });
    path.bench_function("capture", |b| {
        b.iter(|| {
            let capture = soapgate::record::Capture::start(
                Some(&recorder),
                plan,
                body,
                &rendered.request,
                "bench",
            )
            .expect("DraftReply records every call");
            capture.finish(soapgate::record::Ended {
                response_xml: Some(soapgate::record::payload_xml(&response)),
                ..soapgate::record::Ended::default()
            });
        })
    });
    path.finish();

    // Let the writer catch up, then say what it did.
    rt.block_on(async { tokio::time::sleep(std::time::Duration::from_millis(500)).await });
    for (name, state) in [("on", &state_on), ("on_unwritten", &state_unwritten)] {
        let metrics = state.metrics.render();
        for line in metrics
            .lines()
            .filter(|l| l.starts_with("soapgate_recordings_total"))
        {
            println!("{name}: {line}");
        }
    }
    drop(store);
    rt.block_on(emulator.stop()).ok();
}

criterion_group!(benches, bench);
criterion_main!(benches);
