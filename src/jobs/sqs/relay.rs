//! The outbox relay: every new job of a store made `with_outbox(true)` has
//! an outbox row written in its own transaction; the relay sends those rows
//! to the request queue and deletes what SQS accepted.

use std::time::Duration;

use tokio::task::JoinSet;

use super::{QueueError, SqsQueue, retry_pause};
use crate::shutdown::Shutdown;
use crate::store::{JobId, Store};

/// Sends due outbox rows to the request queue until `shutdown`.
/// Several relays (in several processes) may run at once: each takes its
/// own rows.
pub async fn relay(store: Store, queue: SqsQueue, shutdown: Shutdown) {
    const IDLE: Duration = Duration::from_millis(100);
    let mut failures: u32 = 0;
    while !shutdown.is_triggered() {
        let pause = match relay_once(&store, &queue).await {
            Ok(0) => IDLE,
            Ok(_) => {
                failures = 0;
                continue;
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let pause = retry_pause(failures);
                tracing::warn!(error = %e, retry_in_ms = pause.as_millis(), "outbox relay failed");
                pause
            }
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = shutdown.wait() => {}
        }
    }
}

/// Batches of ten sent at once by one relay pass.
const RELAY_BATCHES: u32 = 4;

/// Sends the due outbox rows, up to [`RELAY_BATCHES`] `SendMessageBatch`
/// calls at once, and removes the rows SQS accepted in one write; returns
/// how many were accepted.
pub async fn relay_once(store: &Store, queue: &SqsQueue) -> Result<usize, QueueError> {
    let s = queue.settings();
    // The lease covers the send (a relay that dies mid-send leaves its rows
    // to be sent again after it); rows whose send failed are released
    // sooner.
    let entries = store
        .claim_outbox(
            s.batch_size * RELAY_BATCHES,
            s.visibility().max(Duration::from_secs(5)),
        )
        .await?;
    if entries.is_empty() {
        return Ok(0);
    }
    let attempts = entries.iter().map(|e| e.attempts).max().unwrap_or(1);
    let rows: Vec<(i64, JobId)> = entries.into_iter().map(|e| (e.id, e.job_id)).collect();
    let mut sends = JoinSet::new();
    for chunk in rows.chunks(s.batch_size.max(1) as usize) {
        let queue = queue.clone();
        let chunk = chunk.to_vec();
        sends.spawn(async move { queue.send_jobs(&chunk).await });
    }
    let mut sent = Vec::with_capacity(rows.len());
    let mut failed = None;
    while let Some(result) = sends.join_next().await {
        match result {
            Ok(Ok(ids)) => sent.extend(ids),
            Ok(Err(e)) => failed = Some(e),
            Err(e) => {
                failed = Some(QueueError::Sqs {
                    operation: "SendMessageBatch",
                    message: e.to_string(),
                });
            }
        }
    }
    // Rows that were sent are removed even when another batch failed; the
    // others (a failed batch, or entries SQS refused) are due again after
    // a short backoff, not at the end of their lease, so that they go out
    // within a few seconds of SQS answering again.
    store.delete_outbox(&sent).await?;
    let unsent: Vec<i64> = rows
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| !sent.contains(id))
        .collect();
    if !unsent.is_empty() {
        let pause = retry_pause(u32::try_from(attempts).unwrap_or(u32::MAX));
        store.release_outbox(&unsent, pause).await?;
    }
    match failed {
        Some(e) if sent.is_empty() => Err(e),
        Some(e) => {
            tracing::warn!(error = %e, sent = sent.len(), "some outbox batches were not sent; they are sent again shortly");
            Ok(sent.len())
        }
        None => Ok(sent.len()),
    }
}
