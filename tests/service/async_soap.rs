//! Async operations over SOAP, in process: an async call answers a ticket at
//! once and records one job (one per WS-Addressing MessageID or mapping
//! idempotency key; the key reused for a different request is an
//! IDEMPOTENCY_MISMATCH fault); `Get{Op}Result` answers QUEUED, then DONE with the
//! operation's original response element, or FAILED with the fault; an
//! unknown ticket and a missing store are faults with stable codes; a
//! one-way call is HTTP 202 and a job, with no model call. The published
//! WSDL is well-formed (xmllint) and its schema, loaded by Python xmlschema,
//! accepts the ticket and poll responses.
//!
//! Jobs are run here by `e2e_support::run_one_job` (prepare + run on the
//! stored envelope, then the store's `complete`/`fail`), as a worker does.

use crate::common::gateway as e2e_support;

use std::process::Command;

use e2e_support::{
    Gateway, SG, SoapReply, Validator, Version, as_soap12, find, peers_required, repo_root,
    run_one_job, text_of,
};
use soapgate::config::Settings;
use soapgate::http::AppState;
use soapgate::store::{JobSource, Store};

const INV: &str = "http://erp.example.com/ap/invoice/types/v1";
const DESK: &str = "http://helpdesk.example.com/SupportDesk/";
const EXTRACT_ACTION: &str = "http://erp.example.com/ap/invoice/v1/ExtractInvoiceFields";
const POLL_ACTION: &str = "http://erp.example.com/ap/invoice/v1/GetExtractInvoiceFieldsResult";
const BATCH_ACTION: &str = "http://erp.example.com/ap/invoice/v1/SubmitInvoiceBatch";
const WSA: &str = "http://www.w3.org/2005/08/addressing";

