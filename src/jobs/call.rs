//! What a prepared call gets, whatever transport took it from outside: a
//! poll is answered from its job, an async or one-way call is queued as a
//! job (a ticket, or nothing, goes back at once), and any other call runs
//! now through the pipeline. A tenant's budgets are checked before a call
//! is queued, and hold what a call can use before it runs. The transport only turns bytes into a prepared call
//! and the [`Answer`] into its response.

use std::sync::Arc;

use tokio::sync::Notify;

use super::tickets;
use crate::error::GatewayError;
use crate::mapping::MappingSet;
use crate::models::Models;
use crate::pipeline::{CallContext, Outcome, Prepared, Reply, Tries};
use crate::store::{JobId, JobSource, Store};
use crate::tenants::Tenants;

/// What a call may use, borrowed from the process for one call.
#[derive(Debug, Clone, Copy)]
pub struct Services<'a> {
    /// The mappings of the snapshot the call was prepared against.
    pub mappings: &'a MappingSet,
    /// `None`: mapped operations fault with MODEL_UNAVAILABLE.
    pub model: Option<&'a Arc<Models>>,
    /// `None`: async and one-way calls fault with QUEUE_UNAVAILABLE.
    pub store: Option<&'a Store>,
    /// When tenants are configured: budgets are checked per call.
    pub tenants: Option<&'a Tenants>,
    /// Woken after a job is queued, so an idle worker of this process
    /// claims it at once.
    pub waker: Option<&'a Notify>,
}

/// A call's answer, and the job it queued, if it queued one.
#[derive(Debug)]
pub struct Answer {
    pub reply: Reply,
    pub job: Option<JobId>,
}

/// Answers a prepared (and, with tenants, authenticated and admitted) call.
pub async fn answer(
    prepared: Prepared,
    with: Services<'_>,
    ctx: &CallContext,
    outcome: &mut Outcome,
) -> Result<Answer, GatewayError> {
    let operation = prepared.operation();
    if let Some(of) = operation.result_of.clone() {
        let payload = Box::pin(tickets::poll(
            &prepared,
            &of,
            with.store,
            ctx.tenant.as_deref(),
        ))
        .await?;
        return Ok(Answer {
            reply: Reply::Payload(vec![payload]),
            job: None,
        });
    }
    let tenant = with.tenants.zip(ctx.tenant.as_deref());
    if operation.is_ticketed() || operation.is_one_way() {
        // A tenant over its budget stops here, before the queue; the job
        // holds what it needs when a worker runs it.
        if let Some((tenants, tenant)) = tenant {
            Box::pin(tenants.check_budget(with.store, tenant)).await?;
        }
        // Queued, never run here: a worker runs the job.
        let service = &prepared.service().name;
        let Some(plan) = with.mappings.plan(service, &operation.name) else {
            return Err(GatewayError::NotMapped {
                service: service.clone(),
                operation: operation.name.clone(),
            });
        };
        let source = if operation.is_one_way() {
            JobSource::OneWay
        } else {
            JobSource::Api
        };
        let job = Box::pin(tickets::submit(
            &prepared,
            plan,
            with.store,
            &ctx.correlation_id,
            source,
            ctx.tenant.as_deref(),
        ))
        .await?;
        // A job waiting for a batch is not due: no worker would find it.
        if let Some(waker) = with.waker.filter(|_| plan.batch().is_none()) {
            waker.notify_one();
        }
        tracing::info!(
            correlation_id = %ctx.correlation_id,
            job_id = %job.id,
            status = job.status.as_str(),
            "job queued"
        );
        let reply = if operation.is_one_way() {
            Reply::Accepted
        } else {
            Reply::Payload(vec![tickets::ticket_payload(&operation.name, &job)])
        };
        return Ok(Answer {
            reply,
            job: Some(job.id),
        });
    }
    // Everything from here costs tokens: the call holds the most it can
    // use before the model sees it.
    if let Some((tenants, tenant)) = tenant {
        let service = &prepared.service().name;
        let ceiling = with
            .mappings
            .plan(service, &operation.name)
            .map_or(0, |plan| {
                plan.token_ceiling(crate::mapping::request_bytes(&prepared.envelope.body))
            });
        outcome.budget_hold = Box::pin(tenants.reserve_budget(with.store, tenant, ceiling)).await?;
    }
    let reply = crate::workflow::run(
        prepared,
        with.mappings,
        with.model,
        &ctx.correlation_id,
        outcome,
        Tries::Last,
        None,
    )
    .await?;
    Ok(Answer { reply, job: None })
}
