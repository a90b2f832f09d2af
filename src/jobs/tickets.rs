//! Async SOAP calls, transport-agnostic: a prepared call of an async or
//! one-way operation becomes a job in the store ([`submit`]), its ticket
//! the response ([`ticket_payload`]); `Get{Operation}Result` reads the job
//! back ([`poll`]). The element shapes are those the published contract
//! declares (see `contract::augment`).
//!
//! The job's payload is the request as a whole SOAP envelope in UTF-8:
//! Envelope and Body re-declare every namespace the original Envelope and
//! Body declared, since the payload may rely on them in content
//! (`xsi:type="tns:X"`). Header blocks are not kept: they may carry
//! credentials, and the worker needs only the Body.

use super::payload::{declared_fault, envelope_text, result_elements};
use crate::contract::augment::{poll_response_element, ticket_element};
use crate::error::GatewayError;
use crate::mapping::OperationPlan;
use crate::pipeline::Prepared;
use crate::soap::SOAPGATE_NS;
use crate::store::{Job, JobId, JobSource, JobStatus, NewJob, Store, keys, request_digest};
use crate::xml::{Element, NsDecl, QName};

/// Why an async call cannot be queued or polled: the slot is empty until the
/// database named by `database.url` answers.
const NO_STORE: &str = "the job store is not connected (database.url does not answer yet)";

/// Record a job for a prepared async or one-way call and return it as
/// stored (on a retry, the first call's job). The idempotency key is the
/// WS-Addressing MessageID when the client sent one, else the value of the
/// mapping's `idempotency_key` path; either is scoped by service and
/// operation, so two operations never share a job. A key already used for
/// a different request (another payload digest) is
/// [`GatewayError::IdempotencyMismatch`], and records nothing. `tenant` is
/// the authenticated caller's (tenants configured): the job runs for it.
pub async fn submit(
    prepared: &Prepared,
    plan: &OperationPlan,
    store: Option<&Store>,
    correlation_id: &str,
    source: JobSource,
    tenant: Option<&str>,
) -> Result<Job, GatewayError> {
    let store = store.ok_or_else(|| GatewayError::QueueUnavailable(NO_STORE.into()))?;
    let service = &prepared.service().name;
    let operation = &prepared.operation().name;
    let envelope = &prepared.envelope;
    // Two tenants sending the same MessageID must not share a job (nor
    // learn each other's tickets): with a tenant, the key names it.
    let kind = |k: &str| match tenant {
        Some(t) => format!("tenant:{t}/{k}"),
        None => k.to_string(),
    };
    // The key as the client gave it, for a fault, and as the store keeps it.
    let (given, idempotency_key) = match &envelope.message_id {
        Some(id) => (
            Some(format!("MessageID {id}")),
            Some(keys::scoped(service, operation, &kind("message-id"), id)),
        ),
        None => match plan.idempotency_key(&envelope.body) {
            Some(k) => (
                Some(format!("idempotency key {k}")),
                Some(keys::scoped(service, operation, &kind("key"), &k)),
            ),
            None => (None, None),
        },
    };
    let job = NewJob {
        service: service.clone(),
        operation: operation.clone(),
        correlation_id: correlation_id.to_string(),
        payload: envelope_text(envelope),
        idempotency_key,
        source,
        tenant: tenant.map(str::to_owned),
    };
    let unavailable = |e: crate::store::StoreError| GatewayError::QueueUnavailable(e.to_string());
    let id = store.enqueue(&job).await.map_err(unavailable)?;
    let stored = store
        .get(&id)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| GatewayError::Internal(format!("job {id} vanished after enqueue")))?;
    // A key that named an existing job is a retry of its request only when
    // the requests are the same; otherwise the key was reused, and the
    // caller must not get another request's ticket (nor its result).
    // Jobs recorded before digests were kept have none: taken as a retry.
    if let (Some(given), Some(digest)) = (given, stored.request_digest.as_deref())
        && digest != request_digest(&job.payload)
    {
        return Err(GatewayError::IdempotencyMismatch { key: given });
    }
    Ok(stored)
}

fn sg(local: &str) -> Element {
    let mut el = Element::new(QName::new(SOAPGATE_NS, local));
    el.prefix = Some("sg".into());
    el
}

fn sg_text(local: &str, text: &str) -> Element {
    let mut el = sg(local);
    el.push_text(text);
    el
}

fn sg_root(name: QName) -> Element {
    let mut el = Element::new(name);
    el.prefix = Some("sg".into());
    el.ns_decls.push(NsDecl {
        prefix: "sg".into(),
        uri: SOAPGATE_NS.into(),
    });
    el
}

/// `sg:{Operation}Ticket`: the job id and its status.
pub fn ticket_payload(operation: &str, job: &Job) -> Element {
    let mut el = sg_root(ticket_element(operation));
    el.push_child(sg_text("jobId", job.id.as_str()));
    el.push_child(sg_text("status", job.status.as_str()));
    el
}

/// Answer `Get{of}Result`: the job's status and, when DONE, its response
/// payload inside `sg:result`; when FAILED, its fault code and text — or,
/// when the operation answered one of its declared faults, that fault
/// ([`GatewayError::Declared`]), as the call itself would have. A job
/// id unknown here, or issued by another service or operation, is an
/// unknown ticket; so is, when the caller is a tenant, another tenant's.
pub async fn poll(
    prepared: &Prepared,
    of: &str,
    store: Option<&Store>,
    tenant: Option<&str>,
) -> Result<Element, GatewayError> {
    let store = store.ok_or_else(|| GatewayError::QueueUnavailable(NO_STORE.into()))?;
    let service = &prepared.service().name;
    let ticket = prepared
        .envelope
        .body
        .first()
        .and_then(|req| req.child(SOAPGATE_NS, "jobId"))
        .map(|j| j.text().trim().to_string())
        .unwrap_or_default();
    let unknown = || GatewayError::UnknownTicket {
        ticket: ticket.clone(),
        operation: of.to_string(),
    };
    let job = store
        .get(&JobId::from_ticket(ticket.clone()))
        .await
        .map_err(|e| GatewayError::QueueUnavailable(e.to_string()))?
        .ok_or_else(unknown)?;
    let foreign = tenant.is_some_and(|t| job.tenant.as_deref() != Some(t));
    if &job.service != service || job.operation != of || foreign {
        return Err(unknown());
    }
    let mut el = sg_root(poll_response_element(of));
    el.push_child(sg_text("jobId", job.id.as_str()));
    el.push_child(sg_text("status", job.status.as_str()));
    match job.status {
        JobStatus::Done => {
            let text = job.result_payload.as_deref().unwrap_or("");
            let payload = result_elements(text).map_err(|e| {
                GatewayError::Internal(format!("stored result of job {} unreadable: {e}", job.id))
            })?;
            let mut result = sg("result");
            for p in payload {
                result.push_child(p);
            }
            el.push_child(result);
        }
        JobStatus::Failed => {
            // The operation's answer was one of its declared faults: the
            // poll answers that fault (`Get{Op}Result` declares it too).
            if let Some(fault) = declared_fault(&job) {
                return Err(GatewayError::Declared(Box::new(fault)));
            }
            el.push_child(sg_text(
                "faultCode",
                job.fault_code.as_deref().unwrap_or("INTERNAL_ERROR"),
            ));
            el.push_child(sg_text(
                "faultText",
                job.fault_text.as_deref().unwrap_or(""),
            ));
        }
        JobStatus::Queued | JobStatus::Running => {}
    }
    Ok(el)
}
