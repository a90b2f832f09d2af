//! Multi-step operations, run: the steps of a mapping's `steps:` as a
//! graph over the pipeline's single-call machinery. A step starts as soon
//! as every step it reads has its result, so independent steps run at
//! once; a `for_each` step runs its items `max_concurrency` at a time and
//! keeps their results in item order; `when` skips a step; a step's own
//! failure policy decides whether its failure fails the call. Each call
//! of a step is [`pipeline::call_step`]: targets, fallbacks, breakers,
//! retries and repairs as for any operation. The whole call holds one
//! model permit and runs under the operation's deadline; the response is
//! assembled from the results and validated as any response
//! ([`OperationPlan::assemble`]), and the operation's failure policy
//! answers when a step fails or the assembly does not validate.
//!
//! A job's steps are durable: each finished result (per item for
//! `for_each`) is handed to a [`Journal`] before anything reads it, and a
//! job run again is given the results kept so far ([`Durable`]), so a
//! finished step is never called again. A synchronous call keeps its
//! results in memory only.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use serde_json::{Map, Value};
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::converse::ModelError;
use crate::error::GatewayError;
use crate::mapping::{
    CallMeta, ForEach, INDEX_VAR, ITEM_VAR, MappingSet, OperationPlan, RenderError, STEPS_VAR,
    StepFailure, StepPlan, Workflow,
};
use crate::models::Models;
use crate::pipeline::{
    self, Degraded, DegradedBy, Outcome, Prepared, Reply, StepEnd, StepRun, Tries,
};

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a job keeps its finished steps.
pub trait Journal: Send + Sync {
    /// Keeps one finished step's result (`item`: its index in a
    /// `for_each`). An error stops the call; the job runs again later.
    fn save<'a>(
        &'a self,
        step: &'a str,
        item: Option<u32>,
        result: &'a Value,
    ) -> BoxFuture<'a, Result<(), GatewayError>>;
}

/// A job's steps: the results kept by earlier runs, and where to keep new
/// ones.
pub struct Durable<'a> {
    pub done: BTreeMap<(String, Option<u32>), Value>,
    pub journal: &'a dyn Journal,
}

impl std::fmt::Debug for Durable<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Durable")
            .field("done", &self.done.len())
            .finish_non_exhaustive()
    }
}

/// Run a prepared call: a multi-step operation's steps, or any other
/// operation through [`pipeline::run`].
pub async fn run(
    prepared: Prepared,
    mappings: &MappingSet,
    model: Option<&Arc<Models>>,
    correlation_id: &str,
    outcome: &mut Outcome,
    tries: Tries,
    durable: Option<Durable<'_>>,
) -> Result<Reply, GatewayError> {
    let service = &prepared.service().name;
    let operation = &prepared.operation().name;
    let plan = mappings
        .plan(service, operation)
        .filter(|p| p.workflow().is_some());
    let Some(plan) = plan else {
        return pipeline::run(prepared, mappings, model, correlation_id, outcome, tries).await;
    };
    let Some(models) = model else {
        return Err(GatewayError::Model(ModelError::Other {
            message: "no model client configured".into(),
        }));
    };
    let meta = CallMeta {
        service,
        operation,
        correlation_id,
    };
    let payload = &prepared.envelope.body;
    // One permit for the whole call: the cap counts calls doing model work.
    let permit = models.try_enter().map_err(|o| {
        models.metrics().overloaded();
        GatewayError::Overloaded {
            retry_after: o.retry_after,
        }
    })?;
    let deadline = Instant::now()
        + plan
            .call_policy()
            .deadline
            .unwrap_or_else(|| models.settings().deadline());
    let run = Run {
        plan,
        models,
        payload,
        meta,
        deadline,
        durable: durable.as_ref(),
    };
    let result = tokio::time::timeout_at(deadline, run.steps(outcome))
        .await
        .unwrap_or_else(|_| {
            tracing::warn!(correlation_id, "steps cut at the operation's deadline");
            Err(GatewayError::Model(pipeline::deadline_passed()))
        });
    drop(permit);
    let result = result.and_then(|vars| {
        plan.assemble(&vars).map_err(|e| match e {
            crate::mapping::AssembleError::Render(e) => render_error(e),
            crate::mapping::AssembleError::Invalid(e) => {
                tracing::warn!(correlation_id, error = %e, "the assembled response does not fit the contract");
                GatewayError::InvalidModelOutput(e.violations().to_vec())
            }
        })
    });
    match result {
        Ok(payload) => Ok(Reply::Payload(payload)),
        Err(GatewayError::Model(e)) if tries == Tries::MoreLeft && e.is_retryable() => {
            Err(GatewayError::Model(e))
        }
        Err(error) => {
            Box::pin(pipeline::degrade(
                plan,
                models,
                None,
                error,
                correlation_id,
                outcome,
            ))
            .await
        }
    }
}

