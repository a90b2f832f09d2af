//! The first half of a call: read the envelope under the limits, find the
//! operation by the payload's QName, check the SOAPAction or `action`, and
//! validate the payload against the schema.

use std::sync::Arc;

use crate::contract::{Contract, ContractSet, Operation, Service, validate_payload};
use crate::error::GatewayError;
use crate::soap::{Envelope, SoapVersion, parse_envelope_with};
use crate::xml::{self, Charset, Limits, TreeBudget};

/// What the transport knows about a call before its body is read.
#[derive(Debug, Clone, Copy, Default)]
pub struct Inbound<'a> {
    /// The `charset` parameter of the Content-Type, if any.
    pub charset: Option<&'a str>,
    /// The SOAP version the transport implies (the HTTP media type); `None`
    /// accepts either.
    pub version: Option<SoapVersion>,
    /// `SOAPAction` (1.1) or the `action` media-type parameter (1.2);
    /// `None` or empty when the client sent none.
    pub action: Option<&'a str>,
}

/// Facts about a call gathered while it is prepared, needed to answer it
/// even when preparation fails halfway: which version and charset to reply
/// in, and the correlation id.
#[derive(Debug, Clone)]
pub struct CallContext {
    pub version: SoapVersion,
    pub charset: Charset,
    pub correlation_id: String,
    pub service: String,
    pub operation: Option<String>,
    /// The authenticated tenant, when tenants are configured.
    pub tenant: Option<String>,
}

impl CallContext {
    pub fn new(service: &str, transport_version: Option<SoapVersion>) -> Self {
        CallContext {
            version: transport_version.unwrap_or(SoapVersion::V11),
            charset: Charset::Utf8,
            correlation_id: new_correlation_id(),
            service: service.to_string(),
            operation: None,
            tenant: None,
        }
    }
}

/// A generated correlation id, for calls without a WS-Addressing MessageID.
pub fn new_correlation_id() -> String {
    format!("urn:uuid:{}", uuid::Uuid::new_v4())
}

/// A call that is well-formed, dispatched to one operation and valid against
/// the schema. Holds the contract it was prepared against, so a reload
/// cannot change the operation under a call in flight.
#[derive(Debug)]
pub struct Prepared {
    pub contract: Arc<Contract>,
    pub(super) service: usize,
    pub(super) operation: usize,
    pub envelope: Envelope,
}

impl Prepared {
    pub fn service(&self) -> &Service {
        &self.contract.services[self.service]
    }

    pub fn operation(&self) -> &Operation {
        &self.service().operations[self.operation]
    }
}

/// Read, dispatch and validate a request. Fills `ctx` as facts become known.
pub fn prepare(
    contracts: &ContractSet,
    inbound: &Inbound<'_>,
    body: &[u8],
    limits: &Limits,
    ctx: &mut CallContext,
) -> Result<Prepared, GatewayError> {
    let envelope = read_envelope(contracts, inbound, body, limits, &[], ctx)?;
    dispatch(contracts, inbound, envelope, ctx)
}

/// The first half of [`prepare`]: read the body and split the envelope,
/// taking header blocks in the namespaces `understood` as processed by the
/// caller (who authenticates between the two halves).
pub fn read_envelope(
    contracts: &ContractSet,
    inbound: &Inbound<'_>,
    body: &[u8],
    limits: &Limits,
    understood: &[&str],
    ctx: &mut CallContext,
) -> Result<Envelope, GatewayError> {
    if contracts.service(&ctx.service).is_none() {
        return Err(GatewayError::UnknownService(ctx.service.clone()));
    }
    // A request's tree is budgeted (8 times the body, at least 8 MiB):
    // without it, a body of two million `<x/>` would take some 40 times its
    // size in memory.
    let doc = xml::read_with(body, inbound.charset, limits, &TreeBudget::REQUEST)?;
    ctx.charset = doc.charset;
    // The version its root says, before the envelope is judged: an envelope
    // of the other version is a VersionMismatch whatever else is wrong
    // with it (its headers are not the concern of a node that does not
    // speak its version).
    let declared = (doc.root.name.local == "Envelope")
        .then(|| SoapVersion::from_envelope_ns(&doc.root.name.ns))
        .flatten();
    let mismatch = |ctx: &mut CallContext, transport: SoapVersion, envelope: SoapVersion| {
        // Answered in SOAP 1.1 either way: a 1.2 envelope sent as text/xml
        // came over the 1.1 binding, and a 1.1 envelope sent as
        // application/soap+xml came from a 1.1 client, which gets its
        // fault in SOAP 1.1 (SOAP 1.2 Part 1, Appendix A).
        ctx.version = SoapVersion::V11;
        GatewayError::VersionMismatch {
            transport,
            envelope,
        }
    };
    let envelope = match parse_envelope_with(doc.root, understood) {
        Ok(envelope) => envelope,
        Err(e) => {
            return Err(match (inbound.version, declared) {
                (Some(transport), Some(envelope)) if transport != envelope => {
                    mismatch(ctx, transport, envelope)
                }
                _ => e.into(),
            });
        }
    };
    if let Some(id) = &envelope.message_id {
        ctx.correlation_id.clone_from(id);
        tracing::Span::current().record("correlation_id", id.as_str());
    }
    if let Some(transport) = inbound.version
        && transport != envelope.version
    {
        return Err(mismatch(ctx, transport, envelope.version));
    }
    ctx.version = envelope.version;
    Ok(envelope)
}

