//! The pure path of one SOAP call on the ~2 KB example envelope
//! (`examples/InvoiceService/ClassifyInvoice.xml`): parse + validate (what
//! every call pays before a model), rendering the Converse request, and
//! turning a Converse answer (the golden one in
//! `tests/data/mapping/InvoiceService.ClassifyInvoice/`) into the validated
//! response payload. `cargo bench --bench parse_validate`.

use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use soapgate::contract::ContractSet;
use soapgate::converse::Response;
use soapgate::files::{load_contracts, load_mappings};
use soapgate::mapping::CallMeta;
use soapgate::pipeline::{CallContext, Inbound, prepare};
use soapgate::soap::SoapVersion;
use soapgate::xml::{self, Limits};

// The same allocator as the `soapgate` binary, so the numbers are the
// binary's. `SOAPGATE_BENCH_SYSTEM_ALLOC=1` is not offered: compare by
// building with this line removed.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let contracts: ContractSet =
        load_contracts(&root.join("wsdl")).unwrap_or_else(|e| panic!("contracts: {e:?}"));
    let envelope = std::fs::read(root.join("examples/InvoiceService/ClassifyInvoice.xml"))
        .expect("sample envelope");
    let limits = Limits::default();
    let inbound = Inbound {
        charset: Some("utf-8"),
        version: Some(SoapVersion::V11),
        action: None,
    };

    // The bench must measure the successful path, not an early fault.
    let mut ctx = CallContext::new("InvoiceService", inbound.version);
    if let Err(e) = prepare(&contracts, &inbound, &envelope, &limits, &mut ctx) {
        panic!("the sample envelope must prepare cleanly: {e}");
    }

    let mut group = c.benchmark_group(format!("envelope_{}_bytes", envelope.len()));
    group.bench_function("xml_read", |b| {
        b.iter(|| {
            xml::read(std::hint::black_box(&envelope), Some("utf-8"), &limits)
                .map(|d| d.root.children.len())
        })
    });
    group.bench_function("parse_dispatch_validate", |b| {
        b.iter(|| {
            let mut ctx = CallContext::new("InvoiceService", inbound.version);
            prepare(
                &contracts,
                &inbound,
                std::hint::black_box(&envelope),
                &limits,
                &mut ctx,
            )
            .is_ok()
        })
    });
    let mappings = load_mappings(&root.join("mappings"), &contracts)
        .unwrap_or_else(|e| panic!("mappings: {e:?}"));
    let plan = mappings
        .plan("InvoiceService", "ClassifyInvoice")
        .expect("ClassifyInvoice is mapped");
    let answer = std::fs::read(
        root.join("tests/data/mapping/InvoiceService.ClassifyInvoice/converse-response.json"),
    )
    .expect("golden answer");
    let answer: Response = serde_json::from_slice(&answer).expect("golden answer is Converse JSON");
    let mut ctx = CallContext::new("InvoiceService", inbound.version);
    let prepared = prepare(&contracts, &inbound, &envelope, &limits, &mut ctx).expect("prepares");
    let meta = CallMeta {
        service: "InvoiceService",
        operation: "ClassifyInvoice",
        correlation_id: "bench",
    };
    let call = plan
        .render_request(&prepared.envelope.body, &meta)
        .expect("renders");
    if let Err(e) = plan.response_from(&call, &answer) {
        panic!("the golden answer must map cleanly: {e}");
    }

    group.bench_function("render_request", |b| {
        b.iter(|| {
            plan.render_request(std::hint::black_box(&prepared.envelope.body), &meta)
                .is_ok()
        })
    });
    group.bench_function("response_from", |b| {
        b.iter(|| {
            plan.response_from(&call, std::hint::black_box(&answer))
                .is_ok()
        })
    });
    group.bench_function("whole_pure_path", |b| {
        b.iter(|| {
            let mut ctx = CallContext::new("InvoiceService", inbound.version);
            let Ok(prepared) = prepare(
                &contracts,
                &inbound,
                std::hint::black_box(&envelope),
                &limits,
                &mut ctx,
            ) else {
                return false;
            };
            let Ok(call) = plan.render_request(&prepared.envelope.body, &meta) else {
                return false;
            };
            plan.response_from(&call, &answer).is_ok()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