/// One item of a `for_each` step: its index, result and calls.
type ItemDone = (usize, Result<Value, GatewayError>, Outcome);

/// One call's steps.
struct Run<'a> {
    plan: &'a OperationPlan,
    models: &'a Models,
    payload: &'a [crate::xml::Element],
    meta: CallMeta<'a>,
    deadline: Instant,
    durable: Option<&'a Durable<'a>>,
}

/// A finished step: its result (`None`: none, skipped without a
/// default), what its calls cost, and how it ran.
struct Finished {
    index: usize,
    result: Result<Option<Value>, GatewayError>,
    outcome: Outcome,
    ran: Ran,
}

/// How a step ran, for the call's audit row.
#[derive(Debug, Default)]
struct Ran {
    /// Its `when` did not hold.
    skipped: bool,
    /// A `for_each` step's item count.
    items: Option<usize>,
    /// Called the model (not everything taken from the journal).
    called: bool,
}

impl Run<'_> {
    /// Every step run, each once all it reads are done; the variables
    /// the response is assembled with (`steps` included).
    async fn steps(&self, outcome: &mut Outcome) -> Result<Map<String, Value>, GatewayError> {
        let workflow: &Workflow = self
            .plan
            .workflow()
            .ok_or_else(|| GatewayError::Template("the operation has no steps".into()))?;
        let mut vars = self
            .plan
            .variables(self.payload, &self.meta)
            .map_err(render_error)?;
        let mut results = Map::new();
        let count = workflow.steps().len();
        let mut started = vec![false; count];
        let mut finished = vec![false; count];
        let mut running: Vec<BoxFuture<'_, Finished>> = Vec::new();
        loop {
            for (i, step) in workflow.steps().iter().enumerate() {
                if started[i] || !step.reads().iter().all(|&r| finished[r]) {
                    continue;
                }
                started[i] = true;
                // What the step sees: the inputs and the results so far.
                let mut seen = vars.clone();
                seen.insert(STEPS_VAR.into(), Value::Object(results.clone()));
                running.push(self.step(i, step, seen));
            }
            if running.is_empty() {
                break;
            }
            let done = next(&mut running).await;
            let step = &workflow.steps()[done.index];
            merge(outcome, done.outcome, Some(step.name()));
            let end = match (&done.result, &done.ran) {
                (Err(_), _) => StepEnd::Failed,
                (Ok(_), Ran { skipped: true, .. }) => StepEnd::Skipped,
                (
                    Ok(_),
                    Ran {
                        called: false,
                        items,
                        ..
                    },
                ) if *items != Some(0) => StepEnd::Kept,
                (Ok(_), _) => StepEnd::Ran,
            };
            outcome.steps.push(StepRun {
                index: done.index,
                name: step.name().to_string(),
                items: done.ran.items,
                end,
            });
            match done.result {
                Ok(value) => {
                    results.insert(step.name().to_string(), value.unwrap_or(Value::Null));
                    finished[done.index] = true;
                }
                // The other steps stop with it: their futures are dropped.
                Err(e) => return Err(e),
            }
        }
        vars.insert(STEPS_VAR.into(), Value::Object(results));
        Ok(vars)
    }

    /// One step: skipped, taken from the journal, or called (per item).
    fn step<'s>(
        &'s self,
        index: usize,
        step: &'s StepPlan,
        seen: Map<String, Value>,
    ) -> BoxFuture<'s, Finished> {
        let span = tracing::info_span!(
            "step",
            step = step.name(),
            service = self.meta.service,
            operation = self.meta.operation
        );
        Box::pin(
            async move {
                let mut outcome = Outcome::default();
                let mut ran = Ran::default();
                let started = std::time::Instant::now();
                let result = self.step_result(step, seen, &mut outcome, &mut ran).await;
                let label = match &result {
                    Err(_) => "failed",
                    Ok(_) if ran.skipped => "skipped",
                    Ok(None) => "skipped",
                    Ok(Some(_)) if outcome.degraded.is_some() => "degraded",
                    Ok(Some(_)) => "answered",
                };
                self.models.metrics().step(
                    self.meta.service,
                    self.meta.operation,
                    step.name(),
                    label,
                    started.elapsed(),
                );
                tracing::debug!(
                    step = step.name(),
                    result = label,
                    calls = outcome.model_calls,
                    "step"
                );
                Finished {
                    index,
                    result,
                    outcome,
                    ran,
                }
            }
            .instrument(span),
        )
    }

    async fn step_result(
        &self,
        step: &StepPlan,
        mut seen: Map<String, Value>,
        outcome: &mut Outcome,
        ran: &mut Ran,
    ) -> Result<Option<Value>, GatewayError> {
        let plan = self.plan;
        if let Some(when) = step.when()
            && !plan
                .holds(&format!("step {} when", step.name()), when, &seen)
                .map_err(render_error)?
        {
            ran.skipped = true;
            // Skipped: a `for_each` step's result is an empty list.
            return Ok(match step.for_each() {
                Some(_) => Some(Value::Array(Vec::new())),
                None => step.default().cloned(),
            });
        }
        let Some(each) = step.for_each() else {
            if let Some(kept) = self.kept(step.name(), None) {
                return Ok(Some(kept));
            }
            ran.called = true;
            let value = self.call(step, &seen, outcome).await?;
            self.save(step.name(), None, &value).await?;
            return Ok(Some(value));
        };
        let items = match each {
            ForEach::Input(name) => seen.get(name).cloned().unwrap_or(Value::Null),
            ForEach::Expr(expr) => plan
                .eval(&format!("step {} for_each", step.name()), expr, &seen)
                .map_err(render_error)?,
        };
        let items = match items {
            Value::Array(items) => items,
            Value::Null => Vec::new(),
            other => vec![other],
        };
        ran.items = Some(items.len());
        // Items run `max_concurrency` at a time; results keep item order.
        let mut results: Vec<Option<Value>> = vec![None; items.len()];
        let mut outcomes: Vec<Outcome> = Vec::new();
        let mut running: Vec<BoxFuture<'_, ItemDone>> = Vec::new();
        let mut pending = items.into_iter().enumerate();
        seen.insert(ITEM_VAR.into(), Value::Null);
        let seen = &seen;
        loop {
            while running.len() < step.max_concurrency() {
                let Some((i, item)) = pending.next() else {
                    break;
                };
                let n = u32::try_from(i).unwrap_or(u32::MAX);
                if let Some(kept) = self.kept(step.name(), Some(n)) {
                    results[i] = Some(kept);
                    continue;
                }
                ran.called = true;
                running.push(Box::pin(async move {
                    let mut vars = seen.clone();
                    vars.insert(ITEM_VAR.into(), item);
                    vars.insert(INDEX_VAR.into(), Value::from(i));
                    let mut outcome = Outcome::default();
                    let value = match self.call(step, &vars, &mut outcome).await {
                        Ok(v) => self.save(step.name(), Some(n), &v).await.map(|()| v),
                        Err(e) => Err(e),
                    };
                    (i, value, outcome)
                }));
            }
            if running.is_empty() {
                break;
            }
            let (i, value, item_outcome) = next(&mut running).await;
            outcomes.push(item_outcome);
            match value {
                Ok(v) => results[i] = Some(v),
                Err(e) => {
                    // The calls of the items done so far are counted too.
                    for o in outcomes {
                        merge(outcome, o, None);
                    }
                    return Err(e);
                }
            }
        }
        for o in outcomes {
            merge(outcome, o, None);
        }
        Ok(Some(Value::Array(
            results
                .into_iter()
                .map(|v| v.unwrap_or(Value::Null))
                .collect(),
        )))
    }

    /// One call of a step, its failure policy applied.
    async fn call(
        &self,
        step: &StepPlan,
        vars: &Map<String, Value>,
        outcome: &mut Outcome,
    ) -> Result<Value, GatewayError> {
        let call = step
            .plan()
            .render_request_with(self.payload, &self.meta, vars)
            .map_err(render_error)?;
        let answered = pipeline::call_step(
            step.plan(),
            &call,
            self.models,
            self.deadline,
            self.meta.correlation_id,
            outcome,
        )
        .await;
        let error = match answered {
            Ok(v) => return Ok(v),
            Err(e @ (GatewayError::Model(_) | GatewayError::InvalidModelOutput(_))) => e,
            Err(e) => return Err(e),
        };
        match step.on_failure() {
            StepFailure::Fault => Err(error),
            StepFailure::Continue => {
                tracing::warn!(step = step.name(), error = %error, "step failed; going on with its default");
                Ok(step.default().cloned().unwrap_or(Value::Null))
            }
            StepFailure::Static(v) => {
                tracing::warn!(step = step.name(), error = %error, "step failed; its static result stands in");
                outcome.degraded = Some(Degraded {
                    policy: DegradedBy::Static,
                    reason: error.code(),
                });
                Ok(v.clone())
            }
        }
    }

    fn kept(&self, step: &str, item: Option<u32>) -> Option<Value> {
        self.durable?.done.get(&(step.to_string(), item)).cloned()
    }

    async fn save(&self, step: &str, item: Option<u32>, value: &Value) -> Result<(), GatewayError> {
        match self.durable {
            Some(d) => d.journal.save(step, item, value).await,
            None => Ok(()),
        }
    }
}