/// The second half of [`prepare`]: find the operation, check the action,
/// validate the payload.
pub fn dispatch(
    contracts: &ContractSet,
    inbound: &Inbound<'_>,
    envelope: Envelope,
    ctx: &mut CallContext,
) -> Result<Prepared, GatewayError> {
    let Some((contract, service)) = contracts.service(&ctx.service) else {
        return Err(GatewayError::UnknownService(ctx.service.clone()));
    };
    let payload = envelope.body.first().ok_or(GatewayError::EmptyBody)?;
    let operation = match service.operation_for(envelope.version, &payload.name) {
        Some(op) => op,
        None if service.knows_payload(&payload.name) => {
            let op = service
                .operations
                .iter()
                .find(|o| o.input.dispatch_name() == Some(&payload.name));
            return Err(GatewayError::NotOffered {
                operation: op.map(|o| o.name.clone()).unwrap_or_default(),
                version: envelope.version,
            });
        }
        None => {
            return Err(GatewayError::UnknownOperation {
                service: service.name.clone(),
                payload: payload.name.clone(),
            });
        }
    };
    ctx.operation = Some(operation.name.clone());
    check_action(
        service_actions(service, envelope.version),
        operation,
        envelope.version,
        inbound.action,
    )?;

    let violations = validate_payload(
        &contract.schemas,
        &operation.input,
        &envelope.body,
        &envelope.scope,
    );
    if !violations.is_empty() {
        return Err(GatewayError::Invalid(violations));
    }
    // Indices, not clones: `service` and `operation` borrow from `contract`.
    let service_ix = contract
        .services
        .iter()
        .position(|s| std::ptr::eq(s, service));
    let operation_ix = service
        .operations
        .iter()
        .position(|o| std::ptr::eq(o, operation));
    let (Some(service), Some(operation)) = (service_ix, operation_ix) else {
        return Err(GatewayError::Internal(
            "dispatched operation not found in its contract".into(),
        ));
    };
    Ok(Prepared {
        contract: contract.clone(),
        service,
        operation,
        envelope,
    })
}

/// The soapActions of every operation bound for `version`.
fn service_actions(service: &Service, version: SoapVersion) -> impl Iterator<Item = (&str, &str)> {
    service.operations.iter().filter_map(move |o| {
        let action = o.binding(version)?.soap_action.as_deref()?;
        Some((o.name.as_str(), action))
    })
}

/// A non-empty action must not name another operation than the payload's.
/// An action the contract does not know at all is refused too when the
/// operation declares one, since the client then targets something else.
fn check_action<'a>(
    mut all: impl Iterator<Item = (&'a str, &'a str)>,
    op: &Operation,
    version: SoapVersion,
    action: Option<&str>,
) -> Result<(), GatewayError> {
    let Some(action) = action.map(str::trim).filter(|a| !a.is_empty()) else {
        return Ok(());
    };
    let expected = op.binding(version).and_then(|b| b.soap_action.clone());
    let contradicts = match &expected {
        Some(exp) => exp != action,
        None => all.any(|(name, a)| a == action && name != op.name),
    };
    if contradicts {
        return Err(GatewayError::ActionMismatch {
            action: action.to_string(),
            operation: op.name.clone(),
            expected,
        });
    }
    Ok(())
}