fn sample(service: &str, operation: &str) -> String {
    let path = repo_root().join(format!("examples/{service}/{operation}.xml"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The ExtractInvoiceFields sample with this documentId and, when given, a
/// WS-Addressing MessageID.
fn extract(document_id: &str, message_id: Option<&str>) -> String {
    let text =
        sample("InvoiceService", "ExtractInvoiceFields").replace("DOC-2024-00418861", document_id);
    match message_id {
        Some(id) => text.replace(
            "<soapenv:Header/>",
            &format!("<soapenv:Header><wsa:MessageID xmlns:wsa=\"{WSA}\">{id}</wsa:MessageID></soapenv:Header>"),
        ),
        None => text,
    }
}

fn poll_envelope(op: &str, job_id: &str) -> String {
    format!(
        "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body>\
         <sg:Get{op}Result xmlns:sg=\"{SG}\"><sg:jobId>{job_id}</sg:jobId></sg:Get{op}Result>\
         </s:Body></s:Envelope>"
    )
}

/// (jobId, status) of a ticket or poll answer whose payload is `{SG}local`.
fn ticket_of(reply: &SoapReply, local: &str) -> (String, String) {
    assert_eq!(reply.status, 200, "{}", reply.text());
    let payload = reply.payload();
    assert_eq!(payload.len(), 1, "{}", reply.text());
    assert!(
        payload[0].name.is(SG, local),
        "expected sg:{local}:\n{}",
        reply.text()
    );
    let id = text_of(&payload[0], SG, "jobId").expect("jobId");
    let status = text_of(&payload[0], SG, "status").expect("status");
    (id, status)
}

/// Every job still queued, claimed (and so consumed): how many there were
/// and their sources.
async fn drain(store: &Store) -> Vec<(String, JobSource)> {
    let mut out = Vec::new();
    while let Some(c) = store
        .claim("counter", std::time::Duration::from_secs(60))
        .await
        .expect("claim")
    {
        out.push((c.job.operation.clone(), c.job.source));
    }
    out
}

/// Checks `reply` against the schema of the published WSDL of `service`
/// with Python xmlschema.
async fn validate_published(
    validator: &Option<Validator>,
    gateway: &Gateway,
    service: &str,
    reply: &SoapReply,
) {
    if let Some(v) = validator {
        let wsdl = gateway.published_wsdl(service).await;
        v.check(wsdl.path(), &reply.body)
            .unwrap_or_else(|e| panic!("xmlschema refuses:\n{e}\n{}", reply.text()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_call_gets_a_ticket_and_its_poll_goes_from_queued_to_done() {
    let validator =
        Validator::find("an_async_call_gets_a_ticket_and_its_poll_goes_from_queued_to_done");
    let gateway = Gateway::start(None).await;
    let reply = gateway
        .call(
            "InvoiceService",
            Version::V11,
            EXTRACT_ACTION,
            extract("DOC-2024-00000001", None).as_bytes(),
        )
        .await;
    let (job_id, status) = ticket_of(&reply, "ExtractInvoiceFieldsTicket");
    assert_eq!(status, "QUEUED");
    assert_eq!(
        gateway.total_calls().await,
        0,
        "the model waits for a worker"
    );
    validate_published(&validator, &gateway, "InvoiceService", &reply).await;

    let poll = poll_envelope("ExtractInvoiceFields", &job_id);
    let queued = gateway
        .call("InvoiceService", Version::V11, POLL_ACTION, poll.as_bytes())
        .await;
    let (id, status) = ticket_of(&queued, "GetExtractInvoiceFieldsResultResponse");
    assert_eq!((id.as_str(), status.as_str()), (job_id.as_str(), "QUEUED"));
    assert!(find(&queued.payload()[0], SG, "result").is_none());
    validate_published(&validator, &gateway, "InvoiceService", &queued).await;

    let ran = run_one_job(&gateway.state, &gateway.store).await;
    assert_eq!(ran.map(|j| j.to_string()), Some(job_id.clone()));
    assert_eq!(gateway.total_calls().await, 1);

    let done = gateway
        .call("InvoiceService", Version::V11, POLL_ACTION, poll.as_bytes())
        .await;
    let (_, status) = ticket_of(&done, "GetExtractInvoiceFieldsResultResponse");
    assert_eq!(status, "DONE", "{}", done.text());
    let payload = done.payload();
    let result = find(&payload[0], SG, "result").expect("sg:result");
    let inner: Vec<_> = result.elements().collect();
    assert_eq!(inner.len(), 1, "{}", done.text());
    assert!(
        inner[0].name.is(INV, "ExtractInvoiceFieldsResponse"),
        "{}",
        done.text()
    );
    // The original response, as the admin's schema declares it.
    assert!(
        text_of(inner[0], "", "documentId").is_some_and(|d| d.starts_with("DOC-")),
        "{}",
        done.text()
    );
    validate_published(&validator, &gateway, "InvoiceService", &done).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_message_id_twice_is_one_ticket_and_one_job() {
    let gateway = Gateway::start(None).await;
    let call = |doc: &'static str, id: Option<&'static str>| {
        let gateway = &gateway;
        async move {
            let reply = gateway
                .call(
                    "InvoiceService",
                    Version::V11,
                    EXTRACT_ACTION,
                    extract(doc, id).as_bytes(),
                )
                .await;
            ticket_of(&reply, "ExtractInvoiceFieldsTicket").0
        }
    };
    // The same request again with the same MessageID: the same ticket.
    let first = call(
        "DOC-2024-00000010",
        Some("urn:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427"),
    )
    .await;
    let again = call(
        "DOC-2024-00000010",
        Some("urn:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427"),
    )
    .await;
    assert_eq!(first, again);
    let other = call(
        "DOC-2024-00000010",
        Some("urn:uuid:6fa459ea-ee8a-3ca4-894e-db77e160355e"),
    )
    .await;
    assert_ne!(first, other);
    // Without one, the mapping's idempotency_key (documentId) decides.
    let keyed = call("DOC-2024-00000020", None).await;
    assert_eq!(keyed, call("DOC-2024-00000020", None).await);
    assert_ne!(keyed, call("DOC-2024-00000021", None).await);
    let jobs = drain(&gateway.store).await;
    assert_eq!(jobs.len(), 4, "{jobs:?}");
    assert!(
        jobs.iter()
            .all(|(op, source)| op == "ExtractInvoiceFields" && *source == JobSource::Api)
    );
    // A ticket repeated after the job ran says so.
    assert_eq!(gateway.total_calls().await, 0);
}

/// An idempotency key (the MessageID, or the mapping's idempotency_key
/// without one) reused for a different request is a client fault, not the
/// first request's ticket, and records nothing; the same request under it
/// keeps getting its ticket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_id_reused_for_a_different_request_is_an_idempotency_mismatch() {
    let gateway = Gateway::start(None).await;
    let send = |body: String| {
        let gateway = &gateway;
        async move {
            gateway
                .call(
                    "InvoiceService",
                    Version::V11,
                    EXTRACT_ACTION,
                    body.as_bytes(),
                )
                .await
        }
    };
    let id = "urn:uuid:7d444840-9dc0-11d1-b245-5ffdce74fad2";
    let first = send(extract("DOC-2024-00000030", Some(id))).await;
    let (ticket, _) = ticket_of(&first, "ExtractInvoiceFieldsTicket");

    let other = send(extract("DOC-2024-00000031", Some(id))).await;
    assert_eq!(other.status, 500, "{}", other.text());
    let fault = other.fault();
    assert_eq!(
        (fault.code.as_str(), fault.sg_code.as_str()),
        ("Client", "IDEMPOTENCY_MISMATCH"),
        "{}",
        other.text()
    );
    assert!(fault.sg_message.contains(id), "{}", fault.sg_message);
    assert!(!other.text().contains(&ticket), "{}", other.text());
    // The first request again: still its ticket.
    let again = send(extract("DOC-2024-00000030", Some(id))).await;
    assert_eq!(ticket_of(&again, "ExtractInvoiceFieldsTicket").0, ticket);

    // Without a MessageID, the mapping's key (documentId) is held to the
    // same rule: another expectedVendorId under the same documentId.
    let keyed = extract("DOC-2024-00000033", None);
    let (keyed_ticket, _) = ticket_of(&send(keyed.clone()).await, "ExtractInvoiceFieldsTicket");
    let changed = send(keyed.replace("V0051230", "V0099999")).await;
    assert_eq!(
        changed.fault().sg_code,
        "IDEMPOTENCY_MISMATCH",
        "{}",
        changed.text()
    );
    assert_eq!(
        ticket_of(&send(keyed).await, "ExtractInvoiceFieldsTicket").0,
        keyed_ticket
    );

    // One job per accepted request, none for the refused ones.
    let jobs = drain(&gateway.store).await;
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    assert_eq!(gateway.total_calls().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_foreign_tickets_are_unknown_ticket_faults() {
    let gateway = Gateway::start(None).await;
    let reply = gateway
        .call(
            "InvoiceService",
            Version::V11,
            POLL_ACTION,
            poll_envelope("ExtractInvoiceFields", "no-such-job").as_bytes(),
        )
        .await;
    assert_eq!(reply.status, 500, "{}", reply.text());
    let fault = reply.fault();
    assert_eq!(
        (fault.code.as_str(), fault.sg_code.as_str()),
        ("Client", "UNKNOWN_TICKET")
    );

    // A one-way call's job id is not a ticket of ExtractInvoiceFields.
    let batch = gateway
        .call(
            "InvoiceService",
            Version::V11,
            BATCH_ACTION,
            sample("InvoiceService", "SubmitInvoiceBatch").as_bytes(),
        )
        .await;
    assert_eq!(batch.status, 202);
    let claimed = gateway
        .store
        .claim("t", std::time::Duration::from_secs(60))
        .await
        .expect("claim")
        .expect("the one-way job");
    let foreign = gateway
        .call(
            "InvoiceService",
            Version::V11,
            POLL_ACTION,
            poll_envelope("ExtractInvoiceFields", claimed.job.id.as_str()).as_bytes(),
        )
        .await;
    assert_eq!(
        foreign.fault().sg_code,
        "UNKNOWN_TICKET",
        "{}",
        foreign.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_polls_as_failed_with_its_fault_code() {
    let validator = Validator::find("a_failed_job_polls_as_failed_with_its_fault_code");
    // Text where a tool call is expected, every time: INVALID_MODEL_OUTPUT
    // after the repair attempt.
    let gateway = Gateway::start(Some("rules:\n  - text: \"unreadable scan\"\n")).await;
    let reply = gateway
        .call(
            "InvoiceService",
            Version::V11,
            EXTRACT_ACTION,
            extract("DOC-2024-00000003", None).as_bytes(),
        )
        .await;
    let (job_id, _) = ticket_of(&reply, "ExtractInvoiceFieldsTicket");
    run_one_job(&gateway.state, &gateway.store)
        .await
        .expect("a job");
    let failed = gateway
        .call(
            "InvoiceService",
            Version::V11,
            POLL_ACTION,
            poll_envelope("ExtractInvoiceFields", &job_id).as_bytes(),
        )
        .await;
    let (_, status) = ticket_of(&failed, "GetExtractInvoiceFieldsResultResponse");
    assert_eq!(status, "FAILED", "{}", failed.text());
    let payload = failed.payload();
    assert_eq!(
        text_of(&payload[0], SG, "faultCode").as_deref(),
        Some("INVALID_MODEL_OUTPUT")
    );
    assert!(text_of(&payload[0], SG, "faultText").is_some_and(|t| !t.is_empty()));
    assert!(find(&payload[0], SG, "result").is_none());
    validate_published(&validator, &gateway, "InvoiceService", &failed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_way_call_is_202_and_a_job_without_a_model_call() {
    let gateway = Gateway::start(None).await;
    let reply = gateway
        .call(
            "InvoiceService",
            Version::V11,
            BATCH_ACTION,
            sample("InvoiceService", "SubmitInvoiceBatch").as_bytes(),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    assert!(reply.body.is_empty());
    assert!(
        reply.correlation_id.starts_with("urn:uuid:"),
        "{:?}",
        reply.correlation_id
    );
    assert_eq!(gateway.total_calls().await, 0);
    let jobs = drain(&gateway.store).await;
    assert_eq!(
        jobs,
        vec![("SubmitInvoiceBatch".to_string(), JobSource::OneWay)]
    );
}

/// A one-way operation's caller gets nothing back, but the model's answer
/// is kept: the job's result and its `soapgate_results` row hold it as
/// `<sg:Answer>`, the model's text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_way_job_keeps_the_model_answer_in_its_result() {
    let script = "rules:\n  - text: \"batch of 3 invoices received; 1 needs review\"\n";
    let gateway = Gateway::start(Some(script)).await;
    let reply = gateway
        .call(
            "InvoiceService",
            Version::V11,
            BATCH_ACTION,
            sample("InvoiceService", "SubmitInvoiceBatch").as_bytes(),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    let id = run_one_job(&gateway.state, &gateway.store)
        .await
        .expect("the one-way job");
    assert_eq!(
        gateway.total_calls().await,
        1,
        "the worker called the model"
    );
    let job = gateway.store.get(&id).await.expect("get").expect("job");
    let result = job.result_payload.as_deref().unwrap_or_default();
    assert!(
        result.contains("<sg:Answer") && result.contains("1 needs review"),
        "the job's result: {result:?}"
    );
    let row = gateway
        .store
        .get_result(&reply.correlation_id)
        .await
        .expect("result")
        .expect("the results row");
    let payload = row.payload.unwrap_or_default();
    assert!(
        payload.contains("urn:soapgate:v1") && payload.contains("1 needs review"),
        "the results row: {payload:?}"
    );
}

/// The example mappings, with SupportDesk's SummarizeTicket (bound over
/// SOAP 1.1 and 1.2) async too.
fn mappings_with_async_summary() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for entry in std::fs::read_dir(repo_root().join("mappings")).expect("mappings/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|x| x == "yaml") {
            let text = std::fs::read_to_string(&path).expect("mapping");
            let text = text.replace(
                "  SummarizeTicket:\n",
                "  SummarizeTicket:\n    mode: async\n    idempotency_key: TicketId\n",
            );
            std::fs::write(dir.path().join(path.file_name().expect("name")), text)
                .expect("writing a mapping");
        }
    }
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_binding_of_an_async_operation_offers_its_poll_and_the_wsdl_is_well_formed() {
    let validator = Validator::find("every_binding_of_an_async_operation_offers_its_poll");
    let mappings = mappings_with_async_summary();
    let gateway = Gateway::start_with(None, mappings.path()).await;

    for service in ["InvoiceService", "SupportDesk"] {
        let wsdl = gateway.published_wsdl(service).await;
        match Command::new("xmllint")
            .arg("--noout")
            .arg(wsdl.path())
            .output()
        {
            Ok(out) => assert!(
                out.status.success(),
                "xmllint refuses the published {service} WSDL:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => assert!(!peers_required(), "xmllint missing: {e}"),
        }
    }
    let snapshot = gateway.state.live.snapshot();
    let (_, desk) = snapshot
        .contracts
        .service("SupportDesk")
        .expect("SupportDesk");
    let poll = desk
        .operation("GetSummarizeTicketResult")
        .expect("the poll operation");
    assert_eq!(poll.result_of.as_deref(), Some("SummarizeTicket"));
    let summary = desk.operation("SummarizeTicket").expect("SummarizeTicket");
    assert!(summary.is_ticketed());
    assert_eq!(poll.bindings.len(), summary.bindings.len());
    assert_eq!(poll.bindings.len(), 2, "SOAP 1.1 and 1.2");
    let action = "http://helpdesk.example.com/SupportDesk/SummarizeTicket";
    let poll_action = "http://helpdesk.example.com/SupportDesk/GetSummarizeTicketResult";
    assert!(
        poll.bindings
            .iter()
            .all(|b| b.soap_action.as_deref() == Some(poll_action))
    );

    // Submit over 1.2, poll over 1.1 and 1.2.
    let text = as_soap12(&sample("SupportDesk", "SummarizeTicket"));
    let reply = gateway
        .call("SupportDesk", Version::V12, action, text.as_bytes())
        .await;
    let (job_id, status) = ticket_of(&reply, "SummarizeTicketTicket");
    assert_eq!(status, "QUEUED");
    validate_published(&validator, &gateway, "SupportDesk", &reply).await;
    run_one_job(&gateway.state, &gateway.store)
        .await
        .expect("a job");
    for version in [Version::V11, Version::V12] {
        let mut poll = poll_envelope("SummarizeTicket", &job_id);
        if version == Version::V12 {
            poll = as_soap12(&poll);
        }
        let done = gateway
            .call("SupportDesk", version, poll_action, poll.as_bytes())
            .await;
        let (_, status) = ticket_of(&done, "GetSummarizeTicketResultResponse");
        assert_eq!(status, "DONE", "{}", done.text());
        let payload = done.payload();
        let result = find(&payload[0], SG, "result").expect("sg:result");
        assert!(
            result
                .elements()
                .next()
                .is_some_and(|e| e.name.is(DESK, "SummarizeTicketResponse")),
            "{}",
            done.text()
        );
        validate_published(&validator, &gateway, "SupportDesk", &done).await;
    }
}

/// Adds to `missing` a line for every QName-valued attribute of `el` (or of
/// its descendants) whose prefix the root does not bind to the namespace
/// it means where it is used.
fn prefixes_missing_at_root(
    el: &soapgate::xml::Element,
    root: &soapgate::xml::Element,
    scope: &mut soapgate::xml::NsScope,
    missing: &mut Vec<String>,
) {
    const QNAME_ATTRS: [&str; 7] = [
        "message", "element", "type", "binding", "ref", "base", "itemType",
    ];
    scope.push(el);
    for a in &el.attrs {
        if !a.name.ns.is_empty() || !QNAME_ATTRS.contains(&a.name.local.as_str()) {
            continue;
        }
        let Some((prefix, _)) = a.value.trim().split_once(':') else {
            continue;
        };
        let meant = scope.resolve(prefix);
        let at_root = root.declared_ns(prefix);
        if meant.is_none() || meant != at_root {
            missing.push(format!(
                "{}=\"{}\" on <{}>: means {meant:?}, the root binds {prefix} to {at_root:?}",
                a.name.local, a.value, el.name.local
            ));
        }
    }
    for child in el.elements() {
        prefixes_missing_at_root(child, root, scope, missing);
    }
    scope.pop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_published_wsdl_declares_every_prefix_it_uses_at_its_root() {
    // Clients such as suds resolve a portType's `message=` against the
    // portType and the definitions, not the element that carries it.
    let mappings = mappings_with_async_summary();
    let gateway = Gateway::start_with(None, mappings.path()).await;
    let services: Vec<String> = gateway
        .state
        .live
        .snapshot()
        .contracts
        .services()
        .map(|(_, s)| s.name.clone())
        .collect();
    assert!(services.len() >= 3, "{services:?}");
    for service in services {
        let wsdl = gateway.published_wsdl(&service).await;
        let text = std::fs::read_to_string(wsdl.path()).expect("the published WSDL");
        let doc = soapgate::xml::read_str(&text, &soapgate::xml::Limits::default())
            .expect("the published WSDL parses");
        let mut missing = Vec::new();
        prefixes_missing_at_root(
            &doc.root,
            &doc.root,
            &mut soapgate::xml::NsScope::new(),
            &mut missing,
        );
        assert!(
            missing.is_empty(),
            "{service}: prefixes not declared at the root:\n{}\n{text}",
            missing.join("\n")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_store_async_and_one_way_calls_are_queue_unavailable_faults() {
    let wsdl_dir = repo_root().join("wsdl");
    let mappings_dir = repo_root().join("mappings");
    let contracts = soapgate::files::load_contracts(&wsdl_dir).expect("contracts");
    let mappings = soapgate::files::load_mappings(&mappings_dir, &contracts).expect("mappings");
    let contracts = soapgate::files::publish_contracts(contracts, &mappings).expect("published");
    let state = AppState::new(contracts, mappings, Settings::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}/soap/InvoiceService",
        listener.local_addr().expect("addr")
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(soapgate::http::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    for (action, body) in [
        (EXTRACT_ACTION, extract("DOC-2024-00000005", None)),
        (BATCH_ACTION, sample("InvoiceService", "SubmitInvoiceBatch")),
        (POLL_ACTION, poll_envelope("ExtractInvoiceFields", "x")),
    ] {
        let reply =
            e2e_support::post_soap(&http, &url, Version::V11, action, body.as_bytes()).await;
        assert_eq!(reply.status, 500, "{}", reply.text());
        let fault = reply.fault();
        assert_eq!(
            (fault.code.as_str(), fault.sg_code.as_str()),
            ("Server", "QUEUE_UNAVAILABLE"),
            "{action}"
        );
    }
    let _ = stop.send(());
    let _ = server.await;
}

#[test]
fn async_mapping_mistakes_are_refused_with_their_position() {
    let contracts =
        soapgate::files::load_contracts(&repo_root().join("wsdl")).expect("example contracts");
    let load = |file: &str, text: &str| {
        soapgate::mapping::MappingSet::load(&[(file.into(), text.to_string())], &contracts)
            .err()
            .map(|errors| {
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    };
    // rpc/literal has no response element to replace with a ticket.
    let rpc = std::fs::read_to_string(repo_root().join("mappings/PartsCatalog.yaml"))
        .expect("PartsCatalog mapping")
        .replace("  DescribePart:\n", "  DescribePart:\n    mode: async\n");
    let errors = load("m/PartsCatalog.yaml", &rpc);
    assert!(
        errors.contains("m/PartsCatalog.yaml:") && errors.contains("rpc/literal"),
        "{errors}"
    );
    let line = errors
        .split(':')
        .nth(1)
        .and_then(|l| l.parse::<u32>().ok())
        .expect("a line number");
    assert!(line > 1, "{errors}");

    let invoice = std::fs::read_to_string(repo_root().join("mappings/InvoiceService.yaml"))
        .expect("InvoiceService mapping");
    let bad_path = invoice.replace(
        "idempotency_key: documentId",
        "idempotency_key: documentIdx",
    );
    let errors = load("m/InvoiceService.yaml", &bad_path);
    assert!(errors.contains("no element documentIdx"), "{errors}");
    let sync_key = invoice.replace(
        "    mode: async\n    idempotency_key: documentId\n",
        "    idempotency_key: documentId\n",
    );
    let errors = load("m/InvoiceService.yaml", &sync_key);
    assert!(errors.contains("only to async operations"), "{errors}");
}