/// The first of `running` to finish, taken out of it.
async fn next<T>(running: &mut Vec<BoxFuture<'_, T>>) -> T {
    std::future::poll_fn(|cx| {
        for i in 0..running.len() {
            if let Poll::Ready(v) = running[i].as_mut().poll(cx) {
                drop(running.swap_remove(i));
                return Poll::Ready(v);
            }
        }
        Poll::Pending
    })
    .await
}

/// A step's calls added to the call's, each model call marked with the
/// step it was made for (`step`, when the calls are not marked yet).
fn merge(into: &mut Outcome, mut step: Outcome, name: Option<&str>) {
    if let Some(name) = name {
        for a in &mut step.attempts {
            a.step.get_or_insert_with(|| name.to_string());
        }
    }
    into.model_calls += step.model_calls;
    into.input_tokens += step.input_tokens;
    into.output_tokens += step.output_tokens;
    if step.model.is_some() {
        into.model = step.model;
        into.stop_reason = step.stop_reason;
    }
    if into.degraded.is_none() {
        into.degraded = step.degraded;
    }
    into.attempts.extend(step.attempts);
}

fn render_error(e: RenderError) -> GatewayError {
    match e {
        RenderError::Input { .. } => GatewayError::BadInput(e.to_string()),
        RenderError::Template { .. } => GatewayError::Template(e.to_string()),
    }
}
